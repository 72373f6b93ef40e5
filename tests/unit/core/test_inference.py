"""Decoding object-detection replies into pixel boxes, and the image helpers."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from sagemaker_vision.core.inference import (
    Box,
    MalformedReply,
    content_type_for,
    decode_detections,
    image_size,
    normalise_class_map,
    parse_prediction,
)

SAMPLE_IMAGES = Path(__file__).resolve().parents[3] / "include" / "sample_data" / "images"
CLASSES = {0: "circle", 1: "square", 2: "triangle"}
GOOD_ROW = [1.0, 0.9, 0.25, 0.5, 0.75, 1.0]


def encode(fmt: str, size: tuple[int, int] = (320, 240)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def decode(rows: list, **kwargs) -> list[Box]:
    return decode_detections(
        {"prediction": rows}, class_map=kwargs.pop("class_map", CLASSES), image_width=kwargs.pop("w", 320),
        image_height=kwargs.pop("h", 240), **kwargs,
    )


class TestDecodeDetections:
    def test_rows_become_named_pixel_boxes_in_reply_order(self):
        boxes = decode([[1.0, 0.91, 0.25, 0.30, 0.60, 0.72], [0.0, 0.47, 0.05, 0.10, 0.20, 0.35]])
        # 0.25*320=80, 0.60*320=192 -> width 112; 0.30*240=72, 0.72*240=172.8 -> 173 -> height 101
        assert boxes == [
            Box(label="square", class_id=1, score=0.91, left=80, top=72, width=112, height=101),
            Box(label="circle", class_id=0, score=0.47, left=16, top=24, width=48, height=60),
        ]

    def test_edges_are_rounded_so_left_plus_width_is_the_right_edge(self):
        # xmin*7=1.4 -> 1, xmax*7=4.55 -> 5 (rounding each edge; rounding the width would give 3)
        (box,) = decode([[0.0, 0.5, 0.2, 0.0, 0.65, 1.0]], w=7, h=3)
        assert (box.left, box.width, box.left + box.width) == (1, 4, 5)
        assert (box.top, box.height) == (0, 3)

    def test_bytes_str_and_dict_replies_decode_the_same(self):
        reply = {"prediction": [GOOD_ROW]}
        text = json.dumps(reply)
        kwargs = {"class_map": CLASSES, "image_width": 320, "image_height": 240}
        assert (decode_detections(text.encode(), **kwargs) == decode_detections(text, **kwargs)
                == decode_detections(reply, **kwargs))

    def test_integer_class_id_and_full_frame_box(self):
        (box,) = decode([[2, 1, 0, 0, 1, 1]])
        assert box == Box("triangle", 2, 1.0, 0, 0, 320, 240)

    def test_unknown_class_id_is_labelled_class_n(self):
        (box,) = decode([[7.0, 0.5, 0.1, 0.1, 0.2, 0.2]])
        assert (box.label, box.class_id) == ("class_7", 7)

    @pytest.mark.parametrize("class_map", [{"0": "circle", "1": "square"}, ["circle", "square"],
                                           {0: "circle", "1": "square"}])
    def test_class_map_accepts_string_keys_and_lists(self, class_map):
        assert [b.label for b in decode([GOOD_ROW, [0.0, 0.5, 0, 0, 0.5, 0.5]], class_map=class_map)] == [
            "square", "circle"]

    def test_min_score_drops_low_rows_after_validating_them(self):
        rows = [GOOD_ROW, [0.0, 0.2, 0.1, 0.1, 0.2, 0.2]]
        assert [b.score for b in decode(rows, min_score=0.5)] == [0.9]
        assert [b.score for b in decode(rows, min_score=0.2)] == [0.9, 0.2]  # inclusive threshold
        with pytest.raises(ValueError, match=r"prediction\[1\]: score"):
            decode([GOOD_ROW, [0.0, 1.5, 0.1, 0.1, 0.2, 0.2]], min_score=0.99)

    def test_float32_overshoot_within_tolerance_is_clipped(self):
        (box,) = decode([[0.0, 0.5, -0.00005, 0.0, 1.00005, 1.0]])
        assert (box.left, box.width) == (0, 320)

    def test_empty_prediction_list_is_no_boxes(self):
        assert decode([]) == []

    def test_to_dict(self):
        (box,) = decode([GOOD_ROW])
        assert box.to_dict() == {"label": "square", "class_id": 1, "score": 0.9, "left": 80, "top": 120,
                                 "width": 160, "height": 120}

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"not json", r"reply is not JSON"),
            (b"\xff\xfe", r"reply is not UTF-8"),
            ("[1, 2]", r"reply must be a JSON object, got list"),
            ('{"predictions": []}', r"reply has no 'prediction' field; keys: \['predictions'\]"),
            ('{"prediction": {"a": 1}}', r"'prediction' must be a list, got dict"),
            (12, r"reply must be bytes, str or dict, got int"),
        ],
    )
    def test_malformed_reply_envelope(self, body, message):
        with pytest.raises(ValueError, match=message):
            decode_detections(body, class_map=CLASSES, image_width=320, image_height=240)

    @pytest.mark.parametrize(
        ("bad_row", "message"),
        [
            ([1.0, 0.9, 0.1, 0.1, 0.2], r"must be \[class_id, score, xmin, ymin, xmax, ymax\], got length 5"),
            ([1.0, 0.9, 0.1, 0.1, 0.2, 0.2, 0.3], r"got length 7"),
            ("1.0 0.9", r"got str"),
            (["1", 0.9, 0.1, 0.1, 0.2, 0.2], r"class_id must be a number, got '1'"),
            ([1.0, None, 0.1, 0.1, 0.2, 0.2], r"score must be a number, got None"),
            ([1.0, 0.9, True, 0.1, 0.2, 0.2], r"xmin must be a number, got True"),
            ([1.0, float("nan"), 0.1, 0.1, 0.2, 0.2], r"score must be finite"),
            ([1.5, 0.9, 0.1, 0.1, 0.2, 0.2], r"class_id=1.5 is not a non-negative integer"),
            ([-1.0, 0.9, 0.1, 0.1, 0.2, 0.2], r"class_id=-1.0 is not a non-negative integer"),
            ([1.0, 1.2, 0.1, 0.1, 0.2, 0.2], r"score=1.2 is outside \[0, 1\]"),
            ([1.0, -0.1, 0.1, 0.1, 0.2, 0.2], r"score=-0.1 is outside \[0, 1\]"),
            ([1.0, 0.9, 0.1, 0.1, 1.01, 0.2], r"xmax=1.01 is outside the normalised range"),
            ([1.0, 0.9, 0.1, -0.01, 0.2, 0.2], r"ymin=-0.01 is outside the normalised range"),
            ([1.0, 0.9, 0.1, 0.1, 0.2, 320.0], r"ymax=320.0 is outside"),  # pixels where fractions belong
            ([1.0, 0.9, 0.5, 0.1, 0.4, 0.2], r"xmax=0.4 < xmin=0.5"),
            ([1.0, 0.9, 0.1, 0.6, 0.2, 0.5], r"ymax=0.5 < ymin=0.6"),
        ],
    )
    def test_malformed_row_names_its_index(self, bad_row, message):
        with pytest.raises(ValueError, match=r"^prediction\[1\]") as info:
            decode([GOOD_ROW, bad_row, GOOD_ROW])
        assert info.match(message)

    def test_nan_literal_from_json_is_rejected(self):
        body = '{"prediction": [[1.0, NaN, 0.1, 0.1, 0.2, 0.2]]}'
        with pytest.raises(ValueError, match=r"prediction\[0\]: score must be finite"):
            decode_detections(body, class_map=CLASSES, image_width=10, image_height=10)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"w": 0}, "image_width must be a positive integer, got 0"),
            ({"h": 24.0}, "image_height must be a positive integer, got 24.0"),
            ({"w": True}, "image_width must be a positive integer, got True"),
            ({"min_score": 1.5}, r"min_score must be a number in \[0, 1\], got 1.5"),
            ({"class_map": {"one": "circle"}}, "class_map key 'one' is not an integer class id"),
            ({"class_map": {-1: "circle"}}, "class_map key -1 is not a non-negative integer"),
            ({"class_map": {0: ""}}, r"class_map\[0\] must be a non-empty string"),
            ({"class_map": "circle"}, "class_map must be a mapping or a list of names"),
        ],
    )
    def test_bad_arguments_name_the_field(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            decode([GOOD_ROW], **kwargs)

    def test_normalise_class_map(self):
        assert normalise_class_map({"2": "triangle", 0: "circle"}) == {2: "triangle", 0: "circle"}
        sample = json.loads((SAMPLE_IMAGES.parent / "classes.json").read_text())
        assert normalise_class_map(sample) == CLASSES


class TestImageHelpers:
    @pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
    def test_image_size(self, fmt):
        assert image_size(encode(fmt, (123, 45))) == (123, 45)

    def test_sample_image_size(self):
        assert image_size((SAMPLE_IMAGES / "shape_000.jpg").read_bytes()) == (320, 240)

    def test_image_size_rejects_garbage_and_empty(self):
        with pytest.raises(ValueError, match=r"image data \(8 bytes\) is not a readable image"):
            image_size(b"notimage")
        with pytest.raises(ValueError, match="image data is empty"):
            image_size(b"")

    @pytest.mark.parametrize(
        ("name", "expected"),
        [("a.jpg", "image/jpeg"), ("dir/B.JPEG", "image/jpeg"), ("s3://b/k/c.png", "image/png"),
         (Path("x/y.PNG"), "image/png")],
    )
    def test_content_type_for(self, name, expected):
        assert content_type_for(name) == expected

    @pytest.mark.parametrize(("name", "shown"), [("scan.gif", "'.gif'"), ("README", "'(no extension)'")])
    def test_content_type_for_rejects_other_types_naming_the_file(self, name, shown):
        with pytest.raises(ValueError, match=re.escape(f"'{name}': unsupported image type {shown}")):
            content_type_for(name)


def test_the_fast_path_agrees_with_the_checked_path():
    """parse_prediction takes a fast path for list rows of six in-range floats; tuple rows always take the
    checked path. Both must accept and refuse the same rows, and return the same detections."""
    import random

    rng = random.Random(6)
    edges = [0.0, 1.0, -0.0, 1e-5, -5e-5, -2e-4, 1.00005, 1.0002, 0.5, 2.0, 3.0, -1.0, 1e300,
             float("nan"), float("inf"), -float("inf"), 2.0**53, 7, True, None]

    def value() -> object:
        return rng.choice(edges) if rng.random() < 0.5 else rng.uniform(-0.1, 1.1)

    def outcome(rows: list) -> object:
        try:
            return parse_prediction({"prediction": rows})
        except MalformedReply as exc:
            return type(exc)

    accepted = 0
    for _ in range(20_000):
        x0, x1, y0, y1 = sorted(rng.uniform(0, 1) for _ in range(2)) + sorted(rng.uniform(0, 1) for _ in range(2))
        row = [float(rng.randint(0, 9)), rng.uniform(0, 1), x0, y0, x1, y1]  # a valid row...
        for _ in range(rng.choice((0, 1, 1, 2))):  # ...with up to two values replaced
            row[rng.randrange(6)] = value()
        result = outcome([row])
        assert result == outcome([tuple(row)]), row
        accepted += isinstance(result, list)
    assert 2_000 < accepted < 18_000  # both ways through are exercised

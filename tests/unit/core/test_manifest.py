"""Unit tests for the manifest core (core/manifest, manifest_parse, manifest_refs, converters):
validation, split, remap and converters."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from sagemaker_vision.core import converters, manifest, manifest_parse, manifest_refs
from sagemaker_vision.core.class_map import ClassIdRemap, normalise_class_ids
from sagemaker_vision.core.manifest_parse import ManifestError

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "include" / "sample_data" / "output.manifest"
ATTR = "bounding-box"
CLASSES = {"0": "circle", "1": "square", "2": "triangle"}


def record(
    i: int | str = 0,
    *,
    anns: list[dict[str, Any]] | None = None,
    class_map: dict[str, str] | None = None,
    size: tuple[int, int] = (320, 240),
    attr: str = ATTR,
) -> dict[str, Any]:
    """A valid manifest line dict for image ``i``."""
    anns = [{"class_id": 0, "left": 10, "top": 20, "width": 30, "height": 40}] if anns is None else anns
    return {
        "source-ref": f"s3://bucket/images/img_{i}.jpg",
        attr: {"image_size": [{"width": size[0], "height": size[1], "depth": 3}], "annotations": anns},
        f"{attr}-metadata": {
            "objects": [{"confidence": 0.95} for _ in anns],
            "class-map": dict(CLASSES if class_map is None else class_map),
            "type": "groundtruth/object-detection",
            "human-annotated": "yes",
            "creation-date": "2026-11-01T00:00:00.000000",
            "job-name": "labeling-job/test",
        },
    }


def line(rec: dict[str, Any]) -> str:
    return json.dumps(rec, separators=(",", ":")) + "\n"


def manifest_error(lines: list[str], **kwargs: Any) -> ManifestError:
    kwargs.setdefault("label_attribute", ATTR)
    with pytest.raises(ManifestError) as info:
        manifest.validate_manifest(lines, source="m.manifest", **kwargs)
    return info.value


def split(
    lines: list[str], fraction: float = 0.2, **kwargs: Any
) -> tuple[manifest.SplitResult, list[str], list[str]]:
    train, val = io.StringIO(), io.StringIO()
    result = manifest.split_manifest(
        lines,
        label_attribute=kwargs.pop("label_attribute", ATTR),
        validation_fraction=fraction,
        train_out=train,
        validation_out=val,
        **kwargs,
    )
    return result, train.getvalue().splitlines(keepends=True), val.getvalue().splitlines(keepends=True)


def split_key(ref: str, seed: str = "") -> float:
    """The documented split rule, computed independently of the module."""
    return int.from_bytes(hashlib.sha256((seed + ref).encode()).digest()[:8], "big") / 2**64


# ------------------------------------------------------------------------------------------
# validate_manifest


def test_sample_manifest_validates() -> None:
    records = [json.loads(x) for x in SAMPLE.read_text().splitlines() if x.strip()]
    stats = manifest.validate_manifest(SAMPLE.open(), label_attribute=ATTR, source=str(SAMPLE))

    assert stats.num_lines == len(records)
    assert stats.num_boxes == sum(len(r[ATTR]["annotations"]) for r in records)
    assert stats.images_without_boxes == sum(not r[ATTR]["annotations"] for r in records)
    assert stats.class_map == {int(k): v for k, v in records[0][f"{ATTR}-metadata"]["class-map"].items()}
    for cid in stats.class_map:
        assert stats.class_counts[cid] == sum(
            a["class_id"] == cid for r in records for a in r[ATTR]["annotations"]
        )
    assert json.loads(json.dumps(stats.to_dict()))["num_classes"] == len(stats.class_map)


def test_bytes_lines_blank_lines_and_bom_are_accepted() -> None:
    raw = ("\ufeff" + line(record(0)) + "\n   \n" + line(record(1, anns=[]))).encode()
    stats = manifest.validate_manifest(raw.splitlines(), label_attribute=ATTR)
    assert (stats.num_lines, stats.num_boxes, stats.images_without_boxes) == (2, 1, 1)


def with_bad(bad: str, at: int = 3) -> list[str]:
    """Good lines around ``bad`` so that it sits on line ``at`` (line 2 is blank, still counted)."""
    good = [line(record(i)) for i in range(100, 104)]
    lines = [good[0], "\n", *good[1:]]
    lines.insert(at - 1, bad if bad.endswith("\n") else bad + "\n")
    return lines


def mutate(fn: Any) -> str:
    rec = record(7)
    fn(rec)
    return line(rec)


BAD_LINES = {
    "malformed JSON": ('{"source-ref": "s3://b/k.jpg",', "", "malformed JSON"),
    "truncated line": (line(record(7))[:-20], "", "malformed JSON"),
    "array line": ("[1, 2]", "", "must be a JSON object, got array"),
    "string line": ('"s3://b/k.jpg"', "", "must be a JSON object, got string"),
    "missing source-ref": (mutate(lambda r: r.pop("source-ref")), "source-ref", "missing"),
    "numeric source-ref": (mutate(lambda r: r.update({"source-ref": 12})), "source-ref", "must be a string"),
    "https source-ref": (
        mutate(lambda r: r.update({"source-ref": "https://b/k.jpg"})),
        "source-ref",
        "s3://",
    ),
    "bucket-only source-ref": (
        mutate(lambda r: r.update({"source-ref": "s3://bucket"})),
        "source-ref",
        "bucket and a key",
    ),
    "prefix source-ref": (
        mutate(lambda r: r.update({"source-ref": "s3://bucket/dir/"})),
        "source-ref",
        "not a prefix",
    ),
    "missing label attribute": (mutate(lambda r: r.pop(ATTR)), ATTR, "missing"),
    "label not an object": (mutate(lambda r: r.update({ATTR: [1]})), ATTR, "must be an object"),
    "missing metadata": (mutate(lambda r: r.pop(f"{ATTR}-metadata")), f"{ATTR}-metadata", "missing"),
    "missing class-map": (
        mutate(lambda r: r[f"{ATTR}-metadata"].pop("class-map")),
        f"{ATTR}-metadata.class-map",
        "missing",
    ),
    "bad class-map key": (
        mutate(lambda r: r[f"{ATTR}-metadata"]["class-map"].update({"x": "dog"})),
        f'{ATTR}-metadata.class-map["x"]',
        "non-negative integer",
    ),
    "wrong job type": (
        mutate(lambda r: r[f"{ATTR}-metadata"].update({"type": "groundtruth/image-classification"})),
        f"{ATTR}-metadata.type",
        "groundtruth/object-detection",
    ),
    "class_id not in class-map": (
        mutate(lambda r: r[ATTR]["annotations"][0].update({"class_id": 5})),
        f"{ATTR}.annotations[0].class_id",
        "5 is not in the class-map",
    ),
    "boolean class_id": (
        mutate(lambda r: r[ATTR]["annotations"][0].update({"class_id": True})),
        f"{ATTR}.annotations[0].class_id",
        "must be an integer",
    ),
    "box past right edge": (
        mutate(lambda r: r[ATTR]["annotations"][0].update({"left": 300})),
        f"{ATTR}.annotations[0]",
        "left + width = 330 > image width 320",
    ),
    "box past bottom edge": (
        mutate(lambda r: r[ATTR]["annotations"][0].update({"top": 201})),
        f"{ATTR}.annotations[0]",
        "top + height = 241 > image height 240",
    ),
    "negative left": (
        mutate(lambda r: r[ATTR]["annotations"][0].update({"left": -1})),
        f"{ATTR}.annotations[0].left",
        "outside the image",
    ),
    "zero width": (
        mutate(lambda r: r[ATTR]["annotations"][0].update({"width": 0})),
        f"{ATTR}.annotations[0].width",
        "must be positive",
    ),
    "negative height": (
        mutate(lambda r: r[ATTR]["annotations"][0].update({"height": -3})),
        f"{ATTR}.annotations[0].height",
        "must be positive",
    ),
    "string coordinate": (
        mutate(lambda r: r[ATTR]["annotations"][0].update({"top": "20"})),
        f"{ATTR}.annotations[0].top",
        "finite number",
    ),
    "NaN coordinate": (
        '{"source-ref":"s3://b/nan.jpg","bounding-box":{"image_size":[{"width":9,"height":9}],'
        '"annotations":[{"class_id":0,"left":NaN,"top":0,"width":1,"height":1}]},'
        '"bounding-box-metadata":{"class-map":{"0":"circle"}}}',
        f"{ATTR}.annotations[0].left",
        "finite number",
    ),
    "missing box field": (
        mutate(lambda r: r[ATTR]["annotations"][0].pop("height")),
        f"{ATTR}.annotations[0].height",
        "missing",
    ),
    "missing annotations": (mutate(lambda r: r[ATTR].pop("annotations")), f"{ATTR}.annotations", "missing"),
    "objects count mismatch": (
        mutate(lambda r: r[f"{ATTR}-metadata"].update({"objects": []})),
        f"{ATTR}-metadata.objects",
        "one entry per annotation",
    ),
    "missing image_size": (mutate(lambda r: r[ATTR].pop("image_size")), f"{ATTR}.image_size", "missing"),
    "empty image_size": (
        mutate(lambda r: r[ATTR].update({"image_size": []})),
        f"{ATTR}.image_size",
        "list of one",
    ),
    "string image width": (
        mutate(lambda r: r[ATTR]["image_size"][0].update({"width": "320"})),
        f"{ATTR}.image_size[0].width",
        "positive integer",
    ),
    "zero image height": (
        mutate(lambda r: r[ATTR]["image_size"][0].update({"height": 0})),
        f"{ATTR}.image_size[0].height",
        "positive integer",
    ),
    "duplicate source-ref": (line(record(101)), "source-ref", "duplicate 's3://bucket/images/img_101.jpg'"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_bad_line_is_reported_with_file_line_and_field(case: str) -> None:
    bad, field, message = BAD_LINES[case]
    err = manifest_error(with_bad(bad, at=4))

    prefix = f"m.manifest:4: {field}: " if field else "m.manifest:4: "
    listed = [str(p) for p in err.problems]
    assert any(p.startswith(prefix) and message in p for p in listed), listed
    assert all(p.line == 4 for p in err.problems), listed  # the good lines around it stay clean
    assert prefix in str(err)


def test_every_problem_is_listed_in_one_error() -> None:
    lines = with_bad("not json", at=3)
    lines.insert(5, mutate(lambda r: r[ATTR]["annotations"][0].update({"width": 0, "class_id": 9})))
    err = manifest_error(lines)
    assert [(p.line, p.field) for p in err.problems] == [
        (3, ""),
        (6, f"{ATTR}.annotations[0].class_id"),
        (6, f"{ATTR}.annotations[0].width"),
    ]
    assert err.num_problems == 3
    assert str(err).count("m.manifest:") == 3


def test_listing_is_capped_but_the_count_is_not() -> None:
    err = manifest_error(["{oops\n"] * 120)
    text = str(err)
    assert err.num_problems == 120
    assert text.startswith("120 problems")
    assert text.count("m.manifest:") == manifest_parse.MAX_LISTED_PROBLEMS
    assert f"... and {120 - manifest_parse.MAX_LISTED_PROBLEMS} more" in text
    assert "m.manifest:50:" in text and "m.manifest:51:" not in text


def test_manifest_error_survives_pickling() -> None:
    err = manifest_error(with_bad("[]"))
    clone = pickle.loads(pickle.dumps(err))
    assert clone.problems == err.problems and str(clone) == str(err)


@pytest.mark.parametrize("lines", [[], ["\n", "   \n"]], ids=["no lines", "blank lines"])
def test_empty_manifest_is_an_error(lines: list[str]) -> None:
    err = manifest_error(lines)
    assert [str(p) for p in err.problems] == ["m.manifest: the manifest is empty (no non-blank lines)"]


@pytest.mark.parametrize("attr", ["bounding-box-metadata", "boxes-ref", "", "source-ref"])
def test_invalid_label_attribute(attr: str) -> None:
    with pytest.raises(ManifestError, match="label_attribute") as info:
        manifest.validate_manifest([line(record(0))], label_attribute=attr)
    assert info.value.problems[0].field == "label_attribute"


def test_conflicting_class_names_across_lines() -> None:
    lines = [line(record(0)), line(record(1, class_map={"0": "dog"}))]
    err = manifest_error(lines)
    assert [str(p) for p in err.problems] == [
        f"m.manifest:2: {ATTR}-metadata.class-map[\"0\"]: id 0 is 'dog' here but 'circle' on line 1"
    ]


def test_one_name_with_two_ids_is_an_error() -> None:
    lines = [line(record(0)), line(record(1, class_map={"5": "square"}, anns=[]))]
    err = manifest_error(lines)
    assert err.problems[0].line == 2
    assert "name 'square' has id 5 here but id 1 on line 1" in str(err)


def test_partial_class_maps_are_merged() -> None:
    # Ground Truth may list only the classes present on a line; the union is what counts.
    lines = [
        line(record(0, class_map={"0": "circle"})),
        line(
            record(
                1,
                class_map={"2": "triangle"},
                anns=[{"class_id": 2, "left": 0, "top": 0, "width": 5, "height": 5}],
            )
        ),
        line(record(2, class_map={"1": "square", "0": "circle"}, anns=[])),
    ]
    stats = manifest.validate_manifest(lines, label_attribute=ATTR)
    assert stats.class_map == {0: "circle", 1: "square", 2: "triangle"}
    assert stats.class_counts == {0: 1, 1: 0, 2: 1}


def test_iter_lines_streams_any_reader() -> None:
    text = line(record(0)) + line(record(1)) + "\n" + line(record(2)).rstrip("\n")  # no final newline

    class StreamingBody:  # only .read(), like botocore's
        def __init__(self, data: bytes) -> None:
            self._buf = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self._buf.read(n)

    for reader in (StreamingBody(text.encode()), io.StringIO(text)):
        got = list(manifest_parse.iter_lines(reader, chunk_size=7))  # chunks cut through lines
        assert got == [x.encode() if isinstance(reader, StreamingBody) else x for x in text.split("\n")]
        assert manifest.validate_manifest(got, label_attribute=ATTR).num_lines == 3


def test_non_utf8_line_is_reported() -> None:
    lines = [line(record(0)).encode(), b'{"source-ref": "s3://b/\xff.jpg"}']
    with pytest.raises(ManifestError, match=r"<manifest>:2: not UTF-8"):
        manifest.validate_manifest(lines, label_attribute=ATTR)


# ------------------------------------------------------------------------------------------
# split_manifest


def many(n: int, start: int = 0) -> list[str]:
    return [line(record(i)) for i in range(start, start + n)]


def refs(lines: list[str]) -> list[str]:
    return [json.loads(x)["source-ref"] for x in lines]


def test_split_follows_the_documented_hash_rule_and_honours_the_fraction() -> None:
    lines = many(10_000)
    result, train, val = split(lines, 0.2, seed="run-1")

    assert result.num_training_samples == len(train) and result.num_validation_samples == len(val)
    assert len(train) + len(val) == 10_000
    assert all(split_key(r, "run-1") < 0.2 for r in refs(val))
    assert all(split_key(r, "run-1") >= 0.2 for r in refs(train))
    assert abs(len(val) / 10_000 - 0.2) < 0.015  # binomial sd is 0.004
    # Lines are copied verbatim when no remap is needed.
    assert sorted(train + val) == sorted(lines)


def test_split_is_deterministic_and_seeded() -> None:
    lines = many(500)
    _, train_a, val_a = split(lines, 0.3)
    _, train_b, val_b = split(lines, 0.3)
    _, _, val_c = split(lines, 0.3, seed="other")
    assert (train_a, val_a) == (train_b, val_b)
    assert set(refs(val_c)) != set(refs(val_a))


def test_adding_lines_does_not_move_old_ones() -> None:
    old = many(1000)
    new = many(300, start=5000)
    combined = [x for pair in zip(old[:300], new, strict=True) for x in pair] + old[300:]  # interleaved
    _, _, val_old = split(old, 0.25)
    _, _, val_all = split(combined, 0.25)
    old_refs = set(refs(old))
    assert set(refs(val_all)) & old_refs == set(refs(val_old))


def find_refs(count: int, want_validation: bool, fraction: float) -> list[int]:
    """Image numbers whose refs all hash to one side."""
    found = []
    i = 0
    while len(found) < count:
        if (split_key(f"s3://bucket/images/img_{i}.jpg") < fraction) == want_validation:
            found.append(i)
        i += 1
    return found


def test_both_splits_get_a_line_when_hashing_puts_all_in_train() -> None:
    ids = find_refs(3, want_validation=False, fraction=0.05)
    result, train, val = split([line(record(i)) for i in ids], 0.05)
    smallest = min((f"s3://bucket/images/img_{i}.jpg" for i in ids), key=split_key)
    assert (result.num_training_samples, result.num_validation_samples) == (2, 1)
    assert refs(val) == [smallest]


def test_both_splits_get_a_line_when_hashing_puts_all_in_validation() -> None:
    ids = find_refs(3, want_validation=True, fraction=0.5)
    result, train, val = split([line(record(i)) for i in ids], 0.5)
    largest = max((f"s3://bucket/images/img_{i}.jpg" for i in ids), key=split_key)
    assert (len(train), len(val)) == (1, 2) == (result.num_training_samples, result.num_validation_samples)
    assert refs(train) == [largest]


def test_single_line_cannot_be_split() -> None:
    with pytest.raises(ManifestError, match="at least 2 images"):
        split([line(record(0))])


@pytest.mark.parametrize("fraction", [0, 0.6, -0.1, 1, float("nan"), True, "0.2"])
def test_validation_fraction_out_of_range(fraction: Any) -> None:
    with pytest.raises(ValueError, match="validation_fraction"):
        split(many(10), fraction)


def test_split_reports_the_same_problems_as_validate() -> None:
    lines = with_bad(mutate(lambda r: r[ATTR]["annotations"][0].update({"left": 400})), at=3)
    with pytest.raises(ManifestError) as info:
        manifest.split_manifest(
            lines,
            label_attribute=ATTR,
            validation_fraction=0.2,
            train_out=io.StringIO(),
            validation_out=io.StringIO(),
            source="m.manifest",
        )
    assert info.value.problems == manifest_error(lines).problems


GAPPED = {"0": "a", "3": "b"}


def gapped_lines() -> list[str]:
    box = {"left": 1, "top": 1, "width": 5, "height": 5}
    return [
        line(record(i, class_map=GAPPED, anns=[{"class_id": 3 if i % 2 else 0, **box}])) for i in range(40)
    ]


def test_gapped_ids_need_the_class_map_to_split() -> None:
    stats = manifest.validate_manifest(gapped_lines(), label_attribute=ATTR)
    assert stats.class_map == {0: "a", 3: "b"}
    with pytest.raises(ManifestError, match=r"class ids \[0, 3\] are not contiguous.*class_map="):
        split(gapped_lines())


@pytest.mark.parametrize("class_map", [{0: "a", 3: "b"}, GAPPED], ids=["int keys", "xcom string keys"])
def test_split_remaps_gapped_ids(class_map: dict[Any, str]) -> None:
    result, train, val = split(gapped_lines(), 0.3, class_map=class_map)

    assert result.class_map == {0: "a", 1: "b"}
    assert result.id_remap == {0: 0, 3: 1}
    assert result.num_classes == 2
    originals = {json.loads(x)["source-ref"]: json.loads(x) for x in gapped_lines()}
    for out in train + val:
        rec = json.loads(out)
        old = originals[rec["source-ref"]]
        expected = copy.deepcopy(old)
        expected[f"{ATTR}-metadata"]["class-map"] = {"0": "a", "1": "b"}
        for ann in expected[ATTR]["annotations"]:
            ann["class_id"] = {0: 0, 3: 1}[ann["class_id"]]
        assert rec == expected  # only the ids changed
    # The rewritten splits are valid, contiguous manifests again.
    for part in (train, val):
        stats = manifest.validate_manifest(part, label_attribute=ATTR)
        assert set(stats.class_map) <= {0, 1}


def test_given_class_map_rejects_unknown_ids_and_keeps_unused_classes() -> None:
    result, _, _ = split(many(20), 0.2, class_map={0: "circle", 1: "square", 2: "triangle", 4: "hexagon"})
    assert result.class_map == {0: "circle", 1: "square", 2: "triangle", 3: "hexagon"}
    assert result.stats.class_counts == {0: 20, 1: 0, 2: 0, 4: 0}
    with pytest.raises(ManifestError, match=r"<manifest>:1: .*id 2 \('triangle'\) is not in the class_map"):
        split(many(5), 0.2, class_map={0: "circle", 1: "square"})


def test_normalise_class_ids() -> None:
    assert normalise_class_ids({"0": "a", "3": "b", "10": "c"}) == ClassIdRemap(
        {0: "a", 1: "b", 2: "c"}, {0: 0, 3: 1, 10: 2}
    )
    same = normalise_class_ids({1: "y", 0: "x"})
    assert same.class_map == {0: "x", 1: "y"} and same.is_identity
    for bad, match in [
        ({"-1": "a"}, r"class_map\['-1'\]"),
        ({0: "a", 1: "a"}, "also used by id 0"),
        ({0: ""}, "non-empty"),
        ({}, "non-empty mapping"),
        ({"01": "a"}, r"class_map\['01'\]"),
    ]:
        with pytest.raises(ValueError, match=match):
            normalise_class_ids(bad)


# ------------------------------------------------------------------------------------------
# rewrite_source_refs


def test_rewrite_with_explicit_prefix() -> None:
    lines = [line(record(i)) for i in range(3)]
    out = list(manifest_refs.rewrite_source_refs(lines, old_prefix="s3://bucket/images", new_prefix="s3://new/raw/"))
    assert refs(out) == [f"s3://new/raw/img_{i}.jpg" for i in range(3)]
    for before, after in zip(lines, out, strict=True):
        a, b = json.loads(before), json.loads(after)
        a.pop("source-ref"), b.pop("source-ref")
        assert a == b and after.endswith("\n")


def test_rewrite_finds_the_common_directory() -> None:
    recs = [record(0), record(1), record(2)]
    recs[0]["source-ref"] = "s3://bucket/raw/day1/a.jpg"
    recs[1]["source-ref"] = "s3://bucket/raw/day2/sub/b.jpg"
    recs[2]["source-ref"] = "s3://bucket/raw/day10/c.jpg"  # shares "s3://bucket/raw/day1" as text only
    out = list(manifest_refs.rewrite_source_refs([line(r) for r in recs], old_prefix=None, new_prefix="s3://new/x"))
    assert refs(out) == ["s3://new/x/day1/a.jpg", "s3://new/x/day2/sub/b.jpg", "s3://new/x/day10/c.jpg"]
    assert manifest.validate_manifest(out, label_attribute=ATTR).num_lines == 3


def test_rewrite_needs_a_reiterable_without_prefix() -> None:
    with pytest.raises(TypeError, match="re-iterable"):
        manifest_refs.rewrite_source_refs(iter([line(record(0))]), old_prefix=None, new_prefix="s3://new/")


def test_rewrite_names_lines_outside_the_prefix() -> None:
    lines = [line(record(0)), line(record(1)), "\n", line(record(2))]
    lines[1] = lines[1].replace("s3://bucket/images/", "s3://bucket/imagesX/")
    lines[3] = lines[3].replace("s3://bucket/images/", "s3://other/")
    with pytest.raises(ManifestError) as info:
        list(manifest_refs.rewrite_source_refs(lines, old_prefix="s3://bucket/images", new_prefix="s3://new/"))
    assert [(p.line, p.field) for p in info.value.problems] == [(2, "source-ref"), (4, "source-ref")]
    assert "not an object under 's3://bucket/images/'" in str(info.value)


def test_rewrite_rejects_bad_prefixes() -> None:
    with pytest.raises(ValueError, match="new_prefix"):
        manifest_refs.rewrite_source_refs([line(record(0))], old_prefix=None, new_prefix="/local/dir")
    with pytest.raises(ValueError, match="old_prefix"):
        manifest_refs.rewrite_source_refs([line(record(0))], old_prefix="bucket/images", new_prefix="s3://n/")


# ------------------------------------------------------------------------------------------
# Label Studio


def ls_box(
    x: float, y: float, w: float, h: float, label: str, size: tuple[int, int] = (640, 480), **value: Any
) -> dict[str, Any]:
    return {
        "id": f"r{label}{x}",
        "type": "rectanglelabels",
        "from_name": "label",
        "to_name": "image",
        "original_width": size[0],
        "original_height": size[1],
        "image_rotation": 0,
        "value": {
            "x": x,
            "y": y,
            "width": w,
            "height": h,
            "rotation": 0,
            "rectanglelabels": [label],
            **value,
        },
    }


def ls_annotation(
    aid: int, result: list[dict[str, Any]], updated: str, cancelled: bool = False
) -> dict[str, Any]:
    return {
        "id": aid,
        "result": result,
        "was_cancelled": cancelled,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": updated,
        "completed_by": 1,
    }


LS_EXPORT: list[dict[str, Any]] = [
    {
        "id": 1,
        "data": {"image": "s3://bucket/img/a.jpg"},
        "annotations": [
            ls_annotation(
                11,
                [
                    ls_box(10, 20, 25, 50, "dog"),  # exact: 64,96 160x240
                    ls_box(50.5, 0, 49.5, 33.3333, "cat"),  # 323.2..640 -> 323 w317; 0..159.99 -> 160
                    {
                        "id": "c",
                        "type": "choices",
                        "value": {"choices": ["outdoor"]},
                    },  # other controls are ignored
                ],
                "2026-01-02T10:00:00Z",
            )
        ],
    },
    {
        "id": 2,
        "data": {
            "image": "https://bucket.s3.amazonaws.com/img/b%20c.jpg?X-Amz-Signature=abc&X-Amz-Expires=60"
        },
        "annotations": [
            ls_annotation(21, [ls_box(0, 0, 10, 10, "dog", (100, 50))], "2026-01-02T10:00:00Z"),
            ls_annotation(22, [ls_box(12.345, 6.789, 20, 40, "cat", (100, 50))], "2026-01-03T09:00:00+00:00"),
            ls_annotation(
                23, [ls_box(50, 50, 50, 50, "dog", (100, 50))], "2026-01-09T00:00:00Z", cancelled=True
            ),
        ],
    },
    {
        "id": 3,
        "data": {"image": "/data/local-files/?d=batch1/d.jpg", "width": 800, "height": 600},
        "annotations": [ls_annotation(31, [], "2026-01-02T10:00:00Z")],
    },  # looked at, nothing there
    {"id": 4, "data": {"image": "/data/upload/7/e.jpg"}, "annotations": []},  # never annotated
    {
        "id": 5,
        "data": {"image": "s3://bucket/img/f.jpg"},
        "annotations": [
            ls_annotation(51, [ls_box(1, 1, 1, 1, "dog")], "2026-01-02T10:00:00Z", cancelled=True)
        ],
    },
    {
        "id": 6,
        "data": {"image": "/data/upload/7/g.jpg"},  # tie on time: higher id wins
        "annotations": [
            ls_annotation(61, [ls_box(0, 0, 100, 100, "cat", (30, 20))], "2026-01-02T10:00:00Z"),
            ls_annotation(62, [ls_box(0, 0, 50, 50, "dog", (30, 20))], "2026-01-02T10:00:00Z"),
        ],
    },
]


def test_label_studio_conversion_to_the_pixel() -> None:
    conv = converters.from_label_studio(
        copy.deepcopy(LS_EXPORT),
        label_attribute="boxes",
        s3_prefix="s3://lake/raw",
        creation_date="2026-02-01T00:00:00.000000",
    )
    out = list(conv)

    assert conv.class_map == {0: "cat", 1: "dog"}
    assert conv.unannotated_task_ids == [4, 5]
    assert conv.cancelled_annotations == 2 and conv.superseded_annotations == 2
    assert [r["source-ref"] for r in out] == [
        "s3://bucket/img/a.jpg",
        "s3://lake/raw/b c.jpg",
        "s3://lake/raw/d.jpg",
        "s3://lake/raw/g.jpg",
    ]
    boxes = [
        [(a["class_id"], a["left"], a["top"], a["width"], a["height"]) for a in r["boxes"]["annotations"]]
        for r in out
    ]
    assert boxes == [
        [(1, 64, 96, 160, 240), (0, 323, 0, 317, 160)],
        [(0, 12, 3, 20, 20)],  # edges 12.35 -> 12 and 32.35 -> 32 px; 3.39 -> 3 and 23.39 -> 23 px
        [],  # kept: an image with no objects, size from the task data
        [(1, 0, 0, 15, 10)],
    ]
    assert [r["boxes"]["image_size"] for r in out] == [
        [{"width": 640, "height": 480, "depth": 3}],
        [{"width": 100, "height": 50, "depth": 3}],
        [{"width": 800, "height": 600, "depth": 3}],
        [{"width": 30, "height": 20, "depth": 3}],
    ]
    meta = out[0]["boxes-metadata"]
    assert meta == {
        "objects": [{"confidence": 1.0}, {"confidence": 1.0}],
        "class-map": {"0": "cat", "1": "dog"},
        "type": "groundtruth/object-detection",
        "human-annotated": "yes",
        "creation-date": "2026-02-01T00:00:00.000000",
        "job-name": "label-studio",
    }
    buf = io.StringIO()
    assert manifest_parse.write_manifest(out, buf) == 4
    stats = manifest.validate_manifest(buf.getvalue().splitlines(), label_attribute="boxes")
    assert (stats.num_lines, stats.num_boxes, stats.class_counts) == (4, 4, {0: 2, 1: 2})


def test_label_studio_class_names_fix_the_ids() -> None:
    conv = converters.from_label_studio(
        copy.deepcopy(LS_EXPORT),
        label_attribute="boxes",
        s3_prefix="s3://lake/raw",
        class_names=["dog", "bird", "cat"],
    )
    out = list(conv)
    assert conv.class_map == {0: "dog", 1: "bird", 2: "cat"}
    assert [a["class_id"] for a in out[0]["boxes"]["annotations"]] == [0, 2]


def test_label_studio_image_size_callback_for_empty_images() -> None:
    export = [
        {"id": 9, "data": {"image": "s3://b/x.jpg"}, "annotations": [ls_annotation(1, [], "2026-01-01")]}
    ]
    with pytest.raises(ManifestError, match="task 9: no boxes.*image_size_of"):
        converters.from_label_studio(export, label_attribute="boxes", class_names=["dog"])
    conv = converters.from_label_studio(
        export, label_attribute="boxes", class_names=["dog"], image_size_of=lambda ref: (11, 7)
    )
    assert next(conv)["boxes"]["image_size"] == [{"width": 11, "height": 7, "depth": 3}]


def ls_error(task: dict[str, Any], **kwargs: Any) -> str:
    kwargs.setdefault("label_attribute", "boxes")
    with pytest.raises(ManifestError) as info:
        converters.from_label_studio([copy.deepcopy(LS_EXPORT[0]), task], **kwargs)
    assert all("task 42" in str(p) for p in info.value.problems), str(info.value)
    return str(info.value)


def ls_task(image: str = "s3://bucket/img/z.jpg", *boxes: dict[str, Any]) -> dict[str, Any]:
    return {"id": 42, "data": {"image": image}, "annotations": [ls_annotation(1, list(boxes), "2026-01-01")]}


def test_label_studio_errors_name_the_task() -> None:
    assert "not on S3; pass s3_prefix" in ls_error(ls_task("https://x/y.jpg", ls_box(1, 1, 1, 1, "dog")))
    assert "neither s3://" in ls_error(ls_task("gs://b/y.jpg", ls_box(1, 1, 1, 1, "dog")))
    assert "also the image of task 1" in ls_error(ls_task("s3://bucket/img/a.jpg", ls_box(1, 1, 1, 1, "dog")))
    assert "outside the image" in ls_error(ls_task("s3://b/z.jpg", ls_box(90, 0, 20, 10, "dog")))
    assert "rotation" in ls_error(ls_task("s3://b/z.jpg", ls_box(1, 1, 5, 5, "dog", rotation=30)))
    assert "exactly one label" in ls_error(
        ls_task("s3://b/z.jpg", ls_box(1, 1, 5, 5, "dog", rectanglelabels=[]))
    )
    no_size = ls_box(1, 1, 5, 5, "dog")
    del no_size["original_width"]
    assert "original_width" in ls_error(ls_task("s3://b/z.jpg", no_size))
    with pytest.raises(ManifestError, match="label 'dog' is used in the export but not in class_names"):
        converters.from_label_studio(
            copy.deepcopy(LS_EXPORT), label_attribute="boxes", s3_prefix="s3://l/", class_names=["cat"]
        )


# ------------------------------------------------------------------------------------------
# COCO


COCO: dict[str, Any] = {
    "images": [
        {"id": 10, "file_name": "a.jpg", "width": 640, "height": 480},
        {"id": 11, "file_name": "sub/b.jpg", "width": 100, "height": 100},
        {"id": 12, "file_name": "c.jpg", "width": 50, "height": 50},
    ],
    "categories": [{"id": 7, "name": "bike"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
    "annotations": [
        {"id": 100, "image_id": 10, "category_id": 3, "bbox": [10.4, 20.6, 30.2, 40.0], "iscrowd": 0},
        {"id": 101, "image_id": 10, "category_id": 7, "bbox": [600, 400, 40, 80], "iscrowd": 0},
        {"id": 102, "image_id": 11, "category_id": 1, "bbox": [0, 0, 100, 100.3], "iscrowd": 0},
        {"id": 103, "image_id": 11, "category_id": 1, "bbox": [5, 5, 50, 50], "iscrowd": 1},
    ],
}


def test_coco_conversion() -> None:
    conv = converters.from_coco(copy.deepcopy(COCO), label_attribute="bb", image_prefix="s3://lake/coco")
    out = list(conv)

    assert conv.class_map == {0: "person", 1: "car", 2: "bike"}
    assert conv.category_remap == {1: 0, 3: 1, 7: 2}
    assert conv.skipped_crowd_annotations == 1
    assert [r["source-ref"] for r in out] == [
        "s3://lake/coco/a.jpg",
        "s3://lake/coco/sub/b.jpg",
        "s3://lake/coco/c.jpg",
    ]
    assert [
        [(a["class_id"], a["left"], a["top"], a["width"], a["height"]) for a in r["bb"]["annotations"]]
        for r in out
    ] == [
        [(1, 10, 21, 31, 40), (2, 600, 400, 40, 80)],
        [(0, 0, 0, 100, 100)],  # 0.3 px past the bottom edge is float noise: clamped
        [],  # no annotations: kept
    ]
    assert out[0]["bb-metadata"]["job-name"] == "coco-import"
    stats = manifest.validate_manifest([manifest_parse.dumps_line(r) for r in out], label_attribute="bb")
    assert stats.class_counts == {0: 1, 1: 1, 2: 1} and stats.images_without_boxes == 1

    with_crowd = list(
        converters.from_coco(
            copy.deepcopy(COCO), label_attribute="bb", image_prefix="s3://l/", include_crowd=True
        )
    )
    assert len(with_crowd[1]["bb"]["annotations"]) == 2


def test_coco_errors_name_the_annotation_or_image() -> None:
    coco = copy.deepcopy(COCO)
    coco["annotations"] += [
        {"id": 200, "image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1]},
        {"id": 201, "image_id": 10, "category_id": 2, "bbox": [0, 0, 1, 1]},
        {"id": 202, "image_id": 12, "category_id": 1, "bbox": [40, 0, 20, 5]},
        {"id": 203, "image_id": 12, "category_id": 1, "bbox": [0, 0, -2, 5]},
        {"id": 204, "image_id": 12, "category_id": 1, "bbox": [0, 0, 5]},
    ]
    coco["images"] += [
        {"id": 13, "file_name": "d.jpg"},
        {"id": 14, "file_name": "a.jpg", "width": 5, "height": 5},
    ]
    with pytest.raises(ManifestError) as info:
        converters.from_coco(coco, label_attribute="bb", image_prefix="s3://lake/coco")
    fields = [p.field for p in info.value.problems]
    assert fields == [
        "image 13",
        "image 14.file_name",
        "annotation 200.image_id",
        "annotation 201.category_id",
        "annotation 202.bbox",
        "annotation 203.bbox",
        "annotation 204.bbox",
    ]
    text = str(info.value)
    assert (
        "outside the image" in text
        and "size must be positive" in text
        and "also the file of image 10" in text
    )


def test_coco_tiny_and_border_boxes_are_kept_inside_the_image() -> None:
    coco = {
        "images": [{"id": 1, "file_name": "x.jpg", "width": 20, "height": 10}],
        "categories": [{"id": 1, "name": "speck"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10.6, 3.2, 0.3, 0.2]},  # under a pixel
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [19.8, 9.9, 0.2, 0.1]},  # in the last pixel
            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [-0.4, 0, 20.3, 10]},  # float noise
        ],
    }
    (rec,) = converters.from_coco(coco, label_attribute="bb", image_prefix="s3://b/p/")
    got = [(a["left"], a["top"], a["width"], a["height"]) for a in rec["bb"]["annotations"]]
    assert got == [(11, 3, 1, 1), (19, 9, 1, 1), (0, 0, 20, 10)]
    assert manifest.validate_manifest([manifest_parse.dumps_line(rec)], label_attribute="bb").num_boxes == 3


# --- AWS's own augmented-manifest example (issue 8, defect 6) ------------------------------------

# The line shape of the built-in Object Detection algorithm's example (SageMaker developer guide,
# object-detection.md, "Train with the augmented manifest image format"): the type is spelled with
# an underscore and the metadata holds only the class-map and the type.
AWS_EXAMPLE_LINES = [
    '{"source-ref": "s3://your_bucket/image1.jpg", "bounding-box": {"image_size": [{"width": 500, '
    '"height": 400, "depth": 3}], "annotations": [{"class_id": 0, "left": 111, "top": 134, "width": 61, '
    '"height": 128}, {"class_id": 1, "left": 161, "top": 250, "width": 79, "height": 143}]}, '
    '"bounding-box-metadata": {"class-map": {"0": "dog", "1": "cat"}, "type": "groundtruth/object_detection"}}\n',
    '{"source-ref": "s3://your_bucket/image2.jpg", "bounding-box": {"image_size": [{"width": 400, '
    '"height": 300, "depth": 3}], "annotations": [{"class_id": 1, "left": 100, "top": 120, "width": 43, '
    '"height": 78}]}, "bounding-box-metadata": {"class-map": {"1": "cat"}, "type": "groundtruth/object_detection"}}\n',
]


def test_aws_object_detection_example_validates_and_splits():
    stats = manifest.validate_manifest(AWS_EXAMPLE_LINES, label_attribute=ATTR, source="aws.manifest")
    assert stats.num_lines == 2 and stats.num_boxes == 3
    assert stats.class_map == {0: "dog", 1: "cat"}
    train, valid = io.StringIO(), io.StringIO()
    result = manifest.split_manifest(AWS_EXAMPLE_LINES, label_attribute=ATTR, validation_fraction=0.5,
                                   train_out=train, validation_out=valid)
    assert result.num_training_samples + result.num_validation_samples == 2


@pytest.mark.parametrize("job_type", ["groundtruth/object-detection", "groundtruth/object_detection"])
def test_both_type_spellings_and_minimal_metadata(job_type):
    rec = record(1)
    rec[f"{ATTR}-metadata"] = {"class-map": dict(CLASSES), "type": job_type}
    assert manifest.validate_manifest([line(rec)], label_attribute=ATTR).num_lines == 1


@pytest.mark.parametrize("job_type, why", [
    ("groundtruth/image-classification", "another task type"),
    ("groundtruth/object detection", "neither spelling"),
    (["groundtruth/object_detection"], "not a string"),
])
def test_other_types_are_still_refused(job_type, why):
    rec = record(1)
    rec[f"{ATTR}-metadata"]["type"] = job_type
    err = manifest_error([line(rec)])
    assert f"{ATTR}-metadata.type" in str(err), why
    assert "groundtruth/object_detection" in str(err) and "groundtruth/object-detection" in str(err)


def test_minimal_metadata_still_needs_a_class_map():
    rec = record(1)
    rec[f"{ATTR}-metadata"] = {"type": "groundtruth/object_detection"}
    assert f"{ATTR}-metadata.class-map" in str(manifest_error([line(rec)]))


# -- the one label-attribute rule ---------------------------------------------------------------
LABEL_ATTRIBUTE_CASES = ["bounding-box", "bb", "Boxes2", "a--b", "a" * 127, "a" * 128, "bounding_box", "boxes-metadata",
                         "a-metadata-b", "boxes-ref", "source", "source-ref", "", " ", "-boxes", "boxes-", "b o x"]


@pytest.mark.parametrize("name", LABEL_ATTRIBUTE_CASES)
def test_the_form_the_config_ground_truth_and_the_validator_hold_one_label_attribute_rule(name: str) -> None:
    """Issue 10: the label attribute was checked three ways; now every check is label_attribute_problem."""
    import re
    from datetime import UTC, datetime

    from sagemaker_vision.core import labeling_job
    from sagemaker_vision.core.config import PipelineConfig, RunInfo
    from sagemaker_vision.core.params import param_defaults, param_specs
    from sagemaker_vision.core.validate import ConfigError

    ok = manifest.label_attribute_problem(name) is None
    spec = param_specs()["label_attribute"]  # the trigger form's schema: minLength, maxLength, pattern
    assert spec.pattern is not None and spec.min_length is not None and spec.max_length is not None
    form_ok = spec.min_length <= len(name) <= spec.max_length and re.search(spec.pattern, name) is not None
    assert form_ok == ok, name
    try:
        manifest.check_label_attribute(name)
        validator_ok = True
    except ManifestError as err:
        validator_ok = False
        assert err.problems[0].field == "label_attribute"
    assert validator_ok == ok, name
    try:
        labeling_job.labeling_job_request(
            job_name="shapes-1", input_manifest_uri="s3://gt-b/in.manifest", output_path="s3://gt-b/out/",
            role_arn="arn:aws:iam::123456789012:role/gt", label_attribute=name, labels=["dot"],
            categories_uri="s3://gt-b/c.json", template_uri="s3://gt-b/t.html", region="us-east-1",
            task_description="d",
            workteam_arn="arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/team")
        ground_truth_ok = True
    except ConfigError as err:
        ground_truth_ok = False
        assert err.field == "label_attribute", err
    assert ground_truth_ok == ok, name
    run = RunInfo(run_id="manual__x", run_after=datetime(2026, 11, 29, 12, tzinfo=UTC))
    try:
        PipelineConfig.from_params({**param_defaults(), "bucket": "label-attr-unit", "label_attribute": name},
                                   run=run, region="us-east-1")
        config_ok = True
    except ConfigError as err:
        config_ok = False
        assert err.field == "label_attribute", err
    assert config_ok == ok, name

"""One reader and one parser for every manifest line: linear reading, a line cap, duplicate keys,
numbers and encodings refused with file:line and field. No AWS: the S3 client is a fake whose body
is botocore's own ``StreamingBody``."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
from botocore.response import StreamingBody

from sagemaker_vision.core import converters, manifest_parse, manifest_refs
from sagemaker_vision.core.manifest import split_manifest, validate_manifest
from sagemaker_vision.hooks import s3 as s3io

ATTR = "bb"
CHUNK = 1 << 16  # what s3io reads per call


def record(ref: str = "s3://b/img/a.jpg", **box) -> dict:
    ann = {"class_id": 0, "left": 1, "top": 2, "width": 3, "height": 4, **box}
    return {"source-ref": ref, ATTR: {"image_size": [{"width": 64, "height": 48, "depth": 3}], "annotations": [ann]},
            f"{ATTR}-metadata": {"objects": [{"confidence": 1.0}], "class-map": {"0": "dot"},
                                 "type": "groundtruth/object-detection"}}


def line(rec: dict) -> str:
    return json.dumps(rec, separators=(",", ":"))


# -- the reader: linear work, a cap -----------------------------------------------------------


class Counted(bytes):
    """A chunk that counts the bytes copied out of it by slicing or concatenation."""

    copied = 0

    def __getitem__(self, item):
        out = bytes.__getitem__(self, item)
        if isinstance(item, slice):
            Counted.copied += len(out)
        return out

    def __add__(self, other):
        Counted.copied += len(self) + len(other)
        return bytes.__add__(self, other)

    def __radd__(self, other):
        Counted.copied += len(self) + len(other)
        return bytes.__add__(other, self)


class CountingStream:
    """A raw stream serving ``data`` as Counted chunks; ``served`` counts the bytes handed out."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.served = data, 0, 0
        Counted.copied = 0

    def read(self, amt=None):
        end = len(self.data) if amt is None else self.pos + amt
        chunk = Counted(self.data[self.pos:end])
        self.pos += len(chunk)
        self.served += len(chunk)
        return chunk

    def close(self) -> None:
        pass


class FakeS3:
    """get_object answers with botocore's StreamingBody over a CountingStream."""

    class exceptions:  # noqa: N801 - mirrors the boto3 client attribute
        class NoSuchKey(Exception):
            pass

    def __init__(self, data: bytes) -> None:
        self.stream = CountingStream(data)

    def get_object(self, Bucket, Key):  # noqa: N803 - boto3's parameter names
        return {"Body": StreamingBody(self.stream, len(self.stream.data))}


def test_the_reader_copies_a_16_mb_line_a_bounded_number_of_times():
    # Adding each chunk to the pending text copies it once per later chunk: 256 chunks of 64 KiB
    # make that about 128 times the line. Pieces joined once copy it about twice.
    big = b'{"source-ref":"' + b"x" * (16 << 20) + b'"}'
    stream = CountingStream(big + b"\n" + b"{}\n")
    got = list(manifest_parse.iter_lines(stream, chunk_size=CHUNK, max_line_bytes=32 << 20))
    assert [len(x) for x in got] == [len(big), 2] and got[0] == big
    assert Counted.copied <= 2 * len(big), f"{Counted.copied} bytes copied for a {len(big)}-byte line"


def test_the_s3_reader_refuses_a_line_past_the_cap_having_read_at_most_one_chunk_more():
    uri = "s3://bkt/labels/huge.manifest"
    s3 = FakeS3(line(record()).encode() + b"\n" + b'{"source-ref":"' + b"y" * (16 << 20) + b'"}\n')
    with pytest.raises(manifest_parse.ManifestError) as err:
        list(s3io.iter_lines(s3, uri))
    text = str(err.value)
    assert f"{uri}:2: line is over the cap of {manifest_parse.MAX_LINE_BYTES} bytes" in text, text
    assert "100000 characters per manifest object" in text
    assert s3.stream.served <= manifest_parse.MAX_LINE_BYTES + 2 * CHUNK, s3.stream.served
    assert Counted.copied <= 2 * (manifest_parse.MAX_LINE_BYTES + 2 * CHUNK), Counted.copied


def test_the_s3_reader_gives_every_line_with_its_newline_across_chunk_boundaries():
    lines = [line(record(f"s3://b/img/{i}.jpg")) for i in range(3000)]  # ~ 600 KB: many chunk cuts
    body = ("\n".join(lines) + "\n").encode()
    got = list(s3io.iter_lines(FakeS3(body), "s3://bkt/m.manifest"))
    assert got == [x.encode() + b"\n" for x in lines]
    assert Counted.copied <= 2 * len(body)
    # No newline at the end: the last line still comes out, without one.
    assert list(s3io.iter_lines(FakeS3(b"{}\n{}"), "s3://bkt/m.manifest")) == [b"{}\n", b"{}"]


def test_a_line_within_the_byte_cap_but_over_groundtruths_character_limit_is_refused():
    long_ref = "s3://b/img/" + "z" * manifest_parse.MAX_LINE_CHARS + ".jpg"
    text = line(record(long_ref))
    with pytest.raises(manifest_parse.ManifestError) as err:
        validate_manifest([line(record()), text], label_attribute=ATTR, source="m.manifest")
    assert f"m.manifest:2: line is {len(text)} characters, over Ground Truth's 100000" in str(err.value)


# -- duplicate keys: refused at any depth, naming file:line and the key ----------------------


@pytest.mark.parametrize(("raw", "field"), [
    ('{"source-ref":"s3://b/img/a.jpg","source-ref":"s3://b/img/evil.jpg"}', "source-ref"),
    ('{"bb":{"annotations":[{"class_id":0,"class_id":9}]}}', "bb.annotations[0].class_id"),
    ('{"bb-metadata":{"class-map":{"0":"dot","0":"cat"}}}', 'bb-metadata.class-map.0'),
])
def test_a_duplicate_key_at_any_depth_is_refused_naming_file_line_and_key(raw, field):
    with pytest.raises(manifest_parse.LineError) as err:
        manifest_parse.parse_line(raw)
    assert (err.value.field, "duplicate key" in err.value.message) == (field, True)


def test_a_manifest_with_a_duplicate_key_is_neither_validated_nor_split():
    # Python's json keeps the last of two values, so this line validates with left=1; a reader that
    # keeps the first (many do) gets left=9000, outside the image, from the raw line as published.
    bad = line(record()).replace('"left":1,', '"left":9000,"left":1,')
    lines = [line(record("s3://b/img/0.jpg")), bad, line(record("s3://b/img/2.jpg"))]
    for run in (lambda: validate_manifest(lines, label_attribute=ATTR, source="s3://b/in.manifest"),
                lambda: split_manifest(lines, label_attribute=ATTR, validation_fraction=0.5,
                                              train_out=io.StringIO(), validation_out=io.StringIO(),
                                              source="s3://b/in.manifest")):
        with pytest.raises(manifest_parse.ManifestError) as err:
            run()
        assert "s3://b/in.manifest:2: bb.annotations[0].left: duplicate key" in str(err.value), str(err.value)


def test_rewriting_an_imported_manifest_refuses_a_duplicate_key():
    bad = line(record("s3://old/a.jpg")).replace('{"source-ref":', '{"source-ref":"s3://old/b.jpg","source-ref":')
    with pytest.raises(manifest_parse.ManifestError) as err:
        list(manifest_refs.rewrite_source_refs([bad], old_prefix="s3://old/", new_prefix="s3://new/",
                                               source="imp.manifest"))
    assert "imp.manifest:1: source-ref: duplicate key" in str(err.value)


# -- numbers and encodings: file, line and field, never a raw exception ----------------------

HUGE = "9" * 400


def test_the_validator_names_file_line_and_field_of_a_400_digit_number():
    bad = line(record()).replace('"left":1', f'"left":{HUGE}')
    with pytest.raises(manifest_parse.ManifestError) as err:
        validate_manifest([line(record("s3://b/img/0.jpg")), bad], label_attribute=ATTR, source="m.manifest")
    assert "m.manifest:2: bb.annotations[0].left: integer of 400 digits is outside the exact range" in str(err.value)


def test_the_validator_names_file_line_of_invalid_utf8():
    bad = line(record()).encode().replace(b"a.jpg", b"\xff.jpg")
    with pytest.raises(manifest_parse.ManifestError) as err:
        validate_manifest([line(record("s3://b/img/0.jpg")).encode(), bad], label_attribute=ATTR,
                                 source="m.manifest")
    assert "m.manifest:2: not UTF-8: invalid start byte at byte" in str(err.value)


@pytest.mark.parametrize(("raw", "field", "words"), [
    ('{"a":{"b":[1e400]}}', "a.b[0]", "overflows a 64-bit float"),
    ('{"a":-Infinity}', "a", "not a finite number"),
    ('{"a":12345678901234567}', "a", "outside the exact range"),
    ('{"a":"\\udc80"}', "a", "lone surrogate"),
    ('[' * 20_000 + ']' * 20_000, "", "nested too deeply"),
])
def test_numbers_and_text_other_parsers_would_read_otherwise_are_refused_with_the_field(raw, field, words):
    with pytest.raises(manifest_parse.LineError) as err:
        manifest_parse.parse_line(raw)
    assert err.value.field == field and words in err.value.message, (err.value.field, err.value.message)


def test_long_digit_runs_inside_strings_and_exact_numbers_are_fine():
    rec = {"source-ref": "s3://b/img/20261201123456789012.jpg", "n": 2**53 - 1, "f": 1e300, "e": "\U0001f600"}
    assert manifest_parse.parse_line(json.dumps(rec)) == rec
    assert manifest_parse.parse_line(json.dumps(rec, ensure_ascii=False).encode()) == rec


def test_the_s3_readers_callers_get_file_line_errors_not_raw_exceptions():
    uri = "s3://bkt/labels/m.manifest"
    data = line(record()).encode() + b"\n" + b'{"source-ref":"s3://b/\xfe.jpg"}\n'
    with pytest.raises(manifest_parse.ManifestError) as err:
        validate_manifest(s3io.iter_lines(FakeS3(data), uri), label_attribute=ATTR, source=uri)
    assert f"{uri}:2: not UTF-8" in str(err.value)
    with pytest.raises(manifest_parse.ManifestError) as err:
        for lineno, raw in enumerate(s3io.iter_lines(FakeS3(data), uri), 1):
            manifest_parse.load_line(raw, source=uri, lineno=lineno)
    assert f"{uri}:2: not UTF-8" in str(err.value)


# -- the converters: numbers, encodings and image paths ----------------------------------------


def coco_doc(file_name: str = "a.jpg", width: object = 64, bbox: list | None = None) -> dict:
    return {"categories": [{"id": 1, "name": "dot"}],
            "images": [{"id": 7, "file_name": file_name, "width": width, "height": 48}],
            "annotations": [{"id": 70, "image_id": 7, "category_id": 1, "bbox": bbox or [1, 2, 3, 4]}]}


def ls_task(image: str = "s3://bkt/raw/a.jpg", x: object = 10, ow: object = 64) -> dict:
    result = {"type": "rectanglelabels", "original_width": ow, "original_height": 48,
              "value": {"x": x, "y": 10, "width": 20, "height": 20, "rectanglelabels": ["dot"]}}
    return {"id": 1, "data": {"image": image}, "annotations": [{"id": 11, "result": [result]}]}


def coco(doc, **kwargs):
    return converters.from_coco(doc, label_attribute=ATTR, image_prefix="s3://bkt/raw/", **kwargs)


def studio(export, **kwargs):
    return converters.from_label_studio(export, label_attribute=ATTR, class_names=["dot"], **kwargs)


@pytest.mark.parametrize("where", ["width", "bbox"])
def test_the_coco_converter_names_the_field_of_a_400_digit_number(where):
    doc = coco_doc(width=int(HUGE)) if where == "width" else coco_doc(bbox=[int(HUGE), 2, 3, 4])
    with pytest.raises(manifest_parse.ManifestError) as err:  # a dict someone else parsed: no OverflowError
        coco(doc)
    field = "image 7" if where == "width" else "annotation 70.bbox"
    assert f"<coco>: {field}: " in str(err.value), str(err.value)
    # The file itself: the strict parser names the file, the line and the JSON path.
    text = json.dumps(coco_doc(), indent=1).replace('"width": 64', f'"width": {HUGE}')
    with pytest.raises(manifest_parse.ManifestError) as err:
        coco(text.encode(), source="s3://bkt/coco.json")
    assert "s3://bkt/coco.json: images[0].width: integer of 400 digits" in str(err.value), str(err.value)


def test_the_coco_converter_names_file_and_line_of_invalid_utf8():
    data = json.dumps(coco_doc(), indent=1).encode().replace(b'"a.jpg"', b'"\xc3(.jpg"')
    with pytest.raises(manifest_parse.ManifestError) as err:
        coco(data, source="s3://bkt/coco.json")
    line = data[: data.index(b"\xc3")].count(b"\n") + 1
    assert f"s3://bkt/coco.json:{line}: not UTF-8: invalid continuation byte" in str(err.value), str(err.value)
    # A lone surrogate (from a \\udcxx escape) is no file name either.
    with pytest.raises(manifest_parse.ManifestError, match="lone surrogate"):
        coco(b'{"images": [{"id": 1, "file_name": "\\udcff.jpg"}]}', source="c.json")


@pytest.mark.parametrize("where", ["x", "original_width"])
def test_the_label_studio_converter_names_the_field_of_a_400_digit_number(where):
    task = ls_task(x=int(HUGE)) if where == "x" else ls_task(ow=int(HUGE))
    with pytest.raises(manifest_parse.ManifestError) as err:
        studio([task])
    field = "task 1.annotations[id=11].result[0]" + (".value.x/width" if where == "x" else "")
    assert f"<label-studio export>: {field}: " in str(err.value), str(err.value)
    text = json.dumps([ls_task()]).replace('"x": 10', f'"x": {HUGE}')
    with pytest.raises(manifest_parse.ManifestError) as err:
        studio(text, source="export.json")
    assert "export.json:1: [0].annotations[0].result[0].value.x: integer of 400 digits" in str(err.value)


def test_the_label_studio_converter_names_file_and_line_of_invalid_utf8():
    data = json.dumps([ls_task()]).encode().replace(b"a.jpg", b"\xff.jpg")
    with pytest.raises(manifest_parse.ManifestError) as err:
        studio(data, source="export.json")
    assert "export.json:1: not UTF-8: invalid start byte at byte" in str(err.value)


ESCAPES = ["../../other/x.jpg", "sub/../../x.jpg", "/etc/x.jpg", "C:/x.jpg", "..\\..\\x.jpg", "a\\b.jpg",
           "%2e%2e/x.jpg", "%2E%2e%2fx.jpg", "sub%2f..%2fx.jpg", "%252e%252e/x.jpg", "a//b.jpg", "sub/", "",
           "./../x.jpg", "sub/./x.jpg", "a\nb.jpg", "k" * 1100 + ".jpg",  # an S3 key over 1,024 bytes
           # The sync's rule too (validate.UNSAFE_KEY_CHAR_RE): a C1 control, the line and paragraph separators.
           "nel\x85.jpg", "csi\x9b.jpg", "line\u2028sep.jpg", "para\u2029sep.jpg"]


@pytest.mark.parametrize("name", ESCAPES)
def test_a_coco_file_name_that_could_leave_the_images_prefix_is_refused(name):
    with pytest.raises(manifest_parse.ManifestError) as err:
        coco(coco_doc(file_name=name))
    assert "<coco>: image 7.file_name: " in str(err.value), str(err.value)


@pytest.mark.parametrize("name", ["tab\there.jpg", "del\x7f.jpg", "nel\x85.jpg", "line\u2028sep.jpg",
                                  "k" * 1100 + ".jpg", "\udcff.jpg", "fine/é ü.jpg", "fine\u00a0nbsp.jpg"])
def test_the_converters_and_the_sync_refuse_the_same_names(name):
    """One rule for "a name S3 or a manifest cannot carry": what the sync skips, the converters refuse."""
    from sagemaker_vision.core import s3_sync

    refused_by_sync = s3_sync.key_name_problem("raw/" + name) is not None
    try:
        coco(coco_doc(file_name=name))
        refused_by_converter = False
    except manifest_parse.ManifestError:
        refused_by_converter = True
    assert refused_by_sync == refused_by_converter, (name, s3_sync.key_name_problem("raw/" + name))


def test_coco_file_names_inside_the_prefix_are_kept():
    refs = [r["source-ref"] for r in coco(coco_doc(file_name="sub/dir/a b%20c.jpg"))]
    assert refs == ["s3://bkt/raw/sub/dir/a b%20c.jpg"]
    assert [r["source-ref"] for r in coco(coco_doc(file_name="./a.jpg"))] == ["s3://bkt/raw/a.jpg"]


@pytest.mark.parametrize("image", [
    "s3://bkt/raw/../secrets/x.jpg", "s3://bkt/raw/%2e%2e/x.jpg", "s3://bkt/raw//x.jpg",
    "s3://bkt/raw/a\\..\\x.jpg", "https://host/data/%2e%2e", "/data/upload/1/..%5cx.jpg",
])
def test_a_label_studio_image_that_could_leave_its_prefix_is_refused(image):
    with pytest.raises(manifest_parse.ManifestError) as err:
        studio([ls_task(image=image)], s3_prefix="s3://bkt/raw/")
    assert "<label-studio export>: task 1: data.image" in str(err.value), str(err.value)


def test_with_images_prefix_a_label_studio_image_elsewhere_is_refused():
    with pytest.raises(manifest_parse.ManifestError, match="outside the images prefix s3://bkt/raw/"):
        studio([ls_task(image="s3://bkt/private/x.jpg")], images_prefix="s3://bkt/raw/")
    refs = [r["source-ref"] for r in studio([ls_task()], images_prefix="s3://bkt/raw/")]
    assert refs == ["s3://bkt/raw/a.jpg"]


# -- the import backend: its manifest goes through the same parser ----------------------------


@pytest.fixture
def synced(monkeypatch, tmp_path):
    """A moto bucket with one synced image, and the config of a run importing tmp_path/import.manifest."""
    import boto3
    from moto import mock_aws

    from sagemaker_vision.core.config import PipelineConfig, RunInfo
    from sagemaker_vision.core.params import param_defaults

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    manifest = tmp_path / "import.manifest"
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="parsing-unit")
        run = RunInfo(run_id="manual__x", run_after=datetime(2026, 11, 29, 12, tzinfo=UTC))
        cfg = PipelineConfig.from_params({**param_defaults(), "bucket": "parsing-unit",
                                          "import_manifest": str(manifest)}, run=run, region="us-east-1")
        s3.put_object(Bucket="parsing-unit", Key=cfg.raw_prefix.split("/", 3)[3] + "a.jpg", Body=b"x")
        yield cfg, s3, manifest


@pytest.mark.parametrize(("body", "expected"), [
    (b'\xff{"source-ref": "s3://old/a.jpg"}\n', ":2: not UTF-8: invalid start byte at byte 0"),
    ('{"source-ref": "s3://old/a.jpg", "n": %s}\n' % HUGE, ":2: n: integer of 400 digits"),  # noqa: UP031
    (b'{"source-ref": "s3://old/../../etc/a.jpg"}\n', ":2: source-ref: the path under s3://old/ has a '.' or '..'"),
])
def test_the_import_manifest_errors_name_its_file_line_and_field(synced, body, expected):
    from sagemaker_vision.pipeline import label as labeling

    cfg, s3, manifest = synced
    first = line(record("s3://old/a.jpg")).encode() + b"\n"
    manifest.write_bytes(first + (body if isinstance(body, bytes) else body.encode()))
    with pytest.raises(manifest_parse.ManifestError) as err:
        labeling.import_labels(cfg, s3)
    assert f"{manifest}{expected}" in str(err.value), str(err.value)


def test_label_studio_publish_refuses_a_task_edited_to_point_outside_the_imported_images():
    # Anyone holding the server's token can edit a task's data; the manifest must still name only
    # images under what the operator imported.
    from unittest import mock

    from sagemaker_vision.operators.label_studio import LabelStudioLabelingOperator

    op = LabelStudioLabelingOperator(task_id="ls", project_title="p", labels=["dot"], label_attribute=ATTR,
                                     output_manifest_uri="s3://bkt/labels/ls.manifest",
                                     image_uris=["s3://bkt/raw/dt=1/a.jpg", "s3://bkt/raw/dt=1/b.jpg"])
    edited = ls_task()
    edited["data"] = {"image": "https://ls/presigned", "s3_uri": "s3://bkt/private/secrets.jpg"}
    op.__dict__["hook"] = mock.Mock(export=mock.Mock(return_value=[edited]))
    op.__dict__["s3"] = mock.Mock()
    with pytest.raises(manifest_parse.ManifestError) as err:
        op._publish(7)
    assert ("Label Studio project 7 export: task 1: data.image 's3://bkt/private/secrets.jpg' is outside the "
            "images prefix s3://bkt/raw/dt=1/") in str(err.value), str(err.value)
    op.__dict__["s3"].put_object.assert_not_called()


def test_the_load_tests_manifest_payloads_name_a_bad_line_by_file_and_line():
    from sagemaker_vision.hooks.load_test import load_payloads

    uri = "s3://bkt/runs/p/manifests/validation.manifest"
    data = line(record()).encode() + b"\n" + b'{"source-ref":"s3://bkt/img/\xe9.jpg"}\n'
    with pytest.raises(manifest_parse.ManifestError) as err:
        load_payloads(uri, s3_client=FakeS3(data))
    assert f"{uri}:2: not UTF-8" in str(err.value)

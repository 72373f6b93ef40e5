"""core.manifest.split_manifests: several manifests validated and split in one pass, two when ids are gapped."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sagemaker_vision.core import manifest
from sagemaker_vision.core.manifest_parse import ManifestError

from .test_manifest import ATTR, gapped_lines, line, many, record

SEED = "run-7"


class Opened:
    """``open_lines`` for one part that counts how often it is read."""

    def __init__(self, lines: list[str]) -> None:
        self.lines, self.reads = lines, 0

    def __call__(self) -> Iterator[bytes]:
        self.reads += 1
        return (x.encode() for x in self.lines)


def split_many(parts: list[tuple[str, Callable[[], Any]]], fraction: float = 0.3) -> tuple[Any, list[str], list[str]]:
    with tempfile.TemporaryFile("w+") as train, tempfile.TemporaryFile("w+") as val:
        result = manifest.split_manifests(parts, label_attribute=ATTR, validation_fraction=fraction,
                                          train_out=train, validation_out=val, seed=SEED)
        train.seek(0)
        val.seek(0)
        return result, train.readlines(), val.readlines()


def two_pass(lines: list[str], fraction: float = 0.3) -> tuple[Any, list[str], list[str]]:
    """What prepare_manifests did before: validate for the class map, then split with it."""
    stats = manifest.validate_manifest(lines, label_attribute=ATTR)
    train, val = io.StringIO(), io.StringIO()
    result = manifest.split_manifest(lines, label_attribute=ATTR, validation_fraction=fraction, train_out=train,
                                     validation_out=val, seed=SEED, class_map=stats.class_map)
    return result, train.getvalue().splitlines(keepends=True), val.getvalue().splitlines(keepends=True)


def test_contiguous_ids_are_read_once_and_split_as_validate_then_split_did() -> None:
    first, second = Opened(many(30)), Opened(many(25, start=30))
    result, train, val = split_many([("a.manifest", first), ("b.manifest", second)])
    expected, expected_train, expected_val = two_pass(first.lines + second.lines)
    assert (first.reads, second.reads) == (1, 1)
    assert (train, val) == (expected_train, expected_val)
    assert result == expected and result.num_training_samples + result.num_validation_samples == 55


def test_gapped_ids_take_a_second_pass_that_writes_them_remapped() -> None:
    lines = gapped_lines()
    first, second = Opened(lines[:15]), Opened(lines[15:])
    result, train, val = split_many([("a.manifest", first), ("b.manifest", second)])
    expected, expected_train, expected_val = two_pass(lines)
    assert (first.reads, second.reads) == (2, 2)
    assert result.id_remap == {0: 0, 3: 1} and result == expected
    assert (train, val) == (expected_train, expected_val)  # nothing of the first pass is left


def test_each_problem_names_its_own_file_and_line() -> None:
    bad = [line(record(100)), line(record(0)), '{"source-ref": 3}\n']  # img_0 is also on a.manifest:1
    with pytest.raises(ManifestError) as info:
        split_many([("a.manifest", Opened(many(3))), ("b.manifest", Opened(bad))])
    text = str(info.value)
    assert "b.manifest:2: source-ref: duplicate 's3://bucket/images/img_0.jpg'" in text
    assert "b.manifest:3: source-ref" in text and "a.manifest:" not in text


def test_a_class_id_naming_another_class_in_another_file_names_both() -> None:
    other = [line(record(50, class_map={"0": "circle", "1": "dog", "2": "triangle"}))]
    with pytest.raises(ManifestError) as info:
        split_many([("a.manifest", Opened(many(3))), ("b.manifest", Opened(other))])
    assert "b.manifest:1: bounding-box-metadata.class-map[\"1\"]: id 1 is 'dog' here but 'square' on line 1 of " \
           "a.manifest" in str(info.value)


def test_an_empty_file_among_others_is_an_error_naming_it() -> None:
    with pytest.raises(ManifestError, match=r"b\.manifest: the manifest is empty"):
        split_many([("a.manifest", Opened(many(5))), ("b.manifest", Opened(["\n"]))])


def test_outputs_must_be_seekable_and_parts_given() -> None:
    class Stream(io.StringIO):
        def seekable(self) -> bool:
            return False

    with pytest.raises(ValueError, match="seekable"):
        manifest.split_manifests([("a", Opened(many(3)))], label_attribute=ATTR, validation_fraction=0.2,
                                 train_out=Stream(), validation_out=io.StringIO())
    with pytest.raises(ValueError, match="parts"):
        manifest.split_manifests([], label_attribute=ATTR, validation_fraction=0.2, train_out=io.StringIO(),
                                 validation_out=io.StringIO())

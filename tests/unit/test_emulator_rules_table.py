"""The rules table in local_aws/README.md names real tests, so it cannot silently rot.

Every row of the table states an AWS rule, its source and the test proving the emulator enforces
it. A renamed or deleted test, or a row with no test at all, fails here.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "local_aws" / "README.md"
HEADING = "## Rules the emulator enforces"
REF = re.compile(r"`((?:tests/)?[\w/]+\.py)(?:::([\w:]+))?(?:\[[^\]]*\])?`")


def _table_rows() -> list[tuple[int, list[str]]]:
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(HEADING))
    rows = []
    for number, line in enumerate(lines[start + 1:], start=start + 2):
        if line.startswith("## "):
            break
        if line.startswith("|") and not set(line) <= set("|- ") and not line.startswith("| rule |"):
            rows.append((number, [cell.strip() for cell in line.strip().strip("|").split(" | ")]))
    return rows


@cache
def _functions(path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_text())
    return frozenset(n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))


def _resolve(ref: str) -> Path:
    path = ref if ref.startswith("tests/") else f"tests/{ref}"
    return ROOT / path


def test_the_table_has_rows_for_every_area():
    rows = _table_rows()
    assert len(rows) >= 25, len(rows)
    text = README.read_text()
    for area in ("### Every request", "### Training jobs", "### Endpoints", "### Ground Truth", "### S3"):
        assert area in text, area


@pytest.mark.parametrize(("line", "cells"), _table_rows(), ids=lambda v: str(v) if isinstance(v, int) else "")
def test_each_row_cites_a_source_and_names_existing_tests(line, cells):
    assert len(cells) == 3, f"local_aws/README.md:{line}: expected | rule | source | test |, got {cells}"
    rule, source, tests = cells
    assert rule and source, f"local_aws/README.md:{line}: empty rule or source"
    tokens = re.findall(r"`([^`]+)`", tests)
    named = [t for t in tokens if t.startswith("::") or REF.fullmatch(f"`{t}`")]
    assert named or tests.startswith("same test"), f"local_aws/README.md:{line}: names no test: {tests!r}"
    current: Path | None = None
    for token in named:
        if token.startswith("::"):  # "`a.py::x`, `::y`": y is in the file named before it
            file_ref, name = None, token[2:]
        else:
            file_ref, name = REF.fullmatch(f"`{token}`").groups()
            current = _resolve(file_ref)
            assert current.is_file(), f"local_aws/README.md:{line}: no file {file_ref}"
        if name:
            assert current is not None, f"local_aws/README.md:{line}: {token} follows no file"
            name = re.sub(r"\[.*\]$", "", name).split("::")[-1]
            assert name in _functions(current), f"local_aws/README.md:{line}: no test {name} in {current.name}"

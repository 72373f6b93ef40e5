"""pytest side of the contract tests: capture for the whole session, report and verdict at its end.

Imported by ``tests/conftest.py``. Set ``SV_CONTRACT=0`` to switch it off, ``SV_CONTRACT_DIR`` to
write somewhere other than ``test-artifacts/``.

* Every AWS request of the session (this process and its Python children) is captured at the
  client and checked with ``local_aws.strict`` (see ``capture.py``).
* At the end, ``test-artifacts/contract-report.txt`` (and ``.json``) lists each operation of
  ``operations.OPERATIONS`` with the times captured from package code and its violations, and the
  report is printed.
* The run FAILS if a package call broke the service model, or package code called an operation
  that is not in ``OPERATIONS`` -- in any run, even a subset.
* Gaps (listed operations never captured, not in ``GAPS``; and ``GAPS`` entries that were
  captured after all) fail only a run that collected every test module under
  ``tests/integration`` with nothing deselected (no ``-k``/``-m``/node ids), nothing there
  skipped (e.g. Label Studio missing) and that was not stopped early (``-x``): in a subset run an
  uncaptured operation says nothing. Override with
  ``SV_CONTRACT_GAPS=enforce`` or ``=report``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from . import capture as capture_mod
from .operations import GAPS, OPERATIONS

ROOT = capture_mod.ROOT
ARTIFACTS = Path(os.environ.get("SV_CONTRACT_DIR") or ROOT / "test-artifacts")
SITE = Path(__file__).resolve().parent / "site"
INTEGRATION = ROOT / "tests" / "integration"

_state: dict[str, Any] = {"deselected": 0, "skipped": 0, "modules": set(), "sink": None, "verdict": None}


def _enabled() -> bool:
    return os.environ.get("SV_CONTRACT", "1") != "0"


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def pytest_configure(config: pytest.Config) -> None:
    if not _enabled() or hasattr(config, "workerinput"):
        return
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("contract-capture-*.jsonl"):  # of sessions that have ended
        if not _alive(old.stem.rpartition("-")[2]):
            old.unlink(missing_ok=True)
    sink = ARTIFACTS / f"contract-capture-{os.getpid()}.jsonl"
    sink.unlink(missing_ok=True)
    _state["sink"] = sink
    os.environ[capture_mod.ENV] = str(sink)
    os.environ["SV_CONTRACT_PARENT_PID"] = str(os.getpid())
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SITE), os.environ.get("PYTHONPATH")) if p)
    capture_mod.install(str(sink))


def pytest_deselected(items: list[pytest.Item]) -> None:
    _state["deselected"] += sum(1 for item in items if INTEGRATION in Path(str(item.path)).parents)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "tests/integration/" in report.nodeid.replace("\\", "/"):
        _state["skipped"] += 1


def pytest_collection_finish(session: pytest.Session) -> None:
    _state["modules"] = {Path(str(item.path)) for item in session.items}


def _full_run(session: pytest.Session) -> bool:
    wanted = {p for p in INTEGRATION.glob("test_*.py")}
    return wanted <= _state["modules"] and _state["deselected"] == 0 and _state["skipped"] == 0 \
        and not session.shouldstop and not session.shouldfail


def build_report(merged: capture_mod.Capture, enforce_gaps: bool) -> dict[str, Any]:
    package = {(s, o): n for (origin, s, o), n in merged.counts.items() if origin == "package"}
    bad = {(s, o): v for (origin, s, o), v in merged.violations.items() if origin == "package" and v}
    rows = []
    for name in sorted(OPERATIONS):
        service, operation = name.split(".", 1)
        count = package.get((service, operation), 0)
        violations = bad.get((service, operation), [])
        status = "VIOLATES" if violations else "checked" if count else ("gap (accepted)" if name in GAPS else "GAP")
        callers = merged.callers.get(("package", service, operation), [])
        rows.append({"operation": name, "captured": count, "violations": violations, "status": status,
                     "callers": callers})
    listed = {tuple(n.split(".", 1)) for n in OPERATIONS}
    unlisted = sorted(f"{s}.{o}" for (s, o) in set(package) | set(bad) if (s, o) not in listed)
    gaps = [r["operation"] for r in rows if r["status"] == "GAP"]
    stale_gaps = sorted(g for g in GAPS if package.get(tuple(g.split(".", 1)), 0))
    test_calls = {(s, o): n for (origin, s, o), n in merged.counts.items() if origin == "test"}
    failures = [f"{r['operation']}: {v}" for r in rows for v in r["violations"]]
    failures += [f"{s}.{o}: {v}" for (s, o), vs in bad.items() if f"{s}.{o}" in unlisted for v in vs]
    for name in unlisted:
        callers = ", ".join(merged.callers.get(("package", *name.split(".", 1)), []))
        failures.append(f"{name}: called by package code ({callers}) but missing from tests/contract/operations.py")
    if enforce_gaps:
        failures += [f"{name}: never captured (a gap); exercise it in a test or list it in GAPS" for name in gaps]
        failures += [f"{name}: listed in GAPS but captured; remove it from GAPS" for name in stale_gaps]
    return {"rows": rows, "unlisted": unlisted, "gaps": gaps, "stale_gaps": stale_gaps,
            "gaps_enforced": enforce_gaps, "failures": failures,
            "test_calls": sum(test_calls.values()), "test_operations": len(test_calls)}


def render(report: dict[str, Any]) -> str:
    lines = ["AWS contract: every request captured at the client, checked with local_aws.strict",
             f"{'operation':<52}{'captured':>9}  status"]
    for row in report["rows"]:
        lines.append(f"{row['operation']:<52}{row['captured']:>9}  {row['status']}")
        lines.extend(f"    ! {v}" for v in row["violations"])
    checked = sum(1 for r in report["rows"] if r["status"] == "checked")
    lines.append(f"{checked}/{len(report['rows'])} operations checked; gaps: {', '.join(report['gaps']) or 'none'}"
                 f" ({'enforced' if report['gaps_enforced'] else 'reported only: not a full integration run'})")
    if report["unlisted"]:
        lines.append("captured from package code but not in operations.py: " + ", ".join(report["unlisted"]))
    if report["stale_gaps"]:
        lines.append("listed in GAPS but captured: " + ", ".join(report["stale_gaps"]))
    lines.append(f"test-code calls (setup/assertions, not part of the contract): {report['test_calls']} "
                 f"over {report['test_operations']} operations")
    lines.extend(f"FAIL {f}" for f in report["failures"])
    return "\n".join(lines)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    sink = _state["sink"]
    active = capture_mod.active()
    if sink is None or active is None:
        return
    active.flush()
    merged = capture_mod.Capture()
    merged.merge_file(sink)
    if not merged.counts and not merged.violations:
        return  # nothing called AWS (e.g. a unit-test-only run): no report
    mode = os.environ.get("SV_CONTRACT_GAPS", "auto")
    enforce = mode == "enforce" or (mode == "auto" and _full_run(session))
    report = build_report(merged, enforce)
    text = render(report)
    (ARTIFACTS / "contract-report.txt").write_text(text + "\n", encoding="utf-8")
    (ARTIFACTS / "contract-report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    _state["verdict"] = text
    if report["failures"] and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _state["verdict"]:
        terminalreporter.write_sep("=", "AWS contract report (test-artifacts/contract-report.txt)")
        terminalreporter.write_line(_state["verdict"])

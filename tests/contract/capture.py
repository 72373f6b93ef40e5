"""Capture every AWS request at the client and check it with the strict walk (local_aws.strict).

The hook is ``botocore.validate.ParamValidationDecorator.serialize_to_request``: botocore's and
aiobotocore's clients both call it once per API call (after ``provide-client-params`` and
``before-parameter-build`` handlers, i.e. with the parameters that are serialized and sent),
whoever built the client (boto3, the provider's hooks, paginators, waiters, S3 transfers).
Clients built with ``parameter_validation=False`` bypass it; the package never builds one.

Each call is attributed by its stack: the innermost frame in ``plugins/``, ``dags/`` or the
amazon provider (which calls AWS on the package's behalf) makes it a *package* call; one in
``tests/`` a *test* call (setup and assertions, not part of the contract); anything else
(e.g. the emulator itself) is *other*. Only package calls count for the contract.

Cheap: one strict walk (~10 us for InvokeEndpoint) and a stack walk with a per-file cache per
call; counts are aggregated in memory. Child processes (``airflow dags test``, the load
engine's workers) load this file through ``tests/contract/site/sitecustomize.py`` when
``SV_CONTRACT_CAPTURE`` names a JSONL file, and append their aggregates to it (every 200 calls,
on every new violation and at exit); the session merges them at the end.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ENV = "SV_CONTRACT_CAPTURE"
MAX_SAMPLES = 3

_PACKAGE_DIRS = (str(ROOT / "plugins") + os.sep, str(ROOT / "dags") + os.sep)
_PROVIDER = os.sep + os.path.join("airflow", "providers", "amazon") + os.sep
_TESTS = str(ROOT / "tests") + os.sep
_SELF = str(Path(__file__).resolve())


class Capture:
    """Aggregated calls: (origin, service, operation) -> count, plus violation samples."""

    def __init__(self, sink: str | None = None) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.violations: dict[tuple[str, str, str], list[str]] = {}
        self.callers: dict[tuple[str, str, str], list[str]] = {}
        self.sink = sink
        self._since_flush = 0
        self._origins: dict[str, str | None] = {}

    # -- recording ------------------------------------------------------------------------
    def origin(self) -> tuple[str, str | None]:
        """(package | test | other, ``path:line`` of the innermost package or test frame).

        A provider frame makes the call a package call; the location is then the package frame
        that called the provider, when there is one.
        """
        frame = sys._getframe(2)
        cache = self._origins
        found: tuple[str, str | None] | None = None
        while frame is not None:
            filename = frame.f_code.co_filename
            kind = cache.get(filename, "?")
            if kind == "?":
                if filename.startswith(_PACKAGE_DIRS):
                    kind = "package"
                elif _PROVIDER in filename:
                    kind = "provider"
                elif filename.startswith(_TESTS) and filename != _SELF:
                    kind = "test"
                else:
                    kind = None
                cache[filename] = kind
            if kind == "provider":
                if found is None:
                    found = ("package", filename[filename.find(_PROVIDER) + 1:] + f":{frame.f_lineno}")
            elif kind is not None:
                if found is not None and kind == "test":
                    return found  # a test drove the provider directly
                return ("package" if found else kind), f"{filename[len(str(ROOT)) + 1:]}:{frame.f_lineno}"
            frame = frame.f_back
        return found or ("other", None)

    def record(self, service: str, operation: str, params: Any, origin: str, where: str | None = None) -> None:
        strict = _strict()
        try:
            found = strict.violations(service, operation, params or {})
        except Exception as exc:  # noqa: BLE001 - a capture bug must not break the call
            found = []
            message = f"strict walk crashed: {exc!r}"
        else:
            message = strict.message(found) if found else None
        if message and not found and origin != "package":
            message = None
        key = (origin, service, operation)
        flush = False
        with self.lock:
            self.counts[key] += 1
            self._since_flush += 1
            if where is not None:
                callers = self.callers.setdefault(key, [])
                if where not in callers and len(callers) < MAX_SAMPLES:
                    callers.append(where)
            if message:
                if where is not None:
                    message = f"{message} [from {where}]"
                samples = self.violations.setdefault(key, [])
                if message not in samples and len(samples) < MAX_SAMPLES:
                    samples.append(message)
                    flush = True
            flush = flush or self._since_flush >= 200
        if flush and self.sink:
            self.flush()

    def forget(self) -> None:
        self.lock = threading.Lock()
        self.counts, self.violations, self.callers, self._since_flush = Counter(), {}, {}, 0

    # -- cross-process --------------------------------------------------------------------
    def flush(self) -> None:
        """Append this process's aggregates since the last flush to the JSONL sink."""
        with self.lock:
            counts, self.counts = self.counts, Counter()
            violations, self.violations = self.violations, {}
            callers, self.callers = self.callers, {}
            self._since_flush = 0
        lines = [json.dumps({"pid": os.getpid(), "origin": o, "service": s, "operation": op, "count": n,
                             "violations": violations.get((o, s, op), []), "callers": callers.get((o, s, op), [])})
                 for (o, s, op), n in counts.items()]
        lines += [json.dumps({"pid": os.getpid(), "origin": o, "service": s, "operation": op, "count": 0,
                              "violations": v}) for (o, s, op), v in violations.items() if (o, s, op) not in counts]
        if lines and self.sink:
            with open(self.sink, "a", encoding="utf-8") as handle:  # one write per flush, O_APPEND
                handle.write("\n".join(lines) + "\n")

    def merge_file(self, path: str | Path) -> None:
        """Add the aggregates child processes appended to ``path``."""
        path = Path(path)
        if not path.exists():
            return
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:  # a child killed mid-write: its other lines still count
                continue
            key = (row["origin"], row["service"], row["operation"])
            self.counts[key] += row["count"]
            samples = self.violations.setdefault(key, []) if row["violations"] else None
            for message in row["violations"]:
                if message not in samples and len(samples) < MAX_SAMPLES:
                    samples.append(message)
            callers = self.callers.setdefault(key, [])
            for where in row.get("callers", []):
                if where not in callers and len(callers) < MAX_SAMPLES:
                    callers.append(where)


_active: Capture | None = None
_original: Any = None
_strict_module: Any = None


def _strict() -> Any:
    """local_aws.strict, without importing local_aws (whose __init__ pulls in moto) in children."""
    global _strict_module
    if _strict_module is None:
        module = sys.modules.get("local_aws.strict")
        if module is None:
            import importlib.util

            spec = importlib.util.spec_from_file_location("_sv_strict", ROOT / "local_aws" / "strict.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules["_sv_strict"] = module
            spec.loader.exec_module(module)
        _strict_module = module
    return _strict_module


def install(sink: str | None = None) -> Capture:
    """Wrap botocore's validating serializer (idempotent); returns the process's Capture."""
    global _active, _original
    if _active is not None:
        return _active
    from botocore.validate import ParamValidationDecorator

    capture = Capture(sink)
    original = ParamValidationDecorator.serialize_to_request

    def serialize_to_request(self: Any, parameters: Any, operation_model: Any) -> Any:
        try:
            capture.record(operation_model.service_model.service_name, operation_model.name, parameters,
                           *capture.origin())
        except Exception:  # noqa: BLE001 - never break the call being captured
            pass
        return original(self, parameters, operation_model)

    ParamValidationDecorator.serialize_to_request = serialize_to_request
    _active, _original = capture, original
    # A forked child starts empty: what it inherited is the parent's to report.
    os.register_at_fork(after_in_child=capture.forget)
    if sink:
        atexit.register(capture.flush)
    return capture


def uninstall() -> None:
    global _active, _original
    if _active is None:
        return
    from botocore.validate import ParamValidationDecorator

    ParamValidationDecorator.serialize_to_request = _original
    _active, _original = None, None


def active() -> Capture | None:
    return _active


class _InstallOnImport:
    """A meta-path finder that installs the capture right after ``botocore.validate`` is imported,
    so that a child process that never uses botocore pays nothing (importing botocore costs ~0.2 s)."""

    def __init__(self, sink: str) -> None:
        self.sink = sink

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "botocore.validate":
            return None
        import importlib.util

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader_exec = spec.loader.exec_module
        sink = self.sink

        def exec_module(module: Any) -> None:
            loader_exec(module)
            try:
                install(sink)
            except Exception:  # noqa: BLE001 - never break the import
                pass

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install_from_env() -> None:
    """For child processes (sitecustomize): install if ``SV_CONTRACT_CAPTURE`` is set."""
    sink = os.environ.get(ENV)
    if not sink or os.environ.get("SV_CONTRACT_PARENT_PID") == str(os.getpid()):
        return
    if "botocore.validate" in sys.modules:
        install(sink)
    else:
        sys.meta_path.insert(0, _InstallOnImport(sink))

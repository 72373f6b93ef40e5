"""The ``label_studio`` fixture: one real Label Studio server per test run, on a free port.

Import it into a test module explicitly (``pytest_plugins`` only works in the root conftest)::

    from tests.label_studio_server import label_studio  # noqa: F401

The server runs from ``.venv-label-studio`` (installed here if missing, from the pinned
``requirements-label-studio.txt``), on 127.0.0.1, from a copy of the migrated template data dir
in ``.state/label-studio/`` (built once: a fresh database spends 20-70 s in migrations; a copy
is healthy in ~5 s), in a temp dir removed afterwards. It is stopped by PID at the end.

Like a real deployment, the server has an AWS identity of its own in its process environment:
the emulator's read-only reader (``local_aws.env``), and nothing else (no ``~/.aws``, no instance
metadata). Label Studio's S3 import storage takes its keys as optional (``aws_access_key_id`` and
the rest fall back to boto3's default chain), so ``s3_storage`` mode sends it none.

If the install cannot be done (no package index reachable), the tests are skipped with the
reason, except on CI (``CI`` set), where that is a failure: CI must run them.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger(__name__)


def _load_script():
    """scripts/label_studio.py as a module (scripts/ is not a package)."""
    name = "sagemaker_vision_label_studio_script"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "label_studio.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


server_script = _load_script()

# Filled in by the fixture: seconds spent installing, migrating the template, starting the server.
TIMINGS: dict[str, float] = {}


class LabelStudioServer(NamedTuple):
    url: str
    token: str


def reader_identity() -> dict[str, str]:
    """The server's own AWS keys: the emulator's Label Studio reader (one source: local_aws.env)."""
    from local_aws.env import LABEL_STUDIO_READER_KEY

    identity = {"AWS_ACCESS_KEY_ID": LABEL_STUDIO_READER_KEY,
                "AWS_SECRET_ACCESS_KEY": f"{LABEL_STUDIO_READER_KEY}-secret"}
    assert identity == server_script.EMULATOR_READER_IDENTITY, "scripts/label_studio.py disagrees with local_aws"
    return identity


@pytest.fixture(scope="session")
def label_studio():
    """(url, token) of a running Label Studio; one per test session."""
    ls = server_script
    started = time.monotonic()
    if not ls.installed():
        try:
            TIMINGS["install"] = round(ls.install(), 2)
        except (ls.LabelStudioError, OSError) as exc:
            if os.environ.get("CI"):
                raise
            pytest.skip(f"Label Studio cannot be installed into {ls.VENV}: {exc}")
    template, TIMINGS["template_cold_start"] = ls.ensure_template()
    workdir = Path(tempfile.mkdtemp(prefix="label-studio-test-"))
    server = None
    try:
        for attempt in range(3):  # a free port can be taken between the probe and the bind
            try:
                server = ls.start(ls.free_port(), workdir / f"data-{attempt}", template=template,
                                  aws_identity=reader_identity())
                break
            except ls.LabelStudioError as exc:
                port_taken = "in use" in str(exc) or "was taken" in str(exc)
                if not port_taken or attempt == 2:
                    raise
        TIMINGS["start_from_template"] = server.start_seconds
        TIMINGS["fixture_total"] = round(time.monotonic() - started, 2)
        log.info("Label Studio %s (pid %s): %s", server.url, server.pid, TIMINGS)
        yield LabelStudioServer(server.url, server.token)
    finally:
        if server is not None:
            ls.stop(server.pid)
        shutil.rmtree(workdir, ignore_errors=True)

"""Loaded by child Python processes of a test session (PYTHONPATH): contract capture.

Set up by tests/contract/plugin.py only while ``SV_CONTRACT_CAPTURE`` is set. Silent on any
failure (e.g. another venv without botocore, such as the Label Studio server's).

Python imports only the first ``sitecustomize`` on ``sys.path``, so this one would hide the
interpreter's own (a distribution's, a venv's): it hands over to the next one on ``sys.path``
(this directory left out), which runs as it would have without us. An error there is reported
the way ``site`` reports one and does not stop the interpreter.
"""


def _install_capture() -> None:
    try:
        import importlib.util as _util
        import os as _os

        if _os.environ.get("SV_CONTRACT_CAPTURE"):
            _path = _os.path.join(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))), "capture.py")
            _spec = _util.spec_from_file_location("_sv_contract_capture", _path)
            _module = _util.module_from_spec(_spec)
            _spec.loader.exec_module(_module)
            _module.install_from_env()
    except Exception:  # noqa: BLE001
        pass


def _chain():
    """Run the next ``sitecustomize`` on ``sys.path`` (not this file): the module, or None."""
    import importlib.machinery
    import importlib.util
    import os
    import sys

    here = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
    me = os.path.realpath(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.realpath(os.path.abspath(p or os.curdir)) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.origin is None or os.path.realpath(spec.origin) == me:
        return None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - as site.execsitecustomize reports it
        sys.stderr.write(f"Error in sitecustomize ({spec.origin}, run by {me}); set PYTHONVERBOSE for "
                         f"traceback:\n{type(exc).__name__}: {exc}\n")
    return module


_install_capture()
try:
    chained = _chain()  # the hidden sitecustomize, for whoever needs to look at it
except Exception:  # noqa: BLE001 - finding it must never break the interpreter
    chained = None

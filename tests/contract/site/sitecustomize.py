"""Loaded by child Python processes of a test session (PYTHONPATH): contract capture.

Set up by tests/contract/plugin.py only while ``SV_CONTRACT_CAPTURE`` is set. Silent on any
failure (e.g. another venv without botocore, such as the Label Studio server's).
"""

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

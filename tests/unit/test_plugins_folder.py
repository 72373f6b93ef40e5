"""Airflow's plugin loader must not import the package's modules as top-level modules."""

from __future__ import annotations

import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def test_plugin_loader_does_not_shadow_libraries():
    from airflow._shared.plugins_manager.plugins_manager import _load_plugins_from_plugin_directory

    before = {name: sys.modules.get(name) for name in ("requests", "config", "labels", "aws", "costs")}
    plugins, errors = _load_plugins_from_plugin_directory(plugins_folder=str(PLUGINS), load_examples=False)
    assert errors == {}, errors
    for name, module in before.items():
        assert sys.modules.get(name) is module, f"loading plugins/ replaced sys.modules[{name!r}]"
    import requests

    assert hasattr(requests, "Session")

#!/usr/bin/env bash
# What tests/ui needs: Debian's Chromium and ChromeDriver (apt-get, as root), and Selenium from
# the pinned requirements-ui.txt in .venv. Idempotent: installs only what is missing. Selenium
# never downloads a browser or a driver here: the tests hand it /usr/bin/chromium and
# /usr/bin/chromedriver and run it offline.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "ui_deps.sh: installing chromium needs root (apt-get); run it as root or with sudo" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends chromium chromium-driver
fi
chromium --version
chromedriver --version

if [ ! -x "$PY" ]; then
    echo "ui_deps.sh: $PY not found; build the venv first (make venv)" >&2
    exit 1
fi
if ! "$PY" -c 'import selenium' 2>/dev/null; then
    if command -v uv >/dev/null; then
        uv pip install --python "$PY" -q -r requirements-ui.txt
    elif [ -x .venv/bin/uv ]; then
        .venv/bin/uv pip install --python "$PY" -q -r requirements-ui.txt
    else
        "$PY" -m pip install -q --disable-pip-version-check -r requirements-ui.txt
    fi
fi
"$PY" -c 'import selenium; print("selenium", selenium.__version__)'

"""Headless Debian Chromium driven by Selenium, with nothing downloaded and nothing left running.

``scripts/ui_deps.sh`` installs the three parts (chromium, chromium-driver, the pinned selenium).
Selenium is handed both binaries and runs offline, so Selenium Manager never fetches a browser or
a driver. ChromeDriver runs in its own process group (Chromium is its child), which
:func:`quit_chromium` ends by its PID after ``driver.quit()``, whatever state the browser is in.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# What Chromium needs to run headless as root in a container, and to stay off the network.
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--lang=en-US",
)


def missing_parts() -> list[str]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not (os.access(path, os.X_OK) or shutil.which(path))]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (requirements-ui.txt)")
    return missing


def require_browser() -> None:
    """Skip when the browser is missing and ``SV_UI_OPTIONAL=1``; otherwise fail saying how to get it."""
    missing = missing_parts()
    if not missing:
        return
    message = f"the UI tests need {', '.join(missing)}: run scripts/ui_deps.sh (as root)"
    if os.environ.get("SV_UI_OPTIONAL") == "1":
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


def start_chromium(profile_dir: Path, width: int = 1400, height: int = 1000) -> WebDriver:
    """A headless Chromium on a new, empty profile in ``profile_dir``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager: never reach the network
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (*CHROMIUM_ARGS, f"--window-size={width},{height}", f"--user-data-dir={profile_dir}"):
        options.add_argument(arg)
    service = Service(CHROMEDRIVER, log_output=str(profile_dir.parent / "chromedriver.log"),
                      popen_kw={"start_new_session": True})
    return webdriver.Chrome(options=options, service=service)


def quit_chromium(driver: WebDriver) -> None:
    """``driver.quit()``, then end ChromeDriver's process group (and so Chromium) by its PID."""
    process = driver.service.process
    try:
        driver.quit()
    finally:
        if process is not None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=10)

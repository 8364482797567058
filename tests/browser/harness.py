"""Drive the app in a real browser: start a server, wait for script runs. Used by tests/browser/conftest.py and
the browser tests.

Debian's Chromium through Playwright (never `playwright install`; see shared/STACK-NOTES.md).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]  # the repository
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic"]


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


def require_chromium() -> None:
    """At a browser test module's top: skip it when Chromium is absent, except in CI (CI=true), where a missing
    browser is a failure (.ci/run installs it), so CI never skips a browser test."""
    if chromium_available():
        return
    if os.environ.get("CI"):
        raise RuntimeError("CI needs Chromium for the browser test: .ci/run installs it with apt-get")
    pytest.skip("Chromium is not installed (apt-get install -y chromium); skipping the browser test",
                allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(timeout_s: float = 90) -> Iterator[str]:
    """Start ``streamlit run dashboard/app.py`` on a free port; yield its URL; stop it afterwards.

    The server's stderr goes to a temporary file, not a pipe: nobody reads a pipe while the server runs, and a
    server shared by several tests (tests/browser/conftest.py) could fill one and block on its next log line."""
    port = _free_port()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"), "--server.headless",
             "true", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + timeout_s
            while True:
                try:
                    if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                        break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        log.seek(0)
                        raise RuntimeError(f"the Streamlit server did not start: {log.read()[-2000:]}") from None
                    time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _says_running(status) -> bool:
    """The status widget shows "Running..." and, in Streamlit 1.67, a "Stop" button while a script runs."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        text = status.first.inner_text(timeout=500) if status.count() else ""
    except PlaywrightError:  # the widget vanished between count() and inner_text(): the run just ended
        return False
    return "Running" in text or "Stop" in text


def wait_idle(page, timeout_s: float = 60, quiet_ms: int = 400) -> float:
    """Wait until the script run is over: for ``quiet_ms`` the status widget has not said Running/Stop and
    no element of the previous run is left stale.

    Returns the seconds until the last moment it was seen running (the run's duration, to ~50 ms).
    """
    start = time.time()
    page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=timeout_s * 1000)
    page.wait_for_selector('[data-testid="stSidebarNavLink"]', timeout=timeout_s * 1000)
    last_running = start
    while time.time() - start < timeout_s:
        status = page.locator('[data-testid="stStatusWidget"]')
        stale = page.locator('[data-stale="true"]').count() > 0  # elements of the previous run still shown
        if stale or _says_running(status):
            last_running = time.time()
        elif time.time() - last_running > quiet_ms / 1000:
            return last_running - start
        page.wait_for_timeout(50)
    raise TimeoutError(f"the page was still running after {timeout_s:.0f} s")


def exception_text(page) -> str | None:
    """The text of the first exception box on the page, or None."""
    boxes = page.locator('[data-testid="stException"]')
    return boxes.first.inner_text()[:500] if boxes.count() else None

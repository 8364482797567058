"""Shared AppTest helpers for the page tests: the app's path, an AppTest opened on a page, and readers for charts
and exceptions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
HOME = "views/home.py"


def app_on(page: str, default_timeout: float = 120.0) -> AppTest:
    """The app under AppTest, its first ``run()`` rendering ``page`` ("views/<name>.py") directly, as a shared link
    opens it, without a first run of Home (0.2 s of CPU, paid by some 150 tests for nothing they check: Home has
    its own tests, and page switches within a session theirs).

    Before a first run AppTest finds a page by its file name, which is its URL path here (app.py sets none), and a
    page is then exactly what a first run on it after Home draws: its widgets start from the URL either way."""
    at = AppTest.from_file(str(APP), default_timeout=default_timeout)
    return at if page == HOME else at.switch_page(page)


def run_until(at: AppTest, done, timeout_s: float = 120.0, every_s: float = 0.3) -> AppTest:
    """Rerun the page until ``done(at)``: a job runs in a worker process, and a full run of the page polls it (in
    a browser the page's fragment does that every second)."""
    deadline = time.time() + timeout_s
    while not done(at):
        assert time.time() < deadline, "the job did not finish in time"
        time.sleep(every_s)
        at.run()
    return at


def ok(at: AppTest) -> AppTest:
    """The AppTest itself, after asserting that its last run raised nothing."""
    assert not at.exception, [e.value for e in at.exception]
    return at


def plotly_specs(at: AppTest) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def vega_frames(at: AppTest):
    """The data behind each Altair chart, as pandas frames (Streamlit ships it as Arrow)."""
    return [pa.ipc.open_stream(el.proto.datasets[0].data.data).read_pandas() for el in at.get("vega_lite_chart")]

"""Shared AppTest helpers for the page tests: the app's path and readers for charts and exceptions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


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

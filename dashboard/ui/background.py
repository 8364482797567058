"""Work that outlives a click: a page runs a long job (training, the race) inside its script run, shows progress,
and keeps the result when a click stops it. Used by the Train page and the race of the baselines page.

How stopping works (Streamlit 1.67, runner.fastReruns on, the default): a click during a script run (a Stop
button, any other widget, a page link) makes Streamlit stop the running script, by raising StopException at its
next yield point (any st.* call, st.session_state included), and start a new run at once, in another thread.
During a job the only st.* calls are in its progress callback, so ``Interrupt.guard`` catches the exception
there and tells the job to stop: training ends cleanly and returns the weights so far. The stopped run then puts
its result into a plain dict kept in session state (the *mailbox* of the job, fetched before the job starts),
with no further st.* call, and re-raises the exception; the new run waits for that in ``adopt`` and takes the
result, so the page it draws already shows it. (With fastReruns off, the same click arrives as RerunException
instead, handled the same way.)

A page reads like this::

    box = background.mailbox("train")
    with background.in_progress(box):
        result, request = run_the_job(on_update)   # on_update's clicks caught by an Interrupt
        box["done"] = result                       # plain Python only: Streamlit may already be rerunning
    if request is not None:
        raise request                              # hand the click back to Streamlit
    ...
    finished = background.adopt("train", "Stopping the training...")   # on the next run

The mailbox is the only contact between a job and the pages, so a job queue can later run the work in worker
processes and fill the same mailbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit.runtime.scriptrunner import RerunException, StopException

ADOPT_TIMEOUT_S = 15.0  # a stopped job stops at its next progress update, well within this


def mailbox_key(name: str) -> str:
    """The st.session_state key of a job's mailbox: ``"<name>.mailbox"``."""
    return f"{name}.mailbox"


def mailbox(name: str) -> dict[str, Any]:
    """The session's mailbox of job ``name`` (the same dict on every run of this session):
    ``{"active": start time or None, "done": the last result not yet adopted, or None}``."""
    return st.session_state.setdefault(mailbox_key(name), {"active": None, "done": None})


@contextmanager
def in_progress(box: dict[str, Any]) -> Iterator[None]:
    """Mark the mailbox busy while the job runs and stores its result (plain dict writes only)."""
    box["active"] = time.time()
    try:
        yield
    finally:
        box["active"] = None


def adopt(name: str, waiting: str, timeout_s: float = ADOPT_TIMEOUT_S) -> Any | None:
    """Take the result a finished or stopped job of this session left in its mailbox (None if none).

    If the job is still running or storing (a click has just interrupted it and started this run), wait for it
    first, under a spinner saying ``waiting``: at most ``timeout_s``."""
    box = mailbox(name)
    if box.get("active"):
        start = time.time()
        with st.spinner(waiting):
            while box.get("active") and time.time() - start < timeout_s:
                time.sleep(0.05)
    done, box["done"] = box.get("done"), None
    return done


class Interrupt:
    """Catches the click that stops a job: Streamlit's stop or rerun request raised inside a progress callback.

    ``if interrupt.guard(on_update, info): return True`` in a training callback stops training at once (the
    weights so far are kept); ``interrupt.request`` is then the exception to re-raise once the result is stored.
    """

    def __init__(self) -> None:
        self.request: BaseException | None = None

    def guard(self, fn: Callable[..., None], *args: Any) -> bool:
        """Call ``fn(*args)``; True when it raised Streamlit's stop or rerun request (kept in ``request``)."""
        try:
            fn(*args)
        except (RerunException, StopException) as request:
            self.request = request
            return True
        return False


def stop_button(label: str, key: str) -> DeltaGenerator:
    """A Stop button for a running job (any click stops it; this one says so), and the cell beside it for the
    job's progress."""
    left, right = st.columns([1, 5], vertical_alignment="center")
    left.button(label, icon=":material/stop:", key=key)
    return right

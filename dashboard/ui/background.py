"""Work that outlives a click, on a page: start a job in the job runner (dashboard/jobs), follow it with a
fragment that reruns every second (queue position and estimate, then progress, and a Stop button) without
blocking the page's script, and collect the result once it is done. Used by the Train page and the race of the
baselines page; training never runs in the server's script threads.

A page reads like this::

    job = background.collect("train")              # a finished job of this session (once), or None
    if st.button("Train"):
        background.start("train", "train_2d", spec, label="eight gaussians", expected_s=8.0)
    background.follow("train", render_progress)    # nothing unless this session has a job queued or running

The runner is one per server process (st.cache_resource), with a worker per CPU core; each browser session
has at most one job at a time, and a session whose tab has closed loses its job.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from dashboard.jobs.runner import ACTIVE, QUEUED, Job, JobError, JobRunner, QueueFull

FOLLOW_EVERY_S = 1.0  # how often a page that follows a job redraws its progress bar (cheap)
LIVE_EVERY_S = 4.0  # ... and its live charts (about 50 ms of server CPU each: 30 students at once must fit)
WORKERS_ENV = "DIFFUSION_LAB_WORKERS"  # the number of worker processes (default: one per CPU core)
SHARE_ENV = "DIFFUSION_LAB_SHARE"  # "0": identical jobs each train on their own (default: they share one run)


def _session_alive(session: str) -> bool:
    """Whether a browser session is still connected (always true outside a running server, e.g. in AppTest)."""
    if not Runtime.exists():
        return True
    try:
        return bool(Runtime.instance().is_active_session(session))
    except Exception:  # a runtime that is starting or stopping: keep the job
        return True


@st.cache_resource(show_spinner=False)
def runner() -> JobRunner:
    """The server's job runner, started once per process (its workers take a few seconds to start)."""
    workers = os.environ.get(WORKERS_ENV)
    return JobRunner(workers=int(workers) if workers else None, is_session_alive=_session_alive,
                     share=os.environ.get(SHARE_ENV, "1") != "0")


def session_id() -> str:
    """This browser session's id (the runner keeps at most one job per session)."""
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "no-session"


def _key(name: str) -> str:
    return f"{name}.job"


def current(name: str) -> Job | None:
    """This session's job ``name`` as it stands (queued, running or finished), or None."""
    job_id = st.session_state.get(_key(name))
    return runner().view(job_id) if job_id else None


def start(name: str, kind: str, spec: dict, label: str, expected_s: float) -> bool:
    """Queue a job for this session; on a full queue or a job already running, say so and return False."""
    try:
        job_id = runner().submit(session_id(), kind, spec, label=label, expected_s=expected_s)
    except (QueueFull, JobError) as e:
        st.warning(f"Not started: {e}.", icon=":material/hourglass_top:")
        return False
    st.session_state[_key(name)] = job_id
    return True


def collect(name: str) -> Job | None:
    """The finished job ``name`` of this session, once: it is then forgotten by the runner and the session."""
    job = current(name)
    if job is None or job.status in ACTIVE:
        if job is None:
            st.session_state.pop(_key(name), None)
        return None
    del st.session_state[_key(name)]
    runner().forget(job.id)
    return job


def fmt_wait(seconds: float) -> str:
    """About 40 s, about 2 min."""
    return f"about {max(1, round(seconds))} s" if seconds < 90 else f"about {seconds / 60:.0f} min"


def follow(name: str, render: Callable[[Job], None], stop_label: str = "Stop") -> None:
    """While this session's job ``name`` is queued or running: a bordered panel, redrawn every FOLLOW_EVERY_S
    seconds by a fragment, with a Stop button and the queue position and estimate or the job's progress; below
    it ``render(job)``, the page's own live view, redrawn every LIVE_EVERY_S seconds by a second fragment. When
    the job ends, the whole page reruns (and collects it)."""
    job = current(name)
    if job is None:
        return
    if job.status not in ACTIVE:  # it ended while this run drew the page: draw it again, collecting it
        st.rerun()

    @st.fragment(run_every=FOLLOW_EVERY_S)
    def panel() -> None:
        job = current(name)
        if job is None or job.status not in ACTIVE:
            st.rerun()  # the whole page: it collects the result
        with st.container(border=True):
            left, right = st.columns([1, 5], vertical_alignment="center")
            if left.button(stop_label, icon=":material/stop:", key=f"{name}.stop",
                           help="queued: leave the queue; training: stop at the next step and keep the model"):
                runner().stop(job.id)
            with right:
                if job.status == QUEUED:
                    counts = runner().counts()
                    st.progress(0.0, text=f"Waiting in the queue: number {job.position} of {counts['queued']} "
                                          f"({counts['running']} of {counts['workers']} workers busy) · done in "
                                          f"{fmt_wait(job.estimate_s)}")
                else:
                    p = job.progress
                    step, steps = p.get("step", 0), p.get("steps") or 1
                    done = step / steps
                    if p.get("budget_s"):  # a time budget may end the job before its steps
                        done = max(done, p.get("seconds", 0.0) / p["budget_s"])
                    text = (f"step {step:,} of {steps:,} · loss {p['loss']:.4f} · {p.get('seconds', 0):.1f} s"
                            if "loss" in p else "Starting...")
                    if p.get("phase"):
                        text = f"{p['phase']}: {text}"
                    if job.shared_with:
                        text += (f" · one run for you and {job.shared_with} other "
                                 f"{'student' if job.shared_with == 1 else 'students'} with the same settings")
                    st.progress(min(1.0, done), text=f"{text} · {'stopping...' if job.stop_requested else ''}"
                                .rstrip(" ·"))

    @st.fragment(run_every=LIVE_EVERY_S)
    def live() -> None:
        job = current(name)
        if job is not None and job.status in ACTIVE:
            render(job)

    panel()
    live()

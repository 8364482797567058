"""The queue and the worker processes behind the app's Train buttons.

    runner = JobRunner(workers=2)                      # spawns the workers
    job_id = runner.submit("session-1", "train_2d", spec, label="eight gaussians", expected_s=8.0)
    view = runner.view(job_id)                         # status, queue position, estimate, progress, result
    runner.stop(job_id)                                # queued: removed; running: stops at its next step

Jobs run first come first served, at most one per session at a time. A running job's worker reports progress
(steps, losses, snapshots) through one results queue that a dispatcher thread reads; a finished job's result is
plain data (safetensors bytes, JSON-able dicts, numpy arrays), never a pickled module. A worker that dies fails
its own job with a message and is replaced; a session that has gone away (``is_session_alive``) has its job
cancelled; a full queue refuses new work with ``QueueFull``.

A class that presses Train on the same settings asks for the same training, and a worker's training is
deterministic (one torch thread, its own seeds): a job of a kind in ``recipes.SHAREABLE`` whose spec equals one
still queued or running joins that run instead of queueing another, and gets the same result. Each session's job
stays its own: Stop while others share the run hands that session the weights so far (the worker "forks" them
at its next step) and the run goes on; a closed tab drops its own job; the run stops only when no job follows it.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import itertools
import json
import multiprocessing as mp
import os
import queue
import sys
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dashboard.jobs.worker import worker_main

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
ACTIVE = (QUEUED, RUNNING)
DEFAULT_MAX_QUEUED = 64  # waiting jobs; beyond this, submit() says the queue is full
SESSION_GRACE_S = 15.0  # a session unseen this long (closed tab) loses its job; a reload reconnects sooner
KEEP_FINISHED_S = 1800.0  # a finished job's result waits this long for its session to collect it


_MAIN_LOCK = threading.Lock()


@contextlib.contextmanager
def _bare_main() -> Iterator[None]:
    """Hide the __main__ module while a worker is spawned. Under Streamlit, __main__ is the app's script, and
    the spawn start method would run it again in the child (importing Streamlit and building pages there); the
    worker needs nothing from it, only dashboard.jobs.worker."""
    with _MAIN_LOCK:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            if main is not None:
                sys.modules["__main__"] = main


class QueueFull(RuntimeError):
    """The queue holds as many waiting jobs as it may: try again later."""


class JobError(ValueError):
    """A job that cannot be submitted (unknown kind, a session that already has one)."""


@dataclass
class Job:
    """One job and everything the page shows about it (mutated by the dispatcher thread under the lock)."""

    id: str
    session: str
    kind: str
    spec: dict[str, Any]
    label: str
    expected_s: float
    submitted: float = field(default_factory=time.time)
    status: str = QUEUED
    started: float | None = None
    finished: float | None = None
    worker: int | None = None
    progress: dict[str, Any] = field(default_factory=dict)  # the last report: step, steps, loss, seconds, ...
    losses: list[float] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    message: str = ""
    stop_requested: bool = False
    position: int = 0  # 1-based place in the queue while queued
    estimate_s: float = 0.0  # seconds from now until the job is expected to finish
    shared_with: int = 0  # other sessions' jobs following the same run (the same settings)
    run: str = ""  # the run it follows (internal)


@dataclass
class _Run:
    """One training in a worker, followed by one or more sessions' jobs (their ids in ``jobs``)."""

    id: str
    kind: str
    spec: dict[str, Any]
    expected_s: float
    key: str | None  # equal keys: the same training (None: never shared)
    jobs: list[str] = field(default_factory=list)
    status: str = QUEUED
    started: float | None = None
    worker: int | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    stop_requested: bool = False
    position: int = 0
    estimate_s: float = 0.0


@dataclass
class _Worker:
    index: int
    process: Any
    control: Any  # multiprocessing queue of commands to this worker
    job: str | None = None
    ready: bool = False


class JobRunner:
    """Worker processes and a first-come-first-served queue of jobs, at most one active job per session.

    ``workers``: processes (default: the number of CPU cores). ``is_session_alive(session) -> bool`` tells
    whether a browser session is still connected; its jobs are cancelled once it has been gone for
    ``session_grace_s``. ``share``: identical jobs of a shareable kind follow one run (see the module docstring).
    """

    def __init__(self, workers: int | None = None, max_queued: int = DEFAULT_MAX_QUEUED,
                 is_session_alive: Callable[[str], bool] | None = None, session_grace_s: float = SESSION_GRACE_S,
                 nice: int = 10, share: bool = True):
        self.n_workers = max(1, int(workers or os.cpu_count() or 1))
        self.max_queued = max_queued
        self.is_session_alive = is_session_alive
        self.session_grace_s = session_grace_s
        self.nice = nice
        self.share = share
        self._ctx = mp.get_context("spawn")
        self._results = self._ctx.Queue()
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._runs: dict[str, _Run] = {}
        self._order = itertools.count()
        self._queue: list[str] = []  # waiting run ids, first come first served
        self._gone_since: dict[str, float] = {}
        self._seconds_per_step: float | None = None  # measured on finished runs: better estimates
        self._closed = False
        self._workers = [self._start_worker(i) for i in range(self.n_workers)]
        self._thread = threading.Thread(target=self._dispatch_loop, name="job-dispatcher", daemon=True)
        self._thread.start()
        atexit.register(self.shutdown)  # before multiprocessing's own exit handler ends the workers

    # --- the public surface -----------------------------------------------------------------------------------

    def submit(self, session: str, kind: str, spec: dict[str, Any], label: str = "", expected_s: float = 10.0) -> str:
        """Queue a job for ``session``; returns its id. Raises QueueFull, or JobError if the session has one."""
        from dashboard.jobs.recipes import RECIPES, SHAREABLE

        if kind not in RECIPES:
            raise JobError(f"unknown job kind {kind!r}; expected one of: {', '.join(RECIPES)}")
        key = _share_key(kind, spec) if self.share and kind in SHAREABLE else None
        with self._lock:
            if self._closed:
                raise JobError("the job runner has shut down")
            if any(j.session == session and j.status in ACTIVE for j in self._jobs.values()):
                raise JobError("this session already has a job queued or running: stop it first")
            run = next((r for r in self._runs.values() if key is not None and r.key == key
                        and r.status in ACTIVE and not r.stop_requested), None)
            if run is None and len(self._queue) >= self.max_queued:
                raise QueueFull(f"the training queue is full ({len(self._queue)} jobs waiting for "
                                f"{self.n_workers} workers); try again in a minute")
            job_id = f"{next(self._order)}-{uuid.uuid4().hex[:8]}"
            if run is None:
                run = _Run(id=job_id, kind=kind, spec=spec, expected_s=float(expected_s), key=key)
                self._runs[run.id] = run
                self._queue.append(run.id)
            job = Job(id=job_id, session=session, kind=kind, spec=spec, label=label, expected_s=float(expected_s),
                      run=run.id)
            run.jobs.append(job.id)
            self._jobs[job.id] = job
            self._assign()
            self._update_estimates()
        return job.id

    def view(self, job_id: str) -> Job | None:
        """A copy of the job as it stands (None if unknown or expired); safe to read without the lock. While it
        is queued or running, its status, progress, losses and snapshots are those of the run it follows."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            out = copy.copy(job)
            run = self._runs.get(job.run)
            if job.status in ACTIVE and run is not None:
                out.status, out.started, out.worker = run.status, run.started, run.worker
                out.position, out.estimate_s = run.position, run.estimate_s
                out.losses, out.snapshots, out.progress = list(run.losses), list(run.snapshots), dict(run.progress)
                out.stop_requested = job.stop_requested or run.stop_requested
                out.shared_with = len(self._followers(run)) - 1
            else:
                out.losses, out.snapshots, out.progress = list(job.losses), list(job.snapshots), dict(job.progress)
            return out

    def session_jobs(self, session: str) -> list[Job]:
        """Copies of the session's jobs, oldest first."""
        with self._lock:
            ids = [j.id for j in self._jobs.values() if j.session == session]
        return [v for v in (self.view(i) for i in ids) if v is not None]

    def stop(self, job_id: str) -> None:
        """Remove a queued job, or ask a running one to stop at its next step (it keeps its weights so far). A job
        that shares its run with others leaves it: queued, it is removed; running, it gets the weights so far and
        the run goes on for the others."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status not in ACTIVE or job.stop_requested:
                return
            run = self._runs[job.run]
            others = [j for j in self._followers(run) if j.id != job_id and not j.stop_requested]
            if run.status == QUEUED:
                self._leave(job, CANCELLED, "removed from the queue before it started")
            elif others:
                job.stop_requested = True
                self._workers[run.worker].control.put(("fork", run.id, job.id))
            else:
                job.stop_requested = run.stop_requested = True
                self._workers[run.worker].control.put(("stop", run.id))
            self._update_estimates()

    def forget(self, job_id: str) -> None:
        """Drop a finished job once its session has collected the result."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and job.status not in ACTIVE:
                del self._jobs[job_id]

    def counts(self) -> dict[str, int]:
        """Runs queued and running, and the number of workers."""
        with self._lock:
            running = sum(r.status == RUNNING for r in self._runs.values())
            return {"queued": len(self._queue), "running": running, "workers": self.n_workers}

    def ready(self) -> bool:
        """Whether every worker has started (spawning one and importing torch takes a few seconds)."""
        with self._lock:
            return all(w.ready for w in self._workers)

    def worker_pids(self) -> list[int]:
        with self._lock:
            return [w.process.pid for w in self._workers]

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop every job and worker (the server is going away)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for run_id in list(self._queue):
                self._end_run(self._runs[run_id], CANCELLED, "the server is shutting down")
            self._queue.clear()
            workers = list(self._workers)
        for w in workers:
            w.control.put(None)
        deadline = time.time() + timeout_s
        for w in workers:
            w.process.join(max(0.0, deadline - time.time()))
            if w.process.is_alive():
                w.process.kill()

    # --- the dispatcher -------------------------------------------------------------------------------------

    def _start_worker(self, index: int) -> _Worker:
        control = self._ctx.Queue()
        process = self._ctx.Process(target=worker_main, args=(index, control, self._results, self.nice),
                                    name=f"diffusion-lab-worker-{index}", daemon=True)
        with _bare_main():
            process.start()
        return _Worker(index, process, control)

    def _dispatch_loop(self) -> None:
        last_housekeeping = 0.0
        while not self._closed:
            try:
                message = self._results.get(timeout=0.2)
            except queue.Empty:
                message = None
            except (EOFError, OSError):  # the queue's pipe broke: the runner is shutting down
                return
            with self._lock:
                if message is not None:
                    self._handle(message)
                now = time.time()
                if now - last_housekeeping >= 0.5:
                    last_housekeeping = now
                    self._check_workers()
                    self._check_sessions(now)
                    self._expire(now)
                    self._assign()
                    self._update_estimates()

    def _handle(self, message: tuple) -> None:
        kind, worker_index, run_id, payload = message
        worker = self._workers[worker_index]
        if kind == "ready":
            worker.ready = True
            return
        if kind in ("done", "failed") and worker.job == run_id:
            worker.job = None  # free for the next run, whatever became of this one
        run = self._runs.get(run_id)
        if run is None or run.status not in ACTIVE:
            self._assign()
            return
        if kind == "progress":
            run.losses.extend(payload.pop("new_losses", []))
            run.progress.update(payload)
        elif kind == "snapshot":
            run.snapshots.append(payload)
        elif kind == "forked":  # the weights so far, for a job that stopped while others follow the run
            job = self._jobs.get(payload.pop("job"))
            if job is not None and job.status in ACTIVE:
                self._leave(job, DONE, payload.get("message", "stopped"), result=payload)
                job.losses = list(payload.get("losses", job.losses))  # to its own last step
        elif kind == "done":
            self._learn_speed(payload)
            self._end_run(run, DONE, payload.get("message", "finished"), result=payload)
        elif kind == "failed":
            self._end_run(run, FAILED, payload)
        if kind in ("done", "failed"):
            self._assign()
            self._update_estimates()

    def _learn_speed(self, result: dict[str, Any]) -> None:
        steps, seconds = result.get("steps_done", 0), result.get("train_seconds", 0.0)
        if steps and seconds > 0:
            rate = seconds / steps
            old = self._seconds_per_step
            self._seconds_per_step = rate if old is None else 0.7 * old + 0.3 * rate

    def _finish(self, job: Job, status: str, message: str, result: dict[str, Any] | None = None) -> None:
        run = self._runs.get(job.run)
        if run is not None:  # what the job followed stays with it
            job.losses, job.snapshots, job.progress = list(run.losses), list(run.snapshots), dict(run.progress)
            job.started, job.worker = run.started, run.worker
        job.status, job.message, job.result, job.finished = status, message, result, time.time()
        job.position, job.estimate_s = 0, 0.0

    def _followers(self, run: _Run) -> list[Job]:
        """The jobs still following ``run`` (queued or running with it)."""
        return [self._jobs[j] for j in run.jobs if j in self._jobs and self._jobs[j].status in ACTIVE]

    def _leave(self, job: Job, status: str, message: str, result: dict[str, Any] | None = None) -> None:
        """End one job of a run. A run that no job follows any more leaves the queue, or, running, is cancelled
        at its worker's next step (nobody waits for it)."""
        self._finish(job, status, message, result)
        run = self._runs[job.run]
        if self._followers(run):
            return
        if run.status == QUEUED:
            self._queue.remove(run.id)
            run.status = CANCELLED
            del self._runs[run.id]
        elif not run.stop_requested:
            run.stop_requested = True
            self._workers[run.worker].control.put(("cancel", run.id))

    def _end_run(self, run: _Run, status: str, message: str, result: dict[str, Any] | None = None) -> None:
        """The run is over: every job still following it ends with its result."""
        for job in self._followers(run):
            self._finish(job, status, message, result)
        run.status = status
        self._runs.pop(run.id, None)

    def _assign(self) -> None:
        for w in self._workers:
            if not self._queue:
                return
            if w.job is None and w.process.is_alive():
                run = self._runs[self._queue.pop(0)]
                run.status, run.worker, run.started = RUNNING, w.index, time.time()
                w.job = run.id
                w.control.put(("run", run.id, run.kind, run.spec))

    def _check_workers(self) -> None:
        for i, w in enumerate(self._workers):
            if w.process.is_alive():
                continue
            code = w.process.exitcode
            run = self._runs.get(w.job) if w.job is not None else None
            if run is not None and run.status == RUNNING:
                self._end_run(run, FAILED, f"the training process stopped unexpectedly (exit code {code}); "
                                           "the rest of the lab is unaffected: press Train to try again")
            if not self._closed:
                self._workers[i] = self._start_worker(i)

    def _check_sessions(self, now: float) -> None:
        if self.is_session_alive is None:
            return
        for session in {j.session for j in self._jobs.values() if j.status in ACTIVE}:
            if self.is_session_alive(session):
                self._gone_since.pop(session, None)
                continue
            since = self._gone_since.setdefault(session, now)
            if now - since < self.session_grace_s:
                continue
            for job in [j for j in self._jobs.values() if j.session == session and j.status in ACTIVE]:
                self._leave(job, CANCELLED, "cancelled: its browser tab was closed")

    def _expire(self, now: float) -> None:
        for job_id in [j.id for j in self._jobs.values()
                       if j.status not in ACTIVE and j.finished is not None and now - j.finished > KEEP_FINISHED_S]:
            del self._jobs[job_id]

    def _expected(self, run: _Run) -> float:
        steps = run.spec.get("steps")
        if self._seconds_per_step is not None and isinstance(steps, int):
            return steps * self._seconds_per_step
        return run.expected_s

    def _update_estimates(self) -> None:
        """Queue positions and finish-time estimates: each waiting run starts when the earliest worker frees."""
        now = time.time()
        free_at = []
        for w in self._workers:
            run = self._runs.get(w.job) if w.job else None
            if run is not None and run.status == RUNNING:
                remaining = max(0.0, self._expected(run) - (now - (run.started or now)))
                run.estimate_s = remaining
                free_at.append(remaining)
            else:
                free_at.append(0.0)
        for position, run_id in enumerate(self._queue, start=1):
            run = self._runs[run_id]
            i = min(range(len(free_at)), key=free_at.__getitem__)
            free_at[i] += self._expected(run)
            run.position, run.estimate_s = position, free_at[i]


def _share_key(kind: str, spec: dict[str, Any]) -> str | None:
    """Equal for equal (kind, spec); None when the spec is not plain JSON (the user's points as an array: never
    shared)."""
    try:
        return json.dumps([kind, spec], sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return None

"""A worker process of the job runner: one job at a time, one torch thread, a lower OS priority than the server.

Commands arrive on ``control``: ("run", job_id, kind, spec), ("stop", job_id) or ("cancel", job_id) for the
running job (it stops at its next step), ("fork", job_id, follower) for a shared run (a recipe of
``recipes.SHAREABLE`` reports the weights so far for ``follower`` at its next step and goes on), None to exit.
Reports go to ``results`` as (kind, worker_index, job_id, payload) with kind "ready", "progress", "snapshot",
"forked", "done" or "failed".
"""

from __future__ import annotations

import os
import queue
import traceback
from typing import Any


def worker_main(index: int, control: Any, results: Any, nice: int = 10) -> None:
    """The process's main loop (the target of a spawned multiprocessing.Process)."""
    if nice:
        try:
            os.nice(nice)  # serving pages wins over training
        except OSError:
            pass
    import torch

    torch.set_num_threads(1)
    from dashboard.jobs.recipes import RECIPES, SHAREABLE, warm_up

    warm_up()  # the first optimizer step of a process is slow: pay it before a job's budget starts counting
    results.put(("ready", index, None, None))
    while True:
        command = control.get()
        if command is None:
            return
        if command[0] != "run":
            continue  # a stop for a job that has already finished
        _, job_id, kind, spec = command
        state: dict[str, Any] = {"stop": False, "exit": False, "forks": []}

        def should_stop(job_id: str = job_id, state: dict = state) -> bool | str:
            """Drain the control queue: False, or "stop" / "cancel" for this job (shutdown cancels)."""
            while True:
                try:
                    c = control.get_nowait()
                except queue.Empty:
                    return state["stop"]
                if c is None:
                    state["stop"], state["exit"] = "cancel", True
                elif c[0] in ("stop", "cancel") and c[1] == job_id and state["stop"] != "cancel":
                    state["stop"] = c[0]
                elif c[0] == "fork" and c[1] == job_id:
                    state["forks"].append(c[2])

        def take_forks(state: dict = state) -> list[str]:
            """The followers that asked for the weights so far since the last call (polled with should_stop)."""
            forks, state["forks"] = state["forks"], []
            return forks

        def report(kind: str, payload: Any, job_id: str = job_id) -> None:
            results.put((kind, index, job_id, payload))

        try:
            extra = {"take_forks": take_forks} if kind in SHAREABLE else {}
            result = RECIPES[kind](spec, report, should_stop, **extra)
            report("done", result)
        except Exception as e:  # a bad job fails alone; the worker goes on with the next one
            detail = traceback.format_exception_only(type(e), e)[-1].strip()
            report("failed", f"the job failed: {detail}")
        if state["exit"]:
            return

"""A class on one server: N students browse the lab while M press Train together (simulated browsers).

Starts the app as a subprocess, plays the students with dashboard/st_client.py (Streamlit's own websocket
protocol, every student in this one asyncio process, no browser: the times are the server's), stops the app
and its worker processes, and prints per trainee the time from the click to "Your model" and whether the run
did all its steps, the browsing p50 / p90 / max per page (and the first page, the class arriving), the errors
seen, the server's peak memory and CPU (the streamlit process and its children), and this process's own
event-loop lag (large lag: the client, not the server, adds to the times)::

    python benchmarks/classroom.py --browsers 2 --trainers 2 --steps 200          # smoke run
    python benchmarks/classroom.py --browsers 1 --trainers 10 --json /tmp/c10.json  # 10 press Train together
    python benchmarks/classroom.py --browsers 1 --trainers 30 --json /tmp/c30.json  # 30 press Train together
    python benchmarks/classroom.py --browsers 30 --trainers 0                       # 30 open the link together
    python benchmarks/classroom.py --browsers 30 --arrival staggered --stagger 60   # ... or over a minute
    python benchmarks/classroom.py --browser-check 3 --steps 400                    # cross-check: real Chromium

The scenario: every student opens the link at once (``--arrival together``) or one after another, evenly
over ``--stagger`` seconds. Browsers land on Home, then visit the pages in a loop (each starts at another
page), ``--think`` seconds between visits. Trainers open the Train page, set "Training steps" when
``--steps`` is given (else the page default, 1,600), and once every student has a first page they press
Train at the same moment, then wait for "Your model" (fragment auto-reruns answered like a browser). The
outcome is read from the page: "finished N steps" is a complete run, "time budget ... reached" a cut one.
Browsing goes on for ``--duration`` seconds after the last trainer is done (with no trainers: after the
last arrival). "during training" rows only count visits that overlap the time from the click to the last
trainer's model.

Server figures: every 0.5 s the process tree of the streamlit process is read from /proc: peak RSS is the
largest sum of VmRSS over the tree seen in one sample (VmHWM summed per process is an upper bound), and CPU
is utime + stime (+ the cutime/cstime of children already reaped) of the tree, from the first client to
the end of the run; start-up (import, cache warming, worker start) is shown apart.

Before the class (``--no-reference`` skips it) one Train job runs alone in a fresh process with one torch thread,
through the worker's recipe: the unit of the trainers' times on this host today, printed with what first come
first served makes of it at best (N equal jobs on W workers: job i finishes after i // W + 1 job-times).

``--browser-check K`` runs instead a small real-browser cross-check: K Chromium contexts (Debian's
/usr/bin/chromium through Playwright, see shared/STACK-NOTES.md) open the Train page, press Train and wait
for "Your model". ``--app-root DIR`` serves another copy of the repository (e.g. an older commit from
``git archive``) with this interpreter, for before/after figures; ``--workers W`` sets
DIFFUSION_LAB_WORKERS for the server's job runner. Every trainer presses Train on the page's defaults, so by default
their jobs are identical and share one run (dashboard/jobs/runner.py); ``--no-share`` (DIFFUSION_LAB_SHARE=0)
makes each train on its own, the cost of a class whose students all chose different settings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/classroom.py` from anywhere
    sys.path.insert(0, str(ROOT))

from dashboard.st_client import LoopLag, StreamlitClient  # noqa: E402

BROWSE = ("schedules", "forward", "reverse", "score_field", "samplers", "mnist", "baselines", "home")
MODEL_TEXT = "Your model"
FINISHED = re.compile(r"finished ([\d,]+) steps")
BUDGET = re.compile(r"time budget of ([\d.]+) ?s reached after ([\d,]+) steps")
STOPPED = re.compile(r"stopped by request after ([\d,]+) steps")
TOOK = re.compile(r" in ([\d.]+) s\.\s*$")  # the end of the outcome line: the training's own time
QUEUED = re.compile(r"Waiting in the queue: number (\d+) of (\d+)")
RUNNING = re.compile(r"step [\d,]+ of [\d,]+")
REFUSED = ("Not started:", "No model:")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the server and its process tree ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, cpu ticks = utime + stime + cutime + cstime, start time) from /proc/<pid>/stat, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = data[data.rfind(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces
    # fields[0] is the state (stat field 3): ppid is field 4, utime..cstime 14..17, starttime 22
    return fields[0], int(fields[1]), sum(int(x) for x in fields[11:15]), int(fields[19])


def _read_mem(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB from /proc/<pid>/status; zeros for a process that has gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


class TreeMonitor:
    """Samples the memory and CPU of a process and all its descendants every ``interval`` seconds (a thread)."""

    def __init__(self, root_pid: int, interval: float = 0.5) -> None:
        self.root = root_pid
        self.interval = interval
        self.t0 = time.perf_counter()
        self.samples: list[dict[str, float]] = []
        self.peak_rss_kb = 0
        self.peak_rss_at = 0.0
        self.peak_rss_procs = 0
        self.peak_hwm_kb = 0
        self.max_procs = 0
        self.seen: dict[int, tuple[int, str]] = {}  # pid -> (start time, command line): every process of the tree
        self.marks: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tree-monitor", daemon=True)

    def tree(self) -> dict[int, tuple[int, int]]:
        """pid -> (cpu ticks, start time) for the root and every live descendant."""
        stats: dict[int, tuple[str, int, int, int]] = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                s = _read_stat(int(name))
                if s is not None:
                    stats[int(name)] = s
        if self.root not in stats:
            return {}
        children: dict[int, list[int]] = {}
        for pid, (_, ppid, _, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        out, todo = {}, [self.root]
        while todo:
            pid = todo.pop()
            out[pid] = stats[pid][2:]
            todo.extend(children.get(pid, []))
        return out

    def sample(self) -> dict[str, float] | None:
        tree = self.tree()
        if not tree:
            return None
        rss = hwm = 0
        for pid in tree:
            r, h = _read_mem(pid)
            rss, hwm = rss + r, hwm + h
        cpu_root = tree[self.root][0] / CLK_TCK
        cpu_all = sum(ticks for ticks, _ in tree.values()) / CLK_TCK
        now = time.perf_counter() - self.t0
        s = {"t": round(now, 2), "rss_mb": round(rss / 1024, 1), "procs": len(tree),
             "cpu_s": round(cpu_all, 2), "cpu_server_s": round(cpu_root, 2)}
        with self._lock:
            for pid, (_, start) in tree.items():
                if pid not in self.seen or self.seen[pid][0] != start:
                    self.seen[pid] = (start, _cmdline(pid))
            self.samples.append(s)
            if rss > self.peak_rss_kb:
                self.peak_rss_kb, self.peak_rss_at, self.peak_rss_procs = rss, now, len(tree)
            self.peak_hwm_kb = max(self.peak_hwm_kb, hwm)
            self.max_procs = max(self.max_procs, len(tree))
        return s

    def mark(self, name: str) -> None:
        """Remember the tree's CPU and the time now under ``name`` (e.g. "start", "end")."""
        s = self.sample()
        if s is not None:
            self.marks[name] = s

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception as e:  # never let a /proc race end the sampling
                print(f"# monitor: {e!r}", file=sys.stderr)

    def start(self) -> TreeMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def summary(self, since: str = "start", until: str = "end") -> dict[str, Any]:
        a, b = self.marks.get(since), self.marks.get(until)
        up = self.marks.get("healthy")
        out = {"peak_rss_mb": round(self.peak_rss_kb / 1024, 1), "peak_rss_at_s": round(self.peak_rss_at, 1),
               "peak_rss_procs": self.peak_rss_procs, "peak_hwm_sum_mb": round(self.peak_hwm_kb / 1024, 1),
               "max_procs": self.max_procs, "processes_seen": len(self.seen), "samples": len(self.samples)}
        if a and b:
            out |= {"cpu_s": round(b["cpu_s"] - a["cpu_s"], 1),
                    "cpu_server_s": round(b["cpu_server_s"] - a["cpu_server_s"], 1),
                    "wall_s": round(b["t"] - a["t"], 1)}
            out["cpu_children_s"] = round(out["cpu_s"] - out["cpu_server_s"], 1)
        if up:
            out["startup_cpu_s"] = up["cpu_s"]
            out["startup_wall_s"] = up["t"]
        return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:160]
    except OSError:
        return ""


def _start_time(pid: int) -> int | None:
    """The start time of a live process (None for one that has gone, or a zombie)."""
    s = _read_stat(pid)
    return None if s is None or s[0] in "ZX" else s[3]


class Server:
    """``streamlit run dashboard/app.py`` as a subprocess in its own process group, with a TreeMonitor."""

    def __init__(self, app_root: Path, port: int, workers: int | None, log_path: Path, share: bool = True) -> None:
        self.app_root, self.port, self.log_path = app_root, port, log_path
        self.url = f"http://127.0.0.1:{port}"
        env = dict(os.environ)
        if workers is not None:
            env["DIFFUSION_LAB_WORKERS"] = str(workers)
        if not share:
            env["DIFFUSION_LAB_SHARE"] = "0"
        self._log = open(log_path, "w")  # closed in stop()
        cmd = [sys.executable, "-m", "streamlit", "run", str(app_root / "dashboard" / "app.py"),
               "--server.headless", "true", "--server.port", str(port), "--browser.gatherUsageStats", "false"]
        self.proc = subprocess.Popen(cmd, cwd=app_root, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.monitor = TreeMonitor(self.proc.pid).start()

    def wait_healthy(self, timeout: float = 120) -> float:
        t0 = time.perf_counter()
        while True:
            try:
                if urllib.request.urlopen(self.url + "/_stcore/health", timeout=2).read() == b"ok":
                    self.monitor.mark("healthy")
                    return time.perf_counter() - t0
            except OSError:
                pass
            if self.proc.poll() is not None or time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"the Streamlit server did not start (exit {self.proc.poll()}); "
                                   f"log {self.log_path}:\n{self.log_tail()}")
            time.sleep(0.3)

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20) -> list[str]:
        """SIGTERM the server, SIGKILL its group after ``timeout``, then any process of its tree still alive
        (checked by start time, so a reused pid is never hit); returns what had to be killed."""
        self.monitor.stop()
        with contextlib.suppress(Exception):
            self.monitor.sample()
        known = dict(self.monitor.seen)
        killed: list[str] = []
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                killed.append(f"{self.proc.pid} (server, after {timeout:.0f} s)")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        deadline = time.time() + 10
        for pid, (start, cmd) in known.items():
            while pid != self.proc.pid and _start_time(pid) == start and time.time() < deadline:
                time.sleep(0.2)  # workers usually exit right after the server
            if pid != self.proc.pid and _start_time(pid) == start:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(f"{pid} ({cmd[:60]})")
        self._log.close()
        return killed


# --- statistics ------------------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear between order statistics; None for no values."""
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def dist(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50": pct(values, 50), "p90": pct(values, 90), "max": max(values, default=None)}


def fmt_s(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def fmt_dist(d: dict[str, Any]) -> str:
    if not d["n"]:
        return "no visits"
    return f"p50 {fmt_s(d['p50'])} s, p90 {fmt_s(d['p90'])} s, max {fmt_s(d['max'])} s ({d['n']} visits)"


# --- the simulated class ---------------------------------------------------------------------------------------


@dataclass
class Visit:
    who: str
    page: str
    start: float  # seconds since the class began
    seconds: float
    first: bool = False
    status: str = ""
    error: str = ""


@dataclass
class Trainee:
    who: str
    open_s: float | None = None  # the Train page's first run (connect included)
    steps: int | None = None  # the slider's value when Train was pressed
    clicked_at: float | None = None  # seconds since the class began
    queued_s: float | None = None  # click -> first "Waiting in the queue" seen
    max_position: int | None = None  # the worst queue position seen
    running_s: float | None = None  # click -> first "step i of n" progress seen
    last_progress_s: float | None = None  # click -> last "step i of n" progress seen
    train_s: float | None = None  # the training's own time, as the page reports it ("... in 6.4 s.")
    model_s: float | None = None  # click -> "Your model" with its outcome on the page
    page_done_s: float | None = None  # click -> the page's last run after the model has finished
    outcome: str = ""  # finished / time budget / stopped / refused / error / timeout
    steps_done: int | None = None
    complete: bool = False
    message: str = ""
    exceptions: list[str] = field(default_factory=list)
    error: str = ""


class Class:
    """The students, the shared clock and what they record."""

    def __init__(self, url: str, args: argparse.Namespace) -> None:
        self.url, self.args = url, args
        self.t0 = time.perf_counter()
        self.visits: list[Visit] = []
        self.trainees: list[Trainee] = []
        self.errors: list[dict[str, Any]] = []
        self.arrived = 0
        self.everyone = args.browsers + args.trainers
        self.all_arrived = asyncio.Event()
        self.trainers_ready = 0
        self.press = asyncio.Event()
        self.stop = asyncio.Event()
        self.click_at: float | None = None
        self.trainers_finished = 0
        self.trainers_done_at: float | None = None

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def delay(self, index: int) -> float:
        if self.args.arrival == "together" or self.everyone <= 1:
            return 0.0
        return self.args.stagger * index / (self.everyone - 1)

    def error(self, who: str, page: str, what: str) -> None:
        self.errors.append({"who": who, "page": page, "at_s": round(self.now(), 2), "error": what[:500]})

    def arrive(self) -> None:
        self.arrived += 1
        if self.arrived >= self.everyone:
            self.all_arrived.set()

    async def visit(self, client: StreamlitClient, who: str, page: str, first: bool = False,
                    connect: bool = False) -> Visit:
        start = self.now()
        t = time.perf_counter()
        v = Visit(who, page, round(start, 3), 0.0, first)
        try:
            if first or connect:
                await client.connect()  # a first page includes the websocket handshake, as in a browser
            run = await client.open("" if page == "home" else page, timeout=self.args.page_timeout)
            v.seconds, v.status = time.perf_counter() - t, run.status
            problems = [f"exception: {e}" for e in run.exceptions]
            if run.page_not_found:
                problems.append(f"page not found: {run.page_not_found}")
            if run.status != "FINISHED_SUCCESSFULLY":
                problems.append(f"run ended {run.status}")
            for p in problems:
                self.error(who, page, p)
            v.error = "; ".join(problems)
        except Exception as e:
            v.seconds, v.error = time.perf_counter() - t, f"{type(e).__name__}: {e}"
            self.error(who, page, v.error)
        self.visits.append(v)
        return v

    async def browser(self, i: int) -> None:
        who = f"browser{i}"
        await asyncio.sleep(self.delay(self.args.trainers + i))  # trainers arrive first when staggered
        client = StreamlitClient(self.url, timeout=self.args.page_timeout, name=who)
        try:
            await self.visit(client, who, "home", first=True)
            self.arrive()
            k = i
            while not self.stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self.args.think)
                if self.stop.is_set():
                    break
                if not client.connected:  # a failed visit left the tab broken: open a new one
                    await client.close()
                    client = StreamlitClient(self.url, timeout=self.args.page_timeout, name=who)
                    await self.visit(client, who, "home", connect=True)
                    continue
                await self.visit(client, who, BROWSE[k % len(BROWSE)])
                k += 1
        finally:
            await client.close()

    async def trainer(self, i: int) -> None:
        who = f"trainer{i}"
        rec = Trainee(who)
        self.trainees.append(rec)
        await asyncio.sleep(self.delay(i))
        client = StreamlitClient(self.url, timeout=self.args.page_timeout, name=who)
        arrived = counted = False
        try:
            v = await self.visit(client, who, "train", first=True)
            rec.open_s = v.seconds
            self.arrive()
            arrived = True
            if v.error and not client.connected:
                raise RuntimeError(f"the Train page did not open: {v.error}")
            if self.args.steps:
                await client.set_widget("Training steps", self.args.steps, timeout=self.args.page_timeout)
            if self.args.budget:
                await client.set_widget("Time budget (s)", self.args.budget, timeout=self.args.page_timeout)
            rec.steps = int(client.widget("Training steps").value)
            counted = True
            await self.ready()
            await self.press.wait()
            await self.train(client, rec)
        except Exception as e:
            rec.outcome = rec.outcome or "error"
            rec.error = f"{type(e).__name__}: {e}"[:500]
            self.error(who, "train", rec.error)
        finally:
            if not arrived:
                self.arrive()
            if not counted:  # a trainer that failed before the click must not hold the others back
                await self.ready()
            self.trainers_finished += 1
            if self.trainers_finished >= self.args.trainers:
                self.trainers_done_at = self.now()
        await self.stop.wait()  # keep the tab (and its session) open until the class ends
        await client.close()

    async def ready(self) -> None:
        """A trainer is ready to press Train; the last one waits until every student has a first page (the
        teacher says "now press Train") and gives the signal."""
        self.trainers_ready += 1
        if self.trainers_ready >= self.args.trainers:
            await self.all_arrived.wait()
            self.click_at = self.now()
            self.press.set()

    async def train(self, client: StreamlitClient, rec: Trainee) -> None:
        t0 = time.perf_counter()
        rec.clicked_at = round(self.now(), 3)
        click = asyncio.create_task(client.click("Train", timeout=self.args.timeout))  # old page: the whole run

        def settled(c: StreamlitClient) -> bool:
            texts = c.live_texts()
            elapsed = time.perf_counter() - t0
            for t in texts:
                m = QUEUED.search(t)
                if m:
                    rec.queued_s = rec.queued_s if rec.queued_s is not None else elapsed
                    rec.max_position = max(rec.max_position or 0, int(m.group(1)))
                elif RUNNING.search(t):
                    rec.running_s = elapsed if rec.running_s is None else rec.running_s
                    rec.last_progress_s = elapsed
            if c.exceptions or any(t.startswith(REFUSED) for t in texts):
                return True
            return any(MODEL_TEXT in t for t in texts) and any(
                FINISHED.search(t) or BUDGET.search(t) or STOPPED.search(t) for t in texts)

        try:
            await client.wait_for(settled, timeout=self.args.timeout)
        except TimeoutError:
            rec.outcome = "timeout"
            shown = [t for t in client.live_texts() if QUEUED.search(t) or RUNNING.search(t)]
            raise TimeoutError(f"no model after {self.args.timeout:g} s; the page shows "
                               f"{shown[-1][:100] if shown else 'no queue notice or progress'}") from None
        finally:
            if not click.done() and rec.outcome == "timeout":
                click.cancel()
            if click.done():
                with contextlib.suppress(BaseException):
                    await click  # retrieved: a timed-out click must not log "exception never retrieved"
        rec.model_s = time.perf_counter() - t0 if any(MODEL_TEXT in t for t in client.live_texts()) else None
        texts = client.live_texts()
        rec.exceptions = list(client.exceptions)
        refused = [t for t in texts if t.startswith(REFUSED)]
        status = next((t for t in texts if FINISHED.search(t) or BUDGET.search(t) or STOPPED.search(t)), "")
        rec.message = (status or "; ".join(refused) or "; ".join(rec.exceptions))[:300]
        if m := TOOK.search(status):
            rec.train_s = float(m.group(1))
        if m := FINISHED.search(status):
            rec.outcome, rec.steps_done = "finished", int(m.group(1).replace(",", ""))
        elif m := BUDGET.search(status):
            rec.outcome, rec.steps_done = "time budget", int(m.group(2).replace(",", ""))
        elif m := STOPPED.search(status):
            rec.outcome, rec.steps_done = "stopped", int(m.group(1).replace(",", ""))
        elif refused:
            rec.outcome = "refused"
        else:
            rec.outcome = "exception"
        rec.complete = rec.outcome == "finished" and rec.steps_done == rec.steps
        for e in rec.exceptions:
            self.error(rec.who, "train", f"exception: {e}")
        if refused:
            self.error(rec.who, "train", "; ".join(refused))
        try:  # the rest of the page (final samples, quality metrics) after the model
            await asyncio.wait_for(asyncio.shield(click), self.args.timeout)
            await client.wait_idle(timeout=self.args.page_timeout)
            rec.page_done_s = time.perf_counter() - t0
        except Exception as e:
            self.error(rec.who, "train", f"after the model: {type(e).__name__}: {e}")
        if not click.done():
            click.cancel()
        with contextlib.suppress(BaseException):
            await click

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.trainer(i)) for i in range(self.args.trainers)]
        tasks += [asyncio.create_task(self.browser(i)) for i in range(self.args.browsers)]
        deadline = self.t0 + self.args.max_seconds
        if self.everyone:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.all_arrived.wait(), max(0.0, deadline - time.perf_counter()))
        if self.args.trainers:
            while self.trainers_done_at is None and time.perf_counter() < deadline:
                await asyncio.sleep(0.2)
        end = min(time.perf_counter() + self.args.duration, deadline)
        while time.perf_counter() < end:
            await asyncio.sleep(0.2)
        self.stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- the report --------------------------------------------------------------------------------------------------


REFERENCE_JOB = """
import json, sys, time, torch
torch.set_num_threads(1)
from core.schedules import make_schedule
from core.train_2d import DEFAULT_2D_TRAIN, DEFAULT_MLP
from dashboard.jobs.recipes import train_2d, warm_up
from dashboard.ui import train as live
warm_up()
spec = live.job_spec("eight_gaussians", {"kind": "toy", "name": "eight_gaussians"}, make_schedule("cosine", 1000),
                     live.default_config(int(sys.argv[1]) or DEFAULT_2D_TRAIN.steps, 3600, 0), dict(DEFAULT_MLP), {})
t0, c0 = time.perf_counter(), time.process_time()
out = train_2d(spec, lambda kind, payload: None, lambda: False)
print(json.dumps({"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                  "train_s": out["train_seconds"], "steps": out["steps_done"]}))
"""


def reference_job(app_root: Path, steps: int) -> dict[str, float]:
    """One Train-page job (the page's default data, schedule and network; ``steps`` steps) alone on this host, in a
    fresh process with one torch thread as a worker has, through the worker's own recipe: the unit that the class's
    times are made of, measured just before the class (this host's speed varies from run to run). ``steps`` 0:
    the page's default."""
    done = subprocess.run([sys.executable, "-c", REFERENCE_JOB, str(steps)], cwd=app_root, capture_output=True,
                          text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def queue_bound(n: int, workers: int) -> tuple[float, int]:
    """n equal jobs on ``workers`` workers, first come first served, all submitted at once: the median and the
    largest finishing time, in job-times (job i finishes after i // workers + 1 of them)."""
    finish = [i // workers + 1 for i in range(n)]
    return statistics.median(finish), max(finish)


def report(cls: Class, server: dict[str, Any], lag: LoopLag, meta: dict[str, Any]) -> dict[str, Any]:
    args = cls.args
    first = [v.seconds for v in cls.visits if v.first and v.page == "home" and not v.error]
    later = [v for v in cls.visits if not v.first and v.page != "train"]
    ok_later = [v for v in later if not v.error]
    t_from = cls.click_at
    t_to = cls.trainers_done_at
    during = [v for v in ok_later if t_from is not None and t_to is not None
              and v.start < t_to and v.start + v.seconds > t_from]
    per_page = {p: dist([v.seconds for v in ok_later if v.page == p]) for p in BROWSE}
    models = [t.model_s for t in cls.trainees if t.model_s is not None]
    out = {
        "meta": meta, "args": vars(args),
        "trainers": [asdict(t) for t in sorted(cls.trainees, key=lambda t: int(t.who[7:]))],
        "trainers_summary": {"n": len(cls.trainees), "complete": sum(t.complete for t in cls.trainees),
                             "median_s": statistics.median(models) if models else None,
                             "max_s": max(models, default=None), "click_at_s": t_from, "done_at_s": t_to},
        "first_page": dist(first), "browsing": dist([v.seconds for v in ok_later]),
        "browsing_during_training": dist([v.seconds for v in during]), "per_page": per_page,
        "errors": cls.errors, "server": server,
        "client_loop_lag_ms": {"max": round(lag.max * 1e3, 1), "mean": round(lag.mean * 1e3, 2),
                               "p99": round((pct(lag.samples, 99) or 0) * 1e3, 1)},
        "visits": [asdict(v) for v in cls.visits],
    }
    return out


def print_report(r: dict[str, Any]) -> None:
    a, m = r["args"], r["meta"]
    print(f"# classroom: {a['browsers']} browsing, {a['trainers']} training "
          f"({a['steps'] or 'default'} steps), arrival {a['arrival']}"
          + (f" over {a['stagger']:g} s" if a["arrival"] == "staggered" else "") + f", think {a['think']:g} s")
    print(f"# app {m['app_root']} ({m['version']}), {m['cpus']} CPUs, load average {m['load_before']} before, "
          f"{m['load_after']} after; server up in {m['startup_s']:.1f} s, workers={m['workers'] or 'default'}"
          + ("" if m.get("share", True) else ", identical jobs not shared"))
    if r["trainers"]:
        print()
        head = (f"{'trainer':<10} {'open s':>7} {'queued':>7} {'pos':>4} {'running':>8} {'train s':>8} "
                f"{'to model s':>11} {'page s':>7}  {'steps':>11}  outcome")
        print(head)
        print("-" * len(head))
        for t in r["trainers"]:
            steps = f"{t['steps_done'] if t['steps_done'] is not None else '-'}/{t['steps'] or '-'}"
            pos = t["max_position"] if t["max_position"] is not None else "-"
            print(f"{t['who']:<10} {fmt_s(t['open_s']):>7} {fmt_s(t['queued_s'], 1):>7} {pos:>4} "
                  f"{fmt_s(t['running_s'], 1):>8} {fmt_s(t['train_s'], 1):>8} "
                  f"{fmt_s(t['model_s'], 1):>11} {fmt_s(t['page_done_s'], 1):>7}  {steps:>11}  "
                  f"{'complete' if t['complete'] else t['outcome'] or 'no result'}"
                  + (f": {t['message'][:70]}" if not t["complete"] and t["message"] else "")
                  + (f": {t['error'][:90]}" if t["error"] else ""))
        s = r["trainers_summary"]
        print(f"trainers: click -> model median {fmt_s(s['median_s'], 1)} s, max {fmt_s(s['max_s'], 1)} s; "
              f"{s['complete']} of {s['n']} did all their steps")
        print("  (queued / running: click -> first queue notice / first progress; train s: as the page reports "
              "it; page s: click -> the page's last run done)")
        ref = r.get("reference")
        if ref:
            workers = m["workers"] or m["cpus"]
            med, last = queue_bound(s["n"], workers)
            print(f"one job alone on this host just before the class (one torch thread): {ref['seconds']:.1f} s "
                  f"(training {ref['train_s']:.1f} s, {1e3 * ref['train_s'] / max(ref['steps'], 1):.1f} ms/step); "
                  + (f"{s['n']} different jobs on {workers} workers, first come first served, finish at best at a "
                     f"median of {med:g} x = {med * ref['seconds']:.1f} s and the last at {last} x = "
                     f"{last * ref['seconds']:.1f} s" if not m.get("share", True) else
                     "identical jobs share one run: at best every model after one job-time"))
    print()
    print(f"first page (arrival): {fmt_dist(r['first_page'])}")
    print(f"browsing, all visits: {fmt_dist(r['browsing'])}")
    if r["trainers"]:
        print(f"browsing during training: {fmt_dist(r['browsing_during_training'])}")
    rows = [(p, d) for p, d in r["per_page"].items() if d["n"]]
    if rows:
        print("  per page: " + "; ".join(f"{p} {fmt_s(d['p50'])}/{fmt_s(d['max'])}" for p, d in rows)
              + "  (p50/max s)")
    errs = r["errors"]
    print(f"errors: {len(errs)}")
    for e in errs[:20]:
        print(f"  {e['at_s']:>7.1f} s  {e['who']:<10} {e['page']:<12} {e['error'][:150]}")
    if len(errs) > 20:
        print(f"  ... {len(errs) - 20} more (see --json)")
    s = r["server"]
    print(f"server: peak RSS {s['peak_rss_mb']:.0f} MB (sum over {s['peak_rss_procs']} processes at "
          f"{s['peak_rss_at_s']:.0f} s; summed VmHWM {s['peak_hwm_sum_mb']:.0f} MB; at most {s['max_procs']} "
          f"processes)")
    if "cpu_s" in s:
        print(f"server CPU: {s['cpu_s']:.1f} s over the {s['wall_s']:.0f} s run (web server process "
              f"{s['cpu_server_s']:.1f} s, children {s['cpu_children_s']:.1f} s); start-up "
              f"{s.get('startup_cpu_s', 0):.1f} s CPU in {s.get('startup_wall_s', 0):.1f} s")
    lag = r["client_loop_lag_ms"]
    print(f"client (this process, every student): event-loop lag max {lag['max']:.0f} ms, p99 {lag['p99']:.0f} ms, "
          f"mean {lag['mean']:.1f} ms; CPU {m['client_cpu_s']:.1f} s")
    if s.get("killed"):
        print(f"stopped by force: {', '.join(s['killed'])}")


# --- the real-browser cross-check ------------------------------------------------------------------------------


async def browser_check(url: str, k: int, args: argparse.Namespace) -> dict[str, Any]:
    """K Chromium contexts open the Train page, press Train together, wait for "Your model"; times per tab."""
    from playwright.async_api import async_playwright

    from tests.browser.harness import CHROMIUM, LAUNCH_ARGS

    query = "&".join(f"{n}={v}" for n, v in (("steps", args.steps), ("budget", args.budget)) if v)
    target = f"{url}/train" + (f"?{query}" if query else "")
    tabs: list[dict[str, Any]] = [{"who": f"chromium{i}"} for i in range(k)]

    async def idle(page, timeout: float) -> None:
        await page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=timeout * 1000)
        t0 = time.perf_counter()
        quiet = None
        while time.perf_counter() - t0 < timeout:
            status = page.locator('[data-testid="stStatusWidget"]')
            text = (await status.first.inner_text()) if await status.count() else ""
            busy = "Running" in text or "Stop" in text or await page.locator('[data-stale="true"]').count() > 0
            quiet = None if busy else (quiet or time.perf_counter())
            if quiet and time.perf_counter() - quiet > 0.4:
                return
            await page.wait_for_timeout(50)
        raise TimeoutError(f"still running after {timeout:.0f} s")

    async def open_tab(browser, tab: dict[str, Any]) -> Any:
        ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
        page = await ctx.new_page()
        t0 = time.perf_counter()
        await page.goto(target)
        await idle(page, args.page_timeout)
        tab["open_s"] = time.perf_counter() - t0
        return page

    async def train(page, tab: dict[str, Any]) -> None:
        button = page.get_by_role("button", name=re.compile(r"Train$"))
        t0 = time.perf_counter()
        await button.click()
        heading = page.get_by_text(MODEL_TEXT, exact=True)
        outcome = page.locator('[data-testid="stAlert"]').filter(has_text=re.compile("finished|time budget|stopped"))
        await heading.first.wait_for(timeout=args.timeout * 1000)
        await outcome.first.wait_for(timeout=args.page_timeout * 1000)
        tab["model_s"] = time.perf_counter() - t0
        text = await outcome.first.inner_text()
        tab["message"] = text.strip()[:300]
        m = FINISHED.search(text)
        tab["steps_done"] = int(m.group(1).replace(",", "")) if m else None
        tab["complete"] = bool(m) and (not args.steps or tab["steps_done"] == args.steps)
        await idle(page, args.page_timeout)
        tab["page_done_s"] = time.perf_counter() - t0
        boxes = page.locator('[data-testid="stException"]')
        tab["exceptions"] = [(await boxes.nth(i).inner_text())[:300] for i in range(await boxes.count())]

    async def guarded(coro, tab: dict[str, Any]) -> Any:
        try:
            return await coro
        except Exception as e:
            tab["error"] = f"{type(e).__name__}: {e}"[:400]
            return None

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        pages = await asyncio.gather(*(guarded(open_tab(browser, t), t) for t in tabs))
        await asyncio.gather(*(guarded(train(pg, t), t) for pg, t in zip(pages, tabs, strict=True) if pg))
        await browser.close()
    return {"url": target, "tabs": tabs}


def print_browser_check(r: dict[str, Any]) -> None:
    print(f"# browser check: {len(r['tabs'])} Chromium contexts on {r['url']}")
    head = f"{'tab':<10} {'open s':>7} {'to model s':>11} {'page s':>7}  outcome"
    print(head)
    print("-" * len(head))
    for t in r["tabs"]:
        outcome = t.get("error") or ("complete" if t.get("complete") else t.get("message", "no result"))
        if t.get("exceptions"):
            outcome += f"; exceptions: {t['exceptions']}"
        print(f"{t['who']:<10} {fmt_s(t.get('open_s')):>7} {fmt_s(t.get('model_s'), 1):>11} "
              f"{fmt_s(t.get('page_done_s'), 1):>7}  {outcome[:120]}")
    models = [t["model_s"] for t in r["tabs"] if "model_s" in t]
    print(f"click -> model median {fmt_s(statistics.median(models) if models else None, 1)} s, max "
          f"{fmt_s(max(models, default=None), 1)} s; {sum(bool(t.get('complete')) for t in r['tabs'])} of "
          f"{len(r['tabs'])} complete")


# --- main ----------------------------------------------------------------------------------------------------------


def _version(root: Path) -> str:
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (head + (" + uncommitted changes" if dirty else "")) if head else "not a git checkout"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def _simulate(url: str, args: argparse.Namespace) -> tuple[Class, LoopLag, float]:
    cls = Class(url, args)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    async with LoopLag() as lag:
        await cls.run()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    return cls, lag, cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime


async def teacher_visit(url: str) -> None:
    """One visit of Home before the class: a server warms its default views at its first script run."""
    async with StreamlitClient(url, auto_rerun=False, name="teacher") as client:
        await client.open("")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="See the module docstring for the scenario and the figures.")
    ap.add_argument("--browsers", type=int, default=2, help="students who browse the pages (default 2)")
    ap.add_argument("--trainers", type=int, default=2, help="students who press Train together (default 2)")
    ap.add_argument("--steps", type=int, default=None,
                    help='the "Training steps" slider (100..6000, steps of 100); default: the page default, 1600')
    ap.add_argument("--budget", type=int, default=None, help='the "Time budget (s)" slider; default: the page\'s')
    ap.add_argument("--duration", type=float, default=20.0,
                    help="seconds of browsing after the last trainer is done (no trainers: after the last arrival)")
    ap.add_argument("--arrival", choices=("together", "staggered"), default="together",
                    help="open the link all at once, or one after another over --stagger seconds")
    ap.add_argument("--stagger", type=float, default=30.0, help="seconds over which a staggered class arrives")
    ap.add_argument("--settle", type=float, default=0.0,
                    help="seconds between the teacher's first visit (which starts the server's warm-up) and the "
                         "first student; 0: no teacher visit, the first student starts the warm-up")
    ap.add_argument("--think", type=float, default=1.0, help="seconds a browsing student waits between pages")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds a trainer waits for its model")
    ap.add_argument("--page-timeout", type=float, default=180.0, help="seconds a page visit may take")
    ap.add_argument("--max-seconds", type=float, default=1800.0, help="cap on the whole class")
    ap.add_argument("--port", type=int, default=None, help="server port (default: a free one)")
    ap.add_argument("--workers", type=int, default=None, help="DIFFUSION_LAB_WORKERS for the server's job runner")
    ap.add_argument("--share", action=argparse.BooleanOptionalAction, default=True,
                    help="identical jobs share one run (the app's default); --no-share: each trains on its own, "
                         "as students with ten different settings would")
    ap.add_argument("--app-root", type=Path, default=ROOT, help="the repository to serve (default: this one)")
    ap.add_argument("--browser-check", type=int, default=0, metavar="K",
                    help="instead: K real Chromium tabs press Train on the Train page")
    ap.add_argument("--json", type=Path, default=None, help="write every figure (and every visit) here")
    ap.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True,
                    help="time one Train job alone before the class, the unit of the trainers' times (with trainers)")
    args = ap.parse_args()
    if args.steps is not None and not (100 <= args.steps <= 6000 and args.steps % 100 == 0):
        ap.error("--steps must be a multiple of 100 between 100 and 6000 (the slider's range)")

    app_root = args.app_root.resolve()
    port = args.port or free_port()
    log = Path(f"/tmp/classroom-{port}.log")
    reference = None
    if args.reference and args.trainers and not args.browser_check:
        reference = reference_job(app_root, args.steps or 0)
    load_before = _load()
    server = Server(app_root, port, args.workers, log, share=args.share)
    killed: list[str] = []
    try:
        startup = server.wait_healthy()
        if args.settle:  # the teacher opens the link first (the projector): that first run starts the warm-up
            asyncio.run(teacher_visit(server.url))
        time.sleep(args.settle)  # ... and the class arrives after it (the warm-up visits every page once)
        server.monitor.mark("start")
        if args.browser_check:
            result: dict[str, Any] = asyncio.run(browser_check(server.url, args.browser_check, args))
            server.monitor.mark("end")
            print_browser_check(result)
            summary = server.monitor.summary()
        else:
            cls, lag, client_cpu = asyncio.run(_simulate(server.url, args))
            server.monitor.mark("end")
            summary = server.monitor.summary()
    except BaseException:
        print(f"# server log ({log}):\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        killed = server.stop()
    summary["killed"] = killed
    meta = {"app_root": str(app_root), "version": _version(app_root), "cpus": os.cpu_count(),
            "load_before": load_before, "load_after": _load(), "startup_s": round(startup, 2),
            "workers": args.workers, "share": args.share, "url": server.url, "log": str(log), "python": sys.executable}
    if args.browser_check:
        result |= {"meta": meta, "server": summary, "args": {k: str(v) for k, v in vars(args).items()}}
        s = summary
        print(f"server: peak RSS {s['peak_rss_mb']:.0f} MB over {s['peak_rss_procs']} processes; CPU "
              f"{s.get('cpu_s', 0):.1f} s in {s.get('wall_s', 0):.0f} s (children {s.get('cpu_children_s', 0):.1f} s)")
    else:
        meta["client_cpu_s"] = round(client_cpu, 1)
        result = report(cls, summary, lag, meta)
        result["reference"] = reference
        result["args"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        print_report(result)
    result["server_samples"] = server.monitor.samples
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
        print(f"# figures written to {args.json}")


if __name__ == "__main__":
    main()

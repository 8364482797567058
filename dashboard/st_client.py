"""A simulated browser tab for a Streamlit 1.67 app: Streamlit's own websocket protocol, no browser.

Many clients run in one asyncio process, so a load test can play a whole class of students at once::

    client = StreamlitClient("http://127.0.0.1:8611")  # one tab = one Streamlit session
    await client.connect()
    run = await client.open("schedules", query="T=500")  # url pathname, "" for Home
    run.seconds, run.texts, run.widgets, run.exceptions
    await client.set_widget("Number of steps T", 300)
    await client.click("Train")
    await client.wait_for_text("Your model", timeout=300)
    await client.close()

Smoke run against a running app::

    python dashboard/st_client.py --url http://127.0.0.1:8611 --page schedules [--query T=500] [--clients 5]

What it does like the browser (read from streamlit/runtime/app_session.py, web/server/starlette/ and the
front end bundled in streamlit/static): it connects to ``/_stcore/stream`` with the ``streamlit``
subprotocol, sends ``rerun_script`` BackMsgs carrying the full ClientState (query string, page, every
widget's current value, fragment id, context info, the hashes of the ForwardMsgs it has cached), keeps
the page as a tree of elements built from ``delta`` messages (stale elements removed when a run ends,
as the browser does), follows ``page_info_changed`` (the URL's query string) and ``navigation`` (the
pages and the current page), answers ``auto_rerun`` with timed fragment reruns like the browser's
setInterval (cleared on a full run, a page change or ``stop_auto_rerun``), and keeps the browser's
ForwardMsg cache (``ref_hash`` messages resolved from it, entries expire after ``max_cached_message_age``
runs). Not emulated: static files and the HTTP requests a page load makes besides the websocket, file
uploads, chart/dataframe selections, custom components, chat input, date/time widgets (set them with a
raw ``WidgetState``), reconnection, heartbeats (the browser sends them only when embedded).

Timing: ``RunResult.seconds`` runs from just before the BackMsg is sent to the moment this process reads
the ``script_finished`` message, so it includes the message transfer (loopback) and any lag of this
process's event loop; ``loop_lag`` measures that lag, report it next to the times.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Block_pb2 import Block
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

_LOG = logging.getLogger(__name__)

FINAL = {
    ForwardMsg.FINISHED_SUCCESSFULLY: "FINISHED_SUCCESSFULLY",
    ForwardMsg.FINISHED_WITH_COMPILE_ERROR: "FINISHED_WITH_COMPILE_ERROR",
    ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY: "FINISHED_FRAGMENT_RUN_SUCCESSFULLY",
}
BUTTONS = {"button", "download_button", "link_button", "page_link"}


# --- results -----------------------------------------------------------------------------------------------


@dataclass
class Widget:
    """A widget on the page: its element ``id``, proto ``type`` (``slider``, ``selectbox``...), label, value."""

    id: str
    type: str
    label: str
    value: Any
    fragment_id: str = ""
    form_id: str = ""
    disabled: bool = False
    options: list[str] = field(default_factory=list)
    proto: Any = field(default=None, repr=False)


@dataclass
class Timing:
    """One request's times, kept for every request in ``StreamlitClient.timings`` (auto reruns included)."""

    kind: str  # open / rerun / set_widget / click / auto_rerun
    seconds: float  # request sent -> script_finished read
    first_delta_seconds: float | None  # request sent -> first delta of its run read
    status: str
    fragment_ids: list[str]
    sent_at: float  # time.perf_counter() when it was sent
    runs: int  # script runs it spanned (> 1: interrupted by a rerun and carried on)


@dataclass
class RunResult:
    """What a request produced: the page as the browser shows it once the run ended, and the times."""

    seconds: float
    first_delta_seconds: float | None
    status: str
    texts: list[str]
    exceptions: list[str]
    widgets: dict[str, Widget]
    code: list[str]
    elements: Counter
    page: str  # url pathname of the page shown ("" for the default page)
    page_script_hash: str
    query_string: str
    fragment_ids: list[str]
    runs: int
    messages: int  # ForwardMsgs read while the request was open
    bytes: int
    ref_hits: int  # ForwardMsgs sent as a ref_hash and read from the cache
    page_not_found: str | None = None  # the page asked for when the server showed the default instead
    server_exec_seconds: float | None = None  # from page_profile, sent only when usage stats are on

    def has_text(self, text: str) -> bool:
        """Whether ``text`` is a substring of one of the page's texts."""
        return any(text in t for t in self.texts)


# --- the page tree -----------------------------------------------------------------------------------------


@dataclass
class _Node:
    proto: Element | Block | None  # None: a placeholder (a root, or a transient's missing anchor)
    run_id: str
    fragment_id: str
    script_hash: str
    children: dict[int, _Node] = field(default_factory=dict)
    transient: list[Element] = field(default_factory=list)

    @property
    def is_block(self) -> bool:
        return self.proto is None or isinstance(self.proto, Block)

    @property
    def type(self) -> str:
        if self.proto is None:
            return ""
        return self.proto.WhichOneof("type") or ""


def _walk(nodes: dict[int, _Node]) -> Iterator[_Node]:
    for i in sorted(nodes):
        node = nodes[i]
        yield node
        yield from _walk(node.children)


def _element_texts(el: Element) -> Iterator[str]:
    kind = el.WhichOneof("type")
    if kind is None:
        return
    p = getattr(el, kind)
    if kind in ("markdown", "heading", "text", "alert", "toast"):
        yield p.body
    elif kind == "exception":
        yield f"{p.type}: {p.message}" if p.type else p.message
    elif kind == "metric":
        yield f"{p.label}: {p.body}" + (f" ({p.delta})" if p.delta else "")
    elif kind in ("progress", "spinner"):
        if p.text:
            yield p.text
    elif hasattr(p, "label") and p.label:  # widgets, buttons, page links
        yield p.label


def _block_texts(b: Block) -> Iterator[str]:
    kind = b.WhichOneof("type")
    p = getattr(b, kind) if kind else None
    for name in ("label", "title"):
        if p is not None and getattr(p, name, ""):
            yield getattr(p, name)


# --- widget states -----------------------------------------------------------------------------------------


def _state_value(ws: WidgetState) -> Any:
    kind = ws.WhichOneof("value")
    if kind is None:
        return None
    v = getattr(ws, kind)
    if kind in ("double_array_value", "int_array_value", "string_array_value"):
        return list(v.data)
    return v


def _initial_state(kind: str, p: Any) -> WidgetState | None:
    """The state the browser registers when a widget appears (``set_value`` wins, else the default)."""
    ws = WidgetState(id=p.id)
    if kind == "slider":
        if p.options:
            ws.string_array_value.data[:] = list(p.raw_value) if p.set_value else [p.options[int(i)] for i in p.default]
        else:
            ws.double_array_value.data[:] = list(p.value) if p.set_value else list(p.default)
    elif kind in ("selectbox", "radio"):
        if p.set_value and p.HasField("raw_value"):
            ws.string_value = p.raw_value
        elif p.HasField("default") and 0 <= p.default < len(p.options):
            ws.string_value = p.options[p.default]
        else:
            return None
    elif kind == "multiselect":
        ws.string_array_value.data[:] = list(p.raw_values) if p.set_value else [p.options[i] for i in p.default]
    elif kind == "number_input":
        if p.set_value and p.HasField("value"):
            v = p.value
        elif p.HasField("default"):
            v = p.default
        else:
            return None
        if p.data_type == type(p).INT:
            ws.int_value = int(v)
        else:
            ws.double_value = v
    elif kind == "checkbox":
        ws.bool_value = p.value if p.set_value else p.default
    elif kind in ("text_input", "text_area", "color_picker"):
        if p.set_value and p.HasField("value"):
            ws.string_value = p.value
        elif p.HasField("default"):
            ws.string_value = p.default
        else:
            return None
    else:
        return None
    return ws


def _python_value(kind: str, p: Any, ws: WidgetState | None) -> Any:
    v = None if ws is None else _state_value(ws)
    if kind == "slider" and isinstance(v, list):
        if not p.options and p.data_type == type(p).INT:
            v = [int(x) for x in v]
        return v[0] if len(v) == 1 else tuple(v)
    return v


def _new_state(w: Widget, value: Any) -> WidgetState:
    """The WidgetState the browser sends when the user sets ``w`` to ``value``."""
    if isinstance(value, WidgetState):
        ws = WidgetState()
        ws.CopyFrom(value)
        ws.id = w.id
        return ws
    p, ws = w.proto, WidgetState(id=w.id)
    if w.type == "slider":
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if p.options:
            bad = [v for v in values if str(v) not in p.options]
            if bad:
                raise ValueError(f"{w.label!r}: {bad} not among {list(p.options)}")
            ws.string_array_value.data[:] = [str(v) for v in values]
        else:
            for v in values:
                if not p.min - 1e-9 <= float(v) <= p.max + 1e-9:
                    raise ValueError(f"{w.label!r}: {v} outside [{p.min:g}, {p.max:g}]")
            ws.double_array_value.data[:] = [float(v) for v in values]
    elif w.type in ("selectbox", "radio"):
        option = p.options[value] if isinstance(value, int) and not isinstance(value, bool) else str(value)
        if option not in p.options and not getattr(p, "accept_new_options", False):
            raise ValueError(f"{w.label!r}: {value!r} not among {list(p.options)}")
        ws.string_value = option
    elif w.type == "multiselect":
        ws.string_array_value.data[:] = [str(v) for v in value]
    elif w.type == "number_input":
        if p.data_type == type(p).INT:
            ws.int_value = int(value)
        else:
            ws.double_value = float(value)
    elif w.type == "checkbox":
        ws.bool_value = bool(value)
    elif w.type in ("text_input", "text_area", "color_picker"):
        ws.string_value = str(value)
    else:
        raise NotImplementedError(f"{w.label!r} is a {w.type}: pass a streamlit.proto WidgetState instead")
    return ws


# --- requests ----------------------------------------------------------------------------------------------


@dataclass
class _Request:
    kind: str
    fragment_id: str | None
    sent_at: float
    future: asyncio.Future | None
    page_name: str = ""
    runs: int = 0
    first_delta_at: float | None = None
    messages: int = 0
    bytes: int = 0
    ref_hits: int = 0
    server_exec: float | None = None
    page_not_found: str | None = None


@dataclass
class _Run:
    run_id: str
    fragment_ids: list[str]
    started_at: float
    requests: list[_Request]
    finished: bool = False
    finished_at: float = 0.0
    status: str = ""


class StreamlitClient:
    """One simulated browser tab: one websocket, one Streamlit session, one page at a time.

    ``cache_messages`` keeps the browser's ForwardMsg cache (the server then sends large repeated
    elements as references); ``auto_rerun`` answers ``st.fragment(run_every=...)`` like the browser.
    Use one client per task; its methods are not meant to be awaited concurrently, except that
    ``wait_for_text`` may run while other calls are made.
    """

    def __init__(self, url: str = "http://127.0.0.1:8501", *, cache_messages: bool = True,
                 auto_rerun: bool = True, timeout: float = 120.0, name: str = "") -> None:
        parts = urlsplit(url if "//" in url else f"http://{url}")
        scheme = "wss" if parts.scheme in ("https", "wss") else "ws"
        self.base_path = parts.path.rstrip("/")
        self.http_url = f"{'https' if scheme == 'wss' else 'http'}://{parts.netloc}{self.base_path}"
        self.ws_url = f"{scheme}://{parts.netloc}{self.base_path}/_stcore/stream"
        self.cache_messages = cache_messages
        self.auto_rerun = auto_rerun
        self.timeout = timeout
        self.name = name
        self.session_id = ""
        self.main_script_hash = ""
        self.page_script_hash = ""
        self.query_string = ""
        self.pages: dict[str, Any] = {}  # url pathname -> AppPage proto (from the navigation message)
        self.timings: list[Timing] = []
        self.messages = 0
        self.bytes = 0
        self.cache_misses = 0
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task | None = None
        self._closed_error: BaseException | None = None
        self._roots: dict[int, _Node] = {}
        self._states: dict[str, WidgetState] = {}  # the browser's widget manager: id -> current value
        self._pending: list[_Request] = []
        self._run: _Run | None = None
        self._awaiting_exception: _Run | None = None
        self._auto: dict[str, tuple[float, asyncio.Task]] = {}
        self._cache: dict[str, list] = {}  # hash -> [serialized ForwardMsg, run count, fragment id]
        self._cache_runs = 0
        self._max_cached_age = 2
        self._navigated = False
        self._changed = asyncio.Event()
        self._reset_tree()

    # --- connection ---

    async def connect(self) -> None:
        """Open the websocket (the server creates the session; nothing runs until ``open``)."""
        if self._ws is not None:
            return
        self._ws = await connect(self.ws_url, subprotocols=["streamlit", "PLACEHOLDER_AUTH_TOKEN"],
                                 max_size=None, ping_interval=None, open_timeout=self.timeout)
        self._closed_error = None
        self._reader = asyncio.create_task(self._read(), name=f"st-client-read {self.name}")

    async def close(self) -> None:
        """Close the tab: stop the fragment timers and close the websocket."""
        self._stop_auto_reruns()
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._reader, 5)
            self._reader = None
        self._fail_pending(ConnectionError("client closed"))

    async def __aenter__(self) -> StreamlitClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """Whether the websocket is open."""
        return self._ws is not None and self._closed_error is None

    # --- what the user does ---

    async def open(self, page: str = "", query: str = "", timeout: float | None = None) -> RunResult:
        """Go to a page by url pathname ("" = default page) or title, with a query string; wait for its run."""
        await self.connect()
        info = self._find_page(page)
        self._stop_auto_reruns()
        self._clear_page_elements()
        self.query_string = query.lstrip("?")
        if info is not None:  # a sidebar click: the browser sends the page's hash
            return await self._rerun("open", page_script_hash=info.page_script_hash, timeout=timeout)
        return await self._rerun("open", page_script_hash="", page_name=page.strip("/"), timeout=timeout)

    async def rerun(self, timeout: float | None = None) -> RunResult:
        """Rerun the page with the current widget values (the "Rerun" menu item, or key R)."""
        return await self._rerun("rerun", timeout=timeout)

    async def set_widget(self, label: str, value: Any, timeout: float | None = None,
                         type: str | None = None) -> RunResult | None:
        """Set a slider / select / number / text / checkbox widget and wait for the rerun it triggers.

        Returns None when the widget triggers no rerun (inside a form, or ``on_change="ignore"``).
        """
        w = self.widget(label, type=type, buttons=False)
        self._states[w.id] = _new_state(w, value)
        if w.form_id or getattr(w.proto, "ignore_rerun", False):
            return None
        return await self._rerun("set_widget", fragment_id=w.fragment_id or None, timeout=timeout)

    async def click(self, label: str, timeout: float | None = None) -> RunResult:
        """Click a button by its label and wait for the run it triggers (a form's submit button too)."""
        w = self.widget(label, buttons=True)
        if w.type not in ("button", "download_button"):
            raise ValueError(f"{label!r} is a {w.type}; only buttons can be clicked here")
        if w.disabled:
            raise ValueError(f"button {label!r} is disabled")
        trigger = WidgetState(id=w.id, trigger_value=True)
        return await self._rerun("click", fragment_id=w.fragment_id or None, extra=trigger, timeout=timeout)

    async def wait_for(self, predicate: Callable[[StreamlitClient], bool], timeout: float | None = None) -> float:
        """Wait until ``predicate(client)`` holds on the live page (fragment timers keep running); seconds."""
        t0 = time.perf_counter()
        deadline = t0 + (self.timeout if timeout is None else timeout)
        while True:
            if predicate(self):
                return time.perf_counter() - t0
            if self._closed_error is not None:
                raise ConnectionError(f"connection closed while waiting: {self._closed_error}")
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"condition not met after {time.perf_counter() - t0:.1f} s; page shows "
                                   f"{self.live_texts()[:8]}")
            event = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), left)

    async def wait_for_text(self, text: str, timeout: float | None = None) -> float:
        """Wait until ``text`` is a substring of a text on the page; returns the seconds waited."""
        return await self.wait_for(lambda c: any(text in t for t in c.live_texts()), timeout)

    async def wait_idle(self, timeout: float | None = None) -> float:
        """Wait until no run is in progress and no request is pending; returns the seconds waited."""
        return await self.wait_for(lambda c: not c._pending and (c._run is None or c._run.finished), timeout)

    # --- what the page shows ---

    def widget(self, label: str, type: str | None = None, buttons: bool | None = None) -> Widget:
        """The page's widget with this label (exact, then case-insensitive, then a unique substring)."""
        ws = [w for w in self._widgets_list() if (type is None or w.type == type)
              and (buttons is None or (w.type in BUTTONS) == buttons)]
        for match in (lambda w: w.label == label, lambda w: w.label.casefold() == label.casefold(),
                      lambda w: label.casefold() in w.label.casefold()):
            found = [w for w in ws if match(w)]
            if len({w.label for w in found}) > 1:
                raise LookupError(f"{label!r} matches several widgets: {[w.label for w in found]}")
            if found:  # a label repeated on the page: the first one, as in ``widgets``
                return found[0]
        raise LookupError(f"no widget {label!r} on the page; widgets: {[w.label for w in ws]}")

    @property
    def widgets(self) -> dict[str, Widget]:
        """label -> Widget for the widgets on the page now (the first one of a repeated label)."""
        out: dict[str, Widget] = {}
        for w in self._widgets_list():
            out.setdefault(w.label, w)
        return out

    @property
    def texts(self) -> list[str]:
        """Every text on the page now (stale elements of a run in progress included, like the browser)."""
        return self._texts(live=False)

    def live_texts(self) -> list[str]:
        """The texts of the page now, without those a run in progress is about to replace."""
        return self._texts(live=True)

    @property
    def exceptions(self) -> list[str]:
        """The exception messages on the page now."""
        return [t for n in _walk(self._roots) if n.type == "exception" for t in _element_texts(n.proto)]

    # --- internals: sending ---

    def _find_page(self, page: str) -> Any:
        key = page.strip("/")
        if key in self.pages:
            return self.pages[key]
        for info in self.pages.values():
            if key.casefold() in (info.page_name.casefold(), info.url_pathname.casefold()):
                return info
        if key == "":
            return next((p for p in self.pages.values() if p.is_default), None)
        return None

    def _client_state(self, fragment_id: str | None, is_auto: bool, page_script_hash: str | None,
                      page_name: str, extra: WidgetState | None) -> ClientState:
        cs = ClientState(query_string=self.query_string, page_name=page_name, is_auto_rerun=is_auto,
                         page_script_hash=self.page_script_hash if page_script_hash is None else page_script_hash)
        if fragment_id:
            cs.fragment_id = fragment_id
        cs.widget_states.SetInParent()
        for wid, ws in self._states.items():
            if extra is None or wid != extra.id:
                cs.widget_states.widgets.append(ws)
        if extra is not None:
            cs.widget_states.widgets.append(extra)
        if self.cache_messages:
            cs.cached_message_hashes.extend(self._cache)
        if page_script_hash == "":
            path = f"/{page_name}"
        else:
            want = self.page_script_hash if page_script_hash is None else page_script_hash
            path = "/" + next((p.url_pathname for p in self.pages.values() if p.page_script_hash == want), "")
        ci = cs.context_info
        ci.timezone, ci.timezone_offset, ci.locale, ci.is_embedded, ci.color_scheme = "UTC", 0, "en-US", False, "light"
        ci.url = f"{self.http_url}{path}" + (f"?{self.query_string}" if self.query_string else "")
        return cs

    async def _send_rerun(self, kind: str, fragment_id: str | None = None, *, is_auto: bool = False,
                          page_script_hash: str | None = None, page_name: str = "",
                          extra: WidgetState | None = None, wait: bool = True) -> _Request:
        if self._ws is None or self._closed_error is not None:
            raise ConnectionError(f"not connected ({self._closed_error})")
        msg = BackMsg()
        msg.rerun_script.CopyFrom(self._client_state(fragment_id, is_auto, page_script_hash, page_name, extra))
        future = asyncio.get_running_loop().create_future() if wait else None
        data = msg.SerializeToString()
        req = _Request(kind, fragment_id, time.perf_counter(), future, page_name)
        self._pending.append(req)
        try:
            await self._ws.send(data)
        except BaseException:
            self._pending.remove(req)
            raise
        return req

    async def _rerun(self, kind: str, fragment_id: str | None = None, *, timeout: float | None = None,
                     **kwargs: Any) -> RunResult:
        req = await self._send_rerun(kind, fragment_id, **kwargs)
        assert req.future is not None
        try:
            return await asyncio.wait_for(asyncio.shield(req.future), self.timeout if timeout is None else timeout)
        except TimeoutError:
            raise TimeoutError(f"{kind}: no script_finished after {time.perf_counter() - req.sent_at:.1f} s "
                               f"(page shows {self.live_texts()[:5]})") from None

    def _stop_auto_reruns(self, fragment_ids: list[str] | None = None) -> None:
        for fid in list(self._auto) if fragment_ids is None else fragment_ids:
            entry = self._auto.pop(fid, None)
            if entry is not None:
                entry[1].cancel()

    async def _auto_rerun(self, fragment_id: str, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if not self.connected:
                return
            try:
                await self._send_rerun("auto_rerun", fragment_id, is_auto=True, wait=False)
            except (ConnectionError, ConnectionClosed):
                return

    # --- internals: receiving ---

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for data in self._ws:
                now = time.perf_counter()
                if isinstance(data, str):
                    continue
                try:
                    self._handle(data, now)
                except Exception:  # a client bug must not kill the tab silently
                    _LOG.exception("st_client %s: cannot handle a ForwardMsg", self.name)
                self._notify()
            self._closed_error = ConnectionError("server closed the websocket")
        except ConnectionClosed as err:
            self._closed_error = err
        except asyncio.CancelledError:
            self._closed_error = ConnectionError("reader cancelled")
            raise
        finally:
            self._stop_auto_reruns()
            self._fail_pending(ConnectionError(f"connection closed: {self._closed_error}"))
            self._notify()

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def _fail_pending(self, err: BaseException) -> None:
        reqs = self._pending + (self._run.requests if self._run and not self._run.finished else [])
        for req in reqs:
            if req.future is not None and not req.future.done():
                req.future.set_exception(err)
                req.future.exception()  # mark retrieved: an unawaited request must not log a warning
        self._pending.clear()

    def _handle(self, data: bytes, now: float) -> None:
        msg = ForwardMsg.FromString(data)
        self.messages += 1
        self.bytes += len(data)
        kind = msg.WhichOneof("type")
        if self._run is not None and not self._run.finished:
            for req in self._run.requests:
                req.messages += 1
                req.bytes += len(data)
        if kind == "ref_hash":
            msg = self._from_cache(msg)
            if msg is None:
                return
            kind = msg.WhichOneof("type")
        elif self.cache_messages and msg.metadata.cacheable and msg.hash:
            self._store(msg, data)

        if self._awaiting_exception is not None and kind != "session_event":
            self._finish_requests(self._awaiting_exception)
        if kind == "new_session":
            self._on_new_session(msg, now)
        elif kind == "delta":
            self._on_delta(msg, now)
        elif kind == "script_finished":
            self._on_script_finished(msg, now)
        elif kind == "navigation":
            nav = msg.navigation
            self.pages = {p.url_pathname: p for p in nav.app_pages}
            if nav.page_script_hash and nav.page_script_hash != self.page_script_hash and self._navigated:
                self._clear_page_elements(keep_run=self._run.run_id if self._run else None)  # st.switch_page
            self._navigated = True
            self.page_script_hash = nav.page_script_hash
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string
        elif kind == "auto_rerun":
            self._on_auto_rerun(msg.auto_rerun.fragment_id, msg.auto_rerun.interval)
        elif kind == "stop_auto_rerun":
            self._stop_auto_reruns(list(msg.stop_auto_rerun.fragment_ids))
        elif kind == "page_not_found":
            for req in self._run.requests if self._run else []:  # st.navigation sends no name: use ours
                req.page_not_found = msg.page_not_found.page_name or req.page_name or "?"
        elif kind == "page_profile":
            for req in self._run.requests if self._run else []:
                req.server_exec = msg.page_profile.exec_time / 1e6
        elif kind == "session_event" and msg.session_event.HasField("script_compilation_exception"):
            exc = msg.session_event.script_compilation_exception
            el = Element()
            el.exception.CopyFrom(exc)
            self._roots[0].children[max(self._roots[0].children, default=-1) + 1] = _Node(
                el, self._run.run_id if self._run else "", "", self.main_script_hash)
            if self._awaiting_exception is not None:
                self._finish_requests(self._awaiting_exception)

    def _from_cache(self, ref: ForwardMsg) -> ForwardMsg | None:
        entry = self._cache.get(ref.ref_hash)
        if entry is None:
            self.cache_misses += 1
            _LOG.warning("st_client %s: cached ForwardMsg miss %s", self.name, ref.ref_hash)
            return None
        entry[1] = self._cache_runs
        msg = ForwardMsg.FromString(entry[0])
        msg.metadata.CopyFrom(ref.metadata)
        for req in self._run.requests if self._run else []:
            req.ref_hits += 1
        return msg

    def _store(self, msg: ForwardMsg, data: bytes) -> None:
        entry = self._cache.get(msg.hash)
        if entry is not None:
            entry[1] = self._cache_runs
        else:
            frag = msg.delta.fragment_id if msg.WhichOneof("type") == "delta" else ""
            self._cache[msg.hash] = [data, self._cache_runs, frag]

    def _expire_cache(self, fragment_ids: list[str]) -> None:
        """The browser's ForwardMessageCache.incrementRunCount after a run."""
        self._cache_runs += 1
        for h, (_, runs, frag) in list(self._cache.items()):
            if fragment_ids and (not frag or frag not in fragment_ids):
                continue
            if self._cache_runs - runs > self._max_cached_age:
                del self._cache[h]

    def _on_new_session(self, msg: ForwardMsg, now: float) -> None:
        ns = msg.new_session
        run_id, fragment_ids = msg.metadata.run.script_run_id, list(msg.metadata.run.fragment_ids)
        if ns.HasField("initialize"):
            self.session_id = ns.initialize.session_id or self.session_id
        self.main_script_hash = ns.main_script_hash or self.main_script_hash
        if ns.config.max_cached_message_age:
            self._max_cached_age = ns.config.max_cached_message_age
        if not self._navigated and ns.page_script_hash:  # an app without st.navigation
            if self.page_script_hash and ns.page_script_hash != self.page_script_hash:
                self._clear_page_elements()
            self.page_script_hash = ns.page_script_hash
        if not fragment_ids:
            self._stop_auto_reruns()  # the browser clears its timers on a full run; the run sets them again
        for n in self._roots.values():
            self._clear_transients(n, fragment_ids)
        carried = self._run.requests if self._run is not None and not self._run.finished else []
        if fragment_ids:  # a fragment run answers the requests for its fragments
            taken = [r for r in self._pending if r.fragment_id in fragment_ids]
        else:  # a full run answers everything sent so far (the server coalesces reruns)
            taken = list(self._pending)
        self._pending = [r for r in self._pending if r not in taken]
        if not fragment_ids:
            # fragment reruns sent before the full request were dropped by the server with the old run
            last_full = max((r.sent_at for r in taken if r.fragment_id is None), default=None)
            if last_full is not None:
                self._pending = [r for r in self._pending if r.sent_at > last_full]
        for r in taken + carried:
            r.runs += 1
        self._run = _Run(run_id, fragment_ids, now, carried + taken)

    def _on_delta(self, msg: ForwardMsg, now: float) -> None:
        run = self._run
        if run is not None and not run.finished:
            for req in run.requests:
                if req.first_delta_at is None:
                    req.first_delta_at = now
        path = list(msg.metadata.delta_path)
        if not path:
            return
        delta = msg.delta
        run_id = run.run_id if run else ""
        script_hash = msg.metadata.active_script_hash
        parent = self._roots.setdefault(path[0], _Node(None, "", "", ""))
        for i in path[1:-1]:
            parent = parent.children.setdefault(i, _Node(None, run_id, delta.fragment_id, script_hash))
        if len(path) == 1:
            return
        idx, old = path[-1], parent.children.get(path[-1])
        kind = delta.WhichOneof("type")
        if kind == "new_element":
            el = delta.new_element
            parent.children[idx] = _Node(el, run_id, delta.fragment_id, script_hash)
            self._register_widget(el, delta.fragment_id)
        elif kind == "add_block":
            block = delta.add_block
            keep = old is not None and isinstance(old.proto, Block) and old.type == block.WhichOneof("type")
            parent.children[idx] = _Node(block, run_id, delta.fragment_id, script_hash,
                                         children=old.children if keep else {})
        elif kind == "new_transient":
            anchor = old or _Node(None, run_id, delta.fragment_id, script_hash)
            anchor.transient = list(delta.new_transient.elements)
            parent.children[idx] = anchor

    def _register_widget(self, el: Element, fragment_id: str) -> None:
        kind = el.WhichOneof("type")
        p = getattr(el, kind) if kind else None
        wid = getattr(p, "id", "") if p is not None else ""
        if not wid or kind in BUTTONS:
            return
        if getattr(p, "set_value", False) or wid not in self._states:
            ws = _initial_state(kind, p)
            if ws is not None:
                self._states[wid] = ws

    def _on_script_finished(self, msg: ForwardMsg, now: float) -> None:
        status = msg.script_finished
        run = self._run
        if run is None or run.finished:
            return
        run_id = msg.metadata.run.script_run_id if msg.metadata.HasField("run") else run.run_id
        fragment_ids = list(msg.metadata.run.fragment_ids) if msg.metadata.HasField("run") else run.fragment_ids
        if status == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
            return  # the requests carry on into the next run
        if status in (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY) and (
                fragment_ids or run_id == run.run_id):
            for n in self._roots.values():
                self._clear_stale(n, run_id, fragment_ids, None)
            if not fragment_ids:
                active = {w.id for w in self._widgets_list()}
                self._states = {k: v for k, v in self._states.items() if k in active}
        self._expire_cache(fragment_ids)
        run.finished, run.finished_at, run.status = True, now, FINAL.get(status, str(status))
        if status == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
            self._awaiting_exception = run  # the exception message follows script_finished
        else:
            self._finish_requests(run)

    def _finish_requests(self, run: _Run) -> None:
        self._awaiting_exception = None
        snapshot: RunResult | None = None
        for req in run.requests:
            seconds = run.finished_at - req.sent_at
            first = None if req.first_delta_at is None else req.first_delta_at - req.sent_at
            self.timings.append(Timing(req.kind, seconds, first, run.status, run.fragment_ids, req.sent_at, req.runs))
            if req.future is None or req.future.done():
                continue
            if snapshot is None:
                snapshot = self._snapshot(run)
            result = RunResult(**{**snapshot.__dict__, "seconds": seconds, "first_delta_seconds": first,
                                  "runs": req.runs, "messages": req.messages, "bytes": req.bytes,
                                  "ref_hits": req.ref_hits, "page_not_found": req.page_not_found,
                                  "server_exec_seconds": req.server_exec})
            req.future.set_result(result)

    def _snapshot(self, run: _Run) -> RunResult:
        page = next((p.url_pathname for p in self.pages.values() if p.page_script_hash == self.page_script_hash), "")
        counts = Counter(n.type for n in _walk(self._roots) if n.proto is not None)
        code = [n.proto.code.code_text for n in _walk(self._roots) if n.type == "code"]
        return RunResult(0.0, None, run.status, self.texts, self.exceptions, self.widgets, code, counts, page,
                         self.page_script_hash, self.query_string, run.fragment_ids, 0, 0, 0, 0)

    def _on_auto_rerun(self, fragment_id: str, interval: float) -> None:
        if not self.auto_rerun or not fragment_id:
            return
        old = self._auto.get(fragment_id)
        if old is not None and old[0] == interval:
            return
        self._stop_auto_reruns([fragment_id])
        task = asyncio.create_task(self._auto_rerun(fragment_id, interval), name=f"st-client-auto {fragment_id}")
        self._auto[fragment_id] = (interval, task)

    # --- internals: the tree ---

    def _reset_tree(self) -> None:
        self._roots = {i: _Node(None, "", "", "") for i in range(4)}  # main, sidebar, event, bottom

    def _clear_page_elements(self, keep_run: str | None = None) -> None:
        """Drop the page's elements, keep the main script's (the browser's clearPageElements)."""
        def keep(nodes: dict[int, _Node]) -> dict[int, _Node]:
            return {i: n for i, n in nodes.items()
                    if n.script_hash == self.main_script_hash or (keep_run is not None and n.run_id == keep_run)}
        for root in self._roots.values():
            root.children = keep(root.children)
        active = {w.id for w in self._widgets_list()}
        self._states = {k: v for k, v in self._states.items() if k in active}

    def _clear_stale(self, node: _Node, run_id: str, fragment_ids: list[str], in_fragment: str | None) -> None:
        """The browser's ClearStaleNodeVisitor: drop what the run that just ended did not draw again."""
        keep: dict[int, _Node] = {}
        for i, child in node.children.items():
            if child.proto is not None and child.type == "toast":
                keep[i] = child
                continue
            if fragment_ids:
                if child.is_block:
                    if in_fragment and child.run_id != run_id:
                        continue
                    inner = in_fragment
                    if child.fragment_id in fragment_ids and child.run_id == run_id:
                        inner = child.fragment_id
                    self._clear_stale(child, run_id, fragment_ids, inner)
                    keep[i] = child
                elif not child.fragment_id or not in_fragment or child.run_id == run_id:
                    keep[i] = child
            elif child.run_id == run_id:
                if child.is_block:
                    self._clear_stale(child, run_id, fragment_ids, None)
                keep[i] = child
        node.children = keep
        node.transient = []

    def _clear_transients(self, node: _Node, fragment_ids: list[str]) -> None:
        if fragment_ids and node.fragment_id and node.fragment_id not in fragment_ids:
            return
        node.transient = []
        for child in node.children.values():
            self._clear_transients(child, fragment_ids)

    def _is_stale(self, node: _Node) -> bool:
        run = self._run
        if node.proto is None or run is None or run.finished or node.run_id == run.run_id:
            return False
        return not run.fragment_ids or node.fragment_id in run.fragment_ids

    def _texts(self, live: bool) -> list[str]:
        out: list[str] = []

        def visit(nodes: dict[int, _Node]) -> None:
            for i in sorted(nodes):
                n = nodes[i]
                if live and self._is_stale(n):
                    continue
                if isinstance(n.proto, Element):
                    out.extend(t for t in _element_texts(n.proto) if t)
                elif isinstance(n.proto, Block):
                    out.extend(_block_texts(n.proto))
                for el in n.transient:
                    out.extend(t for t in _element_texts(el) if t)
                visit(n.children)

        visit(self._roots)
        return out

    def _widgets_list(self) -> list[Widget]:
        out = []
        for n in _walk(self._roots):
            if not isinstance(n.proto, Element):
                continue
            kind = n.type
            p = getattr(n.proto, kind)
            wid = getattr(p, "id", "")
            if "label" not in p.DESCRIPTOR.fields_by_name or not (wid or kind in ("page_link", "link_button")):
                continue  # charts and dataframes have an id (for selections) but no label
            ws = self._states.get(wid)
            out.append(Widget(wid, kind, getattr(p, "label", ""), _python_value(kind, p, ws), n.fragment_id,
                              getattr(p, "form_id", ""), getattr(p, "disabled", False),
                              list(getattr(p, "options", []) or []), p))
        return out


# --- measuring this process ----------------------------------------------------------------------------------


class LoopLag:
    """Samples this event loop's lag (how late a ``sleep(interval)`` wakes up) while the clients run.

    ``async with LoopLag() as lag: ...`` then ``lag.max``, ``lag.mean``: a large lag means the client
    process, not the server, is adding to the measured times.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._task: asyncio.Task | None = None

    async def _sample(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.samples.append(max(0.0, time.perf_counter() - t - self.interval))

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def max(self) -> float:
        """The largest lag seen, seconds."""
        return max(self.samples, default=0.0)

    @property
    def mean(self) -> float:
        """The mean lag, seconds."""
        return sum(self.samples) / len(self.samples) if self.samples else 0.0


# --- smoke run -----------------------------------------------------------------------------------------------


async def _smoke(url: str, page: str, query: str, clients: int, n_texts: int, timeout: float) -> None:
    tabs = [StreamlitClient(url, name=f"tab{i}", timeout=timeout) for i in range(clients)]
    async with LoopLag() as lag:
        await asyncio.gather(*(t.connect() for t in tabs))
        runs = await asyncio.gather(*(t.open(page, query) for t in tabs))
    for i, run in enumerate(runs):
        print(f"client {i}: {run.seconds:.3f} s (first delta {run.first_delta_seconds or 0:.3f} s), "
              f"{run.status}, {run.messages} messages, {run.bytes / 1e3:.0f} kB")
    run = runs[0]
    print(f"page {run.page!r} (query {run.query_string!r}); client loop lag max {lag.max * 1e3:.0f} ms")
    print("widgets:", ", ".join(f"{w.label} [{w.type}] = {w.value!r}" for w in run.widgets.values()))
    if run.exceptions:
        print("exceptions:", run.exceptions)
    for t in run.texts[:n_texts]:
        print("  |", t.replace("\n", " ")[:160])
    await asyncio.gather(*(t.close() for t in tabs))


def main() -> None:
    """CLI: open a page in one or more simulated tabs; print run times, widgets and the first texts."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8501")
    ap.add_argument("--page", default="", help='url pathname, e.g. "schedules" ("" = Home)')
    ap.add_argument("--query", default="", help='query string, e.g. "T=500"')
    ap.add_argument("--clients", type=int, default=1, help="tabs opened at once")
    ap.add_argument("--texts", type=int, default=12, help="how many texts to print")
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    asyncio.run(_smoke(args.url, args.page, args.query, args.clients, args.texts, args.timeout))


if __name__ == "__main__":
    main()

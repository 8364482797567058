"""A class arrives at once: the default view of every page is computed once per server, before the students come.

At start-up (the first script run of a server process) a thread visits every page once, over the app's own
websocket, as a browser would (dashboard/st_client.py): models load and the default views' cached arrays fill,
so thirty first visits are cache hits instead of thirty computations competing for two cores. The server's
page work also runs on one torch thread (torch's intra-op threads only contend when many sessions compute).
"""

from __future__ import annotations

import asyncio
import logging
import threading

import streamlit as st
import torch
from streamlit.runtime import Runtime

_LOG = logging.getLogger(__name__)


def in_a_server() -> bool:
    """True in a running Streamlit server (not under AppTest, which mocks the runtime)."""
    return Runtime.exists() and type(Runtime.instance()) is Runtime


async def _visit(url: str, pages: tuple[str, ...]) -> None:
    from dashboard.st_client import StreamlitClient

    async with StreamlitClient(url, auto_rerun=False, name="warm-up") as client:
        for page in pages:
            run = await client.open(page)
            _LOG.info("warm-up: %s in %.2f s", page or "home", run.seconds)


def _visit_all(url: str, pages: tuple[str, ...]) -> None:
    try:
        asyncio.run(_visit(url, pages))
    except Exception as e:  # the lab works without it, only the first visits are slower
        _LOG.warning("warm-up of the default views failed: %s", e)


@st.cache_resource(show_spinner=False)
def warm_up(pages: tuple[str, ...]) -> threading.Thread | None:
    """Once per server process: one torch thread for page work, and a thread that opens each page (URL
    pathnames, "" for home) once. None outside a real server."""
    if not in_a_server():
        return None
    torch.set_num_threads(1)
    port, base = st.get_option("server.port"), (st.get_option("server.baseUrlPath") or "").strip("/")
    url = f"http://127.0.0.1:{port}" + (f"/{base}" if base else "")
    thread = threading.Thread(target=_visit_all, args=(url, pages), name="warm-up", daemon=True)
    thread.start()
    return thread

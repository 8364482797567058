"""The simulated student of the classroom benchmark and the server's warm-up (dashboard/st_client.py) against the
shared server (tests/browser/conftest.py; no browser): it opens pages, registers their widgets as a browser would
(a select slider's default is one of its options, sent as that option's text, whether the page or the session
state sets it) and sees no exception.
Run: python -m pytest tests/browser/test_st_client.py -q
"""

from __future__ import annotations

import asyncio

from dashboard.st_client import StreamlitClient


def test_the_websocket_client_registers_select_sliders_set_by_the_page_or_the_session(app_url):
    async def visit():
        async with StreamlitClient(app_url, auto_rerun=False, name="test") as client:
            forward = await client.open("forward")  # st.select_slider with its value= (its default index)
            export = client.widget("Points at step t, for the CSV")
            exceptions = client.exceptions
            iddpm = await client.open("improved_ddpm")  # a URL-bound one (dashboard/ui/widgets.py)
            return forward, export, exceptions, iddpm, client.widget("Ancestral steps"), client.exceptions

    forward, export, forward_exceptions, iddpm, steps, iddpm_exceptions = asyncio.run(visit())
    assert forward.seconds > 0 and iddpm.seconds > 0 and not forward_exceptions and not iddpm_exceptions
    assert export.type == "slider" and export.options and export.value in export.options
    assert steps.type == "slider" and steps.options == ["10", "25", "50", "100"] and steps.value == "25"

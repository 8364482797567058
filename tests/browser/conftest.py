"""One Streamlit server and one Chromium for all the browser tests (package scope: they stop after the last of
them); each test gets a fresh browser context and page, so a new Streamlit session of its own.

A server costs its start, its job runner's worker processes and its warm-up (dashboard/ui/warmup.py: every page
opened once over the websocket), all competing with the test for the CPU: paid once here instead of once a test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.harness import CHROMIUM, LAUNCH_ARGS, running_app

VIEWPORT = {"width": 1400, "height": 1000}


@pytest.fixture(scope="package")
def app_url() -> Iterator[str]:
    """The URL of the shared ``streamlit run dashboard/app.py`` server."""
    with running_app() as url:
        yield url


@pytest.fixture(scope="package")
def browser():
    """The shared headless Chromium (Debian's, through Playwright)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A page in a fresh browser context (its own cookies and storage: a new Streamlit session), closed after the
    test."""
    context = browser.new_context(viewport=VIEWPORT)
    yield context.new_page()
    context.close()

"""A real browser types a prompt on the Text to image page: it fills the prompt box, presses Enter, waits for the
run, and finds the samples of the new prompt (the classifier's tally for its digit), the prompt in the address bar
and no exception box.

Outside CI the test skips only when Chromium is absent; in CI (CI=true) a missing browser is a failure.
Run: python -m pytest tests/browser/test_text_to_image.py -q
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from tests.browser.harness import exception_text, require_chromium, wait_idle

require_chromium()

from playwright.sync_api import expect  # noqa: E402

PROMPT = "a thin 3"


def metric(page, label: str):
    """The metric with this label (the classifier's tally beside the grid)."""
    return page.locator('[data-testid="stMetric"]').filter(has_text=label)


def test_a_typed_prompt_draws_its_samples(app_url, page):  # tests/browser/conftest.py: the server, a fresh page
    page.goto(app_url + "/text_to_image")
    # The server's warm-up (dashboard/ui/warmup.py) may still be computing this page's default view beside us.
    expect(metric(page, "Read as 7")).to_be_visible(timeout=120_000)
    wait_idle(page, 120)
    assert exception_text(page) is None, exception_text(page)
    box = page.locator('[data-testid="stTextInput"] input').first
    expect(box).to_have_value("a thick seven")
    box.fill(PROMPT)
    box.press("Enter")
    # The run draws the new grid first; on a busy CPU it may start late, so wait for what it draws, then for the
    # rest of the page (one word changed, the sweep) to finish.
    expect(metric(page, "Read as 3")).to_be_visible(timeout=90_000)
    wait_idle(page, 120)
    assert exception_text(page) is None, exception_text(page)
    charts = page.locator('[data-testid="stPlotlyChart"]')
    expect(charts).to_have_count(5)  # the grid, the steps, the attention maps, one word changed, CLIP's space
    expect(charts.first.locator(".main-svg").first).to_be_visible()
    expect(page.get_by_text(f"16 samples of “{PROMPT}”")).to_be_visible()
    assert parse_qs(urlparse(page.url).query).get("prompt") == [PROMPT]
    assert page.locator('[data-testid="stAlert"]').filter(has_text="cannot be read").count() == 0

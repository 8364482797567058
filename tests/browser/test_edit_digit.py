"""A real browser draws a 7 on the Edit a digit page with the mouse: the edit appears, the classifier reads a 7, a
t0 change edits the same drawing again, and no exception box shows.

The canvas (streamlit-drawable-canvas 0.13, a Streamlit v2 component) lives in an open shadow root, not an iframe:
Playwright's CSS locators pierce it. Fabric.js listens on its upper canvas. Outside CI the test skips only when
Chromium is absent; in CI (CI=true) a missing browser is a failure.
Run: python -m pytest tests/browser/test_edit_digit.py -q
"""

from __future__ import annotations

from tests.browser.harness import exception_text, require_chromium, wait_idle

require_chromium()

from playwright.sync_api import expect  # noqa: E402

CANVAS = '[data-testid="stBidiComponentIsolated"] canvas.upper-canvas'
# A 7 in canvas pixels (the canvas is 280 x 280): the bar, then the stem
SEVEN = [(70, 60), (110, 58), (150, 58), (190, 60), (210, 62), (190, 100), (165, 145), (145, 190), (130, 230)]


def draw(page, points: list[tuple[int, int]]) -> None:
    """One stroke through ``points`` (canvas pixels) with the mouse: down, moves, up."""
    canvas = page.locator(CANVAS)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()

    def at(x: int, y: int) -> tuple[float, float]:
        return box["x"] + x * box["width"] / 280, box["y"] + y * box["height"] / 280

    page.mouse.move(*at(*points[0]))
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*at(*p), steps=6)
    page.mouse.up()


def asking(page):
    """The info box that asks for a drawing (shown while the canvas is empty)."""
    return page.locator('[data-testid="stAlert"]').filter(has_text="on the black canvas")


def reading(page) -> str:
    """The value of the "The classifier reads" metric."""
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="The classifier reads")
    return metric.locator('[data-testid="stMetricValue"]').inner_text().strip()


def test_a_drawn_seven_is_edited_and_read_as_a_seven(app_url, page):  # tests/browser/conftest.py
    page.goto(app_url + "/edit_digit")
    wait_idle(page, 90)
    expect(asking(page)).to_be_visible()
    expect(page.locator(CANVAS)).to_have_count(1)
    draw(page, SEVEN)
    # The canvas sends the drawing on mouse up; on a busy CPU the script run may start late, so wait for what it
    # draws (the input beside the edit, the steps, the t0 strip, the inpainting mask), then for it to finish.
    expect(page.get_by_text("the edit from t0 = 250").first).to_be_attached(timeout=60_000)
    expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(4, timeout=60_000)
    wait_idle(page, 60)
    assert exception_text(page) is None, exception_text(page)
    assert reading(page) == "7"
    assert asking(page).count() == 0
    slider = page.locator('[data-testid="stSlider"] input[type="range"]').first  # t0
    slider.focus()
    slider.press("ArrowRight")
    expect(page.get_by_text("the edit from t0 = 260").first).to_be_attached(timeout=60_000)  # the same drawing
    wait_idle(page, 60)
    assert exception_text(page) is None, exception_text(page)
    assert asking(page).count() == 0

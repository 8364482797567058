"""A real browser draws data on the Train page: strokes and clicks with the mouse on the canvas
(streamlit-drawable-canvas, rendered in the page itself: no iframe), the canvas toolbar's undo and redo, the drawing
reopened from the page's link, a short training run on it, and its samples.

Skips when Chromium is absent, like tests/browser/test_app.py (in CI, CI=true, a missing browser is a failure).
Run: python -m pytest tests/browser/test_draw_data.py -q
"""

from __future__ import annotations

import math
import re
import time

from tests.browser.harness import exception_text, require_chromium, wait_idle

require_chromium()

from playwright.sync_api import expect  # noqa: E402

COUNT = re.compile(r"([\d,]+) points from your drawing")


def drawn(page) -> int:
    """The number of points the page says the drawing makes (0 while it shows no such message)."""
    alerts = page.locator('[data-testid="stAlertContentSuccess"]').filter(has_text="points from your drawing")
    match = COUNT.search(alerts.first.inner_text()) if alerts.count() else None
    return int(match.group(1).replace(",", "")) if match else 0


def wait_drawn(page, done, timeout_s: float = 30) -> int:
    """Wait until the page's point count satisfies ``done`` (the canvas reports 200 ms after the mouse is up)."""
    deadline = time.time() + timeout_s
    while not done(n := drawn(page)):
        assert time.time() < deadline, f"the drawing's count stayed at {n}"
        page.wait_for_timeout(100)
    return n


def canvas_centre(page) -> tuple[float, float]:
    """The centre of the canvas (its upper, event-catching layer), scrolled into view: (0, 0) in data units."""
    upper = page.locator("canvas.upper-canvas")
    upper.scroll_into_view_if_needed()
    box = upper.bounding_box()
    assert (box["width"], box["height"]) == (400, 400), box
    return box["x"] + 200, box["y"] + 200


def stroke(page, points: list[tuple[float, float]]) -> None:
    page.mouse.move(*points[0])
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*p)
    page.mouse.up()


def test_draw_points_and_train_on_them(app_url, page):  # tests/browser/conftest.py: the server, a fresh page
    start = time.time()
    page.goto(f"{app_url}/train?data=draw&steps=100")
    wait_idle(page, timeout_s=90)
    expect(page.get_by_text("Draw on the canvas").first).to_be_visible(timeout=30_000)
    train = page.get_by_role("button", name="Train", exact=True)
    expect(train).to_be_disabled(timeout=30_000)  # the first run on a new server can outlast wait_idle

    loaded = time.time()
    # a circle of radius 100 px = 2 data units: about 4 pi 10 points at 10 per unit length
    cx, cy = canvas_centre(page)
    stroke(page, [(cx + 100 * math.cos(2 * math.pi * k / 60), cy + 100 * math.sin(2 * math.pi * k / 60))
                  for k in range(61)])
    t0 = time.time()
    circle = wait_drawn(page, lambda n: n > 0)
    first_report_s = time.time() - t0
    assert 120 <= circle <= 130, circle
    # a straight stroke of 300 px = 6 units: 61 points
    stroke(page, [(cx - 150 + 10 * k, cy + 150) for k in range(31)])
    both = wait_drawn(page, lambda n: n != circle)
    assert abs(both - circle - 61) <= 1, (circle, both)

    # the canvas's own toolbar shows while the mouse is on the canvas: undo, then redo, the line
    page.mouse.move(cx, cy)
    undo = page.get_by_role("button", name="Undo")
    expect(undo).to_be_visible()
    undo.click()
    assert wait_drawn(page, lambda n: n != both) == circle
    page.mouse.move(cx, cy)
    page.get_by_role("button", name="Redo").click()
    assert wait_drawn(page, lambda n: n != circle) == both

    # the click pen: one point per click
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Pen").click()
    page.get_by_role("option", name="clicks (one point each)").click()
    wait_idle(page)
    cx, cy = canvas_centre(page)
    for dx in (-150, -120, -90):
        page.mouse.click(cx + dx, cy - 150)
        page.wait_for_timeout(300)
    clicked = wait_drawn(page, lambda n: n == both + 3)
    assert "drawing=" in page.url  # under 200 points: kept in the link
    expect(page.get_by_text("is kept in this page's link")).to_be_visible()

    # the link reopens the drawing (as dots) in a new session, with the same count
    page.goto(page.url)
    wait_idle(page, timeout_s=60)
    assert wait_drawn(page, lambda n: n > 0) == clicked
    assert exception_text(page) is None

    drawn_at = time.time()
    train.click()
    expect(page.get_by_text("Your model")).to_be_visible(timeout=90_000)
    wait_idle(page, timeout_s=60)
    expect(page.get_by_text("#1 your drawing").first).to_be_visible()
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 3  # preview, samples, snapshots
    assert exception_text(page) is None
    trained = time.time()
    print(f"\nfirst page {loaded - start:.0f} s, drawing (first stroke reported in {first_report_s:.2f} s) "
          f"{drawn_at - loaded:.0f} s, training {trained - drawn_at:.0f} s; {time.time() - start:.0f} s in all")

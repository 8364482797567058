"""AppTest checks of the Train page's drawing source (dashboard/ui/drawing.py): drawn points in the preview, a
training run on them through the job runner, the messages for bad drawings, and the drawing kept in the link or the
session. AppTest cannot draw on a component, so ``draw_canvas`` is replaced by a stand-in that returns recorded
Fabric.js JSON (tests/core/test_drawing.py; tests/browser/test_draw_data.py draws with a real mouse).
Run: python -m pytest tests/dashboard/test_pages_train_drawing.py -q"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.data.drawing import clip_strokes, points_along_strokes, strokes_from_fabric, to_data_units
from core.data.toy2d import load_points
from dashboard.ui import drawing
from tests.core.test_drawing import CLICK, DOT, OUT_RIGHT, STROKE
from tests.dashboard.apptest_helpers import app_on, ok, plotly_specs, run_until
from tests.dashboard.test_pages_model import has_model, sweep, xy

RECORDED = {"version": "7.4.0", "objects": [STROKE, OUT_RIGHT, DOT, CLICK], "background": ""}
N_RECORDED = 29 + 11 + 1 + 1  # the diagonal, the part of the stroke inside the axes, the dot, the click (density 10)


class Canvas:
    """Stands in for drawing.draw_canvas: returns ``drawn`` once the 'user' has drawn, else the drawing the canvas
    started with (what the component returns before anyone draws on it)."""

    def __init__(self) -> None:
        self.drawn: dict[str, Any] | None = None
        self.calls: list[tuple[str, str, dict | None]] = []

    def __call__(self, tool: str, key: str, initial: dict | None) -> dict:
        self.calls.append((tool, key, initial))
        return self.drawn if self.drawn is not None else {"objects": [], **(initial or {}), "background": ""}


@pytest.fixture
def canvas(monkeypatch) -> Canvas:
    fake = Canvas()
    monkeypatch.setattr(drawing, "draw_canvas", fake)
    return fake


def open_train(query: dict[str, str]) -> AppTest:
    at = app_on("views/train.py", 120)
    at.query_params.update(query)
    return ok(at.run())


def expected_points(json_data: dict, density: int = 10, jitter: float = 0.05, seed: int = 0) -> np.ndarray:
    """The page's pipeline, spelled out: canvas pixels -> data units on [-4, 4]^2 -> clipped -> spread + jitter."""
    strokes = to_data_units(strokes_from_fabric(json_data), (400, 400), (-4.0, 4.0), (-4.0, 4.0))
    inside = clip_strokes(strokes, (-4.0, 4.0), (-4.0, 4.0))
    return points_along_strokes(inside, 1 / density, jitter, np.random.default_rng(seed))


def preview(at: AppTest) -> tuple[str, np.ndarray]:
    """The preview's title and points (the first Plotly chart of the page)."""
    spec = plotly_specs(at)[0]
    points = [xy(t) for t in spec["data"]]
    return spec["layout"]["annotations"][0]["text"], np.concatenate(points) if points else np.zeros((0, 2))


def zigzag(n: int) -> dict:
    """A stroke of n segments across the canvas and back (8 data units each), in the canvas's format."""
    path = [["M", 0, 0]] + [["L", 400 * ((k + 1) % 2), 200 * (k + 1) / n] for k in range(n)]
    return {"objects": [{"type": "Path", "originX": "center", "originY": "center", "left": 200, "top": 100,
                         "strokeWidth": 3, "path": path}]}


def test_a_drawing_shows_in_the_preview_and_trains_like_a_csv(canvas):
    at = open_train({"data": "draw", "steps": "100"})
    assert at.selectbox(key="train.data").value == "draw"
    canvas.drawn = RECORDED
    ok(at.run())
    assert canvas.calls[-1][0] == "freedraw" and canvas.calls[-1][1] == "train.canvas.0"
    title, shown = preview(at)
    assert title == f"your drawing: {N_RECORDED} points"
    np.testing.assert_allclose(shown, expected_points(RECORDED), atol=1e-6)  # float32 in the figure
    assert any(f"{N_RECORDED} points from your drawing" in s.value for s in at.success)
    assert any("cut at the edge of the axes" in c.value for c in at.caption)
    assert [b.label for b in at.get("download_button")] == ["Drawing (.csv)"]
    assert len(at.query_params["drawing"].split(";")) == N_RECORDED
    assert any("kept in this page's link" in c.value for c in at.caption)
    assert not at.button(key="train.go").disabled
    at.button(key="train.go").click().run()
    run_until(at, has_model)
    run = at.session_state["train.run"]
    assert run.label.startswith("#1 your drawing, cosine T=1000") and run.steps == 100
    samples = plotly_specs(at)[1]  # after the preview: the final samples over the training data
    assert xy(samples["data"][-1]).shape == (2000, 2) and np.isfinite(xy(samples["data"][-1])).all()
    cfg = json.loads(run.files[1])["data"]
    assert cfg["kind"] == "points" and cfg["n"] == N_RECORDED
    assert cfg["source"] == f"a drawing ({N_RECORDED} points, 10 per unit length, jitter 0.05, seed 0)"
    z = np.asarray(cfg["points"])
    np.testing.assert_allclose(z * cfg["scale"] + cfg["mean"], expected_points(RECORDED), atol=1e-4)


def test_the_pen_controls_sweep_without_an_exception(canvas):
    canvas.drawn = RECORDED
    at = open_train({"data": "draw"})
    others = ("train.T", "train.width", "train.steps", "train.budget", "train.seed", "train.data", "train.schedule")
    assert sweep(at, skip=others, options={"train.tool": list(drawing.TOOLS)}) == 2 * 4 + 3  # both pens, and back
    at.slider(key="train.density").set_value(50).run()
    assert preview(ok(at))[0] == "your drawing: 195 points"  # 142 + 51 along the strokes; the 2 clicks unchanged
    at.selectbox(key="train.tool").set_value("point").run()
    assert canvas.calls[-1][0] == "point"


def test_the_csv_download_reads_back_through_load_points():
    x = expected_points(RECORDED)
    text = drawing.csv_bytes(x)
    assert text.startswith(b"x,y\n")
    np.testing.assert_allclose(load_points(text), x, atol=5e-7)


def test_an_empty_canvas_asks_for_a_drawing(canvas):
    at = open_train({"data": "draw"})
    assert any("Draw on the canvas" in i.value and "pick a toy" in i.value for i in at.info)
    assert at.button(key="train.go").disabled and "drawing" not in at.query_params
    assert preview(at)[0] == "your drawing" and not at.get("download_button")


def test_a_single_dot_says_how_many_points_are_needed(canvas):
    canvas.drawn = {"objects": [DOT]}
    at = open_train({"data": "draw"})
    assert any("too few points: found 1, at least 10 are needed (a click is one point" in e.value for e in at.error)
    assert at.button(key="train.go").disabled
    assert at.query_params["drawing"] == "-2.00,0.02"  # one dot still fits in the link: it is the drawing so far


def test_strokes_beyond_the_axes_only_is_a_message(canvas):
    canvas.drawn = {"objects": [{"type": "Circle", "originX": "left", "originY": "center", "left": 500, "top": 20,
                                 "radius": 3, "strokeWidth": 3}]}
    at = open_train({"data": "draw"})
    assert any("Everything drawn lies outside the axes" in i.value for i in at.info)
    assert at.button(key="train.go").disabled


def test_too_many_points_is_a_message_and_a_large_drawing_stays_in_the_session(canvas):
    canvas.drawn = zigzag(6_000)  # 48,000 units of ink
    at = open_train({"data": "draw", "density": "50"})
    message = "Cannot use this drawing: the drawing would make 2,400,001 points; the limit is 100,000. Lower the"
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="train.go").disabled and "drawing" not in at.query_params
    canvas.drawn = zigzag(100)  # 800 units at 10 per unit: 8,001 points, more than a link holds
    at.slider(key="train.density").set_value(10).run()
    assert any("8,001 points from your drawing" in s.value for s in ok(at).success)
    assert "drawing" not in at.query_params
    assert any("kept in this browser tab only" in c.value and "at most 200 points" in c.value for c in at.caption)


def test_a_small_drawing_round_trips_through_the_link(canvas):
    canvas.drawn = RECORDED
    at = open_train({"data": "draw", "jitter": "0.1", "seed": "3"})
    link = dict(at.query_params)
    original = preview(at)[1]
    assert link["drawing"].count(";") == N_RECORDED - 1 and link["jitter"] == "0.1" and link["seed"] == "3"
    # a new session opens the link: the canvas starts with the link's points as dots, and the same jitter
    canvas.drawn = None
    again = open_train(link)
    initial = canvas.calls[-1][2]
    assert {o["type"] for o in initial["objects"]} == {"Circle"} and len(initial["objects"]) == N_RECORDED
    np.testing.assert_allclose(preview(again)[1], original, atol=0.005 + 1e-6)  # the link rounds to 2 decimals
    assert again.query_params["drawing"] == link["drawing"]
    assert any(f"{N_RECORDED} points from your drawing" in s.value for s in again.success)


def test_the_drawing_is_kept_across_a_page_visit(canvas):
    canvas.drawn = zigzag(40)  # 3,201 points: kept in the session, not in the link
    at = open_train({"data": "draw"})
    before = preview(at)[1]
    at.switch_page("views/home.py").run()
    canvas.drawn = None
    at.switch_page("views/train.py")
    at.query_params["data"] = "draw"
    ok(at.run())
    assert canvas.calls[-1][2]["objects"] == zigzag(40)["objects"]  # the canvas restarts with the strokes
    np.testing.assert_allclose(preview(at)[1], before)


def test_start_over_empties_the_canvas_and_the_link(canvas):
    canvas.drawn = RECORDED
    at = open_train({"data": "draw"})
    assert "drawing" in at.query_params
    canvas.drawn = None
    at.button(key="train.drawing_clear").click().run()
    assert canvas.calls[-1][1] == "train.canvas.1" and canvas.calls[-1][2] is None  # a new, empty canvas
    assert "drawing" not in ok(at).query_params and at.session_state[drawing.KEPT_KEY]["objects"] == []
    assert any("Draw on the canvas" in i.value for i in at.info)


@pytest.mark.parametrize("value, message", [
    ("1,2;oops", "expected x,y pairs of numbers separated by ';'"),
    ("1,2,3", "expected x,y pairs of numbers separated by ';'"),
    ("9,0.5", "a point lies outside the axes [-4, 4]"),
    ("nan,1", "expected x,y pairs of finite numbers"),
    (";".join(["0,0"] * 201), "it has 201 points; a link holds at most 200"),
])
def test_a_malformed_drawing_in_the_link_is_a_warning(canvas, value, message):
    at = open_train({"data": "draw", "drawing": value})
    assert any(f"The drawing in the link is ignored: {message}" in w.value for w in at.warning), \
        [w.value for w in at.warning]
    assert canvas.calls[-1][2] is None and "drawing" not in at.query_params


def test_link_text_round_trip():
    points = np.array([[-3.996, 0.004], [1.0, -2.5], [-0.001, 3.999]])
    text = drawing.url_text(points)
    assert text == "-4.00,0.00;1.00,-2.50;0.00,4.00"  # no "-0.00"
    np.testing.assert_allclose(drawing.url_points(text), np.round(points, 2), atol=1e-12)


def test_the_real_canvas_renders_in_apptest():
    """The component itself (no stand-in): the page renders with it and waits for a drawing."""
    at = open_train({"data": "draw"})
    assert any("Draw on the canvas" in i.value for i in at.info)
    assert at.session_state[drawing.INITIAL_KEY] is None and "train.canvas.0" in at.session_state

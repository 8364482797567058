"""AppTest checks of the Edit a digit page: an empty canvas asks for a drawing (no traceback); a drawn digit (the
canvas replaced by a fixed drawing: AppTest runs no browser), a real test digit and a partly erased one are what the
model receives; t0 changes the edit and t0 = 0 gives back the input; the t0 strip runs from faithful to free;
inpainting keeps the known half exactly; the benchmark's table or how to make it; the ends of the controls; a model
that cannot be loaded leaves the rest (render and control times: benchmarks/pages.py).
Run: python -m pytest tests/dashboard/test_pages_edit_digit.py -q"""

from __future__ import annotations

import base64
import json
import shutil

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import checkpoints
from core.data.mnist import load_mnist
from core.data.sketch import sketch_to_digit
from dashboard.ui import digits, plots
from dashboard.ui import edit_digit as ed
from tests.core.test_sketch import canvas_of
from tests.dashboard.apptest_helpers import app_on, ok, plotly_specs, vega_frames

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py: one torch thread, as the server runs

PAGE = "views/edit_digit.py"
SHIPPED = checkpoints.PRETRAINED_DIR  # the shipped models, before any test points the loaders elsewhere
CHEAP = {"steps": "10"}  # DDIM steps of a full run: an edit from t0 = 250 runs 3
TILE, DX = 28, 28 + plots.IMAGE_GAP
DY = TILE + plots.IMAGE_GAP + plots.CAPTION_PX  # rows of a mosaic with captions


@pytest.fixture(autouse=True)
def small(monkeypatch, tmp_path):
    """Short inpainting chains, and no benchmark file (the real one may or may not be there)."""
    monkeypatch.setattr(ed, "INPAINT_STEPS", 10)
    monkeypatch.setattr(ed, "BENCH_JSON", tmp_path / "editing.json")
    return tmp_path / "editing.json"


def drawing_of(rgba: np.ndarray | None):
    """A stand-in for the canvas that returns ``rgba`` for the freehand canvas (None: nothing sent yet) and no
    rectangles for the eraser."""
    return lambda mode, key, background=None: rgba if mode == "freedraw" else None


def open_page(query: dict[str, str] | None = None, before=None) -> AppTest:
    """The page's first run (apptest_helpers.app_on); ``before()`` runs before it."""
    at = app_on(PAGE, 300)
    if before is not None:
        before()
    at.query_params.update(query or {})
    return ok(at.run())


def image(trace: dict) -> np.ndarray:
    """A heatmap's z (uint8 typed array with a shape, or nested lists) as a 2D array."""
    z = trace["z"]
    if isinstance(z, dict):
        shape = tuple(int(s) for s in z["shape"].split(","))
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"])).reshape(shape)
    return np.asarray(z)


def tiles(fig: dict, cols: int, dy: int = DY) -> np.ndarray:
    """The (n, 28, 28) tiles of a mosaic figure, row by row."""
    z = image(fig["data"][0])
    rows = (z.shape[0] + plots.IMAGE_GAP) // dy
    return np.stack([z[r * dy:r * dy + TILE, c * DX:c * DX + TILE] for r in range(rows) for c in range(cols)])


def captions(fig: dict) -> list[str]:
    return [a["text"] for a in fig["layout"]["annotations"] if a.get("yref") == "y" and a.get("xref") == "x"]


def figures(at: AppTest) -> dict[str, dict]:
    """The page's image figures in page order: the input beside the edit, the steps, the t0 strip, and the
    inpainting (the mask before "Fill in", the fills after)."""
    pair, steps, strip, fills = plotly_specs(at)
    return {"pair": pair, "steps": steps, "strip": strip, "fills": fills}


def pair(at: AppTest) -> tuple[np.ndarray, np.ndarray]:
    """(the input the model receives, the edit), uint8 (28, 28) each."""
    x, edit = tiles(figures(at)["pair"], 2)
    return x, edit


# --- the input --------------------------------------------------------------------------------------------------


def test_an_empty_canvas_asks_for_a_drawing_and_shows_the_header(small):
    at = open_page()
    assert len(at.latex) == 2 and any(i.value.startswith("**Try this:**") for i in at.info)
    assert [e.label for e in at.expander] == ["Show the code"] and "def sdedit" in at.code[0].value
    assert any(i.value.startswith("**Draw a digit**") for i in at.info)
    assert not plotly_specs(at) and not at.error
    (missing,) = [i.value for i in at.info if i.value.startswith("No benchmark table")]
    assert "is missing" in missing and ed.BENCH_COMMAND in missing


def test_a_drawn_digit_is_what_the_model_receives_and_a_cleared_canvas_asks_again(monkeypatch):
    seven = load_mnist("test").images[0]
    drawn = canvas_of(seven)
    monkeypatch.setattr(ed, "canvas", drawing_of(drawn))
    at = open_page(CHEAP)
    x, edit = pair(at)
    assert np.array_equal(x, plots.to_uint8(sketch_to_digit(drawn).numpy()))
    label = int(load_mnist("test").labels[0])
    assert captions(figures(at)["pair"])[0].startswith(f"reads {label} (")
    assert at.metric[0].value == str(label)  # t0 = 250 keeps the digit
    dot = np.zeros((280, 280, 4), dtype=np.uint8)
    dot[120:140, 120:140] = 255
    monkeypatch.setattr(ed, "canvas", drawing_of(dot))
    x, _ = pair(ok(at.run()))
    assert 4 <= int((x > 0).sum()) <= 100  # a single dot: a small digit, edited without complaint
    monkeypatch.setattr(ed, "canvas", drawing_of(np.zeros((280, 280, 4), dtype=np.uint8)))
    ok(at.run())
    assert any(i.value.startswith("**Draw a digit**") for i in at.info) and not plotly_specs(at)


def test_a_test_digit_is_edited_t0_changes_the_edit_and_t0_zero_returns_it():
    test = load_mnist("test")
    at = open_page({**CHEAP, "source": "test", "index": "3"})
    x, edit = pair(at)
    assert np.array_equal(x, plots.to_uint8(test.images[3, 0].numpy()))
    assert f"a {int(test.labels[3])}" in " ".join(c.value for c in at.caption)
    assert not np.array_equal(edit, x)
    steps = figures(at)["steps"]
    titles = [a["text"] for a in steps["layout"]["annotations"] if a.get("yref") == "paper"]
    assert titles[0] == "t = 250" and titles[-1] == "t = 0: the edit"
    at.slider(key="edit_digit.t0").set_value(750).run()
    _, far = pair(ok(at))
    assert np.abs(far.astype(int) - x).mean() > np.abs(edit.astype(int) - x).mean()  # more is forgotten
    at.slider(key="edit_digit.t0").set_value(0).run()
    _, same = pair(ok(at))
    assert np.array_equal(same, x)
    assert at.query_params == {**CHEAP, "source": "test", "index": "3", "t0": "0"}


def test_the_strip_runs_from_the_input_to_a_free_sample():
    at = open_page({**CHEAP, "source": "test", "index": "5"})
    strip = figures(at)["strip"]
    images = tiles(strip, len(ed.T0_STRIP))
    x, _ = pair(at)
    assert np.array_equal(images[0], x)  # t0 = 0: the input itself
    caps = captions(strip)
    l2 = [float(c.split("<br>")[0].removeprefix("L2 ")) for c in caps]
    assert l2[0] == 0.0 and l2[-1] > l2[1] and len(caps) == len(ed.T0_STRIP)
    (df,) = vega_frames(at)
    assert list(df["t0"]) == list(ed.T0_STRIP) and df["classifier confidence"].between(0, 1).all()
    assert df["L2 to the input"].iloc[0] == 0.0


def test_erasing_blacks_out_the_rectangle(monkeypatch):
    box = np.zeros((280, 280, 4), dtype=np.uint8)
    box[140:, :, 3] = 255  # a black rectangle over the lower half
    monkeypatch.setattr(ed, "canvas", lambda mode, key, background=None: box if mode == "rect" else None)
    at = open_page({**CHEAP, "source": "erase", "index": "3"})
    x, _ = pair(at)
    digit = plots.to_uint8(load_mnist("test").images[3, 0].numpy())
    assert np.array_equal(x[:14], digit[:14]) and (x[14:] == 0).all() and (digit[14:] > 0).any()
    assert "392 of 784 pixels erased" in " ".join(c.value for c in at.caption)


# --- inpainting -------------------------------------------------------------------------------------------------


def test_inpainting_keeps_the_known_half_exactly():
    at = open_page({**CHEAP, "source": "test", "index": "7", "r": "2"})
    assert any("Press **Fill in**" in c.value for c in at.caption)
    x, _ = pair(at)
    at.button(key="edit_digit.fill").click().run()
    fills = figures(ok(at))["fills"]
    images = tiles(fills, ed.N_FILL + 1)  # per row: the known part, then the fills
    assert images.shape == (2 * (ed.N_FILL + 1), 28, 28)
    made = np.concatenate([images[1:ed.N_FILL + 1], images[ed.N_FILL + 2:]])
    assert all(np.array_equal(f[:14], x[:14]) for f in made)  # the upper half is the input, exactly
    assert not all(np.array_equal(f[14:], made[0][14:]) for f in made[1:])  # seeds differ where filled in
    assert (images[0][14:] == 128).all()  # the part to fill, shown grey
    assert any(c.value.startswith("The known region is kept exactly") for c in at.caption)
    assert at.button(key="edit_digit.fill").disabled  # done for these settings
    at.selectbox(key="edit_digit.mask").set_value("centre").run()
    assert not ok(at).button(key="edit_digit.fill").disabled


# --- the benchmark and the ends of the controls -----------------------------------------------------------------


def bench_file(path, sdedit=None) -> None:
    """A results file as benchmarks/editing.py writes it."""
    rows = sdedit if sdedit is not None else [
        {"input": how, "t0": t0, "accuracy": acc, "confidence": 0.9, "l2_to_input": l2, "l2_to_clean": 5.0,
         "seconds": 3.0} for how in ("speckle", "blocky", "thick")
        for t0, acc, l2 in ((0, 0.12, 0.0), (250, 0.935, 9.0), (750, 0.6, 14.0))]
    path.write_text(json.dumps({"n": 200, "model": "ddpm-mnist", "judge": "classifier-mnist", "sdedit": rows,
                                "inpainting": [{"steps": 50, "jump_length": 5, "resamplings": 3, "accuracy": 0.8,
                                                "known_kept_exactly": True, "seconds": 20.0}],
                                "masked_input_accuracy": 0.4, "hardware": "2 CPU threads"}))


def test_the_benchmark_table_or_how_to_make_it(small, monkeypatch):
    bench_file(small)
    at = open_page({**CHEAP, "source": "test"})
    sd, fills = (d.value for d in at.dataframe)
    assert len(sd) == 9 and list(sd["input"][:3]) == [ed.ROUGH_LABELS["speckle"]] * 3
    assert sd["accuracy"].iloc[1] == 0.935 and list(fills["resamplings"]) == [3]
    assert any("Written by" in c.value and ed.BENCH_COMMAND in c.value for c in at.caption)
    assert any("speckled 12% → 94% at t0 = 250" in m.value for m in at.markdown)  # 0.935 rounds to 94%
    assert len(open_page().dataframe) == 1  # without an input: the SDEdit table alone
    for i, text in enumerate(("{not json", json.dumps({"sdedit": [{"input": "speckle", "t0": 0}]}),
                              json.dumps({"sdedit": [{"input": "smudge", "t0": 0, "accuracy": 1, "confidence": 1,
                                                      "l2_to_input": 0, "l2_to_clean": 0}]}))):
        monkeypatch.setattr(ed, "BENCH_JSON", small.with_name(f"damaged{i}.json"))
        ed.BENCH_JSON.write_text(text)
        infos = [m.value for m in open_page().info if m.value.startswith("No benchmark table")]
        assert infos and ("damaged" in infos[0] or "not a readable" in infos[0]) and ed.BENCH_COMMAND in infos[0]


def test_the_ends_of_the_controls_and_nonsense_in_the_url():
    at = open_page({**CHEAP, "source": "test", "index": "999", "t0": "1000", "guide": "9", "w": "8", "seed": "9999"})
    x, edit = pair(at)
    assert at.metric[0].value == "9"  # from pure noise, guided hard towards 9
    ok(at.slider(key="edit_digit.t0").set_value(10).run())  # the smallest t0 above 0: one DDIM step
    assert at.metric[2].value == "1"
    ok(at.selectbox(key="edit_digit.guide").set_value("none").run())
    assert at.slider(key="edit_digit.w").disabled
    at = open_page({"source": "paint", "index": "-4", "t0": "1e999", "guide": "11", "steps": "nan"})
    assert at.selectbox(key="edit_digit.source").value == "draw" and at.slider(key="edit_digit.t0").value == 250
    assert at.selectbox(key="edit_digit.guide").value == "none" and at.slider(key="edit_digit.steps").value == 50


def test_a_model_that_cannot_be_loaded_leaves_the_rest(monkeypatch, small, tmp_path):
    bench_file(small)
    query = {**CHEAP, "source": "test"}
    at = open_page(query, before=lambda: monkeypatch.setattr(checkpoints, "PRETRAINED_DIR", tmp_path))
    assert len(at.error) == 2 and digits.CLASSIFIER in at.error[0].value and ed.MODEL in at.error[1].value
    assert not plotly_specs(at) and len(at.dataframe) == 1  # no edits; the benchmark's table stays
    some = tmp_path / "some"  # only the classifier missing: the edits come without its reading
    some.mkdir()
    for f in (f"{ed.MODEL}.json", f"{ed.MODEL}.safetensors", "manifest.json"):
        shutil.copy(SHIPPED / f, some / f)
    at = open_page(query, before=lambda: monkeypatch.setattr(checkpoints, "PRETRAINED_DIR", some))
    assert len(at.error) == 1 and digits.CLASSIFIER in at.error[0].value
    figs = figures(at)
    assert not captions(figs["pair"]) and all("reads" not in c for c in captions(figs["strip"]))
    assert [m.label for m in at.metric] == ["L2 to the input", "DDIM steps"]
    at.button(key="edit_digit.fill").click().run()
    assert captions(figures(ok(at))["fills"])[1] == ""

"""AppTest checks of the Text to image page: the default view and its sections; a typed prompt (or a clicked example)
changes the samples and lives in the URL; a word outside the vocabulary shows the parser's message, listing the
vocabulary, and the rest of the page stays; the empty prompt is the unconditional model; one word changed starts
from the same noise; models that cannot be loaded leave CLIP's picture.
Run: python -m pytest tests/dashboard/test_pages_text_to_image.py -q"""

from __future__ import annotations

import base64
import json
import shutil

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import checkpoints
from core.data.captions import VOCABULARY
from dashboard.ui import digits, plots
from dashboard.ui import text_to_image as t2i
from tests.dashboard.apptest_helpers import APP, ok, plotly_specs, vega_frames

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py: one torch thread, as the server runs

PAGE = "views/text_to_image.py"
SHIPPED = checkpoints.PRETRAINED_DIR  # the shipped models, before any test points the loaders elsewhere
CHEAP = {"steps_ddim": "4"}  # DDIM steps of the grid
SECTIONS = ["1. The samples", "2. Along the steps", "3. Where each word looks", "4. Change one word",
            "5. A guidance sweep", "6. CLIP's shared space", "7. Measured on many samples"]
TILE, DX = 28, 28 + plots.IMAGE_GAP
DY = TILE + plots.IMAGE_GAP + plots.CAPTION_PX  # rows of a mosaic with captions


@pytest.fixture(autouse=True)
def small(monkeypatch):
    """A short sweep and a small CLIP picture (the page reads these at call time)."""
    monkeypatch.setattr(t2i, "SWEEP_N", 4)
    monkeypatch.setattr(t2i, "SWEEP_STEPS", 3)
    monkeypatch.setattr(t2i, "SWEEP_SCALES", (0.0, 1.0, 3.0))
    monkeypatch.setattr(t2i, "N_SPACE_IMAGES", 100)


def open_page(query: dict[str, str] | None = None, before=None) -> AppTest:
    """The app's first run (home), then the page; ``before()`` runs between the two."""
    at = AppTest.from_file(str(APP), default_timeout=300).run()
    ok(at)
    if before is not None:
        before()
    at.switch_page(PAGE)
    at.query_params.update({**CHEAP, **(query or {})})
    return ok(at.run())


def tiles(fig: dict, cols: int, dy: int = DY) -> np.ndarray:
    """The (n, 28, 28) uint8 tiles of a digit mosaic, row by row."""
    z = fig["data"][0]["z"]
    if isinstance(z, dict):
        shape = tuple(int(s) for s in z["shape"].split(","))
        z = np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"])).reshape(shape)
    z = np.asarray(z)
    rows = (z.shape[0] + plots.IMAGE_GAP) // dy
    return np.stack([z[r * dy:r * dy + TILE, c * DX:c * DX + TILE] for r in range(rows) for c in range(cols)])


def captions(fig: dict) -> list[str]:
    return [a["text"] for a in fig["layout"]["annotations"] if a.get("yref") == "y" and a.get("xref") == "x"]


def figures(at: AppTest) -> dict[str, dict]:
    """The page's figures by name, in page order (sections without samples draw none)."""
    specs = plotly_specs(at)
    names = ["grid", "strip", "attention", "swap", "space"] if len(specs) == 5 else ["space"]
    return dict(zip(names, specs, strict=True))


def test_the_default_view_has_every_section():
    at = open_page()
    assert [s.value for s in at.subheader] == SECTIONS
    assert len(at.latex) == 3 and any(i.value.startswith("**Try this:**") for i in at.info)
    code = " ".join(c.value for c in at.code)
    assert "def contrastive_loss" in code and "class CrossAttention" in code and "class TextConditioned" in code
    assert at.text_input(key="text_to_image.prompt").value == t2i.DEFAULT_PROMPT
    assert list(at.pills[0].options) == list(t2i.EXAMPLES)
    (vocabulary,) = [m.value for m in at.markdown if m.value.startswith("**The vocabulary**")]
    assert "prompt     ::=" in code and all(f" {w}," in vocabulary or f" {w}." in vocabulary for w in VOCABULARY)
    figs = figures(at)
    assert set(figs) == {"grid", "strip", "attention", "swap", "space"} and not at.error
    assert tiles(figs["grid"], t2i.COLS).shape == (t2i.N_GRID, 28, 28)
    assert len(captions(figs["grid"])) == t2i.N_GRID and all(c.split()[-1] in ("thick", "thin", "–")
                                                             for c in captions(figs["grid"]))
    rows = [a["text"] for a in figs["attention"]["layout"]["annotations"] if a.get("xref") == "paper"]
    assert [r.split(" (")[0] for r in rows] == [t2i.START, "a", "thick", "seven"]  # a row per token
    assert {m.label for m in at.metric} >= {"Read as 7", "Measured thick", "NFE", "Zero-shot accuracy"}
    (sweep, reads) = vega_frames(at)
    assert set(sweep["prompt"]) == {"a thin seven", "a seven", "a thick seven"} and set(sweep["w"]) == {0.0, 1.0, 3.0}
    at0 = sweep[sweep["w"] == 0.0]["mean"]
    assert np.allclose(at0, at0.iloc[0])  # w = 0 ignores the prompt: the same samples for all three
    assert reads["read"].between(0, 1).all()
    assert len(figs["space"]["data"]) == 21  # ten digits of images, ten of prompts, and the prompt's star
    assert at.query_params == CHEAP
    bench = json.loads(t2i.BENCH_JSON.read_text())  # section 7: the shipped benchmark's figures
    table = at.dataframe[0].value
    assert list(table["measure"]) == ["stroke mass", "box area", "shear"]
    assert table["figure"][0] == f"{bench['thickness']['ratio']:.2f}×" and table["target"][0].endswith("✓")
    assert table["pair"][2] == "“a X slanted right” vs “a X slanted left”"
    assert {m.label: m.value for m in at.metric}["Prompts naming a digit"] == f"{bench['digit_accuracy']:.1%}"


def test_a_missing_or_damaged_benchmark_file_names_its_command(monkeypatch, tmp_path):
    monkeypatch.setattr(t2i, "BENCH_JSON", tmp_path / "text_to_image.json")
    at = open_page()
    assert any("text_to_image.json** is missing" in w.value and t2i.BENCH_COMMAND in w.value for w in at.warning)
    assert not at.dataframe and len(at.subheader) == len(SECTIONS)
    good = json.loads((SHIPPED.parent / "benchmarks" / "results" / "text_to_image.json").read_text())
    good["slant"]["right_share_positive"] = "most"
    (tmp_path / "text_to_image.json").write_text(json.dumps(good))
    with pytest.raises(t2i.ResultsProblem, match="is damaged .*slant.right_share_positive: expected a finite number"):
        t2i.measured_at_scale()
    good["slant"]["right_share_positive"] = 0.5  # a miss shows as one
    (tmp_path / "text_to_image.json").write_text(json.dumps(good))
    assert t2i.measured_at_scale().table["target"][2] == "≥ 85% as asked ✗"


def test_a_typed_prompt_changes_the_samples_and_lives_in_the_url():
    at = open_page()
    before = tiles(figures(at)["grid"], t2i.COLS)
    ok(at.text_input(key="text_to_image.prompt").input("a thin 3").run())
    after = tiles(figures(at)["grid"], t2i.COLS)
    assert not np.array_equal(before, after)
    assert at.query_params["prompt"] == "a thin 3"
    assert "Read as 3" in {m.label for m in at.metric} and "Measured thin" in {m.label for m in at.metric}
    reopened = open_page({"prompt": "a thin 3"})  # the link reopens the same view
    assert reopened.text_input(key="text_to_image.prompt").value == "a thin 3"
    assert np.array_equal(tiles(figures(reopened)["grid"], t2i.COLS), after)


def test_an_example_pill_becomes_the_prompt():
    at = open_page()
    ok(at.pills[0].set_value("a 4 slanted left").run())
    assert at.text_input(key="text_to_image.prompt").value == "a 4 slanted left"
    assert at.query_params["prompt"] == "a 4 slanted left" and at.pills[0].value is None
    assert set(vega_frames(at)[0]["prompt"]) == {"a 4 slanted left", "a 4 upright", "a 4 slanted right"}


def test_a_word_outside_the_vocabulary_shows_the_message_and_the_rest_stays():
    at = open_page({"prompt": "a seven banana"})
    (error,) = [e.value for e in at.error]
    assert "'banana'" in error and "the vocabulary is:" in error and all(w in error for w in VOCABULARY)
    assert [s.value for s in at.subheader] == SECTIONS
    assert list(figures(at)) == ["space"]  # no samples; CLIP's picture stays
    assert any(i.value.startswith("No samples: fix the prompt") for i in at.info)
    ok(at.text_input(key="text_to_image.prompt").input("a thick thin seven").run())
    assert "contradiction" in at.error[0].value


def test_the_empty_prompt_is_unconditional():
    at = open_page({"prompt": ""})
    assert at.text_input(key="text_to_image.prompt").value == "" and at.query_params["prompt"] == ""
    assert at.slider(key="text_to_image.w").disabled
    assert "Digits present" in {m.label for m in at.metric}
    assert any("the empty prompt (unconditional)" in c.value for c in at.caption)
    assert any(i.value.startswith("The empty prompt has no words") for i in at.info)
    figs = plotly_specs(at)
    assert len(figs) == 3  # the grid, the strip and CLIP's picture (no words to map, change or sweep)
    reads = {c for c in captions(figs[0])}
    assert len(reads) >= 3  # several digits, not one


def test_one_word_changed_starts_from_the_same_noise():
    at = open_page()
    assert at.selectbox(key="text_to_image.swap").value == "thick"
    assert at.selectbox(key="text_to_image.to").value == "thin"
    figs = figures(at)
    swap = tiles(figs["swap"], t2i.N_SWAP)
    assert np.array_equal(swap[:t2i.N_SWAP], tiles(figs["grid"], t2i.COLS)[:t2i.N_SWAP])
    thin = t2i.generate("a thin seven", 3.0, "ddim", 4, 0, True, attention=False)
    assert np.array_equal(swap[t2i.N_SWAP:], thin["images"][:t2i.N_SWAP])
    ok(at.selectbox(key="text_to_image.to").set_value("").run())  # remove the word
    assert at.query_params["to"] == "" and "“a seven”" in str(figures(at)["swap"]["layout"]["annotations"])
    ok(at.text_input(key="text_to_image.prompt").input("a large two leaning right").run())  # another prompt
    assert at.selectbox(key="text_to_image.swap").value == "large"
    assert at.selectbox(key="text_to_image.to").value == "small" and "to" not in at.query_params


def test_models_that_cannot_be_loaded_leave_clip_s_picture(monkeypatch, tmp_path):
    for f in (f"{t2i.CLIP_MODEL}.json", f"{t2i.CLIP_MODEL}.safetensors", "manifest.json"):
        shutil.copy(SHIPPED / f, tmp_path / f)
    at = open_page(before=lambda: monkeypatch.setattr(checkpoints, "PRETRAINED_DIR", tmp_path))
    errors = [e.value for e in at.error]
    assert len(errors) == 2 and digits.CLASSIFIER in errors[0] and t2i.MODEL in errors[1]
    assert list(figures(at)) == ["space"] and [s.value for s in at.subheader] == SECTIONS

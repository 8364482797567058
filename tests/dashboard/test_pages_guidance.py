"""AppTest checks of the Guidance page: it renders the four samplers from one x_T, the guidance field and the scale
sweep; the sweep's numbers are sane (the conditional model reaches class y, w = 0 is the unconditional model for
every method); the scale, the class and the toy change the output and live in the URL; every toy renders at the
ends of every control; a model that cannot be loaded, or a missing or damaged MNIST file, gives a message instead of
a crash; the exact field is the mixture's closed form (times: benchmarks/pages.py).
Run: python -m pytest tests/dashboard/test_pages_guidance.py -q"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from core import checkpoints
from core.analytic import toy_mixture
from core.data.toy2d import NUM_CLASSES
from dashboard.ui import guidance as gd
from dashboard.ui import score_field
from tests.dashboard.apptest_helpers import app_on, ok, plotly_specs, vega_frames
from tests.dashboard.test_pages_sampling import xy

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py: one torch thread, as the server runs

PAGE = "views/guidance.py"
SHIPPED = checkpoints.PRETRAINED_DIR  # the shipped models, before any test points the loaders elsewhere
SMALL_PANEL = 200  # points per panel in the tests (the page's own when timed)


@pytest.fixture
def small(monkeypatch, tmp_path):
    """Fewer points, and no MNIST file (the benchmark's may or may not be there)."""
    monkeypatch.setattr(gd, "N_PANEL", SMALL_PANEL)
    monkeypatch.setattr(gd, "MNIST_JSON", tmp_path / "guidance_mnist.json")
    return tmp_path / "guidance_mnist.json"


def open_page(query: dict[str, str] | None = None, before=None) -> AppTest:
    """The page's first run (apptest_helpers.app_on); ``before()`` runs before it."""
    at = app_on(PAGE, 300)
    if before is not None:
        before()
    at.query_params.update(query or {})
    return ok(at.run())


def titles(fig: dict) -> list[str]:
    return [a["text"] for a in fig["layout"]["annotations"] if a.get("xref") == "paper"]


def notes(fig: dict) -> list[str]:
    return [a["text"] for a in fig["layout"]["annotations"] if a.get("xref") != "paper"]


def samples(fig: dict) -> list[np.ndarray]:
    """The points of each sample panel (not the faint draws of p(x | y))."""
    return [xy(d) for d in fig["data"] if d["name"] != "p(x | y)"]


def sweep_frame(at: AppTest):
    """The sweep's rows (method, scale, fidelity, sw_ratio): the data of its first chart."""
    return next(df for df in vega_frames(at) if "sw_ratio" in df.columns)


def mnist_file(path, rows=None) -> None:
    """A results file as benchmarks/guidance_mnist.py writes it: the unguided row ("none", scale 0), then each kind."""
    rows = rows if rows is not None else [
        {"guidance": "none", "scale": 0.0, "accuracy": 0.1, "fid": 9.0, "seconds": 30.0},
        *({"guidance": g, "scale": s, "accuracy": a, "fid": f, "seconds": 30.0}
          for g, acc, fid in (("classifier", (0.7, 0.9), (5.0, 15.0)), ("classifier-free", (0.8, 0.97), (4.0, 12.0)))
          for s, a, f in zip((1.0, 3.0), acc, fid, strict=True))]
    path.write_text(json.dumps({"n": 500, "method": "ddim", "steps": 25, "seed": 0, "rows": rows,
                                "models": {"diffusion": "ddpm-mnist"}, "hardware": "2 CPU threads",
                                "command": "python benchmarks/guidance_mnist.py"}))


# --- the page ------------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("small")
def test_the_default_view_draws_four_panels_the_field_and_a_sane_sweep():
    at = open_page()
    assert len(at.latex) >= 3 and any(i.value.startswith("**Try this:**") for i in at.info)
    assert [e.label for e in at.expander] == ["Show the code"] and "def classifier_guidance" in at.code[0].value
    assert not at.error and not at.warning
    panels, field = plotly_specs(at)
    assert [t.split("<br>")[0] for t in titles(panels)] == [
        "a. conditional model (w = 1)", "b. classifier-free, w = 3", "c. exact classifier, w = 3",
        "d. noisy classifier, w = 3"]
    assert all("fidelity 1.00" in t for t in titles(panels))  # eight gaussians: classes do not overlap
    points = samples(panels)
    assert len(points) == 4 and all(p.shape == (SMALL_PANEL, 2) and np.isfinite(p).all() for p in points)
    mode = toy_mixture("eight_gaussians").means[0].numpy()
    assert np.linalg.norm(points[0].mean(0) - mode) < 0.1  # class 0 is the mode at angle 0
    assert [d["type"] for d in field["data"]] == ["heatmap", "scatter", "heatmap", "scatter"]
    assert titles(field) == ["exact ∇ log q(y = 0 | x_t), t = 300", "learned ∇ log p_φ(y = 0 | x_t), t = 300"]
    df = sweep_frame(at)
    assert sorted(set(df["method"])) == sorted(gd.METHOD_LABELS[m] for m in gd.SWEPT)
    assert list(df["scale"][:len(gd.SCALES)]) == list(gd.SCALES)
    by = {(r.method, r.scale): r for r in df.itertuples()}
    cfg, exact, learned = (gd.METHOD_LABELS[m] for m in gd.SWEPT)
    assert by[cfg, 1.0].fidelity >= 0.95 and by[exact, 1.0].fidelity >= 0.95
    assert by[cfg, 1.0].sw_ratio < 5 and by[exact, 1.0].sw_ratio < 5  # near the floor: they aim at p(x | y)
    for m in (cfg, exact, learned):  # w = 0: the network's unconditional pass alone, from the same x_T
        assert by[m, 0.0].fidelity < 0.3 and by[m, 0.0].sw_ratio == pytest.approx(by[cfg, 0.0].sw_ratio)
        assert by[m, 8.0].fidelity >= 0.95 and by[m, 8.0].sw_ratio > 3 * by[exact, 1.0].sw_ratio  # purity, at a cost


def test_scale_class_and_toy_change_the_output_and_live_in_the_url(small):
    at = open_page()
    before = samples(plotly_specs(at)[0])
    at.slider(key="guidance.w").set_value(1.0).run()
    after = samples(plotly_specs(ok(at))[0])
    assert np.array_equal(after[0], before[0]) and not np.allclose(after[1], before[1])  # only the guided ones move
    assert np.array_equal(after[1], after[0])  # CFG at w = 1 is the conditional model, the same x_T
    at.slider(key="guidance.y").set_value(3).run()
    points = samples(plotly_specs(ok(at))[0])
    assert np.linalg.norm(points[0].mean(0) - toy_mixture("eight_gaussians").means[3].numpy()) < 0.1
    assert "class y = 3 of eight gaussians" in " ".join(c.value for c in at.caption)
    at.selectbox(key="guidance.toy").set_value("two_moons").run()
    panels = plotly_specs(ok(at))[0]
    assert at.slider(key="guidance.y").value == 1 and at.slider(key="guidance.y").max == 1  # two moons: 2 classes
    assert notes(panels) == ["no closed form<br>for q(y | x_t)"] and len(samples(panels)) == 3
    assert set(sweep_frame(at)["method"]) == {gd.METHOD_LABELS["cfg"], gd.METHOD_LABELS["cg_learned"]}
    assert at.query_params == {"w": "1", "y": "1", "toy": "two_moons"}
    # a shared link reopens the view; nonsense in the URL falls back to the defaults
    at = open_page({"toy": "two_moons", "y": "1", "w": "1", "t": "900"})
    assert (at.selectbox(key="guidance.toy").value, at.slider(key="guidance.y").value) == ("two_moons", 1)
    assert titles(plotly_specs(at)[0])[1].startswith("b. classifier-free, w = 1<br>")
    assert titles(plotly_specs(at)[1])[1] == "learned ∇ log p_φ(y = 1 | x_t), t = 900"
    at = open_page({"toy": "checkerboard", "y": "99", "w": "nan", "seed": "-3"})
    assert at.selectbox(key="guidance.toy").value == gd.DEFAULT_TOY and at.slider(key="guidance.y").value == 0
    assert at.slider(key="guidance.w").value == 3.0 and at.number_input(key="guidance.seed").value == 0


@pytest.mark.usefixtures("small")
def test_every_toy_renders_at_the_ends_of_every_control(monkeypatch):
    # Sizes no other test uses (the caches are keyed by them, not by STEPS), and short chains: this test asks only
    # that nothing raises.
    monkeypatch.setattr(gd, "N_PANEL", 60)
    monkeypatch.setattr(gd, "STEPS", 10)
    for toy, k in ((t, NUM_CLASSES[t]) for t in gd.TOYS):
        at = open_page({"toy": toy, "y": str(k - 1), "w": "8", "t": "0", "seed": "9999"})
        assert at.slider(key="guidance.y").value == k - 1 and at.slider(key="guidance.t").value == 0
        assert len(plotly_specs(at)) == 2 and all(np.isfinite(p).all() for p in samples(plotly_specs(at)[0]))
    ok(at.slider(key="guidance.t").set_value(999).run())
    ok(at.slider(key="guidance.w").set_value(0.0).run())
    assert titles(plotly_specs(at)[1])[1] == f"learned ∇ log p_φ(y = {k - 1} | x_t), t = 999"


def test_a_model_that_cannot_be_loaded_leaves_the_rest(monkeypatch, small, tmp_path):
    at = open_page(before=lambda: monkeypatch.setattr(checkpoints, "PRETRAINED_DIR", tmp_path))
    assert len(at.error) == 2 and "ddpm-cond-eight_gaussians" in at.error[0].value
    assert not plotly_specs(at) and not [df for df in vega_frames(at) if "sw_ratio" in df.columns]
    assert sum(i.value.startswith(("No samples", "No field", "No sweep")) for i in at.info) == 3
    # only the classifier missing: its panel, its field and its line go, the rest stays
    d = tmp_path / "some"
    d.mkdir()
    for f in ("ddpm-cond-eight_gaussians.json", "ddpm-cond-eight_gaussians.safetensors", "manifest.json"):
        shutil.copy(SHIPPED / f, d / f)
    at = open_page(before=lambda: monkeypatch.setattr(checkpoints, "PRETRAINED_DIR", d))
    assert len(at.error) == 1 and "noisy-classifier-eight_gaussians" in at.error[0].value
    panels, field = plotly_specs(at)
    assert len(samples(panels)) == 3 and notes(panels) == ["noisy-classifier-eight_gaussians cannot be loaded"]
    assert notes(field) == ["noisy-classifier-eight_gaussians cannot be loaded"]
    assert gd.METHOD_LABELS["cg_learned"] not in set(sweep_frame(at)["method"])


def test_the_sweep_comes_from_the_benchmark_file_or_a_message_says_how_to_make_it(small, monkeypatch, tmp_path):
    shipped = json.loads(gd.SWEEP_JSON.read_text())["sweep"]
    mine = [r for r in shipped if r["toy"] == "eight_gaussians" and r["y"] == 2]
    assert len(mine) == 3 * len(gd.SCALES)  # the benchmark swept every class of every page toy, at the page's scales
    at = open_page({"y": "2"})
    df = sweep_frame(at)
    row = next(r for r in mine if r["method"] == "cfg" and r["scale"] == 3.0)
    assert df[(df["method"] == gd.METHOD_LABELS["cfg"]) & (df["scale"] == 3.0)]["fidelity"].item() == row["fidelity"]
    for name, text in (("missing.json", None), ("broken.json", "{not json"),
                       ("damaged.json", json.dumps({"sweep": [{**mine[0], "fidelity": "high"}]})),
                       ("other.json", json.dumps({"sweep": [{**mine[0], "y": 5}]}))):
        monkeypatch.setattr(gd, "SWEEP_JSON", tmp_path / name)
        if text is not None:
            gd.SWEEP_JSON.write_text(text)
        infos = [i.value for i in open_page({"y": "2"}).info if i.value.startswith("No sweep to show")]
        assert len(infos) == 1 and gd.SWEEP_COMMAND in infos[0], name


def test_the_mnist_section_shows_the_benchmarks_rows_or_says_how_to_make_them(small, monkeypatch):
    at = open_page()
    (info,) = [i.value for i in at.info if i.value.startswith("No MNIST results")]
    assert "is missing" in info and gd.MNIST_COMMAND in info
    mnist_file(small)
    at = open_page()
    (table,) = [d.value for d in at.dataframe]
    labels = gd.MNIST_GUIDANCE
    assert list(table["guidance"]) == [labels["none"]] + [labels["classifier-free"]] * 2 + [labels["classifier"]] * 2
    assert list(table["scale"]) == [0.0, 1.0, 3.0, 1.0, 3.0] and table["accuracy"].iloc[2] == 0.97
    charts = [df for df in vega_frames(at) if "guidance" in df.columns]
    assert len(charts) == 2 and all(len(df) == 6 for df in charts)  # the unguided row starts both lines
    assert set(charts[0][charts[0]["scale"] == 0.0]["guidance"]) == {labels["classifier-free"], labels["classifier"]}
    assert any("500 samples per row, ten of each digit, ddim in 25 steps" in c.value and "diffusion ddpm-mnist" in
               c.value and "2 CPU threads" in c.value for c in at.caption)
    for i, damage in enumerate((  # a new file each time: the reader is keyed by its modification time
            [{"guidance": "classifier", "scale": 1.0, "accuracy": float("nan"), "fid": 1.0, "seconds": 1.0}],
            [{"guidance": "cfg", "scale": 1.0, "accuracy": 0.5, "fid": 1.0, "seconds": 1.0}],
            [{"guidance": "classifier", "scale": 1.0}])):
        monkeypatch.setattr(gd, "MNIST_JSON", small.with_name(f"damaged{i}.json"))
        mnist_file(gd.MNIST_JSON, damage)
        infos = [m.value for m in open_page().info if m.value.startswith("No MNIST results")]
        assert infos and "is damaged" in infos[0] and gd.MNIST_COMMAND in infos[0]
    monkeypatch.setattr(gd, "MNIST_JSON", small.with_name("broken.json"))
    gd.MNIST_JSON.write_text("{not json")
    assert any("not a readable JSON object" in i.value for i in open_page().info)


# --- helpers -------------------------------------------------------------------------------------------------------


def test_the_exact_field_is_the_closed_form_and_the_learned_one_is_close_in_probability():
    _, pts = score_field.grid(gd.FIELD_N, gd.FIELD_LIM)
    gm, s = toy_mixture("eight_gaussians"), gd.field_schedule("eight_gaussians")
    exact = gd.guidance_field("eight_gaussians", "exact", 5, 300, gd.FIELD_N)
    closed = gm.class_log_posterior_grad(torch.from_numpy(pts).double(), 5, 300, s).numpy()
    assert np.allclose(exact, closed, atol=1e-4)
    p_exact = gd.class_probability("eight_gaussians", "exact", 5, 300, 30)
    assert p_exact.shape == (30, 30) and np.allclose(p_exact.ravel(), gm.class_posterior(
        torch.from_numpy(score_field.grid(30, gd.FIELD_LIM)[1]).double(), 300, s)[:, 5].numpy(), atol=1e-6)
    assert np.abs(gd.class_probability("eight_gaussians", "learned", 5, 300, 30) - p_exact).mean() < 0.05
    with pytest.raises(ValueError, match="unknown method"):
        gd.guided_eps("eight_gaussians", "cg", 0, 1.0)

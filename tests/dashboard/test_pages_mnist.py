"""AppTest checks of the MNIST page: it renders from the pretrained model, shows where its real digits come from,
every control changes the digits, its state lives in the URL (bad values fall back to the defaults), the one-batch
guidance sweep equals separate sample() calls, the forward process starts from the real digit, and the evaluation
table shows the manifest's numbers. Run: python -m pytest tests/dashboard/test_pages_mnist.py -q"""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from core import checkpoints
from core.data.mnist import load_mnist
from core.samplers import sample
from dashboard.ui import plots
from tests.dashboard.apptest_helpers import app_on, ok, plotly_specs, vega_frames

CHEAP = {"n": "10", "steps_ddim": "4"}  # ten digits, four DDIM steps: a fraction of a second per run
TILE, DX, DY = 28, 28 + plots.IMAGE_GAP, 28 + plots.IMAGE_GAP + plots.CAPTION_PX  # the grid's tile layout


def open_page(query: dict[str, str] | None = None) -> AppTest:
    at = app_on("views/mnist.py", 180)
    at.query_params.update(query or {})
    return ok(at.run())


def image(trace: dict) -> np.ndarray:
    """A heatmap's z (uint8 typed array with a shape, or nested lists) as a 2D array."""
    z = trace["z"]
    if isinstance(z, dict):
        shape = tuple(int(s) for s in z["shape"].split(","))
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"])).reshape(shape)
    return np.asarray(z)


def charts(at: AppTest) -> dict[str, dict]:
    grid, animation, sweep, forward = plotly_specs(at)
    return {"grid": grid, "animation": animation, "sweep": sweep, "forward": forward}


def tiles(z: np.ndarray, cols: int, dy: int = DY) -> np.ndarray:
    """The (n, 28, 28) tiles of a mosaic, row by row."""
    rows = (z.shape[0] + plots.IMAGE_GAP) // dy
    return np.stack([z[r * dy:r * dy + TILE, c * DX:c * DX + TILE] for r in range(rows) for c in range(cols)])


def captions(fig: dict) -> list[str]:
    return [a["text"] for a in fig["layout"]["annotations"] if a.get("yref") == "y" and a.get("xref") == "x"]


def grid_image(at: AppTest) -> np.ndarray:
    return image(charts(at)["grid"]["data"][0])


# --- the default view ----------------------------------------------------------------------------------------------


def test_default_page_renders_header_grid_animation_and_data_source():
    at = open_page()
    assert len(at.latex) == 2 and "varnothing" in at.latex[0].value  # the CFG equation
    assert any(i.value.startswith("**Try this:**") for i in at.info)
    assert [e.label for e in at.expander] == ["Show the code"]
    assert [c.value.lstrip()[:4] for c in at.code] == ["def "] * 5
    assert "eps_u + w * (eps_c - eps_u)" in at.code[0].value  # _guided_eps
    assert len(at.markdown[0].value.split(". ")) >= 2
    assert not at.warning

    source = load_mnist("test").source
    assert any(c.value == f"**Data:** {source}." for c in at.caption)

    figs = charts(at)
    z = image(figs["grid"]["data"][0])
    assert z.dtype == np.uint8 and z.shape == (2 * DY - plots.IMAGE_GAP, 10 * DX - plots.IMAGE_GAP)
    digits = tiles(z, 10)
    assert digits.shape == (20, 28, 28) and digits.std() > 50  # black background, white strokes
    caps = captions(figs["grid"])
    assert len(caps) == 20 and all(c.endswith(("✓", "✗")) for c in caps)
    assert sum(c == f"{i % 10} ✓" for i, c in enumerate(caps)) >= 16  # 0-9 twice, read back by the classifier
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["NFE"] == "15" and metrics["Classifier agrees"].endswith("/20")

    anim = figs["animation"]
    assert 10 <= len(anim["frames"]) <= 25
    assert all([d["type"] for d in f["data"]] == ["heatmap", "heatmap"] for f in anim["frames"])
    assert [b["label"] for b in anim["layout"]["updatemenus"][0]["buttons"]] == ["▶ Play", "❚❚ Pause"]
    assert len(anim["layout"]["sliders"][0]["steps"]) == len(anim["frames"])
    first_xt, last_xt = (image(anim["frames"][k]["data"][0]) for k in (0, -1))
    last_x0 = image(anim["frames"][-1]["data"][1])
    same_run = tiles(last_xt, 4, dy=DX)  # the animation ends on the grid's first four digits
    assert np.array_equal(same_run, digits[:4]) and np.array_equal(last_x0, last_xt)
    assert np.abs(tiles(first_xt, 4, dy=DX).astype(float) - digits[:4]).mean() > 40  # x_T is noise

    assert [a["text"] for a in figs["sweep"]["layout"]["annotations"] if a.get("yref") == "paper"][:2] == \
        ["w = 0 (∅)", "w = 1 (p(x|y))"]
    assert any(m.value.startswith("**GPU** · ") for m in at.markdown)  # the benchmark file of the repository


# --- controls and the URL -----------------------------------------------------------------------------------------


def test_every_control_changes_the_digits():
    at = open_page(CHEAP)
    before = grid_image(at)
    assert before.shape[1] == 10 * DX - plots.IMAGE_GAP and before.shape[0] == DY - plots.IMAGE_GAP  # 10 digits
    for kind, key, value in [("selectbox", "mnist.digit", "7"), ("slider", "mnist.w", 6.0),
                             ("selectbox", "mnist.method", "dpm_solver_2m"),
                             ("slider", "mnist.steps_dpm_solver_2m", 4), ("number_input", "mnist.seed", 3)]:
        getattr(at, kind)(key=key).set_value(value).run()
        after = grid_image(ok(at))
        assert not np.array_equal(before, after), f"{key} = {value} did not change the grid"
        before = after
        if value == "7":
            assert sum(c == "7 ✓" for c in captions(charts(at)["grid"])) >= 8  # guided sevens
    assert {k: at.query_params[k] for k in ("digit", "w", "method", "steps_dpm_solver_2m", "seed", "n")} == \
        {"digit": "7", "w": "6", "method": "dpm_solver_2m", "steps_dpm_solver_2m": "4", "seed": "3", "n": "10"}
    at.selectbox(key="mnist.digit").set_value("each").run()
    assert "digit" not in ok(at).query_params  # defaults stay out of the link


def test_query_params_initialise_the_widgets_and_survive():
    query = {"digit": "any", "w": "2.5", "method": "ode_heun", "steps_ode_heun": "3", "n": "10", "seed": "42"}
    at = open_page(query)
    assert at.selectbox(key="mnist.digit").value == "any"
    assert at.slider(key="mnist.w").value == 2.5 and at.slider(key="mnist.w").disabled  # no label: w unused
    assert at.selectbox(key="mnist.method").value == "ode_heun"
    assert at.slider(key="mnist.steps_ode_heun").value == 3
    assert (at.slider(key="mnist.n").value, at.number_input(key="mnist.seed").value) == (10, 42)
    assert {k: at.query_params[k] for k in query} == query
    caps = captions(charts(at)["grid"])
    assert len(caps) == 10 and not any("✓" in c or "✗" in c for c in caps)  # unconditional: nothing requested
    assert "Digits present" in {m.label for m in at.metric}
    assert {m.label: m.value for m in at.metric}["NFE"] == "5"  # Heun: 2 x 3 - 1


def test_reverse_sde_sampler_gives_clean_digits():
    """Euler-Maruyama starts at the clipped log-SNR (core.samplers.continuous_timesteps), not in the cosine
    schedule's exploding tail, so it gives the requested digits with no divergence warning."""
    at = open_page({"method": "euler_maruyama", "steps_euler_maruyama": "100", "n": "10"})
    assert not at.warning, [w.value for w in at.warning]
    caps = captions(charts(at)["grid"])
    assert sum("✓" in c for c in caps) >= 8, caps


def test_absurd_query_params_fall_back_to_defaults():
    query = {"digit": "11", "w": "nan", "method": "ddim; rm -rf /", "steps_ddim": "1e9", "n": "-5",
             "seed": "1e999"}
    at = open_page(query)
    assert at.selectbox(key="mnist.digit").value == "each"
    assert at.slider(key="mnist.w").value == 3.0
    assert at.selectbox(key="mnist.method").value == "ddim"
    assert at.slider(key="mnist.steps_ddim").value == 15
    assert at.slider(key="mnist.n").value == 20 and at.number_input(key="mnist.seed").value == 0
    assert not set(query) & set(at.query_params)


# --- the sweep and the forward process ------------------------------------------------------------------------------


def test_sweep_batch_equals_one_sample_call_per_scale():
    at = open_page({**CHEAP, "digit": "3"})
    fig = charts(at)["sweep"]
    scales = [float(re.match(r"w = ([\d.]+)", a["text"]).group(1)) for a in fig["layout"]["annotations"]
              if a.get("yref") == "paper"]
    assert scales == [0.0, 1.0, 2.0, 3.0, 5.0, 8.0]
    got = tiles(image(fig["data"][0]), len(scales)).reshape(4, len(scales), 28, 28)  # rows: noises, cols: w
    p = checkpoints.load_pretrained("ddpm-mnist")
    x_T = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0 + 2))
    for col in (0, 3):  # the unconditional column and w = 3
        x0 = sample(p.model, p.schedule, x_T, method="ddim", steps=10, y=3, guidance_scale=scales[col],
                    keep_trajectory=False).x0
        want = plots.to_uint8(x0.clamp(-1, 1).numpy())
        assert np.abs(got[:, col].astype(int) - want).max() <= 2, col  # same digits up to float rounding
    caps = captions(fig)
    assert all(c == "3 ✓" for c in caps[3::len(scales)])  # w = 3 draws threes
    (chart,) = vega_frames(at)
    fidelity = chart[chart["quantity"] == "fidelity"].set_index("w")["value"]
    assert len(chart) == 2 * len(scales) and fidelity[3.0] > 0.9 and fidelity[3.0] > fidelity[0.0]


def test_forward_process_starts_from_the_real_digit():
    at = open_page({**CHEAP, "digit": "5", "seed": "2"})
    fig = charts(at)["forward"]
    caption = next(c.value for c in at.caption if c.value.startswith("Test digit #"))
    index = int(re.match(r"Test digit #(\d+) \(a (\d)\)", caption).group(1))
    assert re.match(r"Test digit #\d+ \(a 5\)", caption)
    z = image(fig["data"][0])
    grid = tiles(z, 9).reshape(4, 9, 28, 28)  # schedules x timesteps
    real = plots.to_uint8(load_mnist("test").images[index].numpy())
    assert all(np.array_equal(grid[r, 0], real) for r in range(4))  # t = 0 is the digit itself in every row
    assert np.abs(grid[:, -1].astype(float) - real).mean() > 60  # t = T: noise
    rows = [a["text"] for a in fig["layout"]["annotations"] if a.get("xref") == "paper"]
    assert rows == ["linear", "cosine (the model's)", "sigmoid", "quadratic"]
    sqrt_ab = [float(c.split()[-1]) for c in captions(fig)]
    assert sqrt_ab[9 * 0 + 4] < sqrt_ab[9 * 1 + 4]  # at t = 300 linear keeps less signal than cosine


# --- evaluation ---------------------------------------------------------------------------------------------------


@pytest.fixture
def manifest_dir(tmp_path, monkeypatch):
    """A pretrained/ directory whose manifest the page reads instead of the real one (the checkpoints themselves are
    links to the shipped files; the test manifest records no hashes, so they load unchecked)."""
    for f in checkpoints.PRETRAINED_DIR.iterdir():
        if f.suffix in (".json", ".safetensors") and f.name != "manifest.json":
            (tmp_path / f.name).symlink_to(f)
    monkeypatch.setattr(checkpoints, "PRETRAINED_DIR", tmp_path)

    def write(metrics: dict | None) -> None:
        entry = {"command": "python -m core train --data mnist", "seconds": 12.5, "steps": 345,
                 "hardware": "a test machine"}
        if metrics is not None:
            entry["metrics"] = metrics
        (tmp_path / "manifest.json").write_text(json.dumps({"models": {"ddpm-mnist": entry}}))

    return write


def test_evaluation_table_shows_the_manifest_numbers(manifest_dir):
    metrics = {"n": 500, "sampler": "ddim-50", "classifier_test_accuracy": 0.983, "fid_mnist_data_vs_data": 1.234,
               "guided": [{"guidance_scale": 1.0, "accuracy": 0.871, "fid_mnist": 9.87, "seconds": 11.1},
                          {"guidance_scale": 3.0, "accuracy": 0.992, "fid_mnist": 6.54, "seconds": 22.2}],
               "unconditional_class_histogram": [50, 49, 51, 48, 52, 50, 50, 50, 50, 50],
               "unconditional_classes_covered": 10, "fid_mnist_unconditional": 4.321}
    manifest_dir(metrics)
    at = open_page(CHEAP)
    table = at.dataframe[0].value
    assert table.iloc[:, 0].tolist() == [1.0, 3.0]
    assert table.iloc[:, 1].tolist() == [0.871, 0.992] and table.iloc[:, 2].tolist() == [9.87, 6.54]
    shown = {m.label: m.value for m in at.metric}
    assert shown["FID-MNIST, real vs real"] == "1.234" and shown["FID-MNIST, unconditional"] == "4.321"
    assert shown["Classes covered (w = 0)"] == "10/10" and shown["Classifier test accuracy"] == "98.3%"
    assert any("50 · 49 · 51" in c.value for c in at.caption)
    assert any("345 steps in 12.5 s on a test machine" in c.value for c in at.caption)
    assert not any("core evaluate ddpm-mnist" in i.value for i in at.info)


def test_evaluation_without_metrics_says_how_to_compute_them(manifest_dir):
    manifest_dir(None)
    at = open_page(CHEAP)
    assert any("`python -m core evaluate ddpm-mnist --update-manifest`" in i.value for i in at.info)
    assert "FID-MNIST, real vs real" not in {m.label for m in at.metric}

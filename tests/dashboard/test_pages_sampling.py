"""AppTest checks of the Reverse process and Samplers pages: they render, their controls change the output, their
state lives in the URL, no control value raises, the exact-score toggle works, and the quality-vs-NFE chart comes
from the benchmark JSON or is computed on demand. Run: python -m pytest tests/dashboard/test_pages_sampling.py -q"""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.checkpoints import load_pretrained
from core.data.toy2d import TOY_NAMES
from core.samplers import METHODS, steps_for_nfe
from dashboard.ui import sampling
from dashboard.ui.models import SessionModel
from tests.dashboard.apptest_helpers import app_on, ok, plotly_specs

EIGHT_RADIUS = math.sqrt(2 * (1 - 0.01))  # eight_gaussians modes in standardised units (see test_pages.py)


def open_page(page: str, query: dict[str, str] | None = None, session: dict | None = None) -> AppTest:
    at = app_on(page, 120)
    for k, v in (session or {}).items():
        at.session_state[k] = v
    at.query_params.update(query or {})
    return ok(at.run())


def arr(v) -> np.ndarray:
    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v, dtype=float)


def xy(trace: dict) -> np.ndarray:
    return np.stack([arr(trace["x"]), arr(trace["y"])], axis=1)


def vega_specs(at: AppTest) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("vega_lite_chart")]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def panel_captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption if c.value.startswith("**NFE")]


def set_and_run(at: AppTest, kind: str, key: str, value) -> AppTest:
    getattr(at, kind)(key=key).set_value(value).run()
    return ok(at)


def session_cloud_model(token: str) -> tuple[dict, np.ndarray]:
    """A 'trained in this session' model on the user's own points (the two-moons weights, relabelled)."""
    p = load_pretrained("ddpm-two_moons")
    pts = np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32) * [1.5, 0.3]
    p.config = {**p.config, "data": {"kind": "points", "points": pts.tolist(), "source": "uploaded in a test"}}
    return {"session_models": {token: SessionModel("my ellipse", p, [1.0, 0.5])}}, pts


# --- Reverse process ---------------------------------------------------------------------------------------------


def test_reverse_page_header_animation_and_metrics():
    at = open_page("views/reverse.py")
    assert len(at.latex) >= 1 and any(i.value.startswith("**Try this:**") for i in at.info)
    assert [e.label for e in at.expander] == ["Show the code"]
    assert [c.value.lstrip()[:4] for c in at.code][:2] == ["def ", "def "]  # sample() and ddpm_step
    assert "def ddpm_step" in at.code[1].value
    (fig,) = plotly_specs(at)
    assert 20 <= len(fig["frames"]) <= 30
    assert [d.get("xaxis", "x") for d in fig["data"]] == ["x", "x2", "x", "x", "x", "x2", "x2"]
    assert fig["layout"]["yaxis"]["scaleanchor"] == "x" and fig["layout"]["yaxis2"]["scaleanchor"] == "x2"
    assert fig["layout"]["xaxis"]["range"] == fig["layout"]["xaxis2"]["range"] == [-4, 4]
    assert all(f["traces"] == [2, 3, 4, 5, 6] for f in fig["frames"])
    assert len(fig["layout"]["sliders"][0]["steps"]) == len(fig["frames"])
    first, last = fig["frames"][0]["data"], fig["frames"][-1]["data"]
    x_T = xy(first[0])
    assert x_T.shape == (1000, 2) and abs(x_T.std() - 1) < 0.1  # starts from N(0, I)
    assert np.allclose(xy(last[0]), xy(last[3]))  # at the end, the x0 prediction is the sample
    assert np.abs(np.linalg.norm(xy(last[0]), axis=1) - EIGHT_RADIUS).mean() < 0.3  # on the eight modes
    assert xy(first[2]).shape == (8, 2)  # the particles' heads
    m = metrics(at)
    assert m["NFE"] == "100" and m["Wall time"].endswith(" s")
    assert float(m["SW / data floor"].rstrip("×")) < 3


def test_reverse_method_steps_seed_and_points_change_the_output():
    at = open_page("views/reverse.py")
    base = xy(plotly_specs(at)[0]["frames"][-1]["data"][0])
    set_and_run(at, "selectbox", "reverse.method", "ddim")
    assert metrics(at)["NFE"] == "50"
    assert "def ddim_step" in at.code[1].value
    assert at.slider(key="reverse.eta").value == 0.0  # eta appears for DDIM only
    set_and_run(at, "slider", "reverse.steps_ddim", 10)
    assert metrics(at)["NFE"] == "10"
    fig = plotly_specs(at)[0]
    assert len(fig["frames"]) == 11  # all 11 states when there are fewer than 25
    assert not np.allclose(base, xy(fig["frames"][-1]["data"][0]))
    set_and_run(at, "selectbox", "reverse.method", "ode_heun")
    assert metrics(at)["NFE"] == str(2 * 25 - 1)
    assert not [s for s in at.slider if s.key == "reverse.eta"]
    at.number_input(key="reverse.seed").set_value(3).run()
    set_and_run(at, "slider", "reverse.n", 300)
    assert xy(plotly_specs(at)[0]["frames"][0]["data"][0]).shape == (300, 2)
    assert at.query_params == {"method": "ode_heun", "steps_ddim": "10", "seed": "3", "n": "300"}
    set_and_run(at, "selectbox", "reverse.method", "ddim")
    assert at.slider(key="reverse.steps_ddim").value == 10  # each sampler keeps its own steps


def test_reverse_query_params_initialise_widgets_and_bad_ones_fall_back():
    query = {"method": "predictor_corrector", "steps_predictor_corrector": "20", "sde": "ve", "n": "400",
             "seed": "7", "exact": "1"}
    at = open_page("views/reverse.py", query)
    assert at.selectbox(key="reverse.method").value == "predictor_corrector"
    assert at.slider(key="reverse.steps_predictor_corrector").value == 20
    assert at.selectbox(key="reverse.sde").value == "ve"
    assert at.toggle(key="reverse.exact").value is True
    assert metrics(at)["NFE"] == "40"
    assert {k: at.query_params[k] for k in query} == query
    at = open_page("views/reverse.py", {"method": "ddpmx", "steps_ddpm": "5000", "n": "nan", "seed": "-1",
                                  "model": "../etc/passwd", "exact": "maybe"})
    assert at.selectbox(key="reverse.method").value == "ddpm"
    assert at.slider(key="reverse.steps_ddpm").value == 100 and at.slider(key="reverse.n").value == 1000
    assert at.selectbox(key="reverse.model").value == "ddpm-eight_gaussians"
    assert at.toggle(key="reverse.exact").value is False


def test_reverse_exact_score_toggle():
    at = open_page("views/reverse.py", {"method": "ddim", "steps_ddim": "20"})
    learned = plotly_specs(at)[0]["frames"]
    at.toggle(key="reverse.exact").set_value(True).run()
    assert any("Exact score" in c.value for c in ok(at).caption)
    exact = plotly_specs(at)[0]["frames"]
    assert np.allclose(xy(learned[0]["data"][0]), xy(exact[0]["data"][0]))  # the same x_T
    assert not np.allclose(xy(learned[5]["data"][3]), xy(exact[5]["data"][3]))  # another eps, another x0 prediction
    assert at.query_params["exact"] == "1"
    at.selectbox(key="reverse.model").set_value("ddpm-swiss_roll").run()
    assert not [t for t in ok(at).toggle if t.key == "reverse.exact"]  # no closed form for the swiss roll


def test_reverse_overlays_a_users_own_point_cloud():
    session, pts = session_cloud_model("session:reverse01")
    # AppTest formats selectbox values outside the script thread, where session models are unknown, so the model
    # is picked through the URL (one render: no widget interaction after it)
    at = open_page("views/reverse.py", {"model": "session:reverse01"}, session=session)
    assert any("yours: my ellipse" in c.value for c in at.caption)
    (fig,) = plotly_specs(at)
    assert np.allclose(xy(fig["data"][0]), pts, atol=1e-6)  # grey overlay: the user's points
    assert not [t for t in at.toggle if t.key == "reverse.exact"]
    assert any("your points" in md.value for md in at.markdown)


def test_reverse_control_sweep():
    """Every sampler at its min / middle / max steps, each of its options; the exact score and few points keep
    it fast. Then every model, and the points slider."""
    at = open_page("views/reverse.py", {"exact": "1", "n": "200"})
    runs = 0
    for method in METHODS:
        set_and_run(at, "selectbox", "reverse.method", method)
        s = at.slider(key=f"reverse.steps_{method}")
        lo, hi, step = int(s.min), int(s.max), int(s.step)
        set_and_run(at, "slider", f"reverse.steps_{method}", lo)  # the options below at the cheapest
        for key in ("reverse.spacing", "reverse.variance", "reverse.sde"):
            if [w for w in at.selectbox if w.key == key]:
                for option in at.selectbox(key=key).options:
                    set_and_run(at, "selectbox", key, option)
                    runs += 1
        if method == "ddim":
            for eta in (0.0, 0.5, 1.0):
                set_and_run(at, "slider", "reverse.eta", eta)
                runs += 1
        for v in (lo + round((hi - lo) / 2 / step) * step, hi):
            set_and_run(at, "slider", f"reverse.steps_{method}", v)
            assert metrics(at)["NFE"] != "0"
            runs += 1
    set_and_run(at, "selectbox", "reverse.method", "dpm_solver_2m")
    set_and_run(at, "slider", "reverse.steps_dpm_solver_2m", 5)
    for toy in TOY_NAMES:
        set_and_run(at, "selectbox", "reverse.model", f"ddpm-{toy}")
        runs += 1
    for v in (200, 1100, 2000):
        set_and_run(at, "slider", "reverse.n", v)
    for v in (0, 9999):
        at.number_input(key="reverse.seed").set_value(v).run()
        ok(at)
    assert runs >= 40


# --- Samplers -------------------------------------------------------------------------------------------------------


def test_samplers_page_runs_every_sampler_from_the_same_x_T():
    at = open_page("views/samplers.py")
    assert len(at.latex) >= 2 and [e.label for e in at.expander] == ["Show the code"]
    figs = plotly_specs(at)
    assert len(figs) == len(METHODS) + 1  # one panel per sampler, and the data
    assert all(f["layout"]["yaxis"]["scaleanchor"] == "x" and f["layout"]["xaxis"]["range"] == [-4, 4] for f in figs)
    caps = panel_captions(at)
    assert len(caps) == len(METHODS)
    nfes = [int(c.split("**NFE ")[1].split("**")[0]) for c in caps]
    assert nfes == [20, 20, 20, 20, 20, 19, 20]  # Heun: 10 steps = 19 NFE
    assert all(" s · " in c and "floor" in c for c in caps)
    at.slider(key="samplers.t").set_value(1000).run()
    starts = [xy(f["data"][1]) for f in plotly_specs(ok(at))[:-1]]  # each panel at its first state: x_T
    assert all(np.allclose(starts[0], s) for s in starts[1:])
    assert all("shown: t = " in c for c in panel_captions(at))


def test_samplers_budget_and_options_change_the_runs():
    at = open_page("views/samplers.py")
    before = xy(plotly_specs(at)[1]["data"][1])  # DDIM's samples
    at.select_slider(key="samplers.nfe").set_value(5).run()
    nfes = [int(c.split("**NFE ")[1].split("**")[0]) for c in panel_captions(ok(at))]
    assert nfes == [5, 5, 5, 4, 5, 5, 5]  # predictor-corrector: 2 steps x 2
    at.slider(key="samplers.eta").set_value(1.0).run()
    assert not np.allclose(before, xy(plotly_specs(ok(at))[1]["data"][1]))
    at.selectbox(key="samplers.sde").set_value("ve").run()
    assert at.query_params == {"nfe": "5", "eta": "1", "sde": "ve"}


def test_samplers_query_params_initialise_widgets():
    query = {"nfe": "10", "t": "300", "n": "500", "seed": "2", "eta": "0.5", "spacing": "trailing", "sde": "ve",
             "model": "ddpm-rings"}
    at = open_page("views/samplers.py", query)
    assert at.select_slider(key="samplers.nfe").value == 10
    assert at.slider(key="samplers.t").value == 300 and at.slider(key="samplers.n").value == 500
    assert at.number_input(key="samplers.seed").value == 2
    assert at.slider(key="samplers.eta").value == pytest.approx(0.5)
    assert at.selectbox(key="samplers.spacing").value == "trailing"
    assert at.selectbox(key="samplers.model").value == "ddpm-rings"
    assert {k: at.query_params[k] for k in query} == query
    at = open_page("views/samplers.py", {"nfe": "7", "t": "1e9"})
    assert at.select_slider(key="samplers.nfe").value == 20 and at.slider(key="samplers.t").value == 0


def test_samplers_exact_toggle_changes_every_panel():
    at = open_page("views/samplers.py", {"nfe": "10"})
    learned = panel_captions(at)
    at.toggle(key="samplers.exact").set_value(True).run()
    assert any(c.value.startswith("**Exact score**") for c in ok(at).caption)
    exact = panel_captions(at)
    assert len(exact) == len(METHODS) and all(a != b for a, b in zip(learned, exact, strict=True))


def test_samplers_chart_from_the_benchmark_json(tmp_path, monkeypatch):
    rows = [{"toy": "eight_gaussians", "model": kind, "method": m, "nfe_target": k, "steps": k, "nfe": k,
             "sw": 0.1, "floor": 0.05, "ratio": 2.0 / k ** 0.3 if kind == "learned" else 1.5 / k ** 0.3,
             "seconds": k * 0.01} for kind in ("learned", "exact") for m in ("ddim", "dpm_solver_2m") for k in (5, 50)]
    rows.append({"toy": "two_moons", "model": "learned", "method": "ddim", "nfe": 5, "ratio": None, "seconds": 0.1})
    path = tmp_path / "samplers.json"
    path.write_text(json.dumps({"created": "2026-11-26", "hardware": "test CPU", "threads": 1,
                                "settings": {"n": 5000}, "rows": rows}))
    monkeypatch.setattr(sampling, "BENCHMARK_JSON", path)
    at = open_page("views/samplers.py")
    specs = vega_specs(at)
    assert len(specs) == 2  # quality vs NFE, quality vs wall time
    enc = specs[0]["layer"][0]["encoding"]
    assert enc["x"]["field"] == "nfe" and enc["x"]["scale"]["type"] == "log"
    assert enc["y"]["scale"]["type"] == "log" and enc["strokeDash"]["field"] == "model"
    assert enc["strokeDash"]["scale"]["domain"] == ["learned", "exact"]  # learned solid, exact dashed
    assert enc["strokeDash"]["scale"]["range"] == [[1, 0], [6, 4]]
    assert specs[1]["layer"][0]["encoding"]["x"]["field"] == "seconds"
    assert any("samplers.json" in c.value and "n = 5000" in c.value for c in at.caption)
    at.selectbox(key="samplers.model").set_value("ddpm-two_moons").run()  # its only row has no ratio
    assert not ok(at).get("vega_lite_chart") and any(i.value.startswith("No chart yet") for i in at.info)
    monkeypatch.setattr(sampling, "BENCHMARK_JSON", tmp_path / "missing.json")
    at.selectbox(key="samplers.model").set_value("ddpm-rings").run()
    assert not ok(at).get("vega_lite_chart")
    assert any(i.value.startswith("No chart yet") for i in at.info)


def test_samplers_compute_on_demand_persists(monkeypatch, tmp_path):
    monkeypatch.setattr(sampling, "BENCHMARK_JSON", tmp_path / "missing.json")
    monkeypatch.setattr(sampling, "ON_DEMAND_NFE", (5, 10))  # the page's grid is (5, 10, 20, 50) on 1000 points
    monkeypatch.setattr(sampling, "ON_DEMAND_N", 200)
    at = open_page("views/samplers.py", {"n": "200"})
    assert not at.get("vega_lite_chart")
    at.button(key="samplers.compute").click().run()
    specs = vega_specs(ok(at))
    assert len(specs) == 2
    assert at.button(key="samplers.compute").disabled  # computed for these settings
    assert any(c.value.startswith("Computed here") for c in at.caption)
    at.slider(key="samplers.t").set_value(500).run()  # another control: the chart stays
    assert len(ok(at).get("vega_lite_chart")) == 2
    at.slider(key="samplers.eta").set_value(0.5).run()  # a sampler option: not computed for these yet
    assert not ok(at).get("vega_lite_chart") and not at.button(key="samplers.compute").disabled


def test_samplers_control_sweep():
    at = open_page("views/samplers.py", {"exact": "1", "n": "200"})
    runs = 0
    for v in sampling.NFE_BUDGETS:
        set_and_run(at, "select_slider", "samplers.nfe", v)
        runs += 1
    set_and_run(at, "select_slider", "samplers.nfe", 5)
    for key in ("samplers.t", "samplers.eta", "samplers.n"):
        s = at.slider(key=key)
        for v in (s.min, s.min + round((s.max - s.min) / 2 / s.step) * s.step, s.max):
            set_and_run(at, "slider", key, v)
            runs += 1
    for key in ("samplers.spacing", "samplers.sde"):
        for option in at.selectbox(key=key).options:
            set_and_run(at, "selectbox", key, option)
            runs += 1
    for token in ("ddpm-swiss_roll", "ddpm-twenty_five_gaussians", "ddpm-checkerboard"):
        set_and_run(at, "selectbox", "samplers.model", token)
        runs += 1
    for v in (0, 9999):
        at.number_input(key="samplers.seed").set_value(v).run()
        ok(at)
    assert runs >= 20


def test_samplers_user_point_cloud_is_the_data():
    session, pts = session_cloud_model("session:samplers01")
    at = open_page("views/samplers.py", {"nfe": "5", "model": "session:samplers01"}, session=session)
    figs = plotly_specs(at)
    assert np.allclose(xy(figs[-1]["data"][0]), pts, atol=1e-6)  # the data panel
    assert np.allclose(xy(figs[0]["data"][0]), pts, atol=1e-6)  # and the overlay of every sampler
    assert any(c.value.startswith("Your points") for c in at.caption)


# --- helpers ---------------------------------------------------------------------------------------------------------


def test_steps_for_nfe_matches_the_samplers_cost():
    from core.samplers import sample
    from core.schedules import make_schedule

    s = make_schedule("linear", T=100)
    eps = lambda x, t, y=None: torch.zeros_like(x)  # noqa: E731
    for method in METHODS:
        for nfe in (5, 10, 20):
            k = steps_for_nfe(method, nfe, s.T)
            assert sample(eps, s, torch.zeros(4, 2), method=method, steps=k).nfe <= nfe
    assert steps_for_nfe("ddpm", 1000, 100) is None
    assert steps_for_nfe("ode_heun", 2, 100) is None
    with pytest.raises(ValueError, match="unknown method"):
        steps_for_nfe("euler", 10, 100)


def test_step_ranges_fit_small_T():
    for method in METHODS:
        for T in (1, 3, 50, 1000):
            r = sampling.step_range(method, T)
            assert 1 <= r.lo <= r.default <= r.hi <= T

"""AppTest checks of the model pages (Score field with its Likelihood section, Train) and unit tests of their
helpers (dashboard/ui/score_field.py, train.py). Run: python -m pytest tests/dashboard/test_pages_model.py -q"""

from __future__ import annotations

import base64
import json
import math
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors
from streamlit.testing.v1 import AppTest

from core.analytic import toy_mixture
from core.checkpoints import build_model, load_checkpoint, load_pretrained
from core.data.toy2d import TOY_NAMES, sample_toy
from core.langevin import langevin_dynamics, langevin_levels
from core.likelihood import ode_log_likelihood
from core.schedules import make_schedule
from core.training import TrainConfig
from dashboard.jobs import recipes
from dashboard.jobs.runner import DONE, RUNNING
from dashboard.ui import background
from dashboard.ui import score_field as fields
from dashboard.ui import train as live
from tests.dashboard.apptest_helpers import app_on, ok, plotly_specs, run_until, vega_frames


def open_page(page: str, query: dict[str, str] | None = None) -> AppTest:
    at = app_on(page, 120)
    at.query_params.update(query or {})
    return ok(at.run())


def arr(v) -> np.ndarray:
    """A Plotly array: a plain list or a base64 typed array ({"dtype", "bdata"})."""
    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).astype(float)
    return np.asarray([np.nan if a is None else a for a in v], dtype=float)


def xy(trace: dict) -> np.ndarray:
    return np.stack([arr(trace["x"]), arr(trace["y"])], axis=1)


def arrows(trace: dict) -> tuple[np.ndarray, np.ndarray]:
    """Origins and tips of an arrows_trace (7 rows per arrow: origin, tip, nan, left, tip, right, nan)."""
    p = xy(trace).reshape(-1, 7, 2)
    return p[:, 0], p[:, 1]


def traces_on(spec: dict, axis: str = "x") -> list[dict]:
    return [d for d in spec["data"] if d.get("xaxis", "x") == axis]


def sweep(at: AppTest, skip: tuple[str, ...] = (), options: dict[str, list] | None = None) -> int:
    """Every slider at min, middle and max, every selectbox option, number inputs at both ends, every toggle
    both ways; no exception after any of them. Each control goes back to its first value afterwards (the
    query-parameter tests cover extreme combinations). ``options``: the raw values of selectboxes that show
    formatted labels (AppTest selects by value)."""
    runs = 0

    def go(widget, value) -> None:
        nonlocal runs
        widget.set_value(value).run()
        ok(at)
        runs += 1

    for key in [s.key for s in at.slider if s.key not in skip]:
        first = at.slider(key=key).value
        for frac in (0.0, 0.5, 1.0):
            s = at.slider(key=key)  # bounds can move (t <= T): fetch it again
            v = s.min + round((s.max - s.min) * frac / s.step) * s.step
            go(s, int(v) if isinstance(s.value, int) else float(v))
        go(at.slider(key=key), first)
    for key in [s.key for s in at.selectbox if s.key not in skip]:
        first = at.selectbox(key=key).value
        for option in (options or {}).get(key, at.selectbox(key=key).options):
            go(at.selectbox(key=key), option)
        go(at.selectbox(key=key), first)
    for key in [n.key for n in at.number_input if n.key not in skip]:
        first = at.number_input(key=key).value
        for v in (at.number_input(key=key).max, at.number_input(key=key).min, first):
            go(at.number_input(key=key), int(v))
    for key in [t.key for t in at.toggle if t.key not in skip]:
        first = at.toggle(key=key).value
        for v in (not first, first):
            go(at.toggle(key=key), v)
    return runs


# --- Score field ----------------------------------------------------------------------------------------------


def test_score_field_shows_learned_exact_and_difference():
    at = open_page("views/score_field.py")
    assert len(at.latex) >= 3  # the score, Langevin, the likelihood
    assert any(i.value.startswith("**Try this:**") for i in at.info)
    assert [e.label for e in at.expander][0] == "Show the code"
    assert all(src.lstrip().startswith(("def ", "@")) for src in (c.value for c in at.code))
    assert len(at.markdown[0].value.split(". ")) >= 2
    field, langevin = plotly_specs(at)
    lay = field["layout"]
    for sx in ("", "2", "3"):  # three square panels with the same fixed range
        assert lay[f"yaxis{sx}"]["scaleanchor"] == f"x{sx}" and lay[f"xaxis{sx}"]["range"] == [-3, 3]
    assert [d["type"] for d in traces_on(field, "x3")] == ["heatmap", "contour"]
    learned = traces_on(field, "x")[-1]
    o, tip = arrows(learned)
    assert len(o) > 300  # ~20 x 20 arrows (those of zero length are dropped)
    cell = 6 / 19
    assert np.linalg.norm(tip - o, axis=1).max() <= 0.9 * cell + 1e-5
    # learned and exact point the same way where the data is (the pretrained model is good at t = 100)
    o2, tip2 = arrows(traces_on(field, "x2")[-1])
    common = {tuple(np.round(p, 4)) for p in o} & {tuple(np.round(p, 4)) for p in o2}
    d1 = {tuple(np.round(p, 4)): v for p, v in zip(o, tip - o, strict=True)}
    d2 = {tuple(np.round(p, 4)): v for p, v in zip(o2, tip2 - o2, strict=True)}
    near = [p for p in common if np.hypot(*p) < 2.0]
    cos = [np.dot(d1[p], d2[p]) / (np.linalg.norm(d1[p]) * np.linalg.norm(d2[p])) for p in near]
    assert np.median(cos) > 0.95
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["ᾱ_t"]) == pytest.approx(float(make_schedule("cosine", 1000).alpha_bars[99]), rel=1e-2)
    floor, learned_loss = float(metrics["exact ε's loss (the floor)"]), float(metrics["training loss at t"])
    assert floor <= learned_loss < floor + 0.1  # no model beats the exact eps
    assert len(langevin["layout"]["annotations"]) == 2  # learned and exact Langevin
    assert not at.query_params


def test_score_field_controls_change_the_output():
    at = open_page("views/score_field.py")
    o, tip = arrows(traces_on(plotly_specs(at)[0])[-1])
    at.selectbox(key="score_field.show").set_value("eps").run()
    o_e, tip_e = arrows(traces_on(plotly_specs(ok(at))[0])[-1])
    both = np.isin(o[:, 0] * 1e3 + o[:, 1], o_e[:, 0] * 1e3 + o_e[:, 1])
    assert both.sum() > 300
    v, v_e = (tip - o)[both], (tip_e - o_e)[np.isin(o_e[:, 0] * 1e3 + o_e[:, 1], o[both, 0] * 1e3 + o[both, 1])]
    assert (np.sum(v * v_e, axis=1) < 0).mean() > 0.99  # eps = -sqrt(1 - alpha_bar) * score: opposite arrows
    at.slider(key="score_field.t").set_value(900).run()
    o9, tip9 = arrows(traces_on(plotly_specs(ok(at))[0])[-1])
    assert not (tip9.shape == tip_e.shape and np.allclose(tip9, tip_e))
    at.slider(key="score_field.n").set_value(10).run()
    assert len(arrows(traces_on(plotly_specs(ok(at))[0])[-1])[0]) <= 100
    at.selectbox(key="score_field.view").set_value("flow").run()
    spec = plotly_specs(ok(at))[0]
    assert traces_on(spec)[-2]["mode"] == "lines" and traces_on(spec)[-1]["mode"] == "markers"  # lines, ends
    at.selectbox(key="score_field.model").set_value("ddpm-swiss_roll").run()
    spec = plotly_specs(ok(at))[0]
    assert "xaxis2" not in spec["layout"]  # no closed form: the learned field alone
    assert any("known only for the mixture toys" in c.value for c in at.caption)
    assert at.query_params == {"show": "eps", "t": "900", "n": "10", "view": "flow", "model": "ddpm-swiss_roll"}


def test_score_field_query_params_initialise_widgets():
    query = {"model": "ddpm-twenty_five_gaussians", "t": "10", "show": "eps", "view": "flow", "n": "12",
             "seed": "3", "ln": "200", "lsteps": "80", "eta": "0.3", "anneal": "1", "lln": "12"}
    at = open_page("views/score_field.py", query)
    assert at.selectbox(key="score_field.model").value == "ddpm-twenty_five_gaussians"
    assert at.slider(key="score_field.t").value == 10 and at.slider(key="score_field.n").value == 12
    assert at.selectbox(key="score_field.show").value == "eps" and at.selectbox(key="score_field.view").value == "flow"
    assert at.number_input(key="score_field.seed").value == 3
    assert (at.slider(key="score_field.ln").value, at.slider(key="score_field.lsteps").value) == (200, 80)
    assert at.slider(key="score_field.eta").value == pytest.approx(0.3) and at.toggle(key="score_field.anneal").value
    assert at.slider(key="score_field.lln").value == 12 and not at.toggle(key="score_field.ll").value
    assert {k: at.query_params[k] for k in query} == query
    bad = {"model": "session:deadbeef", "t": "5000", "show": "x", "n": "nan", "eta": "-1", "ll": "maybe"}
    at = open_page("views/score_field.py", bad)
    assert at.selectbox(key="score_field.model").value == "ddpm-eight_gaussians"
    assert at.slider(key="score_field.t").value == 100 and at.slider(key="score_field.n").value == 20
    assert not set(bad) & set(at.query_params)


def test_score_field_control_sweep():
    at = open_page("views/score_field.py")
    options = {"score_field.model": [f"ddpm-{toy}" for toy in TOY_NAMES], "score_field.show": ["score", "eps"],
               "score_field.view": ["arrows", "flow"]}
    assert sweep(at, skip=("score_field.ll",), options=options) >= 40


def test_likelihood_section_ode_elbo_and_true_density():
    at = open_page("views/score_field.py", {"lln": "10"})
    assert not at.dataframe
    at.toggle(key="score_field.ll").set_value(True).run()
    ok(at)
    spec = plotly_specs(at)[2]
    heat = [d for d in spec["data"] if d["type"] == "heatmap"]
    assert len(heat) == 3 and arr(heat[0]["z"]).size == 100  # model, true, difference on the 10 x 10 grid
    assert any("10×10 grid" in c.value for c in at.caption)
    table = at.dataframe[0].value.set_index("model")
    learned, exact = table.loc["learned ε_θ"], table.loc["exact score (oracle)"]
    true = float(next(m.value for m in at.markdown if "true log q(x_0)" in m.value).split("**")[1].split()[0])
    assert exact["PF-ODE log-likelihood (nats/dim)"] == pytest.approx(true, abs=0.02)  # the ODE is exact
    assert exact["ELBO (nats/dim)"] < exact["PF-ODE log-likelihood (nats/dim)"]  # a bound, even for the oracle
    assert learned["ELBO (nats/dim)"] < learned["PF-ODE log-likelihood (nats/dim)"] < true + 0.15
    # cached: a rerun with another control shows the same numbers at once
    at.slider(key="score_field.n").set_value(15).run()
    assert ok(at).dataframe[0].value.set_index("model").equals(table)


# --- Train ---------------------------------------------------------------------------------------------------------


def trained(at: AppTest) -> dict:
    """The models trained in this AppTest session (dashboard.ui.models.SESSION_KEY)."""
    return at.session_state["session_models"] if "session_models" in at.session_state else {}


def test_train_never_trains_on_load_and_reads_query_params():
    query = {"data": "two_moons", "schedule": "linear", "T": "50", "width": "32", "steps": "500", "budget": "30",
             "seed": "4"}
    at = open_page("views/train.py", query)
    assert at.selectbox(key="train.data").value == "two_moons" and at.selectbox(key="train.schedule").value == "linear"
    assert (at.slider(key="train.T").value, at.slider(key="train.width").value) == (50, 32)
    assert (at.slider(key="train.steps").value, at.slider(key="train.budget").value) == (500, 30)
    assert at.number_input(key="train.seed").value == 4
    assert {k: at.query_params[k] for k in query} == query
    assert any("does not reach noise" in w.value for w in at.warning)  # linear, T = 50
    assert not at.get("vega_lite_chart") and not at.progress and not trained(at)
    assert at.button(key="train.go").label == "Train"


def test_train_control_sweep():
    at = open_page("views/train.py")
    options = {"train.data": [*TOY_NAMES, "points"], "train.schedule": ["cosine", "linear", "sigmoid", "quadratic"]}
    assert sweep(at, options=options) >= 30
    assert not trained(at)  # no control trains


def has_model(at: AppTest) -> bool:
    return any(h.value == "Your model" for h in ok(at).subheader)


def test_train_tiny_run_registers_a_model_that_the_score_field_uses():
    at = open_page("views/train.py", {"steps": "100"})
    at.button(key="train.go").click().run()
    assert ok(at).button(key="train.go").disabled and at.button(key="train.stop").label == "Stop training"
    run_until(at, has_model)
    models = at.session_state["session_models"]
    assert len(models) == 1
    (token,) = models
    assert any("100 steps" in s.value and "finished 100 steps" in s.value for s in at.success)
    (losses,) = vega_frames(at)
    assert set(losses["series"]) == {"loss", "moving average"} and len(losses) == 200
    assert (losses["loss"] > 0).all()
    assert json.loads(at.get("vega_lite_chart")[0].proto.spec)["encoding"]["y"]["scale"]["type"] == "log"
    samples, snaps = plotly_specs(at)
    assert xy(samples["data"][1]).shape == (2000, 2) and samples["layout"]["yaxis"]["scaleanchor"] == "x"
    assert len(snaps["layout"]["annotations"]) >= 1
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["ratio to the floor"]) > 0 and metrics["modes covered"].endswith("of 8")
    # the downloads are a loadable checkpoint, identical to the session model
    assert [b.label for b in at.get("download_button")] == ["Weights (.safetensors)", "Config (.json)",
                                                            "Samples (.csv)"]
    p = models[token].model
    files = at.session_state["train.run"].files
    cfg = json.loads(files[1])
    assert cfg["data"] == {"kind": "toy", "name": "eight_gaussians", "source": "core.data.toy2d (generated)"}
    assert cfg["training"]["steps_done"] == 100 and cfg["schedule"] == {"name": "cosine", "T": 1000, "s": 0.008}
    # usable on the Score field page: preselected through the link's query parameter, listed in the picker
    at.query_params.clear()
    at.query_params["model"] = token
    at.switch_page("views/score_field.py").run()
    ok(at)
    assert at.selectbox(key="score_field.model").value == token
    assert any(o.startswith("yours: #1 eight gaussians") for o in at.selectbox(key="score_field.model").options)
    assert "learned" in plotly_specs(at)[0]["layout"]["annotations"][0]["text"]
    assert len(p.config["data"]) == 3
    # (AppTest cannot rerun from here: its selectbox formatting runs outside the session, where a session
    # token has no label; in the browser it does.)


def test_train_bad_points_show_the_engine_message_and_keep_the_session(tmp_path):
    at = open_page("views/train.py", {"data": "points", "steps": "100"})
    assert any("Upload a CSV file or paste" in i.value for i in at.info)
    assert at.button(key="train.go").disabled
    good = "x,y\n" + "\n".join(f"{i / 10},{math.sin(i / 5):.4f}" for i in range(60))
    at.text_area(key="train.paste").input(good).run()
    assert any("60 points from pasted points" in s.value for s in ok(at).success)
    at.button(key="train.go").click().run()
    (token,) = run_until(at, has_model).session_state["session_models"]
    run = at.session_state["train.run"]
    cfg = json.loads(run.files[1])
    assert cfg["data"]["kind"] == "points" and len(cfg["data"]["points"]) == 60
    assert np.asarray(cfg["data"]["points"]).std(axis=0).mean() == pytest.approx(1.0, abs=1e-3)
    (tmp_path / "m.safetensors").write_bytes(run.files[0])
    (tmp_path / "m.json").write_bytes(run.files[1])
    p = load_checkpoint(tmp_path / "m")
    x, t = torch.randn(8, 2), torch.full((8,), 500.0)
    q = at.session_state["session_models"][token].model
    assert torch.allclose(p.model(x, t), q.model(x, t))
    for text, message in [
        ("1,2\n3,4", "too few points: found 2, at least 10 are needed"),
        ("x,y\n" + "\n".join(f"{i},oops" for i in range(12)), "line 2, column 2 (y): cannot read 'oops' as a number"),
        ("/etc/passwd", "no points found: only a header row"),  # pasted text is data, never a path
        ("\n".join(f"{i},{i},{i}" for i in range(12)), "expected exactly 2 columns (x, y), found 3"),
        ("\n".join("1,1" for _ in range(12)), "all 12 points are identical"),
    ]:
        at.text_area(key="train.paste").input(text).run()
        ok(at)
        assert any(message in e.value for e in at.error), (message, [e.value for e in at.error])
        assert at.button(key="train.go").disabled
        assert list(at.session_state["session_models"]) == [token]  # nothing else is lost
        assert any(h.value == "Your model" for h in at.subheader)


def test_stop_keeps_the_model_trained_so_far_and_the_page_never_trains_in_its_script():
    """Training runs in a worker process: the page's script returns at once with a queue / progress panel and a
    Stop button; Stop ends the job at its next step and the model so far joins the session."""
    at = open_page("views/train.py", {"steps": "6000"})
    at.button(key="train.go").click().run()
    run_until(at, lambda a: any("step" in p.proto.text and "of 6,000" in p.proto.text for p in ok(a).get("progress")))
    at.button(key="train.stop").click().run()
    run_until(at, has_model)
    (token,) = trained(at)
    assert at.session_state[live.RUN_KEY].token == token
    assert any("#1 eight gaussians" in i.value and "stopped by request" in i.value and "stopped early" in i.value
               for i in at.info)
    assert at.session_state[live.RUN_KEY].steps < 6000
    assert not at.button(key="train.go").disabled  # free to train again

def test_a_student_with_the_same_settings_follows_the_same_run_and_stops_alone():
    """Another session that asks for the same training follows this session's run (the panel says so); Stop here
    hands this session the model so far, and the other session's job goes on."""
    at = open_page("views/train.py", {"steps": "6000"})
    at.button(key="train.go").click().run()
    run_until(at, lambda a: any("of 6,000" in p.proto.text for p in ok(a).get("progress")))
    r = background.runner()
    mine = r.view(at.session_state[f"{live.JOB}.job"])
    other = r.submit("another-student", "train_2d", mine.spec, label="the same settings")
    assert r.view(other).run == mine.run and r.counts()["running"] == 1
    run_until(at, lambda a: any("one run for you and 1 other student with the same settings" in p.proto.text
                                for p in ok(a).get("progress")))
    at.button(key="train.stop").click().run()
    run_until(at, has_model)
    assert at.session_state[live.RUN_KEY].steps < 6000 and r.view(other).status == RUNNING
    r.stop(other)
    deadline = time.time() + 60
    while (v := r.view(other)).status != DONE:
        assert time.time() < deadline, "the other session's job did not stop"
        time.sleep(0.1)
    assert v.result["stop_reason"] == "callback" and v.result["steps_done"] > at.session_state[live.RUN_KEY].steps
    r.forget(other)


def test_the_training_job_stops_when_asked_and_keeps_the_model_and_snapshots():
    """The Train page's job (dashboard.jobs.recipes.train_2d, as a worker runs it): Stop ends training at the next
    step; the partial model, its losses and snapshots come back as plain data."""
    s = make_schedule("cosine", 100)
    reports: list[tuple[str, dict]] = []
    steps_seen = {"n": 0}

    def should_stop():
        steps_seen["n"] += 1
        return "stop" if steps_seen["n"] >= 60 else False

    spec = live.job_spec("eight_gaussians", {"kind": "toy", "name": "eight_gaussians"}, s,
                         TrainConfig(steps=400, batch_size=64, seed=1), {"width": 32}, settings={})
    spec.update(snapshot_every=30, snapshot_n=50, final_n=300)
    out = recipes.train_2d(spec, lambda kind, payload: reports.append((kind, payload)), should_stop)
    assert out["stop_reason"] == "callback" and out["steps_done"] == 60 == len(out["losses"])
    assert [p["step"] for k, p in reports if k == "snapshot"] == [30, 60]
    assert sum(len(p.get("new_losses", [])) for k, p in reports if k == "progress") == 60
    assert out["config"]["training"]["steps_done"] == 60 and out["samples"].shape == (300, 2)
    model, _ = build_model(out["config"])
    model.load_state_dict(load_safetensors(out["weights"]))
    y = model(torch.zeros(3, 2), torch.full((3,), 10.0))
    assert y.shape == (3, 2) and torch.isfinite(y).all()


def test_checkpoint_bytes_load_back_and_drop_large_point_lists(tmp_path):
    p = load_pretrained("ddpm-eight_gaussians")
    config = {k: v for k, v in p.config.items() if k != "format_version"}
    config["data"] = {"kind": "points", "n": 20_000, "points": np.zeros((20_000, 2)).tolist()}
    weights, text = live.checkpoint_bytes(p.model, config)
    cfg = json.loads(text)
    assert "points" not in cfg["data"] and cfg["data"]["points_omitted"] == 20_000
    assert len(config["data"]["points"]) == 20_000  # the caller's config is untouched
    (tmp_path / "x.safetensors").write_bytes(weights)
    (tmp_path / "x.json").write_bytes(text)
    q = load_checkpoint(tmp_path / "x")
    x, t = torch.randn(5, 2), torch.full((5,), 42.0)
    assert torch.equal(q.model(x, t), p.model(x, t))


def test_langevin_with_the_exact_score_samples_q_t_and_annealing_fixes_mode_weights():
    """Trusted reference: the exact mixture score. At t = 100 on eight gaussians plain Langevin reaches q(x_t)
    (equal mode weights, the right spread around each mode); at t = 10 on 25 gaussians it keeps the mode weights
    of its N(0, I) start (the corners starve), and annealing from t = T repairs them."""
    s = make_schedule("cosine", 1000)

    def run(toy: str, t: int, annealed: bool) -> tuple[float, float, float]:
        gm = toy_mixture(toy)
        n, g = 800, torch.Generator().manual_seed(0)
        x, paths = langevin_dynamics(gm.as_eps_model(s), s, torch.randn(n, 2, generator=g), t, 200 if t > 50 else 100,
                                   0.5, generator=g, annealed=annealed)
        ab = float(s.alpha_bars[t])
        dist, k = torch.cdist(x, math.sqrt(ab) * gm.means.float()).min(1)
        counts = torch.bincount(k, minlength=len(gm.means)).double()
        chi2 = float(((counts - n / len(counts)) ** 2 / (n / len(counts))).sum())
        spread = float(dist.pow(2).mean().div(2).sqrt())  # per coordinate, around the nearest mode
        return chi2, spread, math.sqrt(ab * gm.std ** 2 + 1 - ab)

    chi2, spread, exact_spread = run("eight_gaussians", 99, False)
    assert chi2 < 20 and spread == pytest.approx(exact_spread, rel=0.1)  # chi2 with 7 dof: 99.5% below 20
    plain, _, _ = run("twenty_five_gaussians", 9, False)
    annealed, _, _ = run("twenty_five_gaussians", 9, True)
    assert plain > 80 and annealed < plain / 2.5


def test_langevin_levels_and_arrows_geometry():
    s = make_schedule("linear", 1000)
    assert langevin_levels(s, 50, 100, False) == [(50, 100)]
    levels = langevin_levels(s, 50, 95, True)
    assert levels[0][0] == 999 and levels[-1][0] == 50 and sum(c for _, c in levels) == 95
    assert [a for a, _ in levels] == sorted((a for a, _ in levels), reverse=True)
    assert langevin_levels(s, 50, 0, True) == [(50, 0)]
    o = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    v = np.array([[1.0, 0.0], [0.0, -10.0], [0.0, 0.0]])
    tr = fields.arrows_trace(o, v, cell=0.5, scale=2.0, color="red", name="a").to_plotly_json()
    origins, tips = arrows(tr)
    assert len(origins) == 2  # the zero vector is dropped
    assert np.allclose(tips - origins, [[0.225, 0.0], [0.0, -0.45]])  # 0.9 cell * min(1, |v| / scale)


def test_progress_wrapper_reports_and_leaves_the_ode_unchanged():
    p = load_pretrained("ddpm-eight_gaussians")
    x = sample_toy("eight_gaussians", 6, torch.Generator().manual_seed(0))
    calls: list[tuple[float, str]] = []
    wrapped = fields.ProgressEps(p.model, p.schedule.T, lambda f, ph: calls.append((f, ph)), every_s=0.0)
    a = ode_log_likelihood(wrapped, p.schedule, x, rtol=1e-3, atol=1e-3)
    b = ode_log_likelihood(p.model, p.schedule, x, rtol=1e-3, atol=1e-3)
    assert torch.equal(a, b)
    fracs = [f for f, _ in calls]
    assert fracs == sorted(fracs) and fracs[-1] > 0.99 and {ph for _, ph in calls} == {"ode"}

"""AppTest checks of the Improved DDPM page: it renders for each iddpm toy with its charts, likelihood table and
live samples; the table matches benchmarks/results/improved_ddpm.json and the learned variance's bound is the
lowest of the three; the toy, the seed and the compared variance change the output and live in the URL; a
missing or damaged results file, or a model that cannot be loaded, gives a message instead of a crash; the
MNIST part shows the bound per step and few-step digits; and the helpers check the file's fields.
Run: python -m pytest tests/dashboard/test_pages_improved_ddpm.py -q"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import checkpoints
from dashboard.ui import improved_ddpm as iddpm
from dashboard.ui.loaders import manifest_models
from tests.dashboard.apptest_helpers import app_on, ok, plotly_specs, vega_frames
from tests.dashboard.test_pages_sampling import xy

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py: one torch thread, as the server runs

PAGE = "views/improved_ddpm.py"
SMALL_N = 200  # points per live panel in the tests
RESULTS_JSON = iddpm.RESULTS_JSON


@pytest.fixture
def small_panels(monkeypatch):
    monkeypatch.setattr(iddpm, "LIVE_N", SMALL_N)


def the_json() -> dict:
    """The shipped results file, the one the page reads unless a test points it elsewhere."""
    return json.loads(RESULTS_JSON.read_text())


def open_page(query: dict[str, str] | None = None, before=None) -> AppTest:
    """The page's first run (apptest_helpers.app_on); ``before()`` runs before it (to break something the page
    needs)."""
    at = app_on(PAGE, 300)
    if before is not None:
        before()
    at.query_params.update(query or {})
    return ok(at.run())


def panel_titles(fig: dict) -> list[str]:
    return [a["text"] for a in fig["layout"]["annotations"] if a.get("xref") == "paper"]


def sample_points(fig: dict) -> list[np.ndarray]:
    """The samples of each panel of a row (the traces named after their panel, not the grey data)."""
    return [xy(d) for d in fig["data"] if d["name"] != "data"]


def toy_rows(at: AppTest) -> list[dict]:
    """The live toy samples, a figure of points per variance (not the MNIST digits' mosaic)."""
    return [f for f in plotly_specs(at) if "z" not in f["data"][0]]


def toy_charts(at: AppTest) -> list:
    """The toy's charts (not the MNIST bound per step)."""
    return [df for df in vega_frames(at)
            if not ("series" in df.columns and df["series"].astype(str).str.contains("mnist").any())]


def warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning]


# --- the page ------------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("small_panels")
@pytest.mark.parametrize("toy", iddpm.TOYS)
def test_each_toy_renders_its_charts_table_and_samples(toy):
    at = open_page({"toy": toy})
    assert len(at.latex) >= 2 and any(i.value.startswith("**Try this:**") for i in at.info)
    assert [e.label for e in at.expander] == ["Show the code"] and "def learned_variance" in at.code[0].value
    assert not warnings(at) and not at.error
    raw = the_json()["models"][toy]
    sigma, ratio, terms = toy_charts(at)
    labels = set(iddpm.VARIANCE_LABELS.values())
    assert set(sigma["series"]) == labels and set(terms["series"]) == labels
    learned = sigma[sigma["series"] == iddpm.VARIANCE_LABELS["learned"]]
    assert np.allclose(learned["value"], raw["sigma"]["learned"]) and (learned["lo"] <= learned["hi"]).all()
    assert sigma["step"].min() == 1 and sigma["step"].max() == raw["t"][-1] + 1  # the paper's steps 1..T
    assert (terms["value"] > 0).all() and terms["step"].min() == 2  # a log axis; the decoder term is in the caption
    lower = ratio[ratio["series"] == iddpm.VARIANCE_LABELS["beta_tilde"]]["value"]
    assert lower.min() < 0.7 and lower.max() <= 1.0 + 1e-9  # beta_tilde <= beta, far below it only near t = 0
    # the live samples: fixed beta_tilde and learned, 4 step counts each, with the JSON's SW beside them
    rows = toy_rows(at)
    assert len(rows) == 2
    for fig, v in zip(rows, ("beta_tilde", "learned"), strict=True):
        titles = panel_titles(fig)
        assert titles == [f"{iddpm.VARIANCE_LABELS[v]} · {k} steps · SW {raw['ancestral'][v][str(k)]:.2f}×"
                          for k in iddpm.STEPS]
        points = sample_points(fig)
        assert len(points) == 4 and all(p.shape == (SMALL_N, 2) and np.isfinite(p).all() for p in points)
    quality = at.dataframe[1].value
    assert list(quality.columns) == [f"{k} steps" for k in iddpm.STEPS]
    assert quality.loc[iddpm.VARIANCE_LABELS["learned"], "10 steps"] == raw["ancestral"]["learned"]["10"]


@pytest.mark.usefixtures("small_panels")
@pytest.mark.parametrize("toy", iddpm.TOYS)
def test_the_likelihood_table_matches_the_json_and_the_learned_bound_is_lowest(toy):
    at = open_page({"toy": toy})
    table = at.dataframe[0].value
    nll = the_json()["models"][toy]["nll"]
    keys = [k for k, _ in iddpm.NLL_ROWS if k in nll]
    assert list(table["estimate"]) == [dict(iddpm.NLL_ROWS)[k] for k in keys]
    assert ("true" in keys) == (toy == "eight_gaussians")  # the true density: the mixture toy only
    assert list(table["nats / dim"]) == [nll[k] for k in keys]
    assert list(table["± s.e."][:3]) == [f"{nll[k + '_se']:.4f}" for k in keys[:3]] and table["± s.e."][3] == "—"
    assert np.allclose(table["minus PF-ODE"], [nll[k] - nll["pf_ode"] for k in keys])
    bounds = table[table["estimate"].str.startswith("bound")]
    assert bounds.loc[bounds["nats / dim"].idxmin(), "estimate"] == dict(iddpm.NLL_ROWS)["bound_learned"]
    sentence = next(m.value for m in at.markdown if m.value.startswith("The learned variance's bound"))
    assert "it is the tightest of the three" in sentence
    assert f"{nll['bound_beta_tilde'] - nll['bound_learned']:.3f} nats/dim lower" in sentence


@pytest.mark.usefixtures("small_panels")
def test_toy_seed_and_compared_variance_change_the_output_and_live_in_the_url():
    at = open_page()
    assert at.selectbox(key="improved_ddpm.toy").value == iddpm.DEFAULT_TOY
    before = sample_points(toy_rows(at)[1])[0]
    at.number_input(key="improved_ddpm.seed").set_value(7).run()
    after = sample_points(toy_rows(ok(at))[1])[0]
    assert not np.allclose(before, after)
    assert any("(seed 7)" in c.value for c in at.caption)
    at.selectbox(key="improved_ddpm.compare").set_value("both").run()
    rows = toy_rows(ok(at))
    assert [panel_titles(f)[0].split(" · ")[0] for f in rows] == [iddpm.VARIANCE_LABELS[v] for v in iddpm.VARIANCES]
    assert np.allclose(sample_points(rows[2])[0], after)  # the learned row is the same draw: cached, same seed
    at.selectbox(key="improved_ddpm.toy").set_value("two_moons").run()
    ok(at)
    assert at.dataframe[0].value["nats / dim"].iloc[2] == the_json()["models"]["two_moons"]["nll"]["bound_learned"]
    assert len(at.dataframe[0].value) == 4  # no true density for two moons
    assert at.query_params == {"seed": "7", "compare": "both", "toy": "two_moons"}
    # a shared link reopens the view; nonsense in the URL falls back to the defaults
    at = open_page({"toy": "swiss_roll", "seed": "3", "compare": "beta"})
    assert at.selectbox(key="improved_ddpm.toy").value == "swiss_roll"
    assert at.number_input(key="improved_ddpm.seed").value == 3
    assert panel_titles(toy_rows(at)[0])[0].startswith(iddpm.VARIANCE_LABELS["beta"])
    at = open_page({"toy": "checkerboard", "seed": "nan", "compare": "../etc"})
    assert at.selectbox(key="improved_ddpm.toy").value == iddpm.DEFAULT_TOY
    assert at.number_input(key="improved_ddpm.seed").value == 0
    assert at.selectbox(key="improved_ddpm.compare").value == "beta_tilde"


@pytest.mark.usefixtures("small_panels")
def test_a_missing_or_damaged_results_file_gives_a_message(monkeypatch, tmp_path):
    path = tmp_path / "improved_ddpm.json"
    monkeypatch.setattr(iddpm, "RESULTS_JSON", path)
    at = open_page()
    assert len(warnings(at)) == 4 and all("is missing" in w and "benchmarks/improved_ddpm.py" in w
                                          for w in warnings(at))
    assert not toy_charts(at) and len(toy_rows(at)) == 2  # the live samples are still drawn
    assert all(" · SW " not in t for t in panel_titles(toy_rows(at)[0]))
    path.write_text("{not json")
    at = open_page()
    assert warnings(at) and "not a readable JSON object" in warnings(at)[0]
    raw = the_json()
    del raw["models"]["two_moons"]["terms"]["learned"]
    raw["models"]["swiss_roll"]["nll"]["pf_ode"] = float("nan")
    path.write_text(json.dumps(raw))
    assert not warnings(open_page())  # eight gaussians is intact
    w = warnings(open_page({"toy": "two_moons"}))
    assert w and "is damaged (terms.learned" in w[0]
    w = warnings(open_page({"toy": "swiss_roll"}))
    assert w and "is damaged (nll.pf_ode: expected a finite number)" in w[0]


def test_a_model_that_cannot_be_loaded_leaves_the_benchmark_sections(monkeypatch, tmp_path):
    at = open_page(before=lambda: monkeypatch.setattr(checkpoints, "PRETRAINED_DIR", tmp_path))
    assert at.error and "iddpm-eight_gaussians" in at.error[0].value
    assert len(toy_charts(at)) == 3 and not plotly_specs(at)  # charts and tables from the file, no samples
    assert any("No live samples" in i.value for i in at.info)


# --- helpers -------------------------------------------------------------------------------------------------------


def test_parse_toy_names_the_field_that_is_wrong():
    raw = the_json()
    res = iddpm.parse_toy(raw, "eight_gaussians")
    assert res.t[0] == 0 and len(res.t) == len(res.sigma["learned"]) == len(res.terms["beta"])
    assert set(res.ancestral) == set(iddpm.VARIANCES) and set(res.ancestral["learned"]) == set(iddpm.STEPS)
    assert math.isfinite(res.nll["true"]) and "true" not in iddpm.parse_toy(raw, "two_moons").nll
    with pytest.raises(iddpm.ResultsProblem, match="no results for checkerboard"):
        iddpm.parse_toy(raw, "checkerboard")
    row = raw["models"]["eight_gaussians"]
    for field, bad, message in (
            ("t", [3, 2, 1], "t: expected increasing"),
            ("sigma", {**row["sigma"], "beta": row["sigma"]["beta"][:-1]}, "sigma.beta: expected"),
            ("nll", {**row["nll"], "bound_learned": True}, "nll.bound_learned"),
            ("ancestral", {**row["ancestral"], "beta": {"10": 1.0}}, "ancestral.beta.25")):
        damaged = {**raw, "models": {"eight_gaussians": {**row, field: bad}}}
        with pytest.raises(iddpm.ResultsProblem, match=message):
            iddpm.parse_toy(damaged, "eight_gaussians")


def test_ancestral_draws_the_same_noise_for_every_variance():
    a = iddpm.ancestral("two_moons", "beta", 10, 50, 1)
    b = iddpm.ancestral("two_moons", "beta_tilde", 10, 50, 1)
    assert a.shape == (50, 2) and np.allclose(a, iddpm.ancestral("two_moons", "beta", 10, 50, 1))
    assert np.abs(a).mean() > np.abs(b).mean()  # beta_t adds more noise than beta_tilde_t on the same draws
    with pytest.raises(ValueError, match="unknown variance"):
        iddpm.ancestral("two_moons", "large", 10, 50, 1)


def test_the_mnist_comparison_shows_the_benchmarks_rows_or_says_what_is_missing(small_panels, monkeypatch,
                                                                                 tmp_path):
    rows = json.loads(iddpm.MNIST_JSON.read_text())["rows"]
    at = open_page()
    tables = [df for df in (d.value for d in at.dataframe) if "bits_per_dim" in df.columns]
    assert len(tables) == 1 and list(tables[0]["model"]) == [r["model"] for r in rows]
    assert list(tables[0]["bits_per_dim"]) == [r["bits_per_dim"] for r in rows]
    monkeypatch.setattr(iddpm, "MNIST_JSON", tmp_path / "missing.json")
    at = open_page()
    assert any("MNIST comparison is not available" in w.value and "improved_ddpm_mnist.py" in w.value
               for w in at.warning)
    (tmp_path / "bad.json").write_text(json.dumps({"rows": [{"model": "iddpm-mnist", "variance": "learned"}]}))
    monkeypatch.setattr(iddpm, "MNIST_JSON", tmp_path / "bad.json")
    at = open_page()
    assert any("damaged" in w.value for w in at.warning)


def mnist_file(path, terms: bool = True) -> None:
    """The shipped MNIST results with made-up per-step terms (or none, as a file written before they were kept)."""
    raw = json.loads((checkpoints.PRETRAINED_DIR.parent / "benchmarks" / "results" /
                      "improved_ddpm_mnist.json").read_text())
    for i, r in enumerate(raw["rows"]):
        r.pop("terms", None)
        if terms:
            r["terms"] = {"t": [1, 2, 10, 100, 1000], "bits_per_dim": [0.5, 0.1 + i, 0.01, 0.001, 0.0]}
    path.write_text(json.dumps(raw))


def test_the_mnist_bound_per_step_is_drawn_from_the_file_or_its_absence_said(small_panels, monkeypatch, tmp_path):
    monkeypatch.setattr(iddpm, "MNIST_JSON", tmp_path / "mnist.json")
    mnist_file(tmp_path / "mnist.json")
    at = open_page()
    (terms,) = [df for df in vega_frames(at) if "step" in df.columns and "series" in df.columns
                and df["series"].str.contains("mnist").all()]
    assert set(terms["step"]) == {2, 10, 100}  # t = 1 is the decoder, and a zero term has no place on a log axis
    assert terms[terms["step"] == 2]["value"].tolist() == [0.1 + i for i in range(5)]
    assert set(terms["series"]) == {"ddpm-mnist · fixed β_t", "ddpm-mnist · fixed β̃_t", "iddpm-mnist · fixed β_t",
                                    "iddpm-mnist · fixed β̃_t", "iddpm-mnist · learned Σ_θ"}
    monkeypatch.setattr(iddpm, "MNIST_JSON", tmp_path / "no_terms.json")
    mnist_file(tmp_path / "no_terms.json", terms=False)
    at = open_page()
    assert any("bound per step is not in this results file" in i.value for i in at.info)
    raw = json.loads((tmp_path / "mnist.json").read_text())
    raw["rows"][0]["terms"] = {"t": [1, 2], "bits_per_dim": [0.5]}
    (tmp_path / "damaged.json").write_text(json.dumps(raw))  # a new name: read_json's cache keys on the mtime
    with pytest.raises(iddpm.ResultsProblem, match="damaged .*terms.bits_per_dim: expected 2 finite numbers"):
        iddpm.mnist_terms(tmp_path / "damaged.json")


def test_the_mnist_last_step_note_is_computed_from_the_file(small_panels, monkeypatch, tmp_path):
    rows = json.loads(iddpm.MNIST_JSON.read_text())["rows"]
    last = {r["model"]: r["terms"]["bits_per_dim"][-1] for r in rows}  # the same under every variance
    best = {m: min(r["bits_per_dim"] for r in rows if r["model"] == m) for m in last}
    at = open_page()
    (note,) = [c.value for c in at.caption if "stands apart" in c.value]
    assert all(f"**{m}** {v:.2f} " in note or f"**{m}** {v:.2f}," in note for m, v in last.items())
    share = (last["iddpm-mnist"] - last["ddpm-mnist"]) / (best["iddpm-mnist"] - best["ddpm-mnist"])
    assert f"It is {share:.0%} of the gap" in note and "≈ 32" in note  # 0.999 / sqrt(0.001)
    assert f"ddpm-mnist {manifest_models()['ddpm-mnist']['steps']:,} steps" in note  # the manifest's record
    mnist_file(tmp_path / "no_terms.json", terms=False)
    assert iddpm.mnist_last_step_note(tmp_path / "no_terms.json") is None
    raw = json.loads(iddpm.MNIST_JSON.read_text())
    raw["rows"][0]["terms"] = {"t": [1, 2, 500], "bits_per_dim": [0.5, 0.1, 0.01]}  # ends before the others
    (tmp_path / "uneven.json").write_text(json.dumps(raw))
    assert iddpm.mnist_last_step_note(tmp_path / "uneven.json") is None
    mnist_file(tmp_path / "made_up.json")  # every row's last term 0: no share of a gap to give
    note = iddpm.mnist_last_step_note(tmp_path / "made_up.json")
    assert "**ddpm-mnist** 0.00, **iddpm-mnist** 0.00 bits/dim" in note and "of the gap" not in note
    monkeypatch.setattr(iddpm, "manifest_models", lambda: {"ddpm-mnist": {"steps": "many", "seconds": 60}})
    assert "Trained" not in iddpm.mnist_last_step_note(tmp_path / "made_up.json")  # a damaged record is left out


def mnist_mosaic(at: AppTest) -> dict:
    """The few-step MNIST digits: the mosaic whose rows are titled by the three variances."""
    labels = {iddpm.VARIANCE_LABELS[v] for v in iddpm.VARIANCES}
    (fig,) = [f for f in plotly_specs(at) if labels <= set(panel_titles(f))]
    return fig


def test_the_mnist_digits_change_with_the_steps_and_share_their_noise(small_panels):
    at = open_page({"mnist_steps": "10"})
    before = json.dumps(mnist_mosaic(at)["data"][0]["z"])
    rows = [iddpm.mnist_ancestral(v, 10, 0) for v in iddpm.VARIANCES]
    assert all(r.shape == (10, 28, 28) and r.min() >= -1 and r.max() <= 1 for r in rows)
    assert not np.allclose(rows[0], rows[1]) and not np.allclose(rows[1], rows[2])  # the variance alone differs
    assert np.array_equal(iddpm.mnist_ancestral("learned", 10, 0), rows[2])  # the same noise for the same seed
    at.select_slider(key="improved_ddpm.mnist_steps").set_value(50).run()
    assert ok(at).query_params["mnist_steps"] == "50"
    assert json.dumps(mnist_mosaic(at)["data"][0]["z"]) != before
    with pytest.raises(ValueError, match="unknown variance"):
        iddpm.mnist_ancestral("large", 10, 0)

"""AppTest checks of the Flow matching page and of the flow lines on the Samplers page's quality chart: the page
renders for the default toy, a toy that is not a mixture and a toy without a rectified flow; its controls change
the output and live in the URL; the quality chart has the flow series (render and
control times: benchmarks/pages.py); and the helpers agree with the engine.
Run: python -m pytest tests/dashboard/test_pages_flow.py -q"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.ui import flow, sampling
from tests.dashboard.apptest_helpers import app_on, ok, plotly_specs, vega_frames
from tests.dashboard.test_pages_sampling import xy

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py: one torch thread, as the server runs

FLOW_LABELS = set(sampling.FLOW_LABELS.values())
NO_REFLOW_TOY = next(t for t in ("spiral", "rings", "pinwheel", "swiss_roll") if t not in flow.reflow_toys())


def open_page(query: dict[str, str] | None = None, page: str = "views/flow.py") -> AppTest:
    at = app_on(page, 300)
    at.query_params.update(query or {})
    return ok(at.run())


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def figure(at: AppTest, index: int) -> dict:
    return plotly_specs(at)[index]


def panel_titles(fig: dict) -> list[str]:
    return [a["text"] for a in fig["layout"]["annotations"] if a.get("xref") == "paper"]


def chart_series(at: AppTest) -> set[str]:
    """The samplers / flow series drawn on the page's Altair charts."""
    return {s for frame in vega_frames(at) if "sampler" in frame for s in frame["sampler"]}


# --- the Flow matching page ----------------------------------------------------------------------------------------


def test_default_page_paths_field_trajectories_and_quality_chart():
    at = open_page()
    assert len(at.latex) >= 3 and any(i.value.startswith("**Try this:**") for i in at.info)
    assert [e.label for e in at.expander] == ["Show the code"] and "def loss_flow_matching" in at.code[0].value
    paths, field, trajectories = plotly_specs(at)
    # 1. the conditional paths are straight lines from x_0 to x_1; the marginal paths start at the same x_0
    assert len(panel_titles(paths)) == 3 and "exact marginal flow" in panel_titles(paths)[2]
    lines = xy(paths["data"][1]).reshape(-1, 3, 2)  # x_0, x_1, NaN per pair
    x0, x1 = xy(paths["data"][2]), xy(paths["data"][3])
    assert len(x0) == 12 and np.allclose(lines[:, 0], x0, atol=1e-6) and np.allclose(lines[:, 1], x1, atol=1e-6)
    learned = xy(paths["data"][5]).reshape(12, -1, 2)  # 51 states and a NaN per path
    assert learned.shape[1] == 52 and np.allclose(learned[:, 0], x0, atol=1e-6)
    assert np.allclose(learned[:, -2], xy(paths["data"][7]), atol=1e-6)  # the dots are where the flow ends
    # 2. learned and exact field with the error heat map, and the four numbers
    assert len(panel_titles(field)) == 3 and any(d["type"] == "heatmap" for d in field["data"])
    m = metrics(at)
    assert set(m) == {"flow-matching loss at t", "exact velocity's loss (the floor)", "RMS error where x_t lies",
                      "RMS error on the grid"}
    assert float(m["flow-matching loss at t"]) >= float(m["exact velocity's loss (the floor)"]) - 0.05
    assert float(m["RMS error where x_t lies"]) < float(m["RMS error on the grid"])  # far from the data, worse
    # 3. fm, reflow and DDIM from the same noise, with their straightness: reflow is far straighter
    assert [t.split(" · ")[0] for t in panel_titles(trajectories)] == ["flow matching", "rectified flow",
                                                                       "DDIM on the flow's axes"]
    table = at.dataframe[0].value
    fm, reflow, ddim = table["straightness S"]
    assert reflow < 0.1 * fm and ddim > 0
    assert list(table["NFE"]) == [3, 3, 3]
    # 4. the quality chart: every flow series, DDIM and DPM-Solver++ at budgets 1 to 100
    assert chart_series(at) == FLOW_LABELS | {"DDIM", "DPM-Solver++(2M)"}
    (frame,) = vega_frames(at)
    assert frame["nfe"].min() == 1 and frame["nfe"].max() == 100
    assert not [b for b in at.button if b.key == "flow.compute"]  # the default toy is measured without a click
    budgets = at.dataframe[1].value
    assert list(budgets.columns) == [f"NFE {k}" for k in flow.QUALITY_NFE]
    assert budgets.loc["Flow matching · midpoint", "NFE 1"] == "—"  # two evaluations do not fit in one
    one_step = {k: float(budgets.loc[k, "NFE 1"].rstrip("×")) for k in ("Flow matching · Euler",
                                                                        "Rectified flow (reflow) · Euler")}
    assert one_step["Rectified flow (reflow) · Euler"] < 0.3 * one_step["Flow matching · Euler"]


def test_controls_change_the_output_and_live_in_the_url():
    at = open_page()
    field = xy(figure(at, 1)["data"][1])
    at.slider(key="flow.t").set_value(0.0).run()
    at0 = xy(figure(ok(at), 1)["data"][1])
    assert field.shape != at0.shape or not np.allclose(np.nan_to_num(field), np.nan_to_num(at0))
    assert "t = 0" in panel_titles(figure(at, 1))[0]
    before = xy(figure(at, 2)["data"][1])
    at.slider(key="flow.steps").set_value(1).run()
    assert list(ok(at).dataframe[0].value["NFE"]) == [1, 1, 1]
    one = xy(figure(at, 2)["data"][1])
    assert not np.allclose(before, one)
    assert np.linalg.norm(one, axis=1).mean() < 0.6  # one Euler step of flow matching: everything near the mean
    at.slider(key="flow.pairs").set_value(20).run()
    assert len(xy(figure(ok(at), 0)["data"][2])) == 20
    x0 = xy(figure(at, 0)["data"][2])
    at.number_input(key="flow.seed").set_value(4).run()
    assert not np.allclose(x0, xy(figure(ok(at), 0)["data"][2]))
    assert at.query_params == {"t": "0", "steps": "1", "pairs": "20", "seed": "4"}
    at = open_page({"toy": "twenty_five_gaussians", "t": "0.25", "steps": "7", "seed": "2"})
    assert at.selectbox(key="flow.toy").value == "twenty_five_gaussians"
    assert at.slider(key="flow.t").value == pytest.approx(0.25) and at.slider(key="flow.steps").value == 7
    at = open_page({"toy": "../etc/passwd", "t": "1.5", "steps": "nan", "seed": "-1"})
    assert at.selectbox(key="flow.toy").value == flow.DEFAULT_TOY and at.slider(key="flow.t").value == 0.5
    assert at.slider(key="flow.steps").value == 3 and at.number_input(key="flow.seed").value == 0


def test_a_toy_that_is_not_a_mixture_has_no_exact_field():
    at = open_page({"toy": "two_moons"})
    paths, field, _ = plotly_specs(at)
    assert len(panel_titles(paths)) == 2 and len(panel_titles(field)) == 1  # learned only
    assert any("for the Gaussian mixtures only" in c.value for c in at.caption)
    m = metrics(at)
    assert set(m) == {"flow-matching loss at t", "RMS of v_θ(x₁, 1) − x₁ on the data"}
    assert float(m["RMS of v_θ(x₁, 1) − x₁ on the data"]) < 0.5
    assert "two_moons" in flow.reflow_toys()
    assert "rectified flow" in panel_titles(plotly_specs(at)[2])[1]


def test_a_toy_without_reflow_says_which_have_one_and_measures_on_a_click(monkeypatch):
    monkeypatch.setattr(flow, "QUALITY_NFE", (1, 5))  # the page's grid is 1..100 on 2000 points
    monkeypatch.setattr(flow, "QUALITY_N", 300)
    at = open_page({"toy": NO_REFLOW_TOY})
    titles = panel_titles(plotly_specs(at)[2])
    assert titles[1] == "rectified flow" and len(titles) == 3
    notes = [a["text"] for a in plotly_specs(at)[2]["layout"]["annotations"] if a.get("xref") == "x2"]
    assert notes and "No rectified flow is shipped" in notes[0]
    assert any("No rectified flow is shipped" in c.value and "two moons" in c.value for c in at.caption)
    assert len(at.dataframe[0].value) == 2  # flow matching and DDIM
    assert not at.get("vega_lite_chart")
    at.button(key="flow.compute").click().run()
    assert chart_series(ok(at)) == {"Flow matching · Euler", "Flow matching · midpoint", "Flow matching · Heun",
                                    "DDIM", "DPM-Solver++(2M)"}
    assert not [b for b in at.button if b.key == "flow.compute"]
    at.slider(key="flow.t").set_value(0.3).run()  # another control: the chart stays
    assert len(ok(at).get("vega_lite_chart")) == 1


# --- the Samplers page's flow lines --------------------------------------------------------------------------------


def test_samplers_benchmark_chart_has_the_flow_lines():
    # benchmarks/results/samplers.json is shipped: its chart is the page's default view
    assert sampling.benchmark_rows("eight_gaussians") is not None and sampling.benchmark_rows("two_moons") is not None
    at = open_page(page="views/samplers.py")
    series = chart_series(at)
    assert FLOW_LABELS <= series and "DDIM" in series
    frame = vega_frames(at)[0]
    flows = frame[frame["method"].isin(list(sampling.FLOW_LABELS))]
    assert set(flows["model"]) == {"learned"} and flows["nfe"].max() <= 50
    assert any("Flow lines (fm-eight_gaussians)" in c.value for c in at.caption)
    at.selectbox(key="samplers.model").set_value("ddpm-two_moons").run()  # another toy: the lines on a click
    assert not chart_series(ok(at)) & FLOW_LABELS
    at.button(key="samplers.flow_lines").click().run()
    assert {"Flow matching · Euler", "Flow matching · Heun"} <= chart_series(ok(at))
    assert not [b for b in at.button if b.key == "samplers.flow_lines"]


def test_samplers_on_demand_grid_has_learned_and_exact_flow_lines(monkeypatch, tmp_path):
    monkeypatch.setattr(sampling, "BENCHMARK_JSON", tmp_path / "missing.json")
    monkeypatch.setattr(sampling, "ON_DEMAND_NFE", (5, 10))
    monkeypatch.setattr(sampling, "ON_DEMAND_N", 200)
    at = open_page({"n": "200"}, page="views/samplers.py")
    at.button(key="samplers.compute").click().run()
    frame = vega_frames(ok(at))[0]
    flows = frame[frame["method"].isin(list(sampling.FLOW_LABELS))]
    assert set(flows["method"]) == set(sampling.FLOW_LABELS)
    assert set(flows[flows["model"] == "exact"]["method"]) == {"flow_euler", "flow_midpoint", "flow_heun"}
    assert sorted(set(flows["nfe"])) == [4, 5, 10]  # midpoint and Heun: two steps of 2 on a budget of 5


# --- helpers -------------------------------------------------------------------------------------------------------


def test_flow_toy_benchmark_n_and_budget_table():
    assert flow.flow_toy_of("ddpm-two_moons", "two_moons") == "two_moons"
    assert flow.flow_toy_of("session:abc", None) is None and flow.flow_toy_of("exact:x|y", "two_moons") is None
    assert flow.benchmark_n({"n": 5000}) == 5000
    assert flow.benchmark_n({"n": True}) is None and flow.benchmark_n({}) is None
    assert flow.benchmark_n({"n": 10 ** 9}) is None
    df = pd.DataFrame([{"model": "learned", "method": "flow_heun", "nfe": 4, "ratio": 2.0, "seconds": 0.1,
                        "budget": 5},
                       {"model": "learned", "method": "ddim", "nfe": 1, "ratio": float("inf"), "seconds": 0.1,
                        "budget": 1}])
    table = flow.budget_table(df)
    assert list(table.index) == ["DDIM", "Flow matching · Heun"] and list(table.columns) == ["NFE 1", "NFE 5"]
    assert table.loc["Flow matching · Heun", "NFE 5"] == "2.00×" and table.loc["DDIM", "NFE 1"] == "diverged"
    assert table.loc["Flow matching · Heun", "NFE 1"] == "—"
    with pytest.raises(ValueError, match="Gaussian-mixture"):
        flow.velocity_model("two_moons", "exact")

"""AppTest checks of the dashboard pages: each renders, its controls change the output, its state lives in the
URL, and no control value raises. Run: python -m pytest tests/dashboard -q"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.diffusion import forward_chain
from core.schedules import make_schedule
from dashboard.ui.sitemap import PAGES_DIR as DASHBOARD_DIR
from dashboard.ui.sitemap import SUMMARIES as PAGES
from dashboard.ui.sitemap import existing_pages
from dashboard.ui.widgets import number_coercer
from tests.dashboard.apptest_helpers import HOME, app_on, ok, plotly_specs, vega_frames

MY_PAGES = ["views/home.py", "views/schedules.py", "views/forward.py"]


def open_page(page: str, query: dict[str, str] | None = None) -> AppTest:
    at = app_on(page, 60)
    if page != HOME:
        at.query_params.update(query or {})
    return at.run()


def xy(trace: dict) -> np.ndarray:
    """Plotly trace coordinates: plain lists, or base64 typed arrays ({"dtype", "bdata"})."""
    import base64

    def arr(v):
        if isinstance(v, dict):
            return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return np.asarray(v, dtype=float)

    return np.stack([arr(trace["x"]), arr(trace["y"])], axis=1)


def sweep(at: AppTest) -> int:
    """Every slider at min, middle and max, every selectbox option, the number inputs at both ends; no
    exception after any of them. Values accumulate, so extreme combinations are visited too."""
    runs = 0
    for key in [s.key for s in at.slider]:
        s = at.slider(key=key)
        lo, hi, step = s.min, s.max, s.step
        mid = lo + round((hi - lo) / 2 / step) * step
        for v in (lo, mid, hi):
            s = at.slider(key=key)  # bounds can move (t <= T): fetch it again
            v = min(max(v, s.min), s.max)
            s.set_value(int(v) if isinstance(s.value, int) else float(v)).run()
            ok(at)
            runs += 1
    for key in [s.key for s in at.selectbox]:
        for option in at.selectbox(key=key).options:
            at.selectbox(key=key).set_value(option).run()
            ok(at)
            runs += 1
    for key in [n.key for n in at.number_input]:
        n = at.number_input(key=key)
        for v in (n.min, n.max):
            at.number_input(key=key).set_value(int(v)).run()
            ok(at)
            runs += 1
    return runs


# --- router and page furniture ---------------------------------------------------------------------------


def test_router_registers_existing_pages_only():
    at = open_page("views/home.py")
    links = {el.proto.page for el in at.get("page_link")}
    expected = {p.file.removesuffix(".py") for p in existing_pages() if p.file != "home.py"}
    assert links == expected and {"schedules", "forward"} <= links
    missing = [p.file for p in PAGES if not (DASHBOARD_DIR / p.file).exists()]
    assert not {m.removesuffix(".py") for m in missing} & links


@pytest.mark.parametrize("page", MY_PAGES)
def test_page_has_equation_explanation_hint_and_code(page):
    at = ok(open_page(page))
    assert len(at.latex) >= 1
    assert any(i.value.startswith("**Try this:**") for i in at.info)
    assert [e.label for e in at.expander] == ["Show the code"]
    sources = [c.value for c in at.code]
    assert sources and all(src.lstrip().startswith(("def ", "@")) for src in sources)
    assert len(at.markdown[0].value.split(". ")) >= 2  # two or more sentences of explanation


def test_home_shows_forward_and_reverse_rows():
    at = ok(open_page("views/home.py"))
    fwd, rev = plotly_specs(at)
    assert len(fwd["data"]) == len(rev["data"]) == 5
    # forward ends near N(0, I); the exact-score reverse run ends on the eight modes (radius ~1.4)
    x_T, x_0 = xy(fwd["data"][-1]), xy(rev["data"][-1])
    assert abs(x_T.std() - 1) < 0.1
    assert np.abs(np.linalg.norm(x_0, axis=1) - math.sqrt(2 * (1 - 0.01))).mean() < 0.2


# --- noise schedules --------------------------------------------------------------------------------------


def test_schedules_default_reaches_noise_and_t50_linear_warns():
    at = ok(open_page("views/schedules.py"))
    assert not at.warning
    metrics = {m.label: m.value for m in at.metric}
    assert set(metrics) == {"linear: ᾱ_T", "cosine: ᾱ_T", "sigmoid: ᾱ_T", "custom: ᾱ_T"}
    assert float(metrics["linear: ᾱ_T"]) == pytest.approx(4.04e-5, rel=0.01)

    at.slider(key="schedules.T").set_value(50).run()
    ok(at)
    warned = [w.value for w in at.warning]
    assert any(w.startswith("**linear** does not reach noise") for w in warned)
    linear = {m.label: m.value for m in at.metric}["linear: ᾱ_T"]
    assert float(linear) == pytest.approx(float(make_schedule("linear", T=50).alpha_bars[-1]), rel=1e-2)
    assert float(linear) == pytest.approx(0.6, abs=0.01)  # tiny-diffusion's default
    assert at.query_params["T"] == "50"
    titles = [a["text"] for a in plotly_specs(at)[1]["layout"]["annotations"]]
    kl_linear = float(titles[0].removeprefix("linear: KL to N(0,I) = "))
    assert 0.01 < kl_linear < 0.1 and titles[1] == "cosine: KL to N(0,I) ≈ 0"  # exact KL(q(x_T) || N(0, I))


def test_schedules_charts_are_long_form_and_follow_controls():
    at = ok(open_page("views/schedules.py"))
    frames = vega_frames(at)
    assert len(frames) == 4
    assert [set(f["quantity"]) for f in frames] == [{"beta"}, {"alpha_bar"}, {"log_snr"}, {"beta_tilde"}]
    assert set(frames[1]["schedule"]) == {"linear", "cosine", "sigmoid", "custom"}
    before = frames[1][frames[1]["schedule"] == "cosine"]["value"].to_numpy()

    at.slider(key="schedules.cos_s").set_value(0.2).run()
    after = vega_frames(ok(at))[1]
    after = after[after["schedule"] == "cosine"]["value"].to_numpy()
    assert not np.allclose(before, after)
    expected = make_schedule("cosine", T=1000, s=0.2).alpha_bars.numpy()
    assert after[-1] == pytest.approx(expected[-1], rel=1e-6)


def test_schedules_samples_follow_t_and_toy():
    at = ok(open_page("views/schedules.py"))
    row_t, row_T = plotly_specs(at)
    assert row_t["layout"]["yaxis"]["scaleanchor"] == "x" and row_t["layout"]["xaxis"]["range"] == [-4, 4]
    assert "N(0, I)" in row_T["layout"]["annotations"][-1]["text"]
    contours = [d for d in row_T["data"] if d["type"] == "contour"]
    assert len(contours) == 5  # exact q(x_T) of the mixture under each schedule, and N(0, I)
    x0, x_500 = (xy(d) for d in row_t["data"][:2])  # linear panel: the grey data overlay, then x_t
    at.slider(key="schedules.t").set_value(1).run()
    x_1 = xy(plotly_specs(ok(at))[0]["data"][1])
    assert np.abs(x_1 - x0).mean() < 0.05 < 0.5 < np.abs(x_500 - x0).mean()  # same x0 and noise, other t
    at.selectbox(key="schedules.toy").set_value("swiss_roll").run()
    row_T = plotly_specs(ok(at))[1]
    assert not [d for d in row_T["data"] if d["type"] == "contour"]  # no closed-form density


@pytest.mark.parametrize("text, message", [
    ("0.5, 2", "every beta must lie in the open interval (0, 1)"),
    ("0.01, abc", "cannot read 'abc' as a number"),
    ("nan", "betas must be finite numbers"),
    (" , ", "enter at least one beta"),
])
def test_schedules_invalid_custom_betas_show_the_engine_error(text, message):
    at = ok(open_page("views/schedules.py"))
    at.text_input(key="schedules.custom").input(text).run()
    ok(at)
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert len(at.metric) == 3 and len(at.get("vega_lite_chart")) == 4  # the other schedules keep working
    assert "invalid" in plotly_specs(at)[0]["layout"]["annotations"][3]["text"]


def test_schedules_custom_knots_are_interpolated():
    at = ok(open_page("views/schedules.py"))
    at.text_input(key="schedules.custom").input("0.0001, 0.02").run()
    metrics = {m.label: m.value for m in ok(at).metric}
    assert metrics["custom: ᾱ_T"] == metrics["linear: ᾱ_T"]  # two knots = the linear schedule
    assert at.query_params["custom"] == "0.0001, 0.02"


def test_schedules_query_params_initialise_widgets():
    query = {"T": "200", "lin_end": "0.05", "cos_s": "0.1", "sig_tau": "0.5", "custom": "0.01, 0.02",
             "toy": "rings", "t": "150", "seed": "7"}
    at = ok(open_page("views/schedules.py", query))
    assert at.slider(key="schedules.T").value == 200
    assert at.slider(key="schedules.lin_end").value == pytest.approx(0.05)
    assert at.slider(key="schedules.cos_s").value == pytest.approx(0.1)
    assert at.slider(key="schedules.sig_tau").value == pytest.approx(0.5)
    assert at.text_input(key="schedules.custom").value == "0.01, 0.02"
    assert at.selectbox(key="schedules.toy").value == "rings"
    assert at.slider(key="schedules.t").value == 150
    assert at.number_input(key="schedules.seed").value == 7
    assert {k: at.query_params[k] for k in query} == query  # the link survives the first render


def test_schedules_absurd_query_params_fall_back_to_defaults():
    query = {"T": "1e400", "lin_start": "nan", "lin_end": "-inf", "cos_s": "abc", "sig_start": "99",
             "toy": "../../etc/passwd", "t": "0x10", "seed": "-3", "custom": "x" * 5000}
    at = ok(open_page("views/schedules.py", query))
    assert at.slider(key="schedules.T").value == 1000
    assert at.slider(key="schedules.lin_start").value == pytest.approx(1e-4)
    assert at.slider(key="schedules.sig_start").value == -3.0
    assert at.selectbox(key="schedules.toy").value == "eight_gaussians"
    assert at.number_input(key="schedules.seed").value == 0
    assert at.text_input(key="schedules.custom").value == "0.005"
    assert not set(query) & set(at.query_params)  # bad values are dropped from the URL


def test_schedules_widgets_write_back_to_the_url():
    at = ok(open_page("views/schedules.py"))
    assert not at.query_params
    at.selectbox(key="schedules.toy").set_value("two_moons").run()
    at.number_input(key="schedules.seed").set_value(3).run()
    assert ok(at).query_params["toy"] == "two_moons" and at.query_params["seed"] == "3"
    at.selectbox(key="schedules.toy").set_value("eight_gaussians").run()
    assert "toy" not in at.query_params  # defaults stay out of the link


def test_changing_T_keeps_t_when_it_still_fits():
    """t's slider gets a new max (and a new widget id) when T changes; its value must survive."""
    at = ok(open_page("views/schedules.py", {"t": "100"}))
    at.slider(key="schedules.T").set_value(500).run()
    assert ok(at).slider(key="schedules.t").value == 100 and at.slider(key="schedules.t").max == 500
    at.slider(key="schedules.T").set_value(50).run()
    assert ok(at).slider(key="schedules.t").value == 50  # clamped to the new T


def test_settings_survive_a_visit_to_another_page():
    at = ok(open_page("views/schedules.py", {"T": "50", "toy": "rings"}))
    at.query_params.clear()  # the browser drops the query string on navigation
    at.switch_page("views/forward.py").run()
    assert ok(at).slider(key="forward.T").value == 1000  # pages do not share settings
    at.query_params.clear()
    at.switch_page("views/schedules.py").run()
    assert ok(at).slider(key="schedules.T").value == 50 and at.selectbox(key="schedules.toy").value == "rings"
    assert at.query_params["T"] == "50" and at.query_params["toy"] == "rings"  # the link is rebuilt


def test_schedules_control_sweep():
    at = ok(open_page("views/schedules.py"))
    assert sweep(at) >= 30
    for text in ("0.9", "0.001, 0.5, 0.001", "1e-5", "0.02, -1"):
        at.text_input(key="schedules.custom").input(text).run()
        ok(at)


# --- forward process --------------------------------------------------------------------------------------


def test_forward_animation_has_frames_contours_and_paths():
    at = ok(open_page("views/forward.py"))
    (fig,) = plotly_specs(at)
    assert 20 <= len(fig["frames"]) <= 30
    assert [d["type"] for d in fig["data"]] == ["contour", "scatter", "scatter", "scatter"]
    assert all(len(f["data"]) == 4 for f in fig["frames"])
    assert fig["layout"]["yaxis"]["scaleanchor"] == "x"
    assert fig["layout"]["xaxis"]["range"] == fig["layout"]["yaxis"]["range"] == [-4, 4]
    assert [b["label"] for b in fig["layout"]["updatemenus"][0]["buttons"]] == ["▶ Play", "❚❚ Pause"]
    assert len(fig["layout"]["sliders"][0]["steps"]) == len(fig["frames"])
    first, last = xy(fig["frames"][0]["data"][1]), xy(fig["frames"][-1]["data"][1])
    assert first.shape == (1000, 2)
    assert abs(last.std() - 1) < 0.1 and abs(last.mean()) < 0.1  # x_T ~ N(0, I)
    heads = xy(fig["frames"][-1]["data"][3])
    assert heads.shape == (10, 2)


def test_forward_controls_change_the_animation():
    at = ok(open_page("views/forward.py"))
    base = xy(plotly_specs(at)[0]["frames"][0]["data"][1])
    at.number_input(key="forward.seed").set_value(5).run()
    assert not np.allclose(base, xy(plotly_specs(ok(at))[0]["frames"][0]["data"][1]))
    at.slider(key="forward.n").set_value(300).run()
    assert xy(plotly_specs(ok(at))[0]["frames"][0]["data"][1]).shape == (300, 2)
    at.selectbox(key="forward.toy").set_value("swiss_roll").run()
    fig = plotly_specs(ok(at))[0]
    assert [d["type"] for d in fig["data"]] == ["scatter", "scatter", "scatter"]  # no exact density
    at.slider(key="forward.T").set_value(50).run()
    assert any("does not reach noise" in w.value for w in ok(at).warning)
    assert at.query_params == {"seed": "5", "n": "300", "toy": "swiss_roll", "T": "50"}


def test_forward_query_params_initialise_and_bad_ones_are_ignored():
    at = ok(open_page("views/forward.py", {"toy": "rings", "schedule": "cosine", "T": "300", "n": "500", "seed": "9"}))
    assert at.selectbox(key="forward.toy").value == "rings"
    assert at.selectbox(key="forward.schedule").value == "cosine"
    assert (at.slider(key="forward.T").value, at.slider(key="forward.n").value) == (300, 500)
    assert at.number_input(key="forward.seed").value == 9
    at = ok(open_page("views/forward.py", {"toy": "", "schedule": "cosin", "T": "-5", "n": "10**9", "seed": "1e999"}))
    assert (at.slider(key="forward.T").value, at.slider(key="forward.n").value) == (1000, 1000)
    assert at.selectbox(key="forward.schedule").value == "linear"


def test_forward_control_sweep():
    at = ok(open_page("views/forward.py"))
    assert sweep(at) >= 20


# --- helpers -------------------------------------------------------------------------------------------------


def test_forward_chain_marginal_matches_q_sample():
    """The step-by-step chain (eq. 2) has the closed-form marginal N(sqrt(ab) x0, (1 - ab) I) (eq. 4)."""
    s = make_schedule("linear", T=100)
    x0 = torch.full((20000, 2), 1.5)
    xs = forward_chain(s, x0, [0, 10, 100], generator=torch.Generator().manual_seed(0))
    assert torch.equal(xs[0], x0)
    for k, t in ((1, 10), (2, 100)):
        ab = float(s.alpha_bars[t - 1])
        assert xs[k].mean().item() == pytest.approx(math.sqrt(ab) * 1.5, abs=0.02)
        assert xs[k].var().item() == pytest.approx(1 - ab, rel=0.03)


def test_number_coercer_rejects_absurd_url_values_and_clamps_stored_ones():
    c = number_coercer(10, 1000, 10, True)
    assert [c(v, False) for v in ("50", "60.0", "1e400", "nan", "abc", "5", None, "2000")] == \
        [50, 60, None, None, None, None, None, None]
    assert c(2000, True) == 1000 and c(3, True) == 10
    f = number_coercer(0.0, 0.2, 0.001, False)
    assert f("0.008", False) == pytest.approx(0.008) and f("-inf", False) is None

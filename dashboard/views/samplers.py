"""Samplers: DDPM, DDIM, reverse SDE, predictor-corrector, PF-ODE Euler/Heun and DPM-Solver++ from the same x_T
on the same model at the same NFE budget, side by side with their paths, and sample quality against NFE."""

from functools import partial

import numpy as np
import pandas as pd
import streamlit as st

from core.metrics import data_floor, sliced_wasserstein
from core.samplers import METHODS, sample, steps_for_nfe
from dashboard.ui import exports, flow, plots, sampling
from dashboard.ui.header import page_header
from dashboard.ui.loaders import is_mixture
from dashboard.ui.models import model_picker
from dashboard.ui.terminal_snr import terminal_noise_warning

N_FRAMES, N_PATHS = 30, 8
N_OVERLAY = 500  # grey data points under each sampler (the data panel shows all): 8 charts render faster

page_header(
    "Samplers",
    [r"\mathrm dx=\big[f(x,t)-g(t)^2\,\nabla_x\log p_t(x)\big]\,\mathrm dt+g(t)\,\mathrm d\bar w"
     r"\qquad\text{(reverse SDE)}",
     r"\frac{\mathrm dx}{\mathrm dt}=f(x,t)-\tfrac12\,g(t)^2\,\nabla_x\log p_t(x)\qquad\text{(probability-flow ODE)},"
     r"\qquad\nabla_x\log p_t(x)\approx-\frac{\epsilon_\theta(x,t)}{\sqrt{1-\bar\alpha_t}}"],
    "Every sampler integrates one of these two equations (Song et al. 2021; for DDPM's schedule "
    "$f=-\\tfrac12\\beta_t x$, $g=\\sqrt{\\beta_t}$) with the same network. DDPM, Euler–Maruyama and "
    "predictor–corrector follow the reverse SDE and add fresh noise at each step, so their particles jitter; "
    "DDIM (η = 0), the ODE solvers and DPM-Solver++ follow the probability-flow ODE, which has the same "
    "marginals $p_t$ but no noise, so their paths are smooth and $x_T$ alone decides the sample. Below, all of "
    "them start from the same $x_T$ and get the same budget of network evaluations (NFE).",
    "set the NFE budget to 5: DDPM and DDIM still draw a ring around the modes, while Heun and "
    "predictor–corrector, which spend two evaluations per step and so take only 2–3 steps, fly off the plot. "
    "Switch on the exact score: Euler–Maruyama drops from about 10× the floor to 2×, so most of its error was "
    "the network's. Then move *show at step t* to 500: the clouds look alike although the paths do not, since "
    "all the samplers share the marginals p_t, not the paths.",
    code=[sample, sliced_wasserstein, data_floor],
)

ui = sampling.SamplingWidgets("samplers")
c = st.columns([4, 3, 3, 2, 2])
with c[0]:
    choice = model_picker(ui)
T = choice.schedule.T
with c[1]:
    nfe = ui.select_slider("NFE budget per sampler", "nfe", sampling.NFE_BUDGETS, 20,
                           help="Network evaluations each sampler may spend: K steps for most, K steps of 2 for "
                                "Heun (2K − 1) and predictor-corrector (2K). 250 takes several seconds the first "
                                "time.")
with c[2]:
    t_show = ui.slider("Show at step t", "t", 0, T, 0, step=1,
                       help="0: the samples. Larger t: each sampler's state at the visited step nearest to t.")
with c[3]:
    n = ui.slider("Points", "n", 200, 2000, 1000, step=100)
with c[4]:
    seed = ui.number("Seed", "seed", 0, 9999, 0, help="The same x_T (and sampler noise) for every panel.")

o = st.columns(4)
with o[0]:
    eta = ui.slider("DDIM η", "eta", 0.0, 1.0, 0.0, step=0.05,
                    help="η = 0: deterministic DDIM; η = 1: DDIM with DDPM's amount of noise.")
with o[1]:
    spacing = ui.selectbox("DDPM / DDIM timestep spacing", "spacing", ("leading", "linspace", "trailing"), "leading")
with o[2]:
    sde = ui.selectbox("SDE / ODE view", "sde", ("vp", "ve"), "vp", format_func=sampling.labeller(sampling.SDE_LABELS),
                       help="Euler–Maruyama, predictor-corrector and the PF-ODE solvers on the VP SDE of DDPM or "
                            "the VE SDE of SMLD (the same network).")
with o[3]:
    if choice.token.startswith("exact:"):
        st.caption("**Exact score**: every panel uses the true ε of the mixture; what differs is discretisation.")
    else:
        st.caption(f"**{choice.label}**, {choice.schedule.name} schedule, T = {T}"
                   + (". Toggle the exact score to remove the network's error." if is_mixture(choice.toy or "")
                      else "."))

token, exact = sampling.split_token(choice)
options = {m: sampling.method_options(m, eta=eta, spacing=spacing, sde=sde) for m in METHODS}
runs: dict[str, dict | None] = {}
bar = st.progress(0.0, text="Sampling...")
for i, m in enumerate(METHODS):
    bar.progress(i / len(METHODS), text=f"Sampling with {sampling.METHOD_LABELS[m]} ({i + 1}/{len(METHODS)})...")
    steps = steps_for_nfe(m, nfe, T)
    runs[m] = None if steps is None else sampling.run_sampler(token, exact, m, steps, n, seed, options[m],
                                                              n_frames=N_FRAMES, n_paths=N_PATHS)
bar.empty()
ref = sampling.data_reference(token, n)


def nearest_frame(run: dict, t: int) -> int:
    """The stored frame whose paper timestep is nearest to t (0 is the sample itself)."""
    return int(np.argmin(np.abs(run["frame_t"] - t)))


slots = [*METHODS, "data"]
for row in (slots[:4], slots[4:]):
    for col, m in zip(st.columns(4, gap="small"), row, strict=False):
        with col:
            if m == "data":
                st.markdown("**Data** · the target")
                plots.show(sampling.sampler_panel(ref["overlay"], None, "#374151"), key="panel_data")
                st.caption(f"{'Your points' if choice.toy is None else 'Fresh data'}; data floor: SW between two "
                           f"independent draws of {n} points = {ref['floor']:.3f}.")
                continue
            run = runs[m]
            st.markdown(f"**{sampling.METHOD_LABELS[m]}**")
            if run is None:
                plots.show(sampling.sampler_panel(None, ref["overlay"][:N_OVERLAY], sampling.METHOD_COLORS[m]),
                                    key=f"panel_{m}")
                st.caption(f"Not run: {nfe} NFE needs more steps than the model's T = {T}.")
                continue
            k = nearest_frame(run, t_show)
            fig = sampling.sampler_panel(run["xs"][k], ref["overlay"][:N_OVERLAY], sampling.METHOD_COLORS[m],
                                         sampling.frame_paths(run, k))
            plots.show(fig, key=f"panel_{m}")
            where = "" if k == len(run["frame_idx"]) - 1 else \
                f" · shown: t = {sampling.nice_t(float(run['frame_t'][k]))} (step {int(run['frame_idx'][k])})"
            off = f" · {run['outside']} off the plot" if run["outside"] else ""
            st.caption(f"**NFE {run['nfe']}** · {run['seconds']:.2f} s · {run['steps']} steps · "
                       f"SW {sampling.fmt_ratio(run['ratio'])} floor{off}{where}")
            t_k = None if k == len(run["frame_idx"]) - 1 else int(round(float(run["frame_t"][k])))
            shown = {**sampling.export_settings(choice, m, run["steps"], n, seed, options[m]), "nfe": run["nfe"],
                     "t": t_k}
            exports.download_button("Samples (CSV)" if t_k is None else f"x_t at t = {t_k} (CSV)",
                                    partial(exports.points_csv, run["xs"][k], shown),
                                    exports.file_name("samplers", m, {**shown, "sampler": None}, "csv"),
                                    key=f"samplers.download.{m}")
st.caption(f"Grey: {'your points' if choice.toy is None else 'the data'}. Coloured: the {n} points of each sampler. "
           f"Orange: the paths of the same {N_PATHS} particles (the same x_T in every panel). SW: sliced Wasserstein "
           "distance to fresh data divided by the data floor (1 = as close as this many points can tell). Times are "
           "the sample() call on this server when it ran; results are cached.")
terminal_noise_warning(choice.schedule, choice.label)

# --- quality against cost ----------------------------------------------------------------------------------------

st.subheader("Quality against network evaluations")
flow_toy = flow.flow_toy_of(token, choice.toy)  # a pretrained ddpm-<toy>: fm-<toy>'s lines join the chart
st.markdown("Each line is one sampler; lower is better and the dotted line is the data floor. **Solid lines** use "
            "the trained network, **dashed lines** the exact score (mixture toys), so the gap between a solid line "
            "and its dashed twin is the network's error, and a dashed line's own slope is the sampler's "
            "discretisation error."
            + (f" The flow lines are fm-{choice.toy}, a flow-matching model of the same data (the *Flow matching* "
               "page), with its three solvers, and the rectified flow where one is shipped: another ODE from noise "
               "to data, whose straighter paths need fewer evaluations."
               if flow_toy else ""))
kinds = [False, True] if is_mixture(choice.toy or "") else [False]
od_key = (token, sampling.ON_DEMAND_N, seed, tuple(options[m] for m in METHODS))
store = st.session_state.setdefault("samplers.on_demand", {})
b1, b2 = st.columns([2, 3], vertical_alignment="center")
with b1:
    clicked = st.button(f"Compute for this model now ({len(METHODS)} samplers × NFE "
                        f"{', '.join(map(str, sampling.ON_DEMAND_NFE))}"
                        f"{', learned and exact' if len(kinds) == 2 else ''})",
                        icon=":material/play_arrow:", key="samplers.compute",
                        disabled=od_key in store)
with b2:
    st.caption(f"Runs every sampler on {sampling.ON_DEMAND_N} points with this page's η, spacing and SDE view "
               "(about 10-20 s on a 2-core CPU; cached afterwards).")
if clicked and od_key not in store:
    progress = st.progress(0.0, text="Starting...")
    grid = sampling.on_demand_grid(token, kinds, sampling.ON_DEMAND_N, seed, options, progress)
    if flow_toy is not None:  # the same noise, points and budgets: fm-<toy>'s solvers (and the exact velocity)
        lines = flow.flow_rows(flow_toy, sampling.ON_DEMAND_NFE, sampling.ON_DEMAND_N, seed, kinds, progress)
        grid = pd.concat([grid, lines[list(flow.COLUMNS)]], ignore_index=True) if len(lines) else grid
    store[od_key] = grid
    st.rerun()  # draw the page again with the results and the button marked as done

bench = sampling.benchmark_rows(choice.toy) if token.startswith("ddpm-") else None
if od_key in store:
    df = store[od_key]
    source = (f"Computed here on {sampling.ON_DEMAND_N} points, seed {seed}, with this page's options; wall time is "
              "the sample() call on this server.")
elif bench is not None:
    df, meta = bench
    source = (f"From `benchmarks/results/samplers.json` ({meta.get('created') or 'undated'}; n = {meta.get('n')} "
              f"points per run; {meta.get('hardware') or 'unknown hardware'}, {meta.get('threads')} thread(s)); "
              "engine defaults (DDIM η = 0, leading spacing, VP). Recompute with this page's options above.")
    flow_n = flow.benchmark_n(meta)
    flow_nfe = tuple(k for k in flow.SAMPLERS_FLOW_NFE if k <= df["nfe"].max())
    if flow_toy is not None and flow_n is not None and flow_nfe:
        flow_key = (flow_toy, flow_n, flow_nfe)
        flow_store = st.session_state.setdefault("samplers.flow_lines_done", {})
        if flow_toy == flow.DEFAULT_TOY or flow_key in flow_store:  # the default view: the warm-up computes it
            bar = st.progress(0.0, text="Flow lines...")
            lines = flow_store.get(flow_key)
            if lines is None:
                lines = flow.flow_rows(flow_toy, flow_nfe, flow_n, flow.SAMPLERS_FLOW_SEED, progress=bar)
            bar.empty()
            df = pd.concat([df, lines[list(flow.COLUMNS)]], ignore_index=True) if len(lines) else df
            source += (f" Flow lines (fm-{flow_toy}): computed here on {flow_n} points, seed "
                       f"{flow.SAMPLERS_FLOW_SEED}, at NFE {', '.join(map(str, flow_nfe))}, with this page's sliced "
                       "Wasserstein and floor.")
        else:
            f1, f2 = st.columns([2, 3], vertical_alignment="center")
            with f1:
                add = st.button(f"Add the flow-matching lines (fm-{flow_toy})", icon=":material/air:",
                                key="samplers.flow_lines")
            with f2:
                st.caption(f"Runs fm-{flow_toy}'s solvers at NFE {', '.join(map(str, flow_nfe))} on the benchmark's "
                           f"{flow_n} points (several seconds on a 2-core CPU; cached for everyone afterwards).")
            if add:
                bar = st.progress(0.0, text="Starting...")
                flow_store[flow_key] = flow.flow_rows(flow_toy, flow_nfe, flow_n, flow.SAMPLERS_FLOW_SEED,
                                                      progress=bar)
                st.rerun()
else:
    df, source = None, None
    why = ("no benchmark results for this model" if not token.startswith("ddpm-") or sampling.BENCHMARK_JSON.is_file()
           else "`benchmarks/results/samplers.json` is not there yet (`python benchmarks/samplers.py --json "
                "benchmarks/results/samplers.json` writes it)")
    st.info(f"No chart yet: {why}. Press **Compute for this model now** to measure it here.",
            icon=":material/info:")
if df is not None:
    st.altair_chart(sampling.quality_chart(df, "nfe"), width="stretch")
    st.markdown("**The same runs against wall time**: Heun and predictor-corrector pay two network calls per step"
                + ("; the exact score of a mixture is cheaper than the network." if (df["model"] == "exact").any()
                   else "."))
    st.altair_chart(sampling.quality_chart(df, "seconds"), width="stretch")
    st.caption(source)

"""AppTest checks of the Diffusion vs GAN vs VAE page: it renders from the pretrained models for a 2D mixture, a
2D non-mixture and MNIST; its tables show exactly the numbers `python -m core evaluate` recorded in the manifest
(and the benchmark file's sampling times); the mixtures get a mode-collapse section; the live race trains all three
families with a tiny budget in the job runner's worker processes (the page follows it, then collects it), Stop
while the GAN trains keeps it and skips the VAE, a failed race says why; the GAN panels (pretrained and raced)
draw the discriminator's D(x) under the points, the race's map changing from snapshot to snapshot, and the race plots
the GAN's two players' losses apart, live and after; the URL holds its state and absurd values fall back.
Run: python -m pytest tests/dashboard/test_pages_baselines.py -q"""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.checkpoints import read_manifest
from core.data.toy2d import MIXTURE_TOYS
from core.evaluate import parameter_counts
from core.interpolate import slerp
from dashboard.jobs import race as race_job_module
from dashboard.jobs.runner import ACTIVE
from dashboard.ui import background
from dashboard.ui import baselines as compare
from tests.dashboard.apptest_helpers import app_on, ok, plotly_specs, run_until, vega_frames

MANIFEST = read_manifest()["models"]


def open_page(query: dict[str, str] | None = None) -> AppTest:
    at = app_on("views/baselines.py", 120)
    at.query_params.update(query or {})
    return ok(at.run())


def tables(at: AppTest):
    quality, cost = (d.value for d in at.dataframe[:2])
    return quality, cost


def metrics(name: str) -> dict:
    m = MANIFEST.get(name, {}).get("metrics")
    return m if isinstance(m, dict) else {}


def shown(dataset: str) -> list[compare.Entry]:
    return compare.entries(dataset)[0]


def need(dataset: str) -> list[compare.Entry]:
    found = shown(dataset)
    assert len({e.kind.split("-")[0] for e in found}) == 3, f"the three families of {dataset} must be shipped"
    return found


def array(v) -> np.ndarray:
    """A Plotly spec's array: a plain list, or a typed array {"dtype", "bdata", "shape"} (Plotly >= 6)."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return a.reshape([int(k) for k in str(v["shape"]).split(",")]) if "shape" in v else a
    return np.asarray(v, dtype=float)


def d_maps(spec: dict) -> dict[str, np.ndarray]:
    """The discriminator heat maps of a figure spec by subplot ("x", "x2", ...), after checking each lies under
    every trace of its subplot, within [0, 1], on a fixed 0..1 colour range."""
    out = {}
    for i, t in enumerate(spec["data"]):
        if t["type"] not in ("heatmap", "contour"):
            continue
        z = array(t["z"])
        assert z.ndim == 2 and np.isfinite(z).all() and z.min() >= 0 and z.max() <= 1
        assert (t["zmin"], t["zmax"]) == (0, 1) and t["opacity"] <= 0.6  # faint, 1/2 always the same colour
        axis = t.get("xaxis", "x")
        assert all(u.get("xaxis", "x") != axis for u in spec["data"][:i])  # drawn first on its subplot
        out[axis] = z
    return out


def check_table(at: AppTest, dataset: str) -> None:
    """Every number of the page's tables equals the manifest record (or the benchmark file) of its model."""
    found = shown(dataset)
    quality, cost = tables(at)
    assert list(quality["model"]) == list(cost["model"])
    bench, _ = compare.benchmark()
    i = 0
    for e in found:
        m = metrics(e.name)
        guided = {g["guidance_scale"]: g for g in m.get("guided", [])}
        variants = [None] + [w for w in compare.GUIDED_ROWS if w in guided] if dataset == "mnist" and e.diffusion \
            else [None]
        for w in variants:
            q, c = quality.iloc[i], cost.iloc[i]
            i += 1
            assert q["model"] == e.name
            assert c["NFE / sample"] == (1 if not e.diffusion else 100 if w not in (None, 1.0) else 50)
            b = compare.bench_row(bench, e, w)
            if b is not None:
                assert c["s / 1,000 samples"] == b["seconds_per_1000"]
            used, total = c["parameters (sampling)"], c["parameters (trained)"]
            assert 0 < used <= total and (used < total) == (not e.diffusion)  # GAN: generator; VAE: decoder
            if not m:
                continue
            assert q["n"] == m["n"] and c["training s"] == MANIFEST[e.name]["seconds"]
            assert q["sampler"].startswith(m["sampler"] if e.diffusion else compare.ONE_PASS[e.kind])
            if dataset == "mnist":
                assert q["FID-MNIST real vs real"] == m["fid_mnist_data_vs_data"]
                if w is None:
                    assert q["FID-MNIST"] == m["fid_mnist_unconditional"]
                    assert list(q["class histogram"]) == m["unconditional_class_histogram"]
                    assert q["classes covered"] == f"{m['unconditional_classes_covered']}/10"
                    assert np.isnan(q["accuracy on the requested digit"])
                else:
                    assert (q["FID-MNIST"], q["accuracy on the requested digit"]) == \
                        (guided[w]["fid_mnist"], guided[w]["accuracy"])
            else:
                for col, key in [("sliced Wasserstein", "sliced_wasserstein"), ("SW floor", "sliced_wasserstein_floor"),
                                 ("SW / floor", "sw_ratio"), ("MMD (RBF)", "mmd_rbf"),
                                 ("energy distance", "energy_distance")]:
                    assert q[col] == m[key], (e.name, col)
                if dataset in MIXTURE_TOYS:
                    assert q["modes covered"] == f"{m['modes_covered']}/{m['modes']}"
                    assert q["off-mode fraction"] == m["off_mode_fraction"]
    assert i == len(quality)


# --- rendering and the recorded numbers -----------------------------------------------------------------------------


def test_mixture_renders_samples_table_collapse_curves_and_interpolation():
    found = need("eight_gaussians")
    at = open_page()
    assert len(at.latex) == 3 and "ELBO" in at.latex[1].value and "min_G" in at.latex[0].value.replace(" ", "")
    assert any(i.value.startswith("**Try this:**") for i in at.info)
    assert len(at.markdown[0].value.split(". ")) >= 2
    assert [c.value.lstrip()[:4] for c in at.code][:3] == ["def "] * 3  # GAN.loss, VAE.elbo, loss_simple
    heads = [h.value for h in at.subheader]
    assert heads[:3] == ["Samples", "The numbers", "Mode collapse"] and "Training curves" in heads
    check_table(at, "eight_gaussians")

    samples, interp = plotly_specs(at)[:2]
    titles = [a["text"] for a in samples["layout"]["annotations"]]
    assert len(titles) == len(found) + 1 and titles[0].startswith("data")
    assert all(samples["layout"][f"yaxis{'' if i == 1 else i}"]["scaleanchor"] == f"x{'' if i == 1 else i}"
               for i in range(1, len(titles) + 1))  # equal axes in every panel
    assert any(t.startswith("GAN · ") and t.endswith("/8 modes") for t in titles)
    # the pretrained GAN panels (GAN, GAN + R1) show their discriminator's map, the others none
    maps = d_maps(samples)
    gan_axes = {f"x{i}" for i, e in enumerate(found, start=2) if e.kind.startswith("gan")}
    assert set(maps) == gan_axes and maps["x3"].shape == (compare.D_MAP_N, compare.D_MAP_N)
    assert maps["x3"].max() - maps["x3"].min() > 0.2  # it tells real from fake somewhere
    assert any("GAN Lab" in c.value and "D(x)" in c.value for c in at.caption)
    # the collapse shows: every recorded GAN that misses modes gets a red box with its numbers, DDPM a green one
    for e in found:
        m = metrics(e.name)
        if e.kind.startswith("gan") and m and m["modes_covered"] < m["modes"]:
            assert any(x.value.startswith(f"**{e.label}: mode collapse.** {m['modes_covered']} of 8 modes")
                       for x in at.error)
    assert any(s.value.startswith("**Diffusion (DDPM): every mode.**") for s in at.success)
    modes = vega_frames(at)[0]
    assert set(modes["family"]) == {e.label for e in found} and set(modes["mode"]) == {*map(str, range(1, 9)), "off"}
    assert np.allclose(modes.groupby("family")["share"].sum(), 1.0)
    # interpolation: the same pairs in every panel; DDIM's path ends on data
    paths = [t for t in interp["data"] if t.get("name", "").startswith("path")]
    assert len(paths) == 6 * len(found)  # six pairs of endpoints per model
    assert at.button(key="baselines.race_go").label == "Race" and "baselines.race" not in at.session_state


def test_non_mixture_and_every_toy_table_matches_the_manifest():
    for toy in compare.BASELINE_TOYS:
        if len(shown(toy)) < 3:
            continue
        at = open_page({"data": toy, "n": "500"})
        check_table(at, toy)
        assert "Mode collapse" in [h.value for h in at.subheader]
        if toy in MIXTURE_TOYS:  # a bar per mode and family, and a verdict per model
            assert len(at.error) + len(at.warning) + len(at.success) >= len(shown(toy))
        else:
            assert any("is not a mixture" in c.value for c in at.caption)


def test_mnist_renders_digits_histograms_and_interpolation():
    found = need("mnist")
    at = open_page({"data": "mnist", "steps": "5"})
    check_table(at, "mnist")
    specs = plotly_specs(at)
    assert len(specs) == len(found) + 2  # real digits, one grid per model, the interpolation
    interp = specs[-1]
    rows = [a["text"] for a in interp["layout"]["annotations"] if a.get("xref") == "paper"]
    assert "DDIM-5: x_T" in rows and "GAN: z" in rows and "VAE: z" in rows
    assert any("DDIM-5, 5 NFE" in m.value for m in at.markdown)
    hist = vega_frames(at)[0]
    assert set(hist["mode"]) == {str(d) for d in range(10)}


# --- the URL ---------------------------------------------------------------------------------------------------------


def test_query_params_round_trip():
    query = {"data": "two_moons", "n": "1000", "seed": "7", "race_toy": "spiral", "budget": "5", "r1": "1"}
    at = open_page(query)
    assert at.selectbox(key="baselines.data").value == "two_moons"
    assert (at.slider(key="baselines.n").value, at.number_input(key="baselines.seed").value) == (1000, 7)
    assert at.selectbox(key="baselines.race_toy").value == "spiral"
    assert at.slider(key="baselines.budget").value == 5 and at.toggle(key="baselines.r1").value is True
    assert {k: at.query_params[k] for k in query} == query
    at.slider(key="baselines.n").set_value(1500).run()
    assert ok(at).query_params["n"] == "1500"
    at.selectbox(key="baselines.data").set_value("eight_gaussians").run()
    assert "data" not in ok(at).query_params  # the default leaves the link


def test_absurd_query_params_fall_back_to_defaults():
    at = open_page({"data": "cifar10", "n": "1e9", "seed": "-3", "race_toy": "../../etc", "budget": "nan",
                    "r1": "maybe", "steps": "7"})
    assert at.selectbox(key="baselines.data").value == "eight_gaussians"
    assert at.slider(key="baselines.n").value == 2000 and at.number_input(key="baselines.seed").value == 0
    assert at.selectbox(key="baselines.race_toy").value == "above"
    assert at.slider(key="baselines.budget").value == 15 and at.toggle(key="baselines.r1").value is False
    at = open_page({"data": "mnist", "steps": "999"})
    assert at.slider(key="baselines.steps").value == 10


# --- the race --------------------------------------------------------------------------------------------------------


SESSION = "test session id"  # AppTest's browser session: the runner keeps at most one job for it


def runner():
    """The app's job runner (st.cache_resource: the same object the AppTest runs use)."""
    return background.runner()


@pytest.fixture
def no_job_left():
    """After a race test, whatever happened: no job of the AppTest session queued or running."""
    yield
    r = runner()
    for job in r.session_jobs(SESSION):
        r.stop(job.id)
    deadline = time.time() + 60
    while any(j.status in ACTIVE for j in r.session_jobs(SESSION)) and time.time() < deadline:
        time.sleep(0.1)
    for job in r.session_jobs(SESSION):
        r.forget(job.id)


def race_job(at: AppTest):
    job_id = at.session_state[compare.JOB + ".job"] if compare.JOB + ".job" in at.session_state else None
    return runner().view(job_id) if job_id else None


def until(at: AppTest, done, timeout_s: float = 240.0) -> AppTest:
    """Full script runs, every ~0.5 s, until done(at): AppTest does not rerun fragments on a timer, so each full
    run polls the runner (apptest_helpers.run_until); every run must be free of exceptions."""
    return run_until(at, lambda at: done(ok(at)), timeout_s=timeout_s, every_s=0.5)


def raced(at: AppTest) -> bool:
    return compare.RACE_KEY in at.session_state


def test_race_trains_all_three_with_a_tiny_budget(monkeypatch, no_job_left):
    live = {"losses": [], "maps": []}  # what the page draws while training (gone from the page once it is done)

    def losses_frame(losses, players=None, _real=compare.race_losses_frame):
        frame = _real(losses, players)
        live["losses"].append((len(losses), frame))
        return frame

    def with_d_maps(fig, maps, lim, _real=compare.with_d_maps):
        fig = _real(fig, maps, lim)
        live["maps"].append(json.loads(fig.to_json()))
        return fig

    monkeypatch.setattr(compare, "race_losses_frame", losses_frame)
    monkeypatch.setattr(compare, "with_d_maps", with_d_maps)
    at = open_page({"data": "two_moons", "n": "500", "budget": "2"})
    live["losses"].clear()  # the opening run drew the pretrained panels
    live["maps"].clear()
    ok(at.button(key="baselines.race_go").click().run())
    job = race_job(at)
    assert job is not None and job.kind == "race" and job.spec["toy"] == "two_moons" and job.expected_s == 6.0
    ok(at.run())
    assert at.button(key="baselines.race_go").disabled or raced(at)  # one race at a time
    drawn_live = {"losses": 0, "maps": 0}

    def done(at: AppTest) -> bool:
        if raced(at):
            return True
        drawn_live.update({k: len(v) for k, v in live.items()})  # this run followed the job: its charts were live
        return False

    until(at, done)
    live_losses, live_maps = live["losses"][:drawn_live["losses"]], live["maps"][:drawn_live["maps"]]
    race = at.session_state[compare.RACE_KEY]
    assert race.toy == "two_moons" and race.budget_s == 2.0 and not race.stopped and race.id == job.id
    assert race_job(at) is None and runner().view(job.id) is None  # collected, then forgotten by the runner
    assert list(race.runs) == ["ddpm", "gan", "vae"]
    for run in race.runs.values():
        assert run.steps > 0 and len(run.losses) == run.steps and run.stop_reason in ("time", "steps")
        assert run.seconds < race.budget_s + 2 and len(run.snapshots) >= 3 and run.snapshots[0].step == 1
        assert all(s.points.shape == (compare.SNAPSHOT_N, 2) and np.isfinite(s.points).all() for s in run.snapshots)
        assert run.metrics is not None and run.metrics["n"] == 2000
        assert run.model.name == f"race-{run.family}-two_moons" and not run.model.model.training
    assert run.model.config["training"]["time_budget_s"] == 2.0
    assert race.runs["gan"].model.config["training"]["loss_d_curve"]
    assert race.runs["ddpm"].model.schedule is not None and race.runs["gan"].model.schedule is None
    snaps = [s for s in plotly_specs(at) if len(s["layout"]["annotations"]) >= 3
             and s["layout"]["annotations"][0]["text"] == "start"]
    assert len(snaps) == 3  # one row of snapshots per family
    result = at.dataframe[-1].value
    assert list(result["family"]) == ["Diffusion (DDPM)", "GAN", "VAE"] and (result["SW / floor"] > 0).all()
    curves = vega_frames(at)[-3:]
    assert set(curves[1]["series"]) == {"L_D", "L_G"}
    assert set(curves[0]["series"]) == set(curves[2]["series"]) == {"per step", "moving average"}

    # the GAN's snapshots sit on its discriminator's map at that step, and the map moves as D trains
    gan = race.runs["gan"]
    assert len(gan.players["L_D"]) == len(gan.players["L_G"]) == gan.steps
    assert np.allclose(np.add(gan.players["L_D"], gan.players["L_G"]), gan.losses, atol=1e-4)
    assert all(s.d_map.shape == (compare.D_MAP_N, compare.D_MAP_N) for s in gan.snapshots)
    assert all(s.d_map is None for f in ("ddpm", "vae") for s in race.runs[f].snapshots)
    maps = d_maps(snaps[1])
    assert list(maps) == ["x" if i == 1 else f"x{i}" for i in range(1, len(gan.snapshots) + 1)]
    assert not d_maps(snaps[0]) and not d_maps(snaps[2])
    shown_maps = list(maps.values())
    assert all(np.allclose(m, s.d_map, atol=1e-6) for m, s in zip(shown_maps, gan.snapshots, strict=True))
    assert all(np.abs(a - b).max() > 1e-3 for a, b in zip(shown_maps, shown_maps[1:], strict=False))
    assert all(snaps[1]["layout"][f"yaxis{'' if i == 1 else i}"]["scaleanchor"] == f"x{'' if i == 1 else i}"
               for i in range(1, len(shown_maps) + 1))  # still equal axes
    assert any("GAN Lab" in c.value and "chase" in c.value for c in at.caption)

    # live (the runs while the job trained): one-panel snapshots, the GAN's over the map of their moment, and the
    # GAN's L_D, L_G apart
    live_snaps = [s for s in live_maps if len(s["layout"]["annotations"]) == 1]
    live_gan = [d_maps(s) for s in live_snaps if d_maps(s)]
    assert live_gan and all(list(m) == ["x"] for m in live_gan)
    assert all(any(np.allclose(m["x"], s.d_map, atol=1e-6) for s in gan.snapshots) for m in live_gan)
    assert len(live_snaps) > len(live_gan)  # the diffusion model's and the VAE's: no map
    player_frames = [(n, f) for n, f in live_losses if set(f["series"]) == {"L_D", "L_G"}]
    assert player_frames and all(n <= gan.steps for n, _ in player_frames)
    assert all(len(f[f["series"] == "L_D"]) == len(f[f["series"] == "L_G"]) for _, f in player_frames)


def test_stop_while_the_gan_trains_keeps_it_and_skips_the_vae(no_job_left):
    at = open_page({"data": "eight_gaussians", "n": "500", "budget": "6"})
    ok(at.button(key="baselines.race_go").click().run())

    def gan_training(at: AppTest) -> bool:
        texts = [p.text for p in at.get("progress")]  # background.follow's bar: "GAN (2 of 3): step 12 of 3,000 ..."
        assert not any(t.startswith("VAE") for t in texts) and not raced(at), "the GAN finished before Stop"
        return any(t.startswith("GAN (2 of 3): step ") for t in texts)

    until(at, gan_training)
    ok(at.button(key="baselines.stop").click().run())
    assert race_job(at).stop_requested
    until(at, raced, timeout_s=60)
    race = at.session_state[compare.RACE_KEY]
    assert race.stopped and list(race.runs) == ["ddpm", "gan"]
    gan = race.runs["gan"]
    assert gan.stop_reason == "callback" and gan.steps == len(gan.losses) >= 1 and gan.model is not None
    assert gan.snapshots[-1].step == gan.steps and gan.seconds < 6
    x = gan.model.model.sample(10, generator=torch.Generator().manual_seed(0))
    assert x.shape == (10, 2) and torch.isfinite(x).all()
    assert race.runs["ddpm"].stop_reason in ("time", "steps")
    text = " ".join(m.value for m in at.markdown)
    assert "**Stopped**" in text and "**VAE**: not trained" in text
    assert list(at.dataframe[-1].value["family"]) == ["Diffusion (DDPM)", "GAN"]
    assert not at.button(key="baselines.race_go").disabled


def test_a_race_job_that_fails_says_why(no_job_left):
    at = open_page()
    spec = {**race_job_module.race_spec("two_moons", 1.0), "toy": "no_such_toy"}
    job_id = runner().submit(SESSION, "race", spec, label="a bad race", expected_s=3.0)
    at.session_state[compare.JOB + ".job"] = job_id
    until(at, lambda at: runner().view(job_id) is None, timeout_s=120)
    assert compare.RACE_KEY not in at.session_state
    assert any(w.value.startswith("No race: the job failed") and "no_such_toy" in w.value for w in at.warning)


# --- helpers -----------------------------------------------------------------------------------------------------


def test_helpers_slerp_curves_and_parameter_counts():
    a, b = torch.randn(3, 2), torch.randn(3, 2)
    path = slerp(a, b, [0.0, 0.5, 1.0])
    assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    assert compare.curves_frame({"training": {"steps_done": 5000}}) is None  # an old checkpoint: no curve
    f = compare.curves_frame({"training": {"steps_done": 450, "loss_curve": [1.0] * 150, "loss_d_curve": [1.4] * 150,
                                           "loss_g_curve": [0.7] * 150}})
    assert set(f["series"]) == {"L_D", "L_G"} and f["step"].max() == 450
    assert f[f["series"] == "L_G"]["step"].iloc[0] == 3
    from core.models.gan import GAN
    from core.models.vae import VAE
    gan, vae = GAN(), VAE()
    assert parameter_counts(gan) == (sum(p.numel() for p in gan.generator.parameters()),
                                             sum(p.numel() for p in gan.parameters()))
    assert parameter_counts(vae)[0] == sum(p.numel() for p in vae.decoder.parameters()) + 2
    assert compare.short_hardware("AMD EPYC, 1 threads, torch 2.13.0+cpu") == "CPU, 1 thread"
    assert compare.short_hardware("Intel Xeon, 16 threads, torch 2.11, NVIDIA H200") == "GPU (NVIDIA H200)"
    assert json.dumps(race_job_module.race_recipe("gan", 3, 0, 1.0)[1]["r1_gamma"]) == "1.0"

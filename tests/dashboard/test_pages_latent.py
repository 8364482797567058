"""AppTest checks of the Latent diffusion page: the default view renders every section with the header; the round
trip is the autoencoder's (and the 2-D one's), the latent drawn is its z; the plane holds every held-out digit at its
2-D latent and a path of ldm2d-mnist from its seed; the grid is ldm-mnist's samples decoded, and the controls change it
and live in the URL; the cost table is benchmarks/results/latent.json's (or says how to make it); a train job through
the job runner returns weights that load (the page's Train button, and Stop keeping the autoencoder); missing models
leave the rest (render and control times: benchmarks/pages.py).
Run: python -m pytest tests/dashboard/test_pages_latent.py -q"""

from __future__ import annotations

import base64
import json
import shutil
import time

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from core import checkpoints
from core.checkpoints import load_checkpoint, load_pretrained
from core.data.mnist import load_mnist
from core.samplers import sample
from dashboard.jobs import latent as job_recipe
from dashboard.jobs.runner import ACTIVE, DONE, RUNNING
from dashboard.ui import background, digits, plots
from dashboard.ui import latent as ul
from tests.dashboard.apptest_helpers import APP, ok, run_until

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py: one torch thread, as the server runs

PAGE = "views/latent.py"
SHIPPED = checkpoints.PRETRAINED_DIR  # the shipped models, before any test points the loaders elsewhere
RESULTS = ul.BENCH_JSON  # the real benchmark file, before the fixture points the page elsewhere
CHEAP = {"steps_ddim": "4"}  # DDIM steps of the latent grid: a handful keeps each new view cheap
DEFAULT = {"steps_ddim": str(ul.STEP_RANGES["ddim"].default)}  # the page's own
TILE = 28
SESSION = "test session id"  # AppTest's browser session: the runner keeps at most one job for it
TINY = dict(batch_size=16, autoencoder_width=16, unet={"base_channels": 16}, train_digits=300, samples_per_digit=1,
            sample_steps=3, eval_digits=100, snapshot_steps=5)  # a job of a few seconds
BENCH = {"machine": "a test CPU, 2 threads", "n": 1000, "guidance_scale": 3.0, "sampler": "ddim-50",
         "fid_mnist_data_vs_data": 0.61, "seconds_ratio": 0.27,
         "rows": [{"model": "ldm-mnist", "parameters": 905000, "denoiser_parameters": 617252, "train_seconds": 492.1,
                   "train_hardware": "a test CPU", "seconds_per_100": 3.19, "accuracy": 0.978, "fid_mnist": 2.41},
                  {"model": "ddpm-mnist", "parameters": 1813377, "denoiser_parameters": 1813377,
                   "train_seconds": 270.0, "train_hardware": "a lent GPU", "seconds_per_100": 11.8, "accuracy": 0.991,
                   "fid_mnist": 1.92}]}


@pytest.fixture(autouse=True)
def bench(monkeypatch, tmp_path):
    """No benchmark file unless a test writes one here (the real one may or may not be there)."""
    monkeypatch.setattr(ul, "BENCH_JSON", tmp_path / "latent.json")
    return tmp_path / "latent.json"


def open_page(query: dict[str, str] | None = None, before=None) -> AppTest:
    """The app's first run (home), then the page; ``before()`` runs between the two."""
    at = AppTest.from_file(str(APP), default_timeout=300).run()
    ok(at)
    if before is not None:
        before()
    at.switch_page(PAGE)
    at.query_params.update({**CHEAP, **(query or {})})
    return ok(at.run())


def figure(at: AppTest, key: str) -> dict | None:
    """The Plotly figure drawn with ``key`` (None if the page drew none)."""
    found = [json.loads(el.proto.spec) for el in at.get("plotly_chart") if el.proto.id.endswith(f"-{key}")]
    return found[0] if found else None


def array(v) -> np.ndarray:
    """A Plotly array: a typed array ({"dtype", "bdata", "shape"}) or nested lists."""
    if isinstance(v, dict):
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return a.reshape(tuple(int(s) for s in v["shape"].split(","))) if "shape" in v else a
    return np.asarray(v, dtype=float)


def tiles(fig: dict, cols: int, rows: int, caption: bool) -> np.ndarray:
    """The (rows * cols, 28, 28) tiles of a digit mosaic (dashboard.ui.plots.image_grid), row by row."""
    z = array(fig["data"][0]["z"])
    dx, dy = TILE + plots.IMAGE_GAP, TILE + plots.IMAGE_GAP + (plots.CAPTION_PX if caption else 0)
    return np.stack([z[r * dy:r * dy + TILE, c * dx:c * dx + TILE] for r in range(rows) for c in range(cols)])


def captions(fig: dict) -> list[str]:
    return [a["text"] for a in fig["layout"].get("annotations", []) if a.get("yref") == "y" and a.get("xref") == "x"]


# --- the page ----------------------------------------------------------------------------------------------------


def test_the_default_view_has_every_section_and_the_header(bench):
    at = open_page(DEFAULT)  # the page's own default view
    assert [s.value for s in at.subheader] == [
        "1. The round trip: encode, decode, compare", "2. A latent you can see: two numbers per digit",
        "3. Sampling in the latent", "4. What it costs: latent against pixel diffusion", "5. Train it yourself"]
    assert at.title[0].value == "Latent diffusion" and len(at.latex) == 4
    assert any(i.value.startswith("**Try this:**") for i in at.info) and not at.error and not at.warning
    assert [e.label for e in at.expander] == ["Show the code", "Show the code: the training job"]
    code = " ".join(c.value for c in at.code)
    assert "def encode" in code and "def decode" in code and "def train_ldm" in code and "def train_latent" in code
    for key in ("latent_round_trip", "latent_channels", "latent_plane", "latent_decoder_map", "latent_path_frames",
                "latent_grid", "latent_strip"):
        assert figure(at, key) is not None, key
    (missing,) = [i.value for i in at.info if i.value.startswith("No cost table")]
    assert "latent.json** is missing" in missing and ul.BENCH_COMMAND in missing
    assert at.button(key="latent.go").disabled is False
    assert any("No model trained yet" in c.value for c in at.caption)
    downloads = [el.proto.label for el in at.get("download_button")]
    assert downloads == ["Round trip (PNG)", "Digits (PNG)", "Steps (PNG)", "Steps (GIF)"]


def test_the_round_trip_is_the_autoencoders_and_the_latent_drawn_is_its_z():
    test = load_mnist("test")
    at = open_page({"start": "20"})
    x = test.images[20:30]
    ae = load_pretrained(ul.AE).model
    with torch.no_grad():
        z = ae.encode(x)
        recon = ae.decode(z)
    fig = figure(at, "latent_round_trip")
    got = tiles(fig, 10, 3, caption=True)
    assert np.array_equal(got[:10], plots.to_uint8(x.numpy()))
    assert np.abs(got[10:20].astype(int) - plots.to_uint8(recon.numpy())).max() <= 1
    caps = captions(fig)
    assert caps[:10] == [f"a {int(d)}" for d in test.labels[20:30]]
    assert sum(c.endswith("✓") for c in caps[10:20]) >= 9  # the classifier reads the reconstructions (98% on all)
    assert all(c.startswith("MSE ") for c in caps[20:])
    mse = float((recon - x).pow(2).mean())
    recorded = checkpoints.read_manifest()["models"][ul.AE]["metrics"]  # python -m core evaluate ... on all 1,000
    assert [m.value for m in at.metric[:4]] == [f"{mse:.4f}", f"{recorded['reconstruction_mse']:.4f}",
                                               f"{recorded['reconstruction_accuracy']:.1%}", "784 → 196"]
    heat = figure(at, "latent_channels")["data"][0]
    grid = np.asarray(heat["z"], dtype=float) if not isinstance(heat["z"], dict) else array(heat["z"])
    assert grid.shape == (4 * 8 - 1, 10 * 8 - 1) and heat["zmid"] == 0 and heat["zmin"] == -heat["zmax"]
    assert np.allclose(grid[:7, :7], z[0, 0].numpy(), atol=1e-5)  # digit 20, channel 1
    assert np.allclose(grid[3 * 8:3 * 8 + 7, 9 * 8:9 * 8 + 7], z[9, 3].numpy(), atol=1e-5)  # digit 29, channel 4
    assert np.isnan(grid[7]).all()  # the gaps between channels

    at.selectbox(key="latent.ae").set_value(ul.AE2D).run()  # two numbers: blurrier, no channel image
    ok(at)
    assert at.query_params["ae"] == ul.AE2D and at.query_params["start"] == "20"
    assert figure(at, "latent_channels") is None and at.metric[3].value == "784 → 2"
    two = tiles(figure(at, "latent_round_trip"), 10, 3, caption=True)
    assert np.array_equal(two[:10], got[:10]) and not np.array_equal(two[10:20], got[10:20])
    assert float(at.metric[1].value) > mse  # the 2-D latent loses more of every digit
    (numbers,) = [m.value for m in at.markdown if m.value.startswith("**The latent z of each digit** is two")]
    assert f"a {int(test.labels[20])}: (" in numbers


def test_the_plane_holds_every_held_out_digit_and_a_path_from_its_seed():
    at = open_page({"digit2d": "7", "w2d": "2", "seed2d": "5"})
    fig = figure(at, "latent_plane")
    digits = [t for t in fig["data"] if t.get("legendgroup") == "digits"]
    assert [t["name"] for t in digits] == [str(d) for d in range(10)]
    points = np.concatenate([np.stack([array(t["x"]), array(t["y"])], 1) for t in digits])
    test = load_mnist("test")
    p = load_pretrained(ul.LDM2D)
    with torch.no_grad():
        z = p.autoencoder.encode(test.images)
    order = np.concatenate([np.flatnonzero(test.labels.numpy() == d) for d in range(10)])
    assert points.shape == (len(test), 2) and np.allclose(points, z.numpy()[order], atol=1e-5)
    (path,) = [t for t in fig["data"] if t["name"] == "the path of z_t"]
    xy = np.stack([array(path["x"]), array(path["y"])], 1)
    z_T = torch.randn(ul.N_CLOUD, 2, generator=torch.Generator().manual_seed(5))
    traj = sample(p.model, p.schedule, z_T, method="ddim", steps=ul.PATH_STEPS, y=torch.full((ul.N_CLOUD,), 7),
                  guidance_scale=2.0, keep_trajectory=False)
    assert len(xy) == ul.PATH_STEPS + 1 and np.allclose(xy[0], z_T[0]) and np.allclose(xy[-1], traj.x0[0], atol=1e-4)
    (ends,) = [t for t in fig["data"] if t["name"].startswith("z₀ of")]
    assert len(array(ends["x"])) == ul.N_CLOUD
    frames = figure(at, "latent_path_frames")
    assert [a["text"] for a in frames["layout"]["annotations"]][-1] == f"{ul.PATH_FRAMES}: z₀"
    assert any("the classifier reads" in c.value for c in at.caption)
    at.selectbox(key="latent.digit2d").set_value("0").run()
    (moved,) = [t for t in figure(ok(at), "latent_plane")["data"] if t["name"] == "the path of z_t"]
    assert np.allclose(array(moved["x"])[0], xy[0, 0]) and not np.allclose(array(moved["x"])[-1], xy[-1, 0])


def test_the_grid_is_ldm_mnists_samples_and_the_controls_change_it_and_live_in_the_url():
    at = open_page({"digit": "3", "w": "2", "seed": "7"})
    p = load_pretrained(ul.LDM)
    z_T = torch.randn(ul.N_GRID, 4, 7, 7, generator=torch.Generator().manual_seed(7))
    traj = sample(p.model, p.schedule, z_T, method="ddim", steps=4, y=torch.full((ul.N_GRID,), 3), guidance_scale=2.0,
                  generator=torch.Generator().manual_seed(8), keep_trajectory=False)
    with torch.no_grad():
        expected = plots.to_uint8(p.autoencoder.decode(traj.x0).numpy())
    grid = figure(at, "latent_grid")
    got = tiles(grid, ul.COLS, ul.N_GRID // ul.COLS, caption=True)
    assert np.abs(got.astype(int) - expected).max() <= 1
    assert all(c.endswith(("✓", "✗")) and c[0].isdigit() for c in captions(grid))
    strip = figure(at, "latent_strip")
    titles = [a["text"] for a in strip["layout"]["annotations"] if a.get("yref") == "paper"]
    assert titles[0] == f"t = {traj.state_timesteps()[0]:.0f}" and titles[-1] == "t = 0: the sample"
    assert len(titles) == 5  # 4 steps: 5 states
    states = tiles(strip, 5, 2, caption=False)
    assert np.abs(states[4].astype(int) - expected[0]).max() <= 1  # the last state is the first digit of the grid
    assert np.array_equal(states[4], states[9])  # the sample is its own prediction
    assert at.metric[4].label == "NFE" and at.metric[4].value == "4"

    at.slider(key="latent.w").set_value(0.0).run()
    assert not np.array_equal(tiles(figure(ok(at), "latent_grid"), ul.COLS, 2, True), got)
    at.selectbox(key="latent.method").set_value("dpm_solver_2m").run()
    ok(at)
    assert at.slider(key="latent.steps_dpm_solver_2m").value == ul.STEP_RANGES["dpm_solver_2m"].default
    at.selectbox(key="latent.digit").set_value("any").run()
    ok(at)
    assert at.slider(key="latent.w").disabled and at.metric[-1].label == "Digits present"
    assert at.query_params == {**CHEAP, "digit": "any", "w": "0", "seed": "7", "method": "dpm_solver_2m"}


def test_the_url_sets_the_controls_and_nonsense_in_it_falls_back():
    at = open_page({"ae": ul.AE2D, "start": "990", "digit2d": "4", "w2d": "1.5", "digit": "8", "w": "5",
                    "method": "ode_heun", "steps_ode_heun": "3", "seed": "12", "ae_steps": "300", "latent_steps": "500",
                    "train_seed": "9"})
    assert at.selectbox(key="latent.ae").value == ul.AE2D and at.number_input(key="latent.start").value == 990
    assert at.selectbox(key="latent.digit2d").value == "4" and at.slider(key="latent.w2d").value == 1.5
    assert (at.selectbox(key="latent.digit").value, at.slider(key="latent.w").value) == ("8", 5.0)
    assert at.selectbox(key="latent.method").value == "ode_heun" and at.slider(key="latent.steps_ode_heun").value == 3
    assert (at.slider(key="latent.ae_steps").value, at.slider(key="latent.latent_steps").value) == (300, 500)
    at = open_page({"ae": "vae-mnist", "start": "5000", "digit": "11", "w": "nan", "method": "euler",
                    "seed": "-1", "ae_steps": "1e9", "model": "session:nope"})
    assert at.selectbox(key="latent.ae").value == ul.AE and at.number_input(key="latent.start").value == 0
    assert at.selectbox(key="latent.digit").value == "each" and at.slider(key="latent.w").value == 3.0
    assert at.selectbox(key="latent.method").value == "ddim" and at.selectbox(key="latent.model").value == ul.LDM
    assert at.slider(key="latent.ae_steps").value == job_recipe.AUTOENCODER_STEPS


# --- the cost table ----------------------------------------------------------------------------------------------


def cost_rows(at: AppTest):
    (table,) = [d.value for d in at.dataframe]
    return table


def check_table(at: AppTest, raw: dict) -> None:
    """The page's table and sentence say what the benchmark's file says."""
    table = cost_rows(at)
    by_model = {r["model"]: r for r in raw["rows"]}
    names = ["ddpm-mnist", "ldm-mnist", *(m for m in by_model if m not in ("ddpm-mnist", "ldm-mnist"))]
    assert list(table["model"]) == [ul.MODEL_LABELS.get(m, m) for m in names]
    for (_, row), name in zip(table.iterrows(), names, strict=True):
        r = by_model[name]
        assert row["parameters"] == r["parameters"] and row["denoiser_parameters"] == r["denoiser_parameters"]
        for k in ("train_seconds", "seconds_per_100", "accuracy", "fid_mnist"):
            assert row[k] == pytest.approx(r[k]), k
        assert row["train_hardware"] == ul.short_hardware(r["train_hardware"])
    sentence = [m.value for m in at.markdown if m.value.startswith("Measured in one run")]
    assert sentence and f"a ratio of **{raw['seconds_ratio']:.2f}**" in sentence[0]
    assert f"**{by_model['ldm-mnist']['seconds_per_100']:.2f} s** in the latent" in sentence[0]
    floor = [m for m in at.metric if m.label == "FID-MNIST, real vs real"]
    assert floor and floor[0].value == f"{raw['fid_mnist_data_vs_data']:.2f}"


def test_the_cost_table_is_the_files_and_a_damaged_file_says_how_to_remake_it(bench):
    bench.write_text(json.dumps(BENCH))
    at = open_page()
    check_table(at, BENCH)
    assert "(3.7× faster)" in [m.value for m in at.markdown if m.value.startswith("Measured")][0]
    extra = {**BENCH["rows"][0], "model": "ldm2d-mnist", "parameters": 12345}  # a third model: a row of its own
    bench.write_text(json.dumps({**BENCH, "rows": [*BENCH["rows"], extra]}))
    ok(at.run())
    check_table(at, {**BENCH, "rows": [*BENCH["rows"], extra]})
    for i, damaged in enumerate(("[1, 2]", "{not json", json.dumps({**BENCH, "rows": BENCH["rows"][:1]}),
                                 json.dumps({**BENCH, "seconds_ratio": "fast"}))):
        path = bench.with_name(f"damaged{i}.json")
        path.write_text(damaged)
        ul.BENCH_JSON = path  # the autouse fixture restores it
        at.run()
        ok(at)
        (info,) = [i.value for i in at.info if i.value.startswith("No cost table")]
        assert path.name in info and ul.BENCH_COMMAND in info and not at.dataframe


def test_the_cost_table_matches_benchmarks_results_latent_json(monkeypatch):
    assert RESULTS.is_file(), f"{RESULTS} is missing: run `{ul.BENCH_COMMAND}`"
    monkeypatch.setattr(ul, "BENCH_JSON", RESULTS)
    check_table(open_page(), json.loads(RESULTS.read_text()))


# --- training through the job runner ------------------------------------------------------------------------------


@pytest.fixture
def no_job_left():
    """After a training test, whatever happened: no job of the AppTest session queued or running."""
    yield
    r = background.runner()
    for job in r.session_jobs(SESSION):
        r.stop(job.id)
    deadline = time.time() + 60
    while any(j.status in ACTIVE for j in r.session_jobs(SESSION)) and time.time() < deadline:
        time.sleep(0.1)
    for job in r.session_jobs(SESSION):
        r.forget(job.id)


def test_train_trains_both_stages_in_the_runner_and_the_weights_load(monkeypatch, no_job_left, tmp_path):
    asked = []

    def tiny_spec(ae_steps, latent_steps, seed, settings=None, _real=job_recipe.latent_spec):
        asked.append((ae_steps, latent_steps, seed))  # what the page asks for; then a job of 8 + 8 steps
        return _real(8, 8, seed, settings=settings, **TINY)

    monkeypatch.setattr(job_recipe, "latent_spec", tiny_spec)
    at = open_page({"ae_steps": "50", "latent_steps": "100", "train_seed": "3"})
    ok(at.button(key="latent.go").click().run())
    assert asked == [(50, 100, 3)]
    job_id = at.session_state[ul.JOB + ".job"]
    job = background.runner().view(job_id)
    assert job.kind == job_recipe.KIND and "steps" not in job.spec  # the runner estimates from expected_s
    assert job.expected_s == pytest.approx(ul.expected_seconds(50, 100))
    ok(at.run())
    assert at.button(key="latent.go").disabled or ul.RUN_KEY in at.session_state
    run_until(at, lambda at: ul.RUN_KEY in ok(at).session_state, timeout_s=180, every_s=0.5)
    run = at.session_state[ul.RUN_KEY]
    assert background.runner().view(job_id) is None  # collected, then forgotten
    assert not run.stopped and not run.diverged and run.settings == {"ae_steps": 50, "latent_steps": 100, "seed": 3}
    assert run.stages["autoencoder"]["steps"] == 8 and run.stages["latent"]["steps"] == 8
    assert len(run.stages["autoencoder"]["losses"]) == 8 and len(run.stages["latent"]["losses"]) == 8
    assert [s.step for s in run.snapshots if s.stage == "autoencoder"] == [2, 4, 6, 8]
    assert [s.step for s in run.snapshots if s.stage == "latent"] == [2, 4, 6, 8]
    assert all(s.images.shape == (10, 28, 28) and s.images.dtype == np.uint8 for s in run.snapshots)
    assert run.samples.shape == (10, 28, 28) and list(run.sample_labels) == list(range(10))
    assert run.model.autoencoder is run.autoencoder.model and run.model.config["autoencoder"]["name"] == \
        job_recipe.AUTOENCODER_NAME
    # the model samples like a shipped one: the job's own samples, from the same noise
    z = sample(run.model.model, run.model.schedule, job_recipe.final_noise(3, 10), method="ddim", steps=3,
               y=torch.arange(10), guidance_scale=3.0, keep_trajectory=False).x0
    with torch.no_grad():
        again = plots.to_uint8(run.model.autoencoder.decode(z).numpy())
    assert np.abs(again.astype(int) - run.samples).max() <= 1
    # the four downloads, side by side in a folder, load as a latent checkpoint with its autoencoder
    for part, stem in (("autoencoder", job_recipe.AUTOENCODER_NAME), ("latent", "session-ldm")):
        weights, config = run.files[part]
        (tmp_path / f"{stem}.safetensors").write_bytes(weights)
        (tmp_path / f"{stem}.json").write_bytes(config)
    loaded = load_checkpoint(tmp_path / "session-ldm")
    assert loaded.autoencoder is not None and tuple(loaded.autoencoder.latent_shape) == (4, 7, 7)
    # the page: the run beside the pretrained model, its snapshots, and the model joins section 3's list
    assert figure(at, "latent.yours") is not None and figure(at, "latent.theirs") is not None
    assert figure(at, "latent.snapshots.autoencoder") is not None and figure(at, "latent.snapshots.latent") is not None
    assert at.selectbox(key="latent.model").options == ["pretrained: ldm-mnist", f"yours: {run.label}"]
    at.selectbox(key="latent.model").select_index(1).run()
    assert ok(at).query_params["model"] == run.token and figure(at, "latent_grid") is not None
    labels = [el.proto.label for el in at.get("download_button")]
    assert {"Autoencoder weights", "Autoencoder config", "Latent weights", "Latent config"} <= set(labels)


def test_stop_during_the_autoencoder_keeps_it_and_skips_the_latent_model(no_job_left):
    r = background.runner()
    spec = job_recipe.latent_spec(100_000, 100, **TINY)
    job_id = r.submit("latent stop test", job_recipe.KIND, spec, label="stop", expected_s=5)
    deadline = time.time() + 120
    while (v := r.view(job_id)).status != RUNNING or v.progress.get("step", 0) < 5:
        assert time.time() < deadline and v.status in ACTIVE
        time.sleep(0.1)
    assert v.progress["stage"] == "autoencoder" and v.progress["phase"] == "Autoencoder (1 of 2)"
    r.stop(job_id)
    while (v := r.view(job_id)).status in ACTIVE:
        assert time.time() < deadline
        time.sleep(0.1)
    r.forget(job_id)
    assert v.status == DONE and v.result["stopped"] == "stop" and "latent" not in v.result
    assert "steps_done" not in v.result and "train_seconds" not in v.result  # the runner's 2D speed stays clean
    assert 5 <= v.result["stages"]["autoencoder"]["steps"] < 100_000 and v.result["stages"]["latent"] is None
    made = ul.run_from_job(v, judged=False)
    assert made.model is None and made.autoencoder is not None and list(made.files) == ["autoencoder"]
    assert made.snapshots[-1].stage == "autoencoder"  # what it had learned when it stopped


# --- missing models ----------------------------------------------------------------------------------------------


def test_missing_or_damaged_models_leave_the_rest(monkeypatch, bench, tmp_path):
    bench.write_text(json.dumps(BENCH))
    some = tmp_path / "some"  # the latent model without its autoencoder, the 2-D pair missing
    some.mkdir()
    for name in (ul.LDM, digits.CLASSIFIER):
        for ext in (".json", ".safetensors"):
            shutil.copy(SHIPPED / f"{name}{ext}", some / f"{name}{ext}")
    shutil.copy(SHIPPED / "manifest.json", some / "manifest.json")
    at = open_page(before=lambda: monkeypatch.setattr(checkpoints, "PRETRAINED_DIR", some))
    errors = [e.value for e in at.error]
    assert len(errors) == 3 and ul.AE in errors[0] and ul.AE2D in errors[1] and ul.LDM in errors[2]
    assert "names its autoencoder 'autoencoder-mnist'" in errors[2]
    assert figure(at, "latent_round_trip") is None and figure(at, "latent_grid") is None
    assert len(at.dataframe) == 1 and at.button(key="latent.go").disabled is False  # the table and training stay
    damaged = tmp_path / "damaged"  # every model there, the classifier's weights cut short
    shutil.copytree(SHIPPED, damaged)
    raw = (damaged / f"{digits.CLASSIFIER}.safetensors").read_bytes()
    (damaged / f"{digits.CLASSIFIER}.safetensors").write_bytes(raw[:1000])
    at = open_page(before=lambda: monkeypatch.setattr(checkpoints, "PRETRAINED_DIR", damaged))
    assert len(at.error) == 1 and digits.CLASSIFIER in at.error[0].value
    assert figure(at, "latent_grid") is not None and not captions(figure(at, "latent_grid"))
    assert captions(figure(at, "latent_round_trip"))[10:20] == [""] * 10  # no readings of the reconstructions
    assert ul.evaluation({}, ul.AE) is None and ul.evaluation({ul.AE: {"metrics": {"n": "many"}}}, ul.AE) is None

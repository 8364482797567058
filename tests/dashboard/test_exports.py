"""The take-it-with-you exports: dashboard/ui/exports.py on its own (CSV back through load_points, PNG and GIF back
through Pillow, safe file names), and every page's download buttons under AppTest, pressed by calling the callable
each one hands to Streamlit. Run: python -m pytest tests/dashboard/test_exports.py -q"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from core.data.toy2d import load_points
from dashboard.ui import exports, sampling
from dashboard.ui import guidance as gd
from dashboard.ui import improved_ddpm as iddpm
from dashboard.ui.loaders import toy_points
from tests.dashboard.apptest_helpers import app_on, ok

SAFE = re.compile(r"^[A-Za-z0-9_.-]+\.(csv|png|gif)$")
SCALE = exports.DIGIT_SCALE


# --- exports.py ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_points_csv_round_trips_through_load_points(dtype):
    x = (np.random.default_rng(0).normal(size=(500, 2)) * [3.0, 0.01] + [0.5, -2.0]).astype(dtype)
    data = exports.points_csv(x, {"sampler": "ddim", "steps": 50, "w": 3.5})
    text = data.decode()
    assert text.startswith("# Diffusion Lab\n# sampler: ddim\n# steps: 50\n# w: 3.5\nx,y\n")
    back = load_points(data)
    assert back.shape == (500, 2)
    np.testing.assert_allclose(back, x.astype(np.float64), rtol=0, atol=1e-6)
    far = x * 1e3 + 1e5  # any magnitude: float32 back exactly (9 significant digits), float64 to its last digit
    back = load_points(exports.points_csv(far))
    assert (back.astype(dtype) == far).all()


def test_points_csv_leaves_out_what_load_points_rejects():
    x = np.random.default_rng(1).normal(size=(50, 2)).astype(np.float32)
    x[3, 0], x[7, 1], x[9] = np.nan, np.inf, 1e12  # a diverged sampler
    data = exports.points_csv(x)
    assert "# left out: 3 non-finite or diverged point(s)" in data.decode()
    np.testing.assert_allclose(load_points(data), np.delete(x, [3, 7, 9], axis=0), atol=1e-6)
    two_lines = exports.points_csv(x, {"label": "my model\nx,y\n1,2"})  # a line break cannot end the comment
    assert load_points(two_lines).shape == (47, 2)
    with pytest.raises(ValueError, match="shape"):
        exports.points_csv(np.zeros((5, 3)))


@pytest.mark.parametrize("n, columns, scale", [(20, 10, 2), (23, 10, 1), (6, 4, 3)])
def test_digits_png_decodes_to_the_grid_size_with_its_settings(n, columns, scale):
    images = np.random.default_rng(2).uniform(-1, 1, size=(n, 1, 28, 28)).astype(np.float32)
    data = exports.digits_png(images, columns, scale, {"model": "ddpm-mnist", "w": 3.0, "seed": 0, "x": None})
    im = Image.open(io.BytesIO(data))
    rows = -(-n // columns)
    assert im.format == "PNG" and im.mode == "L"
    assert (im.height, im.width) == (rows * 28 * scale, columns * 28 * scale)
    assert im.info["model"] == "ddpm-mnist" and im.info["w"] == "3" and im.info["seed"] == "0"
    assert "x" not in im.info and im.info["Software"] == exports.SOFTWARE
    pixels = np.asarray(im)
    first = np.round((images[0, 0] + 1) * 127.5).astype(np.uint8)  # the first tile, scaled up
    assert (pixels[:28 * scale:scale, :28 * scale:scale] == first).all()


def test_digits_image_value_ranges():
    ones = np.ones((2, 28, 28))
    assert np.asarray(exports.digits_image(ones, 2, 1, value_range=(0.0, 1.0))).min() == 255
    assert np.asarray(exports.digits_image(ones * 0, 2, 1)).min() == 128  # 0 in [-1, 1] is mid grey
    u8 = np.full((3, 28, 28), 7, np.uint8)
    assert np.asarray(exports.digits_image(u8, 3, 1)).max() == 7  # uint8 as it is
    with pytest.raises(ValueError, match="shape"):
        exports.digits_image(np.zeros((2, 3, 28, 28)))
    with pytest.raises(ValueError, match="columns"):
        exports.digits_image(ones, 0)


def test_animation_gif_of_point_clouds_has_every_frame_and_its_settings():
    rng = np.random.default_rng(3)
    clouds = [rng.normal(size=(300, 2)) for _ in range(7)]
    data = exports.animation_gif(clouds, 150, {"toy": "eight_gaussians", "T": 1000})
    im = Image.open(io.BytesIO(data))
    assert im.format == "GIF" and im.n_frames == 7
    assert im.size == (exports.PANEL_PX, exports.PANEL_PX + exports.LABEL_PX)
    assert im.info["comment"].decode() == "Diffusion Lab; toy: eight_gaussians; T: 1000"
    assert im.info["loop"] == 0


def test_animation_gif_keeps_equal_frames_and_exact_colours():
    frame = exports.scatter_frame(np.random.default_rng(4).normal(size=(200, 2)), overlay=np.zeros((5, 2)))
    data = exports.animation_gif([frame] * 5, 100)  # the caption ("frame k / n") keeps them apart
    im = Image.open(io.BytesIO(data))
    assert im.n_frames == 5
    im.seek(2)
    expected = exports.titled(frame, "frame 3 / 5")
    assert (np.asarray(im.convert("RGB")) == np.asarray(expected)).all()  # a shared exact palette, no dithering


def test_animation_gif_of_digit_strips_and_of_many_colours():
    strips = [exports.digits_image(np.random.default_rng(k).integers(0, 256, (4, 28, 28), dtype=np.uint8), 4, 2)
              for k in range(6)]
    im = Image.open(io.BytesIO(exports.animation_gif(strips, 200, labels=[f"t = {k}" for k in range(6)])))
    assert im.n_frames == 6 and im.size == (4 * 28 * 2, 28 * 2 + exports.LABEL_PX)
    colourful = [np.random.default_rng(k).integers(0, 256, (40, 50, 3), dtype=np.uint8) for k in range(3)]
    im = Image.open(io.BytesIO(exports.animation_gif(colourful)))  # > 256 colours: one adaptive palette
    assert im.n_frames == 3 and im.size == (50, 40 + exports.LABEL_PX)
    with pytest.raises(ValueError, match="labels"):
        exports.animation_gif(strips, labels=["one"])
    with pytest.raises(ValueError, match="frame"):
        exports.animation_gif([np.zeros((4, 4, 4))])


def test_scatter_frame_draws_on_fixed_axes():
    im = np.asarray(exports.scatter_frame(np.array([[0.0, 0.0], [np.nan, 1.0], [99.0, 0.0]]), lim=4.0, size=101,
                                          color="#ff0000"))
    assert tuple(im[50, 50]) == (255, 0, 0)  # the origin is the centre pixel
    red = (im == (255, 0, 0)).all(axis=2)
    assert red.sum() <= 13  # one disk of radius 1.5; the NaN row and the point far off the square are not drawn
    im = np.asarray(exports.scatter_frame(np.array([[3.0, 3.0]]), lim=4.0, size=101, color="#ff0000"))
    assert tuple(im[12, 88]) == (255, 0, 0)  # y up: (3, 3) is near the top right


def test_file_names_are_safe_and_carry_the_settings():
    name = exports.file_name("samplers", "ddim", {"steps": 50, "toy": "eight_gaussians", "seed": 0}, "csv")
    assert name == "samplers_ddim_steps50_eight_gaussians_seed0.csv"
    odd = {"model": "exact:eight_gaussians|ddpm-x", "label": "#1 my model / 5 s", "w": 3.5, "exact": True,
           "skip": False, "none": None, "unicode": "ᾱ_t √"}
    name = exports.file_name("a page", "x/../y", odd, "png")
    assert SAFE.match(name), name
    assert "w3.5" in name and "_exact_" in name and "skip" not in name and "none" not in name
    assert len(exports.file_name("p", "k", {"s": "x" * 500}, "gif")) <= exports.MAX_NAME + 4
    with pytest.raises(ValueError, match="extension"):
        exports.file_name("p", "k", {}, "exe")


# --- the pages' buttons under AppTest ---------------------------------------------------------------------------


@pytest.fixture
def downloads(monkeypatch):
    """file name -> (callable, mime) of every deferred download the last page run registered. AppTest's buttons do
    not say their file name, nor can a test press one; the media file manager hears both, so listen there."""
    made: dict[str, tuple] = {}
    register = MediaFileManager.add_deferred

    def record(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        made[file_name] = (data_callable, mimetype)
        return register(self, data_callable, mimetype, coordinates, file_name=file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", record)
    return made


def run(at: AppTest, made: dict) -> dict[str, tuple]:
    made.clear()
    ok(at.run())
    return dict(made)


def open_page(page: str, made: dict, query: dict[str, str] | None = None) -> tuple[AppTest, dict[str, tuple]]:
    at = app_on(f"views/{page}.py", 300)
    at.query_params.update(query or {})
    files = run(at, made)
    buttons = at.get("download_button")
    assert len(buttons) == len(files) and all(b.proto.deferred_file_id for b in buttons)  # bytes made on click only
    assert all(SAFE.match(name) and name.startswith(f"{page}_") for name in files), list(files)
    return at, files


def press(files: dict[str, tuple], name: str) -> bytes:
    fn, mime = files[name]
    assert mime == exports.MIMES[name.rsplit(".", 1)[1]]
    return fn()


def one(files: dict[str, tuple], prefix: str) -> str:
    (name,) = [f for f in files if f.startswith(prefix)]
    return name


def gif(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    assert im.format == "GIF"
    return im


def png(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    assert im.format == "PNG"
    return im


def test_home_offers_the_forward_and_reverse_gif(downloads):
    _, files = open_page("home", downloads)
    (name,) = files
    assert name == "home_forward-reverse_eight_gaussians_cosine_T1000_n800_ddpm-100_exact_seed0.gif"
    im = gif(press(files, name))
    assert im.n_frames == 10 and im.size == (exports.PANEL_PX, exports.PANEL_PX + exports.LABEL_PX)


def test_forward_offers_the_points_at_t_and_the_animation(downloads):
    at, files = open_page("forward", downloads, {"n": "300"})
    assert [b.label for b in at.get("download_button")] == ["x_t at t = 500 (CSV)", "Animation (GIF)"]
    name = one(files, "forward_points_")
    assert name == "forward_points_eight_gaussians_linear_T1000_n300_seed0_t500.csv"
    assert load_points(press(files, name)).shape == (300, 2)
    im = gif(press(files, one(files, "forward_animation_")))
    assert im.n_frames == 25 and im.size == (exports.PANEL_PX, exports.PANEL_PX + exports.LABEL_PX)
    at.select_slider(key="forward.export_t.1000").set_value(0)
    files = run(at, downloads)
    points = load_points(press(files, "forward_points_eight_gaussians_linear_T1000_n300_seed0_t0.csv"))
    np.testing.assert_allclose(points, toy_points("eight_gaussians", 300, 0), atol=1e-6)  # x_0 is the data


def test_reverse_offers_the_samples_and_the_animation(downloads):
    _, files = open_page("reverse", downloads, {"n": "300"})
    stem = "ddpm-eight_gaussians_ddpm_steps100_leading_beta_tilde_n300_seed0"
    assert set(files) == {f"reverse_samples_{stem}.csv", f"reverse_animation_{stem}.gif"}
    r = sampling.run_sampler("ddpm-eight_gaussians", False, "ddpm", 100, 300, 0,
                             sampling.method_options("ddpm"))
    np.testing.assert_allclose(load_points(press(files, f"reverse_samples_{stem}.csv")), r["x0"], atol=1e-6)
    im = gif(press(files, f"reverse_animation_{stem}.gif"))
    assert im.n_frames == len(r["frame_idx"])
    assert im.size == (2 * exports.PANEL_PX + 8, exports.PANEL_PX + 2 * exports.LABEL_PX)
    assert b"sampler: ddpm" in im.info["comment"]


def test_samplers_offer_each_samplers_points(downloads):
    # not the default model: the page would measure the flow-matching lines of its chart first (a minute, cold)
    at, files = open_page("samplers", downloads, {"model": "ddpm-twenty_five_gaussians", "n": "200", "exact": "1"})
    assert len(files) == len(sampling.METHODS)
    for m in sampling.METHODS:
        name = one(files, f"samplers_{m}_exact-twenty_five_gaussians_")
        assert name.endswith("_n200_seed0_nfe20.csv") or name.endswith("_n200_seed0_nfe19.csv"), name
        assert load_points(press(files, name)).shape == (200, 2)
    at.slider(key="samplers.t").set_value(500)
    files = run(at, downloads)
    assert all(re.search(r"_t\d+\.csv$", f) for f in files)  # the state shown at step t, not the samples
    assert all(b.label.startswith("x_t at t = ") for b in at.get("download_button"))


def test_score_field_offers_the_langevin_particles(downloads):
    _, files = open_page("score_field", downloads, {"ln": "100", "lsteps": "10"})
    assert set(files) == {f"score_field_langevin-{k}_ddpm-eight_gaussians_t100_n100_steps10_eta0.5_seed0.csv"
                          for k in ("learned", "exact")}
    assert all(load_points(press(files, f)).shape == (100, 2) for f in files)


def test_flow_offers_each_odes_samples(downloads):
    _, files = open_page("flow", downloads, {"toy": "two_moons"})  # not the default: no quality chart to measure
    assert set(files) == {"flow_fm_fm-two_moons_euler_steps3_n1000_seed0.csv",
                          "flow_reflow_fm-reflow-two_moons_euler_steps3_n1000_seed0.csv",
                          "flow_ddim_ddpm-two_moons_ddim_steps3_n1000_seed0.csv"}
    assert all(load_points(press(files, f)).shape == (1000, 2) for f in files)


def test_improved_ddpm_offers_every_panel(downloads):
    _, files = open_page("improved_ddpm", downloads)
    expected = {f"improved_ddpm_{v}_iddpm-eight_gaussians_ddpm_steps{k}_n{iddpm.LIVE_N}_seed0.csv"
                for v in ("beta_tilde", "learned") for k in iddpm.STEPS}
    assert set(files) == expected
    name = sorted(expected)[0]
    assert load_points(press(files, name)).shape == (iddpm.LIVE_N, 2)
    assert "# variance: beta_tilde" in press(files, name).decode()


def test_guidance_offers_the_four_panels(downloads):
    _, files = open_page("guidance", downloads)
    assert set(files) == {f"guidance_{m}_ddpm-cond-eight_gaussians_y0_w{1 if m == 'conditional' else 3}_ddim-"
                          f"{gd.STEPS}_n{gd.N_PANEL}_seed0.csv" for m in gd.METHODS}
    for f in files:
        assert load_points(press(files, f)).shape == (gd.N_PANEL, 2)


def test_mnist_offers_the_grids_as_png_and_the_denoising_as_gif(downloads):
    _, files = open_page("mnist", downloads, {"n": "10", "steps_ddim": "4"})
    grid = png(press(files, "mnist_digits_ddpm-mnist_each_w3_ddim_steps4_n10_seed0.png"))
    assert grid.size == (10 * 28 * SCALE, 1 * 28 * SCALE) and grid.info["sampler"] == "ddim" and grid.info["w"] == "3"
    anim = gif(press(files, "mnist_denoising_ddpm-mnist_each_w3_ddim_steps4_n10_seed0.gif"))
    assert anim.n_frames == 5 and anim.size == (2 * 4 * 28 * 4 + 16, 28 * 4 + 2 * exports.LABEL_PX)
    sweep = png(press(files, "mnist_sweep_ddpm-mnist_digit0_ddim_steps10_seed0.png"))
    assert sweep.size == (6 * 28 * SCALE, 4 * 28 * SCALE) and sweep.info["w"] == "0,1,2,3,5,8"
    forward = png(press(files, one(files, "mnist_forward_digit")))
    assert forward.size == (9 * 28 * SCALE, 4 * 28 * SCALE)
    assert forward.info["schedules"] == "linear,cosine,sigmoid,quadratic" and forward.info["t"].startswith("0,50,")


def test_baselines_offer_2d_samples_and_digit_grids(downloads):
    _, files = open_page("baselines", downloads, {"n": "500"})
    assert "baselines_data_eight_gaussians_n500_seed1.csv" in files
    assert "baselines_samples_ddpm-eight_gaussians_ddim-50_n500_seed0.csv" in files
    assert any(f.startswith("baselines_samples_gan-") and "_one-pass_" in f for f in files)
    assert all(load_points(press(files, f)).shape == (500, 2) for f in files)
    _, files = open_page("baselines", downloads, {"data": "mnist", "steps": "5"})
    assert {"baselines_digits_mnist-test_n20.png", "baselines_digits_ddpm-mnist_ddim-5_n20_seed0.png"} <= set(files)
    assert all(png(press(files, f)).size == (10 * 28 * SCALE, 2 * 28 * SCALE) for f in files)

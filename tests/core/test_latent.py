"""Latent diffusion (Rombach et al. 2022): the autoencoder's shapes and scale factor, a latent checkpoint that loads
with its autoencoder and refuses a missing or mismatched one, latent sampling through sample() for every method,
decoding in sample_images, and the CLI's autoencoder and ldm families."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from core.__main__ import main
from core.checkpoints import CheckpointError, load_checkpoint, load_pretrained, save_checkpoint
from core.data.mnist import load_mnist
from core.evaluate import sample_images
from core.models.autoencoder import Autoencoder, AutoencoderConfig, autoencoder_loss, kl_to_standard_normal
from core.samplers import METHODS, sample
from core.schedules import make_schedule
from core.train_latent import LATENT_UNET, latent_moments, train_autoencoder, train_ldm
from core.training import TrainConfig

TINY_AE = AutoencoderConfig(width=16, groups=4)
TINY_UNET = dataclasses.replace(LATENT_UNET, base_channels=8, attention_heads=2, groups=4)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    data = load_mnist("train")
    return dataclasses.replace(data, images=data.images[:256], labels=data.labels[:256])


@pytest.fixture(scope="module")
def latent_pair(tmp_path_factory, digits):
    """A tiny autoencoder and a tiny latent model trained on it for a few steps, saved side by side."""
    folder = tmp_path_factory.mktemp("ldm")
    ae_result, ae_config = train_autoencoder(digits, TrainConfig(steps=4, batch_size=32), TINY_AE)
    save_checkpoint(folder / "autoencoder-tiny", ae_result.ema_model, ae_config)
    schedule = make_schedule("cosine", T=50)
    result, config = train_ldm(digits, ae_result.ema_model, "autoencoder-tiny", schedule,
                               TrainConfig(steps=4, batch_size=32), unet=TINY_UNET)
    save_checkpoint(folder / "ldm-tiny", result.ema_model, config)
    return folder, ae_result.ema_model, result.ema_model, config


def test_encode_decode_shapes_for_both_latents():
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    for config, shape in ((TINY_AE, (4, 7, 7)), (dataclasses.replace(TINY_AE, latent_dim=2), (2,))):
        ae = Autoencoder(config).eval()
        z = ae.encode(x)
        assert tuple(z.shape) == (3, *shape) and ae.latent_shape == shape
        out = ae.decode(z)
        assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1
    with pytest.raises(ValueError, match=r"decodes latents of shape \(N, 4, 7, 7\)"):
        Autoencoder(TINY_AE).decode(torch.zeros(3, 1, 28, 28))
    with pytest.raises(ValueError, match=r"encodes images of shape \(N, 1, 28, 28\)"):
        Autoencoder(TINY_AE).encode(torch.zeros(3, 4, 7, 7))


def test_encode_is_the_scaled_posterior_mean_and_decode_undoes_the_scale():
    torch.manual_seed(0)
    ae = Autoencoder(dataclasses.replace(TINY_AE, scale_factor=2.5)).eval()
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    mu, _ = ae.posterior(x)
    assert torch.allclose(ae.encode(x), 2.5 * mu)
    assert torch.allclose(ae.decode(2.5 * mu), ae.decode_unscaled(mu).clamp(-1, 1), atol=1e-6)


def test_the_kl_term_is_the_closed_form_and_the_loss_adds_it_with_its_weight():
    mu, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.2, -0.3]])
    p = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    q = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
    assert torch.allclose(kl_to_standard_normal(mu, logvar), torch.distributions.kl_divergence(p, q).sum(1))
    ae, x = Autoencoder(TINY_AE), torch.rand(2, 1, 28, 28) * 2 - 1
    loss, recon, kl = autoencoder_loss(ae, x, 0.25, torch.Generator().manual_seed(0))
    assert torch.allclose(loss, recon + 0.25 * kl)


def test_the_scale_factor_gives_the_training_latents_unit_variance(digits, latent_pair):
    _, ae, _, _ = latent_pair
    mu, sigma = latent_moments(ae, digits.images)
    z = ae.config.scale_factor * (mu + sigma * torch.randn(mu.shape, generator=torch.Generator().manual_seed(1)))
    assert abs(float(z.std()) - 1.0) < 0.02  # a fresh draw of z ~ q(z | x): 1 up to Monte-Carlo error


def test_a_latent_checkpoint_round_trips_with_its_autoencoder(latent_pair):
    folder, ae, model, config = latent_pair
    p = load_checkpoint(folder / "ldm-tiny")
    assert p.config["latent_shape"] == [4, 7, 7] and p.autoencoder is not None
    assert p.autoencoder.config.scale_factor == ae.config.scale_factor
    z, t = torch.randn(2, 4, 7, 7), torch.tensor([3.0, 40.0])
    assert torch.equal(p.model(z, t), model(z, t))
    assert torch.equal(p.autoencoder.decode(z), ae.decode(z))
    x = sample_images(p, 3, label=torch.tensor([1, 2, 3]), guidance_scale=2.0, steps=4)
    assert x.shape == (3, 1, 28, 28) and x.min() >= -1 and x.max() <= 1


def _copy_with(folder, tmp_path, ldm_edit=None, ae_edit=None, drop_ae=False):
    """The tiny pair copied to tmp_path, with the configs edited."""
    for stem in ("autoencoder-tiny", "ldm-tiny"):
        if drop_ae and stem.startswith("autoencoder"):
            continue
        for suffix in (".safetensors", ".json"):
            (tmp_path / f"{stem}{suffix}").write_bytes((folder / f"{stem}{suffix}").read_bytes())
    for stem, edit in (("ldm-tiny", ldm_edit), ("autoencoder-tiny", ae_edit)):
        if edit:
            path = tmp_path / f"{stem}.json"
            config = json.loads(path.read_text())
            edit(config)
            path.write_text(json.dumps(config))
    return tmp_path / "ldm-tiny"


def test_a_missing_or_mismatched_autoencoder_is_a_clear_checkpoint_error(latent_pair, tmp_path):
    folder = latent_pair[0]
    cases = [
        ({"drop_ae": True}, r"names its autoencoder 'autoencoder-tiny', which cannot be loaded: .*not found"),
        ({"ae_edit": lambda c: c["model"].update(scale_factor=c["model"]["scale_factor"] * 2)},
         r"trained on latents scaled by .* but its autoencoder 'autoencoder-tiny' scales by"),
        ({"ae_edit": lambda c: c["model"].update(latent_channels=3)}, r"does not match its config"),
        ({"ldm_edit": lambda c: c.update(latent_shape=[4, 8, 8])}, r"latent_shape \[4, 8, 8\] is not the shape"),
        ({"ldm_edit": lambda c: c["autoencoder"].update(name="../autoencoder-tiny")}, r"autoencoder.name must be"),
        ({"ldm_edit": lambda c: c.update(autoencoder="autoencoder-tiny")}, r"autoencoder must be an object"),
    ]
    for i, (edits, message) in enumerate(cases):
        case = tmp_path / str(i)
        case.mkdir()
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(_copy_with(folder, case, **edits))


def test_an_autoencoder_of_another_latent_shape_is_refused(latent_pair, tmp_path, digits):
    folder = latent_pair[0]
    ae2d, config2d = train_autoencoder(digits, TrainConfig(steps=1, batch_size=8),
                                       dataclasses.replace(TINY_AE, latent_dim=2))
    save_checkpoint(tmp_path / "autoencoder-tiny", ae2d.ema_model, config2d)
    for suffix in (".safetensors", ".json"):
        (tmp_path / f"ldm-tiny{suffix}").write_bytes((folder / f"ldm-tiny{suffix}").read_bytes())
    with pytest.raises(CheckpointError, match=r"diffuses latents of shape \[4, 7, 7\], but its autoencoder "
                                              r"'autoencoder-tiny' makes latents of shape \[2\]"):
        load_checkpoint(tmp_path / "ldm-tiny")


@pytest.mark.parametrize("method", METHODS)
def test_every_sampler_runs_on_latents(latent_pair, method):
    _, _, model, _ = latent_pair
    s = make_schedule("cosine", T=50)
    z_T = torch.randn(2, 4, 7, 7, generator=torch.Generator().manual_seed(0))
    traj = sample(model, s, z_T, method=method, steps=5, y=torch.tensor([3, 7]), guidance_scale=2.0,
                  generator=torch.Generator().manual_seed(1))
    assert traj.xs.shape[1:] == (2, 4, 7, 7) and torch.isfinite(traj.xs).all()


def test_an_image_shaped_x_T_for_a_latent_model_says_so_and_the_reverse():
    s = make_schedule("cosine", T=50)
    latent = load_pretrained("ldm-mnist")
    with pytest.raises(ValueError, match=r"shape \(N, 4, 7, 7\); got \(2, 1, 28, 28\); this is a latent diffusion"):
        sample(latent.model, s, torch.randn(2, 1, 28, 28), steps=2)
    pixel = load_pretrained("ddpm-mnist")
    with pytest.raises(ValueError, match=r"shape \(N, 1, 28, 28\); got \(2, 4, 7, 7\); this model denoises images"):
        sample(pixel.model, s, torch.randn(2, 4, 7, 7), steps=2)
    flat = load_pretrained("ldm2d-mnist")
    with pytest.raises(ValueError, match=r"shape \(N, 2\); got \(2, 1, 28, 28\); this is a latent diffusion"):
        sample(flat.model, s, torch.randn(2, 1, 28, 28), steps=2)


def test_cli_trains_an_autoencoder_then_a_latent_model_beside_it(tmp_path, capsys):
    ae, ldm = tmp_path / "ae", tmp_path / "ldm"
    assert main(["train", "--family", "autoencoder", "--data", "mnist", "--latent-dim", "2", "--steps", "2",
                 "--batch-size", "16", "--out", str(ae), "--state", str(tmp_path / "s1")]) == 0
    assert main(["train", "--family", "ldm", "--data", "mnist", "--autoencoder", str(ae), "--steps", "2",
                 "--batch-size", "16", "--out", str(ldm), "--state", str(tmp_path / "s2")]) == 0
    p = load_checkpoint(ldm)
    assert p.config["latent_shape"] == [2] and p.config["autoencoder"]["name"] == "ae"
    assert p.config["family"] == "ldm" and p.autoencoder.latent_shape == (2,)
    assert sample_images(p, 2, label=3, steps=3).shape == (2, 1, 28, 28)


@pytest.mark.parametrize(("argv", "message"), [
    (["--family", "ldm", "--data", "mnist"], "--family ldm needs --autoencoder"),
    (["--family", "ldm", "--data", "mnist", "--autoencoder", "ddpm-mnist"], "not an autoencoder"),
    (["--family", "autoencoder", "--data", "two_moons"], "trains on MNIST: --data mnist"),
    (["--family", "autoencoder", "--data", "mnist", "--schedule", "linear"], "--schedule does not apply"),
    (["--family", "ddpm", "--data", "mnist", "--autoencoder", "autoencoder-mnist"], "without --family ldm"),
    (["--family", "ldm", "--data", "mnist", "--autoencoder", "autoencoder-mnist", "--latent-dim", "2"],
     "the latent is its autoencoder's"),
])
def test_cli_refuses_what_does_not_apply(argv, message, tmp_path, capsys):
    assert main(["train", *argv, "--out", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err


def test_cli_writes_a_latent_model_beside_its_autoencoder_only(tmp_path, capsys):
    assert main(["train", "--family", "ldm", "--data", "mnist", "--autoencoder", "autoencoder-mnist",
                 "--out", str(tmp_path / "ldm")]) == 2
    assert "a latent model is found beside its autoencoder" in capsys.readouterr().err


def test_the_shipped_autoencoder_reconstructs_held_out_digits_the_classifier_can_read():
    """Issue 12: >= 97% of the 1,000 held-out digits' reconstructions read as their digit (recomputed here)."""
    from core.evaluate import classify

    ae, judge = load_pretrained("autoencoder-mnist").model, load_pretrained("classifier-mnist").model
    test = load_mnist("test")
    with torch.no_grad():
        recon = ae.decode(ae.encode(test.images))
    read, _ = classify(judge, recon)
    assert float((read == test.labels).float().mean()) >= 0.97
    assert float((recon - test.images).pow(2).mean()) < 0.02
    assert load_pretrained("autoencoder-mnist").meta["metrics"]["reconstruction_accuracy"] >= 0.97
    assert load_pretrained("autoencoder2d-mnist").meta["metrics"]["reconstruction_mse"] > 0  # reported for both


def test_the_shipped_latent_model_draws_the_asked_digits_with_guidance():
    from core.evaluate import classify

    p, judge = load_pretrained("ldm-mnist"), load_pretrained("classifier-mnist").model
    wanted = torch.arange(100) % 10
    x = sample_images(p, 100, label=wanted, guidance_scale=3.0, steps=25, seed=3)
    assert float((classify(judge, x)[0] == wanted).float().mean()) >= 0.9  # 1,000 at DDIM-50: the manifest's
    guided = {row["guidance_scale"]: row for row in p.meta["metrics"]["guided"]}
    assert guided[3.0]["accuracy"] >= 0.95 and p.meta["metrics"]["unconditional_classes_covered"] == 10

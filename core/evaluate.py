"""Sample-quality evaluation against real data, always beside the data-vs-data reference.

2D: the floor is the same metric between two independent data draws of the same size: a perfect model
scores about the floor, so ``ratio = metric(model, data) / floor`` is comparable across toys.
MNIST: the project's classifier judges samples (accuracy on the requested digit at several guidance
scales, the class histogram of unconditional samples) and its features give FID-MNIST, reported beside
the FID-MNIST of two disjoint real sets of the same size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from core.analytic import toy_mixture
from core.checkpoints import Pretrained
from core.data.toy2d import MIXTURE_TOYS, mixture_spec, sample_toy
from core.diffusion import elbo_per_dim
from core.flow import is_flow, nfe_for, sample_flow
from core.flow import steps_for_nfe as flow_steps_for_nfe
from core.guidance import classifier_guidance, classifier_log_prob
from core.metrics import (
    class_histogram,
    data_floor,
    energy_distance,
    frechet_distance,
    mmd_rbf,
    mode_coverage,
    sliced_wasserstein,
)
from core.samplers import sample, steps_for_nfe


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(parameters used to sample, parameters trained). GAN: the generator, of generator + discriminator; VAE:
    the decoder (with its learned output noise), of encoder + decoder; diffusion: the whole denoiser, both times."""
    total = sum(p.numel() for p in model.parameters())
    if hasattr(model, "discriminator"):
        return sum(p.numel() for p in model.generator.parameters()), total
    if hasattr(model, "encoder") and hasattr(model, "decoder"):
        used = sum(p.numel() for p in model.decoder.parameters())
        sigma = getattr(model, "log_sigma", None)
        return used + (sigma.numel() if isinstance(sigma, torch.nn.Parameter) else 0), total
    return total, total


def one_pass(p: Pretrained) -> str:
    """How a family without a schedule samples, for the "sampler" field of its metrics."""
    return "one decoder pass" if p.config.get("family") == "vae" else "one generator pass"


def sample_2d(p: Pretrained, n: int, seed: int = 0, method: str | None = None, steps: int | None = 50,
              **options: Any) -> torch.Tensor:
    """n samples from a 2D checkpoint: diffusion families via ``sample`` (method default "ddim"), flows via
    ``core.flow.sample_flow`` (method default "euler"), the others via ``model.sample``."""
    g = torch.Generator().manual_seed(seed)
    if is_flow(p.config):
        x_0 = torch.randn(n, 2, generator=g)
        return sample_flow(p.model, x_0, steps=steps or 20, method=method or "euler", keep_trajectory=False,
                           **options).xs[-1]
    if p.schedule is None:
        return p.model.sample(n, generator=g)
    x_T = torch.randn(n, 2, generator=g)
    return sample(p.model, p.schedule, x_T, method=method or "ddim", steps=steps, generator=g,
                  keep_trajectory=False, **options).xs[-1]


def evaluate_2d(p: Pretrained, n: int = 5000, seed: int = 0, method: str | None = None, steps: int = 50,
                repeats: int = 3, samples: torch.Tensor | None = None, kernel_distances: bool = True
                ) -> dict[str, Any]:
    """Sliced Wasserstein (and its floor), MMD, energy distance and mode coverage for a toy model.

    ``samples``: the n points ``sample_2d(p, n, seed, method, steps)`` gave already, so they are not drawn twice
    (the result then has no "sample_seconds": the caller timed them). ``kernel_distances=False`` leaves out MMD
    and the energy distance (over half the time at n = 2000), for a caller that shows only the rest.
    """
    toy = p.config.get("data", {}).get("name")
    if p.config.get("data", {}).get("kind") != "toy":
        raise ValueError("evaluate_2d needs a model trained on a named toy (data.kind = 'toy')")
    if samples is not None and tuple(samples.shape) != (n, 2):
        raise ValueError(f"samples must have shape ({n}, 2); got {tuple(samples.shape)}")
    t0 = time.perf_counter()
    x = sample_2d(p, n, seed=seed, method=method, steps=steps) if samples is None else samples
    sample_seconds = time.perf_counter() - t0
    g = torch.Generator().manual_seed(10_000 + seed)
    sws = [sliced_wasserstein(x, sample_toy(toy, n, g), generator=torch.Generator().manual_seed(i))
           for i in range(repeats)]
    floor = data_floor(lambda m, gen: sample_toy(toy, m, gen), n, repeats=repeats, generator=g)
    ref = sample_toy(toy, n, g)
    out: dict[str, Any] = {
        "n": n, "seed": seed,
        "sampler": (f"{method or ('euler' if is_flow(p.config) else 'ddim')}-{steps}"
                    if p.schedule is not None or is_flow(p.config) else one_pass(p)),
        "sliced_wasserstein": round(sum(sws) / repeats, 5),
        "sliced_wasserstein_floor": round(floor, 5),
        "sw_ratio": round(sum(sws) / repeats / floor, 3),
    }
    if kernel_distances:
        out.update(mmd_rbf=round(mmd_rbf(x, ref), 6), energy_distance=round(energy_distance(x[:2000], ref[:2000]), 6))
    if samples is None:
        out["sample_seconds"] = round(sample_seconds, 3)
    if toy in MIXTURE_TOYS:
        spec = mixture_spec(toy)
        cov = mode_coverage(x, spec.means, spec.std)
        out.update(modes_covered=cov.covered, modes=cov.n_modes, off_mode_fraction=round(cov.off_mode_fraction, 4))
    return out


def bound_2d(p: Pretrained, n: int = 2000, seed: int = 0) -> dict[str, float]:
    """The variational bound on -log p(x) of a 2D DDPM in nats per dimension, on n fresh data points (all T
    terms, Ho et al. 2020 eq. 5): with fixed beta and beta_tilde and, for a model that learns its variances,
    with its own Sigma_theta (Nichol & Dhariwal 2021); on a mixture toy beside the true -log p(x)."""
    toy = p.config.get("data", {}).get("name")
    if p.config.get("data", {}).get("kind") != "toy" or p.schedule is None:
        raise ValueError("bound_2d needs a DDPM trained on a named toy")
    x = sample_toy(toy, n, torch.Generator().manual_seed(20_000 + seed))
    variances = ["beta", "beta_tilde"] + (["learned"] if getattr(p.model, "learn_sigma", False) else [])
    out = {f"nll_bound_{v}": round(-elbo_per_dim(p.model, p.schedule, x, variance=v,
                                                 generator=torch.Generator().manual_seed(seed)).mean().item(), 4)
           for v in variances}
    if toy in MIXTURE_TOYS:
        out["nll_true"] = round(-toy_mixture(toy).log_prob(x).double().mean().item() / x.shape[1], 4)
    return out


def quality_at_nfe(p: Pretrained, method: str, nfe: int, n: int = 2000, seed: int = 0, repeats: int = 2
                   ) -> dict[str, Any] | None:
    """``evaluate_2d`` of a toy model run with ``method`` on a budget of ``nfe`` network evaluations: a flow's
    solver (core.flow.steps_for_nfe: midpoint and Heun cost 2 per step) or a diffusion sampler
    (core.samplers.steps_for_nfe); with "steps" and "nfe" (the evaluations used). None when the budget cannot
    run the method (e.g. more steps than T)."""
    if is_flow(p.config):
        steps = flow_steps_for_nfe(method, nfe)
        used = nfe_for(method, steps)
    else:
        steps = steps_for_nfe(method, nfe, p.schedule.T)
        if steps is None:
            return None
        used = 2 * steps - 1 if method == "ode_heun" else steps
    x = sample_2d(p, n, seed=seed, method=method, steps=steps)
    return {**evaluate_2d(p, n=n, seed=seed, method=method, steps=steps, repeats=repeats, samples=x),
            "steps": steps, "nfe": used}


# --- MNIST ---------------------------------------------------------------------------------------

GUIDANCE_SCALES = (1.0, 2.0, 3.0, 5.0)


def sample_images(p: Pretrained, n: int, label: int | torch.Tensor | None = None, guidance_scale: float = 1.0,
                  seed: int = 0, method: str = "ddim", steps: int | None = 50, batch: int = 500,
                  device: str = "cpu", callback: Callable[[int, int], Any] | None = None,
                  noisy_classifier: nn.Module | None = None, prompt: str | list[str] | None = None,
                  **options: Any) -> torch.Tensor:
    """n images (n, 1, 28, 28) in [-1, 1] from an image checkpoint, in batches; ``label`` None = unconditional.
    A latent diffusion model (``p.autoencoder``) samples in its latent and decodes (Rombach et al. 2022). A text
    model (ldm-text-) takes ``prompt``, one or a list of n (core.data.captions grammar; "" = unconditional); given
    ``label`` instead, it draws "the digit <label>".

    With ``noisy_classifier`` (a noisy-classifier- model on the same schedule) the digits come from the model's
    unconditional path guided towards ``label`` by the classifier at ``guidance_scale`` (classifier guidance,
    Dhariwal & Nichol 2021); without it, ``guidance_scale`` is classifier-free guidance's w.
    Image families without a schedule (GAN, VAE) use ``model.sample``. ``callback(done, n)`` reports progress.
    """
    text = p.config.get("family") == "ldm-text"
    if prompt is not None and not text:
        raise ValueError(f"{p.name or 'this model'} reads labels, not prompts (the ldm-text- models read prompts)")
    g = torch.Generator(device=device).manual_seed(seed)
    if p.schedule is None:
        return p.model.sample(n, generator=g).clamp(-1, 1)
    if noisy_classifier is not None and label is None:
        raise ValueError("classifier guidance needs the digits to aim at (label=)")
    if noisy_classifier is not None and p.autoencoder is not None:
        raise ValueError("the noisy classifiers read pixels; a latent model is guided classifier-free (no "
                         "noisy_classifier=)")
    shape = p.autoencoder.latent_shape if p.autoencoder is not None else (1, 28, 28)
    labels = None
    if label is not None:
        labels = torch.as_tensor(label, device=device).long()
        labels = labels.expand(n) if labels.dim() == 0 else labels
    if text:
        from core.data.captions import tokenize

        if prompt is None:
            prompt = [f"the digit {int(d)}" for d in labels] if labels is not None else ""
        prompts = [prompt] * n if isinstance(prompt, str) else list(prompt)
        if len(prompts) != n:
            raise ValueError(f"prompt: one prompt or a list of n = {n}; got {len(prompts)}")
        labels = tokenize(prompts)[0].to(device)
        if all(not q.strip() for q in prompts):
            guidance_scale = 1.0  # the empty prompt is the unconditional model: nothing to guide towards
    out = []
    for start in range(0, n, batch):
        m = min(batch, n - start)
        x_T = torch.randn(m, *shape, generator=g, device=device)
        y = None if labels is None else labels[start:start + m]
        if noisy_classifier is not None:
            guided = classifier_guidance(p.model, classifier_log_prob(noisy_classifier.eval(), y), p.schedule,
                                         None, guidance_scale)
            traj = sample(guided, p.schedule, x_T, method=method, steps=steps, generator=g, keep_trajectory=False,
                          **options)
        else:
            traj = sample(p.model, p.schedule, x_T, method=method, steps=steps, generator=g, keep_trajectory=False,
                          y=y, guidance_scale=guidance_scale if y is not None else 1.0, **options)
        x = traj.xs[-1]
        out.append(p.autoencoder.decode(x) if p.autoencoder is not None else x.clamp(-1, 1))
        if callback is not None:
            callback(start + m, n)
    return torch.cat(out)


@torch.no_grad()
def classify(classifier: nn.Module, images: torch.Tensor, batch: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted labels, features) of images under the project's classifier."""
    classifier.eval()
    preds, feats = [], []
    for i in range(0, len(images), batch):
        f = classifier.features(images[i:i + batch])
        feats.append(f)
        preds.append(classifier.head(f).argmax(1))
    return torch.cat(preds), torch.cat(feats)


def evaluate_mnist(p: Pretrained, classifier: nn.Module, n: int = 1000, scales: tuple[float, ...] = GUIDANCE_SCALES,
                   seed: int = 0, method: str = "ddim", steps: int = 50, device: str = "cpu",
                   progress: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Classifier accuracy on the requested digit per guidance scale (n balanced samples each), FID-MNIST
    per scale and of n unconditional samples, their class histogram, and the real-vs-real FID-MNIST."""
    from core.data.mnist import load_mnist

    test, train = load_mnist("test"), load_mnist("train")
    n = min(n, len(test), len(train))
    classifier = classifier.to(device)
    test_pred, test_feat = classify(classifier, test.images.to(device))
    test_feat = test_feat[:n]
    _, train_feat = classify(classifier, train.images[:n].to(device))
    out: dict[str, Any] = {
        "n": n, "sampler": f"{method}-{steps}", "seed": seed, "data": test.source,
        "classifier_test_accuracy": round(float((test_pred.cpu() == test.labels).float().mean()), 4),
        "fid_mnist_data_vs_data": round(frechet_distance(test_feat, train_feat), 3),
        "guided": [],
    }
    wanted = torch.arange(n) % 10
    conditional = p.schedule is not None and getattr(p.model, "null_class", None) is not None
    for w in scales if conditional else ():
        t0 = time.perf_counter()
        x = sample_images(p, n, label=wanted, guidance_scale=w, seed=seed, method=method, steps=steps,
                          device=device)
        seconds = time.perf_counter() - t0
        pred, feat = classify(classifier, x)
        out["guided"].append({"guidance_scale": w, "accuracy": round(float((pred.cpu() == wanted).float().mean()), 4),
                              "fid_mnist": round(frechet_distance(feat, test_feat), 3),
                              "seconds": round(seconds, 2)})
        if progress is not None:
            progress(f"guidance {w:g}: accuracy {out['guided'][-1]['accuracy']:.3f}")
    t0 = time.perf_counter()
    x = sample_images(p, n, label=None, seed=seed + 1, method=method, steps=steps, device=device)
    out["unconditional_seconds"] = round(time.perf_counter() - t0, 2)
    if p.schedule is None:
        out["sampler"] = one_pass(p)
    pred, feat = classify(classifier, x)
    hist = class_histogram(pred)
    out.update(unconditional_class_histogram=hist, unconditional_classes_covered=sum(c > 0 for c in hist),
               fid_mnist_unconditional=round(frechet_distance(feat, test_feat), 3))
    return out


@torch.no_grad()
def evaluate_autoencoder(p: Pretrained, classifier: nn.Module, device: str = "cpu") -> dict[str, Any]:
    """The first stage on the held-out digits: the mean squared error of its reconstructions (pixels in [-1, 1]),
    the share of reconstructions the classifier reads as their true digit (beside its accuracy on the originals),
    and the statistics of the scaled latents the diffusion model sees (their std should be about 1)."""
    from core.data.mnist import load_mnist

    test = load_mnist("test")
    x, labels = test.images.to(device), test.labels.to(device)
    ae = p.model.to(device).eval()
    z = torch.cat([ae.encode(x[i:i + 500]) for i in range(0, len(x), 500)])
    recon = torch.cat([ae.decode(z[i:i + 500]) for i in range(0, len(z), 500)])
    read, _ = classify(classifier.to(device), recon)
    original, _ = classify(classifier, x)
    return {"n": len(labels), "data": test.source, "latent_shape": list(ae.latent_shape),
            "reconstruction_mse": round(float((recon - x).pow(2).mean()), 5),
            "reconstruction_accuracy": round(float((read == labels).float().mean()), 4),
            "classifier_test_accuracy": round(float((original == labels).float().mean()), 4),
            "latent_std": round(float(z.std()), 4), "latent_mean": round(float(z.mean()), 4)}

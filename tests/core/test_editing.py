"""SDEdit and RePaint inpainting (core.editing) on the exact mixture model and on ddpm-mnist: the ends of t0, the
known region kept exactly, the time-travel path, and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from core.analytic import toy_mixture
from core.checkpoints import load_pretrained
from core.data.mnist import load_mnist
from core.editing import inpaint, repaint_path, sdedit
from core.evaluate import classify
from core.metrics import mode_coverage
from core.samplers import METHODS
from core.schedules import make_schedule

COSINE = make_schedule("cosine", T=1000)
EIGHT = toy_mixture("eight_gaussians")
EXACT = EIGHT.as_eps_model(COSINE)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _ring(n: int) -> torch.Tensor:
    """A drawn circle through the eight modes: points everywhere on it, most of them between modes."""
    a = torch.linspace(0, 2 * math.pi, n + 1)[:-1]
    return 1.4 * torch.stack([a.cos(), a.sin()], 1)


def test_sdedit_at_t0_zero_returns_the_input_and_small_t0_stays_close():
    x = _ring(200)
    traj = sdedit(EXACT, COSINE, x, 0)
    assert torch.equal(traj.xs[-1], x) and traj.nfe == 0 and len(traj.xs) == 1 and len(traj.x0_preds) == 0
    near = sdedit(EXACT, COSINE, x, 5, generator=_gen(0)).xs[-1]
    assert (near - x).norm(dim=1).mean() < 0.1


@pytest.mark.parametrize("method", METHODS)
def test_sdedit_pulls_a_drawn_ring_onto_the_modes_with_every_sampler(method):
    """From t0 = T/2 the exact model moves the ring's points onto the eight modes (the ring itself has 46% of its
    points more than 3 std from any mode)."""
    x = _ring(400)
    assert mode_coverage(x, EIGHT.means.float(), EIGHT.std).off_mode_fraction > 0.4
    traj = sdedit(EXACT, COSINE, x, 500, method=method, steps=20, generator=_gen(1))
    assert float(traj.timesteps.max()) <= 499 and torch.isfinite(traj.xs[-1]).all()
    assert mode_coverage(traj.xs[-1], EIGHT.means.float(), EIGHT.std).off_mode_fraction < 0.1


def test_sdedit_checks_its_arguments():
    x = _ring(10)
    for bad in (-1, 1001, 2.5, True):
        with pytest.raises(ValueError, match="t0 must be an integer paper step"):
            sdedit(EXACT, COSINE, x, bad)
    with pytest.raises(ValueError, match="non-finite"):
        sdedit(EXACT, COSINE, torch.full((3, 2), float("nan")), 10)
    with pytest.raises(ValueError, match="floating-point tensor"):
        sdedit(EXACT, COSINE, torch.zeros(3, dtype=torch.long), 10)


def test_repaint_paths_go_down_by_one_and_jump_back_as_often_as_asked():
    assert repaint_path(6, 2, 1) == [0, 1, 2, 3, 4, 5, 6]
    assert repaint_path(6, 2, 2) == [0, 1, 2, 1, 0, 1, 2, 3, 4, 3, 2, 3, 4, 5, 6]
    path = repaint_path(50, 10, 10)
    assert path[0] == 0 and path[-1] == 50 and min(path) == 0 and max(path) == 50
    assert all(abs(b - a) == 1 for a, b in zip(path, path[1:], strict=False))
    assert sum(b > a for a, b in zip(path, path[1:], strict=False)) == 50 + 4 * 9 * 10  # 4 jump points, 9 extra runs
    with pytest.raises(ValueError, match="resamplings"):
        repaint_path(10, 2, 0)


def test_inpainting_keeps_the_known_region_exactly_and_fills_a_half_given_point():
    x = EIGHT.sample(300, _gen(2))
    assert torch.equal(inpaint(EXACT, COSINE, x, torch.ones_like(x), steps=20, generator=_gen(3)), x)
    # x given at mode 0's 1.41: p(y | x) puts y at that mode's 0 (modes 1 and 7, at x = 0.99, are 4 std away).
    # Replacement alone hears the known half only through noise early on and often commits y to the wrong mode
    # (the marginal p(y) has 2 of its 8 modes at y = 0); RePaint's resampling lets the halves agree.
    given = torch.tensor([[1.407, 5.0]]).repeat(400, 1)
    mask = torch.tensor([1.0, 0.0])
    near_zero = {}
    for r in (1, 10):
        out = inpaint(EXACT, COSINE, given, mask, steps=50, generator=_gen(4), jump_length=5, resamplings=r)
        assert torch.equal(out[:, 0], given[:, 0])
        near_zero[r] = float((out[:, 1].abs() < 0.35).float().mean())
    assert near_zero[1] > 0.3 and near_zero[10] > near_zero[1] + 0.15, near_zero


def test_inpainting_refuses_a_mask_that_is_not_zeros_and_ones_or_does_not_fit():
    x = EIGHT.sample(5, _gen(5))
    with pytest.raises(ValueError, match="only 0"):
        inpaint(EXACT, COSINE, x, torch.full((5, 2), 0.5), steps=5)
    with pytest.raises(ValueError, match="does not broadcast"):
        inpaint(EXACT, COSINE, x, torch.ones(3), steps=5)


def test_on_mnist_sdedit_repairs_speckled_digits_and_inpainting_keeps_the_top_half():
    """ddpm-mnist, unguided: speckled digits (Gaussian noise of std 0.6) are read at chance level or so by the
    project's classifier; SDEdit from T/4 makes most of them readable (benchmarks/editing.py: 200 digits)."""
    model, judge = load_pretrained("ddpm-mnist"), load_pretrained("classifier-mnist").model
    test = load_mnist("test")
    x0, labels = test.images[:40], test.labels[:40]
    rough = (x0 + 0.6 * torch.randn(x0.shape, generator=_gen(6))).clamp(-1, 1)
    edit = sdedit(model.model, model.schedule, rough, 250, generator=_gen(7)).xs[-1].clamp(-1, 1)
    before = float((classify(judge, rough)[0] == labels).float().mean())
    after = float((classify(judge, edit)[0] == labels).float().mean())
    assert after >= 0.8 and after > before + 0.3
    mask = torch.ones(1, 1, 28, 28)
    mask[..., 14:, :] = 0
    filled = inpaint(model.model, model.schedule, x0[:8], mask, steps=10, generator=_gen(8))
    assert torch.equal(filled[..., :14, :], x0[:8, :, :14, :]) and torch.isfinite(filled).all()
    assert not torch.equal(filled[..., 14:, :], x0[:8, :, 14:, :])  # the masked half is new

"""core.data.sketch against MNIST itself: real test digits drawn large on a canvas and brought back are read by the
classifier as the same digits, centred by their mass like MNIST's; an empty drawing fails loudly, a dot is a small
digit, any size and format of drawing gives a (1, 28, 28) image in [-1, 1].
Run: python -m pytest tests/core/test_sketch.py -q"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from core.checkpoints import load_pretrained
from core.data.mnist import load_mnist
from core.data.sketch import CENTRE, sketch_to_digit
from core.evaluate import classify

N = 50
CANVAS = 280


def canvas_of(digit: torch.Tensor, size: int = CANVAS) -> np.ndarray:
    """A digit (1, 28, 28) in [-1, 1] as the drawing canvas returns it: RGBA uint8 (size, size, 4), white ink on an
    opaque black background, enlarged smoothly (bilinear), as a pen stroke would be."""
    grey = np.round((digit[0].numpy() + 1) * 127.5).astype(np.uint8)
    big = np.asarray(Image.fromarray(grey).resize((size, size), Image.Resampling.BILINEAR))
    rgba = np.empty((size, size, 4), dtype=np.uint8)
    rgba[..., :3], rgba[..., 3] = big[..., None], 255
    return rgba


def centre_of_mass(x: torch.Tensor) -> np.ndarray:
    return np.array(ndimage.center_of_mass(((x[0] + 1) / 2).numpy()))


@pytest.fixture(scope="module")
def round_trip() -> tuple[torch.Tensor, torch.Tensor]:
    test = load_mnist("test")
    return torch.stack([sketch_to_digit(canvas_of(test.images[i])) for i in range(N)]), test.labels[:N]


def test_real_digits_drawn_large_come_back_as_the_same_digits(round_trip):
    images, labels = round_trip
    judge = load_pretrained("classifier-mnist").model
    pred, _ = classify(judge, images)
    assert images.shape == (N, 1, 28, 28) and images.dtype == torch.float32
    assert (pred == labels).float().mean() >= 0.9


def test_the_centre_of_mass_is_at_the_centre_and_the_values_in_range(round_trip):
    images, _ = round_trip
    for x in images:
        assert np.abs(centre_of_mass(x) - CENTRE).max() <= 1.0
    assert images.min() >= -1 and images.max() <= 1
    assert images.min() == -1 and images.max() > 0.9  # black background, strokes near full white


def test_the_bounding_box_fits_20_by_20_keeping_its_aspect_ratio():
    stroke = np.zeros((400, 300), dtype=np.uint8)
    stroke[50:350, 140:160] = 255  # a tall bar: 300 x 20
    x = sketch_to_digit(stroke)[0]
    rows, cols = np.flatnonzero((x > -1).any(1)), np.flatnonzero((x > -1).any(0))
    assert len(rows) == 20 and 1 <= len(cols) <= 3  # 20 x 1.3 pixels, anti-aliased over up to 3 columns


def test_a_top_heavy_drawing_is_moved_towards_the_centre_but_never_cut_off():
    seven = np.zeros((280, 280), dtype=np.uint8)
    seven[:60, :] = 255  # a bold bar ...
    seven[60:, 130:140] = 255  # ... over a thin stem: the centre of mass sits near the top
    x = sketch_to_digit(seven)[0]
    rows = np.flatnonzero((x > -1).any(1))
    assert len(rows) == 20 and rows[-1] == 27  # moved down as far as it goes, the stem's end kept
    assert (x[27] > -1).any()


def test_formats_and_sizes_give_the_same_digit():
    digit = load_mnist("test").images[0]
    rgba = canvas_of(digit)
    x = sketch_to_digit(rgba)
    assert torch.allclose(sketch_to_digit(rgba[..., 0]), x, atol=2e-2)  # grey levels
    assert torch.allclose(sketch_to_digit(rgba[..., :3]), x, atol=2e-2)  # RGB
    assert torch.allclose(sketch_to_digit(rgba[..., 0].astype(np.float64) / 255), x, atol=2e-2)  # floats in [0, 1]
    transparent = rgba.copy()
    transparent[..., 3] = rgba[..., 0]  # white strokes on a transparent background: the ink is in the alpha
    transparent[..., :3] = 255
    assert torch.allclose(sketch_to_digit(transparent), x, atol=2e-2)
    huge = sketch_to_digit(canvas_of(digit, 3000))  # 3000 x 3000: fine, and the same digit
    assert (huge - x).abs().mean() < 0.05


def test_a_dot_is_a_small_centred_digit_and_an_empty_drawing_raises():
    dot = np.zeros((CANVAS, CANVAS, 4), dtype=np.uint8)
    dot[30:48, 200:218] = 255  # one 18 px dab of the pen, off centre
    x = sketch_to_digit(dot)
    inked = int((x > -1).sum())
    assert x.shape == (1, 28, 28) and 4 <= inked <= 100  # a small blob, not a 20 x 20 square
    assert np.abs(centre_of_mass(x) - CENTRE).max() <= 0.5
    for empty in (np.zeros((CANVAS, CANVAS, 4), dtype=np.uint8), np.zeros((5, 5)), np.full((9, 9, 4), 3, np.uint8)):
        with pytest.raises(ValueError, match="the drawing is empty"):
            sketch_to_digit(empty)


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 2), np.uint8), np.zeros((0, 5)), np.zeros((3, 3), np.int64),
                                 np.full((3, 3), np.nan), np.full((3, 3), 2.0)])
def test_bad_drawings_raise_value_errors(bad):
    with pytest.raises(ValueError):
        sketch_to_digit(bad)

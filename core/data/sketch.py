"""A drawing turned into an MNIST digit, the way MNIST's digits were made (LeCun et al. 1998, "Gradient-based
learning applied to document recognition", sec. III-A): the ink's bounding box scaled to fit a 20 x 20 box keeping
its aspect ratio, anti-aliased to grey levels, then placed in a 28 x 28 field with its centre of mass at the centre.

    from core.data.sketch import sketch_to_digit
    x = sketch_to_digit(canvas_rgba)  # (1, 28, 28) in [-1, 1], white digit on black, like core.data.mnist
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

SIZE = 28  # the field
BOX = 20  # the bounding box is scaled to fit BOX x BOX
CENTRE = 14.0  # where MNIST's digits have their centre of mass, in pixel indices (their mean is 13.97 on both axes)
INK = 0.05  # a pixel with less ink than this (of full white) is background when the bounding box is found
# LeCun et al. scaled every box to 20 px: their digits were written at about one size, so none was a speck. A dot
# or a short stroke on a big canvas would become a 20 px blob; here the drawing is enlarged at most MAX_ZOOM times
# beyond the scale that maps the whole image onto the 28 px field, so small marks stay small.
MAX_ZOOM = 4.0


def ink(image: np.ndarray) -> np.ndarray:
    """The ink (H, W) in [0, 1] of a drawing: grey levels (H, W), RGB (H, W, 3) or RGBA (H, W, 4), uint8 0..255
    or floats in [0, 1]; light strokes on a dark or transparent background (RGBA: luminance times alpha)."""
    a = np.asarray(image)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or 0 in a.shape:
        raise ValueError(f"expected a drawing of shape (H, W), (H, W, 3) or (H, W, 4); got {a.shape}")
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif a.dtype.kind == "f":
        a = a.astype(np.float32)
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise ValueError("a floating-point drawing must hold finite values in [0, 1]")
    else:
        raise ValueError(f"expected uint8 (0..255) or floating-point (0..1) pixels; got {a.dtype}")
    if a.ndim == 2:
        return a
    grey = a[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601 luma, as Pillow's "L"
    return grey * a[..., 3] if a.shape[2] == 4 else grey


def sketch_to_digit(image: np.ndarray) -> torch.Tensor:
    """A drawing (see ``ink``; any size) as a (1, 28, 28) float32 tensor in [-1, 1], the MNIST way: the bounding
    box scaled (area-averaged when it shrinks, so anti-aliased) to fit 20 x 20 keeping its aspect ratio, at most
    MAX_ZOOM times the whole image's own scale, then placed in 28 x 28 with its centre of mass at pixel (14, 14) (or
    as near as the box allows without cutting it off).

    Raises ValueError for a drawing without ink (nothing drawn)."""
    amount = ink(image)
    rows, cols = np.flatnonzero(amount.max(1) >= INK), np.flatnonzero(amount.max(0) >= INK)
    if rows.size == 0:
        raise ValueError("the drawing is empty: no stroke is brighter than the background; draw a digit in a light "
                         "colour on a dark or transparent background")
    crop = amount[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = min(BOX / max(h, w), MAX_ZOOM * SIZE / max(amount.shape))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # Pillow's (width, height)
    # shrinking: each output pixel is the mean ink of the area it covers (anti-aliased); enlarging: bilinear
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    patch = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize(size, resample), dtype=np.float32)
    patch = np.clip(patch, 0.0, 1.0)
    field = np.zeros((SIZE, SIZE), dtype=np.float32)
    top, left = (SIZE - patch.shape[0]) // 2, (SIZE - patch.shape[1]) // 2
    field[top:top + patch.shape[0], left:left + patch.shape[1]] = patch
    cy, cx = ndimage.center_of_mass(field)
    # A whole-pixel translation (no resampling blur), limited to the margin around the box: a top-heavy 7 drawn with
    # a bold bar would otherwise be pushed past the lower edge and lose the end of its stem.
    dy = min(max(round(CENTRE - cy), -top), SIZE - top - patch.shape[0])
    dx = min(max(round(CENTRE - cx), -left), SIZE - left - patch.shape[1])
    field = ndimage.shift(field, (dy, dx), order=0, mode="constant", cval=0.0)
    return torch.from_numpy(field * 2.0 - 1.0).unsqueeze(0)

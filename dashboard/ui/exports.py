"""Take-it-with-you exports: what a page shows, as a file for slides. 2D points as CSV (an ``x,y`` header, one point
per row, read back by ``core.data.toy2d.load_points``), digit grids as PNG, animations as GIF (Pillow; no browser),
the settings that made them in the file name and in the file itself (CSV comment lines, PNG text chunks, the GIF
comment). The byte builders are plain numpy/Pillow; ``download_button`` hands them to Streamlit as a callable, so
the bytes are made on click, not on every render.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from core.data.toy2d import MAX_ABS_VALUE

Settings = Mapping[str, Any]

MIMES = {"csv": "text/csv", "png": "image/png", "gif": "image/gif"}
SOFTWARE = "Diffusion Lab"
LABEL_PX = 22  # the caption strip above each GIF frame
PANEL_PX = 360  # side of a 2D scatter frame
DIGIT_SCALE = 4  # screen pixels per digit pixel in the pages' PNGs: 112 px a digit, sharp on a projected slide
MAX_NAME = 120  # characters of a file name before its extension
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


# --- names and settings ------------------------------------------------------------------------------------------


def slug(text: Any) -> str:
    """``text`` in safe file-name characters (letters, digits, ``_ . -``): anything else becomes one ``-``."""
    return _UNSAFE.sub("-", str(text)).strip("-.") or "x"


def _value(v: Any) -> str:
    """A setting as one line of text (a line break would end a CSV comment early)."""
    return f"{v:g}" if isinstance(v, float) else " ".join(str(v).splitlines())


def settings_lines(settings: Settings | None) -> list[str]:
    """``key: value`` per setting (None left out), the form every file carries them in."""
    return [f"{k}: {_value(v)}" for k, v in (settings or {}).items() if v is not None]


def file_name(page: str, kind: str, settings: Settings | None, ext: str) -> str:
    """``<page>_<kind>_<settings>.<ext>`` in safe characters, e.g. "samplers_ddim_nfe50_eight_gaussians_seed0.csv".

    A text setting shows its value alone (a toy, a model, a sampler), a number as key + value (``seed0``, ``w3.5``),
    a True flag as its key; False and None are left out.
    """
    if ext not in MIMES:
        raise ValueError(f"unknown extension {ext!r}; expected one of {', '.join(MIMES)}")
    parts = [page, kind]
    for k, v in (settings or {}).items():
        if v is None or v is False:
            continue
        parts.append(k if v is True else str(v) if isinstance(v, str) else f"{k}{_value(v)}")
    stem = "_".join(slug(p) for p in parts if str(p))[:MAX_NAME].rstrip("-._")
    return f"{stem}.{ext}"


# --- CSV ------------------------------------------------------------------------------------------------------------


def points_csv(points: np.ndarray, settings: Settings | None = None) -> bytes:
    """2D points (n, 2) as CSV: ``# key: value`` lines with the settings (load_points skips lines starting with
    '#'), an ``x,y`` header, one point per row. Rows that load_points would reject (NaN, inf, beyond
    ±MAX_ABS_VALUE: a diverged sampler) are left out and counted in a comment."""
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"expected points of shape (n, 2), got shape {x.shape}")
    keep = np.isfinite(x).all(axis=1) & (np.abs(x) <= MAX_ABS_VALUE).all(axis=1)
    lines = [f"# {SOFTWARE}"] + [f"# {line}" for line in settings_lines(settings)]
    if not keep.all():
        lines.append(f"# left out: {int((~keep).sum())} non-finite or diverged point(s)")
    body = io.StringIO()
    # float32 samples print exactly with 9 significant digits; float64 input keeps 17
    np.savetxt(body, x[keep], fmt="%.9g" if np.asarray(points).dtype == np.float32 else "%.17g", delimiter=",")
    return ("\n".join([*lines, "x,y"]) + "\n" + body.getvalue()).encode()


# --- images ---------------------------------------------------------------------------------------------------------


def digits_uint8(images: np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """Images (n, [1,] h, w) as uint8 0..255 (0 black): floats in ``value_range`` (clipped), uint8 as they are."""
    x = np.asarray(images)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"expected images of shape (n, 1, h, w) or (n, h, w), got shape {np.shape(images)}")
    if x.dtype == np.uint8:
        return x
    lo, hi = value_range
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range!r}")
    x = (np.clip(np.nan_to_num(x.astype(np.float64), nan=lo), lo, hi) - lo) / (hi - lo)
    return np.round(x * 255).astype(np.uint8)


def digits_image(images: np.ndarray, columns: int = 10, scale: int = DIGIT_SCALE,
                 value_range: tuple[float, float] = (-1.0, 1.0)) -> Image.Image:
    """Digits as one greyscale grid, ``columns`` per row, no gaps, each pixel ``scale`` x ``scale``: size
    (columns * w * scale, rows * h * scale); missing tiles of the last row stay black."""
    x = digits_uint8(images, value_range)
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be a positive integer, got {columns!r}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    n, h, w = x.shape
    rows = -(-n // columns)
    grid = np.zeros((rows * columns, h, w), np.uint8)
    grid[:n] = x
    grid = grid.reshape(rows, columns, h, w).transpose(0, 2, 1, 3).reshape(rows * h, columns * w)
    return Image.fromarray(grid.repeat(scale, 0).repeat(scale, 1), mode="L")


def digits_png(images: np.ndarray, columns: int = 10, scale: int = DIGIT_SCALE, settings: Settings | None = None,
               value_range: tuple[float, float] = (-1.0, 1.0)) -> bytes:
    """A PNG of ``digits_image`` with the settings as text chunks (Pillow reads them back in ``.info``)."""
    info = PngInfo()
    info.add_text("Software", SOFTWARE)
    for k, v in (settings or {}).items():
        if v is not None:
            info.add_text(str(k), _value(v))
    buf = io.BytesIO()
    digits_image(images, columns, scale, value_range).save(buf, format="PNG", pnginfo=info, optimize=True)
    return buf.getvalue()


def _rgb(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def _disk(radius: float) -> np.ndarray:
    r = int(np.ceil(radius))
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    keep = dx ** 2 + dy ** 2 <= radius ** 2 + 0.25
    return np.stack([dy[keep], dx[keep]], axis=1)


def _to_pixels(points: np.ndarray, lim: float, size: int) -> np.ndarray:
    """(n, 2) data coordinates on [-lim, lim]^2 -> (n, 2) float pixel (row, col), y up; non-finite rows dropped."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    p = p[np.isfinite(p).all(axis=1)]
    f = (size - 1) / (2 * lim)
    return np.stack([(lim - p[:, 1]) * f, (p[:, 0] + lim) * f], axis=1)


def scatter_frame(points: np.ndarray | None, lim: float = 4.0, size: int = PANEL_PX, color: str = "#4f46e5",
                  overlay: np.ndarray | None = None, overlay_color: str = "#d1d5db",
                  paths: Sequence[np.ndarray] | None = None, path_color: str = "#f97316",
                  radius: float = 1.5) -> Image.Image:
    """A 2D point cloud on the fixed square [-lim, lim]^2 (y up) as a size x size RGB image: a light grey overlay
    (the data) under the points, orange paths with a dot at their heads on top. Points off the square are not
    drawn. Every frame of an animation on the same axes, so nothing rescales."""
    img = np.full((size, size, 3), 255, np.uint8)
    for pts, rgb, r in ((overlay, overlay_color, radius), (points, color, radius)):
        if pts is None or not len(pts):
            continue
        rc = np.round(_to_pixels(pts, lim, size)).astype(np.int64)
        at = (rc[:, None, :] + _disk(r)[None]).reshape(-1, 2)
        at = at[((at >= 0) & (at < size)).all(axis=1)]
        img[at[:, 0], at[:, 1]] = _rgb(rgb)
    im = Image.fromarray(img, mode="RGB")
    draw = ImageDraw.Draw(im)
    for path in paths or ():
        rc = _to_pixels(path, lim, size)
        if len(rc) >= 2:
            draw.line([(c, r) for r, c in rc], fill=path_color, width=1)
        if len(rc):
            r, c = rc[-1]
            draw.ellipse([c - 3, r - 3, c + 3, r + 3], fill=path_color, outline="white")
    draw.rectangle([0, 0, size - 1, size - 1], outline="#d1d5db")
    return im


@cache
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=14)


def titled(image: Image.Image, text: str) -> Image.Image:
    """``image`` under a white strip of LABEL_PX pixels carrying ``text``."""
    out = Image.new("RGB", (image.width, image.height + LABEL_PX), "white")
    out.paste(image.convert("RGB"), (0, LABEL_PX))
    ImageDraw.Draw(out).text((6, 4), text, fill="black", font=_font())  # its antialiasing adds greys only
    return out


def side_by_side(*images: Image.Image, gap: int = 8) -> Image.Image:
    """Images in one row on white, ``gap`` pixels apart, top-aligned."""
    out = Image.new("RGB", (sum(i.width for i in images) + gap * (len(images) - 1), max(i.height for i in images)),
                    "white")
    x = 0
    for i in images:
        out.paste(i.convert("RGB"), (x, 0))
        x += i.width + gap
    return out


def stacked(*images: Image.Image, gap: int = 8) -> Image.Image:
    """Images in one column on white, ``gap`` pixels apart, left-aligned."""
    out = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images) + gap * (len(images) - 1)),
                    "white")
    y = 0
    for i in images:
        out.paste(i.convert("RGB"), (0, y))
        y += i.height + gap
    return out


def _frame_image(frame: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(frame, Image.Image):
        return frame
    a = np.asarray(frame)
    if a.ndim == 2 and a.shape[1] == 2 and a.dtype != np.uint8:
        return scatter_frame(a)
    if a.dtype == np.uint8 and (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        return Image.fromarray(a)
    raise ValueError(f"a frame must be a PIL image, 2D points (n, 2) or a uint8 image (h, w[, 3]); got an array "
                     f"of shape {a.shape} and dtype {a.dtype}")


def _shared_palette(frames: Sequence[Image.Image]) -> list[Image.Image]:
    """RGB frames as "P" images on one palette. Pillow's GIF writer would quantise each RGB frame on its own (median
    cut, most of the time of a 25-frame GIF); these frames have few colours (a handful of markers, greys from the
    digits and the text), so the palette is usually exact: their distinct colours, looked up with numpy."""
    arrays = [np.asarray(f.convert("RGB")) for f in frames]
    packed = [(a[..., 0].astype(np.uint32) << 16) | (a[..., 1].astype(np.uint32) << 8) | a[..., 2] for a in arrays]
    seen = np.zeros(1 << 24, bool)  # one flag per 24-bit colour: cheaper than np.unique on every pixel
    for p in packed:
        seen[p] = True
    colors = np.flatnonzero(seen).astype(np.uint32)
    if len(colors) > 256:  # more colours than a GIF holds: one adaptive palette from a sample of the frames
        ref = Image.fromarray(np.concatenate(arrays[:: max(1, len(arrays) // 4)], axis=0)).quantize(256)
        return [Image.fromarray(a).quantize(palette=ref, dither=Image.Dither.NONE) for a in arrays]
    palette = np.stack([(colors >> 16) & 255, (colors >> 8) & 255, colors & 255], axis=1).astype(np.uint8)
    lut = np.zeros(1 << 24, np.uint8)  # colour -> palette index; calloc'd, so only the touched pages cost
    lut[colors] = np.arange(len(colors))
    out = []
    for p in packed:
        im = Image.fromarray(lut[p], mode="P")
        im.putpalette(palette.tobytes())
        out.append(im)
    return out


def animation_gif(frames: Sequence[Image.Image | np.ndarray], duration_ms: int = 200, settings: Settings | None = None,
                  labels: Sequence[str] | None = None, loop: int = 0) -> bytes:
    """Frames as a looping GIF, ``duration_ms`` each (the last held three times as long), each under a caption
    strip (``labels``, default "frame k / n"; it also keeps two equal frames from being merged). A frame is a PIL
    image, 2D points (n, 2) (drawn by ``scatter_frame`` on [-4, 4]^2) or a uint8 image. The settings go into the
    GIF's comment (``.info["comment"]`` when read back). Size: the largest frame's, LABEL_PX taller."""
    if not len(frames):
        raise ValueError("an animation needs at least one frame")
    if labels is not None and len(labels) != len(frames):
        raise ValueError(f"got {len(labels)} labels for {len(frames)} frames")
    n = len(frames)
    images = [_frame_image(f) for f in frames]
    w, h = max(i.width for i in images), max(i.height for i in images)
    out = []
    for k, im in enumerate(images):
        canvas = Image.new("RGB", (w, h), "white")
        canvas.paste(im.convert("RGB"), (0, 0))
        out.append(titled(canvas, labels[k] if labels is not None else f"frame {k + 1} / {n}"))
    durations = [int(duration_ms)] * n
    durations[-1] *= 3  # a pause on the result before the loop starts again
    comment = "; ".join([SOFTWARE, *settings_lines(settings)])
    buf = io.BytesIO()
    out = _shared_palette(out)
    out[0].save(buf, format="GIF", save_all=True, append_images=out[1:], duration=durations, loop=loop,
                comment=comment.encode())
    return buf.getvalue()


# --- the button -----------------------------------------------------------------------------------------------------


def download_button(label: str, data: Callable[[], bytes] | bytes, file_name: str, key: str,
                    help: str | None = None) -> None:
    """A small download button. ``data``: the bytes, or better a no-argument callable that makes them, which
    Streamlit calls only when the button is pressed (in another thread: it must not call Streamlit). The MIME type
    comes from the file name's extension; pressing it does not rerun the page."""
    ext = file_name.rsplit(".", 1)[-1]
    if ext not in MIMES:
        raise ValueError(f"unknown extension {ext!r} in {file_name!r}; expected one of {', '.join(MIMES)}")
    st.download_button(label, data, file_name=file_name, mime=MIMES[ext], key=key, on_click="ignore",
                       icon=":material/download:", help=help or f"Download {file_name}")

"""2D toy distributions in standardised units, and user point clouds validated at the boundary.

Usage: x0 = sample_toy("eight_gaussians", n=5000, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Shapes follow the FFJORD toy set (Grathwohl et al. 2019, `lib/toy_data.py`): 8gaussians, checkerboard,
# rings, pinwheel (Johnson et al. 2016), 2spirals, swissroll and moons (scikit-learn's make_swiss_roll /
# make_moons); 25 gaussians follows VEEGAN (Srivastava et al. 2017). Each toy is rescaled by closed-form
# constants so that every coordinate has mean 0 and variance 1 exactly (the "standardised units").

TOY_NAMES: tuple[str, ...] = (
    "eight_gaussians", "twenty_five_gaussians", "swiss_roll", "two_moons",
    "checkerboard", "rings", "pinwheel", "spiral",
)
MIXTURE_TOYS: tuple[str, ...] = ("eight_gaussians", "twenty_five_gaussians")
# Labels: mixture component; swiss_roll: quarter of the roll; two_moons: moon; checkerboard: which of the
# 8 filled squares; rings: ring; pinwheel / spiral: arm.
NUM_CLASSES: dict[str, int] = {
    "eight_gaussians": 8, "twenty_five_gaussians": 25, "swiss_roll": 4, "two_moons": 2,
    "checkerboard": 8, "rings": 4, "pinwheel": 5, "spiral": 2,
}

MAX_POINTS = 100_000  # enough for any 2D plot or training run on a laptop; keeps parsing well under 1 s
MIN_POINTS = 10  # fewer cannot describe a distribution, nor be standardised meaningfully
MAX_ABS_VALUE = 1e9  # larger values are almost surely a units or export mistake (UTM metres reach 1e7)
# Text limits: a number never needs more than a few dozen characters; these keep a hostile or mistaken input
# (a whole file on one line, a binary blob) from costing more than a clear message.
MAX_FIELD_CHARS = 1_000
MAX_LINE_CHARS = 4_096
MAX_TEXT_BYTES = 16 * 2**20  # 100,000 full-precision x,y lines take about 5 MB

_EIGHT_STD = 0.1
_EIGHT_RADIUS = math.sqrt(2 * (1 - _EIGHT_STD**2))  # R^2/2 + std^2 = 1 per coordinate
_GRID_STD = 0.08
_GRID_STEP = math.sqrt((1 - _GRID_STD**2) / 2)  # var{-2..2} * d^2 = 2 d^2; 2 d^2 + std^2 = 1


@dataclass(frozen=True, eq=False)
class MixtureSpec:
    """An isotropic Gaussian mixture: sum_k weights[k] N(means[k], std^2 I)."""

    means: np.ndarray  # (K, 2) float64
    std: float
    weights: np.ndarray  # (K,) float64, sums to 1


def mixture_spec(name: str) -> MixtureSpec:
    """The exact mixture that `sample_toy(name)` draws from (for MIXTURE_TOYS only)."""
    if name == "eight_gaussians":
        angles = 2 * np.pi * np.arange(8) / 8
        means = _EIGHT_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        std = _EIGHT_STD
    elif name == "twenty_five_gaussians":
        grid = np.arange(-2, 3) * _GRID_STEP
        means = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)  # k = 5 i + j
        std = _GRID_STD
    else:
        raise ValueError(f"unknown mixture toy '{name}'; expected one of: {', '.join(MIXTURE_TOYS)}")
    k = len(means)
    return MixtureSpec(means=means.astype(np.float64), std=std, weights=np.full(k, 1.0 / k))


def sample_toy(name: str, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n points (n, 2) float32 from the named toy, in standardised units."""
    return sample_toy_with_labels(name, n, generator)[0]


def sample_toy_with_labels(
    name: str, n: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Points (n, 2) float32 and their class labels (n,) int64 in [0, NUM_CLASSES[name])."""
    if name not in _TOYS:
        raise ValueError(f"unknown toy '{name}'; expected one of: {', '.join(TOY_NAMES)}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    x, y = _TOYS[name](int(n), generator)
    return x.to(torch.float32), y.to(torch.int64)


# --- the toys: each returns (points in standardised units, labels) ----------------------------------

_Toy = Callable[[int, torch.Generator | None], tuple[torch.Tensor, torch.Tensor]]


def _uniform(*shape: int, g: torch.Generator | None) -> torch.Tensor:
    return torch.rand(*shape, generator=g, dtype=torch.float64)


def _normal(*shape: int, g: torch.Generator | None) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def _to_standard_units(x: torch.Tensor, mean: tuple[float, float], var: tuple[float, float]) -> torch.Tensor:
    return (x - torch.tensor(mean, dtype=x.dtype)) / torch.tensor(var, dtype=x.dtype).sqrt()


def _mixture(name: str) -> _Toy:
    spec = mixture_spec(name)

    def toy(n: int, g: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        # Exactly the spec: a component by weight, then means[k] + std * N(0, I).
        k = torch.multinomial(torch.from_numpy(spec.weights), n, replacement=True, generator=g)
        return torch.from_numpy(spec.means)[k] + spec.std * _normal(n, 2, g=g), k

    return toy


# sklearn make_swiss_roll's (x, z) plane: t = 1.5 pi (1 + 2u), point (t cos t, t sin t) + noise.
# Moments for t ~ U[a, b] = U[1.5 pi, 4.5 pi], integrating by parts (sin 2a = sin 2b = 0, cos 2a = cos 2b = -1):
# E[x] = 2, E[y] = 2 / (3 pi), E[x^2] = (m2 - 1/2) / 2, E[y^2] = (m2 + 1/2) / 2,
# where m2 = E[t^2] = (b^3 - a^3) / (3 (b - a)).
_SWISS_NOISE = 0.5
_SWISS_M2 = ((4.5 * math.pi) ** 3 - (1.5 * math.pi) ** 3) / (3 * 3 * math.pi)
_SWISS_MEAN = (2.0, 2 / (3 * math.pi))
_SWISS_VAR = (
    (_SWISS_M2 - 0.5) / 2 - _SWISS_MEAN[0] ** 2 + _SWISS_NOISE**2,
    (_SWISS_M2 + 0.5) / 2 - _SWISS_MEAN[1] ** 2 + _SWISS_NOISE**2,
)


def _swiss_roll(n: int, g: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    u = _uniform(n, g=g)
    t = 1.5 * math.pi * (1 + 2 * u)
    x = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) + _SWISS_NOISE * _normal(n, 2, g=g)
    y = (4 * u).long()  # four equal stretches of t along the roll
    return _to_standard_units(x, _SWISS_MEAN, _SWISS_VAR), y


# sklearn make_moons with theta ~ U[0, pi]: outer moon (cos, sin), inner moon (1 - cos, 1/2 - sin).
# E[cos] = 0, E[sin] = 2/pi, E[cos^2] = 1/2 give E = (1/2, 1/4), Var x = 3/4, Var y = 9/16 - 1/pi.
_MOONS_NOISE = 0.05
_MOONS_MEAN = (0.5, 0.25)
_MOONS_VAR = (0.75 + _MOONS_NOISE**2, 9 / 16 - 1 / math.pi + _MOONS_NOISE**2)


def _two_moons(n: int, g: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    theta = math.pi * _uniform(n, g=g)
    y = torch.randint(0, 2, (n,), generator=g)
    inner = y.bool()
    c, s = torch.cos(theta), torch.sin(theta)
    x = torch.stack([torch.where(inner, 1 - c, c), torch.where(inner, 0.5 - s, s)], dim=1)
    return _to_standard_units(x + _MOONS_NOISE * _normal(n, 2, g=g), _MOONS_MEAN, _MOONS_VAR), y


def _checkerboard(n: int, g: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    # FFJORD's checkerboard: a 4x4 board on [-2, 2]^2 with 8 filled unit squares; square k is in
    # column c = k // 2, row r = 2 (k % 2) + c % 2. Each coordinate is then U[-2, 2]: mean 0, variance 4/3.
    y = torch.randint(0, 8, (n,), generator=g)
    col = y // 2
    row = 2 * (y % 2) + col % 2
    x = torch.stack([col, row], dim=1).double() - 2 + _uniform(n, 2, g=g)
    return _to_standard_units(x, (0.0, 0.0), (4 / 3, 4 / 3)), y


# FFJORD's rings: 4 concentric circles of radii 1..4, equal mass, radial Gaussian noise. Rotational
# symmetry: mean 0, per-coordinate variance E[r^2] / 2 = (mean(r_k^2) + noise^2) / 2 = (7.5 + noise^2) / 2.
_RINGS_NOISE = 0.1
_RINGS_VAR = (7.5 + _RINGS_NOISE**2) / 2


def _rings(n: int, g: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.randint(0, 4, (n,), generator=g)
    r = (y + 1).double() + _RINGS_NOISE * _normal(n, g=g)
    angle = 2 * math.pi * _uniform(n, g=g)
    x = r[:, None] * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return _to_standard_units(x, (0.0, 0.0), (_RINGS_VAR, _RINGS_VAR)), y


def _pinwheel(n: int, g: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    # Johnson et al. 2016 (SVAE), as in FFJORD: radial std 0.3, tangential std 0.1, rate 0.25, 5 arms.
    # f = (1 + 0.3 e0, 0.1 e1) is rotated by an angle growing with exp(f0). The 5-fold symmetry makes the
    # mean 0 and the covariance isotropic: per-coordinate variance E|f|^2 / 2 = (1 + 0.09 + 0.01) / 2 = 0.55.
    y = torch.randint(0, 5, (n,), generator=g)
    f0 = 1 + 0.3 * _normal(n, g=g)
    f1 = 0.1 * _normal(n, g=g)
    angle = 2 * math.pi * y.double() / 5 + 0.25 * torch.exp(f0)
    c, s = torch.cos(angle), torch.sin(angle)
    x = torch.stack([f0 * c + f1 * s, -f0 * s + f1 * c], dim=1)
    return _to_standard_units(x, (0.0, 0.0), (0.55, 0.55)), y


# FFJORD's 2spirals without its uniform offset: s = L sqrt(u), L = 3 pi (540 degrees); arm 0 at
# (-s cos s, s sin s), arm 1 its mirror through the origin, plus Gaussian noise. Mean 0 by symmetry;
# s has density 2s / L^2, so E[s^2 cos^2 s] = L^2/4 + 3/4 and E[s^2 sin^2 s] = L^2/4 - 3/4
# (integrate s^3 cos 2s by parts; cos 2L = 1, sin 2L = 0).
_SPIRAL_LENGTH = 3 * math.pi
_SPIRAL_NOISE = 0.3
_SPIRAL_VAR = (
    _SPIRAL_LENGTH**2 / 4 + 0.75 + _SPIRAL_NOISE**2,
    _SPIRAL_LENGTH**2 / 4 - 0.75 + _SPIRAL_NOISE**2,
)


def _spiral(n: int, g: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.randint(0, 2, (n,), generator=g)
    s = _SPIRAL_LENGTH * _uniform(n, g=g).sqrt()
    sign = (1 - 2 * y).double()[:, None]
    x = sign * torch.stack([-s * torch.cos(s), s * torch.sin(s)], dim=1) + _SPIRAL_NOISE * _normal(n, 2, g=g)
    return _to_standard_units(x, (0.0, 0.0), _SPIRAL_VAR), y


_TOYS: dict[str, _Toy] = {
    "eight_gaussians": _mixture("eight_gaussians"),
    "twenty_five_gaussians": _mixture("twenty_five_gaussians"),
    "swiss_roll": _swiss_roll,
    "two_moons": _two_moons,
    "checkerboard": _checkerboard,
    "rings": _rings,
    "pinwheel": _pinwheel,
    "spiral": _spiral,
}


# --- user point clouds --------------------------------------------------------------------------------


class PointCloudError(ValueError):
    """A user-supplied point cloud that cannot be used; the message says why, for a human."""


def load_points(source: Any, max_rows: int = MAX_POINTS) -> np.ndarray:
    """Read and validate a user point cloud: (n, 2) float64 in the user's own units.

    `source` is a path (str or Path), CSV bytes or text, a file-like object with .getvalue() or .read()
    (e.g. Streamlit's UploadedFile), or an array-like (numpy, list, torch) of shape (n, 2). CSV may have
    one header row of names (e.g. "x,y"); columns are split by comma, semicolon, tab or spaces;
    blank lines and lines starting with '#' are skipped. There is no CSV quoting: a field may be wrapped
    whole in double quotes ("x", "1.5"), any other quote is an error naming its line, so a stray quote can
    never merge lines. Values stay float64 here: call ``standardise`` before any float32 cast, or points
    far from the origin with a small spread lose their digits. Raises PointCloudError with the reason.
    """
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise ValueError(f"max_rows must be a positive integer, got {max_rows!r}")
    if isinstance(source, (np.ndarray, torch.Tensor, list, tuple)) or hasattr(source, "__array__"):
        return _points_from_array(source, max_rows)
    return _points_from_text(_read_text(source), max_rows)


def standardise(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Shift to zero mean and scale to unit average per-coordinate std: x_std = (points - mean) / scale.

    Computed in float64 and cast to float32 only at the end (the standardised values are O(1), where float32
    keeps 7 significant digits of every point's offset from the mean)."""
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2 or len(x) == 0:
        raise PointCloudError(f"expected points of shape (n, 2), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise PointCloudError("the points contain NaN or infinite values")
    mean = x.mean(axis=0)
    scale = float((x - mean).std(axis=0).mean())
    if not scale > 0:
        raise PointCloudError("the points have zero spread and cannot be standardised")
    return ((x - mean) / scale).astype(np.float32), mean, scale


def _read_text(source: Any) -> str:
    """The text behind a path, bytes, str or file-like source."""
    if hasattr(source, "getvalue"):  # Streamlit UploadedFile, io.BytesIO / StringIO: the whole content
        source = source.getvalue()
    elif hasattr(source, "read"):
        source = source.read()
    if isinstance(source, str) and "\n" not in source and "\r" not in source:
        # A one-line string is a path if it names a file or looks like one (a slash, an extension);
        # real CSV data has at least MIN_POINTS lines.
        candidate = source.strip()
        try:
            is_file = Path(candidate).is_file()
        except (OSError, ValueError):  # too long for a path, NUL byte
            is_file = False
        if is_file or re.search(r"[/\\]|\.[A-Za-z]\w*$", candidate):
            source = Path(candidate)
    if isinstance(source, Path):
        try:
            size = source.stat().st_size
            if size > MAX_TEXT_BYTES:
                raise PointCloudError(f"the file {source.name} is {size / 2**20:.1f} MB; the limit is "
                                      f"{MAX_TEXT_BYTES / 2**20:.0f} MB. Subsample your data")
            source = source.read_bytes()
        except FileNotFoundError:
            raise PointCloudError(f"file not found: {source}") from None
        except OSError as err:
            raise PointCloudError(f"cannot read file {source}: {err.strerror or err}") from None
    if isinstance(source, (bytes, bytearray, memoryview, str)) and len(source) > MAX_TEXT_BYTES:
        raise PointCloudError(f"the input is {len(source) / 2**20:.1f} MB; the limit is "
                              f"{MAX_TEXT_BYTES / 2**20:.0f} MB. Subsample your data")
    if isinstance(source, (bytes, bytearray, memoryview)):
        try:
            source = bytes(source).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise PointCloudError("the file is not UTF-8 text; expected a CSV file of x,y numbers") from None
    if not isinstance(source, str):
        raise PointCloudError(
            f"cannot read points from an object of type {type(source).__name__}; expected a file path, "
            "CSV text or bytes, an uploaded file, or an array of shape (n, 2)"
        )
    return source.removeprefix("\ufeff")


def _delimiter(first_line: str) -> str | None:
    """The column separator, from the first line: ';' or ',' if it has one, else None (whitespace)."""
    return next((d for d in ";," if d in first_line), None)


def _fields(line: str, number: int, delimiter: str | None) -> list[str]:
    """The fields of one line. No CSV quoting: a field wrapped whole in double quotes is unwrapped, any other
    quote is an error (so nothing ever spans lines), and every field is bounded in length."""
    fields = [f.strip() for f in line.split(delimiter)] if delimiter else line.split()
    for j, f in enumerate(fields):
        if len(f) > MAX_FIELD_CHARS:
            raise PointCloudError(f"line {number}, field {j + 1} is {len(f):,} characters long; the limit is "
                                  f"{MAX_FIELD_CHARS:,} (expected a number)")
        if '"' in f:
            if len(f) >= 2 and f[0] == f[-1] == '"' and '"' not in f[1:-1]:
                fields[j] = f[1:-1].strip()
            else:
                raise PointCloudError(f"line {number} has a stray quote in {_shorten(f)!r}; quoting is not "
                                      "supported: remove the quotes (values are plain numbers, one point per line)")
    return fields


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _points_from_text(text: str, max_rows: int) -> np.ndarray:
    numbered = []
    for i, line in enumerate(re.split(r"\r\n|\r|\n", text), start=1):  # editors' line numbers, no \f or \x1c
        if len(line) > MAX_LINE_CHARS:
            raise PointCloudError(f"line {i} is {len(line):,} characters long; the limit is {MAX_LINE_CHARS:,} "
                                  "(expected one x, y point per line)")
        if (t := line.strip()) and t[0] != "#":
            numbered.append((i, t))
    if not numbered:
        raise PointCloudError("no points found: the input is empty")
    if not any(_is_number(f) for f in _fields(numbered[0][1], numbered[0][0], _delimiter(numbered[0][1]))):
        if len(numbered) == 1:  # a header row of names, and nothing else
            raise PointCloudError(f"no points found: only a header row ({_shorten(numbered[0][1])!r}) and no data")
        numbered = numbered[1:]
    delimiter = _delimiter(numbered[0][1])  # from the first row of numbers (a header may be spaced differently)
    line_numbers = [i for i, _ in numbered]
    _check_columns(len(_fields(numbered[0][1], numbered[0][0], delimiter)))
    _check_count(len(numbered), max_rows)
    rows = []
    for number, line in numbered:
        row = _fields(line, number, delimiter)
        if len(row) != 2:
            raise PointCloudError(f"line {number} has {len(row)} values; expected 2 (x, y) like the first row")
        rows.append(row)

    def where(i: int) -> str:
        return f"line {line_numbers[i]}"

    return _check_values(_parse_numbers(rows, where), where)


def _points_from_array(source: Any, max_rows: int) -> np.ndarray:
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
    try:
        arr = np.asarray(source)
    except (ValueError, TypeError):  # ragged nesting
        raise PointCloudError("the rows have different lengths; expected n rows of 2 numbers (x, y)") from None
    if arr.ndim != 2:
        raise PointCloudError(f"expected an array of shape (n, 2) with columns x, y; got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise PointCloudError("no points found: the array has no rows")
    _check_columns(arr.shape[1])
    _check_count(arr.shape[0], max_rows)
    if arr.dtype.kind not in "iufUSO":
        raise PointCloudError(f"expected numbers, got an array of dtype {arr.dtype}")

    def where(i: int) -> str:
        return f"row index {i}"

    return _check_values(_parse_numbers(arr.tolist() if arr.dtype.kind in "USO" else arr, where), where)


def _check_columns(k: int) -> None:
    if k == 1:
        raise PointCloudError(
            "found only one column; expected 2 columns (x, y) separated by a comma, semicolon, tab or spaces"
        )
    if k != 2:
        raise PointCloudError(f"expected exactly 2 columns (x, y), found {k}")


def _check_count(n: int, max_rows: int) -> None:
    if n > max_rows:
        raise PointCloudError(f"too many points: {n:,} rows; the limit is {max_rows:,}. Subsample your data")
    if n < MIN_POINTS:
        raise PointCloudError(f"too few points: found {n}, at least {MIN_POINTS} are needed")


def _parse_numbers(rows: Any, where: Callable[[int], str]) -> np.ndarray:
    """(n, 2) texts or numbers -> float64; on failure, name the first unreadable cell."""
    try:
        return np.asarray(rows, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        pass
    values = np.empty((len(rows), 2))
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            try:
                values[i, j] = float(cell)
            except OverflowError:  # an integer beyond float64 (e.g. 10**400 in a list)
                values[i, j] = math.inf  # then reported with the other non-finite values
            except (ValueError, TypeError):
                column = f"column {j + 1} ({'xy'[j]})"
                text = str(cell).strip()
                if not text:
                    raise PointCloudError(f"{where(i)}, {column} is empty; expected a number") from None
                hint = " (use '.' as the decimal point)" if re.fullmatch(r"[-+]?\d+,\d+", text) else ""
                message = f"{where(i)}, {column}: cannot read {_shorten(text)!r} as a number{hint}"
                raise PointCloudError(message) from None
    return values


def _check_values(x: np.ndarray, where: Callable[[int], str]) -> np.ndarray:
    """Finite, bounded, not all identical; returns the float64 values (no float32 cast: see ``standardise``)."""
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise PointCloudError(
            f"{int(bad.sum())} row(s) contain NaN or infinite values (first at {where(int(np.argmax(bad)))}); "
            "remove or fix them"
        )
    magnitude = np.abs(x).max(axis=1)
    if magnitude.max() > MAX_ABS_VALUE:
        i = int(np.argmax(magnitude))
        raise PointCloudError(
            f"values must lie within ±{MAX_ABS_VALUE:,.0f}; the largest magnitude found is {magnitude[i]:.4g} "
            f"(at {where(i)}). Rescale your data"
        )
    points = np.ascontiguousarray(x, dtype=np.float64)
    if (points == points[0]).all():
        raise PointCloudError(
            f"all {len(points)} points are identical ({points[0, 0]:.17g}, {points[0, 1]:.17g}); "
            "a cloud with zero spread cannot be standardised"
        )
    return points

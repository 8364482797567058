"""A drawing turned into a 2D point cloud: strokes and clicks read from a Fabric.js canvas (the JSON that
streamlit-drawable-canvas returns), mapped from canvas pixels to data units, and points spread evenly along them.

    strokes = to_data_units(strokes_from_fabric(json_data), (400, 400), (-4, 4), (-4, 4))
    x = points_along_strokes(clip_strokes(strokes, (-4, 4), (-4, 4)), spacing=0.1, jitter=0.05,
                             generator=np.random.default_rng(0))  # then core.data.toy2d.load_points, standardise
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.data.toy2d import MAX_POINTS, PointCloudError

# Fabric.js (v7, as bundled by streamlit-drawable-canvas 0.13) serialises an object by its origin point (left, top),
# the origin's place in the object's box (originX / originY) and its transform (scale, flip, skew, angle). A free-hand
# stroke is a "Path" of absolute SVG commands in canvas pixels (M, then Q per mouse move, then L); the point tool
# adds a "Circle" whose centre is the click.
MAX_COMMANDS = 50_000  # path commands in one drawing: a free-hand stroke writes one per mouse move
_ORIGIN = {"left": -0.5, "top": -0.5, "center": 0.0, "right": 0.5, "bottom": 0.5}  # Fabric's resolveOrigin
_CURVE_STEPS = 8  # points per quadratic segment when a stroke is flattened (its segments are a few pixels long)


def strokes_from_fabric(json_data: dict[str, Any] | None) -> list[np.ndarray]:
    """The strokes of a Fabric.js canvas JSON as polylines (k, 2) in canvas pixels (y down).

    "Path" objects (free-hand strokes) give one polyline per subpath, their quadratic curves flattened; "Circle"
    objects (the point tool) give one single-point polyline at their centre. An object moved, scaled or rotated with
    the canvas's edit tool is placed where it is shown. Raises PointCloudError for any other object or malformed data.
    """
    if json_data is None:
        return []
    objects = json_data.get("objects", []) if isinstance(json_data, dict) else None
    if not isinstance(objects, list):
        raise PointCloudError("the drawing's data is malformed: expected a canvas JSON with a list of objects")
    commands = sum(len(o["path"]) for o in objects if isinstance(o, dict) and isinstance(o.get("path"), list))
    if commands > MAX_COMMANDS:
        raise PointCloudError(f"the drawing has {commands:,} path commands; the limit is {MAX_COMMANDS:,}. "
                              "Clear some strokes")
    strokes: list[np.ndarray] = []
    for i, obj in enumerate(objects):
        kind = str(obj.get("type", "")).lower() if isinstance(obj, dict) else ""
        if kind == "path":
            subpaths, extremes = _path_polylines(obj.get("path"), i)
            if not subpaths:
                continue
            every = np.concatenate(subpaths + extremes)  # Fabric's bounding box of the path, which it centres
            lo, hi = every.min(axis=0), every.max(axis=0)
            offset = (lo + hi) / 2  # Fabric's pathOffset
            A, centre = _placement(obj, hi - lo, i)
            strokes += [centre + (p - offset) @ A.T for p in subpaths]
        elif kind == "circle":
            r = _number(obj, "radius", i, 0.0)
            _, centre = _placement(obj, np.array([2 * r, 2 * r]), i)
            strokes.append(centre[None, :])
        else:
            raise PointCloudError(f"object {i + 1} of the drawing is a {kind or 'thing of no type'!r}; only strokes "
                                  "(free-hand paths) and clicks (points) become data")
    return strokes


def fabric_dots(points_px: np.ndarray, radius: float = 3.0, stroke_width: float = 3.0,
                color: str = "black") -> dict[str, Any]:
    """A Fabric.js canvas JSON with one "Circle" per point (n, 2) in canvas pixels, as the canvas's point tool
    draws them: the inverse of ``strokes_from_fabric`` for clicks (a drawing restored from a list of points)."""
    pad = radius + stroke_width / 2  # the tool puts the circle's left edge, stroke included, this far left
    return {"objects": [{"type": "Circle", "originX": "left", "originY": "center", "left": float(x) - pad,
                         "top": float(y), "radius": radius, "strokeWidth": stroke_width, "stroke": color,
                         "fill": color, "selectable": False, "evented": False}
                        for x, y in np.asarray(points_px, dtype=np.float64).reshape(-1, 2)]}


def to_data_units(strokes_px: list[np.ndarray], canvas: tuple[int, int], xlim: tuple[float, float],
                  ylim: tuple[float, float]) -> list[np.ndarray]:
    """Canvas pixels (y down, (0, 0) the top-left corner of a canvas of (width, height) pixels) -> data units on
    the axes xlim x ylim that the canvas shows (y up)."""
    (w, h), (x0, x1), (y0, y1) = canvas, xlim, ylim
    scale = np.array([(x1 - x0) / w, -(y1 - y0) / h])
    return [np.array([x0, y1]) + s * scale for s in strokes_px]


def to_pixels(points: np.ndarray, canvas: tuple[int, int], xlim: tuple[float, float],
              ylim: tuple[float, float]) -> np.ndarray:
    """Data units -> canvas pixels: the inverse of ``to_data_units`` for an (n, 2) array."""
    (w, h), (x0, x1), (y0, y1) = canvas, xlim, ylim
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return np.stack([(p[:, 0] - x0) * w / (x1 - x0), (y1 - p[:, 1]) * h / (y1 - y0)], axis=1)


def clip_strokes(strokes: list[np.ndarray], xlim: tuple[float, float],
                 ylim: tuple[float, float]) -> list[np.ndarray]:
    """The parts of each polyline inside the box xlim x ylim (a stroke that leaves the box is cut at its edge and
    may become several); clicks outside the box are dropped. Liang & Barsky (1984) line clipping, per segment."""
    lo, hi = np.array([xlim[0], ylim[0]]), np.array([xlim[1], ylim[1]])
    out: list[np.ndarray] = []
    for s in strokes:
        if len(s) == 1:
            if ((s[0] >= lo) & (s[0] <= hi)).all():
                out.append(s)
            continue
        a, d = s[:-1], np.diff(s, axis=0)
        t0, t1 = np.zeros(len(d)), np.ones(len(d))
        for c in range(2):  # the segment a + t d, 0 <= t <= 1, inside lo[c] <= x_c <= hi[c]
            with np.errstate(divide="ignore", invalid="ignore"):
                ta, tb = (lo[c] - a[:, c]) / d[:, c], (hi[c] - a[:, c]) / d[:, c]
            moving = d[:, c] != 0
            t0 = np.where(moving, np.maximum(t0, np.minimum(ta, tb)), t0)
            t1 = np.where(moving, np.minimum(t1, np.maximum(ta, tb)), t1)
            outside = ~moving & ((a[:, c] < lo[c]) | (a[:, c] > hi[c]))
            t1 = np.where(outside, -1.0, t1)
        k = np.flatnonzero(t0 <= t1)  # the segments with a part inside
        if not len(k):
            continue
        joined = np.zeros(len(d), dtype=bool)  # segment j continues the piece of segment j - 1
        joined[1:] = (t0[1:] == 0) & (t0[:-1] <= t1[:-1]) & (t1[:-1] == 1)
        new = ~joined[k]  # a piece starts: the first segment inside, or the first after a gap
        at = np.concatenate([[0], np.cumsum(1 + new)[:-1]])  # a new piece writes its start point, then its end
        points = np.empty((int((1 + new).sum()), 2))
        points[at[new]] = a[k[new]] + t0[k[new], None] * d[k[new]]
        points[at + new] = a[k] + t1[k, None] * d[k]
        out += np.split(points, at[new][1:])
    return out


def points_along_strokes(strokes: list[np.ndarray], spacing: float, jitter: float,
                         generator: np.random.Generator | None = None, max_points: int = MAX_POINTS) -> np.ndarray:
    """Points (n, 2) spread evenly by arc length along each polyline (k, 2), about ``spacing`` apart (both ends
    included), plus isotropic Gaussian noise of std ``jitter``; all in the strokes' units.

    A stroke shorter than spacing / 2 (a click, a single-point polyline) gives one point, at its middle. Raises
    PointCloudError before any point is made when there would be more than ``max_points``.
    """
    if not (math.isfinite(spacing) and spacing > 0):
        raise ValueError(f"spacing must be a positive number, got {spacing!r}")
    if not (math.isfinite(jitter) and jitter >= 0):
        raise ValueError(f"jitter must be a non-negative number, got {jitter!r}")
    strokes = [np.asarray(s, dtype=np.float64) for s in strokes]
    if any(s.ndim != 2 or s.shape[1] != 2 or len(s) == 0 for s in strokes):
        raise ValueError(f"strokes must be polylines of shape (k, 2), k >= 1; got {[s.shape for s in strokes]}")
    arcs = [np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(s, axis=0), axis=1))]) for s in strokes]
    counts = [int(round(arc[-1] / spacing)) + 1 for arc in arcs]
    total = sum(counts)
    if total > max_points:
        raise PointCloudError(f"the drawing would make {total:,} points; the limit is {max_points:,}. "
                              "Lower the density")
    parts = []
    for s, arc, n in zip(strokes, arcs, counts, strict=True):
        at = np.linspace(0.0, arc[-1], n) if n > 1 else np.array([arc[-1] / 2])
        parts.append(np.stack([np.interp(at, arc, s[:, 0]), np.interp(at, arc, s[:, 1])], axis=1))
    points = np.concatenate(parts) if parts else np.zeros((0, 2))
    g = generator if generator is not None else np.random.default_rng()
    return points + jitter * g.standard_normal(points.shape)


# --- Fabric.js objects --------------------------------------------------------------------------------------------


def _number(obj: dict[str, Any], key: str, i: int, default: float) -> float:
    """A finite number field of object i (booleans and text refused), or the default when it is absent."""
    v = obj.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise PointCloudError(f"object {i + 1} of the drawing has a malformed {key!r}: {v!r}")
    return float(v)


def _placement(obj: dict[str, Any], size: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
    """The object's linear map A (2, 2) and its centre on the canvas, so that a point p of the object's own
    coordinates (centred on its box) is drawn at centre + A p: Fabric's calcTransformMatrix (translate to the
    centre, rotate by angle, scale with flips, skewX, skewY) and translateToCenterPoint (origin -> centre)."""
    sx, sy = _number(obj, "scaleX", i, 1.0), _number(obj, "scaleY", i, 1.0)
    sx, sy = -sx if obj.get("flipX") is True else sx, -sy if obj.get("flipY") is True else sy
    kx, ky = (math.tan(math.radians(_number(obj, k, i, 0.0))) for k in ("skewX", "skewY"))
    dims = np.array([[sx, 0.0], [0.0, sy]]) @ np.array([[1.0, kx], [0.0, 1.0]]) @ np.array([[1.0, 0.0], [ky, 1.0]])
    angle = math.radians(_number(obj, "angle", i, 0.0))
    R = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    stroke = _number(obj, "strokeWidth", i, 1.0)
    uniform = obj.get("strokeUniform") is True  # Fabric's _getTransformedDimensions: a uniform stroke is added
    box = np.abs(dims) @ (size + (0.0 if uniform else stroke)) + (stroke if uniform else 0.0)  # after scaling
    origin = np.array([_ORIGIN.get(obj.get("originX", "center"), np.nan),
                       _ORIGIN.get(obj.get("originY", "center"), np.nan)])
    if np.isnan(origin).any():
        raise PointCloudError(f"object {i + 1} of the drawing has an unknown origin "
                              f"({obj.get('originX')!r}, {obj.get('originY')!r})")
    corner = np.array([_number(obj, "left", i, 0.0), _number(obj, "top", i, 0.0)])
    return R @ dims, corner + R @ (-origin * box)


def _path_polylines(path: Any, i: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The subpaths of an absolute SVG path (M, L, Q, Z, as Fabric's PencilBrush writes them) as polylines, and
    the points that widen Fabric's bounding box beyond its quadratic segments (``_box_extremes``).

    One pass in Python checks the commands and notes each one's end point (and a Q's control point); the curves
    are then flattened all at once (a long scribble has tens of thousands of commands)."""
    if not isinstance(path, list):
        raise PointCloudError(f"object {i + 1} of the drawing is a path without a list of commands")
    arity = {"M": 2, "L": 2, "Q": 4, "Z": 0}
    ends: list[Any] = []  # each command's end point (x, y)
    controls: list[Any] = []  # each Q's control point
    is_q: list[bool] = []
    starts: list[int] = []  # the index of each subpath's M
    for cmd in path:
        op = cmd[0] if isinstance(cmd, list) and cmd else None
        if op not in arity or len(cmd) != 1 + arity[op]:
            raise PointCloudError(f"object {i + 1} of the drawing has an unsupported path command {cmd!r}; "
                                  "expected M, L, Q or Z with absolute coordinates")
        if not all(type(v) in (int, float) for v in cmd[1:]):  # bool and str are refused too
            raise PointCloudError(f"object {i + 1} of the drawing has a malformed path command: {cmd!r}")
        if op == "M":
            starts.append(len(ends))
        elif not starts:
            raise PointCloudError(f"object {i + 1} of the drawing has a path that does not start with M")
        if op == "Q":
            controls.append(cmd[1:3])
        ends.append(cmd[-2:] if op != "Z" else ends[starts[-1]])  # Z: back to the subpath's start
        is_q.append(op == "Q")
    if not ends:
        return [], []
    end, q = np.asarray(ends, dtype=np.float64), np.asarray(is_q)
    if not (np.isfinite(end).all() and np.isfinite(np.asarray(controls, dtype=np.float64)).all()):
        raise PointCloudError(f"object {i + 1} of the drawing has a malformed path command: a coordinate is not "
                              "a finite number")
    qi = np.flatnonzero(q)  # a Q never comes first (M does), so its start point is the previous command's end
    p0, p1, p2 = end[qi - 1], np.asarray(controls, dtype=np.float64).reshape(-1, 2), end[qi]
    t = np.linspace(0, 1, _CURVE_STEPS + 1)[1:, None]  # drawn as B(t) = (1 - t)^2 p0 + 2 t (1 - t) p1 + t^2 p2
    curves = (1 - t) ** 2 * p0[:, None] + 2 * t * (1 - t) * p1[:, None] + t**2 * p2[:, None]  # (n_q, steps, 2)
    counts = np.where(q, _CURVE_STEPS, 1)  # the points each command adds to its polyline
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    points = np.empty((int(counts.sum()), 2))
    points[first[~q]] = end[~q]
    points[(first[qi, None] + np.arange(_CURVE_STEPS)).ravel()] = curves.reshape(-1, 2)
    polylines = np.split(points, first[starts[1:]])
    return polylines, [_box_extremes(p0, p1, p2).reshape(-1, 2)]


def _box_extremes(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """Where Fabric's bounding box of quadratic segments (n, 2 each) reaches, (2, n, 2): Path._calcBoundsFromPath
    bounds a Q as the cubic (p0, p1, p1, p2), which bulges further than the quadratic it draws, and centres the path
    on that box. The cubic's derivative is 3 ((1 - t)^2 a + t^2 b) with a = p1 - p0, b = p2 - p1: zero where
    (a + b) t^2 - 2 a t + a = 0, per coordinate; the roots are clipped to [0, 1] (an end point is in the box anyway)."""
    a, b = p1 - p0, p2 - p1
    root = np.sqrt(np.maximum(-a * b, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        roots = np.stack([(a + root) / (a + b), (a - root) / (a + b)])  # (2 roots, n, 2 coordinates)
    t = np.clip(np.nan_to_num(np.where(a + b == 0, 0.5, roots), nan=0.0, posinf=0.0, neginf=0.0), 0.0, 1.0)
    u = 1 - t
    return u**3 * p0 + 3 * u * t * p1 + t**3 * p2  # 3 u^2 t + 3 u t^2 = 3 u t: both control points are p1

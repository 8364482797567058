"""core.data.drawing: Fabric.js canvas JSON (as streamlit-drawable-canvas 0.13 / Fabric 7.4 write it) to strokes,
pixels to data units, clipping to the axes, points spread along strokes, and bad input.
Run: python -m pytest tests/core/test_drawing.py -q"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from core.data.drawing import (
    MAX_COMMANDS,
    clip_strokes,
    fabric_dots,
    points_along_strokes,
    strokes_from_fabric,
    to_data_units,
    to_pixels,
)
from core.data.toy2d import MIN_POINTS, PointCloudError, load_points, standardise

AXES = ((-4.0, 4.0), (-4.0, 4.0))
CANVAS = (400, 400)

# Recorded in Chromium from the canvas (drawing_mode="freedraw", stroke_width=3): a diagonal stroke, a click
# (mouse down and up without moving), and a stroke that left the canvas on the right (x up to 450 px).
STROKE = {"type": "Path", "version": "7.4.0", "originX": "center", "originY": "center", "left": 150, "top": 149.2188,
          "width": 100.006, "height": 100.006, "strokeWidth": 3, "scaleX": 1, "scaleY": 1, "angle": 0,
          "flipX": False, "flipY": False, "skewX": 0, "skewY": 0, "strokeUniform": False,
          "path": [["M", 99.997, 99.21575], *[["Q", 100 + 5 * k, 99.21875 + 5 * k, 102.5 + 5 * k, 101.71875 + 5 * k]
                                              for k in range(18)],
                   ["Q", 190, 189.21875, 195, 194.21875], ["L", 200.003, 199.22175]]}
CLICK = {"type": "Path", "version": "7.4.0", "originX": "center", "originY": "center", "left": 300, "top": 299.2188,
         "width": 0.006, "height": 0, "strokeWidth": 3, "scaleX": 1, "scaleY": 1, "angle": 0,
         "path": [["M", 299.997, 299.21875], ["L", 300.003, 299.21875]]}
OUT_RIGHT = {"type": "Path", "version": "7.4.0", "originX": "center", "originY": "center", "left": 400,
             "top": 99.2188, "width": 100.006, "height": 0, "strokeWidth": 3, "scaleX": 1, "scaleY": 1, "angle": 0,
             "path": [["M", 349.997, 99.21875], *[["Q", 350 + 10 * k, 99.21875, 355 + 10 * k, 99.21875]
                                                  for k in range(8)],
                      ["Q", 430, 99.21875, 440, 99.21875], ["L", 450.003, 99.21875]]}
# drawing_mode="point", point_display_radius=3, stroke_width=3: a click at (100, 199.21875)
DOT = {"type": "Circle", "version": "7.4.0", "radius": 3, "startAngle": 0, "endAngle": 360, "originX": "left",
       "originY": "center", "left": 95.5, "top": 199.2188, "width": 6, "height": 6, "strokeWidth": 3, "scaleX": 1,
       "scaleY": 1, "angle": 0}
# The STROKE moved by (+40, -30) with the toolbar's edit toggle: only left / top change.
MOVED = {**STROKE, "left": 190, "top": 119.2188}
# An L-shaped stroke rotated with the edit tool's rotation handle, and a bent stroke scaled by a corner handle. In
# Chromium every point strokes_from_fabric gives for these lay on the ink Fabric rendered (314 of 314 each).
L_PATH = json.loads(
    '[["M",119.997,119.21875],' + ",".join(f'["Q",{120 + 5 * k},119.21875,{122.5 + 5 * k},119.21875]'
                                           for k in range(20)) +
    ',["Q",220,119.21875,220,121.71875],' + ",".join(f'["Q",220,{124.21875 + 5 * k},220,{126.71875 + 5 * k}]'
                                                      for k in range(17)) +
    ',["Q",220,209.21875,220,214.21875],["L",220,219.22175]]')
ROTATED = {"type": "Path", "originX": "center", "originY": "center", "left": 169.9985, "top": 169.2202,
           "width": 100.003, "height": 100.003, "strokeWidth": 3, "scaleX": 1, "scaleY": 1, "angle": 59.9073,
           "path": L_PATH}
BENT_PATH = ([["M", 59.997, 59.21575]] + [["Q", 60 + 5 * k, 59.21875 + 2 * k, 62.5 + 5 * k, 60.21875 + 2 * k]
                                          for k in range(20)]
             + [["Q", 160 - 2 * k, 99.21875 + 5 * k, 159 - 2 * k, 101.71875 + 5 * k] for k in range(18)]
             + [["Q", 124, 189.21875, 122, 194.21875], ["L", 119.997, 199.22175]])
SCALED = {"type": "Path", "originX": "center", "originY": "center", "left": 128.4811, "top": 155.2347,
          "width": 99.6278, "height": 140.006, "strokeWidth": 3, "scaleX": 1.3638, "scaleY": 1.3638, "angle": 0,
          "path": BENT_PATH}


def fabric_box(path: list) -> tuple[np.ndarray, np.ndarray]:
    """Fabric's bounding box of a path, by brute force: every M / L point, and each Q bounded as the cubic
    (p0, p1, p1, p2) that Fabric 7's Path._calcBoundsFromPath takes for it, sampled at 2,001 points."""
    t = np.linspace(0, 1, 2001)[:, None]
    out, p = [], None
    for cmd in path:
        if cmd[0] == "Q":
            c, e = np.array(cmd[1:3]), np.array(cmd[3:5])
            out.append((1 - t) ** 3 * p + 3 * (1 - t) * t * c + t**3 * e)
            p = e
        else:
            p = np.array(cmd[1:3], dtype=float)
            out.append(p[None])
    every = np.concatenate(out)
    return every.min(axis=0), every.max(axis=0)


def raw_points(path: list) -> np.ndarray:
    """The path's polyline in its own coordinates: the object left unmoved (left / top at its box's centre)."""
    lo, hi = fabric_box(path)
    (s,) = strokes_from_fabric({"objects": [{"type": "Path", "left": (lo[0] + hi[0]) / 2, "top": (lo[1] + hi[1]) / 2,
                                             "path": path}]})
    return s


# --- the canvas JSON -----------------------------------------------------------------------------------------------


def test_recorded_strokes_are_read_in_canvas_pixels():
    strokes = strokes_from_fabric({"version": "7.4.0", "objects": [STROKE, CLICK, OUT_RIGHT, DOT]})
    assert len(strokes) == 4
    s, click, out, dot = strokes
    # an unedited stroke is drawn where its commands say: its first and last points, and every Q end point
    np.testing.assert_allclose(s[0], [99.997, 99.21575], atol=1e-3)
    np.testing.assert_allclose(s[-1], [200.003, 199.22175], atol=1e-3)
    ends = np.array([c[-2:] for c in STROKE["path"][1:]])
    assert all(np.abs(s - e).sum(axis=1).min() < 1e-3 for e in ends)
    assert len(s) == 1 + 19 * 8 + 1  # 8 points per quadratic segment
    assert click.shape == (2, 2) and np.linalg.norm(click[1] - click[0]) < 0.01  # a click: a zero-length stroke
    assert out[:, 0].max() == pytest.approx(450.003, abs=1e-3)  # kept past the canvas: clip_strokes cuts it
    np.testing.assert_allclose(dot, [[100.0, 199.2188]])  # the circle's centre is the click


def test_an_empty_canvas_has_no_strokes():
    assert strokes_from_fabric(None) == []
    assert strokes_from_fabric({"objects": [], "background": ""}) == []
    assert strokes_from_fabric({"version": "7.4.0"}) == []


def test_a_moved_stroke_is_read_where_it_is_shown():
    (s,) = strokes_from_fabric({"objects": [STROKE]})
    (m,) = strokes_from_fabric({"objects": [MOVED]})
    np.testing.assert_allclose(m - s, np.broadcast_to([40.0, -30.0], s.shape), atol=1e-3)


def test_rotated_and_scaled_strokes_follow_fabric():
    """Fabric draws an object's point p (its own coordinates) at centre + R(angle) S (p - box centre), where the
    box is its own (wider than the drawn curve where a stroke bends: SCALED's is 0.34 px wider)."""
    for obj in (ROTATED, SCALED):
        lo, hi = fabric_box(obj["path"])
        np.testing.assert_allclose(hi - lo, [obj["width"], obj["height"]], atol=1e-3)  # as Fabric wrote it
        a = math.radians(obj["angle"])
        R = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        own = raw_points(obj["path"])
        np.testing.assert_allclose(own[0], obj["path"][0][1:], atol=1e-6)  # the parser centres it on the same box
        expected = np.array([obj["left"], obj["top"]]) + (own - (lo + hi) / 2) @ (R * obj["scaleX"]).T
        (got,) = strokes_from_fabric({"objects": [obj]})
        np.testing.assert_allclose(got, expected, atol=1e-3)


def test_other_origins_and_flips_place_the_same_shape():
    (centred,) = strokes_from_fabric({"objects": [STROKE]})
    half = (np.array([STROKE["width"], STROKE["height"]]) + STROKE["strokeWidth"]) / 2
    corner = {**STROKE, "originX": "left", "originY": "top", "left": 150 - half[0], "top": 149.2188 - half[1]}
    (s,) = strokes_from_fabric({"objects": [corner]})
    np.testing.assert_allclose(s, centred, atol=1e-6)
    (f,) = strokes_from_fabric({"objects": [{**STROKE, "flipX": True}]})  # mirrored about the vertical centre line
    np.testing.assert_allclose(f[:, 0], 2 * 150 - centred[:, 0], atol=1e-3)
    np.testing.assert_allclose(f[:, 1], centred[:, 1], atol=1e-6)


def test_subpaths_and_z():
    path = [["M", 0, 0], ["L", 10, 0], ["L", 10, 10], ["Z"], ["M", 50, 50], ["L", 60, 50]]
    a, b = strokes_from_fabric({"objects": [{"type": "Path", "left": 30, "top": 25, "path": path}]})
    np.testing.assert_allclose(a, [[0, 0], [10, 0], [10, 10], [0, 0]])
    np.testing.assert_allclose(b, [[50, 50], [60, 50]])


def test_dots_round_trip():
    points = np.array([[10.0, 20.0], [399.5, 0.25], [200.0, 200.0]])
    drawing = fabric_dots(points, radius=3, stroke_width=3)
    assert {o["type"] for o in drawing["objects"]} == {"Circle"}
    np.testing.assert_allclose(np.concatenate(strokes_from_fabric(drawing)), points, atol=1e-12)
    # the same format as the canvas's point tool writes (DOT, recorded)
    (dot,) = fabric_dots(np.array([[100.0, 199.2188]]))["objects"]
    assert {k: dot[k] for k in ("originX", "originY", "left", "top", "radius")} == \
        {k: DOT[k] for k in ("originX", "originY", "left", "top", "radius")}


@pytest.mark.parametrize("json_data, message", [
    ({"objects": "many"}, "expected a canvas JSON with a list of objects"),
    ([1, 2], "expected a canvas JSON with a list of objects"),
    ({"objects": [{"type": "Rect", "left": 1, "top": 2}]}, "is a 'rect'; only strokes"),
    ({"objects": [7]}, "is a 'thing of no type'"),
    ({"objects": [{"type": "Path", "path": [["M", 0, 0], ["C", 1, 1, 2, 2, 3, 3]]}]}, "unsupported path command"),
    ({"objects": [{"type": "Path", "path": [["m", 0, 0], ["l", 1, 1]]}]}, "unsupported path command"),
    ({"objects": [{"type": "Path", "path": [["L", 0, 0]]}]}, "does not start with M"),
    ({"objects": [{"type": "Path", "path": [["M", 0, float("nan")]]}]}, "malformed path command"),
    ({"objects": [{"type": "Path", "path": [["M", "1", 2]]}]}, "malformed path command"),
    ({"objects": [{"type": "Path", "path": [["M", True, 2]]}]}, "malformed path command"),
    ({"objects": [{"type": "Path", "path": "M 0 0"}]}, "without a list of commands"),
    ({"objects": [{**STROKE, "left": float("inf")}]}, "malformed 'left'"),
    ({"objects": [{**STROKE, "scaleX": "2"}]}, "malformed 'scaleX'"),
    ({"objects": [{**STROKE, "originX": "middle"}]}, "unknown origin"),
    ({"objects": [{**DOT, "radius": None}]}, "malformed 'radius'"),
])
def test_malformed_canvas_json_is_a_message(json_data, message):
    with pytest.raises(PointCloudError, match="^object|^the drawing") as err:
        strokes_from_fabric(json_data)
    assert message in str(err.value)


def test_a_huge_drawing_is_refused_before_it_is_read():
    path = [["M", 0, 0]] + [["L", k % 400, k // 400] for k in range(MAX_COMMANDS)]
    with pytest.raises(PointCloudError, match=f"{MAX_COMMANDS + 1:,} path commands; the limit is {MAX_COMMANDS:,}"):
        strokes_from_fabric({"objects": [{"type": "Path", "path": path}]})


# --- pixels, data units, clipping ----------------------------------------------------------------------------------


def test_pixels_map_to_the_axes_with_y_up():
    corners = np.array([[0, 0], [400, 0], [0, 400], [400, 400], [200, 200], [300, 100]], dtype=float)
    (data,) = to_data_units([corners], CANVAS, *AXES)
    np.testing.assert_allclose(data, [[-4, 4], [4, 4], [-4, -4], [4, -4], [0, 0], [2, 2]])
    np.testing.assert_allclose(to_pixels(data, CANVAS, *AXES), corners)
    (wide,) = to_data_units([np.array([[50.0, 25.0]])], (200, 100), (0.0, 10.0), (-1.0, 1.0))
    np.testing.assert_allclose(wide, [[2.5, 0.5]])


def test_clipping_cuts_strokes_at_the_edge_of_the_axes():
    box = ((-1.0, 1.0), (-1.0, 1.0))
    (a,) = clip_strokes([np.array([[0.0, 0.0], [3.0, 1.0]])], *box)  # leaves through x = 1 at y = 1/3
    np.testing.assert_allclose(a, [[0, 0], [1, 1 / 3]])
    # out and back in: two pieces, each cut exactly at x = 1
    pieces = clip_strokes([np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 0.5], [0.0, 0.5]])], *box)
    assert len(pieces) == 2
    np.testing.assert_allclose(pieces[0], [[0, 0], [1, 0]])
    np.testing.assert_allclose(pieces[1], [[1, 0.5], [0, 0.5]])
    # a stroke crossing the whole box, corner to corner beyond it
    (d,) = clip_strokes([np.array([[-3.0, -3.0], [3.0, 3.0]])], *box)
    np.testing.assert_allclose(d, [[-1, -1], [1, 1]])
    # entirely outside, or a click outside: nothing; a click on the edge is kept; a stroke inside is unchanged
    assert clip_strokes([np.array([[2.0, 2.0], [3.0, 2.5]]), np.array([[1.5, 0.0]])], *box) == []
    inside = np.array([[0.0, 0.0], [0.5, 0.5], [-0.5, 0.9]])
    kept = clip_strokes([np.array([[1.0, -1.0]]), inside], *box)
    np.testing.assert_allclose(kept[0], [[1.0, -1.0]])
    np.testing.assert_allclose(kept[1], inside)


def test_the_recorded_stroke_past_the_canvas_is_cut_at_its_edge():
    strokes = to_data_units(strokes_from_fabric({"objects": [OUT_RIGHT]}), CANVAS, *AXES)
    (cut,) = clip_strokes(strokes, *AXES)
    assert cut[:, 0].max() == pytest.approx(4.0) and cut[:, 0].min() == pytest.approx(-4 + 349.997 / 50)


# --- points along strokes ------------------------------------------------------------------------------------------


def test_points_are_evenly_spaced_by_arc_length():
    line = np.array([[0.0, 0.0], [1.0, 0.0]])
    x = points_along_strokes([line], spacing=0.1, jitter=0.0)
    np.testing.assert_allclose(x, np.stack([np.linspace(0, 1, 11), np.zeros(11)], axis=1), atol=1e-12)
    # an L of length 2 with many vertices on one leg: spacing follows the arc, not the vertices
    ell = np.concatenate([np.stack([np.linspace(0, 1, 57), np.zeros(57)], axis=1), [[1.0, 1.0]]])
    x = points_along_strokes([ell], spacing=0.25, jitter=0.0)
    assert len(x) == 9
    arc = np.where(x[:, 1] == 0, x[:, 0], 1 + x[:, 1])
    np.testing.assert_allclose(np.diff(arc), 0.25, atol=1e-12)
    # a circle of radius 2 (polyline of 2,000 sides): about 2 pi r / spacing points, equal chords
    a = np.linspace(0, 2 * np.pi, 2001)
    circle = 2 * np.stack([np.cos(a), np.sin(a)], axis=1)
    x = points_along_strokes([circle], spacing=0.1, jitter=0.0)
    assert len(x) == round(4 * np.pi / 0.1) + 1
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 2.0, atol=1e-5)
    chords = np.linalg.norm(np.diff(x, axis=0), axis=1)
    assert chords.std() < 1e-6 and chords.mean() == pytest.approx(4 * np.sin(np.pi / (len(x) - 1)), rel=1e-6)


def test_clicks_and_short_strokes_give_one_point():
    clicks = [np.array([[0.5, -1.0]]), np.array([[2.0, 3.0]])]
    np.testing.assert_allclose(points_along_strokes(clicks, 0.1, 0.0), [[0.5, -1.0], [2.0, 3.0]])
    short = np.array([[0.0, 0.0], [0.04, 0.0]])  # shorter than half the spacing: its middle
    np.testing.assert_allclose(points_along_strokes([short], 0.1, 0.0), [[0.02, 0.0]])
    assert len(points_along_strokes([np.array([[0.0, 0.0], [0.06, 0.0]])], 0.1, 0.0)) == 2  # both ends
    assert points_along_strokes([], 0.1, 0.5).shape == (0, 2)


def test_jitter_is_gaussian_noise_of_that_std_drawn_from_the_generator():
    line = np.array([[-3.0, 0.0], [3.0, 0.0]])
    base = points_along_strokes([line], 0.001, 0.0)
    x = points_along_strokes([line], 0.001, 0.2, np.random.default_rng(7))
    noise = x - base
    assert len(x) == 6001
    np.testing.assert_allclose(noise, 0.2 * np.random.default_rng(7).standard_normal((6001, 2)), atol=1e-12)
    assert noise.std() == pytest.approx(0.2, rel=0.03) and abs(noise.mean()) < 0.01
    np.testing.assert_array_equal(x, points_along_strokes([line], 0.001, 0.2, np.random.default_rng(7)))
    assert not np.array_equal(x, points_along_strokes([line], 0.001, 0.2, np.random.default_rng(8)))


def test_too_many_points_are_refused_before_any_is_made():
    long = np.array([[0.0, 0.0], [1e6, 0.0]])  # 1e9 points at this spacing: refused from the lengths alone
    with pytest.raises(PointCloudError, match=r"would make 1,000,000,001 points; the limit is 100,000\. Lower the"):
        points_along_strokes([long], 1e-3, 0.1)
    with pytest.raises(PointCloudError, match="would make 11 points; the limit is 10"):
        points_along_strokes([np.array([[0.0, 0.0], [1.0, 0.0]])], 0.1, 0.0, max_points=10)


@pytest.mark.parametrize("kwargs, message", [
    ({"spacing": 0.0}, "spacing must be a positive number"),
    ({"spacing": -1.0}, "spacing must be a positive number"),
    ({"spacing": float("nan")}, "spacing must be a positive number"),
    ({"jitter": -0.1}, "jitter must be a non-negative number"),
    ({"jitter": float("inf")}, "jitter must be a non-negative number"),
    ({"strokes": [np.zeros((0, 2))]}, "strokes must be polylines of shape"),
    ({"strokes": [np.zeros((3, 3))]}, "strokes must be polylines of shape"),
])
def test_bad_arguments_raise(kwargs, message):
    args = {"strokes": [np.array([[0.0, 0.0], [1.0, 0.0]])], "spacing": 0.1, "jitter": 0.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        points_along_strokes(**args)


def test_a_drawing_goes_through_the_csv_validation():
    """The recorded drawing, end to end: canvas JSON -> data units -> clipped -> points -> load_points, standardise."""
    strokes = clip_strokes(to_data_units(strokes_from_fabric({"objects": [STROKE, CLICK, OUT_RIGHT, DOT]}), CANVAS,
                                         *AXES), *AXES)
    x = points_along_strokes(strokes, 0.1, 0.05, np.random.default_rng(0))
    # the diagonal: 2 sqrt(2) units long -> 29 points; the click and the dot: 1 each; the part inside: 1 unit -> 11
    assert len(x) == 29 + 1 + 11 + 1
    z, mean, scale = standardise(load_points(x))
    assert z.shape == x.shape and np.abs(z.mean(axis=0)).max() < 1e-6
    # a single click is too few points, with the engine's message
    one = points_along_strokes(to_data_units(strokes_from_fabric({"objects": [DOT]}), CANVAS, *AXES), 0.1, 0.05)
    with pytest.raises(PointCloudError, match=f"too few points: found 1, at least {MIN_POINTS} are needed"):
        load_points(one)

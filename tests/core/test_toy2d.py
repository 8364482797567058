"""Tests for core.data.toy2d: toy shapes, scale, determinism, exact mixtures, and point-cloud validation.

Run: PYTHONPATH=. python -m pytest tests/core/test_toy2d.py -q
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from core.data.toy2d import (
    MAX_POINTS,
    MIN_POINTS,
    MIXTURE_TOYS,
    NUM_CLASSES,
    TOY_NAMES,
    PointCloudError,
    load_points,
    mixture_spec,
    sample_toy,
    sample_toy_with_labels,
    standardise,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- toys


def test_names_and_classes_agree():
    assert set(TOY_NAMES) >= {
        "eight_gaussians", "twenty_five_gaussians", "swiss_roll", "two_moons",
        "checkerboard", "rings", "pinwheel", "spiral",
    }
    assert set(MIXTURE_TOYS) <= set(TOY_NAMES)
    assert set(NUM_CLASSES) == set(TOY_NAMES)


@pytest.mark.parametrize("name", TOY_NAMES)
def test_toy_is_finite_float32_and_standardised(name):
    # 200k points: the closed-form constants must give mean 0, std 1 to sampling error (~0.003).
    x = sample_toy(name, 200_000, generator=_gen())
    assert x.shape == (200_000, 2) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    assert x.mean(0).abs().max() < 0.02, x.mean(0)
    assert (x.std(0) - 1).abs().max() < 0.02, x.std(0)


@pytest.mark.parametrize("name", TOY_NAMES)
def test_toy_is_deterministic_given_the_generator(name):
    a = sample_toy(name, 1000, generator=_gen(1))
    b = sample_toy(name, 1000, generator=_gen(1))
    c = sample_toy(name, 1000, generator=_gen(2))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    x, _ = sample_toy_with_labels(name, 1000, generator=_gen(1))
    assert torch.equal(a, x)


@pytest.mark.parametrize("name", TOY_NAMES)
def test_labels_are_in_range_and_all_used(name):
    x, y = sample_toy_with_labels(name, 20_000, generator=_gen())
    assert y.shape == (20_000,) and y.dtype == torch.int64 and x.shape == (20_000, 2)
    assert y.min() >= 0 and y.max() < NUM_CLASSES[name]
    assert len(torch.unique(y)) == NUM_CLASSES[name]


def test_unknown_toy_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown toy 'xyz'; expected one of") as err:
        sample_toy("xyz", 10)
    assert all(name in str(err.value) for name in TOY_NAMES)


@pytest.mark.parametrize("n", [0, -3, 2.5, True, "10", None])
def test_bad_n_is_rejected(n):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        sample_toy("two_moons", n)


def test_numpy_integer_n_is_accepted():
    assert sample_toy("rings", np.int64(7), generator=_gen()).shape == (7, 2)


# ---------------------------------------------------------------- exact mixtures


def test_mixture_specs_match_their_definitions():
    # Independent reference: the definitions, written out again here.
    eight = mixture_spec("eight_gaussians")
    r = math.sqrt(2 * (1 - 0.1**2))
    ref = [(r * math.cos(2 * math.pi * k / 8), r * math.sin(2 * math.pi * k / 8)) for k in range(8)]
    np.testing.assert_allclose(np.sort(eight.means, axis=0), np.sort(np.array(ref), axis=0), atol=1e-12)
    assert eight.std == 0.1

    grid = mixture_spec("twenty_five_gaussians")
    d = math.sqrt((1 - 0.08**2) / 2)
    ref = sorted((i * d, j * d) for i in range(-2, 3) for j in range(-2, 3))
    np.testing.assert_allclose(np.array(sorted(map(tuple, grid.means))), np.array(ref), atol=1e-12)
    assert grid.std == 0.08

    for name in MIXTURE_TOYS:
        spec = mixture_spec(name)
        k = len(spec.means)
        assert spec.means.shape == (k, 2) and spec.means.dtype == np.float64
        np.testing.assert_allclose(spec.weights, np.full(k, 1 / k))
        assert spec.weights.sum() == pytest.approx(1)
        # Mixture moments: mean 0, per-coordinate variance sum_k w_k m_k^2 + std^2 = 1 exactly.
        np.testing.assert_allclose(spec.weights @ spec.means, 0, atol=1e-12)
        np.testing.assert_allclose(spec.weights @ spec.means**2 + spec.std**2, 1, atol=1e-12)


@pytest.mark.parametrize("name", MIXTURE_TOYS)
def test_mixture_samples_follow_the_spec_per_component(name):
    spec = mixture_spec(name)
    x, y = sample_toy_with_labels(name, 50_000, generator=_gen(3))
    x = x.double().numpy()
    y = y.numpy()
    assert set(np.unique(y)) == set(range(len(spec.means)))
    for k, mean in enumerate(spec.means):
        xk = x[y == k]
        assert len(xk) > 0.7 * len(x) * spec.weights[k]
        np.testing.assert_allclose(xk.mean(0), mean, atol=0.02)
        cov = np.cov(xk.T)
        np.testing.assert_allclose(np.sqrt(np.diag(cov)), spec.std, rtol=0.1)
        assert abs(cov[0, 1]) < 0.1 * spec.std**2


@pytest.mark.parametrize("name", ["two_moons", "xyz"])
def test_mixture_spec_rejects_other_names(name):
    with pytest.raises(ValueError, match="eight_gaussians, twenty_five_gaussians"):
        mixture_spec(name)


# ---------------------------------------------------------------- load_points: valid input


def _cloud(n: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.round(rng.normal(size=(n, 2)) * 5 + 100, 4)


def _csv(points: np.ndarray, header: str | None = "x,y", sep: str = ",") -> str:
    lines = ([header] if header is not None else []) + [f"{a}{sep}{b}" for a, b in points]
    return "\n".join(lines) + "\n"


def _check(result: np.ndarray, points: np.ndarray) -> None:
    assert result.dtype == np.float64 and result.shape == points.shape  # float64 until standardise
    np.testing.assert_allclose(result, points, rtol=1e-6)


@pytest.mark.parametrize("header", ["x,y", '"x","y"', "longitude, latitude", None])
def test_csv_text_with_and_without_header(header):
    points = _cloud()
    _check(load_points(_csv(points, header)), points)


@pytest.mark.parametrize("sep", [";", "\t", " ", " , ", "   "])
def test_other_delimiters(sep):
    points = _cloud()
    _check(load_points(_csv(points, None, sep)), points)


def test_blank_lines_comments_bom_and_crlf_are_tolerated():
    points = _cloud()
    text = "\ufeff# exported points\r\nx,y\r\n\r\n" + _csv(points, None).replace("\n", "\r\n") + "\n\n"
    _check(load_points(text), points)


def test_bytes_and_file_like_sources():
    points = _cloud()
    data = _csv(points).encode()
    _check(load_points(data), points)
    _check(load_points(bytearray(data)), points)
    _check(load_points(io.BytesIO(data)), points)
    _check(load_points(io.StringIO(data.decode())), points)
    consumed = io.BytesIO(data)
    consumed.read()  # Streamlit's UploadedFile may have been read already: getvalue() still has it all
    _check(load_points(consumed), points)


def test_object_with_only_read_is_accepted():
    class Upload:
        def __init__(self, data: bytes):
            self._data = data

        def read(self) -> bytes:
            return self._data

    points = _cloud()
    _check(load_points(Upload(_csv(points).encode())), points)


def test_path_sources(tmp_path):
    points = _cloud()
    path = tmp_path / "points.csv"
    path.write_text(_csv(points))
    _check(load_points(path), points)
    _check(load_points(str(path)), points)


def test_array_like_sources():
    points = _cloud()
    _check(load_points(points), points)
    _check(load_points(points.tolist()), points)
    _check(load_points(torch.tensor(points, dtype=torch.float64, requires_grad=True)), points)
    _check(load_points(points.astype(np.int64)), points.astype(np.int64).astype(np.float64))
    _check(load_points(points.astype(str)), points)


def test_max_rows_is_inclusive():
    points = _cloud(20)
    assert load_points(points, max_rows=20).shape == (20, 2)
    assert load_points(_cloud(MIN_POINTS)).shape == (MIN_POINTS, 2)


# ---------------------------------------------------------------- load_points: malformed input


@pytest.mark.parametrize("source", ["", "   \n\n  ", b"", io.BytesIO(b""), "# only a comment\n"])
def test_empty_input(source):
    with pytest.raises(PointCloudError, match="no points found: the input is empty"):
        load_points(source)


def test_empty_array():
    with pytest.raises(PointCloudError, match="no points found: the array has no rows"):
        load_points(np.zeros((0, 2)))


def test_header_without_rows():
    with pytest.raises(PointCloudError, match=r"only a header row \('x,y'\) and no data"):
        load_points("x,y\n")


@pytest.mark.parametrize("source", ["\n".join(str(i) for i in range(20)), np.arange(20.0)[:, None]])
def test_one_column(source):
    with pytest.raises(PointCloudError, match="found only one column; expected 2 columns"):
        load_points(source)


@pytest.mark.parametrize("k", [3, 5])
def test_too_many_columns(k):
    text = "\n".join(",".join(str(i + j) for j in range(k)) for i in range(20))
    with pytest.raises(PointCloudError, match=f"expected exactly 2 columns \\(x, y\\), found {k}"):
        load_points(text)
    with pytest.raises(PointCloudError, match=f"found {k}"):
        load_points(np.zeros((20, k)))


def test_ragged_row_names_its_line():
    text = _csv(_cloud()).splitlines()
    text[5] += ",7"
    with pytest.raises(PointCloudError, match="line 6 has 3 values; expected 2"):
        load_points("\n".join(text))
    with pytest.raises(PointCloudError, match="rows have different lengths"):
        load_points([[1.0, 2.0]] * 11 + [[3.0]])


def test_non_numeric_value_names_row_column_and_text():
    lines = _csv(_cloud()).splitlines()
    lines[4] = "1.5,abc"
    with pytest.raises(PointCloudError, match=r"line 5, column 2 \(y\): cannot read 'abc' as a number"):
        load_points("\n".join(lines))
    arr = _cloud().astype(object)
    arr[3, 0] = "oops"
    with pytest.raises(PointCloudError, match=r"row index 3, column 1 \(x\): cannot read 'oops'"):
        load_points(arr)


def test_empty_cell_and_decimal_comma():
    lines = _csv(_cloud()).splitlines()
    lines[2] = "1.5,"
    with pytest.raises(PointCloudError, match=r"line 3, column 2 \(y\) is empty"):
        load_points("\n".join(lines))
    with pytest.raises(PointCloudError, match=r"cannot read '2,5' as a number \(use '\.' as the decimal point\)"):
        load_points("x;y\n" + "1;2,5\n" * 12)


def test_nan_and_inf_rows_are_counted():
    lines = _csv(_cloud()).splitlines()
    lines[3] = "nan,1"
    lines[7] = "2,inf"
    with pytest.raises(PointCloudError, match=r"2 row\(s\) contain NaN or infinite values \(first at line 4\)"):
        load_points("\n".join(lines))
    points = _cloud()
    points[5, 1] = -np.inf
    with pytest.raises(PointCloudError, match=r"1 row\(s\) contain NaN or infinite values \(first at row index 5\)"):
        load_points(points)


def test_absurd_magnitude_reports_the_maximum():
    points = _cloud()
    points[2, 0] = -2.5e10
    with pytest.raises(PointCloudError, match=r"within ±1,000,000,000; the largest magnitude found is 2\.5e\+10"):
        load_points(points)
    with pytest.raises(PointCloudError, match=r"largest magnitude found is 2\.5e\+10 \(at line 4\)"):
        load_points(_csv(points))


def test_too_many_rows():
    with pytest.raises(PointCloudError, match="too many points: 25 rows; the limit is 20"):
        load_points(_csv(_cloud(25)), max_rows=20)
    with pytest.raises(PointCloudError, match=f"too many points: 100,001 rows; the limit is {MAX_POINTS:,}"):
        load_points(np.zeros((MAX_POINTS + 1, 2)))


@pytest.mark.parametrize(("source", "n"), [(_csv(_cloud(5)), 5), (_cloud(5), 5), ("1,2", 1)])
def test_too_few_rows(source, n):
    with pytest.raises(PointCloudError, match=f"too few points: found {n}, at least {MIN_POINTS} are needed"):
        load_points(source)


@pytest.mark.parametrize("source", [np.full((12, 2), 3.5), "x,y\n" + "3.5,-1\n" * 12])
def test_identical_points(source):
    with pytest.raises(PointCloudError, match=r"all 12 points are identical .*zero spread"):
        load_points(source)


def test_unreadable_sources(tmp_path):
    with pytest.raises(PointCloudError, match="file not found"):
        load_points(tmp_path / "missing.csv")
    with pytest.raises(PointCloudError, match="file not found"):
        load_points("missing.csv")
    with pytest.raises(PointCloudError, match="not UTF-8 text"):
        load_points(b"\xff\xfe\x00\x81 binary")
    with pytest.raises(PointCloudError, match="cannot read points from an object of type dict"):
        load_points({"x": [1, 2]})
    with pytest.raises(PointCloudError, match=r"shape \(n, 2\).*got shape \(2, 2, 3\)"):
        load_points(np.zeros((2, 2, 3)))
    with pytest.raises(PointCloudError, match="expected numbers, got an array of dtype bool"):
        load_points(np.zeros((12, 2), dtype=bool))


@pytest.mark.parametrize(
    "source",
    [None, 3, 2.5, "x", ",", ";;;\n;;;", "\x00", b"\x00\x00", [[]], [[None, None]] * 12, [["a", 1]] * 12,
     np.array([[1 + 2j, 0]] * 12), "1e999,1\n" * 12, "x,y\n" + "1,2,\n" * 12, "a" * 10_000],
)
def test_garbage_raises_only_point_cloud_error(source):
    with pytest.raises(PointCloudError):
        load_points(source)


def test_long_text_is_shortened_in_messages():
    with pytest.raises(PointCloudError) as err:
        load_points("a" * 10_000)
    assert len(str(err.value)) < 200
    with pytest.raises(PointCloudError, match=r"cannot read 'b{37}\.\.\.' as a number"):
        load_points("1,2\n" * 5 + "1," + "b" * 500 + "\n" + "1,2\n" * 5)


def test_point_cloud_error_is_a_value_error():
    assert issubclass(PointCloudError, ValueError)


# ---------------------------------------------------------------- standardise


def test_standardise_gives_zero_mean_and_unit_scale():
    rng = np.random.default_rng(1)
    points = (rng.normal(size=(5000, 2)) * [3.0, 0.5] + [100.0, -7.0]).astype(np.float32)
    x, mean, scale = standardise(points)
    assert x.dtype == np.float32 and x.shape == points.shape
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
    assert x.std(0).mean() == pytest.approx(1, abs=1e-5)
    np.testing.assert_allclose(mean, points.mean(0, dtype=np.float64), rtol=1e-9)
    assert scale == pytest.approx(points.astype(np.float64).std(0).mean())
    np.testing.assert_allclose(x * scale + mean, points, rtol=1e-5, atol=1e-4)


def test_standardise_rejects_zero_spread():
    with pytest.raises(PointCloudError, match="zero spread"):
        standardise(np.ones((12, 2), dtype=np.float32))

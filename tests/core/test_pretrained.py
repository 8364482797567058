"""Every shipped checkpoint loads, is described in the manifest, and samples what its manifest claims."""

import json

import pytest

from core.checkpoints import PRETRAINED_DIR, load_pretrained, pretrained_names
from core.data.toy2d import MIXTURE_TOYS, TOY_NAMES
from core.evaluate import evaluate_2d

MANIFEST = json.loads((PRETRAINED_DIR / "manifest.json").read_text())["models"]


def test_every_toy_has_a_ddpm_and_every_file_is_in_the_manifest():
    names = pretrained_names()
    for toy in TOY_NAMES:
        assert f"ddpm-{toy}" in names
    for name in names:
        entry = MANIFEST[name]
        assert entry["command"].startswith("python -m core train")
        assert entry["seconds"] > 0 and entry["hardware"]
        kind = "mnist" if name.endswith("-mnist") else "2d"
        assert ("sw_ratio" if kind == "2d" else "fid_mnist_unconditional" if name != "classifier-mnist"
                else "test_accuracy") in entry["metrics"], name
    total = sum(p.stat().st_size for p in PRETRAINED_DIR.iterdir())
    assert total < 60 * 2**20


@pytest.mark.parametrize("toy", TOY_NAMES)
def test_pretrained_ddpm_quality(toy):
    """DDIM-50 samples within 2x of the data floor (n = 2000 here; the manifest records n = 5000)."""
    p = load_pretrained(f"ddpm-{toy}")
    assert p.meta["metrics"]["sw_ratio"] <= 2.0
    m = evaluate_2d(p, n=2000, seed=1, repeats=2)
    assert m["sw_ratio"] <= 2.0, m
    if toy in MIXTURE_TOYS:
        assert m["modes_covered"] == m["modes"], m


def test_evaluate_2d_on_given_samples_measures_the_same_as_drawing_them():
    """The job recipe hands evaluate_2d the samples it drew already; the metrics must not change."""
    from core.evaluate import sample_2d

    p = load_pretrained("ddpm-eight_gaussians")
    drawn = evaluate_2d(p, n=500, seed=3, steps=20, repeats=2)
    given = evaluate_2d(p, n=500, seed=3, steps=20, repeats=2, samples=sample_2d(p, 500, seed=3, steps=20))
    assert "sample_seconds" not in given
    assert {k: v for k, v in drawn.items() if k != "sample_seconds"} == given
    with pytest.raises(ValueError, match=r"shape \(500, 2\)"):
        evaluate_2d(p, n=500, samples=sample_2d(p, 400, seed=3, steps=20))

"""Fuzz tests (Hypothesis) of the engine's three doors for user input: the points loader, the command line's parser
and validation, and the checkpoint loader. Every input must end in a result or the project's own error type with a
message (PointCloudError, UsageError, CheckpointError), never another exception, never a huge allocation.

Deterministic (derandomize): the same examples on every run, so CI never flakes; a failure prints the falsifying
example and its reproduce_failure blob. Run: python -m pytest tests/core/test_fuzz.py -q
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.__main__ import UsageError, prepare
from core.checkpoints import PRETRAINED_DIR, CheckpointError, Pretrained, load_checkpoint, save_checkpoint
from core.data.toy2d import MAX_POINTS, MIN_POINTS, TOY_NAMES, PointCloudError, load_points
from core.models.mlp import MLPConfig, MLPDenoiser
from core.schedules import make_schedule


def fuzz(max_examples: int) -> settings:
    """Hypothesis settings for this suite: deterministic, no deadline (a shared CI machine), no example database
    (nothing written into the repository), the reproduce blob printed on failure."""
    return settings(max_examples=max_examples, derandomize=True, deadline=None, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


# --- load_points -------------------------------------------------------------------------------------------------

MODERATE = st.one_of(st.floats(-1e6, 1e6), st.integers(-1000, 1000), st.floats(1e5, 1e5 + 0.01))
EXTREME = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**12, 10**12),
                    st.sampled_from([1e9, -1e9, 1e10, 1e-320, 5e-324, 1e5 + 1e-9]))
NUMBERS = st.one_of(MODERATE, EXTREME)
TOKENS = st.one_of(
    NUMBERS.map(repr), NUMBERS.map(str),
    st.sampled_from(["", " ", '"', '""', '"1"', '"x"', "'", "x", "y", "nan", "inf", "-inf", "1e999", "1,5", "١٢", "1_0",
                     "0x10", "#", "\ufeff", "\x00", "\t", "\r", "\x0c", "\u2028", "a" * 5000, "9" * 2000]),
    st.text(max_size=12),
)


@st.composite
def csv_like(draw) -> str:
    """Lines of tokens joined by a delimiter (often the same one, sometimes not), with the odd header, comment,
    blank line, stray quote or over-long field; sometimes many lines, so the valid cases are reached too."""
    sep = draw(st.sampled_from([",", ";", "\t", " ", "  ", ", "]))
    n = draw(st.integers(0, 60))
    lines = []
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(["x,y", '"x","y"', "x;y", "lon lat", "x,y,z", "# comment"])))
    for _ in range(n):
        if draw(st.integers(0, 24)) == 0:  # now and then a line of arbitrary tokens
            lines.append(sep.join(draw(st.lists(TOKENS, min_size=0, max_size=4))))
        elif draw(st.integers(0, 24)) == 0:  # an extreme value: beyond the bound, NaN, inf, subnormal
            lines.append(f"{draw(NUMBERS)}{sep}{draw(EXTREME)}")
        else:
            lines.append(f"{draw(MODERATE)}{sep}{draw(MODERATE)}")
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return newline.join(lines)


def _check_points(result: np.ndarray) -> None:
    assert isinstance(result, np.ndarray) and result.dtype == np.float64
    assert result.ndim == 2 and result.shape[1] == 2 and MIN_POINTS <= len(result) <= MAX_POINTS
    assert np.isfinite(result).all()


def _load_points_or_error(source) -> None:
    try:
        result = load_points(source)
    except PointCloudError as e:
        assert str(e) and len(str(e)) < 400, str(e)
        event(f"PointCloudError: {str(e).split(':')[0][:30]}")
    else:
        _check_points(result)
        event("points")


@fuzz(300)
@given(st.binary(max_size=3000))
def test_load_points_of_arbitrary_bytes(data: bytes):
    _load_points_or_error(data)


@fuzz(400)
@given(csv_like())
def test_load_points_of_csv_like_text(text: str):
    _load_points_or_error(text.encode("utf-8", "surrogatepass"))  # as the Train page passes it
    _load_points_or_error(text + "\n")  # as text (a one-line string would be read as a file name)


@fuzz(200)
@given(st.lists(st.one_of(st.tuples(MODERATE, MODERATE).map(list), st.tuples(MODERATE, MODERATE).map(list),
                          st.tuples(NUMBERS, NUMBERS).map(list),
                          st.lists(st.one_of(NUMBERS, st.none(), st.text(max_size=5), st.booleans()), max_size=3)),
                max_size=30))
def test_load_points_of_arbitrary_rows(rows: list):
    _load_points_or_error(rows)


# --- the command line: parser and validation (never the work itself) ------------------------------------------------

WORDS = st.sampled_from([
    "train", "sample", "evaluate", "train-classifier", "hashes", "--help", "--debug", "--data", "--family", "--out",
    "--schedule", "--T", "--width", "--depth", "--steps", "--batch-size", "--lr", "--precision", "--time-budget",
    "--conditional", "--seed", "--device", "--record", "--latent-dim", "--r1", "--beta", "--data-dir", "--download",
    "--checkpointing", "--dropout", "--state", "--save-every", "--fresh", "--n", "--method", "--eta", "--label",
    "--guidance", "--classifier", "--update-manifest", "--dir", "ddpm", "gan", "vae", "mnist", "cosine", "linear",
    "ddim", "ddpm", "ode_heun", "fp16", "bf16", "cpu", "cuda", "cuda:1", "meta", "0", "1", "-1", "-5", "2", "3", "10",
    "1000", "1e9", "nan", "inf", "-inf", "0.5", "1e-30", "999999999999999999999", "ddpm-eight_gaussians",
    "gan-eight_gaussians", "vae-two_moons", "ddpm-mnist", "classifier-mnist", "ddpm-nope", "out", "afile",
    "afile.csv", "adir", "points.csv", "bad.csv", "neg", "", " ", "-", "--", "=",
    *TOY_NAMES,
])
FREE = st.text(alphabet=st.characters(blacklist_characters="/\\\x00"), max_size=8)
ARGV = st.lists(st.one_of(WORDS, WORDS, FREE), max_size=12)
NUMBER_WORDS = st.sampled_from(["0", "1", "2", "5", "10", "50", "-1", "-5", "1000", "100001", "0.5", "1e-3", "nan",
                                "inf", "1e9", "x", ""])
OPTIONS = {  # command -> option -> values (valid and not); flags map to None
    "train": {"--data": st.sampled_from([*TOY_NAMES, "mnist", "points.csv", "bad.csv", "afile", "nope", "adir"]),
              "--family": st.sampled_from(["ddpm", "gan", "vae", "x"]),
              "--schedule": st.sampled_from(["cosine", "linear", "custom"]), "--T": NUMBER_WORDS,
              "--width": NUMBER_WORDS, "--depth": NUMBER_WORDS, "--steps": NUMBER_WORDS, "--batch-size": NUMBER_WORDS,
              "--lr": NUMBER_WORDS, "--precision": st.sampled_from(["fp32", "bf16", "fp16", "x"]),
              "--time-budget": NUMBER_WORDS, "--conditional": None, "--seed": NUMBER_WORDS,
              "--device": st.sampled_from(["cpu", "cuda", "cuda:3", "bogus", "meta", "cpu:0"]),
              "--record": None, "--latent-dim": NUMBER_WORDS, "--r1": NUMBER_WORDS, "--beta": NUMBER_WORDS,
              "--data-dir": st.sampled_from(["adir", "nope"]), "--download": None, "--checkpointing": None,
              "--dropout": NUMBER_WORDS, "--state": st.sampled_from(["st", "afile/st", "adir"]),
              "--save-every": NUMBER_WORDS, "--fresh": None,
              "--out": st.sampled_from(["out", "new/sub/out", "adir", "afile/x", "afile", ".", ""])},
    "sample": {"--n": NUMBER_WORDS, "--method": st.sampled_from(["ddim", "ddpm", "ode_heun", "x"]),
               "--steps": NUMBER_WORDS, "--eta": NUMBER_WORDS, "--label": NUMBER_WORDS, "--guidance": NUMBER_WORDS,
               "--seed": NUMBER_WORDS, "--out": st.sampled_from(["s.csv", "adir", "afile/s.csv", "new/s.csv"])},
    "evaluate": {"--n": NUMBER_WORDS, "--classifier": st.sampled_from(["classifier-mnist", "ddpm-mnist", "x"]),
                 "--device": st.sampled_from(["cpu", "cuda", "bogus"]), "--method": st.sampled_from(["ddim", "x"]),
                 "--steps": NUMBER_WORDS, "--seed": NUMBER_WORDS},
    "hashes": {"--dir": st.sampled_from(["adir", "nope"])},
}
MODELS = st.sampled_from(["ddpm-eight_gaussians", "gan-eight_gaussians", "vae-two_moons", "ddpm-mnist",
                          "classifier-mnist", "ddpm-nope", "neg", "neg.json", "afile", ""])


@st.composite
def command_lines(draw) -> list[str]:
    """A command and a handful of its own options, with values that are often valid: the deep checks are reached."""
    command = draw(st.sampled_from(sorted(OPTIONS)))
    argv = [command]
    if command in ("sample", "evaluate"):
        argv.append(draw(MODELS))
    if command == "hashes":
        argv += draw(st.lists(st.sampled_from(["ddpm-rings", "nope"]), max_size=2))
    options = OPTIONS[command]
    chosen = draw(st.lists(st.sampled_from(sorted(options)), max_size=5, unique=True))
    if command == "train":
        chosen = ["--data", "--out", *[c for c in chosen if c not in ("--data", "--out")]]
    for name in chosen:
        argv.append(name)
        if options[name] is not None:
            argv.append(draw(options[name]))
    return argv


@pytest.fixture(scope="module")
def cli_dir(tmp_path_factory):
    """A working folder with the files the command lines name: a file, a folder, CSVs, a damaged checkpoint."""
    d = tmp_path_factory.mktemp("cli")
    (d / "afile").write_text("x")
    (d / "adir").mkdir()
    (d / "points.csv").write_text("x,y\n" + "\n".join(f"{i},{i * i % 7}" for i in range(20)))
    (d / "bad.csv").write_text('x,y\n1,"2\n3,4\n' + "1,2\n" * 12)
    cfg = json.loads((PRETRAINED_DIR / "ddpm-eight_gaussians.json").read_text())
    cfg["model"]["width"] = -3
    (d / "neg.json").write_text(json.dumps(cfg))
    shutil.copy(PRETRAINED_DIR / "ddpm-eight_gaussians.safetensors", d / "neg.safetensors")
    return d


@fuzz(500)
@given(st.one_of(command_lines(), command_lines(), ARGV))
def test_cli_parser_and_validation_of_arbitrary_arguments(cli_dir, argv: list[str]):
    """Arguments only ever make relative paths here (no '/' in the alphabet), inside the test's own folder."""
    before = set(PRETRAINED_DIR.iterdir())
    cwd = os.getcwd()
    os.chdir(cli_dir)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            args = prepare(argv)
    except SystemExit as e:
        assert e.code in (0, None), argv  # --help; every other way out is an error with a message
        event("--help")
    except (UsageError, CheckpointError) as e:
        assert str(e).strip() and "\n" not in str(e), (argv, str(e))
        event(type(e).__name__)
    else:
        assert callable(args.func), argv
        event(f"valid {args.command}")
    finally:
        os.chdir(cwd)
    assert set(PRETRAINED_DIR.iterdir()) == before  # validation leaves nothing behind in pretrained/


# --- the checkpoint loader: arbitrary JSON configs beside valid weights ----------------------------------------------

JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**7, 10**7), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)
FIELDS = {  # every field a config may have, with nasty and plausible values
    "type": st.sampled_from(["mlp", "unet", "classifier", "gan", "vae", "transformer", None, 3]),
    "parameterization": st.sampled_from(["eps", "v", "x0", None]),
    "dim": st.integers(-3, 100), "width": st.one_of(st.integers(-5, 5000), st.just(1_000_000), st.just(32)),
    "depth": st.one_of(st.integers(-2, 80), st.just(1_000_000)), "t_embed_dim": st.integers(-1, 2000),
    "x_embed_dim": st.integers(-1, 300), "num_classes": st.integers(-1, 2000), "T": st.integers(-1, 200_000),
    "kind": st.sampled_from(["mlp", "dcgan", "conv", "x"]), "latent_dim": st.integers(-1, 2000),
    "data_dim": st.integers(-1, 100), "base_channels": st.integers(-1, 600), "channel_mults": JSON,
    "groups": st.integers(-1, 600), "attention_heads": st.integers(-1, 70), "patch_size": st.integers(-1, 9),
    "dropout": st.floats(-1, 2), "r1_gamma": st.floats(-1, 1e7), "beta": st.floats(-1, 1e7),
}


@st.composite
def configs(draw, base: dict) -> dict:
    """A valid config with some fields replaced (by plausible or arbitrary values), added or deleted."""
    cfg = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(["model", "model", "model", "schedule", "data", "top", "neutral", "neutral"]))
        if where == "model" and isinstance(cfg.get("model"), dict):  # an earlier change may have replaced it
            name = draw(st.sampled_from(sorted(FIELDS)))
            cfg["model"][name] = draw(st.one_of(FIELDS[name], JSON))
        elif where == "schedule":
            cfg["schedule"] = draw(st.one_of(JSON, st.fixed_dictionaries(
                {"name": st.sampled_from(["linear", "cosine", "custom", "sigmoid", "x"]),
                 "T": st.integers(-1, 200_000)},
                optional={"betas": JSON, "s": JSON, "beta_start": JSON})))
        elif where == "data":
            cfg["data"] = draw(st.one_of(JSON, st.fixed_dictionaries({"kind": JSON}, optional={"points": JSON})))
        elif where == "neutral":  # fields the loader keeps but does not build from: these configs load
            cfg[draw(st.sampled_from(["training", "objective", "metrics", "p_uncond", "notes"]))] = draw(JSON)
        else:
            key = draw(st.sampled_from(["model", "schedule", "format_version", "family", "data"]))
            if draw(st.booleans()):
                cfg.pop(key, None)
            else:
                cfg[key] = draw(JSON)
    return cfg


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("fuzz-ck")
    torch.manual_seed(0)
    s = make_schedule("linear", T=100)
    model = MLPDenoiser(MLPConfig(width=32, depth=1, T=100))
    config = {"family": "ddpm", "model": {"type": "mlp", **model.config.to_dict()}, "schedule": s.to_config(),
              "data": {"kind": "toy", "name": "eight_gaussians"}}
    save_checkpoint(d / "base", model, config)
    return d, json.loads((d / "base.json").read_text())


def _load_or_error(stem: Path) -> None:
    try:
        p = load_checkpoint(stem)
    except CheckpointError as e:
        assert str(e).strip(), stem
        event("CheckpointError")
    else:
        event("loaded")
        assert isinstance(p, Pretrained) and all(torch.isfinite(v).all() for v in p.model.state_dict().values()
                                                  if v.is_floating_point())


@fuzz(250)
@given(data=st.data())
def test_checkpoint_loader_of_mutated_configs(tiny_checkpoint, data):
    d, base = tiny_checkpoint
    cfg = data.draw(configs(base))
    stem = d / "case"
    (d / "case.json").write_text(json.dumps(cfg))
    shutil.copy(d / "base.safetensors", d / "case.safetensors")
    _load_or_error(stem)


@fuzz(150)
@given(st.one_of(JSON.map(json.dumps), st.binary(max_size=500).map(lambda b: b.decode("latin-1")),
                 st.integers(1, 200_000).map(lambda k: "[" * k + "]" * k)))
def test_checkpoint_loader_of_arbitrary_json_text(tiny_checkpoint, text: str):
    d, _ = tiny_checkpoint
    (d / "raw.json").write_text(text, encoding="utf-8", errors="surrogatepass")
    shutil.copy(d / "base.safetensors", d / "raw.safetensors")
    _load_or_error(d / "raw")


@fuzz(150)
@given(st.one_of(st.binary(max_size=300), st.tuples(st.integers(0, 10_000), st.integers(0, 255))))
def test_checkpoint_loader_of_damaged_weights(tiny_checkpoint, damage):
    """Arbitrary bytes, or one byte of the valid file changed: a readable file loads (finite), anything else is
    named; shipped files are also hash-checked (tests/core/test_bad_input.py)."""
    d, base = tiny_checkpoint
    raw = bytearray((d / "base.safetensors").read_bytes())
    if isinstance(damage, bytes):
        raw = bytearray(damage)
    else:
        i, value = damage
        raw[i % len(raw)] = value
    (d / "w.json").write_text(json.dumps(base))
    (d / "w.safetensors").write_bytes(bytes(raw))
    _load_or_error(d / "w")

"""Checkpoints: safetensors weights + a JSON config beside them, and ``load_pretrained(name)``.

``<stem>.safetensors`` holds the tensors (never pickle); ``<stem>.json`` says how to rebuild the model
(network config, schedule, data). ``pretrained/manifest.json`` records how each shipped file was made and
its SHA-256. A checkpoint is checked before it is built: the config's types, nesting and every size against
SIZE_LIMITS, the parameter count on the meta device, the weights' names, shapes and dtypes from the
safetensors header, then finite values; each failure is a CheckpointError that names the file.

    python -m core hashes            # check every shipped file against its recorded SHA-256
    python -m core hashes --record   # record them after re-creating a checkpoint by hand
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import load_file, save_file
from safetensors.torch import save as safetensors_bytes
from torch import nn
from torch.overrides import TorchFunctionMode

from core.diffusion import VPredictionDenoiser
from core.flow import VelocityField
from core.models.mlp import MLPConfig, MLPDenoiser
from core.schedules import MAX_T, SCHEDULE_NAMES, Schedule, make_schedule

REPO_DIR = Path(__file__).resolve().parent.parent
PRETRAINED_DIR = REPO_DIR / "pretrained"
FORMAT_VERSION = 1
MAX_CONFIG_BYTES = 32 * 2**20  # a config with 10,000 of the user's points is about 300 KB
MAX_JSON_DEPTH = 32  # the shipped configs nest 3 deep
MAX_PARAMETERS = 50_000_000  # 200 MB of float32; the largest shipped model has 1.7 million
MAX_WEIGHTS_BYTES = 1 * 2**30
MAX_POINTS_IN_CONFIG = 100_000  # the Train page keeps the user's points in the config (core.data.toy2d.MAX_POINTS)

# Every size a config may ask for, per model type: (low, high), inclusive. Generous beside what the project
# trains (python -m core train, the Train page), far below what would exhaust a laptop; the parameter count is
# bounded as well (MAX_PARAMETERS), since width and depth multiply.
SIZE_LIMITS: dict[str, dict[str, tuple[float, float]]] = {
    "mlp": {"dim": (1, 64), "width": (1, 4096), "depth": (1, 64), "t_embed_dim": (2, 1024),
            "x_embed_dim": (0, 256), "num_classes": (0, 1000), "T": (2, MAX_T)},
    "unet": {"in_channels": (1, 16), "image_size": (4, 64), "patch_size": (1, 4), "base_channels": (2, 512),
             "channel_mults": (1, 8), "blocks_per_level": (1, 8), "attention_heads": (1, 64), "num_classes": (0, 1000),
             "groups": (1, 512), "dropout": (0.0, 0.99), "T": (2, MAX_T), "context_dim": (0, 1024)},
    "classifier": {"channels": (1, 512), "feature_dim": (1, 4096), "num_classes": (1, 1000), "dropout": (0.0, 0.99)},
    "noisy_classifier": {"num_classes": (1, 1000), "dim": (1, 64), "width": (8, 1024), "depth": (1, 16),
                         "t_embed_dim": (2, 1024), "T": (2, MAX_T)},
    "gan": {"latent_dim": (1, 1024), "width": (1, 4096), "depth": (1, 64), "data_dim": (1, 64),
            "r1_gamma": (0.0, 1e6)},
    "vae": {"latent_dim": (1, 1024), "width": (1, 4096), "depth": (1, 64), "data_dim": (1, 64),
            "beta": (1e-6, 1e6)},
    "clip": {"vocab_size": (2, 10_000), "max_len": (1, 256), "width": (8, 1024), "layers": (1, 24), "heads": (1, 64),
             "embed_dim": (2, 1024), "image_channels": (8, 256)},
    "autoencoder": {"latent_channels": (1, 16), "latent_dim": (0, 64), "width": (8, 256), "groups": (1, 64),
                    "scale_factor": (1e-4, 1e4)},
}
MAX_CHANNEL_LEVELS = 4  # UNet channel_mults: 28 / patch_size halves at most 3 times on the way down
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {("gan", "kind"): ("mlp", "dcgan"), ("vae", "kind"): ("mlp", "conv"),
                                                  ("noisy_classifier", "kind"): ("mlp", "conv")}
MODEL_TYPES = ("mlp", "unet", "classifier", "noisy_classifier", "gan", "vae", "autoencoder", "clip")
_LABELS = {"mlp": "an MLP", "unet": "a UNet", "classifier": "a classifier", "noisy_classifier": "a noisy classifier",
           "gan": "a GAN", "vae": "a VAE", "autoencoder": "an autoencoder", "clip": "a CLIP text-image encoder"}
_DIFFUSION_TYPES = ("mlp", "unet", "noisy_classifier")  # these need a schedule (their t is its timestep)
_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
           torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
           torch.bool: "BOOL"}


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged, out of bounds, or does not match its config. ``path`` names the
    file at fault when one is (the dashboard says which file to restore)."""

    def __init__(self, message: str, path: Path | None = None):
        super().__init__(message)
        self.path = path


@dataclass
class Pretrained:
    model: nn.Module
    schedule: Schedule | None  # None for families that do not diffuse (GAN, VAE)
    config: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)  # the manifest entry, when there is one
    name: str = ""
    autoencoder: nn.Module | None = None  # latent diffusion: the first stage (encode / decode), loaded with it


@dataclass(frozen=True)
class ModelSpec:
    """A validated checkpoint config: the model type, its config dataclass, and the schedule (diffusion types)."""

    kind: str  # one of MODEL_TYPES
    config: Any  # MLPConfig, UNetConfig, ClassifierConfig, GANConfig or VAEConfig
    schedule: Schedule | None
    parameterization: str = "eps"  # mlp: "eps", "v" or "velocity" (a flow, core.flow)
    autoencoder: LatentSpec | None = None  # latent diffusion: the first stage it diffuses in
    text_encoder: Any = None  # a text-conditioned UNet: the CLIPConfig of the frozen encoder stored with it


@dataclass(frozen=True)
class LatentSpec:
    """What a latent diffusion checkpoint records of its autoencoder: the checkpoint's name (beside it, in the same
    folder), the latent shape the diffusion model works on, and the scale factor its latents were trained with."""

    name: str
    shape: tuple[int, ...]
    scale_factor: float


# --- validation: types, nesting and sizes, before anything is built ---------------------------------------------


def _config_class(kind: str) -> type:
    if kind == "mlp":
        return MLPConfig
    if kind == "unet":
        from core.models.unet import UNetConfig
        return UNetConfig
    if kind == "classifier":
        from core.models.classifier import ClassifierConfig
        return ClassifierConfig
    if kind == "noisy_classifier":
        from core.models.noisy_classifier import NoisyClassifierConfig
        return NoisyClassifierConfig
    if kind == "autoencoder":
        from core.models.autoencoder import AutoencoderConfig
        return AutoencoderConfig
    if kind == "clip":
        from core.models.text import CLIPConfig
        return CLIPConfig
    if kind == "gan":
        from core.models.gan import GANConfig
        return GANConfig
    from core.models.vae import VAEConfig
    return VAEConfig


def _json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            if d <= MAX_JSON_DEPTH:  # deeper is refused anyway: no need to walk it
                stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _typed_field(kind: str, name: str, value: Any, hint: Any) -> Any:
    """One field of a model config, checked against its annotation and SIZE_LIMITS; the value to build with."""
    where = f"model.{name}"
    lo, hi = SIZE_LIMITS[kind].get(name, (None, None))
    if hint is bool:
        if not isinstance(value, bool):
            raise CheckpointError(f"checkpoint config: {where} must be true or false; got {value!r:.40}")
        return value
    if hint is str:
        choices = CHOICES.get((kind, name))
        if not isinstance(value, str) or (choices and value not in choices):
            raise CheckpointError(f"checkpoint config: {where} must be one of {', '.join(choices or ())}; "
                                  f"got {value!r:.40}")
        return value
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_CHANNEL_LEVELS:
            raise CheckpointError(f"checkpoint config: {where} must be a list of 1 to {MAX_CHANNEL_LEVELS} "
                                  f"integers; got {value!r:.60}")
        return tuple(_bounded_int(where, v, lo, hi) for v in value)
    if hint is int:
        return _bounded_int(where, value, lo, hi)
    if hint is float:
        if not _is_number(value) or (lo is not None and not lo <= value <= hi):
            bounds = f" in [{lo:g}, {hi:g}]" if lo is not None else ""
            raise CheckpointError(f"checkpoint config: {where} must be a finite number{bounds}; got {value!r:.40}")
        return float(value)
    raise CheckpointError(f"checkpoint config: {where} has no known type")  # a config class the loader lacks


def _bounded_int(where: str, value: Any, lo: float | None, hi: float | None) -> int:
    if not _is_int(value) or (lo is not None and not lo <= value <= hi):
        bounds = f" in [{lo:,.0f}, {hi:,.0f}]" if lo is not None else ""
        raise CheckpointError(f"checkpoint config: {where} must be an integer{bounds}; got {value!r:.40}")
    return value


def _model_config(kind: str, fields: dict[str, Any]) -> Any:
    cls = _config_class(kind)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(fields) - set(names))
    if unknown:
        raise CheckpointError(f"checkpoint config does not describe {_LABELS[kind]}: unknown field(s) "
                              f"{', '.join(map(repr, unknown))}; expected some of: {', '.join(names)}")
    values = {name: _typed_field(kind, name, value, hints[name]) for name, value in fields.items()}
    try:
        cfg = cls(**values)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint config does not describe {_LABELS[kind]}: {e}") from None
    _check_structure(kind, cfg)
    return cfg


def _check_structure(kind: str, c: Any) -> None:
    """What the constructors accept but the forward pass would not (odd embeddings, sizes that do not halve)."""
    problems = []
    if kind == "mlp":
        problems += [f"{n} must be even (sinusoidal features come in cos/sin pairs); got {v}"
                     for n, v in (("t_embed_dim", c.t_embed_dim), ("x_embed_dim", c.x_embed_dim)) if v % 2]
    elif kind == "unet":
        side = c.image_size // c.patch_size if c.image_size % c.patch_size == 0 else None
        if c.base_channels % 2:
            problems.append(f"base_channels must be even (it is the time embedding's size); got {c.base_channels}")
        if side is None:
            problems.append(f"patch_size must divide image_size {c.image_size}; got {c.patch_size}")
        elif side < 2 ** (len(c.channel_mults) - 1):
            problems.append(f"{len(c.channel_mults)} levels cannot halve a {side}x{side} input "
                            f"{len(c.channel_mults) - 1} times")
        chans = [c.base_channels * m for m in c.channel_mults] + [c.base_channels]
        if any(ch % c.groups for ch in chans):
            problems.append(f"groups = {c.groups} must divide every level's channels {sorted(set(chans))}")
        if c.context_dim and any(ch % c.attention_heads for ch in chans[:-1]):
            problems.append(f"attention_heads = {c.attention_heads} must divide every level's channels "
                            f"{sorted(set(chans[:-1]))} (cross-attention runs at every level)")
        if chans[-2] % c.attention_heads:
            problems.append(f"attention_heads = {c.attention_heads} must divide the lowest level's {chans[-2]} "
                            "channels")
    elif kind == "noisy_classifier" and c.kind == "conv" and c.width % 8:
        problems.append(f"a conv noisy classifier's width must be a multiple of 8 (GroupNorm groups); got {c.width}")
    elif kind == "gan" and c.kind == "dcgan" and (c.width < 4 or c.width % 4):
        problems.append(f"a DCGAN's width must be a multiple of 4; got {c.width}")
    elif kind == "vae" and c.kind == "conv" and (c.width < 2 or c.width % 2):
        problems.append(f"a conv VAE's width must be even; got {c.width}")
    elif kind == "clip" and c.width % c.heads:
        problems.append(f"heads = {c.heads} must divide the text width {c.width}")
    elif kind == "autoencoder" and c.width % (2 * c.groups):
        problems.append(f"groups = {c.groups} must divide half the width {c.width} (the 28 x 28 channels)")
    if problems:
        raise CheckpointError(f"checkpoint config does not describe {_LABELS[kind]} the project can build: "
                              + "; ".join(problems))


def _schedule(spec: Any) -> Schedule:
    if not isinstance(spec, dict):
        raise CheckpointError(f"checkpoint config: a diffusion model needs a schedule object like "
                              f'{{"name": "cosine", "T": 1000}}; got {json.dumps(spec)[:40]}')
    name = spec.get("name")
    if name not in SCHEDULE_NAMES:
        raise CheckpointError(f"checkpoint config: schedule.name must be one of {', '.join(SCHEDULE_NAMES)}; "
                              f"got {name!r:.40}")
    for key, value in spec.items():
        if key == "name":
            continue
        if key == "T":
            _bounded_int("schedule.T", value, 2, MAX_T)
        elif key == "betas" and name == "custom":
            if not isinstance(value, list) or not 2 <= len(value) <= MAX_T or not all(map(_is_number, value)):
                raise CheckpointError(f"checkpoint config: schedule.betas must be a list of 2 to {MAX_T:,} finite "
                                      "numbers")
        elif not _is_number(value):
            raise CheckpointError(f"checkpoint config: schedule.{key} must be a finite number; got {value!r:.40}")
    try:
        return make_schedule(**spec)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint config has an invalid schedule: {e}") from None


def _check_data(data: Any) -> None:
    if data is None:
        return
    if not isinstance(data, dict):
        raise CheckpointError("checkpoint config: data must be an object (kind, name, source)")
    for key in ("kind", "name", "source"):
        if key in data and data[key] is not None and not isinstance(data[key], str):
            raise CheckpointError(f"checkpoint config: data.{key} must be a string; got {data[key]!r:.40}")
    if "points" in data:
        pts = data["points"]
        if (not isinstance(pts, list) or not 1 <= len(pts) <= MAX_POINTS_IN_CONFIG
                or not all(isinstance(p, list) and len(p) == 2 and _is_number(p[0]) and _is_number(p[1])
                           for p in pts)):
            raise CheckpointError(f"checkpoint config: data.points must be a list of 1 to {MAX_POINTS_IN_CONFIG:,} "
                                  "[x, y] pairs of finite numbers")


def validate_config(config: Any) -> ModelSpec:
    """Check a checkpoint config before anything is built: its types and nesting, every size against
    SIZE_LIMITS, the schedule (required for diffusion models, refused for the others) and the data record.
    Raises CheckpointError with a message that names the field."""
    if not isinstance(config, dict):
        raise CheckpointError(f"a checkpoint config must be a JSON object; got {type(config).__name__}")
    if _json_depth(config) > MAX_JSON_DEPTH:
        raise CheckpointError(f"checkpoint config nests deeper than {MAX_JSON_DEPTH} levels")
    version = config.get("format_version", FORMAT_VERSION)
    if not _is_int(version) or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(f"checkpoint config: format_version {version!r:.20} is not one this version of the "
                              f"project reads (1 to {FORMAT_VERSION})")
    model = config.get("model")
    if not isinstance(model, dict):
        raise CheckpointError("checkpoint config is missing its model object (model.type and its sizes)")
    fields = dict(model)
    kind = fields.pop("type", None)
    if kind not in MODEL_TYPES:
        raise CheckpointError(f"unknown model type {kind!r:.40}; expected one of: {', '.join(MODEL_TYPES)}")
    parameterization = fields.pop("parameterization", "eps") if kind == "mlp" else "eps"
    if parameterization not in ("eps", "v", "velocity"):
        raise CheckpointError(f"unknown parameterization {parameterization!r:.40}; expected eps, v or velocity "
                              "(a flow)")
    cfg = _model_config(kind, fields)
    _check_data(config.get("data"))
    if kind in _DIFFUSION_TYPES and parameterization != "velocity":
        schedule = _schedule(config.get("schedule"))
        if cfg.T != schedule.T:
            raise CheckpointError(f"checkpoint config: model.T = {cfg.T} but the schedule has T = {schedule.T}")
    else:
        if config.get("schedule") is not None:
            raise CheckpointError(f"checkpoint config: {_LABELS[kind]} does not diffuse, yet the config has a "
                                  "schedule (expected null)")
        schedule = None
    if parameterization == "velocity" and cfg.num_classes:
        raise CheckpointError("checkpoint config: a flow (parameterization velocity) has no labels; got "
                              f"model.num_classes = {cfg.num_classes}")
    latent = _latent_spec(config, kind, cfg) if "autoencoder" in config else None
    text = None
    if kind == "unet" and cfg.context_dim:
        record = config.get("text_encoder")
        if not isinstance(record, dict):
            raise CheckpointError("checkpoint config: a text-conditioned UNet (model.context_dim > 0) needs its "
                                  "text_encoder (a CLIP config)")
        text = _model_config("clip", dict(record))
        if text.width != cfg.context_dim:
            raise CheckpointError(f"checkpoint config: model.context_dim = {cfg.context_dim} but the text encoder's "
                                  f"width is {text.width}")
        if cfg.num_classes:
            raise CheckpointError("checkpoint config: a text-conditioned UNet reads prompts, not labels (expected "
                                  f"model.num_classes = 0; got {cfg.num_classes})")
    elif config.get("text_encoder") is not None:
        raise CheckpointError("checkpoint config: text_encoder is only for a UNet with model.context_dim > 0")
    return ModelSpec(kind, cfg, schedule, parameterization, latent, text)


def _latent_spec(config: dict[str, Any], kind: str, cfg: Any) -> LatentSpec:
    """The ``autoencoder`` record of a latent diffusion checkpoint ({"name", "scale_factor"}) and its
    ``latent_shape``, which must be the denoiser's input shape."""
    record, shape = config["autoencoder"], config.get("latent_shape")
    if not isinstance(record, dict) or not isinstance(record.get("name"), str) or not _is_number(
            record.get("scale_factor")):
        raise CheckpointError('checkpoint config: autoencoder must be an object like {"name": "autoencoder-mnist", '
                              '"scale_factor": 0.9}')
    name = record["name"]
    if not name or len(name) > 100 or not all(ch.isalnum() or ch in "-_." for ch in name) or name.startswith("."):
        raise CheckpointError(f"checkpoint config: autoencoder.name must be a checkpoint name in the same folder "
                              f"(letters, digits, - _ .); got {name!r:.40}")
    if kind not in ("mlp", "unet") or not isinstance(shape, list) or not all(_is_int(d) and d > 0 for d in shape):
        raise CheckpointError("checkpoint config: a latent diffusion model is an MLP or a UNet with latent_shape, a "
                              f"list of positive integers; got {kind} with latent_shape {shape!r:.40}")
    expected = (cfg.dim,) if kind == "mlp" else (cfg.in_channels, cfg.image_size, cfg.image_size)
    if tuple(shape) != expected:
        raise CheckpointError(f"checkpoint config: latent_shape {shape} is not the shape its {kind} denoises, "
                              f"{list(expected)}")
    return LatentSpec(name, tuple(shape), float(record["scale_factor"]))


# --- building: on the meta device first (shapes and size, no memory), then for real ---------------------------

_RANDOM_INIT = {"normal_", "uniform_", "trunc_normal_", "kaiming_normal_", "kaiming_uniform_", "xavier_normal_",
                "xavier_uniform_", "orthogonal_", "bernoulli_", "exponential_", "random_", "log_normal_",
                "cauchy_", "geometric_"}


class _SkipRandomInit(TorchFunctionMode):
    """Random initialisers do nothing (on the meta device there is nothing to fill, and their meta kernels
    import torch._dynamo: seconds). Torch function modes are per thread, so other sessions are unaffected."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in _RANDOM_INIT:
            return args[0] if args else kwargs.get("tensor")
        return func(*args, **kwargs)


def _construct(spec: ModelSpec) -> nn.Module:
    c = spec.config
    try:
        if spec.kind == "mlp":
            net = MLPDenoiser(c)
            if spec.parameterization == "velocity":
                return VelocityField(net)
            return VPredictionDenoiser(net, spec.schedule) if spec.parameterization == "v" else net
        if spec.kind == "unet":
            from core.models.unet import UNet
            if spec.text_encoder is None:
                return UNet(c)
            from core.models.text import CLIP, TextConditioned
            return TextConditioned(UNet(c), CLIP(spec.text_encoder))
        if spec.kind == "clip":
            from core.models.text import CLIP
            return CLIP(c)
        if spec.kind == "classifier":
            from core.models.classifier import MNISTClassifier
            return MNISTClassifier(c)
        if spec.kind == "noisy_classifier":
            from core.models.noisy_classifier import NoisyClassifier
            return NoisyClassifier(c)
        if spec.kind == "autoencoder":
            from core.models.autoencoder import Autoencoder
            return Autoencoder(c)
        if spec.kind == "gan":
            from core.models.gan import GAN
            return GAN(c)
        from core.models.vae import VAE
        return VAE(c)
    except (ValueError, TypeError, AssertionError, RuntimeError) as e:  # e.g. GroupNorm, MultiheadAttention sizes
        raise CheckpointError(f"checkpoint config does not describe {_LABELS[spec.kind]} the project can build: "
                              f"{e}") from None


@contextlib.contextmanager
def _on_meta() -> Iterator[None]:
    with torch.device("meta"), _SkipRandomInit():
        yield


def expected_tensors(spec: ModelSpec) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    """The state dict a config implies, name -> (dtype, shape), built on the meta device (no memory).
    Raises CheckpointError if the model would have more than MAX_PARAMETERS parameters."""
    with _on_meta():
        model = _construct(spec)
    state = model.state_dict()
    count = sum(v.numel() for v in state.values())
    if count > MAX_PARAMETERS:
        raise CheckpointError(f"checkpoint config describes a model with {count:,} parameters; the limit is "
                              f"{MAX_PARAMETERS:,}")
    return {k: (v.dtype, tuple(v.shape)) for k, v in state.items()}


def build_model(config: dict[str, Any]) -> tuple[nn.Module, Schedule | None]:
    """Rebuild an untrained model (and its schedule) from a checkpoint config, after ``validate_config`` and the
    parameter bound (on the meta device): a config that asks for too much is refused before any allocation."""
    spec = validate_config(config)
    expected_tensors(spec)
    return _construct(spec), spec.schedule


# --- files: saving, hashing, loading ------------------------------------------------------------------------


def checkpoint_bytes(model: nn.Module, config: dict[str, Any]) -> tuple[bytes, bytes]:
    """The two files of a checkpoint as bytes: the safetensors weights and the JSON config (for a download)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = safetensors_bytes(tensors, metadata={"format_version": str(FORMAT_VERSION)})
    text = json.dumps({"format_version": FORMAT_VERSION, **config}, indent=2) + "\n"
    return weights, text.encode()


def save_checkpoint(stem: str | Path, model: nn.Module, config: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``<stem>.safetensors`` and ``<stem>.json`` (``checkpoint_bytes``); returns both paths.

    If a manifest.json beside them already records this name, its SHA-256s are updated too, so a record never
    describes an older file (which would then load as "damaged")."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights, cfg_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    weight_bytes, config_bytes = checkpoint_bytes(model, config)
    weights.write_bytes(weight_bytes)
    cfg_path.write_bytes(config_bytes)
    try:
        recorded = stem.name in read_manifest(stem.parent).get("models", {})
    except CheckpointError:  # a damaged manifest is reported when something reads it
        recorded = False
    if recorded:
        update_manifest(stem.name, {"sha256": checkpoint_hashes(stem)}, directory=stem.parent)
    return weights, cfg_path


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def checkpoint_hashes(stem: str | Path) -> dict[str, str]:
    """{file name: SHA-256} of a checkpoint's two files (what the manifest records as ``sha256``)."""
    stem = Path(stem)
    return {p.name: file_sha256(p) for p in (stem.with_suffix(".json"), stem.with_suffix(".safetensors"))}


def display_path(path: Path) -> str:
    """A path as a user would type it: relative to the repository or the working directory when inside them."""
    path = Path(path)
    for base in (REPO_DIR, Path.cwd()):
        with contextlib.suppress(ValueError, OSError):
            return path.resolve().relative_to(base.resolve()).as_posix()
    return str(path)


def restore_hint(name: str, directory: Path | None = None) -> str:
    """How to get a shipped checkpoint back: from git, or by re-running the command its manifest records."""
    directory = PRETRAINED_DIR if directory is None else Path(directory)
    files = " ".join(display_path(directory / f"{name}{s}") for s in (".safetensors", ".json"))
    hint = f"restore it with `git checkout -- {files}`"
    try:
        command = read_manifest(directory).get("models", {}).get(name, {}).get("command")
    except (CheckpointError, AttributeError):
        command = None
    if isinstance(command, str) and command:
        hint += f", or re-create it with `{command}`"
    return hint


def _recorded_hashes(stem: Path) -> dict[str, str] | None:
    """The SHA-256s a manifest.json beside the checkpoint records for it (None when it records none)."""
    if not (stem.parent / "manifest.json").is_file():
        return None
    entry = read_manifest(stem.parent).get("models", {}).get(stem.name)
    hashes = entry.get("sha256") if isinstance(entry, dict) else None
    if hashes is None:
        return None
    if not isinstance(hashes, dict) or not all(isinstance(v, str) for v in hashes.values()):
        raise CheckpointError(f"{display_path(stem.parent / 'manifest.json')}: the sha256 record of {stem.name} "
                              "is damaged (expected file name -> hex digest)", stem.parent / "manifest.json")
    return hashes


def _verify_hashes(stem: Path, hashes: dict[str, str], contents: dict[Path, bytes] | None = None) -> None:
    """Each file's SHA-256 against the record; ``contents`` holds bytes already read (hashed as they are loaded)."""
    manifest = display_path(stem.parent / "manifest.json")
    for path in (stem.with_suffix(".json"), stem.with_suffix(".safetensors")):
        want = hashes.get(path.name)
        if want is None:
            continue
        got = hashlib.sha256(contents[path]).hexdigest() if contents and path in contents else file_sha256(path)
        if got != want.lower():
            raise CheckpointError(
                f"{display_path(path)} is damaged: its SHA-256 is {got[:12]}…, but {manifest} records "
                f"{want[:12]}… for it; {restore_hint(stem.name, stem.parent)}", path)


def _parse_config(raw: bytes, cfg_path: Path) -> dict[str, Any]:
    where = display_path(cfg_path)
    try:
        config = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{where} is not valid JSON: {e}", cfg_path) from None
    except RecursionError:
        raise CheckpointError(f"{where} nests deeper than {MAX_JSON_DEPTH} levels", cfg_path) from None
    except ValueError as e:  # NaN / Infinity (parse_constant)
        raise CheckpointError(f"{where}: {e}", cfg_path) from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{where} must hold a JSON object", cfg_path)
    return config


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number (the config must hold finite numbers)")


def _header(raw: bytes, where: str, path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """name -> (dtype, shape) from a safetensors header: 8 bytes of little-endian length, then JSON."""
    bad = f"{where} is not a readable safetensors file"
    if len(raw) < 8:
        raise CheckpointError(f"{bad}: {len(raw)} bytes, shorter than its header", path)
    n = int.from_bytes(raw[:8], "little")
    if n > len(raw) - 8:
        raise CheckpointError(f"{bad}: its header claims {n:,} bytes of a {len(raw):,}-byte file", path)
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(f"{bad}: its header is not JSON ({type(e).__name__})", path) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{bad}: its header is not an object", path)
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        if not (isinstance(v, dict) and isinstance(v.get("dtype"), str) and isinstance(v.get("shape"), list)
                and all(_is_int(d) and d >= 0 for d in v["shape"])):
            raise CheckpointError(f"{bad}: the header entry of {k!r:.40} is malformed", path)
        out[k] = (v["dtype"], tuple(v["shape"]))
    return out


def _check_header(raw: bytes, weights: Path, expected: dict[str, tuple[torch.dtype, tuple[int, ...]]]) -> None:
    """Names, dtypes and shapes from the safetensors header (no tensor is read) against the config's model."""
    where = display_path(weights)
    found = _header(raw, where, weights)
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{where} does not match its config: missing {missing[:5]}, unexpected "
                              f"{unexpected[:5]}", weights)
    for k, (dtype, shape) in expected.items():
        got_dtype, got_shape = found[k]
        if got_shape != shape:
            raise CheckpointError(f"{where} does not match its config: {k} has shape {got_shape}, expected {shape}",
                                  weights)
        if got_dtype != _DTYPES.get(dtype):
            raise CheckpointError(f"{where} does not match its config: {k} has dtype {got_dtype}, expected "
                                  f"{_DTYPES.get(dtype, dtype)}", weights)


def load_checkpoint(stem: str | Path, device: str = "cpu") -> Pretrained:
    """Load a checkpoint written by :func:`save_checkpoint`, checked step by step with a clear error for each
    failure: the files' SHA-256 (when a manifest.json beside them records them), the config (validate_config), the
    model's size on the meta device, the weights' header against it, and finite values."""
    stem = Path(stem)
    if stem.suffix in (".safetensors", ".json"):
        stem = stem.with_suffix("")
    weights, cfg_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    for p in (weights, cfg_path):
        if not p.is_file():
            raise CheckpointError(f"checkpoint file not found: {display_path(p)}", p)
    for p, limit in ((weights, MAX_WEIGHTS_BYTES), (cfg_path, MAX_CONFIG_BYTES)):
        size = p.stat().st_size
        if size > limit:
            raise CheckpointError(f"{display_path(p)} is {size / 2**20:,.0f} MB; the limit is {limit / 2**20:,.0f} MB",
                                  p)
    try:  # each file is read once: what is hashed is what is parsed
        raw = {weights: weights.read_bytes(), cfg_path: cfg_path.read_bytes()}
    except OSError as e:
        raise CheckpointError(f"cannot read {display_path(Path(e.filename or stem))}: {e.strerror or e}") from None
    hashes = _recorded_hashes(stem)
    if hashes:
        _verify_hashes(stem, hashes, raw)
    config = _parse_config(raw[cfg_path], cfg_path)
    try:
        spec = validate_config(config)
        expected = expected_tensors(spec)
    except CheckpointError as e:
        raise CheckpointError(f"{display_path(cfg_path)}: {e}", cfg_path) from None
    _check_header(raw[weights], weights, expected)
    try:
        state = load_safetensors(raw[weights])
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{display_path(weights)} is not a readable safetensors file: {e}", weights) from None
    for k, v in state.items():
        # The sum is finite when every value is (fast); only then is the exact, slower test needed
        if v.is_floating_point() and not torch.isfinite(v.sum()) and not torch.isfinite(v).all():
            bad = int((~torch.isfinite(v)).sum())
            raise CheckpointError(f"{display_path(weights)} is damaged: {k} holds {bad:,} NaN or infinite "
                                  f"value(s)", weights)
    model = _construct(spec)
    model.load_state_dict(state)
    model.to(device).eval().requires_grad_(False)
    autoencoder = _load_autoencoder(spec.autoencoder, cfg_path, device) if spec.autoencoder else None
    return Pretrained(model=model, schedule=spec.schedule, config=config, name=stem.name, autoencoder=autoencoder)


def _load_autoencoder(latent: LatentSpec, cfg_path: Path, device: str) -> nn.Module:
    """The autoencoder a latent checkpoint names, from the same folder, checked against what the latent model was
    trained with: an autoencoder, of the same latent shape and scale factor."""
    where = display_path(cfg_path)
    stem = cfg_path.parent / latent.name
    try:
        first = load_checkpoint(stem, device=device)
    except CheckpointError as e:
        raise CheckpointError(f"{where} names its autoencoder {latent.name!r}, which cannot be loaded: {e}",
                              e.path) from None
    if first.config["model"]["type"] != "autoencoder":
        raise CheckpointError(f"{where} names {latent.name!r} as its autoencoder, but that checkpoint is "
                              f"{_LABELS[first.config['model']['type']]}", cfg_path)
    ae = first.model
    if tuple(ae.latent_shape) != latent.shape:
        raise CheckpointError(f"{where} diffuses latents of shape {list(latent.shape)}, but its autoencoder "
                              f"{latent.name!r} makes latents of shape {list(ae.latent_shape)}", cfg_path)
    if not math.isclose(ae.config.scale_factor, latent.scale_factor, rel_tol=1e-6):
        raise CheckpointError(f"{where} was trained on latents scaled by {latent.scale_factor:.6g}, but its "
                              f"autoencoder {latent.name!r} scales by {ae.config.scale_factor:.6g} (a retrained "
                              "autoencoder? retrain the latent model on it)", cfg_path)
    return ae


# --- resumable training state ------------------------------------------------------------------


def _state_file(stem: str | Path, suffix: str) -> Path:
    """``<stem><suffix>``: the suffix is appended, so a stem with a dot in it (``state.v1``) stays whole."""
    return Path(f"{stem}{suffix}")


def training_state_exists(stem: str | Path) -> bool:
    return _state_file(stem, ".json").is_file()


def delete_training_state(stem: str | Path) -> None:
    for suffix in (".safetensors", ".json"):
        _state_file(stem, suffix).unlink(missing_ok=True)


def save_training_state(stem: str | Path, model: nn.Module, ema: Any, opt: torch.optim.Optimizer,
                        scaler: torch.amp.GradScaler, generator: torch.Generator, step: int, seconds: float,
                        losses: list[float]) -> None:
    """Everything needed to resume :func:`core.training.train` exactly: ``<stem>.safetensors`` holds the
    weights, EMA weights, optimiser moments, random-generator states and losses; ``<stem>.json`` the rest.
    Written to temporary names and renamed, so an interrupted save never leaves a broken state."""
    Path(stem).parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors |= {f"ema.{k}": v for k, v in ema.model.state_dict().items()}
    opt_state = opt.state_dict()
    for idx, entry in opt_state["state"].items():
        tensors |= {f"optim.{idx}.{k}": torch.as_tensor(v) for k, v in entry.items()}
    tensors["rng.generator"] = generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    if generator.device.type == "cuda":  # dropout on the GPU draws from the device's default generator
        tensors["rng.cuda"] = torch.cuda.get_rng_state(generator.device)
    tensors["losses"] = torch.tensor(losses, dtype=torch.float32)
    meta = {"format_version": FORMAT_VERSION, "step": step, "seconds": seconds, "ema_updates": ema.updates,
            "param_groups": opt_state["param_groups"], "scaler": scaler.state_dict()}
    tmp_w, tmp_j = _state_file(stem, ".safetensors.tmp"), _state_file(stem, ".json.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp_w))
    tmp_j.write_text(json.dumps(meta) + "\n")
    tmp_w.replace(_state_file(stem, ".safetensors"))
    tmp_j.replace(_state_file(stem, ".json"))


def check_training_state(stem: str | Path) -> None:
    """That a training state can be read (its JSON, and its safetensors header and tensors), before a run relies on
    it; CheckpointError, with what to do, otherwise. (Whether it fits the model is known only at load.)"""
    where = f"training state {stem}"
    try:
        meta = json.loads(_state_file(stem, ".json").read_text())
        raw = _state_file(stem, ".safetensors").read_bytes()
        _header(raw, where, _state_file(stem, ".safetensors"))
        load_safetensors(raw)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError, SafetensorError, CheckpointError) as e:
        raise CheckpointError(f"{where} could not be read ({e}); delete it to start afresh (or pass --fresh)") from None
    if not isinstance(meta, dict) or not all(k in meta for k in ("step", "seconds", "ema_updates")):
        raise CheckpointError(f"{where} is incomplete; delete it to start afresh (or pass --fresh)")


def load_training_state(stem: str | Path, model: nn.Module, ema: Any, opt: torch.optim.Optimizer,
                        scaler: torch.amp.GradScaler, generator: torch.Generator,
                        device: torch.device) -> dict[str, Any]:
    """Restore what :func:`save_training_state` wrote into the given objects; returns step, seconds, losses."""
    where = f"training state {stem}"
    try:
        meta = json.loads(_state_file(stem, ".json").read_text())
        tensors = load_file(str(_state_file(stem, ".safetensors")))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, SafetensorError) as e:
        raise CheckpointError(f"{where} could not be read ({e}); delete it to start afresh") from None
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        ema.model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    except RuntimeError as e:
        first = str(e).splitlines()[1:2] or [str(e)]
        raise CheckpointError(f"{where} belongs to a different model ({first[0].strip()}); "
                              "delete it to start afresh") from None
    try:
        ema.updates = meta["ema_updates"]
        state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, idx, name = k.split(".", 2)
                state.setdefault(int(idx), {})[name] = v
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        if meta["scaler"]:  # empty when the run did not use fp16
            scaler.load_state_dict(meta["scaler"])
        generator.set_state(tensors["rng.generator"])
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and generator.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], generator.device)
        step, seconds, losses = int(meta["step"]), float(meta["seconds"]), tensors["losses"].tolist()
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{where} is incomplete or damaged ({type(e).__name__}: {e}); "
                              "delete it to start afresh") from None
    model.to(device)
    ema.model.to(device)
    return {"step": step, "seconds": seconds, "losses": losses}


# --- the manifest -------------------------------------------------------------------------------


def read_manifest(directory: Path | None = None) -> dict[str, Any]:
    """``<directory>/manifest.json`` ({"models": {name: record}}); an empty one when the file is absent."""
    path = (PRETRAINED_DIR if directory is None else Path(directory)) / "manifest.json"
    if not path.is_file():
        return {"models": {}}
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(f"{display_path(path)} is not valid JSON ({type(e).__name__}: {e}); restore it with "
                              f"`git checkout -- {display_path(path)}`", path) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.setdefault("models", {}), dict):
        raise CheckpointError(f"{display_path(path)} must hold an object with a \"models\" object", path)
    return manifest


def update_manifest(name: str, entry: dict[str, Any], directory: Path | None = None) -> None:
    """Merge ``entry`` into the manifest record of ``name`` (keys sorted, so diffs stay readable).

    Two trainings that finish together must not lose each other's record: the read-modify-write holds an
    exclusive lock (``manifest.json.lock``), and the new file replaces the old in one step, so a reader never
    sees half of it."""
    directory = PRETRAINED_DIR if directory is None else Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "manifest.json.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest = read_manifest(directory)
        manifest["models"].setdefault(name, {}).update(entry)
        manifest["models"] = dict(sorted(manifest["models"].items()))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".manifest.", suffix=".json")
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, directory / "manifest.json")


def pretrained_names(directory: Path | None = None) -> list[str]:
    """Names of the checkpoints shipped in ``directory`` (those with both files present)."""
    directory = PRETRAINED_DIR if directory is None else Path(directory)
    return sorted(p.stem for p in directory.glob("*.safetensors") if p.with_suffix(".json").is_file())


def record_hashes(names: list[str] | None = None, directory: Path | None = None) -> dict[str, dict[str, str]]:
    """Record the SHA-256 of both files of each checkpoint (default: every one in ``directory``) in the manifest;
    returns them. Run after re-creating a shipped file: ``python -m core hashes --record``."""
    directory = PRETRAINED_DIR if directory is None else Path(directory)
    out = {}
    for name in names if names is not None else pretrained_names(directory):
        out[name] = checkpoint_hashes(directory / name)
        update_manifest(name, {"sha256": out[name]}, directory)
    return out


def verify_hashes(names: list[str] | None = None, directory: Path | None = None) -> dict[str, str | None]:
    """name -> None when both files match the manifest's SHA-256, else what is wrong (damaged, missing,
    unrecorded). Default: every checkpoint present or recorded in ``directory``."""
    directory = PRETRAINED_DIR if directory is None else Path(directory)
    recorded = read_manifest(directory)["models"]
    if names is None:
        names = sorted(set(pretrained_names(directory)) | {n for n, e in recorded.items()
                                                              if isinstance(e, dict) and "sha256" in e})
    problems: dict[str, str | None] = {}
    for name in names:
        stem = directory / name
        try:
            missing = [p for p in (stem.with_suffix(".safetensors"), stem.with_suffix(".json")) if not p.is_file()]
            if missing:
                raise CheckpointError(f"{display_path(missing[0])} is missing; {restore_hint(name, directory)}")
            hashes = _recorded_hashes(stem)
            if not hashes:
                raise CheckpointError(f"no SHA-256 recorded for {name} in {display_path(directory / 'manifest.json')}"
                                      "; `python -m core hashes --record` records it")
            _verify_hashes(stem, hashes)
            problems[name] = None
        except CheckpointError as e:
            problems[name] = str(e)
    return problems


def load_pretrained(name: str, device: str = "cpu", directory: Path | None = None) -> Pretrained:
    """Load a shipped checkpoint by name, e.g. ``load_pretrained("ddpm-eight_gaussians")``.

    Its files are checked against the SHA-256 in the manifest first, so a damaged file is named as such, with
    how to restore it (``restore_hint``)."""
    directory = PRETRAINED_DIR if directory is None else Path(directory)
    names = pretrained_names(directory)
    if name not in names:
        stem = directory / name
        recorded = name in read_manifest(directory)["models"]
        present = [p for p in (stem.with_suffix(".safetensors"), stem.with_suffix(".json")) if p.is_file()]
        if recorded or present:  # a shipped model with a file gone
            gone = next(p for p in (stem.with_suffix(".safetensors"), stem.with_suffix(".json")) if not p.is_file())
            raise CheckpointError(f"{display_path(gone)} is missing; {restore_hint(name, directory)}", gone)
        raise ValueError(f"unknown pretrained model {name!r}; available: {', '.join(names) or 'none'}")
    try:
        p = load_checkpoint(directory / name, device=device)
    except CheckpointError as e:
        if "restore it with" in str(e):
            raise
        raise CheckpointError(f"{e}; {restore_hint(name, directory)}", e.path) from None
    p.meta = read_manifest(directory)["models"].get(name, {})
    return p


def hardware_description() -> str:
    """A short, human description of where a run happened (CPU model, threads, torch, CUDA)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    desc = f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    if torch.cuda.is_available():
        desc += f", {torch.cuda.get_device_name(0)}"
    return desc


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None

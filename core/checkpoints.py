"""Checkpoints: safetensors weights + a JSON config beside them, and ``load_pretrained(name)``.

``<stem>.safetensors`` holds the tensors (never pickle); ``<stem>.json`` says how to rebuild the model
(network config, schedule, data). ``pretrained/manifest.json`` records how each shipped file was made.
"""

from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from core.diffusion import VPredictionDenoiser
from core.models.mlp import MLPConfig, MLPDenoiser
from core.schedules import Schedule, make_schedule

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupted, or does not match its config."""


@dataclass
class Pretrained:
    model: nn.Module
    schedule: Schedule | None  # None for families that do not diffuse (GAN, VAE)
    config: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)  # the manifest entry, when there is one
    name: str = ""


def build_model(config: dict[str, Any]) -> tuple[nn.Module, Schedule | None]:
    """Rebuild an untrained model (and its schedule) from a checkpoint config."""
    try:
        model_cfg = dict(config["model"])
        kind = model_cfg.pop("type")
        schedule = make_schedule(**config["schedule"]) if config.get("schedule") else None
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint config is missing a field: {e}") from None
    except ValueError as e:
        raise CheckpointError(f"checkpoint config has an invalid schedule: {e}") from None
    if kind == "mlp":
        parameterization = model_cfg.pop("parameterization", "eps")
        try:
            net = MLPDenoiser(MLPConfig(**model_cfg))
        except TypeError as e:
            raise CheckpointError(f"checkpoint config does not describe an MLP: {e}") from None
        if parameterization == "v":
            return VPredictionDenoiser(net, schedule), schedule
        if parameterization == "eps":
            return net, schedule
        raise CheckpointError(f"unknown parameterization {parameterization!r}; expected eps or v")
    raise CheckpointError(f"unknown model type {kind!r}; expected one of: mlp")


def save_checkpoint(stem: str | Path, model: nn.Module, config: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``<stem>.safetensors`` and ``<stem>.json``; returns both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights, cfg_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(weights), metadata={"format_version": str(FORMAT_VERSION)})
    cfg_path.write_text(json.dumps({"format_version": FORMAT_VERSION, **config}, indent=2) + "\n")
    return weights, cfg_path


def load_checkpoint(stem: str | Path, device: str = "cpu") -> Pretrained:
    """Load a checkpoint written by :func:`save_checkpoint`, with a clear error for each failure."""
    stem = Path(stem)
    if stem.suffix in (".safetensors", ".json"):
        stem = stem.with_suffix("")
    weights, cfg_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    for p in (weights, cfg_path):
        if not p.is_file():
            raise CheckpointError(f"checkpoint file not found: {p}")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_path.name} is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{cfg_path.name} must hold a JSON object")
    model, schedule = build_model(config)
    try:
        state = load_file(str(weights), device=device)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights.name} is not a readable safetensors file: {e}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{weights.name} does not match its config: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}")
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise CheckpointError(f"{weights.name} does not match its config: {k} has shape "
                                  f"{tuple(v.shape)}, expected {tuple(expected[k].shape)}")
    model.load_state_dict(state)
    model.to(device).eval().requires_grad_(False)
    return Pretrained(model=model, schedule=schedule, config=config, name=stem.name)


# --- the manifest -------------------------------------------------------------------------------


def read_manifest(directory: Path = PRETRAINED_DIR) -> dict[str, Any]:
    path = directory / "manifest.json"
    if not path.is_file():
        return {"models": {}}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None


def update_manifest(name: str, entry: dict[str, Any], directory: Path = PRETRAINED_DIR) -> None:
    """Merge ``entry`` into the manifest record of ``name`` (keys sorted, so diffs stay readable)."""
    manifest = read_manifest(directory)
    manifest.setdefault("models", {}).setdefault(name, {}).update(entry)
    manifest["models"] = dict(sorted(manifest["models"].items()))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def pretrained_names(directory: Path = PRETRAINED_DIR) -> list[str]:
    """Names of the checkpoints shipped in ``directory`` (those with both files present)."""
    return sorted(p.stem for p in directory.glob("*.safetensors") if p.with_suffix(".json").is_file())


def load_pretrained(name: str, device: str = "cpu", directory: Path = PRETRAINED_DIR) -> Pretrained:
    """Load a shipped checkpoint by name, e.g. ``load_pretrained("ddpm-eight_gaussians")``."""
    names = pretrained_names(directory)
    if name not in names:
        raise ValueError(f"unknown pretrained model {name!r}; available: {', '.join(names) or 'none'}")
    p = load_checkpoint(directory / name, device=device)
    p.meta = read_manifest(directory).get("models", {}).get(name, {})
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

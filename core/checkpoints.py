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
from safetensors.torch import save as safetensors_bytes
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
    if kind == "unet":
        from core.models.unet import UNet, UNetConfig
        try:
            unet_cfg = UNetConfig(**{**model_cfg, "channel_mults": tuple(model_cfg.get("channel_mults", (1, 2)))})
        except TypeError as e:
            raise CheckpointError(f"checkpoint config does not describe a UNet: {e}") from None
        return UNet(unet_cfg), schedule
    if kind == "classifier":
        from core.models.classifier import ClassifierConfig, MNISTClassifier
        try:
            return MNISTClassifier(ClassifierConfig(**model_cfg)), None
        except TypeError as e:
            raise CheckpointError(f"checkpoint config does not describe a classifier: {e}") from None
    if kind in ("gan", "vae"):
        from core.models.gan import GAN, GANConfig
        from core.models.vae import VAE, VAEConfig
        try:
            return (GAN(GANConfig(**model_cfg)) if kind == "gan" else VAE(VAEConfig(**model_cfg))), None
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint config does not describe a {kind.upper()}: {e}") from None
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
    raise CheckpointError(f"unknown model type {kind!r}; expected one of: mlp, unet, classifier, gan, vae")


def checkpoint_bytes(model: nn.Module, config: dict[str, Any]) -> tuple[bytes, bytes]:
    """The two files of a checkpoint as bytes: the safetensors weights and the JSON config (for a download)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = safetensors_bytes(tensors, metadata={"format_version": str(FORMAT_VERSION)})
    text = json.dumps({"format_version": FORMAT_VERSION, **config}, indent=2) + "\n"
    return weights, text.encode()


def save_checkpoint(stem: str | Path, model: nn.Module, config: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``<stem>.safetensors`` and ``<stem>.json`` (``checkpoint_bytes``); returns both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights, cfg_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    weight_bytes, config_bytes = checkpoint_bytes(model, config)
    weights.write_bytes(weight_bytes)
    cfg_path.write_bytes(config_bytes)
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

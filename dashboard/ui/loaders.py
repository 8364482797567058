"""Cached loaders shared by the pages: toy data, Gaussian noise, schedules, pretrained checkpoints and JSON result
files, each cached on hashable arguments. Nothing here trains or samples on import.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
import torch

from core import checkpoints
from core.checkpoints import Pretrained, load_pretrained
from core.data.toy2d import MIXTURE_TOYS, TOY_NAMES, sample_toy
from core.schedules import Schedule, make_schedule

ROOT = Path(__file__).resolve().parents[2]  # the repository: benchmarks/results/, pretrained/
TOYS: tuple[str, ...] = TOY_NAMES


@st.cache_data(max_entries=32, show_spinner=False)
def toy_points(name: str, n: int, seed: int) -> np.ndarray:
    """n points (n, 2) float32 of a toy, reproducible from the seed."""
    return sample_toy(name, int(n), generator=torch.Generator().manual_seed(int(seed))).numpy()


@st.cache_data(max_entries=32, show_spinner=False)
def gaussian_noise(n: int, seed: int, d: int = 2) -> np.ndarray:
    """n draws (n, d) float32 of N(0, I), reproducible from the seed."""
    return torch.randn(int(n), d, generator=torch.Generator().manual_seed(int(seed))).numpy()


def is_mixture(toy: str) -> bool:
    """Whether the toy's exact density (and score) is known in closed form."""
    return toy in MIXTURE_TOYS


@st.cache_resource(max_entries=64, show_spinner=False)
def _schedule(name: str, T: int, params: tuple[tuple[str, Any], ...]) -> Schedule:
    kwargs = {k: np.frombuffer(v, dtype=np.float64).copy() if isinstance(v, bytes) else v for k, v in params}
    return make_schedule(name, T, **kwargs)


def build_schedule(name: str, T: int = 1000, **params: Any) -> Schedule:
    """make_schedule, cached on (name, T, params); raises the engine's ValueError unchanged.

    Array parameters (custom betas) are keyed by their bytes: Streamlit hashes a tuple float by float.
    """
    items = tuple(sorted((k, np.asarray(v, dtype=np.float64).ravel().tobytes()
                          if isinstance(v, (list, tuple, np.ndarray, torch.Tensor)) else v)
                         for k, v in params.items()))
    return _schedule(name, int(T), items)


def schedule_bytes(s: Schedule) -> bytes:
    """A cheap cache key for a schedule: its betas as float64 bytes (see ``schedule_from_bytes``)."""
    return s.betas.numpy().tobytes()


def schedule_from_bytes(label: str, betas: bytes) -> Schedule:
    """Rebuild a schedule inside a cached function from ``schedule_bytes``."""
    return Schedule(label, torch.from_numpy(np.frombuffer(betas, dtype=np.float64).copy()))


@st.cache_resource(max_entries=40, show_spinner="Loading the pretrained model...")
def _pretrained(name: str, directory: str) -> Pretrained:
    p = load_pretrained(name, directory=Path(directory))
    p.model.eval()
    return p


def pretrained(name: str) -> Pretrained:
    """core.checkpoints.load_pretrained(name), loaded once per process (frozen model, shared; every shipped model
    fits: about 20 MB in all). The folder is read at call time (tests point it at a copy). A damaged or missing
    file raises CheckpointError (a ValueError), never cached, so a restored file is picked up on the next run."""
    return _pretrained(name, str(checkpoints.PRETRAINED_DIR))


def pretrained_problem(name: str) -> str | None:
    """None when the shipped model loads; otherwise why not, naming the file and how to restore it."""
    try:
        pretrained(name)
    except ValueError as err:  # CheckpointError (damaged, missing), or a name with no file and no record
        return str(err)
    return None


def broken_model_notice(name: str, problem: str, consequence: str = "") -> None:
    """st.error for a shipped model that cannot be loaded: which file, how to restore it, and what the page
    shows without it (the rest of the page keeps working)."""
    st.error(f"**{name}** cannot be loaded: {problem}." + (f" {consequence}" if consequence else ""),
             icon=":material/broken_image:")


@st.cache_data(max_entries=8, show_spinner=False)
def _read_json(path: str, mtime: float) -> dict | None:
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def read_json(path: Path) -> dict | None:
    """A JSON object file, re-read when it changes (keyed by its modification time, so a rerun of a benchmark
    shows up); None if absent, unreadable or not an object."""
    return _read_json(str(path), path.stat().st_mtime) if path.is_file() else None


class ResultsProblem(ValueError):
    """A benchmark's results file is missing, unreadable or lacks well-formed rows; the message names the file and
    the command that writes it."""


def results_json(path: Path, command: str, takes: str) -> tuple[dict, str]:
    """A benchmark's results file as a JSON object, and the advice for when its rows are not right ("`command`
    writes it (takes)"). Raises ResultsProblem when the file is missing or not a JSON object."""
    fix = f"`{command}` writes it ({takes})"
    raw = read_json(path)
    if raw is None:
        raise ResultsProblem(f"**{path.name}** is {'not a readable JSON object' if path.is_file() else 'missing'}: "
                             f"{fix}.")
    return raw, fix


def finite_number(raw: Any, where: str) -> float:
    """A number read from a results file: finite, not a bool; ResultsProblem otherwise."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        raise ResultsProblem(f"{where}: expected a finite number")
    return float(raw)


def manifest_models() -> dict[str, dict]:
    """pretrained/manifest.json's records by model name (``python -m core evaluate --update-manifest`` adds
    metrics while the app runs, so it is re-read when it changes)."""
    raw = read_json(Path(checkpoints.PRETRAINED_DIR) / "manifest.json") or {}  # at call time: tests move it
    models = raw.get("models")
    return models if isinstance(models, dict) else {}

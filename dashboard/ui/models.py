"""Which 2D model a page runs: the shipped checkpoints, the ones trained in this browser session, or the
exact score of a mixture toy. Pages pick by a string token, so cached computations can key on it.

Tokens: ``ddpm-<toy>`` (pretrained, shared by every user), ``session:<id>`` (trained on the Train page,
private to this session), and ``exact:<toy>`` (the closed-form eps of a mixture toy, core.analytic). A model the
Train page has trained (in a worker process of the job runner) joins the registry through ``adopt_trained_model``,
which every picker calls first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import streamlit as st
import torch

from core.analytic import toy_mixture
from core.checkpoints import Pretrained
from core.data.toy2d import MIXTURE_TOYS, TOY_NAMES
from dashboard.ui import background, train
from dashboard.ui.fmt import toy_label
from dashboard.ui.loaders import pretrained, pretrained_problem
from dashboard.ui.widgets import UrlWidgets

SESSION_KEY = "session_models"  # token -> SessionModel
DROPPED_KEY = "session_models.dropped"  # labels of the models the list dropped to make room, not yet announced


@dataclass
class SessionModel:
    label: str
    model: Pretrained  # model, schedule, config (data provenance in config["data"])
    losses: list[float]


@dataclass
class ModelChoice:
    token: str
    label: str
    eps_model: Any  # eps_model(x, t, y=None)
    schedule: Any
    toy: str | None  # the toy it models (None for a user's own point cloud)
    data: torch.Tensor | None = None  # the user's points (standardised) when toy is None


def session_models() -> dict[str, SessionModel]:
    return st.session_state.setdefault(SESSION_KEY, {})


def register_session_model(label: str, model: Pretrained, losses: list[float]) -> str:
    """Keep a model trained in this session; returns its token (usable on every page)."""
    token = f"session:{uuid.uuid4().hex[:8]}"
    session_models()[token] = SessionModel(label=label, model=model, losses=list(losses))
    return token


def adopt_trained_model() -> train.TrainedRun | None:
    """Register the model of this session's finished Train job (if there is one) and return the last run of
    this session whose model is still registered. A job that left no model leaves its reason in NOTICE_KEY."""
    job = background.collect(train.JOB)
    state = st.session_state
    if job is not None:
        made = train.trained_run(job)
        if isinstance(made[0], str):
            state[train.NOTICE_KEY] = made
        else:
            run, model = made
            number = state.get(train.COUNT_KEY, 0) + 1
            state[train.COUNT_KEY] = number
            run.label = f"#{number} {run.label}"
            model.name = f"session-{number}"
            run.token = register_session_model(run.label, model, run.losses)
            registry = session_models()
            for old in list(registry)[:-train.MAX_SESSION_MODELS]:
                state.setdefault(DROPPED_KEY, []).append(registry.pop(old).label)
            state[train.RUN_KEY] = run
            state.pop(train.NOTICE_KEY, None)
    return last_trained_run()


def last_trained_run() -> train.TrainedRun | None:
    """The last run of this session whose model is still registered (collects nothing)."""
    run = st.session_state.get(train.RUN_KEY)
    return run if run is not None and run.token in session_models() else None


def model_tokens() -> list[str]:
    return [f"ddpm-{toy}" for toy in TOY_NAMES] + list(session_models())


def capacity_text() -> str | None:
    """When this tab's list of trained models is full: which model the next one trained replaces (else None)."""
    registry = session_models()
    if len(registry) < train.MAX_SESSION_MODELS:
        return None
    oldest = next(iter(registry.values())).label
    return (f"This tab keeps the last {train.MAX_SESSION_MODELS} models you train, and the list is full: the next "
            f"one replaces **{oldest}** in every Model list (download it on the Train page to keep it).")


def session_capacity_notice() -> None:
    """The list's state where a student decides to train: models it dropped since the last look, and, when it is
    full, which model would go next."""
    dropped = st.session_state.pop(DROPPED_KEY, [])
    if dropped:
        st.info(f"{'; '.join(dropped)} left the Model lists to make room (this tab keeps the last "
                f"{train.MAX_SESSION_MODELS} models you train).", icon=":material/playlist_remove:")
    if text := capacity_text():
        st.caption(text)


def token_label(token: str) -> str:
    if token.startswith("session:"):
        m = session_models().get(token)
        return f"yours: {m.label}" if m else token
    if token.startswith("exact:"):
        return f"exact score: {toy_label(token[6:])}"
    return f"pretrained: {toy_label(token.removeprefix('ddpm-'))}"


def resolve(token: str, exact: bool = False) -> ModelChoice:
    """The model behind a token; ``exact`` swaps in the closed-form eps when the toy is a mixture."""
    if token.startswith("session:"):
        m = session_models()[token]
        p = m.model
    else:
        p = pretrained(token)
    data = p.config.get("data", {})
    toy = data.get("name") if data.get("kind") == "toy" else None
    points = torch.as_tensor(data["points"]) if "points" in data else None
    if exact:
        if toy not in MIXTURE_TOYS:
            raise ValueError(f"the exact score is known only for the mixture toys ({', '.join(MIXTURE_TOYS)})")
        return ModelChoice(f"exact:{toy}|{token}", token_label(f"exact:{toy}"),
                           toy_mixture(toy).as_eps_model(p.schedule), p.schedule, toy)
    return ModelChoice(token, token_label(token), p.model, p.schedule, toy, points)


def model_picker(ui: UrlWidgets, default_toy: str = "eight_gaussians", exact_toggle: bool = True,
                 label: str = "Model") -> ModelChoice:
    """A selectbox of models (pretrained + this session's) and, for mixture toys, a learned/exact toggle."""
    adopt_trained_model()  # a model whose training job has just finished joins the list first
    broken = {t: problem for t in model_tokens() if not t.startswith("session:") and (problem := pretrained_problem(t))}
    tokens = [t for t in model_tokens() if t not in broken]  # a damaged shipped file leaves the others usable
    for t, problem in broken.items():
        st.error(f"**{t}** is not in the list: {problem}.", icon=":material/broken_image:")
    if not tokens:
        st.stop()  # nothing to show: the messages above say which files to restore
    default = f"ddpm-{default_toy}" if f"ddpm-{default_toy}" in tokens else tokens[0]
    token = ui.selectbox(label, "model", tokens, default=default, format_func=token_label,
                         help=capacity_text())
    choice = resolve(token)
    if exact_toggle and choice.toy in MIXTURE_TOYS:
        if ui.toggle("Use the exact score instead of the network", "exact", default=False,
                     help="For Gaussian-mixture toys the true eps is known in closed form: any difference "
                          "from the learned model is then discretisation error alone."):
            choice = resolve(token, exact=True)
    return choice

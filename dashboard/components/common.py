"""Page furniture shared by every dashboard page: the page registry, the header (equation, explanation,
"try this", "show the code"), widgets whose values live in the URL, and cached loaders.

Nothing here trains or samples on import; every heavy call is cached on hashable arguments.
"""

from __future__ import annotations

import inspect
import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
import torch

from core.data.toy2d import MIXTURE_TOYS, TOY_NAMES, sample_toy
from core.schedules import Schedule, make_schedule

DASHBOARD_DIR = Path(__file__).resolve().parent.parent
ROOT = DASHBOARD_DIR.parent

# --- the page registry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageSpec:
    """One dashboard page: ``file`` in dashboard/, its title, material icon, sidebar section, and one line
    on what it teaches (shown on Home)."""

    file: str
    title: str
    icon: str
    section: str
    teaches: str


# Every page the lab will have. app.py registers those whose file exists, so a page appears by creating it.
PAGES: tuple[PageSpec, ...] = (
    PageSpec("home.py", "Home", ":material/home:", "Start",
             "What diffusion is, in one picture."),
    PageSpec("schedules.py", "Noise schedules", ":material/show_chart:", "Forward process",
             "How the betas set alpha-bar, the signal-to-noise ratio and the posterior variance, and "
             "why a schedule that never reaches noise leaves structure behind at t = T."),
    PageSpec("forward.py", "Forward process", ":material/grain:", "Forward process",
             "A 2D data set dissolving into Gaussian noise, with the exact density q(x_t) and a few "
             "particle paths."),
    PageSpec("reverse.py", "Reverse process", ":material/replay:", "Reverse process",
             "A trained network turning noise back into data, step by step, beside its x_0 predictions."),
    PageSpec("score_field.py", "Score field", ":material/explore:", "Reverse process",
             "The learned score next to the exact one, at any noise level."),
    PageSpec("samplers.py", "Samplers", ":material/compare_arrows:", "Sampling and training",
             "DDPM, DDIM, SDE and ODE samplers from the same noise on the same model."),
    PageSpec("train.py", "Train", ":material/model_training:", "Sampling and training",
             "Train a small model live, with a loss curve, a time budget and a cancel button."),
    PageSpec("mnist.py", "MNIST", ":material/draw:", "Images",
             "The same ideas on handwritten digits, with class guidance."),
    PageSpec("baselines.py", "Diffusion vs GAN vs VAE", ":material/balance:", "Images",
             "Three families of generative models on the same data with the same metrics."),
)


def existing_pages() -> list[PageSpec]:
    """The registered pages whose file exists in dashboard/."""
    return [p for p in PAGES if (DASHBOARD_DIR / p.file).is_file()]


# --- the page header -------------------------------------------------------------------------------------


def page_header(title: str, equation: str | Sequence[str], explanation: str, try_this: str,
                code: Sequence[Callable[..., Any] | type] = ()) -> None:
    """Title, the equation in the paper's notation, 2-3 sentences, a "try this" hint, "show the code"."""
    st.title(title)
    for eq in [equation] if isinstance(equation, str) else equation:
        st.latex(eq)
    st.markdown(explanation)
    st.info(f"**Try this:** {try_this}", icon=":material/lightbulb:")
    if code:
        show_code(*code)


def show_code(*objects: Callable[..., Any] | type, label: str = "Show the code") -> None:
    """An expander with the source of the engine functions a page calls (inspect.getsource)."""
    with st.expander(label, icon=":material/code:"):
        for obj in objects:
            st.caption(f"`{_source_path(obj)}` · `{obj.__qualname__}`")
            st.code(textwrap.dedent(inspect.getsource(obj)), language="python")


def _source_path(obj: Any) -> str:
    try:
        return Path(inspect.getsourcefile(obj)).resolve().relative_to(ROOT).as_posix()
    except (TypeError, ValueError):
        return obj.__module__


# --- widgets whose value lives in the URL -----------------------------------------------------------------


class UrlWidgets:
    """Widgets that initialise from the page's query parameters and write back on change.

    ``ui = UrlWidgets("forward")``; ``ui.slider("T", "T", 10, 1000, default=1000)`` reads ``?T=...``.
    A missing, malformed or out-of-range URL value falls back to the default (never raises); values equal
    to their default are removed from the URL so shared links stay short. The widget key is
    ``"<page>.<name>"``, and a shadow copy keeps the value when the user visits another page and comes
    back (Streamlit clears the URL on navigation).
    """

    def __init__(self, page: str):
        self.page = page

    # Each widget: coerce(x, clamp) turns a URL string or a stored value into a valid value, or None.
    def _bind(self, name: str, default: Any, coerce: Callable[[Any, bool], Any],
              render: Callable[[str], Any], fmt: Callable[[Any], str] = str) -> Any:
        key, shadow = f"{self.page}.{name}", f"_url_shadow.{self.page}.{name}"
        state = st.session_state
        if key in state:  # already on screen: keep it, but re-validate against bounds that may have moved
            value = coerce(state[key], True)
            # Always write it back: a widget whose bounds change gets a new id, and only a value set through
            # session_state carries over to it (otherwise it would reset to its minimum).
            state[key] = default if value is None else value
        else:  # first render in this session (or back from another page)
            value = None
            raw = st.query_params.get(name)
            if raw is not None:
                value = coerce(raw, False)
            if value is None and shadow in state:
                value = coerce(state[shadow], True)
            state[key] = default if value is None else value
        value = render(key)
        state[shadow] = value
        text = fmt(value)
        if value == default:
            if name in st.query_params:
                del st.query_params[name]
        elif st.query_params.get(name) != text:
            st.query_params[name] = text
        return value

    def slider(self, label: str, name: str, min_value: int | float, max_value: int | float,
               default: int | float, step: int | float | None = None, **kwargs: Any) -> Any:
        """st.slider over [min_value, max_value]; ints if all bounds are ints, else floats."""
        integer = all(isinstance(v, int) for v in (min_value, max_value, default)) and \
            (step is None or isinstance(step, int))
        coerce = _number_coercer(min_value, max_value, step, integer)
        default = coerce(default, True)
        return self._bind(name, default, coerce,
                          lambda key: st.slider(label, min_value, max_value, step=step, key=key, **kwargs),
                          _fmt_number)

    def number(self, label: str, name: str, min_value: int, max_value: int, default: int,
               **kwargs: Any) -> int:
        """An integer st.number_input (e.g. a seed)."""
        coerce = _number_coercer(min_value, max_value, 1, True)
        return self._bind(name, default, coerce,
                          lambda key: st.number_input(label, min_value, max_value, step=1, key=key, **kwargs),
                          _fmt_number)

    def selectbox(self, label: str, name: str, options: Sequence[str], default: str, **kwargs: Any) -> str:
        """st.selectbox over string options; the URL holds the option itself."""
        options = list(options)

        def coerce(x: Any, clamp: bool) -> str | None:
            return x if isinstance(x, str) and x in options else None

        return self._bind(name, default, coerce,
                          lambda key: st.selectbox(label, options, key=key, **kwargs))

    def text(self, label: str, name: str, default: str, max_chars: int = 500, **kwargs: Any) -> str:
        """st.text_input; URL values longer than max_chars or with control characters are ignored."""

        def coerce(x: Any, clamp: bool) -> str | None:
            if not isinstance(x, str) or len(x) > max_chars or any(ord(c) < 32 for c in x):
                return None
            return x

        return self._bind(name, default, coerce,
                          lambda key: st.text_input(label, key=key, max_chars=max_chars, **kwargs))

    def toggle(self, label: str, name: str, default: bool, **kwargs: Any) -> bool:
        """st.toggle; the URL holds 1 or 0."""

        def coerce(x: Any, clamp: bool) -> bool | None:
            if isinstance(x, bool):
                return x
            return {"1": True, "true": True, "0": False, "false": False}.get(str(x).lower())

        return self._bind(name, default, coerce, lambda key: st.toggle(label, key=key, **kwargs),
                          lambda v: "1" if v else "0")


def _fmt_number(v: int | float) -> str:
    return str(v) if isinstance(v, int) else f"{v:.10g}"


def parse_finite(x: Any) -> float | None:
    """A finite number from a URL string or a stored value, or None (booleans, text, nan and inf included)."""
    if isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError, OverflowError):
        return None
    return v if math.isfinite(v) else None


def _number_coercer(lo: float, hi: float, step: float | None, integer: bool) -> Callable[[Any, bool], Any]:
    """Parse a number from a URL string or a stored value; out of range: clamp (stored) or reject (URL)."""

    def coerce(x: Any, clamp: bool) -> int | float | None:
        v = parse_finite(x)
        if v is None:
            return None
        if v < lo or v > hi:
            if not clamp:
                return None
            v = min(max(v, lo), hi)
        if step:
            v = lo + round((v - lo) / step) * step
            v = min(max(v, lo), hi)
        if integer:
            return int(round(v))
        decimals = max(0, -int(math.floor(math.log10(step)))) + 2 if step else 12
        return round(v, decimals)

    return coerce


# --- cached loaders ----------------------------------------------------------------------------------------


@st.cache_data(max_entries=32, show_spinner=False)
def toy_points(name: str, n: int, seed: int) -> np.ndarray:
    """n points (n, 2) float32 of a toy, reproducible from the seed."""
    return sample_toy(name, int(n), generator=torch.Generator().manual_seed(int(seed))).numpy()


@st.cache_data(max_entries=32, show_spinner=False)
def gaussian_noise(n: int, seed: int, d: int = 2) -> np.ndarray:
    """n draws (n, d) float32 of N(0, I), reproducible from the seed."""
    return torch.randn(int(n), d, generator=torch.Generator().manual_seed(int(seed))).numpy()


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


def parse_beta_knots(text: str, T: int) -> np.ndarray:
    """Custom betas typed by a user: comma-separated values linearly interpolated over T steps.

    One value is a constant beta; two a linear ramp; T values are used as they are. Raises ValueError with a
    message for a human; the engine then checks the values themselves (each in (0, 1), finite).
    """
    fields = [f.strip() for f in text.replace(";", ",").split(",") if f.strip()]
    if not fields:
        raise ValueError("enter at least one beta, e.g. 0.005 or 0.0001, 0.02")
    knots = []
    for f in fields:
        try:
            knots.append(float(f))
        except ValueError:
            raise ValueError(f"cannot read {f[:20]!r} as a number") from None
    if len(knots) == 1:
        return np.full(T, knots[0])
    return np.interp(np.linspace(0, 1, T), np.linspace(0, 1, len(knots)), knots)


@st.cache_resource(max_entries=8, show_spinner="Loading the pretrained model...")
def pretrained(name: str):
    """core.checkpoints.load_pretrained(name), loaded once per process (frozen model, shared)."""
    from core.checkpoints import load_pretrained

    p = load_pretrained(name)
    p.model.eval()
    return p


def is_mixture(toy: str) -> bool:
    """Whether the toy's exact density (and score) is known in closed form."""
    return toy in MIXTURE_TOYS


TOYS: tuple[str, ...] = TOY_NAMES


def toy_label(name: str) -> str:
    """eight_gaussians -> 'eight gaussians' (for selectbox format_func)."""
    return name.replace("_", " ")


# --- the terminal-SNR check --------------------------------------------------------------------------------

NOISE_ALPHA_BAR_T = 1e-2  # above this, x_T keeps > 10% of the signal: the forward process has not reached noise


def reaches_noise(s: Schedule) -> bool:
    """True when alpha_bar_T <= 1e-2, i.e. q(x_T) is close to the N(0, I) the sampler starts from."""
    return float(s.alpha_bars[-1]) <= NOISE_ALPHA_BAR_T


def fmt_num(v: float) -> str:
    """Compact number: 0.61, 4.04e-05, 0, inf."""
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    return f"{v:.3g}" if 1e-3 <= abs(v) < 1e4 else f"{v:.2e}"


def terminal_noise_warning(s: Schedule, label: str) -> bool:
    """st.warning when the schedule does not reach noise, with the consequence; returns True if it warned."""
    if reaches_noise(s):
        return False
    ab = float(s.alpha_bars[-1])
    st.warning(
        f"**{label}** does not reach noise: ᾱ_T = {fmt_num(ab)}, so x_T still carries √ᾱ_T = "
        f"{100 * math.sqrt(ab):.0f}% of x_0 (terminal SNR {fmt_num(s.terminal_snr)}). A sampler starts "
        "from N(0, I), which is not q(x_T), so its samples stay off the data however well the model is "
        "trained. Raise T or the last β, or use the cosine schedule.",
        icon=":material/warning:",
    )
    return True

"""Widgets whose value lives in the page's URL (``?T=50&seed=3``), so a copied link reopens the exact view.

``ui = UrlWidgets("forward")``; ``ui.slider("T", "T", 10, 1000, default=1000)`` reads and writes ``?T=...``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st


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
        coerce = number_coercer(min_value, max_value, step, integer)
        default = coerce(default, True)
        return self._bind(name, default, coerce,
                          lambda key: st.slider(label, min_value, max_value, step=step, key=key, **kwargs),
                          _fmt_number)

    def number(self, label: str, name: str, min_value: int, max_value: int, default: int,
               **kwargs: Any) -> int:
        """An integer st.number_input (e.g. a seed)."""
        coerce = number_coercer(min_value, max_value, 1, True)
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

    def select_slider(self, label: str, name: str, options: Sequence[int], default: int, **kwargs: Any) -> int:
        """st.select_slider over a few integers (an NFE budget); a stored value snaps to the nearest option."""
        options = [int(o) for o in options]

        def coerce(x: Any, clamp: bool) -> int | None:
            v = parse_finite(x)
            if v is None:
                return None
            if v in options:
                return int(v)
            return min(options, key=lambda o: abs(o - v)) if clamp else None

        return self._bind(name, default, coerce,
                          lambda key: st.select_slider(label, options, key=key, **kwargs))

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


def number_coercer(lo: float, hi: float, step: float | None, integer: bool) -> Callable[[Any, bool], Any]:
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

"""The top of every page: title, the equation in the paper's notation, a short explanation, a "try this" hint,
and "show the code" (the engine functions the page calls, read by ``inspect.getsource``)."""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard.ui.loaders import ROOT


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

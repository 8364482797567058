"""Formatting for people: compact numbers and toy names."""

from __future__ import annotations

import math


def fmt_num(v: float) -> str:
    """Compact number: 0.61, 4.04e-05, 0, inf."""
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    return f"{v:.3g}" if 1e-3 <= abs(v) < 1e4 else f"{v:.2e}"


def toy_label(name: str) -> str:
    """eight_gaussians -> 'eight gaussians' (for selectbox format_func)."""
    return name.replace("_", " ")

"""The terminal-SNR check every page with a schedule makes: does the forward process reach the N(0, I) that
sampling starts from?"""

from __future__ import annotations

import math

import streamlit as st

from core.schedules import Schedule
from dashboard.ui.fmt import fmt_num

NOISE_ALPHA_BAR_T = 1e-2  # above this, x_T keeps > 10% of the signal: the forward process has not reached noise


def reaches_noise(s: Schedule) -> bool:
    """True when alpha_bar_T <= 1e-2, i.e. q(x_T) is close to the N(0, I) the sampler starts from."""
    return float(s.alpha_bars[-1]) <= NOISE_ALPHA_BAR_T


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

"""Helpers of the Text to image page (dashboard/views/text_to_image.py): prompts (examples, the grammar, one word
swapped), the text-conditioned latent model ldm-text-mnist sampled with its cross-attention maps recorded, a guidance
sweep measured with the functions that made the captions, and the small CLIP's shared space drawn in 2D. Cached
computations take prompts and settings (never a model object) and return plain arrays.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
from torch.nn import functional as F

from core.data import captions
from core.data.captions import (
    CODE_WORDS,
    NUMBER_NAMES,
    NUMERALS,
    VOCABULARY,
    AttributeThresholds,
    Prompt,
    PromptError,
    attributes,
    parse_prompt,
    prompt_words,
    tokenize,
)
from core.guidance import RowwiseGuidance
from core.samplers import METHODS, sample
from dashboard.ui import plots
from dashboard.ui.digits import reading, test_digits
from dashboard.ui.loaders import ResultsProblem, finite_number, manifest_models, pretrained, results_json
from dashboard.ui.sampling import StepRange

MODEL, CLIP_MODEL = "ldm-text-mnist", "clip-mnist"
BENCH_JSON = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "text_to_image.json"  # read at call
# time: tests point it away
BENCH_COMMAND = "python benchmarks/text_to_image.py --json benchmarks/results/text_to_image.json"
EXAMPLES: tuple[str, ...] = ("7", "seven", "a thick seven", "a 4 slanted left", "a large two leaning right",
                             "a small thin eight")
DEFAULT_PROMPT = "a thick seven"
N_GRID, COLS = 16, 8  # the samples of the prompt (two rows of eight)
N_SWAP = 8  # samples of the prompt with one word changed, from the first N_SWAP noises of the grid
N_FRAMES = 8  # states of the strip along the steps
N_ATTN = 4  # steps at which the cross-attention maps are shown, evenly spread over the run
ATTN_SIDE = 7  # the cross-attention layers at the latent's full 7 x 7 resolution (the 4 x 4 ones are left out)
# Steps per sampler (guided: two network passes per step). The defaults keep a control change (this grid and its
# one-word twin, 16 + 16 latents of 4 x 7 x 7) near a second on a 2-core CPU, at the fewest steps where "a thick
# seven" still comes out as 16 thick sevens of 16 (fewer: predictor-corrector and Heun lose the digit first).
STEP_RANGES: dict[str, StepRange] = {
    "ddpm": StepRange(10, 1000, 20, 10),
    "ddim": StepRange(2, 100, 8),
    "euler_maruyama": StepRange(10, 500, 30, 10),
    "predictor_corrector": StepRange(5, 250, 25, 5),
    "ode_euler": StepRange(5, 250, 10, 5),
    "ode_heun": StepRange(2, 100, 8),
    "dpm_solver_2m": StepRange(2, 50, 8),
}
SAMPLERS: tuple[str, ...] = tuple(m for m in METHODS if m in STEP_RANGES)
SWEEP_SCALES: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 5.0)
SWEEP_N = 8  # samples per (word, scale): the same SWEEP_N noises in every cell
SWEEP_STEPS = 10  # DDIM
SWEEP_SEED = 0
ATTRIBUTES: tuple[str, ...] = ("thickness", "slant", "size")
SWEEP_CHOICES: tuple[str, ...] = ("auto", *ATTRIBUTES)  # auto: the attribute the prompt names
MEASURES = {"thickness": "stroke_mass", "slant": "shear", "size": "box_area"}
MEASURE_LABELS = {"thickness": "stroke mass (total ink)", "slant": "shear (dx per pixel of height)",
                  "size": "bounding-box area (pixels)"}
ATTRIBUTE_LABELS = {"thickness": "thickness: thin / thick", "slant": "slant: left / upright / right",
                    "size": "size: small / large"}
WORD_COLORS = {"thin": "#0891b2", "thick": "#b91c1c", "left": "#0891b2", "upright": "#6b7280", "right": "#b91c1c",
               "small": "#0891b2", "large": "#b91c1c", None: "#6b7280"}
N_SPACE_IMAGES = 500  # held-out digits in the CLIP picture
SPACE_VARIANTS: tuple[Prompt, ...] = tuple(  # the prompts per digit in the CLIP picture (the digit filled in)
    [Prompt()] + [Prompt(thickness=v) for v in ("thin", "thick")] + [Prompt(size=v) for v in ("small", "large")]
    + [Prompt(slant=v) for v in ("left", "upright", "right")])
DIGIT_COLORS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
                "#bab0ac")  # Tableau 10, one per digit (as on the Latent diffusion page)
START = "⟨start⟩"  # the CLIP text encoder's start token, which every prompt has (the empty one only it)
ATTN_COLORSCALE = "Inferno"  # dark: the row's least attention; bright: its most
OUTLINE_COLOR = "#22d3ee"  # the finished digit's outline over the maps


# --- prompts --------------------------------------------------------------------------------------------------------


def check_prompt(text: str) -> tuple[Prompt | None, str | None]:
    """(what the prompt says, None) or (None, the PromptError's message)."""
    try:
        return parse_prompt(text), None
    except PromptError as err:
        return None, str(err)


def grammar() -> str:
    """The grammar block of core.data.captions' docstring (from ``prompt ::=`` to the ``direction`` rule)."""
    lines = (captions.__doc__ or "").splitlines()
    start = next((i for i, line in enumerate(lines) if "::=" in line), None)
    if start is None:
        return ""
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return "\n".join(line[4:] for line in lines[start:end])


def vocabulary() -> str:
    return ", ".join(VOCABULARY)


def digit_word(digit: int, like: str | None = None) -> str:
    """The digit as a word ("seven"), or as a numeral when ``like`` is one."""
    return NUMERALS[digit] if like is not None and like in NUMERALS else NUMBER_NAMES[digit]


def prompt_text(p: Prompt, like: str | None = None) -> str:
    """A prompt in the grammar that says exactly ``p``: "a large thin seven slanted left" ("" when it says
    nothing; a numeral when ``like`` uses one)."""
    if p.digit is None:
        return ""
    adjectives = [w for w in (p.size, p.thickness) if w is not None]
    after = [] if p.slant is None else ["upright"] if p.slant == "upright" else ["slanted", p.slant]
    words = [*adjectives, digit_word(p.digit, like), *after]
    article = "an" if words[0] in ("eight", "8", "upright") else "a"
    return " ".join([article, *words])


def words_of(text: str) -> list[str]:
    """The prompt's words as the tokenizer sees them ([] when it does not parse)."""
    try:
        return prompt_words(text)
    except PromptError:
        return []


CONTENT = frozenset({*captions.DIGIT_WORDS, *captions.SIZE_WORDS, *captions.THICKNESS_WORDS, *captions.UPRIGHT_WORDS,
                     *captions.DIRECTIONS})  # the words that say something (not articles, nouns, slant verbs)


def swap_choices(words: list[str]) -> list[str]:
    """The prompt's words that say something (the digit, size, thickness, slant direction): each appears once in a
    prompt that parses, so the word itself names its place."""
    return [w for w in words if w in CONTENT]


def replacements(words: list[str], i: int) -> list[str]:
    """The words that can stand at position i so that the prompt still parses and says something else, plus ""
    (remove the word) where the prompt parses without it."""
    before = parse_prompt(" ".join(words))
    out = []
    for v in (*VOCABULARY, ""):
        if v == words[i]:
            continue
        changed = [*words[:i], *([v] if v else []), *words[i + 1:]]
        try:
            p = parse_prompt(" ".join(changed))
        except PromptError:
            continue
        if (p != before or v) and not p.unconditional:
            out.append(v)
    return list(dict.fromkeys(out))


OPPOSITES = {"thin": "thick", "thick": "thin", "light": "bold", "bold": "light", "small": "large", "large": "small",
             "little": "big", "big": "little", "left": "right", "right": "left", "upright": "slanted"}


def default_swap(words: list[str]) -> str:
    """The word to change first: the first attribute word, else the digit."""
    choices = swap_choices(words)
    return next((w for w in choices if w in OPPOSITES and w != "upright"), choices[0] if choices else "")


def default_replacement(words: list[str], i: int, options: list[str]) -> str:
    """The word's opposite (thin -> thick, left -> right), the next digit (seven -> eight), else the first option."""
    w = words[i]
    if w in captions.DIGIT_WORDS:
        d = (captions.DIGIT_WORDS[w] + 1) % 10
        want = NUMERALS[d] if w in NUMERALS else NUMBER_NAMES[d]
    else:
        want = OPPOSITES.get(w, "")
    return want if want in options else options[0] if options else ""


def replaced(words: list[str], i: int, v: str) -> str:
    return " ".join([*words[:i], *([v] if v else []), *words[i + 1:]])


# --- the model ------------------------------------------------------------------------------------------------------


def thresholds() -> AttributeThresholds:
    """The attribute thresholds the captions of the model's training digits were made with."""
    return AttributeThresholds.from_dict(pretrained(MODEL).config["captions"]["thresholds"])


def measured(images: torch.Tensor, digits: np.ndarray) -> dict[str, np.ndarray]:
    """core.data.captions.attributes of decoded images against the training thresholds: stroke_mass, shear,
    box_area and the codes of thickness, slant and size (-1, 0, 1), each (N,) numpy."""
    a = attributes(images.clamp(-1, 1), torch.as_tensor(digits, dtype=torch.int64), thresholds())
    return {k: v.numpy() for k, v in a.items()}


def cross_attention_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The CrossAttention modules of a TextConditioned model's UNet (all of them; their ``weights`` say at which
    resolution they ran)."""
    return [m for m in model.denoiser.modules() if type(m).__name__ == "CrossAttention"]


def step_indices(k: int, n: int = N_ATTN) -> np.ndarray:
    """n of the k steps of a run (indices 0..k-1), evenly spread, first and last included."""
    return np.unique(np.round(np.linspace(0, k - 1, min(n, k))).astype(int))


@st.cache_data(max_entries=32, show_spinner=False)
def generate(prompt: str, w: float, method: str, steps: int, seed: int, judged: bool = True,
             attention: bool = True) -> dict[str, Any]:
    """N_GRID samples of ``prompt``, z_T and the sampler's noise from the seed (so another prompt with the same seed
    starts from the same noise, row by row), guided at w (pass 1 for the empty prompt: unconditional), decoded.
    Also the classifier's readings, the attributes measured on every sample (against the prompt's digit, or the
    digit read), N_FRAMES states z_t and predictions z0_hat(z_t) of every sample (latents: ``strip`` decodes one),
    and (``attention``) the cross-attention maps of the conditional pass at N_ATTN steps: "attn" (N_ATTN, N_GRID,
    13, 7, 7), the share of each 7 x 7 position's attention on each token (0 = the start token, then the words),
    one more conditional pass at each of those steps."""
    p = pretrained(MODEL)
    said = parse_prompt(prompt)
    n = N_GRID
    ids = tokenize([prompt] * n)[0]
    z_T = torch.randn(n, *p.config["latent_shape"], generator=torch.Generator().manual_seed(seed))
    recorder = copy.deepcopy(p.model) if attention else None  # its own copy: the shared model never records
    layers = cross_attention_layers(recorder) if attention else []
    for layer in layers:
        layer.record = True
    attn_steps: list[int] = []
    attn_t: list[float] = []
    maps: list[torch.Tensor] = []

    def record(info: dict) -> None:
        if recorder is None or info["i"] not in step_indices(int(info["steps"])):  # the run's length, known now
            return
        x = info["x"]
        with torch.no_grad():
            recorder(x, torch.full((n,), float(info["t"]), dtype=x.dtype), ids)
        full = [layer.weights for layer in layers if layer.weights.shape[1] == ATTN_SIDE * ATTN_SIDE]
        a = torch.stack(full).mean(0)  # (n, 49, tokens), averaged over the 7 x 7 layers
        maps.append(a.transpose(1, 2).reshape(n, a.shape[2], ATTN_SIDE, ATTN_SIDE))
        attn_steps.append(int(info["i"]))
        attn_t.append(float(info["t"]))

    t0 = time.perf_counter()
    traj = sample(p.model, p.schedule, z_T, method=method, steps=steps, y=ids, callback=record,
                  guidance_scale=1.0 if said.unconditional else w, generator=torch.Generator().manual_seed(seed + 1))
    z0 = torch.nan_to_num(traj.x0, nan=0.0).clamp(-50, 50)
    with torch.no_grad():
        images = p.autoencoder.decode(z0).clamp(-1, 1)
    seconds = time.perf_counter() - t0
    pred, conf = reading(images, judged)
    digits = (np.full(n, said.digit) if said.digit is not None else pred if pred is not None
              else np.zeros(n, dtype=np.int64))
    idx = traj.frame_indices(N_FRAMES)
    x0s = torch.cat([traj.x0_preds, z0.unsqueeze(0)])  # the sample is its own prediction
    diverged = ~torch.isfinite(traj.x0).flatten(1).all(1) | (traj.x0.flatten(1).abs().amax(1) > 20)
    return {"images": plots.to_uint8(images.numpy()), "pred": pred, "conf": conf, "seconds": seconds,
            "nfe": int(traj.nfe), "steps": len(traj.timesteps), "attributes": measured(images, digits),
            "frame_t": traj.state_timesteps()[idx], "frames_z": traj.xs[idx].numpy(), "frames_z0": x0s[idx].numpy(),
            "attn": torch.stack(maps).numpy() if maps else None, "attn_steps": np.array(attn_steps),
            "attn_t": np.array(attn_t),
            "diverged": int(diverged.sum())}


@torch.no_grad()
def strip(run: dict[str, Any], index: int) -> tuple[np.ndarray, np.ndarray]:
    """The states z_t and predictions z0_hat(z_t) of grid sample ``index`` decoded: two uint8 (N_FRAMES, 28, 28)."""
    ae = pretrained(MODEL).autoencoder
    zs = torch.from_numpy(np.nan_to_num(run["frames_z"][:, index])).clamp(-50, 50)
    z0s = torch.from_numpy(np.nan_to_num(run["frames_z0"][:, index])).clamp(-50, 50)
    return plots.to_uint8(ae.decode(zs).numpy()), plots.to_uint8(ae.decode(z0s).numpy())


def attention_tiles(run: dict[str, Any], index: int, tokens: int) -> np.ndarray:
    """The maps of grid sample ``index``: (tokens, N_ATTN, 28, 28) float, each 7 x 7 map upsampled bilinearly to
    the digit's 28 x 28 (one latent position covers 4 x 4 pixels)."""
    a = torch.from_numpy(run["attn"][:, index, :tokens])  # (steps, tokens, 7, 7)
    up = F.interpolate(a.reshape(-1, 1, ATTN_SIDE, ATTN_SIDE), size=(28, 28), mode="bilinear", align_corners=False)
    return up.reshape(a.shape[0], tokens, 28, 28).transpose(0, 1).numpy()


def attention_figure(tiles: np.ndarray, digit: np.ndarray, row_titles: list[str], col_titles: list[str],
                     width_px: int = 720) -> go.Figure:
    """Cross-attention maps (rows = tokens, cols = steps, 28, 28) as heat, the finished digit (uint8 (28, 28)) as an
    outline over every tile. Each row on its own colour scale, from its smallest weight (dark) to its largest
    (bright): a word's share varies over the image far less than it differs between words, so one scale for all
    would show the words' totals and hide where they look. Hover for the weight itself."""
    rows, cols = tiles.shape[:2]
    gap = plots.IMAGE_GAP
    h = w = 28
    height_px, width = rows * (h + gap) - gap, cols * (w + gap) - gap
    heat = np.full((height_px, width), np.nan, dtype=np.float32)
    raw = np.full((height_px, width), np.nan, dtype=np.float32)
    ink = np.full((height_px, width), np.nan, dtype=np.float32)
    for r in range(rows):
        lo, hi = float(tiles[r].min()), float(tiles[r].max())
        for c in range(cols):
            at = np.s_[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w]
            raw[at] = tiles[r, c]
            heat[at] = (tiles[r, c] - lo) / (hi - lo) if hi > lo else 0.5
            ink[at] = digit
    left, top = 130, 26
    scale = (width_px - left - 8) / width
    axes = dict(showticklabels=False, showgrid=False, zeroline=False, ticks="", fixedrange=True, constrain="domain")
    annotations = [dict(text=t, x=c * (w + gap) + w / 2 - 0.5, y=1.0, xref="x", yref="paper", xanchor="center",
                        yanchor="bottom", showarrow=False, font=dict(size=12, color="#111827"))
                   for c, t in enumerate(col_titles)]
    annotations += [dict(text=t, x=0.0, y=r * (h + gap) + h / 2 - 0.5, xref="paper", yref="y", xanchor="right",
                         yanchor="middle", xshift=-6, showarrow=False, align="right",
                         font=dict(size=12, color="#111827")) for r, t in enumerate(row_titles)]
    data = [dict(type="heatmap", z=heat, customdata=raw, zmin=0.0, zmax=1.0, colorscale=ATTN_COLORSCALE,
                 showscale=False, hoverongaps=False, hovertemplate="attention %{customdata:.3f}<extra></extra>"),
            dict(type="contour", z=ink, showscale=False, hoverinfo="skip", connectgaps=False,
                 contours=dict(start=127.5, end=127.5, size=1, coloring="none"),
                 line=dict(color=OUTLINE_COLOR, width=1.5, smoothing=0.6))]
    layout = dict(height=int(height_px * scale + top + 8), margin=dict(l=left, r=4, t=top, b=4),
                  plot_bgcolor="#ffffff", annotations=annotations, showlegend=False,
                  xaxis=dict(axes, range=[-0.5, width - 0.5]),
                  yaxis=dict(axes, range=[height_px - 0.5, -0.5], scaleanchor="x", scaleratio=1))
    return go.Figure(dict(data=data, layout=layout))


def readings(run: dict[str, Any], rows: slice, prompt: Prompt) -> tuple[list[str] | None, list[str] | None]:
    """Captions under the samples of ``rows``: the classifier's digit (✓ / ✗ against the prompt's digit) and the
    measured word of each attribute the prompt names ("7 ✓ thick"); colours (red where the digit is wrong)."""
    pred = run["pred"]
    a = run["attributes"]
    idx = range(*rows.indices(len(run["images"])))
    named = [k for k in ATTRIBUTES if getattr(prompt, k) is not None]
    caps, colors = [], []
    for i in idx:
        parts = []
        if pred is not None:
            ok = prompt.digit is None or int(pred[i]) == prompt.digit
            parts.append(f"{int(pred[i])} {'✓' if ok else '✗'}" if prompt.digit is not None else str(int(pred[i])))
            colors.append(plots.CAPTION_COLOR if ok else plots.WRONG_COLOR)
        else:
            colors.append(plots.CAPTION_COLOR)
        for k in named:
            parts.append(CODE_WORDS[k][int(a[k][i]) + 1] or "–")
        caps.append(" ".join(parts))
    if not any(caps):
        return None, None
    return caps, colors


def agreement(run: dict[str, Any], rows: slice, prompt: Prompt) -> dict[str, tuple[int, int]]:
    """How many of the samples in ``rows`` the classifier reads as the prompt's digit, and how many measure as each
    attribute word the prompt says: {"digit": (k, n), "thick": (k, n), ...}."""
    a = run["attributes"]
    idx = np.arange(len(run["images"]))[rows]
    out: dict[str, tuple[int, int]] = {}
    if prompt.digit is not None and run["pred"] is not None:
        out["digit"] = (int((run["pred"][idx] == prompt.digit).sum()), len(idx))
    for k in ATTRIBUTES:
        word = getattr(prompt, k)
        if word is not None:
            code = CODE_WORDS[k].index(word) - 1
            out[word] = (int((a[k][idx] == code).sum()), len(idx))
    return out


# --- the guidance sweep ---------------------------------------------------------------------------------------------


def sweep_attribute(prompt: Prompt, choice: str = "auto") -> str:
    """The attribute to sweep: ``choice``, or for "auto" the one the prompt names first (thickness, slant, size),
    thickness if none."""
    if choice in ATTRIBUTES:
        return choice
    return next((k for k in ATTRIBUTES if getattr(prompt, k) is not None), "thickness")


def sweep_prompts(prompt: Prompt, attribute: str, like: str | None = None) -> list[tuple[str | None, str]]:
    """(word, prompt text) for each value of ``attribute`` (None: the prompt without that word), the rest of the
    prompt kept."""
    out = []
    for word in CODE_WORDS[attribute]:
        fields = {k: getattr(prompt, k) for k in ("digit", "thickness", "slant", "size")}
        fields[attribute] = word
        out.append((word, prompt_text(Prompt(**fields), like)))
    return out


@st.cache_data(max_entries=16, show_spinner=False)
def sweep(texts: tuple[str, ...], digit: int, attribute: str, judged: bool = True) -> pd.DataFrame:
    """SWEEP_N samples of each prompt at every scale of SWEEP_SCALES (the same SWEEP_N noises in every cell; w = 0
    is the unconditional model, the same for every prompt, so it runs once), DDIM in SWEEP_STEPS steps, one batch
    with a scale per row. A row per (prompt, scale): the mean and standard error of the measured attribute, and the
    share the classifier reads as ``digit``."""
    p = pretrained(MODEL)
    scales = [s for s in SWEEP_SCALES if s != 0.0]
    has_zero = 0.0 in SWEEP_SCALES
    cells = ([("", 0.0)] if has_zero else []) + [(t, s) for t in texts for s in scales]
    ids = tokenize([t for t, _ in cells for _ in range(SWEEP_N)])[0]
    w = torch.tensor([s for _, s in cells for _ in range(SWEEP_N)], dtype=torch.float32)
    z = torch.randn(SWEEP_N, *p.config["latent_shape"], generator=torch.Generator().manual_seed(SWEEP_SEED))
    z_T = z.repeat(len(cells), 1, 1, 1)
    t0 = time.perf_counter()
    traj = sample(RowwiseGuidance(p.model, w), p.schedule, z_T, method="ddim", steps=SWEEP_STEPS, y=ids,
                  keep_trajectory=False)
    with torch.no_grad():
        images = p.autoencoder.decode(torch.nan_to_num(traj.x0).clamp(-50, 50)).clamp(-1, 1)
    seconds = time.perf_counter() - t0
    values = measured(images, np.full(len(images), digit))[MEASURES[attribute]].reshape(len(cells), SWEEP_N)
    pred, _ = reading(images, judged)
    read = None if pred is None else (pred.reshape(len(cells), SWEEP_N) == digit).mean(1)
    rows = []
    for c, (text, s) in enumerate(cells):
        for t in (texts if text == "" else (text,)):  # w = 0 ignores the prompt: the same samples for each
            rows.append({"prompt": t, "w": s, "mean": float(values[c].mean()),
                         "sem": float(values[c].std(ddof=1) / np.sqrt(SWEEP_N)),
                         "read": None if read is None else float(read[c])})
    frame = pd.DataFrame(rows).sort_values(["prompt", "w"], kind="stable").reset_index(drop=True)
    frame.attrs["seconds"] = seconds
    return frame


def threshold_lines(attribute: str, digit: int) -> list[tuple[str, float]]:
    """The training set's boundaries of the attribute's words for this digit: (label, value)."""
    th = thresholds()
    if attribute == "thickness":
        return [("thin below", th.mass_low[digit]), ("thick above", th.mass_high[digit])]
    if attribute == "size":
        return [("small below", th.area_low[digit]), ("large above", th.area_high[digit])]
    return [("left below", -th.upright), ("right above", th.upright)]


def sweep_chart(frame: pd.DataFrame, attribute: str, digit: int, words: dict[str, str | None],
                height: int = 300) -> alt.LayerChart:
    """The measured attribute (mean ± standard error) against the guidance scale, one line per prompt coloured by
    its word; dashed rules: the training set's word boundaries for this digit."""
    df = frame.assign(word=[words.get(p) or "(no word)" for p in frame["prompt"]],
                      lo=frame["mean"] - frame["sem"], hi=frame["mean"] + frame["sem"])
    color = alt.Color("prompt:N", title="prompt", sort=list(words),
                      scale=alt.Scale(domain=list(words), range=[WORD_COLORS[words[p]] for p in words]),
                      legend=alt.Legend(orient="bottom", direction="horizontal", columns=3, title=None))
    x = alt.X("w:Q", title="guidance scale w", scale=alt.Scale(domain=[0, max(SWEEP_SCALES)]))
    base = alt.Chart(df, height=height)
    lines = base.mark_line(point=True, strokeWidth=2).encode(
        x=x, y=alt.Y("mean:Q", title=MEASURE_LABELS[attribute], scale=alt.Scale(zero=False)), color=color,
        tooltip=["prompt:N", "w:Q", alt.Tooltip("mean:Q", format=".3g"), alt.Tooltip("sem:Q", format=".2g")])
    bars = base.mark_errorbar(thickness=1.5).encode(x=x, y=alt.Y("lo:Q", title=""), y2="hi:Q", color=color)
    rules = pd.DataFrame(threshold_lines(attribute, digit), columns=["label", "value"]).assign(
        w=max(SWEEP_SCALES))
    rule = alt.Chart(rules).mark_rule(strokeDash=[5, 4], color="#6b7280").encode(y="value:Q", tooltip=["label:N",
                                                                                                        "value:Q"])
    above = alt.Chart(rules.iloc[1:]).mark_text(align="right", dx=-2, dy=-7, color="#6b7280", fontSize=11).encode(
        x="w:Q", y="value:Q", text="label:N")
    below = alt.Chart(rules.iloc[:1]).mark_text(align="right", dx=-2, dy=8, color="#6b7280", fontSize=11).encode(
        x="w:Q", y="value:Q", text="label:N")
    return alt.layer(bars, lines, rule, above, below).properties(height=height)


def read_chart(frame: pd.DataFrame, digit: int, words: dict[str, str | None], height: int = 300) -> alt.Chart:
    """The share of samples the classifier reads as the digit, against the guidance scale, per prompt."""
    color = alt.Color("prompt:N", title="prompt", scale=alt.Scale(domain=list(words),
                                                                  range=[WORD_COLORS[words[p]] for p in words]),
                      legend=alt.Legend(orient="bottom", direction="horizontal", columns=3, title=None))
    return alt.Chart(frame, height=height).mark_line(point=True, strokeWidth=2).encode(
        x=alt.X("w:Q", title="guidance scale w", scale=alt.Scale(domain=[0, max(SWEEP_SCALES)])),
        y=alt.Y("read:Q", title=f"read as {digit}", scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%")),
        color=color, tooltip=["prompt:N", "w:Q", alt.Tooltip("read:Q", format=".0%")])


# --- CLIP's shared space --------------------------------------------------------------------------------------------


def clip_model(name: str) -> torch.nn.Module:
    """The CLIP by name: clip-mnist itself, or the frozen copy inside ldm-text-mnist."""
    return pretrained(name).model.clip if name == MODEL else pretrained(name).model


def space_prompts() -> tuple[list[str], np.ndarray]:
    """Every digit with each variant of SPACE_VARIANTS ("seven", "a thin seven", ..., "a seven slanted right"),
    and the digit of each."""
    texts, digits = [], []
    for d in range(10):
        for v in SPACE_VARIANTS:
            texts.append(prompt_text(Prompt(d, v.thickness, v.slant, v.size)))
            digits.append(d)
    return texts, np.array(digits)


@st.cache_data(max_entries=4, show_spinner=False)
def clip_space(name: str) -> dict[str, Any]:
    """The text embeddings of ``space_prompts`` and the image embeddings of N_SPACE_IMAGES held-out digits, unit
    vectors in CLIP's shared space, projected onto the first two principal axes of them all (SVD, centred on their
    mean); the projection itself (mean, axes) for more points; CLIP's zero-shot reading of those digits."""
    clip = clip_model(name)
    texts, digits = space_prompts()
    data = test_digits()
    images, labels = data.images[:N_SPACE_IMAGES], data.labels[:N_SPACE_IMAGES]
    with torch.no_grad():
        t = clip.encode_text(tokenize(texts)[0]).numpy()
        v = clip.encode_image(images).numpy()
        names = clip.encode_text(tokenize([f"the digit {d}" for d in range(10)])[0]).numpy()
    both = np.concatenate([t, v]).astype(np.float64)
    mean = both.mean(0)
    _, s, vt = np.linalg.svd(both - mean, full_matrices=False)
    axes = vt[:2]
    zero_shot = float(((v @ names.T).argmax(1) == labels.numpy()).mean())
    return {"texts": texts, "text_digits": digits, "text_xy": ((t - mean) @ axes.T).astype(np.float32),
            "image_xy": ((v - mean) @ axes.T).astype(np.float32), "image_labels": labels.numpy(),
            "mean": mean, "axes": axes, "explained": (s[:2] ** 2 / (s ** 2).sum()).astype(float),
            "zero_shot": zero_shot}


@st.cache_data(max_entries=64, show_spinner=False)
def embed_prompt(name: str, prompt: str, mean: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """One prompt's text embedding projected like ``clip_space``'s points: (2,)."""
    with torch.no_grad():
        e = clip_model(name).encode_text(tokenize([prompt])[0]).numpy()[0]
    return ((e - mean) @ axes.T).astype(np.float32)


def zero_shot_recorded() -> tuple[float | None, int | None]:
    """clip-mnist's zero-shot accuracy and its number of digits, as pretrained/manifest.json (or else the
    checkpoint's own config) records it."""
    entry = manifest_models().get(CLIP_MODEL)
    metrics = entry.get("metrics") if isinstance(entry, dict) else None
    if not isinstance(metrics, dict):
        try:
            metrics = pretrained(CLIP_MODEL).config.get("metrics")
        except ValueError:
            metrics = None
    if not isinstance(metrics, dict):
        return None, None
    acc, n = metrics.get("zero_shot_accuracy"), metrics.get("test_n")
    ok = isinstance(acc, (int, float)) and not isinstance(acc, bool)
    return (float(acc) if ok else None), (int(n) if isinstance(n, int) and not isinstance(n, bool) else None)


def space_figure(space: dict[str, Any], prompt: str | None, prompt_xy: np.ndarray | None,
                 height: int = 560) -> go.Figure:
    """Held-out digits (small dots) and the prompts (large diamonds, outlined) in CLIP's space projected to 2D,
    coloured by digit; the page's prompt as a black star."""
    traces: list[dict] = []
    ixy, labels = space["image_xy"], space["image_labels"]
    txy, tdig, texts = space["text_xy"], space["text_digits"], space["texts"]
    for d in range(10):
        p = ixy[labels == d]
        traces.append(dict(type="scatter", x=p[:, 0], y=p[:, 1], mode="markers", name=f"a {d} (image)",
                           legendgroup=str(d), marker=dict(size=5, color=DIGIT_COLORS[d], opacity=0.55, line_width=0),
                           hovertemplate=f"held-out image of a {d}<extra></extra>"))
    for d in range(10):
        keep = tdig == d
        traces.append(dict(type="scatter", x=txy[keep, 0], y=txy[keep, 1], mode="markers", name=f"“{d}” (prompts)",
                           legendgroup=str(d), text=[t for t, k in zip(texts, keep, strict=True) if k],
                           marker=dict(size=11, color=DIGIT_COLORS[d], symbol="diamond",
                                       line=dict(width=1.5, color="#111827")),
                           hovertemplate="“%{text}”<extra></extra>"))
    if prompt_xy is not None:
        traces.append(dict(type="scatter", x=[float(prompt_xy[0])], y=[float(prompt_xy[1])], mode="markers+text",
                           name="your prompt", text=[f"“{prompt}”"], textposition="top center",
                           textfont=dict(size=13, color="#111827"),
                           marker=dict(size=18, color="#111827", symbol="star", line=dict(width=1.5, color="white")),
                           hovertemplate="your prompt: “%{text}”<extra></extra>"))
    ev = space["explained"]
    layout = dict(height=height, margin=dict(l=40, r=10, t=10, b=40), plot_bgcolor="#ffffff",
                  xaxis=dict(title=f"principal axis 1 ({ev[0]:.0%} of the variance)", zeroline=False,
                             gridcolor="#eef0f3"),
                  yaxis=dict(title=f"principal axis 2 ({ev[1]:.0%})", zeroline=False, gridcolor="#eef0f3",
                             scaleanchor="x", scaleratio=1),
                  legend=dict(orientation="v", x=1.02, y=1.0, itemsizing="constant", font=dict(size=11)))
    return go.Figure(dict(data=traces, layout=layout))


# --- measured at scale: benchmarks/results/text_to_image.json ----------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """What benchmarks/text_to_image.py measured on many samples: one row per attribute pair, and the digits."""

    table: pd.DataFrame  # pair, measure, first, second, figure, target, read (as the asked digit)
    n: int  # samples of the prompts naming a digit
    digit_accuracy: float  # their share read as the asked digit
    zero_shot: float  # the CLIP's zero-shot reading of the held-out digits
    guidance_scale: float
    sampler: str
    machine: str


PAIR_TARGETS = {"thickness": ("ratio", 1.3), "size": ("ratio", 1.2), "slant": ("share", 0.85)}  # the bars


def measured_at_scale(path: Path | None = None) -> Measured:
    """benchmarks/results/text_to_image.json as a table; raises ResultsProblem naming the file and the command
    that writes it."""
    path = BENCH_JSON if path is None else path
    raw, fix = results_json(path, BENCH_COMMAND, "about five minutes on a 2-core CPU")
    try:
        rows = []
        for name, (kind, target) in PAIR_TARGETS.items():
            r = raw[name]
            first, second = (str(q).replace("{word}", "X") for q in r["prompts"])
            reads = [finite_number(a, f"{name}.digit_accuracy") for a in r["digit_accuracy"]]
            if kind == "ratio":
                figure = finite_number(r["ratio"], f"{name}.ratio")
                said, met = f"{figure:.2f}×", figure >= target
                wanted = f"ratio ≥ {target:g}"
            else:
                right = finite_number(r["right_share_positive"], "slant.right_share_positive")
                left = finite_number(r["left_share_negative"], "slant.left_share_negative")
                said, met = f"{right:.1%} / {left:.1%} as asked", min(right, left) >= target
                wanted = f"≥ {target:.0%} as asked"
            rows.append({"pair": f"“{first}” vs “{second}”", "measure": str(r["measure"]),
                         "first": finite_number(r["first"], f"{name}.first"),
                         "second": finite_number(r["second"], f"{name}.second"), "figure": said,
                         "target": wanted + (" ✓" if met else " ✗"),
                         "read": " / ".join(f"{a:.1%}" for a in reads)})
        out = Measured(table=pd.DataFrame(rows), n=int(finite_number(raw["n"], "n")),
                       digit_accuracy=finite_number(raw["digit_accuracy"], "digit_accuracy"),
                       zero_shot=finite_number(raw["clip_zero_shot_accuracy"], "clip_zero_shot_accuracy"),
                       guidance_scale=finite_number(raw["guidance_scale"], "guidance_scale"),
                       sampler=str(raw.get("sampler") or "?"), machine=str(raw.get("machine") or "this machine"))
    except (KeyError, TypeError, ValueError) as err:
        raise ResultsProblem(f"**{path.name}** is damaged ({err}): {fix} again.") from None
    return out

"""Text to image: a miniature Stable Diffusion on MNIST (issue 13). A small CLIP trained contrastively on digits and
captions made from the digits themselves, frozen; a latent UNet (ldm-text-mnist, on autoencoder-mnist's 4 x 7 x 7
latents) that reads its token embeddings through cross-attention; classifier-free guidance on the caption. Type a
prompt: the samples with the classifier's reading and the measured attributes, the run along its steps, where each
word's cross-attention looks, the same noise with one word changed, a guidance sweep measured with the functions
that made the captions, and CLIP's shared space of prompts and digits. The page never trains."""

from functools import partial

import numpy as np
import streamlit as st

from core.data.captions import MAX_PROMPT_CHARS, MAX_PROMPT_WORDS, NUMERALS, VOCABULARY, parse_prompt
from core.models.text import TextConditioned, contrastive_loss
from core.models.unet import CrossAttention
from dashboard.ui import digits, exports, plots, sampling
from dashboard.ui import text_to_image as t2i
from dashboard.ui.header import page_header
from dashboard.ui.loaders import ResultsProblem, broken_model_notice, pretrained_problem
from dashboard.ui.widgets import UrlWidgets

PROMPT_KEY, EXAMPLE_KEY = "text_to_image.prompt", "text_to_image.example"
TO_FOR = "text_to_image.to_for"  # session_state: the word the "to" choice was made for

page_header(
    "Text to image",
    [r"\mathcal L_\text{CLIP}=-\frac1{2N}\sum_{i=1}^{N}\Big[\log\frac{e^{s\,t_i^\top v_i}}{\sum_j e^{s\,t_i^\top v_j}}"
     r"+\log\frac{e^{s\,v_i^\top t_i}}{\sum_j e^{s\,v_i^\top t_j}}\Big]\qquad\text{(CLIP; Radford et al. 2021)}",
     r"\operatorname{Attn}(Q,K,V)=\operatorname{softmax}\!\Big(\frac{QK^\top}{\sqrt d}\Big)V,\quad "
     r"Q=W_Q\,\varphi(z_t),\ K=W_K\,\tau(y),\ V=W_V\,\tau(y)\quad\text{(Rombach et al. 2022)}",
     r"\tilde\epsilon_\theta(z_t,t,y)=\epsilon_\theta(z_t,t,\varnothing)+w\,\big(\epsilon_\theta(z_t,t,y)-"
     r"\epsilon_\theta(z_t,t,\varnothing)\big)\qquad\text{(classifier-free guidance; Ho \& Salimans 2022)}"],
    "Stable Diffusion in miniature, small enough to train on this laptop-class CPU. Nothing can be downloaded, so "
    "the lab makes its own text encoder the way CLIP did: every training digit gets a **caption from the digit "
    "itself** (its label, and its stroke thickness, slant and size measured on the image), and a small transformer "
    "reading captions and a small CNN reading digits are trained so that matching pairs have similar unit vectors "
    "$t_i$ and $v_i$ (the contrastive loss, with a learned scale $s$: each caption must pick its own digit out of "
    "the batch, and each digit its caption). The text encoder is then **frozen**. A UNet denoising "
    "autoencoder-mnist's 4 × 7 × 7 latents reads the encoder's token embeddings $\\tau(y)$ through "
    "**cross-attention**: every latent position $\\varphi(z_t)$ asks a query, every word answers with a key and a "
    "value. The prompt is dropped 10% of the time in training, so the same network also predicts $\\epsilon$ for "
    "the empty prompt $\\varnothing$, and **classifier-free guidance** pushes the sample along the difference the "
    "words make.",
    "type *a thick seven* (or click an example), then in **Change one word** turn *thick* into *thin*: the same "
    "noise gives the same seven written with a finer pen. In **Where each word looks**, compare the row of *thick* "
    "with the row of *seven* at the first and the last step. In the **guidance sweep**, at w = 0 all three prompts "
    "give the same digits (the unconditional model ignores the prompt), and the lines part as w grows. Then type "
    "*a seven banana* to see what the model can read.",
    code=[contrastive_loss, CrossAttention, TextConditioned],
)

ui = UrlWidgets("text_to_image")
problems = {name: pretrained_problem(name) for name in (t2i.MODEL, t2i.CLIP_MODEL, digits.CLASSIFIER)}
judged = problems[digits.CLASSIFIER] is None
if not judged:
    broken_model_notice(digits.CLASSIFIER, problems[digits.CLASSIFIER],
                        "The samples are shown without the classifier's reading.")
model_ok = problems[t2i.MODEL] is None


def use_example() -> None:
    """An example pill clicked: it becomes the prompt (the pill is released, so the same one can be clicked
    again)."""
    chosen = st.session_state.get(EXAMPLE_KEY)
    if chosen:
        st.session_state[PROMPT_KEY] = chosen
    st.session_state[EXAMPLE_KEY] = None


# --- the prompt and the sampler -------------------------------------------------------------------------------------

left, right = st.columns([3, 2], gap="large")
with left:
    prompt = ui.text("Prompt", "prompt", t2i.DEFAULT_PROMPT, max_chars=MAX_PROMPT_CHARS,
                     placeholder="empty: any digit (unconditional)",
                     help=f"A digit, and optionally its size, thickness and slant (at most {MAX_PROMPT_WORDS} "
                          "words); press Enter to draw. Empty: the unconditional model.")
with right:
    with st.expander("The vocabulary and the grammar", icon=":material/menu_book:"):
        st.markdown(f"**The vocabulary** ({len(VOCABULARY)} words, any case): {t2i.vocabulary()}.")
        st.code(t2i.grammar(), language=None)
        st.caption("From core/data/captions.py, the grammar the training captions were drawn from. Each of size, "
                   "thickness and slant may be said once; a prompt names one digit.")
st.pills("Examples", t2i.EXAMPLES, key=EXAMPLE_KEY, on_change=use_example, help="Click one to make it the prompt.")
said, error = t2i.check_prompt(prompt)
unconditional = said is not None and said.unconditional
if error:
    st.error(f"**This prompt cannot be read:** {error}.", icon=":material/error:")

c = st.columns([3, 3, 3, 2])
with c[0]:
    w = ui.slider("Guidance scale w", "w", 0.0, 8.0, 3.0, step=0.5, disabled=unconditional or error is not None,
                  help="0: the unconditional model (the empty prompt); 1: the conditional model alone; above 1: "
                       "guided beyond it (two network passes per step). An empty prompt is unconditional.")
with c[1]:
    method = ui.selectbox("Sampler", "method", t2i.SAMPLERS, "ddim", format_func=sampling.method_label)
with c[2]:
    r = t2i.STEP_RANGES[method]
    steps = ui.slider("Steps", f"steps_{method}", r.lo, r.hi, r.default, step=r.step,
                      help="Timesteps the sampler visits (Heun and predictor-corrector evaluate twice per step).")
with c[3]:
    seed = ui.number("Seed", "seed", 0, 9999, 0, help="The noise z_T (and a stochastic sampler's noise).")

if not model_ok:
    broken_model_notice(t2i.MODEL, problems[t2i.MODEL], "Sampling needs it; CLIP's space at the bottom does not.")
ready = model_ok and said is not None
wanted = 1.0 if unconditional else float(w)
settings = {"prompt": prompt or "unconditional", "w": None if unconditional else wanted, "sampler": method,
            "steps": int(steps), "seed": int(seed)}


def describe(p) -> str:
    return "the empty prompt (unconditional)" if p.unconditional else f"“{prompt}”"


# --- 1. the samples -------------------------------------------------------------------------------------------------

st.subheader("1. The samples")
run = None
if not ready:
    st.info("No samples: " + ("fix the prompt above." if model_ok else f"**{t2i.MODEL}** cannot be loaded (see "
                              "above)."), icon=":material/info:")
else:
    with st.spinner(f"Sampling {t2i.N_GRID} digits..."):
        run = t2i.generate(prompt, wanted, method, int(steps), int(seed), judged)
    caps, colors = t2i.readings(run, slice(None), said)
    g1, g2 = st.columns([4, 1], gap="medium")
    with g1:
        plots.show(plots.image_grid(run["images"], t2i.COLS, caps, colors, width_px=900), key="t2i_grid")
    with g2:
        agree = t2i.agreement(run, slice(None), said)
        if "digit" in agree:
            k, n = agree["digit"]
            st.metric(f"Read as {said.digit}", f"{k}/{n}", help="The project's classifier (classifier-mnist) on each "
                                                                "sample.")
        for word, (k, n) in agree.items():
            if word != "digit":
                st.metric(f"Measured {word}", f"{k}/{n}", help="Measured on the sample with the functions that made "
                          "the training captions (core.data.captions.attributes), against the training thresholds.")
        if unconditional and run["pred"] is not None:
            st.metric("Digits present", f"{len(set(run['pred'].tolist()))}/10")
        st.metric("NFE", run["nfe"], f"{run['seconds']:.2f} s", delta_color="off", delta_arrow="off",
                  help="Network evaluations (a guided pair counts once) and the run's wall time with decoding, when "
                       "it ran (cached afterwards).")
    if run["diverged"]:
        st.warning(f"{run['diverged']} of {t2i.N_GRID} latents diverged: too few steps for this sampler; raise the "
                   "steps.", icon=":material/warning:")
    st.caption(f"{t2i.N_GRID} samples of {describe(said)}, "
               + ("unconditional (w = 1 on the empty prompt)" if unconditional else f"w = {wanted:g}")
               + f", {sampling.METHOD_LABELS[method]} in {run['steps']} steps, seed {seed}; each latent decoded once "
               "by autoencoder-mnist. Under each: what the classifier reads (✓ the prompt's digit, ✗ another)"
               + (", then the measured word of each attribute the prompt names (– in the middle third, no word)"
                  if any(getattr(said, k) for k in t2i.ATTRIBUTES) else "") + ".")
    exports.download_button("Samples (PNG)", partial(exports.digits_png, run["images"], t2i.COLS, settings=settings),
                            exports.file_name("text_to_image", "samples", settings, "png"), key="t2i.download.grid")

# --- 2. along the steps -----------------------------------------------------------------------------------------------

st.subheader("2. Along the steps")
index = 0
if run is not None:
    c = st.columns([1, 4])
    with c[0]:
        index = ui.number("Sample #", "sample", 1, t2i.N_GRID, 1, help="Which sample of the grid (counted row by "
                          "row) this section and the next follow.") - 1
    frames_x, frames_x0 = t2i.strip(run, index)
    k = len(frames_x)
    titles = [f"t = {sampling.nice_t(float(t))}" for t in run["frame_t"]]
    titles[-1] = "t = 0: the sample"
    tiles = np.concatenate([frames_x, frames_x0])
    plots.show(plots.image_grid(tiles, k, col_titles=titles, row_titles=["D(z_t)", "D(ẑ₀(z_t))"], rows=2,
                                left_px=110, width_px=110 + 100 * k), key="t2i_strip")
    st.caption(f"Sample #{index + 1} along its {run['steps']} steps ({k} of {run['steps'] + 1} states): top, the "
               "noisy latent z_t decoded as it is; bottom, the model's guess of the clean latent ẑ₀(z_t) decoded. The "
               "prompt's digit shows in the guess long before the noise is gone.")
    strip_settings = {**settings, "sample": index + 1}

    def strip_gif() -> bytes:
        frames = [exports.side_by_side(exports.titled(exports.digits_image(x[None], 1, 6), "D(z_t)"),
                                       exports.titled(exports.digits_image(x0[None], 1, 6), "D(z0 hat)"), gap=16)
                  for x, x0 in zip(frames_x, frames_x0, strict=True)]
        return exports.animation_gif(frames, 250, strip_settings, titles)

    d = st.columns(4)
    with d[0]:
        exports.download_button("Steps (PNG)", partial(exports.digits_png, tiles, k, settings=strip_settings),
                                exports.file_name("text_to_image", "steps", strip_settings, "png"),
                                key="t2i.download.strip")
    with d[1]:
        exports.download_button("Steps (GIF)", strip_gif, exports.file_name("text_to_image", "steps", strip_settings,
                                                                            "gif"), key="t2i.download.gif")
else:
    st.info("Nothing to follow without samples.", icon=":material/info:")

# --- 3. where each word looks ---------------------------------------------------------------------------------------

st.subheader("3. Where each word looks")
st.markdown("At each cross-attention layer every position of the 7 × 7 latent spreads one unit of attention over "
            "the prompt's tokens (the start token and the words): a row of $\\operatorname{softmax}(QK^\\top/\\sqrt "
            "d)$. Here that share for each token, averaged over the UNet's 7 × 7 layers (and their heads), at a few "
            "steps of the run: bright where a position reads that word most.")
if run is None:
    st.info("No maps without samples.", icon=":material/info:")
elif unconditional:
    st.info("The empty prompt has no words: every position attends to the start token alone (weight 1).",
            icon=":material/info:")
else:
    words = t2i.words_of(prompt)
    tokens = 1 + len(words)
    maps = t2i.attention_tiles(run, index, tokens)
    raw = run["attn"][:, index, :tokens]  # (steps, tokens, 7, 7)
    share = raw.mean(axis=(0, 2, 3))  # each token's mean share over the positions and the steps shown
    row_titles = [f"{tok} ({s:.0%})<br><span style='font-size:10px;color:#6b7280'>{raw[:, k].min():.0%}–"
                  f"{raw[:, k].max():.0%}</span>" for k, (tok, s) in enumerate(zip([t2i.START, *words], share,
                                                                                    strict=True))]
    col_titles = [f"step {int(i) + 1}: t = {sampling.nice_t(float(t) + 1)}"  # the paper's t, as in the strip
                  for i, t in zip(run["attn_steps"], run["attn_t"], strict=True)]
    a1, _ = st.columns([3, 1])
    with a1:
        plots.show(t2i.attention_figure(maps, run["images"][index], row_titles, col_titles,
                                        width_px=min(900, 130 + 150 * len(col_titles))), key="t2i_attention")
    st.caption(f"Sample #{index + 1}; the conditional pass ε(z_t, t, τ(y)) at {len(col_titles)} of its "
               f"{run['steps']} steps, with the outline of the finished digit. Each map is 7 × 7 (one latent "
               "position covers 4 × 4 pixels), drawn upsampled. Each row has its own colour scale, from its "
               "smallest weight (dark) to its largest (bright), given under the token: a word's share changes over "
               "the image much less than between words. In brackets: the token's share of all attention, averaged "
               "over the positions and these steps. Much of it goes to the start token, which every prompt has: a "
               "resting place for positions that need no word (the 4 × 4 layers of the UNet's middle are left out).")

# --- 4. one word changed ----------------------------------------------------------------------------------------------

st.subheader("4. Change one word")
words = t2i.words_of(prompt) if ready else []
choices = t2i.swap_choices(words)
if not ready:
    st.info("Nothing to change without samples.", icon=":material/info:")
elif not choices:
    st.info("The empty prompt has no word to change: type one above.", icon=":material/info:")
else:
    c = st.columns([2, 2, 3])
    with c[0]:
        word = ui.selectbox("Change the word", "swap", choices, t2i.default_swap(words), format_func=lambda v: f"“{v}”",
                            help="One of the words that say something: the digit, its size, thickness or slant.")
    if st.session_state.get(TO_FOR) not in (None, word):  # another word to change: its own default replacement
        for key in ("text_to_image.to", "_url_shadow.text_to_image.to"):
            st.session_state.pop(key, None)
        if "to" in st.query_params:
            del st.query_params["to"]
    st.session_state[TO_FOR] = word
    pos = words.index(word)
    options = t2i.replacements(words, pos)
    with c[1]:
        to = ui.selectbox("to", "to", options, t2i.default_replacement(words, pos, options),
                          format_func=lambda v: f"“{v}”" if v else "(remove it)") if options else None
    if to is None:
        st.info("No other word fits there.", icon=":material/info:")
    else:
        changed = t2i.replaced(words, pos, to)
        changed_said = parse_prompt(changed)
        with st.spinner(f"Sampling “{changed}”..."):
            other = t2i.generate(changed, wanted, method, int(steps), int(seed), judged, attention=False)
        n = t2i.N_SWAP
        both = np.concatenate([run["images"][:n], other["images"][:n]])
        caps_a, colors_a = t2i.readings(run, slice(0, n), said)
        caps_b, colors_b = t2i.readings(other, slice(0, n), changed_said)
        plots.show(plots.image_grid(both, n, (caps_a or [""] * n) + (caps_b or [""] * n),
                                    (colors_a or [plots.CAPTION_COLOR] * n) + (colors_b or [plots.CAPTION_COLOR] * n),
                                    row_titles=[f"“{prompt}”", f"“{changed}”"], left_px=190, width_px=900),
                   key="t2i_swap")
        tally = []
        for name, p, r_ in ((prompt, said, run), (changed, changed_said, other)):
            agree = t2i.agreement(r_, slice(None), p)
            parts = [(f"read as {p.digit}" if key == "digit" else f"measured {key}") + f" {k_}/{n_}"
                     for key, (k_, n_) in agree.items()]
            if parts:
                tally.append(f"“{name}”: " + ", ".join(parts))
        st.caption(f"The first {n} samples of each prompt from the same noise z_T (seed {seed}), sampler and scale: "
                   "column by column, only the word differs. Over all "
                   f"{t2i.N_GRID} of each: " + ("; ".join(tally) if tally else "no classifier to read them") + ".")

# --- 5. the guidance sweep ------------------------------------------------------------------------------------------

st.subheader("5. A guidance sweep")
st.markdown("Does a word change what it should, and how much does guidance amplify it? The prompt with each word "
            "of one attribute (and without it), sampled at several scales from the same noises, each output "
            "measured with the very functions that made the training captions: stroke mass for thin / thick, the "
            "shear of the image moments for the slant, the bounding-box area for small / large.")
if not ready:
    st.info("No sweep: " + ("fix the prompt above." if model_ok else f"**{t2i.MODEL}** cannot be loaded."),
            icon=":material/info:")
elif said.digit is None:
    st.info("No sweep for the empty prompt: guidance needs a prompt to guide towards.", icon=":material/info:")
else:
    c = st.columns([2, 5])
    with c[0]:
        choice = ui.selectbox("Attribute", "attribute", t2i.SWEEP_CHOICES, "auto",
                              format_func=lambda a: t2i.ATTRIBUTE_LABELS.get(a) or "the prompt's: "
                              + t2i.sweep_attribute(said), help="Auto: the attribute the prompt names (thickness if "
                                                                "none).")
    attribute = t2i.sweep_attribute(said, choice)
    like = next((wd for wd in words if wd in NUMERALS), None)
    variants = t2i.sweep_prompts(said, attribute, like)
    texts = tuple(text for _, text in variants)
    with st.spinner(f"Sampling {len(texts)} prompts at {len(t2i.SWEEP_SCALES)} scales..."):
        frame = t2i.sweep(texts, int(said.digit), attribute, judged)
    word_of = {text: word for word, text in variants}
    s1, s2 = st.columns(2)
    s1.altair_chart(t2i.sweep_chart(frame, attribute, int(said.digit), word_of), width="stretch")
    if judged:
        s2.altair_chart(t2i.read_chart(frame, int(said.digit), word_of), width="stretch")
    st.caption(f"{t2i.SWEEP_N} samples per point (mean ± standard error), the same {t2i.SWEEP_N} noises at every "
               f"point (seed {t2i.SWEEP_SEED}), DDIM in {t2i.SWEEP_STEPS} steps, every point in one batch with a "
               "scale per row. Dashed: where the training captions switch words for a "
               f"{said.digit} ("
               + {"thickness": f"the thinnest and the thickest third of the training {said.digit}s",
                  "size": f"the smallest and the largest third of the training {said.digit}s",
                  "slant": "a shear beyond ±0.1 is left or right, for every digit; within it, upright"}[attribute]
               + "). Left: the measured attribute; right: how many the classifier reads as "
               f"{said.digit}. At w = 0 the prompt is ignored, so every line starts at the same point"
               + f"; {frame.attrs.get('seconds', 0.0):.1f} s for the sweep when it ran (cached afterwards).")

# --- 6. CLIP's space -------------------------------------------------------------------------------------------------

st.subheader("6. CLIP's shared space")
st.markdown("The frozen text encoder and its image encoder map prompts and digits to unit vectors in one "
            "64-dimensional space, where a caption lies near the digits it describes. Below, the embeddings of "
            f"{10 * len(t2i.SPACE_VARIANTS)} prompts (each digit, alone and with each attribute word) and of "
            f"{t2i.N_SPACE_IMAGES} held-out digits, projected onto their first two principal axes. CLIP's zero-shot "
            "reading of a digit is the prompt “the digit d” whose embedding is nearest to the digit's.")
space_name = t2i.CLIP_MODEL if problems[t2i.CLIP_MODEL] is None else t2i.MODEL if model_ok else None
if problems[t2i.CLIP_MODEL]:
    broken_model_notice(t2i.CLIP_MODEL, problems[t2i.CLIP_MODEL],
                        "The picture uses the frozen copy inside ldm-text-mnist." if space_name else
                        "The picture needs it (or ldm-text-mnist, which holds a copy).")
if space_name is not None:
    with st.spinner("Embedding prompts and digits..."):
        space = t2i.clip_space(space_name)
    point = None if (said is None or unconditional) else t2i.embed_prompt(space_name, prompt, space["mean"],
                                                                          space["axes"])
    e1, e2 = st.columns([4, 1], gap="medium")
    with e1:
        plots.show(t2i.space_figure(space, prompt if point is not None else None, point), key="t2i_space")
    with e2:
        acc, n_acc = t2i.zero_shot_recorded()
        if acc is not None:
            st.metric("Zero-shot accuracy", f"{acc:.1%}", help=f"clip-mnist's reading of {n_acc or 'the'} held-out "
                      "digits, as recorded when it was trained (pretrained/manifest.json).")
        st.metric(f"On these {t2i.N_SPACE_IMAGES}", f"{space['zero_shot']:.1%}",
                  help="The same reading of the digits drawn here.")
    st.caption("Small dots: held-out digits (their image embeddings); diamonds: prompts (text embeddings), one colour "
               "per digit; the star: your prompt. Hover a diamond for its prompt. The two kinds of points need not "
               "overlap: only the directions matter (cosine similarity), and CLIPs keep a gap between text and "
               "images; what matters is that each digit's prompts sit on the side of its own images."
               + ("" if space_name == t2i.CLIP_MODEL else " (The frozen copy inside ldm-text-mnist.)"))

# --- 7. measured at scale --------------------------------------------------------------------------------------------

st.subheader("7. Measured on many samples")
st.markdown("The grids above are a handful of digits; the benchmark draws many, with the page's default sampler and "
            "guidance, and measures them with the same functions that captioned the training digits. Each pair "
            "asks the opposite of one attribute for every digit in turn (X cycles through zero to nine).")
try:
    bench = t2i.measured_at_scale()
except ResultsProblem as err:
    st.warning(str(err), icon=":material/table:")
else:
    b = st.columns(3)
    b[0].metric("Prompts naming a digit", f"{bench.digit_accuracy:.1%}",
                help=f"Of {bench.n:,} samples of “seven”, “the digit 3”, “a two”, “8”..., the share the classifier "
                     "reads as the digit named (the bar: 95%).")
    b[1].metric("CLIP zero-shot", f"{bench.zero_shot:.1%}", help="clip-mnist's reading of the held-out digits: "
                "the prompt “the digit d” nearest to each digit's embedding (the bar: 90%).")
    b[2].metric("Sampler", f"{bench.sampler}, w = {bench.guidance_scale:g}")
    st.dataframe(bench.table, hide_index=True, width="stretch", column_config={
        "pair": st.column_config.TextColumn("prompt pair"),
        "measure": st.column_config.TextColumn("measure", help="stroke mass: total ink; shear: dx per pixel of "
                                               "height (> 0 leans right); box area: the bounding box in pixels."),
        "first": st.column_config.NumberColumn("first (mean)", format="%.2f"),
        "second": st.column_config.NumberColumn("second (mean)", format="%.2f"),
        "figure": st.column_config.TextColumn("first / second", help="The ratio of the means; for the slant, the "
                                              "share of each prompt's samples leaning the way it asks (shear > 0 "
                                              "for right, < 0 for left)."),
        "target": st.column_config.TextColumn("the bar"),
        "read": st.column_config.TextColumn("read as X", help="The share of each prompt's samples the "
                                            "classifier reads as the digit asked (an attribute must not cost the "
                                            "digit)."),
    })
    st.caption(f"Measured on {bench.machine}. Written by `{t2i.BENCH_COMMAND}`.")

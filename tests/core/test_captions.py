"""core.data.captions: the prompt grammar (every required form, synonyms, normalisation, and the messages for an
unknown word, a too-long prompt, two digits, contradictions and words out of place), the tokenizer (ids, PAD,
mask), random captions that parse back to what they say and cover the vocabulary, the attributes on hand-made
images (slanted bars, thin vs thick strokes, small vs large squares), per-class thresholds from a tiny synthetic
set, their JSON round trip, and the word shares on the training digits.
Run: python -m pytest tests/core/test_captions.py -q"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.data.captions import (
    MAX_PROMPT_CHARS,
    MAX_PROMPT_WORDS,
    PAD,
    SLANT_UPRIGHT,
    VOCAB_SIZE,
    VOCABULARY,
    AttributeThresholds,
    CaptionError,
    Prompt,
    PromptError,
    attributes,
    box_area,
    caption,
    captions_for,
    describe,
    parse_prompt,
    prompt_words,
    slant,
    stroke_mass,
    tokenize,
)

S = 28


def bar(top: tuple[float, float], bottom: tuple[float, float], width: float = 1.0) -> torch.Tensor:
    """A (1, 1, 28, 28) image in [-1, 1]: full ink on the pixels whose centre lies within width / 2 of the segment
    from ``top`` to ``bottom`` (each (x, y), x to the right, y downwards)."""
    ys, xs = np.mgrid[0:S, 0:S].astype(np.float64)
    (x0, y0), (x1, y1) = top, bottom
    d = np.array([x1 - x0, y1 - y0])
    t = np.clip(((xs - x0) * d[0] + (ys - y0) * d[1]) / (d @ d), 0.0, 1.0)
    dist = np.hypot(xs - (x0 + t * d[0]), ys - (y0 + t * d[1]))
    ink = (dist <= width / 2 + 1e-9).astype(np.float32)
    return torch.from_numpy(ink * 2 - 1).view(1, 1, S, S)


def square(side: int, ink: float = 1.0, at: tuple[int, int] = (4, 4)) -> torch.Tensor:
    x = -torch.ones(1, 1, S, S)
    x[0, 0, at[0]:at[0] + side, at[1]:at[1] + side] = ink * 2 - 1
    return x


# --- the grammar --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("7", Prompt(7)),
    ("seven", Prompt(7)),
    ("a seven", Prompt(7)),
    ("the digit 7", Prompt(7)),
    ("the number seven", Prompt(7)),
    ("a thick seven", Prompt(7, thickness="thick")),
    ("a thin 3", Prompt(3, thickness="thin")),
    ("a 4 slanted left", Prompt(4, slant="left")),
    ("a large two leaning right", Prompt(2, slant="right", size="large")),
    ("a small thin eight", Prompt(8, thickness="thin", size="small")),
    ("a thin small eight", Prompt(8, thickness="thin", size="small")),
    ("an upright 0", Prompt(0, slant="upright")),
    ("the 9 straight", Prompt(9, slant="upright")),
    ("big bold number 1 tilted to the right", Prompt(1, thickness="thick", slant="right", size="large")),
    ("a little light digit six leaning to the left", Prompt(6, thickness="thin", slant="left", size="small")),
    ("  A   THICK   Seven. ", Prompt(7, thickness="thick")),
    ("FIVE.", Prompt(5)),
])
def test_grammar_accepts_the_required_forms(text, expected):
    assert parse_prompt(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "\t\n", "."])
def test_empty_prompt_is_unconditional(text):
    p = parse_prompt(text)
    assert p == Prompt() and p.unconditional
    assert not Prompt(3).unconditional


def test_unknown_word_names_it_and_lists_the_vocabulary():
    with pytest.raises(PromptError) as e:
        parse_prompt("a fat seven")
    msg = str(e.value)
    assert "'fat'" in msg and "vocabulary" in msg
    listed = msg.split("vocabulary is:")[1]
    assert [w.strip() for w in listed.split(",")] == list(VOCABULARY)
    with pytest.raises(PromptError, match=r"'seven!'"):  # punctuation other than a final period is not a word
        parse_prompt("seven!")
    with pytest.raises(PromptError, match=r"words 'ten', 'eleven'"):
        parse_prompt("ten eleven")
    assert isinstance(e.value, ValueError)


def test_too_long_prompts_are_refused_with_the_limit():
    with pytest.raises(PromptError, match=rf"13 words; the limit is {MAX_PROMPT_WORDS}"):
        parse_prompt(" ".join(["seven"] * 13))
    with pytest.raises(PromptError, match=rf"the limit is {MAX_PROMPT_CHARS}"):
        parse_prompt("a" * (MAX_PROMPT_CHARS + 1))
    # the length check comes before the vocabulary: a long unknown blob gets the length message
    with pytest.raises(PromptError, match="characters") as e:
        parse_prompt("x" * 10_000)
    assert "vocabulary" not in str(e.value)
    # exactly at the word limit the length is fine; the refusal is about something else
    with pytest.raises(PromptError) as e:
        parse_prompt(" ".join(["a"] * MAX_PROMPT_WORDS))
    assert "limit" not in str(e.value)


@pytest.mark.parametrize("text, pattern", [
    ("a thick thin seven", r"contradiction: 'thick' says the thickness is thick, 'thin' that it is thin; choose one"),
    ("a big small 3", r"contradiction: 'big' says the size is large, 'small' that it is small"),
    ("an upright 4 slanted left", r"contradiction: 'upright' says the slant is upright, 'left' that it is left"),
    ("a 4 leaning left slanted right", r"contradiction: 'left' says the slant is left, 'right'"),
    ("a thick bold seven", r"'thick' and 'bold' both give the thickness; say it once"),
    ("the digit 7 3", r"names 2 digits \('7', '3'\); a prompt describes one digit"),
    ("seven 7", r"names 2 digits"),
])
def test_contradictions_are_refused(text, pattern):
    with pytest.raises(PromptError, match=pattern):
        parse_prompt(text)


@pytest.mark.parametrize("text, pattern", [
    ("thick", r"names no digit"),
    ("a thick digit", r"names no digit"),
    ("seven thick", r"'thick' cannot follow the digit"),
    ("a slanted left 4", r"'slanted' can only follow the digit"),
    ("thick a seven", r"'a' can only begin the prompt"),
    ("a 4 leaning", r"'leaning' needs a direction"),
    ("a 4 left", r"'left' needs a slant word before it"),
    ("the digit thick 7", r"'digit' must be followed by the digit"),
    ("a 4 slanted left the", r"'the' cannot come after 'a 4 slanted left'"),
])
def test_words_out_of_place_are_refused(text, pattern):
    with pytest.raises(PromptError, match=pattern):
        parse_prompt(text)


def test_non_text_prompt_is_a_type_error():
    with pytest.raises(TypeError):
        parse_prompt(7)


# --- the tokenizer ------------------------------------------------------------------------------------------------

def test_tokenizer_ids_padding_and_mask():
    assert len(set(VOCABULARY)) == len(VOCABULARY) and VOCAB_SIZE == len(VOCABULARY) + 1 and PAD == 0
    ids, mask = tokenize(["a thick seven", "", "The Digit 7."], max_len=5)
    assert ids.shape == mask.shape == (3, 5) and ids.dtype == torch.int64 and mask.dtype == torch.bool
    idx = {w: VOCABULARY.index(w) + 1 for w in ("a", "thick", "seven", "the", "digit", "7")}
    assert ids[0].tolist() == [idx["a"], idx["thick"], idx["seven"], PAD, PAD]
    assert mask[0].tolist() == [True, True, True, False, False]
    assert ids[1].tolist() == [PAD] * 5 and not mask[1].any()
    assert ids[2].tolist() == [idx["the"], idx["digit"], idx["7"], PAD, PAD]
    assert ids.max() < VOCAB_SIZE and (ids[mask] > 0).all()
    assert tokenize("a seven")[0].shape == (1, MAX_PROMPT_WORDS)  # one string is one prompt, not characters
    assert tokenize([])[0].shape == (0, MAX_PROMPT_WORDS)
    assert prompt_words("  An   EIGHT. ") == ["an", "eight"]


def test_tokenizer_refuses_what_the_grammar_refuses():
    with pytest.raises(PromptError, match="'fat'.*vocabulary is: a, an, the"):
        tokenize(["a seven", "a fat seven"])
    with pytest.raises(PromptError, match="contradiction"):
        tokenize(["a thick thin seven"])
    with pytest.raises(PromptError, match="at most 3"):
        tokenize(["a small thin eight"], max_len=3)


# --- captions -----------------------------------------------------------------------------------------------------

def test_random_captions_parse_back_and_vary():
    g = torch.Generator().manual_seed(0)
    sizes, thick = ("large", "big"), ("thick", "bold")
    choices = {"thickness": ("thin", "thick", None), "slant": ("left", "upright", "right"),
               "size": ("small", "large", None)}
    said = {k: 0 for k in choices}
    n, none_said, all_said, used = 1500, 0, 0, set()
    for i in range(n):
        label = i % 10
        attrs = {k: v[(i * 7 + 3 * j + i // 10) % len(v)] for j, (k, v) in enumerate(choices.items())}
        text = caption(label, rng=g, **attrs)
        p = parse_prompt(text)
        assert p.digit == label, text
        for k, v in attrs.items():
            got = getattr(p, k)
            assert got is None or got == v, (text, k, v)
            said[k] += got is not None
        known = [k for k, v in attrs.items() if v is not None]
        none_said += len(known) == 3 and all(getattr(p, k) is None for k in known)
        all_said += len(known) == 3 and all(getattr(p, k) is not None for k in known)
        used.update(text.split())
    assert none_said > 10 and all_said > 10  # sometimes nothing, sometimes everything is said
    for k, count in said.items():
        known = sum(v is not None for v in choices[k]) / len(choices[k])
        assert 0.35 < count / (n * known) < 0.65, k  # each known attribute said about half the time
    assert used == set(VOCABULARY)  # every word of the vocabulary (all synonyms, "an", "to the") appears
    orders = {tuple(w for w in caption(3, "thick", None, "large", g, mention=1.0).split() if w in sizes + thick)
              for _ in range(100)}
    assert len(orders) == len(sizes) * len(thick) * 2  # both adjective orders, every synonym pair
    a = [caption(5, "thick", "left", "small", rng=torch.Generator().manual_seed(1)) for _ in range(2)]
    assert a[0] == a[1]  # the generator decides


def test_caption_article_agrees():
    g = torch.Generator().manual_seed(3)
    texts = [caption(8, slant="upright", rng=g, mention=1.0) for _ in range(300)]
    assert not any(t.startswith(("a 8", "a eight", "a upright")) for t in texts)
    assert any(t.startswith("an ") for t in texts)


def test_caption_refuses_bad_values():
    with pytest.raises(CaptionError, match="label"):
        caption(10)
    with pytest.raises(CaptionError, match="thickness must be one of thin, thick"):
        caption(3, thickness="fat")
    with pytest.raises(CaptionError, match="slant"):
        caption(3, slant="thin")


# --- attributes on hand-made images -------------------------------------------------------------------------------

def test_slant_of_drawn_bars():
    right = bar(top=(18, 5), bottom=(10, 22))  # from bottom-left up to top-right: leans like italics
    left = right.flip(-1)
    upright = bar(top=(14, 4), bottom=(14, 23))
    x = torch.cat([right, left, upright, -torch.ones(1, 1, S, S)])
    s = slant(x)
    assert s[0] == pytest.approx(8 / 17, abs=0.03)  # the bar's dx per pixel of height
    assert s[1] == pytest.approx(-s[0].item(), abs=1e-5) and s[2] == 0 and s[3] == 0  # blank: 0, not NaN
    # slanted bars keep their reading through a wider stroke too
    assert slant(bar((18, 5), (10, 22), width=3)).item() > 0.3
    th = AttributeThresholds([0.0] * 10, [1e4] * 10, [0.0] * 10, [1e4] * 10)
    a = attributes(x[:3], torch.tensor([1, 1, 1]), th)
    assert a["slant"].tolist() == [1, -1, 0]
    assert [p.slant for p in describe(x[:3], torch.tensor([1, 1, 1]), th)] == ["right", "left", "upright"]


def test_slant_upright_threshold_is_absolute():
    slight = bar(top=(15, 4), bottom=(14, 23))  # dx / dy = 1 / 19 < SLANT_UPRIGHT
    strong = bar(top=(17, 4), bottom=(13, 23))  # 4 / 19 > SLANT_UPRIGHT
    s = slant(torch.cat([slight, strong]))
    assert 0 < s[0] < SLANT_UPRIGHT < s[1]
    th = AttributeThresholds([0.0] * 10, [1e4] * 10, [0.0] * 10, [1e4] * 10)
    assert attributes(torch.cat([slight, strong]), torch.tensor([0, 9]), th)["slant"].tolist() == [0, 1]


def test_thick_and_thin_strokes():
    thin, thick = bar((18, 5), (10, 22), width=1), bar((18, 5), (10, 22), width=3)
    m = stroke_mass(torch.cat([thin, thick]))
    assert m[1] / m[0] > 2
    th = AttributeThresholds.from_data(*_synthetic_bars())
    a = attributes(torch.cat([thin, thick]), torch.tensor([7, 7]), th)
    assert a["thickness"].tolist() == [-1, 1]
    assert [p.thickness for p in describe(torch.cat([thin, thick]), torch.tensor([7, 7]), th)] == ["thin", "thick"]


def test_stroke_mass_and_box_area_exact():
    x = -torch.ones(2, 1, S, S)
    x[0, 0, 3, 4], x[0, 0, 10, 20], x[0, 0, 12, 6] = 1.0, 0.0, -0.2  # ink 1, 0.5 (not > 0.5), 0.4
    assert stroke_mass(x).tolist() == pytest.approx([1.9, 0.0])
    assert box_area(x).tolist() == [1.0, 0.0]  # only the full pixel is in the box; blank: 0
    x[0, 0, 9, 2] = 0.5  # ink 0.75: the box now spans rows 3..9, columns 2..4
    assert box_area(x).tolist() == [21.0, 0.0]
    assert stroke_mass(torch.full((1, 1, S, S), 1.5)).item() == S * S  # outside [-1, 1]: clipped to full ink


def test_a_value_on_a_threshold_has_no_word():
    x = square(5)
    m, area = stroke_mass(x).item(), box_area(x).item()
    for th in (AttributeThresholds([m - 1] * 10, [m] * 10, [area - 1] * 10, [area] * 10),  # on the upper one
               AttributeThresholds([m] * 10, [m + 1] * 10, [area] * 10, [area + 1] * 10)):  # on the lower one
        a = attributes(x, torch.tensor([4]), th)
        assert a["thickness"].item() == 0 and a["size"].item() == 0
    th = AttributeThresholds([m + 1] * 10, [m + 1] * 10, [area - 1] * 10, [area - 1] * 10)
    a = attributes(x, torch.tensor([4]), th)
    assert a["thickness"].item() == -1 and a["size"].item() == 1


def test_box_area_of_small_and_large_squares():
    small, large = square(4), square(12, at=(8, 10))
    faint = square(20, ink=0.4, at=(0, 0))  # grey below the box threshold does not count
    faint[0, 0, 5:9, 5:9] = 1.0
    area = box_area(torch.cat([small, large, faint]))
    assert area.tolist() == [16.0, 144.0, 16.0]
    th = AttributeThresholds([0.0] * 10, [1e4] * 10, [20.0] * 10, [100.0] * 10)
    assert attributes(torch.cat([small, large, square(8)]), torch.tensor([2, 2, 2]), th)["size"].tolist() == [-1, 1, 0]


# --- thresholds ---------------------------------------------------------------------------------------------------

def _synthetic_bars() -> tuple[torch.Tensor, torch.Tensor]:
    """Per class c: bars 1, 2 and 3 px wide of length 4 + 2c (longer bars: more ink for the higher classes)."""
    images, labels = [], []
    for c in range(10):
        for width in (1, 2, 3):
            images.append(bar((14, 4), (14, 8 + 2 * c), width=width))
            labels.append(c)
    return torch.cat(images), torch.tensor(labels)


def test_thresholds_from_data_are_per_class_thirds():
    x, y = _synthetic_bars()
    th = AttributeThresholds.from_data(x, y)
    mass = stroke_mass(x).view(10, 3)
    for c in range(10):
        m1, m2, m3 = mass[c].tolist()
        assert th.mass_low[c] == pytest.approx(m1 + (m2 - m1) * 2 / 3)  # the 1/3 quantile of three values
        assert th.mass_high[c] == pytest.approx(m2 + (m3 - m2) / 3)
    assert all(a < b for a, b in zip(th.mass_high, th.mass_high[1:], strict=False))  # longer bars, more ink
    a = attributes(x, y, th)
    assert a["thickness"].view(10, 3).tolist() == [[-1, 0, 1]] * 10  # per class: thin, neither, thick
    assert torch.equal(attributes(x, y)["thickness"], a["thickness"])  # None: the thresholds of (x, y) itself
    # per class: the 3 px bar of class 0 has less ink than the 1 px bar of class 9, yet is thick for a 0
    assert mass[0, 2] < mass[9, 0]
    assert attributes(x[[2, 27]], torch.tensor([0, 9]), th)["thickness"].tolist() == [1, -1]
    # the same image is thick as a 0 and thin as a 9
    assert attributes(x[[2, 2]], torch.tensor([0, 9]), th)["thickness"].tolist() == [1, -1]


def test_thresholds_round_trip_and_validation():
    th = AttributeThresholds.from_data(*_synthetic_bars())
    d = json.loads(json.dumps(th.to_dict()))
    assert AttributeThresholds.from_dict(d) == th
    assert set(d) == {"mass_low", "mass_high", "area_low", "area_high", "upright"} and d["upright"] == SLANT_UPRIGHT
    with pytest.raises(CaptionError, match="missing: upright"):
        AttributeThresholds.from_dict({k: v for k, v in d.items() if k != "upright"})
    with pytest.raises(CaptionError, match="unknown: colour"):
        AttributeThresholds.from_dict({**d, "colour": 1})
    with pytest.raises(CaptionError, match="'area_low' must be 10"):
        AttributeThresholds.from_dict({**d, "area_low": [1.0] * 9})
    with pytest.raises(CaptionError, match="mass_low exceeds mass_high for digit class"):
        AttributeThresholds.from_dict({**d, "mass_low": d["mass_high"], "mass_high": d["mass_low"]})
    x, y = _synthetic_bars()
    with pytest.raises(CaptionError, match="none of class 9"):
        AttributeThresholds.from_data(x[:27], y[:27])


def test_bad_images_and_labels_are_refused():
    x, y = _synthetic_bars()
    with pytest.raises(CaptionError, match=r"\(N, 1, H, W\)"):
        stroke_mass(x[:, 0])
    with pytest.raises(CaptionError, match="NaN"):
        slant(torch.full((1, 1, S, S), float("nan")))
    with pytest.raises(CaptionError, match=r"shape \(30,\)"):
        attributes(x, y[:5])
    with pytest.raises(CaptionError, match="0..9"):
        attributes(x, y + 1)
    with pytest.raises(CaptionError, match="AttributeThresholds"):
        captions_for(x, y, thresholds={"upright": 0.1})


# --- on the training digits ---------------------------------------------------------------------------------------

def test_every_word_is_common_on_the_training_digits():
    from core.data.mnist import load_mnist

    train = load_mnist("train")
    th = AttributeThresholds.from_data(train.images, train.labels)
    a = attributes(train.images, train.labels, th)
    for key, lo, hi in (("thickness", 0.3, 0.37), ("size", 0.15, 0.5), ("slant", 0.15, 0.7)):
        for code in (-1, 1) if key != "slant" else (-1, 0, 1):
            share = (a[key] == code).float().mean().item()
            assert lo < share < hi, (key, code, share)
    texts = captions_for(train.images[:200], train.labels[:200], th, torch.Generator().manual_seed(0))
    prompts = describe(train.images[:200], train.labels[:200], th)
    for text, p in zip(texts, prompts, strict=True):
        q = parse_prompt(text)
        assert q.digit == p.digit
        assert all(getattr(q, k) in (None, getattr(p, k)) for k in ("thickness", "slant", "size")), (text, p)

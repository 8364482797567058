"""Captions for MNIST digits made from the digits themselves, the prompt grammar they follow, and its word-level
tokenizer: the text side of the lab's miniature Stable Diffusion (Rombach et al. 2022), whose captions must come
from somewhere when nothing can be downloaded.

Each digit is described by its label and three attributes measured on the image (ink = (x + 1) / 2 in [0, 1]):

- thickness: the stroke mass (total ink), "thin" in the lower and "thick" in the upper third of its class;
- slant: the shear of the image's second-order central moments, -mu11 / mu02 with x to the right and y downwards
  (= mu11 / mu02 with y upwards): the least-squares slope dx / d(height) of the ink, positive when the top of the
  digit is to the right of its bottom, like italic text; "upright" when |shear| <= SLANT_UPRIGHT, else "left" or
  "right" (absolute thresholds, so "slanted right" means the same for every digit);
- size: the area of the bounding box of the pixels with ink > 0.5, "small" / "large" in the lower / upper third of
  its class.

Thickness and size thresholds are per class (a "thick 1" is thick for a 1), computed from a training set by
``AttributeThresholds.from_data`` and stored as JSON through ``to_dict`` / ``from_dict``. A digit in the middle
third has no thickness (or size) word.

The grammar of captions and prompts (case-insensitive; extra spaces and a final period are ignored; each of size,
thickness and slant may be said at most once, so "a thick thin seven" and "an upright 4 slanted left" are refused,
as are prompts naming two digits):

    prompt     ::= "" | phrase                                 "" means unconditional
    phrase     ::= [article] {adjective} [noun] digit [after]  adjectives in any order
    article    ::= "a" | "an" | "the"
    adjective  ::= size | thickness | upright
    noun       ::= "digit" | "number"
    digit      ::= "0" | "1" | ... | "9" | "zero" | "one" | ... | "nine"
    after      ::= upright | verb ["to" "the"] direction
    size       ::= "small" | "little"                          (small)
                 | "large" | "big"                             (large)
    thickness  ::= "thin" | "light"                            (thin)
                 | "thick" | "bold"                            (thick)
    upright    ::= "upright" | "straight"                      (upright)
    verb       ::= "slanted" | "leaning" | "tilted"
    direction  ::= "left" | "right"

e.g. "7", "seven", "a seven", "the digit 7", "a thick seven", "a thin 3", "a 4 slanted left",
"a large two leaning right", "a small thin eight", "an upright 8", "the big bold number 3 tilted to the right".

    from core.data.captions import AttributeThresholds, captions_for, parse_prompt, tokenize
    th = AttributeThresholds.from_data(train.images, train.labels)
    texts = captions_for(images, labels, th, torch.Generator().manual_seed(0))  # ["a thick 7 slanted right", ...]
    ids, mask = tokenize(texts)  # (N, MAX_PROMPT_WORDS) int64 (PAD = 0), bool (True for real words)
    parse_prompt("A small thin eight.")  # Prompt(digit=8, thickness='thin', slant=None, size='small')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch

NUM_CLASSES = 10
SLANT_UPRIGHT = 0.1  # |shear| at most this is "upright" (on the 4,000 training digits: ~19% left, 26% upright)
THIRD = 1.0 / 3.0  # the share of each class called thin (small) and thick (large)
BOX_INK = 0.5  # a pixel with more ink than this is inside the bounding box
MAX_PROMPT_WORDS = 12  # the longest caption has 9 words
MAX_PROMPT_CHARS = 100  # the longest caption has about 50 characters
MENTION = 0.5  # the chance that a caption says a known attribute

ARTICLES = ("a", "an", "the")
NOUNS = ("digit", "number")
SIZE_WORDS = {"small": "small", "little": "small", "large": "large", "big": "large"}
THICKNESS_WORDS = {"thin": "thin", "light": "thin", "thick": "thick", "bold": "thick"}
UPRIGHT_WORDS = {"upright": "upright", "straight": "upright"}
NUMERALS = tuple(str(d) for d in range(NUM_CLASSES))
NUMBER_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_WORDS = {**{w: d for d, w in enumerate(NUMERALS)}, **{w: d for d, w in enumerate(NUMBER_NAMES)}}
SLANT_VERBS = ("slanted", "leaning", "tilted")
DIRECTIONS = ("left", "right")
# Every word of the grammar, once; token id of VOCABULARY[i] is i + 1 (0 is PAD).
VOCABULARY: tuple[str, ...] = tuple(dict.fromkeys((
    *ARTICLES, *NOUNS, *SIZE_WORDS, *THICKNESS_WORDS, *UPRIGHT_WORDS, *NUMERALS, *NUMBER_NAMES, *SLANT_VERBS,
    "to", "the", *DIRECTIONS,
)))
PAD = 0
VOCAB_SIZE = len(VOCABULARY) + 1  # rows of an embedding table: PAD and every word
WORD_IDS = {w: i + 1 for i, w in enumerate(VOCABULARY)}
# The words of each attribute value by code - 1, 0, 1 (as returned by ``attributes``).
CODE_WORDS: dict[str, tuple[str | None, str | None, str | None]] = {
    "thickness": ("thin", None, "thick"), "slant": ("left", "upright", "right"), "size": ("small", None, "large"),
}
_AN = frozenset({"eight", "8", "upright"})  # words that take "an"


class CaptionError(ValueError):
    """Images, labels, thresholds or attribute values that cannot be measured or captioned."""


class PromptError(CaptionError):
    """A prompt outside the grammar: an unknown word, too long, a contradiction or a word out of place."""


@dataclass(frozen=True)
class Prompt:
    """What a prompt says: each field None where it says nothing (all None: unconditional)."""

    digit: int | None = None
    thickness: str | None = None  # "thin" | "thick"
    slant: str | None = None  # "left" | "upright" | "right"
    size: str | None = None  # "small" | "large"

    @property
    def unconditional(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


# ---------------------------------------------------------------------------------------------------------------
# Measurements


def _ink(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W) ink in [0, 1] of images (N, 1, H, W) in [-1, 1] (values outside are clipped, as a sampler's)."""
    if not isinstance(x, torch.Tensor):
        raise CaptionError(f"expected images as a torch tensor; got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] < 1 or x.shape[3] < 1:
        raise CaptionError(f"expected images of shape (N, 1, H, W); got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise CaptionError(f"expected floating-point images in [-1, 1]; got {x.dtype}")
    if not torch.isfinite(x).all():
        raise CaptionError("the images hold NaN or infinite values")
    return ((x[:, 0].float() + 1.0) / 2.0).clamp(0.0, 1.0)


def stroke_mass(x: torch.Tensor) -> torch.Tensor:
    """(N,) total ink of images (N, 1, H, W) in [-1, 1]: the sum of (x + 1) / 2 over the pixels."""
    return _ink(x).sum(dim=(1, 2))


def slant(x: torch.Tensor) -> torch.Tensor:
    """(N,) shear of images (N, 1, H, W) in [-1, 1] from the central moments of their ink: -mu11 / mu02 with x to
    the right and y downwards, i.e. the least-squares dx per pixel of height. Positive: the top leans right (like
    italic text); 0 for an image without vertical extent (blank, or a single row)."""
    ink = _ink(x)
    _, h, w = ink.shape
    ys = torch.arange(h, dtype=ink.dtype).view(1, h, 1)
    xs = torch.arange(w, dtype=ink.dtype).view(1, 1, w)
    mass = ink.sum(dim=(1, 2)).clamp_min(1e-12).view(-1, 1, 1)
    dx = xs - (ink * xs).sum(dim=(1, 2), keepdim=True) / mass
    dy = ys - (ink * ys).sum(dim=(1, 2), keepdim=True) / mass
    mu11 = (ink * dx * dy).sum(dim=(1, 2))
    mu02 = (ink * dy * dy).sum(dim=(1, 2))
    flat = mu02 <= 1e-6
    return torch.where(flat, torch.zeros_like(mu02), -mu11 / torch.where(flat, torch.ones_like(mu02), mu02))


def box_area(x: torch.Tensor) -> torch.Tensor:
    """(N,) area in pixels of the bounding box of the pixels with ink > 0.5 (x > 0); 0 where there is none."""
    on = _ink(x) > BOX_INK
    rows, cols = on.any(dim=2), on.any(dim=1)  # (N, H), (N, W)

    def extent(a: torch.Tensor) -> torch.Tensor:
        n = a.shape[1]
        first = a.int().argmax(dim=1)
        last = n - 1 - a.flip(1).int().argmax(dim=1)
        return torch.where(a.any(dim=1), last - first + 1, torch.zeros_like(first))

    return (extent(rows) * extent(cols)).float()


def _check_labels(labels: torch.Tensor, n: int) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.shape[0] != n:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise CaptionError(f"expected labels as a tensor of shape ({n},), one per image; got {shape}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise CaptionError(f"expected integer labels; got {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise CaptionError(f"labels must lie in 0..{NUM_CLASSES - 1}; got {labels.min().item()}..{labels.max().item()}")
    return labels.long()


def _floats(name: str, values: Any) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise CaptionError(f"threshold {name!r} must be {NUM_CLASSES} numbers, one per digit class") from None
    if len(out) != NUM_CLASSES or not all(abs(v) < float("inf") for v in out):
        raise CaptionError(f"threshold {name!r} must be {NUM_CLASSES} finite numbers, one per digit class; "
                           f"got {len(out)}")
    return out


@dataclass(frozen=True)
class AttributeThresholds:
    """Per digit class: stroke mass below ``mass_low[c]`` is thin, above ``mass_high[c]`` thick; box area below
    ``area_low[c]`` small, above ``area_high[c]`` large; |shear| <= ``upright`` (all classes) is upright."""

    mass_low: tuple[float, ...]
    mass_high: tuple[float, ...]
    area_low: tuple[float, ...]
    area_high: tuple[float, ...]
    upright: float = SLANT_UPRIGHT

    def __post_init__(self) -> None:
        for name in ("mass_low", "mass_high", "area_low", "area_high"):
            object.__setattr__(self, name, _floats(name, getattr(self, name)))
        try:
            object.__setattr__(self, "upright", float(self.upright))
        except (TypeError, ValueError):
            raise CaptionError(f"threshold 'upright' must be a number; got {self.upright!r}") from None
        if not 0.0 <= self.upright < float("inf"):
            raise CaptionError(f"threshold 'upright' must be a finite number >= 0; got {self.upright}")
        for low, high in (("mass_low", "mass_high"), ("area_low", "area_high")):
            bad = [c for c, (a, b) in enumerate(zip(getattr(self, low), getattr(self, high), strict=True)) if a > b]
            if bad:
                raise CaptionError(f"{low} exceeds {high} for digit class(es) {', '.join(map(str, bad))}")

    @classmethod
    def from_data(cls, images: torch.Tensor, labels: torch.Tensor, share: float = THIRD,
                  upright: float = SLANT_UPRIGHT) -> AttributeThresholds:
        """The ``share`` and 1 - ``share`` quantiles of each class's stroke mass and box area in (images, labels);
        every class 0..9 must be present."""
        if not 0.0 < share < 0.5:
            raise CaptionError(f"share must lie strictly between 0 and 0.5; got {share}")
        mass, area = stroke_mass(images), box_area(images)
        labels = _check_labels(labels, mass.shape[0])
        missing = [c for c in range(NUM_CLASSES) if not (labels == c).any()]
        if missing:
            raise CaptionError(f"thresholds need digits of every class; none of class {', '.join(map(str, missing))}")
        q = torch.tensor([share, 1.0 - share], dtype=torch.float64)
        m = torch.stack([torch.quantile(mass[labels == c].double(), q) for c in range(NUM_CLASSES)])
        a = torch.stack([torch.quantile(area[labels == c].double(), q) for c in range(NUM_CLASSES)])
        return cls(m[:, 0].tolist(), m[:, 1].tolist(), a[:, 0].tolist(), a[:, 1].tolist(), upright)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and floats (JSON)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AttributeThresholds:
        """The inverse of ``to_dict``."""
        if not isinstance(d, Mapping):
            raise CaptionError(f"expected attribute thresholds as a mapping; got {type(d).__name__}")
        names = [f.name for f in fields(cls)]
        missing, extra = [n for n in names if n not in d], [k for k in d if k not in names]
        if missing or extra:
            raise CaptionError(f"attribute thresholds need exactly the keys {', '.join(names)}; missing: "
                               f"{', '.join(missing) or 'none'}; unknown: {', '.join(map(str, extra)) or 'none'}")
        return cls(**{n: d[n] for n in names})


def attributes(x: torch.Tensor, labels: torch.Tensor,
               thresholds: AttributeThresholds | None = None) -> dict[str, torch.Tensor]:
    """Per image (N, 1, H, W) in [-1, 1] of digit ``labels`` (N,): "stroke_mass", "shear" (``slant``) and
    "box_area" (N,) float, and the codes (N,) int64 in {-1, 0, 1} of "thickness" (thin / none / thick), "slant"
    (left / upright / right) and "size" (small / none / large); ``CODE_WORDS[key][code + 1]`` is the word.
    Without ``thresholds`` they come from (x, labels) themselves."""
    mass, shear, area = stroke_mass(x), slant(x), box_area(x)
    labels = _check_labels(labels, mass.shape[0])
    th = AttributeThresholds.from_data(x, labels) if thresholds is None else thresholds
    if not isinstance(th, AttributeThresholds):
        raise CaptionError(f"expected AttributeThresholds; got {type(th).__name__}")

    def code(value: torch.Tensor, low: tuple[float, ...], high: tuple[float, ...]) -> torch.Tensor:
        lo = torch.tensor(low, dtype=value.dtype)[labels]
        hi = torch.tensor(high, dtype=value.dtype)[labels]
        return (value > hi).long() - (value < lo).long()

    return {
        "stroke_mass": mass, "shear": shear, "box_area": area,
        "thickness": code(mass, th.mass_low, th.mass_high),
        "slant": (shear > th.upright).long() - (shear < -th.upright).long(),
        "size": code(area, th.area_low, th.area_high),
    }


def describe(x: torch.Tensor, labels: torch.Tensor, thresholds: AttributeThresholds | None = None) -> list[Prompt]:
    """Everything a caption can say about each image: its label and its attribute words."""
    a = attributes(x, labels, thresholds)
    codes = {k: (a[k] + 1).tolist() for k in CODE_WORDS}
    return [Prompt(int(d), CODE_WORDS["thickness"][codes["thickness"][i]], CODE_WORDS["slant"][codes["slant"][i]],
                   CODE_WORDS["size"][codes["size"][i]]) for i, d in enumerate(labels.tolist())]


# ---------------------------------------------------------------------------------------------------------------
# Captions


def _pick(options: Sequence[str], u: float) -> str:
    return options[min(int(u * len(options)), len(options) - 1)]


def caption(label: int, thickness: str | None = None, slant: str | None = None, size: str | None = None,
            rng: torch.Generator | None = None, mention: float = MENTION) -> str:
    """A random caption in the grammar for one digit: each known attribute said with probability ``mention``
    (so sometimes none, sometimes all), synonyms, article, "digit"/"number", numeral or word and word order drawn
    from ``rng`` (a CPU ``torch.Generator``; None: torch's global one). It parses back to what it says."""
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < NUM_CLASSES:
        raise CaptionError(f"label must be an int in 0..{NUM_CLASSES - 1}; got {label!r}")
    for name, value, allowed in (("thickness", thickness, ("thin", "thick")), ("slant", slant, CODE_WORDS["slant"]),
                                 ("size", size, ("small", "large"))):
        if value is not None and value not in allowed:
            raise CaptionError(f"{name} must be one of {', '.join(map(str, allowed))} or None; got {value!r}")
    if not 0.0 <= mention <= 1.0:
        raise CaptionError(f"mention must be a probability in [0, 1]; got {mention}")
    u = iter(torch.rand(16, generator=rng, dtype=torch.float64).tolist())  # a fixed number of draws per caption
    say_size, say_thickness, say_slant = (v is not None and next(u) < mention for v in (size, thickness, slant))
    adjectives = []
    if say_size:
        adjectives.append(_pick([w for w, v in SIZE_WORDS.items() if v == size], next(u)))
    if say_thickness:
        adjectives.append(_pick([w for w, v in THICKNESS_WORDS.items() if v == thickness], next(u)))
    if next(u) < 0.25:
        adjectives.reverse()  # "a thin small eight" as well as "a small thin eight"
    after = []
    if say_slant and slant == "upright":
        word = _pick(tuple(UPRIGHT_WORDS), next(u))
        if next(u) < 0.5:
            adjectives.append(word)  # "an upright 8"
        else:
            after.append(word)  # "an 8 upright"
    elif say_slant:
        after = [_pick(SLANT_VERBS, next(u)), *(("to", "the") if next(u) < 0.25 else ()), slant]
    noun = [_pick(NOUNS, next(u))] if next(u) < 0.25 else []
    digit = NUMERALS[label] if next(u) < 0.5 else NUMBER_NAMES[label]
    words = [*adjectives, *noun, digit, *after]
    r = next(u)
    if r < 0.45:
        words.insert(0, "an" if words[0] in _AN else "a")
    elif r < 0.7:
        words.insert(0, "the")
    return " ".join(words)


def captions_for(images: torch.Tensor, labels: torch.Tensor, thresholds: AttributeThresholds,
                 generator: torch.Generator | None = None, mention: float = MENTION) -> list[str]:
    """A random ``caption`` for each image (N, 1, H, W) in [-1, 1] of digit ``labels`` (N,), from its measured
    attributes against ``thresholds`` (those of the training set)."""
    if not isinstance(thresholds, AttributeThresholds):
        raise CaptionError(f"expected AttributeThresholds; got {type(thresholds).__name__}")
    return [caption(p.digit, p.thickness, p.slant, p.size, generator, mention)
            for p in describe(images, labels, thresholds)]


# ---------------------------------------------------------------------------------------------------------------
# Prompts


def _vocabulary_text() -> str:
    return ", ".join(VOCABULARY)


def prompt_words(text: str) -> list[str]:
    """The words of a prompt, normalised as the parser and tokenizer see them (lower case, split on whitespace, a
    final period dropped); raises PromptError when it is too long or has a word outside VOCABULARY."""
    if not isinstance(text, str):
        raise TypeError(f"a prompt must be a string; got {type(text).__name__}")
    text = text.strip()
    if len(text) > MAX_PROMPT_CHARS:
        raise PromptError(f"the prompt has {len(text)} characters; the limit is {MAX_PROMPT_CHARS} "
                          "(a caption is a few words, e.g. 'a thick seven')")
    text = text.lower()
    if text.endswith("."):
        text = text[:-1]
    words = text.split()
    if len(words) > MAX_PROMPT_WORDS:
        raise PromptError(f"the prompt has {len(words)} words; the limit is {MAX_PROMPT_WORDS} "
                          "(a caption is a few words, e.g. 'a thick seven')")
    unknown = list(dict.fromkeys(w for w in words if w not in WORD_IDS))
    if unknown:
        said = ", ".join(repr(w) for w in unknown)
        raise PromptError(f"unknown word{'s' if len(unknown) > 1 else ''} {said}: "
                          f"the vocabulary is: {_vocabulary_text()}")
    return words


def _attribute_of(word: str) -> tuple[str, str] | None:
    """(attribute, value) that a word says by itself, if any ("left" / "right" only after a slant verb)."""
    if word in SIZE_WORDS:
        return "size", SIZE_WORDS[word]
    if word in THICKNESS_WORDS:
        return "thickness", THICKNESS_WORDS[word]
    if word in UPRIGHT_WORDS:
        return "slant", "upright"
    if word in DIRECTIONS:
        return "slant", word
    return None


def parse_prompt(text: str) -> Prompt:
    """What a prompt in the grammar (module docstring) says; "" or whitespace: ``Prompt()`` (unconditional).
    Raises PromptError, naming the problem, for an unknown word (listing the vocabulary), a prompt over
    MAX_PROMPT_WORDS words or MAX_PROMPT_CHARS characters, two digits, a contradiction or repetition
    ("a thick thin seven"), or a word out of place."""
    words = prompt_words(text)
    if not words:
        return Prompt()
    digits = [w for w in words if w in DIGIT_WORDS]
    if len(digits) > 1:
        raise PromptError(f"the prompt names {len(digits)} digits ({', '.join(map(repr, digits))}); "
                          "a prompt describes one digit")
    said: dict[str, str] = {}  # attribute -> the first word that said it
    for w in words:
        if (av := _attribute_of(w)) is None:
            continue
        attr, value = av
        if attr in said:
            first = said[attr]
            if _attribute_of(first)[1] == value:
                raise PromptError(f"{first!r} and {w!r} both give the {attr}; say it once")
            raise PromptError(f"contradiction: {first!r} says the {attr} is {_attribute_of(first)[1]}, {w!r} that it "
                              f"is {value}; choose one")
        said[attr] = w
    if not digits:
        raise PromptError("the prompt names no digit: say one as a numeral (0-9) or a word (zero-nine), "
                          "e.g. 'a thick seven'; an empty prompt means any digit")
    values: dict[str, str] = {}
    n, i = len(words), 0
    if words[0] in ARTICLES:
        i = 1
    while i < n and (words[i] in SIZE_WORDS or words[i] in THICKNESS_WORDS or words[i] in UPRIGHT_WORDS):
        attr, value = _attribute_of(words[i])
        values[attr] = value
        i += 1
    if i < n and words[i] in NOUNS:
        i += 1
        if i >= n or words[i] not in DIGIT_WORDS:
            raise PromptError(f"{words[i - 1]!r} must be followed by the digit itself, e.g. 'the digit 7'")
    if words[i] not in DIGIT_WORDS:
        w = words[i]
        where = "only begin the prompt" if w in ARTICLES else "only follow the digit, e.g. 'a 4 slanted left'" \
            if w in SLANT_VERBS or w in DIRECTIONS or w == "to" else "not come here"
        raise PromptError(f"{w!r} can {where}; the order is: [article] [size/thickness/upright words] "
                          "[digit/number] digit [slant phrase], e.g. 'a small thin eight slanted left'")
    digit = DIGIT_WORDS[words[i]]
    i += 1
    if i < n:
        w = words[i]
        if w in UPRIGHT_WORDS:
            values["slant"] = "upright"
            i += 1
        elif w in SLANT_VERBS:
            i += 1
            if words[i:i + 2] == ["to", "the"]:
                i += 2
            if i >= n or words[i] not in DIRECTIONS:
                raise PromptError(f"{w!r} needs a direction after it: '{w} left' or '{w} right'")
            values["slant"] = words[i]
            i += 1
        elif w in DIRECTIONS:
            raise PromptError(f"{w!r} needs a slant word before it, e.g. 'slanted {w}' or 'leaning {w}'")
        else:
            raise PromptError(f"{w!r} cannot follow the digit; only a slant phrase can (e.g. 'a 4 slanted left', "
                              "'a 7 upright'); size and thickness words come before the digit, e.g. 'a thick seven'")
    if i < n:
        raise PromptError(f"{words[i]!r} cannot come after {' '.join(words[:i])!r}: the slant phrase ends the prompt")
    return Prompt(digit, values.get("thickness"), values.get("slant"), values.get("size"))


def tokenize(texts: str | Sequence[str], max_len: int = MAX_PROMPT_WORDS) -> tuple[torch.Tensor, torch.Tensor]:
    """Word-level tokens of prompts: ids (N, max_len) int64, VOCABULARY[i] as i + 1 and PAD = 0 after the last
    word, and mask (N, max_len) bool, True for real words. Each text must parse (``parse_prompt``; PromptError
    otherwise) and have at most ``max_len`` words; "" gives an all-PAD row (mask all False)."""
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(max_len, int) or max_len < 1:
        raise CaptionError(f"max_len must be a positive int; got {max_len!r}")
    ids = torch.full((len(texts), max_len), PAD, dtype=torch.int64)
    for row, text in enumerate(texts):
        parse_prompt(text)
        words = prompt_words(text)
        if len(words) > max_len:
            raise PromptError(f"the prompt {text!r} has {len(words)} words; this tokenizer takes at most {max_len}")
        ids[row, :len(words)] = torch.tensor([WORD_IDS[w] for w in words], dtype=torch.int64)
    return ids, ids != PAD

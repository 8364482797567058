"""What the MNIST pages share: the held-out digits (read once per server), the labels of a grid of digits, and the
project's classifier reading digits (the judge of every MNIST figure in the lab)."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from core.data.mnist import MNIST, load_mnist
from core.evaluate import classify
from dashboard.ui.loaders import pretrained

CLASSIFIER = "classifier-mnist"


@st.cache_resource(max_entries=1, show_spinner="Reading the MNIST test digits (once per server)...")
def test_digits() -> MNIST:
    """core.data.mnist.load_mnist("test"), once per process, for every page."""
    return load_mnist("test")


def grid_labels(digit: str, n: int) -> torch.Tensor | None:
    """The labels y of a grid of n digits: 0..9 repeating ("each"), one digit for all, or None ("any":
    unconditional)."""
    if digit == "any":
        return None
    if digit == "each":
        return torch.arange(n) % 10
    return torch.full((n,), int(digit))


@torch.no_grad()
def probabilities(images: torch.Tensor, judged: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The classifier on images (N, 1, 28, 28) in [-1, 1]: (predicted digit (N,), class probabilities (N, 10)), or
    (None, None) when it cannot be loaded (``judged`` False)."""
    if not judged:
        return None, None
    clf = pretrained(CLASSIFIER).model
    pred, feats = classify(clf, images)
    return pred.numpy(), clf.head(feats).softmax(1).numpy()


def reading(images: torch.Tensor, judged: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The classifier's reading of images: (digit, its probability), each (N,), or (None, None) unjudged."""
    pred, probs = probabilities(images, judged)
    return (None, None) if pred is None else (pred, probs.max(1))

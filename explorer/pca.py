"""A 2-D map of digit space: the first two principal components of real MNIST digits, fitted once.

``python -m explorer.pca`` fits them on the training split (explorer.mnist, 4500 digits) and writes
``checkpoints/mnist_pca.safetensors`` — the mean (784,), the components (2, 784) and the held-out digits'
coordinates (500, 2) with their labels, drawn as the data's cloud — with a JSON card holding the SHA-256,
checked before loading (as explorer.model does for the weights). The fit is deterministic: an SVD of the
centred data, each component's sign fixed so that its largest-magnitude entry is positive.

The app reads the shipped file only (it never imports explorer.mnist). No gradio import.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .model import CHECKPOINT_DIR, CheckpointError, card_path, sha256_file

DEFAULT_PCA = CHECKPOINT_DIR / "mnist_pca.safetensors"


def fit_pca(x: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean (D,), components (k, D), explained variance ratio (k,)) of the rows of x (N, D), deterministic.

    components = the top-k right singular vectors of x − mean, each signed so its largest |entry| is positive.
    """
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    _, sv, vt = np.linalg.svd(x - mean, full_matrices=False)
    comps = vt[:k]
    signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])  # (k,)
    return mean, comps * signs[:, None], (sv[:k] ** 2) / (sv**2).sum()


def project(x: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Coordinates (x − mean) · componentsᵀ: (..., D) -> (..., k)."""
    return (np.asarray(x, dtype=np.float64) - mean) @ components.T


@dataclass(frozen=True)
class PCABasis:
    mean: np.ndarray  # (D,)
    components: np.ndarray  # (2, D)
    cloud: np.ndarray  # (M, 2) held-out digits' coordinates
    cloud_labels: np.ndarray  # (M,)
    card: dict

    def project(self, x) -> np.ndarray:
        """(..., H, W) or (..., D) images -> (..., 2) coordinates."""
        x = np.asarray(x, dtype=np.float64)
        return project(x.reshape(*x.shape[:-2], -1) if x.shape[-1] != self.mean.shape[0] else x, self.mean,
                       self.components)


def save_basis(path: Path, basis: PCABasis) -> dict:
    """Write the basis as safetensors and its card (with the file's SHA-256) beside it."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {"mean": basis.mean, "components": basis.components, "cloud": basis.cloud}
    state = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)) for k, v in tensors.items()}
    state["cloud_labels"] = torch.from_numpy(np.ascontiguousarray(basis.cloud_labels, dtype=np.int64))
    save_file(state, str(path))
    card = {**basis.card, "weights_file": path.name, "weights_sha256": sha256_file(path)}
    card_path(path).write_text(json.dumps(card, indent=2) + "\n")
    return card


@lru_cache(maxsize=2)
def load_basis(path: Path = DEFAULT_PCA) -> PCABasis:
    """The shipped basis (safetensors only), after its SHA-256 is checked against the card; CheckpointError if not."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file() or not card_path(path).is_file():
        raise CheckpointError(f"The PCA basis {path.name} or its card is missing: run `python -m explorer.pca`.")
    card = json.loads(card_path(path).read_text())
    if card.get("weights_sha256") != sha256_file(path):
        raise CheckpointError(f"Checksum mismatch for {path.name}: restore it or run `python -m explorer.pca`.")
    try:
        t = load_file(str(path))
        return PCABasis(t["mean"].numpy(), t["components"].numpy(), t["cloud"].numpy(),
                        t["cloud_labels"].numpy(), card)
    except (SafetensorError, KeyError, OSError) as exc:
        raise CheckpointError(f"Cannot read the PCA basis {path.name}: {exc}") from exc


def main(argv=None) -> None:
    from .mnist import DATA_SOURCE, load_mnist_split

    p = argparse.ArgumentParser(prog="python -m explorer.pca", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_PCA)
    args = p.parse_args(argv)
    split = load_mnist_split()
    mean, comps, ratio = fit_pca(split.train_x.reshape(len(split.train_x), -1).numpy())
    cloud = project(split.test_x.reshape(len(split.test_x), -1).numpy(), mean, comps)
    card = {"name": "PCA of MNIST digits (2 components)", "data": DATA_SOURCE, "fitted_on": "training split, "
            f"{len(split.train_x)} digits in [-1, 1]", "cloud": f"{len(cloud)} held-out digits",
            "explained_variance_ratio": ratio.tolist(), "command": "python -m explorer.pca"}
    card = save_basis(args.out, PCABasis(mean, comps, cloud, split.test_y.numpy(), card))
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()

"""The 2-D lab's denoiser: a small MLP ε̂(x_t, λ, y) for points, and loading its shipped weights.

Like the digit UNet (explorer.model) it is conditioned on the noise level λ = log-SNR rather than on t, so one
set of weights serves every schedule and T, and on a class y with the null class ``NULL_CLASS`` learnt by label
dropout, so ``explorer.model.guided_eps`` gives classifier-free guidance unchanged. Weights are .safetensors
beside a JSON model card holding their SHA-256, checked before loading.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..model import CHECKPOINT_DIR, NUM_CLASSES, CheckpointError, card_path, noise_level_embedding, sha256_file
from .score import alpha_bar_of, eps_from_v

LAB2D_CHECKPOINT_DIR = CHECKPOINT_DIR / "lab2d"


@dataclass(frozen=True)
class PointMLPConfig:
    dim: int = 2  # coordinates per point
    hidden: int = 128  # width of every hidden layer
    blocks: int = 3  # residual blocks
    emb_dim: int = 64  # sinusoidal noise-level features
    num_classes: int = NUM_CLASSES  # class rows of the embedding (+ null); the lab's presets use the first few


class PointMLP(nn.Module):
    """ε-prediction MLP: forward(x_t, log_snr, labels) -> ε̂ of x_t's shape, (B, 2) or (B, 2, 1, 1).

    The layers predict v; ε̂ = √(1 − ᾱ) x_t + √ᾱ v̂ (``score.eps_from_v``) is exact at pure noise, so the
    samplers' x̂_0 = (x_t − √(1 − ᾱ) ε̂) / √ᾱ does not blow up where ᾱ ≈ 0 (points are not clipped as images are).
    """

    def __init__(self, config: PointMLPConfig = PointMLPConfig()):
        super().__init__()
        self.config = config
        h = config.hidden
        self.noise_mlp = nn.Sequential(nn.Linear(config.emb_dim, h), nn.SiLU(), nn.Linear(h, h))
        self.class_emb = nn.Embedding(config.num_classes + 1, h)  # + null class
        self.stem = nn.Linear(config.dim, h)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(h), nn.Linear(h, 2 * h), nn.SiLU(), nn.Linear(2 * h, h))
                                    for _ in range(config.blocks))
        self.head = nn.Sequential(nn.LayerNorm(h), nn.Linear(h, config.dim))

    def forward(self, x: torch.Tensor, log_snr: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        emb = self.noise_mlp(noise_level_embedding(log_snr, self.config.emb_dim)) + self.class_emb(labels)  # (B, H)
        x_t = x.reshape(b, self.config.dim)  # (B, 2)
        h = self.stem(x_t) + emb  # (B, H)
        for block in self.blocks:
            h = h + block(F.silu(h + emb))  # (B, H)
        alpha_bar = alpha_bar_of(log_snr.float())[:, None]  # (B, 1)
        return eps_from_v(x_t, self.head(h), alpha_bar).reshape(x.shape)  # like x_t


def checkpoint_path(preset: str) -> Path:
    return LAB2D_CHECKPOINT_DIR / f"{preset}.safetensors"


@cache
def shipped_model(preset: str) -> PointMLP:
    """The shipped weights of a preset, loaded (and checked) once per process; shared read-only."""
    return load_point_model(checkpoint_path(preset))[0]


def load_point_model(path: Path | str) -> tuple[PointMLP, dict]:
    """The EMA weights (safetensors only) and their model card; the SHA-256 is checked before anything is read.

    Raises :class:`explorer.model.CheckpointError` saying what to do when a file is missing, altered or unfit.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"Refusing to load {path.name}: only .safetensors weights are accepted.")
    card_file = card_path(path)
    if not path.is_file() or not card_file.is_file():
        raise CheckpointError(f"The 2-D lab weights {path.name} or their card are missing. "
                              "Train them with `python -m explorer.lab2d.train --preset all`.")
    try:
        card = json.loads(card_file.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"Model card {card_file.name} is unreadable: {exc}") from exc
    expected, actual = card.get("weights_sha256"), sha256_file(path)
    if expected != actual:
        raise CheckpointError(f"Checksum mismatch for {path.name}: the model card records {expected}, the file has "
                              f"{actual}. The weights are corrupt or were modified; restore them or retrain.")
    try:
        model = PointMLP(PointMLPConfig(**card["config"]))
        model.load_state_dict(load_file(str(path)))
    except (SafetensorError, KeyError, TypeError, RuntimeError, OSError) as exc:
        raise CheckpointError(f"Cannot load weights from {path.name}: {exc}") from exc
    return model.eval().requires_grad_(False), card

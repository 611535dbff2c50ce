"""A tiny CLIP: a transformer text encoder trained contrastively against a small image encoder.

Text: token + position embeddings → pre-norm transformer layers (keys at <pad> masked) → final
LayerNorm; the UNet reads all CONTEXT_LENGTH hidden states (SD reads CLIP's last_hidden_state).
The pooled text feature is the hidden state at <eos> (CLIP's), projected. Image: a small CNN on
pixels. Loss (Radford et al. 2021): symmetric cross-entropy of the cosine-similarity logits
s_ij = exp(τ) · ⟨t_i, v_j⟩ / (‖t_i‖ ‖v_j‖), matching caption i with image i. After training the
text encoder is frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .tokenizer import CONTEXT_LENGTH, EOS_ID, PAD_ID, VOCAB


@dataclass(frozen=True)
class ClipConfig:
    width: int = 64  # token embedding width = the UNet's context dimension
    layers: int = 2
    heads: int = 4
    embed_dim: int = 64  # shared text-image embedding
    image_channels: tuple[int, ...] = (32, 64)

    @classmethod
    def from_dict(cls, d: dict) -> "ClipConfig":
        return cls(**{**d, "image_channels": tuple(d["image_channels"])})


class TextEncoder(nn.Module):
    def __init__(self, config: ClipConfig = ClipConfig()):
        super().__init__()
        self.config = config
        w = config.width
        self.token_embedding = nn.Embedding(len(VOCAB), w)
        self.position_embedding = nn.Parameter(torch.randn(CONTEXT_LENGTH, w) * 0.02)
        layer = nn.TransformerEncoderLayer(w, config.heads, 2 * w, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(w)
        self.text_projection = nn.Linear(w, config.embed_dim, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, L, width) of token ids (B, L): the context the UNet cross-attends to."""
        h = self.token_embedding(ids) + self.position_embedding[: ids.shape[1]]  # (B, L, W)
        h = self.transformer(h, src_key_padding_mask=ids == PAD_ID)
        return self.final_norm(h)

    def pooled(self, ids: torch.Tensor, hidden: torch.Tensor | None = None) -> torch.Tensor:
        """Projected hidden state at <eos> (B, embed_dim)."""
        hidden = self(ids) if hidden is None else hidden
        eos = (ids == EOS_ID).float().argmax(1)  # (B,)
        return self.text_projection(hidden[torch.arange(len(ids)), eos])


class ImageEncoder(nn.Module):
    def __init__(self, config: ClipConfig = ClipConfig()):
        super().__init__()
        c1, c2 = config.image_channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=2, padding=1), nn.SiLU(),  # 14×14
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.SiLU(),  # 7×7
            nn.Conv2d(c2, c2, 3, padding=1), nn.SiLU(),
            nn.Flatten(), nn.Linear(c2 * 49, config.embed_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, embed_dim)


class TinyClip(nn.Module):
    def __init__(self, config: ClipConfig = ClipConfig()):
        super().__init__()
        self.config = config
        self.text = TextEncoder(config)
        self.image = ImageEncoder(config)
        self.logit_scale = nn.Parameter(torch.tensor(2.659))  # log(1 / 0.07), CLIP's initial temperature

    def similarity(self, ids: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """s_ij = exp(τ) · cos(t_i, v_j), (B_text, B_image)."""
        t = F.normalize(self.text.pooled(ids), dim=-1)
        v = F.normalize(self.image(x), dim=-1)
        return self.logit_scale.clamp(max=4.6052).exp() * t @ v.T

    def loss(self, ids: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Symmetric InfoNCE: caption i belongs to image i (and, shared equally, to every image whose caption
        is the same token sequence: short captions such as "7" repeat within a batch)."""
        logits = self.similarity(ids, x)  # (B, B)
        same = (ids[:, None, :] == ids[None, :, :]).all(-1).float()  # (B, B)
        target = same / same.sum(1, keepdim=True)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2

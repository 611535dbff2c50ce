"""The latent UNet: ε-prediction on 4×7×7 latents, conditioned on the noise level and on the prompt.

Noise level: the log-SNR λ through ``explorer.model.noise_level_embedding`` (as the digit UNet), so one
checkpoint serves every schedule. Prompt: the frozen text encoder's hidden states c (B, L, D), read
through SD's spatial-transformer block after each residual block:
    h ← h + SelfAttn(LN(h));  h ← h + CrossAttn(LN(h), c);  h ← h + FF(LN(h))   (FF: GEGLU)
    CrossAttn: softmax(Q Kᵀ / √d) V with Q from the latent positions, K, V from the tokens,
so every latent position spreads a total weight of one over the L tokens — the attention maps the tab
shows ("which pixels does 'thick' touch").
Levels: 7×7 and 4×4, one block of each kind where SD has several (stride-2 down; up by nearest-neighbour
resize back to 7×7, with the 7×7 skip):
    stem → [ResBlock, transformer] 7×7 → down → [ResBlock, transformer, ResBlock] 4×4 → up → [ResBlock,
    transformer] 7×7 → head
At 32/64 channels (390k parameters) a pass costs less than the pixel model's (the point of diffusing in latent
space); the earlier layout, 48/96 channels with one more ResBlock and transformer a side, cost 1.5× as much.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..model import ResBlock, noise_level_embedding
from .autoencoder import LATENT_SHAPE


@dataclass(frozen=True)
class LatentUNetConfig:
    in_channels: int = LATENT_SHAPE[0]
    channels: tuple[int, ...] = (32, 64)  # width at 7×7 and 4×4
    context_dim: int = 64  # the text encoder's width
    heads: int = 4
    emb_dim: int = 128  # noise-level embedding width
    groups: int = 8

    @classmethod
    def from_dict(cls, d: dict) -> "LatentUNetConfig":
        return cls(**{**d, "channels": tuple(d["channels"])})


class Attention(nn.Module):
    """Multi-head attention softmax(Q Kᵀ / √d) V; self-attention when ``context`` is None.

    Given a list ``weights_out``, it appends its attention weights averaged over heads, (B, N_query, N_key)
    (passed per call, not kept on the module, so concurrent callers never see each other's maps).
    """

    def __init__(self, dim: int, context_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(context_dim, dim, bias=False)
        self.to_v = nn.Linear(context_dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                weights_out: list | None = None) -> torch.Tensor:
        b, n, d = x.shape
        context = x if context is None else context
        h = self.heads
        q = self.to_q(x).view(b, n, h, d // h).transpose(1, 2)  # (B, h, N, d/h)
        k = self.to_k(context).view(b, -1, h, d // h).transpose(1, 2)  # (B, h, L, d/h)
        v = self.to_v(context).view(b, -1, h, d // h).transpose(1, 2)
        if weights_out is None:  # the same formula in one fused kernel (no (B, h, N, L) weights kept)
            out = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, d/h)
        else:
            weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // h), dim=-1)  # (B, h, N, L)
            weights_out.append(weights.mean(1).detach())  # (B, N, L)
            out = weights @ v
        return self.to_out(out.transpose(1, 2).reshape(b, n, d))  # (B, N, d)


class GEGLU(nn.Module):
    """FF(x) = W₂ (a ⊙ GELU(g)), [a, g] = W₁ x (SD's feed-forward)."""

    def __init__(self, dim: int, mult: int = 2):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * mult * dim)
        self.out = nn.Linear(mult * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, g = self.proj(x).chunk(2, dim=-1)
        return self.out(a * F.gelu(g))


class SpatialTransformer(nn.Module):
    """SD's block: GroupNorm → linear in → [self-attn, cross-attn, feed-forward] → linear out, residual."""

    def __init__(self, c: int, context_dim: int, heads: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c)
        self.proj_in = nn.Linear(c, c)  # on (B, HW, C): SD 2's linear projection, a 1×1 convolution's matrix
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(c), nn.LayerNorm(c), nn.LayerNorm(c)
        self.attn1 = Attention(c, c, heads)
        self.attn2 = Attention(c, context_dim, heads)
        self.ff = GEGLU(c)
        self.proj_out = nn.Linear(c, c)
        nn.init.zeros_(self.proj_out.weight)  # starts as the identity, as SD's zero_module
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor, attention: list | None = None) -> torch.Tensor:
        b, c, hh, ww = x.shape
        h = self.proj_in(self.norm(x).flatten(2).transpose(1, 2))  # (B, HW, C)
        h = h + self.attn1(self.norm1(h))
        h = h + self.attn2(self.norm2(h), context, attention)
        h = h + self.ff(self.norm3(h))
        return x + self.proj_out(h).transpose(1, 2).reshape(b, c, hh, ww)


class LatentUNet(nn.Module):
    """forward(z_t (B, 4, 7, 7), λ (B,), context (B, L, D)) -> ε̂ (B, 4, 7, 7).

    Pass a list as ``attention`` to receive each block's cross-attention weights (see cross_attention_maps).
    """

    def __init__(self, config: LatentUNetConfig = LatentUNetConfig()):
        super().__init__()
        self.config = config
        c0, c1 = config.channels
        e, g, cd, nh = config.emb_dim, config.groups, config.context_dim, config.heads
        self.noise_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.stem = nn.Conv2d(config.in_channels, c0, 3, padding=1)
        self.down0, self.attn_down0 = ResBlock(c0, c0, e, g), SpatialTransformer(c0, cd, nh, g)
        self.downsample = nn.Conv2d(c0, c1, 3, stride=2, padding=1)  # 7×7 -> 4×4
        self.mid1, self.attn_mid, self.mid2 = ResBlock(c1, c1, e, g), SpatialTransformer(c1, cd, nh, g), ResBlock(c1, c1, e, g)
        self.up0, self.attn_up0 = ResBlock(c1 + c0, c0, e, g), SpatialTransformer(c0, cd, nh, g)
        self.head = nn.Sequential(nn.GroupNorm(g, c0), nn.SiLU(), nn.Conv2d(c0, config.in_channels, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, z: torch.Tensor, log_snr: torch.Tensor, context: torch.Tensor,
                attention: list | None = None) -> torch.Tensor:
        emb = F.silu(self.noise_mlp(noise_level_embedding(log_snr, self.config.emb_dim)))  # (B, E)
        h0 = self.attn_down0(self.down0(self.stem(z), emb), context, attention)  # (B, C0, 7, 7)
        h = self.mid2(self.attn_mid(self.mid1(self.downsample(h0), emb), context, attention), emb)  # (B, C1, 4, 4)
        h = F.interpolate(h, size=h0.shape[-2:], mode="nearest")  # (B, C1, 7, 7)
        h = self.attn_up0(self.up0(torch.cat([h, h0], 1), emb), context, attention)  # (B, C0, 7, 7)
        return self.head(h)  # (B, 4, 7, 7)


def cross_attention_maps(attention: list[torch.Tensor]) -> torch.Tensor:
    """The cross-attention weights of one UNet call, averaged over heads and blocks at 7×7: (B, L, 7, 7).

    4×4 maps are resized to 7×7 by nearest neighbour first; each position's weights sum to one over L.
    """
    maps = []
    for w in attention:  # (B, N, L) per block
        b, n, length = w.shape
        side = int(round(math.sqrt(n)))
        m = w.transpose(1, 2).reshape(b, length, side, side)
        maps.append(F.interpolate(m, size=LATENT_SHAPE[1:], mode="nearest") if side != LATENT_SHAPE[1] else m)
    return torch.stack(maps).mean(0)

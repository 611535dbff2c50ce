"""What the Tiny SD tab shows, as compact uint8 arrays (no gradio): one run's frames, sent to the page once.

Per recorded step k and detailed sample i:
  - latent[k, i]: the 4 channels of z_t, mapped from [-LATENT_RANGE, LATENT_RANGE] to 0..255
  - x0_hat[k, i]: the decoded prediction D(ẑ_0 / scaling_factor), 28×28, [-1, 1] → 0..255
  - xt[k, i]: the decoded noisy latent D(z_t / scaling_factor), 28×28
  - attention[k, i, j]: token j's cross-attention map (7×7), scaled by its own maximum to 0..255, and
    share[k, i, j]: the mean weight token j receives over the 49 positions (the shares sum to one)
The page draws exactly these bytes; the API (`tiny_sd_frame`) returns the same bytes for any k.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from ..data import to_uint8
from .pipeline import LatentStep, TinySD, decode

LATENT_RANGE = 3.0  # scaled latents have unit variance: ±3 covers nearly all of them
MAX_DETAILED = 4  # samples whose every step is sent (the rest: final images only)
MAX_FRAMES = 100  # steps recorded per run (DDPM's 1000 steps are thinned evenly)


def latent_to_uint8(z: torch.Tensor) -> np.ndarray:
    """(..., 4, 7, 7) latents → uint8 with z = ±LATENT_RANGE at 0 / 255."""
    u = ((z.clamp(-LATENT_RANGE, LATENT_RANGE) + LATENT_RANGE) / (2 * LATENT_RANGE) * 255.0).round()
    return u.to(torch.uint8).numpy()


def images_to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 1, 28, 28) in [-1, 1] → (B, 28, 28) uint8 (the app's one pixel mapping, explorer.data.to_uint8)."""
    return to_uint8(x[:, 0])


def attention_to_uint8(maps: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(B, L, 7, 7) weights → each map over its own maximum as uint8, and each token's mean share (B, L)."""
    peak = maps.flatten(2).amax(2).clamp_min(1e-12)[..., None, None]  # (B, L, 1, 1)
    return (maps / peak * 255.0).round().to(torch.uint8).numpy(), maps.flatten(2).mean(2).numpy()


def decode_step(model: TinySD, step: LatentStep, n: int) -> torch.Tensor:
    """What the page shows of a step's first n samples in pixels: D(ẑ_0) then D(z_t), (2n, 1, 28, 28)."""
    return decode(model, torch.cat([step.record.x0_hat[:n], step.record.x_t[:n]]))


def frame_indices(num_steps: int) -> list[int]:
    """Which steps are recorded: all when ≤ MAX_FRAMES, else MAX_FRAMES evenly spaced (first and last kept)."""
    if num_steps <= MAX_FRAMES:
        return list(range(num_steps))
    return sorted(set(np.linspace(0, num_steps - 1, MAX_FRAMES).round().astype(int).tolist()))


@dataclass
class RunFrames:
    """The recorded steps of one run (detailed samples only), built up step by step."""

    tokens: list[str]
    unknown: list[bool]
    t: list[int] = field(default_factory=list)
    alpha_bar: list[float] = field(default_factory=list)
    log_snr: list[float] = field(default_factory=list)
    latent: list[np.ndarray] = field(default_factory=list)  # (n, 4, 7, 7) uint8 per frame
    x0_hat: list[np.ndarray] = field(default_factory=list)  # (n, 28, 28)
    xt: list[np.ndarray] = field(default_factory=list)  # (n, 28, 28)
    attention: list[np.ndarray] = field(default_factory=list)  # (n, L_shown, 7, 7)
    share: list[np.ndarray] = field(default_factory=list)  # (n, L_shown)

    def add(self, model: TinySD, step: LatentStep, n: int, decoded: torch.Tensor | None = None) -> None:
        """Record the first n samples of ``step``; ``decoded``: its :func:`decode_step`, if made already."""
        rec = step.record
        z_t = rec.x_t[:n]  # (n, 4, 7, 7)
        decoded = decode_step(model, step, n) if decoded is None else decoded  # (2n, 1, 28, 28)
        self.t.append(rec.t)
        self.alpha_bar.append(rec.alpha_bar_t)
        self.log_snr.append(rec.log_snr)
        self.latent.append(latent_to_uint8(z_t))
        self.x0_hat.append(images_to_uint8(decoded[:n]))
        self.xt.append(images_to_uint8(decoded[n:]))
        length = len(self.tokens)
        if step.attention is None:  # guidance 0: the prompt was not read
            maps, share = np.zeros((n, length, 7, 7), np.uint8), np.zeros((n, length))
        else:
            maps, share = attention_to_uint8(step.attention[:n, :length])
        self.attention.append(maps)
        self.share.append(share)

    def frame(self, k: int, i: int) -> dict:
        """Frame k of detailed sample i as plain lists (what the API returns and the page draws)."""
        return {
            "t": self.t[k], "latent": self.latent[k][i].tolist(), "x0_hat": self.x0_hat[k][i].tolist(),
            "xt": self.xt[k][i].tolist(), "attention": self.attention[k][i].tolist(),
            "share": [round(float(v), 4) for v in self.share[k][i]],
        }

    def scene(self, stage: str, total_steps: int, n: int, start: int = 0) -> dict:
        """What the page needs to draw the recorded frames start, start + 1, … (uint8 arrays as base64); with
        start = 0, every frame. ``frames`` is the count recorded so far, so a page holding ``start`` frames
        appends these and holds them all."""

        def b64(arrays: list[np.ndarray]) -> str:
            return base64.b64encode(np.stack(arrays[start:]).tobytes()).decode("ascii") if arrays[start:] else ""

        return {
            "run": id(self), "stage": stage, "start": start, "frames": len(self.t), "total_steps": total_steps, "n": n,
            "tokens": self.tokens, "unknown": self.unknown,
            "t": self.t[start:], "alpha_bar": [f"{a:.4g}" for a in self.alpha_bar[start:]],
            "log_snr": [f"{v:+.2f}" for v in self.log_snr[start:]],
            "latent": b64(self.latent), "x0_hat": b64(self.x0_hat), "xt": b64(self.xt),
            "attention": b64(self.attention),
            "share": [[[round(float(v), 3) for v in row] for row in s] for s in self.share[start:]],
            # what the <pad> positions receive (SD attends to its padding too)
            "padding_share": [[round(float(1.0 - row.sum()), 3) for row in s] for s in self.share[start:]],
        }


def digit_image_tensor(im: Image.Image) -> tuple[torch.Tensor, bool]:
    """Any image as an MNIST-style digit (1, 1, 28, 28) in [-1, 1], ink bright on dark.

    Converted to greyscale and resized to 28×28; a bright background (border mean above mid-grey) is
    inverted. Returns the tensor and whether it was inverted.
    """
    g = np.asarray(im.convert("L").resize((28, 28), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    inverted = bool(border.mean() > 0.5)
    if inverted:
        g = 1.0 - g
    return torch.from_numpy(g * 2.0 - 1.0)[None, None], inverted

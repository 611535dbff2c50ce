"""The small denoiser: a UNet for 1×28×28 digits that predicts the noise ε.

It is conditioned on the *noise level* — the log-SNR λ = log(ᾱ / (1 - ᾱ)) —
instead of an integer timestep. The marginal q(x_t | x_0) depends only on ᾱ_t,
so one checkpoint serves every schedule and every T the app offers.

It is class-conditional with a null class (index ``NULL_CLASS``) learnt by
label dropout, so classifier-free guidance works:
    ε = ε_uncond + w · (ε_cond − ε_uncond)

Weights load only from ``.safetensors`` (never pickle), after the SHA-256
recorded in the JSON model card beside them has been checked.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .devices import app_device
from .diffusion import classifier_free_guidance

NUM_CLASSES = 10
NULL_CLASS = NUM_CLASSES  # the "no label" token used for unconditional / guided sampling
IMAGE_SHAPE = (1, 28, 28)
LOG_SNR_RANGE = (-20.0, 20.0)  # the model sees λ clamped to this range

CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINT_DIR / "mnist_unet.safetensors"


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 1
    patch: int = 1  # 2 = pixel-unshuffle 28×28 into 4×14×14 first (4× less work at full resolution)
    channels: tuple[int, ...] = (32, 64, 128)  # width at 28×28, 14×14, 7×7
    blocks: tuple[int, ...] = (1, 1, 2)  # residual blocks per level on the way down
    attention: bool = True  # one self-attention block at the lowest resolution
    emb_dim: int = 128  # noise-level + class embedding width
    scale_shift: bool = False  # the embedding scales and shifts the normalised features (FiLM / AdaGN), not only shifts
    groups: int = 8  # GroupNorm groups
    num_classes: int = NUM_CLASSES

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        d = dict(d)
        for key in ("channels", "blocks"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


def noise_level_embedding(log_snr: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of the clamped log-SNR, mapped to [0, 1000] like a classic timestep."""
    lo, hi = LOG_SNR_RANGE
    u = (log_snr.clamp(lo, hi) - lo) / (hi - lo) * 1000.0  # (B,)
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=u.device) / half)
    args = u[:, None].float() * freqs[None]  # (B, half)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)  # (B, dim)


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, twice, with the embedding between; residual.

    The embedding adds a per-channel shift to the first conv's output, or (``scale_shift``, as in Dhariwal &
    Nichol's AdaGN) scales and shifts the second GroupNorm's output: norm(h)·(1 + s) + b.
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, scale_shift: bool = False):
        super().__init__()
        self.scale_shift = scale_shift
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out if scale_shift else c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        e = self.emb(emb)[:, :, None, None]  # (B, C or 2C, 1, 1)
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = torch.addcmul(shift, self.norm2(h), scale + 1)  # one op: 7 % of a sampling run's time was here
        else:
            h = self.norm2(h + e)
        h = self.conv2(F.silu(h))
        return h + self.skip(x)


class Attention(nn.Module):
    """Single-head self-attention over the H×W positions (used at 7×7 only: 49 tokens)."""

    def __init__(self, c: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.out = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)  # (B, HW, C) each
        a = F.scaled_dot_product_attention(q, k, v)  # (B, HW, C)
        return x + self.out(a.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """ε-prediction UNet: forward(x_t, log_snr, labels) -> ε̂, all shapes (B, 1, 28, 28)."""

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = config
        ch, g, e = config.channels, config.groups, config.emb_dim
        self.noise_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.class_emb = nn.Embedding(config.num_classes + 1, e)  # + null class
        c_io = config.in_channels * config.patch**2
        self.unshuffle = nn.PixelUnshuffle(config.patch) if config.patch > 1 else nn.Identity()
        self.shuffle = nn.PixelShuffle(config.patch) if config.patch > 1 else nn.Identity()
        self.stem = nn.Conv2d(c_io, ch[0], 3, padding=1)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skip_channels = []
        c = ch[0]
        for level, (width, n) in enumerate(zip(ch, config.blocks)):
            blocks = nn.ModuleList()
            for _ in range(n):
                blocks.append(ResBlock(c, width, e, g, config.scale_shift))
                c = width
            self.down.append(blocks)
            skip_channels.append(c)
            last = level == len(ch) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.attn = Attention(c, g) if config.attention else nn.Identity()

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(ch))):
            self.up.append(ResBlock(c + skip_channels[level], ch[level], e, g, config.scale_shift))
            c = ch[level]
            self.upsample.append(nn.Identity() if level == 0 else nn.Upsample(scale_factor=2, mode="nearest"))
        self.head = nn.Sequential(nn.GroupNorm(g, c), nn.SiLU(), nn.Conv2d(c, c_io, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: torch.Tensor, log_snr: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        emb = self.noise_mlp(noise_level_embedding(log_snr, self.config.emb_dim)) + self.class_emb(labels)  # (B, E)
        emb = F.silu(emb)
        h = self.stem(self.unshuffle(x))  # (B, C0, 28/p, 28/p)
        skips = []
        for blocks, down in zip(self.down, self.downsample):
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
            h = down(h)
        h = self.attn(h)  # (B, C_last, lowest resolution)
        for block, up, skip in zip(self.up, self.upsample, reversed(skips)):
            h = block(torch.cat([h, skip], dim=1), emb)
            h = up(h)
        return self.shuffle(self.head(h))  # (B, 1, 28, 28)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def one_after_another(f: Callable, g: Callable) -> tuple:
    """(f(), g()) in this thread: how guidance's two passes run unless a ``pair`` is given."""
    return f(), g()


def guided_eps(
    model: UNet, x: torch.Tensor, log_snr: torch.Tensor, labels: torch.Tensor, guidance: float,
    pair: Callable | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """ε̂ of the model under classifier-free guidance (:func:`explorer.diffusion.classifier_free_guidance`).

    ``labels`` may hold ``NULL_CLASS`` (unconditional rows). w = 0 is the
    unconditional model and w = 1 (or all rows unconditional) plain conditional
    sampling, one model call each; any other w makes two calls of the batch, the
    conditional pass and the unconditional one. ``pair(f, g)`` returns ``(f(), g())``
    (default: one after the other); the app's runs pass one that makes the two
    calls side by side on two cores when nothing else runs. The calls are the same
    either way, so a seed gives the same bits whatever the machine's load: oneDNN's
    last bits depend on the batch size and the thread count (measured: one call of
    32 digits differs from four of 8 by ~1e-6). On one core, one call of twice the
    batch was ~8 % faster than the two; side by side on two idle cores they took
    1.01 s for DDIM-50 × 16, against 1.82 s one after the other on one thread and
    1.25 s on two intra-op threads (2-core Xeon, fp32).
    Returns (ε, ε_cond, ε_uncond); the last two are None when not computed.
    """
    if guidance == 0.0:  # w = 0: the unconditional model alone
        return model(x, log_snr, torch.full_like(labels, NULL_CLASS)), None, None
    if guidance == 1.0 or bool((labels == NULL_CLASS).all()):  # w = 1: the conditional model alone
        return model(x, log_snr, labels), None, None
    null = torch.full_like(labels, NULL_CLASS)
    cond, uncond = (lambda: model(x, log_snr, labels)), (lambda: model(x, log_snr, null))
    eps_cond, eps_uncond = (pair or one_after_another)(cond, uncond)
    return classifier_free_guidance(eps_uncond, eps_cond, guidance), eps_cond, eps_uncond


# --- checkpoints -------------------------------------------------------------------------------


class CheckpointError(RuntimeError):
    """The shipped weights are missing, tampered with or unreadable."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def card_path(weights_path: Path) -> Path:
    return Path(weights_path).with_suffix(".json")


def save_checkpoint(model: UNet, path: Path, card: dict) -> dict:
    """Write weights as safetensors and the model card (with the weights' SHA-256) beside them."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt"})
    card = {
        **card,
        "config": asdict(model.config),
        "parameters": count_parameters(model),
        "weights_file": path.name,
        "weights_sha256": sha256_file(path),
        "weights_bytes": path.stat().st_size,
    }
    card_path(path).write_text(json.dumps(card, indent=2) + "\n")
    return card


def load_pretrained(path: Path | str = DEFAULT_CHECKPOINT, verify: bool = True,
                    device: torch.device | str = "cpu") -> tuple[UNet, dict]:
    """Load the EMA weights (safetensors only) and their model card onto ``device``; check the SHA-256 first.

    Raises :class:`CheckpointError` with a message saying what to do when the
    file or card is missing, the checksum differs, or the tensors don't fit.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"Refusing to load {path.name}: only .safetensors weights are accepted.")
    card_file = card_path(path)
    if not path.is_file():
        raise CheckpointError(
            f"Model weights not found at {path}. Train them with `python -m explorer.train --out {path}`."
        )
    if not card_file.is_file():
        raise CheckpointError(f"Model card {card_file.name} is missing beside {path.name}.")
    try:
        card = json.loads(card_file.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"Model card {card_file.name} is unreadable: {exc}") from exc
    if verify:
        expected = card.get("weights_sha256")
        actual = sha256_file(path)
        if expected != actual:
            raise CheckpointError(
                f"Checksum mismatch for {path.name}: the model card records {expected}, the file has {actual}. "
                "The weights are corrupt or were modified; restore them or retrain."
            )
    try:
        state = load_file(str(path))
        model = UNet(UNetConfig.from_dict(card["config"]))
        model.load_state_dict(state)
    except (SafetensorError, KeyError, TypeError, RuntimeError, OSError) as exc:
        raise CheckpointError(f"Cannot load weights from {path.name}: {exc}") from exc
    model.to(device).eval().requires_grad_(False)
    if torch.device(device).type == "cpu":  # channels-last convolutions: guided DDIM-50 × 16 side by side on the
        model.to(memory_format=torch.channels_last)  # 2-core Xeon 1.18 -> 1.07 s (medians of 8, alternating)
    return model, card


def _load_for_app() -> tuple[UNet, dict]:
    """The shipped weights on the app's device (DDPM_DEVICE); a device this machine lacks says so."""
    try:
        device = app_device()
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    return load_pretrained(DEFAULT_CHECKPOINT, device=device)


class ModelProvider:
    """Loads a checkpoint lazily, once per process (thread-safe); a missing checkpoint is retried on the next call.

    The app holds one for the shipped weights; tests pass a loader that returns a tiny random model.
    """

    def __init__(self, loader=None):
        self._loader = loader or _load_for_app
        self._lock = threading.Lock()
        self._loaded = None  # (model, card)

    def get(self) -> tuple[UNet, dict]:
        """(model, card), or CheckpointError with a message that says what to do."""
        with self._lock:
            if self._loaded is None:
                self._loaded = self._loader()
            return self._loaded


DEFAULT_MODEL = ModelProvider()

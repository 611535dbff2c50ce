"""Captions made from the pixels, so every word of a prompt means something checkable.

Attributes of a digit image x (ink bright on dark, pixels p ∈ [0, 1]):
  - ink mass  m = Σ p                         → "thin" / "normal" / "thick" by terciles within its class
  - slant     shear = −μ₁₁ / μ₀₂              → "slanted left" / "upright" / "slanted right" by terciles
    (second central moments with y pointing down: a digit whose top leans right has μ₁₁ < 0)
Terciles are measured on the training split and stored in the model card, so the evaluation
judges samples with the same thresholds.

Captions vary the template and word order ("a thick seven", "7, slanted right", "thin upright 3"),
drop each attribute at random so partial prompts work, and are empty 10 % of the time
(the unconditional branch of classifier-free guidance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
THICKNESS = ("thin", "normal", "thick")
SLANT = ("slanted left", "upright", "slanted right")


@dataclass(frozen=True)
class CaptionConfig:
    empty_share: float = 0.1  # empty prompts: the unconditional branch for guidance
    drop_digit: float = 0.05  # share of captions without the digit
    drop_attribute: float = 0.35  # each of thickness and slant dropped independently
    word_share: float = 0.5  # "seven" rather than "7"


def ink_mass(x: torch.Tensor) -> torch.Tensor:
    """m = Σ p over the pixels, p = (x + 1) / 2 ∈ [0, 1]; x (B, 1, 28, 28) in [-1, 1] → (B,)."""
    return ((x.clamp(-1, 1) + 1) / 2).flatten(1).sum(1)


def shear(x: torch.Tensor) -> torch.Tensor:
    """Slant as the shear of the second moments: −μ₁₁ / μ₀₂ (> 0 leans right); x (B, 1, 28, 28) → (B,)."""
    p = ((x.clamp(-1, 1) + 1) / 2).flatten(1).double()  # (B, 784)
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    xs, ys = xs.flatten().double(), ys.flatten().double()
    mass = p.sum(1).clamp_min(1e-6)  # (B,)
    cx, cy = (p * xs).sum(1) / mass, (p * ys).sum(1) / mass
    dx, dy = xs[None] - cx[:, None], ys[None] - cy[:, None]  # (B, 784)
    mu11 = (p * dx * dy).sum(1) / mass
    mu02 = (p * dy * dy).sum(1) / mass
    return (-mu11 / mu02.clamp_min(1e-6)).float()


def tercile_thresholds(values: np.ndarray, labels: np.ndarray) -> list[list[float]]:
    """Per class c, the 1/3 and 2/3 quantiles of ``values`` among images of class c."""
    return [np.quantile(values[labels == c], [1 / 3, 2 / 3]).tolist() for c in range(10)]


def bin_by_thresholds(values: np.ndarray, labels: np.ndarray, thresholds: list[list[float]]) -> np.ndarray:
    """0, 1, 2 for below the lower tercile, between, above the upper tercile of the image's own class."""
    th = np.asarray(thresholds)[labels]  # (N, 2)
    return (values > th[:, 0]).astype(np.int64) + (values > th[:, 1]).astype(np.int64)


@dataclass(frozen=True)
class Attributes:
    digit: np.ndarray  # (N,) 0..9
    thickness: np.ndarray  # (N,) index into THICKNESS
    slant: np.ndarray  # (N,) index into SLANT


def measure_attributes(x: torch.Tensor, labels: torch.Tensor, thresholds: dict) -> Attributes:
    """Thickness and slant classes of images x (B, 1, 28, 28) with their digit labels."""
    y = labels.numpy()
    return Attributes(
        digit=y,
        thickness=bin_by_thresholds(ink_mass(x).numpy(), y, thresholds["ink_mass"]),
        slant=bin_by_thresholds(shear(x).numpy(), y, thresholds["shear"]),
    )


def fit_thresholds(x: torch.Tensor, labels: torch.Tensor) -> dict:
    """The within-class terciles of ink mass and shear on (training) images."""
    y = labels.numpy()
    return {"ink_mass": tercile_thresholds(ink_mass(x).numpy(), y), "shear": tercile_thresholds(shear(x).numpy(), y)}


def digit_text(d: int, as_word: bool) -> str:
    return DIGIT_WORDS[d] if as_word else str(d)


def make_caption(digit: int, thickness: int, slant: int, rng: np.random.Generator,
                 cfg: CaptionConfig = CaptionConfig()) -> str:
    """One random caption of an image with these attributes (may drop any of them; 10 % empty)."""
    if rng.random() < cfg.empty_share:
        return ""
    d = digit_text(digit, rng.random() < cfg.word_share) if rng.random() >= cfg.drop_digit else None
    th = THICKNESS[thickness] if rng.random() >= cfg.drop_attribute else None
    sl = SLANT[slant] if rng.random() >= cfg.drop_attribute else None
    if d is None and th is None and sl is None:
        d = digit_text(digit, rng.random() < cfg.word_share)
    noun = d if d is not None else rng.choice(["digit", "number"])
    templates = []
    adjectives = " ".join(w for w in (th, sl if sl == "upright" else None) if w)
    trailing_slant = sl if sl not in (None, "upright") else None
    # adjectives before the digit, slant after it: "a thick seven, slanted right"
    head = " ".join(w for w in (adjectives, noun) if w)
    templates.append(f"{head}, {trailing_slant}" if trailing_slant else head)
    templates.append(("an " if head[0] in "aeiou8" else "a ") + templates[0])
    # attributes after the digit: "7, thin, slanted right"
    tail = ", ".join(w for w in (th, sl) if w)
    templates.append(f"{noun}, {tail}" if tail else noun)
    templates.append(f"a handwritten {head}" + (f" {trailing_slant}" if trailing_slant else ""))
    # slant first: "slanted right thin 3", "upright thin 3"
    templates.append(" ".join(w for w in (sl, th, noun) if w))
    if th:
        templates.append(f"{noun} written {th}" + (f", {sl}" if sl else ""))
    if d is not None:
        templates.append(f"the digit {d}" + (f", {tail}" if tail else ""))
    return str(rng.choice(templates))


def full_caption(digit: int, thickness: int, slant: int, as_word: bool = False) -> str:
    """The canonical caption with every attribute: "thick 7, slanted right"."""
    noun = digit_text(digit, as_word)
    return f"{THICKNESS[thickness]} {noun}, {SLANT[slant]}"

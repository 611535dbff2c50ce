"""Text to digits with Tiny SD: ``python -m explorer.sample --model tiny-sd --prompt "a thick 7" --n 20 --out grid.png``.

Writes the decoded samples as a PNG grid and, with ``--npy``, as float32 (n, 28, 28) in [0, 1], ink bright
on dark like MNIST. The same seed gives the same samples. An empty prompt samples unconditionally;
``--negative-prompt`` takes the empty prompt's place in classifier-free guidance.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..model import CheckpointError
from ..render import grid_image
from ..samplers import SAMPLERS
from ..schedules import SCHEDULE_NAMES
from .checkpoint import DEFAULT_CARD
from .pipeline import DEFAULT_GUIDANCE, DEFAULT_SCHEDULE, PromptSettings, load_tiny_sd, sample_images
from .tokenizer import tokenize

MAX_SAMPLES = 1000  # per run, as the digit model's CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m explorer.sample --model tiny-sd", description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=("tiny-sd",), default="tiny-sd")
    p.add_argument("--prompt", type=str, required=True, help='e.g. "a thick 7" ("" = unconditional)')
    p.add_argument("--negative-prompt", type=str, default="", help="replaces the empty prompt in guidance")
    p.add_argument("--n", type=int, default=16, help="samples (default %(default)s)")
    p.add_argument("--schedule", choices=SCHEDULE_NAMES, default=DEFAULT_SCHEDULE)
    p.add_argument("--sampler", choices=SAMPLERS, default="ddim")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (default %(default)s)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta in [0, 1] (default %(default)s)")
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE, help="guidance w (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CARD, help="Tiny SD model card (.json)")
    p.add_argument("--out", type=Path, required=True, help="PNG grid to write")
    p.add_argument("--npy", type=Path, help="also save the samples as float32 (n, 28, 28) in [0, 1]")
    return p


def main(argv=None) -> None:
    p = build_parser()
    a = p.parse_args(argv)
    if a.out.suffix.lower() != ".png":
        p.error("--out must be a .png file")
    try:
        settings = PromptSettings.checked(a.prompt, a.negative_prompt, a.guidance, a.seed, a.sampler, a.steps, a.eta,
                                          a.schedule, a.n, max_samples=MAX_SAMPLES)
        model = load_tiny_sd(a.checkpoint)
    except (ValueError, CheckpointError) as exc:
        p.error(str(exc))
    for label, text in (("prompt", a.prompt), ("negative prompt", a.negative_prompt)):
        unknown = tokenize(text).unknown
        if unknown:
            print(f"note: the {label} has words the text encoder does not know (read as <unk>): "
                  + ", ".join(unknown), file=sys.stderr)
    x = sample_images(model, settings)  # (n, 1, 28, 28) in [-1, 1]
    images = ((x + 1) / 2).squeeze(1)  # (n, 28, 28) in [0, 1]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    grid_image(x).save(a.out)
    if a.npy:
        np.save(a.npy, images.numpy().astype(np.float32))
    print(f"wrote {a.n} samples to {a.out}" + (f" and {a.npy}" if a.npy else ""), file=sys.stderr)

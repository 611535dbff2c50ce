"""Draw digits with the pretrained model: ``python -m explorer.sample --label 3 --n 16 --out grid.png``.

``--label all`` draws N of each digit in label order (one row per digit);
``--label none`` samples unconditionally. ``--npy`` saves float32 (count, 28, 28)
in [0, 1], ink bright on dark like MNIST. The same seed gives the same samples.
``--model tiny-sd --prompt "a thick 7"`` draws from Tiny SD instead (explorer/latent/sample.py).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

from .devices import DEVICES, resolve_device
from .model import DEFAULT_CHECKPOINT, NULL_CLASS, CheckpointError, load_pretrained
from . import checks
from .render import grid_image
from .samplers import DEFAULT_SPACING, PRECISIONS, SAMPLERS, SPACINGS, model_eps_fn, sample
from .schedules import DEFAULT_T, SCHEDULE_NAMES, make_schedule

MAX_SAMPLES = 1000  # per run, to keep one command's memory and time bounded
MODELS = ("digits", "tiny-sd")


def parse_label(text: str) -> str | int:
    if text in ("all", "none"):
        return text
    if text.isdigit() and 0 <= int(text) <= 9:
        return int(text)
    raise argparse.ArgumentTypeError(f"--label takes a digit 0-9, 'all' or 'none', got {text!r}")


def _model_choice(argv: list[str]) -> str:
    """--model digits (the class-conditional pixel UNet, default) or tiny-sd (explorer.latent, text prompts)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model", choices=MODELS, default="digits")
    return pre.parse_known_args(argv)[0].model


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m explorer.sample", description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=MODELS, default="digits",
                   help="digits (default) or tiny-sd: see python -m explorer.sample --model tiny-sd --help")
    p.add_argument("--label", type=parse_label, default="all", help="0-9, all or none (default %(default)s)")
    p.add_argument("--n", type=int, default=8, help="samples (per digit with --label all; default %(default)s)")
    p.add_argument("--schedule", choices=SCHEDULE_NAMES, default="cosine")
    p.add_argument("--T", type=int, default=DEFAULT_T, help="schedule length (default %(default)s)")
    p.add_argument("--sampler", choices=SAMPLERS, default="ddim")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (default %(default)s)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta in [0, 1] (default %(default)s)")
    p.add_argument("--spacing", choices=SPACINGS, default=DEFAULT_SPACING)
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance w (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="network arithmetic: auto = bfloat16 where the CPU runs it natively (default)")
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="where the network runs: auto = CUDA when available, else CPU (default %(default)s)")
    p.add_argument("--out", type=Path, required=True, help="PNG grid to write")
    p.add_argument("--npy", type=Path, help="also save the samples as float32 (count, 28, 28) in [0, 1]")
    return p


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if _model_choice(argv) == "tiny-sd":
        from .latent.sample import main as sample_tiny_sd

        return sample_tiny_sd(argv)
    p = build_parser()
    a = p.parse_args(argv)
    count = a.n * 10 if a.label == "all" else a.n
    if a.out.suffix.lower() != ".png":
        p.error("--out must be a .png file")
    try:
        checks.whole_number("--n (samples in all)", count, 1, MAX_SAMPLES)
        checks.finite_number("--guidance", a.guidance, -20.0, 20.0)
        s = make_schedule(a.schedule, a.T)
        model, _ = load_pretrained(a.checkpoint, device=resolve_device(a.device))
    except (ValueError, CheckpointError) as exc:
        p.error(str(exc))

    if a.label == "all":
        labels = torch.arange(10).repeat_interleave(a.n)  # label order: n zeros, n ones, ...
    else:
        labels = torch.full((count,), NULL_CLASS if a.label == "none" else a.label)
    try:
        x = sample(model_eps_fn(model, s, labels, a.guidance, a.precision), s, (count, 1, 28, 28), seed=a.seed,
                   sampler=a.sampler, steps=a.steps, eta=a.eta, spacing=a.spacing)
    except ValueError as exc:
        p.error(str(exc))

    images = ((x.clamp(-1, 1) + 1) / 2).squeeze(1)  # (count, 28, 28) in [0, 1]
    ncols = a.n if a.label == "all" else math.ceil(math.sqrt(count))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    grid_image(x.clamp(-1, 1), ncols).save(a.out)
    if a.npy:
        np.save(a.npy, images.numpy().astype(np.float32))
    print(f"wrote {count} samples to {a.out}" + (f" and {a.npy}" if a.npy else ""), file=sys.stderr)


if __name__ == "__main__":
    main()

"""Train the 2-D lab's MLP denoiser: ``python -m explorer.lab2d.train --preset all`` (shipped weights), or, in
the app, ``train_stream`` for a preset or a drawing within a time budget (≤ 15 s), yielding progress as it goes.

The loop is the digit model's (explorer.train), on points: a batch of x_0 and labels (10 % dropped to the null
class), noise levels λ from the schedules the app offers (``sample_log_snr``), ε-prediction MSE
(``diffusion_loss``: points travel as (B, 2, 1, 1), a two-channel 1×1 image), AdamW, EMA weights.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .. import checks
from ..model import NULL_CLASS, count_parameters, save_checkpoint
from ..train import diffusion_loss, ema_update, lr_at, optimizer_step, sample_log_snr
from .data import PRESETS, PointCloud, make_points
from .model import LAB2D_CHECKPOINT_DIR, PointMLP, PointMLPConfig, checkpoint_path

TRAIN_POINTS = 20_000  # x_0 drawn once per run (seed 0); held-out data for the benchmark use other seeds
SESSION_SECONDS = 15.0  # "train it yourself" stops after this wall time


@dataclass
class TrainConfig:
    steps: int = 4000
    batch_size: int = 512
    lr: float = 2e-3  # peak AdamW learning rate
    warmup: int = 100  # linear warm-up steps, then cosine decay to lr/10 (explorer.train.lr_at)
    ema_decay: float = 0.995
    label_dropout: float = 0.1  # share of labels replaced by the null class (for guidance)
    uniform_share: float = 0.3  # share of noise levels drawn uniformly in λ rather than from the schedules
    seed: int = 0
    time_limit_s: float = 0.0  # 0 = run all steps; else stop after this wall time
    report_every_s: float = 1.0  # train_stream yields progress at about this interval


@dataclass
class TrainProgress:
    step: int
    steps: int
    elapsed_s: float
    losses: list  # mean loss of each reporting interval
    model: PointMLP  # the EMA weights so far (evaluation mode)
    done: bool


def train_stream(cloud: PointCloud, cfg: TrainConfig = TrainConfig(),
                 model_cfg: PointMLPConfig = PointMLPConfig()) -> Iterator[TrainProgress]:
    """Train on ``cloud`` (its labels, if any, for guidance); yield progress every ``report_every_s`` and at the end."""
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    x_train = cloud.points  # (N, 2)
    y_train = cloud.labels if cloud.labels is not None else torch.full((len(x_train),), NULL_CLASS)
    model, ema = PointMLP(model_cfg), PointMLP(model_cfg)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    start = time.perf_counter()
    last_report, window, losses = start, [], []
    for step in range(cfg.steps):
        # 1. batch, with label dropout to the null class
        idx = torch.randint(len(x_train), (cfg.batch_size,), generator=gen)
        x0, labels = x_train[idx], y_train[idx].clone()  # (B, 2), (B,)
        labels[torch.rand(cfg.batch_size, generator=gen) < cfg.label_dropout] = NULL_CLASS
        # 2. noise levels and noise
        log_snr = sample_log_snr(cfg.batch_size, cfg.uniform_share, gen)  # (B,)
        noise = torch.randn(x0.shape, generator=gen)  # (B, 2)
        # 3. loss on (B, 2, 1, 1): diffusion_loss broadcasts ᾱ over image axes
        loss = diffusion_loss(model, x0[:, :, None, None], labels, log_snr, noise[:, :, None, None])
        # 4. update and EMA
        optimizer_step(opt, loss, lr_at(step, cfg))
        ema_update(ema, model, step, cfg.ema_decay)
        window.append(loss.item())
        now = time.perf_counter()
        out_of_time = cfg.time_limit_s and now - start >= cfg.time_limit_s
        last = step == cfg.steps - 1 or out_of_time
        if last or now - last_report >= cfg.report_every_s:
            losses.append(float(np.mean(window)))
            window, last_report = [], now
            yield TrainProgress(step + 1, cfg.steps, now - start, list(losses), ema, bool(last))
        if last:
            return


def session_config(seed: int = 0, seconds: float = SESSION_SECONDS) -> TrainConfig:
    """"Train it yourself": as many steps as fit in ``seconds`` (≤ SESSION_SECONDS) on one thread."""
    return TrainConfig(steps=100_000, seed=seed, time_limit_s=min(seconds, SESSION_SECONDS), report_every_s=0.75)


def train_preset(preset: str, cfg: TrainConfig, out_dir: Path = LAB2D_CHECKPOINT_DIR) -> dict:
    """Train on TRAIN_POINTS of a preset and write <out_dir>/<preset>.safetensors + card; returns the card."""
    cloud = make_points(preset, TRAIN_POINTS, seed=0)
    final = None
    for final in train_stream(cloud, cfg):
        pass
    card = {
        "name": f"DDPM Explorer 2-D lab MLP for '{preset}' (ε-prediction, log-SNR conditioned, class + null class)",
        "weights": "EMA",
        "preset": preset,
        "parameters_count": count_parameters(final.model),
        "data": {"source": f"explorer.lab2d.data.make_points('{preset}', {TRAIN_POINTS}, seed=0)",
                 "train_points": TRAIN_POINTS, "labelled": cloud.labels is not None},
        "training": {**asdict(cfg), "steps_done": final.step, "wall_time_s": round(final.elapsed_s, 1),
                     "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU thread(s), "
                                 f"torch {torch.__version__}",
                     "command": "python -m explorer.lab2d.train " + " ".join(sys.argv[1:]),
                     "final_loss": final.losses[-1]},
    }
    return save_checkpoint(final.model, Path(out_dir) / checkpoint_path(preset).name, card)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="all", help=f"one of {', '.join(PRESETS)}, or 'all'")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=LAB2D_CHECKPOINT_DIR, help="where the weights and cards go")
    args = parser.parse_args(argv)
    try:
        presets = PRESETS if args.preset == "all" else (checks.one_of("preset", args.preset, PRESETS),)
        steps = checks.whole_number("--steps", args.steps, 1, 1_000_000)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)  # a 66k-parameter MLP: more threads only add overhead
    for preset in presets:
        card = train_preset(preset, TrainConfig(steps=steps, seed=args.seed, ema_decay=0.999), args.out_dir)
        t = card["training"]
        print(f"{preset}: {t['steps_done']} steps in {t['wall_time_s']} s, final loss {t['final_loss']:.4f}, "
              f"{card['weights_bytes']:,} bytes", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

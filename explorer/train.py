"""Train the digit denoiser on CPU: ``python -m explorer.train [--steps N ...]``.

One flat loop (nanoGPT style):
  1. draw a batch of training digits x_0 and labels; drop 10% of labels to the null class
  2. draw a noise level λ (log-SNR) from the levels the app's schedules reach
  3. x_t = sqrt(ᾱ) x_0 + sqrt(1 - ᾱ) ε with ᾱ = sigmoid(λ); loss = ||ε̂(x_t, λ, y) - ε||²
  4. AdamW step, EMA update; checkpoint (safetensors + model card) every few hundred steps

Deterministic for a seed (same data order, noise and initialisation).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .devices import DEVICES, resolve_device
from .mnist import DATA_SOURCE, HOLDOUT_PER_CLASS, SPLIT_SEED, load_mnist_split
from .model import DEFAULT_CHECKPOINT, LOG_SNR_RANGE, NULL_CLASS, UNet, UNetConfig, count_parameters, save_checkpoint
from .schedules import make_schedule

# The noise levels the app offers: every family at T = 1000, with and without zero terminal SNR.
TRAIN_SCHEDULES = [
    make_schedule(name, 1000, zero_terminal_snr=z)
    for name in ("linear", "scaled_linear", "cosine", "sigmoid")
    for z in (False, True)
]
SCHEDULE_LOG_SNR = np.concatenate([s.log_snr[1:] for s in TRAIN_SCHEDULES])  # pooled λ of all t >= 1


@dataclass
class TrainConfig:
    steps: int = 18_000
    batch_size: int = 64
    lr: float = 2e-3  # peak AdamW learning rate
    warmup: int = 200  # linear warm-up steps, then cosine decay to lr/10
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    label_dropout: float = 0.1  # share of labels replaced by the null class (for guidance)
    uniform_share: float = 0.3  # share of noise levels drawn uniformly in λ rather than from the schedules
    min_snr_gamma: float = 1.0  # > 0: Min-SNR-γ loss weight min(SNR, γ) / SNR (Hang et al. 2023); 0: plain ε-MSE
    seed: int = 0
    threads: int = 2
    save_every: int = 500
    train_subset: int = 0  # 0 = the whole training split; else its first N digits (for quick tests)
    device: str = "cpu"  # where the network trains (explorer.devices); data order and noise are drawn on the CPU


def sample_log_snr(n: int, uniform_share: float, gen: torch.Generator) -> torch.Tensor:
    """λ for a batch: mostly the pooled levels of the offered schedules (t uniform), some uniform in λ."""
    pick = torch.randint(len(SCHEDULE_LOG_SNR), (n,), generator=gen)
    lam = torch.from_numpy(SCHEDULE_LOG_SNR)[pick].float()  # may hold -inf (zero terminal SNR)
    lo, hi = LOG_SNR_RANGE
    uniform = lo + (hi - lo) * torch.rand(n, generator=gen)
    use_uniform = torch.rand(n, generator=gen) < uniform_share
    return torch.where(use_uniform, uniform, lam)


def min_snr_weight(log_snr: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-γ weight of the ε-MSE, min(SNR, γ) / SNR = min(1, γ·e^(−λ)) (Hang et al. 2023): steps with
    SNR > γ count less, so the low-SNR steps that decide what the digit is get more of the model's effort."""
    return torch.clamp(gamma * torch.exp(-log_snr), max=1.0)


def diffusion_loss(
    model: UNet, x0: torch.Tensor, labels: torch.Tensor, log_snr: torch.Tensor, noise: torch.Tensor,
    min_snr_gamma: float = 0.0,
) -> torch.Tensor:
    """ε-prediction MSE at noise level λ: x_t = sqrt(ᾱ) x_0 + sqrt(1-ᾱ) ε, ᾱ = sigmoid(λ);
    weighted per digit by :func:`min_snr_weight` when ``min_snr_gamma`` > 0."""
    ab = torch.sigmoid(log_snr).view(-1, 1, 1, 1)  # (B, 1, 1, 1); λ = -inf gives ᾱ = 0 exactly
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    per_digit = (model(x_t, log_snr, labels) - noise).pow(2).mean(dim=(1, 2, 3))  # (B,)
    if min_snr_gamma > 0:
        per_digit = min_snr_weight(log_snr, min_snr_gamma) * per_digit
    return per_digit.mean()


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, lr: float) -> None:
    """One optimizer step on ``loss`` at learning rate ``lr``."""
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float) -> None:
    """θ_ema ← d·θ_ema + (1 − d)·θ with d = min(decay, (1 + step) / (10 + step)).

    The step-dependent d is a short warm-up, so the average is not held back by the random initial weights.
    """
    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():  # one multi-tensor call, as timm's ModelEmaV3 (one kernel launch per parameter on a GPU)
        torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - d)


class LossCurve:
    """The loss curve of a run: the mean of every ``window`` steps' losses, appended to ``losses`` (kept on
    resume), with the progress bar that shows the last loss and the last mean."""

    def __init__(self, losses: list, window: int, total: int, step: int, progress: bool, desc: str | None = None):
        from tqdm import tqdm

        self.losses, self.size, self.window = losses, window, []
        self.bar = tqdm(total=total, initial=step, desc=desc, disable=not progress, dynamic_ncols=True,
                        file=sys.stderr)

    def add(self, loss: float) -> None:
        self.window.append(loss)
        if len(self.window) == self.size:
            self.losses.append(float(np.mean(self.window)))
            self.window = []
        self.bar.set_postfix(loss=f"{loss:.4f}", avg=f"{self.losses[-1]:.4f}" if self.losses else "-")
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _state_path(out: Path) -> Path:
    return out.with_name(out.stem + ".trainstate.safetensors")


def save_train_state(out: Path, step: int, model, ema, opt, gen: torch.Generator, elapsed: float, losses) -> None:
    """Everything needed to resume, as safetensors (tensors) + JSON (counters): no pickle."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.contiguous().cpu() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.contiguous().cpu() for k, v in ema.state_dict().items()})
    for i, p in enumerate(model.parameters()):
        st = opt.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq", "step"):
            if key in st:
                tensors[f"opt.{i}.{key}"] = torch.as_tensor(st[key]).contiguous().cpu()
    tensors["rng.gen"] = gen.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(_state_path(out)))
    _state_path(out).with_suffix(".json").write_text(json.dumps({"step": step, "elapsed": elapsed, "losses": losses}))


def load_train_state(out: Path, model, ema, opt, gen: torch.Generator) -> tuple[int, float, list]:
    from safetensors.torch import load_file

    tensors = load_file(str(_state_path(out)))
    meta = json.loads(_state_path(out).with_suffix(".json").read_text())
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    for i, p in enumerate(model.parameters()):
        if f"opt.{i}.exp_avg" in tensors:
            opt.state[p] = {"step": tensors[f"opt.{i}.step"],  # AdamW keeps its step count on the CPU
                            **{key: tensors[f"opt.{i}.{key}"].to(p.device) for key in ("exp_avg", "exp_avg_sq")}}
    gen.set_state(tensors["rng.gen"])
    torch.set_rng_state(tensors["rng.torch"])
    return meta["step"], meta["elapsed"], meta["losses"]


def train(cfg: TrainConfig, model_cfg: UNetConfig, out: Path, resume: bool = False, progress: bool = True) -> dict:
    """Run the training loop; writes ``out`` (EMA weights) and its model card. Returns the card."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    split = load_mnist_split()
    x_train, y_train = split.train_x, split.train_y
    if cfg.train_subset:
        x_train, y_train = x_train[: cfg.train_subset], y_train[: cfg.train_subset]

    device = resolve_device(cfg.device)
    model = UNet(model_cfg).to(device)
    ema = UNet(model_cfg).to(device)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    step, elapsed, losses = 0, 0.0, []
    if resume and _state_path(out).is_file():
        step, elapsed, losses = load_train_state(out, model, ema, opt, gen)
    start = time.perf_counter() - elapsed
    curve = LossCurve(losses, 100, cfg.steps, step, progress)
    while step < cfg.steps:
        # 1. batch, with label dropout to the null class
        idx = torch.randint(len(x_train), (cfg.batch_size,), generator=gen)
        x0, labels = x_train[idx], y_train[idx].clone()
        labels[torch.rand(cfg.batch_size, generator=gen) < cfg.label_dropout] = NULL_CLASS
        # 2. noise levels and noise
        log_snr = sample_log_snr(cfg.batch_size, cfg.uniform_share, gen)
        noise = torch.randn(x0.shape, generator=gen)
        # 3. loss (drawn on the CPU above, so a seed gives the same batches on every device)
        loss = diffusion_loss(model, *(v.to(device) for v in (x0, labels, log_snr, noise)), cfg.min_snr_gamma)
        # 4. update and EMA
        optimizer_step(opt, loss, lr_at(step, cfg))
        ema_update(ema, model, step, cfg.ema_decay)
        step += 1
        curve.add(loss.item())
        if step % cfg.save_every == 0 or step == cfg.steps:
            elapsed = time.perf_counter() - start
            card = _card(cfg, model_cfg, ema, step, elapsed, losses, len(x_train))
            save_checkpoint(ema, out, card)
            save_train_state(out, step, model, ema, opt, gen, elapsed, losses)
    curve.close()
    return json.loads(out.with_suffix(".json").read_text())


def _card(cfg: TrainConfig, model_cfg: UNetConfig, ema, step, elapsed, losses, n_train) -> dict:
    return {
        "name": "DDPM Explorer MNIST UNet (ε-prediction, log-SNR conditioned, class-conditional + null class)",
        "weights": "EMA",
        "architecture": "UNet: pixel-unshuffle stem, ResBlocks with GroupNorm/SiLU"
        + (" and scale-shift (AdaGN) conditioning" if model_cfg.scale_shift else "") + ", self-attention at 7×7",
        "loss": f"ε-MSE, Min-SNR-{cfg.min_snr_gamma:g} weighted" if cfg.min_snr_gamma > 0 else "ε-MSE",
        "parameters_count": count_parameters(ema),
        "data": {
            "source": DATA_SOURCE,
            "train_digits": n_train,
            "held_out_digits": HOLDOUT_PER_CLASS * 10,
            "split": f"stratified, {HOLDOUT_PER_CLASS} per class held out, numpy seed {SPLIT_SEED}",
        },
        "training": {
            **asdict(cfg),
            "steps_done": step,
            "wall_time_s": round(elapsed, 1),
            "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads, "
            f"device {cfg.device}, torch {torch.__version__}",
            "command": "python -m explorer.train " + " ".join(sys.argv[1:]),
            "final_loss_avg100": losses[-1] if losses else None,
            "loss_curve_avg100": [round(x, 5) for x in losses],
            "noise_levels": "pooled log-SNR of linear, scaled_linear, cosine, sigmoid (T=1000, with and without "
            f"zero terminal SNR), {cfg.uniform_share:.0%} uniform in {list(LOG_SNR_RANGE)}",
        },
    }


def parse_args(argv=None) -> tuple[TrainConfig, UNetConfig, Path, bool, bool]:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m explorer.train", description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=d.steps, help="optimizer steps (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--save-every", type=int, default=d.save_every)
    p.add_argument("--train-subset", type=int, default=0, help="train on the first N training digits only")
    p.add_argument("--channels", type=str, default="32,64", help="UNet widths per level, e.g. 32,64")
    p.add_argument("--blocks", type=str, default="1,2", help="residual blocks per level, e.g. 1,2")
    p.add_argument("--patch", type=int, default=2, choices=(1, 2))
    p.add_argument("--scale-shift", action=argparse.BooleanOptionalAction, default=True,
                   help="the embedding scales and shifts normalised features (AdaGN)")
    p.add_argument("--label-dropout", type=float, default=d.label_dropout)
    p.add_argument("--uniform-share", type=float, default=d.uniform_share)
    p.add_argument("--min-snr-gamma", type=float, default=d.min_snr_gamma,
                   help="Min-SNR-γ loss weighting; 0 = plain ε-MSE (default %(default)s)")
    p.add_argument("--ema-decay", type=float, default=d.ema_decay)
    p.add_argument("--out", type=Path, default=DEFAULT_CHECKPOINT, help="output .safetensors path")
    p.add_argument("--resume", action="store_true", help="continue from the training state saved beside --out")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="where the network trains: auto = CUDA when available, else CPU (default %(default)s)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    for name in ("steps", "batch_size", "threads", "save_every"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if not (a.lr > 0 and math.isfinite(a.lr)):
        p.error("--lr must be a positive number")
    for name in ("label_dropout", "ema_decay"):
        if not 0 <= getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be in [0, 1)")
    if not 0 <= a.uniform_share <= 1:
        p.error("--uniform-share must be in [0, 1]")
    if not (a.min_snr_gamma >= 0 and math.isfinite(a.min_snr_gamma)):
        p.error("--min-snr-gamma must be a number >= 0")
    if a.out.suffix != ".safetensors":
        p.error("--out must end in .safetensors")
    try:
        channels = tuple(int(c) for c in a.channels.split(","))
        blocks = tuple(int(b) for b in a.blocks.split(","))
    except ValueError:
        p.error("--channels and --blocks take comma-separated integers")
    if len(channels) != len(blocks) or min(channels) < 8 or min(blocks) < 1 or any(c % 8 for c in channels):
        p.error("--channels (multiples of 8) and --blocks (>= 1) need the same number of levels")
    try:
        device = resolve_device(a.device).type
    except ValueError as exc:
        p.error(str(exc))
    cfg = TrainConfig(
        steps=a.steps, batch_size=a.batch_size, lr=a.lr, seed=a.seed, threads=a.threads,
        save_every=a.save_every, train_subset=a.train_subset, device=device, label_dropout=a.label_dropout,
        uniform_share=a.uniform_share, min_snr_gamma=a.min_snr_gamma, ema_decay=a.ema_decay,
    )
    model_cfg = UNetConfig(patch=a.patch, channels=channels, blocks=blocks, scale_shift=a.scale_shift)
    return cfg, model_cfg, a.out, a.resume, not a.no_progress


def main(argv=None) -> None:
    cfg, model_cfg, out, resume, progress = parse_args(argv)
    card = train(cfg, model_cfg, out, resume=resume, progress=progress)
    print(json.dumps({"out": str(out), "steps": card["training"]["steps_done"],
                      "wall_time_s": card["training"]["wall_time_s"],
                      "final_loss": card["training"]["final_loss_avg100"]}))


if __name__ == "__main__":
    main()

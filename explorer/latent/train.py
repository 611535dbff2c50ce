"""Train Tiny SD on CPU, the three parts in order: ``python -m explorer.latent.train``.

  1. autoencoder: BCE + β·KL on the training digits; then scaling_factor = 1 / std(z) over them
  2. clip: text encoder + image encoder, contrastive on (image, caption) pairs; then frozen
  3. unet: ε-prediction on scaled latents z₀ = scaling_factor · z, z ~ q(z | x), prompted by the frozen
     text encoder with captions drawn afresh every step (10 % empty, for guidance); noise levels λ as the
     digit model's (``explorer.train.sample_log_snr``), the same loss (``explorer.train.diffusion_loss``)

Each part saves its weights and its entry in the one model card every ``save_every`` steps, with a
training state beside it (safetensors + JSON, no pickle), so ``--resume`` continues where it stopped and a
finished part is skipped. Deterministic for a seed.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..mnist import DATA_SOURCE, HOLDOUT_PER_CLASS, SPLIT_SEED, load_mnist_split
from ..train import (
    LossCurve, diffusion_loss, ema_update, load_train_state, lr_at, optimizer_step, sample_log_snr, save_train_state,
)
from .autoencoder import Autoencoder, AutoencoderConfig
from .captions import CaptionConfig, fit_thresholds, make_caption, measure_attributes
from .checkpoint import DEFAULT_CARD, part_path, read_card, save_part, write_card
from .text_encoder import ClipConfig, TinyClip
from .tokenizer import token_ids
from .unet import LatentUNet, LatentUNetConfig


@dataclass(frozen=True)
class StageConfig:
    steps: int
    batch_size: int
    lr: float
    warmup: int = 100  # linear warm-up, then cosine decay to lr / 10 (explorer.train.lr_at)
    ema_decay: float = 0.999


@dataclass(frozen=True)
class TinySDTrainConfig:
    autoencoder: StageConfig = StageConfig(steps=2000, batch_size=64, lr=2e-3)
    clip: StageConfig = StageConfig(steps=800, batch_size=256, lr=2e-3)
    unet: StageConfig = StageConfig(steps=10000, batch_size=64, lr=1e-3, warmup=200)
    uniform_share: float = 0.3  # share of noise levels drawn uniformly in λ (as the digit model)
    seed: int = 0
    threads: int = 1
    save_every: int = 250
    train_subset: int = 0  # 0 = the whole training split


def run_stage(name: str, model: torch.nn.Module, loss_fn, cfg: StageConfig, card_file: Path, save_every: int,
              extra_card, resume: bool, progress: bool, gen: torch.Generator) -> torch.nn.Module:
    """Train ``model`` with AdamW + EMA on ``loss_fn(model, step) -> loss``; returns the EMA model.

    A part already trained to ``cfg.steps`` (per the card) is loaded from its training state and skipped.
    """
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    state_out = part_path(card_file, name)
    step, elapsed, losses = 0, 0.0, []
    if resume and state_out.with_name(state_out.stem + ".trainstate.safetensors").is_file():
        step, elapsed, losses = load_train_state(state_out, model, ema, opt, gen)
    start = time.perf_counter() - elapsed
    curve = LossCurve(losses, 50, cfg.steps, step, progress, desc=name)
    while step < cfg.steps:
        loss = loss_fn(model, step)
        optimizer_step(opt, loss, lr_at(step, cfg))
        ema_update(ema, model, step, cfg.ema_decay)
        step += 1
        curve.add(loss.item())
        if step % save_every == 0 or step == cfg.steps:
            elapsed = time.perf_counter() - start
            save_part(card_file, name, ema, {
                "training": {**asdict(cfg), "steps_done": step, "wall_time_s": round(elapsed, 1),
                             "final_loss_avg50": losses[-1] if losses else None,
                             "loss_curve_avg50": [round(x, 5) for x in losses]},
                **extra_card(),
            })
            save_train_state(state_out, step, model, ema, opt, gen, elapsed, losses)
    curve.close()
    return ema.eval()


@torch.no_grad()
def latent_statistics(ae: Autoencoder, x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Posterior means and stds of x (N, 4, 7, 7) and scaling_factor = 1 / std of sampled latents."""
    means, stds = [], []
    for i in range(0, len(x), 500):
        q = ae.encode(x[i : i + 500])
        means.append(q.mean)
        stds.append(q.std)
    mean, std = torch.cat(means), torch.cat(stds)
    z = mean + std * torch.randn(mean.shape, generator=gen)
    return mean, std, float(1.0 / z.std())


def update_card(card_file: Path, **entries) -> dict:
    """The card with ``entries`` set, written back."""
    card = read_card(card_file)
    card.update(entries)
    write_card(card_file, card)
    return card


def describe_run(card_file: Path, cfg: TinySDTrainConfig, n_train: int, thresholds: dict, resume: bool) -> None:
    """Write what this run is (model, data, captions, config, hardware) into the card; a fresh card unless resuming."""
    if not (resume and card_file.is_file()):
        write_card(card_file, {})
    update_card(
        card_file,
        name="Tiny SD: KL autoencoder 28×28×1 → 4×7×7, tiny CLIP text encoder, latent UNet with cross-attention",
        data={"source": DATA_SOURCE, "train_digits": n_train, "held_out_digits": HOLDOUT_PER_CLASS * 10,
              "split": f"stratified, {HOLDOUT_PER_CLASS} per class held out, numpy seed {SPLIT_SEED}"},
        captions={**asdict(CaptionConfig()), "thresholds": thresholds,
                  "attributes": "ink mass terciles (thin/normal/thick) and shear −μ11/μ02 terciles "
                                "(slanted left/upright/slanted right), within class, on the training split"},
        train_config={"uniform_share": cfg.uniform_share, "seed": cfg.seed, "threads": cfg.threads,
                      "train_subset": cfg.train_subset},
        hardware=f"{platform.processor() or platform.machine()}, {cfg.threads} CPU thread(s), torch {torch.__version__}",
        command="python -m explorer.latent.train " + " ".join(sys.argv[1:]),
        default_schedule="scaled_linear",
    )


def train(cfg: TinySDTrainConfig, card_file: Path = DEFAULT_CARD, resume: bool = False, progress: bool = True,
          ae_cfg: AutoencoderConfig = AutoencoderConfig(), clip_cfg: ClipConfig = ClipConfig(),
          unet_cfg: LatentUNetConfig = LatentUNetConfig()) -> dict:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    t0 = time.perf_counter()
    split = load_mnist_split()
    x, y = split.train_x, split.train_y
    if cfg.train_subset:
        x, y = x[: cfg.train_subset], y[: cfg.train_subset]
    thresholds = fit_thresholds(split.train_x, split.train_y)
    attrs = measure_attributes(x, y, thresholds)
    describe_run(card_file, cfg, len(x), thresholds, resume)

    def batch_index(n: int) -> torch.Tensor:
        return torch.randint(len(x), (n,), generator=gen)

    def captions(idx: torch.Tensor, caption_cfg: CaptionConfig) -> list[str]:
        return [make_caption(int(attrs.digit[i]), int(attrs.thickness[i]), int(attrs.slant[i]), rng, caption_cfg)
                for i in idx.tolist()]

    # 1. autoencoder
    def ae_loss(model: Autoencoder, step: int) -> torch.Tensor:
        return model.loss(x[batch_index(cfg.autoencoder.batch_size)], gen)[0]

    ae = run_stage("autoencoder", Autoencoder(ae_cfg), ae_loss, cfg.autoencoder, card_file, cfg.save_every,
                   dict, resume, progress, gen)
    z_mean, z_std, scaling_factor = latent_statistics(ae, x, gen)
    update_card(card_file, scaling_factor=scaling_factor)

    # 2. text encoder, contrastive against an image encoder (no empty captions: they describe no image)
    clip_captions = CaptionConfig(empty_share=0.0)

    def clip_loss(model: TinyClip, step: int) -> torch.Tensor:
        idx = batch_index(cfg.clip.batch_size)
        return model.loss(token_ids(captions(idx, clip_captions)), x[idx])

    clip = run_stage("clip", TinyClip(clip_cfg), clip_loss, cfg.clip, card_file, cfg.save_every, dict, resume,
                     progress, gen)
    text_encoder = clip.text

    # 3. latent UNet on z₀ = scaling_factor · z, z ~ q(z | x), with the frozen text encoder's hidden states
    def unet_loss(model: LatentUNet, step: int) -> torch.Tensor:
        idx = batch_index(cfg.unet.batch_size)
        z0 = scaling_factor * (z_mean[idx] + z_std[idx] * torch.randn(z_mean[idx].shape, generator=gen))  # (B, 4, 7, 7)
        with torch.no_grad():
            context = text_encoder(token_ids(captions(idx, CaptionConfig())))  # (B, L, D)
        log_snr = sample_log_snr(len(idx), cfg.uniform_share, gen)
        noise = torch.randn(z0.shape, generator=gen)
        return diffusion_loss(model, z0, context, log_snr, noise)

    run_stage("unet", LatentUNet(unet_cfg), unet_loss, cfg.unet, card_file, cfg.save_every, dict, resume, progress, gen)
    parts = read_card(card_file)["parts"].values()
    return update_card(card_file, wall_time_s_this_run=round(time.perf_counter() - t0, 1),
                       wall_time_s_total=round(sum(p["training"]["wall_time_s"] for p in parts), 1),
                       weights_bytes_total=sum(p["weights_bytes"] for p in parts))


def main(argv=None) -> None:
    d = TinySDTrainConfig()
    p = argparse.ArgumentParser(prog="python -m explorer.latent.train", description=__doc__.split("\n")[0])
    p.add_argument("--ae-steps", type=int, default=d.autoencoder.steps)
    p.add_argument("--clip-steps", type=int, default=d.clip.steps)
    p.add_argument("--unet-steps", type=int, default=d.unet.steps)
    p.add_argument("--unet-batch-size", type=int, default=d.unet.batch_size)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--save-every", type=int, default=d.save_every)
    p.add_argument("--train-subset", type=int, default=0, help="train on the first N training digits only")
    p.add_argument("--unet-channels", type=str, default=",".join(map(str, LatentUNetConfig().channels)))
    p.add_argument("--card", type=Path, default=DEFAULT_CARD, help="model card .json (weights go beside it)")
    p.add_argument("--resume", action="store_true", help="continue from the training states beside --card")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    for name in ("ae_steps", "clip_steps", "unet_steps", "unet_batch_size", "threads", "save_every"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if a.card.suffix != ".json":
        p.error("--card must end in .json")
    try:
        channels = tuple(int(c) for c in a.unet_channels.split(","))
    except ValueError:
        p.error("--unet-channels takes two comma-separated integers, e.g. 32,64")
    if len(channels) != 2 or any(c < 8 or c % 8 for c in channels):
        p.error("--unet-channels takes two multiples of 8, e.g. 32,64")
    cfg = TinySDTrainConfig(
        autoencoder=StageConfig(a.ae_steps, d.autoencoder.batch_size, d.autoencoder.lr),
        clip=StageConfig(a.clip_steps, d.clip.batch_size, d.clip.lr),
        unet=StageConfig(a.unet_steps, a.unet_batch_size, d.unet.lr, d.unet.warmup),
        seed=a.seed, threads=a.threads, save_every=a.save_every, train_subset=a.train_subset,
    )
    card = train(cfg, a.card, resume=a.resume, progress=not a.no_progress,
                 unet_cfg=LatentUNetConfig(channels=channels))
    print(json.dumps({"card": str(a.card), "wall_time_s_total": card["wall_time_s_total"],
                      "weights_bytes_total": card["weights_bytes_total"]}))


if __name__ == "__main__":
    main()

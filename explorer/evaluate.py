"""Sample quality of a checkpoint: ``python -m explorer.evaluate`` prints JSON.

Figures (all against the 500 held-out digits the denoiser never saw):
  - classifier_accuracy: a small CNN trained only on the training split, on the held-out digits
  - agreement[schedule][sampler][w]: share of generated digits the classifier reads as the requested label
  - fd[...]: Fréchet distance between generated and held-out digits in the classifier's feature space
  - spread_ratio[...]: mean same-class pairwise pixel distance of samples / that of held-out digits
  - near_copy_share[...]: share of samples closer to their nearest training digit than any held-out
    digit is to its nearest training digit (a calibrated "memorised" threshold)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .devices import DEVICES, resolve_device
from .mnist import load_mnist_split
from .model import DEFAULT_CHECKPOINT, CheckpointError, card_path, load_pretrained
from .samplers import PRECISIONS, model_eps_fn, sample, uses_bf16
from .schedules import make_schedule

REPO = Path(__file__).resolve().parent.parent
CLASSIFIER_SEED = 0
EVAL_SCHEDULES = ("linear", "cosine")
EVAL_SAMPLERS = {"ddim50": dict(sampler="ddim", steps=50), "ddpm1000": dict(sampler="ddpm")}
EVAL_GUIDANCE = (0.0, 1.0, 3.0)


class DigitClassifier(nn.Module):
    """A small CNN; ``features`` (128-d, penultimate layer) serve the Fréchet distance."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
        )
        self.fc = nn.Linear(128, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


def _shift(x: torch.Tensor, gen: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random translation by up to ``max_shift`` pixels (background is -1)."""
    padded = F.pad(x, [max_shift] * 4, value=-1.0)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2,), generator=gen).tolist()
    return padded[:, :, dy : dy + 28, dx : dx + 28]


def train_classifier(x: torch.Tensor, y: torch.Tensor, epochs: int = 12, seed: int = CLASSIFIER_SEED) -> DigitClassifier:
    """Train the evaluation classifier on the training split only (images in [-1, 1])."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    clf = DigitClassifier()
    opt = torch.optim.Adam(clf.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * ((len(x) + 127) // 128))
    clf.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 128):
            idx = perm[i : i + 128]
            loss = F.cross_entropy(clf(_shift(x[idx], gen)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return clf.eval().requires_grad_(False)


@torch.inference_mode()
def classify(clf: DigitClassifier, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(predicted labels, 128-d features) for images in [-1, 1]."""
    feats = torch.cat([clf.features(x[i : i + 500]) for i in range(0, len(x), 500)])
    return clf.fc(feats).argmax(1).numpy(), feats.double().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||μ_a − μ_b||² + tr(Σ_a + Σ_b − 2 (Σ_a^½ Σ_b Σ_a^½)^½), symmetric square roots by eigh."""

    def sqrtm_psd(m: np.ndarray) -> np.ndarray:
        w, v = np.linalg.eigh((m + m.T) / 2)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = sqrtm_psd(cov_a)
    cross = sqrtm_psd(root_a @ cov_b @ root_a)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(cross))


def same_class_spread(x: torch.Tensor, labels: np.ndarray) -> float:
    """Mean pairwise L2 distance between images of the same class ([0, 1] pixels), averaged over classes."""
    flat = ((x.reshape(len(x), -1) + 1) / 2).double()
    spreads = []
    for c in np.unique(labels):
        f = flat[torch.from_numpy(labels == c)]
        if len(f) > 1:
            d = torch.cdist(f, f)
            spreads.append(float(d.sum() / (len(f) * (len(f) - 1))))
    return float(np.mean(spreads))


def nearest_train_distance(x: torch.Tensor, train_x: torch.Tensor) -> np.ndarray:
    """L2 distance ([0, 1] pixels) from each image to its nearest training digit."""
    a = ((x.reshape(len(x), -1) + 1) / 2).double()
    b = ((train_x.reshape(len(train_x), -1) + 1) / 2).double()
    return torch.cdist(a, b).min(1).values.numpy()


def generate(model, schedule_name: str, labels: torch.Tensor, guidance: float, seed: int, batch: int = 250,
             precision: str = "auto", **sampler_kwargs) -> torch.Tensor:
    """Samples for ``labels`` in batches (each batch seeded from ``seed`` and its index)."""
    s = make_schedule(schedule_name, 1000)
    out = []
    for i in range(0, len(labels), batch):
        lab = labels[i : i + batch]
        eps_fn = model_eps_fn(model, s, lab, guidance, precision)
        out.append(sample(eps_fn, s, (len(lab), 1, 28, 28), seed=seed + i, **sampler_kwargs))
    return torch.cat(out).clamp(-1, 1)


def repo_relative(path: Path) -> str:
    """The path as the model card records it: relative to the repository when inside it (no machine's layout)."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else resolved.name


def evaluate(checkpoint: Path, n_ddim: int, n_ddpm: int, seed: int, guidance=EVAL_GUIDANCE, progress=True,
             classifier_epochs: int = 12, precision: str = "auto", train_subset: int | None = None,
             device: torch.device | str = "cpu", ddpm_guidance=None) -> dict:
    """The figures of the module docstring; ``train_subset`` limits the training digits used (classifier,
    near-copy search) to the first N, for quick checks of the pipeline (the card's figures use all).
    ``ddpm_guidance``: the w of the DDPM-1000 rows, when not all of ``guidance`` (each such row of 500 samples
    takes 5–11 minutes on a 2-core CPU)."""
    ddpm_guidance = tuple(guidance if ddpm_guidance is None else ddpm_guidance)
    t0 = time.perf_counter()
    model, card = load_pretrained(checkpoint, device=device)
    split = load_mnist_split()
    train_x, train_y = split.train_x[:train_subset], split.train_y[:train_subset]
    clf = train_classifier(train_x, train_y, epochs=classifier_epochs)
    test_pred, test_feat = classify(clf, split.test_x)
    test_labels = split.test_y.numpy()
    real_spread = same_class_spread(split.test_x, test_labels)
    held_out_nn = nearest_train_distance(split.test_x, train_x)
    copy_threshold = float(held_out_nn.min())

    result = {
        "checkpoint": repo_relative(checkpoint),
        "weights_sha256": card.get("weights_sha256"),
        "classifier_accuracy_held_out": float((test_pred == test_labels).mean()),
        "held_out_same_class_spread": real_spread,
        "near_copy_threshold_l2": copy_threshold,
        "samples_per_config": {"ddim50": n_ddim * 10, "ddpm1000": n_ddpm * 10},
        "network_precision": "bf16" if uses_bf16(precision, device) else "fp32",
        "device": torch.device(device).type,
        "ddpm1000_guidance_measured": [f"{w:g}" for w in ddpm_guidance] if n_ddpm else [],
        "configs": {},
    }
    for sched_name in EVAL_SCHEDULES:
        for sampler_name, kwargs in EVAL_SAMPLERS.items():
            n = n_ddim if sampler_name == "ddim50" else n_ddpm
            if n == 0:
                continue
            labels = torch.arange(10).repeat_interleave(n)
            for w in (guidance if sampler_name == "ddim50" else ddpm_guidance):
                t = time.perf_counter()
                x = generate(model, sched_name, labels, w, seed, precision=precision, **kwargs)
                pred, feat = classify(clf, x)
                nn_d = nearest_train_distance(x, train_x)
                key = f"{sched_name}/{sampler_name}/w={w:g}"
                result["configs"][key] = {
                    "agreement": float((pred == labels.numpy()).mean()),
                    "fd_classifier_features": frechet_distance(feat, test_feat),
                    "spread_ratio": same_class_spread(x, labels.numpy()) / real_spread,
                    "near_copy_share": float((nn_d < copy_threshold).mean()),
                    "seconds": round(time.perf_counter() - t, 1),
                }
                if progress:
                    print(key, json.dumps(result["configs"][key]), file=sys.stderr, flush=True)
    result["wall_time_s"] = round(time.perf_counter() - t0, 1)
    return result


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model", choices=("digits", "tiny-sd"), default="digits")
    if pre.parse_known_args(argv)[0].model == "tiny-sd":
        from .latent.evaluate import main as evaluate_tiny_sd

        return evaluate_tiny_sd(argv)
    p = argparse.ArgumentParser(prog="python -m explorer.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=("digits", "tiny-sd"), default="digits",
                   help="digits (default) or tiny-sd: see python -m explorer.evaluate --model tiny-sd --help")
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--n-ddim", type=int, default=50, help="samples per class for DDIM-50 (default %(default)s)")
    p.add_argument("--n-ddpm", type=int, default=10, help="samples per class for DDPM-1000 (default %(default)s)")
    p.add_argument("--guidance", type=str, default=",".join(f"{w:g}" for w in EVAL_GUIDANCE))
    p.add_argument("--ddpm-guidance", type=str, default=None,
                   help="the w of the DDPM-1000 rows, when not all of --guidance, e.g. 1")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="network arithmetic (see sample.py)")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="where the sampled network runs: auto = CUDA when available, else CPU (default %(default)s)")
    p.add_argument("--classifier-epochs", type=int, default=12, help="epochs of the evaluation classifier")
    p.add_argument("--train-subset", type=int, default=None,
                   help="use only the first N training digits (a quick check; the card's figures use all)")
    p.add_argument("--update-card", action="store_true", help="write the figures into the model card")
    a = p.parse_args(argv)
    if a.n_ddim < 0 or a.n_ddpm < 0 or a.n_ddim + a.n_ddpm == 0:
        p.error("--n-ddim and --n-ddpm must be >= 0 and not both 0")
    try:
        guidance = tuple(float(w) for w in a.guidance.split(","))
        ddpm_guidance = None if a.ddpm_guidance is None else tuple(float(w) for w in a.ddpm_guidance.split(","))
    except ValueError:
        p.error("--guidance and --ddpm-guidance take comma-separated numbers, e.g. 0,1,3")
    if a.classifier_epochs < 1:
        p.error("--classifier-epochs must be at least 1")
    if a.train_subset is not None and a.train_subset < 10:
        p.error("--train-subset must be at least 10 digits")
    try:
        result = evaluate(a.checkpoint, a.n_ddim, a.n_ddpm, a.seed, guidance, classifier_epochs=a.classifier_epochs,
                          precision=a.precision, train_subset=a.train_subset, device=resolve_device(a.device),
                          ddpm_guidance=ddpm_guidance)
    except (CheckpointError, ValueError) as exc:
        p.error(str(exc))
    print(json.dumps(result, indent=2))
    if a.update_card:
        cp = card_path(a.checkpoint)
        card = json.loads(cp.read_text())
        card.setdefault("evaluation", {})[result["network_precision"]] = result
        cp.write_text(json.dumps(card, indent=2) + "\n")


if __name__ == "__main__":
    main()

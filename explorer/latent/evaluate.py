"""Tiny SD's figures: ``python -m explorer.evaluate --model tiny-sd`` prints JSON and writes it into the model card.

All against the 500 held-out digits (never trained on), read by explorer.evaluate's DigitClassifier
(trained on the training split only):
  - prompt_accuracy: share of samples the classifier reads as the prompted digit ("7" and "seven" prompts)
  - thickness: per digit, mean ink of "thick D" minus "thin D" samples in units of the real class's ink std
  - slant: per digit, mean shear of "D, slanted right" minus "D, slanted left" samples
  - spread_ratio: same-class spread of samples / of held-out digits; near_copy_share as explorer.evaluate
  - autoencoder: reconstruction PSNR of held-out digits and the classifier's accuracy on the reconstructions
  - retrieval: text → image with the text encoder and the image encoder it was trained against
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..evaluate import classify, nearest_train_distance, repo_relative, same_class_spread, train_classifier
from ..mnist import load_mnist_split
from .autoencoder import psnr
from .captions import DIGIT_WORDS, full_caption, ink_mass, measure_attributes, shear
from .checkpoint import read_card, write_card
from .pipeline import DEFAULT_GUIDANCE, PromptSettings, TinySD, decode, encode, load_tiny_sd, sample_images
from .tokenizer import token_ids


@torch.inference_mode()
def retrieval(model: TinySD, x: torch.Tensor, labels: torch.Tensor, thresholds: dict) -> dict:
    """Text → image retrieval among the held-out digits x with each one's full caption as the query."""
    attrs = measure_attributes(x, labels, thresholds)
    captions = [full_caption(int(d), int(t), int(s)) for d, t, s in zip(attrs.digit, attrs.thickness, attrs.slant)]
    text = F.normalize(model.clip.text.pooled(token_ids(captions)), dim=-1)  # (N, E)
    image = F.normalize(model.clip.image(x), dim=-1)  # (N, E)
    top1 = (text @ image.T).argmax(1).numpy()  # (N,)
    digit_queries = token_ids([str(d) for d in range(10)] + list(DIGIT_WORDS))
    top10 = (F.normalize(model.clip.text.pooled(digit_queries), dim=-1) @ image.T).topk(10, dim=1).indices.numpy()
    wanted = np.concatenate([np.arange(10), np.arange(10)])
    return {
        "queries": len(captions),
        "top1_same_digit": float((attrs.digit[top1] == attrs.digit).mean()),
        "top1_same_thickness": float((attrs.thickness[top1] == attrs.thickness).mean()),
        "top1_same_slant": float((attrs.slant[top1] == attrs.slant).mean()),
        "top1_all_three": float(((attrs.digit[top1] == attrs.digit) & (attrs.thickness[top1] == attrs.thickness)
                                 & (attrs.slant[top1] == attrs.slant)).mean()),
        "digit_prompt_precision_at_10": float((attrs.digit[top10] == wanted[:, None]).mean()),
        "chance_all_three": 1 / 90,
    }


def autoencoder_figures(model: TinySD, clf, x: torch.Tensor, y: np.ndarray) -> dict:
    """The autoencoder's round trip D(E(x)) on held-out digits: PSNR and the classifier's accuracy on it."""
    recon = decode(model, encode(model, x)).clamp(-1, 1)  # (N, 1, 28, 28)
    return {"psnr_db_mean": float(psnr(recon, x).mean()),
            "classifier_accuracy_on_reconstructions": float((classify(clf, recon)[0] == y).mean()),
            "classifier_accuracy_on_originals": float((classify(clf, x)[0] == y).mean())}


def prompt_figures(clf, sample, log) -> tuple[dict, torch.Tensor]:
    """Share of samples read as the prompted digit, numerals ("7") and words ("seven"); and the numeral samples."""
    per_digit, numeral_samples = [], []
    for d in range(10):
        row = {}
        for form, prompt in (("numeral", str(d)), ("word", DIGIT_WORDS[d])):
            x = sample(prompt, d)
            row[form] = float((classify(clf, x)[0] == d).mean())
            if form == "numeral":
                numeral_samples.append(x)
        per_digit.append(row)
    log("prompt_accuracy", per_digit)
    accuracy = {
        "numeral": float(np.mean([r["numeral"] for r in per_digit])),
        "word": float(np.mean([r["word"] for r in per_digit])),
        "per_digit": per_digit,
    }
    return accuracy, torch.cat(numeral_samples)


def attribute_figures(sample, real_ink: np.ndarray, test_y: np.ndarray, log) -> tuple[dict, dict]:
    """Thick vs thin ink (in units of the real class's ink std) and slanted right vs left shear, per digit."""
    thickness, slant = [], []
    for d in range(10):
        thick, thin = (sample(f"{w} {d}", 100 + d) for w in ("thick", "thin"))
        right, left = (sample(f"{d}, slanted {w}", 200 + d) for w in ("right", "left"))
        ink_std = float(real_ink[test_y == d].std())
        ink_thick, ink_thin = float(ink_mass(thick).mean()), float(ink_mass(thin).mean())
        thickness.append({"digit": d, "ink_thick": ink_thick, "ink_thin": ink_thin,
                          "difference_in_real_std": float((ink_mass(thick).mean() - ink_mass(thin).mean()) / ink_std)})
        slant.append({"digit": d, "shear_right": float(shear(right).mean()), "shear_left": float(shear(left).mean())})
        log(f"attributes {d}", [thickness[-1], slant[-1]])
    return ({
        "digits_thick_over_thin": int(sum(r["difference_in_real_std"] > 0 for r in thickness)),
        "mean_difference_in_real_std": float(np.mean([r["difference_in_real_std"] for r in thickness])),
        "per_digit": thickness,
    }, {
        "digits_right_of_left": int(sum(r["shear_right"] > r["shear_left"] for r in slant)),
        "mean_shear_difference": float(np.mean([r["shear_right"] - r["shear_left"] for r in slant])),
        "per_digit": slant,
    })


def evaluate_tiny_sd(card_file: Path, n: int = 20, seed: int = 1234, guidance: float = DEFAULT_GUIDANCE,
                     steps: int = 50, classifier_epochs: int = 12, progress: bool = True) -> dict:
    t0 = time.perf_counter()
    torch.set_num_threads(1)
    model = load_tiny_sd(card_file)
    split = load_mnist_split()
    clf = train_classifier(split.train_x, split.train_y, epochs=classifier_epochs)
    test_y = split.test_y.numpy()

    def log(key, value):
        if progress:
            print(key, json.dumps(value), file=sys.stderr, flush=True)

    def sample(prompt: str, seed_offset: int) -> torch.Tensor:
        """n DDIM samples of the prompt, seeded per prompt so each figure is reproducible on its own."""
        settings = PromptSettings.checked(prompt, guidance=guidance, seed=seed + seed_offset, steps=steps, n=n)
        return sample_images(model, settings)  # (n, 1, 28, 28)

    autoencoder = autoencoder_figures(model, clf, split.test_x, test_y)
    log("autoencoder", autoencoder)
    prompt_accuracy, numeral = prompt_figures(clf, sample, log)
    thickness, slant = attribute_figures(sample, ink_mass(split.test_x).numpy(), test_y, log)
    copy_threshold = float(nearest_train_distance(split.test_x, split.train_x).min())
    nn_d = nearest_train_distance(numeral, split.train_x)
    result = {
        "card": repo_relative(card_file),
        "samples_per_prompt": n, "sampler": f"ddim{steps}", "schedule": "scaled_linear", "guidance": guidance,
        "seed": seed, "network_precision": "fp32",
        "autoencoder": autoencoder,
        "prompt_accuracy": prompt_accuracy,
        "thickness": thickness,
        "slant": slant,
        "spread_ratio": (same_class_spread(numeral, np.repeat(np.arange(10), n))
                         / same_class_spread(split.test_x, test_y)),
        "near_copy_share": float((nn_d < copy_threshold).mean()),
        "near_copy_threshold_l2": copy_threshold,
        "retrieval": retrieval(model, split.test_x, split.test_y, model.card["captions"]["thresholds"]),
        "classifier_accuracy_held_out": autoencoder["classifier_accuracy_on_originals"],
    }
    result["wall_time_s"] = round(time.perf_counter() - t0, 1)
    return result


def main(argv=None) -> None:
    import argparse

    from ..model import CheckpointError
    from .checkpoint import DEFAULT_CARD

    p = argparse.ArgumentParser(prog="python -m explorer.evaluate --model tiny-sd", description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=("tiny-sd",), default="tiny-sd")
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CARD, help="Tiny SD model card (.json)")
    p.add_argument("--n", type=int, default=20, help="samples per prompt (default %(default)s)")
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (default %(default)s)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--classifier-epochs", type=int, default=12)
    p.add_argument("--no-card", action="store_true", help="print only; do not write the figures into the card")
    a = p.parse_args(argv)
    if a.n < 2 or a.steps < 1 or a.classifier_epochs < 1:
        p.error("--n must be at least 2, --steps and --classifier-epochs at least 1")
    try:
        result = evaluate_tiny_sd(a.checkpoint, a.n, a.seed, a.guidance, a.steps, a.classifier_epochs)
    except (CheckpointError, ValueError) as exc:
        p.error(str(exc))
    print(json.dumps(result, indent=2))
    if not a.no_card:
        card = read_card(a.checkpoint)
        card["evaluation"] = result
        write_card(a.checkpoint, card)

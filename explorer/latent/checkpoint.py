"""Tiny SD's weights: one .safetensors per part and ONE JSON model card holding each file's SHA-256.

Parts: ``autoencoder`` (the VAE), ``clip`` (text encoder + the image encoder it was trained against),
``unet`` (EMA weights). Every file's checksum is checked against the card before anything is loaded
(never pickle), with :class:`explorer.model.CheckpointError` messages that say what to do.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from ..model import CHECKPOINT_DIR, CheckpointError, count_parameters, sha256_file

DEFAULT_CARD = CHECKPOINT_DIR / "tiny_sd.json"
PARTS = ("autoencoder", "clip", "unet")


def part_path(card_file: Path, part: str) -> Path:
    card_file = Path(card_file)
    return card_file.with_name(f"{card_file.stem}_{part}.safetensors")


def read_card(card_file: Path) -> dict:
    card_file = Path(card_file)
    if not card_file.is_file():
        raise CheckpointError(f"Model card {card_file} not found. Train Tiny SD with `python -m explorer.latent.train`.")
    try:
        return json.loads(card_file.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"Model card {card_file.name} is unreadable: {exc}") from exc


def write_card(card_file: Path, card: dict) -> None:
    Path(card_file).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(card_file).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    tmp.replace(card_file)


def save_part(card_file: Path, part: str, model: torch.nn.Module, extra: dict) -> dict:
    """Write one part's weights and record file name, SHA-256, size, config and ``extra`` in the card."""
    from safetensors.torch import save_file

    path = part_path(card_file, part)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path), metadata={"format": "pt"})
    card = read_card(card_file) if Path(card_file).is_file() else {}
    card.setdefault("parts", {})[part] = {
        "weights_file": path.name,
        "weights_sha256": sha256_file(path),
        "weights_bytes": path.stat().st_size,
        "config": asdict(model.config),
        "parameters": count_parameters(model),
        **extra,
    }
    write_card(card_file, card)
    return card


def load_part(card_file: Path, card: dict, part: str, build) -> torch.nn.Module:
    """Check the SHA-256 of one part against the card, then build it with ``build(config_dict)`` and load it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    entry = card.get("parts", {}).get(part)
    if entry is None:
        raise CheckpointError(f"The model card has no {part!r} part; finish training with `python -m explorer.latent.train`.")
    name = entry.get("weights_file")
    if not isinstance(name, str) or Path(name).name != name or not name.endswith(".safetensors"):
        raise CheckpointError(f"Refusing to load {name!r}: only .safetensors files beside the card.")
    path = Path(card_file).with_name(name)
    if not path.is_file():
        raise CheckpointError(f"Weights {path.name} of the {part} are missing beside {Path(card_file).name}.")
    actual = sha256_file(path)
    if actual != entry.get("weights_sha256"):
        raise CheckpointError(
            f"Checksum mismatch for {path.name}: the model card records {entry.get('weights_sha256')}, the file has "
            f"{actual}. The weights are corrupt or were modified; restore them or retrain."
        )
    try:
        model = build(entry["config"])
        model.load_state_dict(load_file(str(path)))
    except (SafetensorError, KeyError, TypeError, RuntimeError, OSError) as exc:
        raise CheckpointError(f"Cannot load weights from {path.name}: {exc}") from exc
    return model.eval().requires_grad_(False)

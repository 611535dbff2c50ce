"""Where the networks run: ``--device auto|cpu|cuda|mps`` for the CLIs and ``DDPM_DEVICE`` for the app.

Only the networks move to the device. The samplers' arithmetic (schedules in float64, each step's update, the
recorded frames) stays on the CPU, where the app shows it and the tests compare it with the reference formulas:
a step sends x_t (B×1×28×28 floats, 50 kB for 16 digits) to the device and ε̂ back.
"""

from __future__ import annotations

import os

import torch

from . import checks

DEVICES = ("auto", "cpu", "cuda", "mps")
ENV_VAR = "DDPM_DEVICE"


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str | None = "auto") -> torch.device:
    """The torch device for ``name``: "auto" is CUDA when available, else the CPU.

    A device asked for by name that this machine lacks is a ValueError that says what to use instead."""
    name = "auto" if name is None else name
    checks.one_of("device", name, DEVICES)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but this PyTorch build sees no CUDA GPU "
                         f"(torch {torch.__version__}); use 'cpu' or 'auto'.")
    if name == "mps" and not mps_available():
        raise ValueError("device 'mps' was asked for, but Apple's Metal backend is not available here; "
                         "use 'cpu' or 'auto'.")
    return torch.device(name)


def app_device() -> torch.device:
    """The app's device, from the DDPM_DEVICE environment variable (unset: "auto")."""
    try:
        return resolve_device(os.environ.get(ENV_VAR, "auto").strip().lower() or "auto")
    except ValueError as exc:
        raise ValueError(f"{ENV_VAR}: {exc}") from None


def model_device(model) -> torch.device:
    """The device a model's weights are on; the CPU for a denoiser without weights (the 2-D lab's exact
    mixture score is called exactly as a network is)."""
    parameters = model.parameters() if isinstance(model, torch.nn.Module) else iter(())
    return next(parameters, torch.empty(0)).device

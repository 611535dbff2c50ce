"""One reverse run of the digit model: its settings (validated once, here), labels, x_T and img2img's start and run.

A :class:`RunSettings` is what the Reverse controls, the API and the CLIs describe: schedule, sampler,
steps, η, spacing, digit class, guidance, seed, number of samples. It can only be built valid, so the
handlers, the recorder and the trajectory's captions all read the same named, checked values.

No gradio import: the UI layer builds these from its controls.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image

from . import checks
from .data import image_to_tensor
from .diffusion import X0_RANGE, q_sample
from .model import NULL_CLASS
from .samplers import DEFAULT_SPACING, SAMPLERS, SPACINGS
from .schedules import Schedule

MAX_SAMPLES = 16  # samples per request (one 4×4 grid)
MAX_RECORDED_STEPS = 1000  # steps per run: caps work per request and the memory of a trajectory
MAX_GUIDANCE = 20.0
DIGITS = ("none", "mixed") + tuple(str(d) for d in range(10))  # none = unconditional, mixed = 0, 1, …, 9, 0, …
DIGIT_LABELS = {"none": "any digit (unconditional)", "mixed": "0–9, one of each in turn"}
SAMPLER_LABELS = {"ddpm": "DDPM", "ddim": "DDIM"}


@dataclass(frozen=True)
class RunSettings:
    """The settings of one reverse run; construction validates them (ValueError with a readable message)."""

    schedule: Schedule
    sampler: str = "ddim"  # "ddpm" | "ddim"
    steps: int = 50  # DDIM steps (DDPM takes every step of the schedule)
    eta: float = 0.0  # DDIM η: 0 deterministic, 1 DDPM-like noise
    spacing: str = DEFAULT_SPACING  # DDIM timestep spacing
    digit: str = "mixed"  # one of DIGITS
    guidance: float = 3.0  # classifier-free guidance scale w
    seed: int = 0
    n: int = 16  # samples

    def __post_init__(self):
        s = self.schedule
        if not isinstance(s, Schedule):
            raise ValueError(f"A run needs a Schedule, got {s!r}.")
        checks.one_of("sampler", self.sampler, SAMPLERS)
        checks.one_of("timestep spacing", self.spacing, SPACINGS)
        digit = str(self.digit) if isinstance(self.digit, (int, np.integer)) and not isinstance(self.digit, bool) \
            else self.digit
        normalized = dict(
            digit=checks.one_of("digit class", digit, DIGITS),
            n=checks.whole_number("The number of samples", self.n, 1, MAX_SAMPLES),
            guidance=checks.finite_number("The guidance scale", self.guidance, 0.0, MAX_GUIDANCE),
            seed=checks.seed(self.seed),
        )
        if self.sampler == "ddpm":
            if s.T > MAX_RECORDED_STEPS:
                raise ValueError(f"DDPM takes every one of the T = {s.T} steps; the app records at most "
                                 f"{MAX_RECORDED_STEPS}. Use T ≤ {MAX_RECORDED_STEPS} or DDIM.")
            normalized.update(steps=s.T, eta=0.0)  # DDPM visits every step and has no η
        else:
            normalized.update(
                steps=checks.whole_number(f"DDIM steps (at most T = {s.T})", self.steps, 1,
                                          min(s.T, MAX_RECORDED_STEPS)),
                eta=checks.finite_number("DDIM η", self.eta, 0.0, 1.0),
            )
        for name, value in normalized.items():
            object.__setattr__(self, name, value)

    def replace(self, **changes) -> "RunSettings":
        """A copy with some settings changed (validated again)."""
        return replace(self, **changes)

    @property
    def labels(self) -> torch.Tensor:
        """(n,) class labels: the null class, 0, 1, …, 9, 0, … ('mixed') or one digit."""
        if self.digit == "none":
            return torch.full((self.n,), NULL_CLASS, dtype=torch.long)
        if self.digit == "mixed":
            return torch.arange(self.n, dtype=torch.long) % 10
        return torch.full((self.n,), int(self.digit), dtype=torch.long)

    def num_steps(self, t_start: int | None = None) -> int:
        """Steps the run makes from t_start (default T): every one for DDPM, ``steps`` for DDIM."""
        if self.sampler == "ddpm":
            return self.schedule.T if t_start is None else int(t_start)
        return self.steps

    def loop_kwargs(self) -> dict:
        """The keyword arguments of :func:`explorer.samplers.reverse_loop` for this run."""
        return dict(sampler=self.sampler, steps=self.steps, eta=self.eta, spacing=self.spacing)

    def describe(self, num_steps: int | None = None) -> str:
        """One line for captions: sampler, schedule, digit, guidance, seed, samples."""
        steps = self.num_steps() if num_steps is None else num_steps
        if self.sampler == "ddpm":
            sampler = f"DDPM, all {steps} steps"
        else:
            sampler = f"DDIM, {steps} steps, η = {self.eta:g}, {self.spacing} spacing"
        digit = DIGIT_LABELS.get(self.digit, self.digit)
        return (f"{sampler} · {self.schedule.label} · digit: {digit} · guidance w = {self.guidance:g} · "
                f"seed {self.seed} · {self.n} sample{'s' if self.n > 1 else ''}")


def initial_noise(seed: int, n: int, shape: tuple[int, ...] = (1, 28, 28)) -> tuple[torch.Tensor, torch.Generator]:
    """x_T ~ N(0, I) for ``n`` samples from ``seed``, and the generator that then drives the sampler's noise.

    The same seed gives the same x_T whatever the schedule or sampler, so two runs can be compared.
    """
    generator = torch.Generator().manual_seed(checks.seed(seed))
    return torch.randn((n, *shape), generator=generator), generator


# ---------------------------------------------------------------------------- img2img


def img2img_steps(steps: int, t_start: int, T: int) -> int:
    """DDIM steps for a run from t_start: the share t_start / T of ``steps`` (as diffusers' img2img "strength")."""
    return max(1, min(t_start, round(steps * t_start / T)))


def img2img_run(run: RunSettings, t_start: int) -> RunSettings:
    """The run of a round trip from t_start as sampled: DDIM takes the share t_start / T of its steps
    (:func:`img2img_steps`); DDPM takes every step from t_start."""
    if run.sampler == "ddim":
        return run.replace(steps=img2img_steps(run.steps, t_start, run.schedule.T))
    return run


@dataclass(frozen=True, eq=False)
class Img2ImgRun:
    """An img2img round trip as it ran, enough to run it again: its settings (the round trip's class; DDIM's steps
    before :func:`img2img_run` takes their share), the t its x_0 was noised to, that x_0 as the model saw it and
    how many steps were recorded. The same settings give the same noised copies and sampler noise (the seed)."""

    run: RunSettings
    t_start: int
    x0: torch.Tensor  # (1, 1, H, W) in [-1, 1]: the input as the model saw it, the true x_0 of every copy
    count: int = 0  # steps recorded so far

    def __post_init__(self):
        if not isinstance(self.run, RunSettings):
            raise ValueError(f"A round trip needs RunSettings, got {self.run!r}.")
        T = self.run.schedule.T
        object.__setattr__(self, "t_start", checks.whole_number(f"The img2img start t (T = {T})", self.t_start, 1, T))
        if not (isinstance(self.x0, torch.Tensor) and self.x0.dim() == 4 and self.x0.shape[:2] == (1, 1)):
            raise ValueError(f"A round trip's x_0 is one (1, 1, H, W) image, got {getattr(self.x0, 'shape', self.x0)}.")
        object.__setattr__(self, "count", checks.whole_number("The recorded steps", self.count, 0, self.num_steps))

    @property
    def num_steps(self) -> int:
        """Steps of the whole round trip (from t_start to 0)."""
        return img2img_run(self.run, self.t_start).num_steps(self.t_start)


def image_to_digit_tensor(im: Image.Image) -> torch.Tensor:
    """Any decoded image -> the model's input format: (1, 1, 28, 28) float32 in [-1, 1].

    Grayscale, resized to 28×28; a light background (mean above mid-gray) is inverted so that
    the strokes are white on black, like the MNIST training digits.
    """
    gray = im.convert("L")
    if gray.size != (28, 28):
        gray = gray.resize((28, 28), Image.Resampling.LANCZOS)
    x = image_to_tensor(gray)  # (1, 1, 28, 28)
    lo, hi = X0_RANGE
    return (lo + hi) - x if x.mean() > (lo + hi) / 2 else x


def img2img_start(x0: torch.Tensor, t_start: int, s: Schedule, n: int, generator: torch.Generator) -> torch.Tensor:
    """x_{t_start} = √ᾱ_t·x_0 + √(1-ᾱ_t)·ε for ``n`` copies of x_0 (each its own ε): q_sample."""
    noise = torch.randn((n, *x0.shape[1:]), generator=generator)
    return q_sample(x0.expand(n, *x0.shape[1:]), t_start, noise, s)

"""Reverse-process loops as generators of per-step records (no UI imports).

Like improved-diffusion's ``p_sample_loop_progressive``, each loop yields one
:class:`StepRecord` per step (x_t, ε̂, x̂_0, the step's numbers) and the plain
"give me the samples" function :func:`sample` just drains it.

A denoiser is any callable ``eps_fn(x_t, t) -> ε̂`` for the schedule in use;
:func:`model_eps_fn` wraps the pretrained UNet (noise-level conditioning and
classifier-free guidance), tests pass the optimal denoiser of a toy dataset.

Zero terminal SNR: at ᾱ_T = 0 an ε-prediction model cannot say anything about
x_0 (x_T = ε exactly, x̂_0 = 0/0). As diffusers' Euler scheduler does, the
loops then sample with a tiny ᾱ_T instead: 2⁻²⁴, or ᾱ_{T-1}/2 where that is
smaller so ᾱ keeps decreasing (see :func:`sampling_schedule`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch

from . import checks
from .diffusion import ddim_sigma, ddim_step, ddpm_step, ddpm_variances
from .schedules import Schedule

SAMPLERS = ("ddpm", "ddim")
SPACINGS = ("linspace", "leading", "trailing")  # diffusers' names for the DDIM timestep spacing
DEFAULT_SPACING = "trailing"  # starts at t = T (Lin et al. 2023, table 2)
TERMINAL_ALPHA_BAR = 2.0**-24  # stands in for ᾱ_T = 0 while sampling (diffusers' Euler scheduler does the same)

EpsFn = Callable[[torch.Tensor, int], torch.Tensor]


@dataclass
class StepRecord:
    """One reverse step x_t -> x_{t_prev} and what the model saw and predicted."""

    index: int  # 0 for the first (noisiest) step
    num_steps: int
    t: int
    t_prev: int
    x_t: torch.Tensor  # (B, C, H, W) before the step
    eps: torch.Tensor  # the ε̂ the step used: the (guided) model output; DDIM re-derives it from the clipped x̂_0
    x0_hat: torch.Tensor  # predicted clean image (clipped to [-1, 1])
    x_prev: torch.Tensor  # after the step
    alpha_bar_t: float
    alpha_bar_prev: float
    sigma: float  # standard deviation of the noise added this step (0 for deterministic DDIM)
    log_snr: float
    posterior_var: float | None = None  # DDPM: β̃_t of q(x_{t-1} | x_t, x_0)
    posterior_coef_x0: float | None = None  # DDPM: posterior mean = coef_x0 · x̂_0 + coef_xt · x_t
    posterior_coef_xt: float | None = None
    noise: torch.Tensor | None = None  # the z ~ N(0, I) drawn this step (None where the step adds no noise)
    terms: dict[str, torch.Tensor] = field(default_factory=dict)  # the update's terms: x_prev is their sum


def sampling_schedule(s: Schedule) -> Schedule:
    """``s`` unchanged, or with ᾱ_T = 0 replaced by a tiny positive value so x̂_0 is defined at t = T."""
    if s.alpha_bars[-1] > 0:
        return s
    terminal = min(TERMINAL_ALPHA_BAR, s.alpha_bars[-2] / 2)
    betas = np.array(s.betas)
    betas[-1] = 1.0 - terminal / s.alpha_bars[-2]  # ᾱ_T = ᾱ_{T-1} · (1 - β_T)
    return Schedule(name=s.name, T=s.T, params={**s.params, "sampling_terminal_alpha_bar": terminal}, betas=betas)


def ddim_timesteps(t_start: int, steps: int, spacing: str = DEFAULT_SPACING) -> list[int]:
    """The decreasing tutorial timesteps a DDIM run visits, from at most ``t_start`` down to >= 1.

    Spacings follow diffusers (its τ = our t − 1): ``linspace`` rounds
    linspace(0, T−1, S); ``leading`` takes multiples of T // S; ``trailing``
    counts down from T in steps of T / S. The step after the last is t = 0.
    """
    checks.one_of("timestep spacing", spacing, SPACINGS)
    steps = _check_steps(steps, t_start)
    if spacing == "linspace":
        tau = np.linspace(0, t_start - 1, steps).round()[::-1]
    elif spacing == "leading":
        tau = (np.arange(steps) * (t_start // steps)).round()[::-1]
    else:
        # [:steps]: float round-off can leave one more point just above 0 (e.g. 600 in 7 steps), which would be t = 0
        tau = np.round(np.arange(t_start, 0, -t_start / steps))[:steps] - 1
    return [int(x) + 1 for x in tau]


def _check_steps(steps, t_max: int) -> int:
    return checks.whole_number("The number of steps", steps, 1, t_max)


def ddpm_loop(eps_fn: EpsFn, s: Schedule, x_start: torch.Tensor, generator: torch.Generator,
              t_start: int | None = None, clip_x0: bool = True, variance: str = "fixed_small") -> Iterator[StepRecord]:
    """Ancestral sampling (Ho et al. Alg. 2) over every t = t_start..1 with variance β̃_t (or β_t: ``variance``)."""
    s = sampling_schedule(s)
    t_start = s.T if t_start is None else t_start
    t_start = _check_steps(t_start, s.T)
    x = x_start
    for i, t in enumerate(range(t_start, 0, -1)):
        # 1. predict the noise
        eps = eps_fn(x, t)
        # 2. x̂_0, the posterior q(x_{t-1} | x_t, x̂_0) and a sample of it (no noise at t = 1)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype) if t > 1 else None
        step = ddpm_step(x, t, eps, s, noise, clip_x0=clip_x0, variance=variance)
        var = float(s.posterior_variance[t])
        sigma = float(ddpm_variances(s, variance)[t]) ** 0.5 if t > 1 else 0.0
        yield StepRecord(
            index=i, num_steps=t_start, t=t, t_prev=t - 1, x_t=x, eps=step.eps, x0_hat=step.x0_hat,
            x_prev=step.x_prev,
            alpha_bar_t=float(s.alpha_bars[t]), alpha_bar_prev=float(s.alpha_bars[t - 1]),
            sigma=sigma, log_snr=float(s.log_snr[t]), posterior_var=var,
            posterior_coef_x0=float(s.posterior_mean_coef_x0[t]),
            posterior_coef_xt=float(s.posterior_mean_coef_xt[t]), noise=noise, terms=step.terms,
        )
        x = step.x_prev


def ddim_loop(eps_fn: EpsFn, s: Schedule, x_start: torch.Tensor, generator: torch.Generator, steps: int = 50,
              eta: float = 0.0, spacing: str = DEFAULT_SPACING, t_start: int | None = None,
              clip_x0: bool = True) -> Iterator[StepRecord]:
    """DDIM (Song et al. 2021) over ``steps`` timesteps; η = 0 deterministic, η = 1 DDPM-like noise."""
    s = sampling_schedule(s)
    eta = checks.finite_number("eta", eta, 0.0, 1.0)
    ts = ddim_timesteps(s.T if t_start is None else t_start, steps, spacing)
    x = x_start
    for i, (t, t_prev) in enumerate(zip(ts, ts[1:] + [0])):
        eps = eps_fn(x, t)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype) if eta > 0 else None
        # ε re-derived from the clipped x̂_0 (improved-diffusion's DDIM), so guidance cannot push x off the data range
        step = ddim_step(x, t, t_prev, eps, s, eta=eta, noise=noise, clip_x0=clip_x0, use_clipped_model_output=True)
        yield StepRecord(
            index=i, num_steps=len(ts), t=t, t_prev=t_prev, x_t=x, eps=step.eps, x0_hat=step.x0_hat,
            x_prev=step.x_prev, alpha_bar_t=float(s.alpha_bars[t]), alpha_bar_prev=float(s.alpha_bars[t_prev]),
            sigma=ddim_sigma(t, t_prev, s, eta), log_snr=float(s.log_snr[t]), noise=noise, terms=step.terms,
        )
        x = step.x_prev


def reverse_loop(eps_fn: EpsFn, s: Schedule, x_start: torch.Tensor, generator: torch.Generator,
                 sampler: str = "ddim", steps: int = 50, eta: float = 0.0, spacing: str = DEFAULT_SPACING,
                 t_start: int | None = None, clip_x0: bool = True,
                 variance: str = "fixed_small") -> Iterator[StepRecord]:
    """Dispatch on the sampler name ('ddpm' ignores steps, eta and spacing; 'ddim' ignores variance).

    ``clip_x0 = False`` for latents, which are not bounded to [-1, 1] (SD's ``clip_sample=False``).
    """
    if checks.one_of("sampler", sampler, SAMPLERS) == "ddpm":
        return ddpm_loop(eps_fn, s, x_start, generator, t_start=t_start, clip_x0=clip_x0, variance=variance)
    return ddim_loop(eps_fn, s, x_start, generator, steps=steps, eta=eta, spacing=spacing, t_start=t_start,
                     clip_x0=clip_x0)


def sample(eps_fn: EpsFn, s: Schedule, shape: tuple[int, ...], seed: int = 0, **kwargs) -> torch.Tensor:
    """Draw x_T ~ N(0, I) from ``seed`` and run the reverse loop to the end; returns x_0."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator)
    for record in reverse_loop(eps_fn, s, x, generator, **kwargs):
        x = record.x_prev
    return x


PRECISIONS = ("auto", "fp32", "bf16")


def bf16_is_fast(device: torch.device | str = "cpu") -> bool:
    """True where the device runs bfloat16 natively, so autocast pays off: a CPU with the AVX-512 BF16 or AMX
    instructions, a CUDA GPU of the Ampere generation or newer.

    Not oneDNN's ``_is_mkldnn_bf16_supported()``: it is True on every AVX-512 core, where bfloat16 is emulated
    and a DDIM-50 run of the digit model takes 2.2× as long as in float32 (an AVX-512 Xeon without BF16).
    """
    if torch.device(device).type == "cuda":
        return torch.cuda.is_bf16_supported()
    if torch.device(device).type != "cpu":
        return False
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


def uses_bf16(precision: str, device: torch.device | str = "cpu") -> bool:
    """Whether ``precision`` ("auto", "fp32", "bf16") runs the network in bfloat16 on ``device``."""
    checks.one_of("precision", precision, PRECISIONS)
    return precision == "bf16" or (precision == "auto" and bf16_is_fast(device))


def model_eps_fn(model, s: Schedule, labels: torch.Tensor, guidance: float = 0.0, precision: str = "auto",
                 parts: list | None = None, pair=None) -> EpsFn:
    """ε̂(x_t, t) from the pretrained UNet with classifier-free guidance scale ``guidance``.

    The model is conditioned on λ_t = log-SNR of the schedule at t, so any
    schedule drives it. ``labels`` holds digits 0..9 or the null class.
    ``precision`` is that of the network's arithmetic only ("auto": bfloat16
    where the device runs it natively, else float32); its ε̂ comes back as float32
    and every sampler equation stays in float32 / float64. The network runs on
    the model's device; x_t goes there and ε̂ comes back to x_t's device.
    ``parts``, a list, gets each call's (ε̂_cond, ε̂_uncond) appended (float32, on x_t's device): the two passes
    the guided ε̂ was combined from, or (None, None) where guidance ran one pass (w = 0, w = 1, null class only).
    ``pair(f, g)`` runs guidance's two passes and returns ``(f(), g())`` (:func:`explorer.model.guided_eps`); a
    pair that runs g in another thread gives it this thread's inference mode and autocast (explorer.ui.cores).
    """
    from .devices import model_device
    from .model import guided_eps

    device = model_device(model)
    use_bf16 = uses_bf16(precision, device)
    s = sampling_schedule(s)  # finite λ_T under zero terminal SNR
    labels = labels.to(device)

    def eps_fn(x: torch.Tensor, t: int) -> torch.Tensor:
        log_snr = torch.full((x.shape[0],), float(s.log_snr[t]), dtype=torch.float32, device=device)  # (B,)
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            eps, eps_cond, eps_uncond = guided_eps(model, x.to(device), log_snr, labels, guidance, pair)
        if parts is not None:
            parts.append(tuple(None if p is None else p.float().to(x.device) for p in (eps_cond, eps_uncond)))
        return eps.float().to(x.device)

    return eps_fn

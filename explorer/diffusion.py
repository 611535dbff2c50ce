"""The tutorial's equations of the forward and reverse process.

Tensors are torch, images float32 in [-1, 1] with shape (B, C, H, W); ``t`` is
an int or a LongTensor of shape (B,) holding the tutorial's t (0 = clean,
T = noisiest). Schedule coefficients are looked up in float64 and cast to the
tensor's dtype at the last moment.

Notation (Ho et al. 2020):
    alpha_t = 1 - beta_t,   alpha_bar_t = prod_{i=1..t} alpha_i
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from . import checks
from .schedules import Schedule

X0_RANGE = (-1.0, 1.0)  # images live in [-1, 1]; x̂_0 is clipped to this range


@dataclass(frozen=True)
class StepOutput:
    """What one reverse step computed, as diffusers' ``SchedulerOutput``: x_{t-1} and the x̂_0 and ε it used.

    ``x0_hat`` is clipped when the step clipped it; ``eps`` is the ε in the update (DDIM with
    ``use_clipped_model_output`` re-derives it from the clipped x̂_0, so it may differ from the model's).
    ``terms`` are the update's terms in the order they were added: ``x_prev`` is their sum.
    """

    x_prev: torch.Tensor  # (B, C, H, W)
    x0_hat: torch.Tensor  # (B, C, H, W)
    eps: torch.Tensor  # (B, C, H, W)
    terms: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (B, C, H, W)


def _x0_hat(x_t: torch.Tensor, t, eps: torch.Tensor, s: Schedule, clip_x0: bool) -> torch.Tensor:
    """x̂_0 = (x_t - sqrt(1 - alpha_bar_t) ε) / sqrt(alpha_bar_t), clipped to X0_RANGE if ``clip_x0``."""
    x0_hat = predict_x0(x_t, t, eps, s)
    return x0_hat.clamp(*X0_RANGE) if clip_x0 else x0_hat


def _coef(values: np.ndarray, t, like: torch.Tensor) -> torch.Tensor:
    """values[t] as a tensor broadcastable against ``like`` (shape (B, 1, 1, ...) or scalar)."""
    if isinstance(t, torch.Tensor) and t.ndim > 0:
        out = torch.as_tensor(values[t.cpu().numpy()], dtype=like.dtype, device=like.device)
        return out.reshape(-1, *([1] * (like.ndim - 1)))
    return torch.tensor(float(values[int(t)]), dtype=like.dtype, device=like.device)


def _check_t(t, s: Schedule, lowest: int = 0) -> None:
    ts = t.cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    if ts.dtype.kind not in "iu":
        raise ValueError(f"t must be a whole number (int or LongTensor), got {t!r}.")
    if ts.size and (ts.min() < lowest or ts.max() > s.T):
        raise ValueError(f"t must lie in [{lowest}, {s.T}] for this schedule, got {ts.min()}..{ts.max()}.")


def q_sample(x0: torch.Tensor, t, noise: torch.Tensor, s: Schedule) -> torch.Tensor:
    """Sample q(x_t | x_0) in closed form: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps."""
    _check_t(t, s)
    return _coef(s.sqrt_alpha_bars, t, x0) * x0 + _coef(s.sqrt_one_minus_alpha_bars, t, x0) * noise


def q_step(x_prev: torch.Tensor, t, noise: torch.Tensor, s: Schedule) -> torch.Tensor:
    """Sample one forward step q(x_t | x_{t-1}): x_t = sqrt(alpha_t) x_{t-1} + sqrt(1 - alpha_t) z_t."""
    _check_t(t, s, lowest=1)
    return _coef(np.sqrt(s.alphas), t, x_prev) * x_prev + _coef(np.sqrt(s.betas), t, x_prev) * noise


def forward_chain(x0: torch.Tensor, s: Schedule, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Iterate q(x_t | x_{t-1}) for t = 1..T with fresh noise z_t each step; yields x_1, ..., x_T.

    Its marginals equal the closed form q(x_t | x_0); the tests check mean and variance.
    """
    x = x0
    for t in range(1, s.T + 1):
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = q_step(x, t, z, s)
        yield x


def q_posterior(x_t: torch.Tensor, x0: torch.Tensor, t, s: Schedule) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of the posterior q(x_{t-1} | x_t, x_0) (Ho et al. eq. 6-7).

    mean = beta_t sqrt(alpha_bar_{t-1}) / (1 - alpha_bar_t) · x_0
         + (1 - alpha_bar_{t-1}) sqrt(alpha_t) / (1 - alpha_bar_t) · x_t
    var  = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)          (= beta-tilde_t)
    """
    term_x0, term_xt = q_posterior_mean_terms(x_t, x0, t, s)
    mean = term_x0 + term_xt
    var = _coef(s.posterior_variance, t, x_t)
    return mean, var.expand_as(mean)


def q_posterior_mean_terms(x_t: torch.Tensor, x0: torch.Tensor, t, s: Schedule) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of the posterior mean mu-tilde_t = coef_x0 · x_0 + coef_xt · x_t (Ho et al. eq. 7), as images."""
    _check_t(t, s, lowest=1)
    return _coef(s.posterior_mean_coef_x0, t, x_t) * x0, _coef(s.posterior_mean_coef_xt, t, x_t) * x_t


def predict_x0(x_t: torch.Tensor, t, eps: torch.Tensor, s: Schedule) -> torch.Tensor:
    """Invert the closed form for x_0: x̂_0 = (x_t - sqrt(1 - alpha_bar_t) ε) / sqrt(alpha_bar_t).

    Undefined where alpha_bar_t = 0 (zero terminal SNR); the samplers avoid that point.
    """
    _check_t(t, s)
    return (x_t - _coef(s.sqrt_one_minus_alpha_bars, t, x_t) * eps) / _coef(s.sqrt_alpha_bars, t, x_t)


def predict_eps(x_t: torch.Tensor, t, x0: torch.Tensor, s: Schedule) -> torch.Tensor:
    """The noise that explains x_t given x_0: ε = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t)."""
    _check_t(t, s, lowest=1)
    return (x_t - _coef(s.sqrt_alpha_bars, t, x_t) * x0) / _coef(s.sqrt_one_minus_alpha_bars, t, x_t)


def classifier_free_guidance(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, w: float) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans 2022): ε̂ = ε̂_uncond + w · (ε̂_cond − ε̂_uncond).

    w = 0 is the unconditional model, w = 1 the conditional one, w > 1 pushes past it.
    """
    return eps_uncond + w * (eps_cond - eps_uncond)


DDPM_VARIANCES = ("fixed_small", "fixed_large")  # diffusers' variance_type: sigma_t² = beta-tilde_t or beta_t


def ddpm_variances(s: Schedule, variance: str = "fixed_small") -> np.ndarray:
    """sigma_t² of the DDPM step for every t: beta-tilde_t ("fixed_small") or beta_t ("fixed_large").

    Ho et al. (§3.2) found both give similar samples: beta-tilde_t is optimal for x_0 known, beta_t for x_0 ~ N(0, I).
    """
    checks.one_of("DDPM variance", variance, DDPM_VARIANCES)
    return s.posterior_variance if variance == "fixed_small" else s.betas


def ddpm_step(
    x_t: torch.Tensor, t, eps: torch.Tensor, s: Schedule, noise: torch.Tensor | None, clip_x0: bool = True,
    variance: str = "fixed_small",
) -> StepOutput:
    """One ancestral step x_t -> x_{t-1} ~ p(x_{t-1} | x_t) (Ho et al. Alg. 2), variance beta-tilde_t or beta_t.

    1. x̂_0 from the predicted noise (clipped to [-1, 1] if ``clip_x0``)
    2. posterior mean of q(x_{t-1} | x_t, x̂_0); variance sigma_t² (:func:`ddpm_variances`)
    3. x_{t-1} = mean + sigma_t · z, with no noise added at t = 1
    """
    # 1. predicted clean image
    x0_hat = _x0_hat(x_t, t, eps, s, clip_x0)
    # 2. posterior q(x_{t-1} | x_t, x̂_0), with the posterior's variance or beta_t
    mean, var = q_posterior(x_t, x0_hat, t, s)
    if variance != "fixed_small":
        var = _coef(ddpm_variances(s, variance), t, x_t).expand_as(mean)
    term_x0, term_xt = q_posterior_mean_terms(x_t, x0_hat, t, s)  # the mean's terms, summed as q_posterior does
    # 3. add noise except on the last step (t = 1 -> x_0)
    if noise is None:
        return StepOutput(mean, x0_hat, eps, {"x0_hat": term_x0, "x_t": term_xt, "noise": torch.zeros_like(mean)})
    ts = t if isinstance(t, torch.Tensor) else torch.tensor(t)
    nonzero = (ts > 1).to(x_t.dtype).reshape(-1, *([1] * (x_t.ndim - 1))) if ts.ndim else (ts > 1).to(x_t.dtype)
    term_noise = nonzero * var.sqrt() * noise
    return StepOutput(mean + term_noise, x0_hat, eps, {"x0_hat": term_x0, "x_t": term_xt, "noise": term_noise})


def ddim_sigma(t, t_prev, s: Schedule, eta: float) -> float:
    """DDIM's sigma_t(eta) = eta · sqrt((1 - ab_prev)/(1 - ab_t)) · sqrt(1 - ab_t/ab_prev) (Song et al. eq. 16)."""
    return float(_ddim_sigmas(int(t), int(t_prev), s, eta))


def ddim_coefficients(t, t_prev, s: Schedule, eta: float) -> tuple[float, float, float]:
    """(sqrt(ab_prev), sqrt(1 - ab_prev - sigma²), sigma) of the DDIM update (Song et al. eq. 12):

    x_{t_prev} = sqrt(ab_prev) x̂_0 + sqrt(1 - ab_prev - sigma²) ε + sigma z, sigma = sigma_t(eta).
    """
    return tuple(float(c) for c in _ddim_coefficients(int(t), int(t_prev), s, eta))


def _ddim_coefficients(t, t_prev, s: Schedule, eta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ddim_coefficients elementwise for arrays of t and t_prev."""
    sigma = _ddim_sigmas(t, t_prev, s, eta)
    ab_prev = s.alpha_bars[np.asarray(t_prev)]
    return np.sqrt(ab_prev), np.sqrt(1.0 - ab_prev - sigma**2), sigma


def _ddim_sigmas(t, t_prev, s: Schedule, eta: float) -> np.ndarray:
    """ddim_sigma elementwise for arrays of t and t_prev."""
    ab = s.alpha_bars
    t, t_prev = np.asarray(t), np.asarray(t_prev)
    return eta * np.sqrt((1.0 - ab[t_prev]) / (1.0 - ab[t]) * (1.0 - ab[t] / ab[t_prev]))


def ddim_step(
    x_t: torch.Tensor,
    t,
    t_prev,
    eps: torch.Tensor,
    s: Schedule,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
    clip_x0: bool = True,
    use_clipped_model_output: bool = False,
) -> StepOutput:
    """One DDIM step x_t -> x_{t_prev} (Song et al. 2021, eq. 12), as diffusers' DDIMScheduler.step.

    x_{t_prev} = sqrt(ab_prev) x̂_0 + sqrt(1 - ab_prev - sigma²) ε + sigma z
    ``t_prev = 0`` means alpha_bar = 1 (the clean image). ``t`` and ``t_prev``
    may be ints or LongTensors of shape (B,). ``use_clipped_model_output``
    (diffusers' name; improved-diffusion always does it) re-derives ε from the
    clipped x̂_0 so both terms of the update agree — it matters under strong guidance.
    """
    _check_t(t, s, lowest=1)
    _check_t(t_prev, s)
    ts, ts_prev = (np.asarray(v.cpu().numpy() if isinstance(v, torch.Tensor) else v) for v in (t, t_prev))
    if np.any(ts_prev < 0) or np.any(ts_prev >= ts):
        raise ValueError(f"t_prev must lie in [0, t), got t={t}, t_prev={t_prev}.")
    eta = checks.finite_number("eta", eta, 0.0, 1.0)
    # 1. predicted clean image
    x0_hat = _x0_hat(x_t, t, eps, s, clip_x0)
    if clip_x0 and use_clipped_model_output:
        eps = predict_eps(x_t, t, x0_hat, s)
    # 2. sigma_t(eta) and the direction pointing to x_t
    coef_x0, coef_eps, sigma = _ddim_coefficients(ts, ts_prev, s, eta)  # scalars or (B,)
    shape = (-1, *([1] * (x_t.ndim - 1))) if sigma.ndim else ()
    sigma_t = torch.as_tensor(sigma, dtype=x_t.dtype).reshape(shape)
    direction = torch.as_tensor(coef_eps, dtype=x_t.dtype).reshape(shape) * eps
    # 3. x_{t_prev}
    term_x0 = torch.as_tensor(coef_x0, dtype=x_t.dtype).reshape(shape) * x0_hat
    x_prev = term_x0 + direction
    term_noise = torch.zeros_like(x_prev)
    if eta > 0:
        if noise is None:
            raise ValueError("ddim_step with eta > 0 needs a noise tensor.")
        term_noise = sigma_t * noise
        x_prev = x_prev + term_noise
    return StepOutput(x_prev, x0_hat, eps, {"x0_hat": term_x0, "eps": direction, "noise": term_noise})

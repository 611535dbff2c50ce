"""Noise schedules: beta_t for t = 1..T, and everything derived from it.

Indexing follows the tutorial: t = 0 is the clean image, t = T is (close to)
pure noise. Every array of a :class:`Schedule` has length T + 1 and index t is
the tutorial's t; index 0 holds beta_0 = 0, alpha_0 = 1, alpha_bar_0 = 1.

All arrays are float64 and read-only: they are computed once here and
imported everywhere else (one source of truth).

The beta formulas are those of diffusers' ``DDPMScheduler`` so the numbers
equal the reference implementation (tests check this):

- ``linear``         Ho et al. 2020: beta linear from beta_start to beta_end.
- ``scaled_linear``  Stable Diffusion: sqrt(beta) linear from sqrt(beta_start)
                     to sqrt(beta_end).
- ``cosine``         Nichol & Dhariwal 2021 (diffusers "squaredcos_cap_v2"):
                     alpha_bar(t) = cos²(((t/T + s) / (1 + s)) · π/2),
                     beta_t = min(1 - alpha_bar(t)/alpha_bar(t-1), max_beta).
- ``sigmoid``        GeoDiff (Xu et al. 2022), diffusers' "sigmoid":
                     beta = sigmoid(linspace(-6, 6, T)) · (beta_end - beta_start)
                     + beta_start. (Not the sigmoid-on-alpha_bar schedule of
                     Jabri et al. 2022.)

``zero_terminal_snr=True`` rescales any of them as Lin et al. 2023 (Alg. 1)
so that alpha_bar_T = 0 exactly (SNR_T = 0, log-SNR_T = -inf).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

import numpy as np

from . import checks

SCHEDULE_NAMES = ("linear", "scaled_linear", "cosine", "sigmoid")

# Defaults per family: one source of truth for the UI, the CLIs and the tests.
DEFAULT_T = 1000
DEFAULT_BETAS = {
    "linear": (1e-4, 0.02),  # Ho et al. 2020
    "scaled_linear": (0.00085, 0.012),  # Stable Diffusion v1
    "sigmoid": (1e-4, 0.02),
}
DEFAULT_COSINE_S = 0.008
DEFAULT_MAX_BETA = 0.999
# params shown under the paper's symbols in labels, as the controls name them
LABEL_NAMES = {"cosine_s": "s", "beta_start": "β_start", "beta_end": "β_end", "max_beta": "β_max",
               "zero_terminal_snr": "zero terminal SNR"}
MAX_T = 100_000  # far beyond any real schedule; keeps memory per call bounded


@dataclass(frozen=True, eq=False)
class Schedule:
    """A noise schedule and the quantities derived from it, all length T + 1.

    Two schedules are equal when their family, parameters and betas are equal.
    """

    name: str
    T: int
    params: dict = field(compare=False)
    betas: np.ndarray = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))  # read-only, shared via the cache
        betas = self.betas
        alphas = 1.0 - betas
        alpha_bars = np.cumprod(alphas)  # alpha_bar_t = prod_{i<=t} alpha_i
        with np.errstate(divide="ignore"):
            snr = alpha_bars / (1.0 - alpha_bars)  # SNR(t) = alpha_bar / (1 - alpha_bar)
            log_snr = np.log(snr)
        derived = {
            "alphas": alphas,
            "alpha_bars": alpha_bars,
            "snr": snr,
            "log_snr": log_snr,
            "sqrt_alpha_bars": np.sqrt(alpha_bars),
            "sqrt_one_minus_alpha_bars": np.sqrt(1.0 - alpha_bars),
            **_posterior_coefficients(betas, alphas, alpha_bars),
        }
        for name, arr in {"betas": betas, **derived}.items():
            arr = np.array(arr, dtype=np.float64)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    # Declared for readers and type checkers; set in __post_init__.
    alphas: np.ndarray = field(init=False, repr=False, compare=False)
    alpha_bars: np.ndarray = field(init=False, repr=False, compare=False)
    snr: np.ndarray = field(init=False, repr=False, compare=False)
    log_snr: np.ndarray = field(init=False, repr=False, compare=False)
    sqrt_alpha_bars: np.ndarray = field(init=False, repr=False, compare=False)
    sqrt_one_minus_alpha_bars: np.ndarray = field(init=False, repr=False, compare=False)
    posterior_variance: np.ndarray = field(init=False, repr=False, compare=False)
    posterior_mean_coef_x0: np.ndarray = field(init=False, repr=False, compare=False)
    posterior_mean_coef_xt: np.ndarray = field(init=False, repr=False, compare=False)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return (self.name, dict(self.params)) == (other.name, dict(other.params)) and np.array_equal(
            self.betas, other.betas
        )

    def __hash__(self) -> int:
        return hash((self.name, tuple(sorted(self.params.items())), self.betas.tobytes()))

    @property
    def label(self) -> str:
        """A short human-readable description, e.g. 'cosine (T=1000, s=0.008)'."""
        def part(k, v) -> str:
            name = LABEL_NAMES.get(k, k)
            if isinstance(v, bool):
                return name if v else f"no {name}"
            return f"{name}={v:g}" if isinstance(v, float) else f"{name}={v}"

        inner = ", ".join(part(k, v) for k, v in self.params.items())
        return f"{self.name} ({inner})" if inner else self.name


def _posterior_coefficients(betas: np.ndarray, alphas: np.ndarray, alpha_bars: np.ndarray) -> dict:
    """q(x_{t-1} | x_t, x_0) = N(coef_x0 · x_0 + coef_xt · x_t, var) for t >= 1 (Ho et al. eq. 7); index 0 is 0.

    var     = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)          (beta-tilde_t)
    coef_x0 = beta_t sqrt(alpha_bar_{t-1}) / (1 - alpha_bar_t)
    coef_xt = (1 - alpha_bar_{t-1}) sqrt(alpha_t) / (1 - alpha_bar_t)
    """
    ab, ab_prev = alpha_bars[1:], alpha_bars[:-1]
    pad = lambda v: np.concatenate([[0.0], v])  # noqa: E731  (t = 0 has no posterior)
    return {
        "posterior_variance": pad(betas[1:] * (1.0 - ab_prev) / (1.0 - ab)),
        "posterior_mean_coef_x0": pad(betas[1:] * np.sqrt(ab_prev) / (1.0 - ab)),
        "posterior_mean_coef_xt": pad((1.0 - ab_prev) * np.sqrt(alphas[1:]) / (1.0 - ab)),
    }


def _check_T(T) -> int:
    return checks.whole_number("T", T, 1, MAX_T)


def _check_beta_range(beta_start, beta_end) -> tuple[float, float]:
    for label, v in (("beta_start", beta_start), ("beta_end", beta_end)):
        if not 0.0 < checks.finite_number(label, v) < 1.0:
            raise ValueError(f"{label} must lie strictly between 0 and 1, got {v:g}.")
    if beta_start > beta_end:
        raise ValueError(f"beta_start ({beta_start:g}) must not exceed beta_end ({beta_end:g}).")
    return float(beta_start), float(beta_end)


def linear_betas(T: int, beta_start: float, beta_end: float) -> np.ndarray:
    """beta_t linear in t (Ho et al. 2020), t = 1..T."""
    return np.linspace(beta_start, beta_end, T, dtype=np.float64)


def scaled_linear_betas(T: int, beta_start: float, beta_end: float) -> np.ndarray:
    """sqrt(beta_t) linear in t (Stable Diffusion), t = 1..T."""
    return np.linspace(beta_start**0.5, beta_end**0.5, T, dtype=np.float64) ** 2


def cosine_betas(T: int, s: float, max_beta: float) -> np.ndarray:
    """Nichol & Dhariwal 2021: betas from alpha_bar(t) = cos²((t/T + s)/(1 + s) · π/2)."""
    t = np.arange(T + 1, dtype=np.float64) / T
    f = np.cos((t + s) / (1.0 + s) * math.pi / 2) ** 2
    return np.minimum(1.0 - f[1:] / f[:-1], max_beta)  # beta_t = 1 - alpha_bar(t)/alpha_bar(t-1), capped


def sigmoid_betas(T: int, beta_start: float, beta_end: float) -> np.ndarray:
    """GeoDiff / diffusers 'sigmoid': beta = sigmoid(linspace(-6, 6, T)) scaled to [beta_start, beta_end]."""
    x = np.linspace(-6.0, 6.0, T, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-x)) * (beta_end - beta_start) + beta_start


def rescale_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Lin et al. 2023, Algorithm 1: shift and scale sqrt(alpha_bar) so that alpha_bar_T = 0."""
    # 1. sqrt(alpha_bar) of the original schedule
    sqrt_ab = np.sqrt(np.cumprod(1.0 - betas))
    first, last = sqrt_ab[0], sqrt_ab[-1]
    # 2. shift so the last step is zero, scale so the first step is unchanged
    sqrt_ab = (sqrt_ab - last) * first / (first - last)
    # 3. back to betas: alpha_t = alpha_bar_t / alpha_bar_{t-1}
    ab = sqrt_ab**2
    alphas = np.concatenate([ab[:1], ab[1:] / ab[:-1]])
    return 1.0 - alphas


def make_schedule(
    name: str,
    T: int = DEFAULT_T,
    beta_start: float | None = None,
    beta_end: float | None = None,
    cosine_s: float = DEFAULT_COSINE_S,
    max_beta: float = DEFAULT_MAX_BETA,
    zero_terminal_snr: bool = False,
) -> Schedule:
    """Build a :class:`Schedule` by family name.

    ``beta_start``/``beta_end`` apply to linear, scaled_linear and sigmoid
    (defaults per family in ``DEFAULT_BETAS``); ``cosine_s`` (the offset s of Nichol & Dhariwal)
    and ``max_beta`` to cosine.
    Raises ``ValueError`` with a readable message on unknown names or
    impossible values. Results are cached (schedules are immutable).
    """
    args = (name, T, beta_start, beta_end, cosine_s, max_beta, zero_terminal_snr)
    try:
        hash(args)
    except TypeError:
        raise ValueError(f"Schedule parameters must be plain numbers and a name, got {args!r}.") from None
    return _make_schedule(*args)


@lru_cache(maxsize=128, typed=True)  # typed: True and 1 are different keys, so validation always runs
def _make_schedule(name, T, beta_start, beta_end, cosine_s, max_beta, zero_terminal_snr) -> Schedule:
    if not isinstance(name, str) or name not in SCHEDULE_NAMES:
        raise ValueError(f"Unknown schedule {name!r}; choose one of: {', '.join(SCHEDULE_NAMES)}.")
    T = _check_T(T)
    checks.flag("zero_terminal_snr", zero_terminal_snr)
    if zero_terminal_snr and T < 2:
        raise ValueError("zero_terminal_snr needs T of at least 2 steps.")

    if name == "cosine":
        cosine_s = checks.finite_number("Cosine offset s", cosine_s, 0.0, 1.0)
        max_beta = checks.finite_number("Cosine max_beta", max_beta, 0.0, 1.0)
        if max_beta == 0.0:
            raise ValueError("Cosine max_beta must be above 0, got 0.")
        betas = cosine_betas(T, cosine_s, max_beta)
        params = {"T": T, "cosine_s": cosine_s, "max_beta": max_beta}
    else:
        default_start, default_end = DEFAULT_BETAS[name]
        beta_start, beta_end = _check_beta_range(
            default_start if beta_start is None else beta_start,
            default_end if beta_end is None else beta_end,
        )
        fn = {"linear": linear_betas, "scaled_linear": scaled_linear_betas, "sigmoid": sigmoid_betas}[name]
        betas = fn(T, beta_start, beta_end)
        params = {"T": T, "beta_start": beta_start, "beta_end": beta_end}

    if zero_terminal_snr:
        betas = rescale_zero_terminal_snr(betas)
        params["zero_terminal_snr"] = True
    if not np.all(np.isfinite(betas)) or np.any(betas <= 0) or np.any(betas > 1):
        raise ValueError("These parameters give betas outside (0, 1]; choose other values.")

    return Schedule(name=name, T=T, params=params, betas=np.concatenate([[0.0], betas]))

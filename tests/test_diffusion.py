"""Specification of explorer.diffusion, checked against references.

References: diffusers' DDPMScheduler / DDIMScheduler (add_noise, step), the
closed forms of Ho et al. 2020 written out here, Bayes' rule for Gaussians,
the optimal denoiser of a one-image dataset, and Monte-Carlo statistics.

Index shift: diffusers' timestep tau (0..T-1) is our t = tau + 1 (our t = 0 is
the clean image), so diffusers' alphas_cumprod[tau] is our alpha_bars[tau + 1].
"""

import math

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.schedulers.scheduling_ddpm import rescale_zero_terminal_snr

from explorer.diffusion import (
    classifier_free_guidance,
    ddim_step,
    ddpm_step,
    forward_chain,
    predict_eps,
    predict_x0,
    q_posterior,
    q_sample,
    q_step,
)
from explorer.schedules import make_schedule

T = 1000
SHAPE = (2, 1, 8, 8)  # (B, C, H, W)

# our schedule -> the same schedule in diffusers
SCHEDULES = {
    "linear": ({"name": "linear"}, {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02}),
    "cosine": ({"name": "cosine"}, {"beta_schedule": "squaredcos_cap_v2"}),
    "linear-zsnr": (
        {"name": "linear", "zero_terminal_snr": True},
        {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02, "rescale_betas_zero_snr": True},
    ),
}


def ours(key, T=T):
    kwargs = SCHEDULES[key][0]
    return make_schedule(T=T, **kwargs)


def stock(cls, key, T=T, **kwargs):
    """diffusers' scheduler for the same schedule, exactly as shipped (float32 tables)."""
    return cls(num_train_timesteps=T, **SCHEDULES[key][1], **kwargs)


def float64_reference(cls, key, T=T, **kwargs):
    """diffusers' scheduler with its tables promoted to float64.

    Its float32 tables lose digits in 1 - alpha_bar near t = 1 (up to 2e-4 on a
    DDPM step at t = 2), which would hide real errors. Promoted, the step
    formulas are diffusers' own and the betas one float32 rounding (~1e-7) of ours.
    """
    their_kwargs = dict(SCHEDULES[key][1])
    zero_snr = their_kwargs.pop("rescale_betas_zero_snr", False)
    scheduler = cls(num_train_timesteps=T, **their_kwargs, **kwargs)
    betas = scheduler.betas.double()
    if zero_snr:
        betas = rescale_zero_terminal_snr(betas)
    scheduler.betas = betas
    scheduler.alphas = 1.0 - betas
    scheduler.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    scheduler.one = torch.tensor(1.0, dtype=torch.float64)
    scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)  # DDIM, set_alpha_to_one=True
    return scheduler


def gaussians(n, seed, dtype=torch.float32, shape=SHAPE):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=dtype) for _ in range(n)]


def optimal_eps(x_t, t, x_star, s):
    """The optimal denoiser of the dataset {x*}: eps*(x_t, t) = (x_t - sqrt(ab_t) x*) / sqrt(1 - ab_t)."""
    ab = float(s.alpha_bars[t])
    return (x_t - math.sqrt(ab) * x_star) / math.sqrt(1.0 - ab)


# --- q_sample: the closed form q(x_t | x_0) ------------------------------------------------------


@pytest.mark.parametrize("key", list(SCHEDULES))
def test_q_sample_equals_diffusers_add_noise(key):
    s = ours(key)
    x0, noise = gaussians(2, seed=0, dtype=torch.float64, shape=(6, 1, 8, 8))
    x0 = x0.clamp(-1, 1)
    t = torch.tensor([1, 2, 10, 500, 999, 1000])
    expected = float64_reference(DDPMScheduler, key).add_noise(x0, noise, t - 1)
    torch.testing.assert_close(q_sample(x0, t, noise, s), expected, atol=1e-9, rtol=1e-6)


def test_q_sample_in_float32_agrees_with_stock_diffusers_add_noise():
    x0, noise = gaussians(2, seed=0, shape=(6, 1, 8, 8))
    t = torch.tensor([1, 2, 10, 500, 999, 1000])
    expected = stock(DDPMScheduler, "cosine").add_noise(x0, noise, t - 1)
    # their float32 1 - alpha_bar_1 (= 4e-5 for cosine) keeps only ~3 digits, so sqrt(1 - alpha_bar_1)·noise
    # is off by up to ~5e-6 per unit of noise
    torch.testing.assert_close(q_sample(x0, t, noise, ours("cosine")), expected, atol=2e-5, rtol=1e-5)


def test_q_sample_at_t0_is_the_clean_image():
    x0, noise = gaussians(2, seed=1)
    torch.testing.assert_close(q_sample(x0, 0, noise, ours("cosine")), x0, atol=0, rtol=0)


def test_q_sample_at_T_with_zero_terminal_snr_is_pure_noise():
    x0, noise = gaussians(2, seed=2)
    torch.testing.assert_close(q_sample(x0, T, noise, ours("linear-zsnr")), noise, atol=0, rtol=0)


def test_q_sample_keeps_float32_images_float32():
    x0, noise = gaussians(2, seed=3)
    assert q_sample(x0, 500, noise, ours("linear")).dtype == torch.float32


# --- predict_x0 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [0, 1, 10, 500, 1000])
@pytest.mark.parametrize("key", ["linear", "cosine"])
def test_predict_x0_inverts_q_sample_given_the_true_noise(key, t):
    s = ours(key)
    x0, noise = gaussians(2, seed=4, dtype=torch.float64)
    x_t = q_sample(x0, t, noise, s)
    # at t = T, 1/sqrt(ab_T) amplifies rounding by up to ~1e3 (cosine), still far below 1e-9
    torch.testing.assert_close(predict_x0(x_t, t, noise, s), x0, atol=1e-9, rtol=0)


# --- q_posterior: q(x_{t-1} | x_t, x_0) ----------------------------------------------------------


@pytest.mark.parametrize("t", [1, 2, 50, 999, 1000])
@pytest.mark.parametrize("key", list(SCHEDULES))
def test_q_posterior_matches_ho_et_al_eq_7(key, t):
    s = ours(key)
    x_t, x0 = gaussians(2, seed=5, dtype=torch.float64)
    betas = np.asarray(s.betas)
    ab = np.cumprod(1.0 - betas)  # computed here, not read from the schedule
    beta_t, ab_t, ab_prev = betas[t], ab[t], ab[t - 1]
    mean_expected = (
        math.sqrt(ab_prev) * beta_t / (1 - ab_t) * x0 + math.sqrt(1 - beta_t) * (1 - ab_prev) / (1 - ab_t) * x_t
    )
    var_expected = (1 - ab_prev) / (1 - ab_t) * beta_t

    mean, var = q_posterior(x_t, x0, t, s)

    torch.testing.assert_close(mean, mean_expected, atol=1e-12, rtol=1e-9)
    torch.testing.assert_close(var, torch.full_like(mean, var_expected), atol=1e-15, rtol=1e-9)


@pytest.mark.parametrize("t", [2, 50, 700])
def test_q_posterior_is_bayes_rule_for_the_two_gaussians(t):
    # q(x_{t-1} | x_t, x_0) ∝ N(x_t; sqrt(a_t) x_{t-1}, beta_t) · N(x_{t-1}; sqrt(ab_{t-1}) x_0, 1 - ab_{t-1})
    s = ours("cosine")
    x_t, x0 = gaussians(2, seed=6, dtype=torch.float64)
    a_t, beta_t, ab_prev = s.alphas[t], s.betas[t], s.alpha_bars[t - 1]
    precision = a_t / beta_t + 1.0 / (1.0 - ab_prev)
    mean_expected = (math.sqrt(a_t) / beta_t * x_t + math.sqrt(ab_prev) / (1.0 - ab_prev) * x0) / precision

    mean, var = q_posterior(x_t, x0, t, s)

    torch.testing.assert_close(mean, mean_expected, atol=1e-12, rtol=1e-9)
    torch.testing.assert_close(var, torch.full_like(mean, 1.0 / precision), atol=1e-15, rtol=1e-9)


def test_q_posterior_at_t1_is_the_point_mass_on_x0():
    s = ours("linear")
    x_t, x0 = gaussians(2, seed=7, dtype=torch.float64)
    mean, var = q_posterior(x_t, x0, 1, s)
    # beta_1 / (1 - alpha_bar_1) is 1 up to rounding: 1 - (1 - beta_1) != beta_1 in floating point
    torch.testing.assert_close(mean, x0, atol=0, rtol=1e-12)
    assert torch.all(var == 0)


@pytest.mark.parametrize("t", [2, 100, 900])
def test_sampling_the_posterior_reproduces_the_marginal_at_t_minus_1(t):
    # x_t ~ q(x_t | x_0), then x_{t-1} ~ q(x_{t-1} | x_t, x_0)  =>  x_{t-1} ~ q(x_{t-1} | x_0)
    s = ours("linear")
    n, x0_value = 20_000, 0.6
    x0 = torch.full((n,), x0_value, dtype=torch.float64)
    eps, z = gaussians(2, seed=8, dtype=torch.float64, shape=(n,))
    mean, var = q_posterior(q_sample(x0, t, eps, s), x0, t, s)
    x_prev = mean + var.sqrt() * z
    expected_mean, expected_var = math.sqrt(s.alpha_bars[t - 1]) * x0_value, 1.0 - s.alpha_bars[t - 1]
    # 5 standard errors of the sample mean and of the sample variance (seeded, so deterministic)
    assert abs(x_prev.mean().item() - expected_mean) < 5 * math.sqrt(expected_var / n)
    assert abs(x_prev.var().item() - expected_var) < 5 * expected_var * math.sqrt(2 / (n - 1))


# --- ddpm_step: one ancestral step, as diffusers' DDPMScheduler.step -----------------------------


def _ddpm_reference_and_ours(scheduler, s, t, clip, dtype, seed=9):
    x_t, eps = gaussians(2, seed=seed, dtype=dtype)
    scheduler.set_timesteps(T)
    # diffusers draws its variance noise as torch.randn(shape, generator=g, dtype=...) on CPU
    expected = scheduler.step(eps, t - 1, x_t, generator=torch.Generator().manual_seed(1234)).prev_sample
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(1234), dtype=dtype)
    return ddpm_step(x_t, t, eps, s, noise, clip_x0=clip).x_prev, expected


# x_0 cannot be recovered from x_T when alpha_bar_T = 0, so the zero-SNR schedule stops at T - 1
DDPM_CASES = [
    (key, t) for key in SCHEDULES for t in (1, 2, 10, 500, 999, 1000) if not (key.endswith("zsnr") and t == T)
]


@pytest.mark.parametrize("clip", [True, False], ids=["clip", "noclip"])
@pytest.mark.parametrize(("key", "t"), DDPM_CASES)
def test_ddpm_step_equals_diffusers_step(key, t, clip):
    scheduler = float64_reference(DDPMScheduler, key, clip_sample=clip)
    got, expected = _ddpm_reference_and_ours(scheduler, ours(key), t, clip, torch.float64)
    # Their betas are float32 roundings of ours (~1e-7 relative); for cosine at t = T the capped
    # beta_T = 0.999 rounds to 0.99900001, which moves 1 - beta_T by 1.3e-5 relative, and unclipped x̂_0
    # (~1e4 there) carries that into the step. A wrong formula would be off by far more (beta vs beta-tilde: 2x).
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=5e-5)


@pytest.mark.parametrize("t", [1, 10, 500, 1000])
def test_ddpm_step_in_float32_agrees_with_stock_diffusers_to_float32_accuracy(t):
    got, expected = _ddpm_reference_and_ours(stock(DDPMScheduler, "linear"), ours("linear"), t, True, torch.float32)
    # their float32 1 - alpha_bar_{t-1} loses digits at small t (~2e-5 absolute here)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)


def test_ddpm_step_adds_no_noise_at_t1():
    s = ours("cosine")
    x_t, eps, z = gaussians(3, seed=10)
    torch.testing.assert_close(ddpm_step(x_t, 1, eps, s, z).x_prev, ddpm_step(x_t, 1, eps, s, None).x_prev, atol=0, rtol=0)


def test_ddpm_step_adds_posterior_std_times_noise():
    s = ours("linear")
    x_t, eps, z = gaussians(3, seed=11, dtype=torch.float64)
    t = 300
    beta_tilde = (1 - s.alpha_bars[t - 1]) / (1 - s.alpha_bars[t]) * s.betas[t]
    difference = ddpm_step(x_t, t, eps, s, z).x_prev - ddpm_step(x_t, t, eps, s, None).x_prev
    torch.testing.assert_close(difference, math.sqrt(beta_tilde) * z, atol=1e-12, rtol=1e-9)


# --- ddim_step: one DDIM step, as diffusers' DDIMScheduler.step ----------------------------------

# (num_inference_steps, diffusers timestep tau): diffusers steps tau -> tau - T // num_inference_steps,
# and a negative previous timestep means alpha_bar = 1 (set_alpha_to_one=True), i.e. our t_prev = 0.
# Our (t, t_prev): (1000, 980) (501, 481) (21, 1) (20, 0) (1, 0) (1000, 900) (101, 1) (100, 0) (2, 1)
DDIM_CASES = [(50, 999), (50, 500), (50, 20), (50, 19), (50, 0), (10, 999), (10, 100), (10, 99), (1000, 1)]


def _ddim_t_pair(n_steps, tau):
    """Our (t, t_prev) for diffusers' step from tau with n_steps inference steps."""
    tau_prev = tau - T // n_steps
    return tau + 1, max(tau_prev + 1, 0)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize(
    ("key", "n_steps", "tau"),
    [(key, n, tau) for key in SCHEDULES for n, tau in DDIM_CASES if not (key.endswith("zsnr") and tau == T - 1)],
)
def test_ddim_step_equals_diffusers_step(key, n_steps, tau, eta):
    scheduler = float64_reference(DDIMScheduler, key)  # clip_sample=True, set_alpha_to_one=True (defaults)
    scheduler.set_timesteps(n_steps)
    x_t, eps, z = gaussians(3, seed=12, dtype=torch.float64)
    expected = scheduler.step(eps, tau, x_t, eta=eta, variance_noise=z).prev_sample
    t, t_prev = _ddim_t_pair(n_steps, tau)
    got = ddim_step(x_t, t, t_prev, eps, ours(key), eta=eta, noise=z).x_prev
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize(("n_steps", "tau"), [(50, 999), (50, 500), (50, 19)])
def test_ddim_step_without_clipping_equals_diffusers_step(n_steps, tau, eta):
    scheduler = float64_reference(DDIMScheduler, "linear", clip_sample=False)
    scheduler.set_timesteps(n_steps)
    x_t, eps, z = gaussians(3, seed=27, dtype=torch.float64)
    expected = scheduler.step(eps, tau, x_t, eta=eta, variance_noise=z).prev_sample
    t, t_prev = _ddim_t_pair(n_steps, tau)
    got = ddim_step(x_t, t, t_prev, eps, ours("linear"), eta=eta, noise=z, clip_x0=False).x_prev
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize(("n_steps", "tau"), [(50, 999), (50, 19), (10, 500)])
def test_ddim_step_in_float32_agrees_with_stock_diffusers(n_steps, tau, eta):
    scheduler = stock(DDIMScheduler, "cosine")
    scheduler.set_timesteps(n_steps)
    x_t, eps, z = gaussians(3, seed=13)
    expected = scheduler.step(eps, tau, x_t, eta=eta, variance_noise=z).prev_sample
    t, t_prev = _ddim_t_pair(n_steps, tau)
    got = ddim_step(x_t, t, t_prev, eps, ours("cosine"), eta=eta, noise=z).x_prev
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)


def test_ddim_step_to_t_prev_zero_returns_the_clipped_x0_prediction():
    s = ours("linear")
    x_t, eps = gaussians(2, seed=14)
    expected = predict_x0(x_t, 200, eps, s).clamp(-1, 1)
    torch.testing.assert_close(ddim_step(x_t, 200, 0, eps, s, eta=1.0, noise=eps).x_prev, expected, atol=1e-6, rtol=1e-6)


def test_ddim_step_with_eta_above_zero_requires_noise():
    x_t, eps = gaussians(2, seed=15)
    with pytest.raises(ValueError, match="noise"):
        ddim_step(x_t, 500, 480, eps, ours("linear"), eta=0.5, noise=None).x_prev


# --- the optimal denoiser of a one-image dataset brings every sampler back to that image ---------


@pytest.mark.parametrize("key", ["linear", "cosine"])
def test_ddpm_loop_with_the_optimal_denoiser_returns_the_training_image(key):
    s = ours(key)
    x_star = torch.rand((1, 1, 8, 8), generator=torch.Generator().manual_seed(16)) * 1.8 - 0.9
    g = torch.Generator().manual_seed(17)
    x = torch.randn(x_star.shape, generator=g)
    for t in range(T, 0, -1):
        x = ddpm_step(x, t, optimal_eps(x, t, x_star, s), s, torch.randn(x.shape, generator=g)).x_prev
    torch.testing.assert_close(x, x_star, atol=1e-4, rtol=0)


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("key", ["linear", "cosine"])
def test_ddim_loop_of_50_steps_with_the_optimal_denoiser_returns_the_training_image(key, eta):
    s = ours(key)
    x_star = torch.rand((1, 1, 8, 8), generator=torch.Generator().manual_seed(18)) * 1.8 - 0.9
    g = torch.Generator().manual_seed(19)
    x = torch.randn(x_star.shape, generator=g)
    ts = list(range(T, 0, -T // 50)) + [0]  # 1000, 980, ..., 20, 0
    for t, t_prev in zip(ts[:-1], ts[1:]):
        x = ddim_step(x, t, t_prev, optimal_eps(x, t, x_star, s), s, eta=eta, noise=torch.randn(x.shape, generator=g)).x_prev
    torch.testing.assert_close(x, x_star, atol=1e-4, rtol=0)


# --- the step-by-step forward chain has the closed form's marginals ------------------------------


def test_q_step_is_one_step_of_the_forward_process():
    s = ours("linear")
    x_prev, z = gaussians(2, seed=20, dtype=torch.float64)
    expected = math.sqrt(1 - s.betas[400]) * x_prev + math.sqrt(s.betas[400]) * z
    torch.testing.assert_close(q_step(x_prev, 400, z, s), expected, atol=1e-15, rtol=1e-12)


def test_forward_chain_yields_x_1_to_x_T():
    frames = list(forward_chain(torch.zeros(SHAPE), ours("linear", T=25), torch.Generator().manual_seed(0)))
    assert len(frames) == 25
    assert all(frame.shape == SHAPE for frame in frames)


@pytest.mark.parametrize("key", ["linear", "cosine"])
def test_forward_chain_has_the_closed_form_mean_and_variance(key):
    s = ours(key)
    n, x0_value = 20_000, 0.8
    checked = {1: None, 10: None, 100: None, 500: None, 1000: None}
    chain = forward_chain(torch.full((n,), x0_value, dtype=torch.float64), s, torch.Generator().manual_seed(21))
    for t, x_t in enumerate(chain, start=1):
        if t in checked:
            checked[t] = (x_t.mean().item(), x_t.var().item())
    for t, (mean, var) in checked.items():
        expected_mean, expected_var = math.sqrt(s.alpha_bars[t]) * x0_value, 1.0 - s.alpha_bars[t]
        # 5 standard errors of the sample mean and of the sample variance (seeded, so deterministic)
        assert abs(mean - expected_mean) < 5 * math.sqrt(expected_var / n), f"mean at t={t}"
        assert abs(var - expected_var) < 5 * expected_var * math.sqrt(2 / (n - 1)), f"variance at t={t}"


# --- t as int or as LongTensor (B,) --------------------------------------------------------------

BATCH_T = [1, 2, 500, 1000]


def _per_sample(fn, *tensors):
    """fn(*row_tensors, t) for each batch row with an int t, stacked back into a batch."""
    return torch.cat([fn(*(x[i : i + 1] for x in tensors), t) for i, t in enumerate(BATCH_T)])


def _batch(seed, n=3):
    return gaussians(n, seed=seed, shape=(len(BATCH_T), 1, 4, 4))


def test_q_sample_with_a_batch_of_t_equals_one_int_t_per_sample():
    s, (x0, noise) = ours("cosine"), _batch(22, 2)
    expected = _per_sample(lambda x, e, t: q_sample(x, t, e, s), x0, noise)
    torch.testing.assert_close(q_sample(x0, torch.tensor(BATCH_T), noise, s), expected, atol=0, rtol=0)


def test_predict_x0_with_a_batch_of_t_equals_one_int_t_per_sample():
    s, (x_t, eps) = ours("cosine"), _batch(23, 2)
    expected = _per_sample(lambda x, e, t: predict_x0(x, t, e, s), x_t, eps)
    torch.testing.assert_close(predict_x0(x_t, torch.tensor(BATCH_T), eps, s), expected, atol=0, rtol=0)


def test_q_posterior_with_a_batch_of_t_equals_one_int_t_per_sample():
    s, (x_t, x0) = ours("linear"), _batch(24, 2)
    mean, var = q_posterior(x_t, x0, torch.tensor(BATCH_T), s)
    torch.testing.assert_close(mean, _per_sample(lambda x, y, t: q_posterior(x, y, t, s)[0], x_t, x0), atol=0, rtol=0)
    torch.testing.assert_close(var, _per_sample(lambda x, y, t: q_posterior(x, y, t, s)[1], x_t, x0), atol=0, rtol=0)


def test_ddpm_step_with_a_batch_of_t_equals_one_int_t_per_sample_including_no_noise_at_t1():
    s, (x_t, eps, z) = ours("linear"), _batch(25)
    expected = _per_sample(lambda x, e, n, t: ddpm_step(x, t, e, s, n).x_prev, x_t, eps, z)
    torch.testing.assert_close(ddpm_step(x_t, torch.tensor(BATCH_T), eps, s, z).x_prev, expected, atol=0, rtol=0)


def test_ddim_step_with_a_batch_of_equal_t_equals_int_t():
    s, (x_t, eps) = ours("linear"), _batch(26, 2)
    batch_t, batch_t_prev = torch.full((len(BATCH_T),), 500), torch.full((len(BATCH_T),), 480)
    torch.testing.assert_close(
        ddim_step(x_t, batch_t, batch_t_prev, eps, s).x_prev, ddim_step(x_t, 500, 480, eps, s).x_prev, atol=0, rtol=0
    )


OUT_OF_RANGE = {
    "q_sample t=-1": lambda s, x: q_sample(x, -1, x, s),
    "q_sample t=T+1": lambda s, x: q_sample(x, s.T + 1, x, s),
    "q_sample batch with T+1": lambda s, x: q_sample(x, torch.tensor([5, s.T + 1]), x, s),
    "q_sample batch with -1": lambda s, x: q_sample(x, torch.tensor([-1, 5]), x, s),
    "predict_x0 t=T+1": lambda s, x: predict_x0(x, s.T + 1, x, s),
    "q_posterior t=0": lambda s, x: q_posterior(x, x, 0, s),
    "q_posterior t=T+1": lambda s, x: q_posterior(x, x, s.T + 1, s),
    "q_step t=0": lambda s, x: q_step(x, 0, x, s),
    "ddpm_step t=0": lambda s, x: ddpm_step(x, 0, x, s, x).x_prev,
    "ddpm_step batch with 0": lambda s, x: ddpm_step(x, torch.tensor([0, 3]), x, s, x).x_prev,
    "ddpm_step t=T+1": lambda s, x: ddpm_step(x, s.T + 1, x, s, x).x_prev,
    "ddim_step t=0": lambda s, x: ddim_step(x, 0, 0, x, s).x_prev,
    "ddim_step t=T+1": lambda s, x: ddim_step(x, s.T + 1, 5, x, s).x_prev,
    "ddim_step t_prev=t": lambda s, x: ddim_step(x, 10, 10, x, s).x_prev,
    "ddim_step t_prev=-1": lambda s, x: ddim_step(x, 10, -1, x, s).x_prev,
    "ddim_step eta=1.5": lambda s, x: ddim_step(x, 10, 5, x, s, eta=1.5, noise=x).x_prev,
}


@pytest.mark.parametrize("call", list(OUT_OF_RANGE.values()), ids=list(OUT_OF_RANGE))
def test_out_of_range_timestep_raises_value_error(call):
    s = ours("linear", T=20)
    with pytest.raises(ValueError, match=r"t(_prev)? must lie in|eta must be a number from 0 to 1"):
        call(s, torch.zeros(2, 1, 4, 4))


def test_ddim_step_with_a_batch_of_different_t_equals_one_int_t_per_sample():
    s = make_schedule("cosine", 1000)
    g = torch.Generator().manual_seed(7)
    x_t, eps, z = (torch.randn(3, 1, 4, 4, generator=g) for _ in range(3))
    ts, ts_prev = [1000, 500, 20], [950, 0, 19]
    batched = ddim_step(x_t, torch.tensor(ts), torch.tensor(ts_prev), eps, s, eta=1.0, noise=z).x_prev
    for i, (t, tp) in enumerate(zip(ts, ts_prev)):
        one = ddim_step(x_t[i : i + 1], t, tp, eps[i : i + 1], s, eta=1.0, noise=z[i : i + 1]).x_prev
        torch.testing.assert_close(batched[i : i + 1], one, atol=1e-7, rtol=1e-6)


def test_a_fractional_t_is_rejected_not_truncated():
    s = make_schedule("linear", 1000)
    with pytest.raises(ValueError, match="whole number"):
        q_sample(torch.zeros(1, 1, 2, 2), 2.5, torch.zeros(1, 1, 2, 2), s)


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize(("n_steps", "tau"), [(50, 999), (50, 500), (50, 19), (10, 99)])
def test_ddim_step_with_clipped_model_output_equals_diffusers_step(n_steps, tau, eta):
    scheduler = float64_reference(DDIMScheduler, "cosine")
    scheduler.set_timesteps(n_steps)
    x_t, eps, z = gaussians(3, seed=31, dtype=torch.float64)
    eps = 3 * eps  # large enough that x̂_0 is clipped
    expected = scheduler.step(eps, tau, x_t, eta=eta, variance_noise=z, use_clipped_model_output=True).prev_sample
    t, t_prev = _ddim_t_pair(n_steps, tau)
    got = ddim_step(x_t, t, t_prev, eps, ours("cosine"), eta=eta, noise=z, use_clipped_model_output=True).x_prev
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    if t_prev > 0:  # at t_prev = 0 the ε term has weight 0, so re-deriving ε changes nothing
        assert not torch.allclose(got, ddim_step(x_t, t, t_prev, eps, ours("cosine"), eta=eta, noise=z).x_prev)


# --- what a step returns: x_{t-1} and the x̂_0 and ε it used (diffusers' SchedulerOutput) ---------


@pytest.mark.parametrize("clip", [True, False], ids=["clip", "noclip"])
@pytest.mark.parametrize("t", [2, 500, 1000])
def test_ddpm_step_returns_the_x0_prediction_diffusers_returns(t, clip):
    scheduler = float64_reference(DDPMScheduler, "linear", clip_sample=clip)
    scheduler.set_timesteps(T)
    x_t, eps = gaussians(2, seed=31, dtype=torch.float64)
    expected = scheduler.step(eps, t - 1, x_t, generator=torch.Generator().manual_seed(1)).pred_original_sample
    step = ddpm_step(x_t, t, eps, ours("linear"), None, clip_x0=clip)
    torch.testing.assert_close(step.x0_hat, expected, atol=1e-6, rtol=1e-5)
    assert step.eps is eps  # DDPM steps with the model's ε as given


@pytest.mark.parametrize("clipped_output", [True, False])
@pytest.mark.parametrize(("n_steps", "tau"), [(50, 999), (50, 19)])
def test_ddim_step_returns_the_x0_prediction_diffusers_returns_and_the_eps_it_used(n_steps, tau, clipped_output):
    scheduler = float64_reference(DDIMScheduler, "cosine")
    scheduler.set_timesteps(n_steps)
    x_t, eps = gaussians(2, seed=32, dtype=torch.float64)
    eps = 3 * eps  # far from x_t's noise, so clipping x̂_0 changes it
    expected = scheduler.step(eps, tau, x_t, eta=0.0, use_clipped_model_output=clipped_output).pred_original_sample
    t, t_prev = _ddim_t_pair(n_steps, tau)
    s = ours("cosine")
    step = ddim_step(x_t, t, t_prev, eps, s, use_clipped_model_output=clipped_output)
    torch.testing.assert_close(step.x0_hat, expected, atol=1e-6, rtol=1e-5)
    # the ε in the update: re-derived from the clipped x̂_0, or the model's own
    expected_eps = predict_eps(x_t, t, step.x0_hat, s) if clipped_output else eps
    torch.testing.assert_close(step.eps, expected_eps, atol=0, rtol=0)
    ab_prev = s.alpha_bars[t_prev]
    rebuilt = math.sqrt(ab_prev) * step.x0_hat + math.sqrt(1 - ab_prev) * step.eps
    torch.testing.assert_close(step.x_prev, rebuilt, atol=1e-12, rtol=1e-10)


def test_classifier_free_guidance_interpolates_and_extrapolates():
    uncond, cond = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)
    assert torch.equal(classifier_free_guidance(uncond, cond, 0.0), uncond)
    assert torch.equal(classifier_free_guidance(uncond, cond, 1.0), cond)
    assert torch.equal(classifier_free_guidance(uncond, cond, 3.0), 3 * cond)  # w > 1 pushes past ε̂_cond

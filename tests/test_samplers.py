"""Reverse loops: optimal-denoiser recovery, determinism, guidance, timestep spacings, bad input."""

import numpy as np
import pytest
import torch

from explorer.model import NULL_CLASS, UNet, UNetConfig
from explorer.samplers import (
    ddim_timesteps,
    model_eps_fn,
    reverse_loop,
    sample,
    sampling_schedule,
)
from explorer.schedules import make_schedule

SHAPE = (3, 1, 8, 8)


def one_image_denoiser(x_star: torch.Tensor, s):
    """The optimal ε-predictor when the data set is the single image x*: ε = (x_t - √ᾱ x*) / √(1-ᾱ)."""
    ss = sampling_schedule(s)
    return lambda x, t: (x - ss.sqrt_alpha_bars[t] * x_star) / ss.sqrt_one_minus_alpha_bars[t]


@pytest.fixture(scope="module")
def x_star():
    return torch.rand((1, 1, 8, 8), generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("name", ["linear", "cosine", "scaled_linear", "sigmoid"])
@pytest.mark.parametrize("zero_snr", [False, True])
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(sampler="ddpm"),
        dict(sampler="ddim", steps=50, eta=0.0),
        dict(sampler="ddim", steps=20, eta=1.0, spacing="linspace"),
        dict(sampler="ddim", steps=10, eta=0.5, spacing="leading"),
    ],
    ids=["ddpm", "ddim50", "ddim20-eta1-linspace", "ddim10-eta.5-leading"],
)
def test_every_sampler_returns_the_single_training_image(x_star, name, zero_snr, kwargs):
    s = make_schedule(name, 1000, zero_terminal_snr=zero_snr)
    out = sample(one_image_denoiser(x_star, s), s, SHAPE, seed=3, **kwargs)
    torch.testing.assert_close(out, x_star.expand(SHAPE), atol=1e-4, rtol=0)


def test_img2img_from_an_intermediate_t_returns_the_single_training_image(x_star):
    s = make_schedule("cosine", 1000)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(SHAPE, generator=g)
    for rec in reverse_loop(one_image_denoiser(x_star, s), s, x, g, sampler="ddim", steps=10, t_start=400):
        x = rec.x_prev
    assert rec.t_prev == 0
    torch.testing.assert_close(x, x_star.expand(SHAPE), atol=1e-4, rtol=0)


def test_ddim_eta0_is_deterministic_given_x_T():
    s = make_schedule("linear", 1000)
    eps_fn = lambda x, t: torch.tanh(x) * 0.5  # any fixed function of x_t
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    a = [r.x_prev for r in reverse_loop(eps_fn, s, x_T, torch.Generator().manual_seed(1), steps=20)]
    b = [r.x_prev for r in reverse_loop(eps_fn, s, x_T, torch.Generator().manual_seed(2), steps=20)]
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, atol=0, rtol=0)


def test_same_seed_gives_the_same_ddpm_trajectory_and_another_seed_does_not():
    s = make_schedule("cosine", 50)
    eps_fn = lambda x, t: 0.3 * x
    a = sample(eps_fn, s, SHAPE, seed=5, sampler="ddpm")
    b = sample(eps_fn, s, SHAPE, seed=5, sampler="ddpm")
    c = sample(eps_fn, s, SHAPE, seed=6, sampler="ddpm")
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert not torch.allclose(a, c)


def test_records_carry_the_step_numbers_of_the_schedule():
    s = make_schedule("linear", 100)
    recs = list(reverse_loop(lambda x, t: 0 * x, s, torch.zeros(SHAPE), torch.Generator(), sampler="ddpm"))
    assert [r.t for r in recs] == list(range(100, 0, -1))
    r = recs[10]  # t = 90
    assert r.alpha_bar_t == s.alpha_bars[90] and r.alpha_bar_prev == s.alpha_bars[89]
    beta_tilde = s.betas[90] * (1 - s.alpha_bars[89]) / (1 - s.alpha_bars[90])
    assert r.posterior_var == pytest.approx(beta_tilde, rel=1e-12)
    assert r.sigma == pytest.approx(np.sqrt(beta_tilde), rel=1e-12)
    assert recs[-1].sigma == 0.0  # no noise on the last step


def test_timestep_spacings_match_diffusers():
    from diffusers import DDIMScheduler

    for spacing in ("linspace", "leading", "trailing"):
        ref = DDIMScheduler(num_train_timesteps=1000, timestep_spacing=spacing)
        ref.set_timesteps(50)
        assert ddim_timesteps(1000, 50, spacing) == [int(t) + 1 for t in ref.timesteps], spacing


def test_trailing_spacing_starts_at_T():
    assert ddim_timesteps(1000, 50, "trailing")[0] == 1000
    assert ddim_timesteps(1000, 50, "trailing")[-1] == 20


def test_sampling_schedule_gives_zero_terminal_snr_a_tiny_positive_alpha_bar():
    s = make_schedule("linear", 1000, zero_terminal_snr=True)
    ss = sampling_schedule(s)
    assert s.alpha_bars[-1] == 0.0
    assert 0.0 < ss.alpha_bars[-1] < ss.alpha_bars[-2]
    np.testing.assert_array_equal(ss.alpha_bars[:-1], s.alpha_bars[:-1])
    assert sampling_schedule(make_schedule("linear", 1000)) == make_schedule("linear", 1000)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(sampler="euler"), "Unknown sampler"),
        (dict(steps=0), "steps"),
        (dict(steps=1001), "steps"),
        (dict(steps=2.5), "steps"),
        (dict(eta=1.5), "eta"),
        (dict(eta=float("nan")), "eta"),
        (dict(spacing="random"), "spacing"),
    ],
)
def test_bad_sampler_arguments_raise_clear_errors(kwargs, message):
    s = make_schedule("linear", 1000)
    with pytest.raises(ValueError, match=message):
        sample(lambda x, t: x, s, SHAPE, **kwargs)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    model = UNet(UNetConfig(patch=2, channels=(16, 32), blocks=(1, 1))).eval()
    for p in model.parameters():  # the head is zero-initialised; make the model non-trivial
        p.data.normal_(0, 0.05)
    return model


def test_guidance_1_equals_plain_conditional_sampling(tiny_model):
    s = make_schedule("cosine", 1000)
    labels = torch.tensor([1, 7, 3])
    guided = sample(model_eps_fn(tiny_model, s, labels, 1.0, "fp32"), s, SHAPE[:1] + (1, 28, 28), seed=0, steps=5)

    def conditional(x, t):
        log_snr = torch.full((x.shape[0],), float(s.log_snr[t]))
        return tiny_model(x, log_snr, labels)

    plain = sample(conditional, s, SHAPE[:1] + (1, 28, 28), seed=0, steps=5)
    torch.testing.assert_close(guided, plain, atol=1e-6, rtol=0)


def test_guidance_0_equals_unconditional_sampling(tiny_model):
    s = make_schedule("linear", 1000)
    labels = torch.tensor([1, 7, 3])
    w0 = sample(model_eps_fn(tiny_model, s, labels, 0.0, "fp32"), s, (3, 1, 28, 28), seed=0, steps=5)
    uncond = sample(model_eps_fn(tiny_model, s, torch.full((3,), NULL_CLASS), 1.0, "fp32"), s, (3, 1, 28, 28), seed=0, steps=5)
    torch.testing.assert_close(w0, uncond, atol=1e-6, rtol=0)


def test_bf16_network_gives_float32_eps_close_to_fp32(tiny_model):
    s = make_schedule("cosine", 1000)
    labels = torch.tensor([1, 7, 3])
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    e32 = model_eps_fn(tiny_model, s, labels, 3.0, "fp32")(x, 500)
    e16 = model_eps_fn(tiny_model, s, labels, 3.0, "bf16")(x, 500)
    assert e16.dtype == torch.float32
    assert not torch.equal(e16, e32)  # really ran in bfloat16
    torch.testing.assert_close(e16, e32, atol=0.05 * float(e32.abs().max()), rtol=0)


def test_unknown_precision_is_rejected(tiny_model):
    with pytest.raises(ValueError, match="precision"):
        model_eps_fn(tiny_model, make_schedule("linear", 10), torch.tensor([1]), 1.0, "fp8")

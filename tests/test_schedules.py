"""Specification of explorer.schedules, checked against references.

References: diffusers' DDPMScheduler (the contract in DESIGN.md), published
figures (Ho et al. 2020, Lin et al. 2023), and the schedules' defining formulas
written out here independently of the code under test.
"""

import math

import numpy as np
import pytest
from diffusers import DDPMScheduler
from diffusers.schedulers.scheduling_ddpm import rescale_zero_terminal_snr

from explorer.schedules import make_schedule

# our family name + our kwargs  ->  diffusers beta_schedule + its kwargs
FAMILIES = {
    "linear": ({}, {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02}),
    "scaled_linear": (
        {"beta_start": 0.00085, "beta_end": 0.012},
        {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
    ),
    "cosine": ({}, {"beta_schedule": "squaredcos_cap_v2"}),
    "sigmoid": ({}, {"beta_schedule": "sigmoid", "beta_start": 1e-4, "beta_end": 0.02}),
}
ARRAYS = ("betas", "alphas", "alpha_bars", "snr", "log_snr")

# diffusers builds its tables in float32 and we in float64; over a cumulative
# product of up to 1000 float32 factors the difference reaches ~5e-7 absolute
# (~1e-5 relative near the tail, more after the zero-SNR rescale, whose shift
# cancels digits). These tolerances sit just above float32 accuracy.
F32_ATOL, F32_RTOL = 1e-6, 2e-5


def ours_and_diffusers(name, T, zero_terminal_snr):
    our_kwargs, their_kwargs = FAMILIES[name]
    ours = make_schedule(name, T, zero_terminal_snr=zero_terminal_snr, **our_kwargs)
    theirs = DDPMScheduler(num_train_timesteps=T, rescale_betas_zero_snr=zero_terminal_snr, **their_kwargs)
    return ours, theirs


REFERENCE_CASES = [
    pytest.param(name, T, zt, id=f"{name}-T{T}{'-zsnr' if zt else ''}")
    for name in FAMILIES
    for T in (10, 1000)
    for zt in (False, True)
]


# --- equal to the reference implementation ------------------------------------------------------


@pytest.mark.parametrize(("name", "T", "zero_terminal_snr"), REFERENCE_CASES)
def test_alpha_bars_equal_diffusers_alphas_cumprod(name, T, zero_terminal_snr):
    ours, theirs = ours_and_diffusers(name, T, zero_terminal_snr)
    # diffusers' index tau is our t = tau + 1 (our index 0 is the clean image)
    expected = theirs.alphas_cumprod.double().numpy()
    np.testing.assert_allclose(ours.alpha_bars[1:], expected, atol=F32_ATOL, rtol=F32_RTOL)


@pytest.mark.parametrize("T", [10, 1000])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_betas_equal_diffusers_betas(name, T):
    ours, theirs = ours_and_diffusers(name, T, zero_terminal_snr=False)
    # each of diffusers' betas is a single float32 rounding (~6e-8 relative) of the same formula
    np.testing.assert_allclose(ours.betas[1:], theirs.betas.double().numpy(), rtol=1e-6)


@pytest.mark.parametrize("T", [10, 1000])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_zero_terminal_snr_betas_equal_diffusers_rescale_in_float64(name, T):
    ours, _ = ours_and_diffusers(name, T, zero_terminal_snr=True)
    _, plain = ours_and_diffusers(name, T, zero_terminal_snr=False)
    # Run diffusers' own Algorithm 1 in float64: in its float32 tables, 1 - ab_t/ab_{t-1} after the shift
    # cancels digits (up to 4e-4 relative on a beta), which would hide a real error here.
    expected = rescale_zero_terminal_snr(plain.betas.double()).numpy()
    np.testing.assert_allclose(ours.betas[1:], expected, rtol=1e-6)


# --- published figures ---------------------------------------------------------------------------


def test_linear_T1000_terminal_alpha_bar_is_the_published_4_0358e_5():
    # Ho et al. 2020 schedule; Lin et al. 2023 quote alpha_bar_T = 4.0358e-5 (rounded to 5 significant digits)
    s = make_schedule("linear", 1000, beta_start=1e-4, beta_end=0.02)
    assert s.alpha_bars[1000] == pytest.approx(4.0358e-5, abs=0.5e-9)


def test_stable_diffusion_terminal_sqrt_alpha_bar_is_the_published_0_068265():
    # Lin et al. 2023, Sec. 3.1: Stable Diffusion's sqrt(alpha_bar_T) = 0.068265 (rounded to 6 decimals)
    s = make_schedule("scaled_linear", 1000, beta_start=0.00085, beta_end=0.012)
    assert math.sqrt(s.alpha_bars[1000]) == pytest.approx(0.068265, abs=0.5e-6)


# --- schedules follow their defining formulas ----------------------------------------------------


def test_linear_betas_run_evenly_from_beta_start_to_beta_end():
    s = make_schedule("linear", 5, beta_start=0.1, beta_end=0.5)
    np.testing.assert_allclose(s.betas[1:], [0.1, 0.2, 0.3, 0.4, 0.5], rtol=1e-12)


def test_scaled_linear_sqrt_betas_run_evenly_from_sqrt_beta_start_to_sqrt_beta_end():
    s = make_schedule("scaled_linear", 3, beta_start=0.01, beta_end=0.09)
    np.testing.assert_allclose(np.sqrt(s.betas[1:]), [0.1, 0.2, 0.3], rtol=1e-12)


def test_cosine_alpha_bar_follows_nichol_dhariwal_where_beta_is_below_the_cap():
    T, offset = 1000, 0.008
    s = make_schedule("cosine", T, cosine_s=offset)
    t = np.arange(T + 1)
    f = np.cos((t / T + offset) / (1 + offset) * np.pi / 2) ** 2
    uncapped = np.flatnonzero(s.betas < 0.999)  # the cap bends alpha_bar only from the first capped step on
    assert uncapped.size == T  # only beta_T is capped at T = 1000
    np.testing.assert_allclose(s.alpha_bars[uncapped], f[uncapped] / f[0], rtol=1e-9)


def test_cosine_betas_are_capped_at_the_default_max_beta_0_999():
    s = make_schedule("cosine", 1000)
    assert s.betas.max() == 0.999
    assert s.betas[1000] == 0.999


def test_cosine_betas_never_exceed_a_custom_max_beta():
    s = make_schedule("cosine", 1000, max_beta=0.1)
    assert s.betas.max() == 0.1
    np.testing.assert_array_equal(s.betas[s.betas < 0.1], make_schedule("cosine", 1000).betas[s.betas < 0.1])


def test_alpha_bars_are_the_cumulative_product_of_one_minus_beta():
    s = make_schedule("cosine", 1000)
    np.testing.assert_array_equal(s.alphas, 1.0 - s.betas)
    np.testing.assert_allclose(s.alpha_bars, np.cumprod(1.0 - s.betas), rtol=1e-12)


@pytest.mark.parametrize("zero_terminal_snr", [False, True], ids=["plain", "zsnr"])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_alpha_bars_decrease_strictly_from_one(name, zero_terminal_snr):
    s = make_schedule(name, 1000, zero_terminal_snr=zero_terminal_snr)
    assert s.alpha_bars[0] == 1.0
    assert np.all(np.diff(s.alpha_bars) < 0)


# --- snr and log-snr -----------------------------------------------------------------------------


def test_snr_is_alpha_bar_over_one_minus_alpha_bar():
    s = make_schedule("linear", 1000)
    ab = s.alpha_bars[1:]
    np.testing.assert_allclose(s.snr[1:], ab / (1.0 - ab), rtol=1e-12)


def test_log_snr_is_the_natural_log_of_snr():
    s = make_schedule("cosine", 1000)
    ab = s.alpha_bars[1:]
    np.testing.assert_allclose(s.log_snr[1:], np.log(ab) - np.log1p(-ab), rtol=1e-9, atol=1e-9)


def test_snr_of_the_clean_image_is_infinite():
    s = make_schedule("linear", 10)
    assert s.snr[0] == np.inf
    assert s.log_snr[0] == np.inf


# --- zero terminal SNR (Lin et al. 2023) --------------------------------------------------------


@pytest.mark.parametrize("name", list(FAMILIES))
def test_zero_terminal_snr_makes_alpha_bar_T_exactly_zero(name):
    s = make_schedule(name, 1000, zero_terminal_snr=True)
    assert s.alpha_bars[1000] == 0.0
    assert s.snr[1000] == 0.0


@pytest.mark.parametrize("name", list(FAMILIES))
def test_zero_terminal_snr_makes_log_snr_T_minus_infinity(name):
    s = make_schedule(name, 1000, zero_terminal_snr=True)
    assert s.log_snr[1000] == -np.inf


@pytest.mark.parametrize("name", list(FAMILIES))
def test_zero_terminal_snr_keeps_alpha_bar_1_unchanged(name):
    plain = make_schedule(name, 1000)
    rescaled = make_schedule(name, 1000, zero_terminal_snr=True)
    assert rescaled.alpha_bars[1] == pytest.approx(plain.alpha_bars[1], rel=1e-12)


def test_zero_terminal_snr_shifts_and_scales_sqrt_alpha_bar_linearly():
    # Lin et al. 2023, Alg. 1: sqrt(ab_new) = (sqrt(ab) - sqrt(ab_T)) * sqrt(ab_1) / (sqrt(ab_1) - sqrt(ab_T))
    plain = make_schedule("linear", 1000)
    rescaled = make_schedule("linear", 1000, zero_terminal_snr=True)
    root = np.sqrt(plain.alpha_bars[1:])
    expected = (root - root[-1]) * root[0] / (root[0] - root[-1])
    np.testing.assert_allclose(np.sqrt(rescaled.alpha_bars[1:]), expected, rtol=1e-9, atol=1e-12)


# --- array conventions ---------------------------------------------------------------------------


def test_index_zero_holds_the_clean_image():
    s = make_schedule("cosine", 50)
    assert (s.betas[0], s.alphas[0], s.alpha_bars[0]) == (0.0, 1.0, 1.0)


@pytest.mark.parametrize("array", ARRAYS)
def test_every_array_has_length_T_plus_one(array):
    assert len(getattr(make_schedule("sigmoid", 37), array)) == 38


@pytest.mark.parametrize("array", ARRAYS)
def test_every_array_is_float64(array):
    assert getattr(make_schedule("scaled_linear", 20), array).dtype == np.float64


@pytest.mark.parametrize("array", ARRAYS)
def test_every_array_is_read_only(array):
    arr = getattr(make_schedule("linear", 20), array)
    with pytest.raises(ValueError, match="read-only"):
        arr[1] = 0.5


def test_T_is_exposed_as_given():
    assert make_schedule("linear", 250).T == 250


def test_defaults_are_the_published_ones():
    np.testing.assert_array_equal(make_schedule("linear").betas, make_schedule("linear", 1000, 1e-4, 0.02).betas)
    np.testing.assert_array_equal(
        make_schedule("cosine").betas, make_schedule("cosine", 1000, cosine_s=0.008, max_beta=0.999).betas
    )


def test_schedules_with_different_betas_are_not_equal():
    a = make_schedule("linear", 1000, beta_end=0.02)
    b = make_schedule("linear", 1000, beta_end=0.03)
    assert a != b


# --- invalid input -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cosin", "Linear", "", None, 3])
def test_unknown_schedule_name_is_rejected_listing_the_choices(name):
    with pytest.raises(ValueError, match=r"Unknown schedule.*linear, scaled_linear, cosine, sigmoid"):
        make_schedule(name, 10)


@pytest.mark.parametrize("T", [0, -1, -1000])
def test_T_below_one_is_rejected(T):
    with pytest.raises(ValueError, match=r"T must be a whole number from 1 to"):
        make_schedule("linear", T)


@pytest.mark.parametrize("T", [2.5, float("nan"), float("inf"), "100", None, True])
def test_non_integer_T_is_rejected(T):
    with pytest.raises(ValueError, match=r"T must be a whole number"):
        make_schedule("linear", T)


def test_T_beyond_the_maximum_is_rejected():
    with pytest.raises(ValueError, match=r"T must be a whole number from 1 to 100000"):
        make_schedule("linear", 10**9)


def test_boolean_T_is_rejected_even_after_T_1_was_built():
    make_schedule("sigmoid", 1, 0.3, 0.4)  # arguments used by no other test, so the cache state is known
    with pytest.raises(ValueError, match=r"T must be a whole number"):
        make_schedule("sigmoid", True, 0.3, 0.4)


@pytest.mark.parametrize("family", ["linear", "scaled_linear", "sigmoid"])
@pytest.mark.parametrize("which", ["beta_start", "beta_end"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_beta_is_rejected(family, which, value):
    with pytest.raises(ValueError, match=rf"{which} must be a number, got"):
        make_schedule(family, 10, **{which: value})


@pytest.mark.parametrize(
    ("beta_start", "beta_end"),
    [(0.0, 0.02), (-1e-4, 0.02), (1e-4, 1.0), (1e-4, 1.5), (1e-4, 0.0)],
)
def test_beta_outside_zero_one_is_rejected(beta_start, beta_end):
    with pytest.raises(ValueError, match=r"beta_(start|end) must lie strictly between 0 and 1"):
        make_schedule("linear", 10, beta_start=beta_start, beta_end=beta_end)


def test_beta_start_above_beta_end_is_rejected():
    with pytest.raises(ValueError, match=r"beta_start \(0\.02\) must not exceed beta_end \(0\.0001\)"):
        make_schedule("linear", 10, beta_start=0.02, beta_end=1e-4)


@pytest.mark.parametrize("offset", [-0.1, 1.5, float("nan"), float("inf")])
def test_bad_cosine_offset_s_is_rejected(offset):
    with pytest.raises(ValueError, match=r"Cosine (offset )?s must"):
        make_schedule("cosine", 10, cosine_s=offset)


@pytest.mark.parametrize("max_beta", [0.0, -0.5, 1.5, float("nan")])
def test_bad_cosine_max_beta_is_rejected(max_beta):
    with pytest.raises(ValueError, match=r"max_beta must"):
        make_schedule("cosine", 10, max_beta=max_beta)


def test_zero_terminal_snr_with_a_single_step_is_rejected():
    with pytest.raises(ValueError, match=r"zero_terminal_snr needs T of at least 2"):
        make_schedule("linear", 1, zero_terminal_snr=True)



def test_list_parameters_raise_value_error_not_type_error():
    with pytest.raises(ValueError):
        make_schedule("linear", [10])
    with pytest.raises(ValueError):
        make_schedule("linear", 10, beta_end=[0.02])


def test_params_of_a_cached_schedule_cannot_be_mutated():
    s = make_schedule("linear", 10)
    with pytest.raises(TypeError):
        s.params["T"] = 99
    assert make_schedule("linear", 10).params["T"] == 10

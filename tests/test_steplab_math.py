"""The reverse step under a microscope, as a specification: the posterior is Bayes' rule, the update is the sum
of its terms, spectra behave as white noise and sinusoids must, and the recorded run is honest at the edges."""

import numpy as np
import pytest
import torch

from explorer import trajectory as tr
from explorer.data import to_uint8
from explorer.diffusion import ddim_coefficients, ddim_step, ddpm_step, q_posterior
from explorer.model import UNet, UNetConfig
from explorer.posterior import gaussian_density, q_posterior_between
from explorer.runs import Img2ImgRun, RunSettings, img2img_start, initial_noise
from explorer.samplers import model_eps_fn, reverse_loop
from explorer.schedules import make_schedule
from explorer.spectrum import crossover_frequency, radial_power_spectrum
from explorer.pca import fit_pca, load_basis
from explorer.steplab import IMAGE_START, StepLabSettings, from_img2img_run, from_reverse_run, guidance_row, record_all
from explorer.trajectory_map import MAP_MAX_STEPS, map_seeds, trajectory_map

LINEAR = make_schedule("linear", 1000)


def normal_pdf(x, mean, var):
    return np.exp(-0.5 * (x - mean) ** 2 / var) / np.sqrt(2 * np.pi * var)


def bayes_posterior(x_t, x0, t, t_prev, s):
    """q(x_{t'} | x_t, x_0) ∝ q(x_t | x_{t'}) q(x_{t'} | x_0) on a fine grid: (mean, var) by numerical moments."""
    ab_t, ab_p = s.alpha_bars[t], s.alpha_bars[t_prev]
    grid = np.linspace(-6, 6, 400_001)
    unnorm = normal_pdf(x_t, np.sqrt(ab_t / ab_p) * grid, 1 - ab_t / ab_p) * normal_pdf(grid, np.sqrt(ab_p) * x0,
                                                                                       1 - ab_p)
    p = unnorm / unnorm.sum()
    mean = (grid * p).sum()
    return mean, ((grid - mean) ** 2 * p).sum()


@pytest.mark.parametrize("t, t_prev", [(10, 9), (500, 499), (900, 899), (600, 400), (1000, 980), (300, 1)])
def test_posterior_equals_bayes_rule_numerically(t, t_prev):
    x_t, x0 = 0.7, -0.4
    mean, var = q_posterior_between(torch.tensor([[[[x_t]]]]), torch.tensor([[[[x0]]]]), t, t_prev, LINEAR)
    bayes_mean, bayes_var = bayes_posterior(x_t, x0, t, t_prev, LINEAR)
    assert float(mean) == pytest.approx(bayes_mean, abs=2e-5)
    assert var == pytest.approx(bayes_var, rel=1e-4)


def test_one_step_posterior_is_ho_et_al_q_posterior():
    x_t, x0 = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    mean, var = q_posterior_between(x_t, x0, 321, 320, LINEAR)
    ho_mean, ho_var = q_posterior(x_t, x0, 321, LINEAR)
    assert torch.equal(mean, ho_mean) and var == pytest.approx(float(ho_var[0, 0, 0, 0]))


def test_gaussian_density_integrates_to_one_and_a_point_mass_has_no_curve():
    x = np.linspace(-10, 10, 20_001)
    assert np.trapezoid(gaussian_density(x, 0.3, 0.7), x) == pytest.approx(1.0, abs=1e-9)
    assert gaussian_density(x, 0.3, 0.0) is None


# ---------------------------------------------------------------- the update as a sum


@pytest.mark.parametrize("sampler, eta", [("ddpm", 0.0), ("ddim", 0.0), ("ddim", 1.0)])
def test_the_update_terms_add_up_to_the_recorded_x_prev_exactly(sampler, eta):
    torch.manual_seed(0)
    s = make_schedule("cosine", 100)
    eps_fn = lambda x, t: torch.tanh(x) * 0.5 + 0.1 * t / 100  # noqa: E731 (any ε̂ will do)
    gen = torch.Generator().manual_seed(0)
    for rec in reverse_loop(eps_fn, s, torch.randn(2, 1, 8, 8, generator=gen), gen, sampler=sampler, steps=10, eta=eta):
        total = None
        for term in rec.terms.values():
            total = term if total is None else total + term
        assert torch.equal(total, rec.x_prev)


def test_ddpm_terms_are_the_posterior_coefficients_times_their_images_and_sigma_z():
    torch.manual_seed(1)
    x_t, eps, z = torch.randn(1, 1, 6, 6), torch.randn(1, 1, 6, 6), torch.randn(1, 1, 6, 6)
    step = ddpm_step(x_t, 400, eps, LINEAR, z)
    c = LINEAR
    assert torch.allclose(step.terms["x0_hat"], c.posterior_mean_coef_x0[400] * step.x0_hat, atol=1e-7)
    assert torch.allclose(step.terms["x_t"], c.posterior_mean_coef_xt[400] * x_t, atol=1e-7)
    assert torch.allclose(step.terms["noise"], np.sqrt(c.posterior_variance[400]) * z, atol=1e-7)


def test_ddpm_with_beta_t_adds_sqrt_beta_t_times_z():
    torch.manual_seed(3)
    x_t, eps, z = torch.randn(1, 1, 6, 6), torch.randn(1, 1, 6, 6), torch.randn(1, 1, 6, 6)
    small, large = (ddpm_step(x_t, 50, eps, LINEAR, z, variance=v) for v in ("fixed_small", "fixed_large"))
    assert torch.allclose(large.terms["noise"], np.sqrt(LINEAR.betas[50]) * z, atol=1e-7)
    assert torch.equal(small.terms["x0_hat"] + small.terms["x_t"], large.terms["x0_hat"] + large.terms["x_t"])


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_terms_are_song_et_al_coefficients_times_their_images(eta):
    torch.manual_seed(2)
    x_t, eps, z = torch.randn(1, 1, 6, 6), torch.randn(1, 1, 6, 6), torch.randn(1, 1, 6, 6)
    step = ddim_step(x_t, 700, 650, eps, LINEAR, eta=eta, noise=z)
    a, b, sigma = ddim_coefficients(700, 650, LINEAR, eta)
    ab_prev = LINEAR.alpha_bars[650]
    assert a == pytest.approx(np.sqrt(ab_prev)) and b == pytest.approx(np.sqrt(1 - ab_prev - sigma**2))
    assert torch.allclose(step.terms["x0_hat"], a * step.x0_hat, atol=1e-7)
    assert torch.allclose(step.terms["eps"], b * eps, atol=1e-7)
    assert torch.allclose(step.terms["noise"], sigma * z, atol=1e-7)
    assert (sigma == 0) == (eta == 0)


# ---------------------------------------------------------------- spectra


def test_white_noise_has_a_flat_spectrum_at_its_variance():
    rng = np.random.default_rng(0)
    p = radial_power_spectrum(rng.normal(0, np.sqrt(0.3), (400, 28, 28))).mean(axis=0)
    assert np.allclose(p, 0.3, rtol=0.1)


def test_a_sinusoid_puts_its_power_at_its_frequency():
    y, x = np.mgrid[0:28, 0:28]
    p = radial_power_spectrum(np.cos(2 * np.pi * 5 * x / 28))
    assert int(np.argmax(p)) == 5 and p[5] > 100 * np.delete(p, 5).max()


def test_crossover_is_the_first_frequency_under_the_noise():
    assert crossover_frequency(np.array([9.0, 5.0, 2.0, 0.5, 0.1]), 1.0) == 3
    assert crossover_frequency(np.array([9.0, 5.0, 2.0]), 0.1) is None


# ---------------------------------------------------------------- the recorded run


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = UNet(UNetConfig(patch=2, channels=(16, 32), blocks=(1, 1))).eval()
    with torch.no_grad():
        model.head[-1].weight.normal_(0, 0.05)
    return model


def lab(family="linear", T=100, **kw):
    start = kw.pop("start", "noise")
    t_start = kw.pop("t_start", 50)
    return StepLabSettings(RunSettings(make_schedule(family, T, **kw.pop("schedule", {})), **kw), start=start,
                           t_start=t_start)


def test_recorded_run_keeps_x_prev_as_the_sum_of_its_recorded_terms(tiny):
    rec = record_all(tiny, lab(sampler="ddim", steps=8, eta=1.0, digit="3"))
    total = (rec.floats["term_a"] + rec.floats["term_b"]) + rec.floats["term_noise"]  # float32, as the step added
    assert np.array_equal(total, rec.x_t[1:]) and rec.finished and rec.count == 8


def test_img2img_run_knows_the_true_posterior(tiny):
    rec = record_all(tiny, lab(sampler="ddpm", start="mnist_3", t_start=20, T=100, digit="3"))
    px = rec.pixel(3, 14, 14)
    assert rec.count == 20 and px["q_true"] is not None and px["x0_true"] is not None
    assert px["q_true"]["std"] == px["q_hat"]["std"] > 0


def test_zero_terminal_snr_says_x0_is_undefined_at_T_and_has_no_nan(tiny):
    rec = record_all(tiny, lab("cosine", T=50, sampler="ddim", steps=5, schedule={"zero_terminal_snr": True}))
    assert rec.frame_numbers(0)["x0_undefined"] and not rec.frame_numbers(1)["x0_undefined"]
    assert all(np.isfinite(a).all() for a in rec.floats.values()) and np.isfinite(rec.x_t).all()
    assert np.isfinite(rec.spectra["signal"]).all()


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_T_equal_one_gives_one_step_and_a_point_mass(tiny, sampler):
    rec = record_all(tiny, lab(T=1, sampler=sampler, steps=1))
    px = rec.pixel(0, 0, 0)
    assert rec.count == 1 and px["p"]["std"] == 0 and px["q_hat"]["std"] == 0
    assert rec.density_curves(0, 0, 0)["p"] is None


def test_out_of_range_frame_and_pixel_are_refused_with_a_message(tiny):
    rec = record_all(tiny, lab(sampler="ddim", steps=3))
    with pytest.raises(ValueError, match="frame"):
        rec.pixel(3, 0, 0)
    with pytest.raises(ValueError, match="row"):
        rec.pixel(0, 28, 0)
    with pytest.raises(ValueError, match="column"):
        rec.pixel(0, 0, -1)


def test_guidance_row_gives_one_final_sample_per_w_and_w1_matches_the_single_run(tiny):
    settings = lab(sampler="ddim", steps=4, digit="7", guidance=1.0)
    row = guidance_row(tiny, settings, ws=(0.0, 1.0, 3.0))
    single = record_all(tiny, settings).x_t[-1]
    assert row.shape == (3, 28, 28) and np.allclose(row[1], single, atol=1e-5)
    assert not np.allclose(row[0], row[2], atol=1e-3)


def test_pca_fit_is_deterministic_and_orthonormal():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    mean, comps, ratio = fit_pca(x)
    again = fit_pca(x[::-1].copy())  # row order does not matter
    assert np.allclose(comps @ comps.T, np.eye(2), atol=1e-12) and np.allclose(comps, again[1], atol=1e-10)
    assert np.allclose(np.abs(comps[:, :2]), np.eye(2), atol=0.1) and ratio[0] > ratio[1]


def test_the_shipped_pca_basis_loads_after_its_checksum_and_maps_digits_to_2d():
    basis = load_basis()
    assert basis.components.shape == (2, 784) and basis.cloud.shape == (500, 2)
    assert basis.project(np.zeros((3, 28, 28))).shape == (3, 2)


def test_trajectory_map_draws_every_seed_and_digit_and_each_seed_starts_its_digits_at_its_x_T(tiny):
    project = load_basis().project
    tmap = trajectory_map(tiny, lab(T=10, sampler="ddim", steps=3, seed=7), project, digits=(1, 2), seeds=3)
    assert tmap.seeds == (7, 8, 9) and tmap.digits == (1, 2) and tmap.steps == 3
    assert tmap.paths["ddpm"].shape == tmap.paths["ddim"].shape == (6, 4, 2)  # 3 seeds × 2 digits, x_T + 3 steps
    starts = np.stack([project(initial_noise(seed, 1)[0][:, 0].numpy())[0] for seed in (7, 8, 9)])  # (3, 2)
    for sampler in ("ddpm", "ddim"):
        assert np.allclose(tmap.paths[sampler][:, 0], np.repeat(starts, 2, axis=0), rtol=0, atol=1e-12)
    assert not np.allclose(tmap.paths["ddpm"][:, -1], tmap.paths["ddim"][:, -1])  # DDPM's noise parts the paths
    assert not np.allclose(tmap.paths["ddim"][0, -1], tmap.paths["ddim"][1, -1])  # one x_T, two labels, two ends


def test_trajectory_map_is_deterministic(tiny):
    settings = lab(T=10, sampler="ddpm", seed=3)
    first, again = (trajectory_map(tiny, settings, load_basis().project, digits=(0,), seeds=2) for _ in range(2))
    assert all(np.array_equal(first.paths[k], again.paths[k]) for k in ("ddpm", "ddim"))


def test_trajectory_map_takes_every_step_of_a_short_schedule_and_at_most_its_budget_of_a_long_one(tiny):
    project = load_basis().project
    short = trajectory_map(tiny, lab(T=10, sampler="ddpm"), project, digits=(0,), seeds=1)
    long = trajectory_map(tiny, lab(T=100, sampler="ddpm"), project, digits=(0,), seeds=1)
    assert short.steps == 10 and long.steps == MAP_MAX_STEPS and long.paths["ddpm"].shape == (1, MAP_MAX_STEPS + 1, 2)


def test_map_seeds_wrap_below_two_to_the_63():
    assert map_seeds(2**63 - 2, 3) == (2**63 - 2, 2**63 - 1, 0)


# ---------------------------------------------------------------- the Reverse tab's run, re-recorded


def reverse_run(model, run: RunSettings, max_steps=None):
    """The Reverse tab's recording (ui/sampling.recorder: model_eps_fn at its default precision, the run's batch),
    stopped after ``max_steps`` steps if given; and the same run's float x_t of every sample, (N + 1, B, H, W)."""
    x, g = initial_noise(run.seed, run.n)
    eps_fn = model_eps_fn(model, run.schedule, run.labels, run.guidance)
    traj = None
    for traj in tr.record_run(eps_fn, run, x, g):
        if traj.count == max_steps:
            break
    x, g = initial_noise(run.seed, run.n)
    floats = [x]
    for step in reverse_loop(eps_fn, run.schedule, x, g, **{**run.loop_kwargs(), "steps": run.num_steps()}):
        floats.append(step.x_prev)
    return traj, torch.stack(floats)[:, :, 0].numpy()


REVERSE_RUNS = {"ddim-eta1-w3-mixed": dict(sampler="ddim", steps=6, eta=1.0, digit="mixed", guidance=3.0, n=4),
                "ddpm-w0": dict(sampler="ddpm", digit="mixed", guidance=0.0, n=3),
                "ddim-w1-one-digit": dict(sampler="ddim", steps=5, eta=0.5, digit="4", guidance=1.0, n=2),
                "ddim-unconditional": dict(sampler="ddim", steps=4, digit="none", guidance=2.0, n=2)}


@pytest.mark.parametrize("name", REVERSE_RUNS)
def test_a_reverse_run_re_recorded_has_the_chosen_samples_numbers_and_frames(tiny, name):
    run = RunSettings(make_schedule("linear", 12), seed=5, **REVERSE_RUNS[name])
    traj, floats = reverse_run(tiny, run)
    b = run.n - 1
    settings, steps = from_reverse_run(traj, b)
    rec = record_all(tiny, settings, steps)
    assert rec.finished and rec.count == traj.num_steps and np.array_equal(rec.x_t, floats[:, b])  # the same floats
    assert np.array_equal(to_uint8(torch.from_numpy(rec.x_t)), traj.x_t[:, b])  # the Reverse tab's frames
    assert np.array_equal(rec.view_frames("x0_hat"), traj.x0_hat[:, b])
    assert np.array_equal(rec.view_frames("eps"), traj.eps[:, b])


def test_a_stopped_reverse_run_is_re_recorded_up_to_where_it_stopped(tiny):
    run = RunSettings(make_schedule("linear", 12), sampler="ddpm", digit="mixed", guidance=2.0, seed=1, n=3)
    traj, _ = reverse_run(tiny, run, max_steps=5)
    settings, steps = from_reverse_run(traj, 1)
    rec = record_all(tiny, settings, steps)
    assert steps == rec.count == 5 and rec.num_steps == 12 and not rec.finished
    assert np.array_equal(to_uint8(torch.from_numpy(rec.x_t[:5])), traj.x_t[:5, 1])


@pytest.mark.parametrize("w, guided, other", [(0.0, "eps_uncond", "eps_cond"), (1.0, "eps_cond", "eps_uncond")])
def test_one_pass_guidance_still_shows_both_parts(tiny, w, guided, other):
    rec = record_all(tiny, lab(sampler="ddim", steps=3, digit="3", guidance=w))
    assert np.array_equal(rec.floats["eps_guided"], rec.floats[guided])  # the pass the step used
    assert not np.allclose(rec.floats[other], rec.floats[guided])  # the other pass, run for the display


def test_inspecting_needs_a_reverse_run_and_a_sample_of_its_batch(tiny):
    with pytest.raises(ValueError, match="no run yet"):
        from_reverse_run(None, 0)
    traj, _ = reverse_run(tiny, RunSettings(make_schedule("linear", 10), steps=2, n=4))
    for sample in (4, None, 1.5):
        with pytest.raises(ValueError, match="sample .* 0 to 3"):
            from_reverse_run(traj, sample)


@pytest.mark.parametrize("t_start, steps", [(600, 7), (17, 7), (1000, 13), (1000, 50)])
def test_trailing_ddim_timesteps_are_exactly_steps_many_and_all_at_least_one(t_start, steps):
    from explorer.samplers import ddim_timesteps

    ts = ddim_timesteps(t_start, steps, "trailing")
    assert len(ts) == steps and min(ts) >= 1 and ts[0] == t_start


# ---------------------------------------------------------------- the Reverse tab's img2img round trip, re-recorded


def test_an_img2img_round_trip_is_re_recorded_from_its_own_x0_and_noised_copies(tiny):
    run = RunSettings(make_schedule("linear", 20), sampler="ddim", steps=10, eta=1.0, digit="2", seed=7, n=3)
    x0 = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1  # (1, 1, 28, 28)
    settings, steps = from_img2img_run(Img2ImgRun(run, 12, x0, count=6), 2)
    rec = record_all(tiny, settings, steps)
    copies = img2img_start(x0, 12, run.schedule, run.n, torch.Generator().manual_seed(run.seed))  # what img2img ran
    assert steps == rec.count == rec.num_steps == 6 and rec.finished and settings.run.digit == "2"
    assert np.array_equal(rec.x0_true, x0[0, 0].numpy()) and np.array_equal(rec.x_t[0], copies[2, 0].numpy())
    assert rec.frame_numbers(0)["img2img"] and rec.pixel(0, 14, 14)["q_true"] is not None


def test_inspecting_needs_an_img2img_round_trip_and_a_sample_of_its_batch():
    run = RunSettings(make_schedule("linear", 20), sampler="ddpm", n=2)
    x0 = torch.zeros(1, 1, 28, 28)
    for trip in (None, Img2ImgRun(run, 5, x0)):  # none yet, or one that recorded no step
        with pytest.raises(ValueError, match="no img2img round trip yet"):
            from_img2img_run(trip, 0)
    with pytest.raises(ValueError, match="sample .* 0 to 1"):
        from_img2img_run(Img2ImgRun(run, 5, x0, count=5), 2)
    with pytest.raises(ValueError, match="recorded steps"):
        Img2ImgRun(run, 5, x0, count=6)  # a DDPM round trip from t = 5 has 5 steps


def test_only_a_run_from_a_given_image_has_an_x0():
    run = RunSettings(make_schedule("linear", 20), steps=5)
    with pytest.raises(ValueError, match="needs its x_0"):
        StepLabSettings(run, start=IMAGE_START, t_start=5)
    with pytest.raises(ValueError, match="needs its x_0"):
        StepLabSettings(run, x0=torch.zeros(1, 1, 28, 28))

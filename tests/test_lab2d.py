"""The 2-D lab's math and data: presets, the exact Gaussian-mixture marginal and score, the samplers run on the
exact score (oracle), training, shipped weights, and readable errors for bad input."""

import math

import numpy as np
import pytest
import torch

from explorer.diffusion import q_sample
from explorer.lab2d import data, metrics, mixture, sampling, score
from explorer.lab2d.model import PointMLP, PointMLPConfig, checkpoint_path, load_point_model
from explorer.lab2d.train import TrainConfig, train_stream
from explorer.model import NULL_CLASS, CheckpointError, save_checkpoint
from explorer.schedules import make_schedule

MIXTURE_PRESETS = tuple(data.MIXTURES)


def _grid(lo, hi, n):
    g = torch.linspace(lo, hi, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], 1), float(g[1] - g[0])


# ---------------------------------------------------------------- presets


@pytest.mark.parametrize("preset", data.PRESETS)
def test_preset_gives_n_finite_points_inside_the_view(preset):
    cloud = data.make_points(preset, 3000, seed=0)
    assert cloud.points.shape == (3000, 2) and cloud.points.dtype == torch.float32
    assert torch.isfinite(cloud.points).all()
    assert cloud.points.abs().max() < data.VIEW


@pytest.mark.parametrize("preset", data.PRESETS)
def test_preset_is_deterministic_for_a_seed_and_differs_across_seeds(preset):
    a, b, c = (data.make_points(preset, 500, seed=s).points for s in (7, 7, 8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_mixture_presets_carry_labels_of_every_class():
    for preset in MIXTURE_PRESETS:
        cloud = data.make_points(preset, 2000, seed=0)
        assert cloud.mixture is not None
        assert set(cloud.labels.tolist()) == set(range(cloud.mixture.num_classes))


def test_ring8_neighbours_alternate_between_two_classes():
    mix = data.ring8_mixture()
    assert mix.labels.tolist() == [0, 1, 0, 1, 0, 1, 0, 1]


def test_word_preset_spans_wider_than_high():
    pts = data.make_points("word", 2000, seed=0).points
    width, height = (pts.max(0).values - pts.min(0).values).tolist()
    assert width > 2.5 * height


def test_unknown_preset_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="Unknown preset 'spiral'; choose one of: two_moons"):
        data.make_points("spiral", 100, seed=0)


def test_too_many_points_asked_of_a_preset_are_refused():
    with pytest.raises(ValueError, match="number of points must be a whole number from 1 to 20000"):
        data.make_points("two_moons", 10**6, seed=0)


# ---------------------------------------------------------------- drawings and points from the API


def _canvas(size=200):
    return np.full((size, size, 4), 255, dtype=np.uint8)  # white, opaque


def test_drawing_ink_becomes_points_spanning_the_lab():
    im = _canvas()
    im[50:150, 95:105, :3] = 0  # a vertical bar
    pts = data.drawing_points(im, n=1000, seed=0)
    assert pts.shape == (1000, 2)
    assert pts[:, 1].max() - pts[:, 1].min() > 3.5  # the longer side spans [-2, 2]
    assert pts[:, 0].max() - pts[:, 0].min() < 0.6


def test_empty_drawing_is_refused():
    with pytest.raises(ValueError, match="empty"):
        data.drawing_points(_canvas())
    with pytest.raises(ValueError, match="Draw a shape"):
        data.drawing_points(None)


def test_single_dot_drawing_is_refused():
    im = _canvas()
    im[100:103, 100:103, :3] = 0
    with pytest.raises(ValueError, match="single dot"):
        data.drawing_points(im)


def test_a_million_points_are_refused_quickly():
    with pytest.raises(ValueError, match="At most 20,000 points"):
        data.check_points([[0.0, 0.0]] * 10**6)


def test_nan_coordinates_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        data.check_points([[0.0, 0.0], [float("nan"), 1.0]])


def test_points_that_are_not_pairs_are_refused():
    with pytest.raises(ValueError, match=r"\[x, y\] pairs"):
        data.check_points([[0.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match=r"\[x, y\] pairs"):
        data.check_points([["a", "b"]])


# ---------------------------------------------------------------- the exact mixture


@pytest.mark.parametrize("alpha_bar", [1.0, 0.3, 0.0])
def test_marginal_density_integrates_to_one(alpha_bar):
    mix_t = mixture.q_marginal(data.blobs3_mixture(), alpha_bar)
    x, h = _grid(-7, 7, 561)
    total = float(mixture.log_density(mix_t, x).exp().sum() * h * h)
    assert total == pytest.approx(1.0, abs=1e-3)


def test_marginal_density_equals_monte_carlo_over_x0():
    """q(x_t) = E_{x_0}[N(x_t; √ᾱ x_0, (1 − ᾱ) I)], estimated with 200 000 draws of x_0."""
    mix, ab = data.ring8_mixture(), 0.6
    x0, _ = mix.sample(200_000, torch.Generator().manual_seed(0))
    x0 = x0.double()
    queries = torch.tensor([[0.0, 0.0], [1.2, 0.1], [-0.5, 0.9], [0.3, -1.3]], dtype=torch.float64)
    d2 = torch.cdist(queries, math.sqrt(ab) * x0).pow(2)  # (Q, M)
    var = 1.0 - ab
    mc = (torch.exp(-d2 / (2 * var)) / (2 * math.pi * var)).mean(1)
    exact = mixture.log_density(mixture.q_marginal(mix, ab), queries).exp()
    torch.testing.assert_close(exact, mc, rtol=0.02, atol=0)


def test_q_sample_of_mixture_points_has_the_marginals_moments():
    mix, s, t = data.blobs3_mixture(), make_schedule("cosine", 1000), 400
    x0, _ = mix.sample(100_000, torch.Generator().manual_seed(1))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2))
    xt = q_sample(x0, t, noise, s).double()
    mix_t = mixture.q_marginal(mix, s.alpha_bars[t])
    mean = (mix_t.weights[:, None] * mix_t.means).sum(0)
    second = (mix_t.weights[:, None, None] * (mix_t.covs + mix_t.means[:, :, None] * mix_t.means[:, None, :])).sum(0)
    torch.testing.assert_close(xt.mean(0), mean, atol=0.01, rtol=0)
    torch.testing.assert_close(xt.T @ xt / len(xt), second, atol=0.015, rtol=0)


@pytest.mark.parametrize("preset", MIXTURE_PRESETS)
@pytest.mark.parametrize("label", [None, 0, 1])
def test_exact_score_equals_autograd_gradient_of_log_density(preset, label):
    mix_t = mixture.q_marginal(data.MIXTURES[preset](), 0.7)
    x = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 1.5
    labels = None if label is None else sampling.class_labels(64, label)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(mixture.log_density(mix_t, x, labels).sum(), x)
    torch.testing.assert_close(mixture.score(mix_t, x.detach(), labels), grad, rtol=1e-9, atol=1e-9)


def test_conditional_density_of_a_class_vanishes_on_the_other_class_modes():
    mix = data.ring8_mixture()
    mode_of_class_1 = mix.means[1:2]
    cond = mixture.log_density(mix, mode_of_class_1, sampling.class_labels(1, 0))
    uncond = mixture.log_density(mix, mode_of_class_1, sampling.class_labels(1, NULL_CLASS))
    assert float(uncond - cond) > 20


def test_score_and_eps_convert_into_each_other():
    eps = torch.randn(10, 2)
    torch.testing.assert_close(score.eps_from_score(score.score_from_eps(eps, 0.36), 0.36), eps)
    torch.testing.assert_close(score.score_from_eps(eps, 0.36), -eps / 0.8)


def test_score_at_the_clean_data_is_refused():
    with pytest.raises(ValueError, match="needs noise"):
        score.score_from_eps(torch.zeros(1, 2), 1.0)


def test_at_zero_snr_the_exact_denoiser_returns_x_itself():
    """q(x_T) = N(0, I) when ᾱ = 0: score −x, so ε = x."""
    x = torch.randn(20, 2)
    eps = score.ExactMixtureDenoiser(data.ring8_mixture())(x, torch.full((20,), -40.0), sampling.class_labels(20, None))
    torch.testing.assert_close(eps, x, atol=1e-6, rtol=0)


# ---------------------------------------------------------------- oracle: the samplers on the exact score


def _baseline_and_reference(preset, n):
    ref, other = (data.make_points(preset, n, seed=s).points for s in (101, 102))
    return ref, metrics.mmd(ref, other), metrics.sliced_wasserstein(ref, other)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
@pytest.mark.parametrize("preset", MIXTURE_PRESETS)
def test_samplers_on_the_exact_score_return_the_mixture(sampler, preset):
    """DDIM with 100 steps: its discretisation error is then below the sampling noise (with 50 steps on the linear
    schedule the thin blobs3 modes come out ~1.5× too wide in sliced Wasserstein; bench_lab2d.py shows it)."""
    n = 1500
    ref, base_mmd, base_sw = _baseline_and_reference(preset, n)
    den = score.ExactMixtureDenoiser(data.MIXTURES[preset]())
    x = sampling.sample_points(den, make_schedule("cosine", 1000), n, seed=5, sampler=sampler, steps=100)
    assert metrics.mmd(x, ref) <= 1.5 * base_mmd
    assert metrics.sliced_wasserstein(x, ref) <= 1.5 * base_sw


def test_exact_guided_sampling_keeps_to_the_asked_class():
    mix = data.ring8_mixture()
    x = sampling.sample_points(score.ExactMixtureDenoiser(mix), make_schedule("cosine", 1000), 400, seed=0,
                               steps=50, label=0, guidance=1.0)
    nearest = torch.cdist(x.double(), mix.means).argmin(1)
    assert (mix.labels[nearest] == 0).float().mean() > 0.99


def test_over_guidance_pushes_samples_away_from_the_other_class():
    """w ≫ 1 sharpens q(x | y) / q(x)^(w-1): points move to the edge of their class's support, away from class 1."""
    mix = data.ring8_mixture()
    den = score.ExactMixtureDenoiser(mix)
    s = make_schedule("cosine", 1000)

    def distance_to_class_1(w):
        x = sampling.sample_points(den, s, 400, seed=0, steps=50, label=0, guidance=w).double()
        return float(torch.cdist(x, mix.means[mix.labels == 1]).min(1).values.mean())

    assert distance_to_class_1(6.0) > distance_to_class_1(1.0) + 0.05


def test_reverse_paths_start_at_T_end_at_0_and_thin_ddpm_frames():
    den = score.ExactMixtureDenoiser(data.ring8_mixture())
    paths = sampling.reverse_paths(den, make_schedule("linear", 1000), 30, seed=0, sampler="ddpm")
    assert paths.ts[0] == 1000 and paths.ts[-1] == 0
    assert paths.frames.shape == (len(paths.ts), 30, 2) and len(paths.ts) <= sampling.MAX_PATH_FRAMES
    x_T = torch.randn(30, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(paths.frames[0], x_T)


def test_ddim_paths_are_deterministic():
    den = score.ExactMixtureDenoiser(data.blobs3_mixture())
    s = make_schedule("linear", 1000)
    a, b = (sampling.reverse_paths(den, s, 50, seed=4, sampler="ddim", steps=20).frames for _ in range(2))
    assert torch.equal(a, b) and a.shape[0] == 21


# ---------------------------------------------------------------- metrics


def test_sliced_wasserstein_is_zero_for_one_cloud_and_grows_with_a_shift():
    a = data.make_points("two_moons", 500, seed=0).points
    assert metrics.sliced_wasserstein(a, a) == 0.0
    assert metrics.sliced_wasserstein(a, a + torch.tensor([0.5, 0.0])) > metrics.sliced_wasserstein(
        a, a + torch.tensor([0.1, 0.0])) > 0.0


def test_mmd_separates_two_presets_better_than_two_samples_of_one():
    a, b = (data.make_points("two_moons", 800, seed=s).points for s in (0, 1))
    c = data.make_points("checkerboard", 800, seed=0).points
    assert metrics.mmd(a, c) > 3 * metrics.mmd(a, b)


def test_metrics_refuse_nan_points():
    a = torch.zeros(10, 2)
    b = a.clone()
    b[3, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        metrics.mmd(a, b)


# ---------------------------------------------------------------- model, training, weights


def test_mlp_keeps_the_shape_of_points_and_of_two_channel_images():
    model = PointMLP(PointMLPConfig(hidden=16, blocks=1, emb_dim=8))
    lam, y = torch.zeros(5), sampling.class_labels(5, None)
    assert model(torch.zeros(5, 2), lam, y).shape == (5, 2)
    assert model(torch.zeros(5, 2, 1, 1), lam, y).shape == (5, 2, 1, 1)


def test_training_reduces_the_loss():
    cloud = data.make_points("two_moons", 2000, seed=0)
    cfg = TrainConfig(steps=200, batch_size=256, report_every_s=0.0)
    progress = list(train_stream(cloud, cfg, PointMLPConfig(hidden=64, blocks=2)))
    first, last = np.mean(progress[-1].losses[:10]), np.mean(progress[-1].losses[-20:])
    assert last < 0.8 * first
    assert progress[-1].done and progress[-1].step == 200


def test_training_stops_at_its_time_limit():
    cloud = data.make_points("two_moons", 500, seed=0)
    cfg = TrainConfig(steps=10**6, batch_size=64, time_limit_s=0.5, report_every_s=0.2)
    progress = list(train_stream(cloud, cfg, PointMLPConfig(hidden=16, blocks=1)))
    assert progress[-1].done and progress[-1].step < 10**6


@pytest.mark.parametrize("preset", data.PRESETS)
def test_shipped_weights_load_after_their_checksum_is_checked(preset):
    model, card = load_point_model(checkpoint_path(preset))
    assert card["preset"] == preset and card["weights_file"] == f"{preset}.safetensors"
    assert not any(p.requires_grad for p in model.parameters())


def test_tampered_weights_are_refused(tmp_path):
    path = tmp_path / "moons.safetensors"
    save_checkpoint(PointMLP(PointMLPConfig(hidden=16, blocks=1, emb_dim=8)), path, {"preset": "two_moons"})
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="Checksum mismatch"):
        load_point_model(path)


def test_weights_that_are_not_safetensors_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="only .safetensors"):
        load_point_model(tmp_path / "model.pt")


def test_missing_weights_say_how_to_train_them(tmp_path):
    with pytest.raises(CheckpointError, match="python -m explorer.lab2d.train --preset all"):
        load_point_model(tmp_path / "none.safetensors")

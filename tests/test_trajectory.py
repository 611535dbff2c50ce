"""Recording a reverse run: compact frames, replay without the model, export, img2img helpers."""

import csv
import math

import numpy as np
import pytest
import torch
from PIL import Image

from explorer import data
from explorer import runs
from explorer import trajectory as tr
from explorer.render import GRID_GAP, tile
from explorer.runs import RunSettings
from explorer.diffusion import q_sample
from explorer.model import UNet, UNetConfig
from explorer.samplers import model_eps_fn, sample
from explorer.schedules import make_schedule

LINEAR = make_schedule("linear", 1000)


@pytest.fixture(scope="module")
def tiny_model():
    torch.set_num_threads(1)  # small tensors on a small, busy machine: intra-op threads only add stalls
    torch.manual_seed(0)
    model = UNet(UNetConfig(patch=2, channels=(16, 32), blocks=(1, 1))).eval()
    # the head starts at zero (ε̂ = 0); perturb it so ε̂, x̂_0 and x_t carry signal
    with torch.no_grad():
        model.head[-1].weight.normal_(0, 0.05)
    return model


def eps_fn(model, s, n, guidance=1.0):
    return model_eps_fn(model, s, torch.arange(n) % 10, guidance)


def run(model, s=LINEAR, n=4, seed=0, **kwargs):
    x, g = runs.initial_noise(seed, n)
    return tr.record_all(eps_fn(model, s, n), s, x, g, **kwargs)


def test_frames_uint8_equals_data_tensor_to_uint8_per_sample():
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 1.5
    batched = tr.frames_uint8(x)
    for i in range(3):
        assert np.array_equal(batched[i], data.tensor_to_uint8(x[i]))


def test_eps_frames_map_three_sigma_to_full_range():
    eps = torch.tensor([-3.0, -1.5, 0.0, 3.0, 9.0]).reshape(1, 1, 1, 5)
    assert tr.frames_uint8(eps, tr.EPS_DISPLAY_RANGE)[0, 0].tolist() == [0, 64, 128, 255, 255]


def test_a_thousand_step_run_of_sixteen_digits_stays_under_50_mb():
    traj = tr.Trajectory.empty(1000, 16)
    assert traj.nbytes < 50 * 1024 * 1024
    assert traj.x_t.dtype == traj.eps.dtype == traj.x0_hat.dtype == np.uint8


def test_recorded_run_has_one_frame_per_step_plus_the_result(tiny_model):
    traj = run(tiny_model, sampler="ddim", steps=7)
    assert traj.finished and traj.count == 7 and traj.num_frames == 8
    assert traj.numbers["t"].tolist() == [1000, 857, 714, 571, 429, 286, 143]
    assert traj.frame_t(7) == 0 and traj.frame_numbers(7)["is_result"]


def test_result_frame_equals_drained_sampler(tiny_model):
    """The recorded x_0 is the sampler's own output (same seed, same noise), as uint8."""
    traj = run(tiny_model, sampler="ddpm", s=make_schedule("cosine", 20), n=2, seed=5)
    x0 = sample(eps_fn(tiny_model, make_schedule("cosine", 20), 2), make_schedule("cosine", 20), (2, 1, 28, 28),
                seed=5, sampler="ddpm")
    assert np.array_equal(traj.final(), tr.frames_uint8(x0))


def test_first_frame_is_the_initial_noise(tiny_model):
    x, _ = runs.initial_noise(3, 2)
    traj = run(tiny_model, n=2, seed=3, sampler="ddim", steps=3)
    assert np.array_equal(traj.x_t[0], tr.frames_uint8(x))


def test_same_seed_same_trajectory_and_different_seed_differs(tiny_model):
    a = run(tiny_model, seed=1, sampler="ddim", steps=5, eta=1.0)
    b = run(tiny_model, seed=1, sampler="ddim", steps=5, eta=1.0)
    c = run(tiny_model, seed=2, sampler="ddim", steps=5, eta=1.0)
    assert np.array_equal(a.x_t, b.x_t) and np.array_equal(a.eps, b.eps)
    assert not np.array_equal(a.x_t, c.x_t)


def test_same_seed_gives_same_start_noise_under_two_schedules(tiny_model):
    a = run(tiny_model, s=make_schedule("linear", 1000), sampler="ddim", steps=4)
    b = run(tiny_model, s=make_schedule("cosine", 1000), sampler="ddim", steps=4)
    assert np.array_equal(a.x_t[0], b.x_t[0])
    assert not np.array_equal(a.final(), b.final())


def test_stream_yields_growing_partial_trajectory(tiny_model):
    x, g = runs.initial_noise(0, 2)
    counts = [(t.count, t.finished, t.num_frames) for t in tr.record(eps_fn(tiny_model, LINEAR, 2), LINEAR, x, g,
                                                                      sampler="ddim", steps=3)]
    assert counts == [(1, False, 1), (2, False, 2), (3, True, 4)]


def test_ddpm_numbers_include_posterior_and_ddim_numbers_do_not(tiny_model):
    s = make_schedule("linear", 10)
    ddpm = run(tiny_model, s=s, sampler="ddpm").frame_numbers(0)
    ddim = run(tiny_model, s=s, sampler="ddim", steps=5).frame_numbers(0)
    t = 10
    assert ddpm["posterior_var"] == pytest.approx(s.betas[t] * (1 - s.alpha_bars[t - 1]) / (1 - s.alpha_bars[t]))
    assert ddpm["alpha_bar_t"] == pytest.approx(s.alpha_bars[t]) and ddpm["t"] == 10 and ddpm["t_prev"] == 9
    assert ddim["posterior_var"] is None and ddim["sigma"] == 0.0


def test_frame_grids_are_built_from_stored_frames_only(tiny_model):
    traj = run(tiny_model, n=16, sampler="ddim", steps=3)
    x_t, eps, x0_hat = traj.frame_grids(1)
    assert x_t.shape == eps.shape == x0_hat.shape and min(x_t.shape) >= 224
    k = x_t.shape[0] // (4 * 28 + 3 * GRID_GAP)
    assert np.array_equal(x_t[: 28 * k : k, : 28 * k : k], traj.x_t[1, 0])  # top-left tile = sample 0
    assert np.array_equal(eps[: 28 * k : k, : 28 * k : k], traj.eps[1, 0])


@pytest.mark.parametrize("bad", [-1, 4, 1.5, float("nan"), "2", None])
def test_bad_frame_index_is_refused(tiny_model, bad):
    traj = run(tiny_model, n=1, sampler="ddim", steps=3)
    with pytest.raises(ValueError, match="frame"):
        traj.frame_arrays(bad)


def test_partial_run_cannot_give_final_samples(tiny_model):
    x, g = runs.initial_noise(0, 1)
    partial = next(tr.record(eps_fn(tiny_model, LINEAR, 1), LINEAR, x, g, sampler="ddim", steps=3))
    assert partial.num_frames == 1
    with pytest.raises(ValueError, match="not finished"):
        partial.final()


@pytest.mark.parametrize("kwargs, message", [
    (dict(sampler="euler"), "Unknown sampler"),
    (dict(spacing="middle"), "spacing"),
    (dict(steps=0), "DDIM steps"),
    (dict(steps=1001), "DDIM steps"),
    (dict(steps=float("nan")), "DDIM steps"),
    (dict(eta=1.5), "η"),
    (dict(eta=float("nan")), "η"),
    (dict(n=17), "number of samples"),
    (dict(n=10**9), "number of samples"),
    (dict(guidance=float("inf")), "guidance"),
    (dict(digit="11"), "digit class"),
    (dict(seed=-1), "seed"),
    (dict(seed=True), "seed"),
])
def test_run_settings_refuse_bad_input(kwargs, message):
    args = dict(sampler="ddim", steps=50, eta=0.0, spacing="trailing", n=4, guidance=1.0) | kwargs
    with pytest.raises(ValueError, match=message):
        RunSettings(LINEAR, **args)


def test_run_settings_refuse_steps_above_t_and_long_ddpm():
    with pytest.raises(ValueError, match="at most T = 20"):
        RunSettings(make_schedule("linear", 20), "ddim", 50, 0.0, "trailing", n=1, guidance=1.0)
    with pytest.raises(ValueError, match="DDPM"):
        RunSettings(make_schedule("linear", 2000), "ddpm", 50, 0.0, "trailing", n=1, guidance=1.0)
    RunSettings(make_schedule("linear", 2000), "ddim", 50, 0.0, "trailing", n=16, guidance=3.0)  # fine


def test_run_settings_are_frozen_and_plain_after_validation():
    r = RunSettings(LINEAR, steps=20.0, digit=7, seed=3.0, n=2.0)
    assert (r.steps, r.digit, r.seed, r.n) == (20, "7", 3, 2)
    assert all(type(v) is int for v in (r.steps, r.seed, r.n))
    with pytest.raises(AttributeError):
        r.steps = 3
    assert r.replace(sampler="ddpm").num_steps() == 1000 and r.num_steps() == 20


@pytest.mark.parametrize("digit, expected", [("none", [10, 10, 10]), ("mixed", [0, 1, 2]), ("4", [4, 4, 4])])
def test_run_settings_labels(digit, expected):
    assert RunSettings(LINEAR, digit=digit, n=3).labels.tolist() == expected


def test_gif_export_holds_subsampled_frames_with_last_kept(tiny_model, tmp_path):
    traj = run(tiny_model, n=4, s=make_schedule("linear", 60), sampler="ddpm")
    path = tmp_path / "run.gif"
    tr.save_gif(traj, path, max_frames=20)
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == 20
    assert tr.gif_frame_indices(201, 20)[-1] == 200 and tr.gif_frame_indices(5, 20) == [0, 1, 2, 3, 4]


def test_png_export_is_the_grid_of_final_samples(tiny_model, tmp_path):
    traj = run(tiny_model, n=4, sampler="ddim", steps=3)
    tr.save_final_png(traj, tmp_path / "x0.png")
    arr = np.asarray(Image.open(tmp_path / "x0.png"))
    assert np.array_equal(arr, tile(traj.final()))  # 4 digits: the grid as shown already has 112 px digits


def test_image_to_digit_tensor_keeps_mnist_digits_and_inverts_dark_on_light():
    digit = data.load_image(data.ASSETS_DIR / "mnist_3.png")
    x = runs.image_to_digit_tensor(digit)
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(x, data.image_to_tensor(digit))
    inverted = runs.image_to_digit_tensor(Image.fromarray(255 - np.asarray(digit)))
    assert torch.allclose(inverted, x, atol=1e-6)
    photo = runs.image_to_digit_tensor(data.load_image(data.ASSETS_DIR / "astronaut.png"))
    assert photo.shape == (1, 1, 28, 28) and photo.min() >= -1 and photo.max() <= 1


def test_img2img_start_is_q_sample_of_each_copy():
    x0 = torch.linspace(-1, 1, 784).reshape(1, 1, 28, 28)
    g = torch.Generator().manual_seed(0)
    xt = runs.img2img_start(x0, 300, LINEAR, 3, g)
    noise = torch.randn((3, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(xt, q_sample(x0.expand(3, 1, 28, 28), 300, noise, LINEAR))


def test_img2img_run_starts_at_t_start(tiny_model):
    s = make_schedule("linear", 1000)
    x0 = torch.zeros(1, 1, 28, 28)
    g = torch.Generator().manual_seed(0)
    start = runs.img2img_start(x0, 400, s, 2, g)
    steps = runs.img2img_steps(50, 400, s.T)
    traj = tr.record_all(eps_fn(tiny_model, s, 2), s, start, g, sampler="ddim", steps=steps, t_start=400)
    assert steps == 20 and traj.numbers["t"][0] == 400 and traj.num_steps == 20
    assert np.array_equal(traj.x_t[0], tr.frames_uint8(start))
    assert runs.img2img_steps(50, 10, 1000) == 1 and runs.img2img_steps(50, 3, 4) == 3
    assert math.isnan(traj.numbers["posterior_var"][0])


# ---- issue 14, item 11: exports worth keeping


def test_png_export_enlarges_each_digit_to_at_least_84_pixels(tiny_model, tmp_path):
    traj = run(tiny_model, n=16, sampler="ddim", steps=2)
    tr.save_final_png(traj, tmp_path / "x0.png")
    with Image.open(tmp_path / "x0.png") as im:
        assert im.size[0] >= 4 * 84 and im.size[1] >= 4 * 84  # a 4×4 grid of 16 digits


def test_gif_frame_shows_x_t_eps_and_x0_hat_each_digit_at_least_84_pixels(tiny_model):
    traj = run(tiny_model, n=16, sampler="ddim", steps=2)
    frame = np.asarray(tr.gif_frame(traj, 0))
    grids = [tr.export_grid(a) for a in traj.frame_arrays(0)]
    assert frame.shape[1] >= 3 * 4 * 84
    x = 0
    for grid in grids:  # each view's grid is in the frame, under its label band, side by side
        top = frame.shape[0] - grid.shape[0]
        assert np.array_equal(frame[top:, x:x + grid.shape[1]], grid)
        x += grid.shape[1] + tr.EXPORT_GAP


def test_gif_labels_name_the_predicted_clean_image_x0_hat(tiny_model):
    labels = tr.view_labels(run(tiny_model, n=1, sampler="ddim", steps=2), 0)
    assert labels[2].startswith("x̂₀") and labels[1].startswith("ε̂") and "predicted x_0" not in labels


def test_numbers_csv_has_one_row_per_step_with_every_number(tiny_model, tmp_path):
    traj = run(tiny_model, n=2, sampler="ddpm", s=make_schedule("linear", 5))
    tr.save_numbers_csv(traj, tmp_path / "numbers.csv")
    rows = list(csv.DictReader(open(tmp_path / "numbers.csv", encoding="utf-8")))
    assert [r["t"] for r in rows] == ["5", "4", "3", "2", "1"] and rows[0]["step"] == "1"
    assert float(rows[0]["alpha_bar_t"]) == traj.numbers["alpha_bar_t"][0]


def test_numbers_csv_leaves_cells_empty_where_ddim_has_no_posterior(tiny_model, tmp_path):
    traj = run(tiny_model, n=1, sampler="ddim", steps=2)
    tr.save_numbers_csv(traj, tmp_path / "numbers.csv")
    rows = list(csv.DictReader(open(tmp_path / "numbers.csv", encoding="utf-8")))
    assert len(rows) == 2 and rows[0]["posterior_var"] == ""

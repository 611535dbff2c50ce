"""The Step microscope tab driven through gradio_client: a recorded run, its frame / pixel / math APIs, bad input,
and the Reverse tab's run and img2img round trip brought into the microscope.

The tabs run on a tiny random UNet (these tests must not depend on the shipped weights), injected through their
ModelProvider; one app for the module (the Reverse tab and the microscope, wired as build_demo wires them).
"""

import base64
import json
import threading
import zlib

import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file

from explorer import data
from explorer.data import to_uint8
from explorer.model import ModelProvider
from explorer import trajectory as tr
from explorer.runs import RunSettings, image_to_digit_tensor
from explorer.samplers import reverse_loop
from explorer.schedules import make_schedule
from explorer.steplab import GUIDANCE_ROW, StepLabSettings
from explorer.ui import img2img
from explorer.ui.img2img import build_img2img, img2img_frames
from explorer.ui.reverse import build_reverse_tab
from explorer.ui.sampling import recorder
from explorer.ui.step_lab import build_step_lab_tab, inspect_img2img, inspect_reverse, run_frames
from tiny_models import tiny_model
from served_app import error_message, launch, raw_call

LINEAR = ["linear", 100, 1e-4, 0.02, 0.008, False]
CARD = {"parameters": 1, "training": {"steps_done": 0}, "weights": "random",
        "evaluation": {"fp32": {"configs": {"linear/ddim50/w=0": {"agreement": 0.1, "spread_ratio": 1.1},
                                            "linear/ddim50/w=3": {"agreement": 1.0, "spread_ratio": 0.9}}}}}


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return tiny_model()


@pytest.fixture(scope="module")
def provider(model):
    return ModelProvider(lambda: (model, CARD))


@pytest.fixture(scope="module")
def app(provider):
    with gr.Blocks() as demo:
        reverse = build_reverse_tab(demo, provider)
        trip = build_img2img(provider, reverse["controls"])
        build_step_lab_tab(demo, provider, reverse["state"], trip["state"])
    launch(demo)
    yield demo
    demo.close()


@pytest.fixture(scope="module")
def client(app):
    """One session for the tests that record their own run first (a client costs ~0.5 s to start)."""
    return Client(app.local_url, verbose=False)


@pytest.fixture(scope="module")
def recorded(app):
    """A session of its own with one recorded run (DDIM, 6 steps, η = 1), for the tests that only read it."""
    client = Client(app.local_url, verbose=False)
    _, chunk, _, _ = run(client)
    return client, frames_payload(chunk)


def args(schedule=LINEAR, sampler="ddim", steps=6, eta=1.0, variance="fixed_small", digit="3", guidance=2.0, seed=0,
         start="noise", t_start=60):
    return [*schedule, sampler, steps, eta, variance, digit, guidance, seed, start, t_start]


def run(client, **kwargs):
    return client.predict(*args(**kwargs), api_name="/step_lab_run")


def no_nan(token):
    raise AssertionError(f"the page would get {token}")


def frames_payload(text: str) -> dict:
    p = json.loads(text, parse_constant=no_nan)
    for key, b64 in p["views"].items():
        p["views"][key] = np.frombuffer(zlib.decompress(base64.b64decode(b64)), np.uint8).reshape(-1, p["h"], p["w"])
    for key, b64 in p["floats"].items():
        p["floats"][key] = np.frombuffer(zlib.decompress(base64.b64decode(b64)), "<f4").reshape(-1, p["h"], p["w"])
    return p


def test_a_run_sends_every_frame_once_and_the_math_panel(client):
    caption, chunk, frame, math_md = run(client)
    p = frames_payload(chunk)
    assert caption.startswith("Done: 6 steps") and p["count"] == 6 and p["views"]["x_t"].shape == (6, 28, 28)
    assert p["floats"]["x_t"].shape == (7, 28, 28)  # x_t before each step and the result
    assert "\\tilde\\beta_t" in math_md and "DDIM" in math_md and "t = 100" in math_md


def test_the_view_api_returns_the_frames_the_page_gets(recorded):
    client, p = recorded
    view = client.predict(3, api_name="/step_lab_view")
    for key in ("x_t", "x0_hat", "term_a", "term_b", "term_noise", "x_prev", "eps_guided"):
        assert np.array_equal(np.array(view["images"][key], np.uint8), p["views"][key][3]), key
    assert view["numbers"]["t"] == p["t"][3] and view["labels"] == p["labels"][3]


def test_the_pixel_api_gives_densities_and_the_drawn_value(recorded):
    client, p = recorded
    px = client.predict(2, 5, 9, api_name="/step_lab_pixel")
    assert px["drawn"] == pytest.approx(float(p["floats"]["x_t"][3, 5, 9]))
    assert px["p"]["mean"] == pytest.approx(float(p["floats"]["mean"][2, 5, 9]))
    assert px["q_hat"]["std"] > 0 and px["q_true"] is None
    assert len(px["curves"]["x"]) == len(px["curves"]["p"]) and len(px["series_x_t"]) == 6


def test_the_math_api_substitutes_the_frames_numbers(client):
    run(client, sampler="ddpm", schedule=["linear", 20, 1e-4, 0.02, 0.008, False])
    math_md = client.predict(5, api_name="/step_lab_math")
    assert "Alg. 2" in math_md and "x_{14} =" in math_md  # frame 5 of a 20-step DDPM run: t = 15 → 14


def test_ddpm_with_beta_t_draws_wider_than_the_posterior(client):
    run(client, sampler="ddpm", variance="fixed_large", schedule=["linear", 20, 1e-4, 0.02, 0.008, False])
    px = client.predict(3, 0, 0, api_name="/step_lab_pixel")
    assert px["p"]["std"] > px["q_hat"]["std"] > 0 and px["p"]["mean"] == px["q_hat"]["mean"]
    assert "this run: $\\beta_t$" in client.predict(3, api_name="/step_lab_math")


def test_img2img_from_a_test_digit_shows_the_true_posterior(client):
    caption, chunk, _, _ = run(client, start="mnist_7", t_start=60, steps=10)
    p = frames_payload(chunk)
    assert p["count"] == 6 and "x0_true" in p["views"] and "q_true_mean" in p["floats"]  # 10 · 60/100 steps
    px = client.predict(0, 14, 14, api_name="/step_lab_pixel")
    assert px["q_true"] is not None and px["t"] == 60


def test_zero_terminal_snr_says_x0_is_undefined_and_sends_no_nan(client):
    _, chunk, _, math_md = run(client, schedule=["cosine", 100, 1e-4, 0.02, 0.008, True])
    assert "undefined" in math_md
    p = frames_payload(chunk)
    assert all(np.isfinite(a).all() for a in p["floats"].values())
    assert "undefined" in p["numbers"][0]


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_T_equal_one_runs_one_step_without_nan(client, sampler):
    caption, chunk, _, _ = run(client, sampler=sampler, steps=1, schedule=["linear", 1, 1e-4, 0.02, 0.008, False])
    px = client.predict(0, 0, 0, api_name="/step_lab_pixel")
    assert caption.startswith("Done: 1 steps") and px["p"]["std"] == 0 and px["curves"]["p"] is None
    assert frames_payload(chunk)["count"] == 1


@pytest.mark.parametrize("frame, row, col, message", [(6, 0, 0, "maximum"), (-1, 0, 0, "minimum"), (0, 28, 0, "row"),
                                                      (0, 0, 99, "column"), (0, 1.5, 0, "row")])
def test_out_of_range_frame_or_pixel_is_refused_and_the_server_keeps_serving(recorded, frame, row, col, message):
    client, _ = recorded
    with pytest.raises(Exception, match=message):
        client.predict(frame, row, col, api_name="/step_lab_pixel")
    assert client.predict(0, 0, 0, api_name="/step_lab_pixel")["frame"] == 0


def test_views_before_a_run_say_to_run_first(app):
    client = Client(app.local_url, verbose=False)  # a fresh session: nothing recorded
    with pytest.raises(Exception, match="Run first"):
        client.predict(0, api_name="/step_lab_view")
    assert "Run" in client.predict(0, api_name="/step_lab_math")


@pytest.mark.parametrize("changes, message", [(dict(digit="mixed"), "mixed"), (dict(start="astronaut"), "astronaut"),
                                              (dict(steps=0), "minimum"), (dict(steps=101), "DDIM steps"),
                                              (dict(start="mnist_3", t_start=101), "img2img start t")])
def test_bad_settings_get_a_clear_message(client, changes, message):
    with pytest.raises(Exception, match=message):
        run(client, **changes)


def test_nan_sent_straight_to_the_api_gets_a_message(app):
    body = json.dumps(args()).replace("1.0, \"fixed_small\"", "NaN, \"fixed_small\"")
    assert "NaN" in body
    assert "η" in error_message(raw_call(app, "step_lab_run", body))


def test_a_stopped_run_ends_normally_with_the_steps_recorded_so_far(provider):
    lab = StepLabSettings(RunSettings(make_schedule("linear", 100), sampler="ddpm", digit="3"))
    stop = threading.Event()
    updates = []
    for update in run_frames(provider, lab, stop):
        updates.append(update)
        if update[0] is not None and update[0].count >= 3:
            stop.set()  # the Stop button
    rec, caption, chunk, slider, _ = updates[-1]
    p = frames_payload(chunk)
    assert 3 <= rec.count < 100 and not rec.finished
    assert caption == f"Stopped at step {rec.count} of 100 — scrub or export what was recorded."
    assert p["count"] == rec.count and slider["maximum"] == rec.count - 1
    assert f"stopped after {rec.count} of 100 steps" in p["numbers"][0]


def test_the_guidance_row_samples_every_w_and_plots_the_evaluation(client):
    image, plot, caption = client.predict(*args(steps=3), api_name="/step_lab_guidance_row")
    assert image and f"{len(GUIDANCE_ROW)} rows" in caption
    figure = json.loads(plot["plot"])
    assert {tr["name"] for tr in figure["data"]} == {"accuracy · linear/ddim50", "diversity · linear/ddim50"}


def test_the_trajectory_map_draws_both_samplers_paths_over_the_data_cloud(client):
    run(client, schedule=["linear", 10, 1e-4, 0.02, 0.008, False], steps=3)
    plot, caption = client.predict(*args(schedule=["linear", 10, 1e-4, 0.02, 0.008, False], steps=3),
                                   api_name="/step_lab_trajectory_map")
    names = [tr.get("name") for tr in json.loads(plot["plot"])["data"]]
    assert {"held-out digits", "this tab's run", "x_T of each seed", "DDPM · digit 0", "DDIM · digit 7"} <= set(names)
    assert "4 seeds (0, 1, 2, 3) × 3 digits (0, 1, 7)" in caption and "the same 3 timesteps" in caption


# ---------------------------------------------------------------- the Reverse tab's run in the microscope


def reverse_args(sampler="ddim", steps=6, eta=1.0, digit="mixed", guidance=3.0, seed=3, n=4):
    return [*LINEAR, sampler, steps, eta, "trailing", digit, guidance, seed, n]


def reverse_payload(chunk: str) -> dict:
    """The Reverse tab's frames for its page: x_t, ε̂, x̂₀ as (frames, B, H, W) uint8."""
    c = json.loads(chunk)
    for key in ("x_t", "eps", "x0_hat"):
        c[key] = np.frombuffer(zlib.decompress(base64.b64decode(c[key])), np.uint8).reshape(-1, c["batch"], c["h"],
                                                                                               c["w"])
    return c


@pytest.fixture(scope="module")
def inspected(app):
    """A session of its own: a Reverse run (DDIM-6, η = 1, w = 3, four digits), then its sample 2 in the microscope."""
    client = Client(app.local_url, verbose=False)
    client.predict(*reverse_args(), api_name="/reverse_sample")
    chunk, _ = client.predict(api_name="/reverse_recorded_frames")  # every frame of the session's run
    caption, frames, _, math_md = client.predict(2, api_name="/step_lab_inspect_reverse")
    return client, reverse_payload(chunk), frames_payload(frames), caption, math_md


def test_inspecting_the_reverse_run_gives_the_reverse_tabs_frames_of_the_chosen_sample(inspected):
    _, reverse, p, caption, _ = inspected
    assert "The Reverse tab's run, sample 2 (row 2, column 1 of its 4)" in caption and "Done: 6 steps" in caption
    assert np.array_equal(to_uint8(torch.from_numpy(p["floats"]["x_t"].copy())), reverse["x_t"][:, 2])  # 7 frames
    assert np.array_equal(p["views"]["x0_hat"], reverse["x0_hat"][:, 2])
    assert np.array_equal(p["views"]["eps"], reverse["eps"][:, 2])


def test_every_view_works_on_the_inspected_run(inspected):
    client, _, p, _, math_md = inspected
    view = client.predict(3, api_name="/step_lab_view")
    assert np.array_equal(np.array(view["images"]["eps_delta"], np.uint8), p["views"]["eps_delta"][3])
    assert view["labels"] == p["labels"][3] and len(view["spectra"]["signal"]) == 15
    px = client.predict(3, 14, 14, api_name="/step_lab_pixel")
    assert px["drawn"] == pytest.approx(float(p["floats"]["x_t"][4, 14, 14])) and px["q_hat"]["std"] > 0
    assert "DDIM" in math_md and "w = 3" in client.predict(3, api_name="/step_lab_math")


def test_a_sample_outside_the_reverse_batch_is_refused(inspected):
    client = inspected[0]
    with pytest.raises(Exception, match="sample .* 0 to 3"):
        client.predict(4, api_name="/step_lab_inspect_reverse")
    assert client.predict(0, 0, 0, api_name="/step_lab_pixel")["frame"] == 0  # the inspected run stays


def test_inspecting_before_any_reverse_run_says_to_sample_there_first(app):
    client = Client(app.local_url, verbose=False)  # a fresh session: the Reverse tab has no run
    with pytest.raises(Exception, match="no run yet"):
        client.predict(0, api_name="/step_lab_inspect_reverse")
    assert "Run" in client.predict(0, api_name="/step_lab_math")


def test_a_one_step_reverse_run_has_one_frame_to_inspect(app):
    client = Client(app.local_url, verbose=False)
    client.predict(*reverse_args(steps=1, n=2), api_name="/reverse_sample")
    caption, frames, _, _ = client.predict(1, api_name="/step_lab_inspect_reverse")
    assert "Done: 1 steps" in caption and "one frame to inspect" in caption and frames_payload(frames)["count"] == 1
    assert client.predict(0, 3, 3, api_name="/step_lab_pixel")["frame"] == 0


def test_a_stopped_reverse_run_is_inspected_up_to_where_it_stopped(provider):
    run = RunSettings(make_schedule("linear", 20), sampler="ddpm", digit="mixed", guidance=2.0, n=3)
    for traj in recorder(provider, run):  # the Reverse tab's recording, stopped after its third step
        if traj.count == 3:
            break
    *_, (rec, caption, chunk, slider, _) = inspect_reverse(provider, traj, 1)
    assert rec.count == 3 and not rec.finished and slider["maximum"] == 2 and frames_payload(chunk)["count"] == 3
    assert "stopped after 3 of 20 steps" in caption and "Done: 3 steps" in caption


# ---------------------------------------------------------------- the Reverse tab's img2img round trip, inspected

DIGIT = str(data.ASSETS_DIR / "mnist_3.png")
ROUND_TRIPS = {"ddim-eta1-w3-class": dict(sampler="ddim", steps=10, eta=1.0, digit="4", guidance=3.0, n=3),
               "ddpm-unconditional": dict(sampler="ddpm", digit="none", guidance=0.0, n=2)}


def round_trip(provider, monkeypatch, run: RunSettings, t_start: int):
    """img2img_frames as the Reverse tab runs it: its kept round trip, the Trajectory its recorder recorded and the
    float x_t of every step, (N + 1, B, H, W), as its reverse loop made them."""
    recorded, floats = [], []

    def spy_recorder(*args, **kwargs):
        for traj in recorder(*args, **kwargs):
            recorded[:] = [traj]
            yield traj

    def spy_loop(*args, **kwargs):
        for step in reverse_loop(*args, **kwargs):
            if not floats:
                floats.append(step.x_t[:, 0])  # the noised copies x_{t_start}
            floats.append(step.x_prev[:, 0])
            yield step

    monkeypatch.setattr(img2img, "recorder", spy_recorder)
    monkeypatch.setattr(tr, "reverse_loop", spy_loop)
    *_, (*_, trip) = img2img_frames(provider, DIGIT, t_start, run)
    return trip, recorded[0], torch.stack(floats).numpy()


@pytest.mark.parametrize("name", ROUND_TRIPS)
def test_an_img2img_round_trip_inspected_has_its_frames_and_its_true_x0(provider, monkeypatch, name):
    run = RunSettings(make_schedule("linear", 20), seed=4, **ROUND_TRIPS[name])
    trip, traj, floats = round_trip(provider, monkeypatch, run, 12)
    b = run.n - 1
    *_, (rec, caption, chunk, _, _) = inspect_img2img(provider, trip, b)
    assert traj.finished and rec.finished and rec.count == traj.num_steps == trip.count  # DDIM: 10 · 12/20 = 6
    assert np.array_equal(rec.x_t, floats[:, b])  # the same floats, to the bit
    assert np.array_equal(to_uint8(torch.from_numpy(rec.x_t)), traj.x_t[:, b])  # the round trip's own frames
    assert np.array_equal(rec.view_frames("x0_hat"), traj.x0_hat[:, b])
    assert np.array_equal(rec.view_frames("eps"), traj.eps[:, b])
    assert np.array_equal(rec.x0_true, image_to_digit_tensor(data.load_image(DIGIT))[0, 0].numpy())  # its input
    assert rec.pixel(0, 14, 14)["q_true"] is not None and "x0_true" in frames_payload(chunk)["views"]
    assert f"img2img round trip (its input noised to t = 12, the true x₀ known), sample {b}" in caption


def test_the_img2img_inspect_api_shows_the_last_round_trip_with_its_true_x0(app):
    client = Client(app.local_url, verbose=False)
    client.predict(handle_file(DIGIT), 50, *reverse_args(steps=6, n=2), "7", api_name="/reverse_img2img_class")
    caption, frames, _, _ = client.predict(1, api_name="/step_lab_inspect_img2img")
    p = frames_payload(frames)
    assert "img2img round trip" in caption and "Done: 3 steps" in caption and p["count"] == 3  # 6 · 50/100 steps
    assert np.array_equal(p["views"]["x0_true"][0], to_uint8(image_to_digit_tensor(data.load_image(DIGIT)))[0, 0])
    assert client.predict(0, 3, 3, api_name="/step_lab_pixel")["q_true"] is not None


def test_inspecting_before_any_img2img_round_trip_says_to_run_one_first(app):
    client = Client(app.local_url, verbose=False)  # a fresh session: no round trip
    with pytest.raises(Exception, match="no img2img round trip yet"):
        client.predict(0, api_name="/step_lab_inspect_img2img")

"""The Step microscope tab driven through gradio_client: a recorded run, its frame / pixel / math APIs, bad input.

The tab runs on a tiny random UNet (these tests must not depend on the shipped weights), injected through its
ModelProvider; one app for the module, a fresh client session per test.
"""

import base64
import json
import threading
import zlib

import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client import Client

from explorer.model import ModelProvider
from explorer.runs import RunSettings
from explorer.schedules import make_schedule
from explorer.steplab import GUIDANCE_ROW, StepLabSettings
from explorer.ui.step_lab import build_step_lab_tab, run_frames
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
def app(model):
    with gr.Blocks() as demo:
        build_step_lab_tab(demo, ModelProvider(lambda: (model, CARD)))
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


def test_a_stopped_run_ends_normally_with_the_steps_recorded_so_far(model):
    lab = StepLabSettings(RunSettings(make_schedule("linear", 100), sampler="ddpm", digit="3"))
    stop = threading.Event()
    updates = []
    for update in run_frames(ModelProvider(lambda: (model, CARD)), lab, stop):
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
    assert "held-out digits" in names and "this tab's run" in names
    assert "DDPM · digit 0" in names and "DDIM · digit 7" in names and "DDPM over all 10 steps" in caption

"""The Tiny SD tab through gradio_client and raw HTTP: tokens, streaming runs, frames, compare, round trip, bad input.

The tab runs on a tiny random-init model (tests/tiny_sd_app.py), so these tests do not depend on the weights.
"""

import base64
import json

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from explorer import data
from explorer.latent import frames as fr
from explorer.latent.pipeline import PromptSettings, sample_steps
from explorer.ui import tiny_sd
from served_app import error_message, raw_call
from tiny_sd_app import launch_tab

RUN = dict(prompt="a thick 7", negative="", guidance=3.0, seed=5, sampler="ddim", steps=6, schedule="scaled_linear",
           n=3)


@pytest.fixture(scope="module")
def served():
    original = tiny_sd.model
    demo, model = launch_tab()
    yield demo, model
    demo.close()
    tiny_sd.model = original


@pytest.fixture(scope="module")
def client(served):
    return Client(served[0].local_url, verbose=False)


def run_args(**kw):
    r = {**RUN, **kw}
    return [r[k] for k in ("prompt", "negative", "guidance", "seed", "sampler", "steps", "schedule", "n")]


def test_every_event_has_an_api_name(served):
    names = [fn.api_name for fn in served[0].fns.values()]
    assert all(names), names
    for name in ("tiny_sd_tokens", "tiny_sd_sample", "tiny_sd_frame", "tiny_sd_compare", "tiny_sd_round_trip",
                 "tiny_sd_cost", "tiny_sd_stop", "tiny_sd_frames"):
        assert name in names


def test_tokens_flag_unknown_words(client):
    out = client.predict("a fluffy seven", "", api_name="/tiny_sd_tokens")
    assert 'tsd-unknown' in out and "fluffy" in out and "seven" in out


def test_html_in_a_prompt_is_escaped_in_the_tokens(client):
    out = client.predict("<img src=x onerror=alert(1)>seven", "<b>thin</b>", api_name="/tiny_sd_tokens")
    assert "<img" not in out and "<b>thin" not in out
    assert "not in the vocabulary" in out


def test_empty_prompt_is_said_to_be_unconditional(client):
    assert "unconditional" in client.predict("", "", api_name="/tiny_sd_tokens")


def test_only_unknown_words_are_reported(client):
    assert "only unknown words" in client.predict("banana split", "", api_name="/tiny_sd_tokens")


def test_ten_thousand_characters_are_cut_and_said_so(client):
    assert "cut to the first 14 words" in client.predict("seven " * 1700, "", api_name="/tiny_sd_tokens")


def test_control_characters_in_a_prompt_are_accepted(client):
    out = client.predict("thick\x00\x07 seven\x1b[0m", "", api_name="/tiny_sd_tokens")
    assert "thick" in out and "\x00" not in out


def test_a_run_streams_frames_and_ends_with_every_step_recorded_and_the_samples(client):
    job = client.submit(*run_args(), api_name="/tiny_sd_sample")
    scene_json, grid, status = job.result()
    scene = json.loads(scene_json)
    assert scene["stage"] == "done" and scene["frames"] == 6 and scene["n"] == 3
    assert scene["tokens"] == ["<bos>", "a", "thick", "7", "<eos>"]
    assert len(job.outputs()) >= 2  # streamed before the end
    assert Image.open(grid).size[0] > 28 and status.startswith("done")


def test_each_frame_streams_once_and_the_parts_add_up_to_the_whole_run(served, monkeypatch):
    """Each output carries only the frames recorded since the last one (as the page appends them,
    static/tiny_sd.js), the last one included; together they are the whole run, which tiny_sd_frames sends."""
    monkeypatch.setattr(tiny_sd, "STREAM_EVERY_S", 0.0)  # an output after every step
    outputs = list(tiny_sd.sample_run(tiny_sd.RunRequest.checked(*run_args())))
    scenes = [json.loads(out[1]) for out in outputs]
    assert [s["stage"] for s in scenes] == ["text"] + ["unet"] * 6 + ["decoder", "done"]
    whole = json.loads(tiny_sd.whole_run(outputs[-1][0]))
    assert whole["start"] == 0 and whole["stage"] == "done" and whole["frames"] == len(whole["t"]) == 6
    held = {"t": [], "x0_hat": b""}
    for s in scenes:
        assert s["start"] == len(held["t"]) and s["run"] == whole["run"]  # follows the frames held
        held["t"] += s["t"]
        held["x0_hat"] += base64.b64decode(s["x0_hat"])
    assert held["t"] == whole["t"] and held["x0_hat"] == base64.b64decode(whole["x0_hat"])
    assert max(len(s["t"]) for s in scenes) == 1  # one new frame an output: none sent twice


def test_the_whole_run_needs_a_run_first():
    with pytest.raises(ValueError, match="press Generate"):
        tiny_sd.whole_run(None)


def test_the_first_step_goes_at_once_and_the_rest_at_most_every_stream_interval(served, monkeypatch):
    """The page draws the first recorded step as soon as it exists; later steps wait for STREAM_EVERY_S (here
    never reached), except the last recorded one."""
    monkeypatch.setattr(tiny_sd, "STREAM_EVERY_S", 1e6)
    scenes = [json.loads(out[1]) for out in tiny_sd.sample_run(tiny_sd.RunRequest.checked(*run_args()))]
    assert [s["stage"] for s in scenes] == ["text", "unet", "unet", "decoder", "done"]
    assert (scenes[1]["start"], scenes[1]["frames"]) == (0, 1) and (scenes[2]["start"], scenes[2]["frames"]) == (1, 6)


def test_run_settings_can_be_passed_to_the_api_by_name(client):
    scene = json.loads(client.predict(**{**RUN, "steps": 2, "n": 1}, api_name="/tiny_sd_sample")[0])
    assert scene["frames"] == 2 and scene["n"] == 1


def test_frame_api_equals_the_recorded_run(client, served):
    model = served[1]
    got = client.predict(*run_args(), 2, 1, api_name="/tiny_sd_frame")
    steps = list(sample_steps(model, PromptSettings.checked("a thick 7", "", 3.0, 5, "ddim", 6, 0.0,
                                                            "scaled_linear", 3), record_attention=True))
    frames = fr.RunFrames(["<bos>", "a", "thick", "7", "<eos>"], [False] * 5)
    for step in steps:
        frames.add(model, step, 3)
    assert got == frames.frame(2, 1)
    assert np.array(got["attention"]).shape == (5, 7, 7) and np.array(got["x0_hat"]).shape == (28, 28)


def test_scene_bytes_match_the_frame_api(client):
    client.predict(*run_args(), api_name="/tiny_sd_sample")
    scene = json.loads(client.predict(api_name="/tiny_sd_frames"))  # the whole run of this client's session
    assert scene["stage"] == "done" and scene["start"] == 0
    frame = client.predict(*run_args(), 4, 2, api_name="/tiny_sd_frame")
    x0 = np.frombuffer(__import__("base64").b64decode(scene["x0_hat"]), np.uint8).reshape(6, 3, 28, 28)
    assert np.array_equal(x0[4, 2], np.array(frame["x0_hat"], np.uint8))


def test_ddpm_runs_record_at_most_the_frame_cap():
    kept = fr.frame_indices(1000)  # DDPM visits every t of T = 1000
    assert len(kept) == fr.MAX_FRAMES and kept[0] == 0 and kept[-1] == 999
    assert fr.frame_indices(50) == list(range(50))


def test_two_prompts_with_the_same_seed_give_two_grids(client):
    a, b = client.predict("thin 4", "thick 4", 3.0, 1, 3, 2, api_name="/tiny_sd_compare")  # w, seed, steps, n
    assert Image.open(a).size == Image.open(b).size


def test_round_trip_of_a_bundled_digit_reports_psnr(client):
    x, z, x_hat, note = client.predict(handle_file(str(data.ASSETS_DIR / "mnist_7.png")), api_name="/tiny_sd_round_trip")
    assert "PSNR" in note and "dB" in note
    assert Image.open(z).size[0] > Image.open(z).size[1]  # four channels in a row


def test_cost_table_names_both_dimensions(client, monkeypatch):
    from explorer.model import UNet, UNetConfig

    tiny_sd.pixel_model.cache_clear()
    monkeypatch.setattr("explorer.model.load_pretrained", lambda *a, **k: (UNet(UNetConfig(patch=2, channels=(16, 32), blocks=(1, 1))).eval(), {}))
    table = client.predict(1, api_name="/tiny_sd_cost")
    tiny_sd.pixel_model.cache_clear()
    assert "784" in table and "196" in table and "ms per step" in table


@pytest.mark.parametrize("payload, message", [
    (run_args(guidance=float("nan")), "Guidance must be a number"),
    (run_args(steps=0), "minimum"),
    (run_args(n=10_000), "maximum"),
    (run_args(sampler="euler"), "euler"),
    (run_args(schedule="nope"), "nope"),
    (run_args(seed=-3), "minimum"),
    (run_args(prompt=None), "prompt must be text"),
])
def test_bad_input_gets_a_clear_message_and_the_server_keeps_serving(served, client, payload, message):
    stream = raw_call(served[0], "tiny_sd_sample", payload)
    assert message in (error_message(stream) or ""), stream
    assert "tsd-token" in client.predict("7", "", api_name="/tiny_sd_tokens")


def test_a_prompt_of_ten_thousand_characters_samples(client):
    scene = json.loads(client.predict(*run_args(prompt="thick " * 1666 + "7", n=1, steps=2), api_name="/tiny_sd_sample")[0])
    assert len(scene["tokens"]) == 16 and scene["stage"] == "done"

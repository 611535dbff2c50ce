"""The Reverse tab driven through gradio_client: streaming, scrubbing, sessions, compare, img2img, export, errors.

The tab runs on a tiny random UNet (these tests must not depend on the shipped weights), injected
through the tab's ModelProvider; one test builds the whole app to check the tab is wired in.
"""

import base64
import io
import json
import math
import os
import re
import sys
import threading
import time
import zlib
from pathlib import Path

import gradio as gr
import httpx
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image

from explorer import data
from explorer import trajectory as tr
from explorer.model import NULL_CLASS, CheckpointError
from explorer.samplers import model_eps_fn
from explorer.schedules import make_schedule
from explorer.ui import delete_old_temp_files
from explorer.model import ModelProvider
from explorer.render import tile
from explorer.runs import MAX_GUIDANCE, RunSettings, image_to_digit_tensor, initial_noise
from explorer.trajectory import compare_frame
from explorer.ui import build_reverse
from explorer.ui import cores, sampling
from explorer.ui.sampling import GRID_SIDE
from tiny_models import tiny_model
from served_app import launch

LINEAR = ["linear", 1000, 1e-4, 0.02, 0.008, False]
COSINE = ["cosine", 1000, 1e-4, 0.02, 0.008, False]
DIGIT = str(data.ASSETS_DIR / "mnist_3.png")


class CountingLoader:
    def __init__(self, result=None, error=None):
        self.calls, self.result, self.error = 0, result, error

    def __call__(self):
        self.calls += 1
        if self.error:
            raise self.error
        return self.result


def launch_reverse(provider):
    with gr.Blocks() as demo:
        build_reverse(demo, provider)
    return launch(demo)


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)  # the machine is small and busy: intra-op threads only add stalls here
    return tiny_model()


@pytest.fixture(scope="module")
def loader(model):
    return CountingLoader(result=(model, {"parameters": 1, "training": {"steps_done": 0}, "weights": "random"}))


@pytest.fixture(scope="module")
def app(loader):
    demo = launch_reverse(ModelProvider(loader))
    yield demo
    demo.close()


@pytest.fixture()
def client(app):
    return Client(app.local_url, verbose=False)  # a fresh session per test


def args(schedule=LINEAR, sampler="ddim", steps=8, eta=0.0, spacing="trailing", digit="mixed", guidance=1.0,
         seed=0, n=4):
    return [*schedule, sampler, steps, eta, spacing, digit, guidance, seed, n]


def sample(client, **kwargs):
    return client.predict(*args(**kwargs), api_name="/reverse_sample")


def value(x):
    """A component value, or the value inside an update (the slider comes back as {'__type__': 'update', ...})."""
    return x["value"] if isinstance(x, dict) and x.get("__type__") == "update" else x


def grid(frames) -> np.ndarray:
    """What the tab shows for (B, H, W) uint8 frames."""
    return tile(frames, min_side=GRID_SIDE)


def frames(viewer: str) -> dict[str, np.ndarray]:
    """The inline PNGs of the x_t | ε̂ | x̂_0 viewer HTML, by key."""
    out = {}
    for key, b64 in re.findall(r'data-key="(\w+)"[^>]*src="data:image/png;base64,([^"]+)"', viewer):
        out[key] = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("L"))
    assert list(out) == ["x_t", "eps", "x0_hat"], list(out)
    return out


def payload(chunk: str) -> dict:
    """Frames for the page (a preview or the whole run), the grids decoded to (frames, B, H, W) uint8 arrays."""
    c = json.loads(chunk)
    for key in ("x_t", "eps", "x0_hat"):
        c[key] = np.frombuffer(zlib.decompress(base64.b64decode(c[key])), np.uint8).reshape(-1, c["batch"], c["h"],
                                                                                               c["w"])
    return c


def native(a) -> np.ndarray:
    """What the viewer shows for (B, H, W) uint8 frames: the grid at native size."""
    return tile(a, min_side=1)


def image(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def expected_run(model, schedule=LINEAR, sampler="ddim", steps=8, eta=0.0, spacing="trailing", digit="mixed",
                 guidance=1.0, seed=0, n=4) -> tr.Trajectory:
    s = make_schedule(schedule[0], schedule[1], **({"cosine_s": schedule[4]} if schedule[0] == "cosine" else
                                                     {"beta_start": schedule[2], "beta_end": schedule[3]}))
    x, g = initial_noise(seed, n)
    return tr.record_all(model_eps_fn(model, s, RunSettings(s, digit=digit, n=n).labels, guidance), s, x, g, sampler=sampler,
                         steps=steps, eta=eta, spacing=spacing)


def assert_still_serving(client):
    out = sample(client, steps=2, n=1)
    assert value(out[0]) == 2


# ---------------------------------------------------------------- sampling and scrubbing


def test_every_event_has_an_api_name(app):
    names = [fn.api_name for fn in app.fns.values()]
    assert all(names), names
    for name in ("reverse_sample", "reverse_stop", "reverse_view", "reverse_prev", "reverse_next",
                 "reverse_export", "reverse_compare", "reverse_compare_view", "reverse_img2img"):
        assert name in names


@pytest.mark.parametrize("others, side", [(0, True), (1, True), (2, False)])
def test_guidances_two_passes_go_side_by_side_only_when_no_other_event_runs_with_the_same_bits(
        model, monkeypatch, others, side):
    """``others`` events being processed (the run's own counts): alone, the unconditional pass runs on the
    second core while the conditional one runs here; otherwise both here. The frames are bit for bit those of
    the plain run (explorer.samplers.model_eps_fn without a pair, as the CLI samples)."""
    calls = []

    def spy(x, log_snr, labels):
        calls.append((threading.current_thread().name, bool((labels == NULL_CLASS).all())))
        return model(x, log_snr, labels)

    monkeypatch.setattr(cores, "events_in_process", lambda: others)
    run = RunSettings(make_schedule("linear", 1000), "ddim", 6, guidance=3.0, seed=5, n=4)
    # the second core's thread last ran on two intra-op threads (and that made the number new threads take two):
    # it must take this thread's one, or oneDNN's last bits differ
    cores._SECOND_CORE.submit(torch.set_num_threads, 2).result()
    torch.set_num_threads(1)
    for traj in sampling.recorder(ModelProvider(lambda: (spy, {})), run):
        pass
    expected = expected_run(model, steps=6, guidance=3.0, seed=5, n=4)
    for key in ("x_t", "eps", "x0_hat"):
        assert np.array_equal(getattr(traj, key), getattr(expected, key)), key
    here = threading.current_thread().name
    assert sorted(null for _, null in calls) == [False] * 6 + [True] * 6  # side by side: in either order
    assert all(name == here for name, null in calls if not null)
    assert all((name != here and name.startswith("guidance-pass")) == side for name, null in calls if null)


def test_the_second_cores_pass_runs_with_this_threads_torch_settings(monkeypatch):
    """torch keeps inference mode, autocast and the intra-op thread count per thread: the pass handed to the
    second core gets the run thread's, whatever that core's thread ran with before."""
    monkeypatch.setattr(cores, "events_in_process", lambda: 1)

    def settings():
        return (threading.current_thread().name, torch.is_inference_mode_enabled(), torch.is_autocast_enabled("cpu"),
                torch.get_autocast_dtype("cpu"), torch.get_num_threads())

    cores._SECOND_CORE.submit(torch.set_num_threads, 2).result()
    torch.set_num_threads(1)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        here, there = cores.side_by_side(settings, settings)
    assert there[0].startswith("guidance-pass") and there[1:] == here[1:] == (True, True, torch.bfloat16, 1)
    here, there = cores.side_by_side(settings, settings)
    assert there[0].startswith("guidance-pass") and there[1:] == here[1:] and here[1:3] == (False, False)


def own_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice value is Linux's")
def test_a_runs_threads_yield_the_cpu_to_everyone_elses_events(monkeypatch):
    """The thread that samples and the second core's thread run at RUN_NICE (a waiting slider render goes
    first); the thread that called the run, one of Gradio's workers that serve every event, keeps its priority."""
    monkeypatch.setattr(cores, "events_in_process", lambda: 1)
    here = own_nice()
    if here >= cores.RUN_NICE:
        pytest.skip(f"the tests already run at nice {here}: a lower priority cannot be seen here")
    seen = list(sampling.stream_latest(own_nice() for _ in range(1)))  # computed in the sampling thread
    second = cores.beside(own_nice).result()
    assert seen == [cores.RUN_NICE] and second == cores.RUN_NICE and own_nice() == here


def test_a_run_through_the_app_sees_its_own_event_being_processed(client, monkeypatch):
    seen = []
    count = cores.events_in_process
    monkeypatch.setattr(cores, "events_in_process", lambda: seen.append(count()) or seen[-1])
    sample(client, steps=3, n=2, guidance=3.0)
    assert seen == [1, 1, 1]  # the run's own event, in the app's queue: no other, so its passes go side by side


def test_sample_returns_the_result_frame_of_the_same_seeded_run(client, model):
    frame, chunk, caption, *_ = sample(client, steps=8, n=4, seed=3)
    expected = expected_run(model, steps=8, n=4, seed=3)
    assert value(frame) == 8  # 8 steps + the result frame, counted from 0
    last = payload(chunk)
    assert last["end"] == 9 and last["finished"]
    assert np.array_equal(last["x_t"][-1], expected.final())
    assert "Result" in last["numbers"][-1] and caption.startswith("Done: 8 steps")


def frames_held(chunks: list[dict]) -> dict:
    """What the page holds after these chunks, kept as static/reverse.js keeps them: each part (a chunk's
    "earlier" frames, then its own) that starts at or before the frames held adds the frames that follow them."""
    held = {"x_t": [], "eps": [], "x0_hat": [], "numbers": [], "markers": []}
    for c in chunks:
        for part in ([decoded(c["earlier"], c)] if "earlier" in c else []) + [c]:
            have, steps = len(held["numbers"]), c["num_steps"]
            if part["start"] > have:
                continue
            steps_start = min(part["start"], min(part["end"], steps) - 1)
            for k in range(have, part["end"]):
                held["x_t"].append(part["x_t"][k - part["start"]])
                for key in ("eps", "x0_hat"):
                    held[key].append(part[key][min(k, steps - 1) - steps_start])
                held["numbers"].append(part["numbers"][k - part["start"]])
                held["markers"].append(part["markers"][k - part["start"]])
    return held


def decoded(part: dict, chunk: dict) -> dict:
    return payload(json.dumps({**part, **{k: chunk[k] for k in ("batch", "h", "w")}}))


def test_the_page_gets_previews_while_sampling_then_every_frame_once(client, model):
    job = client.submit(*args(steps=30, n=2, seed=5), api_name="/reverse_sample")
    job.result()
    chunks = [json.loads(out[1]) for out in job.outputs()]
    previews, last = [payload(out[1]) for out in job.outputs()[:-1]], payload(job.outputs()[-1][1])
    assert previews and all(c["preview"] and c["end"] == c["start"] + 1 for c in previews)
    assert not last["preview"] and last["end"] == 31 and last["finished"]
    # every frame once: the previews' frames, those recorded between them, then the rest, none sent twice
    parts = [p for c in chunks for p in ([c["earlier"]] if "earlier" in c else []) + [c]]
    assert [p["start"] for p in parts] == [0] + [p["end"] for p in parts[:-1]]
    held = frames_held(previews + [last])
    expected = expected_run(model, steps=30, n=2, seed=5)
    for key, frames_ in (("x_t", expected.x_t), ("eps", expected.eps), ("x0_hat", expected.x0_hat)):
        assert np.array_equal(np.stack(held[key]), frames_[np.minimum(np.arange(31), len(frames_) - 1)]), key
        k = previews[-1]["start"]
        assert np.array_equal(previews[-1][key][0], frames_[min(k, len(frames_) - 1)]), key  # as recorded
    assert len(held["numbers"]) == 31 and "Step 1 of 30" in held["numbers"][0] and "Result" in held["numbers"][-1]
    assert [m["t"] for m in held["markers"]][-2:] == [int(expected.numbers["t"][-1]), 0]
    # the API's whole run (what the page asks for when a chunk was lost) holds the same frames
    chunk, _ = client.predict(api_name="/reverse_recorded_frames")
    whole = frames_held([payload(chunk)])
    for key in ("x_t", "eps", "x0_hat"):
        assert np.array_equal(np.stack(whole[key]), np.stack(held[key])), key
    assert (whole["numbers"], whole["markers"]) == (held["numbers"], held["markers"])


def test_sample_streams_a_first_frame_before_the_end(client):
    job = client.submit(*args(steps=30, n=2), api_name="/reverse_sample")
    job.result()
    outputs = job.outputs()
    assert len(outputs) >= 2
    assert re.match(r"Sampling… step \d+ of 30", outputs[0][2]) and outputs[-1][2].startswith("Done")


def test_scrubbing_shows_the_recorded_frame_and_its_numbers(client, model):
    sample(client, steps=8, n=4, seed=1)
    expected = expected_run(model, steps=8, n=4, seed=1)
    viewer, numbers, marker = client.predict(3, api_name="/reverse_view")
    shown = frames(viewer)
    assert np.array_equal(shown["x_t"], native(expected.x_t[3]))
    assert np.array_equal(shown["eps"], native(expected.eps[3]))
    assert np.array_equal(shown["x0_hat"], native(expected.x0_hat[3]))
    t = int(expected.numbers["t"][3])
    assert f"x_t at t = {t}" in numbers and "Step 4 of 8" in numbers
    assert marker["t"] == t
    assert marker["values"]["alpha_bar"] == pytest.approx(make_schedule("linear", 1000).alpha_bars[t])


def test_scrubbing_never_calls_the_model(client, model, monkeypatch):
    sample(client, steps=4, n=2)

    def boom(*a, **k):
        raise AssertionError("the model was called while scrubbing")

    monkeypatch.setattr(model, "forward", boom)
    for k in (0, 2, 4):
        client.predict(k, api_name="/reverse_view")
    client.predict(1, api_name="/reverse_next")
    client.predict(1, api_name="/reverse_prev")


def test_prev_and_next_step_one_frame_and_stop_at_the_ends(client):
    sample(client, steps=3, n=1)
    assert client.predict(0, api_name="/reverse_prev")[0] == 0
    assert client.predict(0, api_name="/reverse_next")[0] == 1
    assert client.predict(3, api_name="/reverse_next")[0] == 3
    a = client.predict(1, api_name="/reverse_next")
    b = client.predict(3, api_name="/reverse_prev")
    assert a[0] == b[0] == 2 and np.array_equal(frames(a[1])["x_t"], frames(b[1])["x_t"])


def test_two_sessions_never_see_each_others_frames(app, model):
    a, b = Client(app.local_url, verbose=False), Client(app.local_url, verbose=False)
    sample(a, steps=4, n=1, seed=11)
    sample(b, steps=6, n=4, seed=12)
    a_view = frames(a.predict(0, api_name="/reverse_view")[0])["x_t"]
    b_view = frames(b.predict(0, api_name="/reverse_view")[0])["x_t"]
    assert np.array_equal(a_view, native(expected_run(model, steps=4, n=1, seed=11).x_t[0]))
    assert np.array_equal(b_view, native(expected_run(model, steps=6, n=4, seed=12).x_t[0]))
    with pytest.raises(Exception, match="maximum value 4"):  # a's slider has 5 frames (0..4), b's has 7
        a.predict(6, api_name="/reverse_view")


def test_a_new_sample_replaces_the_old_trajectory(client, model):
    sample(client, steps=6, n=1, seed=1)
    sample(client, steps=2, n=1, seed=2)
    assert np.array_equal(frames(client.predict(0, api_name="/reverse_view")[0])["x_t"],
                          native(expected_run(model, steps=2, n=1, seed=2).x_t[0]))


def test_a_cancelled_run_keeps_the_frames_recorded_so_far(client):
    job = client.submit(*args(sampler="ddpm", n=16), api_name="/reverse_sample")  # 1000 steps
    deadline = time.time() + 60
    while len(job.outputs()) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert len(job.outputs()) >= 2, "the run did not stream"
    job.cancel()
    time.sleep(0.5)
    _, numbers, _ = client.predict(0, api_name="/reverse_view")
    assert "Step 1 of 1000" in numbers
    gif, png = client.predict(api_name="/reverse_export")
    assert gif.endswith(".gif") and png is None  # no final samples from a stopped run
    assert_still_serving(client)


def test_model_is_loaded_once_per_process(app, loader):
    c = Client(app.local_url, verbose=False)
    sample(c, steps=1, n=1)
    sample(c, steps=1, n=1)
    assert loader.calls == 1


# ---------------------------------------------------------------- export, compare, img2img


def test_export_gives_an_animated_gif_and_the_final_png(client, model):
    sample(client, steps=5, n=4, seed=4)
    gif, png = client.predict(api_name="/reverse_export")
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 6
    assert np.array_equal(image(png), tile(expected_run(model, steps=5, n=4, seed=4).final()))


def test_exported_files_are_deleted_with_the_other_temporary_files(app, client):
    sample(client, steps=2, n=1, seed=5)
    gif, png = client.predict(api_name="/reverse_export")
    served = [name for names in app.temp_file_sets for name in names if Path(name).name in (Path(gif).name,
                                                                                              Path(png).name)]
    assert len(served) == 2 and all(Path(name).is_file() for name in served)
    folder = Path(served[0]).parent
    assert folder.name.startswith("ddpm-reverse-")  # served from where they were written, not copied
    delete_old_temp_files(app, age=-1)
    assert not folder.exists()  # both files and their folder are gone


def test_compare_schedules_starts_from_the_same_noise_and_differs_later(client):
    out = client.predict(*args(steps=5, n=2), "schedules", *COSINE, "ddpm", 50, 0.0, api_name="/reverse_compare")
    frame, a_xt, a_x0, b_xt, b_x0, a_caption, b_caption = out
    assert value(frame) == 5 and "linear" in a_caption and "cosine" in b_caption
    assert not np.array_equal(image(a_xt), image(b_xt))
    first = client.predict(0, api_name="/reverse_compare_view")
    assert np.array_equal(image(first[0]), image(first[2]))  # x_T: same seed, same noise


def test_compare_samplers_runs_in_lock_step(client):
    short = ["linear", 20, 1e-4, 0.02, 0.008, False]
    out = client.predict(*args(schedule=short, sampler="ddpm", n=1), "samplers", *COSINE, "ddim", 5, 0.0,
                         api_name="/reverse_compare")
    assert value(out[0]) == 20 and "DDPM" in out[5] and "DDIM, 5 steps" in out[6]
    mid = client.predict(10, api_name="/reverse_compare_view")
    assert "step 11 of 20, t = 10" in mid[4] and "step 3 of 5, t = 12" in mid[5]  # 10 of 0..20 ↔ 2.5 -> 2 of 0..5
    assert value(client.predict(20, api_name="/reverse_compare_next")[0]) == 20


def test_compare_frame_maps_by_share_of_the_run():
    assert [compare_frame(k, 11, 6) for k in (0, 5, 10)] == [0, 2, 5]
    assert compare_frame(4, 5, 1) == 0 and compare_frame(0, 1, 1) == 0


def test_img2img_noises_to_t_and_denoises_back(client):
    x_in, noised, result, caption = client.predict(handle_file(DIGIT), 300, *args(steps=50, n=4),
                                                   api_name="/reverse_img2img")
    x0 = image_to_digit_tensor(data.load_image(DIGIT))
    assert np.array_equal(image(x_in), grid(tr.frames_uint8(x0)))
    assert image(noised).shape == image(result).shape == grid(np.zeros((4, 28, 28), np.uint8)).shape
    assert "t = 300 of 1000" in caption and "15 DDIM steps" in caption  # 50 · 300 / 1000


def test_img2img_with_ddpm_takes_every_step_from_t(client):
    short = ["linear", 50, 1e-4, 0.02, 0.008, False]
    *_, caption = client.predict(handle_file(DIGIT), 20, *args(schedule=short, sampler="ddpm", n=1),
                                 api_name="/reverse_img2img")
    assert "t = 20 of 50" in caption and "20 DDPM steps" in caption and "showing x₀" in caption


def test_img2img_refuses_t_beyond_the_schedule(client):
    with pytest.raises(Exception, match="maximum|t must"):
        client.predict(handle_file(DIGIT), 2000, *args(), api_name="/reverse_img2img")


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, message", [
    (dict(steps=0), "minimum"),
    (dict(steps=1001), "maximum"),
    (dict(schedule=["linear", 20, 1e-4, 0.02, 0.008, False], steps=50), "at most T = 20"),
    (dict(eta=1.5), "maximum"),
    (dict(sampler="euler"), "euler"),
    (dict(digit="11"), "11"),
    (dict(n=10**6), "maximum"),
    (dict(schedule=["linear", 5000, 1e-4, 0.02, 0.008, False], sampler="ddpm"), "DDPM"),
    (dict(seed=-1), "minimum"),
])
def test_bad_input_gets_a_clear_error_and_the_server_keeps_serving(client, kwargs, message):
    with pytest.raises(Exception, match=message):
        sample(client, **kwargs)
    assert_still_serving(client)


def raw_call(app, api_name: str, payload: list) -> str:
    """POST through the HTTP API with plain JSON (gradio_client refuses NaN); returns the event stream."""
    body = json.dumps({"data": payload})  # NaN is written as the bare token NaN
    base = app.local_url.rstrip("/")
    r = httpx.post(f"{base}/gradio_api/call/{api_name}", content=body, headers={"content-type": "application/json"})
    r.raise_for_status()
    event = r.json()["event_id"]
    return httpx.get(f"{base}/gradio_api/call/{api_name}/{event}", timeout=60).text


@pytest.mark.parametrize("kwargs, message", [
    (dict(eta=float("nan")), "η must be a number from 0 to 1, got nan"),
    (dict(guidance=float("nan")), "guidance scale must be a number"),
    (dict(seed=float("nan")), "seed"),
    (dict(steps=float("nan")), "DDIM steps"),
])
def test_nan_through_the_http_api_gets_a_clear_error(app, client, kwargs, message):
    stream = raw_call(app, "reverse_sample", args(**kwargs))
    assert "event: error" in stream and message in stream.encode().decode("unicode_escape")
    assert_still_serving(client)


def test_scrubbing_before_any_sample_says_what_to_do(client):
    with pytest.raises(Exception, match="press Sample first"):
        client.predict(0, api_name="/reverse_next")
    with pytest.raises(Exception, match="press Compare first"):
        client.predict(0, api_name="/reverse_compare_next")


def test_missing_checkpoint_shows_a_message_instead_of_crashing():
    error = CheckpointError("Model weights not found at checkpoints/x.safetensors. Train them with ...")
    demo = launch_reverse(ModelProvider(CountingLoader(error=error)))
    try:
        c = Client(demo.local_url, verbose=False)
        status = c.predict(api_name="/reverse_model_status")[0]
        assert "No model" in status and "weights not found" in status
        with pytest.raises(Exception, match="weights not found"):
            sample(c, steps=2, n=1)
        assert "No model" in c.predict(api_name="/reverse_model_status")[0]  # still serving
    finally:
        demo.close()


def test_the_whole_app_has_the_reverse_tab_wired_to_the_forward_tab():
    from explorer.ui import build_demo

    demo = build_demo()
    names = {fn.api_name for fn in demo.fns.values()}
    assert {"reverse_sample", "reverse_view", "reverse_compare", "reverse_img2img", "reverse_export"} <= names
    launch(demo)
    try:
        c = Client(demo.local_url, verbose=False)
        copied = c.predict("cosine", 500, 1e-4, 0.02, 0.01, True, api_name="/reverse_copy_forward_schedule")
        assert list(copied) == ["cosine", 500, 1e-4, 0.02, 0.01, True]
        photo = c.predict(handle_file(str(data.ASSETS_DIR / "astronaut.png")), api_name="/reverse_use_forward_image")
        assert np.array_equal(np.asarray(Image.open(photo)), np.asarray(Image.open(data.ASSETS_DIR / "astronaut.png")))
    finally:
        demo.close()


def test_labels_for_digit_choices():
    def labels(digit, n):
        return RunSettings(make_schedule("linear", 1000), digit=digit, n=n).labels.tolist()

    assert labels("mixed", 12) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert labels("none", 2) == [10, 10] and labels("7", 1) == [7]
    with pytest.raises(ValueError, match="digit class"):
        labels("11", 1)
    assert math.isfinite(MAX_GUIDANCE)


# ---------------------------------------------------------------- Sample presses and Stop (StopSwitch)


def test_a_press_stops_the_run_of_an_earlier_press_never_its_own():
    from explorer.ui.sampling import StopSwitch

    sw = StopSwitch()
    sw.press()
    first = sw.start()  # press 1's run
    assert not first.is_set()
    sw.press()  # press 2 during run 1: run 1 ends after its step
    assert first.is_set()
    second = sw.start()
    assert not second.is_set()
    # press 3 reaches the server after its own run already started (run 2 had finished): that run goes on
    third = sw.start()
    sw.press()
    assert not third.is_set()


def test_presses_before_a_run_starts_leave_only_the_last_run():
    from explorer.ui.sampling import StopSwitch

    sw = StopSwitch()
    sw.press()
    sw.press()  # pressed twice before the first run got the slot
    assert sw.start().is_set()  # run 1: stopped as it starts
    assert not sw.start().is_set()  # run 2: the one asked for last


def test_stop_ends_the_running_run_and_a_waiting_one_but_not_the_next_press():
    from explorer.ui.sampling import StopSwitch

    sw = StopSwitch()
    sw.press()
    running = sw.start()
    sw.press()  # queued behind the running one (which this press stops)
    sw.stop()  # … and Stop: the queued run must not run either
    assert running.is_set() and sw.start().is_set()
    sw.press()
    assert not sw.start().is_set()


def test_api_runs_without_presses_stop_only_on_stop():
    from explorer.ui.sampling import StopSwitch

    sw = StopSwitch()
    runs = [sw.start() for _ in range(3)]
    assert not any(f.is_set() for f in runs)
    sw.stop()
    assert runs[-1].is_set()
    assert not sw.start().is_set()

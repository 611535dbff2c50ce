"""Every API endpoint, sent values the UI never sends: clear errors, no tracebacks, bounded work, still serving.

The endpoints are enumerated from the running app's API info, so a new endpoint is probed without editing
this file. Gradio's own input checks (a slider's minimum/maximum, a dropdown's choices) answer first; the
app's checks answer the rest (t beyond T, NaN, seeds, sample counts, DDPM beyond the recorded-steps cap).
"""

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import handle_file

from explorer import data
from explorer import runs
from explorer.ui.common import UI_MAX_T
from served_app import TRACE_MARKERS, error_message, file_data, raw_call, upload

LINEAR = '"linear", 1000, 0.0001, 0.02, 0.008, false'
# Cheap sampling settings for the sampling endpoints: 2 DDIM steps, one sample (and DDIM on side B of compare).
CHEAP = {"reverse_sample": {7: 2, 13: 1}, "reverse_img2img": {9: 2, 15: 1}, "reverse_img2img_class": {9: 2, 15: 1},
         "reverse_compare": {7: 2, 13: 1, 21: "ddim", 22: 2},
         "tiny_sd_sample": {5: 2, 7: 1}, "tiny_sd_frame": {5: 2, 7: 1}, "tiny_sd_compare": {4: 2, 5: 1},
         # 2-D lab: T = 50 (DDPM runs every step), 10 particles, DDIM-5, 100 points, 1 s of training
         "lab2d_reverse": {4: 50, 10: 10, 11: 5}, "lab2d_train": {4: 50, 9: 1}, "lab2d_sweep": {3: 50},
         "lab2d_setup": {3: 100, 5: 50, 11: 20}, "lab2d_field_at": {3: 100, 5: 50, 11: 20},
         "lab2d_points_at": {3: 100, 5: 50, 10: 20},
         # Step microscope: T = 5 (the trajectory map's DDPM runs every step), DDIM-2
         "step_lab_run": {1: 5, 7: 2}, "step_lab_guidance_row": {1: 5, 7: 2}, "step_lab_trajectory_map": {1: 5, 7: 2}}
SHARDS = 4  # the sweep is split so that test workers share it
SECONDS_PER_CALL = 30.0  # far above any answer here (~0.1–2 s, more on a busy CI machine): a runaway fails

# JSON texts (NaN and Infinity are not JSON, but Python's json and Gradio accept them, so attackers can send them)
NUMBERS = ["NaN", "-Infinity", "-1", "1e308", "2.5"]
WRONG_TYPES = ['"abc"', "null", "{}", '{"path": "/etc/passwd"}']


@pytest.fixture(scope="module")
def endpoints(client) -> dict:
    return client.view_api(return_format="dict", print_info=False)["named_endpoints"]


@pytest.fixture(scope="module")
def image(app):
    response = upload(app, data.ASSETS_DIR / "mnist_3.png")
    return file_data(response.json()[0], "mnist_3.png")


def baseline(endpoints, image, name: str) -> list[str]:
    """Each input's default (as JSON text), files replaced by an uploaded digit, sampling made cheap."""
    values = []
    for i, p in enumerate(endpoints[name]["parameters"]):
        if p["python_type"]["type"] == "filepath":
            values.append(json.dumps(image))
        elif p["component"] in ("Imageeditor", "Sketchpad"):
            values.append("null")
        else:
            values.append(json.dumps(CHEAP.get(name.lstrip("/"), {}).get(i, p.get("parameter_default"))))
    return values


def assert_still_serving(client):
    _, numbers = client.predict(handle_file(str(data.ASSETS_DIR / "mnist_3.png")), "linear", 1000, 1e-4, 0.02,
                                0.008, False, 0, 10, api_name="/render_forward")
    assert numbers["t"] == 10


def probe(app, endpoints, image, bad_values) -> list[str]:
    """Send each bad value in each input of each endpoint; return what went wrong (empty: all fine).

    Endpoints are probed four at a time (each event has its own queue slot), so the whole sweep stays short."""
    with ThreadPoolExecutor(4) as pool:
        return [f for found in pool.map(lambda name: probe_endpoint(app, endpoints, image, bad_values, name),
                                        endpoints) for f in found]


def probe_endpoint(app, endpoints, image, bad_values, name) -> list[str]:
    """One endpoint's probes, all in one session of its own (a new session per call costs Gradio ~100 ms)."""
    failures = []
    values = baseline(endpoints, image, name)
    session = f"hostile-{name.lstrip('/')}-{bad_values[0]}"
    for i, p in enumerate(endpoints[name]["parameters"]):
        for bad in bad_values:
            body = "[" + ", ".join(values[:i] + [bad] + values[i + 1:]) + "]"
            start = time.perf_counter()
            try:
                stream = raw_call(app, name.lstrip("/"), body, session=session)
            except Exception as e:  # an HTTP error status, or no answer in time
                failures.append(f"{name} {p['parameter_name']}={bad}: {e!r}")
                continue
            seconds = time.perf_counter() - start
            where = f"{name} {p['parameter_name']}={bad}"
            if "event: complete" not in stream and "event: error" not in stream:
                failures.append(f"{where}: no answer: {stream[:200]}")
            if any(m in stream for m in TRACE_MARKERS):
                failures.append(f"{where}: traceback shown: {stream[:300]}")
            if seconds > SECONDS_PER_CALL:
                failures.append(f"{where}: took {seconds:.1f} s")
    return failures


def shard_of(endpoints: dict, shard: int) -> dict:
    """The endpoints of one shard: each endpoint in exactly one, shards balanced by number of inputs."""
    loads, members = [0] * SHARDS, [[] for _ in range(SHARDS)]
    for name in sorted(endpoints, key=lambda n: (-len(endpoints[n]["parameters"]), n)):
        i = loads.index(min(loads))
        loads[i] += len(endpoints[name]["parameters"])
        members[i].append(name)
    return {name: endpoints[name] for name in members[shard]}


@pytest.mark.parametrize("shard", range(SHARDS))
@pytest.mark.parametrize("kind, bad_values", [("numbers", NUMBERS), ("wrong types", WRONG_TYPES)])
def test_every_input_of_every_endpoint_survives_hostile_values(app, client, endpoints, image, kind, bad_values, shard):
    failures = probe(app, shard_of(endpoints, shard), image, bad_values)
    assert not failures, f"{len(failures)} problems:\n" + "\n".join(failures[:30])
    assert_still_serving(client)


REVERSE = '"ddim", 2, 0.0, "trailing", "mixed", 1.0, 0, 1'


@pytest.mark.parametrize("endpoint, body, message", [
    # T (steps of the schedule)
    ("render_forward", '[IMG, "linear", -5, 0.0001, 0.02, 0.008, false, 0, 0]', "less than minimum value 1"),
    ("render_forward", '[IMG, "linear", 1e9, 0.0001, 0.02, 0.008, false, 0, 0]', f"maximum value {UI_MAX_T}"),
    ("forward_math", '["linear", 0, 0.0001, 0.02, 0.008, false, 0]', "minimum value 1|at least 1"),
    # t
    ("render_forward", f"[IMG, {LINEAR}, 0, 1001]", r"t \(T = 1000\) must be a whole number from 0 to 1000"),
    ("render_forward", f"[IMG, {LINEAR}, 0, -3]", "less than minimum value 0|from 0 to 1000"),
    ("render_forward", f"[IMG, {LINEAR}, 0, NaN]", "whole number"),
    ("forward_math", f"[{LINEAR}, 1e308]", "greater than maximum value"),
    ("forward_math", f"[{LINEAR}, 2.5]", "whole number"),
    # the fields a family hides, and the checkbox: refused, not silently ignored or read as "truthy"
    ("render_forward", '[IMG, "linear", 1000, 0.0001, 0.02, "abc", false, 0, 5]', "cosine s must be a number"),
    ("render_forward", '[IMG, "cosine", 1000, NaN, 0.02, 0.008, false, 0, 5]', "β_start must be a number"),
    ("render_forward", '[IMG, "linear", 1000, 0.0001, 0.02, 0.008, "abc", 0, 5]', "must be true or false"),
    ("render_forward", '[IMG, "linear", 1000, 0.0001, 0.02, 0.008, {"path": "/etc/passwd"}, 0, 5]',
     "must be true or false"),
    ("lab2d_setup", '["ring8", "abc", 0, 100, ' + LINEAR + ', "shipped", 20]', "list of"),
    ("lab2d_points_at", '["ring8", [[NaN, 0]], 0, 100, ' + LINEAR + ', 20]', "NaN"),
    # seed
    ("render_forward", f"[IMG, {LINEAR}, -1, 5]", "less than minimum value 0"),
    ("render_forward", f"[IMG, {LINEAR}, 1e308, 5]", "seed must be a whole number"),
    ("reverse_sample", f'[{LINEAR}, "ddim", 2, 0.0, "trailing", "mixed", 1.0, NaN, 1]', "seed must be a whole number"),
    ("reverse_sample", f'[{LINEAR}, "ddim", 2, 0.0, "trailing", "mixed", 1.0, 1e300, 1]', "seed must be a whole number"),
    # chain frames, compare fraction
    ("forward_chain", f"[IMG, {LINEAR}, 0, 1000]", "greater than maximum value 16"),
    ("compare_view", f"[IMG, {LINEAR}, {LINEAR}, 0, NaN]", "fraction"),
    ("compare_view", f"[IMG, {LINEAR}, {LINEAR}, 0, 1.5]", "greater than maximum value 1"),
    # sampling: steps, sample counts, guidance, η, names
    ("reverse_sample", f'[{LINEAR}, "ddim", 5000, 0.0, "trailing", "mixed", 1.0, 0, 1]', "greater than maximum value"),
    ("reverse_sample", f'[{LINEAR}, "ddim", -1, 0.0, "trailing", "mixed", 1.0, 0, 1]', "less than minimum value"),
    ("reverse_sample", f'[{LINEAR}, "ddim", 2, 0.0, "trailing", "mixed", 1.0, 0, 1000000]', "greater than maximum value"),
    ("reverse_sample", f'[{LINEAR}, "ddim", 2, 0.0, "trailing", "mixed", 1.0, 0, 0]', "less than minimum value"),
    ("reverse_sample", f'[{LINEAR}, "ddim", 2, 0.0, "trailing", "mixed", NaN, 0, 1]', "guidance"),
    ("reverse_sample", f'[{LINEAR}, "ddim", 2, NaN, "trailing", "mixed", 1.0, 0, 1]', "η"),
    ("reverse_sample", f'[{LINEAR}, "ddim", NaN, 0.0, "trailing", "mixed", 1.0, 0, 1]', "steps"),
    ("reverse_sample", f'[{LINEAR}, "euler", 2, 0.0, "trailing", "mixed", 1.0, 0, 1]', "not in the list of choices"),
    ("reverse_sample", f'[{LINEAR}, "ddim", 2, 0.0, "trailing", "11", 1.0, 0, 1]', "not in the list of choices"),
    ("reverse_sample", '["quadratic", 1000, 0.0001, 0.02, 0.008, false, ' + REVERSE + "]", "not in the list of choices"),
    ("reverse_sample", '["linear", 10000, 0.0001, 0.02, 0.008, false, "ddpm", 2, 0.0, "trailing", "mixed", 1.0, 0, 1]',
     f"records at most {runs.MAX_RECORDED_STEPS}"),
    ("reverse_img2img", f"[IMG, 5000, {LINEAR}, {REVERSE}]", "greater than maximum value"),
    ("reverse_img2img", f"[IMG, NaN, {LINEAR}, {REVERSE}]", "whole number"),
    ("reverse_compare", f'[{LINEAR}, {REVERSE}, "everything", {LINEAR}, "ddim", 2, 0.0]', "not in the list of choices"),
    # scrubbing before anything was sampled (this session has no recorded run)
    ("reverse_view", "[0]", "Nothing recorded yet"),
    ("reverse_compare_view", "[NaN]", "Nothing to compare yet"),
    ("reverse_export", "[]", "Nothing recorded yet"),
])
def test_values_beyond_the_ui_get_clear_messages(app, client, image, endpoint, body, message):
    stream = raw_call(app, endpoint, body.replace("IMG", json.dumps(image)))
    got = error_message(stream)
    assert got is not None and re.search(message, got), f"{endpoint} {body[:80]}: {got!r}"
    assert not any(m in stream for m in TRACE_MARKERS)
    assert_still_serving(client)


def test_the_largest_schedule_the_app_allows_is_answered_quickly(app, image):
    start = time.perf_counter()
    stream = raw_call(app, "forward_setup", f'[{json.dumps(image)}, "cosine", {UI_MAX_T}, 0.0001, 0.02, 0.008, '
                                           f"true, 0, {UI_MAX_T}, 16]")
    assert "event: complete" in stream and time.perf_counter() - start < 10
    assert len(stream) < 8 * 2**20  # the browser scene for T = 10 000 stays a few MB

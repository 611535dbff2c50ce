"""Whatever file a user uploads, the app answers with a clear message or a sensible picture, and keeps serving.

Two doors: the Upload tab (``load_upload``, a gr.File: the app decodes it itself) and the image inputs that API
users can fill directly (``render_forward``, ``compare_view``, ``reverse_img2img``: a gr.Image, which Gradio
opens first). test_ui_api.py checks that the usual bad and odd files are refused or accepted; here every
hostile file goes through both doors, and accepted files must look right.
"""

import os
import re
import sys
import threading

import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image

from bad_images import write_bad_files, write_hostile_files, write_odd_files
from explorer import data
from explorer.ui import delete_old_temp_files
from served_app import TRACE_MARKERS, error_message, file_data, raw_call, upload

LINEAR = ["linear", 1000, 1e-4, 0.02, 0.008, False]
REVERSE = ["ddim", 2, 0.0, "trailing", "mixed", 1.0, 0, 1]

REFUSED = {  # file -> what the Upload tab says
    "empty.png": "empty",
    "not_an_image.png": "not an image",
    "random.png": "not an image",
    "random.jpg": "not an image|damaged or truncated|could not be read",
    "truncated.png": "damaged or truncated",
    "truncated.jpg": "damaged or truncated|could not be read",
    "bomb.png": "too many pixels",
    "drawing.svg": "not an image",
}
ACCEPTED = ["one_pixel.png", "gray16.png", "cmyk.jpg", "rgba.png", "palette.png", "animated.gif", "animated.png",
            "large.png"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uploads")
    return {**write_bad_files(folder), **write_odd_files(folder), **write_hostile_files(folder)}


def assert_still_serving(client):
    _, numbers = client.predict(handle_file(str(data.ASSETS_DIR / "mnist_3.png")), *LINEAR, 0, 10,
                                api_name="/render_forward")
    assert numbers["t"] == 10


def upload_tab(client, path) -> Image.Image:
    return Image.open(client.predict(handle_file(str(path)), api_name="/load_upload"))


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_upload_tab_refuses_with_a_clear_message(client, files, name):
    with pytest.raises(Exception) as excinfo:
        upload_tab(client, files[name])
    assert re.search(REFUSED[name], str(excinfo.value)), str(excinfo.value)
    assert_still_serving(client)


@pytest.mark.parametrize("name", ACCEPTED)
def test_upload_tab_converts_odd_images_to_gray_or_rgb_within_the_size_limit(client, files, name):
    im = upload_tab(client, files[name])
    assert im.mode in ("L", "RGB") and 1 <= max(im.size) <= data.MAX_SIDE


def test_cmyk_red_stays_red(client, files):
    r, g, b = upload_tab(client, files["cmyk.jpg"]).convert("RGB").getpixel((5, 5))
    assert r > 200 and g < 60 and b < 60


def test_animations_give_their_first_frame(client, files):
    assert upload_tab(client, files["animated.gif"]).convert("L").getpixel((3, 3)) == 10
    assert upload_tab(client, files["animated.png"]).convert("RGB").getpixel((3, 3)) == (250, 0, 0)


def test_transparent_white_square_is_flattened_onto_black(client, files):
    arr = np.asarray(upload_tab(client, files["rgba.png"]).convert("L"))
    assert arr[16, 16] == 255 and arr[0, 0] == 0


def test_16_bit_gray_is_scaled_not_clipped(client, files):
    src = np.asarray(Image.open(files["gray16.png"]), dtype=np.float64)
    arr = np.asarray(upload_tab(client, files["gray16.png"]).convert("L"), dtype=np.float64)
    assert np.abs(arr - src / 65535 * 255).max() <= 1 and arr.max() > 200


def test_a_file_over_the_cap_is_refused_and_the_next_request_served(app, client, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(data.MAX_UPLOAD_BYTES))
    assert upload(app, big).status_code == 413
    with pytest.raises(Exception, match="exceeds the maximum file size"):
        upload_tab(client, big)  # gradio_client checks the cap before sending
    assert_still_serving(client)


# ------------------------------------------------------------------ the image inputs, straight from the API


def _image_input_calls(file_value):
    return {
        "render_forward": [file_value, *LINEAR, 0, 100],
        "compare_view": [file_value, *LINEAR, *LINEAR, 0, 0.5],
        "reverse_img2img": [file_value, 100, *LINEAR, *REVERSE],
    }


@pytest.mark.parametrize("name", sorted(REFUSED) + ACCEPTED)
def test_api_image_inputs_refuse_or_use_every_file_without_tracebacks(app, client, files, name):
    """Refused files get the Upload tab's readable message from every image input (those PIL cannot open at
    all, such as empty files, random bytes or the bomb, included: Gradio's own gr.Image would answer "Error")."""
    response = upload(app, files[name])
    assert response.status_code == 200
    value = file_data(response.json()[0], name)
    for endpoint, payload in _image_input_calls(value).items():
        stream = raw_call(app, endpoint, payload)
        assert not any(m in stream for m in TRACE_MARKERS), stream
        message = error_message(stream)
        if name in ACCEPTED:
            assert message is None and "event: complete" in stream, f"{endpoint}: {stream[:300]}"
        else:
            assert message is not None and re.search(REFUSED[name], message), f"{endpoint}, {name}: {message!r}"
    assert_still_serving(client)


# ------------------------------------------------------------------ temporary files do not pile up


def test_old_temp_files_are_deleted_and_examples_kept(app, client, files):
    def temp_files() -> set:
        return {name for names in app.temp_file_sets for name in names}

    before = temp_files()
    client.predict(handle_file(str(files["rgba.png"])), *LINEAR, 0, 7, api_name="/render_forward")
    made = temp_files() - before  # this call's rendered x_t (and the upload's copy, unless already there)
    assert made and all(os.path.exists(name) for name in made)
    kept = {name for block in app.blocks.values() for name in getattr(block, "keep_in_cache", ())}
    assert delete_old_temp_files(app, age=-1) > 0
    assert not any(os.path.exists(name) for name in made)
    assert kept and all(os.path.exists(name) for name in kept)  # the bundled examples stay
    assert_still_serving(client)


def test_temp_file_cleanup_survives_requests_adding_files_meanwhile(app):
    names = set()
    app.temp_file_sets.append(names)
    stop = threading.Event()

    def add():
        i = 0
        while not stop.is_set():
            names.add(f"/nonexistent/{i % 200}")  # the set changes size all the time, but stays small
            i += 1

    # The sweep releases the GIL at each file-system call and the adder, which never blocks, keeps it for a whole
    # switch interval (5 ms by default): without a shorter one the 20 sweeps took 1-4 minutes.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    adder = threading.Thread(target=add)
    adder.start()
    try:
        for _ in range(20):
            delete_old_temp_files(app, age=-1)  # Gradio's own sweep raises "Set changed size during iteration"
    finally:
        stop.set()
        adder.join()
        sys.setswitchinterval(interval)
        app.temp_file_sets.remove(names)

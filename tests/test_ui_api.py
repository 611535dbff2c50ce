"""The launched app driven through gradio_client: every endpoint named, good answers, clear errors, still serving."""

import re

import httpx
import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image

from bad_images import write_bad_files, write_odd_files
from explorer import data, render
from explorer.diffusion import q_sample
from explorer.readouts import format_number
from explorer.schedules import make_schedule

DIGIT = str(data.ASSETS_DIR / "mnist_3.png")
PHOTO = str(data.ASSETS_DIR / "astronaut.png")
LINEAR = ("linear", 1000, 1e-4, 0.02, 0.008, False)


def render_forward(client, image=DIGIT, schedule=LINEAR, seed=0, t=500):
    return client.predict(handle_file(image), *schedule, seed, t, api_name="/render_forward")


def assert_still_serving(client):
    _, numbers = render_forward(client, t=10)
    assert numbers["t"] == 10


def test_every_server_event_has_an_api_name(app):
    for fn in app.fns.values():
        assert fn.api_name, f"event {fn.name} has no api_name"


def test_every_api_name_is_one_we_chose(client):
    # Gradio names an event after its function when it is given none: a gr.State whose value is a class got a
    # load event per page, listed as "/StopSwitch", "/StopSwitch_1", ...
    names = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert names and not [n for n in names if not re.fullmatch(r"/[a-z0-9_]+", n)], sorted(names)


def test_render_forward_returns_server_image_and_numbers(client):
    image_path, numbers = render_forward(client, image=PHOTO, t=500)
    s = make_schedule("linear", 1000)
    x0 = data.image_to_tensor(data.load_image(PHOTO))
    expected = data.tensor_to_uint8(q_sample(x0, 500, data.fixed_noise(0, tuple(x0.shape)), s))
    assert np.array_equal(np.asarray(Image.open(image_path).convert("RGB")), expected)
    assert numbers["alpha_bar"] == pytest.approx(s.alpha_bars[500])
    assert numbers["formatted"]["alpha_bar"] == format_number(s.alpha_bars[500])


def test_render_forward_digit_is_upscaled_nearest(client):
    image_path, _ = render_forward(client, image=DIGIT, t=0)
    im = Image.open(image_path).convert("L")
    assert im.size[0] >= render.DISPLAY_SIDE
    k = im.size[0] // 28
    assert np.array_equal(np.asarray(im)[::k, ::k], np.asarray(Image.open(DIGIT)))


def test_render_forward_at_t0_shows_infinite_snr(client):
    _, numbers = render_forward(client, t=0)
    assert numbers["formatted"]["snr"] == "∞" and numbers["formatted"]["log_snr"] == "∞"


def test_same_seed_gives_same_image_other_seed_differs(client):
    a, _ = render_forward(client, seed=7)
    b, _ = render_forward(client, seed=7)
    c, _ = render_forward(client, seed=8)
    assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
    assert not np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(c)))


@pytest.mark.parametrize(
    "schedule, t, message",
    [
        (LINEAR, 1001, r"t \(T = 1000\) must be a whole number from 0 to 1000"),
        (LINEAR, -1, "from 0 to 1000|less than minimum value 0"),
        (("linear", 0, 1e-4, 0.02, 0.008, False), 0, "T must be a whole number from 1|less than minimum value 1"),
        (("linear", -5, 1e-4, 0.02, 0.008, False), 0, "T must be a whole number from 1|less than minimum value 1"),
        (("linear", 1000, 1e-4, 1.5, 0.008, False), 5, "beta_end must lie strictly between 0 and 1"),
        (("linear", 1000, -0.1, 0.02, 0.008, False), 5, "beta_start must lie strictly between 0 and 1"),
        (("linear", 1000, 0.03, 0.02, 0.008, False), 5, "must not exceed"),
        (("cosine", 1000, 1e-4, 0.02, 7.0, False), 5, "Cosine offset s"),
        (("quadratic", 1000, 1e-4, 0.02, 0.008, False), 5, "quadratic"),
    ],
)
def test_bad_api_values_give_clear_errors_and_server_keeps_serving(client, schedule, t, message):
    with pytest.raises(Exception) as excinfo:
        render_forward(client, schedule=schedule, t=t)
    assert re.search(message, str(excinfo.value)), str(excinfo.value)
    assert_still_serving(client)


def raw_call(app, api_name: str, body: str) -> str:
    """POST a hand-written JSON body (gradio_client refuses NaN) and return the event stream's text."""
    base = app.local_url.rstrip("/")
    event = httpx.post(f"{base}/gradio_api/call/{api_name}", content=body,
                       headers={"Content-Type": "application/json"}, timeout=30)
    event.raise_for_status()
    return httpx.get(f"{base}/gradio_api/call/{api_name}/{event.json()['event_id']}", timeout=30).text


@pytest.mark.parametrize("field, values", [("beta_start", "NaN, 0.02"), ("beta_end", "1e-4, NaN")])
def test_nan_beta_gives_clear_error_and_server_keeps_serving(app, client, field, values):
    body = '{"data": ["linear", 1000, %s, 0.008, false, 250]}' % values
    stream = raw_call(app, "forward_math", body)
    assert "event: error" in stream
    assert field in stream and "must be a number, got nan" in stream, stream
    assert_still_serving(client)


@pytest.mark.parametrize("name, message", [("empty.png", "empty"), ("not_an_image.png", "not an image"),
                                           ("truncated.png", "damaged or truncated"), ("bomb.png", "too many pixels")])
def test_bad_uploads_give_clear_errors_and_server_keeps_serving(client, tmp_path, name, message):
    path = write_bad_files(tmp_path)[name]
    with pytest.raises(Exception) as excinfo:
        client.predict(handle_file(str(path)), api_name="/load_upload")
    assert message in str(excinfo.value)
    assert_still_serving(client)


@pytest.mark.parametrize("name", ["gray16.png", "rgba.png", "palette.png", "cmyk.jpg", "animated.gif",
                                  "one_pixel.png", "large.png"])
def test_odd_uploads_are_accepted_and_can_be_noised(client, tmp_path, name):
    path = write_odd_files(tmp_path)[name]
    x0_path = client.predict(handle_file(str(path)), api_name="/load_upload")
    im = Image.open(x0_path)
    assert max(im.size) <= data.MAX_SIDE
    image_path, numbers = render_forward(client, image=x0_path, t=100)
    assert Image.open(image_path).size[0] >= 1 and numbers["t"] == 100


def test_forward_math_substitutes_numbers(client):
    md = client.predict("linear", 1000, 1e-4, 0.02, 0.008, False, 250, api_name="/forward_math")
    assert "x_{250} = 0.72394" in md


def test_forward_setup_clamps_t_to_new_T(client):
    result = client.predict(handle_file(DIGIT), "cosine", 100, 1e-4, 0.02, 0.008, True, 0, 250, 8,
                            api_name="/forward_setup")
    scene, slider = result[0], result[1]
    assert slider["value"] == 100 and slider["maximum"] == 100 and '"T":100' in scene


def test_compare_endpoint_returns_both_sides_and_diagnostics(client):
    result = client.predict(handle_file(DIGIT), *LINEAR, "cosine", 50, 1e-4, 0.02, 0.008, False, 0, 0.5, 6,
                            api_name="/compare")
    caption_a, caption_b, table = result[2], result[3], result[-1]
    assert "t = 500 of 1000" in caption_a and "t = 25 of 50" in caption_b
    assert len(table["data"]) == 4  # A and B, zero terminal SNR off and on


def test_compare_bad_fraction_is_refused(client):
    with pytest.raises(Exception, match="fraction|greater than maximum value 1"):
        client.predict(handle_file(DIGIT), *LINEAR, *LINEAR, 0, 1.5, api_name="/compare_view")
    assert_still_serving(client)

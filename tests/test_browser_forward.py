"""The real app in headless Chromium: the slider redraws x_t in the browser, exactly as the server computes it."""

import time

import numpy as np
import pytest

from explorer import data, readouts
from explorer.diffusion import q_sample
from explorer.schedules import make_schedule
from browser import app_page

pytestmark = pytest.mark.browser

CANVAS = "#ddpm-fwd-canvas"
SLIDER = "#timestep-t input[type=range]"

CANVAS_PIXELS_JS = """() => {
  const c = document.querySelector('#ddpm-fwd-canvas');
  return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
}"""
MARKER_JS = """() => {
  const gd = document.querySelector('#fwd-coef-plot .js-plotly-plot');
  const sh = gd && gd.layout && (gd.layout.shapes || []).find((s) => s.name === 'marker:alpha_bar');
  return sh ? {x: sh.xanchor, y: sh.yanchor} : null;
}"""


@pytest.fixture(scope="module")
def url(app):  # the whole app, from conftest
    return app.local_url


@pytest.fixture(scope="module")
def page(url):
    with app_page(url) as page:
        wait_for_t(page, 250)
        yield page


def wait_for_t(page, t, timeout=60_000):
    page.wait_for_function(f"() => document.querySelector('{CANVAS}')?.dataset.t === '{t}'", timeout=timeout)


def wait_for_marker(page, t, timeout=30_000):
    page.wait_for_function(f"() => ({MARKER_JS})()?.x === {t}", timeout=timeout)


def move_slider(page, t):
    page.locator(SLIDER).fill(str(t))
    wait_for_t(page, t)


def canvas_image(page) -> np.ndarray:
    w, h = page.evaluate(f"() => [document.querySelector('{CANVAS}').width, document.querySelector('{CANVAS}').height]")
    return np.array(page.evaluate(CANVAS_PIXELS_JS), dtype=np.uint8).reshape(h, w, 4)


def server_xt(image_path, schedule, t, seed=0) -> np.ndarray:
    x0 = data.image_to_tensor(data.load_image(image_path))
    return data.tensor_to_uint8(q_sample(x0, t, data.fixed_noise(seed, tuple(x0.shape)), schedule))


def number_cell(page, key) -> str:
    return page.locator(f'.ddpm-numbers [data-key="{key}"]').inner_text()


def test_slider_changes_image_numbers_and_marker(page):
    wait_for_marker(page, 250)
    before_image = canvas_image(page)
    before_marker = page.evaluate(MARKER_JS)
    move_slider(page, 600)
    assert not np.array_equal(canvas_image(page), before_image)
    wait_for_marker(page, 600)
    after_marker = page.evaluate(MARKER_JS)
    linear = make_schedule("linear", 1000)
    assert after_marker["y"] == pytest.approx(linear.alpha_bars[600]) != before_marker["y"]
    assert number_cell(page, "alpha_bar") == readouts.format_number(linear.alpha_bars[600])
    assert number_cell(page, "t") == "600"


def test_browser_image_equals_server_image_for_digit(page):
    move_slider(page, 437)
    expected = server_xt(data.DEFAULT_EXAMPLE, make_schedule("linear", 1000), 437)
    assert np.array_equal(canvas_image(page)[..., 0], expected)


def test_numbers_show_infinity_at_t0(page):
    move_slider(page, 0)
    assert number_cell(page, "snr") == "∞" and number_cell(page, "log_snr") == "∞"
    assert np.array_equal(canvas_image(page)[..., 0], np.asarray(data.load_image(data.DEFAULT_EXAMPLE)))


def test_switching_schedule_updates_numbers_and_curves(page):
    move_slider(page, 300)
    page.locator("#forward-family input").click()
    page.get_by_role("option", name="cosine", exact=True).click()
    cosine = make_schedule("cosine", 1000)
    expected = readouts.format_number(cosine.alpha_bars[300])
    page.wait_for_function(
        f"() => document.querySelector('.ddpm-numbers [data-key=\"alpha_bar\"]')?.textContent === '{expected}'",
        timeout=60_000)
    page.wait_for_function(f"() => Math.abs(({MARKER_JS})()?.y - {cosine.alpha_bars[300]}) < 1e-9",
                           timeout=30_000)
    assert np.array_equal(canvas_image(page)[..., 0], server_xt(data.DEFAULT_EXAMPLE, cosine, 300))


def test_browser_image_equals_server_image_for_photo(page):
    photo = data.ASSETS_DIR / "astronaut.png"
    page.locator("img[src*='astronaut']").first.click()
    page.wait_for_function(f"() => document.querySelector('{CANVAS}').width === 256", timeout=60_000)
    move_slider(page, 123)
    time.sleep(0.5)  # let any pending scene update settle
    move_slider(page, 124)
    family = page.locator("#forward-family input").input_value()
    expected = server_xt(photo, make_schedule(family, 1000), 124)
    assert np.array_equal(canvas_image(page)[..., :3], expected)


def test_compare_tab_shows_both_sides_and_diagnostics(page):
    page.get_by_role("tab", name="Compare").click()
    page.wait_for_function("() => document.querySelectorAll('#compare-fraction input').length > 0", timeout=30_000)
    page.get_by_text("t = 500 of 1000").first.wait_for(timeout=60_000)
    assert page.get_by_text("A: linear").first.is_visible()
    assert page.get_by_text("B: cosine").first.is_visible()
    page.get_by_text("share of steps with").first.wait_for(timeout=30_000)

"""Every view shows the same t, however it changed, and a drawing is used or refused cleanly (issue 14, items 2, 3, 5).

The whole app in headless Chromium: the Forward tab's "Timestep t" moved by ↺, keys and typing; the Compare
tab's shared slider drawn in the page, with the server's pixels; the sketchpad's empty pad and its brush.
"""

import re

import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image
from playwright.sync_api import expect

from browser import app_page
from explorer import data, readouts
from explorer.schedules import make_schedule

pytestmark = pytest.mark.browser

SLIDER = "#timestep-t input[type=range]"
CANVAS = "#ddpm-fwd-canvas"
MATH = "#forward-math"
MARKER_X_JS = """() => {
  const gd = document.querySelector('#fwd-coef-plot .js-plotly-plot');
  const sh = gd && gd.layout && (gd.layout.shapes || []).find((s) => s.name === 'marker:alpha_bar');
  return sh ? sh.xanchor : null;
}"""
# any element on screen that reads just "Error" (Gradio's badge on the outputs of a failed event)
ERROR_BADGES_JS = """() => Array.from(document.querySelectorAll('body *')).filter((e) =>
  e.childElementCount === 0 && e.textContent.trim() === 'Error' && e.offsetParent !== null).length"""
LINEAR = ["linear", 1000, 1e-4, 0.02, 0.008, False]
COSINE = ["cosine", 1000, 1e-4, 0.02, 0.008, False]


@pytest.fixture(scope="module")
def page(app):  # the whole app, from conftest
    with app_page(app.local_url) as page:
        page.wait_for_function(f"() => document.querySelector('{CANVAS}')?.dataset.t === '250'", timeout=60_000)
        page.wait_for_function(f"() => ({MARKER_X_JS})() === 250", timeout=60_000)  # the plots are in
        yield page


WAIT_MS = 30_000


def assert_every_view_at(page, t):
    """The image, the numbers table, the plot marker and the math panel all show t (within WAIT_MS: the suite's
    two workers can load the machine heavily)."""
    try:
        page.wait_for_function(f"() => document.querySelector('{CANVAS}').dataset.t === '{t}'", timeout=WAIT_MS)
    except Exception as error:  # say what the page showed instead, and where the slider stood
        shown = page.evaluate(f"() => [document.querySelector('{CANVAS}').dataset.t, "
                              f"document.querySelector('{SLIDER}').value, document.activeElement?.outerHTML?.slice(0, 80)]")
        raise AssertionError(f"canvas never showed t={t}; canvas t, slider value, focus: {shown}") from error
    expect(page.locator('.ddpm-numbers [data-key="t"]')).to_have_text(str(t))
    expect(page.locator('.ddpm-numbers [data-key="alpha_bar"]')).to_have_text(
        readouts.format_number(make_schedule("linear", 1000).alpha_bars[t]))
    page.wait_for_function(f"() => ({MARKER_X_JS})() === {t}", timeout=WAIT_MS)
    expect(page.locator(MATH)).to_contain_text(f"t = {t} of T = 1000", timeout=WAIT_MS)


def test_reset_moves_every_view_back(page):
    page.locator(SLIDER).fill("807")
    assert_every_view_at(page, 807)
    page.locator("#timestep-t button.reset-button").click()
    assert_every_view_at(page, 250)


@pytest.mark.parametrize("start, key, t", [(250, "ArrowRight", 251), (250, "End", 1000), (250, "Home", 0),
                                           (0, "PageUp", 100), (1000, "PageDown", 900)])
def test_keys_move_every_view(page, start, key, t):
    # each case sets its own start, so it holds in any order and when it is run again after a timeout
    page.locator(SLIDER).fill(str(start))
    assert_every_view_at(page, start)
    page.locator(SLIDER).focus()
    page.keyboard.press(key)
    assert_every_view_at(page, t)


def test_typing_beyond_T_shows_T_everywhere_and_no_error(page):
    box = page.locator("#timestep-t input[type=number]")
    box.fill("5000")
    box.press("Enter")
    box.blur()
    assert_every_view_at(page, 1000)
    assert page.evaluate(ERROR_BADGES_JS) == 0


CMP_VIEW = "#compare-view .ddpm-cmp"
CMP_PIXELS_JS = """(side) => {
  const c = document.querySelector(`#compare-view canvas[data-side="${side}"]`);
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const gray = [];
  for (let i = 0; i < px.length; i += 4) gray.push(px[i]);
  return [c.width, c.height, gray];
}"""


def test_compare_slider_draws_both_sides_in_the_page_as_the_server_does(page, client):
    page.get_by_role("tab", name="Compare").click()
    page.wait_for_function(f"() => document.querySelector('{CMP_VIEW}')?.dataset.position === '500'", timeout=60_000)
    requests = []
    page.on("request", lambda r: requests.append(r.url) if "/queue/join" in r.url or "/run/" in r.url else None)
    page.locator("#compare-fraction input[type=range]").fill("0.437")
    page.wait_for_function(f"() => document.querySelector('{CMP_VIEW}').dataset.position === '437'", timeout=10_000)
    page.wait_for_timeout(200)
    assert not requests  # drawn in the page: no event reaches the server
    out = client.predict(handle_file(str(data.DEFAULT_EXAMPLE)), *LINEAR, *COSINE, 0, 0.437, api_name="/compare_view")
    for side, image_path, caption in (("A", out[0], out[2]), ("B", out[1], out[3])):
        server = np.asarray(Image.open(image_path).convert("L"))
        w, h, gray = page.evaluate(CMP_PIXELS_JS, side)
        k = server.shape[0] // h  # the server enlarges by a whole factor, nearest neighbour
        assert np.array_equal(np.array(gray, np.uint8).reshape(h, w), server[::k, ::k]), side
        line = caption.split("\n")[-1]
        expect(page.locator(f'{CMP_VIEW} figcaption[data-side="{side}"]')).to_contain_text(line)
    assert "t = 437 of 1000" in out[2] and "t = 437 of 1000" in out[3]


def test_an_empty_drawing_gets_a_warning_and_x0_stays(page):
    page.get_by_role("tab", name="Forward").click()
    x0_src = page.locator("#x0-image img").get_attribute("src")
    page.get_by_role("tab", name="Draw").click()
    page.get_by_role("button", name="Use drawing as x₀").click()
    expect(page.get_by_text(re.compile(r"Draw something on the sketchpad|draw a digit first")).first).to_be_visible(
        timeout=10_000)
    page.wait_for_timeout(300)
    assert page.locator("#x0-image img").get_attribute("src") == x0_src
    assert page.evaluate(ERROR_BADGES_JS) == 0


def test_the_brush_is_ready_so_a_drag_draws_the_new_x0(page):
    page.get_by_role("tab", name="Forward", exact=True).click()  # the tests run in any order (pytest-randomly)
    page.get_by_role("tab", name="Draw").click()
    x0_src = page.locator("#x0-image img").get_attribute("src")
    box = page.locator("#forward-sketch .pixi-target canvas").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 30, cy - 60)
    page.mouse.down()
    page.mouse.move(cx + 30, cy + 60, steps=8)
    page.mouse.up()
    page.get_by_role("button", name="Use drawing as x₀").click()
    page.wait_for_function("(old) => document.querySelector('#x0-image img')?.getAttribute('src') !== old",
                           arg=x0_src, timeout=30_000)
    assert page.evaluate(ERROR_BADGES_JS) == 0

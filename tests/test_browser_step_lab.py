"""The Step microscope tab in headless Chromium: scrubbing and a pixel click redraw every view in the page, with the
pixels and numbers the server's step_lab_view / step_lab_pixel return; the Reverse tab's run, inspected, shows
the pixels the Reverse tab shows; its img2img round trip, inspected, shows its true x₀."""

import json

import numpy as np
import pytest

from playwright.sync_api import expect

from explorer import data
from explorer.model import DEFAULT_MODEL
from explorer.render import GRID_GAP, grid_columns
from explorer.runs import image_to_digit_tensor
from explorer.data import to_uint8
from explorer.steplab import DEFAULTS, StepLabSettings, record_all
from explorer.ui.step_lab import frame_view, pixel_view
from browser import app_page

pytestmark = pytest.mark.browser

ROOT = "#steplab-view .ddpm-steplab"
SLIDER = "#steplab-frame input[type=range]"
STEPS = 12
SETTINGS = StepLabSettings(DEFAULTS.run.replace(steps=STEPS))  # what the page runs: the tab's defaults, 12 DDIM steps

CANVAS_JS = """(key) => {
  const c = document.querySelector('#steplab-view canvas[data-key="' + key + '"]');
  return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)];
}"""


@pytest.fixture(scope="module")
def page(app):  # the whole app, from conftest
    with app_page(app.local_url, height=1400) as page:
        page.get_by_role("tab", name="Step microscope").click()
        steps = page.locator("#steplab-steps input[type=number]")
        steps.fill(str(STEPS))
        steps.press("Enter")
        page.locator("#steplab-run").click()
        page.wait_for_function(f"() => document.querySelector('{ROOT}')?.dataset.count === '{STEPS}'", timeout=90_000)
        yield page


@pytest.fixture(scope="module")
def server_run():
    """The same run recorded on the server side (fp32, one thread: the same numbers as the app's)."""
    model, _ = DEFAULT_MODEL.get()
    return record_all(model, SETTINGS)


def canvas(page, key) -> np.ndarray:
    w, h, data = page.evaluate(CANVAS_JS, key)
    return np.array(data, np.uint8).reshape(h, w, 4)[..., 0]


def go_to(page, k):
    page.locator(SLIDER).fill(str(k))
    page.wait_for_function(f"() => document.querySelector('{ROOT}').dataset.frame === '{k}'", timeout=10_000)


def test_scrubbing_draws_the_servers_pixels_for_every_view(page, server_run):
    go_to(page, 7)
    expected = frame_view(server_run, 7)["images"]
    for key in ("x_t", "x0_hat", "eps", "term_a", "term_b", "term_noise", "x_prev", "eps_uncond", "eps_cond",
                "eps_delta", "eps_guided"):
        assert np.array_equal(canvas(page, key), np.array(expected[key], np.uint8)), key


def test_scrubbing_changes_the_images_and_the_numbers(page):
    go_to(page, 2)
    before, text = canvas(page, "x_t"), page.locator(f"{ROOT} .ddpm-steplab-numbers").inner_text()
    go_to(page, 9)
    assert not np.array_equal(canvas(page, "x_t"), before)
    assert page.locator(f"{ROOT} .ddpm-steplab-numbers").inner_text() != text


def test_the_sum_captions_carry_the_frames_coefficients(page, server_run):
    go_to(page, 4)
    labels = frame_view(server_run, 4)["labels"]
    for key, label in labels.items():
        assert page.locator(f'{ROOT} [data-caption="{key}"]').inner_text() == label


def test_clicking_a_pixel_shows_the_servers_densities(page, server_run):
    go_to(page, 5)
    box = page.locator(f'{ROOT} canvas[data-key="x_t"]').bounding_box()
    row, col = 10, 12
    page.mouse.click(box["x"] + (col + 0.5) * box["width"] / 28, box["y"] + (row + 0.5) * box["height"] / 28)
    page.wait_for_function(f"() => JSON.parse(document.querySelector('{ROOT}').dataset.pixel || '{{}}').row === {row}")
    shown = json.loads(page.locator(ROOT).get_attribute("data-pixel"))
    server = pixel_view(server_run, 5, row, col)
    assert shown["col"] == col
    for key in ("x_t", "x0_hat", "drawn"):
        assert shown[key] == server[key], key
    for key in ("q_hat", "p"):
        assert shown[key] == pytest.approx(server[key], rel=1e-12), key
    assert shown["q_true"] is None


def test_the_pixels_densities_follow_the_frame(page, server_run):
    go_to(page, 8)
    shown = json.loads(page.locator(ROOT).get_attribute("data-pixel"))
    assert shown["frame"] == 8 and shown["drawn"] == pixel_view(server_run, 8, shown["row"], shown["col"])["drawn"]


def test_the_frequency_view_names_the_crossover_or_says_none(page, server_run):
    go_to(page, 6)
    text = page.locator(f"{ROOT} .ddpm-steplab-spectrum-text").inner_text()
    crossover = server_run.frame_numbers(6)["crossover"]
    assert (f"from {crossover} cycles" in text) if crossover is not None else ("every frequency" in text)


def test_the_math_panel_is_typeset(page):
    page.locator("#steplab-math .katex").first.wait_for(timeout=30_000)
    assert "Bayes" in page.locator("#steplab-math").inner_text()


def test_releasing_the_slider_typesets_the_frames_math(page, server_run):
    box = page.locator(SLIDER).bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)  # press and release mid-way
    page.wait_for_function(f"() => document.querySelector('{ROOT}').dataset.frame !== undefined")
    k = int(page.locator(ROOT).get_attribute("data-frame"))
    t_prev = server_run.frame_numbers(k)["t_prev"]
    page.wait_for_function(f"() => document.querySelector('#steplab-math').innerText.includes('Frame {k}:')",
                           timeout=30_000)
    assert f"→ {t_prev}" in page.locator("#steplab-math").inner_text()


def test_img2img_from_a_test_digit_shows_the_true_x0_and_its_posterior(page):
    # near the end of the module: it records a new run in the page
    page.locator("#steplab-view").scroll_into_view_if_needed()
    page.get_by_label("start from").click()
    page.get_by_role("option", name="img2img from the test digit 7 (x₀ known)").click()
    page.locator("#steplab-run").click()
    steps = round(STEPS * 600 / 1000)  # img2img's DDIM takes the share t_start / T of the steps
    page.wait_for_function(f"() => document.querySelector('{ROOT}')?.dataset.count === '{steps}' && "
                           f"document.querySelector('{ROOT}').classList.contains('ddpm-steplab-img2img')",
                           timeout=60_000)
    assert page.locator(f'{ROOT} figure[data-fig="x0_true"]').is_visible()
    assert canvas(page, "x0_true").max() == 255  # a white-on-black digit
    shown = json.loads(page.locator(ROOT).get_attribute("data-pixel"))
    assert shown["q_true"] is not None and shown["t"] == 600


REVERSE_STEPS, REVERSE_N, REVERSE_SAMPLE = 6, 4, 3  # a DDIM-6 run of 4 samples in the Reverse tab; the 4th
REVERSE_CANVAS_JS = CANVAS_JS.replace("#steplab-view", "#reverse-viewer")


def reverse_sample_pixels(page, k) -> np.ndarray:
    """Frame k of the Reverse tab as its page draws it, cut down to REVERSE_SAMPLE's tile of the grid."""
    page.locator("#reverse-frame input[type=number]").fill(str(k))
    page.locator("#reverse-frame input[type=number]").press("Enter")
    page.wait_for_function("() => document.querySelector('#reverse-viewer canvas[data-key=\"x_t\"]').dataset.frame "
                           f"=== '{k}'", timeout=30_000)
    w, h, data = page.evaluate(REVERSE_CANVAS_JS, "x_t")
    row, col = divmod(REVERSE_SAMPLE, grid_columns(REVERSE_N))
    y, x = row * (28 + GRID_GAP), col * (28 + GRID_GAP)
    return np.array(data, np.uint8).reshape(h, w, 4)[y:y + 28, x:x + 28, 0]


def test_inspecting_the_reverse_tabs_run_draws_the_pixels_the_reverse_tab_draws(page):
    # near the end of the module: it samples in the Reverse tab, then brings that run into the microscope
    page.get_by_role("tab", name="Reverse").click()
    page.locator("#reverse-steps input[type=number]").fill(str(REVERSE_STEPS))
    page.locator("#reverse-steps input[type=number]").press("Enter")
    samples = page.get_by_role("spinbutton", name="samples")
    samples.fill(str(REVERSE_N))
    samples.press("Enter")
    viewer = "#reverse-viewer .ddpm-rev-viewer"
    old_run = page.locator(viewer).get_attribute("data-run")  # (set if this test runs again after a timeout)
    page.locator("#reverse-sample").click()
    expect(page.locator("#reverse-caption")).to_contain_text(f"Done: {REVERSE_STEPS} steps", timeout=90_000)
    page.wait_for_function(f"(old) => {{ const v = document.querySelector('{viewer}'); return v.dataset.run !== old "
                           f"&& v.dataset.frames === '{REVERSE_STEPS + 1}'; }}", arg=old_run, timeout=30_000)
    reverse = {k: reverse_sample_pixels(page, k) for k in (0, 5, REVERSE_STEPS)}  # the last: the result x_0
    page.get_by_role("tab", name="Step microscope").click()
    page.locator("#steplab-reverse-sample input").fill(str(REVERSE_SAMPLE))
    page.locator("#steplab-inspect-reverse").click()
    expect(page.locator("#steplab-caption")).to_contain_text(
        f"sample {REVERSE_SAMPLE} (row 2, column 2 of its {REVERSE_N})", timeout=90_000)
    page.wait_for_function(f"() => document.querySelector('{ROOT}').dataset.count === '{REVERSE_STEPS}' && "
                           f"!document.querySelector('{ROOT}').classList.contains('ddpm-steplab-img2img')")
    for k in (0, 5):
        go_to(page, k)
        assert np.array_equal(canvas(page, "x_t"), reverse[k]), k
    go_to(page, REVERSE_STEPS - 1)
    assert np.array_equal(canvas(page, "x_prev"), reverse[REVERSE_STEPS])  # the last step's x_{t_prev}: the result


def test_inspecting_the_reverse_tabs_img2img_round_trip_shows_its_true_x0(page):
    # last in the module: a round trip in the Reverse tab (its default input, the test digit 7), then inspected
    page.get_by_role("tab", name="Reverse").click()
    page.get_by_role("button", name="img2img round trip: noise an image").click()  # the accordion
    page.locator("#img2img-run").click()
    expect(page.locator("#img2img-caption")).to_contain_text("showing x₀", timeout=90_000)
    page.get_by_role("tab", name="Step microscope").click()
    page.locator("#steplab-reverse-sample input").fill("0")
    page.locator("#steplab-inspect-img2img").click()
    expect(page.locator("#steplab-caption")).to_contain_text("img2img round trip", timeout=90_000)
    expect(page.locator("#steplab-caption")).to_contain_text("Done:", timeout=90_000)
    page.wait_for_function(f"() => document.querySelector('{ROOT}').classList.contains('ddpm-steplab-img2img')")
    x0 = to_uint8(image_to_digit_tensor(data.load_image(data.ASSETS_DIR / "mnist_7.png")))[0, 0]
    assert np.array_equal(canvas(page, "x0_true"), x0)  # the input as the model saw it

"""The Reverse tab in headless Chromium: sample, scrub and step with ◀ ▶ (drawn in the page), plot markers, the
page's pixels against the server's, compare, download the GIF.

Runs the tab on a tiny random UNet (independent of the shipped weights); one test opens the whole app.
"""

import base64
import io
import re

import numpy as np

import gradio as gr
import pytest
import torch
from playwright.sync_api import expect, sync_playwright

from PIL import Image

from explorer.model import ModelProvider, UNet, UNetConfig
from explorer.ui import build_reverse
from served_app import launch

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
FRAME = "#reverse-frame input[type=range]"
MARKER_T_JS = """() => {
  const gd = document.querySelector('#reverse-coef-plot .js-plotly-plot');
  const sh = gd && gd.layout && (gd.layout.shapes || []).find((s) => s.name === 'marker:alpha_bar');
  return sh ? sh.xanchor : null;
}"""


def tiny_model() -> UNet:
    torch.manual_seed(0)
    model = UNet(UNetConfig(patch=2, channels=(16, 32), blocks=(1, 1))).eval()
    with torch.no_grad():
        model.head[-1].weight.normal_(0, 0.05)
    return model


MODEL_CALLS = []  # one entry per call of the served model (a forward pre-hook)


@pytest.fixture(scope="module")
def url():
    torch.set_num_threads(1)
    model = tiny_model()
    model.register_forward_pre_hook(lambda module, args: MODEL_CALLS.append(1))
    with gr.Blocks() as demo:
        build_reverse(demo, provider=ModelProvider(lambda: (model, {"parameters": 1, "weights": "random"})))
    yield launch(demo).local_url
    demo.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    expect(page.locator("#reverse-model-status")).to_contain_text("Model:", timeout=60_000)
    yield page
    page.close()
    assert not errors, errors


XT = "#reverse-viewer canvas[data-key=x_t]"  # the x_t grid of the main viewer, drawn in the page
NUMBERS = "#reverse-viewer .ddpm-rev-numbers"


def shown_frame(page) -> str | None:
    return page.locator(XT).get_attribute("data-frame")


def wait_frame_change(page, old: str | None, timeout=30_000) -> str:
    page.wait_for_function("([sel, old]) => { const c = document.querySelector(sel); "
                           "return c && c.dataset.frame !== undefined && c.dataset.frame !== old; }",
                           arg=[XT, old], timeout=timeout)
    return shown_frame(page)


def sample_and_wait(page):
    page.locator("#reverse-sample").click()
    expect(page.locator("#reverse-caption")).to_contain_text("Done: 50 steps", timeout=120_000)


def test_sample_then_step_back_and_forth_changes_the_frame(page):
    sample_and_wait(page)
    expect(page.locator(NUMBERS)).to_contain_text("Result")
    expect(page.locator(FRAME)).to_have_value("50")
    assert shown_frame(page) == "50"

    page.locator("#reverse-prev").click()
    wait_frame_change(page, "50")
    expect(page.locator(NUMBERS)).to_contain_text("Step 50 of 50")
    expect(page.locator(FRAME)).to_have_value("49")
    # the t marker on the ᾱ_t plot moved to the step's t (trailing spacing: the last step is at t = 20)
    page.wait_for_function(f"() => ({MARKER_T_JS})() === 20", timeout=30_000)

    page.locator("#reverse-prev").click()
    wait_frame_change(page, "49")
    expect(page.locator(NUMBERS)).to_contain_text("Step 49 of 50")
    page.wait_for_function(f"() => ({MARKER_T_JS})() === 40", timeout=30_000)

    page.locator("#reverse-next").click()
    expect(page.locator(NUMBERS)).to_contain_text("Step 50 of 50")
    expect(page.locator(FRAME)).to_have_value("49")


CANVAS_PIXELS_JS = """(key) => {
  const c = document.querySelector(`#reverse-viewer canvas[data-key="${key}"]`);
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const gray = [];
  for (let i = 0; i < px.length; i += 4) gray.push(px[i]);
  return [c.width, c.height, gray];
}"""


def test_the_page_draws_the_same_pixels_as_the_servers_reverse_view(page):
    sample_and_wait(page)
    page.get_by_text("This frame computed on the server").click()
    for k in (0, 17, 49, 50):
        page.locator("#reverse-frame input[type=number]").fill(str(k))
        page.locator("#reverse-frame input[type=number]").press("Enter")
        page.wait_for_function(f"() => document.querySelector('{XT}').dataset.frame === '{k}'", timeout=90_000)
        page.locator("#reverse-server-view").click()
        expect(page.locator("#reverse-server-viewer img[data-key=x_t]")).to_have_attribute(
            "data-frame", str(k), timeout=30_000)
        server = page.locator("#reverse-server-viewer").inner_html()
        for key, b64 in re.findall(r'data-key="(\w+)"[^>]*src="data:image/png;base64,([^"]+)"', server):
            expected = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("L"))
            w, h, gray = page.evaluate(CANVAS_PIXELS_JS, key)
            assert (h, w) == expected.shape, (k, key)
            assert np.array_equal(np.array(gray, np.uint8).reshape(h, w), expected), (k, key)


def test_frames_stream_while_sampling_and_stop_keeps_them(page):
    page.locator("#reverse-sampler").get_by_text("ddpm").click()  # 1000 steps: long enough to watch and stop
    page.locator("#reverse-sample").click()
    expect(page.locator("#reverse-caption")).to_contain_text("Sampling… step", timeout=60_000)
    first = wait_frame_change(page, None)
    wait_frame_change(page, first)  # a later streamed frame replaces the first
    page.locator("#reverse-stop").click()
    expect(page.locator("#reverse-caption")).to_contain_text("Stopped", timeout=30_000)
    # the frames recorded before Stop come to the page once, and can be scrubbed there
    page.wait_for_function("() => +document.querySelector('#reverse-viewer .ddpm-rev-viewer').dataset.frames > 1",
                           timeout=30_000)
    page.locator(FRAME).fill("0")
    expect(page.locator(NUMBERS)).to_contain_text("Step 1 of 1000", timeout=30_000)


def test_sample_during_a_run_starts_afresh(page):
    calls = len(MODEL_CALLS)
    page.locator("#reverse-sampler").get_by_text("ddpm").click()  # 1000 steps
    page.locator("#reverse-sample").click()
    expect(page.locator("#reverse-caption")).to_contain_text("Sampling… step", timeout=60_000)
    page.locator("#reverse-sampler").get_by_text("ddim").click()  # 50 steps
    page.locator("#reverse-sample").click()  # during the DDPM run: stop it, start the DDIM run
    expect(page.locator("#reverse-caption")).to_contain_text("Done: 50 steps", timeout=120_000)
    # The DDPM run stopped early: fewer model calls than its 1000 steps. (Gradio's page sends one button's
    # listeners one after another, each after the previous one's event ended: while the "stop the earlier run"
    # listener came after the run's own, it reached the server only once the DDPM run had finished all 1000.)
    # Each guided step makes two model calls: the DDPM run alone makes 2000 if it is not stopped, the DDIM run 100.
    assert len(MODEL_CALLS) - calls < 2000, f"{len(MODEL_CALLS) - calls} model calls: the DDPM run was not stopped"


def test_play_advances_frames_and_pause_stops(page):
    sample_and_wait(page)
    page.locator("#reverse-play").click()  # at the last frame, Play starts again from the first
    # frames advance (on a loaded machine Play may reach the last frame before a poll sees one in between)
    page.wait_for_function(f"() => +document.querySelector('{FRAME}').value > 3", timeout=60_000)
    page.locator("#reverse-pause").click()
    paused = page.locator(FRAME).input_value()
    page.wait_for_timeout(1000)
    assert page.locator(FRAME).input_value() == paused and shown_frame(page) == paused  # no frame after Pause
    expect(page.locator(NUMBERS)).to_contain_text(re.compile(rf"frame {paused}(:| of )"))  # "frame 50 of 50" at the end


def test_compare_runs_both_sides_in_lock_step(page):
    page.get_by_text("Compare: same seed and x_T").click()
    page.locator("#reverse-compare").click()
    expect(page.locator("#compare-b-caption")).to_contain_text("cosine", timeout=120_000)
    expect(page.locator("#compare-a-caption")).to_contain_text("result x₀", timeout=120_000)
    expect(page.locator("#compare-b-caption")).to_contain_text("result x₀", timeout=120_000)
    a_src = page.locator("#compare-a-xt img").get_attribute("src")
    page.locator("#compare-prev").click()
    page.wait_for_function("(old) => document.querySelector('#compare-a-xt img').getAttribute('src') !== old",
                           arg=a_src, timeout=30_000)
    expect(page.locator("#compare-a-caption")).to_contain_text("step 50 of 50, t = 20")
    expect(page.locator("#compare-b-caption")).to_contain_text("step 50 of 50, t = 20")


def test_export_downloads_an_animated_gif(page, tmp_path):
    sample_and_wait(page)
    page.locator("#reverse-export").click()
    link = page.locator("#reverse-gif a").first
    expect(link).to_be_visible(timeout=60_000)
    with page.expect_download(timeout=60_000) as download:
        link.click()
    path = tmp_path / "run.gif"
    download.value.save_as(path)
    assert path.read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    expect(page.locator("#reverse-png a").first).to_be_visible()


def test_the_whole_app_shows_the_reverse_tab(browser):
    from explorer.ui import build_demo

    demo = launch(build_demo())
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(demo.local_url)
        page.get_by_role("tab", name="Reverse").click()
        # either the shipped model's card or the clear "no model" message, never a crash
        expect(page.locator("#reverse-model-status")).to_contain_text("odel", timeout=60_000)
        expect(page.locator("#reverse-sample")).to_be_visible()
        page.close()
    finally:
        demo.close()

"""The Reverse tab in headless Chromium: sample, step with ◀ ▶, plot markers, compare, download the GIF.

Runs the tab on a tiny random UNet (independent of the shipped weights); one test opens the whole app.
"""


import gradio as gr
import pytest
import torch
from playwright.sync_api import expect, sync_playwright

from explorer.model import UNet, UNetConfig
from explorer.model import ModelProvider
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


@pytest.fixture(scope="module")
def url():
    torch.set_num_threads(1)
    model = tiny_model()
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


XT = "#reverse-viewer img[data-key=x_t]"  # the x_t grid of the main viewer (an inline PNG)


def image_src(page, selector: str) -> str:
    img = page.locator(selector)
    expect(img).to_have_count(1, timeout=30_000)
    return img.get_attribute("src")


def wait_src_change(page, selector: str, old: str, timeout=30_000):
    page.wait_for_function(
        "([sel, old]) => { const i = document.querySelector(sel); return i && i.getAttribute('src') !== old; }",
        arg=[selector, old], timeout=timeout)
    return image_src(page, selector)


def sample_and_wait(page):
    page.locator("#reverse-sample").click()
    expect(page.locator("#reverse-caption")).to_contain_text("Done: 50 steps", timeout=120_000)


def test_sample_then_step_back_and_forth_changes_the_frame(page):
    sample_and_wait(page)
    expect(page.locator("#reverse-numbers")).to_contain_text("Result")
    assert page.locator(FRAME).input_value() == "50"
    result_src = image_src(page, XT)

    page.locator("#reverse-prev").click()
    prev_src = wait_src_change(page, XT, result_src)
    expect(page.locator("#reverse-numbers")).to_contain_text("Step 50 of 50")
    expect(page.locator(FRAME)).to_have_value("49")
    # the t marker on the ᾱ_t plot moved to the step's t (trailing spacing: the last step is at t = 20)
    page.wait_for_function(f"() => ({MARKER_T_JS})() === 20", timeout=30_000)

    page.locator("#reverse-prev").click()
    wait_src_change(page, XT, prev_src)
    expect(page.locator("#reverse-numbers")).to_contain_text("Step 49 of 50")
    page.wait_for_function(f"() => ({MARKER_T_JS})() === 40", timeout=30_000)

    page.locator("#reverse-next").click()
    expect(page.locator("#reverse-numbers")).to_contain_text("Step 50 of 50")
    expect(page.locator(FRAME)).to_have_value("49")


def test_frames_stream_while_sampling_and_stop_keeps_them(page):
    page.locator("#reverse-sampler").get_by_text("ddpm").click()  # 1000 steps: long enough to watch and stop
    page.locator("#reverse-sample").click()
    expect(page.locator("#reverse-caption")).to_contain_text("Sampling… step", timeout=60_000)
    first_src = image_src(page, XT)
    wait_src_change(page, XT, first_src)  # a later streamed frame replaces the first
    page.locator("#reverse-stop").click()
    expect(page.locator("#reverse-caption")).to_contain_text("Stopped", timeout=30_000)
    # the frames recorded before Stop can be scrubbed
    page.locator(FRAME).fill("0")
    expect(page.locator("#reverse-numbers")).to_contain_text("Step 1 of 1000", timeout=30_000)


def test_sample_during_a_run_starts_afresh(page):
    page.locator("#reverse-sampler").get_by_text("ddpm").click()  # 1000 steps
    page.locator("#reverse-sample").click()
    expect(page.locator("#reverse-caption")).to_contain_text("Sampling… step", timeout=60_000)
    page.locator("#reverse-sampler").get_by_text("ddim").click()  # 50 steps
    page.locator("#reverse-sample").click()  # during the DDPM run: cancel it, start the DDIM run
    expect(page.locator("#reverse-caption")).to_contain_text("Done: 50 steps", timeout=120_000)


def test_play_advances_frames_and_pause_stops(page):
    sample_and_wait(page)
    page.locator("#reverse-play").click()  # at the last frame, Play starts again from the first
    page.wait_for_function(f"() => {{ const v = +document.querySelector('{FRAME}').value; return v > 3 && v < 50; }}",
                           timeout=30_000)
    page.locator("#reverse-pause").click()
    page.wait_for_timeout(500)  # a tick already in flight may still land
    paused = page.locator(FRAME).input_value()
    page.wait_for_timeout(1000)
    assert page.locator(FRAME).input_value() == paused
    expect(page.locator("#reverse-numbers")).to_contain_text(f"frame {paused}:")


def test_compare_runs_both_sides_in_lock_step(page):
    page.get_by_text("Compare: same seed and x_T").click()
    page.locator("#reverse-compare").click()
    expect(page.locator("#compare-b-caption")).to_contain_text("cosine", timeout=120_000)
    expect(page.locator("#compare-a-caption")).to_contain_text("result x₀", timeout=120_000)
    expect(page.locator("#compare-b-caption")).to_contain_text("result x₀", timeout=120_000)
    a_src = image_src(page, "#compare-a-xt img")
    page.locator("#compare-prev").click()
    wait_src_change(page, "#compare-a-xt img", a_src)
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

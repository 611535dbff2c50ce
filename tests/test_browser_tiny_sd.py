"""The Tiny SD tab in headless Chromium: a run is drawn in the page, scrubbing redraws canvases from the data sent
once (equal to the server's frame), the pipeline lights its stages, user text stays text."""


import numpy as np
import pytest
from gradio_client import Client

from explorer.ui import tiny_sd
from tiny_sd_app import launch_tab
from browser import app_page

pytestmark = pytest.mark.browser

VIEW = "#tiny-sd-view .tsd-view"
SETTINGS = ["a thick 7", "", 3, 0, "ddim", 8, "scaled_linear", 3]  # the page's values after set_up()

CANVAS_JS = """(sel) => {
  const c = document.querySelector(sel);
  return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
}"""


@pytest.fixture(scope="module")
def served():
    original = tiny_sd.model
    demo, _ = launch_tab()
    yield demo
    demo.close()
    tiny_sd.model = original


@pytest.fixture(scope="module")
def page(served):
    with app_page(served.local_url) as page:
        page.locator("#tiny-sd-run").wait_for(timeout=60_000)
        set_number(page, "#tiny-sd-steps", 8)
        set_number(page, "#tiny-sd-n", 3)
        page.locator("#tiny-sd-run").click()
        page.wait_for_function("() => window.ddpmTinySd.scene?.stage === 'done'", timeout=120_000)
        yield page


def set_number(page, elem, value):
    box = page.locator(f"{elem} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def scrub(page, k, sample=0):
    page.evaluate(f"""() => {{
      const pick = document.querySelector('{VIEW} .tsd-sample');
      pick.value = '{sample}'; pick.dispatchEvent(new Event('input'));
      const s = document.querySelector('{VIEW} .tsd-step');
      s.value = '{k}'; s.dispatchEvent(new Event('input'));
    }}""")
    page.wait_for_function(f"() => document.querySelector('{VIEW}').dataset.shown === '{k}:{sample}'")


def gray(page, selector) -> np.ndarray:
    rgba = np.array(page.evaluate(CANVAS_JS, selector), dtype=np.uint8)
    return rgba.reshape(-1, 4)[:, 0]


def test_a_run_fills_the_viewer_with_every_step(page):
    assert page.evaluate("() => window.ddpmTinySd.scene.frames") == 8
    assert page.locator(f"{VIEW} .tsd-attn canvas").count() == 5  # <bos> a thick 7 <eos>
    assert page.locator(f'{VIEW} [data-key="step"]').inner_text() == "8 / 8"
    assert page.locator("#tiny-sd-samples img").count() == 1


def test_scrubbing_draws_the_frame_the_server_returns(page, served):
    scrub(page, 3, sample=1)
    frame = Client(served.local_url, verbose=False).predict(*SETTINGS, 3, 1, api_name="/tiny_sd_frame")
    assert np.array_equal(gray(page, f"{VIEW} canvas.tsd-x0"), np.array(frame["x0_hat"], np.uint8).ravel())
    assert np.array_equal(gray(page, f"{VIEW} canvas.tsd-xt"), np.array(frame["xt"], np.uint8).ravel())
    latent = np.array(frame["latent"], np.uint8)
    for ch in range(4):
        assert np.array_equal(gray(page, f"{VIEW} .tsd-latent canvas:nth-of-type({ch + 1})"), latent[ch].ravel())
    attention = np.array(frame["attention"], np.uint8)
    assert np.array_equal(gray(page, f'{VIEW} .tsd-attn canvas[data-token="2"]'), attention[2].ravel())
    assert page.locator(f'{VIEW} [data-key="t"]').inner_text() == str(frame["t"])


def test_the_streamed_parts_add_up_to_the_whole_run_in_the_page(page, monkeypatch):
    """Each output carries only the new frames; the page appends them, so after every part it holds each recorded
    frame, and at the end every frame of the run, equal to the server's whole run (tiny_sd_frames)."""
    monkeypatch.setattr(tiny_sd, "STREAM_EVERY_S", 0.0)  # an output after every step (read at each run)
    parts = page.evaluate("""async () => {
      const t = window.ddpmTinySd, parts = [], load = t.load.bind(t);
      const sum = (a) => a.reduce((x, y) => (x * 31 + y) % 1000000007, 0);
      t.load = (json) => {
        const before = t.scene;
        load(json);
        const s = t.scene, part = JSON.parse(json);
        parts.push({start: part.start, stage: part.stage, frames: s.frames, held: s.t.length, bytes: s.x0Bytes.length,
                    sum: sum(s.x0Bytes), before: before && before.run === part.run ? sum(before.x0Bytes) : null});
      };
      const old = t.scene;
      document.querySelector('#tiny-sd-run').click();
      const start = performance.now();
      while (!(t.scene !== old && t.scene.stage === 'done') && performance.now() - start < 60000)
        await new Promise((r) => setTimeout(r, 20));
      t.load = load;
      return parts;
    }""")
    run = [p for p in parts if p["stage"] != "text"]
    assert run[-1]["stage"] == "done" and run[-1]["held"] == 8
    assert all(p["start"] > 0 for p in run[1:])  # after the first, parts with only the new frames were appended
    for p in run:
        assert p["held"] == p["frames"] and p["bytes"] == p["frames"] * 3 * 28 * 28, p
    whole = page.evaluate("""async () => {  // the server's whole run, as the page's repair path receives it
      const t = window.ddpmTinySd, held = t.scene;
      document.querySelector('#tiny-sd-repair').click();
      const start = performance.now();
      while (t.scene === held && performance.now() - start < 30000) await new Promise((r) => setTimeout(r, 20));
      return t.scene === held ? null : {frames: t.scene.frames, sum: t.scene.x0Bytes.reduce((x, y) => (x * 31 + y) % 1000000007, 0)};
    }""")
    assert whole == {"frames": 8, "sum": run[-1]["sum"]}


def test_a_lost_part_is_repaired_by_the_whole_run(page, monkeypatch):
    """A run whose parts do not all reach the page (two are dropped here, as a coalesced change event would):
    its last part does not follow the frames held, so the page asks for every frame and then holds the whole run."""
    monkeypatch.setattr(tiny_sd, "STREAM_EVERY_S", 0.0)  # an output after every step
    got = page.evaluate("""async () => {
      const t = window.ddpmTinySd, load = t.load.bind(t), old = t.scene;
      let unet = 0, dropped = 0;
      t.load = (json) => {
        const part = JSON.parse(json);
        if (part.stage === 'unet' && ++unet >= 2 && unet <= 3) { dropped++; return; }  // lost on the way
        load(json);
      };
      document.querySelector('#tiny-sd-run').click();
      const start = performance.now();
      while (!(t.scene !== old && t.scene.stage === 'done') && performance.now() - start < 60000)
        await new Promise((r) => setTimeout(r, 20));
      t.load = load;
      return {dropped, frames: t.scene.frames, held: t.scene.t.length, bytes: t.scene.x0Bytes.length};
    }""")
    assert got == {"dropped": 2, "frames": 8, "held": 8, "bytes": 8 * 3 * 28 * 28}


def test_scrubbing_changes_the_picture(page):
    scrub(page, 0)
    first = gray(page, f"{VIEW} canvas.tsd-xt")
    scrub(page, 7)
    assert not np.array_equal(first, gray(page, f"{VIEW} canvas.tsd-xt"))


def test_scrub_time_in_the_page_is_printed(page):
    ms = page.evaluate("""() => {
      const t0 = performance.now();
      for (let k = 0; k < 80; k++) window.ddpmTinySd.show(k % 8);
      return (performance.now() - t0) / 80;
    }""")
    print(f"tiny-sd scrub: {ms:.2f} ms per frame drawn (8 canvases + token maps)")
    assert ms >= 0


def test_the_pipeline_lights_one_stage_while_running(page):
    page.evaluate("() => window.ddpmTinySd.light('unet')")
    lit = page.locator("#tiny-sd-pipeline .tsd-active")
    assert lit.count() == 1 and "UNet" in lit.inner_text()
    page.evaluate("() => window.ddpmTinySd.light('done')")
    assert page.locator("#tiny-sd-pipeline .tsd-active").count() == 0


def test_html_in_the_prompt_is_shown_as_text(page):
    box = page.locator("#tiny-sd-prompt textarea")
    box.fill('<img src=x onerror="window.pwned=1">seven')
    page.wait_for_function("() => document.querySelector('#tiny-sd-tokens').innerText.includes('onerror')",
                           timeout=30_000)
    assert page.locator("#tiny-sd-tokens img").count() == 0
    assert page.evaluate("() => window.pwned === undefined")
    assert page.locator("#tiny-sd-tokens .tsd-unknown").count() >= 1

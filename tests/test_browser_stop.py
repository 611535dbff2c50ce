"""Stop is a normal outcome, and the frames of a run can be looked at while it runs (issue 14, items 1 and 12).

The Reverse tab on a tiny random UNet in headless Chromium: Stop mid-run (DDPM, DDIM, Compare) says where it
stopped and shows no "Error" anywhere; Pause stops on the press; scrubbing back during a run stays there.
"""

import json
import re

import gradio as gr
import pytest
import torch
from playwright.sync_api import expect

from browser import app_page
from explorer import runs
from explorer import trajectory as tr
from explorer.model import ModelProvider, UNet, UNetConfig
from explorer.samplers import model_eps_fn
from explorer.schedules import make_schedule
from explorer.ui import build_reverse
from explorer.ui.reverse import frames_payload
from served_app import launch

pytestmark = pytest.mark.browser

FRAME = "#reverse-frame input[type=range]"
VIEWER = "#reverse-viewer .ddpm-rev-viewer"
CAPTION = "#reverse-caption"
# any element on screen that reads just "Error" (Gradio's badge on the outputs of a failed or cancelled event)
ERROR_BADGES_JS = """() => Array.from(document.querySelectorAll('body *')).filter((e) =>
  e.childElementCount === 0 && e.textContent.trim() === 'Error' && e.offsetParent !== null).length"""


@pytest.fixture(scope="module")
def page():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = UNet(UNetConfig(patch=2, channels=(16, 32), blocks=(1, 1))).eval()
    with gr.Blocks() as demo:
        build_reverse(demo, provider=ModelProvider(lambda: (model, {"parameters": 1, "weights": "random"})))
    launch(demo)
    try:
        with app_page(demo.local_url) as page:
            expect(page.locator("#reverse-model-status")).to_contain_text("Model:", timeout=60_000)
            set_number(page, "samples", 16)  # slow enough to press Stop mid-run
            yield page
    finally:
        demo.close()


def set_number(page, label, value):
    box = page.get_by_label(f"number input for {label}", exact=True)
    box.fill(str(value))
    box.press("Enter")
    box.blur()


def choose_sampler(page, sampler, steps=None):
    page.locator("#reverse-sampler").get_by_text(sampler, exact=True).click()
    if steps is not None:
        set_number(page, "DDIM steps (DDPM takes all T)", steps)


def held_frames(page) -> int:
    return int(page.evaluate(f"() => +(document.querySelector('{VIEWER}').dataset.frames || 0)"))


def wait_held(page, at_least, timeout=180_000):  # generous: DDPM × 16 crawls when the test workers share 2 cores
    page.wait_for_function(f"() => +(document.querySelector('{VIEWER}').dataset.frames || 0) >= {at_least}",
                           timeout=timeout)


def with_run_id(chunk: str, run_id: str) -> str:
    """A chunk of frames as a run of its own (``run_id``), so that no earlier test's run is continued."""
    payload = json.loads(chunk)
    payload["run"] = run_id
    return json.dumps(payload)


def start_sampling(page):
    """Press Sample and wait until the page holds frames of the new run."""
    old = page.locator(VIEWER).get_attribute("data-run")
    page.locator("#reverse-sample").click()
    expect(page.locator(CAPTION)).to_contain_text("Sampling… step", timeout=60_000)
    page.wait_for_function(f"(old) => document.querySelector('{VIEWER}').dataset.run !== old", arg=old,
                           timeout=60_000)


@pytest.mark.parametrize("sampler, steps", [("ddpm", None), ("ddim", 1000)])
def test_stop_mid_run_says_where_it_stopped_and_shows_no_error(page, sampler, steps):
    choose_sampler(page, sampler, steps)
    start_sampling(page)
    page.locator("#reverse-stop").click()
    expect(page.locator(CAPTION)).to_contain_text(
        re.compile(r"Stopped at step \d+ of 1000 — scrub or export what was recorded"), timeout=30_000)
    k = int(re.search(r"Stopped at step (\d+)", page.locator(CAPTION).inner_text()).group(1))
    wait_held(page, k)  # every recorded frame is in the page, to scrub
    page.wait_for_timeout(300)  # any late status update would show by now
    assert page.evaluate(ERROR_BADGES_JS) == 0


def test_stop_of_a_compare_leaves_both_sides_at_the_same_step_and_no_error(page):
    choose_sampler(page, "ddpm")
    page.get_by_text("Compare: same seed and x_T").click()
    page.locator("#reverse-compare").click()
    a, b = page.locator("#compare-a-caption"), page.locator("#compare-b-caption")
    expect(a).to_contain_text("(running)", timeout=60_000)
    expect(b).to_contain_text("(running)")
    # while running, both sides show the same lock-step moment (both runs have 1000 steps)
    running = page.evaluate("() => ['a', 'b'].map((s) => document.querySelector(`#compare-${s}-caption`).innerText)")
    steps = [re.search(r"step (\d+) of 1000", text).group(1) for text in running if "(running)" in text]
    assert len(set(steps)) <= 1, running
    page.locator("#reverse-compare-stop").click()
    expect(a).to_contain_text("Stopped at step", timeout=30_000)
    expect(b).to_contain_text("Stopped at step")
    step_a = re.search(r"Stopped at step (\d+) of 1000", a.inner_text()).group(1)
    step_b = re.search(r"Stopped at step (\d+) of 1000", b.inner_text()).group(1)
    assert step_a == step_b
    page.wait_for_timeout(300)
    assert page.evaluate(ERROR_BADGES_JS) == 0
    page.get_by_text("Compare: same seed and x_T").click()  # closed again for the next tests


def test_scrubbing_back_during_a_run_stays_on_the_chosen_frame(page):
    choose_sampler(page, "ddpm")
    start_sampling(page)
    wait_held(page, 3)
    page.locator(FRAME).fill("1")
    expect(page.locator(VIEWER)).to_have_attribute("data-frame", "1")
    held = held_frames(page)
    wait_held(page, held + 2)  # more frames arrived meanwhile
    assert page.locator(VIEWER).get_attribute("data-frame") == "1"
    expect(page.locator(f"{VIEWER} .ddpm-rev-numbers")).to_contain_text("Step 2 of 1000")
    page.locator("#reverse-stop").click()
    # (on a fast machine the 1000 steps may all be done before the press: the end of the run is what matters)
    expect(page.locator(CAPTION)).to_contain_text(re.compile("Stopped at step|Done: 1000 steps"), timeout=30_000)
    page.wait_for_timeout(300)
    assert page.locator(VIEWER).get_attribute("data-frame") == "1"  # the end of the run does not move it either


def test_pause_stops_on_the_press_with_no_frame_after(page):
    if held_frames(page) < 20:  # plays the run an earlier test recorded, if there is one
        choose_sampler(page, "ddim", 50)
        page.locator("#reverse-sample").click()
        expect(page.locator(CAPTION)).to_contain_text("Done: 50 steps", timeout=60_000)
        wait_held(page, 51)
    page.locator(FRAME).fill("0")
    page.locator("#reverse-play").click()
    page.wait_for_function(f"() => +document.querySelector('{FRAME}').value > 3", timeout=30_000)
    box = page.locator("#reverse-pause").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    pressed = page.locator(VIEWER).get_attribute("data-frame")
    page.wait_for_timeout(150)  # a person's click takes about this long
    page.mouse.up()
    page.wait_for_timeout(300)
    assert page.locator(VIEWER).get_attribute("data-frame") == pressed
    assert page.locator(FRAME).input_value() == pressed


def test_a_frame_chosen_while_a_late_preview_unpacks_stays_shown(page):
    """The race behind a view that jumped to the run's last frame under load: a chunk went missing (Gradio keeps
    only the newest value of the hidden box), so the next one is shown as a preview without being kept; the
    person picks a frame while that preview is still being unpacked. The pick wins, then and at the run's end."""
    model = UNet(UNetConfig(patch=2, channels=(16, 32), blocks=(1, 1))).eval()
    run = runs.RunSettings(make_schedule("linear", 1000), "ddim", 8, 0.0, "trailing", n=2, guidance=1.0)
    x, g = runs.initial_noise(0, 2)
    chunks = {}
    for traj in tr.record_run(model_eps_fn(model, run.schedule, torch.arange(2), 1.0), run, x, g):
        k = traj.count - 1
        if not traj.finished and k in (2, 6):  # the chunks of frames 0-2 and 5-6; that of 3-4 never arrives
            chunks[k] = frames_payload(traj, k, k + 1, preview=True, earlier=0 if k == 2 else 5)
    chunks["end"] = frames_payload(traj)

    shown = page.evaluate("""async ([first, late, end]) => {
      const rev = window.ddpmReverse, root = () => document.querySelector('#reverse-viewer .ddpm-rev-viewer');
      await rev.append(first);
      const preview = rev.previewOnly;
      rev.previewOnly = function (...args) {  // the person picks frame 1 while the preview is being unpacked
        const unpacking = preview.apply(this, args);
        rev.show(1);
        return unpacking;
      };
      try { await rev.append(late); } finally { rev.previewOnly = preview; }
      const afterPreview = root().dataset.frame;
      await rev.append(end);
      return [afterPreview, root().dataset.frame, root().dataset.frames];
    }""", [with_run_id(c, "late-preview-test") for c in (chunks[2], chunks[6], chunks["end"])])
    assert shown == ["1", "1", "9"]


def test_a_frame_chosen_while_the_last_chunk_unpacks_is_shown_when_it_arrives(page):
    """A scrub right after a run ends: the caption says Done, but the chunk with every frame is still being
    unpacked. A frame the page does not hold yet is shown once that chunk is kept (it was cut to the last frame
    held, and then stayed there: bench_reverse's scrubs waited 5 s for a frame that never came)."""
    model = UNet(UNetConfig(patch=2, channels=(16, 32), blocks=(1, 1))).eval()
    run = runs.RunSettings(make_schedule("linear", 1000), "ddim", 8, 0.0, "trailing", n=2, guidance=1.0)
    x, g = runs.initial_noise(0, 2)
    for traj in tr.record_run(model_eps_fn(model, run.schedule, torch.arange(2), 1.0), run, x, g):
        if not traj.finished and traj.count == 3:
            first = frames_payload(traj, 2, 3, preview=True, earlier=0)  # frames 0-2, while sampling
    end = frames_payload(traj)

    shown = page.evaluate("""async ([first, end]) => {
      const rev = window.ddpmReverse, root = () => document.querySelector('#reverse-viewer .ddpm-rev-viewer');
      await rev.append(first);
      rev.goTo(1);  // the person looks back, so the page does not follow the run to its last frame
      const keep = rev.keep;
      rev.keep = function (...args) {  // the person picks frame 7 while the last chunk is being unpacked
        const unpacking = keep.apply(this, args);
        rev.show(7);
        return unpacking;
      };
      try { await rev.append(end); } finally { rev.keep = keep; }
      return [root().dataset.frame, root().dataset.frames];
    }""", [with_run_id(c, "last-chunk-test") for c in (first, end)])
    assert shown == ["7", "9"]


def test_the_first_frame_chosen_while_a_lost_chunk_is_repaired_stays_shown(page):
    """The race behind a server check that computed frame 50 for a page showing frame 0 (CI, stop 21): the page held
    only frame 0 when the run's last chunk came with frames missing; while the repair (every frame) was on its way,
    the person chose frame 0. Frame 0 was the newest frame *held*, so the choice counted as following the run,
    and the repair moved view and slider to the run's last frame. The newest frame the server has recorded
    decides, so the choice stays."""
    model = UNet(UNetConfig(patch=2, channels=(16, 32), blocks=(1, 1))).eval()
    run = runs.RunSettings(make_schedule("linear", 1000), "ddim", 8, 0.0, "trailing", n=2, guidance=1.0)
    x, g = runs.initial_noise(0, 2)
    for traj in tr.record_run(model_eps_fn(model, run.schedule, torch.arange(2), 1.0), run, x, g):
        if not traj.finished and traj.count == 1:
            first = frames_payload(traj, 0, 1, preview=True, earlier=0)  # frame 0 alone, as a run's first chunk
    last = frames_payload(traj, 5)  # the run's last chunk: frames 1-4 went in previews the page never got
    whole = frames_payload(traj)  # what the repair button brings

    shown = page.evaluate("""async ([first, last, whole]) => {
      const rev = window.ddpmReverse, root = () => document.querySelector('#reverse-viewer .ddpm-rev-viewer');
      const range = document.querySelector('#reverse-frame input[type=range]');
      const repair = document.getElementById('reverse-repair');
      let presses = 0;
      const hold = (e) => { presses += 1; e.stopImmediatePropagation(); };  // the repair is still on its way
      repair.addEventListener('click', hold, true);
      try {
        await rev.append(first);
        await rev.append(last);
      } finally { repair.removeEventListener('click', hold, true); }
      const held = rev.count();
      rev.show(0);  // the person types 0 in the frame box
      await rev.append(whole);
      return [presses, held, root().dataset.frame, range.value, root().dataset.frames];
    }""", [with_run_id(c, "repair-choice-test") for c in (first, last, whole)])
    assert shown == [1, 1, "0", "0", "9"]


def test_a_lost_chunk_is_repaired_by_asking_for_every_frame(page):
    """The run's last chunk carries only the frames its previews did not. If a preview was lost on the way, the
    page holds too few frames for it, presses the hidden repair button, and gets every frame of the session's run
    from the server: the same frames it would have held."""
    # 100 steps, so that previews reach the page before the run ends even when the test workers starve the
    # server's streaming thread (a 20-step run once ended before its first preview: its last chunk was all of it)
    choose_sampler(page, "ddim", 100)
    for attempt in range(3):  # a run whose previews all stayed on the server (a starved streaming thread) sent its
        old = page.locator(VIEWER).get_attribute("data-run")  # frames in its last chunk alone: nothing to repair,
        page.locator("#reverse-sample").click()  # so then it samples again
        page.wait_for_function(f"""(old) => {{ const root = document.querySelector('{VIEWER}');
          return root.dataset.run !== old && root.dataset.frames === '101'; }}""", arg=old, timeout=180_000)
        expect(page.locator(CAPTION)).to_contain_text("Done: 100 steps", timeout=120_000)
        if page.evaluate("() => JSON.parse(document.querySelector('#reverse-frames textarea').value).start") > 0:
            break
    result = page.evaluate("""async () => {
      const rev = window.ddpmReverse, root = () => document.querySelector('#reverse-viewer .ddpm-rev-viewer');
      const snapshot = () => [0, 37, 100].map((k) => Array.from(rev.run.frames.x0_hat[k]).join());
      const before = snapshot();
      const last = document.querySelector('#reverse-frames textarea').value;  // the run's last chunk
      let presses = 0;
      const repair = document.getElementById('reverse-repair');
      repair.addEventListener('click', () => { presses += 1; }, true);
      rev.run = null;  // as if the page had missed every chunk before the last one
      root().dataset.frames = '';
      await rev.append(last);
      const startOfLast = JSON.parse(last).start, heldAfterLast = rev.count();
      for (let i = 0; i < 6000 && root().dataset.frames !== '101'; i++) await new Promise((r) => setTimeout(r, 5));
      return {startOfLast, heldAfterLast, presses, held: rev.count(), same: JSON.stringify(snapshot()) === JSON.stringify(before)};
    }""")
    assert result["startOfLast"] > 0 and result["heldAfterLast"] == 0  # the last chunk alone could not be kept
    assert result == {**result, "presses": 1, "held": 101, "same": True}


def test_stop_pressed_while_the_run_waits_behind_another_persons_run_stops_it(page):
    """Stop right after Sample, while the new run waits for the sampling slot that another person's run holds.
    (With no run of its own under way the page sends Sample's restart press a moment later; the server counts a
    Stop against the presses it has seen, so that press has to go before the Stop, or the run started anyway.)"""
    other = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})  # another person, own session
    try:
        other.goto(page.url)
        expect(other.locator("#reverse-model-status")).to_contain_text("Model:", timeout=60_000)
        other.locator("#reverse-sampler").get_by_text("ddpm", exact=True).click()
        other.locator("#reverse-sample").click()  # 1000 steps: holds the sampling slot
        expect(other.locator(CAPTION)).to_contain_text("Sampling… step", timeout=60_000)
        choose_sampler(page, "ddim", 50)
        stop_fn = page.evaluate("() => window.gradio_config.dependencies.find((d) => d.api_name === 'reverse_stop').id")
        with page.expect_response(lambda r: r.request.method == "POST" and "/run/predict" in r.url
                                  and f'"fn_index":{stop_fn},' in (r.request.post_data or ""), timeout=60_000):
            idle = page.evaluate("""() => {
              const r = window.ddpmReverse, idle = !r.awaiting && !r.live;
              document.querySelector('#reverse-sample').click();
              document.querySelector('#reverse-stop').click();
              return idle;
            }""")
        assert idle  # this page had no run under way: the case where its press goes a moment later
        # The server has answered this page's Stop (it waited a fixed second before, and on a loaded machine the
        # other run could end first): the slot is freed now, and this page's run starts, and stops at once.
        other.locator("#reverse-stop").click()
        expect(page.locator(CAPTION)).to_contain_text("Stopped before the first step", timeout=60_000)
    finally:
        other.close()

"""The 2-D lab in headless Chromium: dragging t redraws the cloud in the page, and the page's points and arrows
equal the server API's; reverse paths scrub in the page; the guidance sweep draws its rows."""

import pytest

from browser import app_page

pytestmark = pytest.mark.browser

CANVAS = "#lab2d-canvas"
SLIDER = "#lab2d-t input[type=range]"
LINEAR = ("linear", 1000, 1e-4, 0.02, 0.008, False)

PIXELS_JS = "(sel) => document.querySelector(sel).toDataURL('image/png')"  # the canvas's pixels, compactly
PAGE_POINTS_JS = "(t) => Array.from(window.ddpmLab2d.pointsAt(t))"
PAGE_ARROWS_JS = """(t) => {
  const A = window.ddpmLab2d.scene.arrows, n = A.size * A.size;
  let k = 0;
  for (let j = 1; j < A.ts.length; j++) if (Math.abs(A.ts[j] - t) < Math.abs(A.ts[k] - t)) k = j;
  return {t: A.ts[k], learned: Array.from(A.learned.subarray(2 * n * k, 2 * n * (k + 1))),
          exact: Array.from(A.exact.subarray(2 * n * k, 2 * n * (k + 1)))};
}"""


@pytest.fixture(scope="module")
def page(app):  # the whole app, from conftest
    with app_page(app.local_url, height=1100) as page:
        page.get_by_role("tab", name="2-D lab").click()
        wait_for_t(page, 200)
        yield page


def wait_for_t(page, t, timeout=180_000):
    page.wait_for_function(f"() => document.querySelector('{CANVAS}')?.dataset.t === '{t}'", timeout=timeout)


def move_slider(page, t):
    page.locator(SLIDER).fill(str(t))
    wait_for_t(page, t)


def pixels(page, sel=CANVAS) -> str:
    return page.evaluate(PIXELS_JS, sel)


def test_dragging_t_redraws_the_cloud_and_its_numbers(page):
    before = pixels(page)
    move_slider(page, 700)
    assert pixels(page) != before
    assert page.locator('.ddpm-lab2d [data-key="t"]').inner_text() == "700"
    assert page.locator('.ddpm-lab2d [data-key="density_t"]').inner_text() == "700"


def test_page_points_equal_the_servers(page, client):
    move_slider(page, 437)
    server = client.predict("ring8", None, 0, 2000, *LINEAR, 437, api_name="/lab2d_points_at")
    assert page.evaluate(PAGE_POINTS_JS, 437) == [v for xy in server["points"] for v in xy]


def test_page_arrows_equal_the_servers(page, client):
    move_slider(page, 333)
    shown = page.evaluate(PAGE_ARROWS_JS, 333)
    server = client.predict("ring8", None, 0, 2000, *LINEAR, "shipped", 333, api_name="/lab2d_field_at")
    assert shown["t"] == server["t"]
    assert shown["learned"] == [v for xy in server["learned"] for v in xy]
    assert shown["exact"] == [v for xy in server["exact"] for v in xy]


def test_arrow_layers_toggle_in_the_page(page):
    move_slider(page, 150)
    before = pixels(page)
    page.locator("#lab2d-show-error").check()
    page.wait_for_timeout(100)
    assert pixels(page) != before


def test_reverse_paths_scrub_in_the_page(page):
    page.locator("#lab2d-paths").scroll_into_view_if_needed()
    page.locator("#lab2d-particles input[type=range]").fill("20")  # DDPM runs all 1000 steps: keep it small
    page.get_by_role("button", name="Run reverse").click()
    page.wait_for_function("() => document.querySelector('#lab2d-paths-canvas')?.dataset.step === '1000'",
                           timeout=120_000)
    end = pixels(page, "#lab2d-paths-canvas")
    page.locator("#lab2d-scrub").fill("300")
    page.wait_for_function("() => document.querySelector('#lab2d-paths-canvas').dataset.step === '300'")
    assert pixels(page, "#lab2d-paths-canvas") != end
    assert "DDPM t = " in page.locator("#lab2d-scrub-label").inner_text()


def test_guidance_sweep_draws_learned_and_exact_rows(page):
    page.get_by_text("Guidance sweep").click()
    page.get_by_role("button", name="Sweep w").click()
    page.wait_for_function("() => document.querySelector('#lab2d-sweep')?.dataset.loaded === '2'", timeout=120_000)
    assert page.locator("#lab2d-sweep canvas").count() == 8


def test_the_lab_drawn_when_its_tab_opens_after_the_scene_arrived(app, page):
    # Gradio adds a tab's contents when it is first opened: a scene that arrived before (a person on another tab)
    # must still be drawn then, without moving the slider. A second page of the module's browser, opened fresh.
    context = page.context.browser.new_context(viewport={"width": 1400, "height": 1100})
    late = context.new_page()
    try:
        late.goto(app.local_url)
        late.wait_for_function("() => !!(window.ddpmLab2d && window.ddpmLab2d.scene)", timeout=120_000)
        assert late.evaluate("() => document.getElementById('lab2d-canvas')") is None  # the tab is not built yet
        late.get_by_role("tab", name="2-D lab").click()
        wait_for_t(late, 200, timeout=30_000)
    finally:
        context.close()

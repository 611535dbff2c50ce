"""The whole app in headless Chromium at 1280×720, light and dark: controls where the eye looks, labels that fit,
pictures nothing covers, plots that follow the theme (issue 14, items 4, 6, 7, 8, 9, 10)."""

import pytest
from playwright.sync_api import expect

from browser import app_page

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 1280, 720


@pytest.fixture(scope="module")
def page(app):  # the whole app, from conftest
    with app_page(app.local_url, height=HEIGHT, width=WIDTH) as page:
        page.wait_for_selector("#forward-chain img", timeout=60_000)
        yield page


def open_tab(page, name):
    page.get_by_role("tab", name=name, exact=True).click()
    page.evaluate("() => window.scrollTo(0, 0)")


def box(page, selector):
    return page.locator(selector).first.bounding_box()


def test_sample_and_stop_are_in_view_on_first_visit_to_reverse(page):
    open_tab(page, "Reverse")
    for button in ("#reverse-sample", "#reverse-stop"):
        expect(page.locator(button)).to_be_visible()
        assert box(page, button)["y"] + box(page, button)["height"] <= HEIGHT


def test_the_plan_warns_before_a_long_ddpm_run(page):
    open_tab(page, "Reverse")
    plan = page.locator("#reverse-plan")
    expect(plan).to_contain_text("about 2 s")  # DDIM-50 × 16 at w = 3, the default
    page.locator("#reverse-sampler label", has_text="ddpm").click()
    expect(plan).to_contain_text("Long run")
    page.locator("#reverse-sampler label", has_text="ddim").click()
    expect(plan).not_to_contain_text("Long run")


def test_compare_sampler_b_defaults_to_the_fast_ddim(page):
    open_tab(page, "Reverse")
    page.get_by_text("Compare: same seed and x_T").click()
    expect(page.locator("#compare-b-sampler input[value=ddim]")).to_be_checked()


def test_guidance_label_fits_one_line_and_digit_names_are_not_clipped(page):
    open_tab(page, "Reverse")
    label = page.locator("#reverse-guidance").get_by_text("guidance w", exact=True)
    line = page.evaluate("(e) => parseFloat(getComputedStyle(e).lineHeight) || 20", label.element_handle())
    assert label.bounding_box()["height"] <= 1.5 * line
    clipped = page.evaluate("() => { const i = document.querySelector('#reverse-digit input'); "
                            "return i.scrollWidth > i.clientWidth; }")
    assert not clipped


def test_chain_strip_badge_and_toolbar_leave_the_frames_uncovered(page):
    open_tab(page, "Forward")
    image = box(page, "#forward-chain .image-container img")
    badge = box(page, "#forward-chain label[data-testid=block-label]")
    toolbar = box(page, "#forward-chain .icon-button-wrapper")
    assert badge["y"] + badge["height"] <= image["y"] + 1
    assert toolbar["y"] + toolbar["height"] <= image["y"] + 1


def test_chain_strip_labels_are_readable_at_the_size_shown(page):
    open_tab(page, "Forward")
    size = page.evaluate("() => { const i = document.querySelector('#forward-chain .image-container img'); "
                         "return [i.naturalWidth, i.getBoundingClientRect().width]; }")
    natural, shown = size
    from explorer import render
    assert render.label_band_height(84) * 0.6 * shown / natural >= 10  # label glyphs ≥ 10 px on screen


def test_typing_a_fractional_T_is_refused_not_rounded(page):
    open_tab(page, "Forward")
    T = page.get_by_label("T (steps)").first
    T.fill("12.5")
    T.press("Enter")
    expect(page.locator(".toast-body").filter(has_text="whole number")).to_be_visible(timeout=20_000)
    T.fill("1000")
    T.press("Enter")


def test_img2img_shows_its_input_enlarged_and_defaults_to_no_class(page):
    open_tab(page, "Reverse")
    page.get_by_text("img2img round trip").click()
    expect(page.locator("#img2img-digit input")).to_have_value("any digit (unconditional)")
    image = page.locator("#img2img-input img").first
    expect(image).to_be_visible()
    assert image.bounding_box()["width"] >= 150  # the 28×28 digit, enlarged


EXPORT_SIZES_JS = """async () => {
  const size = async (sel) => {
    const blob = await (await fetch(document.querySelector(sel + ' a[href]').href)).blob();
    const bitmap = await createImageBitmap(blob);
    return [bitmap.width, bitmap.height];
  };
  const csv = await (await fetch(document.querySelector('#reverse-csv a[href]').href)).text();
  return {gif: await size('#reverse-gif'), png: await size('#reverse-png'), csv: csv.trim().split('\\n')};
}"""


def test_export_gives_a_gif_of_all_three_views_a_png_and_a_csv_worth_keeping(page):
    open_tab(page, "Reverse")
    for label, value in (("DDIM steps (DDPM takes all T)", 5), ("samples", 4)):
        number = page.get_by_label(f"number input for {label}", exact=True)
        number.fill(str(value))
        number.press("Enter")
        number.blur()
    page.locator("#reverse-sample").click()
    expect(page.locator("#reverse-caption")).to_contain_text("Done: 5 steps", timeout=120_000)
    page.locator("#reverse-export").click()
    for sel in ("#reverse-gif", "#reverse-png", "#reverse-csv"):
        page.wait_for_selector(f"{sel} a[href]", timeout=60_000)
    got = page.evaluate(EXPORT_SIZES_JS)
    (gif_w, gif_h), (png_w, png_h) = got["gif"], got["png"]
    assert gif_w >= 3 * 2 * 84 and gif_h >= 2 * 84  # x_t, ε̂ and x̂₀ side by side, 2×2 digits of ≥ 84 px each
    assert png_w >= 2 * 84 and png_h >= 2 * 84
    header, *rows = got["csv"]
    assert header.split(",")[0] == "step" and len(rows) == 5  # one row per step


def test_dark_mode_plots_follow_the_theme(app, page):  # last: it leaves the page dark
    page.goto(app.local_url + "?__theme=dark")
    page.wait_for_selector("#fwd-coef-plot .js-plotly-plot .gtitle", timeout=60_000)
    fill, background = page.evaluate("""() => {
        const gd = document.querySelector('#fwd-coef-plot .js-plotly-plot');
        return [getComputedStyle(gd.querySelector('.gtitle')).fill,
                getComputedStyle(gd.querySelector('.main-svg')).backgroundColor]; }""")
    rgb = [int(v) for v in fill[fill.index("(") + 1:fill.index(")")].split(",")[:3]]
    assert sum(rgb) / 3 > 150  # light text on the dark page
    assert background in ("rgba(0, 0, 0, 0)", "transparent")

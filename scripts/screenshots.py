#!/usr/bin/env python
"""Screenshots of every tab of the app at 1280×720, light and dark (Gradio's ?__theme=dark), into docs/screenshots/.

Launches the app on a free loopback port and drives Debian's Chromium with Playwright (never `playwright install`).
Each shot is the whole page as laid out in a 1280×720 window (--first-screen: only what shows before scrolling),
saved as a palette PNG to keep it small.

Usage: python scripts/screenshots.py [--out docs/screenshots] [--first-screen]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from explorer.ui import build_demo  # noqa: E402
from served_app import launch  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 720}
# tab id -> (button text, a selector that shows the tab has drawn)
TABS = {
    "forward": ("Forward", "#fwd-coef-plot .js-plotly-plot"),
    "compare": ("Compare", "#compare-chains img"),
    "reverse": ("Reverse", "#reverse-model-status"),
    "step_lab": ("Step microscope", "#steplab-model-status"),
    "tiny_sd": ("Stable Diffusion in miniature", None),
    "lab2d": ("2-D lab", None),
}
COLOURS = 256  # a palette PNG keeps each shot small (screenshots are mostly flat colour)


def shrink(path: Path) -> None:
    """Re-save as an optimised palette PNG (screenshots are mostly flat colour)."""
    with Image.open(path) as im:
        im.convert("RGB").quantize(COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            path, optimize=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    p.add_argument("--first-screen", action="store_true", help="only the first screen, not the whole page")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    demo = launch(build_demo())
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for theme in ("light", "dark"):
                page = browser.new_page(viewport=VIEWPORT)
                page.goto(demo.local_url + ("?__theme=dark" if theme == "dark" else ""))
                page.wait_for_selector("#fwd-coef-plot .js-plotly-plot", timeout=120_000)
                for tab, (label, ready) in TABS.items():
                    page.get_by_role("tab", name=label, exact=True).click()
                    if ready:
                        page.wait_for_selector(ready, timeout=120_000)
                    time.sleep(2.0)  # plots and images settle
                    page.mouse.move(0, 0)  # no hover box in the shot
                    path = a.out / f"{tab}_{theme}.png"
                    page.screenshot(path=str(path), full_page=not a.first_screen)
                    shrink(path)
                    print(f"{path}: {path.stat().st_size // 1024} kB")
                page.close()
            browser.close()
    finally:
        demo.close()


if __name__ == "__main__":
    main()

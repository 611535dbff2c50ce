"""Tiny SD speed on this machine, fp32; prints figures (no asserts).

- prompt → 16 decoded samples with DDIM-50 and guidance (w = 3: 32 UNet rows per step), target ≤ 1.5 s
- ms per denoising step, 16 samples with guidance: pixel UNet (Reverse tab) vs latent UNet
- the tab's full run (frames recorded for the page: 4 samples decoded at every step)
- with --page N: the tab in headless Chromium, as a person uses it: click Generate (prompt "a thick 7", 16
  samples, DDIM-50, w = 3) → first step drawn, and → the last frame painted (the run's last step drawn in the
  viewer and the 16 decoded samples shown), N runs after one that warms the page up

Usage: python benchmarks/bench_tiny_sd.py [--threads 1 2] [--repeats 3] [--page N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import app_in_chromium, cpu_name, timed  # noqa: E402
from explorer.latent.pipeline import PromptSettings, load_tiny_sd, sample_images  # noqa: E402
from explorer.model import load_pretrained  # noqa: E402
from explorer.samplers import bf16_is_fast  # noqa: E402
from explorer.ui.cores import side_by_side  # noqa: E402  (no app registered: always side by side)


# Clicks Generate and resolves with [first step drawn, last frame painted] in ms: the viewer shows the run's last
# step of the "done" scene and the decoded samples' new image has loaded, then one more animation frame (the paint).
GENERATE_JS = """async () => {
  const view = () => document.querySelector('#tiny-sd-view .tsd-view');
  const img = () => document.querySelector('#tiny-sd-samples img');
  const oldSrc = img()?.src, oldScene = window.ddpmTinySd.scene;
  view().dataset.shown = '';
  const start = performance.now();
  document.querySelector('#tiny-sd-run').click();
  let first = null;
  while (true) {
    const now = performance.now(), s = window.ddpmTinySd.scene;
    if (first === null && s !== oldScene && s?.frames > 0 && view().dataset.shown) first = now - start;
    const im = img();
    if (s !== oldScene && s?.stage === 'done' && view().dataset.shown === `${s.frames - 1}:0` && im &&
        im.src !== oldSrc && im.complete && im.naturalWidth > 0) {
      await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));  // painted
      return [first, performance.now() - start];
    }
    if (now - start > 60000) throw new Error('no result');
    await new Promise((r) => requestAnimationFrame(r));  // once per display frame
  }
}"""


def bench_page(runs: int) -> None:
    """The tab's default run in Chromium, click → first step drawn and → last frame painted (medians)."""
    from playwright.sync_api import expect

    with app_in_chromium() as page:
        page.get_by_role("tab", name="Stable Diffusion in miniature").click()
        expect(page.locator("#tiny-sd-run")).to_be_visible(timeout=60_000)
        first, last = [], []
        for i in range(runs + 1):
            seed = page.get_by_label("seed", exact=True)
            seed.fill(str(100 + i))
            seed.blur()
            page.wait_for_timeout(300)
            f, t = page.evaluate(GENERATE_JS)
            if i:  # the first run warms the page up
                first.append(f)
                last.append(t)
    for name, ms, target in (("first step drawn", first, ""), ("last frame painted", last, "; target ≤ 1500")):
        print(f"[Chromium, the app's default run] click Generate → {name}: median {statistics.median(ms):.0f} ms "
              f"(min {min(ms):.0f}, max {max(ms):.0f}{target})")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--page", type=int, default=0, metavar="N", help="also time N runs of the tab in Chromium")
    a = p.parse_args()
    print(f"CPU: {cpu_name()}; native bfloat16: {bf16_is_fast()}; precision: fp32; torch {torch.__version__}; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    if a.page:
        bench_page(a.page)
    model = load_tiny_sd()
    pixel, _ = load_pretrained()
    settings = PromptSettings.checked("a thick 7", guidance=3.0, n=16, steps=50)
    for threads in a.threads:
        torch.set_num_threads(threads)
        run = timed(lambda: sample_images(model, settings), a.repeats)
        print(f"[{threads} thread(s)] prompt → 16 samples, DDIM-50, w=3: median {statistics.median(run):.2f} s "
              f"(min {min(run):.2f}, max {max(run):.2f})")
        if threads == 1 and os.cpu_count() > 1:  # the app's run alone: guidance's two passes side by side
            run = timed(lambda: sample_images(model, settings, pair=side_by_side), a.repeats)
            print(f"[1 thread per pass, the two side by side: the app's run alone] prompt → 16 samples, DDIM-50, "
                  f"w=3: median {statistics.median(run):.2f} s (min {min(run):.2f}, max {max(run):.2f})")
        with torch.inference_mode():
            x, z = torch.randn(32, 1, 28, 28), torch.randn(32, 4, 7, 7)
            labels, lam = torch.randint(0, 10, (32,)), torch.zeros(32)
            context = torch.randn(32, 16, model.clip.config.width)
            pix = timed(lambda: pixel(x, lam, labels), 10 * a.repeats)
            lat = timed(lambda: model.unet(z, lam, context), 10 * a.repeats)
        print(f"[{threads} thread(s)] one step, 16 samples with guidance (32 rows): pixel UNet 784 dims "
              f"{1000 * statistics.median(pix):.1f} ms, latent UNet 196 dims {1000 * statistics.median(lat):.1f} ms")


if __name__ == "__main__":
    main()

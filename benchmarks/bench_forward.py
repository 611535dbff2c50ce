"""Forward-tab speed: prints (a) the slider handlers' time for a 256×256 RGB image and (b) what the user feels
in headless Chromium, from moving "Timestep t" to the new x_t on screen (p50/p95 over many moves).

    python benchmarks/bench_forward.py [--moves 60]

Targets (issue 2): (a) median ≤ 15 ms, (b) p95 ≤ 100 ms. The CPU load average is printed too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks.common import app_in_chromium, machine_line  # noqa: E402
from explorer import data  # noqa: E402
from explorer.ui import build_demo  # noqa: E402
from explorer.ui.controls import ScheduleControls  # noqa: E402
from explorer.ui.forward import render_forward  # noqa: E402

PHOTO = str(data.ASSETS_DIR / "astronaut.png")
LINEAR = ("linear", 1000, 1e-4, 0.02, 0.008, False)

# Moves the slider like a user (the range input's input event) and resolves when the new x_t has been drawn
# and the browser has produced the next frame (the image is on screen).
MOVE_JS = """async (t) => {
  const input = document.querySelector('#timestep-t input[type=range]');
  const canvas = document.querySelector('#ddpm-fwd-canvas');
  const start = performance.now();
  input.value = String(t);
  input.dispatchEvent(new Event('input', {bubbles: true}));
  while (canvas.dataset.t !== String(t)) await new Promise((r) => setTimeout(r, 0));
  const drawn = performance.now();
  await new Promise((r) => requestAnimationFrame(() => r()));
  return [drawn - start, performance.now() - start];
}"""
SHOW_ONLY_JS = """(t) => { const s = performance.now(); window.ddpmForward.show(t); return performance.now() - s; }"""


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q))


def bench_handler(repeats: int = 50) -> None:
    build_demo()  # the app's process settings (one torch thread per request) apply
    for _ in range(3):
        render_forward(PHOTO, ScheduleControls.parse(*LINEAR), 0, 500)  # warm caches
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        render_forward(PHOTO, ScheduleControls.parse(*LINEAR), 0, 10 + 19 * i)
        times.append((time.perf_counter() - start) * 1000)
    print(f"(a) server handler render_forward, 256×256 RGB: median {statistics.median(times):.2f} ms, "
          f"p95 {percentile(times, 95):.2f} ms over {repeats} calls (x_t + PNG-ready PIL image; gradio's "
          f"encoding not included)")


def bench_browser(moves: int) -> None:
    with app_in_chromium() as page:
        page.wait_for_function("() => document.querySelector('#ddpm-fwd-canvas')?.dataset.t === '250'",
                               timeout=60_000)
        page.locator("img[src*='astronaut']").first.click()
        page.wait_for_function("() => document.querySelector('#ddpm-fwd-canvas').width === 256", timeout=60_000)
        time.sleep(1.0)
        show = [page.evaluate(SHOW_ONLY_JS, 100 + i) for i in range(moves)]
        print(f"(a') browser handler ddpmForward.show (x_t, pixels, numbers), 256×256 RGB: "
              f"median {statistics.median(show):.2f} ms, p95 {percentile(show, 95):.2f} ms")
        drawn, painted = [], []
        rng = np.random.default_rng(0)
        for t in rng.integers(1, 1000, size=moves):
            d, f = page.evaluate(MOVE_JS, int(t))
            drawn.append(d)
            painted.append(f)
            time.sleep(0.03)  # a user's drag: ~30 moves per second
        print(f"(b) slider move -> new x_t on screen (next frame), 256×256 RGB, {moves} moves: "
              f"p50 {percentile(painted, 50):.1f} ms, p95 {percentile(painted, 95):.1f} ms "
              f"(drawn into canvas: p50 {percentile(drawn, 50):.1f} ms, p95 {percentile(drawn, 95):.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=60)
    args = parser.parse_args()
    print(machine_line())
    bench_handler()
    bench_browser(args.moves)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

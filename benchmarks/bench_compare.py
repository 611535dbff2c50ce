"""Compare-tab speed: what the user feels in headless Chromium, from moving the shared "fraction t/T" slider to
both new x_t on screen (p50/p95 over many moves), for the bundled digit and the 256×256 RGB photo.

    python benchmarks/bench_compare.py [--moves 60]

Target (issue 14, item 5): p95 ≤ 16.7 ms (one display frame) from input event to painted frame. Prints the
CPU, whether it runs bfloat16 natively (the page's drawing is float32 JavaScript either way) and the load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks.common import app_in_chromium, machine_line  # noqa: E402

VIEW = "#compare-view .ddpm-cmp"
# Moves the slider like a user (the range input's input event); resolves when both sides are drawn and the browser
# has produced the next frame (the images are on screen).
MOVE_JS = """async (f) => {
  const input = document.querySelector('#compare-fraction input[type=range]');
  const root = document.querySelector('#compare-view .ddpm-cmp');
  const want = String(Math.round(f * 1000));
  const start = performance.now();
  input.value = String(f);
  input.dispatchEvent(new Event('input', {bubbles: true}));
  while (root.dataset.position !== want) await new Promise((r) => setTimeout(r, 0));
  const drawn = performance.now();
  await new Promise((r) => requestAnimationFrame(() => r()));
  return [drawn - start, performance.now() - start];
}"""


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values), q))


def bench(page, moves: int, what: str) -> None:
    rng = np.random.default_rng(0)
    drawn, painted = [], []
    for f in rng.integers(1, 1000, size=moves) / 1000:
        d, p = page.evaluate(MOVE_JS, float(f))
        drawn.append(d)
        painted.append(p)
        time.sleep(0.03)  # a user's drag: ~30 moves per second
    print(f"{what}: slider move -> both x_t on screen (next frame), {moves} moves: p50 {pct(painted, 50):.1f} ms, "
          f"p95 {pct(painted, 95):.1f} ms (drawn into both canvases: p50 {pct(drawn, 50):.1f} ms, "
          f"p95 {pct(drawn, 95):.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=60)
    args = parser.parse_args()
    print(machine_line())
    with app_in_chromium() as page:
        page.wait_for_function("() => document.querySelector('#ddpm-fwd-canvas')?.dataset.t === '250'",
                               timeout=60_000)
        page.get_by_role("tab", name="Compare").click()
        page.wait_for_function(f"() => document.querySelector('{VIEW}')?.dataset.position === '500'", timeout=60_000)
        time.sleep(1.0)
        bench(page, args.moves, "28×28 digit")
        page.get_by_role("tab", name="Forward").click()
        page.locator("img[src*='astronaut']").first.click()
        page.wait_for_function("() => document.querySelector('#ddpm-fwd-canvas').width === 256", timeout=60_000)
        page.get_by_role("tab", name="Compare").click()
        page.wait_for_function(f"() => document.querySelector('{VIEW} canvas').width === 256", timeout=60_000)
        time.sleep(1.0)
        bench(page, args.moves, "256×256 RGB photo")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

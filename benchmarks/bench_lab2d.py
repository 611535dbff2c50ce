"""2-D lab: (a) sample quality of the shipped weights, (b) what dragging t costs in the page.

    python benchmarks/bench_lab2d.py [--only quality|page] [--presets ring8 ...] [--points 2000] [--repeats 3]
                                     [--moves 80]

(a) Per preset, 2,000 samples of DDIM-50 (η = 0, trailing) and DDPM (all 1000 steps), linear schedule T = 1000,
fp32, against 2,000 held-out data points: sliced Wasserstein SW₁ (256 directions) and MMD (RBF, widths 0.05–1),
each as a ratio to the same figure between two independent data samples of 2,000 (target ≤ 1.5×); both sides
of the ratio are means over --repeats draws (one draw of 2,000 moves SW₁ by ±20–50 %). For the
Gaussian mixtures the samplers also run on the exact score (the oracle): the floor a perfect network would reach.
(b) In headless Chromium: the range input's input event → the next animation frame after the cloud (2,000
points), density and arrows are drawn, measured in the page's own JS (event.timeStamp → requestAnimationFrame);
p50/p95. Target: one display frame, 16.7 ms.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from benchmarks.common import app_in_chromium, cpu_name
from explorer.lab2d import data, metrics, sampling
from explorer.lab2d.model import shipped_model
from explorer.lab2d.score import ExactMixtureDenoiser
from explorer.samplers import bf16_is_fast
from explorer.schedules import make_schedule

HELD_OUT_SEED = 1001  # held-out sets use seeds 1001, 1002, …; training used seed 0
SAMPLE_SEED = 7

# Moves the slider as a user does (an input event on the range) and resolves with the time the page itself
# recorded from that event to the next animation frame (lab2d.js pushes it onto ddpmLab2d.timings).
MOVE_JS = """async (t) => {
  const input = document.querySelector('#lab2d-t input[type=range]');
  const before = window.ddpmLab2d.timings.length;
  input.value = String(t);
  input.dispatchEvent(new Event('input', {bubbles: true}));
  while (window.ddpmLab2d.timings.length === before) await new Promise((r) => requestAnimationFrame(() => r()));
  return window.ddpmLab2d.timings[before];
}"""
SHOW_ONLY_JS = "(t) => { const s = performance.now(); window.ddpmLab2d.show(t); return performance.now() - s; }"


def mean_sd(values) -> str:
    return f"{np.mean(values):.2f} ± {np.std(values):.2f}"


def bench_quality(n: int, presets, repeats: int) -> None:
    """Each figure is a mean over ``repeats`` draws: sample seed k against held-out set k, and the baseline over
    as many pairs of independent held-out sets, so that neither side of the ratio rests on one lucky draw."""
    torch.set_num_threads(1)
    s = make_schedule("linear", 1000)
    print(f"\n(a) sample quality, {n} points, linear T=1000, fp32; ratio = mean figure / mean figure of two "
          f"independent data samples; means over {repeats} draws (± the draws' standard deviation)\n")
    print("| preset | model | SW₁ data↔data | DDIM-50 SW₁ ratio | DDPM SW₁ ratio | DDIM-50 MMD ratio | DDPM MMD ratio | "
          "DDPM time |")
    print("|---|---|---|---|---|---|---|---|")
    for preset in presets:
        held_out = [data.make_points(preset, n, HELD_OUT_SEED + i).points for i in range(2 * repeats)]
        refs = held_out[:repeats]
        base_sw = np.mean([metrics.sliced_wasserstein(refs[k], held_out[repeats + k]) for k in range(repeats)])
        base_mmd = np.mean([metrics.mmd(refs[k], held_out[repeats + k]) for k in range(repeats)])
        models = [("shipped MLP", shipped_model(preset))]
        if preset in data.MIXTURES:
            models.append(("exact score (oracle)", ExactMixtureDenoiser(data.MIXTURES[preset]())))
        for name, den in models:
            sw, mm, ddpm_s = {"ddim": [], "ddpm": []}, {"ddim": [], "ddpm": []}, []
            for k in range(repeats):
                start = time.perf_counter()
                ddpm = sampling.sample_points(den, s, n, SAMPLE_SEED + k, "ddpm")
                ddpm_s.append(time.perf_counter() - start)
                ddim = sampling.sample_points(den, s, n, SAMPLE_SEED + k, "ddim", 50)
                for key, x in (("ddim", ddim), ("ddpm", ddpm)):
                    sw[key].append(metrics.sliced_wasserstein(x, refs[k]) / base_sw)
                    mm[key].append(metrics.mmd(x, refs[k]) / base_mmd)
            print(f"| {preset} | {name} | {base_sw:.4f} | {mean_sd(sw['ddim'])} | {mean_sd(sw['ddpm'])} | "
                  f"{mean_sd(mm['ddim'])} | {mean_sd(mm['ddpm'])} | {np.median(ddpm_s):.1f} s |", flush=True)


def bench_page(moves: int) -> None:
    with app_in_chromium(height=1100) as page:
        page.get_by_role("tab", name="2-D lab").click()
        page.wait_for_function("() => document.querySelector('#lab2d-canvas')?.dataset.t === '200'",
                               timeout=120_000)
        page.locator("#lab2d-show-exact").check()
        page.locator("#lab2d-show-error").check()
        time.sleep(1.0)
        show = [page.evaluate(SHOW_ONLY_JS, 100 + i) for i in range(moves)]
        painted = []
        rng = np.random.default_rng(0)
        for t in rng.integers(1, 1000, size=moves):
            painted.append(page.evaluate(MOVE_JS, int(t)))
            time.sleep(0.03)  # a user's drag: ~30 moves per second
        pct = lambda v, q: float(np.percentile(v, q))
        print(f"\n(b) ring8, 2,000 points + density bands + 3 arrow layers (17×17), {moves} moves:")
        print(f"    ddpmLab2d.show alone: p50 {pct(show, 50):.2f} ms, p95 {pct(show, 95):.2f} ms")
        print(f"    input event -> next animation frame (in the page): p50 {pct(painted, 50):.1f} ms, "
              f"p95 {pct(painted, 95):.1f} ms (target 16.7 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("quality", "page"))
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--moves", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=3, help="sample seeds (and data pairs) each figure averages")
    parser.add_argument("--presets", nargs="+", choices=data.PRESETS, default=list(data.PRESETS))
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; native bfloat16: {bf16_is_fast()} (figures are fp32); "
          f"load average before: {os.getloadavg()[0]:.2f}")
    if args.only in (None, "quality"):
        bench_quality(args.points, args.presets, args.repeats)
    if args.only in (None, "page"):
        bench_page(args.moves)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

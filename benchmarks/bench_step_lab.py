"""Step microscope tab speed with the shipped checkpoint, fp32: prints

  (a) recording one sample's run in float32 (DDIM-50, DDPM over T = 1000) and building the page's payload;
      re-recording the Reverse tab's default run (DDIM-50 × 16 digits) to inspect one of its samples;
  (b) the guidance row: w ∈ {0, 0.5, 1, 2, 3, 5, 8} in one batched DDIM-50 run (target ≤ 3 s), and the trajectory
      map: 4 seeds × 3 digits, DDPM and DDIM over the same ≤ 20 steps (the same ≤ 3 s class);
  (c) in Chromium: scrubbing (range input event -> every view redrawn -> painted) and a pixel click -> the
      densities drawn (targets p95 ≤ 16.7 ms and ≤ 100 ms).

    python benchmarks/bench_step_lab.py [--runs 3] [--scrubs 100] [--skip-ddpm]

The CPU, whether it runs bfloat16 natively and the load average are printed (a busy machine is slower).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import app_in_chromium  # noqa: E402
from explorer.model import DEFAULT_MODEL  # noqa: E402
from explorer.runs import RunSettings  # noqa: E402
from explorer.samplers import bf16_is_fast, model_eps_fn, sample, uses_bf16  # noqa: E402
from explorer.schedules import make_schedule  # noqa: E402
from explorer.pca import load_basis  # noqa: E402
from explorer.steplab import REVERSE_PRECISION, StepLabSettings, guidance_row, record_all  # noqa: E402
from explorer.trajectory_map import MAP_DIGITS, MAP_MAX_STEPS, MAP_SEEDS, trajectory_map  # noqa: E402
from explorer.ui.step_lab import payload  # noqa: E402


def lab(sampler="ddim", steps=50, seed=0) -> StepLabSettings:
    return StepLabSettings(RunSettings(make_schedule("linear", 1000), sampler=sampler, steps=steps, eta=1.0,
                                       digit="3", guidance=3.0, seed=seed, n=1))


def summary(name, values_ms, target=None):
    v = np.asarray(values_ms)
    line = f"{name:62s} median {np.median(v):8.1f} ms   p95 {np.percentile(v, 95):8.1f} ms   (n={len(v)})"
    if target is not None:
        line += f"   target ≤ {target:g} ms: {'OK' if np.percentile(v, 95) <= target else 'MISSED'}"
    print(line, flush=True)


def bench_recording(model, runs: int, skip_ddpm: bool):
    configs = [("DDIM-50", lab())] + ([] if skip_ddpm else [("DDPM-1000", lab("ddpm"))])
    for name, settings in configs:
        rec_ms, pay_ms, size = [], [], 0
        for i in range(runs if name == "DDIM-50" else 1):
            start = time.perf_counter()
            rec = record_all(model, StepLabSettings(settings.run.replace(seed=i)))
            rec_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            size = len(payload(rec))
            pay_ms.append((time.perf_counter() - start) * 1000)
        summary(f"(a) record one sample, {name}, fp32", rec_ms)
        summary(f"(a) payload for the page, {name} ({size / 1e6:.1f} MB of JSON)", pay_ms)
    # the Reverse tab's run brought into the microscope: its defaults (DDIM-50 × 16 digits, w = 3) re-recorded
    # whole in its own precision, one sample kept
    reverse, times = RunSettings(make_schedule("linear", 1000)), []
    for i in range(runs):
        start = time.perf_counter()
        record_all(model, StepLabSettings(reverse.replace(seed=i), sample=5, precision=REVERSE_PRECISION))
        times.append((time.perf_counter() - start) * 1000)
    precision = "bf16" if uses_bf16(REVERSE_PRECISION) else "fp32"
    summary(f"(a) inspect the Reverse tab's DDIM-50 × 16 run (its precision here: {precision})", times)


def bench_guidance_row(model, runs: int):
    times = []
    for i in range(runs):
        start = time.perf_counter()
        guidance_row(model, StepLabSettings(lab().run.replace(seed=i)))
        times.append((time.perf_counter() - start) * 1000)
    summary("(b) guidance row, 7 values of w, DDIM-50, one batched run, fp32", times, 3000)
    project, times = load_basis().project, []
    for i in range(runs):
        start = time.perf_counter()
        trajectory_map(model, StepLabSettings(lab().run.replace(seed=i)), project)
        times.append((time.perf_counter() - start) * 1000)
    name = f"{MAP_SEEDS} seeds × {len(MAP_DIGITS)} digits, DDPM + DDIM-{MAP_MAX_STEPS}"
    summary(f"(b) trajectory map, {name}, fp32", times, 3000)
    # the same machine state, for scale: the Reverse tab's DDIM-50 × 16 digits at w = 3 (README: 1.13 s idle, 1 thread)
    s = make_schedule("linear", 1000)
    eps_fn = model_eps_fn(model, s, torch.arange(16) % 10, 3.0, "fp32")
    ref = []
    for i in range(runs):
        start = time.perf_counter()
        sample(eps_fn, s, (16, 1, 28, 28), seed=i, steps=50)
        ref.append((time.perf_counter() - start) * 1000)
    summary("(b) for scale: DDIM-50 × 16 digits, w = 3, fp32 (samplers.sample)", ref)


SCRUB_JS = """async (k) => {
  const root = document.querySelector('#steplab-view .ddpm-steplab');
  const range = document.querySelector('#steplab-frame input[type=range]');
  const start = performance.now();
  range.value = String(k); range.dispatchEvent(new Event('input', {bubbles: true}));
  while (root.dataset.frame !== String(k)) await new Promise((r) => setTimeout(r, 0));
  const drawn = performance.now();
  await new Promise((r) => requestAnimationFrame(() => r()));  // the next frame paints it
  return [drawn - start, performance.now() - start];
}"""
DRAW_ONLY_JS = """(k) => { const L = window.ddpmStepLab; L.shown = -1; const s = performance.now(); L.draw(k);
  return performance.now() - s; }"""
CLICK_JS = """async ([row, col]) => {
  const root = document.querySelector('#steplab-view .ddpm-steplab');
  const canvas = root.querySelector('canvas[data-key="x_t"]'), box = canvas.getBoundingClientRect();
  const start = performance.now();
  canvas.dispatchEvent(new MouseEvent('click', {bubbles: true, clientX: box.left + (col + 0.5) * box.width / 28,
                                                clientY: box.top + (row + 0.5) * box.height / 28}));
  while (JSON.parse(root.dataset.pixel || '{}').row !== row || JSON.parse(root.dataset.pixel).col !== col)
    await new Promise((r) => setTimeout(r, 0));
  await new Promise((r) => requestAnimationFrame(() => r()));
  return performance.now() - start;
}"""


def bench_browser(scrubs: int):
    with app_in_chromium(height=1400) as page:
        page.get_by_role("tab", name="Step microscope").click()
        page.locator("#steplab-run").click()
        page.wait_for_function(
            "() => document.querySelector('#steplab-view .ddpm-steplab')?.dataset.count === '50'", timeout=120_000)
        rng = np.random.default_rng(0)
        frames = [int(k) for k in rng.integers(0, 50, scrubs)]
        frames = [k if k != frames[i - 1] else (k + 1) % 50 for i, k in enumerate(frames)]
        times = np.array([page.evaluate(SCRUB_JS, k) for k in frames])
        summary("(c) scrub: input event -> every view redrawn", times[:, 0], 16.7)
        summary("(c) scrub: input event -> next animation frame (painted)", times[:, 1], 16.7)
        summary("(c) the page's redraw of every view alone (ddpmStepLab.draw)",
                [page.evaluate(DRAW_ONLY_JS, k) for k in frames], 16.7)
        pixels = [[int(r), int(c)] for r, c in rng.integers(0, 28, (30, 2))]
        summary("(c) pixel click -> densities and series drawn and painted",
                [page.evaluate(CLICK_JS, p) for p in pixels], 100)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--scrubs", type=int, default=100)
    p.add_argument("--skip-ddpm", action="store_true")
    p.add_argument("--browser-only", action="store_true")
    p.add_argument("--skip-browser", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)  # as the app (build_demo)
    cpu = next((line.split(":", 1)[1].strip() for line in subprocess.run(["lscpu"], capture_output=True, text=True)
                .stdout.splitlines() if line.startswith("Model name")), "?")
    print(f"CPU: {cpu}, {os.cpu_count()} cores; bf16 native: {bf16_is_fast()}; the step lab runs fp32; "
          f"torch threads 1; load average {os.getloadavg()[0]:.1f}", flush=True)
    if not args.browser_only:
        model, _ = DEFAULT_MODEL.get()
        bench_recording(model, args.runs, args.skip_ddpm)
        bench_guidance_row(model, args.runs)
    if not args.skip_browser:
        bench_browser(args.scrubs)


if __name__ == "__main__":
    main()

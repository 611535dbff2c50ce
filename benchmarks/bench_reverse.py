"""Reverse-tab speed with the shipped checkpoint: prints

  (a) the sampling handler in-process: time to the first streamed frame and to the end, DDIM-50 × 16;
  (b) the same through the launched app (gradio_client: submit -> first streamed output / final result);
  (c) one scrub event: the handler (it returns the three grids as inline PNGs, so Gradio's postprocess has
      no files to write), the round trip through gradio_client, and click ◀ -> new frame on screen in Chromium;
  (d) the memory of a recorded 1000-step DDPM trajectory of 16 digits.

    python benchmarks/bench_reverse.py [--runs 5] [--scrubs 100] [--guidance 1.0]

Targets (issue 4): first frame ≤ 0.5 s, whole DDIM-50 × 16 ≤ 1.5 s end to end in the app, scrub handler
median ≤ 15 ms. The CPU load average is printed too (a busy machine is slower).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gradio_client import Client  # noqa: E402

from explorer import trajectory as tr  # noqa: E402
from explorer.model import DEFAULT_MODEL  # noqa: E402
from explorer.runs import RunSettings  # noqa: E402
from explorer.ui import build_demo, launch_settings  # noqa: E402
from explorer.ui.controls import ScheduleControls  # noqa: E402
from explorer.ui.reverse import frame_view, sample_frames  # noqa: E402

LINEAR = ["linear", 1000, 1e-4, 0.02, 0.008, False]


def run_args(guidance: float, sampler="ddim", steps=50, n=16, seed=0):
    return [*LINEAR, sampler, steps, 0.0, "trailing", "mixed", guidance, seed, n]


def run_settings(guidance: float, sampler="ddim", steps=50, n=16, seed=0) -> RunSettings:
    return RunSettings(ScheduleControls.parse(*LINEAR), sampler, steps, 0.0, "trailing", "mixed", guidance, seed, n)


def pct(values, q):
    return float(np.percentile(np.asarray(values), q))


def summary(name, values_ms, target=None):
    med = statistics.median(values_ms)
    line = f"{name:58s} median {med:8.1f} ms   p95 {pct(values_ms, 95):8.1f} ms   (n={len(values_ms)})"
    if target is not None:
        line += f"   target ≤ {target:g} ms: {'OK' if med <= target else 'MISSED'}"
    print(line)


def bench_in_process(guidance: float, runs: int):
    first, total = [], []
    for i in range(runs):
        start = time.perf_counter()
        gen = sample_frames(DEFAULT_MODEL, run_settings(guidance, seed=i))
        next(gen)
        first.append((time.perf_counter() - start) * 1000)
        for out in gen:
            traj = out[0]
        total.append((time.perf_counter() - start) * 1000)
    summary(f"(a) handler: first streamed frame, DDIM-50 × 16, w={guidance:g}", first, 500)
    summary(f"(a) handler: whole run, DDIM-50 × 16, w={guidance:g}", total, 1500)
    return traj


def bench_app(client: Client, guidance: float, runs: int):
    first, total = [], []
    for i in range(runs):
        start = time.perf_counter()
        job = client.submit(*run_args(guidance, seed=i), api_name="/reverse_sample")
        while not job.outputs() and not job.done():
            time.sleep(0.002)
        first.append((time.perf_counter() - start) * 1000)
        job.result()
        total.append((time.perf_counter() - start) * 1000)
    summary(f"(b) app: first streamed frame, DDIM-50 × 16, w={guidance:g}", first, 500)
    summary(f"(b) app: end to end, DDIM-50 × 16, w={guidance:g}", total, 1500)


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# Clicks Sample and resolves with [first streamed x_t image on screen, "Done" caption of this run] in ms.
CLICK_JS = """async (seed) => {
  const img = () => document.querySelector('#reverse-viewer img[data-key=x_t]');
  const caption = () => document.querySelector('#reverse-caption').innerText;
  const before = img() ? img().getAttribute('src') : null;
  const start = performance.now();
  document.querySelector('#reverse-sample').click();
  let first = null;
  while (true) {
    const now = performance.now();
    if (first === null && img() && img().getAttribute('src') !== before && img().complete) first = now - start;
    if (caption().includes('Done') && caption().includes(`seed ${seed} `)) return [first, now - start];
    if (now - start > 60000) throw new Error('no result');
    await new Promise((r) => setTimeout(r, 2));
  }
}"""

STEP_JS = """async () => {
  const img = () => document.querySelector('#reverse-viewer img[data-key=x_t]');
  const before = img().getAttribute('src');
  const start = performance.now();
  document.querySelector('#reverse-prev').click();
  while (!(img() && img().getAttribute('src') !== before && img().complete)) await new Promise((r) => setTimeout(r, 1));
  return performance.now() - start;
}"""


def bench_browser(url: str, runs: int):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.get_by_role("tab", name="Reverse").click()
        expect(page.locator("#reverse-model-status")).to_contain_text("Model", timeout=60_000)
        first, total = [], []
        for i in range(runs + 1):
            seed = 100 + i
            page.locator("#reverse-seed input").fill(str(seed))
            page.locator("#reverse-seed input").blur()
            page.wait_for_timeout(200)
            f, t = page.evaluate(CLICK_JS, seed)
            if i:  # the first run warms the page up
                first.append(f)
                total.append(t)
        scrubs = [page.evaluate(STEP_JS) for _ in range(min(40, 50))]
        browser.close()
    summary("(c) Chromium: click ◀ -> the previous frame's x_t shown", scrubs)
    summary("(b) Chromium: click Sample -> first streamed x_t shown", first, 500)
    summary("(b) Chromium: click Sample -> 'Done' (all frames shown)", total, 1500)


def bench_scrub(traj: tr.Trajectory, client: Client, scrubs: int):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, traj.num_frames, scrubs).tolist()
    handler = []
    for k in frames:
        start = time.perf_counter()
        frame_view(traj, k)
        handler.append((time.perf_counter() - start) * 1000)
    summary("(c) scrub handler (index uint8 frames, 3 inline PNGs, numbers)", handler, 15)

    client.predict(*run_args(1.0), api_name="/reverse_sample")
    round_trip = []
    for k in frames[: max(10, scrubs // 4)]:
        start = time.perf_counter()
        client.predict(int(k), api_name="/reverse_view")
        round_trip.append((time.perf_counter() - start) * 1000)
    summary("(c) scrub round trip via gradio_client (incl. image download)", round_trip)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--scrubs", type=int, default=100)
    p.add_argument("--guidance", type=float, default=1.0, help="1 = one model call per step; other w: two")
    a = p.parse_args()

    print(f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}, torch {torch.__version__}")
    demo = build_demo()  # applies the app's process settings (torch threads)
    print(f"torch threads: {torch.get_num_threads()}")
    model, card = DEFAULT_MODEL.get()
    print(f"checkpoint: {card.get('parameters'):,} parameters, {card.get('training', {}).get('steps_done')} steps")
    next(sample_frames(DEFAULT_MODEL, run_settings(1.0, steps=2, n=16)))  # warm up

    traj = bench_in_process(a.guidance, a.runs)
    if a.guidance == 1.0:
        bench_in_process(3.0, max(2, a.runs // 2))

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo.queue().launch(**launch_settings(prevent_thread_lock=True, server_port=port))
    try:
        client = Client(demo.local_url, verbose=False)
        bench_app(client, a.guidance, a.runs)
        if a.guidance == 1.0:
            bench_browser(demo.local_url, a.runs)
        bench_scrub(traj, client, a.scrubs)
    finally:
        demo.close()

    big = tr.Trajectory.empty(1000, 16)
    print(f"(d) 1000-step trajectory of 16 digits: {big.nbytes / 2**20:.1f} MiB (limit 50 MB)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

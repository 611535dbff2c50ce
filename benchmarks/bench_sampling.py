"""Sampling speed of the shipped model on this machine; prints figures (no asserts).

- DDIM-50 for 16 digits with guidance (target ≤ 1 s), and without (w = 1)
- DDPM-1000 for 16 digits (target ≤ 20 s)
- the sampling loop's overhead over bare model calls (target ≤ 3 %; the two are timed in turns)

Usage: python benchmarks/bench_sampling.py [--threads 1 2] [--precision fp32 bf16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path
import sys

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine_line, timed, timed_alternately  # noqa: E402
from explorer.model import guided_eps, load_pretrained  # noqa: E402
from explorer.samplers import model_eps_fn, sample  # noqa: E402
from explorer.schedules import make_schedule  # noqa: E402
from explorer.ui.cores import side_by_side  # noqa: E402  (no app registered: always side by side)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--ddpm-repeats", type=int, default=1)
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    a = p.parse_args()
    model, card = load_pretrained()
    s = make_schedule("cosine", 1000)
    labels = torch.arange(16) % 10
    print(machine_line())
    print(f"model: {card['parameters']:,} parameters")
    configs = [(t, p, None) for t in a.threads for p in a.precision]
    if os.cpu_count() > 1:  # the app's run alone: guidance's two passes side by side, one core each
        configs += [(1, p, side_by_side) for p in a.precision]
    for threads, prec, pair in configs:
        torch.set_num_threads(threads)
        how = "" if pair is None else ", guidance's two passes side by side (the app's run alone)"
        print(f"\n== {threads} torch thread(s), network in {prec}{how} ==")

        def run(w, sampler="ddim", steps=50):
            return sample(model_eps_fn(model, s, labels, w, prec, pair=pair), s, (16, 1, 28, 28), seed=0,
                          sampler=sampler, steps=steps)

        run(3.0, steps=5)  # warm-up
        for w in (3.0, 1.0):
            ts = timed(lambda: run(w), a.repeats)
            print(f"DDIM-50 x16, w={w:g}: median {statistics.median(ts):.3f} s  (min {min(ts):.3f}, n={len(ts)})")

        # loop overhead: the same 50 guided model calls, bare, vs the full loop (in turns: the host's speed drifts)
        x = torch.randn(16, 1, 28, 28)
        lam = torch.full((16,), 0.0)

        def bare():
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=prec == "bf16"):
                for _ in range(50):
                    guided_eps(model, x, lam, labels, 3.0, pair)[0].float()

        both = timed_alternately({"loop": lambda: run(3.0), "calls": bare}, a.repeats)
        loop, calls = both["loop"], both["calls"]
        overhead = statistics.median(loop) / statistics.median(calls) - 1
        print(f"loop overhead over bare model calls: {overhead * 100:+.1f}% "
              f"(loop {statistics.median(loop):.3f} s vs calls {statistics.median(calls):.3f} s)")

        for w in (3.0, 1.0) if a.ddpm_repeats > 0 else ():
            ts = timed(lambda: run(w, "ddpm"), a.ddpm_repeats, warmup=False)
            print(f"DDPM-1000 x16, w={w:g}: {statistics.median(ts):.2f} s")


if __name__ == "__main__":
    main()

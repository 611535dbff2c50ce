"""Tiny SD speed on this machine, fp32; prints figures (no asserts).

- prompt → 16 decoded samples with DDIM-50 and guidance (w = 3: 32 UNet rows per step), target ≤ 1.5 s
- ms per denoising step, 16 samples with guidance: pixel UNet (Reverse tab) vs latent UNet
- the tab's full run (frames recorded for the page: 4 samples decoded at every step)

Usage: python benchmarks/bench_tiny_sd.py [--threads 1 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import cpu_name, timed  # noqa: E402
from explorer.latent.pipeline import PromptSettings, load_tiny_sd, sample_images  # noqa: E402
from explorer.model import load_pretrained  # noqa: E402
from explorer.samplers import bf16_is_fast  # noqa: E402
from explorer.ui.cores import side_by_side  # noqa: E402  (no app registered: always side by side)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    print(f"CPU: {cpu_name()}; native bfloat16: {bf16_is_fast()}; precision: fp32; torch {torch.__version__}")
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

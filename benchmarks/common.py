"""What every benchmark here shares: the machine line its figures are read against, and a timing loop."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from explorer.samplers import bf16_is_fast  # noqa: E402


def cpu_name() -> str:
    """The CPU's model name as lscpu reports it (the platform's processor string where lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or platform.machine()


def machine_line() -> str:
    """CPU, cores, whether it runs bfloat16 natively, torch, and the load the figures were measured under."""
    return (f"CPU: {cpu_name()}, {os.cpu_count()} cores; native bfloat16: {bf16_is_fast()}; torch {torch.__version__}; "
            f"load average before: {os.getloadavg()[0]:.2f}")


def timed(fn, repeats: int, warmup: bool = True) -> list[float]:
    """Seconds of ``repeats`` calls of ``fn`` (after one untimed call when ``warmup``)."""
    if warmup:
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out

"""What every benchmark here shares: the machine line its figures are read against, a timing loop, and the app
served and opened in headless Chromium as the browser tests do (tests/served_app.py, tests/browser.py)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))  # served_app and browser: the tests' own launch and Chromium helpers

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


def timed_alternately(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds of ``repeats`` calls of each of ``fns`` (name → function), taken in turns (after one untimed call
    each): a ratio of two of them is not skewed by the machine's speed drifting between two blocks of runs."""
    for fn in fns.values():
        fn()
    out = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            out[name].append(time.perf_counter() - t0)
    return out


@contextmanager
def served(demo):
    """``demo`` served on a free loopback port as app.py serves it (tests/served_app.launch); closed on leaving."""
    from served_app import launch

    launch(demo)
    try:
        yield demo
    finally:
        demo.close()


@contextmanager
def app_in_chromium(demo=None, height: int = 1000):
    """The whole app (``build_demo()`` unless given) served, and a headless Chromium page open at it."""
    from browser import app_page

    from explorer.ui import build_demo

    with served(demo or build_demo()) as app, app_page(app.local_url, height=height) as page:
        yield page

"""Sharing the machine's cores between a run and everyone else's events (no layout of its own).

A guided step makes two network calls, the conditional pass and the unconditional one
(:func:`explorer.model.guided_eps`, :func:`explorer.latent.pipeline.latent_eps_fn`). A run alone on the server
makes them side by side, on two cores; while any other event is being processed (a slider render, another
tab's run), one after the other, leaving the other core to it. The calls are the same either way, so a seed
gives the same bits under any load.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import weakref
from concurrent.futures import Future, ThreadPoolExecutor

import gradio as gr
import torch

from ..devices import mps_available

# Measured on the 2-core Xeon, DDIM-50 × 16 at w = 3: in the app 1.95 -> 1.5 s, bench_sampling 1.82 -> 1.01 s.
_APPS: "weakref.WeakSet[gr.Blocks]" = weakref.WeakSet()
RUN_NICE = 10  # the nice value of a run's threads: the scheduler gives a waiting slider render ~90 % of a core


def yield_to_events() -> None:
    """Lower this thread's CPU priority to RUN_NICE, for the rest of its life (Linux: each thread has a nice value
    of its own; elsewhere nothing changes). A run's threads call it, so that when the cores are all busy, the
    short events of everyone else (a slider render, a scrub) run first and the long run waits; a run alone loses
    nothing. (Only a thread of its own: an unprivileged process cannot raise a priority again, and Gradio's
    worker threads serve every event.)"""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), RUN_NICE))
    except OSError:  # not permitted here: the run keeps the priority it has
        pass


_SECOND_CORE = ThreadPoolExecutor(1, thread_name_prefix="guidance-pass", initializer=yield_to_events)


def share_cores_with(demo: gr.Blocks) -> None:
    """Count ``demo``'s events when a run decides whether it is alone (each tab that samples registers its app;
    the apps of one process share its cores, so a run counts the events of all of them)."""
    _APPS.add(demo)


def events_in_process() -> int:
    """Events the registered apps' queues are processing now (a streaming run counts until it ends)."""
    total = 0
    for demo in list(_APPS):
        for job in getattr(getattr(demo, "_queue", None), "active_jobs", None) or ():
            total += len(job) if job else 0
    return total


def side_by_side(f, g):
    """(f(), g()): g on the second core while f runs here if this run's event is the only one, else here too."""
    second = beside(g)
    return f(), second.result()


def beside(fn) -> Future:
    """fn() on the second core while this thread goes on, if this run's event is the only one (queued there
    before whatever is handed to it next, e.g. the next step's second pass), else fn() now. A Future of its
    result either way."""
    if events_in_process() <= 1:
        return _SECOND_CORE.submit(_as_this_thread(fn))
    done = Future()
    try:
        done.set_result(fn())
    except Exception as e:  # noqa: BLE001 - handed to whoever reads the result, as the executor would
        done.set_exception(e)
    return done


def _as_this_thread(g):
    """g as a call for another thread that runs it with this thread's torch settings, which torch keeps per
    thread: the number of intra-op threads (oneDNN's last bits depend on it), inference mode and autocast."""
    threads, inference = torch.get_num_threads(), torch.is_inference_mode_enabled()
    autocast = [(d, torch.is_autocast_enabled(d), torch.get_autocast_dtype(d)) for d in _autocast_devices()]

    def call():
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        with contextlib.ExitStack() as modes:
            modes.enter_context(torch.inference_mode(inference))
            for device, enabled, dtype in autocast:
                modes.enter_context(torch.autocast(device, dtype=dtype, enabled=enabled))
            return g()

    return call


def _autocast_devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (["mps"] if mps_available() else [])

"""Sharing the machine's cores between a run and everyone else's events (no layout of its own).

A guided step makes two network calls, the conditional pass and the unconditional one
(:func:`explorer.model.guided_eps`, :func:`explorer.latent.pipeline.latent_eps_fn`). A run alone on the server
makes them side by side, on two cores; while any other event is being processed (a slider render, another
tab's run), one after the other, leaving the other core to it. The calls are the same either way, so a seed
gives the same bits under any load.
"""

from __future__ import annotations

import weakref
from concurrent.futures import ThreadPoolExecutor

import gradio as gr
import torch

# Measured on the 2-core Xeon, DDIM-50 × 16 at w = 3: in the app 1.95 -> 1.5 s, bench_sampling 1.82 -> 1.01 s.
_APPS: "weakref.WeakSet[gr.Blocks]" = weakref.WeakSet()
_SECOND_CORE = ThreadPoolExecutor(1, thread_name_prefix="guidance-pass")


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
    """(f(), g()): g on the second core while f runs here if this run's event is the only one, else after f."""
    if events_in_process() > 1:
        return f(), g()
    second = _SECOND_CORE.submit(_with_threads, torch.get_num_threads(), g)
    return f(), second.result()


def _with_threads(n: int, g):
    """g() on as many intra-op threads as the run's own thread uses: oneDNN's last bits depend on the number."""
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return g()

"""The Gradio app: tabs and their wiring only (every number comes from explorer.schedules/diffusion/readouts)."""

from __future__ import annotations

import os
import threading
import time
import weakref
from pathlib import Path

import gradio as gr
import torch

from ..model import DEFAULT_MODEL, ModelProvider
from .compare import build_compare_tab
from .cores import share_cores_with
from .forward import build_forward_tab
from .img2img import build_img2img
from .lab2d import build_lab2d_tab
from .reverse import build_reverse_tab
from .reverse_compare import build_reverse_compare
from .step_lab import build_step_lab_tab
from .tiny_sd import build_tiny_sd_tab

TITLE = "DDPM Explorer"
STATIC_DIR = Path(__file__).resolve().parent / "static"  # the page's browser code (*.js) and styles (*.css)
# Every 5 minutes, delete the temporary files this app made (renders, streamed frames, uploads, exports) once
# they are an hour old: each slider render or sampling frame is a new PNG, so without this /tmp only grows.
# Not Gradio's delete_cache: its sweep iterates the live sets of file names that request threads add to, so
# under load it dies at once ("Set changed size during iteration") and nothing is ever deleted (soak test).
CACHE_CLEANUP = (300, 3600)  # (every s, older than s)


def build_demo() -> gr.Blocks:
    """The whole app as a Blocks (not launched), so app.py and the tests can launch it."""
    # The app's tensors are small (≤ 256×256×3 images, 28×28 digit batches): torch's intra-op threads only
    # add overhead there, and on a busy 2-core machine they stall each op ~10× (measured: 50 ms vs 3 ms per
    # render_forward). One thread per request; concurrent requests still run in parallel.
    torch.set_num_threads(1)
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\nSee the math of denoising diffusion: how noise accumulates, and how schedules differ.")
        with gr.Tabs():
            with gr.Tab("Forward", id="forward"):
                forward = build_forward_tab(demo)
            with gr.Tab("Compare", id="compare") as compare_tab:
                build_compare_tab(demo, forward["x0_image"], compare_tab)
            with gr.Tab("Reverse", id="reverse"):
                reverse = build_reverse(demo, DEFAULT_MODEL, forward)
            with gr.Tab("Step microscope", id="step_lab"):
                # it can inspect the Reverse tab's run and its img2img round trip
                build_step_lab_tab(demo, DEFAULT_MODEL, reverse["state"], reverse["img2img_state"])
            with gr.Tab("Stable Diffusion in miniature", id="tiny_sd"):
                build_tiny_sd_tab(demo)
            with gr.Tab("2-D lab", id="lab2d"):
                build_lab2d_tab(demo)

        def release_session(request: gr.Request):
            release_session_state(demo, request.session_hash)

        demo.unload(release_session)
    every, age = CACHE_CLEANUP
    threading.Thread(target=_clean_temp_files_forever, args=(weakref.ref(demo), every, age), daemon=True,
                     name="temp-file-cleanup").start()
    return demo


def build_reverse(demo: gr.Blocks, provider: ModelProvider = DEFAULT_MODEL, forward: dict | None = None) -> dict:
    """The Reverse tab: sampling and scrubbing, then the comparison and img2img, which read its run controls.

    ``forward`` is what build_forward_tab returned (its schedule and image can be copied), or None. Returns what
    build_reverse_tab returned, and the img2img round trip's ``gr.State`` as "img2img_state".
    """
    share_cores_with(demo)  # a run takes the second core only while no other event of the page is processed
    parts = build_reverse_tab(demo, provider, forward["controls"] if forward else None)
    build_reverse_compare(provider, parts["controls"])
    img2img = build_img2img(provider, parts["controls"], forward["x0_image"] if forward else None)
    return {**parts, "img2img_state": img2img["state"]}


def page_assets() -> dict:
    """launch() arguments that put the browser code (static/*.js) and styles (static/*.css) into the page once.

    Each script only defines functions on ``window`` (it runs before Gradio mounts the page); events call them.
    """
    scripts = "".join(f"<script>\n{p.read_text(encoding='utf-8')}\n</script>\n" for p in sorted(STATIC_DIR.glob("*.js")))
    return {"head": scripts, "css_paths": [str(p) for p in sorted(STATIC_DIR.glob("*.css"))]}


def launch_settings(**overrides) -> dict:
    """Everything app.py passes to launch(): loopback only, no share link, upload cap, only assets/ served, page
    assets, and no run history.

    Gradio 6's run history writes every event's inputs and outputs into the browser's localStorage, re-reading and
    re-writing the whole history (up to 100 runs) as JSON on each status message. A sampling run's outputs are the
    recorded frames (about 1 MB of text), so each run made the next click slower (Chromium's profile of runs 4–5:
    1.5 s in localStorage.setItem, 1.4 s in the history's JSON; click → first frame 0.35 s on a fresh page, 1.6 s
    by the fifth run). It would also keep people's prompts and images in their browser after they leave.
    """
    from ..data import ASSETS_DIR, MAX_UPLOAD_BYTES

    settings = dict(server_name="127.0.0.1", server_port=7860, share=False, max_file_size=MAX_UPLOAD_BYTES,
                    allowed_paths=[str(ASSETS_DIR)], run_history=False, **page_assets())
    settings.update(overrides)
    return settings


def delete_old_temp_files(demo: gr.Blocks, age: float) -> int:
    """Delete the files Gradio saved for this app (outputs, uploads) that are older than ``age`` s; returns how many.

    Files Gradio keeps on purpose (examples, default values) stay. The sets of names are read through a snapshot
    (``list(s)`` runs without releasing the GIL), because request threads keep adding to them.
    """
    keep = set()
    for block in list(demo.blocks.values()):
        keep.update(getattr(block, "keep_in_cache", ()))
    now, deleted = time.time(), 0
    for names in list(demo.temp_file_sets):
        for name in list(names):
            if name in keep:
                continue
            try:
                if now - os.lstat(name).st_ctime <= age:
                    continue
                os.remove(name)
                deleted += 1
            except FileNotFoundError:
                pass
            names.discard(name)
            try:
                os.rmdir(os.path.dirname(name))  # Gradio puts each file in a folder of its own
            except OSError:
                pass
    return deleted


def _clean_temp_files_forever(demo_ref, every: float, age: float) -> None:
    while True:
        time.sleep(every)
        demo = demo_ref()
        if demo is None:  # the app is gone (tests build many)
            return
        delete_old_temp_files(demo, age)
        del demo


def release_session_state(demo: gr.Blocks, session_hash: str | None) -> None:
    """When a session ends (tab closed or reloaded, client closed), free its state now.

    Gradio keeps a closed session's gr.State values for an hour (to allow a reconnect) and the session's own
    record (≈ 0.35 MB: a copy of the page config) until 10 000 sessions exist. A recorded reverse run is up to
    38 MB, so a classroom that reloads a few times would pile up gigabytes; a reloaded page starts afresh anyway.
    """
    holder = getattr(demo, "state_holder", None)  # set by Gradio when the app is launched
    if holder is None or session_hash is None:
        return
    holder.delete_state(session_hash)  # runs each gr.State's delete_callback
    with holder.lock:
        holder.session_data.pop(session_hash, None)
        holder.time_last_used.pop(session_hash, None)

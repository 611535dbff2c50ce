"""The Gradio app: tabs and their wiring only (every number comes from explorer.schedules/diffusion/readouts)."""

from __future__ import annotations

import gradio as gr
import torch

from .compare import build_compare_tab
from .forward import build_forward_tab
from .reverse import build_reverse_tab

TITLE = "DDPM Explorer"
# Every 5 minutes, delete the temporary files this app made (renders, streamed frames, uploads, exports) once
# they are an hour old: each slider render or sampling frame is a new PNG, so without this /tmp only grows.
CACHE_CLEANUP = (300, 3600)  # (every s, older than s)


def build_demo() -> gr.Blocks:
    """The whole app as a Blocks (not launched), so app.py and the tests can launch it."""
    # The app's tensors are small (≤ 256×256×3 images, 28×28 digit batches): torch's intra-op threads only
    # add overhead there, and on a busy 2-core machine they stall each op ~10× (measured: 50 ms vs 3 ms per
    # render_forward). One thread per request; concurrent requests still run in parallel.
    torch.set_num_threads(1)
    with gr.Blocks(title=TITLE, delete_cache=CACHE_CLEANUP) as demo:
        gr.Markdown(f"# {TITLE}\nSee the math of denoising diffusion: how noise accumulates, and how schedules differ.")
        with gr.Tabs():
            with gr.Tab("Forward", id="forward"):
                forward = build_forward_tab(demo)
            with gr.Tab("Compare", id="compare") as compare_tab:
                build_compare_tab(demo, forward["x0_image"], compare_tab)
            with gr.Tab("Reverse", id="reverse"):
                build_reverse_tab(demo, forward)

        def release_session(request: gr.Request):
            release_session_state(demo, request.session_hash)

        demo.unload(release_session)
    return demo


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

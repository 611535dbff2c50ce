"""The Gradio app: tabs and their wiring only (every number comes from explorer.schedules/diffusion/readouts)."""

from __future__ import annotations

import gradio as gr
import torch

from .compare import build_compare_tab
from .forward import build_forward_tab
from .reverse import build_reverse_tab

TITLE = "DDPM Explorer"


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
                build_reverse_tab(demo, forward)
    return demo

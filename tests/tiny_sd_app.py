"""The Tiny SD tab alone in a Blocks, on a tiny random-init model (tests must not depend on the shipped weights)."""

import gradio as gr
import torch

from explorer.latent.pipeline import build_tiny_sd
from explorer.ui import tiny_sd
from served_app import launch


def tiny_model():
    torch.manual_seed(0)
    m = build_tiny_sd(scaling_factor=0.8)
    torch.nn.init.normal_(m.unet.head[-1].weight, std=0.02)  # a zero head would make every ε̂ zero
    return m


def launch_tab(monkeypatch_target=tiny_sd):
    model = tiny_model()
    monkeypatch_target.model = lambda: model
    with gr.Blocks() as demo:
        tiny_sd.build_tiny_sd_tab(demo)
    return launch(demo), model

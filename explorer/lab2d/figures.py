"""Plotly figures of the 2-D lab's training: the loss curve and the current samples (no gradio import)."""

from __future__ import annotations

import plotly.graph_objects as go
import torch

from .data import VIEW

CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")  # the page's lab2d.js uses the same colours
POINT_COLOUR = "#333333"


def loss_figure(losses: list[float], elapsed_s: float) -> go.Figure:
    """The ε-prediction loss per reporting interval (≈ 0.75 s) against wall time."""
    n = len(losses)
    xs = [elapsed_s * (i + 1) / n for i in range(n)]
    fig = go.Figure(go.Scatter(x=xs, y=losses, mode="lines+markers", name="loss"))
    fig.update_layout(height=280, margin=dict(l=50, r=10, t=30, b=40), title="‖ε̂ − ε‖² while training",
                      xaxis_title="seconds", yaxis_title="loss", yaxis_type="log")
    return fig


def points_figure(points: torch.Tensor, title: str) -> go.Figure:
    """A point cloud in the lab's view [-VIEW, VIEW]²."""
    p = points.numpy()
    fig = go.Figure(go.Scattergl(x=p[:, 0], y=p[:, 1], mode="markers", marker=dict(size=3, color=POINT_COLOUR)))
    fig.update_layout(height=320, width=320, margin=dict(l=30, r=10, t=30, b=30), title=title, showlegend=False,
                      xaxis=dict(range=[-VIEW, VIEW]), yaxis=dict(range=[-VIEW, VIEW], scaleanchor="x"))
    return fig

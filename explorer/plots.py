"""Plotly figures of a schedule and of x_t's pixel values (no gradio import).

What follows the current timestep is named so the browser can move it without a round trip:
layout shapes named ``"marker:<key>"`` (a circle at (t, array[key][t]), hidden where the value is
±inf) and ``"vline"`` (a vertical line at t) move with a cheap ``Plotly.relayout``; the trace with
``meta="hist"`` holds the histogram bars. The keys are those of :func:`explorer.readouts.schedule_arrays`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from .diffusion import X0_RANGE
from .readouts import NUMBER_LABELS, schedule_arrays
from .schedules import Schedule

HIST_BINS = 64
HIST_RANGE = 4.0  # histogram of x_t over [-4, 4]; N(0, 1) has 99.99% of its mass there
HEIGHT = 300
COLORS = {
    "alpha_bar": "#1f77b4",
    "sqrt_alpha_bar": "#2ca02c",
    "sqrt_one_minus_alpha_bar": "#d62728",
    "beta": "#9467bd",
    "log_snr": "#ff7f0e",
}
COMPARE_COLORS = ("#1f77b4", "#ff7f0e")
# transparent backgrounds: the page's light or dark theme shows through (static/plots.css colours text and grid)
CLEAR = "rgba(0,0,0,0)"
PAD = 0.03  # share of an axis' span left free at each end, so the markers at t = 0 and t = T show whole


def _finite_or_none(values: np.ndarray) -> list[float | None]:
    """Plotly/JSON-safe values: ±inf and NaN become gaps (None)."""
    return [float(v) if np.isfinite(v) else None for v in values]


def _layout(fig: go.Figure, title: str, xaxis_title: str = "timestep t") -> go.Figure:
    fig.update_layout(
        title=dict(text=title, font=dict(size=14)),
        height=HEIGHT,
        margin=dict(l=55, r=55, t=40, b=40),
        hovermode="x unified",
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
        xaxis_title=xaxis_title,
        template="plotly_white",
        paper_bgcolor=CLEAR,
        plot_bgcolor=CLEAR,
    )
    return fig


def _padded(lo: float, hi: float) -> list[float]:
    """[lo, hi] widened by PAD of its span at both ends."""
    span = (hi - lo) or 1.0
    return [lo - PAD * span, hi + PAD * span]


def _note_above(fig: go.Figure, text: str) -> None:
    """A grey note above the plot area's right end: the t line (y 0..1 of the plot area) never crosses it."""
    fig.add_annotation(text=text, xref="paper", yref="paper", x=1, y=1.0, xanchor="right", yanchor="bottom",
                       showarrow=False, font=dict(size=10, color="gray"), name="note")


def _marker_shapes(s: Schedule, t: int, keys: Sequence[str]) -> list[dict]:
    """One circle per key at (t, array[key][t]), sized in pixels; no shape where the value is ±inf."""
    arrays = schedule_arrays(s)
    shapes = []
    for key in keys:
        y = _finite_or_none(arrays[key][t : t + 1])[0]
        shapes.append(dict(
            type="circle", name=f"marker:{key}", xref="x", yref="y", xsizemode="pixel", ysizemode="pixel",
            xanchor=t, yanchor=0.0 if y is None else y, x0=-6, x1=6, y0=-6, y1=6, visible=y is not None,
            line=dict(color="black", width=2), fillcolor="white",  # a white disc ringed black: seen on light and dark
        ))
    return shapes


def _vline_shape(t: float) -> dict:
    return dict(type="line", name="vline", xref="x", yref="paper", x0=t, x1=t, y0=0, y1=1,
                line=dict(color="gray", dash="dot", width=1))


def coefficients_figure(s: Schedule, t: int) -> go.Figure:
    """ᾱ_t, √ᾱ_t, √(1-ᾱ_t) (left axis, 0..1) and β_t (right axis, linear: a linear schedule is a straight line)."""
    ts = np.arange(s.T + 1)
    fig = go.Figure()
    for key in ("alpha_bar", "sqrt_alpha_bar", "sqrt_one_minus_alpha_bar"):
        fig.add_trace(go.Scatter(x=ts, y=schedule_arrays(s)[key], mode="lines", name=NUMBER_LABELS[key],
                                 line=dict(color=COLORS[key])))
    # β_0 = 0 is no step: β is drawn for t = 1..T
    fig.add_trace(go.Scatter(x=ts[1:], y=s.betas[1:], mode="lines", name=NUMBER_LABELS["beta"] + " (right axis)",
                             line=dict(color=COLORS["beta"], dash="dash"), yaxis="y2"))
    _layout(fig, "Signal and noise coefficients")
    fig.update_layout(
        shapes=[_vline_shape(t), *_marker_shapes(s, t, ("alpha_bar", "sqrt_alpha_bar", "sqrt_one_minus_alpha_bar"))],
        xaxis=dict(range=_padded(0, s.T)),
        yaxis=dict(range=_padded(0, 1), title="ᾱ_t, √ᾱ_t, √(1-ᾱ_t)"),
        yaxis2=dict(type="linear", overlaying="y", side="right", title="β_t (linear axis)", showgrid=False,
                    range=_padded(0, float(s.betas[1:].max())), tickformat="~g"),
    )
    return fig


def log_snr_figure(s: Schedule, t: int) -> go.Figure:
    """log-SNR(t) = log(ᾱ_t / (1-ᾱ_t)), marker at t. +∞ at t = 0 (and −∞ at t = T with zero terminal SNR) are gaps."""
    ts = np.arange(s.T + 1)
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=ts, y=_finite_or_none(s.log_snr), mode="lines", name="log-SNR", line=dict(color=COLORS["log_snr"]),
        customdata=[[v] for v in _finite_or_none(s.snr)],
        hovertemplate="log-SNR %{y:.4g}<br>SNR %{customdata[0]:.4g}<extra></extra>",
    ))
    finite = s.log_snr[np.isfinite(s.log_snr)]
    fig.update_layout(shapes=[_vline_shape(t), *_marker_shapes(s, t, ("log_snr",))])
    fig.add_hline(y=0.0, line=dict(color="gray", width=1), annotation_text="SNR = 1", annotation_position="bottom left")
    notes = ["t = 0: log-SNR = +∞ (clean image)"]
    if not np.isfinite(s.log_snr[s.T]):
        notes.append(f"t = {s.T}: −∞ (zero terminal SNR)")
    _note_above(fig, " · ".join(notes))
    _layout(fig, "log-SNR(t) = log(ᾱ_t / (1 − ᾱ_t))")
    fig.update_layout(yaxis_title="log-SNR", xaxis=dict(range=_padded(0, s.T)),
                      yaxis=dict(range=_padded(float(min(finite.min(), 0.0)), float(max(finite.max(), 0.0)))))
    return fig


def histogram_edges() -> np.ndarray:
    """The fixed bin edges of the x_t histogram (the browser uses the same)."""
    return np.linspace(-HIST_RANGE, HIST_RANGE, HIST_BINS + 1)


def histogram_density(values) -> np.ndarray:
    """Density of ``values`` over histogram_edges() (counts / (n · bin width); values outside are left out)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    counts, edges = np.histogram(values, bins=histogram_edges())
    return counts / (max(values.size, 1) * (edges[1] - edges[0]))


def histogram_figure(values, t: int) -> go.Figure:
    """Histogram of x_t's pixel values against the N(0, 1) density that x_T approaches.

    x_0 is scaled to [−1, 1]; the image shows x_t clipped to that range (a shaded band named "display_range").
    """
    edges = histogram_edges()
    centers = (edges[:-1] + edges[1:]) / 2
    grid = np.linspace(-HIST_RANGE, HIST_RANGE, 201)
    fig = go.Figure()
    fig.add_trace(go.Bar(x=centers, y=histogram_density(values), width=edges[1] - edges[0], name="pixels of x_t",
                         marker_color="#7f7f7f", meta="hist"))
    fig.add_trace(go.Scatter(x=grid, y=np.exp(-grid**2 / 2) / np.sqrt(2 * np.pi), mode="lines", name="N(0, 1)",
                             line=dict(color="#d62728")))
    lo, hi = X0_RANGE
    fig.add_shape(type="rect", name="display_range", xref="x", yref="paper", x0=lo, x1=hi, y0=0, y1=1,
                  fillcolor="gray", opacity=0.12, line=dict(width=0), layer="below")
    # inside the plot's top left (the legend sits above its right end); this plot has no t line
    fig.add_annotation(text=f"x₀ is scaled to [{lo:g}, {hi:g}];<br>the image shows x_t clipped to the shaded band",
                       xref="paper", yref="paper", x=0, y=1, xanchor="left", yanchor="top", align="left",
                       showarrow=False, font=dict(size=10, color="gray"), name="note")
    _layout(fig, "Pixel values of x_t vs N(0, 1)", xaxis_title="pixel value")
    fig.update_layout(bargap=0, hovermode="closest", yaxis_title="density")
    return fig


def overlay_figure(schedules: Sequence[tuple[str, Schedule]], key: str, fraction: float) -> go.Figure:
    """One array (``alpha_bar`` or ``log_snr``) of several schedules against t/T, so different T line up."""
    if key not in ("alpha_bar", "log_snr"):
        raise ValueError(f"overlay_figure draws 'alpha_bar' or 'log_snr', got {key!r}.")
    fig = go.Figure()
    for i, (label, s) in enumerate(schedules):
        y = schedule_arrays(s)[key]
        fig.add_trace(go.Scatter(x=np.arange(s.T + 1) / s.T, y=_finite_or_none(y), mode="lines", name=label,
                                 line=dict(color=COMPARE_COLORS[i % len(COMPARE_COLORS)])))
    fig.update_layout(shapes=[_vline_shape(fraction)])
    title = "ᾱ_t" if key == "alpha_bar" else "log-SNR (+∞ at t = 0 not drawn)"
    _layout(fig, title, xaxis_title="t / T")
    fig.update_layout(yaxis_title=NUMBER_LABELS[key], xaxis=dict(range=_padded(0, 1)))
    return fig


def guidance_evaluation_figure(evaluation: dict) -> go.Figure:
    """Accuracy (classifier agreement) and diversity (spread ratio) against w, from the model's evaluation."""
    fig = go.Figure()
    for config, rows in evaluation.items():
        ws = [r[0] for r in rows]
        fig.add_scatter(x=ws, y=[r[1] for r in rows], mode="lines+markers", name=f"accuracy · {config}")
        fig.add_scatter(x=ws, y=[r[2] for r in rows], mode="lines+markers", name=f"diversity · {config}",
                        line={"dash": "dot"})
    fig.update_layout(height=300, margin=dict(l=40, r=10, t=30, b=40), xaxis_title="guidance w",
                      yaxis_title="agreement / spread ratio", title="model evaluation (explorer.evaluate)")
    return fig


def trajectory_map_figure(cloud: np.ndarray, cloud_labels: np.ndarray, paths: dict[str, np.ndarray], seeds, digits,
                          run_path: np.ndarray | None) -> go.Figure:
    """The data's cloud, the DDPM and DDIM paths of every (seed, digit) — row i of ``paths[sampler]`` is seed
    ``seeds[i // len(digits)]``, digit ``digits[i % len(digits)]`` — and the Step microscope's recorded run, in PCA
    coordinates (the Step microscope's trajectory map). A path has its digit's colour in the cloud's colour scale."""
    fig = go.Figure()
    fig.add_scatter(x=cloud[:, 0], y=cloud[:, 1], mode="markers", name="held-out digits",
                    marker=dict(size=5, color=cloud_labels, colorscale="Turbo", cmin=0, cmax=9, opacity=0.35),
                    text=[f"digit {d}" for d in cloud_labels], hoverinfo="text")
    colours = {d: sample_colorscale("Turbo", d / 9)[0] for d in digits}
    for sampler, dash in (("ddpm", "solid"), ("ddim", "dot")):
        for i, path in enumerate(paths[sampler]):
            seed, digit = seeds[i // len(digits)], digits[i % len(digits)]
            name = f"{sampler.upper()} · digit {digit}"
            fig.add_scatter(x=path[:, 0], y=path[:, 1], mode="lines", line=dict(dash=dash, width=1.5,
                            color=colours[digit]), name=name, legendgroup=name, showlegend=i < len(digits),
                            hovertext=f"{name} · seed {seed}", hoverinfo="text")
            fig.add_scatter(x=path[-1:, 0], y=path[-1:, 1], mode="markers", legendgroup=name, showlegend=False,
                            marker=dict(symbol="star", size=11, color=colours[digit]), hoverinfo="skip")
    starts = paths["ddim"][::len(digits), 0]  # each seed's x_T, shared by its digits and both samplers
    fig.add_scatter(x=starts[:, 0], y=starts[:, 1], mode="markers", name="x_T of each seed",
                    hovertext=[f"x_T of seed {s}" for s in seeds], hoverinfo="text",  # close together: no labels
                    marker=dict(symbol="circle-open", size=12, color="black"))
    if run_path is not None:
        fig.add_scatter(x=run_path[:, 0], y=run_path[:, 1], mode="lines+markers", name="this tab's run",
                        line=dict(color="black", width=3), marker=dict(size=4))
    fig.update_layout(height=560, margin=dict(l=40, r=10, t=30, b=40), xaxis_title="PC 1", yaxis_title="PC 2",
                      title="x_t paths from x_T (circle) to x_0 (star) in the digits' first two principal components")
    return fig

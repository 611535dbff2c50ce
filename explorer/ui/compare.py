"""Compare tab (journey 2): two schedules on the same image, same ε, same point of the process.

The shared control is the fraction t/T, so schedules with different T are compared at the same
relative position of their process; each side shows its own t = round(t/T · T).
"""

from __future__ import annotations

import gradio as gr

from .. import plots, readouts, render
from ..schedules import Schedule, make_schedule
from .common import image_file
from .controls import ScheduleControls, bind
from .images import DEFAULT_FRAMES, chain_strip, load_x0, xt_at

DEFAULT_FRACTION = 0.5
SIDES = ("A", "B")


def _caption(side: str, s, t: int) -> str:
    n = readouts.timestep_numbers(s, t)
    f = readouts.format_number
    return (f"**{side}: {s.label}**  \nt = {t} of {s.T} · ᾱ_t = {f(n['alpha_bar'])} · √ᾱ_t = {f(n['sqrt_alpha_bar'])}"
            f" · √(1-ᾱ_t) = {f(n['sqrt_one_minus_alpha_bar'])} · SNR = {f(n['snr'])} · log-SNR = {f(n['log_snr'])}")


def compare_view(image_path, a: Schedule, b: Schedule, seed, fraction):
    """x_t of both schedules at the shared fraction t/T, with captions and the overlaid curves."""
    return _view(load_x0(image_path), [a, b], seed, fraction)


def _view(x0, schedules, seed, fraction):
    out_images, captions = [], []
    for side, s in zip(SIDES, schedules):
        t = readouts.timestep_at_fraction(s, fraction)
        out_images.append(image_file(render.display(xt_at(x0, s, seed, t)), f"x_t_{side}"))
        captions.append(_caption(side, s, t))
    labelled = [(f"{side}: {s.label}", s) for side, s in zip(SIDES, schedules)]
    return (*out_images, *captions, plots.overlay_figure(labelled, "alpha_bar", fraction),
            plots.overlay_figure(labelled, "log_snr", fraction))


def diagnostics_rows(schedules) -> list[list[str]]:
    """Each schedule with zero terminal SNR off and on; the row of each side's current setting is marked."""
    rows = []
    for side, s in zip(SIDES, schedules):
        base = {k: v for k, v in s.params.items() if k not in ("T", "zero_terminal_snr")}
        current = bool(s.params.get("zero_terminal_snr"))
        for zero in (False, True):
            rows.append(readouts.diagnostics_row(f"{side}: {s.name}", _variant(s, base, zero), current=zero == current))
    return rows


def _variant(s, base, zero):
    return make_schedule(s.name, s.T, zero_terminal_snr=zero, **base)


def compare_all(image_path, a: Schedule, b: Schedule, seed, fraction, frames):
    """Everything of the tab: the view, the stacked chain strips and the diagnostics table."""
    schedules = [a, b]
    x0 = load_x0(image_path)
    view = _view(x0, schedules, seed, fraction)
    strips = image_file(render.stack([chain_strip(x0, s, seed, frames, readouts.timestep_at_fraction(s, fraction))
                                      for s in schedules]), "chains")
    return (*view, strips, diagnostics_rows(schedules))


def build_compare_tab(demo: gr.Blocks, x0_image: gr.Image, tab: gr.Tab) -> dict:
    """The Compare tab's layout and events. ``x0_image`` is the Forward tab's image (shared)."""
    gr.Markdown("Two schedules on **the image chosen in the Forward tab**, with the same ε. The shared control is "
                "the **fraction t/T**: each schedule is shown at its own t = round(t/T · T), so different T compare "
                "at the same point of their process.")
    with gr.Row():
        with gr.Column():
            a = ScheduleControls("linear", api_prefix="compare_a", label="Schedule A")
        with gr.Column():
            b = ScheduleControls("cosine", api_prefix="compare_b", label="Schedule B")
    with gr.Row():
        fraction = gr.Slider(0, 1, value=DEFAULT_FRACTION, step=0.001, label="Shared timestep: fraction t/T",
                             scale=3, elem_id="compare-fraction")
        seed = gr.Number(0, label="seed for ε (both)", precision=0, minimum=0, scale=1)
        frames = gr.Slider(2, 16, value=DEFAULT_FRAMES, step=1, label="chain frames K", scale=1)
    with gr.Row():
        with gr.Column():
            image_a = gr.Image(label="x_t under A", interactive=False, format="png", height=300)
            caption_a = gr.Markdown()
        with gr.Column():
            image_b = gr.Image(label="x_t under B", interactive=False, format="png", height=300)
            caption_b = gr.Markdown()
    with gr.Row():
        alpha_plot = gr.Plot(label="ᾱ_t overlaid")
        log_snr_plot = gr.Plot(label="log-SNR overlaid")
    strips = gr.Image(label="Forward chains: A (top) and B (bottom), t = 0 … T", interactive=False, format="png",
                      elem_id="compare-chains", elem_classes=["ddpm-strip"])
    table = gr.Dataframe(headers=readouts.DIAGNOSTIC_HEADERS, label="Diagnostics (each schedule with zero terminal "
                         "SNR off and on)", interactive=False, wrap=True, elem_id="compare-diagnostics")
    gr.Markdown(readouts.DIAGNOSTICS_NOTE, elem_id="compare-diagnostics-note")

    view_outputs = [image_a, image_b, caption_a, caption_b, alpha_plot, log_snr_plot]
    fn, inputs = bind(compare_all, x0_image, a, b, seed, fraction, frames)
    gr.on([tab.select, x0_image.change, *a.changes, *b.changes, seed.change, frames.release], fn, inputs=inputs,
          outputs=[*view_outputs, strips, table], trigger_mode="always_last", show_progress="minimal",
          api_name="compare")
    fn, inputs = bind(compare_view, x0_image, a, b, seed, fraction)
    fraction.change(fn, inputs=inputs, outputs=view_outputs, trigger_mode="always_last", show_progress="hidden",
                    api_name="compare_view")
    return {"fraction": fraction, "image_a": image_a, "image_b": image_b, "table": table}

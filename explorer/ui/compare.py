"""Compare tab (journey 2): two schedules on the same image, same ε, same point of the process.

The shared control is the fraction t/T, so schedules with different T are compared at the same
relative position of their process; each side shows its own t = round(t/T · T).

Moving the shared slider makes no request: when the image, seed or a schedule changes, the server sends x_0,
the fixed ε and, for every position of the slider, each side's t, coefficients and caption ONCE (a JSON
"scene"); static/compare.js draws both x_t in canvases repeating torch's float32 operations, as the Forward
slider does, so its pixels equal the compare_view API's (a browser test checks this).
"""

from __future__ import annotations

import html
import json

import gradio as gr

from .. import data, plots, readouts, render
from ..schedules import Schedule, make_schedule
from .common import image_file
from .controls import ScheduleControls, bind
from .images import DEFAULT_FRAMES, chain_strip, float32_b64, load_x0, xt_at

DEFAULT_FRACTION = 0.5
FRACTION_STEP = 0.001  # the shared slider's step: the scene holds each side's t at every one of its positions
SIDES = ("A", "B")
PLOT_CLASS = "ddpm-cmp-plot"  # the overlaid plots whose fraction line static/compare.js moves
LOAD_JS = "(scene, fraction) => window.ddpmCompare.load(scene, fraction)"
SHOW_JS = "(fraction) => window.ddpmCompare.show(fraction)"
# the page's view: both x_t canvases and captions, filled by static/compare.js
VIEW_HTML = '<div class="ddpm-cmp">' + "".join(
    f'<figure><canvas data-side="{side}" width="1" height="1" aria-label="x_t under {side}"></canvas>'
    f'<figcaption data-side="{side}"></figcaption></figure>' for side in SIDES) + "</div>"


def _numbers_line(s: Schedule, t: int, text: dict[str, list[str]]) -> str:
    """A caption's second line: t and the schedule's numbers there (``text``: readouts.formatted_numbers)."""
    return (f"t = {t} of {s.T} · ᾱ_t = {text['alpha_bar'][t]} · √ᾱ_t = {text['sqrt_alpha_bar'][t]}"
            f" · √(1-ᾱ_t) = {text['sqrt_one_minus_alpha_bar'][t]} · SNR = {text['snr'][t]}"
            f" · log-SNR = {text['log_snr'][t]}")


def _caption(side: str, s, t: int) -> str:
    t = readouts.check_timestep(s, t)
    return f"**{side}: {s.label}**  \n{_numbers_line(s, t, readouts.formatted_numbers(s))}"


def compare_scene(image_path, a: Schedule, b: Schedule, seed) -> str:
    """Everything the page needs to draw both sides at any position of the shared slider (JSON)."""
    x0 = load_x0(image_path)
    _, c, h, w = x0.shape
    positions = round(1 / FRACTION_STEP)
    sides = []
    for side, s in zip(SIDES, (a, b)):
        ts = [readouts.timestep_at_fraction(s, i / positions) for i in range(positions + 1)]
        text, arrays = readouts.formatted_numbers(s), readouts.schedule_arrays(s)
        sides.append({
            "side": side, "label": html.escape(f"{side}: {s.label}"), "t": ts,
            # exact float64 coefficients at each position's t; the page rounds them to float32 as torch does
            "coef": {k: arrays[k][ts].tolist() for k in ("sqrt_alpha_bar", "sqrt_one_minus_alpha_bar")},
            "lines": [html.escape(_numbers_line(s, t, text)) for t in ts],
        })
    scene = {"w": w, "h": h, "c": c, "positions": positions, "x0": float32_b64(x0),
             "eps": float32_b64(data.fixed_noise(seed, tuple(x0.shape))), "sides": sides}
    return json.dumps(scene, separators=(",", ":"))


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


def compare_setup(image_path, a: Schedule, b: Schedule, seed, fraction, frames):
    """New image, seed or schedule: the page's scene, the overlaid curves, the chain strips and the diagnostics."""
    schedules = [a, b]
    x0 = load_x0(image_path)
    labelled = [(f"{side}: {s.label}", s) for side, s in zip(SIDES, schedules)]
    strips = image_file(render.stack([chain_strip(x0, s, seed, frames) for s in schedules]), "chains")
    return (compare_scene(image_path, a, b, seed), plots.overlay_figure(labelled, "alpha_bar", fraction),
            plots.overlay_figure(labelled, "log_snr", fraction), strips, diagnostics_rows(schedules))


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
        fraction = gr.Slider(0, 1, value=DEFAULT_FRACTION, step=FRACTION_STEP, label="Shared timestep: fraction t/T",
                             scale=3, elem_id="compare-fraction")
        seed = gr.Number(0, label="seed for ε (both)", precision=0, minimum=0, scale=1)
        frames = gr.Slider(2, 16, value=DEFAULT_FRAMES, step=1, label="chain frames K", scale=1)
    # both x_t drawn in the page as the slider moves (static/compare.js), from the scene sent once
    gr.HTML(VIEW_HTML, elem_id="compare-view")
    scene = gr.Textbox(visible="hidden", elem_id="compare-scene")
    fraction.change(None, inputs=[fraction], js=SHOW_JS, trigger_mode="always_last", show_progress="hidden",
                    api_name=False, queue=False)
    with gr.Row():
        alpha_plot = gr.Plot(label="ᾱ_t overlaid", elem_classes=[PLOT_CLASS])
        log_snr_plot = gr.Plot(label="log-SNR overlaid", elem_classes=[PLOT_CLASS])
    strips = gr.Image(label="Forward chains: A (top) and B (bottom), t = 0 … T", interactive=False, format="png",
                      elem_id="compare-chains", elem_classes=["ddpm-strip"])
    table = gr.Dataframe(headers=readouts.DIAGNOSTIC_HEADERS, label="Diagnostics (each schedule with zero terminal "
                         "SNR off and on)", interactive=False, wrap=True, elem_id="compare-diagnostics")
    gr.Markdown(readouts.DIAGNOSTICS_NOTE, elem_id="compare-diagnostics-note")

    fn, inputs = bind(compare_setup, x0_image, a, b, seed, fraction, frames)
    gr.on([tab.select, x0_image.change, *a.changes, *b.changes, seed.change, frames.release], fn, inputs=inputs,
          outputs=[scene, alpha_plot, log_snr_plot, strips, table], trigger_mode="always_last",
          show_progress="minimal", api_name="compare_setup").then(
        None, inputs=[scene, fraction], js=LOAD_JS, api_name=False, queue=False)

    # API only: both sides rendered on the server (what the page draws; a browser test checks they are equal)
    image_a = gr.Image(label="x_t under A", format="png", visible=False)
    image_b = gr.Image(label="x_t under B", format="png", visible=False)
    caption_a, caption_b = gr.Markdown(visible=False), gr.Markdown(visible=False)
    view_outputs = [image_a, image_b, caption_a, caption_b, alpha_plot, log_snr_plot]
    everything, view = gr.Button(visible=False), gr.Button(visible=False)
    fn, inputs = bind(compare_all, x0_image, a, b, seed, fraction, frames)
    everything.click(fn, inputs=inputs, outputs=[*view_outputs, strips, table], api_name="compare")
    fn, inputs = bind(compare_view, x0_image, a, b, seed, fraction)
    view.click(fn, inputs=inputs, outputs=view_outputs, show_progress="hidden", api_name="compare_view")
    return {"fraction": fraction, "image_a": image_a, "image_b": image_b, "table": table}

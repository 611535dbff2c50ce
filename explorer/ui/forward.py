"""Forward tab (journey 1): watch noise accumulate as the "Timestep t" slider moves.

Hot path, by design: moving the slider makes no request. When the image, seed or schedule
changes, the server sends x_0, the fixed ε and the schedule's arrays ONCE (a JSON "scene");
the slider's JavaScript then draws x_t = √ᾱ_t·x_0 + √(1-ᾱ_t)·ε into a canvas repeating
torch's float32 operations exactly (so the pixels equal the server's render_forward), fills
the numbers from strings formatted on the server, and moves the plot markers and the
histogram client-side (after the image is painted, throttled). Only the LaTeX math panel comes
from the server: when a drag is released, and at once for keys, typing, ↺ and the server's own moves. The
browser code is static/forward.js.
"""

from __future__ import annotations

import json

import gradio as gr
import numpy as np
import torch

from .. import data, plots, readouts, render
from ..schedules import Schedule
from .common import LATEX, UI_MAX_T, image_file
from .controls import ScheduleControls, bind
from .image_input import ImageInput
from .images import DEFAULT_FRAMES, chain_strip, float32_b64, load_sketch, load_upload, load_x0, upload_note, xt_at

DEFAULT_T_SHOWN = 250  # the slider starts part-way so the first view already shows noise
# ids and class that static/forward.js looks up
CANVAS_ID = "ddpm-fwd-canvas"
SLIDER_ID = "timestep-t"
LIVE_PLOT_CLASS = "ddpm-live-plot"
SKETCH_ID = "forward-sketch"


# ---------------------------------------------------------------- handlers (no gradio objects needed)


def scene_json(x0: torch.Tensor, s, seed) -> str:
    """Everything the browser needs to draw any x_t of this image, seed and schedule."""
    eps = data.fixed_noise(seed, tuple(x0.shape))
    _, c, h, w = x0.shape
    arrays = readouts.schedule_arrays(s)
    edges = plots.histogram_edges()
    scene = {
        "w": w, "h": h, "c": c, "T": s.T,
        "x0": float32_b64(x0),
        "eps": float32_b64(eps),
        # exact float64 coefficients; the browser rounds them to float32 as torch does
        "coef": {k: arrays[k].tolist() for k in ("sqrt_alpha_bar", "sqrt_one_minus_alpha_bar")},
        "arrays": {k: [float(v) if np.isfinite(v) else None for v in arr] for k, arr in arrays.items()},
        "text": readouts.formatted_numbers(s),
        "hist_edges": edges.tolist(),
        "hist_width": float(edges[1] - edges[0]),
    }
    return json.dumps(scene, separators=(",", ":"))


def forward_setup(image_path, s: Schedule, seed, t, frames):
    """New image, seed or schedule: the browser scene, the slider range, plots, chain and math panel."""
    x0 = load_x0(image_path)
    t = min(int(t or 0), s.T)
    xt = xt_at(x0, s, seed, t)
    return (
        scene_json(x0, s, seed),
        gr.update(maximum=s.T, value=t),
        plots.coefficients_figure(s, t),
        plots.log_snr_figure(s, t),
        plots.histogram_figure(xt.numpy(), t),
        image_file(chain_strip(x0, s, seed, frames, t), "chain"),
        readouts.math_panel(s, t),
    )


def render_forward(image_path, s: Schedule, seed, t):
    """x_t computed on the server (for gradio_client users and to check the browser) and its numbers."""
    x0 = load_x0(image_path)
    xt = xt_at(x0, s, seed, t)
    numbers = readouts.timestep_numbers(s, t)
    numbers["formatted"] = {k: readouts.format_number(numbers[k]) for k in readouts.NUMBER_LABELS}
    return image_file(render.display(xt), "x_t"), numbers


def forward_math(s: Schedule, t):
    """The math panel at timestep t."""
    return readouts.math_panel(s, t)


def use_drawing(sketch):
    """The drawing as x₀; an empty pad gets a warning and x₀ (and so x_t) keeps the image it shows."""
    try:
        return load_sketch(sketch)
    except gr.Error as e:
        gr.Warning(e.message)
        return gr.skip()


def forward_chain(image_path, s: Schedule, seed, frames):
    """The forward chain strip alone (when only K changes)."""
    return image_file(chain_strip(load_x0(image_path), s, seed, frames), "chain")


def forward_chain_at(image_path, s: Schedule, seed, frames, t):
    """The forward chain strip with the frame nearest t framed (when the slider is released)."""
    return image_file(chain_strip(load_x0(image_path), s, seed, frames, readouts.check_timestep(s, t)), "chain")


# the browser side (static/forward.js): load a scene, draw one t
LOAD_JS = "(scene, t) => window.ddpmForward.load(scene, t)"
SHOW_JS = "(t) => window.ddpmForward.show(t)"
CHANGED_JS = "(t, mathT) => window.ddpmForward.changed(t, mathT)"
RELEASED_JS = "(t) => window.ddpmForward.released(t)"
SELECT_BRUSH_JS = "() => window.ddpmForward.selectBrush()"

_VIEW_HTML = f"""
<div class="ddpm-fwd">
  <canvas id="{CANVAS_ID}" width="28" height="28" aria-label="x_t, the noised image"></canvas>
  <table class="ddpm-numbers">
    <tr><th>t</th><td data-key="t">–</td></tr>
    {"".join(f'<tr><th>{label}</th><td data-key="{key}">–</td></tr>' for key, label in readouts.NUMBER_LABELS.items())}
  </table>
</div>
"""
def _x0_picker() -> ImageInput:
    """x₀ and the three ways to choose it (bundled examples, upload, drawing), each wired where it sits."""
    x0_image = ImageInput(str(data.DEFAULT_EXAMPLE), type="filepath", image_mode=None, format="png",
                          label="x₀ (the clean image)", interactive=False, height=220, elem_id="x0-image")
    with gr.Tabs():
        with gr.Tab("Examples"):
            gr.Examples([[str(p)] for p in data.EXAMPLES], inputs=[x0_image], label="Bundled examples",
                        examples_per_page=len(data.EXAMPLES))
        with gr.Tab("Upload"):
            upload = gr.File(label=f"Upload an image (≤ {data.MAX_UPLOAD_BYTES // 2**20} MB)",
                             file_types=["image"], type="filepath", height=120)
            size_note = gr.Markdown(f"Larger images are resized to at most {data.MAX_SIDE} px on their longest side.",
                                    elem_id="upload-note")
            upload.upload(load_upload, inputs=upload, outputs=x0_image, api_name="load_upload")
            upload.upload(upload_note, inputs=upload, outputs=size_note, api_name="upload_note",
                          show_progress="hidden")
        with gr.Tab("Draw") as draw_tab:
            sketch = gr.Sketchpad(label="Draw a digit", canvas_size=(280, 280), layers=False, elem_id=SKETCH_ID,
                                  brush=gr.Brush(colors=["#000000"], color_mode="fixed", default_size=18))
            # the brush is picked when the tab opens, so a drag draws at once
            draw_tab.select(None, js=SELECT_BRUSH_JS, api_name=False, queue=False)
            use_sketch = gr.Button("Use drawing as x₀")
            # an empty pad: a warning, and no error on the x₀ panel (which keeps its image, as x_t does)
            use_sketch.click(use_drawing, inputs=sketch, outputs=x0_image, api_name="use_sketch")
            api_only = gr.Button(visible=False)  # the API's load_sketch refuses an empty pad with an error
            api_only.click(load_sketch, inputs=sketch, outputs=x0_image, api_name="load_sketch")
    return x0_image


def build_forward_tab(demo: gr.Blocks) -> dict:
    """The Forward tab's layout and events; returns its components by name (for the app's other tabs and tests)."""
    gr.Markdown(
        "Pick an image, then drag **Timestep t**: the picture is "
        "$x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\varepsilon$ with one fixed "
        "$\\varepsilon$ per seed, computed live in your browser. Pixels are scaled to $[-1, 1]$ (black = −1, "
        "white = 1) and $x_t$ is shown clipped to that range.",
        latex_delimiters=LATEX,
    )
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            x0_image = _x0_picker()
            controls = ScheduleControls("linear", api_prefix="forward")
            with gr.Row():
                seed = gr.Number(0, label="seed for ε", precision=0, minimum=0)
                frames = gr.Slider(2, 16, value=DEFAULT_FRAMES, step=1, label="chain frames K")
        with gr.Column(scale=2):
            # maximum = the largest T allowed, so API calls with any T pass; the page narrows it to T on load
            t_slider = gr.Slider(0, UI_MAX_T, value=DEFAULT_T_SHOWN, step=1, label="Timestep t",
                                 elem_id=SLIDER_ID)
            # the hot path: no request, the browser draws x_t
            t_slider.input(None, inputs=[t_slider], js=SHOW_JS, trigger_mode="always_last", show_progress="hidden",
                           api_name="draw_timestep")
            view = gr.HTML(_VIEW_HTML, js_on_load=None, elem_id="forward-view")
            with gr.Row():
                coef_plot = gr.Plot(label="coefficients", elem_classes=[LIVE_PLOT_CLASS], elem_id="fwd-coef-plot")
                log_snr_plot = gr.Plot(label="log-SNR", elem_classes=[LIVE_PLOT_CLASS], elem_id="fwd-logsnr-plot")
            hist_plot = gr.Plot(label="histogram", elem_classes=[LIVE_PLOT_CLASS], elem_id="fwd-hist-plot")
    chain = gr.Image(label="Forward chain: K evenly spaced frames, t = 0 … T (same ε)", interactive=False,
                     format="png", elem_id="forward-chain", elem_classes=["ddpm-strip"])
    fn, inputs = bind(forward_chain, x0_image, controls, seed, frames)
    frames.release(fn, inputs=inputs, outputs=chain, show_progress="minimal", api_name="forward_chain")
    with gr.Accordion("The math at this t", open=True):
        math = gr.Markdown(latex_delimiters=LATEX, elem_id="forward-math")
        # the t the math panel shows: every way t changes (keys, typing, ↺, the server) sets it, clamped to T, and a
        # drag sets it on release only (typesetting on every move would hold up the image)
        math_t = gr.Slider(0, UI_MAX_T, value=DEFAULT_T_SHOWN, step=1, visible="hidden", elem_id="forward-math-t")
        t_slider.change(None, inputs=[t_slider, math_t], outputs=math_t, js=CHANGED_JS, trigger_mode="always_last",
                        show_progress="hidden", api_name=False, queue=False)
        t_slider.release(None, inputs=[t_slider], outputs=math_t, js=RELEASED_JS, show_progress="hidden",
                         api_name=False, queue=False)
        fn, inputs = bind(forward_math, controls, math_t)
        math_t.change(fn, inputs=inputs, outputs=math, trigger_mode="always_last", show_progress="hidden",
                      api_name="forward_math")
        # the chain frames the frame nearest the same t (set on release, by keys, typing or ↺, clamped to T)
        fn, inputs = bind(forward_chain_at, x0_image, controls, seed, frames, math_t)
        math_t.change(fn, inputs=inputs, outputs=chain, trigger_mode="always_last", show_progress="hidden",
                      api_name="forward_chain_at")
    with gr.Accordion("Double-check: the same x_t computed by the server in Python (the page draws it in your "
                      "browser)", open=False):
        render_button = gr.Button("Render x_t on the server")
        with gr.Row():
            server_image = gr.Image(label="x_t (server)", interactive=False, format="png")
            server_numbers = gr.JSON(label="numbers (server)")
        # no concurrency limit of its own (Gradio's thread pool bounds it): API clients that drag through t send
        # one render per event, and a limit of 2 made 20 such clients queue (load test: p95 553 -> 483 ms)
        fn, inputs = bind(render_forward, x0_image, controls, seed, t_slider)
        render_button.click(fn, inputs=inputs, outputs=[server_image, server_numbers], api_name="render_forward",
                            concurrency_limit=None)

    scene = gr.Textbox(visible=False)  # the browser scene (JSON), sent when image/seed/schedule change
    fn, inputs = bind(forward_setup, x0_image, controls, seed, t_slider, frames)
    setup = gr.on([demo.load, x0_image.change, *controls.changes, seed.change], fn, inputs=inputs,
                  outputs=[scene, t_slider, coef_plot, log_snr_plot, hist_plot, chain, math],
                  trigger_mode="always_last", show_progress="minimal", api_name="forward_setup")
    setup.then(None, inputs=[scene, t_slider], js=LOAD_JS, api_name="draw_scene")
    return {"x0_image": x0_image, "seed": seed, "t_slider": t_slider, "controls": controls, "view": view,
            "scene": scene, "setup": setup}

"""Forward tab (journey 1): watch noise accumulate as the "Timestep t" slider moves.

Hot path, by design: moving the slider makes no request. When the image, seed or schedule
changes, the server sends x_0, the fixed ε and the schedule's arrays ONCE (a JSON "scene");
the slider's JavaScript then draws x_t = √ᾱ_t·x_0 + √(1-ᾱ_t)·ε into a canvas repeating
torch's float32 operations exactly (so the pixels equal the server's render_forward), fills
the numbers from strings formatted on the server, and moves the plot markers and the
histogram client-side (after the image is painted, throttled). Only the LaTeX math panel comes
from the server, when the slider is released.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from .. import data, plots, readouts, render
from ..diffusion import q_sample
from .common import (LATEX, UI_MAX_T, ScheduleControls, image_file, schedule_from_controls,
                     served_image_path, user_errors)
from .image_input import ImageInput

DEFAULT_T_SHOWN = 250  # the slider starts part-way so the first view already shows noise
DEFAULT_FRAMES = 8
CANVAS_ID = "ddpm-fwd-canvas"
SLIDER_ID = "timestep-t"
PLOT_INTERVAL_MS = 120  # plot markers and histogram follow the slider at most this often while dragging
LIVE_PLOT_CLASS = "ddpm-live-plot"


# ---------------------------------------------------------------- handlers (no gradio objects needed)


def load_x0(image_path) -> torch.Tensor:
    """The chosen image as x_0, a (1, C, H, W) tensor in [-1, 1]."""
    return data.image_to_tensor(data.load_image(served_image_path(image_path)))


def xt_at(x0: torch.Tensor, s, seed, t) -> torch.Tensor:
    """x_t with the one fixed ε of (seed, shape)."""
    t = readouts.check_timestep(s, t)
    return q_sample(x0, t, data.fixed_noise(seed, tuple(x0.shape)), s)


def _b64_hwc(x: torch.Tensor) -> str:
    """A (1, C, H, W) float32 tensor as base64 of little-endian float32 in H, W, C order (canvas order)."""
    arr = x[0].permute(1, 2, 0).contiguous().numpy().astype("<f4")
    return base64.b64encode(arr.tobytes()).decode("ascii")


def scene_json(x0: torch.Tensor, s, seed) -> str:
    """Everything the browser needs to draw any x_t of this image, seed and schedule."""
    eps = data.fixed_noise(seed, tuple(x0.shape))
    _, c, h, w = x0.shape
    arrays = readouts.schedule_arrays(s)
    edges = plots.histogram_edges()
    scene = {
        "w": w, "h": h, "c": c, "T": s.T,
        "x0": _b64_hwc(x0),
        "eps": _b64_hwc(eps),
        # exact float64 coefficients; the browser rounds them to float32 as torch does
        "coef": {k: arrays[k].tolist() for k in ("sqrt_alpha_bar", "sqrt_one_minus_alpha_bar")},
        "arrays": {k: [float(v) if np.isfinite(v) else None for v in arr] for k, arr in arrays.items()},
        "text": readouts.formatted_numbers(s),
        "hist_edges": edges.tolist(),
        "hist_width": float(edges[1] - edges[0]),
    }
    return json.dumps(scene, separators=(",", ":"))


def chain_strip(x0: torch.Tensor, s, seed, frames) -> "render.Image.Image":
    """K evenly spaced frames x_t, t = 0 … T, all from the same ε."""
    k = int(frames)
    if not 2 <= k <= 32:
        raise ValueError(f"The chain needs between 2 and 32 frames, got {frames}.")
    ts = np.unique(np.rint(np.linspace(0, s.T, k)).astype(int))
    xs = [xt_at(x0, s, seed, int(t)) for t in ts]
    return render.strip(xs, labels=[f"t={t}" for t in ts], min_side=84 if x0.shape[-1] < 84 else 1)


@user_errors
def forward_setup(image_path, family, steps, beta_start, beta_end, cosine_s, zero_terminal_snr, seed, t, frames):
    """New image, seed or schedule: the browser scene, the slider range, plots, chain and math panel."""
    s = schedule_from_controls(family, steps, beta_start, beta_end, cosine_s, zero_terminal_snr)
    x0 = load_x0(image_path)
    t = min(int(t or 0), s.T)
    xt = xt_at(x0, s, seed, t)
    return (
        scene_json(x0, s, seed),
        gr.update(maximum=s.T, value=t),
        plots.coefficients_figure(s, t),
        plots.log_snr_figure(s, t),
        plots.histogram_figure(xt.numpy(), t),
        image_file(chain_strip(x0, s, seed, frames), "chain"),
        readouts.math_panel(s, t),
    )


@user_errors
def render_forward(image_path, family, steps, beta_start, beta_end, cosine_s, zero_terminal_snr, seed, t):
    """x_t computed on the server (for gradio_client users and to check the browser) and its numbers."""
    s = schedule_from_controls(family, steps, beta_start, beta_end, cosine_s, zero_terminal_snr)
    x0 = load_x0(image_path)
    xt = xt_at(x0, s, seed, t)
    numbers = readouts.timestep_numbers(s, t)
    numbers["formatted"] = {k: readouts.format_number(numbers[k]) for k in readouts.NUMBER_LABELS}
    return image_file(render.display(xt), "x_t"), numbers


@user_errors
def forward_math(family, steps, beta_start, beta_end, cosine_s, zero_terminal_snr, t):
    """The math panel at timestep t."""
    s = schedule_from_controls(family, steps, beta_start, beta_end, cosine_s, zero_terminal_snr)
    return readouts.math_panel(s, t)


@user_errors
def forward_chain(image_path, family, steps, beta_start, beta_end, cosine_s, zero_terminal_snr, seed, frames):
    """The forward chain strip alone (when only K changes)."""
    s = schedule_from_controls(family, steps, beta_start, beta_end, cosine_s, zero_terminal_snr)
    return image_file(chain_strip(load_x0(image_path), s, seed, frames), "chain")


@user_errors
def load_upload(file_path):
    """An uploaded file -> the validated, normalised x_0 image (or a readable error)."""
    if file_path is None:
        raise ValueError("No file was uploaded.")
    return image_file(data.load_image(Path(served_image_path(file_path))), "x0")


@user_errors
def load_sketch(sketch):
    """The sketchpad drawing -> an MNIST-style 28×28 digit."""
    composite = sketch.get("composite") if isinstance(sketch, dict) else sketch
    return image_file(data.sketch_to_image(composite), "x0")


# ---------------------------------------------------------------- browser side

# Installs window.ddpmForward once; every event's js starts with it, so order of loading never matters.
_INSTALL_JS = r"""
if (!window.ddpmForward) {
  const f32 = Math.fround;
  const b64ToF32 = (s) => {
    const bin = atob(s), u8 = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
    return new Float32Array(u8.buffer);
  };
  // torch.round: half to even
  const roundHalfEven = (v) => { const r = Math.round(v); return (r - v === 0.5 && r % 2 !== 0) ? r - 1 : r; };
  window.ddpmForward = {
    scene: null, t: 0, plotFrame: 0, drawn: 0,
    load(json, t) {
      if (!json) return;
      const p = JSON.parse(json);
      p.x0 = b64ToF32(p.x0); p.eps = b64ToF32(p.eps);
      p.a32 = Float32Array.from(p.coef.sqrt_alpha_bar);           // float64 -> float32 as torch.tensor(.., float32)
      p.b32 = Float32Array.from(p.coef.sqrt_one_minus_alpha_bar);
      p.xt = new Float32Array(p.x0.length);
      this.scene = p;
      this.image = null;
      this.shownT = -1;
      this.listen();
      this.show(t);
    },
    listen() {
      // Draw straight from the range input's own input event: no trip through Gradio's event queue.
      // (The Gradio .input event calls show() too; drawing the same t twice is skipped.)
      const range = document.querySelector('#""" + SLIDER_ID + r""" input[type=range]');
      if (!range || range.dataset.ddpmListening) return;
      range.dataset.ddpmListening = '1';
      range.addEventListener('input', () => this.show(range.value));
    },
    compute(t) {
      // x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * eps, in float32 like torch
      const p = this.scene, a = p.a32[t], b = p.b32[t], x0 = p.x0, eps = p.eps, xt = p.xt;
      for (let i = 0; i < xt.length; i++) xt[i] = f32(f32(a * x0[i]) + f32(b * eps[i]));
      return xt;
    },
    toByte(v) {  // explorer.data.tensor_to_uint8: ((clamp(x, -1, 1) + 1) * 127.5).round()
      const c = v < -1 ? -1 : (v > 1 ? 1 : v);
      return roundHalfEven(f32(f32(c + 1) * 127.5));
    },
    show(tRaw) {
      const p = this.scene;
      if (!p) return;
      const t = Math.max(0, Math.min(p.T, Math.round(Number(tRaw) || 0)));
      if (t === this.shownT) return;
      this.t = t;
      const canvas = document.getElementById('""" + CANVAS_ID + r"""');
      if (!canvas) return;
      if (canvas.width !== p.w || canvas.height !== p.h) { canvas.width = p.w; canvas.height = p.h; this.image = null; }
      const ctx = canvas.getContext('2d');
      if (!this.image) { this.image = ctx.createImageData(p.w, p.h); this.image.data.fill(255); }
      const xt = this.compute(t), px = this.image.data, c = p.c, n = p.w * p.h;
      for (let j = 0; j < n; j++) {
        if (c === 1) { const g = this.toByte(xt[j]); px[4*j] = g; px[4*j+1] = g; px[4*j+2] = g; }
        else { px[4*j] = this.toByte(xt[3*j]); px[4*j+1] = this.toByte(xt[3*j+1]); px[4*j+2] = this.toByte(xt[3*j+2]); }
      }
      ctx.putImageData(this.image, 0, 0);
      canvas.dataset.t = String(t);
      this.shownT = t;
      this.drawn++;
      const root = canvas.closest('.ddpm-fwd');
      root.querySelector('[data-key="t"]').textContent = String(t);
      for (const key in p.text) {
        const cell = root.querySelector('[data-key="' + key + '"]');
        if (cell) cell.textContent = p.text[key][t];
      }
      this.schedulePlots();
    },
    schedulePlots() {
      // Plots move after the new image has been painted (rAF, then a task after the frame), and at most
      // every PLOT_INTERVAL ms while dragging, so the main thread stays free for the next image.
      if (this.plotFrame) return;
      const wait = Math.max(0, (this.plotsAt || 0) + """ + str(PLOT_INTERVAL_MS) + r""" - performance.now());
      this.plotFrame = setTimeout(() => requestAnimationFrame(() => setTimeout(() => {
        this.plotFrame = 0; this.plotsAt = performance.now(); this.updatePlots();
      }, 0)), wait);
    },
    histogram(xt) {
      const p = this.scene, e = p.hist_edges, nb = e.length - 1, lo = e[0], hi = e[nb];
      const counts = new Array(nb).fill(0);
      for (let i = 0; i < xt.length; i++) {
        const v = xt[i];
        if (!(v >= lo && v <= hi)) continue;
        let k = Math.min(nb - 1, Math.floor((v - lo) / p.hist_width));
        if (v < e[k]) k--; else if (k < nb - 1 && v >= e[k + 1]) k++;
        counts[k]++;
      }
      return counts.map((n) => n / (xt.length * p.hist_width));
    },
    updatePlots() {
      const P = window.Plotly, p = this.scene, t = this.t;
      if (!P || !p) return;
      document.querySelectorAll('.""" + LIVE_PLOT_CLASS + r""" .js-plotly-plot').forEach((gd) => {
        // markers and the t line are layout shapes: relayout redraws only them
        const update = {};
        ((gd.layout && gd.layout.shapes) || []).forEach((sh, i) => {
          const name = sh.name || '';
          if (name === 'vline') { update[`shapes[${i}].x0`] = t; update[`shapes[${i}].x1`] = t; }
          else if (name.startsWith('marker:')) {
            const y = p.arrays[name.slice(7)][t];
            update[`shapes[${i}].xanchor`] = t;
            update[`shapes[${i}].yanchor`] = y === null ? 0 : y;
            update[`shapes[${i}].visible`] = y !== null;
          }
        });
        if (Object.keys(update).length) P.relayout(gd, update);
        const hist = (gd.data || []).findIndex((tr) => tr.meta === 'hist');
        if (hist >= 0) P.restyle(gd, { y: [this.histogram(p.xt)] }, [hist]);
      });
    },
  };
}
"""

LOAD_JS = "(scene, t) => {" + _INSTALL_JS + "window.ddpmForward.load(scene, t); }"
SHOW_JS = "(t) => {" + _INSTALL_JS + "window.ddpmForward.show(t); }"

_VIEW_HTML = f"""
<div class="ddpm-fwd">
  <canvas id="{CANVAS_ID}" width="28" height="28" aria-label="x_t, the noised image"></canvas>
  <table class="ddpm-numbers">
    <tr><th>t</th><td data-key="t">–</td></tr>
    {"".join(f'<tr><th>{label}</th><td data-key="{key}">–</td></tr>' for key, label in readouts.NUMBER_LABELS.items())}
  </table>
</div>
"""
_VIEW_CSS = """
.ddpm-fwd { display: flex; gap: 16px; align-items: flex-start; flex-wrap: wrap; }
.ddpm-fwd canvas { width: 300px; height: 300px; object-fit: contain; image-rendering: pixelated;
                   border: 1px solid #ccc; background: #fff; }
.ddpm-numbers { font-family: ui-monospace, monospace; font-size: 15px; border-collapse: collapse; }
.ddpm-numbers th { text-align: left; padding: 3px 12px 3px 0; font-weight: 600; }
.ddpm-numbers td { text-align: right; padding: 3px 0; min-width: 7em; }
"""


def build_forward_tab(demo: gr.Blocks) -> dict:
    """The Forward tab's layout and events; returns its components by name (for other tabs and tests)."""
    gr.Markdown(
        "Pick an image, then drag **Timestep t**: the picture is "
        "$x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\varepsilon$ with one fixed "
        "$\\varepsilon$ per seed, computed live in your browser.",
        latex_delimiters=LATEX,
    )
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            x0_image = ImageInput(str(data.DEFAULT_EXAMPLE), type="filepath", image_mode=None, format="png",
                                  label="x₀ (the clean image)", interactive=False, height=220, elem_id="x0-image")
            # small images (28×28 digits) are shown enlarged with crisp, nearest-neighbour pixels
            gr.HTML("<style>#x0-image img { image-rendering: pixelated; width: 100%; height: 100%;"
                    " object-fit: contain; }</style>", js_on_load=None)
            with gr.Tabs():
                with gr.Tab("Examples"):
                    gr.Examples([[str(p)] for p in data.EXAMPLES], inputs=[x0_image], label="Bundled examples",
                                examples_per_page=len(data.EXAMPLES))
                with gr.Tab("Upload"):
                    upload = gr.File(label=f"Upload an image (≤ {data.MAX_UPLOAD_BYTES // 2**20} MB)",
                                     file_types=["image"], type="filepath", height=120)
                with gr.Tab("Draw"):
                    sketch = gr.Sketchpad(label="Draw a digit", canvas_size=(280, 280), layers=False,
                                          brush=gr.Brush(colors=["#000000"], color_mode="fixed", default_size=18))
                    use_sketch = gr.Button("Use drawing as x₀")
            controls = ScheduleControls("linear", api_prefix="forward")
            with gr.Row():
                seed = gr.Number(0, label="seed for ε", precision=0, minimum=0)
                frames = gr.Slider(2, 16, value=DEFAULT_FRAMES, step=1, label="chain frames K")
        with gr.Column(scale=2):
            # maximum = the largest T allowed, so API calls with any T pass; the page narrows it to T on load
            t_slider = gr.Slider(0, UI_MAX_T, value=DEFAULT_T_SHOWN, step=1, label="Timestep t",
                                 elem_id=SLIDER_ID)
            view = gr.HTML(_VIEW_HTML, css_template=_VIEW_CSS, js_on_load=None, elem_id="forward-view")
            with gr.Row():
                coef_plot = gr.Plot(label="coefficients", elem_classes=[LIVE_PLOT_CLASS], elem_id="fwd-coef-plot")
                log_snr_plot = gr.Plot(label="log-SNR", elem_classes=[LIVE_PLOT_CLASS], elem_id="fwd-logsnr-plot")
            hist_plot = gr.Plot(label="histogram", elem_classes=[LIVE_PLOT_CLASS], elem_id="fwd-hist-plot")
    chain = gr.Image(label="Forward chain: K evenly spaced frames, t = 0 … T (same ε)", interactive=False,
                     format="png", elem_id="forward-chain")
    with gr.Accordion("The math at this t", open=True):
        math = gr.Markdown(latex_delimiters=LATEX, elem_id="forward-math")
    with gr.Accordion("Check: x_t computed on the server (what `render_forward` returns)", open=False):
        render_button = gr.Button("Render x_t on the server")
        with gr.Row():
            server_image = gr.Image(label="x_t (server)", interactive=False, format="png")
            server_numbers = gr.JSON(label="numbers (server)")
    scene = gr.Textbox(visible=False)  # the browser scene (JSON), sent when image/seed/schedule change

    schedule_inputs = controls.inputs
    setup = gr.on(
        [demo.load, x0_image.change, *controls.changes, seed.change],
        forward_setup,
        inputs=[x0_image, *schedule_inputs, seed, t_slider, frames],
        outputs=[scene, t_slider, coef_plot, log_snr_plot, hist_plot, chain, math],
        trigger_mode="always_last",
        show_progress="minimal",
        api_name="forward_setup",
    )
    setup.then(None, inputs=[scene, t_slider], js=LOAD_JS, api_name="draw_scene")
    # the hot path: no request, the browser draws x_t
    t_slider.input(None, inputs=[t_slider], js=SHOW_JS, trigger_mode="always_last", show_progress="hidden",
                   api_name="draw_timestep")
    # the LaTeX panel re-renders on release only: typesetting on every move would hold up the image
    t_slider.release(forward_math, inputs=[*schedule_inputs, t_slider], outputs=math, trigger_mode="always_last",
                     show_progress="hidden", api_name="forward_math")
    frames.release(forward_chain, inputs=[x0_image, *schedule_inputs, seed, frames], outputs=chain,
                   show_progress="minimal", api_name="forward_chain")
    upload.upload(load_upload, inputs=upload, outputs=x0_image, api_name="load_upload")
    use_sketch.click(load_sketch, inputs=sketch, outputs=x0_image, api_name="load_sketch")
    # no concurrency limit of its own (Gradio's thread pool bounds it): API clients that drag through t send one
    # render per event, and a limit of 2 made 20 such clients queue behind each other (load test: p95 553 -> 483 ms)
    render_button.click(render_forward, inputs=[x0_image, *schedule_inputs, seed, t_slider],
                        outputs=[server_image, server_numbers], api_name="render_forward", concurrency_limit=None)
    return {"x0_image": x0_image, "seed": seed, "t_slider": t_slider, "controls": controls, "view": view,
            "scene": scene, "setup": setup}

"""2-D lab tab (journey 5): a whole distribution diffusing, its score field, and every particle's way home.

Hot paths, by design (as the Forward tab): when the data, seed, schedule or model change, the server sends the
page x_0, the fixed ε, the schedule's coefficients, and — once per setting — the density of q(x_t) (exact
Gaussian mixtures) and the score field on a grid at evenly spaced t; dragging t then makes no request: the page
(static/lab2d.js) draws x_t and the nearest precomputed frame. Reverse runs send every particle's path once and
are scrubbed in the page. ``lab2d_points_at`` / ``lab2d_field_at`` return what the page draws (tests compare).
All math is in explorer.lab2d; this module validates, wires and formats.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import gradio as gr
import numpy as np
import torch

from .. import checks
from ..lab2d import data as lab_data
from ..lab2d import figures, sampling
from ..lab2d.data import DRAWING, PRESETS, PointCloud
from ..lab2d.model import shipped_model
from ..lab2d.scene import b64_f32, field_at, frame_ts, nearest_frame, paths_payload, points_at, scene
from ..lab2d.score import ExactMixtureDenoiser
from ..lab2d.train import SESSION_SECONDS, session_config, train_stream
from ..schedules import Schedule
from .common import LATEX, UI_MAX_T, user_errors
from .controls import ScheduleControls, bind

DEFAULT_PRESET = "ring8"
DEFAULT_T_SHOWN = 200
MAX_SCENE_POINTS = 5000  # points the page draws per frame
MAX_PARTICLES = 1000  # reverse paths: 2 runs × ≤ 101 frames × N × 2 floats are sent to the page
SWEEP_WS = (0.0, 1.0, 3.0, 8.0)  # guidance scales of the sweep (0 = unconditional, 1 = conditional)
SWEEP_POINTS = 250
SWEEP_STEPS = 25
REFRESH_SAMPLES = 400  # samples drawn at each training refresh
MAX_TRAININGS = 2  # "train it yourself" runs at once on the server (each holds a CPU core for ≤ 15 s)
SOURCES = ("shipped", "session")
SLIDER_ID = "lab2d-t"


# ---------------------------------------------------------------- settings and handlers (no gradio objects needed)


@dataclass(frozen=True)
class LabData:
    """Which points: a preset (n points drawn with ``seed``) or the session's drawing; ``seed`` also fixes ε."""

    preset: str
    seed: int
    n_points: int

    @classmethod
    def checked(cls, preset, seed, n_points) -> LabData:
        return cls(checks.one_of("data", preset, (*PRESETS, DRAWING)), checks.seed(seed),
                   checks.whole_number("The number of points", n_points, 10, MAX_SCENE_POINTS))

    def cloud(self, drawing) -> PointCloud:
        points = None if drawing is None else lab_data.check_points(drawing)  # checked even while a preset shows
        if self.preset == DRAWING:
            if points is None:
                raise ValueError("Draw a shape and press “Use drawing” first.")
            return PointCloud(points)
        return lab_data.make_points(self.preset, self.n_points, self.seed)

    def model_key(self, drawing) -> str:
        """What a model trained in this session learnt: the preset, or the drawing (by a hash of its points)."""
        if self.preset != DRAWING:
            return self.preset
        digest = hashlib.sha256(lab_data.check_points(drawing).numpy().tobytes()).hexdigest()[:12]
        return f"{DRAWING}:{digest}"


def denoiser_for(setting: LabData, drawing, source, session_model, required: bool = True):
    """The MLP to use: the shipped weights of the preset, or the one trained in this session (or None if
    ``required`` is False and there is none)."""
    source = checks.one_of("model", source, SOURCES)
    if source == "shipped":
        if setting.preset == DRAWING:
            if not required:
                return None
            raise ValueError("There are no shipped weights for a drawing: press “Train” (Train it yourself), "
                             "then choose “trained in this session”.")
        return shipped_model(setting.preset)
    key = setting.model_key(drawing)
    if session_model is None or session_model.get("key") != key:
        if not required:
            return None
        raise ValueError("No model has been trained on these data in this session yet: press “Train” "
                         "(Train it yourself) or choose the shipped weights.")
    return session_model["model"]


def lab2d_setup(preset, drawing, seed, n_points, s: Schedule, source, session_model, t):
    """New data, seed, schedule or model: the page's scene (JSON) and the slider's range."""
    setting = LabData.checked(preset, seed, n_points)
    denoiser = denoiser_for(setting, drawing, source, session_model, required=False)
    payload = scene(setting.cloud(drawing), s, setting.seed, denoiser)
    t = min(int(t) if isinstance(t, (int, float)) and np.isfinite(t) else 0, s.T)
    return json.dumps(payload, separators=(",", ":")), gr.update(maximum=s.T, value=max(t, 0))


def lab2d_points_at(preset, drawing, seed, n_points, s: Schedule, t):
    """x_t of every point at t, computed on the server (what the page draws)."""
    setting = LabData.checked(preset, seed, n_points)
    xt = points_at(setting.cloud(drawing), s, setting.seed, t)
    return {"t": int(t), "points": xt.tolist()}


def lab2d_field_at(preset, drawing, seed, n_points, s: Schedule, source, session_model, t):
    """The score arrows the page shows at t: those of the nearest precomputed frame (learned, exact, error)."""
    setting = LabData.checked(preset, seed, n_points)
    t = checks.whole_number("The timestep t", t, 0, s.T)
    ts = frame_ts(s, lowest=1)
    denoiser = denoiser_for(setting, drawing, source, session_model, required=False)
    f = field_at(setting.cloud(drawing), s, ts[nearest_frame(ts, t)], denoiser)
    as_list = lambda v: None if v is None else v.tolist()
    return {"t": f.t, "grid": f.grid.tolist(), "learned": as_list(f.learned), "exact": as_list(f.exact),
            "error": as_list(f.error)}


def lab2d_reverse(preset, drawing, seed, s: Schedule, source, session_model, particles, ddim_steps):
    """N particles from the same x_T through DDPM (every t) and DDIM (η = 0): their paths for the page (JSON)."""
    setting = LabData.checked(preset, seed, 2000)
    n = checks.whole_number("The number of particles", particles, 1, MAX_PARTICLES)
    k = checks.whole_number("The number of DDIM steps", ddim_steps, 1, min(s.T, 1000))
    denoiser = denoiser_for(setting, drawing, source, session_model)
    paths = {name: sampling.reverse_paths(denoiser, s, n, setting.seed, name, k) for name in ("ddpm", "ddim")}
    return json.dumps(paths_payload(paths), separators=(",", ":"))


def lab2d_sweep(preset, seed, s: Schedule, source, session_model, label):
    """DDIM samples of one class at each guidance scale w of SWEEP_WS: the learned model, and the exact mixture."""
    setting = LabData.checked(preset, seed, 2000)
    if setting.preset not in lab_data.MIXTURES:
        raise ValueError("Guidance needs labelled data: choose the ring of 8 Gaussians or the three tilted Gaussians.")
    cloud = setting.cloud(None)
    label = checks.whole_number("The class", label, 0, cloud.mixture.num_classes - 1)
    rows = [("learned", denoiser_for(setting, None, source, session_model)),
            ("exact mixture", ExactMixtureDenoiser(cloud.mixture))]
    out = []
    for name, den in rows:
        pts = [sampling.sample_points(den, s, SWEEP_POINTS, setting.seed, "ddim", min(SWEEP_STEPS, s.T), label, w)
               for w in SWEEP_WS]
        out.append({"name": name, "frames": b64_f32(torch.stack(pts))})
    return json.dumps({"ws": list(SWEEP_WS), "class": label, "n": SWEEP_POINTS, "rows": out}, separators=(",", ":"))


_TRAINING_LOCK = threading.Lock()
_TRAINING_SESSIONS: set[str] = set()


@contextmanager
def training_slot(session: str):
    """One training run per session and at most MAX_TRAININGS on the server; else a readable ValueError."""
    with _TRAINING_LOCK:
        if session in _TRAINING_SESSIONS:
            raise ValueError("A model is already training in this session: wait for it to finish "
                             f"(≤ {SESSION_SECONDS:g} s).")
        if len(_TRAINING_SESSIONS) >= MAX_TRAININGS:
            raise ValueError("The server is training models for other people right now; try again in a few seconds.")
        _TRAINING_SESSIONS.add(session)
    try:
        yield
    finally:
        with _TRAINING_LOCK:
            _TRAINING_SESSIONS.discard(session)


def lab2d_train(preset, drawing, seed, s: Schedule, seconds, session: str):
    """Train the MLP on these data for ``seconds`` (≤ SESSION_SECONDS), streaming the loss curve and fresh samples."""
    setting = LabData.checked(preset, seed, 2000)
    seconds = checks.finite_number("The training time in seconds", seconds, 1, SESSION_SECONDS)
    cloud = lab_data.make_points(setting.preset, lab_data.MAX_POINTS, setting.seed) if setting.preset != DRAWING \
        else setting.cloud(drawing)
    key = setting.model_key(drawing)
    with training_slot(session):
        for p in train_stream(cloud, session_config(setting.seed, seconds)):
            samples = sampling.sample_points(p.model, s, REFRESH_SAMPLES, 0, "ddim", min(20, s.T))
            status = (f"{'Done' if p.done else 'Training'}: step {p.step}, {p.elapsed_s:.1f} s, "
                      f"loss {p.losses[-1]:.4f}")
            model = {"key": key, "model": copy.deepcopy(p.model)} if p.done else gr.skip()
            use_it = "session" if p.done else gr.skip()  # the views switch to the model just trained
            yield (figures.loss_figure(p.losses, p.elapsed_s),
                   figures.points_figure(samples, f"DDIM-20 at step {p.step}"), status, model, use_it)


@user_errors
def lab2d_train_event(preset, drawing, seed, family, steps, beta_start, beta_end, cosine_s, zero_terminal_snr,
                      seconds, request: gr.Request):
    """The Train button: ``lab2d_train`` for this session (bind cannot hand a handler the gr.Request)."""
    s = ScheduleControls.parse(family, steps, beta_start, beta_end, cosine_s, zero_terminal_snr)
    yield from lab2d_train(preset, drawing, seed, s, seconds, getattr(request, "session_hash", None) or "api")


@user_errors
def lab2d_use_drawing(sketch, seed):
    """The sketch's ink as 2,000 points [[x, y], ...], and the data switched to the drawing."""
    composite = sketch.get("composite") if isinstance(sketch, dict) else sketch
    points = lab_data.drawing_points(composite, 2000, seed)
    return points.tolist(), gr.update(value=DRAWING)


# ---------------------------------------------------------------- layout and wiring

_VIEW_HTML = """
<div class="ddpm-lab2d">
  <canvas id="lab2d-canvas" width="480" height="480" aria-label="the point cloud x_t"></canvas>
  <div class="ddpm-lab2d-side">
    <table>
      <tr><th>t</th><td data-key="t">–</td></tr>
      <tr><th>ᾱ_t</th><td data-key="alpha_bar">–</td></tr>
      <tr><th>log-SNR</th><td data-key="log_snr">–</td></tr>
      <tr><th>density at t</th><td data-key="density_t">–</td></tr>
      <tr><th>arrows at t</th><td data-key="arrow_t">–</td></tr>
    </table>
    <div class="ddpm-lab2d-layers">
      <label><input type="checkbox" id="lab2d-show-density" checked> exact density q(x_t) (mixtures)</label>
      <label><input type="checkbox" id="lab2d-show-learned" checked>
        <span class="ddpm-lab2d-swatch" style="background:#222"></span>learned score −ε̂/√(1−ᾱ_t)</label>
      <label><input type="checkbox" id="lab2d-show-exact">
        <span class="ddpm-lab2d-swatch" style="background:#2ca02c"></span>exact score (mixtures)</label>
      <label><input type="checkbox" id="lab2d-show-error">
        <span class="ddpm-lab2d-swatch" style="background:#d62728"></span>error: learned − exact</label>
    </div>
  </div>
</div>
"""
_PATHS_HTML = """
<div class="ddpm-lab2d">
  <canvas id="lab2d-paths-canvas" width="480" height="480" aria-label="particles' reverse paths"></canvas>
  <div class="ddpm-lab2d-side">
    <div class="ddpm-lab2d-runs">
      <label><input type="checkbox" id="lab2d-run-ddpm" checked>
        <span class="ddpm-lab2d-swatch" style="background:#d62728"></span>DDPM (stochastic, every t)</label>
      <label><input type="checkbox" id="lab2d-run-ddim" checked>
        <span class="ddpm-lab2d-swatch" style="background:#1f77b4"></span>DDIM η = 0 (probability-flow ODE)</label>
    </div>
    <p>○ start x_T (same for both) · × end x_0 · ■ now</p>
    <p id="lab2d-scrub-label">Press “Run reverse”.</p>
  </div>
</div>
<label>x_T → x_0 <input type="range" id="lab2d-scrub" min="0" max="1000" step="1" value="1000"></label>
"""

LOAD_JS = "(scene, t) => window.ddpmLab2d.load(scene, t)"
SHOW_JS = "(t) => window.ddpmLab2d.show(t)"
PATHS_JS = "(paths) => window.ddpmLab2d.loadPaths(paths)"
SWEEP_JS = "(sweep) => window.ddpmLab2d.loadSweep(sweep)"


@dataclass(frozen=True)
class _Inputs:
    """The tab's shared controls, which every section reads."""

    preset: gr.Dropdown
    drawing: gr.JSON
    seed: gr.Number
    n_points: gr.Slider
    controls: ScheduleControls
    source: gr.Radio
    session_model: gr.State
    t_slider: gr.Slider


def _reverse_section(c: _Inputs) -> None:
    with gr.Accordion("Reverse: every particle's way home (DDPM and DDIM from the same x_T)", open=True):
        with gr.Row():
            particles = gr.Slider(10, MAX_PARTICLES, value=300, step=10, label="particles N",
                                  elem_id="lab2d-particles")
            ddim_steps = gr.Slider(5, 200, value=50, step=1, label="DDIM steps")
            run_reverse = gr.Button("Run reverse", variant="primary")
        gr.HTML(_PATHS_HTML, elem_id="lab2d-paths")
        paths_box = gr.Textbox(visible=False)
        fn, inputs = bind(lab2d_reverse, c.preset, c.drawing, c.seed, c.controls, c.source, c.session_model,
                          particles, ddim_steps)
        reverse = run_reverse.click(fn, inputs=inputs, outputs=paths_box, show_progress="minimal",
                                    api_name="lab2d_reverse")
        reverse.then(None, inputs=paths_box, js=PATHS_JS, api_name="lab2d_draw_paths")


SWEEP_NOTE = ("Classifier-free guidance $\\hat\\varepsilon = \\hat\\varepsilon_\\varnothing + "
              "w(\\hat\\varepsilon_y - \\hat\\varepsilon_\\varnothing)$ samples $\\propto q(x\\mid y)^w\\,"
              "q(x)^{1-w}$: past w = 1 the samples leave the other classes behind and crowd at the far edge "
              "of their own modes.")


def _sweep_section(c: _Inputs) -> None:
    with gr.Accordion("Guidance sweep (labelled mixtures): w = 0, 1, 3, 8", open=False):
        gr.Markdown(SWEEP_NOTE, latex_delimiters=LATEX)
        with gr.Row():
            label = gr.Number(0, label="class", precision=0, minimum=0)
            run_sweep = gr.Button("Sweep w")
        gr.HTML('<div id="lab2d-sweep"></div>', elem_id="lab2d-sweep-view")
        sweep_box = gr.Textbox(visible=False)
        fn, inputs = bind(lab2d_sweep, c.preset, c.seed, c.controls, c.source, c.session_model, label)
        sweep = run_sweep.click(fn, inputs=inputs, outputs=sweep_box, show_progress="minimal",
                                api_name="lab2d_sweep")
        sweep.then(None, inputs=sweep_box, js=SWEEP_JS, api_name="lab2d_draw_sweep")


def _train_section(c: _Inputs) -> None:
    with gr.Accordion(f"Train it yourself (≤ {SESSION_SECONDS:g} s on this CPU)", open=False):
        with gr.Row():
            seconds = gr.Slider(1, SESSION_SECONDS, value=SESSION_SECONDS, step=1, label="seconds of training")
            train_button = gr.Button("Train on these data", variant="primary")
        train_status = gr.Markdown(elem_id="lab2d-train-status")
        with gr.Row():
            loss_plot = gr.Plot(label="loss")
            samples_plot = gr.Plot(label="samples")
        # no queue limit of its own: training_slot allows one run per session (a clear message for a second) and
        # MAX_TRAININGS on the server
        train_button.click(lab2d_train_event, inputs=[c.preset, c.drawing, c.seed, *c.controls.inputs, seconds],
                           outputs=[loss_plot, samples_plot, train_status, c.session_model, c.source],
                           concurrency_limit=None, api_name="lab2d_train")


def _check_section(c: _Inputs) -> None:
    with gr.Accordion("Check: what the server computes at t", open=False):
        with gr.Row():
            points_button = gr.Button("x_t on the server")
            field_button = gr.Button("score arrows on the server")
        server_values = gr.JSON(label="server values")
        fn, inputs = bind(lab2d_points_at, c.preset, c.drawing, c.seed, c.n_points, c.controls, c.t_slider)
        points_button.click(fn, inputs=inputs, outputs=server_values, api_name="lab2d_points_at")
        fn, inputs = bind(lab2d_field_at, c.preset, c.drawing, c.seed, c.n_points, c.controls, c.source,
                          c.session_model, c.t_slider)
        field_button.click(fn, inputs=inputs, outputs=server_values, api_name="lab2d_field_at")


def build_lab2d_tab(demo: gr.Blocks) -> dict:
    """The 2-D lab's layout and events; returns its components by name (for tests)."""
    gr.Markdown(
        "A whole distribution at once. Drag **Timestep t**: every point moves as "
        "$x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\varepsilon$ (one fixed $\\varepsilon$ per "
        "point), drawn in your browser; arrows show the score $\\nabla\\log q(x_t)$ the model learnt, "
        "$-\\hat\\varepsilon/\\sqrt{1-\\bar\\alpha_t}$, and for Gaussian mixtures the exact one.",
        latex_delimiters=LATEX,
    )
    session_model = gr.State(None)  # {"key": what it learnt, "model": PointMLP} after "Train"
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            preset = gr.Dropdown([(lab_data.PRESET_LABELS[p], p) for p in PRESETS] + [("Your drawing", DRAWING)],
                                 value=DEFAULT_PRESET, label="Data", elem_id="lab2d-preset")
            drawing = gr.JSON(None, visible=False)  # the drawing's points [[x, y], ...]
            with gr.Accordion("Draw your own", open=False):
                sketch = gr.Sketchpad(label="Draw a shape: its ink becomes 2,000 points", canvas_size=(280, 280),
                                      layers=False, brush=gr.Brush(colors=["#000000"], color_mode="fixed",
                                                                   default_size=8))
                use_drawing = gr.Button("Use drawing")
            controls = ScheduleControls("linear", api_prefix="lab2d")
            with gr.Row():
                seed = gr.Number(0, label="seed (points and ε)", precision=0, minimum=0)
                n_points = gr.Slider(100, MAX_SCENE_POINTS, value=2000, step=100, label="points")
            use_drawing.click(lab2d_use_drawing, inputs=[sketch, seed], outputs=[drawing, preset],
                              api_name="lab2d_use_drawing")
            source = gr.Radio([("shipped weights", "shipped"), ("trained in this session", "session")],
                              value="shipped", label="Model")
        with gr.Column(scale=2):
            t_slider = gr.Slider(0, UI_MAX_T, value=DEFAULT_T_SHOWN, step=1, label="Timestep t", elem_id=SLIDER_ID)
            t_slider.input(None, inputs=[t_slider], js=SHOW_JS, trigger_mode="always_last", show_progress="hidden",
                           api_name="lab2d_draw_t")
            gr.HTML(_VIEW_HTML, elem_id="lab2d-view")
    c = _Inputs(preset, drawing, seed, n_points, controls, source, session_model, t_slider)
    scene_box = gr.Textbox(visible=False)
    fn, inputs = bind(lab2d_setup, preset, drawing, seed, n_points, controls, source, session_model, t_slider)
    setup = gr.on([demo.load, preset.change, drawing.change, seed.change, n_points.release, source.change,
                   session_model.change, *controls.changes], fn, inputs=inputs,
                  outputs=[scene_box, t_slider], trigger_mode="always_last", show_progress="minimal",
                  api_name="lab2d_setup")
    setup.then(None, inputs=[scene_box, t_slider], js=LOAD_JS, api_name="lab2d_draw_scene")
    _reverse_section(c)
    _sweep_section(c)
    _train_section(c)
    _check_section(c)
    return {"preset": preset, "t_slider": t_slider, "scene": scene_box, "setup": setup}

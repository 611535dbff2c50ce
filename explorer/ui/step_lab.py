"""Step microscope tab (journey 4): one reverse step under a microscope, for every frame of a small recorded run.

**Run** records one sample's reverse run in float32 (:mod:`explorer.steplab`) and sends it to the page once
(:func:`payload`): every step's images as uint8 frames, its numbers as formatted text, the spectra and the
floats the pixel inspector needs. Scrubbing the frame slider, ◀ ▶ and clicking a pixel are drawn in the page
(static/step_lab.js), no request. The LaTeX panel comes from the server when the slider is released, as the
Forward tab's does. The ``step_lab_view`` and ``step_lab_pixel`` APIs return what the page shows for a frame
and pixel (a browser test checks they are equal). **Inspect the Reverse tab's run** (``step_lab_inspect_reverse``;
build_demo hands this tab the Reverse tab's ``gr.State``) re-records that run with the same numbers
(:func:`explorer.steplab.from_reverse_run`) and shows one sample of its batch in every view; **Inspect the Reverse
tab's img2img run** (``step_lab_inspect_img2img``, the img2img ``gr.State``) does so for its last round trip, whose
true x₀ is known (:func:`explorer.steplab.from_img2img_run`).

Layout and wiring only; every number comes from explorer.steplab / posterior / spectrum / diffusion.
"""

from __future__ import annotations

import base64
import html
import json
import threading
import time
import zlib

import gradio as gr
import numpy as np
import torch

from .. import checks, plots, render
from ..data import to_uint8
from ..model import ModelProvider
from ..runs import DIGIT_LABELS, MAX_GUIDANCE, MAX_RECORDED_STEPS, MAX_SAMPLES, RunSettings
from ..samplers import DEFAULT_SPACING, SAMPLERS
from ..pca import load_basis
from ..steplab import (DEFAULTS, GUIDANCE_ROW, STARTS, StepLabRun, StepLabSettings, from_img2img_run,
                       from_reverse_run, guidance_evaluation, guidance_row, record_step_lab)
from ..trajectory_map import MAP_MAX_STEPS, trajectory_map
from .common import LATEX, image_file
from .controls import ScheduleControls, bind
from .sampling import SAMPLING, model_status, stop_switch, stopped_caption, stream_latest
from .step_lab_text import frame_rows, math_panel, numbers_html, term_labels

ROOT_ID = "steplab-view"  # static/step_lab.js looks these up
SLIDER_ID = "steplab-frame"
LOAD_JS = "(p) => window.ddpmStepLab.load(p)"
DIGITS = ("none",) + tuple(str(d) for d in range(10))  # one sample: one digit, or unconditional
START_LABELS = {"noise": "pure noise x_T (sample)", **{k: f"img2img from the test digit {k[-1]} (x₀ known)"
                                                       for k in STARTS if k != "noise"}}


class StepLabControls:
    """Schedule, sampler, DDIM steps / η, digit, guidance, seed, start (noise or a test digit) and img2img t.

    ``parse`` gives the :class:`~explorer.steplab.StepLabSettings` they describe (validated there).
    """

    NAMES = ScheduleControls.NAMES + ("sampler", "ddim_steps", "eta", "variance", "digit", "guidance", "seed", "start",
                                      "t_start")

    def __init__(self):
        d, run = DEFAULTS, DEFAULTS.run
        self.schedule = ScheduleControls(run.schedule.name, api_prefix="steplab")
        self.sampler = gr.Radio(list(SAMPLERS), value=run.sampler, label="sampler", elem_id="steplab-sampler")
        self.steps = gr.Slider(1, MAX_RECORDED_STEPS, value=run.steps, step=1, label="DDIM steps (DDPM takes all T)",
                               elem_id="steplab-steps")
        self.eta = gr.Slider(0.0, 1.0, value=run.eta, step=0.05,
                             label="DDIM η (0 = deterministic, 1 = posterior noise)")
        self.variance = gr.Radio([("σ_t² = β̃_t (posterior)", "fixed_small"), ("σ_t² = β_t", "fixed_large")],
                                 value=d.variance, label="DDPM noise variance", elem_id="steplab-variance")
        with gr.Row():
            self.digit = gr.Dropdown([(DIGIT_LABELS.get(k, k), k) for k in DIGITS], value=run.digit,
                                     label="digit class")
            self.guidance = gr.Slider(0.0, MAX_GUIDANCE, value=run.guidance, step=0.5, label="guidance w")
        with gr.Row():
            self.seed = gr.Number(run.seed, label="seed", minimum=0, step=1, elem_id="steplab-seed")
            self.start = gr.Dropdown([(v, k) for k, v in START_LABELS.items()], value=d.start, label="start from")
        self.t_start = gr.Slider(1, MAX_RECORDED_STEPS, value=d.t_start, step=1, label="img2img: noise the digit to t",
                                 elem_id="steplab-t-start")

    @property
    def inputs(self) -> list:
        return [*self.schedule.inputs, self.sampler, self.steps, self.eta, self.variance, self.digit, self.guidance,
                self.seed, self.start, self.t_start]

    def parse(self, *values) -> StepLabSettings:
        k = len(self.schedule.inputs)
        sampler, steps, eta, variance, digit, guidance, seed, start, t_start = values[k:]
        checks.one_of("digit class", digit, DIGITS)
        run = RunSettings(self.schedule.parse(*values[:k]), sampler=sampler, steps=steps, eta=eta,
                          spacing=DEFAULT_SPACING, digit=digit, guidance=guidance, seed=seed, n=1)
        return StepLabSettings(run, start=start, t_start=t_start, variance=variance)


# ---------------------------------------------------------------- what a frame shows


def _packed(a: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(np.ascontiguousarray(a).tobytes(), 1)).decode("ascii")


def payload(rec: StepLabRun) -> str:
    """Every recorded frame for the page, sent once (JSON): uint8 views, numbers, spectra, the inspector's floats."""
    n = rec.count
    h, w = rec.shape
    views = {key: _packed(rec.view_frames(key)) for key in ("x_t", "x0_hat", "eps", "term_a", "term_b", "term_noise",
                                                              "x_prev", "eps_uncond", "eps_cond", "eps_delta",
                                                              "eps_guided")}
    floats = {key: _packed(rec.floats[key][:n].astype("<f4")) for key in ("x0_hat", "mean", "q_mean")}
    floats["x_t"] = _packed(rec.x_t[:n + 1].astype("<f4"))
    if rec.x0_true is not None:
        floats["q_true_mean"] = _packed(rec.floats["q_true_mean"][:n].astype("<f4"))
        views["x0_true"] = _packed(rec.frame_images(0)["x0_true"])
    p = {
        "count": n, "h": h, "w": w, "sampler": rec.sampler, "views": views, "floats": floats,
        "numbers": [numbers_html(rec, k) for k in range(n)],
        "labels": [term_labels(rec, k) for k in range(n)],
        "t": rec.numbers["t"][:n].astype(int).tolist(),
        "sigma": rec.numbers["sigma"][:n].tolist(), "q_std": rec.numbers["q_std"][:n].tolist(),
        "spectra": {"signal": rec.spectra["signal"][:n].tolist(), "x_t": rec.spectra["x_t"][:n].tolist(),
                    "noise": rec.spectra["noise"][:n].tolist()},
        "crossover": [None if np.isnan(c) else int(c) for c in rec.numbers["crossover"][:n]],
    }
    return json.dumps(p, separators=(",", ":"))


def _require(rec) -> StepLabRun:
    if rec is None or rec.count == 0:
        raise ValueError("Nothing recorded yet: press Run first.")
    return rec


def frame_view(rec, k) -> dict:
    """Frame k as the page shows it: images (uint8 rows), term captions, numbers, spectra."""
    rec = _require(rec)
    k = rec.check_frame(k)
    head, rows = frame_rows(rec, k)
    return {"frame": k, "numbers": rec.frame_numbers(k), "heading": head, "rows": rows,
            "labels": term_labels(rec, k), "images": {key: a.tolist() for key, a in rec.frame_images(k).items()},
            "spectra": {"signal": rec.spectra["signal"][k].tolist(), "x_t": rec.spectra["x_t"][k].tolist(),
                        "noise": float(rec.spectra["noise"][k])}}


def pixel_view(rec, k, row, col) -> dict:
    """The pixel inspector at frame k: the densities' means and stds, the drawn value, the curves, the series."""
    rec = _require(rec)
    px = rec.pixel(k, row, col)
    curves = rec.density_curves(k, row, col)
    px["curves"] = {key: (None if v is None else np.asarray(v).tolist()) for key, v in curves.items()}
    return px


def step_math(rec, k) -> str:
    """The math panel at frame k (a hint before the first run: the slider can be moved before it)."""
    if rec is None or rec.count == 0:
        return "Press **Run** first: the panel shows the recorded step's numbers."
    return math_panel(rec, rec.check_frame(k))


# ---------------------------------------------------------------- runs


def run_frames(provider: ModelProvider, lab: StepLabSettings, stop: threading.Event | None = None,
               max_steps: int | None = None, source: str = ""):
    """Stream a run: yields (state, caption, frames for the page, slider, math panel); the frames once, at the end.

    Setting ``stop`` (the Stop button) ends the run normally after its current step, with what it recorded;
    ``max_steps`` records only that many steps (a stopped Reverse run's). ``source`` opens every caption."""
    model, _ = provider.get()
    started = time.perf_counter()
    rec = None
    for rec in stream_latest(record_step_lab(model, lab, max_steps), stop=stop):
        if rec.finished or rec.count == max_steps:
            break
        yield (rec, f"{source}Recording… step {rec.count} of {max_steps or rec.num_steps} "
                    f"({time.perf_counter() - started:.1f} s)", gr.skip(), gr.skip(), gr.skip())
    if rec is None or rec.count == 0:
        yield rec, source + stopped_caption(None), gr.skip(), gr.skip(), gr.skip()
        return
    rec.seconds = time.perf_counter() - started
    if rec.finished or rec.count == max_steps:
        caption = f"Done: {rec.count} steps in {rec.seconds:.2f} s — {lab.effective_run().describe(rec.num_steps)}"
        caption += " (a 1-step run: one frame to inspect)" if rec.count == 1 else ""
    else:
        caption = stopped_caption(rec)
    yield (rec, source + caption, payload(rec), gr.update(maximum=max(rec.count - 1, 1), value=0),
           math_panel(rec, 0))


def _inspected(what: str, lab: StepLabSettings, steps: int) -> str:
    """What an inspected run of the Reverse tab is: the caption's opening."""
    n, num_steps = lab.run.n, lab.num_steps()
    row, col = divmod(lab.index, render.grid_columns(n))
    source = (f"The Reverse tab's {what}, sample {lab.index} (row {row + 1}, column {col + 1} of its {n}), re-recorded "
              f"with its seed, batch, noise and precision. ")
    if steps < num_steps:
        source += f"That run was stopped after {steps} of {num_steps} steps: these are its steps. "
    return source


def inspect_reverse(provider: ModelProvider, traj, sample, stop: threading.Event | None = None):
    """Re-record sample ``sample`` of the Reverse tab's run (its Trajectory) and stream it as :func:`run_frames`."""
    lab, steps = from_reverse_run(traj, sample)
    yield from run_frames(provider, lab, stop, steps, _inspected("run", lab, steps))


def inspect_img2img(provider: ModelProvider, trip, sample, stop: threading.Event | None = None):
    """Re-record sample ``sample`` of the Reverse tab's img2img round trip (its Img2ImgRun), true x₀ known."""
    lab, steps = from_img2img_run(trip, sample)
    what = f"img2img round trip (its input noised to t = {lab.t_start}, the true x₀ known)"
    yield from run_frames(provider, lab, stop, steps, _inspected(what, lab, steps))


def guidance_lab(provider: ModelProvider, lab: StepLabSettings):
    """The guidance row (one batched run) as a labelled image, and accuracy / diversity against w from the card."""
    model, card = provider.get()
    started = time.perf_counter()
    row = guidance_row(model, lab)
    seconds = time.perf_counter() - started
    strip = render.strip([to_uint8(torch.from_numpy(x)) for x in row], labels=[f"w = {w:g}" for w in GUIDANCE_ROW],
                         min_side=84)
    caption = (f"One batched run of {len(GUIDANCE_ROW)} rows in {seconds:.2f} s (fp32): same seed and digit, "
               f"w = {', '.join(f'{w:g}' for w in GUIDANCE_ROW)}.")
    return image_file(strip, "guidance_row"), plots.guidance_evaluation_figure(guidance_evaluation(card)), caption


def trajectory_lab(provider: ModelProvider, lab: StepLabSettings, rec):
    """The trajectory map: DDPM and DDIM paths of several seeds and digits, and the recorded run if any."""
    model, _ = provider.get()
    basis = load_basis()
    started = time.perf_counter()
    tmap = trajectory_map(model, lab, basis.project)
    run_path = basis.project(rec.x_t[:rec.count + 1]) if rec is not None and rec.count else None
    caption = (f"{len(tmap.seeds)} seeds ({', '.join(map(str, tmap.seeds))}) × {len(tmap.digits)} digits "
               f"({', '.join(map(str, tmap.digits))}): each seed's x_T starts every digit's path. DDPM (fresh noise "
               f"every step, η = 1) and DDIM (deterministic, η = 0) over the same {tmap.steps} timesteps of "
               f"{lab.run.schedule.label}, w = {lab.run.guidance:g}, in {time.perf_counter() - started:.1f} s (fp32). "
               f"PCA: {basis.card.get('fitted_on', '')}.")
    return plots.trajectory_map_figure(basis.cloud, basis.cloud_labels, tmap.paths, tmap.seeds, tmap.digits,
                                       run_path), caption


# ---------------------------------------------------------------- layout and events


INTRO = ("The tutorial stops at $q(x_{t-1} \\mid x_t)$. Here is that step, for every frame of one sample's run: "
         "the posterior $q(x_{t-1}\\mid x_t, x_0)$ and how $\\hat x_0$ stands in for $x_0$, the update as a sum of "
         "its terms, the 1-D Gaussians of one pixel (click a pixel of $x_t$), what guidance changes, and the "
         "frequencies the step decides. Press **Run**, then scrub the frame.")
FIGURES = [("x_t", "x_t (click a pixel)"), ("x0_hat", "x̂₀"), ("eps", "ε̂ (±3)"), ("x0_true", "true x₀ (img2img)")]
TERMS = [("term_a", "+"), ("term_b", "+"), ("term_noise", "="), ("x_prev", "")]
GUIDED = [("eps_uncond", "ε̂_uncond (±3)"), ("eps_cond", "ε̂_cond (±3)"), ("eps_delta", "ε̂_cond − ε̂_uncond (±1)"),
          ("eps_guided", "guided ε̂ (±3)")]


def _figure(key: str, label: str) -> str:
    return (f'<figure data-fig="{key}"><figcaption data-caption="{key}">{html.escape(label)}</figcaption>'
            f'<canvas data-key="{key}" width="28" height="28" aria-label="{html.escape(label)}"></canvas></figure>')


VIEW_HTML = (
    f'<div class="ddpm-steplab" data-frame="-1">'
    f'<div class="ddpm-steplab-row">{"".join(_figure(k, v) for k, v in FIGURES)}</div>'
    '<h4>The update as a sum (each term shown over ±1)</h4>'
    '<div class="ddpm-steplab-row ddpm-steplab-sum">'
    + "".join(_figure(k, "") + (f'<span class="ddpm-steplab-op">{op}</span>' if op else "") for k, op in TERMS)
    + '</div><div class="ddpm-steplab-numbers"></div>'
    '<h4>Pixel inspector</h4><div class="ddpm-steplab-row">'
    '<figure><figcaption class="ddpm-steplab-pixel-caption">click a pixel of x_t</figcaption>'
    '<canvas data-plot="density" width="420" height="200" aria-label="densities of the pixel"></canvas></figure>'
    '<figure><figcaption>the pixel across the run: x_t (grey), x̂₀ (blue)</figcaption>'
    '<canvas data-plot="series" width="420" height="200" aria-label="the pixel across steps"></canvas></figure></div>'
    '<div class="ddpm-steplab-pixel"></div>'
    '<h4>Frequencies: the radially averaged power spectrum (log scale)</h4><div class="ddpm-steplab-row">'
    '<figure><figcaption>signal √ᾱ_t·x̂₀ (blue), x_t (grey), the noise\'s flat 1 − ᾱ_t (red)</figcaption>'
    '<canvas data-plot="spectrum" width="420" height="200" aria-label="power spectra"></canvas></figure>'
    '<div class="ddpm-steplab-spectrum-text"></div></div>'
    '<h4>Guidance at this frame</h4>'
    f'<div class="ddpm-steplab-row">{"".join(_figure(k, v) for k, v in GUIDED)}</div>'
    '</div>'
)


def build_step_lab_tab(demo: gr.Blocks, provider: ModelProvider, reverse_state: gr.State | None = None,
                       img2img_state: gr.State | None = None) -> dict:
    """The Step microscope tab: its controls, the page-drawn microscope, the math panel, the guidance row, the map.

    ``reverse_state`` (the Reverse tab's ``gr.State`` holding its run) and ``img2img_state`` (the one holding its
    img2img round trip) each add a button that inspects that run; None: no such button.
    """
    gr.Markdown(INTRO, latex_delimiters=LATEX)
    status = gr.Markdown("Loading the model…", elem_id="steplab-model-status")
    switch = stop_switch()  # made by the load event, before any click (see explorer/ui/reverse.py)
    demo.load(lambda switch: model_status(provider), inputs=switch, outputs=status, api_name="step_lab_model_status",
              show_progress="hidden")
    state = gr.State(None)  # this session's StepLabRun
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            controls = StepLabControls()
            with gr.Row():
                run_btn = gr.Button("Run", variant="primary", elem_id="steplab-run")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="steplab-stop")
            sources = {key: st for key, st in (("reverse", reverse_state), ("img2img", img2img_state))
                       if st is not None}
            if sources:
                inspect = _reverse_inspector(provider, sources, switch)
        with gr.Column(scale=2):
            caption = gr.Markdown("Press **Run** to record a run.", elem_id="steplab-caption")
            frame = gr.Slider(0, 1, value=0, step=1, label="frame (step)", elem_id=SLIDER_ID)
            with gr.Row():
                for label, elem_id, js in (("◀", "steplab-prev", "() => window.ddpmStepLab.step(-1)"),
                                           ("▶", "steplab-next", "() => window.ddpmStepLab.step(1)")):
                    gr.Button(label, size="sm", elem_id=elem_id).click(None, js=js, api_name=False, queue=False)
            # keys, the number box or the server moving the slider: draw the slider's frame in the page
            frame.change(None, js="() => window.ddpmStepLab.fromSlider()", api_name=False, queue=False,
                         trigger_mode="always_last")
            gr.HTML(VIEW_HTML, elem_id=ROOT_ID)
            frames_box = gr.Textbox(visible="hidden", elem_id="steplab-frames")
    with gr.Accordion("The math of this step, its numbers substituted", open=True):
        math = gr.Markdown(latex_delimiters=LATEX, elem_id="steplab-math")
        # typeset on release only, as the Forward tab's panel: the page's own views follow every move
        frame.release(bind(step_math, state, frame)[0], inputs=[state, frame], outputs=math,
                      trigger_mode="always_last", show_progress="hidden", api_name="step_lab_math")
    _guidance_accordion(provider, controls)
    _map_accordion(provider, controls, state)
    server_check(state, frame)
    outputs = [state, caption, frames_box, frame, math]

    def record(lab: StepLabSettings, switch):
        yield from run_frames(provider, lab, switch.start())

    fn, inputs = bind(record, controls, switch)
    run = run_btn.click(fn, inputs=inputs, outputs=outputs, api_name="step_lab_run", **SAMPLING)
    run.then(None, inputs=[frames_box], js=LOAD_JS, api_name=False, queue=False)
    if sources:
        for event in inspect(outputs):
            event.then(None, inputs=[frames_box], js=LOAD_JS, api_name=False, queue=False)
    stop_btn.click(lambda switch: switch.stop(), inputs=switch, api_name="step_lab_stop", queue=False,
                   show_progress="hidden")
    return {"state": state, "frame": frame, "controls": controls, "run": run}


# what the Reverse tab keeps -> (button, its elem_id, the handler); the API is step_lab_inspect_<key>
INSPECT = {"reverse": ("Inspect the Reverse tab's run", "steplab-inspect-reverse", inspect_reverse),
           "img2img": ("Inspect the Reverse tab's img2img run", "steplab-inspect-img2img", inspect_img2img)}


def _reverse_inspector(provider: ModelProvider, sources: dict[str, gr.State], switch: gr.State):
    """The buttons that bring the Reverse tab's run or img2img round trip (one sample of its batch) into the
    microscope; ``sources``: INSPECT's keys -> the ``gr.State`` holding that run.

    Returns a function that wires them to the tab's outputs (they are laid out after them) and returns the events."""
    with gr.Group():
        # no precision: NaN from the API reaches the check (precision=0 fails to round it, without a message)
        which = gr.Number(0, label="sample of its batch (0 = top left, then row by row)", minimum=0,
                          maximum=MAX_SAMPLES - 1, step=1, elem_id="steplab-reverse-sample")
        with gr.Row():
            buttons = {key: gr.Button(INSPECT[key][0], elem_id=INSPECT[key][1]) for key in sources}

    def wire(outputs: list) -> list:
        events = []
        for key, kept in sources.items():
            def inspect(run, sample, switch, handler=INSPECT[key][2]):
                yield from handler(provider, run, sample, switch.start())

            fn, inputs = bind(inspect, kept, which, switch)
            events.append(buttons[key].click(fn, inputs=inputs, outputs=outputs, api_name=f"step_lab_inspect_{key}",
                                             **SAMPLING))
        return events

    return wire


def _guidance_accordion(provider: ModelProvider, controls: StepLabControls) -> None:
    with gr.Accordion("Guidance lab: one seed and digit for w = 0 … 8, in one batched run", open=False):
        row_btn = gr.Button("Sample the guidance row", elem_id="steplab-guidance-run")
        row_caption = gr.Markdown(elem_id="steplab-guidance-caption")
        with gr.Row():
            row_image = gr.Image(label="final samples", interactive=False, format="png", elem_id="steplab-guidance-row")
            row_plot = gr.Plot(label="accuracy vs diversity", elem_id="steplab-guidance-plot")

        def sample_row(lab: StepLabSettings):
            return guidance_lab(provider, lab)

        fn, inputs = bind(sample_row, controls)
        row_btn.click(fn, inputs=inputs, outputs=[row_image, row_plot, row_caption], api_name="step_lab_guidance_row",
                      **SAMPLING)


def _map_accordion(provider: ModelProvider, controls: StepLabControls, state: gr.State) -> None:
    with gr.Accordion("Trajectory map: x_t paths of several seeds and digits in the digits' principal components",
                      open=False):
        map_btn = gr.Button(f"Draw the trajectory map (DDPM and DDIM, ≤ {MAP_MAX_STEPS} steps each)",
                            elem_id="steplab-map-run")
        map_caption = gr.Markdown(elem_id="steplab-map-caption")
        map_plot = gr.Plot(label="trajectory map", elem_id="steplab-map-plot")

        def draw_map(lab: StepLabSettings, rec):
            return trajectory_lab(provider, lab, rec)

        fn, inputs = bind(draw_map, controls, state)
        map_btn.click(fn, inputs=inputs, outputs=[map_plot, map_caption], api_name="step_lab_trajectory_map",
                      **SAMPLING)


def server_check(state: gr.State, frame: gr.Slider) -> None:
    """What the page draws, computed on the server: the step_lab_view / step_lab_pixel APIs."""
    with gr.Accordion("This frame computed on the server (what the step_lab_view / step_lab_pixel APIs return)",
                      open=False):
        with gr.Row():
            row = gr.Number(14, label="pixel row", precision=None, elem_id="steplab-row")
            col = gr.Number(14, label="pixel column", precision=None, elem_id="steplab-col")
            view_btn = gr.Button("Compute this frame and pixel on the server", size="sm", elem_id="steplab-server")
        server_view = gr.JSON(label="step_lab_view", elem_id="steplab-server-view")
        server_pixel = gr.JSON(label="step_lab_pixel", elem_id="steplab-server-pixel")
        view_btn.click(bind(frame_view, state, frame)[0], inputs=[state, frame], outputs=server_view,
                       api_name="step_lab_view", show_progress="hidden", queue=False)
        pixel_btn = gr.Button(visible=False)  # API only
        pixel_btn.click(bind(pixel_view, state, frame, row, col)[0], inputs=[state, frame, row, col],
                        outputs=server_pixel, api_name="step_lab_pixel", show_progress="hidden", queue=False)

"""Reverse tab, sampling (journey 3): watch the pretrained model turn noise into digits, then step through every frame.

Sampling streams frames (a generator, throttled to STREAM_INTERVAL_S) while recording every step
as uint8 frames in a per-session ``gr.State`` (:class:`explorer.trajectory.Trajectory`). Scrubbing
— the frame slider, ◀ ▶ and play — only indexes those frames: no model call, small images, and
the markers on the ᾱ_t and log-SNR plots are moved in the browser (static/reverse.js).

Layout and wiring only; every number comes from explorer.runs / samplers / trajectory / readouts.
"""

from __future__ import annotations

import base64
import html
import io
import math
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr
import numpy as np
from gradio.utils import get_upload_folder
from PIL import Image

from .. import plots, readouts
from .. import trajectory as tr
from ..model import ModelProvider
from ..runs import RunSettings
from ..schedules import Schedule
from .common import LATEX
from .controls import RunControls, bind
from .sampling import SAMPLING, format_value, model_status, recorder, stream_latest

PLAY_INTERVAL_S = 0.15
PLAY_SECONDS = 8.0  # play runs through a whole trajectory in about this long
VIEWER_CLASS = "ddpm-rev-viewer"  # static/reverse.css
PLOT_CLASS = "ddpm-rev-plot"  # the plots whose markers static/reverse.js moves
VIEW_LABELS = {"x_t": "x_t", "eps": f"predicted noise ε̂ (shown over ±{tr.EPS_DISPLAY_RANGE:g})",
               "x0_hat": "predicted clean image x̂₀"}
MOVE_MARKERS_JS = "(m) => window.ddpmReverse.moveMarkers(m)"


# ---------------------------------------------------------------- what a frame shows


def numbers_markdown(traj: tr.Trajectory, k: int) -> str:
    """The step's numbers as a Markdown table."""
    n = traj.frame_numbers(k)
    if n["is_result"]:
        head = (f"**Result x₀** — frame {k} of {n['num_frames'] - 1}, after the last step "
                f"(t = {n['t']} → {n['t_prev']})")
    else:
        head = (f"**Step {n['step']} of {n['num_steps']}** — frame {k}: "
                f"x_t at t = {n['t']}, the step goes to t_prev = {n['t_prev']}")
    rows = [
        ("ᾱ_t", n["alpha_bar_t"]), ("ᾱ_{t_prev}", n["alpha_bar_prev"]),
        ("log-SNR λ_t (the model's input)", n["log_snr"]),
        ("σ (std of the noise added)", n["sigma"]),
    ]
    if n["posterior_var"] is not None:
        rows += [("posterior variance β̃_t", n["posterior_var"]),
                 ("posterior mean coef of x̂₀", n["posterior_coef_x0"]),
                 ("posterior mean coef of x_t", n["posterior_coef_xt"])]
    table = "\n".join(f"| {name} | {format_value(v)} |" for name, v in rows)
    return f"{head}\n\n| number | value |\n|---|---|\n{table}"


def marker_json(traj: tr.Trajectory, k: int) -> dict:
    """Where the plot markers go for frame k: t and the schedule's values there (None for ±∞)."""
    t = traj.frame_t(k)
    arrays = readouts.schedule_arrays(traj.settings.schedule)
    values = {}
    for key in ("alpha_bar", "sqrt_alpha_bar", "sqrt_one_minus_alpha_bar", "beta", "log_snr"):
        v = float(arrays[key][t])
        values[key] = v if math.isfinite(v) and not (key == "beta" and v <= 0) else None
    return {"t": t, "values": values}


_FIGURES: dict[Schedule, tuple] = {}
_FIGURES_LOCK = threading.Lock()


def schedule_figures(s: Schedule):
    """(ᾱ_t figure, log-SNR figure) of a schedule, marker at t = 0; cached (building one takes ~0.1 s)."""
    with _FIGURES_LOCK:
        if s not in _FIGURES:
            if len(_FIGURES) >= 16:
                _FIGURES.pop(next(iter(_FIGURES)))
            _FIGURES[s] = (plots.coefficients_figure(s, 0), plots.log_snr_figure(s, 0))
        return _FIGURES[s]


def png_data_uri(grid: np.ndarray) -> str:
    """A uint8 grid as an inline PNG (fast zlib level: these are redrawn on every scrub)."""
    buf = io.BytesIO()
    Image.fromarray(grid, "L").save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def viewer_html(traj: tr.Trajectory, k: int) -> str:
    """x_t, ε̂ and x̂_0 of frame k side by side, as inline PNGs at native size (the browser enlarges them).

    One HTML value instead of three image files: no cache files on the server and no fetches in the
    browser, so a streamed or scrubbed frame is on screen as soon as its response arrives.
    """
    grids = traj.frame_grids(k, min_side=1)
    cells = "".join(
        f'<figure><figcaption>{html.escape(VIEW_LABELS[key])}</figcaption>'
        f'<img data-key="{key}" data-frame="{k}" src="{png_data_uri(grid)}" alt="{html.escape(VIEW_LABELS[key])}">'
        f"</figure>"
        for key, grid in zip(VIEW_LABELS, grids)
    )
    return f'<div class="{VIEWER_CLASS}">{cells}</div>'


def frame_view(traj, k):
    """Frame k of the session's run: (x_t | ε̂ | x̂_0 viewer HTML, numbers, plot markers)."""
    traj = _require(traj)
    k = traj.check_frame(k)
    return viewer_html(traj, k), numbers_markdown(traj, k), marker_json(traj, k)


def _require(traj) -> tr.Trajectory:
    if traj is None or traj.num_frames == 0:
        raise ValueError("Nothing recorded yet: press Sample first.")
    return traj


def _frame_slider(traj: tr.Trajectory, k: int):
    return gr.update(maximum=max(traj.num_frames - 1, 1), value=k)


# ---------------------------------------------------------------- handlers


def sample_frames(provider: ModelProvider, run: RunSettings):
    """Stream a run: yields (state, frame slider, x_t | ε̂ | x̂_0 viewer, numbers, caption, ᾱ plot, log-SNR plot)."""
    started = time.perf_counter()
    for traj in stream_latest(recorder(provider, run)):
        if traj.finished:
            break
        k = traj.count - 1  # the worker may add steps meanwhile; frames up to k are complete
        caption = (f"Sampling… step {k + 1} of {traj.num_steps} ({time.perf_counter() - started:.1f} s) — "
                   f"{run.describe()}")
        yield (traj, _frame_slider(traj, k), viewer_html(traj, k), numbers_markdown(traj, k), caption,
               gr.skip(), gr.skip())
    k = traj.num_frames - 1
    traj.seconds = time.perf_counter() - started
    coef_fig, snr_fig = schedule_figures(run.schedule)
    caption = f"Done: {traj.num_steps} steps in {traj.seconds:.2f} s — {run.describe()}"
    yield traj, _frame_slider(traj, k), viewer_html(traj, k), numbers_markdown(traj, k), caption, coef_fig, snr_fig


def step_frame(traj, k, delta: int):
    """Frame k + delta (kept inside the run): (frame, viewer, numbers, markers)."""
    traj = _require(traj)
    k = min(max(int(k or 0) + delta, 0), traj.num_frames - 1)
    return (k, *frame_view(traj, k))


def play_tick(traj, k):
    """Advance the playing animation; stops the timer at the last frame."""
    traj = _require(traj)
    last = traj.num_frames - 1
    k = min(int(k or 0) + max(1, round(traj.num_frames * PLAY_INTERVAL_S / PLAY_SECONDS)), last)
    # only ever switch the timer off here: a tick landing after Pause must not switch it back on
    return (k, *frame_view(traj, k), gr.Timer(active=False) if k == last else gr.skip())


def play(traj, k):
    """Start playing (from the first frame if at the end)."""
    traj = _require(traj)
    k = 0 if int(k or 0) >= traj.num_frames - 1 else int(k or 0)
    return (k, *frame_view(traj, k), gr.Timer(active=True))


def export(traj):
    """The run as an animated GIF and (if finished) the final samples as PNG."""
    traj = _require(traj)
    # in Gradio's own folder: served as they are, and deleted with the app's other temporary files
    upload_folder = Path(get_upload_folder())
    upload_folder.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="ddpm-reverse-", dir=upload_folder))
    run = traj.settings
    stem = f"{run.sampler}_{traj.num_steps}steps_seed{run.seed}"
    gif = folder / f"trajectory_{stem}.gif"
    tr.save_gif(traj, gif)
    png = None
    if traj.finished:
        png = folder / f"samples_{stem}.png"
        tr.save_final_png(traj, png)
    return str(gif), (str(png) if png else None)


# ---------------------------------------------------------------- layout and events


INTRO = ("Press **Sample**: the model starts from pure noise $x_T \\sim \\mathcal N(0, I)$ and at each step "
         "predicts the noise $\\hat\\varepsilon$ and the clean image "
         "$\\hat x_0 = (x_t - \\sqrt{1-\\bar\\alpha_t}\\,\\hat\\varepsilon)/\\sqrt{\\bar\\alpha_t}$, then steps to "
         "$x_{t_{prev}}$. Every step is recorded: step back and forth with the frame slider, ◀ ▶ or Play.")


def _scrubbing(state: gr.State, frame: gr.Slider, view_outputs: list, marker: gr.JSON) -> None:
    """◀ ▶ Play Pause and the play timer, wired under their buttons."""
    move = dict(fn=None, inputs=[marker], js=MOVE_MARKERS_JS, show_progress="hidden")
    fast = dict(show_progress="hidden", queue=False)
    timer = gr.Timer(PLAY_INTERVAL_S, active=False)
    with gr.Row():
        prev_btn = gr.Button("◀", size="sm", elem_id="reverse-prev")
        prev_btn.click(bind(lambda tj, k: step_frame(tj, k, -1), state, frame)[0], inputs=[state, frame],
                       outputs=[frame, *view_outputs], api_name="reverse_prev", **fast).then(
            **move, api_name="reverse_prev_markers")
        next_btn = gr.Button("▶", size="sm", elem_id="reverse-next")
        next_btn.click(bind(lambda tj, k: step_frame(tj, k, +1), state, frame)[0], inputs=[state, frame],
                       outputs=[frame, *view_outputs], api_name="reverse_next", **fast).then(
            **move, api_name="reverse_next_markers")
        play_btn = gr.Button("Play", size="sm", elem_id="reverse-play")
        play_btn.click(bind(play, state, frame)[0], inputs=[state, frame], outputs=[frame, *view_outputs, timer],
                       api_name="reverse_play", **fast).then(**move, api_name="reverse_play_markers")
        pause_btn = gr.Button("Pause", size="sm", elem_id="reverse-pause")
        pause_btn.click(lambda: gr.Timer(active=False), outputs=timer, api_name="reverse_pause", **fast)
    timer.tick(bind(play_tick, state, frame)[0], inputs=[state, frame], outputs=[frame, *view_outputs, timer],
               api_name="reverse_play_tick", **fast).then(**move, api_name="reverse_tick_markers")


def build_reverse_tab(demo: gr.Blocks, provider: ModelProvider, forward_controls=None) -> dict:
    """The Reverse tab's sampling feature; returns its run controls and state (the tab's other features use them).

    ``forward_controls`` (the Forward tab's ScheduleControls, or None) adds a button that copies its schedule.
    """
    gr.Markdown(INTRO, latex_delimiters=LATEX)
    status = gr.Markdown("Loading the model…", elem_id="reverse-model-status")
    state = gr.State(None)  # this session's Trajectory
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            controls = RunControls("reverse")
            if forward_controls is not None:
                copy = gr.Button("Use the Forward tab's schedule", size="sm")
                copy.click(lambda *v: v, inputs=forward_controls.inputs, outputs=controls.schedule.inputs,
                           api_name="reverse_copy_forward_schedule", show_progress="hidden")
            with gr.Row():
                sample_btn = gr.Button("Sample", variant="primary", elem_id="reverse-sample")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="reverse-stop")
        with gr.Column(scale=2):
            caption = gr.Markdown("Press **Sample** to start.", elem_id="reverse-caption")
            viewer = gr.HTML(f'<div class="{VIEWER_CLASS}"></div>', elem_id="reverse-viewer")
            frame = gr.Slider(0, 1, value=0, step=1, label="frame", elem_id="reverse-frame")
            numbers = gr.Markdown(elem_id="reverse-numbers")
            marker = gr.JSON(visible=False)
            view_outputs = [viewer, numbers, marker]
            frame.input(bind(frame_view, state, frame)[0], inputs=[state, frame], outputs=view_outputs,
                        trigger_mode="always_last", api_name="reverse_view", show_progress="hidden", queue=False
                        ).then(None, inputs=[marker], js=MOVE_MARKERS_JS, show_progress="hidden",
                               api_name="reverse_move_markers")
            _scrubbing(state, frame, view_outputs, marker)
            with gr.Row():
                coef_plot = gr.Plot(label="ᾱ_t", elem_classes=[PLOT_CLASS], elem_id="reverse-coef-plot")
                snr_plot = gr.Plot(label="log-SNR", elem_classes=[PLOT_CLASS], elem_id="reverse-logsnr-plot")
            with gr.Row():
                export_btn = gr.Button("Export GIF + PNG", size="sm", elem_id="reverse-export")
                gif_file = gr.File(label="trajectory (GIF)", elem_id="reverse-gif", interactive=False)
                png_file = gr.File(label="final samples (PNG)", elem_id="reverse-png", interactive=False)
                export_btn.click(bind(export, state)[0], inputs=state, outputs=[gif_file, png_file],
                                 api_name="reverse_export", show_progress="minimal")

    default_schedule = controls.schedule.parse(*(c.value for c in controls.schedule.inputs))
    demo.load(lambda: (model_status(provider), *schedule_figures(default_schedule)),
              outputs=[status, coef_plot, snr_plot], api_name="reverse_model_status", show_progress="hidden")

    # Sample counts its clicks into run_count, and each new count starts a run; the click also cancels the run in
    # progress, so pressing Sample during a run starts afresh (a plain click listener would ignore the press)
    def sample(run: RunSettings):
        yield from sample_frames(provider, run)

    run_count = gr.State(0)
    fn, inputs = bind(sample, controls)
    run = run_count.change(fn, inputs=inputs, outputs=[state, frame, viewer, numbers, caption, coef_plot, snr_plot],
                           api_name="reverse_sample", trigger_mode="multiple", **SAMPLING)
    sample_btn.click(lambda n: n + 1, inputs=run_count, outputs=run_count, cancels=[run], api_name="reverse_restart",
                     show_progress="hidden")
    stop_btn.click(lambda: "Stopped: the steps recorded so far can be scrubbed and exported.", outputs=caption,
                   cancels=[run], api_name="reverse_stop", show_progress="hidden")
    return {"state": state, "frame": frame, "viewer": viewer, "numbers": numbers, "caption": caption,
            "status": status, "controls": controls, "run": run}

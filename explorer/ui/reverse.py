"""Reverse tab, sampling (journey 3): watch the pretrained model turn noise into digits, then step through every frame.

Sampling records every step as uint8 frames in a per-session ``gr.State``
(:class:`explorer.trajectory.Trajectory`) and streams the new frames to the page as they are recorded
(:func:`frames_payload`, at most every STREAM_INTERVAL_S). The frame slider, ◀ ▶ and Play draw from
those frames in the browser (static/reverse.js): no request per scrub. The ``reverse_view`` API returns
the same frame computed on the server (a browser test checks the pixels are equal).

Layout and wiring only; every number comes from explorer.runs / samplers / trajectory / readouts.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import tempfile
import threading
import time
import zlib
from pathlib import Path

import gradio as gr
import numpy as np
from gradio.utils import get_upload_folder
from PIL import Image

from .. import plots, readouts
from ..render import GRID_GAP, grid_columns
from .. import trajectory as tr
from ..model import ModelProvider
from ..runs import RunSettings
from ..schedules import Schedule
from .common import LATEX
from .controls import RunControls, bind
from .sampling import SAMPLING, format_value, model_status, recorder, stop_switch, stopped_caption, stream_latest

VIEWER_CLASS = "ddpm-rev-viewer"  # static/reverse.css
PLOT_CLASS = "ddpm-rev-plot"  # the plots whose markers static/reverse.js moves
APPEND_JS = "(c) => window.ddpmReverse.append(c)"
VIEW_LABELS = {"x_t": "x_t", "eps": f"predicted noise ε̂ (shown over ±{tr.EPS_DISPLAY_RANGE:g})",
               "x0_hat": "predicted clean image x̂₀"}
# the page's viewer: three canvases and the numbers, filled by static/reverse.js
VIEWER_HTML = (f'<div class="{VIEWER_CLASS}">' + "".join(
    f'<figure><figcaption>{html.escape(label)}</figcaption><canvas data-key="{key}" width="1" height="1" '
    f'aria-label="{html.escape(label)}"></canvas></figure>' for key, label in VIEW_LABELS.items())
    + '<div class="ddpm-rev-numbers"></div></div>')


# ---------------------------------------------------------------- what a frame shows


def frame_rows(traj: tr.Trajectory, k: int) -> tuple[str, list[tuple[str, str]]]:
    """The heading and the (number, formatted value) rows of frame k's step."""
    n = traj.frame_numbers(k)
    if n["is_result"]:
        head = (f"Result x₀ — frame {k} of {n['num_frames'] - 1}, after the last step "
                f"(t = {n['t']} → {n['t_prev']})")
    else:
        head = (f"Step {n['step']} of {n['num_steps']} — frame {k}: "
                f"x_t at t = {n['t']}, the step goes to t_prev = {n['t_prev']}")
    rows = [
        ("ᾱ_t", n["alpha_bar_t"]), ("ᾱ at t_prev", n["alpha_bar_prev"]),
        ("log-SNR λ_t (the model's input)", n["log_snr"]),
        ("σ_t (std of the fresh noise z added)", n["sigma"]),
    ]
    if n["posterior_var"] is not None:
        rows += [("posterior variance β̃_t", n["posterior_var"]),
                 ("posterior mean coef of x̂₀", n["posterior_coef_x0"]),
                 ("posterior mean coef of x_t", n["posterior_coef_xt"])]
    return head, [(name, format_value(v)) for name, v in rows]


def numbers_markdown(traj: tr.Trajectory, k: int) -> str:
    """The step's numbers as a Markdown table (what the reverse_view API returns)."""
    head, rows = frame_rows(traj, k)
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"**{head}**\n\n| number | value |\n|---|---|\n{table}"


def numbers_html(traj: tr.Trajectory, k: int) -> str:
    """The same numbers as an HTML table for the page (every text escaped)."""
    head, rows = frame_rows(traj, k)
    body = "".join(f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>" for name, value in rows)
    return f"<p><strong>{html.escape(head)}</strong></p><table>{body}</table>"


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


def frames_payload(traj: tr.Trajectory, start: int = 0, end: int | None = None, preview: bool = False,
                   earlier: int | None = None) -> str:
    """Frames start … end - 1 (default: all recorded so far) of the run as JSON for the page.

    The uint8 grids of x_t, ε̂ and x̂_0 (frame k: x_t before step k; the result frame repeats the last ε̂ and
    x̂_0), zlib-compressed and base64-encoded; each frame's numbers as HTML and its plot markers. A
    ``preview`` is the newest frame while sampling; ``earlier`` adds the frames earlier … start - 1 that
    were recorded since the last preview (under "earlier"), so the page holds every frame while the run goes
    on. The worker may record more meanwhile: frames below the count read here are complete.
    """
    end = traj.num_frames if end is None else end
    payload = {"run": id(traj), "preview": preview, "finished": traj.finished, "num_steps": traj.num_steps,
               "batch": traj.batch, "h": traj.x_t.shape[2], "w": traj.x_t.shape[3], "cols": grid_columns(traj.batch),
               "gap": GRID_GAP, **_frames(traj, start, end)}
    if earlier is not None and earlier < start:
        payload["earlier"] = _frames(traj, earlier, start)
    return json.dumps(payload, separators=(",", ":"))


def _frames(traj: tr.Trajectory, start: int, end: int) -> dict:
    """Frames start … end - 1: grids (ε̂ and x̂_0 from min(start, last step)), numbers and markers."""
    steps_end = min(end, traj.num_steps)

    def packed(a: np.ndarray) -> str:
        return base64.b64encode(zlib.compress(np.ascontiguousarray(a).tobytes(), 1)).decode("ascii")

    return {"start": start, "end": end, "x_t": packed(traj.x_t[start:end]),
            "eps": packed(traj.eps[min(start, steps_end - 1):steps_end]),
            "x0_hat": packed(traj.x0_hat[min(start, steps_end - 1):steps_end]),
            "numbers": [numbers_html(traj, k) for k in range(start, end)],
            "markers": [marker_json(traj, k) for k in range(start, end)]}


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


def sample_frames(provider: ModelProvider, run: RunSettings, stop: threading.Event | None = None,
                  plotted: Schedule | None = None):
    """Stream a run: yields (state, frame slider, frames for the page, caption, ᾱ plot, log-SNR plot, plotted).

    While sampling, the page gets the newest frame to show and the frames recorded since the last one; at the
    end, the frames not sent yet, so every frame goes once. The ᾱ and log-SNR plots of the run's schedule go
    once too, with the second chunk (or the last, in a run that had no second), unless ``plotted``, the schedule
    the page's plots show, is the run's: then they stay as they are. ``plotted`` is the last item (the run's
    schedule once its plots have gone, else skipped). Setting ``stop`` ends the run after its current step, as a
    normal outcome: the frames recorded so far stay, to scrub and export.
    """
    started = time.perf_counter()
    # the run's own schedule is plotted from its first frame on, so the markers that follow the steps sit on its
    # curves (the plots held the page's first schedule until the run ended). Plots the page already shows are not
    # sent again: a run of the page's first schedule (the default Sample) sends none.
    no_plots = (gr.skip(),) * 3
    plots = no_plots if plotted == run.schedule else (*schedule_figures(run.schedule), run.schedule)
    if stop is not None and stop.is_set():  # stopped while waiting for the sampling slot
        yield gr.skip(), gr.skip(), gr.skip(), stopped_caption(None), *plots
        return
    # the first frame goes alone; the plots come once, with the second (Plotly's re-render of both took
    # 50–100 ms of the page's main thread before the first frame could be painted, and as much again at the end)
    previews = 0
    sent = 0  # the page holds frames 0 … sent - 1
    for traj in stream_latest(recorder(provider, run), stop=stop):
        if traj.finished or (stop is not None and stop.is_set()):
            continue  # the worker ends after its current step; its last item follows
        k = traj.count - 1  # the worker may add steps meanwhile; frames up to k are complete
        caption = (f"Sampling… step {k + 1} of {traj.num_steps} ({time.perf_counter() - started:.1f} s) — "
                   f"{run.describe()}")
        figures = plots if previews == 1 else no_plots
        yield (traj, gr.update(maximum=max(k, 1)), frames_payload(traj, k, k + 1, preview=True, earlier=sent),
               caption, *figures)
        previews += 1
        sent = k + 1
    traj.seconds = time.perf_counter() - started
    if traj.finished:
        caption = f"Done: {readouts.count(traj.num_steps, 'step')} in {traj.seconds:.2f} s — {run.describe()}"
    else:
        caption = f"{stopped_caption(traj)} ({run.describe()})"
    # the frames the previews did not carry (the page asks for every frame if one of them was lost: repair_btn)
    rest = frames_payload(traj, min(sent, traj.num_frames - 1))
    figures = no_plots if previews >= 2 else plots
    yield traj, _frame_slider(traj, traj.num_frames - 1), rest, caption, *figures


def recorded_frames(traj):
    """Every frame recorded so far for the page, and the caption (API only: a stopped run sends them itself)."""
    if traj is None or traj.num_frames == 0:
        return gr.skip(), stopped_caption(None)
    return frames_payload(traj), stopped_caption(traj) if not traj.finished else "Done."


def step_frame(traj, k, delta: int):
    """Frame k + delta (kept inside the run): (frame, viewer, numbers, markers)."""
    traj = _require(traj)
    k = min(max(int(k or 0) + delta, 0), traj.num_frames - 1)
    return (k, *frame_view(traj, k))


def _export_folder() -> Path:
    # in Gradio's own folder: served as they are, and deleted with the app's other temporary files
    upload_folder = Path(get_upload_folder())
    upload_folder.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="ddpm-reverse-", dir=upload_folder))


def _export_stem(traj: tr.Trajectory) -> str:
    run = traj.settings
    return f"{run.sampler}_{traj.num_steps}steps_seed{run.seed}"


def export_numbers(traj):
    """Every recorded step's numbers as a CSV file."""
    traj = _require(traj)
    path = _export_folder() / f"numbers_{_export_stem(traj)}.csv"
    tr.save_numbers_csv(traj, path)
    return str(path)


def export(traj):
    """The run as an animated GIF (x_t, ε̂, x̂₀) and (if finished) the final samples as PNG."""
    traj = _require(traj)
    folder = _export_folder()
    stem = _export_stem(traj)
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


def _scrubbing() -> None:
    """◀ ▶ Play Pause: drawn in the page from the frames it holds by its own listeners (static/reverse.js, listen),
    as are dragging, keys and typing a frame: no request, no Gradio event."""
    with gr.Row():
        for label, elem_id in (("◀", "reverse-prev"), ("▶", "reverse-next"), ("Play", "reverse-play"),
                               ("Pause", "reverse-pause")):
            gr.Button(label, size="sm", elem_id=elem_id)


def _server_check(state: gr.State, frame: gr.Slider) -> None:
    """The frame as the server computes it: the reverse_view / prev / next API, shown on request."""
    with gr.Accordion("This frame computed on the server (what the reverse_view API returns)", open=False):
        show = gr.Button("Compute this frame on the server", size="sm", elem_id="reverse-server-view")
        server_viewer = gr.HTML(elem_id="reverse-server-viewer")
        server_numbers = gr.Markdown(elem_id="reverse-numbers")
        marker = gr.JSON(visible=False)
        outputs = [server_viewer, server_numbers, marker]
        show.click(bind(frame_view, state, frame)[0], inputs=[state, frame], outputs=outputs,
                   api_name="reverse_view", show_progress="hidden", queue=False)
        for delta, name in ((-1, "reverse_prev"), (1, "reverse_next")):
            step = gr.Button(visible=False)  # API only: the page's ◀ ▶ need no server
            step.click(bind(lambda tj, k, d=delta: step_frame(tj, k, d), state, frame)[0], inputs=[state, frame],
                       outputs=[frame, *outputs], api_name=name, show_progress="hidden", queue=False)


def _exports(state: gr.State) -> None:
    """The Export button: the trajectory as a GIF, the final samples as a PNG, every step's numbers as a CSV."""
    with gr.Row():
        export_btn = gr.Button("Export GIF + PNG + CSV", size="sm", elem_id="reverse-export")
        gif_file = gr.File(label="trajectory: x_t, ε̂, x̂₀ (GIF)", elem_id="reverse-gif", interactive=False)
        png_file = gr.File(label="final samples (PNG)", elem_id="reverse-png", interactive=False)
        csv_file = gr.File(label="every step's numbers (CSV)", elem_id="reverse-csv", interactive=False)
        export_btn.click(bind(export, state)[0], inputs=state, outputs=[gif_file, png_file],
                         api_name="reverse_export", show_progress="minimal")
        export_btn.click(bind(export_numbers, state)[0], inputs=state, outputs=csv_file,
                         api_name="reverse_export_numbers", show_progress="hidden")


def build_reverse_tab(demo: gr.Blocks, provider: ModelProvider, forward_controls=None) -> dict:
    """The Reverse tab's sampling feature; returns its run controls and state (the tab's other features use them).

    ``forward_controls`` (the Forward tab's ScheduleControls, or None) adds a button that copies its schedule.
    """
    gr.Markdown(INTRO, latex_delimiters=LATEX)
    status = gr.Markdown("Loading the model…", elem_id="reverse-model-status")
    state = gr.State(None)  # this session's Trajectory
    plotted = gr.State(None)  # the schedule whose ᾱ and log-SNR plots the page shows (a run sends its own if not)
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            # first in the column, so Sample and Stop are in view on arrival (they were below the fold)
            with gr.Row():
                sample_btn = gr.Button("Sample", variant="primary", elem_id="reverse-sample")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="reverse-stop")
                # pressed by the page with every Sample press (static/reverse.js): stops the earlier run
                restart_btn = gr.Button("Stop the earlier run", elem_id="reverse-restart", elem_classes="ddpm-hidden")
            controls = RunControls("reverse")
            if forward_controls is not None:
                copy = gr.Button("Use the Forward tab's schedule", size="sm")
                copy.click(lambda *v: v, inputs=forward_controls.inputs, outputs=controls.schedule.inputs,
                           api_name="reverse_copy_forward_schedule", show_progress="hidden")
        with gr.Column(scale=2):
            caption = gr.Markdown("Press **Sample** to start.", elem_id="reverse-caption")
            viewer = gr.HTML(VIEWER_HTML, elem_id="reverse-viewer")
            frame = gr.Slider(0, 1, value=0, step=1, label="frame", elem_id="reverse-frame")
            _scrubbing()
            # the recorded frames, streamed to the page as they are recorded
            chunk = gr.Textbox(visible="hidden", elem_id="reverse-frames")
            # while sampling: the newest frame and those recorded since (a missed chunk is repaired at the end)
            chunk.change(None, inputs=[chunk], js=APPEND_JS, api_name=False, queue=False)
            # pressed by the page when the run's last chunk finds frames missing (a chunk lost on the way)
            repair_btn = gr.Button("Send every frame", elem_id="reverse-repair", elem_classes="ddpm-hidden")
            repair_btn.click(lambda traj: frames_payload(_require(traj)), inputs=state, outputs=chunk,
                             api_name=False, queue=False, show_progress="hidden")
            with gr.Row():
                coef_plot = gr.Plot(label="ᾱ_t", elem_classes=[PLOT_CLASS], elem_id="reverse-coef-plot")
                snr_plot = gr.Plot(label="log-SNR", elem_classes=[PLOT_CLASS], elem_id="reverse-logsnr-plot")
            _exports(state)
            _server_check(state, frame)

    default_schedule = controls.schedule.parse(*(c.value for c in controls.schedule.inputs))
    # The session's StopSwitch is made by the page's load event (its input), before any click: Gradio makes a
    # session's State value when a handler first asks for it, and two first asks at once (a run starting while
    # its restart press arrives) could each make one, leaving the press and Stop with a switch the run never sees.
    switch = stop_switch()
    demo.load(lambda switch: (model_status(provider), *schedule_figures(default_schedule), default_schedule),
              inputs=switch, outputs=[status, coef_plot, snr_plot, plotted], api_name="reverse_model_status",
              show_progress="hidden")

    # Sample starts a run (queued; pressing it during a run queues the next, trigger_mode "multiple"). The page
    # presses the hidden restart button with it (static/reverse.js), whose unqueued listener stops the runs of
    # earlier presses. A second listener on Sample itself would not do: Gradio's page sends one trigger's listeners
    # one after another, each once the previous one's event has ended (after the run it should stop, when it came
    # second; ~150 ms after the click, before the run could start, when it came first).

    def sample(run: RunSettings, switch, plotted):
        yield from sample_frames(provider, run, switch.start(), plotted)

    fn, inputs = bind(sample, controls, switch, plotted)
    restart_btn.click(lambda switch: switch.press(), inputs=switch, api_name="reverse_restart", queue=False,
                      show_progress="hidden", trigger_mode="multiple")
    run = sample_btn.click(fn, inputs=inputs, outputs=[state, frame, chunk, caption, coef_plot, snr_plot, plotted],
                           api_name="reverse_sample", trigger_mode="multiple", **SAMPLING)
    run.then(None, inputs=[chunk], js=APPEND_JS, api_name=False, queue=False)  # every frame, once, at the end
    # Stop ends the run after its current step; the run itself then sends what it recorded, with the caption
    stop_btn.click(lambda switch: switch.stop(), inputs=switch, api_name="reverse_stop", queue=False,
                   show_progress="hidden")
    recorded = gr.Button(visible=False)  # API only: the page gets a stopped run's frames from the run itself
    recorded.click(bind(recorded_frames, state)[0], inputs=state, outputs=[chunk, caption],
                   api_name="reverse_recorded_frames", show_progress="hidden")
    return {"state": state, "frame": frame, "viewer": viewer, "caption": caption, "status": status,
            "controls": controls, "run": run}

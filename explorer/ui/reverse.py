"""Reverse tab (journey 3): watch the pretrained model turn noise into digits, then step through every frame.

Sampling streams frames (a generator, throttled to STREAM_INTERVAL_S) while recording every step
as uint8 frames in a per-session ``gr.State`` (:class:`explorer.trajectory.Trajectory`). Scrubbing
— the frame slider, ◀ ▶ and play — only indexes those frames: no model call, small images, and
the markers on the ᾱ_t and log-SNR plots are moved in the browser (no figure is re-sent).

Layout and wiring only; every number comes from explorer.samplers / trajectory / readouts.
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
import torch
from gradio.utils import get_upload_folder
from PIL import Image

from .. import data, plots, readouts, render
from .. import trajectory as tr
from ..model import DEFAULT_CHECKPOINT, NULL_CLASS, CheckpointError, load_pretrained
from ..samplers import DEFAULT_SPACING, SAMPLERS, SPACINGS, model_eps_fn
from ..schedules import DEFAULT_T, Schedule
from .common import LATEX, ScheduleControls, image_file, schedule_from_controls, served_image_path, user_errors
from .forward import load_sketch
from .image_input import ImageInput

STREAM_INTERVAL_S = 0.5  # at most 2 streamed frames per second; every step is still recorded. Each streamed
# frame costs the server 3 PNGs and the browser 3 fetches, and slows the model (GIL, 2 cores). Measured for
# DDIM-50 × 16 on the busy 2-core machine: 0.1 s -> 4.1 s in all, 0.25 s -> 2.6 s, 0.5 s -> 2.0 s, none -> 1.5 s.
PLAY_INTERVAL_S = 0.15
PLAY_SECONDS = 8.0  # play runs through a whole trajectory in about this long
DEFAULT_SAMPLER = "ddim"
DEFAULT_STEPS = 50
DEFAULT_SAMPLES = 16
DEFAULT_GUIDANCE = 3.0  # w = 3: every evaluated digit reads as its label (w = 1: ~75%); two model calls per step
DEFAULT_IMG2IMG_T = 500
GRID_SIDE = render.DISPLAY_SIDE  # compare and img2img grids are enlarged (nearest) on the server
VIEWER_CLASS = "ddpm-rev-viewer"
VIEW_LABELS = {"x_t": "x_t", "eps": f"predicted noise ε̂ (shown over ±{tr.EPS_DISPLAY_RANGE:g})",
               "x0_hat": "predicted clean image x̂₀"}
PLOT_CLASS = "ddpm-rev-plot"
IMAGE_CLASS = "ddpm-rev-image"
DIGIT_CHOICES = [("any digit (unconditional)", "none"), ("0–9, one of each in turn", "mixed")] + [
    (str(d), str(d)) for d in range(10)
]
DEFAULT_DIGIT = "mixed"
SAMPLER_LABELS = {"ddpm": "DDPM", "ddim": "DDIM"}
COMPARE_WHAT = ("schedules", "samplers")


# ---------------------------------------------------------------- the model, loaded once per process


class ModelProvider:
    """Loads the checkpoint lazily, once per process (thread-safe); a missing checkpoint is retried later."""

    def __init__(self, loader=None):
        self._loader = loader or (lambda: load_pretrained(DEFAULT_CHECKPOINT))
        self._lock = threading.Lock()
        self._loaded = None  # (model, card)

    def get(self):
        """(model, card), or CheckpointError with a message that says what to do."""
        with self._lock:
            if self._loaded is None:
                self._loaded = self._loader()
            return self._loaded

    def status(self) -> str:
        """One line of Markdown for the tab: which model samples, or why there is none."""
        try:
            _, card = self.get()
        except CheckpointError as e:
            return f"⚠️ **No model, so nothing can be sampled.** {e}"
        steps = card.get("training", {}).get("steps_done", "?")
        return (f"Model: {card.get('parameters', '?'):,} parameters, {steps} training steps "
                f"({card.get('weights', 'weights')}).")


DEFAULT_MODEL = ModelProvider()


# ---------------------------------------------------------------- helpers (no gradio objects)


def labels_for(digit, n: int) -> torch.Tensor:
    """The class labels of n samples: 'none' (null class), 'mixed' (0, 1, …, 9, 0, …) or one digit '0'..'9'."""
    digit = str(digit) if isinstance(digit, (int, np.integer)) and not isinstance(digit, bool) else digit
    if digit == "none":
        return torch.full((n,), NULL_CLASS, dtype=torch.long)
    if digit == "mixed":
        return torch.arange(n, dtype=torch.long) % 10
    if isinstance(digit, str) and len(digit) == 1 and digit.isdigit():
        return torch.full((n,), int(digit), dtype=torch.long)
    raise ValueError(f"Unknown digit class {digit!r}; choose 0–9, 'mixed' or 'none' (unconditional).")


def _format(v) -> str:
    return "–" if v is None else readouts.format_number(v)


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
    table = "\n".join(f"| {name} | {_format(v)} |" for name, v in rows)
    return f"{head}\n\n| number | value |\n|---|---|\n{table}"


def marker_json(traj: tr.Trajectory, k: int) -> dict:
    """Where the plot markers go for frame k: t and the schedule's values there (None for ±∞)."""
    s: Schedule = traj.info["schedule"]
    t = traj.frame_t(k)
    arrays = readouts.schedule_arrays(s)
    values = {}
    for key in ("alpha_bar", "sqrt_alpha_bar", "sqrt_one_minus_alpha_bar", "beta", "log_snr"):
        v = float(arrays[key][t])
        values[key] = v if math.isfinite(v) and not (key == "beta" and v <= 0) else None
    return {"t": t, "values": values}


_FIGURES: dict[tuple, tuple] = {}
_FIGURES_LOCK = threading.Lock()


def schedule_figures(s: Schedule):
    """(ᾱ_t figure, log-SNR figure) of a schedule, marker at t = 0; cached (building one takes ~0.1 s)."""
    key = (s.name, s.T, tuple(sorted((k, str(v)) for k, v in s.params.items())))
    with _FIGURES_LOCK:
        if key not in _FIGURES:
            if len(_FIGURES) >= 16:
                _FIGURES.pop(next(iter(_FIGURES)))
            _FIGURES[key] = (plots.coefficients_figure(s, 0), plots.log_snr_figure(s, 0))
        return _FIGURES[key]


def describe_run(info: dict) -> str:
    s = info["schedule"]
    if info["sampler"] == "ddpm":
        sampler = f"DDPM, all {info['num_steps']} steps"
    else:
        sampler = f"DDIM, {info['num_steps']} steps, η = {info['eta']:g}, {info['spacing']} spacing"
    digit = dict((v, k) for k, v in DIGIT_CHOICES).get(info["digit"], info["digit"])
    return (f"{sampler} · {s.label} · digit: {digit} · guidance w = {info['guidance']:g} · seed {info['seed']} · "
            f"{info['n']} sample{'s' if info['n'] > 1 else ''}")


def stream_latest(work, interval: float):
    """Run the iterator ``work`` in a thread; yield its newest item at once, then every ``interval`` s, then its last.

    Sampling goes on while Gradio sends a streamed frame (a plain generator would pause for it).
    Closing this generator (Stop cancels the event) stops the worker after its current step.
    """
    latest, failure = [], []
    stop, done, first = threading.Event(), threading.Event(), threading.Event()

    def worker():
        try:
            for item in work:
                latest[:] = [item]
                first.set()
                if stop.is_set():
                    return
        except BaseException as e:  # handed to the consumer below
            failure.append(e)
        finally:
            done.set()
            first.set()

    thread = threading.Thread(target=worker, name="reverse-sampling", daemon=True)
    thread.start()
    try:
        first.wait()
        while not done.is_set():
            if latest:
                yield latest[0]
            done.wait(interval)
        thread.join()
        if failure:
            raise failure[0]
        if latest:
            yield latest[0]
    finally:
        stop.set()


def _frame_slider(traj: tr.Trajectory, k: int):
    return gr.update(maximum=max(traj.num_frames - 1, 1), value=k)


def _require(traj) -> tr.Trajectory:
    if traj is None or traj.num_frames == 0:
        raise ValueError("Nothing recorded yet: press Sample first.")
    return traj


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


def _view(traj: tr.Trajectory, k: int):
    return viewer_html(traj, k), numbers_markdown(traj, k), marker_json(traj, k)


# ---------------------------------------------------------------- handlers


class ReverseHandlers:
    """The tab's event handlers, bound to one model provider (tests pass a tiny random model)."""

    def __init__(self, provider: ModelProvider = DEFAULT_MODEL):
        self.provider = provider

    # -- sampling -------------------------------------------------------------------------------

    def _prepare(self, schedule_values, sampler, steps, eta, spacing, digit, guidance, seed, n_samples):
        s = schedule_from_controls(*schedule_values)
        tr.check_request(s, sampler, steps, eta, spacing, n_samples, guidance)
        n = int(n_samples)
        labels = labels_for(digit, n)
        seed = tr.check_seed(seed)
        steps = tr.planned_steps(s, sampler, int(steps) if sampler == "ddim" else 0)
        info = dict(schedule=s, sampler=sampler, num_steps=steps, eta=float(eta), spacing=spacing, digit=digit,
                    guidance=float(guidance), seed=seed, n=n)
        return s, labels, info

    def _recorder(self, s, labels, info, t_start=None, x_start=None, generator=None):
        model, _ = self.provider.get()
        if x_start is None:
            x_start, generator = tr.initial_noise(info["seed"], info["n"])
        eps_fn = model_eps_fn(model, s, labels, info["guidance"])
        return tr.record(eps_fn, s, x_start, generator, sampler=info["sampler"], steps=info["num_steps"],
                         eta=info["eta"], spacing=info["spacing"], t_start=t_start, info=info)

    def sample(self, *args, progress=gr.Progress()):
        """Stream a run: yields (state, frame slider, x_t | ε̂ | x̂_0 viewer, numbers, caption, ᾱ plot, log-SNR plot)."""
        schedule_values, rest = args[:6], args[6:]
        s, labels, info = self._prepare(schedule_values, *rest)
        started = time.perf_counter()
        for traj in stream_latest(self._recorder(s, labels, info), STREAM_INTERVAL_S):
            if traj.finished:
                break
            k = traj.count - 1  # the worker may add steps meanwhile; frames up to k are complete
            progress((k + 1, traj.num_steps), unit="steps")
            caption = (f"Sampling… step {k + 1} of {traj.num_steps} ({time.perf_counter() - started:.1f} s) — "
                       f"{describe_run(info)}")
            yield (traj, _frame_slider(traj, k), viewer_html(traj, k), numbers_markdown(traj, k), caption,
                   gr.skip(), gr.skip())
        k = traj.num_frames - 1
        elapsed = time.perf_counter() - started
        traj.info["seconds"] = elapsed
        coef_fig, snr_fig = schedule_figures(s)
        caption = f"Done: {traj.num_steps} steps in {elapsed:.2f} s — {describe_run(info)}"
        yield traj, _frame_slider(traj, k), viewer_html(traj, k), numbers_markdown(traj, k), caption, coef_fig, snr_fig

    # -- scrubbing (no model) ---------------------------------------------------------------------

    @staticmethod
    def view(traj, k):
        """Frame k of the session's run: (x_t | ε̂ | x̂_0 viewer HTML, numbers, plot markers)."""
        traj = _require(traj)
        return _view(traj, traj.check_frame(k))

    @staticmethod
    def step(traj, k, delta: int):
        traj = _require(traj)
        k = min(max(int(k or 0) + delta, 0), traj.num_frames - 1)
        return (k, *_view(traj, k))

    @staticmethod
    def play_tick(traj, k):
        """Advance the playing animation; stops the timer at the last frame."""
        traj = _require(traj)
        last = traj.num_frames - 1
        k = min(int(k or 0) + max(1, round(traj.num_frames * PLAY_INTERVAL_S / PLAY_SECONDS)), last)
        # only ever switch the timer off here: a tick landing after Pause must not switch it back on
        return (k, *_view(traj, k), gr.Timer(active=False) if k == last else gr.skip())

    @staticmethod
    def play(traj, k):
        """Start playing (from the first frame if at the end)."""
        traj = _require(traj)
        k = 0 if int(k or 0) >= traj.num_frames - 1 else int(k or 0)
        return (k, *_view(traj, k), gr.Timer(active=True))

    @staticmethod
    def export(traj):
        """The run as an animated GIF and (if finished) the final samples as PNG."""
        traj = _require(traj)
        # in Gradio's own folder: served as they are, and deleted with the app's other temporary files
        upload_folder = Path(get_upload_folder())
        upload_folder.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="ddpm-reverse-", dir=upload_folder))
        stem = f"{traj.info['sampler']}_{traj.info['num_steps']}steps_seed{traj.info['seed']}"
        gif = folder / f"trajectory_{stem}.gif"
        tr.save_gif(traj, gif)
        png = None
        if traj.finished:
            png = folder / f"samples_{stem}.png"
            tr.save_final_png(traj, png)
        return str(gif), (str(png) if png else None)

    # -- compare two runs -------------------------------------------------------------------------

    def compare(self, *args, progress=gr.Progress()):
        """Two runs from the same seed and x_T, advanced in lock-step; streams both sides.

        args: A's 6 schedule values, sampler, steps, eta, spacing, digit, guidance, seed, n,
        what ('schedules' | 'samplers'), B's 6 schedule values, B's sampler, steps, eta.
        """
        a_sched, (sampler, steps, eta, spacing, digit, guidance, seed, n) = args[:6], args[6:14]
        what, b_sched, (b_sampler, b_steps, b_eta) = args[14], args[15:21], args[21:24]
        if what not in COMPARE_WHAT:
            raise ValueError(f"Compare what? Choose one of: {', '.join(COMPARE_WHAT)}; got {what!r}.")
        s_a, labels, info_a = self._prepare(a_sched, sampler, steps, eta, spacing, digit, guidance, seed, n)
        if what == "schedules":
            s_b, _, info_b = self._prepare(b_sched, sampler, steps, eta, spacing, digit, guidance, seed, n)
        else:
            s_b, _, info_b = self._prepare(a_sched, b_sampler, b_steps, b_eta, spacing, digit, guidance, seed, n)
        runs = [self._recorder(s_a, labels, info_a), self._recorder(s_b, labels, info_b)]
        for trajs in stream_latest(lock_step(runs), STREAM_INTERVAL_S):
            counts = [t.count for t in trajs]
            if all(t.finished for t in trajs):
                yield (trajs, *self._compare_outputs(trajs, None))
                return
            progress((sum(counts), sum(t.num_steps for t in trajs)), unit="steps")
            yield (trajs, *self._compare_outputs(trajs, None, running=True, counts=counts))

    @staticmethod
    def _compare_outputs(trajs, k, running=False, counts=None):
        n = max(t.num_frames for t in trajs) if counts is None else max(counts)
        k = n - 1 if k is None else k
        images, captions = [], []
        for i, (side, traj) in enumerate(zip("AB", trajs)):
            j = compare_frame(k, n, traj.num_frames if counts is None else counts[i])
            x_t, _, x0_hat = traj.frame_grids(j, GRID_SIDE)
            images += [image_file(x_t, f"x_t_{side}"), image_file(x0_hat, f"x0_hat_{side}")]
            t = traj.frame_t(j)
            where = "result x₀" if traj.is_result(j) else f"step {j + 1} of {traj.num_steps}, t = {t}"
            state = " (running)" if running and not traj.finished else ""
            captions.append(f"**{side}: {describe_run(traj.info)}**  \n{where}{state}")
        return (gr.update(maximum=max(n - 1, 1), value=k), *images, *captions)

    @staticmethod
    def compare_view(trajs, k):
        if not trajs or None in trajs:
            raise ValueError("Nothing to compare yet: press Compare first.")
        n = max(t.num_frames for t in trajs)
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or not 0 <= k < n:
            raise ValueError(f"The frame must be a whole number from 0 to {n - 1}, got {k!r}.")
        return ReverseHandlers._compare_outputs(trajs, int(k))[1:]

    @staticmethod
    def compare_step(trajs, k, delta):
        if not trajs or None in trajs:
            raise ValueError("Nothing to compare yet: press Compare first.")
        n = max(t.num_frames for t in trajs)
        return ReverseHandlers._compare_outputs(trajs, min(max(int(k or 0) + delta, 0), n - 1))

    # -- img2img ----------------------------------------------------------------------------------

    def img2img(self, image_path, t_start, *args, progress=gr.Progress()):
        """Noise an image to t_start with q_sample, denoise from there: yields (input, noised, result, caption)."""
        schedule_values, (sampler, steps, eta, spacing, digit, guidance, seed, n) = args[:6], args[6:]
        s = schedule_from_controls(*schedule_values)
        t_start = readouts.check_timestep(s, t_start)
        if t_start < 1:
            raise ValueError("Noise to at least t = 1 (t = 0 is the clean image itself).")
        if sampler == "ddim" and isinstance(steps, (int, float)) and not isinstance(steps, bool) \
                and math.isfinite(steps) and 1 <= steps <= min(s.T, tr.MAX_RECORDED_STEPS):
            steps = tr.img2img_steps(int(steps), t_start, s.T)
        s, labels, info = self._prepare(schedule_values, sampler, steps, eta, spacing, digit, guidance, seed, n)
        if sampler == "ddpm":
            info["num_steps"] = t_start
        x0 = tr.image_to_digit_tensor(data.load_image(served_image_path(image_path)))  # (1, 1, 28, 28)
        generator = torch.Generator().manual_seed(info["seed"])
        x_start = tr.img2img_start(x0, t_start, s, info["n"], generator)
        shown_in = tr.tile(tr.to_uint8(x0), min_side=GRID_SIDE)
        shown_noised = tr.tile(tr.to_uint8(x_start), min_side=GRID_SIDE)
        work = self._recorder(s, labels, info, t_start=t_start, x_start=x_start, generator=generator)
        for traj in stream_latest(work, STREAM_INTERVAL_S):
            progress((traj.count, traj.num_steps), unit="steps")
            k = traj.count - 1
            result = tr.tile(traj.final() if traj.finished else traj.x0_hat[k], min_side=GRID_SIDE)
            what = "x₀" if traj.finished else f"x̂₀ at step {k + 1} of {traj.num_steps}"
            caption = (f"x₀ noised to t = {t_start} of {s.T} (ᾱ_t = {_format(s.alpha_bars[t_start])}), then "
                       f"{info['num_steps']} {SAMPLER_LABELS[sampler]} steps back to t = 0 — showing {what}.")
            yield image_file(shown_in, "x0"), image_file(shown_noised, "x_start"), image_file(result, "result"), caption


def lock_step(runs):
    """Advance two recorders so that both move through their runs together; yields [traj_a, traj_b] per step.

    Each step advances the side that is behind (by share of its steps), so a 1000-step DDPM run and a
    50-step DDIM run reach the middle at the same time.
    """
    trajs = [next(runs[0]), next(runs[1])]
    yield trajs
    while not all(t.finished for t in trajs):
        shares = [2.0 if t.finished else t.count / t.num_steps for t in trajs]
        i = int(np.argmin(shares))
        trajs[i] = next(runs[i])
        yield trajs


def compare_frame(k: int, n_frames: int, side_frames: int) -> int:
    """Lock-step: frame k of the longer run (n_frames) -> the frame at the same share of a run with side_frames."""
    if n_frames <= 1 or side_frames <= 1:
        return max(side_frames - 1, 0) if k >= n_frames - 1 else 0
    return int(round(k * (side_frames - 1) / (n_frames - 1)))


# ---------------------------------------------------------------- browser side

# Moves the t markers and the t line of the reverse plots: plots.py names those layout shapes
# "marker:<key>" and "vline", so a cheap Plotly.relayout redraws only them (no figure is re-sent).
MOVE_MARKERS_JS = """
(m) => {
  if (!m || !window.Plotly) return;
  // after the new frame is painted (relayout takes a while); several scrubs in one frame move the markers once
  const pending = !!window.ddpmReverseMarker;
  window.ddpmReverseMarker = m;
  if (pending) return;
  requestAnimationFrame(() => setTimeout(() => {
    const m = window.ddpmReverseMarker;
    window.ddpmReverseMarker = null;
    document.querySelectorAll('.""" + PLOT_CLASS + """ .js-plotly-plot').forEach((gd) => {
      const update = {};
      ((gd.layout && gd.layout.shapes) || []).forEach((sh, i) => {
        const name = sh.name || '';
        if (name === 'vline') { update[`shapes[${i}].x0`] = m.t; update[`shapes[${i}].x1`] = m.t; }
        else if (name.startsWith('marker:')) {
          const y = m.values[name.slice(7)];
          update[`shapes[${i}].xanchor`] = m.t;
          update[`shapes[${i}].yanchor`] = (y === null || y === undefined) ? 0 : y;
          update[`shapes[${i}].visible`] = y !== null && y !== undefined;
        }
      });
      if (Object.keys(update).length) window.Plotly.relayout(gd, update);
    });
  }, 0));
}
"""

CSS = f"""
.{IMAGE_CLASS} img {{ image-rendering: pixelated; }}
.{VIEWER_CLASS} {{ display: flex; gap: 12px; min-height: 120px; }}
.{VIEWER_CLASS} figure {{ flex: 1; margin: 0; }}
.{VIEWER_CLASS} figcaption {{ font-size: 13px; margin-bottom: 4px; }}
.{VIEWER_CLASS} img {{ width: 100%; image-rendering: pixelated; border: 1px solid #ccc; }}
"""


def _image(label: str, elem_id: str) -> gr.Image:
    return gr.Image(label=label, type="numpy", format="png", interactive=False, elem_id=elem_id,
                    elem_classes=[IMAGE_CLASS], height=260)


def build_reverse_tab(demo: gr.Blocks, forward: dict | None = None, provider: ModelProvider = DEFAULT_MODEL) -> dict:
    """The Reverse tab's layout and events; returns its components by name (for tests).

    ``forward`` is what build_forward_tab returned (to copy its schedule and image), or None.
    """
    h = ReverseHandlers(provider)
    gr.HTML(f"<style>{CSS}</style>")
    gr.Markdown(
        "Press **Sample**: the model starts from pure noise $x_T \\sim \\mathcal N(0, I)$ and at each step "
        "predicts the noise $\\hat\\varepsilon$ and the clean image "
        "$\\hat x_0 = (x_t - \\sqrt{1-\\bar\\alpha_t}\\,\\hat\\varepsilon)/\\sqrt{\\bar\\alpha_t}$, then steps to "
        "$x_{t_{prev}}$. Every step is recorded: step back and forth with the frame slider, ◀ ▶ or Play.",
        latex_delimiters=LATEX,
    )
    status = gr.Markdown("Loading the model…", elem_id="reverse-model-status")
    state = gr.State(None)  # this session's Trajectory
    compare_state = gr.State(None)  # this session's [Trajectory A, Trajectory B]

    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            controls = ScheduleControls("linear", api_prefix="reverse")
            copy_schedule = gr.Button("Use the Forward tab's schedule", size="sm") if forward else None
            with gr.Row():
                sampler = gr.Radio(list(SAMPLERS), value=DEFAULT_SAMPLER, label="sampler", elem_id="reverse-sampler")
                spacing = gr.Dropdown(list(SPACINGS), value=DEFAULT_SPACING, label="DDIM timestep spacing")
            steps = gr.Slider(1, tr.MAX_RECORDED_STEPS, value=DEFAULT_STEPS, step=1,
                              label="DDIM steps (DDPM takes all T)",
                              elem_id="reverse-steps")
            eta = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="DDIM η (0 = deterministic, 1 = DDPM-like noise)")
            with gr.Row():
                digit = gr.Dropdown(DIGIT_CHOICES, value=DEFAULT_DIGIT, label="digit class")
                guidance = gr.Slider(0.0, tr.MAX_GUIDANCE, value=DEFAULT_GUIDANCE, step=0.5,
                                     label="guidance w (0 uncond., 1 cond.)")
            with gr.Row():
                # no precision: NaN from the API reaches check_seed (precision=0 fails to round it, without a message)
                seed = gr.Number(0, label="seed", minimum=0, step=1, elem_id="reverse-seed")
                n_samples = gr.Slider(1, tr.MAX_SAMPLES, value=DEFAULT_SAMPLES, step=1, label="samples")
            with gr.Row():
                sample_btn = gr.Button("Sample", variant="primary", elem_id="reverse-sample")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="reverse-stop")
        with gr.Column(scale=2):
            caption = gr.Markdown("Press **Sample** to start.", elem_id="reverse-caption")
            viewer = gr.HTML(f'<div class="{VIEWER_CLASS}"></div>', elem_id="reverse-viewer")
            frame = gr.Slider(0, 1, value=0, step=1, label="frame", elem_id="reverse-frame")
            with gr.Row():
                prev_btn = gr.Button("◀", size="sm", elem_id="reverse-prev")
                next_btn = gr.Button("▶", size="sm", elem_id="reverse-next")
                play_btn = gr.Button("Play", size="sm", elem_id="reverse-play")
                pause_btn = gr.Button("Pause", size="sm", elem_id="reverse-pause")
            numbers = gr.Markdown(elem_id="reverse-numbers")
            with gr.Row():
                coef_plot = gr.Plot(label="ᾱ_t", elem_classes=[PLOT_CLASS], elem_id="reverse-coef-plot")
                snr_plot = gr.Plot(label="log-SNR", elem_classes=[PLOT_CLASS], elem_id="reverse-logsnr-plot")
            with gr.Row():
                export_btn = gr.Button("Export GIF + PNG", size="sm", elem_id="reverse-export")
                gif_file = gr.File(label="trajectory (GIF)", elem_id="reverse-gif", interactive=False)
                png_file = gr.File(label="final samples (PNG)", elem_id="reverse-png", interactive=False)
    marker = gr.JSON(visible=False)
    timer = gr.Timer(PLAY_INTERVAL_S, active=False)

    with gr.Accordion("Compare: same seed and x_T under two schedules or two samplers, in lock-step", open=False):
        gr.Markdown("Side A uses the settings above. Side B differs in the **schedule** (B's schedule below) or in "
                    "the **sampler** (B's sampler below); everything else, the seed and x_T included, is shared.")
        compare_what = gr.Radio(list(COMPARE_WHAT), value="schedules", label="compare two", elem_id="compare-what")
        b_controls = ScheduleControls("cosine", api_prefix="reverse_b", label="Schedule B")
        with gr.Row():
            b_sampler = gr.Radio(list(SAMPLERS), value="ddpm", label="sampler B")
            b_steps = gr.Slider(1, tr.MAX_RECORDED_STEPS, value=DEFAULT_STEPS, step=1, label="DDIM steps B")
            b_eta = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="DDIM η B")
        with gr.Row():
            compare_btn = gr.Button("Compare", variant="primary", elem_id="reverse-compare")
            compare_stop = gr.Button("Stop", variant="stop", elem_id="reverse-compare-stop")
        compare_frame_slider = gr.Slider(0, 1, value=0, step=1, label="frame (lock-step)", elem_id="compare-frame")
        with gr.Row():
            compare_prev = gr.Button("◀", size="sm", elem_id="compare-prev")
            compare_next = gr.Button("▶", size="sm", elem_id="compare-next")
        with gr.Row():
            with gr.Column():
                a_caption = gr.Markdown(elem_id="compare-a-caption")
                with gr.Row():
                    a_xt = _image("A: x_t", "compare-a-xt")
                    a_x0 = _image("A: x̂₀", "compare-a-x0")
            with gr.Column():
                b_caption = gr.Markdown(elem_id="compare-b-caption")
                with gr.Row():
                    b_xt = _image("B: x_t", "compare-b-xt")
                    b_x0 = _image("B: x̂₀", "compare-b-x0")

    with gr.Accordion("img2img round trip: noise an image to t, denoise it back", open=False):
        gr.Markdown("The idea behind Stable Diffusion's img2img *strength*: $x_t$ = q_sample($x_0$, t, ε), then the "
                    "reverse process from t (DDIM uses the share t/T of its steps). Uses the settings above.",
                    latex_delimiters=LATEX)
        with gr.Row():
            with gr.Column(scale=1):
                i2i_image = ImageInput(str(data.ASSETS_DIR / "mnist_7.png"), type="filepath", image_mode=None,
                                       format="png", label="input image", sources=["upload"], height=200,
                                       elem_id="img2img-input", elem_classes=[IMAGE_CLASS])
                gr.Examples([[str(p)] for p in data.EXAMPLES], inputs=[i2i_image], label="Bundled examples",
                            examples_per_page=len(data.EXAMPLES))
                use_forward_image = gr.Button("Use the Forward tab's image", size="sm") if forward else None
                with gr.Accordion("Draw a digit", open=False):
                    sketch = gr.Sketchpad(label="Draw a digit", canvas_size=(280, 280), layers=False,
                                          brush=gr.Brush(colors=["#000000"], color_mode="fixed", default_size=18))
                    use_sketch = gr.Button("Use drawing", size="sm")
                i2i_t = gr.Slider(1, DEFAULT_T, value=DEFAULT_IMG2IMG_T, step=1, label="noise to t (strength)",
                                  elem_id="img2img-t")
                i2i_btn = gr.Button("Noise and denoise", variant="primary", elem_id="img2img-run")
            with gr.Column(scale=2):
                i2i_caption = gr.Markdown(elem_id="img2img-caption")
                with gr.Row():
                    i2i_in = _image("input x₀ (28×28, model format)", "img2img-in")
                    i2i_noised = _image("noised x_t", "img2img-noised")
                    i2i_out = _image("denoised result", "img2img-out")

    # ------------------------------------------------------------------ events
    run_inputs = [*controls.inputs, sampler, steps, eta, spacing, digit, guidance, seed, n_samples]
    view_outputs = [viewer, numbers, marker]
    move = dict(fn=None, inputs=[marker], js=MOVE_MARKERS_JS, show_progress="hidden")
    fast = dict(show_progress="hidden", queue=False)

    default_schedule = schedule_from_controls(*[c.value for c in controls.inputs])
    demo.load(lambda: (provider.status(), *schedule_figures(default_schedule)), outputs=[status, coef_plot, snr_plot],
              api_name="reverse_model_status", show_progress="hidden")
    # one sampling run at a time (sample, compare and img2img share the slot): a run keeps a core busy, and the
    # other core must stay free for everyone's slider events (load test, 20 sliders + 4 samplers: slider p95
    # 775 ms with 2 concurrent runs, 483 ms with 1); further runs wait in the queue, streaming nothing
    sampling = dict(concurrency_id="reverse_sampling", concurrency_limit=1, show_progress="minimal")
    # Sample counts its clicks into run_count, and each new count starts a run; the click also cancels the run in
    # progress, so pressing Sample during a run starts afresh (a plain click listener would ignore the press)
    run_count = gr.State(0)
    run = run_count.change(user_errors(h.sample), inputs=run_inputs,
                           outputs=[state, frame, viewer, numbers, caption, coef_plot, snr_plot],
                           api_name="reverse_sample", trigger_mode="multiple", **sampling)
    sample_btn.click(lambda n: n + 1, inputs=run_count, outputs=run_count, cancels=[run], api_name="reverse_restart",
                     show_progress="hidden")
    stop_btn.click(lambda: "Stopped: the steps recorded so far can be scrubbed and exported.", outputs=caption,
                   cancels=[run], api_name="reverse_stop", show_progress="hidden")

    frame.input(user_errors(h.view), inputs=[state, frame], outputs=view_outputs, trigger_mode="always_last",
                api_name="reverse_view", **fast).then(**move, api_name="reverse_move_markers")
    prev_btn.click(user_errors(lambda tj, k: h.step(tj, k, -1)), inputs=[state, frame], outputs=[frame, *view_outputs],
                   api_name="reverse_prev", **fast).then(**move, api_name="reverse_prev_markers")
    next_btn.click(user_errors(lambda tj, k: h.step(tj, k, +1)), inputs=[state, frame], outputs=[frame, *view_outputs],
                   api_name="reverse_next", **fast).then(**move, api_name="reverse_next_markers")
    play_btn.click(user_errors(h.play), inputs=[state, frame], outputs=[frame, *view_outputs, timer],
                   api_name="reverse_play", **fast).then(**move, api_name="reverse_play_markers")
    pause_btn.click(lambda: gr.Timer(active=False), outputs=timer, api_name="reverse_pause", **fast)
    timer.tick(user_errors(h.play_tick), inputs=[state, frame], outputs=[frame, *view_outputs, timer],
               api_name="reverse_play_tick", **fast).then(**move, api_name="reverse_tick_markers")
    export_btn.click(user_errors(h.export), inputs=state, outputs=[gif_file, png_file], api_name="reverse_export",
                     show_progress="minimal")

    compare_inputs = [*run_inputs, compare_what, *b_controls.inputs, b_sampler, b_steps, b_eta]
    compare_outputs = [compare_frame_slider, a_xt, a_x0, b_xt, b_x0, a_caption, b_caption]
    comparing = compare_btn.click(user_errors(h.compare), inputs=compare_inputs,
                                  outputs=[compare_state, *compare_outputs],
                                  api_name="reverse_compare", **sampling)
    compare_stop.click(None, cancels=[comparing], api_name="reverse_compare_stop")
    compare_frame_slider.input(user_errors(h.compare_view), inputs=[compare_state, compare_frame_slider],
                               outputs=compare_outputs[1:], trigger_mode="always_last", api_name="reverse_compare_view",
                               **fast)
    compare_prev.click(user_errors(lambda c, k: h.compare_step(c, k, -1)), inputs=[compare_state, compare_frame_slider],
                       outputs=compare_outputs, api_name="reverse_compare_prev", **fast)
    compare_next.click(user_errors(lambda c, k: h.compare_step(c, k, +1)), inputs=[compare_state, compare_frame_slider],
                       outputs=compare_outputs, api_name="reverse_compare_next", **fast)

    i2i_btn.click(user_errors(h.img2img), inputs=[i2i_image, i2i_t, *run_inputs],
                  outputs=[i2i_in, i2i_noised, i2i_out, i2i_caption], api_name="reverse_img2img", **sampling)
    use_sketch.click(load_sketch, inputs=sketch, outputs=i2i_image, api_name="reverse_load_sketch")
    controls.T.change(img2img_range, inputs=controls.T, outputs=i2i_t, api_name="reverse_img2img_range",
                      show_progress="hidden")
    if forward:
        copy_schedule.click(lambda *v: v, inputs=forward["controls"].inputs, outputs=controls.inputs,
                            api_name="reverse_copy_forward_schedule", show_progress="hidden")
        use_forward_image.click(user_errors(served_image_path), inputs=forward["x0_image"], outputs=i2i_image,
                                api_name="reverse_use_forward_image", show_progress="hidden")
    return {"state": state, "frame": frame, "viewer": viewer, "numbers": numbers,
            "caption": caption, "status": status, "controls": controls, "compare_state": compare_state,
            "run": run, "handlers": h}


def img2img_range(T):
    """The img2img "noise to t" slider spans 1..T of the chosen schedule (unchanged while T is not a number)."""
    if isinstance(T, bool) or not isinstance(T, (int, float)) or not math.isfinite(T) or T < 1:
        return gr.skip()
    return gr.update(maximum=int(T))


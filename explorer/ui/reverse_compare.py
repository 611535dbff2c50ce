"""Reverse tab, comparison: the same seed and x_T under two schedules or two samplers, advanced in lock-step.

Side A uses the Reverse tab's run settings; side B changes the schedule or the sampler. Lock-step and the
frame mapping between runs of different lengths live in explorer.trajectory.
"""

from __future__ import annotations

import threading

import gradio as gr

from .. import checks
from .. import trajectory as tr
from ..model import ModelProvider
from ..runs import MAX_RECORDED_STEPS, RunSettings
from ..samplers import SAMPLERS
from ..schedules import Schedule
from .common import image_file
from .controls import DEFAULTS, RunControls, ScheduleControls, bind
from .sampling import GRID_SIDE, SAMPLING, digit_image, recorder, stop_switch, stream_latest

COMPARE_WHAT = ("schedules", "samplers")


def side_b(a: RunSettings, what: str, b_schedule: Schedule, b_sampler, b_steps, b_eta) -> RunSettings:
    """Side B: A with B's schedule, or A with B's sampler, steps and η."""
    if checks.one_of("comparison", what, COMPARE_WHAT) == "schedules":
        return a.replace(schedule=b_schedule)
    return a.replace(sampler=b_sampler, steps=b_steps, eta=b_eta)


def lock_step_frames(trajs) -> int:
    """How many lock-step frames there are: those of the longer run, once both have finished."""
    return max(t.num_steps for t in trajs) + 1


def side_frame(k: int, trajs, i: int) -> int:
    """Side i's frame at lock-step frame k: the same share of its whole run (finished or not)."""
    return tr.compare_frame(k, lock_step_frames(trajs), trajs[i].num_steps + 1)


def recorded_frames(trajs, counts) -> int:
    """Lock-step frames 0 … n - 1 that both sides have recorded (``counts``: each side's frames so far)."""
    n = lock_step_frames(trajs)
    while n > 1 and any(side_frame(n - 1, trajs, i) >= c for i, c in enumerate(counts)):
        n -= 1
    return n


def compare_outputs(trajs, k, state="", counts=None):
    """(frame slider, A's x_t and x̂₀, B's x_t and x̂₀, A's caption, B's caption) at lock-step frame k (None: last).

    ``counts`` (each side's frames recorded so far; default: all) limit the frames to those both sides have, so
    both captions show the same moment of their runs; ``state`` is "running", "stopped" or "" (finished).
    """
    n = recorded_frames(trajs, [t.num_frames for t in trajs] if counts is None else counts)
    k = n - 1 if k is None else k
    images, captions = [], []
    for i, (side, traj) in enumerate(zip("AB", trajs)):
        j = side_frame(k, trajs, i)
        x_t, _, x0_hat = traj.frame_grids(j, GRID_SIDE)
        images += [image_file(x_t, f"x_t_{side}"), image_file(x0_hat, f"x0_hat_{side}")]
        where = "result x₀" if traj.is_result(j) else f"step {j + 1} of {traj.num_steps}, t = {traj.frame_t(j)}"
        where = {"running": f"{where} (running)",
                 "stopped": f"Stopped at {where} — scrub or export what was recorded"}.get(state, where)
        captions.append(f"**{side}: {traj.settings.describe()}**  \n{where}")
    return (gr.update(maximum=max(n - 1, 1), value=k), *images, *captions)


def _require(trajs):
    if not trajs or None in trajs:
        raise ValueError("Nothing to compare yet: press Compare first.")
    return trajs, recorded_frames(trajs, [t.num_frames for t in trajs])


def compare_view(trajs, k):
    """Both sides at lock-step frame k (no slider update)."""
    trajs, n = _require(trajs)
    return compare_outputs(trajs, checks.whole_number("The frame", k, 0, n - 1))[1:]


def compare_step(trajs, k, delta):
    """Both sides one lock-step frame back or on."""
    trajs, n = _require(trajs)
    return compare_outputs(trajs, min(max(int(k or 0) + delta, 0), n - 1))


def compare_runs(provider: ModelProvider, a: RunSettings, b: RunSettings, stop: threading.Event | None = None):
    """Two runs from the same seed and x_T, advanced in lock-step; streams (state, slider, images, captions).

    Setting ``stop`` ends both runs after the current step, as a normal outcome: what they recorded stays.
    """
    runs = [recorder(provider, a), recorder(provider, b)]
    trajs = None
    for trajs in stream_latest(tr.lock_step(runs), stop=stop):
        if all(t.finished for t in trajs) or (stop is not None and stop.is_set()):
            continue  # the worker ends after its current step; its last item follows
        yield (trajs, *compare_outputs(trajs, None, "running", counts=[t.count for t in trajs]))
    yield (trajs, *compare_outputs(trajs, None, "" if all(t.finished for t in trajs) else "stopped"))


def build_reverse_compare(provider: ModelProvider, controls: RunControls) -> None:
    """The comparison accordion; side A reads ``controls`` (the Reverse tab's run settings)."""
    state = gr.State(None)  # this session's [Trajectory A, Trajectory B]
    with gr.Accordion("Compare: same seed and x_T under two schedules or two samplers, in lock-step", open=False):
        gr.Markdown("Side A uses the settings above. Side B differs in the **schedule** (B's schedule below) or in "
                    "the **sampler** (B's sampler below); everything else, the seed and x_T included, is shared.")
        what = gr.Radio(list(COMPARE_WHAT), value="schedules", label="compare two", elem_id="compare-what")
        b_schedule = ScheduleControls("cosine", api_prefix="reverse_b", label="Schedule B")
        with gr.Row():
            # DDIM by default: DDPM takes every one of T steps (minutes for 16 digits on a laptop CPU)
            b_sampler = gr.Radio(list(SAMPLERS), value="ddim", label="sampler B", elem_id="compare-b-sampler")
            b_steps = gr.Slider(1, MAX_RECORDED_STEPS, value=DEFAULTS.steps, step=1, label="DDIM steps B")
            b_eta = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="DDIM η B")  # A's default is η = 0
        with gr.Row():
            compare_btn = gr.Button("Compare", variant="primary", elem_id="reverse-compare")
            stop_btn = gr.Button("Stop", variant="stop", elem_id="reverse-compare-stop")
        frame = gr.Slider(0, 1, value=0, step=1, label="frame (lock-step)", elem_id="compare-frame")
        with gr.Row():
            prev_btn = gr.Button("◀", size="sm", elem_id="compare-prev")
            next_btn = gr.Button("▶", size="sm", elem_id="compare-next")
        with gr.Row():
            with gr.Column():
                a_caption = gr.Markdown(elem_id="compare-a-caption")
                with gr.Row():
                    a_xt, a_x0 = digit_image("A: x_t", "compare-a-xt"), digit_image("A: x̂₀", "compare-a-x0")
            with gr.Column():
                b_caption = gr.Markdown(elem_id="compare-b-caption")
                with gr.Row():
                    b_xt, b_x0 = digit_image("B: x_t", "compare-b-xt"), digit_image("B: x̂₀", "compare-b-x0")

    outputs = [frame, a_xt, a_x0, b_xt, b_x0, a_caption, b_caption]

    switch = stop_switch()

    def compare(a: RunSettings, what, b_sched: Schedule, b_sampler, b_steps, b_eta, switch):
        """Two runs from the same seed and x_T under A's and B's settings, streamed in lock-step."""
        stop = switch.start()
        yield from compare_runs(provider, a, side_b(a, what, b_sched, b_sampler, b_steps, b_eta), stop)

    fn, inputs = bind(compare, controls, what, b_schedule, b_sampler, b_steps, b_eta, switch)
    compare_btn.click(fn, inputs=inputs, outputs=[state, *outputs], api_name="reverse_compare", **SAMPLING)
    # Stop ends both runs after their current step; the runs then show where they stopped (no cancelled event)
    stop_btn.click(lambda switch: switch.stop(), inputs=switch, api_name="reverse_compare_stop", queue=False,
                   show_progress="hidden")
    fast = dict(show_progress="hidden", queue=False)
    frame.input(bind(compare_view, state, frame)[0], inputs=[state, frame], outputs=outputs[1:],
                trigger_mode="always_last", api_name="reverse_compare_view", **fast)
    prev_btn.click(bind(lambda c, k: compare_step(c, k, -1), state, frame)[0], inputs=[state, frame],
                   outputs=outputs, api_name="reverse_compare_prev", **fast)
    next_btn.click(bind(lambda c, k: compare_step(c, k, +1), state, frame)[0], inputs=[state, frame],
                   outputs=outputs, api_name="reverse_compare_next", **fast)

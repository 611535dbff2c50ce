"""What the Reverse tab's features share: running a recorded run on the model while frames stream, the one
sampling slot, the model's status line and the enlarged digit images. No layout of its own.
"""

from __future__ import annotations

import threading

import gradio as gr
import torch

from .. import readouts, render
from .. import trajectory as tr
from ..model import CheckpointError, ModelProvider
from ..runs import RunSettings, initial_noise
from ..samplers import model_eps_fn
from .cores import side_by_side, yield_to_events

STREAM_INTERVAL_S = 0.5  # at most 2 streamed frames per second; every step is still recorded. Each streamed
# frame costs the server 3 PNGs and the browser 3 fetches, and slows the model (GIL, 2 cores). Measured for
# DDIM-50 × 16 on the busy 2-core machine: 0.1 s -> 4.1 s in all, 0.25 s -> 2.6 s, 0.5 s -> 2.0 s, none -> 1.5 s.
GRID_SIDE = render.DISPLAY_SIDE  # compare and img2img grids are enlarged (nearest) on the server
IMAGE_CLASS = "ddpm-rev-image"  # digit grids drawn with crisp pixels (static/reverse.css)
# One sampling run at a time (sample, compare and img2img share the slot): a run keeps a core busy, and the
# other core must stay free for everyone's slider events (load test, 20 sliders + 4 samplers: slider p95
# 775 ms with 2 concurrent runs, 483 ms with 1); further runs wait in the queue, streaming nothing.
SAMPLING = dict(concurrency_id="reverse_sampling", concurrency_limit=1, show_progress="minimal")


def model_status(provider: ModelProvider) -> str:
    """One line of Markdown for the tab: which model samples, or why there is none."""
    try:
        _, card = provider.get()
    except CheckpointError as e:
        return f"⚠️ **No model, so nothing can be sampled.** {e}"
    steps = card.get("training", {}).get("steps_done", "?")
    return (f"Model: {card.get('parameters', '?'):,} parameters, {steps} training steps "
            f"({card.get('weights', 'weights')}).")


def recorder(provider: ModelProvider, run: RunSettings, t_start: int | None = None,
             x_start: torch.Tensor | None = None, generator: torch.Generator | None = None):
    """The recording generator of ``run`` on the provider's model (from x_T of the run's seed unless given)."""
    model, _ = provider.get()
    if x_start is None:
        x_start, generator = initial_noise(run.seed, run.n)
    eps_fn = model_eps_fn(model, run.schedule, run.labels, run.guidance, pair=side_by_side)
    return tr.record_run(eps_fn, run, x_start, generator, t_start=t_start)


class StopSwitch:
    """A session's Stop for its sampling runs, kept in a ``gr.State`` that the Stop click and the run share.

    Stopping is a normal end of a run: the run looks at its flag after every step and ends with what it
    recorded. (Gradio's ``cancels=`` would mark every output of the cancelled event with a red "Error".)
    A Stop pressed while the session's run still waits for the sampling slot stops that run as it starts.

    The Sample button starts a run itself (one event, no chained one); the page presses a hidden restart button
    with it, whose unqueued listener tells the switch of the press (:meth:`press`). Presses and runs are counted:
    press p stops every run started by an earlier press, whichever of the two requests reaches the server first,
    and never its own run.
    """

    def __init__(self):
        self.flag: threading.Event | None = None  # the running run's flag
        self.index = 0  # the running (or last) run's number: runs are numbered 1, 2, … as they start
        self.presses = 0  # Sample presses seen so far
        self.stop_before = 0  # runs numbered below this stop as they start (a later press or Stop came first)
        self._lock = threading.Lock()

    def __deepcopy__(self, memo) -> "StopSwitch":
        """Gradio deep-copies a State's value for each new session: a fresh switch (a lock cannot be copied)."""
        return StopSwitch()

    def start(self) -> threading.Event:
        """A run begins: its own flag (set already if Stop or a later press came while it waited)."""
        with self._lock:
            self.index += 1
            flag = threading.Event()
            if self.index < self.stop_before:
                flag.set()
            self.flag = flag
            return flag

    def stop(self) -> None:
        """The Stop button: the running run ends after its current step, and the runs still waiting as they start."""
        with self._lock:
            if self.flag is not None:
                self.flag.set()
            self.stop_before = max(self.stop_before, self.presses + 1)

    def press(self) -> None:
        """The Sample button: press p stops the run of every earlier press (running, or as it starts)."""
        with self._lock:
            self.presses += 1
            if self.flag is not None and self.index < self.presses:
                self.flag.set()
            self.stop_before = max(self.stop_before, self.presses)


def stop_switch() -> gr.State:
    """The session's StopSwitch: Gradio deep-copies a State's value for each session, and a copy is a fresh switch.

    (A class or function given as the value would instead be called by a load event on every page load, queued,
    and listed in the API as "/StopSwitch".)"""
    return gr.State(StopSwitch())


def stream_latest(work, interval: float = STREAM_INTERVAL_S, stop: threading.Event | None = None):
    """Run the iterator ``work`` in a thread; yield its newest item at once, then every ``interval`` s, then its last.

    Sampling goes on while Gradio sends a streamed frame (a plain generator would pause for it), in a thread that
    yields the CPU to everyone else's events when the cores are busy (:func:`.cores.yield_to_events`). Setting
    ``stop`` ends the work after its current item, and the last item is yielded as usual; closing this
    generator (an API client cancels the event) stops the worker too.
    """
    latest, failure = [], []
    stop = threading.Event() if stop is None else stop
    done, first = threading.Event(), threading.Event()

    def worker():
        yield_to_events()
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


def stopped_caption(traj) -> str:
    """What a stopped run says: where it stopped, and that what it recorded stays usable."""
    if traj is None or traj.count == 0:
        return "Stopped before the first step: nothing was recorded."
    return f"Stopped at step {traj.count} of {traj.num_steps} — scrub or export what was recorded."


def format_value(v) -> str:
    """A number for the tables; "–" where a sampler has none."""
    return "–" if v is None else readouts.format_number(v)


def digit_image(label: str, elem_id: str) -> gr.Image:
    """An output image of enlarged digits with crisp pixels."""
    return gr.Image(label=label, type="numpy", format="png", interactive=False, elem_id=elem_id,
                    elem_classes=[IMAGE_CLASS], height=260)

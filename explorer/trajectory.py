"""A reverse-sampling run recorded compactly, replayed without the model, exported as GIF / PNG.

Every step of :func:`explorer.samplers.reverse_loop` is kept as three uint8 frames per sample
— x_t, the predicted noise ε̂ and the predicted clean image x̂_0 — plus the step's numbers, so
scrubbing a finished run only indexes arrays (no model call). 1000 steps × 16 digits × 3 frames
× 28 × 28 bytes ≈ 37.6 MB.

Frame k < N (N = number of steps) shows step k *before* it is taken: x_t, ε̂(x_t, t), x̂_0.
Frame N, once the run has finished, shows the result x_0 (with the last step's ε̂ and x̂_0).

No gradio import: the UI layer calls these functions.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from . import checks
from .data import to_uint8
from .render import BACKGROUND, DISPLAY_SIDE, label_band_height, label_font, tile, upscale_factor
from .runs import RunSettings
from .samplers import EpsFn, StepRecord, reverse_loop
from .schedules import Schedule

EPS_DISPLAY_RANGE = 3.0  # ε̂ ~ N(0, I) is shown over [-3, 3]; x_t and x̂_0 over the image range [-1, 1]
GIF_MAX_FRAMES = 80  # a longer run is subsampled evenly (the last frame is always kept)
EXPORT_DIGIT_SIDE = 84  # exported grids enlarge each 28×28 digit (nearest) to at least this many pixels
EXPORT_GAP = 16  # between the three views of a GIF frame
GIF_FRAME_MS = 80
GIF_HOLD_LAST_MS = 1500

# per-step numbers kept for the readout; NaN where a sampler has no such number (DDIM's posterior)
NUMBER_FIELDS = ("t", "t_prev", "alpha_bar_t", "alpha_bar_prev", "sigma", "log_snr",
                 "posterior_var", "posterior_coef_x0", "posterior_coef_xt")


def frames_uint8(x: torch.Tensor, value_range: float = 1.0) -> np.ndarray:
    """(B, 1, H, W) float -> (B, H, W) uint8 frames (:func:`explorer.data.to_uint8`)."""
    return to_uint8(x, value_range)[:, 0]


@dataclass
class Trajectory:
    """All frames and numbers of one reverse run (or of the part recorded so far)."""

    x_t: np.ndarray  # (N + 1, B, H, W) uint8: x_t before each step; [N] = the result x_0
    eps: np.ndarray  # (N, B, H, W) uint8: ε̂ over [-EPS_DISPLAY_RANGE, EPS_DISPLAY_RANGE]
    x0_hat: np.ndarray  # (N, B, H, W) uint8: x̂_0 (clipped to [-1, 1])
    numbers: dict[str, np.ndarray]  # NUMBER_FIELDS -> (N,) float64
    settings: RunSettings | None = None  # what was sampled (None for runs recorded outside the app)
    count: int = 0  # steps recorded so far
    finished: bool = False
    seconds: float | None = None  # wall time of the run, once finished in the app

    @classmethod
    def empty(cls, num_steps: int, batch: int, height: int = 28, width: int = 28,
              settings: RunSettings | None = None):
        return cls(
            x_t=np.zeros((num_steps + 1, batch, height, width), np.uint8),
            eps=np.zeros((num_steps, batch, height, width), np.uint8),
            x0_hat=np.zeros((num_steps, batch, height, width), np.uint8),
            numbers={k: np.full(num_steps, np.nan) for k in NUMBER_FIELDS},
            settings=settings,
        )

    @property
    def num_steps(self) -> int:
        return self.eps.shape[0]

    @property
    def batch(self) -> int:
        return self.x_t.shape[1]

    @property
    def num_frames(self) -> int:
        """Frames that can be shown now: every recorded step, plus the result once finished."""
        return self.count + 1 if self.finished else self.count

    @property
    def nbytes(self) -> int:
        return self.x_t.nbytes + self.eps.nbytes + self.x0_hat.nbytes + sum(a.nbytes for a in self.numbers.values())

    def add(self, record: StepRecord) -> None:
        """Keep one step's frames (as uint8) and numbers."""
        i = self.count
        if i >= self.num_steps:
            raise ValueError(f"This trajectory holds {self.num_steps} steps; step {i + 1} does not fit.")
        self.x_t[i] = frames_uint8(record.x_t)
        self.eps[i] = frames_uint8(record.eps, EPS_DISPLAY_RANGE)
        self.x0_hat[i] = frames_uint8(record.x0_hat)
        for key in NUMBER_FIELDS:
            value = getattr(record, key)
            self.numbers[key][i] = np.nan if value is None else float(value)
        self.count = i + 1

    def finish(self, x0: torch.Tensor) -> None:
        """Store the result x_0 as the last frame."""
        if self.count != self.num_steps:
            raise ValueError(f"Only {self.count} of {self.num_steps} steps were recorded.")
        self.x_t[self.num_steps] = frames_uint8(x0)
        self.finished = True

    def check_frame(self, k) -> int:
        """k as an int in [0, num_frames - 1], or ValueError."""
        if self.num_frames == 0:
            raise ValueError("Nothing recorded yet: press Sample first.")
        return checks.whole_number("The frame", k, 0, self.num_frames - 1)

    def is_result(self, k: int) -> bool:
        return self.finished and k == self.num_steps

    def frame_t(self, k: int) -> int:
        """The timestep shown in frame k (0 for the result)."""
        return 0 if self.is_result(k) else int(self.numbers["t"][k])

    def frame_arrays(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x_t, ε̂, x̂_0) of frame k, each (B, H, W) uint8; the result frame repeats the last ε̂ and x̂_0."""
        k = self.check_frame(k)
        j = min(k, self.num_steps - 1)
        return self.x_t[k], self.eps[j], self.x0_hat[j]

    def frame_grids(self, k: int, min_side: int = DISPLAY_SIDE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The three grids of frame k, ready to show (uint8, upscaled to >= min_side)."""
        return tuple(tile(a, min_side=min_side) for a in self.frame_arrays(k))

    def frame_numbers(self, k: int) -> dict:
        """The numbers of frame k's step (for the result frame: t = 0 and the step that produced it)."""
        k = self.check_frame(k)
        j = min(k, self.num_steps - 1)
        out = {"frame": k, "num_frames": self.num_frames, "step": j + 1, "num_steps": self.num_steps,
               "is_result": self.is_result(k), "t_shown": self.frame_t(k)}
        for key in NUMBER_FIELDS:
            v = float(self.numbers[key][j])
            out[key] = None if math.isnan(v) else v
        for key in ("t", "t_prev"):
            if out[key] is not None:
                out[key] = int(out[key])
        return out

    def final(self) -> np.ndarray:
        """(B, H, W) uint8 result x_0."""
        if not self.finished:
            raise ValueError("The run has not finished (it was stopped or is still running).")
        return self.x_t[self.num_steps]


def record(eps_fn: EpsFn, s: Schedule, x_start: torch.Tensor, generator: torch.Generator, *,
           sampler: str = "ddim", steps: int = 50, eta: float = 0.0, spacing: str = "trailing",
           t_start: int | None = None, settings: RunSettings | None = None) -> Iterator[Trajectory]:
    """Run the reverse loop, recording every step; yields the (same, growing) Trajectory after each step.

    The last yield is the finished trajectory. Drain it with :func:`record_all` when no progress is needed.
    """
    loop = reverse_loop(eps_fn, s, x_start, generator, sampler=sampler, steps=steps, eta=eta, spacing=spacing,
                        t_start=t_start)
    num_steps = (s.T if t_start is None else int(t_start)) if sampler == "ddpm" else int(steps)
    b, _, h, w = x_start.shape
    traj = Trajectory.empty(num_steps, b, h, w, settings)
    x = x_start
    for rec in loop:
        traj.add(rec)
        x = rec.x_prev
        if traj.count < num_steps:
            yield traj
    traj.finish(x)
    yield traj


def record_all(*args, **kwargs) -> Trajectory:
    """:func:`record` drained: the finished trajectory."""
    *_, traj = record(*args, **kwargs)
    return traj


def record_run(eps_fn: EpsFn, settings: RunSettings, x_start: torch.Tensor, generator: torch.Generator,
               t_start: int | None = None) -> Iterator[Trajectory]:
    """:func:`record` of the run that ``settings`` describe (from x_start at t_start, default T)."""
    return record(eps_fn, settings.schedule, x_start, generator, t_start=t_start, settings=settings,
                  **{**settings.loop_kwargs(), "steps": settings.num_steps(t_start)})


def lock_step(runs: list[Iterator[Trajectory]]) -> Iterator[list[Trajectory]]:
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


# ---------------------------------------------------------------------------- export


def export_grid(frames: np.ndarray, digit_side: int = EXPORT_DIGIT_SIDE) -> np.ndarray:
    """(B, H, W) uint8 -> the grid as shown (at least DISPLAY_SIDE), each digit also enlarged (nearest) to at
    least ``digit_side`` pixels (a 4×4 grid shown at 224 px would give 56 px digits)."""
    grid = tile(frames, min_side=1)
    k = max(-(-digit_side // frames.shape[1]), upscale_factor((grid.shape[1], grid.shape[0]), DISPLAY_SIDE))
    return grid.repeat(k, axis=0).repeat(k, axis=1)


def _labelled(grid: np.ndarray, label: str) -> Image.Image:
    """A grid with its label centred in a band above it."""
    band = label_band_height(min(grid.shape[0], 2 * EXPORT_DIGIT_SIDE))
    im = Image.new("L", (grid.shape[1], grid.shape[0] + band), BACKGROUND)
    im.paste(Image.fromarray(grid, "L"), (0, band))
    ImageDraw.Draw(im).text((grid.shape[1] // 2, band // 2), label, fill=0, font=label_font(round(band * 0.6)),
                            anchor="mm")
    return im


def view_labels(traj: Trajectory, k: int) -> tuple[str, str, str]:
    """The labels of frame k's three views: x_t at its t (or the result x₀), ε̂ and x̂₀."""
    first = "x₀ (the result)" if traj.is_result(k) else f"x_t at t = {traj.frame_t(k)}"
    return first, f"ε̂ (predicted noise, ±{EPS_DISPLAY_RANGE:g})", "x̂₀ (predicted clean image)"


def gif_frame(traj: Trajectory, k: int, digit_side: int = EXPORT_DIGIT_SIDE) -> Image.Image:
    """x_t, ε̂ and x̂_0 of frame k side by side, each labelled; every digit at least ``digit_side`` pixels."""
    views = [_labelled(export_grid(a, digit_side), label)
             for a, label in zip(traj.frame_arrays(k), view_labels(traj, k))]
    out = Image.new("L", (sum(v.width for v in views) + EXPORT_GAP * (len(views) - 1), views[0].height), BACKGROUND)
    x = 0
    for v in views:
        out.paste(v, (x, 0))
        x += v.width + EXPORT_GAP
    return out


def gif_frame_indices(num_frames: int, max_frames: int = GIF_MAX_FRAMES) -> list[int]:
    """Evenly spaced frames, first and last included."""
    if num_frames <= max_frames:
        return list(range(num_frames))
    return sorted(set(np.rint(np.linspace(0, num_frames - 1, max_frames)).astype(int).tolist()))


def save_gif(traj: Trajectory, path, max_frames: int = GIF_MAX_FRAMES) -> None:
    """The run as an animated GIF (loops; the last frame is held)."""
    indices = gif_frame_indices(traj.num_frames, max_frames)
    if not indices:
        raise ValueError("Nothing recorded yet: press Sample first.")
    frames = [gif_frame(traj, k) for k in indices]
    durations = [GIF_FRAME_MS] * (len(frames) - 1) + [GIF_HOLD_LAST_MS]
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)


def save_final_png(traj: Trajectory, path) -> None:
    """The final samples as one PNG grid (each pixel enlarged to a crisp square, each digit ≥ EXPORT_DIGIT_SIDE)."""
    Image.fromarray(export_grid(traj.final()), "L").save(path, format="PNG", optimize=True)


CSV_FIELDS = ("step",) + NUMBER_FIELDS  # the columns of save_numbers_csv


def save_numbers_csv(traj: Trajectory, path) -> None:
    """Every recorded step's numbers, one row per step (empty where a sampler has no such number)."""
    if traj.count == 0:
        raise ValueError("Nothing recorded yet: press Sample first.")
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        for i in range(traj.count):
            row = [i + 1]
            for key in NUMBER_FIELDS:
                v = float(traj.numbers[key][i])
                row.append("" if math.isnan(v) else int(v) if key in ("t", "t_prev") else repr(v))
            writer.writerow(row)

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

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageDraw

from .diffusion import X0_RANGE, q_sample
from .render import BACKGROUND, DISPLAY_SIDE, upscale_factor
from .samplers import SAMPLERS, SPACINGS, EpsFn, StepRecord, reverse_loop
from .schedules import Schedule

EPS_DISPLAY_RANGE = 3.0  # ε̂ ~ N(0, I) is shown over [-3, 3]; x_t and x̂_0 over the image range [-1, 1]
MAX_SAMPLES = 16  # samples per request (one 4×4 grid)
MAX_RECORDED_STEPS = 1000  # steps per run: caps work per request and the memory of a trajectory
MAX_GUIDANCE = 20.0
GIF_MAX_FRAMES = 80  # a longer run is subsampled evenly (the last frame is always kept)
GIF_FRAME_MS = 80
GIF_HOLD_LAST_MS = 1500
GRID_GAP = 2

# per-step numbers kept for the readout; NaN where a sampler has no such number (DDIM's posterior)
NUMBER_FIELDS = ("t", "t_prev", "alpha_bar_t", "alpha_bar_prev", "sigma", "log_snr",
                 "posterior_var", "posterior_coef_x0", "posterior_coef_xt")


def to_uint8(x: torch.Tensor, value_range: float = 1.0) -> np.ndarray:
    """(B, 1, H, W) float -> (B, H, W) uint8 with [-value_range, value_range] mapped to 0..255.

    For value_range = 1 this is :func:`explorer.data.tensor_to_uint8` of each sample (clip to
    [-1, 1], scale, round half to even in float32), batched.
    """
    x = x.detach().to(torch.float32)
    if value_range != 1.0:
        x = x / value_range
    lo, hi = X0_RANGE
    u = ((x.clamp(lo, hi) - lo) * (255.0 / (hi - lo))).round().to(torch.uint8)  # (B, 1, H, W)
    return u[:, 0].numpy()


def grid_columns(n: int) -> int:
    """Columns of a near-square grid of n images (16 -> 4, 2 -> 2, 5 -> 3)."""
    return max(1, math.ceil(math.sqrt(n)))


def tile(frames: np.ndarray, ncols: int | None = None, gap: int = GRID_GAP, min_side: int = DISPLAY_SIDE) -> np.ndarray:
    """(B, H, W) uint8 -> one (rows·H, cols·W) uint8 grid with white gaps, upscaled (nearest) to >= min_side."""
    b, h, w = frames.shape
    ncols = ncols or grid_columns(b)
    nrows = -(-b // ncols)
    out = np.full((nrows * (h + gap) - gap, ncols * (w + gap) - gap), BACKGROUND, dtype=np.uint8)
    for i in range(b):
        r, c = divmod(i, ncols)
        out[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = frames[i]
    k = upscale_factor((out.shape[1], out.shape[0]), min_side)
    return out if k == 1 else out.repeat(k, axis=0).repeat(k, axis=1)


@dataclass
class Trajectory:
    """All frames and numbers of one reverse run (or of the part recorded so far)."""

    x_t: np.ndarray  # (N + 1, B, H, W) uint8: x_t before each step; [N] = the result x_0
    eps: np.ndarray  # (N, B, H, W) uint8: ε̂ over [-EPS_DISPLAY_RANGE, EPS_DISPLAY_RANGE]
    x0_hat: np.ndarray  # (N, B, H, W) uint8: x̂_0 (clipped to [-1, 1])
    numbers: dict[str, np.ndarray]  # NUMBER_FIELDS -> (N,) float64
    info: dict = field(default_factory=dict)  # what was sampled: schedule label, sampler, seed, labels, ...
    count: int = 0  # steps recorded so far
    finished: bool = False

    @classmethod
    def empty(cls, num_steps: int, batch: int, height: int = 28, width: int = 28, info: dict | None = None):
        return cls(
            x_t=np.zeros((num_steps + 1, batch, height, width), np.uint8),
            eps=np.zeros((num_steps, batch, height, width), np.uint8),
            x0_hat=np.zeros((num_steps, batch, height, width), np.uint8),
            numbers={k: np.full(num_steps, np.nan) for k in NUMBER_FIELDS},
            info=dict(info or {}),
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
        self.x_t[i] = to_uint8(record.x_t)
        self.eps[i] = to_uint8(record.eps, EPS_DISPLAY_RANGE)
        self.x0_hat[i] = to_uint8(record.x0_hat)
        for key in NUMBER_FIELDS:
            value = getattr(record, key)
            self.numbers[key][i] = np.nan if value is None else float(value)
        self.count = i + 1

    def finish(self, x0: torch.Tensor) -> None:
        """Store the result x_0 as the last frame."""
        if self.count != self.num_steps:
            raise ValueError(f"Only {self.count} of {self.num_steps} steps were recorded.")
        self.x_t[self.num_steps] = to_uint8(x0)
        self.finished = True

    def check_frame(self, k) -> int:
        """k as an int in [0, num_frames - 1], or ValueError."""
        n = self.num_frames
        if n == 0:
            raise ValueError("Nothing recorded yet: press Sample first.")
        if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)) or not math.isfinite(k) \
                or k != int(k) or not 0 <= int(k) < n:
            raise ValueError(f"The frame must be a whole number from 0 to {n - 1}, got {k!r}.")
        return int(k)

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
           t_start: int | None = None, info: dict | None = None) -> Iterator[Trajectory]:
    """Run the reverse loop, recording every step; yields the (same, growing) Trajectory after each step.

    The last yield is the finished trajectory. Drain it with :func:`record_all` when no progress is needed.
    """
    loop = reverse_loop(eps_fn, s, x_start, generator, sampler=sampler, steps=steps, eta=eta, spacing=spacing,
                        t_start=t_start)
    num_steps = planned_steps(s, sampler, steps, t_start)
    b, _, h, w = x_start.shape
    traj = Trajectory.empty(num_steps, b, h, w, info)
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


def planned_steps(s: Schedule, sampler: str, steps: int, t_start: int | None = None) -> int:
    """How many steps a run makes: t_start (default T) for DDPM, ``steps`` for DDIM."""
    if sampler == "ddpm":
        return s.T if t_start is None else int(t_start)
    return int(steps)


def img2img_steps(steps: int, t_start: int, T: int) -> int:
    """DDIM steps for a run from t_start: the share t_start / T of ``steps`` (as diffusers' img2img "strength")."""
    return max(1, min(t_start, round(steps * t_start / T)))


def check_request(s: Schedule, sampler, steps, eta, spacing, n_samples, guidance) -> None:
    """Readable ValueErrors for anything a run cannot do (also caps the work of one request)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler!r}; choose one of: {', '.join(SAMPLERS)}.")
    if spacing not in SPACINGS:
        raise ValueError(f"Unknown timestep spacing {spacing!r}; choose one of: {', '.join(SPACINGS)}.")
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, float)) or not math.isfinite(n_samples) \
            or n_samples != int(n_samples) or not 1 <= n_samples <= MAX_SAMPLES:
        raise ValueError(f"The number of samples must be a whole number from 1 to {MAX_SAMPLES}, got {n_samples!r}.")
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not math.isfinite(guidance) \
            or not 0 <= guidance <= MAX_GUIDANCE:
        raise ValueError(f"The guidance scale must be a number from 0 to {MAX_GUIDANCE:g}, got {guidance!r}.")
    if sampler == "ddpm":
        if s.T > MAX_RECORDED_STEPS:
            raise ValueError(f"DDPM takes every one of the T = {s.T} steps; the app records at most "
                             f"{MAX_RECORDED_STEPS}. Use T ≤ {MAX_RECORDED_STEPS} or DDIM.")
        return
    if isinstance(steps, bool) or not isinstance(steps, (int, float)) or not math.isfinite(steps) \
            or steps != int(steps) or not 1 <= steps <= min(s.T, MAX_RECORDED_STEPS):
        raise ValueError(f"DDIM steps must be a whole number from 1 to {min(s.T, MAX_RECORDED_STEPS)} "
                         f"(at most T = {s.T}), got {steps!r}.")
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not math.isfinite(eta) or not 0 <= eta <= 1:
        raise ValueError(f"η must be a number from 0 to 1, got {eta!r}.")


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, float, np.integer, np.floating)) \
            or not math.isfinite(seed) or seed != int(seed) or not 0 <= seed < 2**63:
        raise ValueError(f"The seed must be a whole number from 0 to 2^63 − 1, got {seed!r}.")
    return int(seed)


def initial_noise(seed: int, n: int, shape: tuple[int, ...] = (1, 28, 28)) -> tuple[torch.Tensor, torch.Generator]:
    """x_T ~ N(0, I) for ``n`` samples from ``seed``, and the generator that then drives the sampler's noise.

    The same seed gives the same x_T whatever the schedule or sampler, so two runs can be compared.
    """
    generator = torch.Generator().manual_seed(check_seed(seed))
    return torch.randn((n, *shape), generator=generator), generator


# ---------------------------------------------------------------------------- img2img


def image_to_digit_tensor(im: Image.Image) -> torch.Tensor:
    """Any decoded image -> the model's input format: (1, 1, 28, 28) float32 in [-1, 1].

    Grayscale, resized to 28×28; a light background (mean above mid-gray) is inverted so that
    the strokes are white on black, like the MNIST training digits.
    """
    gray = im.convert("L")
    if gray.size != (28, 28):
        gray = gray.resize((28, 28), Image.Resampling.LANCZOS)
    arr = np.asarray(gray, dtype=np.float32) / 255.0  # (28, 28) in [0, 1]
    if arr.mean() > 0.5:
        arr = 1.0 - arr
    lo, hi = X0_RANGE
    return torch.from_numpy(arr * (hi - lo) + lo)[None, None]


def img2img_start(x0: torch.Tensor, t_start: int, s: Schedule, n: int, generator: torch.Generator) -> torch.Tensor:
    """x_{t_start} = √ᾱ_t·x_0 + √(1-ᾱ_t)·ε for ``n`` copies of x_0 (each its own ε): q_sample."""
    noise = torch.randn((n, *x0.shape[1:]), generator=generator)
    return q_sample(x0.expand(n, *x0.shape[1:]), t_start, noise, s)


# ---------------------------------------------------------------------------- export


def _labelled(grid: np.ndarray, label: str) -> Image.Image:
    im = Image.new("L", (grid.shape[1], grid.shape[0] + 14), BACKGROUND)
    im.paste(Image.fromarray(grid, "L"), (0, 0))
    ImageDraw.Draw(im).text((2, grid.shape[0] + 1), label, fill=0)
    return im


def gif_frame(traj: Trajectory, k: int, min_side: int = 112) -> Image.Image:
    """x_t and x̂_0 of frame k side by side, labelled with t."""
    x_t, _, x0_hat = traj.frame_arrays(k)
    t = traj.frame_t(k)
    left = _labelled(tile(x_t, min_side=min_side), f"x_t  t = {t}" if not traj.is_result(k) else "x_0 (result)")
    right = _labelled(tile(x0_hat, min_side=min_side), "predicted x_0")
    out = Image.new("L", (left.width + right.width + 8, left.height), BACKGROUND)
    out.paste(left, (0, 0))
    out.paste(right, (left.width + 8, 0))
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
    """The final samples as one PNG grid (each pixel enlarged to a crisp square)."""
    Image.fromarray(tile(traj.final()), "L").save(path, format="PNG")

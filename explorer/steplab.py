"""One reverse run of the digit model kept in float32 at every step, to put the step itself under a microscope.

Where :mod:`explorer.trajectory` keeps uint8 frames of many samples, this keeps ONE sample's floats:
x_t, ε̂ (and its conditional / unconditional parts), x̂_0, the noise z drawn, the update's terms
(:attr:`explorer.diffusion.StepOutput.terms`, whose sum is x_{t_prev}), the posterior
q(x_{t_prev} | x_t, x̂_0) and — for a run started from a known digit (img2img) — q(x_{t_prev} | x_t, x_0),
and the power spectra of the frame. Step k of the run is frame k. A run stopped halfway keeps the steps
recorded so far. Nothing here is a new formula: it calls :mod:`explorer.diffusion`, :mod:`explorer.samplers`,
:mod:`explorer.posterior` and :mod:`explorer.spectrum`. No gradio import.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from . import checks, data
from .diffusion import DDPM_VARIANCES, classifier_free_guidance, ddim_coefficients, ddpm_variances, q_sample
from .model import NULL_CLASS
from .posterior import gaussian_density, q_posterior_between
from .runs import Img2ImgRun, RunSettings, image_to_digit_tensor, img2img_run, img2img_start, initial_noise
from .samplers import PRECISIONS, model_eps_fn, reverse_loop, sampling_schedule
from .schedules import DEFAULT_T, Schedule, make_schedule
from .spectrum import crossover_frequency, radial_power_spectrum

# where a run starts: pure noise x_T, or a bundled MNIST digit noised to t_start (img2img: x_0 is known)
DIGIT_STARTS = {p.stem: p for p in data.EXAMPLES if p.stem.startswith("mnist_")}
STARTS = ("noise", *DIGIT_STARTS)
IMAGE_START = "image"  # a given x_0: the Reverse tab's img2img round trip (its input, as the model saw it)
PRECISION = "fp32"  # the microscope's own numbers are reproducible on any CPU
# The Reverse tab samples with model_eps_fn's default precision (ui/sampling.recorder): a run of it is re-recorded
# so, for the same numbers (bfloat16 where the CPU runs it natively).
REVERSE_PRECISION = "auto"
GUIDANCE_ROW = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0)
MAX_PIXEL_GRID = 201  # points of a density curve

# the update's terms: x_{t_prev} = coef_a · (first) + coef_b · (second) + σ · z
TERM_NAMES = {"ddpm": ("x0_hat", "x_t", "noise"), "ddim": ("x0_hat", "eps", "noise")}
FLOAT_FIELDS = ("x0_hat", "eps", "noise", "term_a", "term_b", "term_noise", "mean", "q_mean", "q_true_mean",
                "eps_cond", "eps_uncond", "eps_delta", "eps_guided")
EPS_RANGE = 3.0  # ε's are shown over [-3, 3]; images, the update's terms and ε̂_cond − ε̂_uncond over [-1, 1]
# the frame's images as the page shows them: key -> (where its floats are, display range)
VIEWS = {"x_t": ("x_t", 1.0), "x0_hat": ("x0_hat", 1.0), "eps": ("eps", EPS_RANGE), "term_a": ("term_a", 1.0),
         "term_b": ("term_b", 1.0), "term_noise": ("term_noise", 1.0), "x_prev": ("x_prev", 1.0),
         "eps_uncond": ("eps_uncond", EPS_RANGE), "eps_cond": ("eps_cond", EPS_RANGE),
         "eps_delta": ("eps_delta", 1.0), "eps_guided": ("eps_guided", EPS_RANGE)}
NUMBER_FIELDS = ("t", "t_prev", "alpha_bar_t", "alpha_bar_prev", "beta_t", "sigma", "coef_a", "coef_b", "q_var",
                 "q_std", "sigma_fixed_small", "sigma_fixed_large", "crossover")


def check_sample(sample, n: int) -> int:
    """Which sample of a batch of n: a whole number from 0 to n − 1, or ValueError."""
    return checks.whole_number(f"The sample (the run has {n}, numbered from 0)", sample, 0, n - 1)


@dataclass(frozen=True)
class StepLabSettings:
    """A microscope run: the reverse run's settings, where it starts and, for img2img, from which t.

    The microscope's own run has one sample (``sample`` None). A run of the Reverse tab is re-recorded whole, as
    it was sampled (its batch of ``run.n``: the model's numbers depend on the batch), keeping sample ``sample``.
    """

    run: RunSettings
    start: str = "noise"  # "noise", a bundled digit or IMAGE_START (img2img: the true x_0 is known)
    t_start: int = 500  # img2img only: the digit is noised to this t first
    variance: str = "fixed_small"  # DDPM's σ_t²: β̃_t ("fixed_small") or β_t ("fixed_large")
    sample: int | None = None  # None: one sample of its own; else which sample of the run's batch is kept
    precision: str = PRECISION  # the network's arithmetic (explorer.samplers.PRECISIONS)
    x0: torch.Tensor | None = field(default=None, compare=False, repr=False)  # IMAGE_START's x_0, (1, 1, H, W)

    def __post_init__(self):
        if not isinstance(self.run, RunSettings):
            raise ValueError(f"A microscope run needs RunSettings, got {self.run!r}.")
        if self.sample is None:
            object.__setattr__(self, "run", self.run.replace(n=1))
        else:
            object.__setattr__(self, "sample", check_sample(self.sample, self.run.n))
        checks.one_of("precision", self.precision, PRECISIONS)
        checks.one_of("start", self.start, (*STARTS, IMAGE_START))
        if (self.start == IMAGE_START) != (self.x0 is not None):
            raise ValueError(f"A run from a given image (start {IMAGE_START!r}) needs its x_0, and only it has one.")
        checks.one_of("DDPM variance", self.variance, DDPM_VARIANCES)
        if self.start != "noise":
            T = self.run.schedule.T
            object.__setattr__(self, "t_start", checks.whole_number(f"The img2img start t (T = {T})",
                                                                    self.t_start, 1, T))

    @property
    def img2img(self) -> bool:
        return self.start != "noise"

    @property
    def index(self) -> int:
        """The kept sample's row in the run's batch."""
        return 0 if self.sample is None else self.sample

    def effective_run(self) -> RunSettings:
        """The run as sampled: img2img's DDIM takes the share t_start / T of the steps."""
        return img2img_run(self.run, self.t_start) if self.img2img else self.run

    def num_steps(self) -> int:
        return self.effective_run().num_steps(self.t_start if self.img2img else None)

    def loop_kwargs(self) -> dict:
        """The keyword arguments of :func:`explorer.samplers.reverse_loop` for this run."""
        return {**self.effective_run().loop_kwargs(), "steps": self.num_steps(), "variance": self.variance}


@dataclass
class StepLabRun:
    """Every step of one sample's run, as float32 (H, W) images and float64 numbers per step."""

    settings: StepLabSettings
    schedule: Schedule  # the sampling schedule (ᾱ_T > 0 under zero terminal SNR: samplers.sampling_schedule)
    x_t: np.ndarray  # (N + 1, H, W): x_t before each step; [N] = the result
    floats: dict[str, np.ndarray]  # FLOAT_FIELDS -> (N, H, W)
    numbers: dict[str, np.ndarray]  # NUMBER_FIELDS -> (N,)
    spectra: dict[str, np.ndarray]  # "signal" (of √ᾱ_t x̂_0), "x_t" -> (N, K); "noise" -> (N,) = 1 − ᾱ_t
    x0_true: np.ndarray | None = None  # (H, W) img2img's digit
    count: int = 0
    finished: bool = False
    seconds: float | None = None

    @property
    def num_steps(self) -> int:
        return self.x_t.shape[0] - 1

    @property
    def sampler(self) -> str:
        return self.settings.run.sampler

    @property
    def shape(self) -> tuple[int, int]:
        return self.x_t.shape[1], self.x_t.shape[2]

    @property
    def x0_undefined_at_T(self) -> bool:
        """ᾱ_T = 0 in the chosen schedule (zero terminal SNR): x̂_0 = 0/0 at t = T; the sampler used a tiny ᾱ_T."""
        return float(self.settings.run.schedule.alpha_bars[-1]) == 0.0

    def check_frame(self, k) -> int:
        if self.count == 0:
            raise ValueError("Nothing recorded yet: press Run first.")
        return checks.whole_number("The frame", k, 0, self.count - 1)

    def check_pixel(self, row, col) -> tuple[int, int]:
        h, w = self.shape
        return (checks.whole_number("The pixel row", row, 0, h - 1),
                checks.whole_number("The pixel column", col, 0, w - 1))

    def frame_numbers(self, k) -> dict:
        """Step k's numbers (t, t_prev, ᾱ's, β_t, σ, the update's coefficients, posterior variance, crossover)."""
        k = self.check_frame(k)
        out = {key: float(self.numbers[key][k]) for key in NUMBER_FIELDS}
        for key in ("t", "t_prev"):
            out[key] = int(out[key])
        out["crossover"] = None if np.isnan(out["crossover"]) else int(out["crossover"])
        out.update(frame=k, step=k + 1, num_steps=self.num_steps, recorded=self.count, sampler=self.sampler,
                   eta=self.settings.effective_run().eta, guidance=self.settings.run.guidance,
                   img2img=self.settings.img2img, x0_undefined=self.x0_undefined_at_T and out["t"] == self.schedule.T)
        return out

    def view_floats(self, key: str) -> np.ndarray:
        """(count, H, W) floats of a view over the recorded steps (x_prev: the x_t after each step)."""
        source = VIEWS[key][0]
        if source == "x_t":
            return self.x_t[:self.count]
        if source == "x_prev":
            return self.x_t[1:self.count + 1]
        return self.floats[source][:self.count]

    def view_frames(self, key: str) -> np.ndarray:
        """(count, H, W) uint8 frames of a view, mapped by :func:`explorer.data.to_uint8` over its display range."""
        return data.to_uint8(torch.from_numpy(self.view_floats(key)), VIEWS[key][1])

    def frame_images(self, k) -> dict[str, np.ndarray]:
        """Frame k's images, (H, W) uint8 each (the true x_0 too, for img2img): what the page draws."""
        k = self.check_frame(k)
        out = {key: data.to_uint8(torch.from_numpy(self.view_floats(key)[k]), VIEWS[key][1]) for key in VIEWS}
        if self.x0_true is not None:
            out["x0_true"] = data.to_uint8(torch.from_numpy(self.x0_true))
        return out

    def pixel(self, k, row, col) -> dict:
        """At pixel (row, col) of frame k: the 1-D Gaussians of x_{t_prev}, the value drawn, and the pixel's series.

        q_hat: q(x_{t_prev} | x_t, x̂_0); q_true: q(x_{t_prev} | x_t, x_0) (img2img, else None); p: the sampler's
        p_θ(x_{t_prev} | x_t) = N(mean of the update, σ²); drawn: the recorded x_{t_prev}. Series over all recorded
        steps: x_t and x̂_0 at the pixel.
        """
        k = self.check_frame(k)
        row, col = self.check_pixel(row, col)
        q_std = float(self.numbers["q_std"][k])
        out = {
            "frame": k, "row": row, "col": col,
            "t": int(self.numbers["t"][k]), "t_prev": int(self.numbers["t_prev"][k]),
            "x_t": float(self.x_t[k, row, col]), "x0_hat": float(self.floats["x0_hat"][k, row, col]),
            "q_hat": {"mean": float(self.floats["q_mean"][k, row, col]), "std": q_std},
            "q_true": ({"mean": float(self.floats["q_true_mean"][k, row, col]), "std": q_std}
                       if self.x0_true is not None else None),
            "p": {"mean": float(self.floats["mean"][k, row, col]), "std": float(self.numbers["sigma"][k])},
            "drawn": float(self.x_t[k + 1, row, col]),
            "x0_true": None if self.x0_true is None else float(self.x0_true[row, col]),
            "series_t": self.numbers["t"][:self.count].astype(int).tolist(),
            "series_x_t": self.x_t[:self.count, row, col].astype(float).tolist(),
            "series_x0_hat": self.floats["x0_hat"][:self.count, row, col].astype(float).tolist(),
        }
        return out

    def density_curves(self, k, row, col, points: int = MAX_PIXEL_GRID) -> dict:
        """The pixel's densities sampled on one grid (a point mass, σ = 0, is None): what the page draws."""
        px = self.pixel(k, row, col)
        grid = density_grid(px, points)
        curves = {name: (None if d is None else gaussian_density(grid, d["mean"], d["std"]))
                  for name, d in (("q_hat", px["q_hat"]), ("q_true", px["q_true"]), ("p", px["p"]))}
        return {"x": grid, **curves}


DEFAULTS = StepLabSettings(RunSettings(make_schedule("linear", DEFAULT_T), sampler="ddim", steps=50, eta=1.0,
                                      digit="3", guidance=3.0, seed=0, n=1), start="noise", t_start=600)


def guidance_evaluation(card: dict) -> dict[str, list[tuple[float, float, float]]]:
    """From a model card's evaluation: config ("linear/ddim50") -> [(w, agreement, spread ratio)], sorted by w.

    Agreement (accuracy: share of samples a held-out-trained classifier reads as the asked digit) and spread
    ratio (diversity: same-class pixel spread of samples / of real digits) are written by explorer.evaluate.
    """
    out: dict[str, list] = {}
    for figures in card.get("evaluation", {}).values():
        for name, f in figures.get("configs", {}).items():
            config, _, w = name.rpartition("/w=")
            if config and "agreement" in f and "spread_ratio" in f:
                out.setdefault(config, []).append((float(w), float(f["agreement"]), float(f["spread_ratio"])))
        if out:
            break  # one precision's figures
    return {k: sorted(v) for k, v in out.items()}


def density_grid(px: dict, points: int = MAX_PIXEL_GRID) -> np.ndarray:
    """An x grid covering the pixel's distributions (±4 std around each mean) and the drawn value."""
    lo, hi = px["drawn"], px["drawn"]
    for d in (px["q_hat"], px["q_true"], px["p"]):
        if d is not None:
            lo, hi = min(lo, d["mean"] - 4 * d["std"]), max(hi, d["mean"] + 4 * d["std"])
    pad = max(hi - lo, 0.05) * 0.05
    return np.linspace(lo - pad, hi + pad, points)


def run_eps_parts(model, s: Schedule, labels: torch.Tensor, guidance: float, precision: str, keep: int = 0):
    """ε̂(x_t, t) as the Reverse tab computes it (:func:`explorer.samplers.model_eps_fn`), and a list holding the
    last call's (ε̂_cond, ε̂_uncond, guided ε̂) of sample ``keep``, each (1, C, H, W), for the frame's views.

    Where guidance runs one pass (w = 0: the unconditional model, w = 1: the conditional one, or only the null
    class), that pass is one of the parts and the other one runs for sample ``keep`` alone, for the display only.
    """
    inner: list = []
    eps_fn = model_eps_fn(model, s, labels, guidance, precision, parts=inner)
    one = slice(keep, keep + 1)
    skipped = model_eps_fn(model, s, labels[one], 1.0 if guidance == 0.0 else 0.0, precision)  # the pass w left out
    unconditional = bool((labels == NULL_CLASS).all())
    latest: list = []

    def eps_with_parts(x: torch.Tensor, t: int) -> torch.Tensor:
        eps = eps_fn(x, t)
        eps_c, eps_u = inner.pop()
        if eps_c is not None:  # both passes ran, as one batch
            parts = (eps_c[one], eps_u[one])
        elif unconditional:
            parts = (eps[one], eps[one])
        elif guidance == 0.0:
            parts = (skipped(x[one], t), eps[one])
        else:
            parts = (eps[one], skipped(x[one], t))
        latest[:] = [(*parts, eps[one])]
        return eps

    return eps_with_parts, latest


def _row_eps(model, s: Schedule, labels: torch.Tensor, w_rows: torch.Tensor):
    """ε̂(x_t, t) guided with one w per row (``w_rows`` (B, 1, 1, 1)): the two passes as two calls of the batch,
    as :func:`explorer.model.guided_eps` makes them."""
    cond = model_eps_fn(model, s, labels, 1.0, PRECISION)  # w = 1: each row's own class
    uncond = model_eps_fn(model, s, torch.full_like(labels, NULL_CLASS), 1.0, PRECISION)  # the null class alone

    def eps_fn(x: torch.Tensor, t: int) -> torch.Tensor:
        return classifier_free_guidance(uncond(x, t), cond(x, t), w_rows)

    return eps_fn


def _start(lab: StepLabSettings):
    """(x_start (n, 1, H, W) for the run's n samples, generator, t_start or None, x_0 (1, 1, H, W) or None)."""
    run = lab.run
    if not lab.img2img:
        x, generator = initial_noise(run.seed, run.n)
        return x, generator, None, None
    x0 = lab.x0  # (1, 1, H, W): given (IMAGE_START), or a bundled digit's
    if x0 is None:
        x0 = image_to_digit_tensor(data.load_image(DIGIT_STARTS[lab.start]))
    generator = torch.Generator().manual_seed(run.seed)
    return img2img_start(x0, lab.t_start, run.schedule, run.n, generator), generator, lab.t_start, x0


def from_reverse_run(traj, sample) -> tuple[StepLabSettings, int]:
    """The microscope run that re-records sample ``sample`` of the Reverse tab's run (its
    :class:`explorer.trajectory.Trajectory`), and how many steps to record: all, or as many as a stopped run has.

    The same RunSettings give the same x_T, batch, precision and sampler noise, so the same numbers; the Reverse
    tab's DDPM adds σ_t² = β̃_t (the default variance). Every run it keeps has ≤ MAX_RECORDED_STEPS steps, as here.
    """
    if traj is None or traj.count == 0 or traj.settings is None:
        raise ValueError("The Reverse tab has no run yet: press Sample there first, then inspect it here.")
    sample = check_sample(sample, traj.settings.n)  # None too: it would mean a run of one sample, not of this batch
    return StepLabSettings(traj.settings, sample=sample, precision=REVERSE_PRECISION), traj.count


def from_img2img_run(trip: Img2ImgRun | None, sample) -> tuple[StepLabSettings, int]:
    """The microscope run that re-records sample ``sample`` of the Reverse tab's img2img round trip, with its true
    x_0 known, and how many steps to record (as many as the round trip recorded).

    The same RunSettings, t_start and x_0 give the same noised copies (img2img_start from the seed's generator),
    batch, precision and sampler noise, so the same numbers (as :func:`from_reverse_run`).
    """
    if trip is None or trip.count == 0:
        raise ValueError("The Reverse tab has no img2img round trip yet: press 'Noise and denoise' there first "
                         "(in its img2img accordion), then inspect it here.")
    sample = check_sample(sample, trip.run.n)
    return StepLabSettings(trip.run, start=IMAGE_START, t_start=trip.t_start, sample=sample,
                           precision=REVERSE_PRECISION, x0=trip.x0), trip.count


def _empty_run(lab: StepLabSettings, s: Schedule, n: int, h: int, w: int, x0) -> StepLabRun:
    k_bins = min(h, w) // 2 + 1
    return StepLabRun(
        settings=lab, schedule=s, x_t=np.zeros((n + 1, h, w), np.float32),
        floats={key: np.zeros((n, h, w), np.float32) for key in FLOAT_FIELDS},
        numbers={key: np.full(n, np.nan) for key in NUMBER_FIELDS},
        spectra={"signal": np.zeros((n, k_bins)), "x_t": np.zeros((n, k_bins)), "noise": np.zeros(n)},
        x0_true=None if x0 is None else x0[0, 0].numpy().copy(),
    )


def record_step_lab(model, lab: StepLabSettings, max_steps: int | None = None) -> Iterator[StepLabRun]:
    """Run the reverse loop on ``model`` for the run's batch, keeping every step's floats of sample ``lab.index``;
    yields the growing run. ``max_steps`` ends it after that many steps, unfinished (a stopped run's length).

    The last yield is the run as it ends (``finished`` True when every step was taken).
    """
    run = lab.effective_run()
    x_start, generator, t_start, x0 = _start(lab)
    n = lab.num_steps()
    last = n if max_steps is None else checks.whole_number(f"The steps to record (of {n})", max_steps, 1, n)
    rec = _empty_run(lab, sampling_schedule(run.schedule), n, *x_start.shape[2:], x0)
    eps_fn, parts = run_eps_parts(model, run.schedule, run.labels, run.guidance, lab.precision, lab.index)
    loop = reverse_loop(eps_fn, run.schedule, x_start, generator, t_start=t_start, **lab.loop_kwargs())
    for k, step in enumerate(loop):
        _keep_step(rec, k, step, *parts[-1], x0)
        if rec.count == last:
            break
        yield rec
    rec.finished = rec.count == n
    yield rec


def _keep_step(rec: StepLabRun, k: int, step, eps_cond, eps_uncond, eps_guided, x0) -> None:
    """Keep step k of the kept sample: its images, the posterior(s), its spectra and numbers.

    ``step`` holds the whole batch; ``eps_cond``, ``eps_uncond``, ``eps_guided`` are the kept sample's already."""
    b = slice(rec.settings.index, rec.settings.index + 1)  # the kept sample, as (1, 1, H, W) tensors
    s, run = rec.schedule, rec.settings.effective_run()
    t, t_prev = step.t, step.t_prev
    x_t, x0_hat = step.x_t[b], step.x0_hat[b]
    terms = [step.terms[name][b] for name in TERM_NAMES[run.sampler]]
    q_mean, q_var = q_posterior_between(x_t, x0_hat, t, t_prev, s)
    if run.sampler == "ddpm":
        coef_a, coef_b = step.posterior_coef_x0, step.posterior_coef_xt
    else:
        coef_a, coef_b, _ = ddim_coefficients(t, t_prev, s, run.eta)
    images = {"x0_hat": x0_hat, "eps": step.eps[b], "noise": torch.zeros_like(x_t) if step.noise is None
              else step.noise[b], "term_a": terms[0], "term_b": terms[1], "term_noise": terms[2],
              "mean": terms[0] + terms[1],  # the update without its noise, added as the step added it
              "q_mean": q_mean, "eps_cond": eps_cond, "eps_uncond": eps_uncond,
              "eps_delta": eps_cond - eps_uncond, "eps_guided": eps_guided}  # guidance's direction
    if x0 is not None:
        images["q_true_mean"] = q_posterior_between(x_t, x0, t, t_prev, s)[0]
    for key, img in images.items():
        rec.floats[key][k] = img[0, 0].numpy()
    rec.x_t[k] = x_t[0, 0].numpy()
    rec.x_t[k + 1] = step.x_prev[b][0, 0].numpy()
    # spectra: the signal part √ᾱ_t x̂_0 of x_t (q_sample without noise) against the noise's flat 1 − ᾱ_t
    signal = radial_power_spectrum(q_sample(x0_hat, t, torch.zeros_like(x0_hat), s)[0, 0].numpy())
    noise_power = 1.0 - float(s.alpha_bars[t])  # the variance of √(1 − ᾱ_t) ε, flat over frequency
    rec.spectra["signal"][k] = signal
    rec.spectra["x_t"][k] = radial_power_spectrum(rec.x_t[k])
    rec.spectra["noise"][k] = noise_power
    crossover = crossover_frequency(signal, noise_power)
    values = dict(t=t, t_prev=t_prev, alpha_bar_t=step.alpha_bar_t, alpha_bar_prev=step.alpha_bar_prev,
                  beta_t=float(s.betas[t]), sigma=step.sigma, coef_a=coef_a, coef_b=coef_b, q_var=q_var,
                  q_std=q_var**0.5, **{f"sigma_{v}": float(ddpm_variances(s, v)[t]) ** 0.5 for v in DDPM_VARIANCES},
                  crossover=np.nan if crossover is None else crossover)
    for key, v in values.items():
        rec.numbers[key][k] = v
    rec.count = k + 1


def record_all(model, lab: StepLabSettings, max_steps: int | None = None) -> StepLabRun:
    """:func:`record_step_lab` drained: the run as it ends."""
    *_, rec = record_step_lab(model, lab, max_steps)
    return rec


def guidance_row(model, lab: StepLabSettings, ws=GUIDANCE_ROW) -> np.ndarray:
    """Final samples of one seed and digit for every w in ``ws``, in ONE batched run: (len(ws), H, W) float32.

    The rows share x_T (or img2img's noised digit) of the kept sample; each row is guided with its own w.
    """
    run = lab.effective_run()
    x_start, generator, t_start, _ = _start(lab)
    ws = [checks.finite_number("The guidance scale", w, 0.0, 20.0) for w in ws]
    b, i = len(ws), lab.index
    w_rows = torch.tensor(ws, dtype=torch.float32).reshape(b, 1, 1, 1)  # (B, 1, 1, 1): one w per row
    labels = run.labels[i:i + 1].expand(b)  # (B,) the sample's one digit on every row
    eps_fn = _row_eps(model, run.schedule, labels, w_rows)
    x = x_start[i:i + 1].expand(b, *x_start.shape[1:]).clone()  # (B, 1, H, W)
    for step in reverse_loop(eps_fn, run.schedule, x, generator, t_start=t_start, **lab.loop_kwargs()):
        x = step.x_prev
    return x[:, 0].numpy()

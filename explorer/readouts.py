"""What the app reads out about a schedule: the numbers at a timestep, the math panel, diagnostics.

Pure functions of a :class:`~explorer.schedules.Schedule` (no gradio, no plotly); every number is
looked up in the schedule's precomputed arrays, never recomputed here.
"""

from __future__ import annotations

import math

import numpy as np

from . import checks
from .samplers import ddim_timesteps
from .schedules import Schedule

# Keys of the per-timestep numbers, in display order, with their symbols.
NUMBER_LABELS = {
    "beta": "β_t",
    "alpha_bar": "ᾱ_t",
    "sqrt_alpha_bar": "√ᾱ_t",
    "sqrt_one_minus_alpha_bar": "√(1-ᾱ_t)",
    "snr": "SNR",
    "log_snr": "log-SNR",
}
SQRT_ALPHA_BAR_NOISE_LEVEL = 0.1  # "mostly noise": √ᾱ_t below this


def format_number(v: float, digits: int = 5) -> str:
    """A readable number: ∞ and −∞ spelled out, ``digits`` significant digits, exponent form when tiny/huge."""
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v == 0:
        return "0"
    text = f"{v:.{digits}g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"  # 4.0358e-05 -> 4.0358e-5
    return text.replace("-", "−")


def latex_number(v: float, digits: int = 5) -> str:
    """format_number for LaTeX: ``\\infty`` and ``a \\times 10^{b}``."""
    text = format_number(v, digits).replace("−", "-")
    if text in ("∞", "-∞"):
        return text.replace("∞", r"\infty")
    if "e" in text:
        mantissa, exponent = text.split("e")
        return rf"{mantissa} \times 10^{{{exponent}}}"
    return text


def check_timestep(s: Schedule, t) -> int:
    """t as an int in [0, T], or ValueError with a readable message."""
    return checks.whole_number(f"The timestep t (T = {s.T})", t, 0, s.T)


def timestep_numbers(s: Schedule, t) -> dict[str, float]:
    """{t, beta, alpha_bar, sqrt_alpha_bar, sqrt_one_minus_alpha_bar, snr, log_snr} at timestep t."""
    t = check_timestep(s, t)
    return {
        "t": t,
        "beta": float(s.betas[t]),
        "alpha_bar": float(s.alpha_bars[t]),
        "sqrt_alpha_bar": float(s.sqrt_alpha_bars[t]),
        "sqrt_one_minus_alpha_bar": float(s.sqrt_one_minus_alpha_bars[t]),
        "snr": float(s.snr[t]),
        "log_snr": float(s.log_snr[t]),
    }


def schedule_arrays(s: Schedule) -> dict[str, np.ndarray]:
    """The schedule's arrays under the keys of NUMBER_LABELS (all length T + 1)."""
    return {
        "beta": s.betas,
        "alpha_bar": s.alpha_bars,
        "sqrt_alpha_bar": s.sqrt_alpha_bars,
        "sqrt_one_minus_alpha_bar": s.sqrt_one_minus_alpha_bars,
        "snr": s.snr,
        "log_snr": s.log_snr,
    }


def formatted_numbers(s: Schedule) -> dict[str, list[str]]:
    """format_number of every number at every t: the browser shows these strings as the slider moves."""
    return {key: [format_number(v) for v in arr] for key, arr in schedule_arrays(s).items()}


def math_panel(s: Schedule, t) -> str:
    """The tutorial's forward-process equations in LaTeX (Markdown, $$…$$), with the numbers at t substituted."""
    n = timestep_numbers(s, t)
    t = n["t"]
    f = latex_number
    alpha_t = float(s.alphas[t])
    lines = [
        f"**Schedule:** {s.label} — **t = {t}** of T = {s.T}",
        "",
        "One forward step adds a little Gaussian noise $z_t \\sim \\mathcal{N}(0, I)$:",
        "$$x_t = \\sqrt{\\alpha_t}\\,x_{t-1} + \\sqrt{1-\\alpha_t}\\,z_t,\\qquad \\alpha_t = 1 - \\beta_t$$",
    ]
    if t >= 1:
        lines.append(
            f"$$x_{{{t}}} = {f(math.sqrt(alpha_t))}\\,x_{{{t - 1}}} + {f(math.sqrt(n['beta']))}\\,z_{{{t}}}"
            f",\\qquad \\beta_{{{t}}} = {f(n['beta'])}$$"
        )
    else:
        lines.append("$$\\text{at } t = 0 \\text{ no step has been taken: } x_0 \\text{ is the clean image.}$$")
    lines += [
        "The steps compound into a product:",
        f"$$\\bar\\alpha_t = \\prod_{{i=1}}^{{t}} \\alpha_i,\\qquad \\bar\\alpha_{{{t}}} = {f(n['alpha_bar'])}$$",
        "The fresh noises $z_1, \\dots, z_t$ of the steps add up to a single Gaussian, written $\\varepsilon$ "
        "(not any one $z_t$), so $x_t$ can be sampled from $x_0$ in one jump with one fixed "
        "$\\varepsilon \\sim \\mathcal{N}(0, I)$ — the picture above uses this $\\varepsilon$:",
        "$$x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\varepsilon$$",
        f"$$x_{{{t}}} = {f(n['sqrt_alpha_bar'])}\\,x_0 + {f(n['sqrt_one_minus_alpha_bar'])}\\,\\varepsilon$$",
        "The signal-to-noise ratio compares the two variances:",
        "$$\\mathrm{SNR}(t) = \\frac{\\bar\\alpha_t}{1-\\bar\\alpha_t},\\qquad "
        f"\\mathrm{{SNR}}({t}) = {f(n['snr'])},\\quad \\log \\mathrm{{SNR}}({t}) = {f(n['log_snr'])}$$",
    ]
    return "\n".join(lines)


def diagnostics(s: Schedule) -> dict[str, float | int | None]:
    """Summary figures of a schedule.

    - ``alpha_bar_T``, ``snr_T``, ``log_snr_T``: how much signal is left at the last step
    - ``t_snr_1``: the first t with SNR(t) <= 1 (signal and noise variance cross), None if never
    - ``share_mostly_noise``: the share of steps t = 1..T with √ᾱ_t < 0.1
    """
    below = np.nonzero(s.snr[1:] <= 1.0)[0]
    return {
        "alpha_bar_T": float(s.alpha_bars[s.T]),
        "snr_T": float(s.snr[s.T]),
        "log_snr_T": float(s.log_snr[s.T]),
        "t_snr_1": int(below[0]) + 1 if below.size else None,
        "share_mostly_noise": float(np.mean(s.sqrt_alpha_bars[1:] < SQRT_ALPHA_BAR_NOISE_LEVEL)),
    }


DIAGNOSTIC_HEADERS = ["schedule", "zero terminal SNR", "ᾱ_T", "SNR_T", "log-SNR_T", "t where SNR = 1 (t/T)",
                      "share of steps with √ᾱ_t < 0.1 (mostly noise)"]
CURRENT = "(current)"  # marks the row of the setting the controls hold
DIAGNOSTICS_NOTE = (
    f"**Mostly noise:** at a step with √ᾱ_t < {SQRT_ALPHA_BAR_NOISE_LEVEL:g}, less than "
    f"{SQRT_ALPHA_BAR_NOISE_LEVEL:.0%} of x₀'s amplitude is left in x_t; a large share means many steps are spent "
    "where the image is barely visible. **Zero terminal SNR** (Lin et al. 2023) rescales the schedule so that "
    "ᾱ_T = 0: x_T is pure noise, as sampling assumes. The row marked (current) is the setting chosen above.")


def diagnostics_row(label: str, s: Schedule, current: bool = False) -> list[str]:
    """One row of the diagnostics table (strings, ready to display); ``current`` marks the setting in use.

    Numbers use format_number's default precision, as every other readout of the app.
    """
    d = diagnostics(s)
    crossing = "never" if d["t_snr_1"] is None else f"{d['t_snr_1']} ({d['t_snr_1'] / s.T:.3f})"
    zero = "on" if s.params.get("zero_terminal_snr") else "off"
    return [
        label,
        f"{zero} {CURRENT}" if current else zero,
        format_number(d["alpha_bar_T"]),
        format_number(d["snr_T"]),
        format_number(d["log_snr_T"]),
        crossing,
        f"{d['share_mostly_noise']:.1%}",
    ]


def timestep_at_fraction(s: Schedule, fraction) -> int:
    """The timestep t = round(fraction · T) of this schedule: how one shared control drives schedules of different T."""
    return int(round(checks.finite_number("The fraction t/T", fraction, 0.0, 1.0) * s.T))


def count(n: int, noun: str) -> str:
    """'1 step', '50 steps': a number with its noun in the right number."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


SPACING_HELP = {
    "trailing": "counts down from T in equal strides (T, T − T/S, …): the first step starts from pure noise.",
    "leading": "takes multiples of T // S counted up from 0, so it may start well below T (T = 500, 10 steps: "
               "t = 451): pure noise is then treated as the less noisy x_451.",
    "linspace": "rounds S evenly spaced points of 1 … T: with one step it visits only t = 1, so the output "
                "is x_T itself (pure noise).",
}
# Rough cost of the network on one 28×28 image, CPU fp32, one thread as the app runs: benchmarks/bench_sampling.py
# measured DDIM-50 × 16 digits at w = 3 (1,600 passes) in 1.95–2.33 s and at w = 1 (800 passes) in 1.18 s on the
# 2-core Xeon @ 2.50 GHz without bfloat16 instructions (the retrained 439k-parameter model; the app's own run took
# 1.9–2.1 s); a busy or slower laptop takes longer. The estimate only needs the order of magnitude.
SECONDS_PER_IMAGE_PASS = 0.00125
LONG_RUN_S = 10.0  # beyond this the estimate carries a warning (DDPM-1000 × 16 at w = 3: ≈ 42 s)


def model_passes(steps: int, n: int, digit: str, guidance: float) -> int:
    """Image passes of the network for a run: steps × samples, twice with guidance (conditional and unconditional)."""
    guided = digit != "none" and guidance not in (0.0, 1.0)
    return steps * n * (2 if guided else 1)


def duration_text(seconds: float) -> str:
    """'about 4 s', 'about 3 min'."""
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    return f"about {seconds / 60:.0f} min"


def run_plan(s: Schedule, sampler: str, steps: int, spacing: str, n: int, digit: str, guidance: float) -> str:
    """What a run will do before it starts (Markdown): which timesteps it visits, how the spacing picks them, and
    a rough time on a laptop CPU (with a warning for a long run)."""
    if sampler == "ddpm":
        steps = s.T
        visits = f"**DDPM** visits every t = {s.T}, {s.T - 1}, …, 1 ({count(s.T, 'step')})."
    else:
        steps = checks.whole_number(f"DDIM steps (at most T = {s.T})", steps, 1, s.T)
        ts = ddim_timesteps(s.T, steps, spacing)
        shown = ", ".join(str(t) for t in ts[:4]) + (", …" if len(ts) > 5 else "") + \
            (f", {ts[-1]}" if len(ts) > 4 else "")
        visits = (f"**DDIM, {count(steps, 'step')}, {spacing} spacing** visits t = {shown} → 0. "
                  f"*{spacing}* {SPACING_HELP[spacing]}")
    passes = model_passes(steps, n, digit, guidance)
    seconds = passes * SECONDS_PER_IMAGE_PASS
    estimate = f"{passes:,} image passes of the network: {duration_text(seconds)} on a laptop CPU."
    if seconds > LONG_RUN_S:
        estimate = f"⚠️ **Long run:** {estimate} Fewer samples or DDIM with 20–50 steps is much faster."
    elif seconds > LONG_RUN_S / 3:
        estimate = f"{estimate} A busy machine may take several times longer."
    return f"{visits}  \n{estimate}"

"""The Step microscope's text: a frame's numbers and the math panel (the tutorial's next page), formatted.

Formatting only: every number is looked up in the recorded :class:`explorer.steplab.StepLabRun`. Used by the
tab's module (explorer/ui/step_lab.py) alone.
"""

from __future__ import annotations

import html

from .. import readouts
from ..steplab import StepLabRun

f = readouts.format_number
lx = readouts.latex_number


def term_labels(rec: StepLabRun, k: int) -> dict[str, str]:
    """Captions of the update's terms at frame k, their coefficients substituted."""
    n = rec.frame_numbers(k)
    second = "x_t" if rec.sampler == "ddpm" else "ε̂"
    return {"term_a": f"{f(n['coef_a'])} · x̂₀", "term_b": f"{f(n['coef_b'])} · {second}",
            "term_noise": f"σ · z = {f(n['sigma'])} · z", "x_prev": f"= x_{{t_prev}}, t_prev = {n['t_prev']}"}


def frame_rows(rec: StepLabRun, k: int) -> tuple[str, list[tuple[str, str]]]:
    """The heading and the (number, value) rows of frame k."""
    n = rec.frame_numbers(k)
    state = "" if rec.finished else f" (stopped after {rec.count} of {rec.num_steps} steps)"
    head = f"Step {n['step']} of {n['num_steps']}{state}: t = {n['t']} → t_prev = {n['t_prev']}"
    rows = [("ᾱ_t", f(n["alpha_bar_t"])), ("ᾱ_{t_prev}", f(n["alpha_bar_prev"])), ("β_t", f(n["beta_t"])),
            ("σ (std of the noise added)", f(n["sigma"])),
            ("posterior variance of q(x_{t_prev}|x_t,x₀)", f(n["q_var"])),
            ("signal under the noise from frequency", "never (≤ Nyquist)" if n["crossover"] is None
             else f"{n['crossover']} cycles / image")]
    if n["x0_undefined"]:
        rows.append(("x̂₀ at t = T", "undefined: ᾱ_T = 0 (0/0); the sampler uses ᾱ_T = "
                     f"{f(rec.schedule.alpha_bars[-1])} instead"))
    return head, rows


def numbers_html(rec: StepLabRun, k: int) -> str:
    head, rows = frame_rows(rec, k)
    body = "".join(f"<tr><th>{html.escape(a)}</th><td>{html.escape(b)}</td></tr>" for a, b in rows)
    return f"<p><strong>{html.escape(head)}</strong></p><table>{body}</table>"


def math_panel(rec: StepLabRun, k: int) -> str:
    """The tutorial's next page in LaTeX (Markdown with $$…$$), frame k's numbers substituted."""
    n = rec.frame_numbers(k)
    t, tp = n["t"], n["t_prev"]
    ab, abp, beta, sigma = n["alpha_bar_t"], n["alpha_bar_prev"], n["beta_t"], n["sigma"]
    lines = [
        f"**Frame {k}: the step t = {t} → {tp}** ({n['sampler'].upper()}, {rec.settings.run.schedule.label})",
        "",
        "We want $q(x_{t-1} \\mid x_t)$. With $x_0$ known, Bayes' rule and the forward process give it exactly:",
        "$$q(x_{t-1}\\mid x_t, x_0) = \\frac{q(x_t \\mid x_{t-1})\\; q(x_{t-1}\\mid x_0)}{q(x_t \\mid x_0)},"
        "\\quad q(x_t\\mid x_{t-1}) = \\mathcal N(\\sqrt{\\alpha_t}\\,x_{t-1}, \\beta_t I),"
        "\\quad q(x_{t-1}\\mid x_0) = \\mathcal N(\\sqrt{\\bar\\alpha_{t-1}}\\,x_0, (1-\\bar\\alpha_{t-1}) I)$$",
        "A product of Gaussians in $x_{t-1}$ is Gaussian: "
        "$q(x_{t-1}\\mid x_t, x_0) = \\mathcal N(\\tilde\\mu_t, \\tilde\\beta_t I)$ with",
        "$$\\tilde\\mu_t = \\frac{\\sqrt{\\bar\\alpha_{t-1}}\\,\\beta_t}{1-\\bar\\alpha_t}\\,x_0 + "
        "\\frac{\\sqrt{\\alpha_t}\\,(1-\\bar\\alpha_{t-1})}{1-\\bar\\alpha_t}\\,x_t,\\qquad "
        "\\tilde\\beta_t = \\frac{1-\\bar\\alpha_{t-1}}{1-\\bar\\alpha_t}\\,\\beta_t$$",
    ]
    if rec.sampler == "ddpm":
        lines.append(f"$$\\tilde\\mu_{{{t}}} = {lx(n['coef_a'])}\\,x_0 + {lx(n['coef_b'])}\\,x_{{{t}}},\\qquad "
                     f"\\tilde\\beta_{{{t}}} = {lx(n['q_var'])},\\quad \\beta_{{{t}}} = {lx(beta)}$$")
    lines += [
        "But $x_0$ is what we are generating: it is unknown. The model predicts the noise, and the closed form "
        "$x_t = \\sqrt{\\bar\\alpha_t}x_0 + \\sqrt{1-\\bar\\alpha_t}\\varepsilon$ solved for $x_0$ stands in:",
        "$$\\hat x_0 = \\frac{x_t - \\sqrt{1-\\bar\\alpha_t}\\,\\hat\\varepsilon_\\theta(x_t, t)}"
        "{\\sqrt{\\bar\\alpha_t}},"
        f"\\qquad \\bar\\alpha_{{{t}}} = {lx(ab)}$$",
    ]
    if n["x0_undefined"]:
        lines.append(f"At $t = T$ this schedule has $\\bar\\alpha_T = 0$: $\\hat x_0 = 0/0$ is **undefined** "
                     f"(zero terminal SNR). The sampler uses $\\bar\\alpha_T = {lx(rec.schedule.alpha_bars[-1])}$ "
                     "instead, so $\\hat x_0$ here says almost nothing.")
    if rec.sampler == "ddpm":
        chosen = "$\\tilde\\beta_t$" if rec.settings.variance == "fixed_small" else "$\\beta_t$"
        lines += [
            "**DDPM** (Ho et al. 2020, Alg. 2) samples $p_\\theta(x_{t-1}\\mid x_t) = "
            "\\mathcal N(\\tilde\\mu_t(x_t, \\hat x_0), \\sigma_t^2 I)$ with $\\sigma_t^2 = \\tilde\\beta_t$ or "
            "$\\sigma_t^2 = \\beta_t$ (the paper found both work; this run: "
            f"{chosen}; here "
            f"$\\sqrt{{\\tilde\\beta_{{{t}}}}} = {lx(n['sigma_fixed_small'])}$, "
            f"$\\sqrt{{\\beta_{{{t}}}}} = {lx(n['sigma_fixed_large'])}$), no noise at $t = 1$:",
            "$$x_{t-1} = \\frac{\\sqrt{\\bar\\alpha_{t-1}}\\,\\beta_t}{1-\\bar\\alpha_t}\\hat x_0 + "
            "\\frac{\\sqrt{\\alpha_t}(1-\\bar\\alpha_{t-1})}{1-\\bar\\alpha_t}x_t + \\sigma_t z,"
            "\\quad z\\sim\\mathcal N(0, I)$$",
            f"$$x_{{{tp}}} = {lx(n['coef_a'])}\\,\\hat x_0 + {lx(n['coef_b'])}\\,x_{{{t}}} + {lx(sigma)}\\,z$$",
        ]
    else:
        lines += [
            "**DDIM** (Song et al. 2021, eq. 12) jumps over the spaced steps $t \\to t_{prev}$, with "
            "$\\sigma_t(\\eta) = \\eta\\sqrt{\\frac{1-\\bar\\alpha_{t_{prev}}}{1-\\bar\\alpha_t}}"
            "\\sqrt{1-\\frac{\\bar\\alpha_t}{\\bar\\alpha_{t_{prev}}}}$ (eq. 16; $\\eta = 1$ is the posterior's "
            "noise, $\\eta = 0$ none):",
            "$$x_{t_{prev}} = \\sqrt{\\bar\\alpha_{t_{prev}}}\\,\\hat x_0 + "
            "\\sqrt{1-\\bar\\alpha_{t_{prev}}-\\sigma_t^2}\\;\\hat\\varepsilon + \\sigma_t z$$",
            f"$$x_{{{tp}}} = {lx(n['coef_a'])}\\,\\hat x_0 + {lx(n['coef_b'])}\\,\\hat\\varepsilon + {lx(sigma)}\\,z,"
            f"\\qquad \\eta = {lx(n['eta'])},\\ \\bar\\alpha_{{{tp}}} = {lx(abp)}$$",
        ]
    w = n["guidance"]
    lines.append(f"The $\\hat\\varepsilon$ used is guided: $\\hat\\varepsilon = \\hat\\varepsilon_{{uncond}} + "
                 f"w(\\hat\\varepsilon_{{cond}} - \\hat\\varepsilon_{{uncond}})$ with $w = {lx(w)}$.")
    return "\n".join(lines)

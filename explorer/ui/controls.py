"""Groups of controls that hand their values to handlers as one named, validated object.

A group has ``inputs`` (its components, in order) and ``parse(*values)`` (those values -> one object).
:func:`bind` wires a handler to groups and single components: Gradio sends the flat list of values,
the handler receives one argument per group — a :class:`~explorer.schedules.Schedule`, a
:class:`~explorer.runs.RunSettings` or a plain value — so no handler slices ``*args``.
"""

from __future__ import annotations

import inspect

import gradio as gr

from .. import checks, readouts
from ..runs import DIGIT_LABELS, DIGITS, MAX_GUIDANCE, MAX_RECORDED_STEPS, MAX_SAMPLES, RunSettings
from ..samplers import DEFAULT_SPACING, SAMPLERS, SPACINGS
from ..schedules import DEFAULT_BETAS, DEFAULT_COSINE_S, DEFAULT_T, SCHEDULE_NAMES, Schedule, make_schedule
from .common import UI_MAX_T, user_errors


def bind(fn, *groups):
    """(handler, inputs) for a Gradio event: ``fn`` gets one argument per group, parsed (see the module doc).

    Parsing runs inside the handler, so a bad value becomes a readable gr.Error (``user_errors``).
    """
    sizes = [len(g.inputs) if hasattr(g, "parse") else 1 for g in groups]
    inputs = [c for g in groups for c in (g.inputs if hasattr(g, "parse") else [g])]

    def parsed(values):
        out, i = [], 0
        for group, n in zip(groups, sizes):
            out.append(group.parse(*values[i:i + n]) if hasattr(group, "parse") else values[i])
            i += n
        return out

    if inspect.isgeneratorfunction(fn):
        def handler(*values):
            yield from fn(*parsed(values))
    else:
        def handler(*values):
            return fn(*parsed(values))
    # not functools.wraps (Gradio reads the signature for its special arguments): the API names each value after
    # fn's parameter, or a group's own names (prefixed with fn's parameter where two groups would clash)
    handler.__name__, handler.__doc__ = fn.__name__, fn.__doc__
    handler.__signature__ = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in _api_names(fn, groups)])
    return user_errors(handler), inputs


def _api_names(fn, groups) -> list[str]:
    params = list(inspect.signature(fn).parameters)

    def names(prefixed: bool) -> list[str]:
        out = []
        for param, group in zip(params, groups):
            if hasattr(group, "parse"):
                out += [f"{param}_{n}" if prefixed else n for n in group.NAMES]
            else:
                out.append(param)
        return out

    plain = names(False)
    return plain if len(set(plain)) == len(plain) else names(True)


class ScheduleControls:
    """Family, T, β_start, β_end, cosine s, zero-terminal-SNR, created in the current Blocks context.

    ``parse`` gives the :class:`Schedule` they describe: T = steps, β for the linear-type families, s for cosine.
    """

    NAMES = ("family", "steps", "beta_start", "beta_end", "cosine_s", "zero_terminal_snr")  # the API's names

    def __init__(self, family: str = "linear", api_prefix: str = "forward", label: str = "Schedule"):
        beta_start, beta_end = DEFAULT_BETAS.get(family, DEFAULT_BETAS["linear"])
        cosine = family == "cosine"
        with gr.Row():
            self.family = gr.Dropdown(list(SCHEDULE_NAMES), value=family, label=label, scale=2,
                                      elem_id=f"{api_prefix}-family")
            # no precision: 12.5 reaches checks.whole_number and is refused with a message (precision=0 rounded it
            # to 12 without a word)
            self.T = gr.Number(DEFAULT_T, label="T (steps)", minimum=1, maximum=UI_MAX_T, step=1, scale=1)
        with gr.Row():
            self.beta_start = gr.Number(beta_start, label="β_start", visible=not cosine, scale=1)
            self.beta_end = gr.Number(beta_end, label="β_end", visible=not cosine, scale=1)
            self.cosine_s = gr.Number(DEFAULT_COSINE_S, label="cosine s", visible=cosine, scale=1)
        # its own line: beside the β fields its label was clipped to "zero termina"
        self.zero_terminal_snr = gr.Checkbox(False, label="zero terminal SNR (Lin et al. 2023: ᾱ_T = 0)")
        self.family.input(self.defaults_for, inputs=self.family, outputs=[self.beta_start, self.beta_end, self.cosine_s],
                          api_name=f"{api_prefix}_schedule_defaults")

    @property
    def inputs(self) -> list:
        return [self.family, self.T, self.beta_start, self.beta_end, self.cosine_s, self.zero_terminal_snr]

    @property
    def changes(self) -> list:
        return [c.change for c in self.inputs]

    @staticmethod
    def parse(family, T, beta_start, beta_end, cosine_s, zero_terminal_snr) -> Schedule:
        checks.one_of("schedule", family, SCHEDULE_NAMES)
        T = checks.whole_number("T", T, 1, UI_MAX_T)
        zero = checks.flag("zero terminal SNR", zero_terminal_snr)
        # The fields the family hides still arrive (the UI keeps them at their defaults): numbers, or the call is
        # refused, so nothing sent to the API is silently dropped. make_schedule checks the fields it uses.
        hidden = (("β_start", beta_start), ("β_end", beta_end)) if family == "cosine" else (("cosine s", cosine_s),)
        for label, v in hidden:
            checks.finite_number(label, v, 0.0, 1.0)
        if family == "cosine":
            return make_schedule("cosine", T, cosine_s=cosine_s, zero_terminal_snr=zero)
        return make_schedule(family, T, beta_start=beta_start, beta_end=beta_end, zero_terminal_snr=zero)

    @staticmethod
    def defaults_for(family):
        """The family's default β range (shown for linear-type families) or cosine s (shown for cosine)."""
        cosine = family == "cosine"
        beta_start, beta_end = DEFAULT_BETAS.get(family, DEFAULT_BETAS["linear"])
        return (gr.update(value=beta_start, visible=not cosine), gr.update(value=beta_end, visible=not cosine),
                gr.update(value=DEFAULT_COSINE_S, visible=cosine))


DIGIT_CHOICES = [(DIGIT_LABELS.get(d, d), d) for d in DIGITS]
DEFAULTS = RunSettings(make_schedule("linear", DEFAULT_T))  # what the Reverse controls show first


class RunControls:
    """Schedule, sampler, DDIM steps / η / spacing, digit class, guidance, seed and samples of one reverse run.

    ``parse`` gives the :class:`RunSettings` they describe (validated there, once).
    """

    FIELDS = ("sampler", "steps", "eta", "spacing", "digit", "guidance", "seed", "n")
    NAMES = ("family", "T", "beta_start", "beta_end", "cosine_s", "zero_terminal_snr") + FIELDS  # the API's names

    def __init__(self, api_prefix: str = "reverse"):
        d = DEFAULTS
        # what the run will do and roughly how long it takes, before it starts (kept up to date below)
        self.plan = gr.Markdown(self.plan_text(d), elem_id=f"{api_prefix}-plan")
        self.schedule = ScheduleControls("linear", api_prefix=api_prefix)
        with gr.Row():
            self.sampler = gr.Radio(list(SAMPLERS), value=d.sampler, label="sampler", elem_id=f"{api_prefix}-sampler")
            self.spacing = gr.Dropdown(list(SPACINGS), value=DEFAULT_SPACING, label="DDIM timestep spacing",
                                       info="see the plan above",
                                       elem_id=f"{api_prefix}-spacing")
        self.steps = gr.Slider(1, MAX_RECORDED_STEPS, value=d.steps, step=1, label="DDIM steps (DDPM takes all T)",
                               elem_id=f"{api_prefix}-steps")
        self.eta = gr.Slider(0.0, 1.0, value=d.eta, step=0.05, label="DDIM η (0 = deterministic, 1 = DDPM-like noise)")
        # each on a line of its own: side by side the digit names were clipped and the guidance label wrapped
        self.digit = gr.Dropdown(DIGIT_CHOICES, value=d.digit, label="digit class", elem_id=f"{api_prefix}-digit")
        self.guidance = gr.Slider(0.0, MAX_GUIDANCE, value=d.guidance, step=0.5, label="guidance w",
                                  info="0 = unconditional, 1 = conditional, above 1 = the class pushed harder",
                                  elem_id=f"{api_prefix}-guidance")
        with gr.Row():
            # no precision: NaN from the API reaches checks.seed (precision=0 fails to round it, without a message)
            self.seed = gr.Number(d.seed, label="seed", minimum=0, step=1, elem_id=f"{api_prefix}-seed")
            self.n = gr.Slider(1, MAX_SAMPLES, value=d.n, step=1, label="samples")

        def run_plan(*values):
            """The plan of the run the controls describe, or what is wrong with them (as text: nothing runs yet)."""
            try:
                return self.plan_text(self.parse(*values))
            except (ValueError, TypeError) as e:
                return f"⚠️ {e}"

        # the API names each value as reverse_sample does
        run_plan.__signature__ = inspect.Signature(
            [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in self.NAMES])
        gr.on([c.change for c in self.inputs], run_plan, inputs=self.inputs, outputs=self.plan,
              api_name=f"{api_prefix}_run_plan", trigger_mode="always_last", show_progress="hidden")

    @property
    def inputs(self) -> list:
        return [*self.schedule.inputs, *(getattr(self, name) for name in self.FIELDS)]

    @staticmethod
    def plan_text(run: RunSettings) -> str:
        """Which timesteps the run visits and roughly how long it takes (readouts.run_plan)."""
        return readouts.run_plan(run.schedule, run.sampler, run.steps, run.spacing, run.n, run.digit, run.guidance)

    def parse(self, *values) -> RunSettings:
        k = len(self.schedule.inputs)
        return RunSettings(self.schedule.parse(*values[:k]), **dict(zip(self.FIELDS, values[k:], strict=True)))

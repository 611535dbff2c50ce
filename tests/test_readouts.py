"""explorer.readouts: numbers at t, their formatting, the math panel and schedule diagnostics."""

import math

import pytest

from explorer import readouts
from explorer.schedules import make_schedule

LINEAR = make_schedule("linear", 1000)


@pytest.mark.parametrize("v, text", [(math.inf, "∞"), (-math.inf, "−∞"), (0.0, "0"), (1.0, "1"),
                                     (4.0358e-05, "4.0358e−5"), (0.52409, "0.52409"), (-0.5, "−0.5")])
def test_format_number(v, text):
    assert readouts.format_number(v) == text


def test_latex_number_infinity_and_exponent():
    assert readouts.latex_number(math.inf) == r"\infty"
    assert readouts.latex_number(4.0358e-05) == r"4.0358 \times 10^{-5}"


def test_numbers_at_t0_are_clean_image():
    n = readouts.timestep_numbers(LINEAR, 0)
    assert (n["beta"], n["alpha_bar"], n["snr"], n["log_snr"]) == (0.0, 1.0, math.inf, math.inf)


def test_numbers_come_from_the_schedule_arrays():
    n = readouts.timestep_numbers(LINEAR, 1000)
    assert n["alpha_bar"] == LINEAR.alpha_bars[1000] and n["alpha_bar"] == pytest.approx(4.04e-5, rel=0.01)


@pytest.mark.parametrize("t", [-1, 1001, 2.5, math.nan, "3", None])
def test_bad_timestep_is_refused(t):
    with pytest.raises(ValueError, match="timestep t"):
        readouts.timestep_numbers(LINEAR, t)


def test_formatted_numbers_cover_every_t():
    text = readouts.formatted_numbers(make_schedule("cosine", 10, zero_terminal_snr=True))
    assert len(text["snr"]) == 11 and text["snr"][0] == "∞" and text["log_snr"][10] == "−∞"


def test_math_panel_substitutes_the_numbers():
    md = readouts.math_panel(LINEAR, 250)
    assert "x_{250} = 0.72394" in md and r"\bar\alpha_{250} = 0.52409" in md
    assert r"\infty" in readouts.math_panel(LINEAR, 0)


def test_diagnostics_linear():
    d = readouts.diagnostics(LINEAR)
    assert d["alpha_bar_T"] == pytest.approx(4.04e-5, rel=0.01)
    t = d["t_snr_1"]
    assert LINEAR.snr[t] <= 1.0 < LINEAR.snr[t - 1]
    assert d["share_mostly_noise"] == pytest.approx((LINEAR.sqrt_alpha_bars[1:] < 0.1).mean())


def test_diagnostics_zero_terminal_snr():
    d = readouts.diagnostics(make_schedule("linear", 1000, zero_terminal_snr=True))
    assert d["alpha_bar_T"] == 0.0 and d["snr_T"] == 0.0 and d["log_snr_T"] == -math.inf


def test_diagnostics_row_is_strings():
    row = readouts.diagnostics_row("A", LINEAR)
    assert len(row) == len(readouts.DIAGNOSTIC_HEADERS) and all(isinstance(c, str) for c in row)


def test_timestep_at_fraction():
    assert readouts.timestep_at_fraction(LINEAR, 0.5) == 500
    assert readouts.timestep_at_fraction(make_schedule("cosine", 50), 0.5) == 25
    with pytest.raises(ValueError, match="fraction"):
        readouts.timestep_at_fraction(LINEAR, 1.5)


# ---- issue 14, items 6, 9, 10: what the screen says


def test_diagnostics_show_alpha_bar_T_with_the_precision_of_every_other_readout():
    s = make_schedule("linear", 1000)
    assert readouts.diagnostics_row("A", s)[2] == readouts.format_number(s.alpha_bars[s.T]) == "4.0358e−5"


def test_diagnostics_row_marks_the_current_zero_terminal_snr_setting():
    s = make_schedule("linear", 1000)
    assert readouts.diagnostics_row("A", s, current=True)[1] == "off (current)"
    assert readouts.diagnostics_row("A", s)[1] == "off"


def test_diagnostics_explain_what_mostly_noise_means():
    assert "√ᾱ_t < 0.1" in readouts.DIAGNOSTIC_HEADERS[-1] and "10%" in readouts.DIAGNOSTICS_NOTE


def test_counts_say_one_step_not_one_steps():
    assert (readouts.count(1, "step"), readouts.count(50, "step")) == ("1 step", "50 steps")


def test_run_plan_says_leading_spacing_starts_below_T():
    plan = readouts.run_plan(make_schedule("linear", 500), "ddim", 10, "leading", 1, "none", 0.0)
    assert "t = 451," in plan and "leading" in plan


def test_run_plan_says_one_linspace_step_returns_pure_noise():
    plan = readouts.run_plan(make_schedule("linear", 500), "ddim", 1, "linspace", 1, "none", 0.0)
    assert "t = 1 → 0" in plan and "pure noise" in plan


def test_run_plan_warns_before_a_long_ddpm_run_and_not_before_a_short_ddim_run():
    s = make_schedule("linear", 1000)
    assert "Long run" in readouts.run_plan(s, "ddpm", 50, "trailing", 16, "mixed", 3.0)
    assert "Long run" not in readouts.run_plan(s, "ddim", 50, "trailing", 16, "mixed", 3.0)


def test_guidance_doubles_the_passes_only_when_it_mixes_two_predictions():
    assert readouts.model_passes(10, 4, "mixed", 3.0) == 80
    assert readouts.model_passes(10, 4, "none", 3.0) == readouts.model_passes(10, 4, "7", 1.0) == 40


def test_schedule_labels_use_the_symbols_of_the_controls():
    label = make_schedule("linear", 1000).label
    assert "β_start=0.0001" in label and "beta_start" not in label
    assert "zero terminal SNR" in make_schedule("cosine", 1000, zero_terminal_snr=True).label


def test_math_panel_keeps_the_steps_noise_z_apart_from_the_closed_forms_epsilon():
    text = readouts.math_panel(make_schedule("linear", 1000), 250)
    assert "z_{250}" in text and "(not any one $z_t$)" in text and "\\varepsilon" in text

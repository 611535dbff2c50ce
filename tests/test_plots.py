"""explorer.plots: figures of a schedule with a marker at t, histogram vs N(0, 1), compare overlays."""

import numpy as np
import pytest

from explorer import plots
from explorer.schedules import make_schedule

LINEAR = make_schedule("linear", 1000)
COSINE_ZERO = make_schedule("cosine", 1000, zero_terminal_snr=True)


def _trace(fig, meta):
    return next(tr for tr in fig.data if tr.meta == meta)


def _shape(fig, name):
    return next(sh for sh in fig.layout.shapes if sh.name == name)


def test_coefficients_marker_sits_on_the_curves_at_t():
    fig = plots.coefficients_figure(LINEAR, 300)
    for key, values in [("alpha_bar", LINEAR.alpha_bars), ("sqrt_alpha_bar", LINEAR.sqrt_alpha_bars),
                        ("sqrt_one_minus_alpha_bar", LINEAR.sqrt_one_minus_alpha_bars)]:
        marker = _shape(fig, f"marker:{key}")
        assert marker.xanchor == 300 and marker.yanchor == pytest.approx(values[300]) and marker.visible
    assert (_shape(fig, "vline").x0, _shape(fig, "vline").x1) == (300, 300)


def test_coefficients_figure_draws_all_four_curves():
    names = {tr.name for tr in plots.coefficients_figure(LINEAR, 0).data}
    assert {"ᾱ_t", "√ᾱ_t", "√(1-ᾱ_t)"} <= names and any(n and n.startswith("β_t") for n in names)


def test_log_snr_infinities_are_gaps_not_numbers():
    fig = plots.log_snr_figure(COSINE_ZERO, 0)
    curve = fig.data[0]
    assert curve.y[0] is None and curve.y[-1] is None  # +inf at t=0, -inf at t=T
    assert all(v is not None and np.isfinite(v) for v in curve.y[1:-1])
    assert _shape(fig, "marker:log_snr").visible is False  # no marker at +inf
    fig.to_json()  # JSON-serialisable (no inf/NaN)


def test_log_snr_marker_moves_with_t():
    assert _shape(plots.log_snr_figure(LINEAR, 500), "marker:log_snr").yanchor == pytest.approx(LINEAR.log_snr[500])


def test_histogram_of_standard_normal_matches_density():
    values = np.random.default_rng(0).standard_normal(200_000)
    density = plots.histogram_density(values)
    edges = plots.histogram_edges()
    centers = (edges[:-1] + edges[1:]) / 2
    assert density == pytest.approx(np.exp(-centers**2 / 2) / np.sqrt(2 * np.pi), abs=0.01)


def test_histogram_figure_has_bars_and_normal_curve():
    fig = plots.histogram_figure(np.zeros(100), 3)
    assert _trace(fig, "hist").type == "bar"
    assert any(tr.name == "N(0, 1)" for tr in fig.data)


def test_overlay_puts_schedules_of_different_T_on_t_over_T():
    short = make_schedule("cosine", 50)
    fig = plots.overlay_figure([("A", LINEAR), ("B", short)], "alpha_bar", 0.25)
    assert fig.data[0].x[-1] == 1.0 and fig.data[1].x[-1] == 1.0
    assert _shape(fig, "vline").x0 == 0.25


def test_overlay_refuses_unknown_key():
    with pytest.raises(ValueError):
        plots.overlay_figure([("A", LINEAR)], "betas", 0.5)


# ---- issue 14, item 7: plots that read at a glance


def test_beta_is_drawn_on_a_linear_axis_so_a_linear_schedule_is_straight():
    axis = plots.coefficients_figure(LINEAR, 0).layout.yaxis2
    assert axis.type == "linear" and "linear" in axis.title.text


@pytest.mark.parametrize("figure", [plots.coefficients_figure, plots.log_snr_figure])
def test_markers_at_t_equals_T_are_not_clipped_by_the_axis_range(figure):
    fig = figure(LINEAR, LINEAR.T)
    lo, hi = fig.layout.xaxis.range
    assert lo < 0 and hi > LINEAR.T
    marker = next(sh for sh in fig.layout.shapes if sh.name.startswith("marker:"))
    y_lo, y_hi = fig.layout.yaxis.range
    assert y_lo < marker.yanchor < y_hi and y_hi > max(v for v in fig.data[0].y if v is not None)


def test_log_snr_infinity_note_sits_above_the_plot_where_the_t_line_cannot_cross_it():
    note = next(a for a in plots.log_snr_figure(COSINE_ZERO, 500).layout.annotations if "+∞" in a.text)
    assert note.yref == "paper" and note.y >= 1 and note.yanchor == "bottom"


def test_log_snr_title_has_the_parentheses_of_log_of_a_ratio():
    assert "log(ᾱ_t / (1 − ᾱ_t))" in plots.log_snr_figure(LINEAR, 0).layout.title.text


@pytest.mark.parametrize("fig", [plots.coefficients_figure(LINEAR, 0), plots.log_snr_figure(LINEAR, 0),
                                 plots.histogram_figure(np.zeros(10), 0),
                                 plots.overlay_figure([("A", LINEAR)], "alpha_bar", 0.5)])
def test_figures_have_transparent_backgrounds_so_dark_mode_shows_through(fig):
    assert fig.layout.paper_bgcolor == plots.CLEAR and fig.layout.plot_bgcolor == plots.CLEAR


def test_histogram_shades_the_clipped_display_range_and_says_so():
    fig = plots.histogram_figure(np.zeros(10), 0)
    band = _shape(fig, "display_range")
    assert (band.x0, band.x1) == (-1.0, 1.0)
    assert any("clipped" in a.text for a in fig.layout.annotations)

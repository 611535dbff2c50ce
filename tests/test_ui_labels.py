"""What the Reverse and img2img features write (issue 14, items 4, 10): notation rendered, counts that agree."""

import dataclasses

import torch

from explorer import trajectory as tr
from explorer.runs import RunSettings, initial_noise
from explorer.schedules import make_schedule
from explorer.ui.img2img import DEFAULT_IMG2IMG_DIGIT, drivers
from explorer.ui.reverse import frame_rows
from tiny_models import tiny_model

S = make_schedule("linear", 20)


def _traj():
    x, g = initial_noise(0, 1)
    return tr.record_all(lambda x_t, t: torch.zeros_like(x_t), S, x, g, sampler="ddpm")


def test_the_numbers_table_writes_alpha_bar_at_t_prev_without_raw_latex():
    _, rows = frame_rows(_traj(), 3)
    names = [name for name, _ in rows]
    assert "ᾱ at t_prev" in names and not any("{" in n for n in names)


def test_the_reverse_step_noise_is_z_not_the_closed_forms_epsilon():
    _, rows = frame_rows(_traj(), 3)
    assert any(name.startswith("σ_t") and "z" in name for name, _ in rows)


def test_img2img_defaults_to_no_class_and_says_the_input_alone_drives_it():
    run = RunSettings(S, steps=5, digit=DEFAULT_IMG2IMG_DIGIT)
    assert DEFAULT_IMG2IMG_DIGIT == "none" and "nothing but the noised input" in drivers(run)
    assert "class 7" in drivers(RunSettings(S, steps=5, digit="7", guidance=3.0))


def sampled_outputs(run: RunSettings, plotted=None) -> list:
    """Every output the Reverse tab's run streams, on the tiny random UNet (``plotted``: the page's plots)."""
    from explorer.model import ModelProvider
    from explorer.ui.reverse import sample_frames

    model = tiny_model()
    return list(sample_frames(ModelProvider(lambda: (model, {"parameters": 1, "weights": "random"})), run,
                              plotted=plotted))


def test_sampling_plots_the_runs_own_schedule_right_after_the_first_frame_so_markers_follow_the_steps():
    """The first streamed frame goes alone (one Plotly render less before it is painted); the next output carries
    the run's own curves, so the markers that follow the steps sit on them."""
    import gradio as gr
    import plotly.graph_objects as go

    outputs = sampled_outputs(RunSettings(S, sampler="ddpm", n=1, digit="none"))
    assert len(outputs) >= 2
    assert all(isinstance(f, type(gr.skip())) for f in outputs[0][4:6])  # the first frame: no plots
    coef_fig = outputs[1][4]
    assert isinstance(coef_fig, go.Figure)
    assert max(coef_fig.data[0].x) == S.T  # the run's T = 20 curves, not the page's first schedule (T = 1000)
    # once: the page keeps them, and a second Plotly render at the end delayed the last frame's paint
    assert [isinstance(out[4], go.Figure) for out in outputs] == [False, True] + [False] * (len(outputs) - 2)
    assert [isinstance(out[5], go.Figure) for out in outputs] == [False, True] + [False] * (len(outputs) - 2)


def test_a_run_with_no_second_chunk_plots_its_schedule_with_its_last():
    import plotly.graph_objects as go

    outputs = sampled_outputs(RunSettings(S, sampler="ddim", steps=1, n=1, digit="none"))
    assert [isinstance(out[4], go.Figure) for out in outputs][-1]
    assert sum(isinstance(out[4], go.Figure) for out in outputs) == 1


def test_a_run_of_the_schedule_the_page_plots_sends_no_plots_and_another_schedule_is_remembered():
    """Plots the page already shows are not re-sent (each costs a Plotly render in the page, CPU taken from the
    run); a run of another schedule sends its own and the session remembers it as plotted."""
    import plotly.graph_objects as go

    run = RunSettings(S, sampler="ddpm", n=1, digit="none")
    same = sampled_outputs(run, plotted=dataclasses.replace(S))  # an equal schedule, not the same object
    assert not any(isinstance(f, go.Figure) for out in same for f in out[4:6])
    assert not any(isinstance(out[6], type(S)) for out in same)
    other = sampled_outputs(run, plotted=make_schedule("cosine", 20))
    sent = [i for i, out in enumerate(other) if isinstance(out[4], go.Figure)]
    assert sent == [1] and other[1][6] == S

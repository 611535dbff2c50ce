"""Tiny SD tab ("Stable Diffusion in miniature"): type a prompt, watch every part of a latent diffusion model work.

Layout and wiring only: the model, sampling and every number come from explorer.latent. A run streams
from a generator; each update sends the frames recorded so far once (uint8 arrays, explorer.latent.frames)
and the page's static/tiny_sd.js draws any step into canvases as the step slider moves (no request).
`tiny_sd_frame` returns the same bytes from the server for a check. User text is shown as text only.
"""

from __future__ import annotations

import functools
import html
import json
import time
from dataclasses import dataclass

import gradio as gr
import numpy as np
import torch

from .. import data, render
from ..checks import whole_number
from ..latent import frames as fr
from ..latent.autoencoder import psnr
from ..latent.pipeline import (
    DEFAULT_GUIDANCE, DEFAULT_SCHEDULE, PromptSettings, decode, encode, load_tiny_sd,
    sample_images, sample_steps,
)
from ..latent.tokenizer import UNK, tokenize
from ..samplers import SAMPLERS
from ..schedules import SCHEDULE_NAMES
from .common import image_file, served_image_path, user_errors
from .cores import beside, share_cores_with, side_by_side
from .controls import bind
from .image_input import ImageInput

UI_MAX_SAMPLES = 16
DEFAULT_SAMPLES = 16
STREAM_EVERY_S = 0.5  # at most this often a partial run is sent to the page while sampling (the first step at once)
STAGES = (("text", "text encoder"), ("unet", "UNet ⟲ scheduler"), ("decoder", "decoder"))
EXAMPLE_DIGITS = [str(p) for p in data.EXAMPLES if p.name.startswith("mnist_")]


@functools.lru_cache(maxsize=1)
def model():
    return load_tiny_sd()


@functools.lru_cache(maxsize=1)
def pixel_model():
    from ..model import load_pretrained

    return load_pretrained()[0]


@dataclass(frozen=True)
class RunRequest:
    """One run of the tab, validated by :meth:`checked`."""

    settings: PromptSettings
    detailed: int  # samples whose every step goes to the page

    @classmethod
    def checked(cls, prompt, negative, guidance, seed, sampler, steps, schedule, n) -> "RunRequest":
        settings = PromptSettings.checked(prompt, negative, guidance, seed, sampler, steps, 0.0, schedule, n,
                                          max_samples=UI_MAX_SAMPLES)
        return cls(settings, min(settings.n, fr.MAX_DETAILED))


# ---------------------------------------------------------------- handlers


def tokens_html(prompt, negative="") -> str:
    """The tokens as the encoder sees them, unknown words flagged; all user text escaped."""
    parts = []
    for label, text in (("prompt", prompt), ("negative prompt", negative)):
        if not isinstance(text, str):
            raise ValueError(f"The {label} must be text, got {type(text).__name__}.")
        tok = tokenize(text)
        chips = "".join(
            f'<span class="tsd-token{" tsd-unknown" if lab == UNK else ""}" title="{html.escape(word)}">'
            f'{html.escape(word if lab == UNK else lab)}</span>'
            for lab, word in zip(tok.labels(), ["", *tok.words, ""])
        )
        notes = []
        if tok.is_empty:
            notes.append("empty: this is the unconditional branch" if label == "prompt"
                         else "empty: guidance uses the empty prompt as the unconditional branch")
        if tok.unknown:
            notes.append("not in the vocabulary, read as &lt;unk&gt;: " + ", ".join(html.escape(w) for w in tok.unknown))
            if len(tok.unknown) == len(tok.words):
                notes.append("only unknown words: the model gets no usable description")
        if tok.truncated:
            notes.append("cut to the first 14 words (the context holds 16 tokens)")
        note = f'<div class="tsd-note">{"; ".join(notes)}</div>' if notes else ""
        parts.append(f'<div><b>{label}</b> <div class="tsd-tokens">{chips}</div>{note}</div>')
    return "".join(parts)


def pipeline_html(active: str | None = None) -> str:
    boxes = [f'<span class="tsd-stage{" tsd-active" if key == active else ""}" data-stage="{key}">{name}</span>'
             for key, name in STAGES]
    return '<div class="tsd-pipe">prompt →' + ' <span class="tsd-arrow">→</span> '.join(boxes) + "→ image</div>"


def _token_labels(prompt: str) -> tuple[list[str], list[bool]]:
    tok = tokenize(prompt)
    labels = [w if lab == UNK else lab for lab, w in zip(tok.labels(), ["", *tok.words, ""])]
    return labels, [lab == UNK for lab in tok.labels()]


def run_frames(req: RunRequest):
    """Sampling as a generator of (stage, RunFrames, final images or None)."""
    m = model()
    labels, unknown = _token_labels(req.settings.prompt)
    frames = fr.RunFrames(labels, unknown)
    yield "text", frames, None
    keep = set(fr.frame_indices(total_steps(req.settings)))

    def recorded(step, decoding):
        frames.add(m, step, req.detailed, decoding.result())
        return "unet", frames, None

    # A kept step is recorded one step late: its decoding (ẑ_0 and z_t in pixels) runs on the second core beside
    # the next step's UNet passes, where it would wait for them (the page 1.87 / 2.23 → 1.66 / 1.90 s, alternating).
    z, pending = None, None
    for k, step in enumerate(sample_steps(m, req.settings, record_attention=True, pair=side_by_side)):
        if pending is not None:
            yield recorded(*pending)
            pending = None
        if k in keep:
            pending = step, beside(functools.partial(fr.decode_step, m, step, req.detailed))
        z = step.record.x_prev
    if pending is not None:
        yield recorded(*pending)
    yield "decoder", frames, None
    yield "done", frames, decode(m, z)


def total_steps(settings: PromptSettings) -> int:
    return settings.steps if settings.sampler == "ddim" else 1000  # DDPM visits every t of the T = 1000 schedule


@dataclass
class TabRun:
    """The session's last run as recorded so far (a gr.State: what ``tiny_sd_frames`` sends again)."""

    frames: fr.RunFrames
    stage: str
    total: int
    n: int

    def scene(self, start: int = 0) -> str:
        return json.dumps(self.frames.scene(self.stage, self.total, self.n, start), separators=(",", ":"))


def sample_run(req: RunRequest):
    """Stream a run: the run so far (state), pipeline stage and frames (JSON for the page), the final grid, a
    status line.

    Each output carries only the frames recorded since the last one (the page appends them: each frame goes
    once; sending every frame so far each time sent 3.8 MB for the default run, and a last output with every
    frame cost the page 0.15 s). The whole run is ``tiny_sd_frames`` (:func:`whole_run`), which the page also
    asks for if a part went missing on the way."""
    started = time.perf_counter()
    last_sent = 0.0
    sent = 0  # the page holds frames 0 … sent - 1
    total = total_steps(req.settings)
    recorded = len(fr.frame_indices(total))  # frames the run records in all
    for stage, frames, images in run_frames(req):
        now = time.perf_counter()
        if stage == "unet" and sent and now - last_sent < STREAM_EVERY_S and len(frames.t) < recorded:
            continue  # the first recorded step goes at once (the page draws it), the rest every STREAM_EVERY_S
        last_sent = now
        run = TabRun(frames, stage, total, req.detailed)
        scene, sent = run.scene(sent), len(frames.t)
        if images is None:
            yield run, scene, gr.update(), f"{stage}: step {sent} of {recorded} recorded"
        else:
            grid = image_file(render.grid_image(images), "tiny_sd")
            yield run, scene, grid, f"done in {time.perf_counter() - started:.2f} s ({req.settings.n} samples)"


def whole_run(run: TabRun | None) -> str:
    """Every frame of the session's last run so far, as one scene (start = 0)."""
    if run is None:
        raise ValueError("No run yet: press Generate first.")
    return run.scene()


def frame_api(req: RunRequest, k, sample) -> dict:
    """Frame k of detailed sample `sample` of this run, computed on the server (the bytes the page draws)."""
    frames = None
    for _, frames, _ in run_frames(req):
        pass
    k = whole_number("The frame", k, 0, len(frames.t) - 1)
    i = whole_number("The sample", sample, 0, req.detailed - 1)
    return frames.frame(k, i)


def compare_prompts(prompt_a, prompt_b, guidance, seed, steps, n):
    """Two prompts, the same seed (the same z_T) and the run's DDIM steps: two grids side by side."""
    out = []
    for p in (prompt_a, prompt_b):
        settings = PromptSettings.checked(p, "", guidance, seed, "ddim", steps, 0.0, DEFAULT_SCHEDULE, n,
                                          max_samples=UI_MAX_SAMPLES)
        x = sample_images(model(), settings, pair=side_by_side)
        out.append(image_file(render.grid_image(x), "tiny_sd_compare"))
    return tuple(out)


def round_trip(image_path):
    """An image → encoder → 4 latent channels → decoder, with the reconstruction's PSNR."""
    im = data.load_image(served_image_path(image_path))
    x, inverted = fr.digit_image_tensor(im)  # (1, 1, 28, 28)
    m = model()
    z = encode(m, x)  # (1, 4, 7, 7)
    x_hat = decode(m, z)
    latent = fr.latent_to_uint8(z)[0]  # (4, 7, 7) uint8, as the viewer draws z_t
    latent_strip = render.strip(list(latent), labels=[f"z[{c}]" for c in range(4)], min_side=84)
    quality = float(psnr(x_hat, x)[0])
    note = f"PSNR {quality:.1f} dB (28×28 = 784 numbers → 4×7×7 = 196 → 784)"
    if inverted:
        note += "; the image had a bright background, so it was inverted (the model knows light ink on dark)"
    return (image_file(render.display(x[0]), "tiny_sd_in"), image_file(latent_strip, "tiny_sd_latent"),
            image_file(render.display(x_hat[0].clamp(-1, 1)), "tiny_sd_out"), note)


def drawing_file(sketch) -> str:
    """The sketchpad drawing as an MNIST-style 28×28 digit image file (the round trip's input)."""
    composite = sketch.get("composite") if isinstance(sketch, dict) else sketch
    return image_file(data.sketch_to_image(composite), "tiny_sd_drawing")


def cost_table(repeats=5) -> str:
    """ms per denoising step (16 samples, with guidance = 32 rows) of the pixel UNet and the latent UNet."""
    repeats = whole_number("Repeats", repeats, 1, 20)
    m, pm = model(), pixel_model()
    timings = {}
    with torch.inference_mode():
        x = torch.randn(32, 1, 28, 28)
        labels = torch.randint(0, 10, (32,))
        z = torch.randn(32, 4, 7, 7)
        context = torch.randn(32, 16, m.clip.config.width)
        lam = torch.zeros(32)
        for name, call in (("pixel", lambda: pm(x, lam, labels)), ("latent", lambda: m.unet(z, lam, context)),
                           ("decoder", lambda: decode(m, z[:16]))):
            call()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                call()
                times.append((time.perf_counter() - t0) * 1000)
            timings[name] = float(np.median(times))
    return (
        "| | pixel model (Reverse tab) | Tiny SD (latent) |\n|---|---|---|\n"
        "| numbers denoised per sample | 1×28×28 = **784** | 4×7×7 = **196** |\n"
        f"| ms per step, 16 samples with guidance (fp32) | {timings['pixel']:.1f} | {timings['latent']:.1f} |\n"
        f"| ms to decode 16 latents (once per run) | – | {timings['decoder']:.1f} |\n"
        f"\nMedian of {repeats} calls on this machine's CPU, one thread."
    )


# ---------------------------------------------------------------- layout and wiring

_VIEW_HTML = """
<div class="tsd-view">
  <div class="tsd-controls">
    <label>step <input class="tsd-step" type="range" min="0" max="0" value="0" aria-label="step"></label>
    <span>step <b data-key="step">–</b></span> <span>t = <b data-key="t">–</b></span>
    <span>ᾱ<sub>t</sub> = <b data-key="alpha_bar">–</b></span> <span>log-SNR = <b data-key="log_snr">–</b></span>
    <label>sample <input class="tsd-sample" type="range" min="0" max="0" value="0" aria-label="sample"></label>
    <span>sample <b data-key="sample">–</b></span>
  </div>
  <div class="tsd-row">
    <figure class="tsd-latent"><div class="tsd-row">
      <canvas width="7" height="7"></canvas><canvas width="7" height="7"></canvas>
      <canvas width="7" height="7"></canvas><canvas width="7" height="7"></canvas></div>
      <figcaption>z<sub>t</sub>: the 4 latent channels (7×7, −3 … 3)</figcaption></figure>
    <figure><canvas class="tsd-xt" width="28" height="28"></canvas><figcaption>decoded z<sub>t</sub></figcaption></figure>
    <figure><canvas class="tsd-x0" width="28" height="28"></canvas><figcaption>decoded ẑ<sub>0</sub></figcaption></figure>
  </div>
  <div>Cross-attention at this step: where each token is read (each map scaled to its own peak; % = its share of
  the attention, <span data-key="padding">–</span> goes to the padding)</div>
  <div class="tsd-attn"></div>
</div>
"""


class PromptControls:
    """Prompt and negative prompt (with the tokens the encoder sees), guidance, seed, sampler, steps, schedule,
    samples. ``parse`` gives the :class:`RunRequest` they describe (validated there, once)."""

    FIELDS = ("prompt", "negative", "guidance", "seed", "sampler", "steps", "schedule", "n")
    NAMES = FIELDS  # the API's names

    def __init__(self):
        with gr.Row():
            self.prompt = gr.Textbox("a thick 7", label="Prompt", max_lines=2, elem_id="tiny-sd-prompt")
            self.negative = gr.Textbox("", label="Negative prompt (replaces the empty prompt in guidance)",
                                       max_lines=2, elem_id="tiny-sd-negative")
        tokens = gr.HTML(tokens_html("a thick 7"), elem_id="tiny-sd-tokens")
        gr.on([self.prompt.change, self.negative.change], user_errors(tokens_html),
              inputs=[self.prompt, self.negative], outputs=tokens, trigger_mode="always_last",
              show_progress="hidden", api_name="tiny_sd_tokens")
        with gr.Row():
            self.guidance = gr.Slider(0, 10, value=DEFAULT_GUIDANCE, step=0.5, label="guidance w",
                                      elem_id="tiny-sd-guidance")
            self.seed = gr.Number(0, label="seed", precision=0, minimum=0)
            self.sampler = gr.Radio(list(SAMPLERS), value="ddim", label="sampler")
            self.steps = gr.Slider(1, 200, value=50, step=1, label="DDIM steps", elem_id="tiny-sd-steps")
            self.schedule = gr.Dropdown(list(SCHEDULE_NAMES), value=DEFAULT_SCHEDULE, label="schedule")
            self.n = gr.Slider(1, UI_MAX_SAMPLES, value=DEFAULT_SAMPLES, step=1, label="samples", elem_id="tiny-sd-n")

    @property
    def inputs(self) -> list:
        return [getattr(self, name) for name in self.FIELDS]

    @staticmethod
    def parse(prompt, negative, guidance, seed, sampler, steps, schedule, n) -> RunRequest:
        return RunRequest.checked(prompt, negative, guidance, seed, sampler, steps, schedule, n)


def build_run(controls: PromptControls) -> None:
    """Generate / Stop, the pipeline, and the step viewer the page draws from the streamed frames."""
    with gr.Row():
        run_btn = gr.Button("Generate", variant="primary", elem_id="tiny-sd-run")
        stop_btn = gr.Button("Stop")
    gr.HTML(pipeline_html(), elem_id="tiny-sd-pipeline")
    status = gr.Markdown(elem_id="tiny-sd-status")
    with gr.Row():
        gr.HTML(_VIEW_HTML, elem_id="tiny-sd-view")
        samples = gr.Image(label="samples", interactive=False, format="png", elem_classes=["tsd-images"],
                           elem_id="tiny-sd-samples", height=300)
    scene = gr.Textbox(visible=False, elem_id="tiny-sd-scene")  # the run's frames (JSON), drawn by tiny_sd.js
    scene.change(None, inputs=scene, js="(s) => window.ddpmTinySd.load(s)", show_progress="hidden",
                 api_name="tiny_sd_draw")
    state = gr.State(None)  # the session's last run (TabRun)
    fn, inputs = bind(sample_run, controls)
    run = run_btn.click(fn, inputs=inputs, outputs=[state, scene, samples, status], api_name="tiny_sd_sample",
                        concurrency_limit=2, show_progress="minimal")
    # every frame of the last run: for the API, and pressed by the page when a run's last part finds one missing
    whole = gr.Button("Send every frame", visible="hidden", elem_id="tiny-sd-repair")
    whole.click(user_errors(whole_run), inputs=state, outputs=scene, api_name="tiny_sd_frames",
                show_progress="hidden")
    stop_btn.click(None, cancels=[run], api_name="tiny_sd_stop")


def build_frame_check(controls: PromptControls) -> None:
    """One frame of the run computed on the server: what `tiny_sd_frame` returns."""
    with gr.Accordion("Check: one frame computed on the server (what `tiny_sd_frame` returns)", open=False):
        with gr.Row():
            frame_k = gr.Number(0, label="frame", precision=0, minimum=0)
            frame_sample = gr.Number(0, label="sample", precision=0, minimum=0)
            frame_btn = gr.Button("Compute frame")
        frame_json = gr.JSON(label="frame (uint8 pixels, attention shares)")
    fn, inputs = bind(frame_api, controls, frame_k, frame_sample)
    frame_btn.click(fn, inputs=inputs, outputs=frame_json, api_name="tiny_sd_frame", concurrency_limit=2)


def build_compare(controls: PromptControls) -> None:
    """Two prompts with the run's guidance, seed and steps: two grids side by side."""
    with gr.Accordion("Two prompts, same seed", open=False):
        with gr.Row():
            prompt_a = gr.Textbox("thin 4", label="prompt A", max_lines=1)
            prompt_b = gr.Textbox("thick 4", label="prompt B", max_lines=1)
            compare_n = gr.Slider(1, UI_MAX_SAMPLES, value=8, step=1, label="samples each")
            compare_btn = gr.Button("Compare")
        with gr.Row():
            grid_a = gr.Image(label="A", interactive=False, format="png", elem_classes=["tsd-images"])
            grid_b = gr.Image(label="B", interactive=False, format="png", elem_classes=["tsd-images"])
        compare_btn.click(user_errors(compare_prompts),
                          inputs=[prompt_a, prompt_b, controls.guidance, controls.seed, controls.steps, compare_n],
                          outputs=[grid_a, grid_b], api_name="tiny_sd_compare", concurrency_limit=2)


def build_round_trip() -> None:
    """An image (bundled, uploaded or drawn) through the autoencoder and back."""
    with gr.Accordion("Autoencoder round trip", open=False):
        with gr.Row():
            with gr.Column():
                # image_mode=None: Gradio then keeps the client's path as it is, so served_image_path can refuse
                # files outside the upload folder and assets (a mode conversion would copy any file in first)
                ae_image = ImageInput(EXAMPLE_DIGITS[0] if EXAMPLE_DIGITS else None, type="filepath", image_mode=None,
                                      label="image", format="png", height=200, elem_id="tiny-sd-ae-image")
                gr.Examples([[p] for p in EXAMPLE_DIGITS], inputs=[ae_image], label="bundled digits")
                sketch = gr.Sketchpad(label="or draw a digit", canvas_size=(280, 280), layers=False,
                                      brush=gr.Brush(colors=["#000000"], color_mode="fixed", default_size=18))
                use_sketch = gr.Button("Use drawing")
                use_sketch.click(user_errors(drawing_file), inputs=sketch, outputs=ae_image,
                                 api_name="tiny_sd_drawing")
                ae_btn = gr.Button("Encode and decode", variant="primary")
            ae_in = gr.Image(label="x (28×28)", interactive=False, format="png", elem_classes=["tsd-images"])
            ae_latent = gr.Image(label="z = E(x): 4 channels of 7×7", interactive=False, format="png",
                                 elem_classes=["tsd-images"])
            ae_out = gr.Image(label="D(z)", interactive=False, format="png", elem_classes=["tsd-images"])
        ae_note = gr.Markdown()
    ae_btn.click(user_errors(round_trip), inputs=ae_image, outputs=[ae_in, ae_latent, ae_out, ae_note],
                 api_name="tiny_sd_round_trip")


def build_cost() -> None:
    """ms per denoising step of the pixel UNet and the latent UNet, measured on this machine."""
    with gr.Accordion("Cost: pixel model vs latent model", open=False):
        cost_btn = gr.Button("Measure on this machine")
        cost = gr.Markdown("| | pixel model | Tiny SD |\n|---|---|---|\n| numbers denoised per sample | 784 | 196 |")
        cost_btn.click(user_errors(cost_table), outputs=cost, api_name="tiny_sd_cost", concurrency_limit=1)


def build_tiny_sd_tab(demo: gr.Blocks) -> None:
    """The tab: the run's controls, the run and its viewer, then the accordions that reuse its settings."""
    share_cores_with(demo)  # a run takes the second core only while no other event of the page is processed
    gr.Markdown(
        "Stable Diffusion in miniature, trained on this CPU: a **text encoder** (a tiny CLIP) turns the prompt "
        "into token embeddings, a **UNet** denoises a 4×7×7 **latent** while reading them through "
        "cross-attention, and the autoencoder's **decoder** turns the latent into a 28×28 digit. Guidance: "
        "ε = ε(empty or negative prompt) + w·(ε(prompt) − ε(empty or negative prompt)). Words it knows: digits "
        "(7 or seven), thin / normal / thick, slanted left / upright / slanted right."
    )
    controls = PromptControls()
    build_run(controls)
    build_frame_check(controls)
    build_compare(controls)
    build_round_trip()
    build_cost()

"""The Tiny SD pipeline: prompt → text encoder → UNet ⟲ scheduler → decoder (no gradio imports).

Sampling reuses :func:`explorer.samplers.reverse_loop` (DDPM / DDIM, any schedule) on the scaled latents
z (B, 4, 7, 7), with x̂_0 not clipped (latents are not bounded to [-1, 1]; SD's ``clip_sample=False``).
Guidance is :func:`explorer.diffusion.classifier_free_guidance` with the empty prompt as the
unconditional branch, or the negative prompt in its place when one is given. Images come back as
D(z / scaling_factor) in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch

from .. import checks
from ..diffusion import classifier_free_guidance
from ..model import one_after_another
from ..samplers import DEFAULT_SPACING, SAMPLERS, EpsFn, StepRecord, reverse_loop, sampling_schedule
from ..schedules import SCHEDULE_NAMES, Schedule, make_schedule
from .autoencoder import LATENT_SHAPE, Autoencoder, AutoencoderConfig
from .checkpoint import DEFAULT_CARD, load_part, read_card
from .text_encoder import ClipConfig, TinyClip
from .tokenizer import Tokens, token_ids, tokenize
from .unet import LatentUNet, LatentUNetConfig, cross_attention_maps

DEFAULT_SCHEDULE = "scaled_linear"  # SD's
DEFAULT_GUIDANCE = 3.0
MAX_SAMPLES = 64  # per call from the UI / API
MAX_GUIDANCE = 20.0


@dataclass(frozen=True)
class TinySD:
    """The three trained parts and what ties them together."""

    autoencoder: Autoencoder
    clip: TinyClip  # .text is the frozen text encoder; .image served only its training
    unet: LatentUNet
    scaling_factor: float
    card: dict = field(repr=False)

    @property
    def text_encoder(self):
        return self.clip.text


def build_tiny_sd(scaling_factor: float = 1.0, card: dict | None = None) -> TinySD:
    """Randomly initialised, frozen parts of the default sizes (for tests)."""
    parts = (Autoencoder(), TinyClip(), LatentUNet())
    for part in parts:
        part.eval().requires_grad_(False)
    return TinySD(*parts, scaling_factor, card or {})


def load_tiny_sd(card_file: Path | str = DEFAULT_CARD) -> TinySD:
    """Load the three parts after checking each file's SHA-256 against the one model card (CheckpointError)."""
    card_file = Path(card_file)
    card = read_card(card_file)
    ae = load_part(card_file, card, "autoencoder", lambda c: Autoencoder(AutoencoderConfig.from_dict(c)))
    clip = load_part(card_file, card, "clip", lambda c: TinyClip(ClipConfig.from_dict(c)))
    unet = load_part(card_file, card, "unet", lambda c: LatentUNet(LatentUNetConfig.from_dict(c)))
    for part in (ae, unet):  # channels-last convolutions: on this CPU the UNet −6 %, the decoder −35 % a call
        part.to(memory_format=torch.channels_last)
    if "scaling_factor" not in card:
        from ..model import CheckpointError

        raise CheckpointError("The model card has no scaling_factor; finish training with `python -m explorer.latent.train`.")
    return TinySD(ae, clip, unet, float(card["scaling_factor"]), card)


@dataclass(frozen=True)
class PromptSettings:
    """One text-to-image request, validated by :meth:`checked`."""

    prompt: str
    negative_prompt: str = ""
    guidance: float = DEFAULT_GUIDANCE
    seed: int = 0
    sampler: str = "ddim"
    steps: int = 50
    eta: float = 0.0
    schedule: str = DEFAULT_SCHEDULE
    n: int = 16

    @classmethod
    def checked(cls, prompt, negative_prompt="", guidance=DEFAULT_GUIDANCE, seed=0, sampler="ddim", steps=50,
                eta=0.0, schedule=DEFAULT_SCHEDULE, n=16, max_samples: int = MAX_SAMPLES) -> "PromptSettings":
        for label, text in (("The prompt", prompt), ("The negative prompt", negative_prompt)):
            if not isinstance(text, str):
                raise ValueError(f"{label} must be text, got {type(text).__name__}.")
        return cls(
            prompt=prompt, negative_prompt=negative_prompt,
            guidance=checks.finite_number("Guidance", guidance, -MAX_GUIDANCE, MAX_GUIDANCE),
            seed=checks.seed(seed), sampler=checks.one_of("sampler", sampler, SAMPLERS),
            steps=checks.whole_number("Steps", steps, 1, 1000), eta=checks.finite_number("eta", eta, 0.0, 1.0),
            schedule=checks.one_of("schedule", schedule, SCHEDULE_NAMES),
            n=checks.whole_number("The number of samples", n, 1, max_samples),
        )


@torch.inference_mode()
def encode_prompts(model: TinySD, prompts: list[str]) -> tuple[torch.Tensor, list[Tokens]]:
    """The frozen text encoder's hidden states (B, L, D) and the tokens it saw."""
    tokens = [tokenize(p) for p in prompts]
    return model.text_encoder(token_ids(prompts)), tokens


def latent_eps_fn(model: TinySD, s: Schedule, context: torch.Tensor, uncond_context: torch.Tensor,
                  guidance: float, attention_out: list | None = None, pair=None) -> EpsFn:
    """ε̂(z_t, t) with classifier-free guidance ε = ε_uncond + w · (ε_cond − ε_uncond).

    ``context`` / ``uncond_context`` (B, L, D): the prompt's and the unconditional (empty or negative)
    prompt's hidden states. The UNet is conditioned on λ_t of the schedule, so any schedule drives it.
    Given a list ``attention_out``, each call appends the prompt's cross-attention maps (B, L, 7, 7)
    (None at w = 0, where the prompt is not read). Guidance makes two UNet calls of the batch, the prompt's
    and the unconditional one, as the digit model's :func:`explorer.model.guided_eps`; ``pair(f, g)`` returns
    ``(f(), g())`` (default: one after the other; the app's runs make them side by side when alone, and a pair
    that runs g in another thread gives it this thread's inference mode: explorer.ui.cores).
    """
    s = sampling_schedule(s)  # finite λ_T under zero terminal SNR

    def eps_fn(z: torch.Tensor, t: int) -> torch.Tensor:
        log_snr = torch.full((z.shape[0],), float(s.log_snr[t]), dtype=torch.float32)  # (B,)
        attention = [] if attention_out is not None else None
        with torch.inference_mode():
            if guidance == 0.0:
                eps = model.unet(z, log_snr, uncond_context)
            elif guidance == 1.0:
                eps = model.unet(z, log_snr, context, attention)
            else:
                cond = lambda: model.unet(z, log_snr, context, attention)  # noqa: E731
                uncond = lambda: model.unet(z, log_snr, uncond_context)  # noqa: E731
                eps_cond, eps_uncond = (pair or one_after_another)(cond, uncond)
                eps = classifier_free_guidance(eps_uncond, eps_cond, guidance)
        if attention_out is not None:
            attention_out.append(cross_attention_maps(attention) if attention else None)
        return eps

    return eps_fn


@dataclass
class LatentStep:
    """One reverse step in latent space and the prompt's cross-attention maps at it."""

    record: StepRecord  # x_t, eps, x0_hat, x_prev are latents (B, 4, 7, 7)
    attention: torch.Tensor | None  # (B, L, 7, 7) or None


def sample_steps(model: TinySD, settings: PromptSettings, record_attention: bool = False,
                 pair=None) -> Iterator[LatentStep]:
    """The reverse process for one prompt: z_T ~ N(0, I) from the seed, then reverse_loop's steps (``pair``: how
    guidance's two passes run, :func:`latent_eps_fn`)."""
    s = make_schedule(settings.schedule)
    context, _ = encode_prompts(model, [settings.prompt])
    uncond, _ = encode_prompts(model, [settings.negative_prompt])
    n = settings.n
    attention = [] if record_attention else None
    eps_fn = latent_eps_fn(model, s, context.expand(n, -1, -1), uncond.expand(n, -1, -1), settings.guidance,
                           attention, pair)
    generator = torch.Generator().manual_seed(settings.seed)
    z = torch.randn((n, *LATENT_SHAPE), generator=generator)  # (n, 4, 7, 7)
    for record in reverse_loop(eps_fn, s, z, generator, sampler=settings.sampler, steps=settings.steps,
                               eta=settings.eta, spacing=DEFAULT_SPACING, clip_x0=False):
        yield LatentStep(record, attention.pop() if attention else None)


@torch.inference_mode()
def decode(model: TinySD, z: torch.Tensor) -> torch.Tensor:
    """Images x = D(z / scaling_factor) in [-1, 1], (B, 1, 28, 28), from scaled latents z (B, 4, 7, 7).

    The latents go in channels-last: the decoder's convolutions run 1.6× faster on this CPU (a run decodes
    two images per detailed sample at every step); the values agree with the contiguous layout to ~1e-6."""
    return model.autoencoder.decode((z / model.scaling_factor).contiguous(memory_format=torch.channels_last))


@torch.inference_mode()
def encode(model: TinySD, x: torch.Tensor) -> torch.Tensor:
    """Scaled latents z = scaling_factor · μ(x) (the posterior mean), (B, 4, 7, 7), of images x in [-1, 1]."""
    return model.scaling_factor * model.autoencoder.encode(x).mean


def sample_images(model: TinySD, settings: PromptSettings, pair=None) -> torch.Tensor:
    """Decoded samples (n, 1, 28, 28) in [-1, 1] for one prompt."""
    z = None
    for step in sample_steps(model, settings, pair=pair):
        z = step.record.x_prev
    return decode(model, z)

"""Tiny SD (explorer/latent): each part's shapes and round trips, the tokenizer's edge cases, cross-attention,
guidance, the sampling CLI contract and the checkpoint checks — on tiny random-init models (fast)."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from explorer.diffusion import classifier_free_guidance
from explorer.latent.autoencoder import LATENT_SHAPE, Autoencoder, DiagonalGaussian, psnr
from explorer.latent.captions import (
    CaptionConfig, bin_by_thresholds, full_caption, ink_mass, make_caption, shear, tercile_thresholds,
)
from explorer.latent.checkpoint import read_card, save_part, write_card
from explorer.latent.pipeline import (
    PromptSettings, build_tiny_sd, decode, encode, encode_prompts, latent_eps_fn, load_tiny_sd, sample_images,
    sample_steps,
)
from explorer.latent.text_encoder import TinyClip
from explorer.latent.tokenizer import BOS, CONTEXT_LENGTH, EOS, PAD_ID, UNK, UNK_ID, VOCAB, tokenize
from explorer.latent.unet import Attention, LatentUNet, cross_attention_maps
from explorer.model import CheckpointError
from explorer.schedules import make_schedule

torch.manual_seed(0)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_tiny_sd(scaling_factor=0.8)
    torch.nn.init.normal_(m.unet.head[-1].weight, std=0.02)  # a zero head would make every ε̂ zero
    return m


@pytest.fixture(scope="module")
def card_file(tmp_path_factory, model):
    card = tmp_path_factory.mktemp("tiny_sd") / "tiny.json"
    write_card(card, {"scaling_factor": model.scaling_factor})
    for part, module in (("autoencoder", model.autoencoder), ("clip", model.clip), ("unet", model.unet)):
        save_part(card, part, module, {})
    return card


def _stroke(width: int, slope: float = 0.0) -> torch.Tensor:
    """A vertical bar of ``width`` pixels whose x shifts by ``slope`` per row upwards; (1, 1, 28, 28) in [-1, 1]."""
    x = -torch.ones(1, 1, 28, 28)
    for row in range(4, 24):
        c = int(round(14 + slope * (14 - row)))
        x[0, 0, row, c - width // 2 : c - width // 2 + width] = 1.0
    return x


# --- captions ------------------------------------------------------------------------------------

def test_ink_mass_grows_with_stroke_width():
    assert ink_mass(_stroke(4)) > ink_mass(_stroke(2))


def test_shear_is_positive_for_a_stroke_leaning_right_and_negative_leaning_left():
    assert shear(_stroke(2, slope=0.4)) > 0.2
    assert shear(_stroke(2, slope=-0.4)) < -0.2
    assert abs(float(shear(_stroke(2)))) < 1e-6


def test_tercile_bins_split_each_class_into_thirds():
    rng = np.random.default_rng(0)
    values, labels = rng.normal(size=900), np.repeat(np.arange(10), 90)
    bins = bin_by_thresholds(values, labels, tercile_thresholds(values, labels))
    assert np.bincount(bins[labels == 3]).tolist() == [30, 30, 30]


def test_captions_use_only_known_words_and_about_ten_percent_are_empty():
    rng = np.random.default_rng(0)
    caps = [make_caption(int(rng.integers(10)), int(rng.integers(3)), int(rng.integers(3)), rng) for _ in range(2000)]
    assert all(not tokenize(c).unknown for c in caps)
    assert 0.08 < sum(c == "" for c in caps) / len(caps) < 0.12
    assert len(set(caps)) > 300  # varied templates and word order


def test_captions_name_the_digit_as_numeral_or_word():
    rng = np.random.default_rng(1)
    caps = [make_caption(7, 2, 2, rng, CaptionConfig(empty_share=0, drop_digit=0)) for _ in range(200)]
    assert all("7" in c or "seven" in c for c in caps)
    assert any("7" in c for c in caps) and any("seven" in c for c in caps)


def test_full_caption_holds_every_attribute():
    assert full_caption(7, 2, 2) == "thick 7, slanted right"
    assert full_caption(3, 0, 1, as_word=True) == "thin three, upright"


# --- tokenizer -----------------------------------------------------------------------------------

def test_tokenizer_wraps_words_in_bos_eos_and_pads_to_the_context_length():
    t = tokenize("A thick 7")
    assert t.labels() == [BOS, "a", "thick", "7", EOS]
    assert len(t.ids) == CONTEXT_LENGTH and t.ids[t.length:] == (PAD_ID,) * (CONTEXT_LENGTH - t.length)


def test_tokenizer_reports_unknown_words_and_maps_them_to_unk():
    t = tokenize("a fluffy 7, fluffy and bold")
    assert t.unknown == ("fluffy", "and", "bold")
    assert t.labels()[2] == UNK and t.ids[2] == UNK_ID


def test_empty_prompt_is_bos_eos_only():
    t = tokenize("   ")
    assert t.is_empty and t.labels() == [BOS, EOS] and not t.unknown


def test_ten_thousand_characters_are_cut_to_the_context_and_flagged():
    t = tokenize("seven " * 1700)
    assert len(t.ids) == CONTEXT_LENGTH and t.truncated and t.words == ("seven",) * (CONTEXT_LENGTH - 2)


def test_control_characters_separate_words():
    t = tokenize("thick\x00\x07seven\x1b[31m\r\n")
    assert t.words[:2] == ("thick", "seven") and "\x00" not in "".join(t.words)


def test_html_in_a_prompt_becomes_plain_words():
    t = tokenize("<script>alert(1)</script><b>seven</b>")
    assert "seven" in t.words and all("<" not in w and ">" not in w for w in t.words)
    assert "script" in t.unknown


def test_tokenizer_refuses_non_text():
    with pytest.raises(ValueError, match="text"):
        tokenize(7)


def test_vocabulary_has_no_duplicates():
    assert len(set(VOCAB)) == len(VOCAB)


# --- autoencoder ---------------------------------------------------------------------------------

def test_autoencoder_maps_28x28_to_4x7x7_and_back_into_the_image_range(model):
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    q = model.autoencoder.encode(x)
    assert q.mean.shape == (3, *LATENT_SHAPE) and q.logvar.shape == (3, *LATENT_SHAPE)
    y = model.autoencoder.decode(q.mean)
    assert y.shape == (3, 1, 28, 28) and y.min() >= -1 and y.max() <= 1


def test_scaled_latents_round_trip_through_the_scaling_factor(model):
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    z = encode(model, x)
    torch.testing.assert_close(z, model.scaling_factor * model.autoencoder.encode(x).mean)
    torch.testing.assert_close(decode(model, z), model.autoencoder.decode(z / model.scaling_factor))


def test_kl_of_the_standard_normal_posterior_is_zero():
    q = DiagonalGaussian(torch.zeros(2, *LATENT_SHAPE), torch.zeros(2, *LATENT_SHAPE))
    assert torch.allclose(q.kl(), torch.zeros(2))
    assert float(DiagonalGaussian(torch.ones(1, *LATENT_SHAPE), torch.zeros(1, *LATENT_SHAPE)).kl()) == pytest.approx(98.0)


def test_psnr_of_a_uniform_error_of_a_tenth_is_20_db():
    x = torch.zeros(1, 1, 28, 28)
    assert float(psnr(x, x + 0.2)) == pytest.approx(20.0, abs=1e-4)  # 0.2 in [-1, 1] = 0.1 in [0, 1]


def test_autoencoder_loss_is_finite_and_backpropagates():
    ae = Autoencoder()
    loss, parts = ae.loss(torch.rand(4, 1, 28, 28) * 2 - 1)
    loss.backward()
    assert torch.isfinite(loss) and parts["kl"] >= 0 and ae.encoder[0].weight.grad is not None


# --- text encoder --------------------------------------------------------------------------------

def test_text_encoder_gives_one_hidden_state_per_token(model):
    context, tokens = encode_prompts(model, ["a thick 7", ""])
    assert context.shape == (2, CONTEXT_LENGTH, model.clip.config.width)
    assert tokens[1].is_empty


def test_padding_does_not_change_the_hidden_states_of_real_tokens(model):
    ids = torch.tensor([tokenize("thick 7").ids])
    h = model.text_encoder(ids)
    h_short = model.text_encoder(ids[:, :4])  # <bos> thick 7 <eos>, no padding at all
    torch.testing.assert_close(h[:, :4], h_short, atol=1e-5, rtol=1e-5)


def test_contrastive_loss_of_matching_pairs_falls_with_training():
    torch.manual_seed(0)
    clip = TinyClip()
    ids = torch.tensor([tokenize(c).ids for c in ["0", "1", "2", "3"]])
    x = torch.stack([_stroke(w) for w in (1, 3, 5, 7)]).squeeze(1)
    opt = torch.optim.Adam(clip.parameters(), lr=3e-3)
    with torch.no_grad():
        first = float(clip.loss(ids, x))
    for _ in range(60):
        loss = clip.loss(ids, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert float(clip.loss(ids, x)) < first / 2


# --- latent UNet ---------------------------------------------------------------------------------

def test_unet_predicts_noise_of_the_latent_shape(model):
    eps = model.unet(torch.randn(2, *LATENT_SHAPE), torch.tensor([-3.0, 5.0]), torch.randn(2, CONTEXT_LENGTH, 64))
    assert eps.shape == (2, *LATENT_SHAPE)


def test_cross_attention_weights_over_tokens_sum_to_one_at_each_latent_position(model):
    attention = []
    model.unet(torch.randn(2, *LATENT_SHAPE), torch.zeros(2), encode_prompts(model, ["thick 7", "3"])[0], attention)
    assert len(attention) == 3  # one transformer at 7×7 down, one in the middle (4×4), one at 7×7 up
    for w in attention:  # (B, positions, tokens) per block
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:2]))
    maps = cross_attention_maps(attention)
    assert maps.shape == (2, CONTEXT_LENGTH, 7, 7)
    torch.testing.assert_close(maps.sum(1), torch.ones(2, 7, 7))


def test_attention_fused_kernel_equals_the_written_out_softmax():
    """Without a list for the weights, Attention runs scaled_dot_product_attention; it is softmax(Q Kᵀ / √d) V."""
    torch.manual_seed(0)
    x, context = torch.randn(3, 49, 32), torch.randn(3, 16, 64)
    weights = []
    for attn, ctx in ((Attention(32, 32, 4), None), (Attention(32, 64, 4), context)):  # self- and cross-attention
        torch.testing.assert_close(attn(x, ctx), attn(x, ctx, weights), rtol=1e-5, atol=1e-6)
    assert [w.shape for w in weights] == [(3, 49, 49), (3, 49, 16)]


def test_unet_reads_the_prompt():
    torch.manual_seed(1)
    unet = LatentUNet()
    torch.nn.init.normal_(unet.head[-1].weight, std=0.1)
    for block in [unet.attn_down0, unet.attn_up0]:
        torch.nn.init.normal_(block.proj_out.weight, std=0.1)
    z, lam = torch.randn(1, *LATENT_SHAPE), torch.zeros(1)
    a = unet(z, lam, torch.randn(1, CONTEXT_LENGTH, 64))
    b = unet(z, lam, torch.randn(1, CONTEXT_LENGTH, 64))
    assert not torch.allclose(a, b)


# --- guidance and sampling -----------------------------------------------------------------------

def test_guidance_with_an_empty_negative_prompt_equals_plain_guidance(model):
    settings = dict(prompt="thick 7", guidance=3.0, seed=4, steps=4, n=2)
    plain = sample_images(model, PromptSettings.checked(**settings))
    with_empty_negative = sample_images(model, PromptSettings.checked(**settings, negative_prompt=""))
    torch.testing.assert_close(plain, with_empty_negative, rtol=0, atol=0)


def test_a_negative_prompt_replaces_the_unconditional_branch(model):
    s = make_schedule("scaled_linear")
    cond, _ = encode_prompts(model, ["thick 7"])
    neg, _ = encode_prompts(model, ["thin"])
    z = torch.randn(1, *LATENT_SHAPE)
    eps = latent_eps_fn(model, s, cond, neg, 3.0)(z, 500)
    lam = torch.full((1,), float(s.log_snr[500]))
    expected = classifier_free_guidance(model.unet(z, lam, neg), model.unet(z, lam, cond), 3.0)
    torch.testing.assert_close(eps, expected, atol=0, rtol=0)  # the same two calls: the same bits


def test_guidances_two_passes_give_the_same_bits_and_maps_when_run_side_by_side(model):
    """The app runs the prompt's pass here and the unconditional one in another thread (explorer.ui.cores)."""
    s = make_schedule("scaled_linear")
    cond, _ = encode_prompts(model, ["thick 7"])
    uncond, _ = encode_prompts(model, [""])
    z = torch.randn(3, *LATENT_SHAPE)
    threads = []

    def pair(f, g):
        with ThreadPoolExecutor(1) as pool:
            second = pool.submit(lambda: (threads.append(threading.current_thread()), g())[1])
            return f(), second.result()

    maps_serial, maps_pair = [], []
    eps = latent_eps_fn(model, s, cond.expand(3, -1, -1), uncond.expand(3, -1, -1), 3.0, maps_serial)(z, 400)
    eps_pair = latent_eps_fn(model, s, cond.expand(3, -1, -1), uncond.expand(3, -1, -1), 3.0, maps_pair, pair)(z, 400)
    assert threads and threads[0] is not threading.current_thread()
    assert torch.equal(eps, eps_pair) and torch.equal(maps_serial[0], maps_pair[0])
    assert maps_pair[0].shape[0] == 3  # the prompt's maps: its own pass only


def test_guidance_one_is_the_conditional_model_alone(model):
    s = make_schedule("scaled_linear")
    cond, _ = encode_prompts(model, ["4"])
    uncond, _ = encode_prompts(model, [""])
    z = torch.randn(1, *LATENT_SHAPE)
    lam = torch.full((1,), float(s.log_snr[300]))
    torch.testing.assert_close(latent_eps_fn(model, s, cond, uncond, 1.0)(z, 300), model.unet(z, lam, cond))


def test_sampling_is_reproducible_for_a_seed_and_differs_across_seeds(model):
    a = sample_images(model, PromptSettings.checked("2", seed=1, steps=3, n=2))
    b = sample_images(model, PromptSettings.checked("2", seed=1, steps=3, n=2))
    c = sample_images(model, PromptSettings.checked("2", seed=2, steps=3, n=2))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_sample_steps_record_latents_and_attention_per_step(model):
    steps = list(sample_steps(model, PromptSettings.checked("thin 1", steps=5, n=3), record_attention=True))
    assert len(steps) == 5
    assert steps[0].record.x_t.shape == (3, *LATENT_SHAPE)
    assert steps[-1].record.t_prev == 0
    assert steps[0].attention.shape == (3, CONTEXT_LENGTH, 7, 7)


def test_ddpm_sampler_walks_every_timestep_on_latents(model):
    from itertools import islice

    steps = list(islice(sample_steps(model, PromptSettings.checked("5", sampler="ddpm", schedule="linear", n=1)), 3))
    assert [st.record.t for st in steps] == [1000, 999, 998]
    assert steps[-1].record.x_prev.shape == (1, *LATENT_SHAPE) and torch.isfinite(steps[-1].record.x_prev).all()


@pytest.mark.parametrize("bad", [
    dict(guidance=float("nan")), dict(steps=0), dict(steps=2.5), dict(eta=2.0), dict(sampler="euler"),
    dict(schedule="cosine2"), dict(n=0), dict(n=10_000), dict(seed=-1), dict(prompt=None), dict(negative_prompt=3),
])
def test_prompt_settings_refuse_bad_values_with_a_message(bad):
    with pytest.raises(ValueError, match=r"must|Unknown"):
        PromptSettings.checked(**{"prompt": "7", **bad})


# --- checkpoints and the CLI ---------------------------------------------------------------------

def test_saved_parts_load_back_with_equal_weights(model, card_file):
    loaded = load_tiny_sd(card_file)
    for a, b in ((model.unet, loaded.unet), (model.clip, loaded.clip), (model.autoencoder, loaded.autoencoder)):
        for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(v, w), k
    assert loaded.scaling_factor == model.scaling_factor


def test_a_tampered_weights_file_is_refused(card_file, tmp_path):
    import shutil

    for f in card_file.parent.iterdir():
        shutil.copy(f, tmp_path / f.name)
    weights = tmp_path / read_card(card_file)["parts"]["unet"]["weights_file"]
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="Checksum mismatch"):
        load_tiny_sd(tmp_path / card_file.name)


def test_a_missing_card_says_how_to_train(tmp_path):
    with pytest.raises(CheckpointError, match="explorer.latent.train"):
        load_tiny_sd(tmp_path / "none.json")


def test_a_card_pointing_outside_its_folder_is_refused(card_file):
    card = read_card(card_file)
    card["parts"]["autoencoder"]["weights_file"] = "../evil.safetensors"
    bad = card_file.with_name("bad.json")
    bad.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="Refusing"):
        load_tiny_sd(bad)


def test_sample_cli_writes_float32_samples_in_unit_range_and_a_png(card_file, tmp_path):
    from PIL import Image

    from explorer.sample import main

    out, npy = tmp_path / "grid.png", tmp_path / "samples.npy"
    main(["--model", "tiny-sd", "--prompt", "a thick 7", "--negative-prompt", "thin", "--n", "5", "--seed", "1",
          "--steps", "3", "--checkpoint", str(card_file), "--out", str(out), "--npy", str(npy)])
    samples = np.load(npy)
    assert samples.shape == (5, 28, 28) and samples.dtype == np.float32
    assert samples.min() >= 0 and samples.max() <= 1
    assert Image.open(out).size[0] > 28


def test_sample_cli_same_seed_same_samples(card_file, tmp_path):
    from explorer.sample import main

    for name in ("a", "b"):
        main(["--model", "tiny-sd", "--prompt", "9", "--n", "2", "--seed", "3", "--steps", "2", "--checkpoint",
              str(card_file), "--out", str(tmp_path / f"{name}.png"), "--npy", str(tmp_path / f"{name}.npy")])
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_sample_cli_refuses_bad_values_with_a_message(card_file, tmp_path, capsys):
    from explorer.sample import main

    with pytest.raises(SystemExit):
        main(["--model", "tiny-sd", "--prompt", "7", "--guidance", "nan", "--checkpoint", str(card_file),
              "--out", str(tmp_path / "g.png")])
    assert "Guidance must be a number" in capsys.readouterr().err


# --- evaluation ----------------------------------------------------------------------------------

def test_retrieval_figures_are_shares_for_every_held_out_query(model):
    from explorer.latent.captions import fit_thresholds
    from explorer.latent.evaluate import retrieval

    x = torch.stack([_stroke(w, s) for w in (1, 2, 3) for s in (-0.3, 0.0, 0.3)]).squeeze(1).repeat(2, 1, 1, 1)
    labels = torch.arange(18) % 10
    r = retrieval(model, x, labels, fit_thresholds(x, labels))
    assert r["queries"] == 18
    assert all(0.0 <= r[k] <= 1.0 for k in ("top1_same_digit", "top1_same_thickness", "top1_same_slant",
                                            "top1_all_three", "digit_prompt_precision_at_10"))


def test_evaluate_cli_dispatches_tiny_sd_and_names_a_missing_card(tmp_path, capsys):
    from explorer.evaluate import main

    with pytest.raises(SystemExit):
        main(["--model", "tiny-sd", "--checkpoint", str(tmp_path / "none.json")])
    assert "explorer.latent.train" in capsys.readouterr().err

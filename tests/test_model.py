"""The denoiser: shapes, conditioning, guidance arithmetic, safetensors checkpoints and their checks."""

import copy
import json
from dataclasses import asdict

import pytest
import torch

from explorer.model import (
    NULL_CLASS,
    CheckpointError,
    ResBlock,
    UNet,
    UNetConfig,
    count_parameters,
    guided_eps,
    load_pretrained,
    save_checkpoint,
)

TINY = UNetConfig(patch=2, channels=(16, 32), blocks=(1, 1))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = UNet(TINY).eval()
    for p in m.parameters():  # the output conv is zero-initialised; randomise so outputs depend on inputs
        p.data.normal_(0, 0.05)
    return m


def _inputs(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 1, 28, 28, generator=g), torch.linspace(-10, 10, b), torch.arange(b) % 10


def test_output_has_the_input_shape(model):
    x, lam, y = _inputs()
    assert model(x, lam, y).shape == (4, 1, 28, 28)


@pytest.mark.parametrize("patch, channels, blocks, scale_shift", [
    (1, (16, 32, 32), (1, 1, 1), False), (2, (32, 128), (1, 2), False), (2, (32, 64), (1, 2), True)])
def test_configurations_map_28x28_to_28x28(patch, channels, blocks, scale_shift):
    m = UNet(UNetConfig(patch=patch, channels=channels, blocks=blocks, scale_shift=scale_shift))
    assert m(torch.zeros(2, 1, 28, 28), torch.zeros(2), torch.zeros(2, dtype=torch.long)).shape == (2, 1, 28, 28)


def test_scale_shift_block_is_norm_times_one_plus_scale_plus_shift():
    """AdaGN (Dhariwal & Nichol 2021): h = conv2(SiLU(GroupNorm(conv1(SiLU(GroupNorm(x)))) · (1 + s) + b)) + skip(x)."""
    torch.manual_seed(0)
    block = ResBlock(8, 16, 12, 4, scale_shift=True).eval()
    x, emb = torch.randn(3, 8, 7, 7), torch.randn(3, 12)
    h = block.conv1(torch.nn.functional.silu(torch.nn.functional.group_norm(x, 4, block.norm1.weight, block.norm1.bias)))
    s, b = (emb @ block.emb.weight.T + block.emb.bias).chunk(2, dim=1)
    h = torch.nn.functional.group_norm(h, 4, block.norm2.weight, block.norm2.bias) * (1 + s[:, :, None, None]) \
        + b[:, :, None, None]
    expected = block.conv2(torch.nn.functional.silu(h)) + block.skip(x)
    torch.testing.assert_close(block(x, emb), expected)


def test_the_shipped_checkpoint_is_what_the_training_command_builds_and_under_20_mb():
    from explorer.model import DEFAULT_CHECKPOINT, card_path
    from explorer.train import parse_args

    card = json.loads(card_path(DEFAULT_CHECKPOINT).read_text())
    train_cfg, model_cfg, _, _, _ = parse_args([])
    assert UNetConfig.from_dict(card["config"]) == model_cfg
    # the recipe too: the command's defaults are the card's (where the network ran may differ)
    recipe = {k: v for k, v in asdict(train_cfg).items() if k != "device"}
    assert {k: card["training"][k] for k in recipe} == recipe
    assert count_parameters(UNet(model_cfg)) == card["parameters"]
    assert DEFAULT_CHECKPOINT.stat().st_size <= 20 * 10**6


def test_output_depends_on_the_noise_level_and_on_the_label(model):
    x, lam, y = _inputs()
    base = model(x, lam, y)
    assert not torch.allclose(base, model(x, lam + 3.0, y))
    assert not torch.allclose(base, model(x, lam, (y + 1) % 10))
    assert not torch.allclose(base, model(x, lam, torch.full_like(y, NULL_CLASS)))


def test_infinite_log_snr_is_clamped_not_nan(model):
    x, _, y = _inputs()
    out = model(x, torch.tensor([float("-inf"), float("inf"), -1e9, 1e9]), y)
    assert torch.isfinite(out).all()


def test_guidance_is_uncond_plus_w_times_cond_minus_uncond(model):
    x, lam, y = _inputs()
    cond = model(x, lam, y)
    uncond = model(x, lam, torch.full_like(y, NULL_CLASS))
    eps, c, u = guided_eps(model, x, lam, y, 3.0)
    torch.testing.assert_close(c, cond, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(u, uncond, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(eps, uncond + 3.0 * (cond - uncond), atol=1e-5, rtol=1e-5)


def test_guidance_1_is_the_conditional_model_and_0_the_unconditional(model):
    x, lam, y = _inputs()
    torch.testing.assert_close(guided_eps(model, x, lam, y, 1.0)[0], model(x, lam, y))
    torch.testing.assert_close(guided_eps(model, x, lam, y, 0.0)[0], model(x, lam, torch.full_like(y, NULL_CLASS)))


@pytest.fixture
def saved(tmp_path, model):
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(model, path, {"note": "test"})
    return path


def test_a_saved_checkpoint_loads_with_identical_outputs_and_its_card(saved, model):
    loaded, card = load_pretrained(saved)
    x, lam, y = _inputs()
    same_layout = copy.deepcopy(model).to(memory_format=torch.channels_last)  # as load_pretrained lays it out on a CPU
    torch.testing.assert_close(loaded(x, lam, y), same_layout(x, lam, y), atol=0, rtol=0)
    torch.testing.assert_close(loaded(x, lam, y), model(x, lam, y), atol=1e-6, rtol=0)  # the layout moves last bits only
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert card["note"] == "test" and len(card["weights_sha256"]) == 64
    assert card["parameters"] == count_parameters(model)
    assert not any(p.requires_grad for p in loaded.parameters())


def test_the_weights_file_is_safetensors_not_pickle(saved):
    from safetensors import safe_open

    with safe_open(str(saved), "pt") as f:
        assert len(list(f.keys())) > 10
    assert not saved.read_bytes().startswith(b"PK") and not saved.read_bytes().startswith(b"\x80")


def test_a_tampered_checkpoint_is_refused_with_a_clear_message(saved):
    data = bytearray(saved.read_bytes())
    data[-5] ^= 0xFF  # flip bits in the last tensor's payload
    saved.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="Checksum mismatch"):
        load_pretrained(saved)


def test_a_missing_checkpoint_says_how_to_make_one(tmp_path):
    with pytest.raises(CheckpointError, match="python -m explorer.train"):
        load_pretrained(tmp_path / "nothing.safetensors")


def test_a_missing_card_is_refused(saved):
    saved.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="card"):
        load_pretrained(saved)


def test_a_pickle_file_is_never_loaded(tmp_path, model):
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match="only .safetensors"):
        load_pretrained(path)


def test_a_card_with_a_wrong_config_fails_cleanly(saved):
    card = json.loads(saved.with_suffix(".json").read_text())
    card["config"]["channels"] = [8, 8]
    saved.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="Cannot load"):
        load_pretrained(saved)


def test_the_shipped_checkpoint_loads_and_verifies():
    model, card = load_pretrained()
    assert card["weights_bytes"] <= 20 * 1024 * 1024
    assert card["training"]["steps_done"] > 0
    x, lam, y = _inputs(2)
    assert torch.isfinite(model(x, lam[:2], y[:2])).all()

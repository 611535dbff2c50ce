"""Where the networks run: --device for train/sample/evaluate, DDPM_DEVICE for the app, auto = CUDA if present.

The GPU cases run only where PyTorch sees a CUDA GPU and are reported as skipped elsewhere (never as passed)."""

import pytest
import torch

from explorer import devices
from explorer.model import NULL_CLASS, CheckpointError, ModelProvider, UNet, UNetConfig
from explorer.samplers import model_eps_fn, sample, uses_bf16
from explorer.sample import main as sample_main
from explorer.schedules import make_schedule
from explorer.train import TrainConfig, main as train_main, parse_args, train

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU on this machine")
cpu_only = pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA GPU")
TINY = UNetConfig(patch=2, channels=(16, 32), blocks=(1, 1))


def run_cli(main, capsys, *args) -> tuple[int, str]:
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def random_model(seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    m = UNet(TINY).eval()
    for p in m.parameters():  # the output conv is zero-initialised; randomise so outputs depend on inputs
        p.data.normal_(0, 0.05)
    return m


def test_auto_is_cuda_when_available_else_the_cpu():
    assert devices.resolve_device("auto").type == ("cuda" if HAS_CUDA else "cpu")
    assert devices.resolve_device(None) == devices.resolve_device("auto")
    assert devices.resolve_device("cpu") == torch.device("cpu")


def test_an_unknown_device_name_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="Unknown device 'tpu'; choose one of: auto, cpu, cuda, mps"):
        devices.resolve_device("tpu")


@cpu_only
def test_cuda_asked_for_on_a_machine_without_one_says_what_to_use():
    with pytest.raises(ValueError, match="sees no CUDA GPU.*use 'cpu' or 'auto'"):
        devices.resolve_device("cuda")


def test_the_app_reads_its_device_from_ddpm_device(monkeypatch):
    monkeypatch.setenv("DDPM_DEVICE", " CPU ")
    assert devices.app_device() == torch.device("cpu")
    monkeypatch.delenv("DDPM_DEVICE")
    assert devices.app_device() == devices.resolve_device("auto")
    monkeypatch.setenv("DDPM_DEVICE", "gpu")
    with pytest.raises(ValueError, match="DDPM_DEVICE: Unknown device 'gpu'"):
        devices.app_device()


def test_a_bad_ddpm_device_shows_as_the_apps_model_message_not_a_traceback(monkeypatch):
    monkeypatch.setenv("DDPM_DEVICE", "gpu")
    with pytest.raises(CheckpointError, match="DDPM_DEVICE: Unknown device 'gpu'"):
        ModelProvider().get()


@cpu_only
@pytest.mark.parametrize("main, args", [
    (sample_main, ["--out", "never-written.png"]),
    (train_main, []),
])
def test_the_clis_refuse_a_missing_gpu_with_a_message(main, args, capsys):
    code, err = run_cli(main, capsys, *args, "--device", "cuda")
    assert code == 2 and "sees no CUDA GPU" in err and "Traceback" not in err


def test_the_train_cli_records_the_resolved_device():
    cfg = parse_args(["--device", "cpu"])[0]
    assert cfg.device == "cpu"
    assert parse_args([])[0].device == devices.resolve_device("auto").type


def test_bf16_auto_follows_the_device():
    assert uses_bf16("bf16", "cpu") and not uses_bf16("fp32", "cpu")
    assert uses_bf16("auto", "mps") is False  # only CPUs and CUDA GPUs with native bf16 get it automatically


@pytest.mark.parametrize("avx512_bf16, amx, native", [(False, False, False), (True, False, True), (False, True, True)])
def test_auto_bf16_on_a_cpu_needs_its_bf16_instructions(monkeypatch, avx512_bf16, amx, native):
    # oneDNN says "bf16 supported" on any AVX-512 core, where it is emulated and twice as slow as fp32:
    # that answer must not decide (it is True here either way)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert uses_bf16("auto", "cpu") is native


def test_the_network_output_returns_to_the_samplers_device():
    model = random_model()
    s = make_schedule("linear", 50)
    eps = model_eps_fn(model, s, torch.tensor([3, NULL_CLASS]), guidance=2.0, precision="fp32")(torch.randn(2, 1, 28, 28), 10)
    assert eps.device == torch.device("cpu") and eps.dtype == torch.float32 and eps.shape == (2, 1, 28, 28)


@needs_cuda
def test_sampling_with_the_network_on_cuda_matches_the_cpu():
    s = make_schedule("cosine", 100)
    labels = torch.arange(4)
    cpu = sample(model_eps_fn(random_model(), s, labels, 3.0, "fp32"), s, (4, 1, 28, 28), seed=1, steps=10)
    gpu = sample(model_eps_fn(random_model().cuda(), s, labels, 3.0, "fp32"), s, (4, 1, 28, 28), seed=1, steps=10)
    assert gpu.device.type == "cpu"  # the sampler's arithmetic and the recorded frames stay on the CPU
    assert torch.allclose(cpu, gpu, atol=1e-3)


@needs_cuda
def test_training_on_cuda_writes_a_checkpoint_that_loads_on_the_cpu(tmp_path):
    from explorer.model import load_pretrained

    cfg = TrainConfig(steps=5, batch_size=8, train_subset=64, save_every=5, threads=1, device="cuda")
    train(cfg, TINY, tmp_path / "gpu.safetensors", progress=False)
    model, card = load_pretrained(tmp_path / "gpu.safetensors", device="cpu")
    assert card["training"]["device"] == "cuda" and next(model.parameters()).device.type == "cpu"


def test_a_denoiser_without_weights_runs_where_the_sampler_does():
    def exact(x, log_snr, labels):  # like the 2-D lab's exact mixture score: a callable, not an nn.Module
        return torch.zeros_like(x)

    assert devices.model_device(exact) == torch.device("cpu")
    eps = model_eps_fn(exact, make_schedule("linear", 20), torch.tensor([0, 1]), guidance=2.0)(torch.ones(2, 2), 5)
    assert torch.equal(eps, torch.zeros(2, 2))

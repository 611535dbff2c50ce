"""What the app promises: loopback only, no share link, an upload cap, only assets/ readable through Gradio's file
routes, client-sent file paths confined to uploads and assets/, and no model weights it has not checked."""

import os
import runpy
import shutil
import urllib.parse
from pathlib import Path

import gradio as gr
import httpx
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from explorer import data
from explorer.model import DEFAULT_CHECKPOINT, card_path, load_pretrained
from explorer.ui.forward import build_forward_tab
from explorer.model import ModelProvider
from explorer.ui import build_reverse
from served_app import TRACE_MARKERS, base_url, error_message, launch, raw_call

ROOT = Path(__file__).resolve().parent.parent
LINEAR = ["linear", 1000, 1e-4, 0.02, 0.008, False]
REVERSE = ["ddim", 2, 0.0, "trailing", "mixed", 1.0, 0, 1]


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> dict[str, Path]:
    """Files outside the app's folders that nobody may read: a PNG and a text file in a temp folder."""
    folder = tmp_path_factory.mktemp("private")
    Image.new("L", (28, 28), 200).save(folder / "private.png")
    (folder / "secret.txt").write_text("top secret\n")
    return {"png": folder / "private.png", "txt": folder / "secret.txt"}


def assert_still_serving(client):
    _, numbers = client.predict(handle_file(str(data.ASSETS_DIR / "mnist_3.png")), *LINEAR, 0, 10,
                                api_name="/render_forward")
    assert numbers["t"] == 10


# ------------------------------------------------------------------ how app.py launches


def test_app_py_serves_on_loopback_without_share_link_with_upload_cap(monkeypatch):
    launched = {}
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: launched.update(kw))
    runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
    assert launched["server_name"] == "127.0.0.1" and launched["server_port"] == 7860
    assert launched["share"] is False
    assert launched["max_file_size"] == data.MAX_UPLOAD_BYTES
    assert [Path(p).resolve() for p in launched["allowed_paths"]] == [data.ASSETS_DIR.resolve()]


def test_the_page_config_carries_the_upload_cap(app):
    config = httpx.get(f"{base_url(app)}/config", timeout=30).json()
    assert config["max_file_size"] == data.MAX_UPLOAD_BYTES


# ------------------------------------------------------------------ Gradio's file routes


def test_the_bundled_assets_are_readable(app):
    response = httpx.get(f"{base_url(app)}/gradio_api/file={data.ASSETS_DIR / 'mnist_0.png'}", timeout=30)
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG")


def _forbidden_targets(outside):
    assets = data.ASSETS_DIR
    return {
        "/etc/passwd": "/etc/passwd",
        "proc environ": "/proc/self/environ",
        "source by absolute path": str(ROOT / "app.py"),
        "source by relative path": "explorer/data.py",
        "test source": str(ROOT / "tests" / "test_security.py"),
        "model card": str(card_path(DEFAULT_CHECKPOINT)),
        "model weights": str(DEFAULT_CHECKPOINT),
        "relative weights": "checkpoints/mnist_unet.safetensors",
        "traversal out of assets": f"{assets}/../app.py",
        "encoded traversal": urllib.parse.quote(f"{assets}/../app.py", safe=""),
        "double-encoded traversal": f"{assets}/%252e%252e/app.py",
        "relative traversal": "../../../../etc/passwd",
        "private png": str(outside["png"]),
        "private text": str(outside["txt"]),
    }


@pytest.mark.parametrize("route", ["/gradio_api/file=", "/file=", "/gradio_api/file/", "/gradio_api/static/",
                                   "/static/", "/assets/"])
def test_file_routes_refuse_everything_outside_the_asset_folder(app, outside, route):
    for what, target in _forbidden_targets(outside).items():
        response = httpx.get(f"{base_url(app)}{route}{target}", timeout=30)
        assert response.status_code in (400, 403, 404, 405), f"{what} via {route}: {response.status_code}"
        assert b"root:" not in response.content and b"top secret" not in response.content
        assert b"import" not in response.content and b"weights_sha256" not in response.content


# ------------------------------------------------------------------ file paths sent to the API


@pytest.fixture(scope="module")
def endpoints(client) -> dict:
    return client.view_api(return_format="dict", print_info=False)["named_endpoints"]


def _filepath_endpoints(endpoints) -> dict[str, list[int]]:
    """Every endpoint with a file input -> the indices of its file parameters."""
    out = {}
    for name, info in endpoints.items():
        idx = [i for i, p in enumerate(info["parameters"]) if p["python_type"]["type"] == "filepath"]
        if idx:
            out[name.lstrip("/")] = idx
    return out


def _payload(endpoints, endpoint: str, file_value) -> list:
    info = endpoints["/" + endpoint]
    values = []
    for p in info["parameters"]:
        values.append(file_value if p["python_type"]["type"] == "filepath" else p.get("parameter_default"))
    if endpoint in ("reverse_img2img",):  # cheap settings: 2 DDIM steps, one sample
        values[2:] = [*LINEAR, *REVERSE]
    return values


def test_every_file_input_is_covered(endpoints):
    assert {"render_forward", "forward_setup", "forward_chain", "load_upload", "compare", "compare_view",
            "reverse_img2img", "reverse_use_forward_image"} <= set(_filepath_endpoints(endpoints))


@pytest.mark.parametrize("kind", ["untagged", "tagged", "svg name"])
def test_server_files_sent_as_a_path_are_refused_by_every_endpoint(app, client, endpoints, outside, kind):
    """A client names a file on the server instead of uploading one: never read, never served back."""
    targets = [str(outside["png"]), str(ROOT / "app.py"), str(card_path(DEFAULT_CHECKPOINT)), "/etc/passwd",
               f"{data.ASSETS_DIR}/../app.py"]
    for endpoint in _filepath_endpoints(endpoints):
        for target in targets:
            value = {"path": target, "orig_name": "x.svg" if kind == "svg name" else Path(target).name}
            if kind == "tagged":
                value["meta"] = {"_type": "gradio.FileData"}
            stream = raw_call(app, endpoint, _payload(endpoints, endpoint, value))
            assert error_message(stream) is not None, f"{endpoint} accepted {kind} {target}: {stream[:300]}"
            assert not any(m in stream for m in TRACE_MARKERS), stream
    assert_still_serving(client)


def test_untagged_path_error_message_is_clear(app, client, outside):
    stream = raw_call(app, "render_forward", [{"path": str(outside["png"])}, *LINEAR, 0, 0])
    assert "not available" in error_message(stream)


def test_a_bundled_asset_sent_as_a_path_is_allowed(app, client):
    stream = raw_call(app, "render_forward", [{"path": str(data.ASSETS_DIR / "mnist_3.png")}, *LINEAR, 0, 0])
    assert error_message(stream) is None and "event: complete" in stream


def test_a_url_pointing_back_at_the_server_is_not_fetched(app, client):
    own_file = f"{base_url(app)}/gradio_api/file={data.ASSETS_DIR / 'mnist_3.png'}"
    stream = raw_call(app, "render_forward", [{"path": own_file, "url": own_file,
                                               "meta": {"_type": "gradio.FileData"}}, *LINEAR, 0, 0])
    assert error_message(stream) is not None and not any(m in stream for m in TRACE_MARKERS)
    assert_still_serving(client)


# ------------------------------------------------------------------ the checkpoint


@pytest.fixture(scope="module")
def tampered_app(tmp_path_factory):
    """Forward and Reverse tabs whose model loader reads a copy of the shipped weights with one byte changed."""
    folder = tmp_path_factory.mktemp("tampered")
    weights = folder / DEFAULT_CHECKPOINT.name
    shutil.copy(DEFAULT_CHECKPOINT, weights)
    shutil.copy(card_path(DEFAULT_CHECKPOINT), card_path(weights))
    with open(weights, "r+b") as f:
        f.seek(os.path.getsize(weights) - 16)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    with gr.Blocks() as demo:
        forward = build_forward_tab(demo)
        build_reverse(demo, ModelProvider(lambda: load_pretrained(weights)), forward)
    launch(demo)
    yield demo
    demo.close()


def test_a_tampered_checkpoint_shows_a_clear_message_and_forward_keeps_working(tampered_app):
    c = Client(tampered_app.local_url, verbose=False)
    status = c.predict(api_name="/reverse_model_status")[0]
    assert "No model" in status and "Checksum mismatch" in status
    stream = raw_call(tampered_app, "reverse_sample", [*LINEAR, *REVERSE])
    assert "Checksum mismatch" in (error_message(stream) or "")
    assert not any(m in stream for m in TRACE_MARKERS)
    assert_still_serving(c)

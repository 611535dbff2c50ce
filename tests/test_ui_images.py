"""explorer.ui.images: the forward chain strip (issue 14, item 8)."""

import numpy as np

from explorer import render
from explorer.schedules import make_schedule
from explorer.ui.images import chain_strip, chain_timesteps, nearest_frame
import torch

LINEAR = make_schedule("linear", 1000)


def test_nearest_frame_is_the_chain_frame_closest_to_t():
    ts = chain_timesteps(LINEAR, 8)  # 0, 143, 286, …
    assert nearest_frame(ts, 250) == 2 and nearest_frame(ts, 0) == 0 and nearest_frame(ts, 1000) == 7
    assert nearest_frame(ts, None) is None


def test_chain_strip_frames_the_frame_nearest_t_on_a_transparent_background():
    im = chain_strip(torch.zeros(1, 1, 28, 28), LINEAR, 0, 4, t=1000)  # frames t = 0, 333, 667, 1000
    arr = np.asarray(im)
    assert im.mode == "RGBA" and tuple(arr[0, 3 * (84 + 2) + 40, :3]) == render.HIGHLIGHT
    assert arr[-1, 0, 3] == 0  # the label band shows the page through


def test_upload_note_says_a_large_upload_is_resized_with_both_sizes(tmp_path, monkeypatch):
    from PIL import Image
    from explorer.ui import images
    monkeypatch.setattr(images, "served_image_path", str)
    Image.new("RGB", (512, 384), "white").save(tmp_path / "big.png")
    Image.new("L", (28, 28)).save(tmp_path / "small.png")
    assert "512×384" in images.upload_note(tmp_path / "big.png") and "256×192" in images.upload_note(tmp_path / "big.png")
    assert "full size" in images.upload_note(tmp_path / "small.png")


def test_the_forward_chain_frames_the_frame_nearest_the_released_t(client):
    from gradio_client import handle_file
    from PIL import Image
    from explorer import data
    path = client.predict(handle_file(str(data.ASSETS_DIR / "mnist_7.png")), "linear", 1000, 1e-4, 0.02, 0.008, False,
                          0, 4, 1000, api_name="/forward_chain_at")  # frames t = 0, 333, 667, 1000
    arr = np.asarray(Image.open(path).convert("RGB"))
    assert tuple(arr[0, 3 * (84 + 2) + 40]) == render.HIGHLIGHT and tuple(arr[0, 40]) != render.HIGHLIGHT


def test_the_upload_note_is_served_beside_the_upload(client):
    from gradio_client import handle_file
    from explorer import data
    note = client.predict(handle_file(str(data.ASSETS_DIR / "mnist_7.png")), api_name="/upload_note")
    assert "28×28" in note

"""explorer.render: tensors to PIL, nearest-neighbour upscaling, strips and grids."""

import numpy as np
import pytest
import torch

from explorer import render


def test_to_pil_grayscale_and_rgb_tensors():
    assert render.to_pil(torch.zeros(1, 1, 28, 28)).mode == "L"
    assert render.to_pil(torch.zeros(1, 3, 8, 8)).mode == "RGB"


def test_to_pil_refuses_float_arrays():
    with pytest.raises(TypeError):
        render.to_pil(np.zeros((4, 4), np.float32))


def test_digits_are_upscaled_by_a_whole_factor_with_crisp_pixels():
    x = torch.full((1, 1, 28, 28), -1.0)
    x[..., 3, 5] = 1.0
    im = render.display(x)
    k = render.upscale_factor((28, 28))
    assert im.size == (28 * k, 28 * k) and 28 * k >= render.DISPLAY_SIDE
    block = np.asarray(im)[3 * k : 4 * k, 5 * k : 6 * k]
    assert (block == 255).all()  # the whole k×k block is the one bright pixel: no smoothing
    assert np.asarray(im)[3 * k - 1, 5 * k] == 0


def test_large_images_are_not_upscaled():
    assert render.display(torch.zeros(1, 3, 256, 256)).size == (256, 256)


def test_strip_places_images_side_by_side_with_labels():
    tiles = [torch.zeros(1, 1, 28, 28)] * 3
    im = render.strip(tiles, labels=["t=0", "t=5", "t=10"], gap=2, min_side=56)
    assert im.size == (3 * 56 + 2 * 2, 56 + render.LABEL_HEIGHT)


def test_strip_needs_matching_labels():
    with pytest.raises(ValueError, match="labels"):
        render.strip([torch.zeros(1, 1, 4, 4)] * 2, labels=["one"])


def test_stack_and_grid_sizes():
    a = render.strip([torch.zeros(1, 1, 28, 28)] * 2, min_side=28, gap=0)
    assert render.stack([a, a], gap=4).size == (56, 60)
    assert render.tile(np.zeros((5, 28, 28), np.uint8), ncols=2, gap=0, min_side=1).shape == (84, 56)


def test_mixed_gray_and_rgb_strip_is_rgb():
    assert render.strip([torch.zeros(1, 1, 8, 8), torch.zeros(1, 3, 8, 8)]).mode == "RGB"


# ---- issue 14, items 7 and 8: chain strips that read at a glance, in light and dark mode


def _label_ink_height(im, tile_h):
    band = np.asarray(im.convert("RGBA"))[tile_h:]
    rows = np.nonzero((band[..., 3] > 0) & (band[..., :3].min(axis=-1) < 200))[0]
    return rows.max() - rows.min() + 1


def test_strip_labels_are_readable_text_not_a_5_pixel_bitmap():
    im = render.strip([torch.zeros(1, 1, 28, 28)] * 2, labels=["t = 0", "t = 10"], min_side=84,
                      background=render.TRANSPARENT)
    assert _label_ink_height(im, 84) >= 11


def test_strip_labels_grow_with_large_tiles_so_they_stay_readable_when_the_strip_is_shrunk():
    assert render.label_band_height(256) >= 40 and render.label_band_height(56) == render.LABEL_HEIGHT


def test_transparent_strip_lets_the_page_background_through_gaps_and_label_bands():
    im = render.strip([torch.ones(1, 1, 8, 8)] * 2, labels=["a", "b"], min_side=8, background=render.TRANSPARENT)
    arr = np.asarray(im)
    assert im.mode == "RGBA" and arr[0, 8, 3] == 0 and arr[-1, -1, 3] == 0 and arr[0, 0, 3] == 255


def test_strip_frames_the_highlighted_tile():
    im = render.strip([torch.zeros(1, 1, 28, 28)] * 3, min_side=84, highlight=1, gap=2)
    arr = np.asarray(im)
    assert tuple(arr[0, 86 + 40]) == render.HIGHLIGHT and tuple(arr[0, 40]) != render.HIGHLIGHT


def test_stack_of_transparent_strips_stays_transparent():
    a = render.strip([torch.zeros(1, 1, 8, 8)], min_side=8, background=render.TRANSPARENT)
    assert render.stack([a, a]).mode == "RGBA"

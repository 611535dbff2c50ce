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

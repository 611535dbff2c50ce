"""explorer.data: bundled examples, conversions, fixed noise, and refusing bad images clearly."""

import numpy as np
import pytest
import torch

from bad_images import write_bad_files, write_odd_files
from explorer import data


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    return write_bad_files(tmp_path_factory.mktemp("bad"))


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory):
    return write_odd_files(tmp_path_factory.mktemp("odd"))


def test_bundled_examples_exist_with_licence_notes():
    licences = (data.ASSETS_DIR / "LICENSES.md").read_text()
    assert len(data.EXAMPLES) >= 4
    for path in data.EXAMPLES:
        assert path.is_file()
        assert path.name in licences


def test_mnist_examples_load_as_28x28_grayscale():
    im = data.load_image(data.ASSETS_DIR / "mnist_0.png")
    assert (im.mode, im.size) == ("L", (28, 28))


def test_photo_example_loads_as_rgb():
    im = data.load_image(data.ASSETS_DIR / "astronaut.png")
    assert im.mode == "RGB" and max(im.size) <= data.MAX_SIDE


@pytest.mark.parametrize(
    "name, message",
    [("empty.png", "empty"), ("not_an_image.png", "not an image"), ("truncated.png", "damaged or truncated"),
     ("bomb.png", "too many pixels")],
)
def test_bad_file_raises_readable_error(bad_files, name, message):
    with pytest.raises(data.ImageInputError, match=message):
        data.load_image(bad_files[name])


def test_empty_bytes_are_refused():
    with pytest.raises(data.ImageInputError, match="empty"):
        data.load_image(b"")


def test_missing_image_is_refused():
    with pytest.raises(data.ImageInputError, match="No image"):
        data.load_image(None)


def test_sixteen_bit_is_scaled_to_eight_bit_not_clipped(odd_files):
    im = data.load_image(odd_files["gray16.png"])
    arr = np.asarray(im)
    assert im.mode == "L"
    assert arr.max() == round((30 * 40 - 1) * 50 / 65535 * 255)  # scaled by 65535/255, not saturated at 255


def test_rgba_bright_content_is_composited_on_black(odd_files):
    arr = np.asarray(data.load_image(odd_files["rgba.png"]))
    assert arr[0, 0].max() == 0 and arr[16, 16].min() == 255


def test_palette_cmyk_become_rgb(odd_files):
    assert data.load_image(odd_files["palette.png"]).mode == "RGB"
    cmyk = data.load_image(odd_files["cmyk.jpg"])
    assert cmyk.mode == "RGB"
    r, g, b = np.asarray(cmyk)[10, 15]
    assert r > 200 and g < 60 and b < 60  # C=0, M=Y=255: red


def test_animated_gif_gives_its_first_frame(odd_files):
    im = data.load_image(odd_files["animated.gif"])
    assert im.size == (16, 16) and int(np.asarray(im.convert("L")).mean()) == 10


def test_one_pixel_image_loads(odd_files):
    assert data.load_image(odd_files["one_pixel.png"]).size == (1, 1)


def test_large_image_is_downscaled_to_max_side(odd_files):
    assert data.load_image(odd_files["large.png"]).size == (data.MAX_SIDE, data.MAX_SIDE // 2)


def test_image_to_tensor_shape_and_range():
    x = data.image_to_tensor(data.load_image(data.ASSETS_DIR / "mnist_0.png"))
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() == -1.0 and x.max() == 1.0
    rgb = data.image_to_tensor(data.load_image(data.ASSETS_DIR / "astronaut.png"))
    assert rgb.shape == (1, 3, 256, 256)


def test_tensor_uint8_round_trip_is_exact():
    im = data.load_image(data.ASSETS_DIR / "astronaut.png")
    assert np.array_equal(data.tensor_to_uint8(data.image_to_tensor(im)), np.asarray(im))


def test_tensor_to_uint8_clips_values_outside_range():
    x = torch.tensor([[[[-5.0, -1.0, 0.0, 1.0, 7.0]]]])
    assert data.tensor_to_uint8(x).tolist() == [[0, 0, 128, 255, 255]]  # 127.5 rounds half to even -> 128


def test_fixed_noise_is_the_same_for_same_seed_and_shape():
    a = data.fixed_noise(3, (1, 1, 28, 28))
    assert torch.equal(a, data.fixed_noise(3, (1, 1, 28, 28)))
    assert not torch.equal(a, data.fixed_noise(4, (1, 1, 28, 28)))


@pytest.mark.parametrize("seed", [-1, 1.5, float("nan"), "x", None])
def test_fixed_noise_refuses_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed"):
        data.fixed_noise(seed, (1, 1, 2, 2))


def test_sketch_becomes_white_digit_on_black_28x28():
    canvas = np.zeros((280, 280, 4), np.uint8)  # transparent
    canvas[60:220, 130:150] = (0, 0, 0, 255)  # a black vertical stroke: a "1"
    im = data.sketch_to_image(canvas)
    arr = np.asarray(im)
    assert (im.mode, im.size) == ("L", (28, 28))
    assert arr[14, 14] > 200 and arr[0, 0] == 0


def test_empty_sketch_is_refused():
    with pytest.raises(data.ImageInputError, match="empty"):
        data.sketch_to_image(np.zeros((50, 50, 4), np.uint8))

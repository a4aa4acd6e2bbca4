import numpy as np
import pytest
from PIL import Image

from facever.model.resize import area_resize, warp_affine


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))


def exact_area_average(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Each output pixel the mean of the input over the rectangle it covers (pixels as unit squares)."""

    def weights(n_in: int, n_out: int) -> np.ndarray:
        step = n_in / n_out
        start, end = np.arange(n_out)[:, None] * step, (np.arange(n_out)[:, None] + 1) * step
        pixels = np.arange(n_in)[None, :]
        return np.clip(np.minimum(end, pixels + 1) - np.maximum(start, pixels), 0, None) / step

    width, height = size
    rows, columns = weights(image.shape[0], height), weights(image.shape[1], width)
    return np.einsum("yi,ijc,xj->yxc", rows, image.astype(float), columns, optimize=True)


@pytest.mark.parametrize(
    ("source", "target"), [((251, 187), (24, 24)), ((60, 80), (53, 71)), ((800, 600), (160, 120))]
)
def test_area_resize_is_exact_without_halving(source, target):
    """Odd sides, under three times the size, or a whole-number factor: OpenCV's area averaging alone,
    exact but for rounding."""
    image = smooth_image(*source[::-1])
    ours = area_resize(image, target)
    assert ours.shape == (target[1], target[0], 3)
    assert np.abs(ours - exact_area_average(image, target)).mean() < 0.3


@pytest.mark.parametrize(
    ("source", "target"),
    [((250, 250), (75, 75)), ((112, 96), (24, 24)), ((400, 300), (48, 48)), ((640, 480), (200, 150))],
)
def test_area_resize_with_halving_stays_near_the_exact_average(source, target):
    """Halved first: some extra blur, but on this detailed image (8-pixel colour blobs) within a few
    grey levels of the exact area average on average, as Pillow's box filter is (1.3 to 3.7 here)."""
    image = smooth_image(*source[::-1])
    assert np.abs(area_resize(image, target) - exact_area_average(image, target)).mean() < 5.0


def test_area_resize_keeps_a_feature_in_place():
    """A bright square lands where the factor says: the halving keeps the geometry."""
    image = np.zeros((400, 400, 3), np.uint8)
    image[120:131, 300:311] = 255  # centred at (305, 125) in pixel-centre coordinates
    small = area_resize(image, (60, 60)).astype(float)[:, :, 0]
    ys, xs = np.mgrid[0:60, 0:60]
    cx, cy = (xs * small).sum() / small.sum(), (ys * small).sum() / small.sum()
    factor = 400 / 60
    assert (cx + 0.5) * factor - 0.5 == pytest.approx(305, abs=0.5)
    assert (cy + 0.5) * factor - 0.5 == pytest.approx(125, abs=0.5)


def test_warp_affine_maps_pixel_centres():
    """The matrix takes image pixels to output pixels with centres at whole numbers, as
    similarity_transform gives it: a pure shift moves every pixel by exactly that much."""
    image = smooth_image(40, 40)
    shifted = warp_affine(image, np.array([[1.0, 0.0, -5.0], [0.0, 1.0, -7.0]]), 20)
    assert np.array_equal(shifted, image[7:27, 5:25])


def test_warp_affine_is_black_outside_the_image():
    image = np.full((10, 10, 3), 200, np.uint8)
    out = warp_affine(image, np.array([[1.0, 0.0, 10.0], [0.0, 1.0, 10.0]]), 30)
    assert out[:9, :9].max() == 0 and out[21:, 21:].max() == 0
    assert (out[11:19, 11:19] == 200).all()

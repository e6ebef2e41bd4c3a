"""Paste-back in strips over the masks' box: the same pixels as the whole-image float64 blend it
replaced (within rounding), and the source's own bytes everywhere the feather doesn't reach."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from promptartisan.engine.regions import feather_mask
from promptartisan.tools import paste as paste_module
from promptartisan.tools.images import from_working_size
from promptartisan.tools.paste import feather_rows, grown_box, paste_back


def float64_paste(source: Image.Image, result: Image.Image, mask: np.ndarray,
                  radius: int) -> np.ndarray:
    """The former paste-back, kept as the reference: whole-image float64 buffers, the result
    resized to the source's size first."""
    alpha = feather_mask(mask, radius).astype(np.float64)[..., None]
    base = np.asarray(source.convert("RGB"), dtype=np.float64)
    edit = np.asarray(from_working_size(result, source.size).convert("RGB"), dtype=np.float64)
    blended = np.rint(base + (edit - base) * alpha)
    return np.clip(blended, 0, 255).astype(np.uint8)


def random_case(seed: int, size: tuple[int, int], edited_size: tuple[int, int]
                ) -> tuple[Image.Image, Image.Image, np.ndarray]:
    rng = np.random.default_rng(seed)
    width, height = size
    source = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    edited = Image.fromarray(rng.integers(0, 256, (edited_size[1], edited_size[0], 3),
                                          dtype=np.uint8))
    blobs = rng.random((height // 16 + 1, width // 16 + 1)) > 0.85
    mask = np.kron(blobs, np.ones((16, 16), dtype=bool))[:height, :width]
    mask[: height // 3] = False  # a box smaller than the image
    return source, edited, mask


@pytest.fixture(autouse=True)
def small_strips(monkeypatch: pytest.MonkeyPatch) -> None:
    """Strips of a few rows, so that every test crosses many strip seams."""
    monkeypatch.setattr(paste_module, "STRIP_PIXELS", 3000)


@pytest.mark.parametrize(("seed", "size", "edited_size", "radius"), [
    (0, (301, 203), (96, 64), 9),   # the engine's working size, upscaled by ~3
    (1, (250, 180), (250, 180), 5),  # already at the source's size
    (2, (160, 333), (40, 80), 0),   # no feather
    (3, (97, 61), (96, 64), 30),    # a radius larger than some strips
])
def test_equals_the_float64_blend_within_one(seed: int, size: tuple[int, int],
                                             edited_size: tuple[int, int], radius: int) -> None:
    source, edited, mask = random_case(seed, size, edited_size)
    lean = np.asarray(paste_back(source, edited, mask, radius)).astype(int)
    reference = float64_paste(source, edited, mask, radius).astype(int)
    assert np.abs(lean - reference).max() <= 1


def test_pixels_the_feather_does_not_reach_are_the_source_bytes() -> None:
    source, edited, mask = random_case(4, (320, 240), (96, 72))
    radius = 7
    pasted = np.asarray(paste_back(source, edited, mask, radius))
    original = np.asarray(source)
    x0, y0, x1, y1 = grown_box(mask, radius)
    outside = np.ones(mask.shape, dtype=bool)
    outside[y0:y1, x0:x1] = False
    assert outside.any() and np.array_equal(pasted[outside], original[outside])
    far = ndimage.distance_transform_edt(~mask) > radius
    assert np.array_equal(pasted[far], original[far])
    assert not np.array_equal(pasted[mask], original[mask])


def test_the_feather_is_the_engines_weight() -> None:
    _, _, mask = random_case(5, (200, 150), (200, 150))
    radius = 6
    x0, y0, x1, y1 = grown_box(mask, radius)
    weight = np.zeros(mask.shape, dtype=np.float32)
    for top in range(y0, y1, 7):
        bottom = min(top + 7, y1)
        weight[top:bottom, x0:x1] = feather_rows(mask, x0, x1, top, bottom, radius)
    assert weight.dtype == np.float32
    np.testing.assert_allclose(weight, feather_mask(mask, radius), atol=1e-6)


def test_no_mask_gives_the_source_and_other_modes_become_rgb() -> None:
    grey = Image.fromarray(np.arange(48 * 64, dtype=np.uint32).reshape(48, 64).astype(np.uint8))
    empty = np.zeros((48, 64), dtype=bool)
    pasted = paste_back(grey, Image.new("RGB", (64, 48), "red"), empty, 4)
    assert pasted.mode == "RGB" and np.array_equal(np.asarray(pasted),
                                                   np.asarray(grey.convert("RGB")))
    with pytest.raises(ValueError, match="64×48"):
        paste_back(grey, grey, np.zeros((10, 10), dtype=bool), 4)

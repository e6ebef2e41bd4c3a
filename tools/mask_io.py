"""The one mask reader: the CLI's `--region` files, the chat's drawn masks and the agent's
`mask=` all become a bool (height, width) array by the rules of `promptartisan.mask_values`
(alpha where in use, else the brightest channel; 0/1, 0–255, 16-bit and fractions). A mask of
another size is resized to the image; one of another aspect ratio (beyond the engine's
`ASPECT_TOLERANCE`) belongs to another picture and is refused, naming both sizes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from promptartisan.mask_values import MaskError, any_mask
from promptartisan.tools.images import DEFAULT_MAX_PIXELS, InvalidImageError, open_image

__all__ = ["MaskError", "read_mask", "resize_mask"]


def read_mask(source: Any, size: tuple[int, int] | None = None,
              max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """`source` (a file path, bytes, PIL image, numpy array or torch tensor) as a bool mask of
    `size` = (width, height), or at its own size when `size` is None."""
    if isinstance(source, (str, Path, bytes, bytearray)):
        try:
            source = open_image(source, max_pixels)
        except InvalidImageError as exc:
            raise MaskError(f"the mask can't be read: {exc}") from exc
    mask = any_mask(source)
    if size is None:
        return mask
    _check_aspect(mask.shape, size)
    return resize_mask(mask, size)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A bool mask at `size` = (width, height): bilinear (area-averaging when shrinking), then
    thresholded at half. The same array when it already has that size."""
    if mask.shape == (size[1], size[0]):
        return mask
    scaled = Image.fromarray(np.multiply(mask, 255, dtype=np.uint8)).resize(
        size, Image.Resampling.BILINEAR)
    return np.asarray(scaled) >= 128


def _check_aspect(shape: tuple[int, ...], size: tuple[int, int]) -> None:
    """The engine's rule: a mask may be drawn at another resolution, not for another picture."""
    from promptartisan.engine.regions import ASPECT_TOLERANCE

    mask_h, mask_w = shape
    width, height = size
    if (mask_h, mask_w) == (height, width):
        return
    if abs((mask_w / mask_h) / (width / height) - 1) > ASPECT_TOLERANCE:
        raise MaskError(f"the mask is {mask_w}×{mask_h} but the image is {width}×{height}: "
                        f"the aspect ratios differ, so it belongs to another picture")

"""The one mask reader: the CLI's `--region` files, the chat's drawn masks and the agent's
`mask=` all become a bool (height, width) array by the same rules.

- A picture with an alpha channel in use is read by its alpha: opaque = edit, transparent =
  keep (an editor's eraser leaves transparency, not white). A fully opaque alpha says nothing
  and is ignored; the picture's grey levels are read instead.
- Otherwise the brightest channel: white (or any colour) = edit, black = keep.
- Values are read on their type's scale, thresholded at half: bool; 0/1 integers (an integer
  array whose largest value is 1); 0–255 (8-bit); 0–65535 (uint16 arrays, 16-bit pictures,
  whatever their own range); floats in [0, 1].
- A mask of another size is resized to the image; one of another aspect ratio (beyond the
  engine's `ASPECT_TOLERANCE`) belongs to another picture and is refused, naming both sizes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from promptartisan.tools.images import (
    DEFAULT_MAX_PIXELS,
    SIXTEEN_BIT_MODES,
    InvalidImageError,
    open_image,
)

ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


class MaskError(ValueError):
    """A mask can't be used for this image; the message says why in plain words."""


def read_mask(source: Any, size: tuple[int, int] | None = None,
              max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """`source` (a file path, bytes, PIL image, numpy array or torch tensor) as a bool mask of
    `size` = (width, height), or at its own size when `size` is None."""
    if isinstance(source, (str, Path, bytes, bytearray)):
        try:
            source = open_image(source, max_pixels)
        except InvalidImageError as exc:
            raise MaskError(f"the mask can't be read: {exc}") from exc
    if isinstance(source, Image.Image):
        mask = _picture_mask(source)
    elif hasattr(source, "detach"):  # a torch tensor, without importing torch for everyone
        tensor = source.detach().cpu()
        mask = _array_mask(np.asarray(tensor.float() if tensor.is_floating_point() else tensor))
    elif isinstance(source, np.ndarray):
        mask = _array_mask(source)
    else:
        raise MaskError(f"a mask must be a picture file, a picture or an array, not "
                        f"{type(source).__name__}")
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


def _picture_mask(picture: Image.Image) -> np.ndarray:
    if picture.mode == "P":
        picture = picture.convert("RGBA" if "transparency" in picture.info else "RGB")
    if picture.mode in ALPHA_MODES:
        alpha = picture.getchannel("A")
        if alpha.getextrema() != (255, 255):
            return np.asarray(alpha) >= 128
        picture = picture.convert("RGB")
    if picture.mode == "1":
        return np.asarray(picture, dtype=bool)
    if picture.mode in SIXTEEN_BIT_MODES:
        return np.asarray(picture) >= 32768
    if picture.mode == "F":
        return _array_mask(np.asarray(picture))
    if picture.mode != "L":
        picture = picture.convert("RGB")
    return _array_mask(np.asarray(picture))


def _array_mask(array: np.ndarray) -> np.ndarray:
    while array.ndim > 2 and array.shape[0] == 1:  # (1, H, W), (1, 1, H, W) from torch
        array = array[0]
    if array.ndim == 3:
        channels = array.shape[-1]
        if channels in (2, 4):  # grey + alpha, RGBA: alpha is the mask unless fully opaque
            alpha = array[..., -1]
            array = array[..., :-1].max(axis=-1) if _fully_opaque(alpha) else alpha
        elif channels in (1, 3):
            array = array.max(axis=-1)
    if array.ndim != 2 or 0 in array.shape:
        raise MaskError(f"a mask must be a picture or a (height, width) array, got shape "
                        f"{array.shape}")
    if array.dtype == np.bool_:
        return array
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0:
            raise MaskError("a mask can't hold negative values")
        if high <= 1:
            return array.astype(bool)
        if array.dtype == np.uint16:
            return array >= 32768
        if high > 255:
            raise MaskError(f"an integer mask holds 0/1, 0–255 (or uint16 0–65535); this one "
                            f"reaches {high}")
        return array >= 128
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise MaskError("a mask of fractions must hold values in [0, 1]")
        return array >= 0.5
    raise MaskError(f"a mask must hold numbers, not {array.dtype}")


def _fully_opaque(alpha: np.ndarray) -> bool:
    """Whether an alpha channel is everywhere at its type's full value (1 for 0/1 integers)."""
    if alpha.dtype == np.bool_ or np.issubdtype(alpha.dtype, np.floating):
        full: float = 1
    elif alpha.dtype == np.uint16:
        full = 65535
    else:
        full = 1 if int(alpha.max()) <= 1 else 255
    return bool(alpha.min() >= full)


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

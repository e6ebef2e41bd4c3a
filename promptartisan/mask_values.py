"""How a mask's values are read, whatever holds them: the rules every caller shares, the
engine's `Region` masks, the CLI's `--region` files, the chat's and the agent's masks
(`promptartisan.tools.mask_io` reads files and sizes them on top of this). Plain numpy and
Pillow, so that every package can use it without importing the others.

- A picture with an alpha channel in use is read by its alpha: opaque = edit, transparent =
  keep (an editor's eraser leaves transparency, not white). A fully opaque alpha says nothing
  and is ignored; the picture's grey levels are read instead.
- Otherwise the brightest channel: white (or any colour) = edit, black = keep.
- Values are read on their type's scale, thresholded at half: bool; 0/1 integers (an integer
  array whose largest value is 1); 0–255 (8-bit); 0–65535 (uint16 arrays, 16-bit pictures,
  whatever their own range); floats in [0, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np
import PIL.Image

ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


class MaskError(ValueError):
    """A mask can't be used for this image; the message says why in plain words."""


def any_mask(source: Any) -> np.ndarray:
    """A bool (height, width) mask from a PIL image, a numpy array or a torch tensor."""
    if isinstance(source, PIL.Image.Image):
        return picture_mask(source)
    if hasattr(source, "detach"):  # a torch tensor, without importing torch for everyone
        tensor = source.detach().cpu()
        return array_mask(np.asarray(tensor.float() if tensor.is_floating_point() else tensor))
    if isinstance(source, np.ndarray):
        return array_mask(source)
    raise MaskError(f"a mask must be a picture or an array, not "
                    f"{type(source).__name__}")


def picture_mask(picture: PIL.Image.Image) -> np.ndarray:
    if picture.mode == "P":
        picture = picture.convert("RGBA" if "transparency" in picture.info else "RGB")
    if picture.mode in ALPHA_MODES:
        alpha = picture.getchannel("A")
        if alpha.getextrema() != (255, 255):
            return np.asarray(alpha) >= 128
        picture = picture.convert("RGB")
    if picture.mode == "1":
        return np.asarray(picture, dtype=bool)
    if picture.mode == "I" or picture.mode.startswith("I;16"):  # 16-bit, by its mode
        return np.asarray(picture) >= 32768
    if picture.mode == "F":
        return array_mask(np.asarray(picture))
    if picture.mode != "L":
        picture = picture.convert("RGB")
    return array_mask(np.asarray(picture))


def array_mask(array: np.ndarray) -> np.ndarray:
    while array.ndim > 2 and array.shape[0] == 1:  # (1, H, W), (1, 1, H, W) from torch
        array = array[0]
    if array.ndim == 3:
        channels = array.shape[-1]
        if channels in (2, 4):  # grey + alpha, RGBA: alpha is the mask unless fully opaque
            alpha = array[..., -1]
            array = array[..., :-1].max(axis=-1) if fully_opaque(alpha) else alpha
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


def fully_opaque(alpha: np.ndarray) -> bool:
    """Whether an alpha channel is everywhere at its type's full value (1 for 0/1 integers)."""
    if alpha.dtype == np.bool_ or np.issubdtype(alpha.dtype, np.floating):
        full: float = 1
    elif alpha.dtype == np.uint16:
        full = 65535
    else:
        full = 1 if int(alpha.max()) <= 1 else 255
    return bool(alpha.min() >= full)

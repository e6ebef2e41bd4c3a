"""Paste-back: the engine's result enters the full-size source through the feathered union of
the masks, so pixels away from every mask are the source's own, bit for bit.

Lean on memory for big uploads: only the masks' box (grown by the feather radius) is touched,
in strips of rows, in uint8 and float32; the engine's small result is resized strip by strip
(the same pixels as resizing it whole), never to a full-size copy.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from promptartisan.tools.masks import box_of

ENGINE_FEATHER = 8
"""The engine's paste-back feather radius at working size; at the upload's size it scales with
the image. Pixels farther than that from every mask are the upload's own, bit for bit."""

STRIP_PIXELS = 2_000_000
"""Pixels per strip of the box: the float32 working buffers stay near 50 MB at any size."""


def paste_back(source: Image.Image, edited: Image.Image, mask: np.ndarray,
               radius: int) -> Image.Image:
    """`edited` (any size with the source's aspect; Lanczos-resized as needed) on `mask`, the
    source farther than `radius` pixels from it, a linear seam between; an RGB copy of the
    source with only the box around `mask` rewritten."""
    width, height = source.size
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (height, width):
        raise ValueError(f"the paste mask is {mask.shape[1]}×{mask.shape[0]}, the image is "
                         f"{width}×{height}")
    out = source.copy() if source.mode == "RGB" else source.convert("RGB")
    box = grown_box(mask, radius)
    if box is None:
        return out
    x0, y0, x1, y1 = box
    rows = max(1, STRIP_PIXELS // (x1 - x0))
    # `from_working_size`'s two passes: columns for the box's width (small: box width × the
    # engine's height), then rows strip by strip.
    columns = edited.convert("RGB")
    if columns.width != width:
        columns = columns.resize((width, columns.height), Image.Resampling.LANCZOS)
    columns = columns.crop((x0, 0, x1, columns.height))
    scale_y = columns.height / height
    for top in range(y0, y1, rows):
        bottom = min(top + rows, y1)
        alpha = feather_rows(mask, x0, x1, top, bottom, radius)
        if not alpha.any():
            continue
        edit_part = columns.resize((x1 - x0, bottom - top), Image.Resampling.LANCZOS,
                                   box=(0, top * scale_y, x1 - x0, bottom * scale_y))
        strip = (x0, top, x1, bottom)
        base = np.asarray(out.crop(strip), dtype=np.float32)
        blend = np.asarray(edit_part, dtype=np.float32)
        blend -= base
        blend *= alpha[..., None]
        blend += base
        np.rint(blend, out=blend)
        np.clip(blend, 0, 255, out=blend)
        out.paste(Image.fromarray(blend.astype(np.uint8)), (x0, top))
    return out


def grown_box(mask: np.ndarray, radius: int) -> tuple[int, int, int, int] | None:
    """The (x0, y0, x1, y1) box around `mask` grown by `radius` within the image; None when
    the mask is empty."""
    x0, y0, x1, y1 = (int(v) for v in box_of(mask))
    if x1 == 0:
        return None
    margin = max(radius, 0)
    height, width = mask.shape
    return (max(0, x0 - margin), max(0, y0 - margin), min(width, x1 + margin),
            min(height, y1 + margin))


def feather_rows(mask: np.ndarray, x0: int, x1: int, top: int, bottom: int,
                 radius: int) -> np.ndarray:
    """The paste weight (float32) on rows top:bottom, columns x0:x1: 1 on the mask, falling
    linearly to 0 at Euclidean distance `radius`, 0 beyond. The columns must hold every mask
    pixel (a `grown_box`); the rows are read `radius` beyond the strip, where any mask pixel
    that can reach it lies."""
    if radius <= 0:
        return mask[top:bottom, x0:x1].astype(np.float32)
    from scipy import ndimage

    above, below = max(0, top - radius), min(mask.shape[0], bottom + radius)
    window = mask[above:below, x0:x1]
    if not window.any():
        return np.zeros((bottom - top, x1 - x0), dtype=np.float32)
    distance = ndimage.distance_transform_edt(~window)[top - above:bottom - above]
    weight = (1.0 - distance / radius).astype(np.float32)
    return np.clip(weight, 0.0, 1.0, out=weight)

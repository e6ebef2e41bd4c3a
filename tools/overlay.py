"""What the grounder understood, drawn on the image: each region tinted in its own colour,
outlined and labeled; an ambiguous phrase also shows its candidates' boxes."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from promptartisan.tools.grounding import Grounding
from promptartisan.tools.masks import box_of

# Well separated, colour-blind-friendly first (Okabe–Ito), then golden-ratio hues.
PALETTE = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178),
           (213, 94, 0), (204, 121, 167)]
TINT = 0.45


def colour(index: int) -> tuple[int, int, int]:
    """The colour of the `index`-th phrase: stable, and distinct from its neighbours."""
    if index < len(PALETTE):
        return PALETTE[index]
    hue = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return round(r * 255), round(g * 255), round(b * 255)


def overlay(image: Image.Image, groundings: Sequence[Grounding | None],
            labels: Sequence[str] | None = None) -> Image.Image:
    """A copy of `image` with every grounding drawn. None entries (nothing found) are skipped
    but keep their colour slot, so a phrase's colour doesn't depend on the others' results."""
    if labels is not None and len(labels) != len(groundings):
        raise ValueError(f"{len(labels)} labels for {len(groundings)} groundings")
    result = image.copy() if image.mode == "RGB" else image.convert("RGB")
    width, height = result.size
    tint = round(TINT * 255)
    outlines, corners = [], {}
    for index, grounding in enumerate(groundings):  # in uint8, over each mask's box only
        if grounding is None:
            continue
        mask = np.asarray(grounding.mask, dtype=bool)
        if mask.shape != (height, width):
            raise ValueError(f"mask {index} is {mask.shape[1]}×{mask.shape[0]}, the image is "
                             f"{width}×{height}")
        x0, y0, x1, y1 = (int(v) for v in box_of(mask))
        if x1 == 0:
            continue
        inside = mask[y0:y1, x0:x1]
        result.paste(colour(index), (x0, y0, x1, y1),
                     Image.fromarray(np.multiply(inside, tint, dtype=np.uint8)))
        edge = _outline(inside, max(1, max(height, width) // 256))
        outlines.append((colour(index), (x0, y0, x1, y1), Image.fromarray(edge)))
        corners[index] = (x0, y0)
    for rgb, box, edge in outlines:
        result.paste(rgb, box, edge)
    draw = ImageDraw.Draw(result)
    font = ImageFont.load_default(size=max(10, max(height, width) // 40))
    for index, grounding in enumerate(groundings):
        if grounding is None:
            continue
        rgb = colour(index)
        for box in grounding.candidates:
            draw.rectangle([float(v) for v in box], outline=rgb, width=1)
        text = labels[index] if labels is not None else _label(grounding)
        if index in corners:
            x, y = corners[index]
            left, top, right, bottom = draw.textbbox((x + 2, y + 2), text, font=font)
            draw.rectangle([left - 2, top - 2, right + 2, bottom + 2], fill=rgb)
            draw.text((x + 2, y + 2), text, fill=_ink(rgb), font=font)
    return result


def _outline(mask: np.ndarray, width: int) -> np.ndarray:
    """The pixels of `mask` within `width` of its border (image edges count as border)."""
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask, iterations=width, border_value=0)


def _label(grounding: Grounding) -> str:
    mark = "?" if grounding.ambiguous else ""
    return f"{grounding.label}{mark} {grounding.score:.2f}"


def _ink(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light colours, white on dark ones."""
    return (0, 0, 0) if 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 150 else (255, 255, 255)

"""What the grounder understood, drawn on the image: each region tinted in its own colour,
outlined and labeled; an ambiguous phrase also shows its candidates as numbered boxes (1, 2, …
in the order of its `candidates`, which is the order of the "which one?" question's answers),
each in its own colour, so "the 5th from the left" is found among eight by its number."""

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
LABEL_PAD = 2  # pixels of colour around a label's text


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
    labelled = [(index, labels[index] if labels is not None else _label(grounding))
                for index, grounding in enumerate(groundings)
                if grounding is not None and index in corners
                and not len(grounding.candidates)]  # a candidate's number says it
    inks = [draw.textbbox((0, 0), text, font=font) for _, text in labelled]
    sizes = [(right - left + 2 * LABEL_PAD, bottom - top + 2 * LABEL_PAD)
             for left, top, right, bottom in inks]
    places = label_boxes(sizes, [corners[index] for index, _ in labelled], result.size)
    for (index, text), (left, top, _, _), box in zip(labelled, inks, places, strict=True):
        rgb = colour(index)
        draw.rectangle(box, fill=rgb)
        draw.text((box[0] + LABEL_PAD - left, box[1] + LABEL_PAD - top), text, fill=_ink(rgb),
                  font=font)
    for grounding in groundings:  # over the labels: a number must stay readable
        if grounding is not None:
            _numbered_boxes(draw, grounding.candidates, result.size)
    return result


def label_boxes(sizes: Sequence[tuple[int, int]], corners: Sequence[tuple[int, int]],
                size: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Where each label goes, as (x0, y0, x1, y1): at its region's top-left corner, kept inside
    the picture, and moved down past every label already placed that it would cover (regions
    that share a corner, one inside another). Only a picture too small for all of them gets
    labels that overlap."""
    placed: list[tuple[int, int, int, int]] = []
    for (w, h), (x, y) in zip(sizes, corners, strict=True):
        x = min(max(0, x), max(0, size[0] - w))
        y = min(max(0, y), max(0, size[1] - h))
        box = (x, y, x + w, y + h)
        for _ in range(len(placed)):
            hit = next((p for p in placed if _cover(box, p)), None)
            if hit is None or hit[3] + h > size[1]:  # free, or no room below the one in the way
                break
            box = (x, hit[3], x + w, hit[3] + h)
        placed.append(box)
    return placed


def _cover(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _numbered_boxes(draw: ImageDraw.ImageDraw, boxes: Sequence[Sequence[float]],
                    size: tuple[int, int]) -> None:
    """Box k (from 1) outlined in colour k - 1, its number on a tag of that colour at its
    top-left corner (kept inside the picture), large enough to read on a phone."""
    width = max(2, max(size) // 200)
    font = ImageFont.load_default(size=max(16, max(size) // 20))
    for number, box in enumerate(boxes, start=1):
        x0, y0, x1, y1 = (float(v) for v in box)
        rgb = colour(number - 1)
        draw.rectangle([x0, y0, x1, y1], outline=rgb, width=width)
        text = str(number)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        pad = max(2, width)
        w, h = right - left + 2 * pad, bottom - top + 2 * pad
        x = min(max(0.0, x0), size[0] - w)
        y = min(max(0.0, y0), size[1] - h)
        draw.rectangle([x, y, x + w, y + h], fill=rgb, outline=(255, 255, 255))
        draw.text((x + pad - left, y + pad - top), text, fill=_ink(rgb), font=font)


def _outline(mask: np.ndarray, width: int) -> np.ndarray:
    """The pixels of `mask` within `width` of its border (image edges count as border)."""
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask, iterations=width, border_value=0)


def _label(grounding: Grounding) -> str:
    """ "sky 87%": the target and how well it matched (a rounding's -0.00 is 0%)."""
    mark = "?" if grounding.ambiguous else ""
    return f"{grounding.label}{mark} {min(max(grounding.score, 0.0), 1.0):.0%}"


def _ink(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light colours, white on dark ones."""
    return (0, 0, 0) if 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 150 else (255, 255, 255)

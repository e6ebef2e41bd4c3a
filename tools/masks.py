"""From a model's raw region to an edit region: whole objects, no specks, some room around.

An edit that adds something ("put a hat on the man") needs pixels beyond the object's
outline, so masks grow by a margin proportional to the image; a region too small to edit is
reported as nothing found (None) rather than as a speck the engine would smear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# scipy.ndimage is imported where used: `promptartisan.tools` is imported by every command
# (image loading) and ndimage alone costs a third of a second.


@dataclass(frozen=True)
class Refinement:
    """How raw masks become edit regions. Areas are fractions of the image."""

    threshold: float = 0.4  # probability above which a heat-map pixel is in the region
    min_area: float = 0.001  # smaller connected pieces are specks; smaller masks are None
    max_hole: float = 0.005  # enclosed holes up to this size are filled, larger ones kept
    min_score: float = 0.3  # groundings scoring lower are None
    margin: float = 0.03  # dilation, as a fraction of the image's long side

    def __post_init__(self) -> None:
        for name in ("threshold", "min_area", "max_hole", "min_score", "margin"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"refinement {name} must be within [0, 1], got {value}")


def components(mask: np.ndarray, min_pixels: int = 1) -> list[np.ndarray]:
    """The connected pieces (8-connected) of `mask` with at least `min_pixels` pixels each,
    largest first."""
    from scipy import ndimage

    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return []
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = [i for i in np.argsort(-sizes[1:], kind="stable") + 1 if sizes[i] >= min_pixels]
    return [labels == i for i in keep]


def drop_specks(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """`mask` without the connected pieces smaller than `min_pixels`."""
    from scipy import ndimage

    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0
    return sizes[labels] >= min_pixels


def fill_holes(mask: np.ndarray, max_pixels: int) -> np.ndarray:
    """Fill the enclosed holes of `mask` up to `max_pixels` each; larger ones are real
    (the balloon in front of the sky is not part of the sky)."""
    from scipy import ndimage

    holes = ndimage.binary_fill_holes(mask) & ~mask
    return mask | (holes & ~drop_specks(holes, max_pixels + 1))


def dilate(mask: np.ndarray, pixels: float) -> np.ndarray:
    """Grow `mask` by a disc of radius `pixels` (Euclidean distance, any radius in O(HW))."""
    from scipy import ndimage

    if pixels <= 0 or not mask.any():
        return mask.astype(bool)
    return ndimage.distance_transform_edt(~mask) <= pixels


def refine(mask: np.ndarray, refinement: Refinement | None = None) -> np.ndarray | None:
    """Specks dropped, small holes filled, grown by the margin; None when what is left is
    below the minimum area."""
    refinement = refinement or Refinement()
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D (height, width), got shape {mask.shape}")
    pixels = mask.size
    min_pixels = max(1, round(refinement.min_area * pixels))
    mask = drop_specks(mask, min_pixels)
    if mask.sum() < min_pixels:
        return None
    mask = fill_holes(mask, round(refinement.max_hole * pixels))
    return dilate(mask, refinement.margin * max(mask.shape))


def box_of(mask: np.ndarray) -> np.ndarray:
    """The xyxy box around `mask` (pixel edges: a single pixel at (x, y) is x, y, x+1, y+1)."""
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(columns) == 0:  # (nonzero() would list every pixel: gigabytes for a big mask)
        return np.zeros(4, dtype=np.float32)
    return np.array([columns[0], rows[0], columns[-1] + 1, rows[-1] + 1], dtype=np.float32)

"""Regions and their masks: checking what callers pass, the composite label map at every attention
resolution, and the feathered paste-back mask."""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

# A mask may be drawn at another resolution than the image, but not for another image: its aspect
# ratio must match the image's within this fraction.
ASPECT_TOLERANCE = 0.05


class RegionError(ValueError):
    """A region, its mask or its prompt can't be used; the message names the region."""


@dataclass
class Region:
    """One instruction bound to the area it may change.

    `mask`: PIL image, numpy array or torch tensor of any size (resized to the image); soft masks
    are read at 0.5. `group`: regions sharing a group see each other in self-attention (so "a
    balloon above each child" paints the same balloon); it defaults to the region's own index.
    `order`: where masks overlap, the higher order wins, like layers in an image editor.
    """

    mask: Any
    prompt: str
    group: Hashable | None = None
    order: float = 0


@dataclass
class LabelMaps:
    """Per attention resolution (h, w): each pixel's region label (0 = background, k = region k,
    1-based) and its group label (0 = background, else a group id from 1)."""

    shapes: list[tuple[int, int]]
    labels: dict[tuple[int, int], torch.Tensor]
    groups: dict[tuple[int, int], torch.Tensor]


def mask_array(mask: Any, size: tuple[int, int], name: str = "mask") -> np.ndarray:
    """A boolean (height, width) mask at `size` = (width, height) from a PIL image, numpy array or
    torch tensor; values in [0, 1] (uint8 in [0, 255]), thresholded at 0.5 after resizing."""
    if isinstance(mask, PIL.Image.Image):
        mask = np.asarray(mask.convert("L"))
    elif isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    elif not isinstance(mask, np.ndarray):
        raise RegionError(f"{name} must be a PIL image, numpy array or torch tensor, "
                          f"not {type(mask).__name__}")
    array = np.asarray(mask)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2 or 0 in array.shape:
        raise RegionError(f"{name} must be a 2-D (height, width) array, got shape {mask.shape}")
    if array.dtype == np.bool_:
        values = array.astype(np.float32)
    elif array.dtype == np.uint8:
        values = array.astype(np.float32) / 255.0
    elif np.issubdtype(array.dtype, np.number):
        values = array.astype(np.float32)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise RegionError(f"{name} must hold values in [0, 1] (or uint8 in [0, 255])")
    else:
        raise RegionError(f"{name} has non-numeric values ({array.dtype})")

    width, height = size
    mask_h, mask_w = values.shape
    if abs((mask_w / mask_h) / (width / height) - 1) > ASPECT_TOLERANCE:
        raise RegionError(f"{name} is {mask_w}×{mask_h} but the image is {width}×{height}: "
                          f"the aspect ratios differ, so it belongs to another image")
    if (mask_h, mask_w) != (height, width):
        values = F.interpolate(torch.from_numpy(values)[None, None], size=(height, width),
                               mode="bilinear", antialias=True, align_corners=False)[0, 0].numpy()
    return values >= 0.5


def prepare_regions(regions: Sequence[Region], size: tuple[int, int], max_regions: int
                    ) -> tuple[list[Region], np.ndarray, list[int]]:
    """Check `regions` for an image of `size` = (width, height). Returns the usable regions, their
    boolean masks (n, height, width) and their group ids (1-based). A region whose mask is empty
    can't change anything: it is dropped with a warning; if all are empty that is an error."""
    regions = list(regions)
    if not regions:
        raise RegionError("no regions: give at least one Region(mask, prompt)")
    if len(regions) > max_regions:
        raise RegionError(f"{len(regions)} regions, more than the limit of {max_regions}")
    kept, masks, keys = [], [], []
    for index, region in enumerate(regions):
        name = f"region {index + 1}"
        if not isinstance(region, Region):
            raise RegionError(f"{name} is a {type(region).__name__}, not a Region")
        if not isinstance(region.prompt, str) or not region.prompt.strip():
            raise RegionError(f"{name} has an empty prompt: say what to do there")
        if not isinstance(region.order, numbers.Real) or not math.isfinite(region.order):
            raise RegionError(f"{name}'s order must be a number, not {region.order!r}")
        mask = mask_array(region.mask, size, name=f"{name}'s mask")
        if not mask.any():
            warnings.warn(f"{name} ({region.prompt!r}) has an empty mask and is skipped",
                          stacklevel=3)
            continue
        kept.append(region)
        masks.append(mask)
        keys.append(("own", index) if region.group is None else ("group", region.group))
    if not kept:
        raise RegionError("every region's mask is empty: nothing would change")
    group_ids = {key: i + 1 for i, key in enumerate(dict.fromkeys(keys))}
    return kept, np.stack(masks), [group_ids[key] for key in keys]


def attention_shapes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """The latent size and each size the UNet's stride-2 downsamplers reach (ceil(x / 2))."""
    shapes = [(height, width)]
    for _ in range(levels - 1):
        height, width = -(-height // 2), -(-width // 2)
        shapes.append((height, width))
    return shapes


def label_maps(masks: torch.Tensor, orders: Sequence[float], groups: Sequence[int],
               shapes: Sequence[tuple[int, int]]) -> LabelMaps:
    """The composite label map at each of `shapes` from boolean masks (n, H, W).

    A pixel belongs to a region whose mask covers at least half of it; where several do, the one
    with the higher order wins (equal orders: the later region). A region too small to cover half
    of any pixel at a coarse resolution keeps its best-covered pixels there, so that no
    instruction silently loses its text at a whole resolution.
    """
    group_of = torch.tensor([0, *groups], dtype=torch.long)
    stacking = sorted(range(len(orders)), key=lambda k: orders[k])
    labels, group_maps = {}, {}
    for shape in shapes:
        cover = F.adaptive_avg_pool2d(masks[:, None].float(), shape)[:, 0]
        present = cover >= 0.5
        peak = cover.flatten(1).amax(1)[:, None, None]
        missing = ~present.flatten(1).any(1)
        present[missing] = (cover == peak)[missing] & (peak > 0)[missing]
        label = torch.zeros(shape, dtype=torch.long)
        for k in stacking:
            label[present[k]] = k + 1
        labels[shape] = label
        group_maps[shape] = group_of[label]
    return LabelMaps(list(shapes), labels, group_maps)


def feather_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """Paste-back weight: 1 on the mask, falling linearly to 0 at Euclidean distance `radius`
    from it, exactly 0 beyond, so that those pixels stay the source's own, bit for bit.

    The distance is exact up to `radius` and computed in O(radius · pixels): the distance to the
    nearest mask pixel within each column, then the nearest column within `radius` on each row.
    """
    if radius <= 0:
        return mask.astype(np.float32)
    far = float(radius + 1)
    column = np.where(mask, 0.0, far).astype(np.float32)
    for d in range(1, radius + 1):
        column[d:] = np.minimum(column[d:], np.where(mask[:-d], d, far))
        column[:-d] = np.minimum(column[:-d], np.where(mask[d:], d, far))
    squared = column**2
    distance2 = squared.copy()
    for d in range(1, radius + 1):
        distance2[:, d:] = np.minimum(distance2[:, d:], squared[:, :-d] + d * d)
        distance2[:, :-d] = np.minimum(distance2[:, :-d], squared[:, d:] + d * d)
    return np.clip(1.0 - np.sqrt(distance2) / radius, 0.0, 1.0).astype(np.float32)

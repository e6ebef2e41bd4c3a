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
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from promptartisan.mask_values import MaskError, any_mask

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
    torch tensor, its values read by the rules every caller shares (`promptartisan.mask_values`:
    alpha where a picture has one in use, 0/1 or 0–255 integers, fractions), then resized."""
    try:
        values = any_mask(mask)
    except MaskError as exc:
        raise RegionError(f"{name}: {exc}") from exc
    values = values.astype(np.float32)

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


def attention_shapes(height: int, width: int, levels: int, round_up: bool = True
                     ) -> list[tuple[int, int]]:
    """The latent size and each size the UNet's stride-2 downsamplers reach: ceil(x / 2) with
    diffusers' usual padding of 1, floor(x / 2) for a UNet built with `downsample_padding=0`."""
    shapes = [(height, width)]
    for _ in range(levels - 1):
        height, width = ((-(-height // 2), -(-width // 2)) if round_up
                         else (height // 2, width // 2))
        shapes.append((height, width))
    return shapes


def winner_map(masks: torch.Tensor, orders: Sequence[float]) -> torch.Tensor:
    """Each pixel's region once overlaps are resolved, from boolean masks (n, H, W): 0 where no
    mask covers it, else k (1-based) for the covering region of highest order; between equal
    orders the later region wins, like layers in an image editor."""
    winner = torch.zeros(masks.shape[1:], dtype=torch.int32)  # int32: 5× faster than int64
    for k in sorted(range(len(orders)), key=lambda k: orders[k]):
        winner.masked_fill_(masks[k], k + 1)
    return winner


def cell_counts(winner: torch.Tensor, num_labels: int, shape: tuple[int, int]) -> torch.Tensor:
    """(num_labels, h, w): how many pixels of each label of `winner` (H, W) fall in each cell of
    an h × w grid laid over it, pixel (y, x) in cell (y·h // H, x·w // W), as the image is resized
    to the latent."""
    (height, width), (h, w) = winner.shape, shape
    if h > height or w > width:
        raise ValueError(f"a {h}×{w} grid is finer than the {height}×{width} masks")
    rows = torch.arange(height, dtype=torch.int32) * h // height
    cols = torch.arange(width, dtype=torch.int32) * w // width
    index = winner * (h * w) + (rows[:, None] * w + cols[None, :])
    return torch.bincount(index.flatten(), minlength=num_labels * h * w).view(num_labels, h, w)


def label_maps(masks: torch.Tensor, orders: Sequence[float], groups: Sequence[int],
               shapes: Sequence[tuple[int, int]]) -> LabelMaps:
    """The composite label map at each of `shapes` from boolean masks (n, H, W).

    Overlaps are resolved once, at full resolution (`winner_map`). A cell then belongs to the
    regions if their visible pixels cover at least half of it, and to the region with the most
    visible pixels there (ties: the higher layer). A region visible at full resolution that this
    rule leaves without a cell at some resolution is given one (`claim_cells`), so that no
    instruction silently loses its text at a whole resolution; every other cell follows the rule.
    """
    num_regions = masks.shape[0]
    winner = winner_map(masks, orders)
    top_first = sorted(range(num_regions), key=lambda k: (orders[k], k), reverse=True)
    top_labels = torch.tensor(top_first) + 1
    group_of = torch.tensor([0, *groups], dtype=torch.long)
    labels, group_maps = {}, {}
    for shape in shapes:
        counts = cell_counts(winner, num_regions + 1, shape)
        cell_size = counts.sum(0)
        covered = 2 * (cell_size - counts[0]) >= cell_size
        plurality = top_labels[counts[top_labels].argmax(0)]
        label = torch.where(covered, plurality, 0)
        visible = counts[1:].flatten(1).any(1)
        present = torch.bincount(label.flatten(), minlength=num_regions + 1)[1:] > 0
        if (visible & ~present).any():
            label = claim_cells(label, counts, visible)
        labels[shape] = label
        group_maps[shape] = group_of[label]
    return LabelMaps(list(shapes), labels, group_maps)


def claim_cells(label: torch.Tensor, counts: torch.Tensor, visible: torch.Tensor
                ) -> torch.Tensor:
    """`label` changed as little as possible so that every `visible` region owns a cell.

    Each visible region is matched to a cell of its own among those it has visible pixels in
    (a minimum-cost assignment), the cost of a cell being the pixels it then routes away from
    their winner: 0 for a cell the region already owns. So a region that has cells still has one,
    and a claim takes another region's only cell just when that region can have another one
    (the cheapest such way). Those cells are relabelled, no other.

    Where the regions share too few cells for that (two small regions inside one coarse cell,
    such as two eyes at the /8 level), as many as possible get one, and a warning names the
    grid: refusing would turn down ordinary requests, and the others still read their prompt at
    every finer resolution.
    """
    shape = label.shape
    regions = visible.nonzero().squeeze(1)
    flat_counts = counts.flatten(1).double()
    current = label.flatten()
    owner_pixels = flat_counts.gather(0, current[None])[0]
    own_pixels = flat_counts[regions + 1]
    cost = owner_pixels[None] - own_pixels
    # A pair with no pixels costs more than every possible pair together, so the assignment
    # first uses as few of them as it can: a maximum matching, the cheapest one.
    touches = own_pixels > 0
    cost[~touches] = cost[touches].abs().sum() + 1
    rows, cells = linear_sum_assignment(cost.numpy())
    kept = touches[torch.from_numpy(rows), torch.from_numpy(cells)].numpy()
    rows, cells = rows[kept], cells[kept]
    if len(rows) < len(regions):
        warnings.warn(
            f"{len(regions)} regions lie in too few cells of the {shape[0]}×{shape[1]} grid the "
            f"UNet attends at: {len(regions) - len(rows)} of them can't be read there (they "
            f"are at every finer resolution); a larger image or regions further apart avoid it",
            UserWarning, stacklevel=3)
    label = current.clone()
    label[torch.from_numpy(cells)] = regions[torch.from_numpy(rows)] + 1
    return label.view(shape)


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

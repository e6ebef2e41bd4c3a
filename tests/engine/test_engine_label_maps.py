"""Composite label maps over thousands of random layouts: every region visible at full resolution
reaches every attention resolution (or the call says why it can't), and the order rule decides
every other cell. Where the regions share too few cells, as many as can be get one, with a
warning. The expected values are computed here another way (argmax layering, numpy `reduceat`
cell sums, a maximum bipartite matching for how many regions can own a cell)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import box_mask
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from promptartisan.engine.regions import attention_shapes, label_maps

LEVELS = 4  # SD1.5's UNet: the latent, /2, /4, /8


def random_layout(rng: np.random.Generator, height: int, width: int
                  ) -> tuple[np.ndarray, list[float]]:
    """1–10 masks: boxes from one pixel to the whole image, discs, scattered pixels; orders drawn
    from a few values, so equal orders are common."""
    count = int(rng.integers(1, 11))
    masks = np.zeros((count, height, width), dtype=bool)
    ys, xs = np.mgrid[:height, :width]
    for mask in masks:
        kind = rng.integers(4)
        if kind == 0:  # tiny box: 1–6 pixels a side
            h, w = rng.integers(1, 7, size=2)
        else:
            h, w = rng.integers(1, height + 1), rng.integers(1, width + 1)
        y, x = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
        if kind == 3:  # a disc in that box
            radius = max(h, w) / 2
            mask[:] = (ys - y - h / 2) ** 2 + (xs - x - w / 2) ** 2 <= radius**2
        elif kind == 2 and rng.random() < 0.3:  # a few scattered pixels
            mask.flat[rng.choice(height * width, size=int(rng.integers(1, 6)))] = True
        else:
            mask[y:y + h, x:x + w] = True
        if not mask.any():
            mask[y, x] = True
    return masks, [float(o) for o in rng.integers(0, 3, size=count)]


def expected_winner(masks: np.ndarray, orders: list[float]) -> np.ndarray:
    """Layering as an argmax: the covering mask with the highest (order, index)."""
    n = len(orders)
    rank = np.argsort(np.argsort([order * (n + 1) + k for k, order in enumerate(orders)])) + 1
    scores = masks * rank[:, None, None]
    top = scores.argmax(0)
    return np.where(scores.max(0) > 0, top + 1, 0)


def expected_counts(winner: np.ndarray, num_labels: int, shape: tuple[int, int]) -> np.ndarray:
    """Pixels of each label per cell; cell row i holds image rows y with i·H ≤ y·h < (i+1)·H."""
    (height, width), (h, w) = winner.shape, shape
    one_hot = winner[None] == np.arange(num_labels)[:, None, None]
    row_starts = -(-np.arange(h) * height // h)
    col_starts = -(-np.arange(w) * width // w)
    rows = np.add.reduceat(one_hot.astype(np.int64), row_starts, axis=1)
    return np.add.reduceat(rows, col_starts, axis=2)


def rule_labels(counts: np.ndarray, orders: list[float]) -> np.ndarray:
    """The order rule alone: regions hold a cell if they cover at least half of it, the one with
    the most visible pixels (ties: the higher layer) takes it."""
    n = len(orders)
    layer = np.array([order * (n + 1) + k for k, order in enumerate(orders)])
    key = counts[1:] * (n + 1) ** 2 * 4 + layer[:, None, None]  # pixels first, then the layer
    best = key.argmax(0) + 1
    covered = 2 * counts[1:].sum(0) >= counts.sum(0)
    return np.where(covered, best, 0)


def most_served(counts: np.ndarray, visible: np.ndarray) -> int:
    """How many visible regions can own distinct cells they have pixels in (a maximum
    bipartite matching)."""
    touch = counts[1:].reshape(len(visible), -1)[visible] > 0
    matching = maximum_bipartite_matching(csr_matrix(touch.astype(np.int8)), perm_type="column")
    return int((matching >= 0).sum())


def check_layout(masks: np.ndarray, orders: list[float], shapes: list[tuple[int, int]]
                 ) -> tuple[int, int]:
    """Checks one layout at each shape; returns (shapes that needed a claim, crowded shapes)."""
    n = len(orders)
    winner = expected_winner(masks, orders)
    visible = np.isin(np.arange(1, n + 1), winner)
    groups = [10 + k for k in range(n)]
    counts = {shape: expected_counts(winner, n + 1, shape) for shape in shapes}
    rules = {shape: rule_labels(counts[shape], orders) for shape in shapes}
    enough = {shape: bool(np.isin(np.arange(1, n + 1), rules[shape])[visible].all())
              for shape in shapes}  # the order rule alone gives every visible region a cell
    served = {shape: visible.sum() if enough[shape] else most_served(counts[shape], visible)
              for shape in shapes}
    crowded = [shape for shape in shapes if served[shape] < visible.sum()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        maps = label_maps(torch.from_numpy(masks), orders, groups, shapes)
    warned = [str(w.message) for w in caught if "too few cells" in str(w.message)]
    assert len(warned) == len(crowded)
    claimed = 0
    for shape in shapes:
        labels = maps.labels[shape].numpy()
        assert labels.shape == shape
        present = np.isin(np.arange(1, n + 1), labels)
        assert not (present & ~visible).any(), "a hidden region got a cell"
        assert present.sum() == served[shape], "a visible region lost cells it could have had"
        # A region only ever holds cells it has visible pixels in.
        held = np.take_along_axis(counts[shape], labels[None], axis=0)[0]
        assert (held[labels > 0] > 0).all()
        changed = labels != rules[shape]
        if enough[shape]:
            assert not changed.any(), "the order rule alone was enough, yet cells changed"
        else:
            claimed += 1
            assert (labels[changed] > 0).all() and changed.sum() <= visible.sum()
        group_of = np.array([0, *groups])
        assert np.array_equal(maps.groups[shape].numpy(), group_of[labels])
    return claimed, len(crowded)


@pytest.mark.slow
def test_every_visible_region_reaches_every_resolution_on_random_layouts() -> None:
    rng = np.random.default_rng(12)
    claimed = crowded = checked = 0
    sizes = [tuple(rng.integers(8, 200, size=2)) for _ in range(2000)]
    sizes += [tuple(rng.integers(300, 560, size=2)) for _ in range(100)]  # SD1.5's sizes, odd
    for height, width in sizes:
        masks, orders = random_layout(rng, int(height), int(width))
        shapes = attention_shapes(int(height) // 8, int(width) // 8, LEVELS)
        c, r = check_layout(masks, orders, shapes)
        claimed, crowded, checked = claimed + c, crowded + r, checked + len(shapes)
    # The layouts exercise the claims and the crowded grids, not only the plain rule.
    assert claimed > 1000 and crowded > 300 and checked - crowded > 5000, (claimed, crowded)


def test_a_big_region_is_not_erased_by_a_small_one_listed_after_it() -> None:
    """The issue's case: a region filling 81 % of a coarse cell of a 512-px image, and a 5×5
    region after it that touches that cell and the next one."""
    size = (512, 512)
    big = box_mask(size, (0, 0, 64, 52))  # 3,328 px, 81 % of cell (0, 0) at 8×8
    small = box_mask(size, (61, 20, 66, 25))  # 3 columns in cell (0, 0), 2 in cell (0, 1)
    masks = torch.from_numpy(np.stack([big, small]))
    maps = label_maps(masks, [0, 0], [1, 2], attention_shapes(64, 64, LEVELS))
    for shape in maps.shapes:
        assert (maps.labels[shape] == 1).any() and (maps.labels[shape] == 2).any()
    assert maps.labels[(8, 8)][0, 0] == 1 and maps.labels[(8, 8)][0, 1] == 2


def test_regions_sharing_one_coarse_cell_warn_and_keep_every_finer_resolution() -> None:
    """Two regions inside one 64×64 block of a 512-px image (two eyes, say) share the only cell
    both touch at the UNet's 8×8 resolution: one of them owns it, the other is read at every
    finer resolution, and a warning says so instead of refusing the edit."""
    size = (512, 512)
    masks = torch.from_numpy(np.stack([box_mask(size, (0, 0, 20, 20)),
                                       box_mask(size, (30, 30, 50, 50))]))
    with pytest.warns(UserWarning, match="2 regions lie in too few cells of the 8×8 grid"):
        maps = label_maps(masks, [0, 0], [1, 2], attention_shapes(64, 64, LEVELS))
    for shape in maps.shapes[:-1]:
        assert (maps.labels[shape] == 1).any() and (maps.labels[shape] == 2).any()
    coarse = maps.labels[(8, 8)]
    assert ((coarse == 1).any() != (coarse == 2).any()) and coarse[0, 0] > 0


def test_hidden_region_is_not_given_a_cell() -> None:
    """A region entirely under a higher layer is invisible: the order rule, not the guarantee."""
    size = (64, 48)
    under = box_mask(size, (8, 8, 16, 16))
    over = box_mask(size, (0, 0, 32, 24))
    maps = label_maps(torch.from_numpy(np.stack([under, over])), [0, 1], [1, 2],
                      attention_shapes(6, 8, 3))
    assert all(not (maps.labels[s] == 1).any() for s in maps.shapes)

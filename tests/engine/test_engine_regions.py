"""Regions without a model: mask reading, checks, composite label maps, the paste-back feather."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import box_mask
from PIL import Image
from scipy.ndimage import distance_transform_edt

from promptartisan.engine import Region, RegionError
from promptartisan.engine.regions import (
    attention_shapes,
    feather_mask,
    label_maps,
    mask_array,
    prepare_regions,
)

SIZE = (64, 48)  # width, height


def test_masks_of_every_kind_and_size_read_the_same() -> None:
    box = box_mask(SIZE, (16, 8, 40, 32))
    big = np.kron(box, np.ones((2, 2), dtype=bool))  # the same mask drawn at 128×96
    soft = box * 0.7 + 0.2  # 0.9 inside, 0.2 outside: 0.5 decides
    for mask in (box, box.astype(np.uint8) * 255, soft, big, Image.fromarray(big),
                 torch.from_numpy(box)[None], torch.from_numpy(soft)[None, None]):
        assert np.array_equal(mask_array(mask, SIZE), box)


def test_soft_mask_is_read_at_one_half() -> None:
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1))
    assert np.array_equal(mask_array(ramp, SIZE), ramp >= 0.5)


def test_group_defaults_to_own_index_and_explicit_groups_are_shared() -> None:
    masks = [box_mask(SIZE, (0, 0, 10, 10)), box_mask(SIZE, (20, 0, 30, 10)),
             box_mask(SIZE, (40, 0, 50, 10)), box_mask(SIZE, (0, 20, 10, 30))]
    regions = [Region(masks[0], "a"), Region(masks[1], "b", group="kids"),
               Region(masks[2], "c", group="kids"), Region(masks[3], "d", group=0)]
    kept, stacked, groups = prepare_regions(regions, SIZE, max_regions=8)
    assert len(kept) == 4 and stacked.shape == (4, 48, 64)
    assert groups[1] == groups[2]
    assert len({groups[0], groups[1], groups[3]}) == 3  # group=0 is not region 0's own group


def test_overlap_goes_to_the_higher_order_at_every_resolution() -> None:
    low = box_mask(SIZE, (0, 0, 48, 48))
    high = box_mask(SIZE, (16, 0, 64, 48))
    shapes = attention_shapes(6, 8, 3)
    assert shapes == [(6, 8), (3, 4), (2, 2)]
    masks = torch.from_numpy(np.stack([low, high]))
    for orders, winner in (([0, 1], 2), ([1, 0], 1)):
        maps = label_maps(masks, orders, [1, 2], shapes)
        for shape in shapes[:2]:
            labels = maps.labels[shape]
            overlap = label_maps(masks[:1] & masks[1:], [0], [1], [shape]).labels[shape] > 0
            assert overlap.any() and (labels[overlap] == winner).all()
    same = label_maps(masks, [0, 0], [1, 2], shapes)  # equal orders: the later region
    assert (same.labels[(6, 8)][:, 3:5] == 2).all()
    # At 2×2 the rule gives `high` every cell; `low`, visible on x < 16 only, keeps one of the
    # two left cells; every other cell follows the rule.
    coarse = same.labels[(2, 2)]
    assert int((coarse == 1).sum()) == 1 and (coarse[:, 0] == 1).any()
    assert (coarse[coarse != 1] == 2).all()


def test_small_region_keeps_a_pixel_at_coarse_resolutions() -> None:
    tiny = torch.from_numpy(box_mask(SIZE, (8, 8, 13, 13)))[None]  # under one /4 cell
    maps = label_maps(tiny, [0], [1], attention_shapes(6, 8, 3))
    assert all(int((maps.labels[s] == 1).sum()) >= 1 for s in maps.shapes)
    assert int((maps.labels[(2, 2)] == 1).sum()) == 1


def test_group_map_follows_labels() -> None:
    masks = torch.from_numpy(np.stack([box_mask(SIZE, (0, 0, 32, 48)),
                                       box_mask(SIZE, (32, 0, 64, 24))]))
    maps = label_maps(masks, [0, 0], [5, 7], [(6, 8)])
    labels, groups = maps.labels[(6, 8)], maps.groups[(6, 8)]
    assert (groups[labels == 1] == 5).all() and (groups[labels == 2] == 7).all()
    assert (groups[labels == 0] == 0).all() and (labels == 0).any()


@pytest.mark.parametrize("radius", [0, 1, 3, 8])
def test_feather_is_exact_euclidean_ramp(radius: int) -> None:
    rng = np.random.default_rng(radius)
    mask = np.zeros((40, 50), dtype=bool)
    for _ in range(3):
        y, x = rng.integers(0, 40), rng.integers(0, 50)
        mask[y:y + rng.integers(1, 8), x:x + rng.integers(1, 8)] = True
    alpha = feather_mask(mask, radius)
    distance = distance_transform_edt(~mask)
    expected = mask.astype(float) if radius == 0 else np.clip(1 - distance / radius, 0, 1)
    assert np.allclose(alpha, expected, atol=1e-6)
    assert (alpha[distance > radius] == 0).all() and (alpha[mask] == 1).all()


GOOD = box_mask(SIZE, (8, 8, 24, 24))


@pytest.mark.parametrize(
    ("regions", "message"),
    [
        ([], "no regions"),
        ([Region(np.zeros((48, 64), bool), "make it red")], "every region's mask is empty"),
        ([Region(GOOD, "")], "empty prompt"),
        ([Region(GOOD, "   ")], "empty prompt"),
        ([Region(GOOD, "a")] * 9, "more than the limit of 8"),
        ([Region(np.ones((64, 64), bool), "a")], "aspect ratios differ"),
        ([Region(GOOD * 2.0, "a")], r"values in \[0, 1\]"),
        ([Region(np.where(GOOD, np.nan, 0.0), "a")], r"values in \[0, 1\]"),
        ([Region(np.ones((48, 64, 5)), "a")], r"\(height, width\) array, got shape"),
        ([Region(GOOD.tolist(), "a")], "a picture or an array, not list"),
        ([Region(np.array([["a"]]), "a")], "must hold numbers"),
        ([Region(GOOD, "a", order=float("nan"))], "order must be a number"),
        (["make it red"], "not a Region"),
    ],
)
@pytest.mark.filterwarnings("ignore:.*has an empty mask")
def test_bad_regions_get_clear_errors(regions: list, message: str) -> None:
    with pytest.raises(RegionError, match=message):
        prepare_regions(regions, SIZE, max_regions=8)


def test_empty_mask_among_others_is_skipped_with_a_warning() -> None:
    regions = [Region(np.zeros((48, 64), bool), "add a hat"), Region(GOOD, "make it red")]
    with pytest.warns(UserWarning, match=r"region 1 \('add a hat'\) has an empty mask"):
        kept, masks, _ = prepare_regions(regions, SIZE, max_regions=8)
    assert [r.prompt for r in kept] == ["make it red"] and masks.shape == (1, 48, 64)


def test_region_limit_is_configurable() -> None:
    with pytest.raises(RegionError, match="3 regions, more than the limit of 2"):
        prepare_regions([Region(GOOD, "a")] * 3, SIZE, max_regions=2)

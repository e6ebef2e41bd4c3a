"""Mask refinement and the overlay."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import box_mask
from PIL import Image

from promptartisan.tools import Grounding, overlay
from promptartisan.tools.masks import Refinement, components, dilate, refine
from promptartisan.tools.overlay import colour, label_boxes

NO_MARGIN = Refinement(margin=0.0)


def test_small_holes_are_filled_large_ones_kept() -> None:
    mask = box_mask((100, 100), (10, 10, 90, 90))
    mask[20:23, 20:23] = False  # 9 px: noise
    mask[40:80, 40:80] = False  # 1600 px: something in front (the balloon in the sky)
    refined = refine(mask, NO_MARGIN)
    assert refined[20:23, 20:23].all()
    assert not refined[40:80, 40:80].any()


def test_specks_are_dropped() -> None:
    mask = box_mask((100, 100), (10, 10, 60, 60))
    mask[90, 90] = mask[80:82, 5:7] = True
    refined = refine(mask, NO_MARGIN)
    np.testing.assert_array_equal(refined, box_mask((100, 100), (10, 10, 60, 60)))


def test_tiny_and_empty_regions_are_none() -> None:
    tiny = box_mask((100, 100), (50, 50, 52, 52))  # 4 px of 10 000 < 0.1 %
    assert refine(tiny) is None
    assert refine(np.zeros((100, 100), dtype=bool)) is None
    assert refine(box_mask((100, 100), (50, 50, 55, 55))) is not None  # 25 px is enough


def test_margin_grows_by_a_share_of_the_long_side() -> None:
    mask = box_mask((200, 100), (90, 40, 110, 60))
    refined = refine(mask, Refinement(margin=0.05))  # 10 px of 200
    ys, xs = np.nonzero(refined)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (80, 119, 30, 69)
    assert refined[40:60, 90:110].all()
    assert not refined[30, 80]  # a disc, not a square: the corner stays out


def test_default_margin_is_about_three_percent() -> None:
    mask = box_mask((400, 300), (190, 140, 210, 160))
    grown = refine(mask)
    assert 10 <= np.nonzero(grown)[1].max() - 209 <= 13  # 3 % of 400 = 12 px


def test_dilate_keeps_shape_and_type() -> None:
    mask = box_mask((67, 41), (30, 20, 31, 21))
    grown = dilate(mask, 2.0)
    assert grown.shape == (41, 67) and grown.dtype == bool and grown.sum() == 13


def test_components_largest_first_without_small_ones() -> None:
    mask = box_mask((100, 100), (0, 0, 10, 10)) | box_mask((100, 100), (50, 50, 80, 80))
    mask[95, 95] = True
    pieces = components(mask, min_pixels=5)
    assert [p.sum() for p in pieces] == [900, 100]


def test_refinement_values_are_checked() -> None:
    with pytest.raises(ValueError, match="margin"):
        Refinement(margin=2.0)
    with pytest.raises(ValueError, match="2-D"):
        refine(np.ones((2, 3, 4), dtype=bool))


def grounding(mask: np.ndarray, label: str) -> Grounding:
    return Grounding(mask=mask, score=0.9, boxes=np.zeros((1, 4)), label=label)


def test_overlay_tints_each_region_in_its_own_colour() -> None:
    image = Image.new("RGB", (120, 80), (128, 128, 128))
    boxes = [(5, 30, 35, 75), (45, 30, 75, 75), (85, 30, 115, 75)]
    groundings = [grounding(box_mask(image.size, b), f"r{i}") for i, b in enumerate(boxes)]
    out = np.asarray(overlay(image, [groundings[0], None, *groundings[1:]]))
    assert out.shape == (80, 120, 3)
    centres = [tuple(out[60, (b[0] + b[2]) // 2]) for b in boxes]
    assert len(set(centres)) == 3 and (128, 128, 128) not in centres
    # Tinted towards the phrase's own colour (the None keeps slot 1 to itself).
    for centre, slot in zip(centres, (0, 2, 3), strict=True):
        expected = np.array(colour(slot)) * 0.45 + 128 * 0.55
        np.testing.assert_allclose(centre, expected, atol=1)
    assert tuple(out[50, 34]) == colour(0)  # outlined in the solid colour
    assert tuple(out[5, 60]) == (128, 128, 128)  # outside every mask: untouched


def test_colours_stay_distinct_beyond_the_palette() -> None:
    colours = [colour(i) for i in range(20)]
    assert len(set(colours)) == 20


def test_overlay_rejects_masks_of_another_size() -> None:
    image = Image.new("RGB", (67, 41))
    with pytest.raises(ValueError, match="67×41"):
        overlay(image, [grounding(np.ones((10, 10), dtype=bool), "x")])


def test_labels_of_regions_that_share_a_corner_do_not_cover_each_other() -> None:
    """The suit inside the whole picture, both labelled at (0, 0): the second label goes under
    the first, so the first still shows its own colour; every label stays in the picture."""
    image = Image.new("RGB", (200, 160), (128, 128, 128))
    whole, part = box_mask(image.size, (0, 0, 200, 160)), box_mask(image.size, (0, 0, 90, 90))
    out = np.asarray(overlay(image, [grounding(whole, "the whole picture"),
                                     grounding(part, "suit")]))
    assert tuple(out[2, 8]) == colour(0)  # label 1's colour, not painted over by label 2
    places = label_boxes([(80, 14), (40, 14), (60, 14)], [(0, 0), (0, 0), (150, 150)],
                         (200, 160))
    assert places[1] == (0, 14, 40, 28)  # under the first
    assert places[2] == (140, 146, 200, 160)  # moved in from the corner to stay whole
    for i, a in enumerate(places):
        assert all(not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
                   for b in places[i + 1:])

"""A big image is grounded on a smaller copy: masks come back at the image's size and boxes in
its pixels, for text phrases and for clicks and boxes alike."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image

from promptartisan.tools import grounding as grounding_module
from promptartisan.tools.grounding import Grounder, Instance
from promptartisan.tools.masks import box_of

SQUARE = (0.25, 0.25, 0.75, 0.75)  # fractions of the image


def square_mask(size: tuple[int, int]) -> np.ndarray:
    width, height = size
    mask = np.zeros((height, width), dtype=bool)
    mask[round(height * SQUARE[1]):round(height * SQUARE[3]),
         round(width * SQUARE[0]):round(width * SQUARE[2])] = True
    return mask


class SquareSegmenter:
    """A click or box anywhere selects the middle square; records what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int, int], Any, Any]] = []

    def predict(self, image: Image.Image, points: Any = None, labels: Any = None,
                boxes: Any = None) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append((image.size, points, boxes))
        return square_mask(image.size)[None], np.array([0.9], dtype=np.float32)


class SquareGrounder(Grounder):
    """Finds the middle square for every query; records the sizes it was shown."""

    def __init__(self) -> None:
        self.segmenter_used = SquareSegmenter()
        super().__init__(segmenter=lambda: self.segmenter_used)
        self.seen: list[tuple[int, int]] = []

    def find(self, image: Image.Image, queries: list[str]) -> list[list[Instance]]:
        self.seen.append(image.size)
        mask = square_mask(image.size)
        return [[Instance(mask=mask, box=box_of(mask), score=0.9)] for _ in queries]


@pytest.fixture(autouse=True)
def short_long_side(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grounding_module, "GROUNDING_LONG_SIDE", 100)


def test_a_big_image_is_grounded_on_a_copy_and_answered_at_its_size() -> None:
    grounder = SquareGrounder()
    image = Image.new("RGB", (400, 300))
    (found,) = grounder.ground(image, ["the dog"])
    assert grounder.seen == [(100, 75)]
    assert found is not None and found.mask.shape == (300, 400)
    # The square grown by the refinement margin (3 % of the long side), at the image's size.
    np.testing.assert_allclose(box_of(found.mask), [88, 63, 312, 237], atol=5)
    np.testing.assert_allclose(found.boxes, [[100, 76, 300, 228]], atol=4)


def test_a_small_image_is_grounded_as_it_is() -> None:
    grounder = SquareGrounder()
    (found,) = grounder.ground(Image.new("RGB", (80, 60)), ["the dog"])
    assert grounder.seen == [(80, 60)] and found is not None and found.mask.shape == (60, 80)


def test_clicks_and_boxes_are_given_in_the_copys_pixels() -> None:
    grounder = SquareGrounder()
    found = grounder.segment(Image.new("RGB", (400, 300)), points=[[200, 150]],
                             boxes=[[100, 60, 300, 240]])
    ((size, points, boxes),) = grounder.segmenter_used.calls
    assert size == (100, 75)
    np.testing.assert_allclose(points, [[50, 37.5]])
    np.testing.assert_allclose(boxes, [[25, 15, 75, 60]])
    assert found.mask.shape == (300, 400)
    np.testing.assert_allclose(found.boxes, [[100, 60, 300, 240]], atol=1e-3)

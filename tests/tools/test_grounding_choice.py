"""Which instances a phrase means, proven with a fake detector that returns known boxes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import box_mask
from PIL import Image

from promptartisan.tools import Grounder, Grounding
from promptartisan.tools.grounding import Instance
from promptartisan.tools.masks import Refinement
from promptartisan.tools.phrases import choose, is_plural, parse

SIZE = (200, 100)  # width, height
CARS = [(10, 40, 50, 80), (120, 30, 180, 90), (80, 35, 110, 60)]  # left, right+big, middle


class FakeDetector(Grounder):
    """Finds the given boxes for every query, with the given scores; counts its calls."""

    def __init__(self, boxes: list[tuple[int, int, int, int]], scores: list[float]) -> None:
        super().__init__(Refinement(margin=0.0))
        self.boxes, self.scores = boxes, scores
        self.calls: list[list[str]] = []

    def find(self, image: Image.Image, queries: list[str]) -> list[list[Instance]]:
        self.calls.append(queries)
        return [[Instance(mask=box_mask(image.size, box), box=np.array(box, dtype=np.float32),
                          score=score) for box, score in zip(self.boxes, self.scores, strict=True)]
                for _ in queries]


@pytest.fixture
def image() -> Image.Image:
    return Image.new("RGB", SIZE, (90, 120, 150))


def ground_one(detector: FakeDetector, image: Image.Image, phrase: str) -> Grounding:
    result = detector.ground(image, [phrase])[0]
    assert result is not None
    return result


@pytest.mark.parametrize(("phrase", "expected"), [
    ("the left car", 0), ("the car on the left", 0), ("the leftmost car", 0),
    ("the right car", 1), ("the car on the right", 1), ("the biggest car", 1),
    ("the top car", 2), ("the smallest car", 2), ("the first car", 0), ("the second car", 2),
    ("the last car", 1), ("the second car from the right", 2), ("the car in the middle", 2),
])
def test_qualifiers_pick_the_instance(image: Image.Image, phrase: str, expected: int) -> None:
    detector = FakeDetector(CARS, [0.9, 0.5, 0.7])
    grounding = ground_one(detector, image, phrase)
    np.testing.assert_array_equal(grounding.boxes, [CARS[expected]])
    np.testing.assert_array_equal(grounding.mask, box_mask(SIZE, CARS[expected]))
    assert not grounding.ambiguous and grounding.group is None
    assert detector.calls == [["car"]]


@pytest.mark.parametrize("phrase", ["every car", "all the cars", "the cars", "each car",
                                    "all of the cars"])
def test_plurals_take_the_union_as_one_group(image: Image.Image, phrase: str) -> None:
    detector = FakeDetector(CARS, [0.9, 0.5, 0.7])
    grounding = ground_one(detector, image, phrase)
    union = np.logical_or.reduce([box_mask(SIZE, box) for box in CARS])
    np.testing.assert_array_equal(grounding.mask, union)
    assert sorted(map(tuple, grounding.boxes.tolist())) == sorted(CARS)
    assert grounding.group == 0 and not grounding.ambiguous


def test_plural_groups_are_per_phrase(image: Image.Image) -> None:
    detector = FakeDetector(CARS, [0.9, 0.5, 0.7])
    one, two, three = detector.ground(image, ["the left car", "every car", "both cars"])
    assert one.group is None and two.group == 1 and three.group == 2
    # "both": the two best instances.
    assert sorted(map(tuple, three.boxes.tolist())) == sorted([CARS[0], CARS[2]])
    assert detector.calls == [["car", "cars"]]  # one call, each distinct query once


def test_singular_with_similar_instances_is_ambiguous(image: Image.Image) -> None:
    detector = FakeDetector(CARS[:2], [0.8, 0.78])
    grounding = ground_one(detector, image, "the car")
    assert grounding.ambiguous
    assert [tuple(c) for c in grounding.candidates] == [CARS[0], CARS[1]]  # left to right
    np.testing.assert_array_equal(grounding.boxes, [CARS[0]])  # the best, meanwhile


def test_singular_with_a_clear_winner_is_not_ambiguous(image: Image.Image) -> None:
    grounding = ground_one(FakeDetector(CARS[:2], [0.35, 0.9]), image, "the car")
    assert not grounding.ambiguous and grounding.candidates == []
    np.testing.assert_array_equal(grounding.boxes, [CARS[1]])


def test_a_much_smaller_piece_is_no_rival(image: Image.Image) -> None:
    tail = (60, 70, 66, 76)  # as sure as the car, a tenth of its size: a fragment
    grounding = ground_one(FakeDetector([CARS[1], tail], [0.8, 0.8]), image, "the car")
    assert not grounding.ambiguous
    np.testing.assert_array_equal(grounding.boxes, [CARS[1]])


def test_a_qualifier_settles_what_would_be_ambiguous(image: Image.Image) -> None:
    grounding = ground_one(FakeDetector(CARS[:2], [0.8, 0.78]), image, "the right car")
    assert not grounding.ambiguous
    np.testing.assert_array_equal(grounding.boxes, [CARS[1]])


def test_stuff_takes_every_piece(image: Image.Image) -> None:
    grounding = ground_one(FakeDetector(CARS[:2], [0.8, 0.78]), image, "the sky")
    assert not grounding.ambiguous and len(grounding.boxes) == 2 and grounding.group is None


def test_nothing_found_or_no_such_instance_is_none(image: Image.Image) -> None:
    assert FakeDetector([], []).ground(image, ["the dog"]) == [None]
    assert FakeDetector(CARS[:2], [0.9, 0.9]).ground(image, ["the third car"]) == [None]
    assert FakeDetector(CARS[:1], [0.1]).ground(image, ["the car"]) == [None]  # low score


@pytest.mark.parametrize("phrase", ["image", "the image", "the whole picture", "everything",
                                    "the entire photo", "whole scene"])
def test_whole_image_phrases_make_no_model_call(image: Image.Image, phrase: str) -> None:
    detector = FakeDetector(CARS, [0.9, 0.5, 0.7])
    grounding = ground_one(detector, image, phrase)
    assert grounding.mask.shape == (SIZE[1], SIZE[0]) and grounding.mask.all()
    assert detector.calls == []


def test_mixed_phrases_keep_order_and_call_once(image: Image.Image) -> None:
    detector = FakeDetector(CARS, [0.9, 0.5, 0.7])
    results = detector.ground(image, ["image", "the right car", "the left car", "the photo"])
    assert [r.label for r in results] == ["image", "the right car", "the left car", "the photo"]
    assert detector.calls == [["car"]]


def test_parse_keeps_only_the_noun_phrase() -> None:
    assert parse("the red car in the picture").query == "red car"
    assert parse("the top of the cake").query == "top of the cake"  # a part, not a qualifier
    assert parse("the man next to the cars").plural is False  # the head noun decides
    assert parse("two birds").count == 2
    target = parse("the second car from the right")
    assert (target.query, target.qualifiers, target.ordinal) == ("car", ("right",), 1)


@pytest.mark.parametrize(("word", "plural"), [
    ("cars", True), ("people", True), ("leaves", True), ("children", True), ("bus", False),
    ("glass", False), ("cactus", False), ("dog", False), ("canvas", False),
])
def test_plural_nouns(word: str, plural: bool) -> None:
    assert is_plural(word) is plural


def test_choose_without_detections_is_none() -> None:
    assert choose(parse("every car"), np.zeros((0, 4)), np.zeros(0), SIZE) is None


@pytest.mark.parametrize("phrases", [[], [""], ["  "], ["car", None]])
def test_bad_phrase_lists_are_clear_errors(image: Image.Image, phrases: list) -> None:
    with pytest.raises(ValueError, match="phrase"):
        FakeDetector(CARS, [0.9, 0.5, 0.7]).ground(image, phrases)

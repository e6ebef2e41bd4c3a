"""Additions placed by a relation ("add a cat next to the dog"): the target's relation and
anchor, the region each relation gives, and whole turns that ground the anchor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import box_mask
from PIL import Image
from test_agent_fakes import BoxGrounder, PaintingEngine, ScriptedPlanner, boxed, edit

from promptartisan.agent.editor import Editor
from promptartisan.agent.sessions.store import Session
from promptartisan.settings import Settings
from promptartisan.tools.grounding import Grounding
from promptartisan.tools.masks import box_of
from promptartisan.tools.placement import parse_placement, place, placement_mask

SIZE = (100, 80)
ANCHOR = (20, 30, 40, 60)  # w 20, h 30


@pytest.mark.parametrize(("target", "parsed"), [
    ("next to the dog", ("next to", "the dog")),
    ("Beside  the dog", ("beside", "the dog")),
    ("to the left of the red car", ("left of", "the red car")),
    ("right of the tree", ("right of", "the tree")),
    ("behind the house", ("behind", "the house")),
    ("in front of the house", ("in front of", "the house")),
    ("on top of the table", ("on top of", "the table")),
    ("on the table", ("on", "the table")),
    ("above the man", ("above", "the man")),
    ("below the window", ("below", "the window")),
    ("under the chair", ("under", "the chair")),
    ("the dog", None), ("on the left", None), ("on the left side", None),
    ("on the image", None), ("next to", None), ("the man next to the car", None)])
def test_a_target_names_a_relation_and_an_anchor(target: str,
                                                 parsed: tuple[str, str] | None) -> None:
    assert parse_placement(target) == parsed


@pytest.mark.parametrize(("relation", "box"), [
    ("next to", (40, 30, 60, 60)),  # the right has more room (60 px against 20)
    ("beside", (40, 30, 60, 60)),
    ("left of", (0, 30, 20, 60)),
    ("right of", (40, 30, 60, 60)),
    ("on top of", (20, 15, 40, 37)),
    ("on", (20, 15, 40, 37)),
    ("above", (20, 0, 40, 30)),
    ("below", (20, 60, 40, 80)),  # clipped at the bottom edge (60 + 30 > 80)
    ("in front of", (15, 45, 45, 67)),
])
def test_each_relation_places_a_box_by_the_anchor(relation: str,
                                                  box: tuple[int, int, int, int]) -> None:
    region = placement_mask(box_mask(SIZE, ANCHOR), relation, SIZE)
    assert region.shape == (80, 100) and region.dtype == bool
    assert np.array_equal(region, box_mask(SIZE, box))


def test_behind_and_under_leave_the_anchor_in_front() -> None:
    # A table: a top and two legs; under it is the space between the legs.
    table = box_mask(SIZE, (20, 30, 60, 36)) | box_mask(SIZE, (20, 36, 24, 60)) \
        | box_mask(SIZE, (56, 36, 60, 60))
    under = placement_mask(table, "under", SIZE)
    assert np.array_equal(under, box_mask(SIZE, (20, 45, 60, 67)) & ~table)
    assert under[50, 40] and not under[50, 22] and under[64, 22]
    behind = placement_mask(table, "behind", SIZE)
    assert np.array_equal(behind, box_mask(SIZE, (0, 15, 80, 75)) & ~table)
    assert not (behind & table).any()


def test_next_to_goes_where_there_is_room() -> None:
    at_right_edge = box_mask(SIZE, (70, 30, 95, 60))
    assert np.array_equal(placement_mask(at_right_edge, "next to", SIZE),
                          box_mask(SIZE, (45, 30, 70, 60)))


def test_no_room_is_an_empty_region_and_a_clear_error() -> None:
    at_top = box_mask(SIZE, (20, 0, 40, 30))
    assert not placement_mask(at_top, "above", SIZE).any()
    grounding = Grounding(mask=at_top, score=0.9, boxes=box_of(at_top)[None], label="the sky")
    with pytest.raises(ValueError, match="no room above the sky"):
        place(grounding, ("above", "the sky"))
    placed = place(grounding, ("below", "the sky"))
    assert placed.label == "below the sky" and placed.score == 0.9
    assert placed.boxes.tolist() == [[20, 30, 40, 60]]
    assert place(grounding, None) is grounding


def test_bad_input_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="anchor mask is 10×10"):
        placement_mask(np.ones((10, 10), bool), "on", SIZE)
    with pytest.raises(ValueError, match="unknown placement 'inside'"):
        placement_mask(box_mask(SIZE, ANCHOR), "inside", SIZE)
    assert not placement_mask(np.zeros((80, 100), bool), "on", SIZE).any()


DOG = (0.5, 0.5, 0.9, 0.95)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(session_dir=tmp_path / "sessions", device="cpu", dtype="float32", steps=2,
                    working_size=64, seed=2)


def test_a_turn_places_the_addition_beside_the_grounded_anchor(
        settings: Settings, tmp_path: Path, small_photo: Image.Image) -> None:
    grounder, engine = BoxGrounder({"the dog": DOG}), PaintingEngine()
    editor = Editor(settings, ScriptedPlanner({}), grounder, engine)
    session = Session.create(tmp_path, small_photo)
    result = editor.turn(session, "add a cat next to the dog",
                         plan=edit(("next to the dog", "add a cat")))
    assert result.kind == "edit", result.message
    assert grounder.calls == [["the dog"]]  # the anchor is what is grounded
    dog = boxed(small_photo.size, DOG)  # x 32..58 of 64: more room on the left
    expected = box_mask(small_photo.size, (6, 24, 32, 46))
    assert np.array_equal(session.mask(1, 0), expected)
    assert not (session.mask(1, 0) & dog).any()
    assert np.asarray(engine.calls[0]["regions"][0].mask).any()
    region = session.regions(1)[0]
    assert (region["target"], region["label"]) == ("next to the dog", "next to the dog")


def test_an_anchor_not_found_asks_where_and_the_answer_keeps_the_relation(
        settings: Settings, tmp_path: Path, small_photo: Image.Image) -> None:
    editor = Editor(settings, ScriptedPlanner({}), BoxGrounder({"the dog": DOG}),
                    PaintingEngine())
    session = Session.create(tmp_path, small_photo)
    asked = editor.turn(session, "add a cat behind the puppy",
                        plan=edit(("behind the puppy", "add a cat")))
    assert asked.kind == "clarify" and "couldn't find \"the puppy\"" in asked.message
    result = editor.turn(session, "it's the dog")
    assert result.kind == "edit", result.message
    assert session.regions(1)[0]["target"] == "behind the dog"
    dog = boxed(small_photo.size, DOG)
    assert np.array_equal(session.mask(1, 0),
                          placement_mask(dog, "behind", small_photo.size))


def test_an_ambiguous_anchor_asks_which_and_places_by_the_one_chosen(
        settings: Settings, tmp_path: Path, small_photo: Image.Image) -> None:
    left, right = (0.05, 0.4, 0.35, 0.9), (0.6, 0.4, 0.95, 0.9)
    editor = Editor(settings, ScriptedPlanner({}),
                    BoxGrounder({}, twins={"the dog": [left, right]}), PaintingEngine())
    session = Session.create(tmp_path, small_photo)
    asked = editor.turn(session, "a ball on the dog", plan=edit(("on the dog", "add a ball")))
    assert asked.kind == "clarify" and "\"the dog\"" in asked.message
    assert editor.turn(session, "the right one").kind == "edit"
    chosen = boxed(small_photo.size, right)
    assert np.array_equal(session.mask(1, 0), placement_mask(chosen, "on", small_photo.size))

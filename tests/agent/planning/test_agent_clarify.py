"""Clarification: a vague request gets a question, and the answer completes it; position
choices are read from free answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from test_agent_fakes import BoxGrounder, PaintingEngine

from promptartisan.agent.editor import Editor
from promptartisan.agent.planning.clarify import ALL, pick_choice, position_choices
from promptartisan.agent.planning.planners import load_planner
from promptartisan.agent.planning.rules_planner import RulesPlanner
from promptartisan.agent.sessions.store import Session
from promptartisan.settings import Settings


@pytest.fixture
def editor(tmp_path: Path) -> Editor:
    settings = Settings(session_dir=tmp_path, device="cpu", dtype="float32", steps=2,
                        working_size=64, seed=3)
    grounder = BoxGrounder({"dog": (0.1, 0.5, 0.5, 0.9), "the dog": (0.1, 0.5, 0.5, 0.9),
                            "sky": (0.0, 0.0, 1.0, 0.3), "the sky": (0.0, 0.0, 1.0, 0.3)})
    return Editor(settings, load_planner("rules", settings), grounder, PaintingEngine())


def test_the_answer_to_a_question_is_merged_with_the_pending_request(
        editor: Editor, tmp_path: Path, small_photo: Image.Image) -> None:
    session = Session.create(tmp_path, small_photo)
    asked = editor.turn(session, "change the dog")
    assert asked.kind == "clarify" and asked.message.endswith("?")
    assert session.pending is not None and session.pending.text == "change the dog"

    # A restart between question and answer changes nothing.
    result = editor.turn(Session.open(session.id, tmp_path), "a wolf")
    assert result.kind == "edit", result.message
    (instruction,) = result.plan.instructions
    assert "dog" in instruction.target and "wolf" in instruction.instruction
    assert session.pending is None
    assert session.turns()[-1].text == "turn the dog into a wolf"  # the merged request


def test_a_new_request_instead_of_an_answer_replaces_the_pending_one(
        editor: Editor, tmp_path: Path, small_photo: Image.Image) -> None:
    session = Session.create(tmp_path, small_photo)
    assert editor.turn(session, "make it look nicer").kind == "clarify"
    result = editor.turn(session, "make the sky a sunset")
    assert result.kind == "edit", result.message
    assert "sky" in result.plan.instructions[0].target


def test_undo_answers_a_question_by_leaving_it(editor: Editor, tmp_path: Path,
                                              small_photo: Image.Image) -> None:
    session = Session.create(tmp_path, small_photo)
    editor.turn(session, "change something")
    assert editor.turn(session, "undo").kind == "undo"
    assert session.pending is None


def test_load_planner_rules_is_the_rules_planner() -> None:
    assert isinstance(load_planner("rules", Settings()), RulesPlanner)


@pytest.mark.parametrize("answer, count, expected", [
    ("the left one", 2, 0), ("Right one.", 2, 1), ("the one on the right", 2, 1),
    ("middle", 3, 1), ("the second", 3, 1), ("2nd from the right", 4, 2), ("3", 3, 2),
    ("both", 2, ALL), ("all of them", 3, ALL), ("leftmost", 3, 0),
    ("make the sky blue", 2, None), ("the middle one", 2, None), ("the fifth", 3, None),
])
def test_choices_are_read_from_free_answers(answer: str, count: int,
                                            expected: int | str | None) -> None:
    assert pick_choice(answer, position_choices(count)) == expected


def test_choices_name_positions_left_to_right() -> None:
    assert position_choices(3) == ["the left one", "the middle one", "the right one", ALL]
    assert position_choices(4)[3] == "the 4th from the left"

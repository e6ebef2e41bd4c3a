"""Going to a version described in words, and counted undo/redo, through Editor.turn with a
given plan (a box grounder and a painting engine stand in for the models)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from test_agent_fakes import BoxGrounder, PaintingEngine, ScriptedPlanner, edit

from promptartisan.agent.editor import Editor
from promptartisan.agent.planning.plan import Plan, VersionQuery
from promptartisan.agent.sessions.history_search import matching_versions, pick_version, stems
from promptartisan.agent.sessions.store import Session
from promptartisan.settings import Settings

BOXES = {"the sky": (0.0, 0.0, 1.0, 0.3), "the dog": (0.5, 0.5, 0.9, 0.95),
         "the man": (0.1, 0.3, 0.4, 0.9), "the car": (0.0, 0.6, 0.3, 1.0)}


@pytest.fixture
def editor(tmp_path: Path) -> Editor:
    settings = Settings(session_dir=tmp_path / "sessions", device="cpu", dtype="float32",
                        steps=2, working_size=64, seed=5)
    return Editor(settings, ScriptedPlanner({}), BoxGrounder(BOXES), PaintingEngine())


@pytest.fixture
def session(tmp_path: Path, small_photo: Image.Image, editor: Editor) -> Session:
    """v1 a sunset sky, v2 the dog a wolf, v3 a hat on the man: one line of edits."""
    session = Session.create(tmp_path, small_photo)
    for text, target, instruction in [
            ("make the sky a sunset", "the sky", "make the sky a sunset"),
            ("turn the dog into a wolf", "the dog", "turn the dog into a wolf"),
            ("put a hat on the man", "the man", "put a red hat on the man")]:
        assert editor.turn(session, text, plan=edit((target, instruction))).kind == "edit"
    assert session.current == 3
    return session


def goto(description: str, relation: str = "with") -> Plan:
    return Plan(action="goto", version=VersionQuery(description=description, relation=relation))


def test_goto_with_before_and_after_a_described_version(editor: Editor,
                                                        session: Session) -> None:
    result = editor.turn(session, "go to the one with the wolf", plan=goto("the wolf"))
    assert (result.kind, result.version_id, session.current) == ("goto", 2, 2)
    assert result.message == "Went to version 2 (from version 3)."
    turn = session.turns()[-1]
    assert (turn.kind, turn.version_before, turn.version_after) == ("go", 3, 2)
    assert turn.plan["version"] == {"description": "the wolf", "relation": "with"}

    assert editor.turn(session, "before the hat", plan=goto("the hat", "before")).version_id == 2
    assert editor.turn(session, "before the sunset",
                       plan=goto("sunset", "before")).version_id == 0
    assert editor.turn(session, "after the sunset", plan=goto("the sunset sky", "after")
                       ).version_id == 2
    assert len(session.versions()) == 4  # moving deletes and adds nothing


def test_after_follows_the_branch_this_view_is_on(editor: Editor, session: Session) -> None:
    session.go(1)
    editor.turn(session, "a wet dog", plan=edit(("the dog", "make the dog wet")))  # v4, on v1
    assert session.version(4).parent == 1
    assert editor.turn(session, "after", plan=goto("sunset", "after")).version_id == 4
    session.go(3)
    assert editor.turn(session, "after", plan=goto("sunset", "after")).version_id == 2
    session.go(0)  # off both branches: the newest child
    assert editor.turn(session, "after", plan=goto("sunset", "after")).version_id == 4


def test_two_matches_ask_which_and_the_answer_moves(editor: Editor, session: Session) -> None:
    session.go(2)
    editor.turn(session, "a blue car", plan=edit(("the car", "paint the car blue")))  # v4
    session.go(1)
    editor.turn(session, "a blue car", plan=edit(("the car", "paint the car blue")))  # v5
    before = session.current
    asked = editor.turn(session, "back to the blue car", plan=goto("the blue car"))
    assert asked.kind == "clarify" and session.current == before
    assert "version 4: paint the car blue (the car)" in asked.message
    assert "version 5: paint the car blue (the car)" in asked.message
    assert asked.choices == ["version 4", "version 5"]
    pending = Session.open(session.id, session.folder.parent).pending  # survives a restart
    assert pending is not None and pending.kind == "version"

    moved = editor.turn(session, "the first one")  # no plan: read as the answer
    assert (moved.kind, moved.version_id) == ("goto", 4) and session.pending is None
    assert editor.planner.calls == []  # an answer is not planned

    editor.turn(session, "back to the blue car", plan=goto("the blue car", "before"))
    assert editor.turn(session, "version 5").version_id == 1  # before v5: its parent


def test_a_description_nothing_matches_changes_nothing(editor: Editor,
                                                       session: Session) -> None:
    versions, turns = len(session.versions()), len(session.turns())
    result = editor.turn(session, "the one with the giraffe", plan=goto("the giraffe"))
    assert result.kind == "chat" and "no version made by \"the giraffe\"" in result.message
    assert "nothing was changed" in result.message
    assert (session.current, len(session.versions())) == (3, versions)
    assert len(session.turns()) == turns + 1 and session.pending is None
    nothing_before = editor.turn(session, "before the original",
                                 plan=goto("the original", "before"))
    assert nothing_before.kind == "chat" and "nothing comes before" in nothing_before.message
    assert session.current == 3


def test_counted_undo_and_redo_are_one_turn(editor: Editor, session: Session) -> None:
    turns = len(session.turns())
    undone = editor.turn(session, "undo twice", plan=Plan(action="undo", count=2))
    assert (undone.kind, undone.version_id) == ("undo", 1)
    assert undone.message == "Undone 2 steps: back to version 1."
    assert len(session.turns()) == turns + 1
    last = session.turns()[-1]
    assert (last.kind, last.version_before, last.version_after) == ("undo", 3, 1)

    redone = editor.turn(session, "redo 5 times", plan=Plan(action="redo", count=5))
    assert redone.version_id == 3  # the branch it came down, to its end
    assert "only 2 steps to redo" in redone.message

    far = editor.turn(session, "undo 5 times", plan=Plan(action="undo", count=5))
    assert far.version_id == 0
    assert far.message == ("There were only 3 steps to undo: back to the original image "
                           "(version 0).")
    assert editor.turn(session, "undo", plan=Plan(action="undo", count=3)).message == (
        "Nothing to undo: this is the original image.")


def test_matching_uses_stems_and_needs_half_the_words(session: Session) -> None:
    assert stems("Added red hats to the men") == {"red", "hat", "men"}
    assert matching_versions(session, "hats") == [3]
    assert matching_versions(session, "sunsets") == [1]
    assert matching_versions(session, "red hat") == [3]
    assert matching_versions(session, "blue hat") == [3]  # half the words
    assert matching_versions(session, "blue striped hat") == []
    assert matching_versions(session, "the original") == [0]


@pytest.mark.parametrize(("answer", "picked"), [
    ("the second", 7), ("version 9", 9), ("9", 9), ("v7", 7), ("the last one", 9),
    ("first", 4), ("version 5", None), ("make it pink", None)])
def test_an_answer_names_one_of_the_versions(answer: str, picked: int | None) -> None:
    assert pick_version(answer, [4, 7, 9]) == picked


def test_a_numbered_version_is_that_version_not_words(editor: Editor, session: Session) -> None:
    result = editor.turn(session, "go to version 1", plan=goto("version 1"))
    assert (result.kind, result.version_id, session.current) == ("goto", 1, 1)
    assert editor.turn(session, "the one before v3", plan=goto("v3", "before")).version_id == 2
    missing = editor.turn(session, "go to version 9", plan=goto("version 9"))
    assert missing.kind == "chat" and "There is no version 9" in missing.message
    assert session.current == 2

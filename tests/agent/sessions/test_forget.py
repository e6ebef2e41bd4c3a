"""Forget one earlier instruction and keep the rest: a new version equal to the current one
except on that instruction's region, which comes back from the version before it through the
engine's feathered paste-back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import box_mask
from PIL import Image
from test_agent_fakes import BoxGrounder, PaintingEngine, ScriptedPlanner, edit

from promptartisan.agent.editor import Editor
from promptartisan.agent.planning.plan import Plan, VersionQuery
from promptartisan.agent.sessions.forget import reach, read_confirmation
from promptartisan.agent.sessions.history_search import matching_versions
from promptartisan.agent.sessions.store import Session
from promptartisan.settings import Settings

SKY, DOG, HAT = (0.0, 0.0, 1.0, 0.3), (0.5, 0.5, 0.9, 0.95), (0.1, 0.2, 0.3, 0.45)
BOXES = {"the sky": SKY, "the dog": DOG, "the hat": HAT}


@pytest.fixture
def editor(tmp_path: Path) -> Editor:
    settings = Settings(session_dir=tmp_path / "sessions", device="cpu", dtype="float32",
                        steps=2, working_size=64, seed=11)
    return Editor(settings, ScriptedPlanner({}), BoxGrounder(BOXES), PaintingEngine())


@pytest.fixture
def photo_300(photo: Image.Image) -> Image.Image:
    return photo.resize((300, 200))


def pixels(session: Session, number: int) -> np.ndarray:
    return np.asarray(session.image(number))


def forget(*names: str) -> Plan:
    return Plan(action="forget", forget=list(names))


def test_forget_restores_one_region_and_keeps_every_other_pixel(
        editor: Editor, tmp_path: Path, photo_300: Image.Image) -> None:
    session = Session.create(tmp_path, photo_300)
    both = editor.turn(session, "sunset sky and a wolf", plan=edit(
        ("the sky", "make the sky a sunset"), ("the dog", "turn the dog into a wolf")))
    assert both.version_id == 1
    result = editor.turn(session, "undo the sky but keep the wolf", plan=forget("the sky"))
    assert result.kind == "forget", result.message
    assert (result.version_id, session.current, session.version(2).parent) == (2, 2, 1)
    assert "make the sky a sunset (the sky, version 1" in result.message

    sky = session.mask(1, 0)
    radius = session.version(1).provenance["feather_px"]
    assert radius == 38  # the engine's 8 px at 64 px, scaled to 300 px
    changed = reach(sky, radius)
    new, current, parent = pixels(session, 2), pixels(session, 1), pixels(session, 0)
    # Outside the feathered region: the current version, bit for bit (the wolf included).
    assert (~changed).sum() > 0.4 * changed.size
    assert np.array_equal(new[~changed], current[~changed])
    assert np.array_equal(new[session.mask(1, 1)], current[session.mask(1, 1)])
    # Inside the region: the version before the instruction, bit for bit.
    assert not np.array_equal(current[sky], parent[sky])
    assert np.array_equal(new[sky], parent[sky])
    # Between, the seam blends the two.
    band = changed & ~sky
    assert not np.array_equal(new[band], current[band])
    assert not np.array_equal(new[band], parent[band])

    provenance = session.version(2).provenance
    assert provenance["kind"] == "forget" and provenance["request"].startswith("undo the sky")
    assert provenance["forgot"] == [{"version": 1, "k": 0, "target": "the sky",
                                     "instruction": "make the sky a sunset",
                                     "restored_from": 0, "feather_px": 38}]
    assert session.regions(2) == []  # nothing to retry: no engine made it
    assert session.turns()[-1].kind == "forget"
    assert len(session.versions()) == 3  # nothing deleted


def test_an_older_instruction_comes_back_from_before_it(
        editor: Editor, tmp_path: Path, photo_300: Image.Image) -> None:
    session = Session.create(tmp_path, photo_300)
    editor.turn(session, "sunset", plan=edit(("the sky", "make the sky a sunset")))  # v1
    editor.turn(session, "wolf", plan=edit(("the dog", "turn the dog into a wolf")))  # v2
    result = editor.turn(session, "put the old sky back", plan=forget("the old sky"))
    assert result.version_id == 3 and session.version(3).parent == 2
    sky, dog = session.mask(1, 0), session.mask(2, 0)
    changed = reach(sky, 38)
    assert not (changed & dog).any()
    assert np.array_equal(pixels(session, 3)[~changed], pixels(session, 2)[~changed])
    assert np.array_equal(pixels(session, 3)[sky], pixels(session, 0)[sky])
    # The wolf (a later edit elsewhere) is still there.
    assert np.array_equal(pixels(session, 3)[dog], pixels(session, 2)[dog])
    assert not np.array_equal(pixels(session, 3)[dog], pixels(session, 0)[dog])


def test_a_later_overlapping_edit_asks_first(editor: Editor, tmp_path: Path,
                                             photo_300: Image.Image) -> None:
    session = Session.create(tmp_path, photo_300)
    editor.turn(session, "sunset", plan=edit(("the sky", "make the sky a sunset")))  # v1
    editor.turn(session, "a hat", plan=edit(("the hat", "make the hat red")))  # v2
    asked = editor.turn(session, "undo the sky", plan=forget("the sky"))
    assert asked.kind == "clarify" and asked.choices == ["yes", "no"]
    assert asked.message == ("The hat edit in version 2 also changed part of that area, and "
                             "would be taken back there too; take the sky back anyway?")
    assert (session.current, len(session.versions())) == (2, 3)

    kept = editor.turn(session, "no")
    assert kept.kind == "chat" and "nothing was taken back" in kept.message
    assert (session.current, len(session.versions()), session.pending) == (2, 3, None)

    editor.turn(session, "undo the sky", plan=forget("the sky"))
    done = editor.turn(session, "yes, take it back")
    assert (done.kind, done.version_id) == ("forget", 3)
    sky = session.mask(1, 0)
    assert np.array_equal(pixels(session, 3)[sky], pixels(session, 0)[sky])  # hat part too
    assert editor.planner.calls == []  # the answers were not planned


def test_a_kept_instruction_of_the_same_turn_overlapping_the_forgotten_one_asks_first(
        editor: Editor, tmp_path: Path, photo_300: Image.Image) -> None:
    """ "Undo the sky but keep the car", the car's mask meeting the sky's in the same turn:
    the parent the sky comes back from has no red car, so the person is asked, and the
    result says the car is taken back where they overlap (it isn't "as in version 1")."""
    session = Session.create(tmp_path, photo_300)
    editor.grounder.boxes = {**BOXES, "the car": (0.6, 0.1, 0.95, 0.6)}  # into the sky
    editor.turn(session, "sunset and a red car", plan=edit(
        ("the sky", "make the sky a sunset"), ("the car", "make the car red")))  # v1
    asked = editor.turn(session, "undo the sky but keep the car", plan=forget("the sky"))
    assert asked.kind == "clarify", asked.message
    assert asked.message == ("The car edit in version 1 also changed part of that area, and "
                             "would be taken back there too; take the sky back anyway?")
    assert len(session.versions()) == 2
    done = editor.turn(session, "yes")
    assert done.kind == "forget", done.message
    assert "Where they overlap, the car edit in version 1 is taken back too." in done.message
    sky, car = session.mask(1, 0), session.mask(1, 1)
    overlap = sky & car
    assert overlap.any()
    assert np.array_equal(pixels(session, 2)[overlap], pixels(session, 0)[overlap])
    away = car & ~reach(sky, session.version(1).provenance["feather_px"])
    assert away.any() and np.array_equal(pixels(session, 2)[away], pixels(session, 1)[away])


def test_a_name_nothing_matches_changes_nothing(editor: Editor, tmp_path: Path,
                                                photo_300: Image.Image) -> None:
    session = Session.create(tmp_path, photo_300)
    editor.turn(session, "sunset", plan=edit(("the sky", "make the sky a sunset")))
    editor.turn(session, "undo", plan=Plan(action="undo"))
    # The sky edit is not in this version's history any more.
    result = editor.turn(session, "forget the sky", plan=forget("the sky"))
    assert result.kind == "chat"
    assert "no earlier instruction about \"the sky\"" in result.message
    assert (session.current, len(session.versions())) == (0, 2)
    session.go(1)
    assert editor.turn(session, "forget the car", plan=forget("the car")).kind == "chat"
    assert len(session.versions()) == 2


@pytest.mark.parametrize(("answer", "confirmed"), [
    ("yes", True), ("Yes please!", True), ("ok", True), ("sure, go ahead", True),
    ("no", False), ("No thanks", False), ("leave it", False), ("make the car red", None)])
def test_yes_or_no(answer: str, confirmed: bool | None) -> None:
    assert read_confirmation(answer) is confirmed


def test_forget_after_real_engine_edits(tiny_settings: Settings, photo: Image.Image) -> None:
    """The tiny engine makes two edits on a real photo; taking the first back leaves the
    second's pixels and everything else bit for bit."""
    settings = tiny_settings.model_copy(update={"working_size": 128, "seed": 3})
    session = Session.create(settings.session_dir, photo)
    editor = Editor(settings)
    sky, helmet = box_mask(photo.size, (0, 0, 512, 100)), box_mask(photo.size, (300, 300, 480,
                                                                                480))
    assert editor.turn(session, "x", mask=sky, plan=edit(("the sky", "make it a sunset"))
                       ).kind == "edit"
    assert editor.turn(session, "y", mask=helmet, plan=edit(("the suit", "make it gold"))
                       ).kind == "edit"
    result = editor.turn(session, "undo the sunset", plan=forget("sunset"))
    assert result.kind == "forget", result.message
    changed = reach(sky, session.version(1).provenance["feather_px"])
    new = pixels(session, 3)
    assert np.array_equal(new[~changed], pixels(session, 2)[~changed])
    assert np.array_equal(new[sky], pixels(session, 0)[sky])
    assert not np.array_equal(pixels(session, 2)[sky], pixels(session, 0)[sky])
    assert not np.array_equal(new[helmet], pixels(session, 0)[helmet])


def test_a_forget_version_is_found_only_by_speaking_of_undoing(
        editor: Editor, tmp_path: Path, photo_300: Image.Image) -> None:
    session = Session.create(tmp_path, photo_300)
    editor.turn(session, "sunset", plan=edit(("the sky", "make the sky a sunset")))  # v1
    editor.turn(session, "wolf", plan=edit(("the dog", "turn the dog into a wolf")))  # v2
    editor.turn(session, "undo the sky but keep the wolf", plan=forget("the sky"))  # v3
    assert matching_versions(session, "the sunset") == [1]  # v3 no longer shows it
    assert matching_versions(session, "the wolf") == [2]  # v3's request named it, kept it
    assert matching_versions(session, "where I undid the sunset") == [3]


def test_the_chat_shows_a_forget_like_an_edit_and_a_goto_like_an_undo(
        tmp_path: Path, small_photo: Image.Image, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_ui_handlers import TWO_EDITS, buttons, make_chat, upload

    from promptartisan.ui import reports, turn_steps

    monkeypatch.setattr(reports, "missing_models", lambda settings: [])
    chat = make_chat(Settings(session_dir=tmp_path / "sessions", tiny_dir=tmp_path / "tiny",
                              device="cpu", dtype="float32", steps=2, working_size=64))
    chat.controller.message(TWO_EDITS, [upload(small_photo)])  # v1: the sky and a hat
    plans = {"undo the sky but keep the hat": forget("the sky"),
             "the one with the hat": Plan(action="goto", version=VersionQuery(
                 description="the hat"))}
    scripted = chat.planner.plan
    monkeypatch.setattr(chat.planner, "plan",
                        lambda text, context: plans.get(text) or scripted(text, context))
    chat.emitter.clear()
    chat.controller.message("undo the sky but keep the hat")  # the hat (on the man) meets it
    assert [item.kind for item in chat.emitter.shown if item.kind != "step"] == ["ask"]
    assert "man edit in version 1 also changed part of that area" in chat.emitter.last(
        "ask").text
    chat.emitter.clear()
    chat.controller.message("yes")
    assert [item.kind for item in chat.emitter.shown if item.kind not in ("step", "closed")] \
        == ["pictures", "history"]
    shown = chat.emitter.last("pictures")
    assert "Took back make the sky a sunset" in shown.text and "(version 2)" in shown.text
    assert "the man edit in version 1 is taken back too" in shown.text
    assert "retry" not in buttons(shown)  # no engine made it: nothing to try again
    assert chat.emitter.steps()["Plan"].text == turn_steps.PLANS_WITHOUT_EDITS["forget"]
    node = {n.version: n for n in chat.emitter.last("history").history.nodes}[2]
    assert node.lines == ("took back the sky → make the sky a sunset (version 1)",)

    chat.emitter.clear()
    chat.controller.message("the one with the hat")
    assert [item.kind for item in chat.emitter.shown if item.kind != "step"] == ["history"]
    moved = chat.emitter.last("history").history
    assert moved.current == 1 and moved.preview is not None  # shown like an undo
    assert moved.caption == "Went to version 1 (from version 2)."


def test_plain_words_through_the_rules_planner(tmp_path: Path, photo_300: Image.Image) -> None:
    """The conversation of issue 15 as typed, planned by the rules planner."""
    from promptartisan.agent.planning.rules_planner import RulesPlanner

    settings = Settings(session_dir=tmp_path / "sessions", device="cpu", dtype="float32",
                        steps=2, working_size=64, seed=11)
    grounder = BoxGrounder({"sky": SKY, "dog": DOG, "the dog": DOG})
    editor = Editor(settings, RulesPlanner(), grounder, PaintingEngine())
    session = Session.create(tmp_path, photo_300)
    said = [("make the sky a sunset and turn the dog into a wolf", "edit", 1),
            ("undo the sky but keep the wolf", "forget", 2),
            ("add a cat next to the dog", "edit", 3),
            ("undo 3 times", "undo", 0),
            ("go back to the one with the wolf", "goto", 1),
            ("the one before the cat", "goto", 2)]
    for text, kind, version in said:
        result = editor.turn(session, text)
        assert (result.kind, result.version_id) == (kind, version), (text, result.message)
    assert np.array_equal(pixels(session, 2)[session.mask(1, 0)],
                          pixels(session, 0)[session.mask(1, 0)])
    assert session.regions(3)[0]["target"] == "next to the dog"
    assert not (session.mask(3, 0) & session.mask(1, 1)).any()  # beside the dog, not on it
    assert session.turns()[-3].message == "Undone 3 steps: back to version 0."

"""Editor.turn's orchestration, with a scripted planner, box grounder and painting engine."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_agent_fakes import BoxGrounder, PaintingEngine, ScriptedPlanner, boxed, edit

from promptartisan.agent.editor import Editor, ProgressEvent
from promptartisan.agent.planning.plan import Plan
from promptartisan.agent.sessions.store import Session
from promptartisan.settings import Settings
from promptartisan.tools.mask_io import read_mask

SKY, DOG = (0.0, 0.0, 1.0, 0.3), (0.5, 0.5, 0.9, 0.95)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(session_dir=tmp_path / "sessions", device="cpu", dtype="float32", steps=4,
                    working_size=64, seed=1234)


@pytest.fixture
def photo_300(photo: Image.Image) -> Image.Image:
    """Not at working size, so the result makes the round trip through it."""
    return photo.resize((300, 200))


def make_editor(settings: Settings, plans: dict[str, Plan], grounder: BoxGrounder | None = None,
                engine: PaintingEngine | None = None) -> tuple[Editor, PaintingEngine]:
    engine = engine or PaintingEngine()
    grounder = grounder or BoxGrounder({"sky": SKY, "the dog": DOG})
    return Editor(settings, ScriptedPlanner(plans), grounder, engine), engine


def far_from(mask: np.ndarray, pixels: int) -> np.ndarray:
    """True where every mask pixel is more than `pixels` away (square distance)."""
    from scipy import ndimage

    return ~ndimage.binary_dilation(mask, iterations=pixels, structure=np.ones((3, 3), bool))


def snapshot(session: Session) -> tuple[int, int, int, object]:
    return session.current, len(session.versions()), len(session.turns()), session.pending


def test_an_edit_grounds_every_target_and_calls_the_engine_once(
        settings: Settings, tmp_path: Path, photo_300: Image.Image) -> None:
    plans = {"sunset sky and a cheetah": edit(("sky", "make the sky a sunset"),
                                              ("the dog", "turn the dog into a cheetah"))}
    editor, engine = make_editor(settings, plans)
    session = Session.create(tmp_path, photo_300)
    events: list[ProgressEvent] = []
    result = editor.turn(session, "sunset sky and a cheetah", on_event=events.append)

    assert result.kind == "edit", result.message
    assert result.version_id == 1 == session.current
    assert editor.grounder.calls == [["sky", "the dog"]]  # one grounding call for all targets
    (call,) = engine.calls  # one engine call with every region, at working size
    assert call["size"] == (64, 40) and call["steps"] == 4
    assert [r.prompt for r in call["regions"]] == ["make the sky a sunset",
                                                   "turn the dog into a cheetah"]
    assert [r.order for r in call["regions"]] == [0, 1]
    assert settings.guidance_scale is None  # unset: the pipeline's, else InstructPix2Pix's
    assert call["guidance_scale"] == 7.5 and call["feather"] == 8
    assert call["blend_steps"] == 2 and call["max_regions"] == settings.max_regions

    stages = [e.stage for e in events]
    assert stages == sorted(stages, key=["planning", "grounding", "editing", "saving"].index)
    steps = [(e.step, e.total) for e in events if e.stage == "editing" and e.step]
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]

    # Away from the masks the version is the upload, bit for bit, though the engine shifted
    # every pixel and the result went through the working size and back.
    union = boxed(photo_300.size, SKY) | boxed(photo_300.size, DOG)
    stored = np.asarray(session.image(1))
    source = np.asarray(photo_300)
    away = far_from(union, 40)
    assert away.sum() > 5000
    assert np.array_equal(stored[away], source[away])
    assert not np.array_equal(stored[union], source[union])
    assert [m.shape for m in result.masks] == [(200, 300), (200, 300)]
    assert np.array_equal(session.mask(1, 1), boxed(photo_300.size, DOG))
    provenance = session.version(1).provenance
    assert provenance["seed"] == 1234 and provenance["engine"]["num_inference_steps"] == 4
    assert provenance["engine"]["attention_boost"] > 0
    assert provenance["working_size"] == [64, 40]
    assert provenance["plan"]["instructions"][0]["target"] == "sky"
    assert [r["source"] for r in provenance["regions"]] == ["grounding", "grounding"]
    assert result.overlay is not None and result.overlay.size == photo_300.size


def test_a_whole_image_edit_needs_no_grounder(settings: Settings, tmp_path: Path,
                                              small_photo: Image.Image) -> None:
    editor, engine = make_editor(settings, {"winter": edit(("image", "make it winter"))})
    session = Session.create(tmp_path, small_photo)
    assert editor.turn(session, "winter").kind == "edit"
    assert editor.grounder.calls == []
    assert np.asarray(engine.calls[0]["regions"][0].mask).all()


def test_a_user_mask_replaces_grounding_for_one_instruction(
        settings: Settings, tmp_path: Path, small_photo: Image.Image) -> None:
    editor, engine = make_editor(settings, {"make it red": edit(("the dog", "make it red"))})
    session = Session.create(tmp_path, small_photo)
    drawn = Image.fromarray(boxed((640, 480), (0.1, 0.1, 0.4, 0.4)).astype(np.uint8) * 255)
    result = editor.turn(session, "make it red", mask=drawn)
    assert result.kind == "edit" and editor.grounder.calls == []
    assert np.array_equal(session.mask(1, 0), boxed(small_photo.size, (0.1, 0.1, 0.4, 0.4)))
    assert session.regions(1)[0]["source"] == "user"


def test_a_target_not_found_asks_to_rephrase_and_the_answer_retargets(
        settings: Settings, tmp_path: Path, small_photo: Image.Image) -> None:
    plans = {"make the cat blue": edit(("the cat", "make the cat blue"))}
    editor, engine = make_editor(settings, plans)
    session = Session.create(tmp_path, small_photo)
    asked = editor.turn(session, "make the cat blue")
    assert asked.kind == "clarify" and "couldn't find \"the cat\"" in asked.message
    assert engine.calls == [] and session.current == 0
    pending = Session.open(session.id, tmp_path).pending  # survives a restart
    assert pending is not None and pending.kind == "locate"

    answered = editor.turn(session, "it's the dog")
    assert answered.kind == "edit", answered.message
    assert engine.calls[0]["regions"][0].prompt == "make the cat blue"
    assert session.regions(1)[0]["target"] == "the dog" and session.pending is None


def test_an_ambiguous_target_asks_which_and_the_choice_picks_the_instance(
        settings: Settings, tmp_path: Path, small_photo: Image.Image) -> None:
    left, right = (0.05, 0.4, 0.35, 0.9), (0.6, 0.4, 0.95, 0.9)
    grounder = BoxGrounder({}, twins={"the dog": [left, right]})
    editor, engine = make_editor(settings, {"turn the dog into a wolf": edit(
        ("the dog", "turn the dog into a wolf"))}, grounder)
    session = Session.create(tmp_path, small_photo)
    asked = editor.turn(session, "turn the dog into a wolf")
    assert asked.kind == "clarify"
    assert asked.choices == ["the left one", "the right one", "all of them"]
    assert asked.overlay is not None and engine.calls == []

    result = editor.turn(session, "The right one.")
    assert result.kind == "edit", result.message
    assert np.array_equal(session.mask(1, 0), boxed(small_photo.size, right))
    assert session.regions(1)[0]["source"] == "choice"


def test_all_of_them_edits_every_candidate(settings: Settings, tmp_path: Path,
                                           small_photo: Image.Image) -> None:
    left, right = (0.05, 0.4, 0.35, 0.9), (0.6, 0.4, 0.95, 0.9)
    grounder = BoxGrounder({}, twins={"the dog": [left, right]})
    editor, _ = make_editor(settings, {"x": edit(("the dog", "make it gold"))}, grounder)
    session = Session.create(tmp_path, small_photo)
    editor.turn(session, "x")
    assert editor.turn(session, "both").kind == "edit"
    size = small_photo.size
    assert np.array_equal(session.mask(1, 0), boxed(size, left) | boxed(size, right))


def test_undo_redo_and_reset_through_turns(settings: Settings, tmp_path: Path,
                                           small_photo: Image.Image) -> None:
    plans = {"red sky": edit(("sky", "make the sky red")),
             "undo": Plan(action="undo"), "redo": Plan(action="redo"),
             "start over": Plan(action="reset")}
    editor, engine = make_editor(settings, plans)
    session = Session.create(tmp_path, small_photo)
    editor.turn(session, "red sky")
    editor.turn(session, "red sky")
    undone = editor.turn(session, "undo")
    assert (undone.kind, undone.version_id) == ("undo", 1)
    assert np.array_equal(np.asarray(undone.image), np.asarray(session.image(1)))
    assert editor.turn(session, "redo").version_id == 2
    reset = editor.turn(session, "start over")
    assert reset.kind == "reset" and reset.version_id == 0
    assert len(engine.calls) == 2  # moving in the history runs no model


def test_a_failing_grounder_is_an_error_and_the_session_is_unchanged(
        settings: Settings, tmp_path: Path, small_photo: Image.Image) -> None:
    editor, engine = make_editor(settings, {"red dog": edit(("the dog", "make it red"))},
                                 BoxGrounder({}, fail=True))
    session = Session.create(tmp_path, small_photo)
    before = snapshot(session)
    result = editor.turn(session, "red dog")
    assert result.kind == "error" and "grounding model exploded" in result.message
    assert "Nothing was changed" in result.message
    assert snapshot(session) == before and engine.calls == []
    assert result.version_id == 0 and result.image is not None


def test_an_unreadable_upload_is_an_error_not_a_crash(settings: Settings, tmp_path: Path,
                                                      small_photo: Image.Image) -> None:
    editor, _ = make_editor(settings, {})
    session = Session.create(tmp_path, small_photo)
    result = editor.turn(session, "", image=b"not a picture")
    assert result.kind == "error" and "can't be used" in result.message
    assert snapshot(session)[:2] == (0, 1)


def test_an_upload_becomes_a_new_version(settings: Settings, tmp_path: Path,
                                         small_photo: Image.Image, photo: Image.Image) -> None:
    editor, _ = make_editor(settings, {})
    session = Session.create(tmp_path, small_photo)
    result = editor.turn(session, "", image=photo)
    assert (result.kind, result.version_id, session.version(1).parent) == ("edit", 1, 0)
    assert session.recent_messages() == []


def test_cancel_during_editing_stores_nothing(settings: Settings, tmp_path: Path,
                                              small_photo: Image.Image) -> None:
    cancel = threading.Event()
    engine = PaintingEngine(during_step=cancel.set)
    editor, _ = make_editor(settings, {"red sky": edit(("sky", "make it red"))}, engine=engine)
    session = Session.create(tmp_path, small_photo)
    before = snapshot(session)
    result = editor.turn(session, "red sky", cancel=cancel)
    assert result.kind == "cancelled" and snapshot(session) == before
    assert len(engine.calls) == 1  # it was running, and stopped


def test_cancel_before_the_turn_runs_nothing(settings: Settings, tmp_path: Path,
                                             small_photo: Image.Image) -> None:
    cancel = threading.Event()
    cancel.set()
    editor, engine = make_editor(settings, {"red sky": edit(("sky", "make it red"))})
    session = Session.create(tmp_path, small_photo)
    assert editor.turn(session, "red sky", cancel=cancel).kind == "cancelled"
    assert editor.planner.calls == [] and engine.calls == []


def test_a_chat_plan_answers_and_keeps_the_picture(settings: Settings, tmp_path: Path,
                                                   small_photo: Image.Image) -> None:
    editor, _ = make_editor(settings, {"hello": Plan(action="chat", reply="Hi! What to edit?")})
    session = Session.create(tmp_path, small_photo)
    result = editor.turn(session, "hello")
    assert (result.kind, result.message, result.version_id) == ("chat", "Hi! What to edit?", 0)


@pytest.mark.parametrize("mask", [
    np.ones((24, 32), dtype=np.uint8) * 255,
    np.ones((48, 64, 3), dtype=np.float32),
    Image.new("L", (640, 480), 255),
])
def test_masks_of_any_kind_fit_the_image(mask: object) -> None:
    fitted = read_mask(mask, (64, 48))
    assert fitted.shape == (48, 64) and fitted.dtype == bool and fitted.all()

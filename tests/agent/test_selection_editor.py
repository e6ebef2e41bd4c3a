"""Numbered selections through Editor.turn: every selection and text target of a message in ONE
engine call, the stored masks being the selections', the picture unchanged away from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from test_agent_fakes import BoxGrounder, PaintingEngine, boxed

from promptartisan.agent.editor import Editor
from promptartisan.agent.planning.rules_planner import RulesPlanner
from promptartisan.agent.sessions.store import Session
from promptartisan.settings import Settings
from promptartisan.tools.selection import Gesture, SelectionBook, SelectionError, Selector

WORKING = 128


@pytest.fixture
def settings(tiny_settings: Settings) -> Settings:
    return tiny_settings.model_copy(update={"working_size": WORKING, "seed": 11})


@pytest.fixture
def picture(photo: Image.Image) -> Image.Image:
    return photo.resize((256, 192))


class CountingEngine:
    """The real tiny engine, counting its calls and keeping their regions."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.name_or_path = pipe.name_or_path
        self.calls: list[list[Any]] = []

    def interrupt_run(self) -> None:
        self.pipe.interrupt_run()

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs["regions"])
        return self.pipe(**kwargs)


def three_selections(settings: Settings, picture: Image.Image) -> SelectionBook:
    """A click (SAM) and a box (SAM), each kept to its part of the picture by the eraser
    (random weights segment anywhere), and a brush stroke; the bottom right stays free."""
    book = Selector.shared(settings).book("e2e", 0, picture)

    def erase(number: int, points: list[tuple[float, float]], radius: float) -> None:
        book.gesture(Gesture(kind="erase", points=points, radius=radius), number)

    one = book.gesture(Gesture(kind="include", points=[(60, 50)]))
    erase(one, [(200, 0), (200, 191)], 70)  # x ≥ 130
    erase(one, [(0, 170), (255, 170)], 70)  # y ≥ 100
    two = book.gesture(Gesture(kind="brush", points=[(20, 170), (120, 170)], radius=10))
    three = book.gesture(Gesture(kind="box", points=[(150, 20), (240, 100)]))
    erase(three, [(60, 0), (60, 191)], 70)  # x < 130
    erase(three, [(0, 170), (255, 170)], 75)  # y ≥ 95
    assert (one, two, three) == (1, 2, 3)
    return book


def test_make_1_red_2_gold_and_3_a_cheetah_is_one_engine_call(
        settings: Settings, picture: Image.Image) -> None:
    book = three_selections(settings, picture)
    selections = book.masks()
    assert all(mask.any() for mask in selections.values())
    engine = CountingEngine(Editor(settings).pipeline)
    session = Session.create(settings.session_dir, picture)
    result = Editor(settings, pipeline=engine).turn(
        session, "make 1 red, 2 gold and 3 a cheetah", selections=selections)

    assert result.kind == "edit", result.message
    (regions,) = engine.calls  # one engine call …
    assert len(regions) == 3  # … with the three selections
    records = session.regions(result.version_id)
    assert [(r["target"], r["prompt"], r["source"]) for r in records] == [
        ("selection 1", "make it red", "user"), ("selection 2", "make it gold", "user"),
        ("selection 3", "make it a cheetah", "user")]
    for record, number in zip(records, (1, 2, 3), strict=True):
        assert np.array_equal(session.mask(result.version_id, record["k"]), selections[number])

    # Away from the selections (beyond the paste-back feather) the picture is the source's.
    union = np.logical_or.reduce(list(selections.values()))
    feather = 8 * max(picture.size) // WORKING
    away = ~ndimage.binary_dilation(union, iterations=feather + 1,
                                    structure=np.ones((3, 3), bool))
    assert away.mean() > 0.05
    edited, source = np.asarray(session.image(result.version_id)), np.asarray(picture)
    assert np.array_equal(edited[away], source[away])
    assert not np.array_equal(edited[union], source[union])

    # The canvas's selections were made on version 0; the chat is now at version 1.
    with pytest.raises(SelectionError, match="now at version 1"):
        book.check_version(session.current)


def painting_editor(settings: Settings) -> tuple[Editor, PaintingEngine, BoxGrounder]:
    engine, grounder = PaintingEngine(), BoxGrounder({"sky": (0.0, 0.0, 1.0, 0.3)})
    return Editor(settings, RulesPlanner(), grounder, engine), engine, grounder


def test_selections_and_text_targets_mix_in_one_engine_call(
        settings: Settings, picture: Image.Image) -> None:
    editor, engine, grounder = painting_editor(settings)
    session = Session.create(settings.session_dir, picture)
    mine = boxed(picture.size, (0.5, 0.5, 0.8, 0.9))
    result = editor.turn(session, "make 1 red and the sky a sunset", selections={1: mine})
    assert result.kind == "edit", result.message
    assert grounder.calls == [["sky"]]  # only the text target is grounded
    (call,) = engine.calls
    assert [r.prompt for r in call["regions"]] == ["make it red", "make the sky a sunset"]
    records = session.regions(result.version_id)
    assert [(r["target"], r["source"]) for r in records] == [("selection 1", "user"),
                                                             ("sky", "grounding")]
    assert np.array_equal(session.mask(result.version_id, 0), mine)


@pytest.mark.parametrize(("text", "selections", "message"), [
    ("make selection 3 gold", {1: "box", 2: "box"}, "there is no selection 3; the selections "
                                                    "are 1, 2"),
    ("make 1 red", {1: "empty"}, "selection 1 is empty"),
    ("make selection 1 red", {}, "there is no selection 1; select a part of the picture"),
])
def test_a_missing_or_empty_selection_is_a_clear_message_and_nothing_changes(
        settings: Settings, picture: Image.Image, text: str, selections: dict[int, str],
        message: str) -> None:
    editor, engine, _ = painting_editor(settings)
    session = Session.create(settings.session_dir, picture)
    masks = {n: boxed(picture.size, (0.1, 0.1, 0.4, 0.4)) if kind == "box"
             else np.zeros((picture.height, picture.width), dtype=bool)
             for n, kind in selections.items()}
    result = editor.turn(session, text, selections=masks)
    assert result.kind == "error" and message in result.message
    assert "Nothing was changed" in result.message
    assert engine.calls == [] and session.current == 0 and len(session.versions()) == 1


def test_without_selections_a_message_is_planned_as_before(settings: Settings,
                                                           picture: Image.Image) -> None:
    editor, engine, grounder = painting_editor(settings)
    session = Session.create(settings.session_dir, picture)
    result = editor.turn(session, "make the sky a sunset")
    assert result.kind == "edit" and grounder.calls == [["sky"]] and len(engine.calls) == 1


def test_selections_work_through_the_cli_path_too(tmp_path: Path) -> None:
    """`locate` takes selections for batch callers (the CLI's --point/--box)."""
    editor = Editor(Settings(session_dir=tmp_path), RulesPlanner(), BoxGrounder({}),
                    PaintingEngine())
    from promptartisan.agent.planning.plan import Instruction

    image = Image.new("RGB", (40, 30))
    mask = boxed(image.size, (0.2, 0.2, 0.6, 0.6))
    located = editor.locate(image, [Instruction(target="selection 2", instruction="make it red")],
                            selections={2: mask})
    assert np.array_equal(located.regions[0].mask, mask)
    assert located.regions[0].source == "user"


def eight_selections(size: tuple[int, int]) -> dict[int, np.ndarray]:
    """Three large selections side by side (1–3), and five small later ones (4–8) on top of
    them: what a person has after trying a few selections out."""
    large = {n: boxed(size, (0.05 + 0.3 * (n - 1), 0.1, 0.3 * n, 0.9)) for n in (1, 2, 3)}
    small = {n: boxed(size, (0.18 * (n - 4) + 0.02, 0.3, 0.18 * (n - 4) + 0.2, 0.7))
             for n in range(4, 9)}
    return {**large, **small}


def _edit_eight_selections(settings: Settings, picture: Image.Image, request: str
                           ) -> tuple[Session, dict[int, np.ndarray], Any, list[dict[str, Any]]]:
    """`request` on the picture with `eight_selections`: the session, the selections, the
    turn's result (an edit) and its regions."""
    editor, _, _ = painting_editor(settings)
    session = Session.create(settings.session_dir, picture)
    masks = eight_selections(picture.size)
    result = editor.turn(session, request, selections=masks)
    assert result.kind == "edit", result.message
    return session, masks, result, session.regions(result.version_id)


def test_selections_a_message_does_not_name_take_no_part_and_the_reply_says_so(
        settings: Settings, picture: Image.Image) -> None:
    """Selections 4–8 overlap 1–3; "make 1 red, 2 gold and 3 blue" edits 1–3 whole (4–8 cut
    nothing out of them) and the reply names what was used and what was left out."""
    session, masks, result, records = _edit_eight_selections(settings, picture,
                                                             "make 1 red, 2 gold and 3 blue")
    assert [r["target"] for r in records] == ["selection 1", "selection 2", "selection 3"]
    for record, number in zip(records, (1, 2, 3), strict=True):
        assert np.array_equal(session.mask(result.version_id, record["k"]), masks[number])
    assert "(selection 1)" in result.message and "(selection 3)" in result.message
    assert "Left out selections 4–8, which this request didn't name" in result.message


def test_all_selections_names_every_one_and_later_ones_win_where_they_overlap(
        settings: Settings, picture: Image.Image) -> None:
    session, masks, result, records = _edit_eight_selections(settings, picture,
                                                             "make all selections gold")
    assert [r["target"] for r in records] == [f"selection {n}" for n in range(1, 9)]
    assert "Left out" not in result.message
    stored = {n: session.mask(result.version_id, r["k"]) for n, r in zip(range(1, 9), records,
                                                                          strict=True)}
    assert np.array_equal(stored[8], masks[8])  # the last one whole …
    assert not (stored[1] & masks[4]).any()  # … an earlier one gives way where they overlap
    assert np.array_equal(np.logical_or.reduce(list(stored.values())),
                          np.logical_or.reduce(list(masks.values())))

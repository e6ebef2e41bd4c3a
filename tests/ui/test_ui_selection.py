"""The selection canvas's server side without a browser: a ChatController with the real Editor,
Session and `Selector` (a disc-and-box segmenter standing in for SAM), the canvas's calls made
as the page makes them (`controller.selection.act(payload)`), shown through a recording
emitter."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from test_ui_handlers import (
    BoxGrounder,
    FakeEngine,
    RecordingEmitter,
    ScriptedPlanner,
    buttons,
    upload,
)

from promptartisan.agent.editor import Editor
from promptartisan.agent.sessions.store import Session
from promptartisan.settings import Settings
from promptartisan.tools.overlay import overlay
from promptartisan.tools.selection import Selector
from promptartisan.ui import reports, selection_view
from promptartisan.ui.handlers import NOT_THIS_CHATS, ChatController
from promptartisan.ui.selection_view import (
    NO_OFFER,
    NOT_THIS_CANVAS,
    candidate_props,
    looks_like_mask,
)
from promptartisan.ui.shown import Picture

CLICK_RADIUS = 6


class DiscSegmenter:
    """SAM's contract with known answers: a box selects itself, a click a disc around it (an
    outside click cuts its disc away). `encode` is SAM's embedding step, counted."""

    def __init__(self) -> None:
        self.encoded_images: set[bytes] = set()
        self.calls = 0

    def encode(self, image: Image.Image) -> None:
        self.encoded_images.add(image.tobytes())

    def encoded(self, image: Image.Image) -> bool:
        return image.tobytes() in self.encoded_images

    def predict(self, image: Image.Image, points: Any = None, labels: Any = None,
                boxes: Any = None) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        self.encode(image)
        mask = np.zeros((image.height, image.width), dtype=bool)
        ys, xs = np.mgrid[:image.height, :image.width]
        for box in boxes or []:
            x0, y0, x1, y1 = (round(v) for v in box)
            mask[y0:y1, x0:x1] = True
        for (x, y), label in zip(points or [], labels or [], strict=True):
            disc = (xs - x) ** 2 + (ys - y) ** 2 <= CLICK_RADIUS ** 2
            mask = mask | disc if label else mask & ~disc
        return mask[None], np.ones(1)


class CountingEngine(FakeEngine):
    """FakeEngine that keeps each call's regions."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[Any]] = []

    def __call__(self, image: Image.Image, regions: list[Any], *args: Any, **kwargs: Any) -> Any:
        self.calls.append(list(regions))
        return super().__call__(image, regions, *args, **kwargs)


class Pointing:
    """A chat, its engine, planner and SAM stand-in."""

    def __init__(self, settings: Settings) -> None:
        self.emitter, self.planner, self.engine = RecordingEmitter(), ScriptedPlanner(), \
            CountingEngine()
        self.segmenter = DiscSegmenter()
        self.selector = Selector(self.segmenter, max_regions=settings.max_regions)

        def editor(chat_settings: Settings) -> Editor:
            return Editor(chat_settings, planner=self.planner, grounder=BoxGrounder(),
                          pipeline=self.engine)

        self.controller = ChatController(settings, self.emitter, editor_factory=editor,
                                         selector_factory=lambda s: self.selector)

    def session(self) -> Session:
        return Session.open(self.controller.session_ids[0], self.controller.settings.session_dir)

    def open_canvas(self) -> str:
        """Upload-free: a click on "Select on the picture" under the chat's version."""
        session = self.session()
        self.controller.action("select", {"session": session.id, "version": session.current})
        return self.emitter.last("canvas").choices[0]

    def gesture(self, canvas: str, kind: str, points: list[list[float]],
                number: int | None = None) -> dict[str, Any]:
        return self.controller.selection.act({"canvas": canvas, "op": "gesture", "kind": kind,
                                              "points": points, "number": number})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(session_dir=tmp_path / "sessions", tiny_dir=tmp_path / "tiny", device="cpu",
                    dtype="float32", steps=3, working_size=64, planner="rules", max_regions=3)


@pytest.fixture(autouse=True)
def models_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports, "missing_models", lambda settings: [])
    monkeypatch.setattr(selection_view, "sam_present", lambda settings: True)


@pytest.fixture
def chat(settings: Settings, small_photo: Image.Image) -> Pointing:
    """A chat with the 64×48 photo uploaded (version 0)."""
    pointing = Pointing(settings)
    pointing.controller.message("", [upload(small_photo)])
    return pointing


def shown_masks(state: dict[str, Any], size: tuple[int, int]) -> dict[int, np.ndarray]:
    """What the canvas shows: each overlay's opaque pixels, by selection number."""
    masks = {}
    for selection in state["selections"]:
        head, data = selection["mask"].split(",", 1)
        assert head == "data:image/png;base64", head
        with Image.open(io.BytesIO(base64.b64decode(data))) as overlay:
            assert overlay.size == size
            masks[selection["number"]] = np.asarray(overlay.getchannel("A")) > 0
    return masks


def test_the_upload_offers_the_canvas_and_prepares_the_picture(chat: Pointing,
                                                              small_photo: Image.Image) -> None:
    got = chat.emitter.last("text")
    assert "What should I change?" in got.text
    assert buttons(got)["select"] == {"session": chat.session().id, "version": 0}
    assert chat.selector.wait(small_photo, timeout=30), "the shown version wasn't prepared"
    assert chat.segmenter.calls == 0  # embedded, nothing segmented yet


def test_two_clicks_and_a_box_are_three_numbered_selections_and_one_engine_call(
        chat: Pointing, small_photo: Image.Image) -> None:
    canvas = chat.open_canvas()
    first = chat.gesture(canvas, "include", [[10, 10]])
    assert first["ok"] and first["number"] == 1
    assert chat.gesture(canvas, "include", [[50, 10]])["number"] == 2
    boxed = chat.gesture(canvas, "box", [[20, 25], [45, 45]])
    assert boxed["number"] == 3
    state = boxed["state"]
    assert [s["number"] for s in state["selections"]] == [1, 2, 3]
    assert len({s["colour"] for s in state["selections"]}) == 3
    shown = shown_masks(state, small_photo.size)
    assert shown[3][30, 30] and not shown[3][10, 10] and shown[1][10, 10]
    for selection in state["selections"]:  # each number sits inside its own selection
        x, y = selection["anchor"]
        assert shown[selection["number"]][int(y), int(x)]

    chat.controller.message("make 1 red, 2 gold and 3 a cheetah")
    assert len(chat.engine.calls) == 1, "the three selections weren't one engine call"
    session = chat.session()
    regions = session.regions(1)
    assert [r["target"] for r in regions] == ["selection 1", "selection 2", "selection 3"]
    assert [r["prompt"] for r in regions] == ["make it red", "make it gold", "make it a cheetah"]
    for number, region in enumerate(regions, start=1):
        assert np.array_equal(session.mask(1, region["k"]), shown[number])
    # The canvas's selections made version 1: it says so, and sends no more.
    after = chat.gesture(canvas, "include", [[30, 30]])
    assert not after["ok"] and "already made version 1" in after["state"]["message"]


def test_an_unchanged_selection_is_not_drawn_again(chat: Pointing,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = []
    overlay = selection_view.mask_overlay
    monkeypatch.setattr(selection_view, "mask_overlay",
                        lambda mask, number: drawn.append(number) or overlay(mask, number))
    canvas = chat.open_canvas()
    first = chat.gesture(canvas, "include", [[10, 10]])
    chat.gesture(canvas, "box", [[30, 20], [60, 45]])
    chat.gesture(canvas, "brush", [[5, 40], [20, 40]], number=2)  # changes 2 only
    assert drawn == [1, 2, 2]
    shown = chat.controller.selection.act({"canvas": canvas, "op": "status"})["state"]
    chat.gesture(canvas, "brush", [[40, 30], [45, 30]], number=2)  # inside its box: no change
    assert drawn == [1, 2, 2]
    assert shown["selections"][0] == first["state"]["selections"][0]


def test_a_canvas_on_a_version_the_chat_left_says_so(chat: Pointing) -> None:
    canvas = chat.open_canvas()
    chat.controller.message("make the sky a sunset")  # no selection yet: grounded as usual
    assert chat.session().current == 1
    refused = chat.gesture(canvas, "include", [[10, 10]])
    assert not refused["ok"]
    message = refused["state"]["message"]
    assert "shows version 0" in message and "now on version 1" in message
    assert not refused["state"]["selections"]


def test_selections_a_request_left_unused_stay_for_the_next_one(chat: Pointing) -> None:
    canvas = chat.open_canvas()
    chat.gesture(canvas, "box", [[5, 5], [20, 20]])
    chat.controller.message("make the sky a sunset")  # names no selection: grounded
    assert [r["target"] for r in chat.session().regions(1)] == ["the sky"]
    chat.controller.action("undo", {"session": chat.session().id, "version": 1})
    chat.controller.message("make 1 red")
    session = chat.session()
    assert [r["target"] for r in session.regions(session.current)] == ["selection 1"]
    assert session.version(session.current).parent == 0


def test_a_later_selection_the_request_does_not_name_cuts_nothing_from_one_it_does(
        chat: Pointing, small_photo: Image.Image) -> None:
    """Selection 2 (a box) lies over selection 1 (a box): "make 1 red" edits 1 whole, and
    the reply says 2 was left out."""
    canvas = chat.open_canvas()
    chat.gesture(canvas, "box", [[5, 5], [40, 40]])
    state = chat.gesture(canvas, "box", [[20, 20], [60, 45]])["state"]
    shown = shown_masks(state, small_photo.size)
    assert not shown[1][30, 30]  # on the canvas, the later one is on top
    chat.controller.message("make 1 red")
    session = chat.session()
    (region,) = session.regions(1)
    own = np.zeros((small_photo.height, small_photo.width), dtype=bool)
    own[5:40, 5:40] = True
    assert session.mask(1, region["k"])[30, 30]  # where 2 overlaps it, still selection 1
    assert session.mask(1, region["k"]).sum() >= own.sum() * 0.9
    assert "Left out selection 2" in chat.emitter.last("pictures").text


def test_more_selections_than_one_edit_takes_are_refused(chat: Pointing) -> None:
    canvas = chat.open_canvas()
    for x in (5, 20, 35):
        assert chat.gesture(canvas, "include", [[x, 10]])["ok"]
    refused = chat.gesture(canvas, "include", [[50, 10]])
    assert not refused["ok"]
    assert "at most 3 selections" in refused["state"]["message"]
    assert len(refused["state"]["selections"]) == 3


def test_a_click_outside_the_picture_is_explained(chat: Pointing) -> None:
    canvas = chat.open_canvas()
    refused = chat.gesture(canvas, "include", [[80, 10]])
    assert not refused["ok"]
    assert "outside the 64×48 picture" in refused["state"]["message"]
    garbled = chat.gesture(canvas, "box", [["a", "b"]])
    assert not garbled["ok"] and garbled["state"]["message"]


def test_refine_reorder_and_undo(chat: Pointing) -> None:
    canvas = chat.open_canvas()
    chat.gesture(canvas, "box", [[10, 10], [30, 30]])
    chat.gesture(canvas, "box", [[20, 20], [40, 40]])
    act = chat.controller.selection.act
    size = (64, 48)
    overlap = shown_masks(act({"canvas": canvas, "op": "status"})["state"], size)
    assert overlap[2][25, 25] and not overlap[1][25, 25]  # the later one wins
    swapped = act({"canvas": canvas, "op": "reorder", "numbers": [2, 1]})
    assert [s["number"] for s in swapped["state"]["selections"]] == [2, 1]
    assert shown_masks(swapped["state"], size)[1][25, 25]
    before = shown_masks(swapped["state"], size)[1].sum()
    grown = act({"canvas": canvas, "op": "refine", "number": 1, "refine": "grow"})
    assert shown_masks(grown["state"], size)[1].sum() > before
    undone = act({"canvas": canvas, "op": "refine", "number": 1, "refine": "undo"})
    assert shown_masks(undone["state"], size)[1].sum() == before
    inverted = act({"canvas": canvas, "op": "refine", "number": 1, "refine": "invert"})
    assert shown_masks(inverted["state"], size)[1][0, 0]
    cleared = act({"canvas": canvas, "op": "refine", "number": 1, "refine": "clear"})
    assert not shown_masks(cleared["state"], size)[1].any()
    removed = act({"canvas": canvas, "op": "refine", "number": 1, "refine": "remove"})
    assert [s["number"] for s in removed["state"]["selections"]] == [2]
    brushed = chat.gesture(canvas, "brush", [[2, 40], [20, 40]], number=2)
    assert shown_masks(brushed["state"], size)[2][40, 10]
    erased = chat.gesture(canvas, "erase", [[2, 40], [20, 40]], number=2)
    assert not shown_masks(erased["state"], size)[2][40, 10]


def test_the_instruction_fields_make_one_edit(chat: Pointing) -> None:
    canvas = chat.open_canvas()
    chat.gesture(canvas, "include", [[10, 10]])
    chat.gesture(canvas, "box", [[30, 20], [60, 45]])
    act = chat.controller.selection.act
    for bad, said in (({"3": "make it blue"}, "no selection 3"), ({"1": " "}, "Write what"),
                      (["make it blue"], "Write what"), ({"x": "blue"}, "not a selection")):
        refused = act({"canvas": canvas, "op": "apply", "instructions": bad})
        assert not refused["ok"] and said in refused["state"]["message"], (bad, refused)
    assert not chat.engine.calls
    done = chat.controller.selection.act({"canvas": canvas, "op": "apply",
                                          "instructions": {"1": "make it red",
                                                           "2": "turn it into a cheetah"}})
    assert done["ok"] and done["state"]["closed"]
    assert "selection 1: make it red; selection 2: turn it into a cheetah" in \
        chat.emitter.of("text")[-1].text
    assert len(chat.engine.calls) == 1 and len(chat.engine.calls[0]) == 2
    assert [r["prompt"] for r in chat.session().regions(1)] == ["make it red",
                                                                "turn it into a cheetah"]


def test_instruction_fields_longer_than_a_message_may_be_are_refused(chat: Pointing) -> None:
    canvas = chat.open_canvas()
    chat.gesture(canvas, "include", [[10, 10]])
    said = len(chat.emitter.of("text"))
    limit = chat.controller.settings.max_message_chars
    refused = chat.controller.selection.act({"canvas": canvas, "op": "apply",
                                             "instructions": {"1": "make it red " * 2000}})
    assert not refused["ok"] and f"up to {limit:,}" in refused["state"]["message"]
    assert not refused["state"]["closed"] and not chat.engine.calls
    assert len(chat.emitter.of("text")) == said  # the long request isn't echoed either
    fits = "make it red".ljust(limit - len("selection 1: "), "!")
    done = chat.controller.selection.act({"canvas": canvas, "op": "apply",
                                          "instructions": {"1": fits}})
    assert done["ok"] and len(chat.engine.calls) == 1


def test_a_forged_canvas_or_session_is_refused(settings: Settings, chat: Pointing,
                                               small_photo: Image.Image) -> None:
    other = Pointing(settings)
    other.controller.message("", [upload(small_photo)])
    theirs = other.open_canvas()
    refused = chat.controller.selection.act({"canvas": theirs, "op": "gesture",
                                             "kind": "include", "points": [[10, 10]]})
    assert refused == {"ok": False, "message": NOT_THIS_CANVAS}
    assert not other.selector.book(f"{other.controller.view}/{other.session().id}", 0,
                                   small_photo).numbers
    chat.controller.action("select", {"session": other.session().id, "version": 0})
    assert chat.emitter.last("error").text == NOT_THIS_CHATS
    assert not chat.emitter.of("canvas")


def test_the_which_question_shows_numbered_boxes_a_click_answers(
        chat: Pointing, small_photo: Image.Image) -> None:
    chat.controller.message("make the car red")
    question = chat.emitter.last("ask")
    picture = question.pictures[0]
    assert len(picture.boxes) == 2 and picture.boxes[0][0] < picture.boxes[1][0]
    props = candidate_props(picture, picture.boxes, question.choices)
    assert [(c["number"], c["choice"]) for c in props["candidates"]] == [
        (1, "the left one"), (2, "the right one")]
    # The page draws the boxes on the picture itself (the version the question is about).
    assert np.array_equal(np.asarray(picture.image), np.asarray(chat.session().image(0)))
    # Drawn on a picture (the CLI's overlay), each box has its number in its own colour.
    grounding = BoxGrounder().ground(small_photo, ["the car"])[0]
    drawn = np.asarray(overlay(small_photo, [grounding]))
    for candidate, box in zip(props["candidates"], picture.boxes, strict=True):
        x0, y0 = (int(v) for v in box[:2])
        assert tuple(drawn[y0 + 1, x0 + 1]) == tuple(
            int(candidate["colour"][i:i + 2], 16) for i in (1, 3, 5))
    chat.controller.action("answer", {"text": props["candidates"][1]["choice"],  # box 2
                                      "question": question.key})
    region = chat.session().regions(1)[0]
    assert region["source"] == "choice" and region["boxes"][0][0] > small_photo.width / 2


def test_the_where_question_opens_the_canvas_and_a_selection_answers(chat: Pointing) -> None:
    from promptartisan.agent.planning.plan import Instruction, Plan

    chat.planner.plan = lambda text, context: Plan(action="edit", instructions=[  # type: ignore
        Instruction(target="the unicorn", instruction="make the unicorn blue")])
    chat.controller.message("make the unicorn blue")
    assert "couldn't find" in chat.emitter.last("ask").text
    canvas = chat.emitter.last("canvas")
    assert "This is where" in canvas.text
    token = canvas.choices[0]
    chat.gesture(token, "box", [[5, 5], [25, 25]])
    done = chat.controller.selection.act({"canvas": token, "op": "answer"})
    assert done["ok"] and done["state"]["closed"]
    session = chat.session()
    region = session.regions(1)[0]
    assert region["prompt"] == "make the unicorn blue" and region["source"] == "user"
    expected = np.zeros((48, 64), dtype=bool)
    expected[5:25, 5:25] = True
    assert np.array_equal(session.mask(1, region["k"]), expected)


def _mask_picture(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


def test_a_black_and_white_upload_is_offered_as_a_mask(chat: Pointing) -> None:
    earlier = chat.session().id
    # Twice the size, same aspect: a mask drawn on a larger copy still fits.
    chat.controller.message("make the sky a sunset", [upload(_mask_picture((128, 96),
                                                                           (0, 0, 64, 40)))])
    offer = chat.emitter.last("text")
    assert "may be a mask" in offer.text and not chat.engine.calls
    choices = buttons(offer)
    assert set(choices) == {"use_mask", "use_picture"}
    assert chat.controller.session_ids != [earlier]  # the default: a new picture
    chat.controller.action("use_mask", choices["use_mask"])
    assert chat.controller.session_ids == [earlier]
    session = Session.open(earlier, chat.controller.settings.session_dir)
    region = session.regions(1)[0]
    expected = np.zeros((48, 64), dtype=bool)
    expected[:20, :32] = True
    assert region["source"] == "user"
    assert np.array_equal(session.mask(1, region["k"]), expected)
    chat.controller.action("use_mask", choices["use_mask"])  # an offer is taken once
    assert chat.emitter.last("error").text == NO_OFFER


def test_a_mask_offer_can_be_a_new_picture_and_a_photo_is_no_mask(
        chat: Pointing, small_photo: Image.Image) -> None:
    earlier = chat.session().id
    chat.controller.message("make the sky a sunset", [upload(_mask_picture((64, 48),
                                                                           (0, 0, 64, 20)))])
    choices = buttons(chat.emitter.last("text"))
    chat.controller.action("use_picture", choices["use_picture"])
    assert chat.controller.session_ids != [earlier]
    assert chat.session().current == 1 and len(chat.engine.calls) == 1
    # A colour photo, or a mask of another shape, is a new picture as before.
    assert not looks_like_mask(small_photo, small_photo)
    assert not looks_like_mask(_mask_picture((64, 64), (0, 0, 10, 10)), small_photo)
    chat.controller.message("make the sky a sunset", [upload(small_photo.rotate(180))])
    assert len(chat.engine.calls) == 2


def test_without_sam_here_a_shown_version_starts_no_download(
        settings: Settings, small_photo: Image.Image, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selection_view, "sam_present", lambda settings: False)
    pointing = Pointing(settings)
    started: list[Image.Image] = []
    monkeypatch.setattr(pointing.selector, "prepare", started.append)
    pointing.controller.message("", [upload(small_photo)])
    assert started == []
    pointing.open_canvas()  # opening a canvas does start it
    assert len(started) == 1 and started[0].size == small_photo.size


def test_preparing_is_shown_until_the_picture_is_embedded(settings: Settings,
                                                         small_photo: Image.Image) -> None:
    pointing = Pointing(settings)
    pointing.segmenter.encode = lambda image: None  # type: ignore[method-assign]
    pointing.controller.message("", [upload(small_photo)])
    canvas = pointing.open_canvas()
    status = pointing.controller.selection.act({"canvas": canvas, "op": "status"})
    assert status["state"]["preparing"]
    del pointing.segmenter.encode  # the real one again: the embedding is made
    pointing.selector.prepare(small_photo)
    assert pointing.selector.wait(small_photo, timeout=30)
    assert not pointing.controller.selection.act({"canvas": canvas, "op": "status"})[
        "state"]["preparing"]


def test_picture_boxes_default_to_none() -> None:
    assert Picture("x.png", Image.new("RGB", (4, 4))).boxes == ()


def test_selections_survive_a_reload_until_they_make_an_edit(
        chat: Pointing, settings: Settings, small_photo: Image.Image) -> None:
    """A reload (or a restart) is a new chat reopening the session: the selections left on
    the picture come back on a canvas of their own, the same masks; once they make an edit,
    nothing comes back any more."""
    canvas = chat.open_canvas()
    chat.gesture(canvas, "include", [[10, 10]])
    made = chat.gesture(canvas, "box", [[20, 25], [45, 45]])
    shown = shown_masks(made["state"], small_photo.size)
    session_id = chat.session().id

    again = Pointing(settings)  # the page reloaded: a new chat, a new process's selector
    again.controller.session_ids = [session_id]
    again.controller.reopen()
    restored = again.emitter.last("canvas")
    assert "are back" in restored.text
    token = restored.choices[0]
    state = again.controller.selection.act({"canvas": token, "op": "status"})["state"]
    assert [s["number"] for s in state["selections"]] == [1, 2]
    assert all(np.array_equal(shown_masks(state, small_photo.size)[n], shown[n]) for n in (1, 2))
    assert again.segmenter.calls == 0  # shown again without SAM
    assert again.controller.selection.act({"canvas": canvas, "op": "status"})["ok"] is False

    again.controller.message("make 1 red and 2 gold")
    assert len(again.engine.calls) == 1
    assert [r["target"] for r in again.session().regions(1)] == ["selection 1", "selection 2"]
    third = Pointing(settings)
    third.controller.session_ids = [session_id]
    third.controller.reopen()
    assert not [e for e in third.emitter.shown if e.kind == "canvas"]


def test_damaged_saved_selections_lose_only_themselves(chat: Pointing, settings: Settings) -> None:
    canvas = chat.open_canvas()
    chat.gesture(canvas, "include", [[10, 10]])
    session = chat.session()
    (session.folder / selection_view.SAVED_SELECTIONS).write_text("{not json")
    again = Pointing(settings)
    again.controller.session_ids = [session.id]
    again.controller.reopen()
    assert "couldn't be read" in again.emitter.last("text").text
    assert "Continuing session" in again.emitter.last("history").text

"""The chat's behaviour without a browser: a ChatController driving the real Editor and Session
(with a scripted planner, a box grounder and a fake engine injected, or with the tiny models),
shown through a recording emitter."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
import stat
import threading
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from promptartisan.agent.editor import Editor
from promptartisan.agent.planning.plan import Instruction, Plan
from promptartisan.agent.sessions.store import Session
from promptartisan.models import MissingModelError
from promptartisan.settings import Settings
from promptartisan.tools.grounding import Grounding
from promptartisan.tools.mask_io import read_mask
from promptartisan.ui import handlers, reports, shown, turn_steps, version_buttons
from promptartisan.ui.handlers import ANSWERED, BUSY, NOT_THIS_CHATS, ChatController
from promptartisan.ui.history import tree_layout
from promptartisan.ui.message_turns import NEED_IMAGE, NEW_SESSION, STOPPED
from promptartisan.ui.render import escape_markdown
from promptartisan.ui.reports import OUT_OF_MEMORY
from promptartisan.ui.resume import NOT_OFFERED
from promptartisan.ui.shown import ActionButton, HistoryView, Picture, StepUpdate, Upload
from promptartisan.ui.version_buttons import NO_SUCH_VERSION

TWO_EDITS = "make the sky a sunset and put a hat on the man"
VAGUE = "change something"


@dataclass
class Shown:
    """One thing the controller showed."""

    kind: str  # text | pictures | file | ask | error | step | history | compare
    text: str
    actions: list[ActionButton] = field(default_factory=list)
    pictures: list[Picture] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)
    path: Path | None = None
    step: StepUpdate | None = None
    history: HistoryView | None = None
    key: str = ""  # a question's


class RecordingEmitter:
    """Keeps everything the controller shows, in order. Thread-safe."""

    def __init__(self) -> None:
        self.shown: list[Shown] = []
        self._lock = threading.Lock()

    def _add(self, item: Shown) -> None:
        with self._lock:
            self.shown.append(item)

    def text(self, text: str, actions: Sequence[ActionButton] = ()) -> None:
        self._add(Shown("text", text, list(actions)))

    def pictures(self, text: str, pictures: Sequence[Picture],
                 actions: Sequence[ActionButton] = ()) -> None:
        self._add(Shown("pictures", text, list(actions), list(pictures)))

    def file(self, text: str, path: Path, name: str) -> None:
        self._add(Shown("file", name, path=path))

    def download(self, text: str, path: Path, name: str) -> None:
        self._add(Shown("download", name, path=path))

    def ask(self, question: str, choices: Sequence[str],
            pictures: Sequence[Picture] = (), key: str = "") -> None:
        self._add(Shown("ask", question, pictures=list(pictures), choices=list(choices),
                        key=key))

    def close_questions(self) -> None:
        self._add(Shown("closed", ""))

    def error(self, text: str, actions: Sequence[ActionButton] = ()) -> None:
        self._add(Shown("error", text, list(actions)))

    def step(self, update: StepUpdate) -> None:
        self._add(Shown("step", update.text, pictures=list(update.pictures), step=update))

    def history(self, view: HistoryView) -> None:
        self._add(Shown("history", view.caption, list(view.actions),
                        [view.preview] if view.preview is not None else [], history=view))

    def compare(self, text: str, before: Picture, after: Picture,
                labels: tuple[str, str]) -> None:
        self._add(Shown("compare", text, pictures=[before, after], choices=list(labels)))

    def canvas(self, text: str, props: dict[str, Any]) -> None:
        self._add(Shown("canvas", text, choices=[props["canvas"]]))

    def of(self, kind: str) -> list[Shown]:
        with self._lock:
            return [item for item in self.shown if item.kind == kind]

    def last(self, kind: str) -> Shown:
        items = self.of(kind)
        assert items, f"nothing of kind {kind!r} shown; shown: {self.shown}"
        return items[-1]

    def steps(self) -> dict[str, StepUpdate]:
        """The last update of every step, by title (a later turn's step replaces an earlier
        one's of the same title)."""
        latest = {item.step.key: item.step for item in self.of("step") if item.step}
        return {step.title: step for step in latest.values()}

    def clear(self) -> None:
        with self._lock:
            self.shown.clear()


class ScriptedPlanner:
    """Plans by lookup; an answer to a question is merged by the Editor before it gets here."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def plan(self, text: str, context: list[str]) -> Plan:
        self.calls.append(text)
        if text == VAGUE:
            return Plan(action="clarify", question="What should I change, and how?")
        if "sky" in text and "hat" in text:
            return Plan(action="edit", instructions=[
                Instruction(target="the sky", instruction="make the sky a sunset"),
                Instruction(target="the man", instruction="put a hat on the man")])
        if "car" in text:
            return Plan(action="edit", instructions=[
                Instruction(target="the car", instruction="make the car red")])
        if "sky" in text or "sunset" in text:
            return Plan(action="edit", instructions=[
                Instruction(target="the sky", instruction="make the sky a sunset")])
        return Plan(action="chat", reply="I edit pictures: tell me what to change.")


BOXES = {"the sky": (0.0, 0.0, 1.0, 0.4), "the man": (0.3, 0.4, 0.7, 1.0)}
CARS = [(0.05, 0.6, 0.3, 0.9), (0.6, 0.6, 0.95, 0.9)]


def _mask(size: tuple[int, int], box: tuple[float, float, float, float]) -> np.ndarray:
    width, height = size
    mask = np.zeros((height, width), dtype=bool)
    x0, y0, x1, y1 = box
    mask[round(y0 * height):round(y1 * height), round(x0 * width):round(x1 * width)] = True
    return mask


def _pixels(box: tuple[float, ...], size: tuple[int, int]) -> list[float]:
    return [box[0] * size[0], box[1] * size[1], box[2] * size[0], box[3] * size[1]]


class BoxGrounder:
    """Known phrases land on fixed boxes; "the car" matches two cars; the rest find nothing."""

    def ground(self, image: Image.Image, phrases: list[str]) -> list[Grounding | None]:
        found: list[Grounding | None] = []
        for phrase in phrases:
            if phrase == "the car":
                found.append(Grounding(
                    mask=_mask(image.size, CARS[0]), score=0.9,
                    boxes=np.array([_pixels(CARS[0], image.size)]), label=phrase,
                    ambiguous=True, candidates=[np.array(_pixels(b, image.size)) for b in CARS]))
            elif phrase in BOXES:
                mask = _mask(image.size, BOXES[phrase])
                found.append(Grounding(mask=mask, score=0.8, label=phrase,
                                       boxes=np.array([_pixels(BOXES[phrase], image.size)])))
            else:
                found.append(None)
        return found

    def segment(self, image: Image.Image, points: Any = None, labels: Any = None,
                boxes: Any = None) -> Grounding:
        mask = np.zeros((image.size[1], image.size[0]), dtype=bool)
        for x0, y0, x1, y1 in boxes:
            mask[int(y0):int(y1), int(x0):int(x1)] = True
        return Grounding(mask=mask, score=1.0, boxes=np.array(boxes), label="chosen")


class FakeEngine:
    """The engine's call contract: a step callback per step, `interrupt_run`, and an output with
    `images` and `interrupted`. Inverts the colours inside every region. With `hold`, it keeps
    stepping until interrupted (to test the stop button); `editing` is set at the first step."""

    def __init__(self, hold: bool = False, error: BaseException | None = None) -> None:
        self.hold = hold
        self.error = error
        self.editing = threading.Event()
        self._interrupted = False

    def interrupt_run(self) -> None:
        self._interrupted = True

    def __call__(self, image: Image.Image, regions: list[Any], num_inference_steps: int,
                 callback_on_step_end: Any = None, **kwargs: Any) -> SimpleNamespace:
        if self.error is not None:
            raise self.error
        self._interrupted = False
        deadline = time.monotonic() + 10
        step = 0
        while step < num_inference_steps or (self.hold and time.monotonic() < deadline):
            if callback_on_step_end is not None:
                callback_on_step_end(self, min(step, num_inference_steps - 1), 1000 - step, {})
            self.editing.set()
            if self._interrupted:
                return SimpleNamespace(images=[], interrupted=True)
            step += 1
            if self.hold:
                time.sleep(0.01)
        pixels = np.asarray(image.convert("RGB")).copy()
        for region in regions:
            inside = read_mask(region.mask, image.size)
            pixels[inside] = 255 - pixels[inside]
        return SimpleNamespace(images=[Image.fromarray(pixels)], interrupted=False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(session_dir=tmp_path / "sessions", tiny_dir=tmp_path / "tiny", device="cpu",
                    dtype="float32", steps=3, working_size=64, planner="rules")


@pytest.fixture(autouse=True)
def models_present(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real models count as present unless a test says otherwise: no cache scans."""
    monkeypatch.setattr(reports, "missing_models", lambda settings: [])


@dataclass
class Chat:
    controller: ChatController
    emitter: RecordingEmitter
    planner: ScriptedPlanner
    engine: FakeEngine


def make_chat(settings: Settings, engine: FakeEngine | None = None,
              session_ids: Sequence[str] = ()) -> Chat:
    emitter, planner, engine = RecordingEmitter(), ScriptedPlanner(), engine or FakeEngine()

    def editor(chat_settings: Settings) -> Editor:
        return Editor(chat_settings, planner=planner, grounder=BoxGrounder(), pipeline=engine)

    return Chat(ChatController(settings, emitter, editor_factory=editor,
                               session_ids=session_ids), emitter, planner, engine)


@pytest.fixture
def chat(settings: Settings) -> Chat:
    return make_chat(settings)


def upload(image: Image.Image, name: str = "photo.png") -> Upload:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return Upload(name, data=buffer.getvalue())


def buttons(item: Shown) -> dict[str, dict[str, Any]]:
    return {button.name: button.payload for button in item.actions}


# ----- welcome and models -------------------------------------------------------------------


def test_welcome_says_what_to_do(chat: Chat) -> None:
    chat.controller.start()
    welcome = chat.emitter.shown[0]
    assert welcome.kind == "text" and "Attach a photo" in welcome.text
    assert not chat.emitter.of("error")


def test_missing_models_offer_the_tiny_ones(chat: Chat, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports, "missing_models", lambda settings: ["instruct-pix2pix"])
    monkeypatch.setattr(reports, "hub_reachable", lambda: False)
    chat.controller.start()
    warning = chat.emitter.last("error")
    assert "promptartisan models download" in warning.text and "instruct-pix2pix" in warning.text
    assert "use_tiny" in buttons(warning)
    chat.controller.action("use_tiny", {})
    assert chat.controller.settings.tiny
    assert "tiny demo models" in chat.emitter.last("text").text


def test_missing_models_reachable_hub_only_informs(chat: Chat,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports, "missing_models", lambda settings: ["clipseg"])
    monkeypatch.setattr(reports, "hub_reachable", lambda: True)
    chat.controller.start()
    assert not chat.emitter.of("error")
    assert any("downloads them" in item.text for item in chat.emitter.of("text"))


def test_required_models_follow_the_grounding_backend() -> None:
    assert reports.required_models(Settings(grounding_backend="clipseg")) == [
        "instruct-pix2pix", "clipseg"]
    assert reports.required_models(Settings(grounding_backend="grounded-sam")) == [
        "instruct-pix2pix", "groundingdino", "sam"]


# ----- uploads and the first request --------------------------------------------------------


def test_message_before_any_image_asks_for_one(chat: Chat) -> None:
    chat.controller.message(TWO_EDITS)
    assert chat.emitter.last("error").text == NEED_IMAGE
    assert not chat.planner.calls


def test_bad_upload_is_explained_and_the_chat_goes_on(chat: Chat, small_photo: Image.Image,
                                                     tmp_path: Path) -> None:
    chat.controller.message(TWO_EDITS, [Upload("notes.png", data=b"this is not a picture")])
    error = chat.emitter.last("error")
    assert "notes.png" in error.text and "not an image" in error.text
    assert chat.controller.session_ids == [] and not chat.planner.calls
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    chat.controller.message("", [Upload("empty.jpg", path=empty)])
    assert "empty" in chat.emitter.last("error").text
    chat.controller.message(TWO_EDITS, [upload(small_photo)])
    assert chat.emitter.last("pictures").text.startswith("Done in one pass")


def test_upload_without_text_asks_what_to_change(chat: Chat, small_photo: Image.Image) -> None:
    chat.controller.message("", [upload(small_photo)])
    assert chat.emitter.last("text").text == "Got this photo. What should I change?"
    assert len(chat.controller.session_ids) == 1
    assert [info.id for info in Session.list(chat.controller.settings.session_dir)] == \
        chat.controller.session_ids


def test_a_turn_shows_plan_masks_progress_and_result(chat: Chat,
                                                     small_photo: Image.Image) -> None:
    chat.controller.message(TWO_EDITS, [upload(small_photo)])
    steps = chat.emitter.steps()
    assert [step.title for step in steps.values()] == ["Plan", "Grounding", "Editing", "Saving"]
    assert all(step.done and not step.failed for step in steps.values())
    plan = steps["Plan"].text
    assert "**the sky** → make the sky a sunset" in plan
    assert "**the man** → put a hat on the man" in plan
    grounding = steps["Grounding"]
    assert "**the sky**: found" in grounding.text and len(grounding.pictures) == 1
    assert grounding.pictures[0].image.size == small_photo.size
    editing = [item.step for item in chat.emitter.of("step")
               if item.step and item.step.title == "Editing"]
    assert any("step 3 of 3" in step.text for step in editing)
    result = chat.emitter.last("pictures")
    assert set(buttons(result)) == {"undo", "redo", "reset", "retry", "masks", "compare",
                                    "download", "export", "select"}
    session = Session.open(chat.controller.session_ids[0], chat.controller.settings.session_dir)
    assert session.current == 1
    assert np.array_equal(np.asarray(result.pictures[0].image), np.asarray(session.image(1)))


def test_the_plan_is_shown_before_editing_starts(chat: Chat,
                                                 small_photo: Image.Image) -> None:
    chat.controller.message(TWO_EDITS, [upload(small_photo)])
    updates = [item.step for item in chat.emitter.of("step") if item.step]
    first_plan = next(i for i, step in enumerate(updates)
                      if step.title == "Plan" and "→" in step.text)
    first_edit = next(i for i, step in enumerate(updates) if step.title == "Editing")
    assert first_plan < first_edit
    assert updates[first_plan].done and "**the man** →" in updates[first_plan].text


def test_every_turn_has_its_own_steps(chat: Chat, small_photo: Image.Image) -> None:
    chat.controller.message(TWO_EDITS, [upload(small_photo)])
    chat.controller.message("make the sky a sunset")
    plans = {item.step.key: item.step.text for item in chat.emitter.of("step")
             if item.step and item.step.title == "Plan"}
    assert len(plans) == 2
    assert ["hat" in text for text in plans.values()] == [True, False]


def test_a_new_photo_starts_a_new_session_and_reset_stays_on_it(
        chat: Chat, small_photo: Image.Image) -> None:
    """The issue's case: a second photo joined the first one's history, and Reset then went
    back to the first photo."""
    chat.controller.message("make the sky a sunset", [upload(small_photo)])
    first = chat.controller.session_ids[0]
    turned = small_photo.rotate(180)
    chat.controller.message("make the sky a sunset", [upload(turned)])
    second = chat.controller.session_ids[0]
    assert chat.controller.session_ids == [second] and second != first
    offer = next(item for item in chat.emitter.of("text") if item.text == NEW_SESSION)
    assert buttons(offer)["add_to"] == {"session": second, "into": first}
    chat.controller.action("reset", buttons(chat.emitter.last("pictures"))["reset"])
    reset = chat.emitter.last("history")
    assert np.array_equal(np.asarray(reset.pictures[0].image), np.asarray(turned))
    assert Session.open(first, chat.controller.settings.session_dir).current == 1  # untouched


def test_add_to_this_one_puts_the_new_photo_in_the_earlier_history(
        chat: Chat, small_photo: Image.Image) -> None:
    chat.controller.message("make the sky a sunset", [upload(small_photo)])
    first = chat.controller.session_ids[0]
    chat.controller.message("", [upload(small_photo.rotate(180))])
    asked = chat.emitter.last("text")
    assert asked.text == "Got this photo. What should I change?"
    payload = buttons(asked)["add_to"]
    chat.controller.action("add_to", payload)
    assert chat.controller.session_ids == [first]
    earlier = Session.open(first, chat.controller.settings.session_dir)
    assert earlier.current == 2 and earlier.version(2).parent == 1
    shown = chat.emitter.last("pictures")
    assert "as version 2" in shown.text and buttons(shown)["undo"]["version"] == 2
    chat.controller.action("add_to", payload)  # a second click adds nothing more
    assert len(earlier.versions()) == 3
    chat.controller.action("undo", buttons(shown)["undo"])
    assert earlier.current == 1
    chat.controller.action("add_to", {"session": payload["session"], "into": "elsewhere"})
    assert chat.emitter.last("error").text == NOT_THIS_CHATS
    assert len(earlier.versions()) == 3


# ----- questions ----------------------------------------------------------------------------


def test_a_vague_request_gets_a_question_and_the_answer_an_edit(
        chat: Chat, small_photo: Image.Image) -> None:
    chat.controller.message(VAGUE, [upload(small_photo)])
    question = chat.emitter.last("ask")
    assert "What should I change" in question.text
    assert "asking a question first" in chat.emitter.steps()["Plan"].text
    chat.controller.message("make the sky a sunset")
    assert chat.emitter.last("pictures").text.startswith("Done in one pass")


def test_which_of_two_gets_choices_as_buttons_and_a_click_answers(
        chat: Chat, small_photo: Image.Image) -> None:
    chat.controller.message("make the car red", [upload(small_photo)])
    question = chat.emitter.last("ask")
    assert question.choices == ["the left one", "the right one", "all of them"]
    assert len(question.pictures) == 1  # the candidates, drawn
    chat.controller.action("answer", {"text": "the right one", "question": question.key})
    assert any("the right one" in item.text for item in chat.emitter.of("text"))
    result = chat.emitter.last("pictures")
    assert result.text.startswith("Done in one pass")
    session = Session.open(chat.controller.session_ids[0], chat.controller.settings.session_dir)
    region = session.regions(session.current)[0]
    assert region["source"] == "choice" and region["boxes"][0][0] > small_photo.width / 2


def test_an_answered_question_is_closed_and_its_old_answers_do_nothing(
        chat: Chat, small_photo: Image.Image) -> None:
    """The question's buttons and boxes close when it is answered; a click on one of them
    afterwards (a stale page) is refused, and so is an answer to an overtaken question."""
    chat.controller.message("make the car red", [upload(small_photo)])
    first = chat.emitter.last("ask")
    chat.controller.action("answer", {"text": "the right one", "question": first.key})
    kinds = [item.kind for item in chat.emitter.shown]
    assert "closed" in kinds and kinds.index("closed") > kinds.index("ask")
    session = Session.open(chat.controller.session_ids[0], chat.controller.settings.session_dir)
    versions = len(session.versions())
    chat.emitter.clear()
    chat.controller.action("answer", {"text": "the left one", "question": first.key})
    assert [(item.kind, item.text) for item in chat.emitter.shown] == [("text", ANSWERED)]
    assert len(session.versions()) == versions
    chat.controller.message("make the car red")
    second = chat.emitter.last("ask")
    assert second.key and second.key != first.key
    chat.controller.message("make the car blue")  # typed instead: the question is overtaken
    assert chat.emitter.shown[-1].kind != "ask" or chat.emitter.last("ask").key != second.key
    chat.emitter.clear()
    chat.controller.action("answer", {"text": "the left one", "question": second.key})
    assert [(item.kind, item.text) for item in chat.emitter.shown] == [("text", ANSWERED)]


def test_nothing_found_is_a_question_not_a_failure(chat: Chat, small_photo: Image.Image) -> None:
    chat.controller.message("make the sky a sunset", [upload(small_photo)])
    chat.emitter.clear()
    chat.planner.plan = lambda text, context: Plan(action="edit", instructions=[  # type: ignore
        Instruction(target="the unicorn", instruction="make the unicorn blue")])
    chat.controller.message("make the unicorn blue")
    assert "couldn't find" in chat.emitter.last("ask").text
    assert not chat.emitter.of("error")


# ----- history buttons ----------------------------------------------------------------------


def test_history_buttons(chat: Chat, small_photo: Image.Image) -> None:
    chat.controller.message(TWO_EDITS, [upload(small_photo)])
    payload = buttons(chat.emitter.last("pictures"))["undo"]
    session_id = payload["session"]
    session = Session.open(session_id, chat.controller.settings.session_dir)
    edited = np.asarray(session.image(1))

    assert "masks" in buttons(chat.emitter.last("pictures"))
    chat.controller.action("undo", payload)
    assert session.current == 0
    shown = chat.emitter.last("history")
    assert "Undone" in shown.text
    assert "masks" not in buttons(shown) and "retry" not in buttons(shown)  # the upload's
    assert np.array_equal(np.asarray(shown.pictures[0].image), np.asarray(session.image(0)))

    chat.controller.action("redo", payload)
    assert session.current == 1
    assert np.array_equal(np.asarray(chat.emitter.last("history").pictures[0].image), edited)

    chat.controller.action("masks", payload)
    masks = chat.emitter.last("pictures")
    assert "**the sky** — make the sky a sunset" in masks.text
    assert masks.pictures[0].image.size == small_photo.size

    chat.controller.action("compare", payload)
    compare = chat.emitter.last("compare")
    assert compare.choices == ["version 0", "version 1"]
    assert np.array_equal(np.asarray(compare.pictures[0].image), np.asarray(session.image(0)))
    assert np.array_equal(np.asarray(compare.pictures[1].image), edited)

    chat.controller.action("download", payload)
    download = chat.emitter.last("download")
    assert download.path == session.version(1).file and download.path.is_file()
    assert download.text == f"{session_id}-v0001.png"

    chat.controller.action("export", payload)
    export = chat.emitter.last("file").path
    assert export is not None
    with zipfile.ZipFile(export) as archive:
        assert {"session.json", "versions/0000.png", "versions/0001.png"} <= set(
            archive.namelist())

    chat.controller.action("reset", payload)
    assert session.current == 0
    original = buttons(chat.emitter.last("history"))["compare"]
    assert original["version"] == 0
    chat.controller.action("compare", original)
    assert "original" in chat.emitter.last("text").text
    chat.controller.action("masks", original)
    assert "no masks" in chat.emitter.last("text").text
    assert not chat.emitter.of("error")


def test_every_button_acts_on_the_version_it_sits_under(chat: Chat,
                                                        small_photo: Image.Image) -> None:
    """The issue's case: under "Undone: back to version 0", Download gave version 1 and
    Compare compared 0 → 1, because they read where the session was, not their payload."""
    chat.controller.message(TWO_EDITS, [upload(small_photo)])
    edited = buttons(chat.emitter.last("pictures"))
    chat.controller.action("undo", edited["undo"])
    undone = chat.emitter.last("history")
    assert "back to version 0" in undone.text
    at_zero = buttons(undone)
    assert {payload["version"] for payload in at_zero.values()} == {0}
    session = Session.open(edited["undo"]["session"], chat.controller.settings.session_dir)

    chat.controller.action("download", at_zero["download"])
    assert chat.emitter.last("download").path == session.version(0).file
    chat.controller.action("compare", at_zero["compare"])
    assert "original" in chat.emitter.last("text").text
    assert "masks" not in at_zero  # the upload has none to show
    chat.controller.action("masks", {**at_zero["download"]})  # a stale page's button
    assert "Version 0 was not made by an edit" in chat.emitter.last("text").text

    # The buttons under version 1 still act on version 1, though the chat is on 0.
    chat.controller.action("download", edited["download"])
    assert chat.emitter.last("download").path == session.version(1).file
    chat.controller.action("compare", edited["compare"])
    assert chat.emitter.last("compare").text.startswith("Version 0 → version 1:")
    chat.controller.action("masks", edited["masks"])
    assert "Where each edit of version 1 went" in chat.emitter.last("pictures").text
    assert session.current == 0 and not chat.emitter.of("error")

    # Undo, Redo and Reset move from where the chat is, whichever picture they sit under.
    chat.controller.action("undo", edited["undo"])
    assert "Nothing to undo" in chat.emitter.last("history").text
    chat.controller.action("redo", at_zero["redo"])
    assert session.current == 1


def _thumbnail(node: Any) -> Image.Image:
    head, data = node.thumbnail.split(",", 1)
    assert head == "data:image/jpeg;base64"
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_the_history_element_reaches_every_version_branches_included(
        chat: Chat, small_photo: Image.Image) -> None:
    """Versions 0 → 1 → 2 and, after an Undo, a branch 1 → 3 and a retry of 3 (4, beside it):
    the history element lays out every one on its own place, each with what made it, and a
    click on any goes there as a recorded move."""
    chat.controller.message("make the sky a sunset", [upload(small_photo)])
    chat.controller.message(TWO_EDITS)
    session_id = chat.controller.session_ids[0]
    chat.controller.action("undo", {"session": session_id})
    chat.controller.message(TWO_EDITS)
    chat.controller.action("retry", {"session": session_id, "version": 3})
    session = Session.open(session_id, chat.controller.settings.session_dir,
                           view=chat.controller.view)
    assert {v.id: v.parent for v in session.versions()} == {0: None, 1: 0, 2: 1, 3: 1, 4: 1}
    view = chat.emitter.last("history").history
    assert view is not None and view.session == session_id and view.current == 4
    nodes = {node.version: node for node in view.nodes}
    assert sorted(nodes) == [0, 1, 2, 3, 4]
    places = {(node.row, node.column) for node in nodes.values()}
    assert len(places) == 5  # no two versions on one place
    assert [nodes[n].column for n in range(5)] == [0, 1, 2, 2, 2]  # siblings: one step on
    assert nodes[2].row == nodes[1].row != nodes[3].row != nodes[4].row  # branches: lanes
    assert nodes[0].lines == ("the uploaded photo",)
    assert nodes[2].lines == ("the sky → make the sky a sunset", "the man → put a hat on the man")
    assert nodes[4].lines[0] == "retry of version 3 (new seed)"
    for node in nodes.values():
        assert max(_thumbnail(node).size) == min(version_buttons.THUMBNAIL_LONG_SIDE,
                                                  max(small_photo.size))
    turns = len(session.turns())
    for number in (2, 0, 3, 1, 4):  # each one click, from wherever the chat is
        before = session.current
        chat.controller.action("go", {"session": session_id, "version": number})
        assert session.current == number
        shown = chat.emitter.last("history")
        assert shown.history is not None and shown.history.current == number
        assert np.array_equal(np.asarray(shown.pictures[0].image),
                              np.asarray(session.image(number)))
        assert {p["version"] for p in buttons(shown).values()} == {number}
        last = session.turns()[-1]
        assert (last.kind, last.version_before, last.version_after) == ("go", before, number)
    assert len(session.turns()) == turns + 5 and len(session.versions()) == 5  # none deleted
    chat.controller.action("go", {"session": session_id, "version": 9})
    assert chat.emitter.last("error").text == NO_SUCH_VERSION and session.current == 4


def test_tree_layout_gives_each_branch_a_lane_that_crosses_no_other() -> None:
    """0 → 1 → 2 → 3, with branches 1 → 4 → 5 and 2 → 6 and 0 → 7: the first child keeps its
    parent's lane, each later one takes the next free lane below; a damaged tree (a cycle, a
    missing parent) still places every version once."""
    places = tree_layout({0: None, 1: 0, 2: 1, 3: 2, 4: 1, 5: 4, 6: 2, 7: 0})
    assert places == {0: (0, 0), 1: (0, 1), 2: (0, 2), 3: (0, 3), 6: (1, 3), 4: (2, 2),
                      5: (2, 3), 7: (3, 1)}
    assert tree_layout({0: None, 1: 2, 2: 1, 3: 9}) == {0: (0, 0), 3: (1, 0), 1: (2, 0),
                                                        2: (2, 1)}
    assert tree_layout({}) == {}


def test_moves_post_no_picture_and_change_the_one_history_element(
        chat: Chat, small_photo: Image.Image) -> None:
    """The issue's case: every Undo, Redo and Reset click posted a full picture, even
    "Nothing to redo."; now each click changes the picture's history element only."""
    chat.controller.message(TWO_EDITS, [upload(small_photo)])
    session_id = chat.controller.session_ids[0]
    assert [item.kind for item in chat.emitter.shown[-2:]] == ["pictures", "history"]
    assert chat.emitter.last("history").history.preview is None  # the result above is it
    chat.emitter.clear()
    clicks = [("undo", "Undone: back to version 0."), ("redo", "Redone: version 1."),
              ("redo", "Nothing to redo."), ("reset", "Back to the original image"),
              ("go", "Went to version 1 (from version 0)."), ("go", "Already at version 1.")]
    for name, said in clicks:
        chat.controller.action(name, {"session": session_id, "version": 1})
        assert chat.emitter.shown[-1].kind == "history" and said in chat.emitter.shown[-1].text
    assert [item.kind for item in chat.emitter.shown] == ["history"] * len(clicks)
    assert {item.history.session for item in chat.emitter.shown if item.history} == {session_id}


def test_compare_is_a_slider_between_any_two_versions(chat: Chat,
                                                      small_photo: Image.Image) -> None:
    chat.controller.message("make the sky a sunset", [upload(small_photo)])
    chat.controller.message(TWO_EDITS)
    session_id = chat.controller.session_ids[0]
    session = Session.open(session_id, chat.controller.settings.session_dir)
    chat.controller.action("compare", {"session": session_id, "version": 2})
    compare = chat.emitter.last("compare")
    assert compare.choices == ["version 1", "version 2"]  # by default, its parent
    chat.controller.action("compare", {"session": session_id, "version": 2, "against": 0})
    compare = chat.emitter.last("compare")
    assert compare.choices == ["version 0", "version 2"]
    assert np.array_equal(np.asarray(compare.pictures[0].image), np.asarray(session.image(0)))
    props = shown.compare_props(*compare.pictures, ("version 0", "version 2"))
    assert props["after"]["label"] == "version 2" and props["before"]["src"].startswith(
        "data:image/png;base64,")
    assert props["aspect"] == small_photo.width / small_photo.height
    for against in (7, "0", True, 1.5):
        chat.emitter.clear()
        chat.controller.action("compare", {"session": session_id, "version": 2,
                                           "against": against})
        assert [(item.kind, item.text) for item in chat.emitter.shown] == [
            ("error", NO_SUCH_VERSION)], against


def test_history_props_are_json_with_small_thumbnails(chat: Chat,
                                                      photo: Image.Image) -> None:
    """What the Chainlit element receives: JSON, thumbnails ≤ 96 px JPEG, the preview a PNG of
    at most 512 px (the 512 px photo: its exact pixels)."""
    chat.controller.message("make the sky a sunset", [upload(photo)])
    session_id = chat.controller.session_ids[0]
    chat.controller.action("undo", {"session": session_id})
    props = shown.history_props(chat.emitter.last("history").history)
    text = json.dumps(props)
    assert [node["version"] for node in props["nodes"]] == [0, 1]
    assert all(len(node["thumbnail"]) < 12_000 for node in props["nodes"])
    preview = Image.open(io.BytesIO(base64.b64decode(props["preview"]["src"].split(",")[1])))
    assert np.array_equal(np.asarray(preview), np.asarray(photo))
    assert {action["name"] for action in props["actions"]} >= {"undo", "redo", "compare"}
    assert len(text) < 600_000


@pytest.mark.parametrize("version", [99, -1, "1", 1.0, True, [1]])
def test_a_button_naming_a_version_the_session_lacks_is_refused(
        chat: Chat, small_photo: Image.Image, version: Any) -> None:
    chat.controller.message(TWO_EDITS, [upload(small_photo)])
    session_id = chat.controller.session_ids[0]
    for name in ("download", "compare", "masks"):
        chat.emitter.clear()
        chat.controller.action(name, {"session": session_id, "version": version})
        assert [(item.kind, item.text) for item in chat.emitter.shown] == [
            ("error", NO_SUCH_VERSION)], name


def test_two_chats_on_one_session_keep_their_own_places(settings: Settings,
                                                        small_photo: Image.Image) -> None:
    """The issue's case: A and C both edit version 0 (siblings 1 and 2); A's Undo goes from
    A's 1, A's Redo comes back to A's 1, and C is never moved."""
    session = Session.create(settings.session_dir, small_photo)
    a, c = make_chat(settings, session_ids=[session.id]), make_chat(settings,
                                                                  session_ids=[session.id])
    for window in (a, c):
        window.controller.reopen()  # each window shows version 0: its place from now on
    a.controller.message("make the sky a sunset")
    c.controller.message("make the sky a sunset")
    assert session.children(0) == [1, 2]
    a.controller.action("undo", {"session": session.id})
    assert "Undone: back to version 0" in a.emitter.last("history").text
    a.controller.action("redo", {"session": session.id})
    assert "Redone: version 1" in a.emitter.last("history").text
    c.controller.action("masks", {"session": session.id})
    assert "version 2" in c.emitter.last("pictures").text  # C is where C was
    c.controller.action("undo", {"session": session.id})
    assert "Undone: back to version 0" in c.emitter.last("history").text
    c.controller.action("redo", {"session": session.id})
    assert "Redone: version 2" in c.emitter.last("history").text
    a.controller.message("make the sky a sunset")  # A edits from its own 1
    assert session.version(3).parent == 1


def test_retry_makes_the_same_edit_with_a_new_seed_as_a_sibling(
        chat: Chat, small_photo: Image.Image) -> None:
    chat.controller.message(TWO_EDITS, [upload(small_photo)])
    edited = buttons(chat.emitter.last("pictures"))
    session = Session.open(edited["retry"]["session"], chat.controller.settings.session_dir)
    chat.controller.action("undo", edited["undo"])  # the chat moves away; Retry still means 1
    assert "retry" not in buttons(chat.emitter.last("history"))  # the upload: no edit to redo
    chat.emitter.clear()
    chat.controller.action("retry", edited["retry"])
    shown = chat.emitter.last("pictures")
    assert "Tried again with a new seed" in shown.text and "beside version 1" in shown.text
    assert buttons(shown)["retry"]["version"] == 2
    assert session.version(2).parent == 0 and session.children(0) == [1, 2]
    assert session.version(2).seed != session.version(1).seed
    assert session.version(2).provenance["retry_of"] == 1
    assert session.version(2).provenance["plan"] == session.version(1).provenance["plan"]
    for k in (0, 1):
        assert np.array_equal(session.mask(2, k), session.mask(1, k))
    assert chat.planner.calls == [TWO_EDITS]  # not planned or grounded again
    assert session.current == 2
    steps = chat.emitter.steps()
    assert set(steps) == {"Plan", "Editing", "Saving"} and all(s.done for s in steps.values())
    assert steps["Saving"].text == "Saved as version 2."
    chat.controller.action("retry", {"session": session.id, "version": 0})
    assert "nothing to try again" in chat.emitter.last("error").text
    assert len(session.versions()) == 3


def test_an_unknown_session_in_a_button_is_refused(chat: Chat) -> None:
    chat.controller.action("undo", {"session": "no-such-session"})
    assert chat.emitter.last("error").text == NOT_THIS_CHATS
    chat.controller.action("undo", {})
    assert chat.emitter.last("error").text == NOT_THIS_CHATS


def test_a_vanished_session_of_this_chat_is_explained(chat: Chat,
                                                      small_photo: Image.Image) -> None:
    chat.controller.message("", [upload(small_photo)])
    session_id = chat.controller.session_ids[0]
    shutil.rmtree(chat.controller.settings.session_dir / session_id)
    chat.controller.action("undo", {"session": session_id})
    assert "can't be opened" in chat.emitter.last("error").text


def test_earlier_sessions_are_offered_for_resuming(settings: Settings,
                                                  small_photo: Image.Image) -> None:
    earlier = Session.create(settings.session_dir, small_photo)
    chat = make_chat(settings)
    chat.controller.start()
    offer = chat.emitter.last("text")
    assert offer.actions and set(offer.actions[0].payload) == {"offer"}
    chat.controller.action("resume", offer.actions[0].payload)
    assert chat.controller.session_ids == [earlier.id]
    assert "Continuing session" in chat.emitter.last("pictures").text
    chat.controller.message("make the sky a sunset")
    assert Session.open(earlier.id, settings.session_dir).current == 1
    chat.controller.action("undo", buttons(chat.emitter.last("pictures"))["undo"])
    assert Session.open(earlier.id, settings.session_dir).current == 0


def test_a_damaged_session_is_not_offered_and_hides_no_other(settings: Settings,
                                                             small_photo: Image.Image) -> None:
    kept = Session.create(settings.session_dir, small_photo)
    damaged = Session.create(settings.session_dir, small_photo)
    (damaged.folder / "session.sqlite").write_bytes(b"not a database at all" * 100)
    chat = make_chat(settings)
    chat.controller.start()
    offers = chat.emitter.last("text").actions
    assert [action.label for action in offers] == [f"Continue {kept.id} (1 versions)"]
    assert not [shown for shown in chat.emitter.shown if shown.kind == "error"]


# ----- one chat can't reach another's sessions ----------------------------------------------


SESSION_BUTTONS = ("undo", "redo", "reset", "retry", "masks", "compare", "download",
                   "export", "add_to")


def test_a_second_chat_sending_the_first_chats_session_is_refused(
        settings: Settings, small_photo: Image.Image) -> None:
    first = make_chat(settings)
    first.controller.message(TWO_EDITS, [upload(small_photo)])
    payload = buttons(first.emitter.last("pictures"))["undo"]
    session = Session.open(payload["session"], settings.session_dir)
    before = (session.current, [version.id for version in session.versions()])

    second = make_chat(settings)
    for name in SESSION_BUTTONS:
        second.emitter.clear()
        second.controller.action(name, payload)
        assert [(item.kind, item.text) for item in second.emitter.shown] == [
            ("error", NOT_THIS_CHATS)], name
    for resume in ({"session": payload["session"]}, {"offer": payload["session"]}):
        second.emitter.clear()
        second.controller.action("resume", resume)
        assert [(item.kind, item.text) for item in second.emitter.shown] == [
            ("error", NOT_OFFERED)]
    assert second.controller.session_ids == []
    second.controller.message("make the sky a sunset")  # and no request reaches it either
    assert second.emitter.last("error").text == NEED_IMAGE

    session = Session.open(payload["session"], settings.session_dir)
    assert (session.current, [version.id for version in session.versions()]) == before
    assert not (settings.session_dir.parent / "exports").exists()
    assert not second.planner.calls
    first.controller.action("undo", payload)  # its own chat still may
    assert Session.open(payload["session"], settings.session_dir).current == 0


def test_the_welcome_offers_tokens_not_session_ids(settings: Settings,
                                                   small_photo: Image.Image) -> None:
    earlier = Session.create(settings.session_dir, small_photo)
    first, second = make_chat(settings), make_chat(settings)
    first.controller.start()
    second.controller.start()
    offer = first.emitter.last("text").actions[0].payload
    assert earlier.id not in str(offer)
    other = second.emitter.last("text").actions[0].payload
    assert other != offer  # each chat mints its own
    second.controller.action("resume", offer)  # another chat's offer is no offer here
    assert second.emitter.last("error").text == NOT_OFFERED
    assert second.controller.session_ids == []
    second.controller.action("undo", {"session": earlier.id})
    assert second.emitter.last("error").text == NOT_THIS_CHATS


def test_a_chat_reopened_with_its_sessions_continues_them(settings: Settings,
                                                          small_photo: Image.Image) -> None:
    earlier = Session.create(settings.session_dir, small_photo)
    emitter = RecordingEmitter()
    controller = ChatController(settings, emitter, session_ids=[earlier.id])
    controller.reopen()
    assert [item.kind for item in emitter.shown] == ["history"]  # no picture message of its own
    shown = emitter.last("history")
    assert "Continuing session" in shown.text and shown.pictures  # the version, with buttons
    controller.action("export", buttons(shown)["export"])
    assert emitter.last("file").path is not None


def test_a_reopened_chat_owns_every_session_and_starts_from_the_saved_place_in_a_view_of_its_own(
        settings: Settings, small_photo: Image.Image) -> None:
    """A chat with photo 1 then photo 2, reopened twice (a reload, the sidebar in another
    window): both windows act on photo 1's buttons, start where the chat left each picture,
    and then keep their own places."""
    first = make_chat(settings)
    first.controller.message("make the sky a sunset", [upload(small_photo)])
    photo1 = first.controller.session_ids[0]
    first.controller.message("make the sky a sunset")  # photo 1 at version 2
    first.controller.message("", [upload(small_photo.rotate(180))])
    photo2 = first.controller.session_ids[0]
    saved = (first.controller.session_ids, sorted(first.controller.own), first.controller.view)
    assert saved[0] == [photo2] and saved[1] == sorted([photo1, photo2])
    a, b = make_chat(settings), make_chat(settings)
    for window in (a, b):
        window.controller.carry_on(*saved)
        window.controller.reopen()
    assert a.controller.view != b.controller.view != first.controller.view
    a.controller.action("undo", {"session": photo1})  # photo 1's button, after the reopen
    assert "Undone: back to version 1" in a.emitter.last("history").text
    b.controller.action("undo", {"session": photo1})  # B is where the chat was, not where A is
    assert "Undone: back to version 1" in b.emitter.last("history").text
    a.controller.action("undo", {"session": photo1})
    assert "Undone: back to version 0" in a.emitter.last("history").text
    assert not [item for item in a.emitter.shown + b.emitter.shown if item.kind == "error"]


def test_a_window_that_only_looked_leaves_the_chat_at_the_place_a_turn_elsewhere_moved(
        settings: Settings, small_photo: Image.Image) -> None:
    """A reload while an edit runs: the new window copies the place before the edit moves it.
    Until it makes a request, the chat's saved place stays that of the window that edited, so
    the next reload shows the new version; after one, it is the new window's own."""
    first = make_chat(settings)
    first.controller.message("make the sky a sunset", [upload(small_photo)])
    photo = first.controller.session_ids[0]
    reloaded = make_chat(settings)
    reloaded.controller.carry_on([photo], [photo], first.controller.view)
    reloaded.controller.reopen()
    assert "at version 1" in reloaded.emitter.last("history").text
    first.controller.message("make the sky a sunset")  # the turn the page didn't see end
    assert reloaded.controller.saved_view == first.controller.view
    again = make_chat(settings)
    again.controller.carry_on([photo], [photo], reloaded.controller.saved_view)
    again.controller.reopen()
    assert "at version 2" in again.emitter.last("history").text
    reloaded.controller.action("undo", {"session": photo})  # it acts: its place is the chat's
    assert "Undone: back to version 0" in reloaded.emitter.last("history").text
    assert reloaded.controller.saved_view == reloaded.controller.view


def test_exports_are_readable_by_this_user_only(chat: Chat, small_photo: Image.Image) -> None:
    chat.controller.message("", [upload(small_photo)])
    session_id = chat.controller.session_ids[0]
    folder = chat.controller.settings.session_dir.parent / "exports"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)  # made open by someone else: the next export closes it
    chat.controller.action("export", {"session": session_id})
    export = chat.emitter.last("file").path
    assert export is not None and export.parent == folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(export.stat().st_mode) == 0o600
    chat.controller.action("export", {"session": session_id})  # again: replaced, still private
    assert [shown.path for shown in chat.emitter.shown if shown.kind == "file"] == [export] * 2
    assert stat.S_IMODE(export.stat().st_mode) == 0o600


# ----- batch --------------------------------------------------------------------------------


def test_several_uploads_are_one_batch_planned_once(chat: Chat, small_photo: Image.Image) -> None:
    photos = [upload(small_photo, "a.png"), upload(small_photo.rotate(90, expand=True), "b.png"),
              upload(small_photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "c.png")]
    chat.controller.message(TWO_EDITS, photos)
    assert chat.planner.calls == [TWO_EDITS]
    assert len(chat.controller.session_ids) == 3
    results = chat.emitter.of("pictures")
    assert [r.text.split(" · ")[0] for r in results] == ["**Image 1**", "**Image 2**",
                                                         "**Image 3**"]
    assert [buttons(r)["undo"]["session"] for r in results] == chat.controller.session_ids
    for session_id in chat.controller.session_ids:
        assert Session.open(session_id, chat.controller.settings.session_dir).current == 1
    titles = {step.title for step in chat.emitter.steps().values()}
    assert {"Image 1 · Plan", "Image 2 · Editing", "Image 3 · Grounding"} <= titles

    # A follow-up goes to the whole batch; Undo on one result moves only that picture.
    chat.controller.message("make the sky a sunset")
    assert chat.planner.calls == [TWO_EDITS, "make the sky a sunset"]
    chat.controller.action("undo", {"session": chat.controller.session_ids[1]})
    currents = [Session.open(i, chat.controller.settings.session_dir).current
                for i in chat.controller.session_ids]
    assert currents == [2, 1, 2]


def test_a_batch_with_a_bad_file_edits_the_good_ones(chat: Chat,
                                                     small_photo: Image.Image) -> None:
    chat.controller.message(TWO_EDITS, [upload(small_photo), Upload("x.png", data=b"junk"),
                                        upload(small_photo.rotate(180))])
    assert "x.png" in chat.emitter.last("error").text
    assert len(chat.emitter.of("pictures")) == 2


# ----- steps --------------------------------------------------------------------------------


def _updates(emitter: RecordingEmitter) -> list[StepUpdate]:
    return [item.step for item in emitter.of("step") if item.step]


def test_grounding_closes_with_its_masks_before_editing_and_saving_when_saved(
        chat: Chat, small_photo: Image.Image) -> None:
    chat.controller.message(TWO_EDITS, [upload(small_photo)])
    updates = _updates(chat.emitter)
    grounded = next(i for i, step in enumerate(updates) if step.title == "Grounding" and step.done)
    assert updates[grounded].pictures and "**the man**: found" in updates[grounded].text
    assert grounded < min(i for i, step in enumerate(updates) if step.title == "Editing")
    assert len([step for step in updates if step.title == "Grounding" and step.done]) == 1
    steps = chat.emitter.steps()
    assert steps["Saving"].done and steps["Saving"].text == "Saved as version 1."
    assert all(step.done and not step.failed for step in steps.values())


def test_every_open_step_closes_after_a_question(chat: Chat, small_photo: Image.Image) -> None:
    chat.controller.message("make the car red", [upload(small_photo)])
    assert chat.emitter.last("ask").choices
    steps = chat.emitter.steps()
    assert set(steps) == {"Plan", "Grounding"}
    assert all(step.done and not step.failed for step in steps.values())
    assert steps["Grounding"].text.endswith(turn_steps.STEP_ASKED)


# ----- failures -----------------------------------------------------------------------------


def _shown_as(markdown_text: str) -> str:
    """What a CommonMark renderer (with GitHub's tables and strikethrough) shows of the text."""
    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown_text)
    assert rendered.startswith("<p>") and rendered.count("<p>") == 1, rendered
    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip()


@pytest.mark.parametrize("text", [
    "planner llm:ollama:MODEL[@URL] is not running", "no <model> here", "my_photo_2 *copy*.png",
    "# 1. - item | cell ~~gone~~ `code` ![x](y) &copy; $x$ a\\b", "line one\nline two",
    "1. first", "2) second", "- dash", "+ plus", "> quote", "=== under", "---", "***", "___",
    "<b>bold</b>", "http://host/a_b_c"])
def test_markdown_escaping_shows_text_as_it_is(text: str) -> None:
    assert _shown_as(escape_markdown(text)) == " ".join(text.split())


def test_an_error_is_shown_as_written_and_says_what_to_do(settings: Settings,
                                                          small_photo: Image.Image) -> None:
    chat = make_chat(settings, FakeEngine(error=RuntimeError(
        "can't reach llm:ollama:MODEL[@URL] for <model> *now*")))
    chat.controller.message(TWO_EDITS, [upload(small_photo)])
    error = chat.emitter.last("error").text
    assert "can't reach llm:ollama:MODEL[@URL] for <model> *now*" in _shown_as(error)
    assert "try again" in error.lower()
    steps = chat.emitter.steps()
    assert all(step.done for step in steps.values())
    assert not steps["Grounding"].failed and steps["Grounding"].pictures  # that stage went well
    assert steps["Editing"].failed and steps["Editing"].text.endswith(turn_steps.STEP_FAILED)


def test_a_broken_upload_is_named_as_uploaded_and_its_request_answered(
        chat: Chat, tmp_path: Path) -> None:
    stored = tmp_path / "3f0c9a1e-5b7d-4c1e-9a43-0d2f6b8e7c11"  # how the server keeps an upload
    stored.write_bytes(b"GIF89a but not really")
    chat.controller.message("make the sky a sunset", [Upload("holiday_photo.png", path=stored)])
    error = chat.emitter.last("error").text
    shown = _shown_as(error)
    assert "holiday_photo.png" in shown and "not an image" in shown
    assert stored.name not in error and "Pillow" not in error
    assert "Attach a photo" in error
    reply = chat.emitter.last("text").text
    assert "didn't act on your request" in reply and "make the sky a sunset" in _shown_as(reply)
    assert not chat.planner.calls


def test_an_exception_inside_the_turn_is_reported_and_the_chat_goes_on(
        settings: Settings, small_photo: Image.Image) -> None:
    chat = make_chat(settings, FakeEngine(error=RuntimeError("the engine exploded")))
    chat.controller.message(TWO_EDITS, [upload(small_photo)])
    error = chat.emitter.last("error")
    assert "the engine exploded" in error.text and "Nothing was changed" in error.text
    assert all(step.done for step in chat.emitter.steps().values())
    session_id = chat.controller.session_ids[0]
    assert Session.open(session_id, settings.session_dir).current == 0
    chat.engine.error = None
    chat.controller.message(TWO_EDITS)
    assert chat.emitter.last("pictures").text.startswith("Done in one pass")


def test_an_exception_outside_the_editor_is_reported(settings: Settings,
                                                     small_photo: Image.Image) -> None:
    emitter = RecordingEmitter()

    def broken(chat_settings: Settings) -> Editor:
        raise RuntimeError("no editor today")

    controller = ChatController(settings, emitter, editor_factory=broken)
    controller.message(TWO_EDITS, [upload(small_photo)])
    assert "no editor today" in emitter.last("error").text
    assert all(step.done for step in emitter.steps().values())


def test_a_missing_model_is_explained_with_the_tiny_offer(
        settings: Settings, small_photo: Image.Image, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports, "missing_models", lambda settings: ["instruct-pix2pix"])
    chat = make_chat(settings, FakeEngine(error=MissingModelError(
        "Model 'instruct-pix2pix' is not on this machine; run `promptartisan models download`")))
    chat.controller.message(TWO_EDITS, [upload(small_photo)])
    error = chat.emitter.last("error")
    assert "promptartisan models download" in error.text and "use_tiny" in buttons(error)


def test_out_of_memory_is_a_friendly_message(settings: Settings,
                                             small_photo: Image.Image) -> None:
    import torch

    chat = make_chat(settings, FakeEngine(error=torch.OutOfMemoryError("CUDA out of memory")))
    chat.controller.message(TWO_EDITS, [upload(small_photo)])
    assert chat.emitter.last("error").text == OUT_OF_MEMORY


def test_bad_settings_are_refused_and_good_ones_apply(chat: Chat) -> None:
    chat.controller.update_settings({"steps": 0})
    assert "can't be used" in chat.emitter.last("error").text
    assert chat.controller.settings.steps == 3
    chat.controller.update_settings({"planner": "nonsense"})
    assert chat.controller.settings.planner == "rules"
    # A client can't make the server open a model file or contact a server of its choosing.
    for spec in ("llm:llamacpp:/etc/passwd", "llm:openai:gpt@http://127.0.0.1:9"):
        chat.controller.update_settings({"planner": spec})
        assert "the planner must be one of rules" in chat.emitter.last("error").text
        assert chat.controller.settings.planner == "rules"
    assert chat.controller.planner_choices == ["rules"]  # no local model's files here
    chat.controller.update_settings({"steps": 12.0, "guidance_scale": 5, "seed": "42",
                                     "preserve_background": False, "grounding_backend": "clipseg",
                                     "image_guidance_scale": 1.2})
    updated = chat.controller.settings
    assert (updated.steps, updated.guidance_scale, updated.seed, updated.preserve_background,
            updated.grounding_backend) == (12, 5.0, 42, False, "clipseg")
    assert chat.emitter.last("text").text == (
        "Settings updated: steps 12, text guidance 5, image guidance 1.2, seed 42, keep the "
        "background off, planner rules, grounding clipseg.")
    chat.controller.update_settings({"seed": ""})
    assert chat.controller.settings.seed is None
    assert "seed random," in chat.emitter.last("text").text  # not Python's None
    shown = len(chat.emitter.shown)
    chat.controller.update_settings({"seed": "7"}, announce=False)  # a reopened chat's own
    assert chat.controller.settings.seed == 7 and len(chat.emitter.shown) == shown


# ----- stop and busy ------------------------------------------------------------------------


def test_stop_ends_the_turn_and_changes_nothing(settings: Settings,
                                               small_photo: Image.Image) -> None:
    chat = make_chat(settings, FakeEngine(hold=True))
    chat.controller.message("", [upload(small_photo)])
    turn = threading.Thread(target=chat.controller.message, args=(TWO_EDITS,))
    turn.start()
    assert chat.engine.editing.wait(10), "the turn never reached the engine"
    chat.controller.message("make the sky a sunset")  # while busy: refused, politely
    assert chat.emitter.last("text").text == BUSY
    chat.controller.action("compare", {"session": chat.controller.session_ids[0]})
    assert "nothing to compare" in chat.emitter.last("text").text  # looking works meanwhile
    chat.controller.stop()
    turn.join(10)
    assert not turn.is_alive()
    assert chat.emitter.last("text").text == STOPPED
    steps = chat.emitter.steps()
    assert steps["Editing"].failed and steps["Editing"].text.endswith(turn_steps.STEP_STOPPED)
    assert all(step.done for step in steps.values())
    session = Session.open(chat.controller.session_ids[0], settings.session_dir)
    assert session.current == 0 and len(session.versions()) == 1
    chat.engine.hold = False
    chat.controller.message(TWO_EDITS)  # the next request runs normally
    assert session.current == 1


# ----- the real Editor with the tiny models -------------------------------------------------


def test_a_turn_through_the_real_editor_and_tiny_models(tiny_settings: Settings,
                                                        small_photo: Image.Image) -> None:
    emitter = RecordingEmitter()
    controller = ChatController(tiny_settings.model_copy(update={"working_size": 64}), emitter)
    controller.message("make it look like a painting", [upload(small_photo)])
    assert not emitter.of("error"), emitter.of("error")
    result = emitter.last("pictures")
    assert result.text.startswith("Done in one pass") and result.pictures[0].image.size == \
        small_photo.size
    steps = emitter.steps()
    assert "painting" in steps["Plan"].text and steps["Grounding"].pictures
    controller.action("undo", buttons(result)["undo"])
    assert "Undone" in emitter.last("history").text


def test_the_panel_offers_the_local_model_when_its_files_are_here(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers.models, "cached", lambda s: [
        {"name": "planner", "present": True}, {"name": "sam", "present": False}])
    assert handlers.panel_planners(settings) == ["rules", "local"]
    chat = make_chat(settings, FakeEngine())
    chat.controller.update_settings({"planner": "local"})
    assert chat.controller.settings.planner == "local"
    monkeypatch.setattr(handlers.models, "cached", lambda s: [
        {"name": "planner", "present": False}])
    assert handlers.panel_planners(settings.model_copy(update={"planner": "auto"})) == [
        "auto", "rules"]


@pytest.mark.parametrize(("score", "shown"), [
    (-0.0001, "a weak guess (match 0%)"), (0.1, "a weak guess (match 10%)"),
    (0.874, "found (match 87%)"), (1.0, "found (match 100%)"), (None, "found")])
def test_a_grounding_score_reads_as_a_share_not_a_signed_number(score: float | None,
                                                                shown: str) -> None:
    from types import SimpleNamespace

    from promptartisan.ui.turn_steps import found_text

    assert found_text(SimpleNamespace(score=score)) == shown

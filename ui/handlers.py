"""The chat's behaviour without the web framework: one `ChatController` per chat turns UI events
(a message with files, a button click, a settings change, the stop button) into calls on the
agent's Editor and Session, and tells an `Emitter` what to show.

Nothing here edits pictures: the agent plans, grounds, edits and keeps the history; this module
only decides what the person sees, so it can be tested without a browser.

A chat acts only on the sessions it created or was given through the app: a button's session id
counts only if it is one of this chat's own, and the welcome's offers to continue earlier
sessions carry a random token this chat minted, not the id. A client can send any payload; it
can't make another chat's picture its own.

Each chat is its own view of a session (`Session.in_view`): several windows on one picture each
keep their own place in its history. A button acts on the version it sits under (its payload's
`version`); Undo, Redo and Reset move from the version this chat is on.

Each picture has one history element in the chat: its version tree as thumbnails, where this
chat is marked; a click on a version goes there. It follows the newest result to the bottom of
the chat, and a move (undo, redo, reset, go) changes it in place: the version moved to is shown
in it, with its buttons, and no new picture is posted.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from promptartisan import models
from promptartisan.settings import Settings
from promptartisan.tools.images import InvalidImageError, load_image
from promptartisan.ui.history import describe, tree_layout
from promptartisan.ui.render import data_url
from promptartisan.ui.render import escape_markdown as md
from promptartisan.ui.selection_view import (
    ACTIONS as SELECTION_ACTIONS,
)
from promptartisan.ui.selection_view import (
    SELECT,
    SELECTION,
    SelectionDesk,
    default_selector,
)

log = logging.getLogger(__name__)

# Seconds a new request waits for a stopped turn to wind down before saying "busy".
STOP_GRACE_S = 60.0
RESUME_OFFERS = 3
THUMBNAIL_LONG_SIDE = 96  # the history element's thumbnails (JPEG data URLs, ~6 kB each)
PREVIEW_LONG_SIDE = 512  # the version a move went to, in the history element (PNG)
COMPARE_LONG_SIDE = 768  # each side of the compare slider (PNG): wider than the chat column
HUB_HOST = ("huggingface.co", 443)

STAGE_TITLES = {
    "planning": "Plan",
    "grounding": "Grounding",
    "editing": "Editing",
    "saving": "Saving",
}

# What a step still open says when the turn ends without an edit.
STEP_ASKED = "Stopped here to ask a question (below)."
STEP_STOPPED = "Stopped."
STEP_FAILED = "Failed (the reason is below)."

# What the plan step says when the request makes no edit.
PLANS_WITHOUT_EDITS = {
    "clarify": "Not clear enough to edit yet: asking a question first.",
    "chat": "Nothing to edit: a reply.",
    "undo": "Undo.",
    "redo": "Redo.",
    "reset": "Back to the original.",
    "goto": "Going to the version you described.",
    "forget": "Taking back an earlier instruction, keeping the rest.",
}

# Settings the chat's settings panel may change, with how to read the panel's value.
PANEL_SETTINGS: dict[str, Callable[[Any], Any]] = {
    "steps": lambda value: int(float(value)),
    "guidance_scale": float,
    "image_guidance_scale": float,
    "seed": lambda value: None if str(value).strip() in ("", "None") else int(str(value)),
    "preserve_background": bool,
    "planner": lambda value: str(value).strip(),
    "grounding_backend": str,
}

WELCOME = (
    "**Welcome to PromptArtisan.** Attach a photo with the paperclip button (or drop it here) "
    "and say what to change, in plain words — several edits in one message are fine:\n\n"
    "> *make the sky a sunset, turn the dog into a cheetah and put a hat on the man*\n\n"
    "I'll show what I understood (the plan), where each edit goes (the masks), and the result. "
    "Then refine with more messages, or use **Undo**, **Redo**, **Reset** and **Compare** under "
    "each result; the history under the newest one takes you to any version in a click. "
    "Attach several photos with one request to edit them all the same way. "
    "Tune steps, guidance and the seed with the settings (gear) button."
)
NEED_IMAGE = (
    "First attach a photo (the paperclip button, or drop it into the chat), with or without a "
    "request. Then tell me what to change."
)
BUSY = "I'm still working on the previous request: wait for it, or press the stop button."
STOPPED = "Stopped. Nothing was changed; the picture is as it was before this request."
OUT_OF_MEMORY = (
    "Ran out of memory on this request. Try fewer edits at once, fewer steps in the settings "
    "panel, or a smaller picture. Nothing was changed, and the chat goes on."
)
NEW_SESSION = "A new photo: it starts a history of its own."
TRY_AGAIN = "Every version so far is kept; try again, or rephrase the request."
NOT_THIS_CHATS = (
    "That button belongs to a picture this chat didn't open, so nothing was done. Attach a "
    "photo, or continue an earlier session from a new chat's welcome."
)
NOT_OFFERED = "That offer to continue a session isn't one this chat made, so nothing was done."
NO_SUCH_VERSION = "That button names a version this picture's history doesn't have, so nothing " \
    "was done."
HISTORY = "Every version of this picture: click one to go there (nothing is deleted)."
TINY_NOTE = (
    "Switched this chat to the **tiny demo models**: they run anywhere in seconds, but their "
    "weights are random, so results are colourful noise. They show how the chat works, not "
    "what the real models can do."
)


@dataclass(frozen=True)
class ActionButton:
    """A button under a message; a click comes back as `ChatController.action(name, payload)`."""

    name: str
    label: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Picture:
    """An image to show, with the file name the browser offers when it is saved."""

    name: str
    image: Image.Image
    # Numbered boxes on it (x0, y0, x1, y1 in its pixels) a click chooses: the candidates of
    # a "which one?" question, box k answering the question's choice k.
    boxes: tuple[tuple[float, float, float, float], ...] = ()


@dataclass(frozen=True)
class StepUpdate:
    """The state of one visible step of a turn (plan, grounding, editing). The first update with
    a `key` opens the step; later ones replace its text (and add `pictures`); `done` closes it."""

    key: str
    title: str
    text: str
    pictures: tuple[Picture, ...] = ()
    done: bool = False
    failed: bool = False


@dataclass(frozen=True)
class HistoryNode:
    """One version in the history element: where it sits in the tree (`row`: its branch's
    lane, `column`: steps from the upload), its thumbnail and what made it."""

    version: int
    parent: int | None
    row: int
    column: int
    thumbnail: str  # a data: URL
    lines: tuple[str, ...]


@dataclass(frozen=True)
class HistoryView:
    """A picture's history element as this chat sees it. After a move, `preview` is the
    version moved to and `actions` are its buttons (no other picture shows it); after an
    edit the result above is that version, and both are empty."""

    session: str
    current: int
    caption: str
    nodes: tuple[HistoryNode, ...]
    preview: Picture | None = None
    actions: tuple[ActionButton, ...] = ()


@dataclass(frozen=True)
class Upload:
    """A file the person attached: a path on the server or its bytes."""

    name: str
    path: Path | None = None
    data: bytes | None = None


class Emitter(Protocol):
    """What the controller can show. Each call is one visible change in the chat."""

    def text(self, text: str, actions: Sequence[ActionButton] = ()) -> None: ...

    def pictures(self, text: str, pictures: Sequence[Picture],
                 actions: Sequence[ActionButton] = ()) -> None: ...

    def file(self, text: str, path: Path, name: str) -> None: ...

    def ask(self, question: str, choices: Sequence[str],
            pictures: Sequence[Picture] = ()) -> None: ...

    def step(self, update: StepUpdate) -> None: ...

    def error(self, text: str, actions: Sequence[ActionButton] = ()) -> None: ...

    def history(self, view: HistoryView) -> None:
        """Show the picture's history element, or change the one shown (one per picture)."""
        ...

    def compare(self, text: str, before: Picture, after: Picture,
                labels: tuple[str, str]) -> None:
        """A before/after slider between two versions, each with its label."""
        ...

    def canvas(self, text: str, props: dict[str, Any]) -> None:
        """A selection canvas (ui/selection_view.py makes its props)."""
        ...


class EditorLike(Protocol):
    def turn(self, session: Any, text: str, image: Any = None, mask: Any = None,
             plan: Any = None, on_event: Any = None, cancel: Any = None) -> Any: ...

    def retry(self, session: Any, version: int, on_event: Any = None,
              cancel: Any = None) -> Any: ...


def default_editor(settings: Settings) -> EditorLike:
    from promptartisan.agent.editor import Editor

    return Editor(settings)


def default_sessions() -> Any:
    from promptartisan.agent.sessions.store import Session

    return Session


def export_dir(settings: Settings) -> Path:
    """Where the chat writes session exports: beside the sessions, readable by this user only
    (the folder 0700, each file 0600)."""
    folder = settings.session_dir.expanduser().resolve().parent / "exports"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


def required_models(settings: Settings) -> list[str]:
    """The models an edit needs with these settings: the engine and the grounding backend."""
    grounding = settings.resolved_grounding_backend()
    return ["instruct-pix2pix", *(["clipseg"] if grounding == "clipseg"
                                  else ["groundingdino", "sam"])]


def missing_models(settings: Settings) -> list[str]:
    """Required models that are neither a local folder nor in the Hugging Face cache."""
    if settings.tiny:
        return []
    present = {row["name"] for row in models.cached(settings) if row["present"]}
    return [name for name in required_models(settings) if name not in present]


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether models could be downloaded now (offline mode counts as no)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def panel_planners(settings: Settings) -> list[str]:
    """The planners the settings panel offers: the one the server was started with, the
    offline rules planner, and the in-process language model when its files are on this
    machine (it opens no file and contacts no server a client could choose)."""
    local = settings.tiny or any(row["name"] == "planner" and row["present"]
                                 for row in models.cached(settings))
    return list(dict.fromkeys([settings.planner, "rules", *(["local"] if local else [])]))


class ChatController:
    """One chat: its settings, its editor, and the sessions (one per picture) it works on.

    Every method is synchronous and may block for minutes (a turn runs the diffusion model), so
    the web adapter calls them from a worker thread. `stop` may be called from any thread.
    """

    def __init__(self, settings: Settings, emitter: Emitter,
                 editor_factory: Callable[[Settings], EditorLike] = default_editor,
                 sessions: Any = None, session_ids: Sequence[str] = (),
                 selector_factory: Callable[[Settings], Any] = default_selector) -> None:
        self.settings = settings
        self.emitter = emitter
        self._editor_factory = editor_factory
        self._editor: EditorLike | None = None
        self._sessions = sessions if sessions is not None else default_sessions()
        self.session_ids: list[str] = list(session_ids)  # the pictures requests go to
        self._own: set[str] = set(session_ids)  # every session this chat created or was given
        self._offers: dict[str, str] = {}  # resume token -> the earlier session it continues
        self.view = secrets.token_hex(8)  # this chat's own place in each session's history
        # A client picks among the planners the server was started with, never a file or URL
        # of its own (an llm: spec makes the server open a model file or contact a server).
        self.planner_choices = panel_planners(settings)
        self._cancel = threading.Event()
        self._busy = threading.Lock()
        self._thumbnails: dict[tuple[str, int], str] = {}  # versions never change
        self.selection = SelectionDesk(self, selector_factory)  # canvases and mask offers

    # ----- events -------------------------------------------------------------------------

    def start(self) -> None:
        """The welcome: what to do, whether the models are here, and earlier chats to resume."""
        from promptartisan.agent.planning.auto_planner import forget_choices

        forget_choices()  # a new chat's planner = "auto" looks again (a server started since)
        self.emitter.text(WELCOME)
        self._report_models()
        from promptartisan.agent.sessions.store import SessionError

        try:
            listed = self._sessions.list(self.settings.session_dir)
        except SessionError as exc:  # an unreadable sessions folder still gets a welcome
            self.emitter.error(f"Earlier chats can't be listed: {md(str(exc))}")
            listed = []
        earlier = [info for info in listed if not info.damaged][-RESUME_OFFERS:]
        if earlier and not self.session_ids:
            buttons = [ActionButton("resume", f"Continue {info.id} ({info.versions} versions)",
                                    {"offer": self._offer(info.id)}) for info in reversed(earlier)]
            self.emitter.text("Or continue where you left off:", buttons)

    def reopen(self) -> None:
        """A chat reopened from its saved thread: show its first picture as it is now."""
        if self.session_ids:
            self._on_session(self._resume, self.session_ids[0])

    def message(self, text: str, uploads: Sequence[Upload] = ()) -> None:
        """A message from the person: maybe new pictures, maybe a request, maybe both."""
        if not self._acquire():
            return
        try:
            self._message(text.strip(), uploads)
        finally:
            self._busy.release()

    def action(self, name: str, payload: dict[str, Any]) -> None:
        """A click on one of the buttons this controller made."""
        if name == "answer":
            answer = str(payload.get("text", ""))
            self.emitter.text(f"*Your answer: {answer}*")  # the click, in the conversation
            self.message(answer)
            return
        if name == "use_tiny":
            self.use_tiny()
            return
        if name in SELECTION_ACTIONS and name not in (SELECT, SELECTION):  # a mask offer
            self.selection.take_offer(name, payload)
            return
        if name == "add_to":
            into = self._owned({"session": payload.get("into")})
            if into is not None and self._owned(payload) is not None and self._acquire():
                try:
                    self._on_session(lambda s: self._add_to(s, into), str(payload["session"]))
                finally:
                    self._busy.release()
            return
        # Each handler gets the session and the version its button sits under.
        changes: dict[str, Callable[[Any, int], None]] = {
            "undo": lambda s, v: self._move(s, "undo"),
            "redo": lambda s, v: self._move(s, "redo"),
            "reset": lambda s, v: self._move(s, "reset"),
            "go": self._go,
            "retry": self._retry,
            "resume": lambda s, v: self._resume(s),
        }
        views: dict[str, Callable[[Any, int], None]] = {
            "masks": self._show_masks,
            "compare": lambda s, v: self._compare(s, v, payload.get("against")),
            "download": self._download,
            "export": lambda s, v: self._export(s),
            SELECT: self.selection.open,
        }
        if name not in views and name not in changes:
            self.emitter.error(f"Unknown action {md(repr(name))}.")
            return
        # Resume names its session by an offer token; every other button by this chat's own id.
        session_id = self._offered(payload) if name == "resume" else self._owned(payload)
        if session_id is None:
            return
        version = payload.get("version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            self.emitter.error(NO_SUCH_VERSION)
            return
        if name in views:  # reading only: works even while a turn runs
            self._on_version(views[name], session_id, version)
        elif self._acquire():
            try:
                self._on_version(changes[name], session_id, version)
            finally:
                self._busy.release()

    def _owned(self, payload: dict[str, Any]) -> str | None:
        """The payload's session if it is one of this chat's; else None, and the person told."""
        session_id = str(payload.get("session", ""))
        if session_id in self._own:
            return session_id
        log.warning("refused a button for session %r, not one of this chat's", session_id)
        self.emitter.error(NOT_THIS_CHATS)
        return None

    def _offered(self, payload: dict[str, Any]) -> str | None:
        """The session an offer token of this chat's welcome stands for; else None, and told."""
        session_id = self._offers.get(str(payload.get("offer", "")))
        if session_id is None:
            self.emitter.error(NOT_OFFERED)
        return session_id

    def _offer(self, session_id: str) -> str:
        token = secrets.token_urlsafe(16)
        self._offers[token] = session_id
        return token

    def _on_session(self, handler: Callable[[Any], None], session_id: str) -> None:
        try:
            session = self._open(session_id)
            if session is not None:
                handler(session)
        except Exception as exc:  # any failure becomes a message; the chat goes on
            self._report_exception(exc)

    def _on_version(self, handler: Callable[[Any, int], None], session_id: str,
                    version: int | None) -> None:
        """`handler(session, version)`: the button's version, or where this chat is when the
        button names none; a version the session doesn't have is refused."""

        def run(session: Any) -> None:
            number = session.current if version is None else version
            if not any(v.id == number for v in session.versions()):
                self.emitter.error(NO_SUCH_VERSION)
                return
            handler(session, number)

        self._on_session(run, session_id)

    def update_settings(self, values: dict[str, Any], announce: bool = True) -> None:
        """Values from the settings panel; they apply from the next request on. A reopened
        chat restores its own without `announce`: they are not news to the person."""
        changes = {}
        try:
            for name, value in values.items():
                if name in PANEL_SETTINGS:
                    changes[name] = PANEL_SETTINGS[name](value)
            if changes.get("planner", self.settings.planner) not in self.planner_choices:
                raise ValueError(f"the planner must be one of {', '.join(self.planner_choices)}")
            updated = Settings.model_validate({**self.settings.model_dump(), **changes})
            if updated.planner != self.settings.planner:
                from promptartisan.agent.planning.planners import load_planner

                load_planner(updated.planner, updated)
        except (ValueError, TypeError) as exc:
            self.emitter.error(f"Those settings can't be used: {md(str(exc))}. The previous ones "
                               "stay; change the value and try again.")
            return
        if updated != self.settings:
            self.settings = updated
            self._editor = None
            if announce:
                shown = ", ".join(f"{name} = {getattr(updated, name)}" for name in PANEL_SETTINGS)
                self.emitter.text(f"Settings updated: {shown}.")

    def use_tiny(self) -> None:
        """Go on with the tiny demo models (when the real ones are missing)."""
        self.settings = self.settings.model_copy(update={"tiny": True})
        self._editor = None
        self.emitter.text(TINY_NOTE)

    def stop(self) -> None:
        """The stop button: the running turn ends after its current step."""
        self._cancel.set()

    # ----- messages -----------------------------------------------------------------------

    def _acquire(self) -> bool:
        """One request at a time; a request right after a stop waits for the stopped one."""
        if self._busy.acquire(timeout=STOP_GRACE_S if self._cancel.is_set() else 0):
            self._cancel.clear()
            return True
        self.emitter.text(BUSY)
        return False

    def _message(self, text: str, uploads: Sequence[Upload]) -> None:
        images = self._read_uploads(uploads)
        if uploads and not images:
            if text:
                self.emitter.text(f"So I didn't act on your request (“{md(text)}”): send it "
                                  "again with a photo that opens.")
            return
        # A new photo starts a session of its own, so Reset never jumps to another picture; in
        # a one-picture chat a button adds it to the earlier picture's history instead.
        earlier = self.session_ids[0] if len(images) == 1 and len(self.session_ids) == 1 \
            else None
        if images:
            try:
                sessions = [self._sessions.create(self.settings.session_dir, image,
                                                  max_pixels=self.settings.max_pixels
                                                  ).in_view(self.view) for image in images]
            except Exception as exc:  # a full disk, an unwritable folder: say so, go on
                self._report_exception(exc)
                return
            self.session_ids = [session.id for session in sessions]
            self._own.update(self.session_ids)
            offer = [ActionButton("add_to", "Add it to the earlier picture's history instead",
                                  {"session": sessions[0].id, "into": earlier})] \
                if earlier is not None else []
            if not text:
                what = "this photo" if len(sessions) == 1 else f"these {len(sessions)} photos"
                point = [ActionButton(SELECT, "Select on the picture",
                                      {"session": sessions[0].id, "version": 0})]
                self.emitter.text(f"Got {what}. What should I change?", [*point, *offer])
                self.selection.prepare(images[0])
                return
            if earlier is not None:  # a black-and-white upload may be the earlier one's mask
                into = self._open(earlier)
                if into is not None and self.selection.offer_mask(sessions[0], into, text):
                    return
            if offer:
                self.emitter.text(NEW_SESSION, offer)
        if not text:
            return
        if not self.session_ids:
            self.emitter.error(NEED_IMAGE)
            return
        sessions = [s for s in (self._open(i) for i in self.session_ids) if s is not None]
        if sessions:
            self._run_turns(text, sessions)

    def _read_uploads(self, uploads: Sequence[Upload]) -> list[Image.Image]:
        """The readable uploads as pictures; each unreadable one gets its own message, naming
        the file as the person uploaded it (the server's copy has a name of its own)."""
        images = []
        for upload in uploads:
            try:
                source = upload.path if upload.path is not None else upload.data
                images.append(load_image(source, self.settings.max_pixels))  # type: ignore[arg-type]
            except InvalidImageError as exc:
                stored = f"{upload.path.name}: " if upload.path is not None else "image: "
                reason = str(exc).removeprefix(stored)
                self.emitter.error(f"I can't use **{md(upload.name)}**: {md(reason)}. Attach a "
                                   "photo (PNG, JPEG, WebP…) instead.")
        return images

    def _run_turns(self, text: str, sessions: list[Any]) -> None:
        """The request on the first picture; in a batch its plan then goes unchanged to every
        other picture, so one request is planned once. An answer goes to the picture that
        asked."""
        batch = len(sessions) > 1
        labels = [f"Image {number}" if batch else "" for number in range(1, len(sessions) + 1)]
        asking = next((i for i, s in enumerate(sessions) if s.pending is not None), 0)
        first = self._turn(sessions[asking], text, label=labels[asking])
        if asking != 0 or first is None or first.kind not in ("edit", "undo", "redo", "reset",
                                                                    "goto", "forget"):
            return
        for session, label in zip(sessions[1:], labels[1:], strict=True):
            if self._cancel.is_set():
                self.emitter.text(STOPPED)
                return
            result = self._turn(session, text, plan=first.plan, label=label)
            if result is None or result.kind == "cancelled":
                return

    def _turn(self, session: Any, text: str, plan: Any = None, image: Image.Image | None = None,
              label: str = "", mask: Any = None) -> Any:
        """One Editor turn with its steps shown as they happen, then its result. The
        selections on the version the chat is on go with it (and are used up by an edit)."""
        selections = self.selection.masks(session) if mask is None else {}
        extra = {"selections": selections} if selections else {}
        result = self._shown(session, label, lambda editor, progress: editor.turn(
            session, text, image=image, plan=plan, mask=mask, on_event=progress.event,
            cancel=self._cancel, **extra))
        if selections and result is not None:
            self.selection.used(session, result)
        return result

    def selection_turn(self, session_id: str, text: str, plan: Any = None,
                       mask: Any = None) -> Any:
        """A request from a canvas or a mask offer, on one of this chat's sessions; None when
        busy or the session can't be opened."""
        if not self._acquire():
            return None
        try:
            session = self._open(session_id)
            return None if session is None else self._turn(session, text, plan=plan, mask=mask)
        finally:
            self._busy.release()

    def _shown(self, session: Any, label: str,
               run: Callable[[EditorLike, TurnProgress], Any]) -> Any:
        """`run(editor, progress)` with its steps shown as they happen, then its result."""
        progress = TurnProgress(self.emitter, label)
        try:
            result = run(self._get_editor(), progress)
        except Exception as exc:  # any failure becomes a message; the chat goes on
            progress.close(STEP_FAILED, failed=True)
            self._report_exception(exc)
            return None
        progress.finish(result)
        self._show_result(session, result, label)
        return result

    def _show_result(self, session: Any, result: Any, label: str) -> None:
        prefix = f"**{label}** · " if label else ""
        if result.kind == "clarify":
            boxes = tuple(tuple(float(v) for v in box) for grounding in result.groundings[:1]
                          for box in grounding.candidates)
            # Boxes to click are drawn by the page, on the picture itself.
            shown = session.image(session.current) if boxes else result.overlay
            candidates = [Picture("candidates.png", shown, boxes)] if shown is not None else []
            self.emitter.ask(prefix + result.message, list(result.choices or []), candidates)
            pending = session.pending
            if pending is not None and pending.kind == "locate":  # "where is it?": point at it
                self.selection.open(session, answering=True)
        elif result.kind == "chat":
            self.emitter.text(prefix + result.message)
        elif result.kind == "error":
            self._report_failed_turn(prefix + md(result.message), result.error)
        elif result.kind == "cancelled":
            self.emitter.text(prefix + STOPPED)
        elif result.kind in ("undo", "redo", "reset", "goto"):
            self._show_history(session, prefix + result.message, moved=True)
        else:
            self._show_version(session, prefix + result.message, result.image,
                               result.version_id)

    def _show_version(self, session: Any, text: str, image: Image.Image | None = None,
                      version: int | None = None) -> None:
        """A version (default: where this chat is) inline, with the history and export
        buttons."""
        version = session.current if version is None else version
        image = image if image is not None else session.image(version)
        self.emitter.pictures(text, [Picture(f"{session.id}-v{version:04d}.png", image)],
                              history_buttons(session.id, version,
                                              retry=bool(session.regions(version))))
        self.selection.prepare(image)
        self._show_history(session, HISTORY)

    def _show_history(self, session: Any, caption: str, moved: bool = False) -> None:
        """The picture's history element; after a move, with the version moved to."""
        versions = session.versions()
        places = tree_layout({v.id: v.parent for v in versions})
        nodes = tuple(HistoryNode(v.id, v.parent, *places[v.id], self._thumbnail(session, v.id),
                                  tuple(describe(v.provenance, session.regions(v.id))))
                      for v in versions)
        current = session.current
        preview = Picture(f"{session.id}-v{current:04d}.png", session.image(current)) \
            if moved else None
        if preview is not None:
            self.selection.prepare(preview.image)
        actions = tuple(history_buttons(session.id, current,
                                        retry=bool(session.regions(current)))) if moved else ()
        self.emitter.history(HistoryView(session.id, current, caption, nodes, preview, actions))

    def _thumbnail(self, session: Any, version: int) -> str:
        key = (session.id, version)
        if key not in self._thumbnails:
            self._thumbnails[key] = data_url(session.image(version), THUMBNAIL_LONG_SIDE,
                                             lossless=False)
        return self._thumbnails[key]

    # ----- buttons ------------------------------------------------------------------------

    def _move(self, session: Any, kind: str) -> None:
        from promptartisan.agent.planning.plan import Plan

        result = self._get_editor().turn(session, kind, plan=Plan(action=kind),
                                         cancel=self._cancel)
        self._show_result(session, result, "")

    def _go(self, session: Any, version: int) -> None:
        """A click on a version in the history element: go there, recorded like undo."""
        moved = session.go(version)
        self._show_history(session, moved.message, moved=True)

    def _retry(self, session: Any, version: int) -> None:
        """The edit that made `version` again with a new seed, as a sibling of it."""
        self._shown(session, "", lambda editor, progress: editor.retry(
            session, version, on_event=progress.event, cancel=self._cancel))

    def _show_masks(self, session: Any, version: int) -> None:
        regions = session.regions(version)
        if not regions:
            self.emitter.text(f"Version {version} was not made by an edit, so it has no masks.")
            return
        from promptartisan.tools import Grounding, overlay

        groundings = [Grounding(mask=session.mask(version, region["k"]),
                                score=region["score"] if region["score"] is not None else 1.0,
                                boxes=np.asarray(region["boxes"], dtype=float).reshape(-1, 4),
                                label=region["target"], group=region["group"])
                      for region in regions]
        base = session.image(session.version(version).parent)
        picture = overlay(base, groundings, labels=[region["target"] for region in regions])
        listing = "\n".join(f"{i}. **{region['target']}** — {region['prompt']}"
                            for i, region in enumerate(regions, start=1))
        self.emitter.pictures(f"Where each edit of version {version} went:\n\n{listing}",
                              [Picture(f"{session.id}-v{version:04d}-masks.png", picture)])

    def _compare(self, session: Any, number: int, against: Any = None) -> None:
        """A slider between version `number` and `against` (default: its parent)."""
        if against is None:
            against = session.version(number).parent
            if against is None:
                self.emitter.text("This is the original picture; there is nothing to compare "
                                  "yet.")
                return
        elif isinstance(against, bool) or not isinstance(against, int) \
                or not any(v.id == against for v in session.versions()):
            self.emitter.error(NO_SUCH_VERSION)
            return
        self.emitter.compare(
            f"Version {against} → version {number}: drag the divider (or use the slider under "
            "it) to reveal one over the other.",
            Picture(f"{session.id}-v{against:04d}.png", session.image(against)),
            Picture(f"{session.id}-v{number:04d}.png", session.image(number)),
            (f"version {against}", f"version {number}"))

    def _download(self, session: Any, number: int) -> None:
        version = session.version(number)
        self.emitter.file(f"Version {version.id} as PNG:", version.file,
                          f"{session.id}-v{version.id:04d}.png")

    def _export(self, session: Any) -> None:
        # Replaces this session's earlier export: the folder is the chat's own.
        out = session.export(export_dir(self.settings) / f"{session.id}.zip", force=True)
        out.chmod(0o600)
        self.emitter.file("The whole session — every version, its masks and how it was made:",
                          out, out.name)

    def _add_to(self, photo: Any, into_id: str) -> None:
        """The photo that started session `photo` becomes a new version of the earlier
        picture's history (from where this chat is in it), and the chat goes on there."""
        into = self._open(into_id)
        if into is None:
            return
        added = next((v.id for v in into.versions()
                      if v.provenance.get("added_from") == photo.id), None)
        if added is None:
            image = photo.image(0)
            added = into.add_version(image, [], {"kind": "upload", "size": list(image.size),
                                                 "added_from": photo.id},
                                     text="", message="New image uploaded.", kind="upload")
        self.session_ids = [into.id]
        self._show_version(into, f"Added the photo to the earlier picture's history as version "
                                 f"{added}; Undo steps back to the earlier picture.", version=added)

    def _resume(self, session: Any) -> None:
        self.session_ids = [session.id]
        self._own.add(session.id)
        self._show_version(session, f"Continuing session {session.id}, at version "
                                    f"{session.current}. What next?")
        self.selection.restore(session)  # selections left on the picture come back

    # ----- helpers ------------------------------------------------------------------------

    def _get_editor(self) -> EditorLike:
        if self._editor is None:
            self._editor = self._editor_factory(self.settings)
        return self._editor

    def _open(self, session_id: str) -> Any:
        from promptartisan.agent.sessions.store import SessionError

        try:
            return self._sessions.open(session_id, self.settings.session_dir, view=self.view)
        except SessionError as exc:
            self.emitter.error(f"That picture's history can't be opened: {md(str(exc))}. "
                               "Attach the photo again to start a new session.")
            return None

    def _report_models(self) -> None:
        missing = missing_models(self.settings)
        if not missing:
            return
        names = ", ".join(f"`{name}`" for name in missing)
        if hub_reachable():
            self.emitter.text(f"The models {names} aren't on this machine yet; the first edit "
                              "downloads them (several GB), or run `promptartisan models "
                              "download` beforehand.")
            return
        self.emitter.error(
            f"The models {names} aren't on this machine and the Hugging Face hub can't be "
            "reached, so real edits can't run. To fix it, run `promptartisan models download` "
            "where there is internet (or copy the model folders here and point "
            "`PROMPTARTISAN_INSTRUCT_PIX2PIX` etc. at them), then restart the chat. "
            "Meanwhile you can try the flow with the tiny demo models.",
            [ActionButton("use_tiny", "Use the tiny demo models")],
        )

    def _report_failed_turn(self, message: str, error: BaseException | None) -> None:
        """The Editor's message, plus what the person can do about the error behind it."""
        if error is not None and _is_out_of_memory(error):
            self.emitter.error(OUT_OF_MEMORY)
        elif isinstance(error, models.MissingModelError):
            self.emitter.error(message, [ActionButton("use_tiny", "Use the tiny demo models")])
        elif error is not None:  # a failure, not a refusal that says what to do itself
            self.emitter.error(f"{message} {TRY_AGAIN}")
        else:
            self.emitter.error(message)

    def _report_exception(self, exc: Exception) -> None:
        if isinstance(exc, models.MissingModelError):
            self.emitter.error(f"A model is missing: {md(str(exc))}",
                               [ActionButton("use_tiny", "Use the tiny demo models")])
        elif isinstance(exc, InvalidImageError):
            self.emitter.error(f"That picture can't be used: {md(str(exc))}. Attach a photo "
                               "(PNG, JPEG, WebP…) instead.")
        elif _is_out_of_memory(exc):
            self.emitter.error(OUT_OF_MEMORY)
        elif isinstance(exc, models.ModelError):
            self.emitter.error(f"A model can't be loaded: {md(str(exc))}. Check the model "
                               "settings, or run `promptartisan models download`.")
        else:
            log.exception("chat request failed")
            self.emitter.error(f"Something went wrong: {md(str(exc))}. {TRY_AGAIN}")


class TurnProgress:
    """Turns the Editor's progress events into visible steps. Each step closes when its stage
    ends, saying what it did: the plan with the plan, grounding with its masks (before editing
    starts), saving with the version saved; a question, a stop or an error closes every step
    still open, saying so."""

    def __init__(self, emitter: Emitter, label: str = "") -> None:
        self.emitter = emitter
        self.label = label
        self.turn = uuid.uuid4().hex  # step keys are unique to this turn
        self.open: dict[str, str] = {}  # stage → the last text shown
        self.closed: set[str] = set()
        self.plan: Any = None

    def title(self, stage: str) -> str:
        title = STAGE_TITLES.get(stage, stage.capitalize())
        return f"{self.label} · {title}" if self.label else title

    def key(self, stage: str) -> str:
        return f"{self.turn}/{stage}"

    def event(self, event: Any) -> None:
        """Editor's on_event: a new stage closes the earlier ones."""
        stage = event.stage
        for earlier in [s for s in self.open if s != stage and s not in self.closed]:
            self._update(earlier, self.open[earlier], done=True)
        plan = getattr(event, "plan", None)
        if plan is not None:
            self._show_plan(plan)
            return
        overlay = getattr(event, "overlay", None)
        if overlay is not None:
            self._update(stage, grounding_text(self.plan, event.groundings), done=True,
                         pictures=(Picture("masks.png", overlay),))
            return
        text = event.message or ""
        if event.total and event.step:  # the bar says "step n of N" itself
            text = progress_bar(event.step, event.total)
        self._update(stage, text)

    def _show_plan(self, plan: Any) -> None:
        self.plan = plan
        if plan.instructions:
            self._update("planning", plan_text(plan) + planned_by(plan), done=True)
        elif plan.action in PLANS_WITHOUT_EDITS:
            self._update("planning", PLANS_WITHOUT_EDITS[plan.action] + planned_by(plan),
                         done=True)

    def finish(self, result: Any) -> None:
        """Show the plan if no event did, and close every step still open with how its stage
        ended."""
        plan = getattr(result, "plan", None)
        if plan is not None and "planning" not in self.closed:
            self._show_plan(plan)
        if result.kind == "clarify":
            self.close(STEP_ASKED)
        elif result.kind == "cancelled":
            self.close(STEP_STOPPED, failed=True)
        elif result.kind == "error":
            self.close(STEP_FAILED, failed=True)
        else:
            if "saving" in self.open and "saving" not in self.closed:
                self._update("saving", f"Saved as version {result.version_id}.", done=True)
            self.close()

    def close(self, outcome: str = "", failed: bool = False) -> None:
        """Close every open step; `outcome` follows its last text (why the stage ended)."""
        for stage in [s for s in self.open if s not in self.closed]:
            text = self.open[stage]
            self._update(stage, f"{text}\n\n{outcome}" if outcome and text else outcome or text,
                         done=True, failed=failed)

    def _update(self, stage: str, text: str, done: bool = False, failed: bool = False,
                pictures: tuple[Picture, ...] = ()) -> None:
        self.open[stage] = text
        if done:
            self.closed.add(stage)
        self.emitter.step(StepUpdate(self.key(stage), self.title(stage), text, pictures, done,
                                     failed))


def history_buttons(session_id: str, version: int, retry: bool = False) -> list[ActionButton]:
    """The buttons under a version; `retry` (the same edit with a new seed) for an edit's."""
    payload = {"session": session_id, "version": version}
    return [ActionButton(name, label, payload) for name, label in (
        ("undo", "Undo"), ("redo", "Redo"), ("reset", "Reset"),
        *([("retry", "Retry")] if retry else []),
        ("masks", "Show masks"), (SELECT, "Select on the picture"), ("compare", "Compare"),
        ("download", "Download PNG"),
        ("export", "Export session"))]


def history_props(view: HistoryView) -> dict[str, Any]:
    """The history element's props (public/elements/HistoryStrip.jsx): JSON, pictures as
    data URLs."""
    return {
        "session": view.session, "current": view.current,
        "nodes": [{"version": n.version, "parent": n.parent, "row": n.row, "column": n.column,
                   "thumbnail": n.thumbnail, "lines": list(n.lines)} for n in view.nodes],
        "preview": None if view.preview is None else {
            "name": view.preview.name, "src": data_url(view.preview.image, PREVIEW_LONG_SIDE)},
        "actions": [{"name": a.name, "label": a.label, "payload": dict(a.payload)}
                    for a in view.actions],
    }


def compare_props(before: Picture, after: Picture, labels: tuple[str, str]) -> dict[str, Any]:
    """The compare slider's props (public/elements/CompareSlider.jsx); `aspect` (width over
    height) keeps a tall picture within the screen's height."""
    sides = {side: {"name": picture.name, "label": label,
                    "src": data_url(picture.image, COMPARE_LONG_SIDE)}
             for side, picture, label in zip(("before", "after"), (before, after), labels,
                                             strict=True)}
    return {**sides, "aspect": after.image.width / after.image.height}


def plan_text(plan: Any) -> str:
    """Each instruction with the region it targets, as Markdown."""
    lines = []
    for number, instruction in enumerate(plan.instructions, start=1):
        group = f" *(group {instruction.group})*" if instruction.group is not None else ""
        lines.append(f"{number}. **{instruction.target}** → {instruction.instruction}{group}")
    if getattr(plan, "note", None):
        lines.append(f"\n_{plan.note}_")
    return "\n".join(lines)


def planned_by(plan: Any) -> str:
    """The plan step's last line: which planner made the plan ('' when the plan doesn't say)."""
    name = getattr(plan, "planner", None)
    return f"\n\n*Planned by {md(name)}.*" if name else ""


def grounding_text(plan: Any, groundings: Sequence[Any] | None) -> str:
    """Which target was found where (and how sure the grounder was)."""
    if plan is None or not groundings:
        return "The masks of this edit:"
    lines = []
    for instruction, grounding in zip(plan.instructions, groundings, strict=False):
        if grounding is None:
            lines.append(f"- **{instruction.target}**: nothing found")
        else:
            score = getattr(grounding, "score", None)
            sure = f" (score {score:.2f})" if isinstance(score, float) else ""
            lines.append(f"- **{instruction.target}**: found{sure}")
    return "\n".join(lines)


def progress_bar(step: int, total: int, width: int = 20) -> str:
    filled = round(width * min(step, total) / total) if total else 0
    return f"`{'█' * filled}{'░' * (width - filled)}` step {step} of {total}"


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch
    except ImportError:
        return False
    return isinstance(exc, torch.OutOfMemoryError)

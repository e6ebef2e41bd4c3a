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

The controller decides whose a click is and whether it may run now, and composes the rooms
that do the work: `MessageTurns` (ui/message_turns.py: a message becomes turns, shown step by
step by ui/turn_steps.py), `VersionButtons` (ui/version_buttons.py: the buttons under a
version and the history element), `SelectionDesk` (ui/selection_view.py: canvases and mask
offers), `Offers` (ui/resume.py: continuing earlier sessions) and `Reports` (ui/reports.py:
missing models, failures). What they show goes through one `Emitter` (ui/shown.py).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from promptartisan import models
from promptartisan.settings import Settings
from promptartisan.ui.message_turns import MessageTurns
from promptartisan.ui.render import escape_markdown as md
from promptartisan.ui.reports import Reports
from promptartisan.ui.resume import Offers
from promptartisan.ui.selection_view import (
    ACTIONS as SELECTION_ACTIONS,
)
from promptartisan.ui.selection_view import (
    SELECT,
    SELECTION,
    SelectionDesk,
    default_selector,
)
from promptartisan.ui.shown import Emitter, Upload
from promptartisan.ui.version_buttons import NO_SUCH_VERSION, VersionButtons

log = logging.getLogger(__name__)

# Seconds a new request waits for a stopped turn to wind down before saying "busy".
STOP_GRACE_S = 60.0

PANEL_SETTINGS: dict[str, Callable[[Any], Any]] = {
    "steps": lambda value: int(float(value)),
    "guidance_scale": float,
    "image_guidance_scale": float,
    "seed": lambda value: None if str(value).strip() in ("", "None") else int(str(value)),
    "preserve_background": bool,
    "planner": lambda value: str(value).strip(),
    "grounding_backend": str,
    "memory": str,
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
ANSWERED = ("That question was already answered (or a newer request overtook it), so nothing "
            "was done. Say what to change, or answer the newest question.")
BUSY = "I'm still working on the previous request: wait for it, or press the stop button."
NOT_THIS_CHATS = (
    "That button belongs to a picture this chat didn't open, so nothing was done. Attach a "
    "photo, or continue an earlier session from a new chat's welcome."
)
TINY_NOTE = (
    "Switched this chat to the **tiny demo models**: they run anywhere in seconds, but their "
    "weights are random, so results are colourful noise. They show how the chat works, not "
    "what the real models can do."
)


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


def settings_text(settings: Settings) -> str:
    """The panel's settings as a person reads them: "steps 4, text guidance 7.5, …, seed
    random, keep the background on, …"."""
    guidance = models.engine_guidance_scale(settings)
    return ", ".join([
        f"steps {settings.steps}", f"text guidance {guidance:g}",
        f"image guidance {settings.image_guidance_scale:g}",
        f"seed {'random' if settings.seed is None else settings.seed}",
        f"keep the background {'on' if settings.preserve_background else 'off'}",
        f"planner {settings.planner}", f"grounding {settings.grounding_backend}"])


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
        self.sessions = sessions if sessions is not None else default_sessions()
        self.session_ids: list[str] = list(session_ids)  # the pictures requests go to
        self.own: set[str] = set(session_ids)  # every session this chat created or was given
        self.view = secrets.token_hex(8)  # this chat's own place in each session's history
        self.like_view: str | None = None  # where a reopened chat's views start: see `carry_on`
        self._acted = False  # set by its first request: from then on its own view is the chat's
        # A client picks among the planners the server was started with, never a file or URL
        # of its own (an llm: spec makes the server open a model file or contact a server).
        self.planner_choices = panel_planners(settings)
        self.cancelled = threading.Event()  # set by the stop button, cleared by the next request
        self.question: str | None = None  # the key of the question awaiting an answer, if any
        self._busy = threading.Lock()
        self.turns = MessageTurns(self)
        self.versions = VersionButtons(self)
        self.selection = SelectionDesk(self, selector_factory)  # canvases and mask offers
        self.offers = Offers(self)
        self.reports = Reports(self)

    # ----- events -------------------------------------------------------------------------

    def start(self) -> None:
        """The welcome: what to do, whether the models are here, and earlier chats to resume."""
        from promptartisan.agent.planning.auto_planner import forget_choices

        forget_choices()  # a new chat's planner = "auto" looks again (a server started since)
        self.emitter.text(WELCOME)
        self.reports.models()
        self.offers.welcome()

    def carry_on(self, session_ids: Sequence[str], owned: Sequence[str],
                 view: str | None, question: str | None = None) -> None:
        """A chat reopened from its saved thread (a reload, or the sidebar in another window):
        the pictures requests go to, every session the chat had, the saved `view` each of
        them starts from, and the key of the question it awaits an answer to. The chat keeps
        a view of its own, so two windows on one thread never move each other's place."""
        self.session_ids = list(session_ids)
        self.own.update(self.session_ids, owned)
        self.like_view = view
        self.question = question

    @property
    def saved_view(self) -> str | None:
        """The view the chat's thread records for the next reopen to start from: this window's
        own once it has made a request, else the one it was reopened from. A window that only
        looked (reloaded while a turn ran in the page it replaced) copied that turn's place
        before the turn moved it; recording its view would pin the chat there."""
        return self.view if self._acted or self.like_view is None else self.like_view

    def reopen(self) -> None:
        """A chat reopened from its saved thread: its first picture as it is now, with its
        buttons, in its history element (the transcript has the pictures, not their buttons)."""
        if self.session_ids:
            self._on_session(self.offers.reopen, self.session_ids[0])

    def message(self, text: str, uploads: Sequence[Upload] = ()) -> None:
        """A message from the person: maybe new pictures, maybe a request, maybe both."""
        if not self._acquire():
            return
        try:
            self.turns.message(text.strip(), uploads)
        finally:
            self._busy.release()

    def action(self, name: str, payload: dict[str, Any]) -> None:
        """A click on one of the buttons this controller made."""
        if name == "answer":
            if self.question is None or payload.get("question") != self.question:
                self.emitter.text(ANSWERED)
                return
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
                    self._on_session(lambda s: self.offers.add_to(s, into),
                                     str(payload["session"]))
                finally:
                    self._busy.release()
            return
        # Each handler gets the session and the version its button sits under.
        changes: dict[str, Callable[[Any, int], None]] = {
            "undo": lambda s, v: self.versions.move(s, "undo"),
            "redo": lambda s, v: self.versions.move(s, "redo"),
            "reset": lambda s, v: self.versions.move(s, "reset"),
            "go": self.versions.go,
            "retry": self.versions.retry,
            "resume": lambda s, v: self.offers.resume(s),
        }
        views: dict[str, Callable[[Any, int], None]] = {
            "masks": self.versions.masks,
            "compare": lambda s, v: self.versions.compare(s, v, payload.get("against")),
            "download": self.versions.download,
            "export": lambda s, v: self.versions.export(s),
            SELECT: self.selection.open,
        }
        if name not in views and name not in changes:
            self.emitter.error(f"Unknown action {md(repr(name))}.")
            return
        # Resume names its session by an offer token; every other button by this chat's own id.
        session_id = self.offers.offered(payload) if name == "resume" else self._owned(payload)
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
        if session_id in self.own:
            return session_id
        log.warning("refused a button for session %r, not one of this chat's", session_id)
        self.emitter.error(NOT_THIS_CHATS)
        return None

    def _on_session(self, handler: Callable[[Any], None], session_id: str) -> None:
        try:
            session = self._open(session_id)
            if session is not None:
                handler(session)
        except Exception as exc:  # any failure becomes a message; the chat goes on
            self.reports.exception(exc)

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
                self.emitter.text(f"Settings updated: {settings_text(updated)}.")

    def use_tiny(self) -> None:
        """Go on with the tiny demo models (when the real ones are missing)."""
        self.settings = self.settings.model_copy(update={"tiny": True})
        self._editor = None
        self.emitter.text(TINY_NOTE)

    def stop(self) -> None:
        """The stop button: the running turn ends after its current step."""
        self.cancelled.set()

    # ----- helpers the rooms share ----------------------------------------------------------

    def _acquire(self) -> bool:
        """One request at a time; a request right after a stop waits for the stopped one. Every
        request comes through here, so this is where the window starts to count as acting."""
        if self._busy.acquire(timeout=STOP_GRACE_S if self.cancelled.is_set() else 0):
            self._acted = True
            self.cancelled.clear()
            self.close_question()  # whatever comes now answers or overtakes it
            return True
        self.emitter.text(BUSY)
        return False

    def ask(self, question: str, choices: Sequence[str], pictures: Sequence[Any] = ()) -> None:
        """A question whose answers name it by a new key: only the newest question answers."""
        self.close_question()
        self.question = secrets.token_urlsafe(8)
        self.emitter.ask(question, choices, pictures, key=self.question)

    def close_question(self) -> None:
        if self.question is not None:
            self.question = None
            self.emitter.close_questions()

    def selection_turn(self, session_id: str, text: str, plan: Any = None,
                       mask: Any = None) -> Any:
        """A request from a canvas or a mask offer, on one of this chat's sessions; None when
        busy or the session can't be opened."""
        if not self._acquire():
            return None
        try:
            session = self._open(session_id)
            return None if session is None else self.turns.turn(session, text, plan=plan, mask=mask)
        finally:
            self._busy.release()

    # ----- helpers ------------------------------------------------------------------------

    def editor(self) -> EditorLike:
        """This chat's Editor, made on first use (and again after a settings change)."""
        if self._editor is None:
            self._editor = self._editor_factory(self.settings)
        return self._editor

    def _open(self, session_id: str) -> Any:
        from promptartisan.agent.sessions.store import SessionError

        try:
            return self.sessions.open(session_id, self.settings.session_dir, view=self.view,
                                      like=self.like_view)
        except SessionError as exc:
            self.emitter.error(f"That picture's history can't be opened: {md(str(exc))}. "
                               "Attach the photo again to start a new session.")
            return None

"""The message turn: a person's message (new photos, a request, or both) becomes a session per
photo and an Editor turn, shown step by step, then its result; one request on several photos is
planned once and its plan goes to each. `MessageTurns` is one chat's, composed by its
`ChatController`, which holds the one-request-at-a-time lock around it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from PIL import Image

from promptartisan.settings import Settings
from promptartisan.tools.images import InvalidImageError, load_image
from promptartisan.ui.render import escape_markdown as md
from promptartisan.ui.selection_view import SELECT
from promptartisan.ui.shown import ActionButton, Emitter, Picture, Upload
from promptartisan.ui.turn_steps import STEP_FAILED, TurnProgress

if TYPE_CHECKING:
    from promptartisan.ui.handlers import ChatController, EditorLike

NEED_IMAGE = (
    "First attach a photo (the paperclip button, or drop it into the chat), with or without a "
    "request. Then tell me what to change."
)
STOPPED = "Stopped. Nothing was changed; the picture is as it was before this request."
NEW_SESSION = "A new photo: it starts a history of its own."


class MessageTurns:
    """One chat's requests: from a message to the Editor's turns and what they show."""

    def __init__(self, chat: ChatController) -> None:
        self._chat = chat

    @property
    def emitter(self) -> Emitter:
        return self._chat.emitter

    @property
    def settings(self) -> Settings:
        return self._chat.settings

    def message(self, text: str, uploads: Sequence[Upload]) -> None:
        """A message, once the chat is free: sessions for its photos, then its request."""
        chat = self._chat
        images = self._read_uploads(uploads)
        if uploads and not images:
            if text:
                self.emitter.text(f"So I didn't act on your request (“{md(text)}”): send it "
                                  "again with a photo that opens.")
            return
        # A new photo starts a session of its own, so Reset never jumps to another picture; in
        # a one-picture chat a button adds it to the earlier picture's history instead.
        earlier = chat.session_ids[0] if len(images) == 1 and len(chat.session_ids) == 1 else None
        if images:
            try:
                sessions = [chat.sessions.create(self.settings.session_dir, image,
                                                 max_pixels=self.settings.max_pixels
                                                 ).in_view(chat.view) for image in images]
            except Exception as exc:  # a full disk, an unwritable folder: say so, go on
                chat.reports.exception(exc)
                return
            chat.session_ids = [session.id for session in sessions]
            chat.own.update(chat.session_ids)
            offer = [ActionButton("add_to", "Add it to the earlier picture's history instead",
                                  {"session": sessions[0].id, "into": earlier})] \
                if earlier is not None else []
            if not text:
                what = "this photo" if len(sessions) == 1 else f"these {len(sessions)} photos"
                point = [ActionButton(SELECT, "Select on the picture",
                                      {"session": sessions[0].id, "version": 0})]
                self.emitter.text(f"Got {what}. What should I change?", [*point, *offer])
                chat.selection.prepare(images[0])
                return
            if earlier is not None:  # a black-and-white upload may be the earlier one's mask
                into = chat._open(earlier)
                if into is not None and chat.selection.offer_mask(sessions[0], into, text):
                    return
            if offer:
                self.emitter.text(NEW_SESSION, offer)
        if not text:
            return
        if not chat.session_ids:
            self.emitter.error(NEED_IMAGE)
            return
        sessions = [s for s in (chat._open(i) for i in chat.session_ids) if s is not None]
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
        first = self.turn(sessions[asking], text, label=labels[asking])
        if asking != 0 or first is None or first.kind not in ("edit", "undo", "redo", "reset",
                                                                    "goto", "forget"):
            return
        for session, label in zip(sessions[1:], labels[1:], strict=True):
            if self._chat.cancelled.is_set():
                self.emitter.text(STOPPED)
                return
            result = self.turn(session, text, plan=first.plan, label=label)
            if result is None or result.kind == "cancelled":
                return

    def turn(self, session: Any, text: str, plan: Any = None, image: Image.Image | None = None,
             label: str = "", mask: Any = None) -> Any:
        """One Editor turn with its steps shown as they happen, then its result. The
        selections on the version the chat is on go with it (and are used up by an edit)."""
        selections = self._chat.selection.masks(session) if mask is None else {}
        extra = {"selections": selections} if selections else {}
        result = self.shown(session, label, lambda editor, progress: editor.turn(
            session, text, image=image, plan=plan, mask=mask, on_event=progress.event,
            cancel=self._chat.cancelled, **extra))
        if selections and result is not None:
            self._chat.selection.used(session, result)
        return result

    def shown(self, session: Any, label: str,
              run: Callable[[EditorLike, TurnProgress], Any]) -> Any:
        """`run(editor, progress)` with its steps shown as they happen, then its result."""
        progress = TurnProgress(self.emitter, label)
        try:
            result = run(self._chat.editor(), progress)
        except Exception as exc:  # any failure becomes a message; the chat goes on
            progress.close(STEP_FAILED, failed=True)
            self._chat.reports.exception(exc)
            return None
        progress.finish(result)
        self.show_result(session, result, label)
        return result

    def show_result(self, session: Any, result: Any, label: str) -> None:
        prefix = f"**{label}** · " if label else ""
        if result.kind == "clarify":
            boxes = tuple(tuple(float(v) for v in box) for grounding in result.groundings[:1]
                          for box in grounding.candidates)
            # Boxes to click are drawn by the page, on the picture itself.
            shown = session.image(session.current) if boxes else result.overlay
            candidates = [Picture("candidates.png", shown, boxes)] if shown is not None else []
            self._chat.ask(prefix + result.message, list(result.choices or []), candidates)
            pending = session.pending
            if pending is not None and pending.kind == "locate":  # "where is it?": point at it
                self._chat.selection.open(session, answering=True)
        elif result.kind == "chat":
            self.emitter.text(prefix + result.message)
        elif result.kind == "error":
            self._chat.reports.failed_turn(prefix + md(result.message), result.error)
        elif result.kind == "cancelled":
            self.emitter.text(prefix + STOPPED)
        elif result.kind in ("undo", "redo", "reset", "goto"):
            self._chat.versions.show_history(session, prefix + result.message, moved=True)
        else:
            self._chat.versions.show_version(session, prefix + result.message, result.image,
                                             result.version_id)


"""Going on with earlier pictures: the welcome's offers to continue an earlier session (each a
random token this chat minted, never the session's id, so a client can't name another chat's
picture), continuing one, and adding a new photo to the earlier picture's history instead of
starting its own. `Offers` is one chat's, composed by its `ChatController`."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from promptartisan.ui.render import escape_markdown as md
from promptartisan.ui.shown import ActionButton, Emitter

if TYPE_CHECKING:
    from promptartisan.ui.handlers import ChatController

RESUME_OFFERS = 3
NOT_OFFERED = "That offer to continue a session isn't one this chat made, so nothing was done."


class Offers:
    """One chat's offers to continue earlier sessions, and the continuing."""

    def __init__(self, chat: ChatController) -> None:
        self._chat = chat
        self._tokens: dict[str, str] = {}  # resume token -> the earlier session it continues
        self.title = ""  # the chat's name in the sidebar once it continues a session

    @property
    def emitter(self) -> Emitter:
        return self._chat.emitter

    def welcome(self) -> None:
        """The welcome's buttons to continue the latest earlier sessions, for a new chat."""
        from promptartisan.agent.sessions.store import SessionError

        try:
            listed = self._chat.sessions.list(self._chat.settings.session_dir)
        except SessionError as exc:  # an unreadable sessions folder still gets a welcome
            self.emitter.error(f"Earlier chats can't be listed: {md(str(exc))}")
            listed = []
        earlier = [info for info in listed if not info.damaged][-RESUME_OFFERS:]
        if earlier and not self._chat.session_ids:
            buttons = [ActionButton("resume", f"Continue {info.id} ({info.versions} versions)",
                                    {"offer": self.offer(info.id)}) for info in reversed(earlier)]
            self.emitter.text("Or continue where you left off:", buttons)

    def offered(self, payload: dict[str, Any]) -> str | None:
        """The session an offer token of this chat's welcome stands for; else None, and told."""
        session_id = self._tokens.get(str(payload.get("offer", "")))
        if session_id is None:
            self.emitter.error(NOT_OFFERED)
        return session_id

    def offer(self, session_id: str) -> str:
        token = secrets.token_urlsafe(16)
        self._tokens[token] = session_id
        return token

    def add_to(self, photo: Any, into_id: str) -> None:
        """The photo that started session `photo` becomes a new version of the earlier
        picture's history (from where this chat is in it), and the chat goes on there."""
        into = self._chat._open(into_id)
        if into is None:
            return
        added = next((v.id for v in into.versions()
                      if v.provenance.get("added_from") == photo.id), None)
        if added is None:
            image = photo.image(0)
            added = into.add_version(image, [], {"kind": "upload", "size": list(image.size),
                                                 "added_from": photo.id},
                                     text="", message="New image uploaded.", kind="upload")
        self._chat.session_ids = [into.id]
        self._chat.versions.show_version(
            into, f"Added the photo to the earlier picture's history as version {added}; Undo "
                  "steps back to the earlier picture.", version=added)

    def reopen(self, session: Any) -> None:
        """A reopened chat (a reload, the sidebar) goes on with `session`: the version it is
        on and its buttons come in the picture's history element, which replaces the one in
        the transcript, so a reload adds no message of its own."""
        self._chat.versions.show_history(session, continuing(session), moved=True)
        self._chat.selection.restore(session)

    def resume(self, session: Any) -> None:
        """Continue `session` (an offer taken, or a reopened chat): it shows where it is."""
        first = next((turn.text for turn in session.turns() if turn.text.strip()), "")
        self.title = f"Continued: {first[:60]}" if first else f"Continued: photo {session.id}"
        self._chat.session_ids = [session.id]
        self._chat.own.add(session.id)
        self._chat.versions.show_version(session, continuing(session))
        self._chat.selection.restore(session)  # selections left on the picture come back


def continuing(session: Any) -> str:
    return f"Continuing session {session.id}, at version {session.current}. What next?"

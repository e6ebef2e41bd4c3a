"""The buttons under a version and what they show: the version itself with its history
element, Undo / Redo / Reset / Retry, a click on a version in the history, its masks, the
compare slider, the PNG and the session's export. `VersionButtons` is one chat's, composed by
its `ChatController`, which decides whose button a click is and whether it may run now."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from promptartisan.settings import Settings
from promptartisan.ui.history import describe, tree_layout
from promptartisan.ui.render import data_url
from promptartisan.ui.selection_view import SELECT
from promptartisan.ui.shown import ActionButton, Emitter, HistoryNode, HistoryView, Picture

if TYPE_CHECKING:
    from promptartisan.ui.handlers import ChatController

THUMBNAIL_LONG_SIDE = 96  # the history element's thumbnails (JPEG data URLs, ~6 kB each)
NO_SUCH_VERSION = "That button names a version this picture's history doesn't have, so nothing " \
    "was done."
HISTORY = "Every version of this picture: click one to go there (nothing is deleted)."


class VersionButtons:
    """One chat's versions on show, and what each button under one does."""

    def __init__(self, chat: ChatController) -> None:
        self._chat = chat
        self._thumbnails: dict[tuple[str, int], str] = {}  # versions never change

    @property
    def emitter(self) -> Emitter:
        return self._chat.emitter

    @property
    def settings(self) -> Settings:
        return self._chat.settings

    def show_version(self, session: Any, text: str, image: Image.Image | None = None,
                     version: int | None = None) -> None:
        """A version (default: where this chat is) inline, with the history and export
        buttons."""
        version = session.current if version is None else version
        image = image if image is not None else session.image(version)
        self.emitter.pictures(text, [Picture(f"{session.id}-v{version:04d}.png", image)],
                              history_buttons(session.id, version,
                                              edited=bool(session.regions(version))))
        self._chat.selection.prepare(image)
        self.show_history(session, HISTORY)

    def show_history(self, session: Any, caption: str, moved: bool = False) -> None:
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
            self._chat.selection.prepare(preview.image)
        actions = tuple(history_buttons(session.id, current,
                                        edited=bool(session.regions(current)))) if moved else ()
        self.emitter.history(HistoryView(session.id, current, caption, nodes, preview, actions))

    def _thumbnail(self, session: Any, version: int) -> str:
        key = (session.id, version)
        if key not in self._thumbnails:
            self._thumbnails[key] = data_url(session.image(version), THUMBNAIL_LONG_SIDE,
                                             lossless=False)
        return self._thumbnails[key]

    def move(self, session: Any, kind: str) -> None:
        from promptartisan.agent.planning.plan import Plan

        result = self._chat.editor().turn(session, kind, plan=Plan(action=kind),
                                          cancel=self._chat.cancelled)
        self._chat.turns.show_result(session, result, "")

    def go(self, session: Any, version: int) -> None:
        """A click on a version in the history element: go there, recorded like undo."""
        moved = session.go(version)
        self.show_history(session, moved.message, moved=True)

    def retry(self, session: Any, version: int) -> None:
        """The edit that made `version` again with a new seed, as a sibling of it."""
        self._chat.turns.shown(session, "", lambda editor, progress: editor.retry(
            session, version, on_event=progress.event, cancel=self._chat.cancelled))

    def masks(self, session: Any, version: int) -> None:
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

    def compare(self, session: Any, number: int, against: Any = None) -> None:
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

    def download(self, session: Any, number: int) -> None:
        version = session.version(number)
        self.emitter.download(f"Version {version.id} as PNG: your browser saves it (the link "
                              "saves it again).", version.file,
                              f"{session.id}-v{version.id:04d}.png")

    def export(self, session: Any) -> None:
        # Replaces this session's earlier export: the folder is the chat's own.
        out = session.export(export_dir(self.settings) / f"{session.id}.zip", force=True)
        out.chmod(0o600)
        self.emitter.file("The whole session — every version, its masks and how it was made:",
                          out, out.name)


def history_buttons(session_id: str, version: int, edited: bool = False) -> list[ActionButton]:
    """The buttons under a version; Retry (the same edit with a new seed) and Show masks only
    under an edit's (the upload, a take-back or an added photo have no masks)."""
    payload = {"session": session_id, "version": version}
    return [ActionButton(name, label, payload) for name, label in (
        ("undo", "Undo"), ("redo", "Redo"), ("reset", "Reset"),
        *([("retry", "Retry"), ("masks", "Show masks")] if edited else []),
        (SELECT, "Select on the picture"), ("compare", "Compare"),
        ("download", "Download PNG"),
        ("export", "Export session"))]


def export_dir(settings: Settings) -> Path:
    """Where the chat writes session exports: beside the sessions, readable by this user only
    (the folder 0700, each file 0600)."""
    folder = settings.session_dir.expanduser().resolve().parent / "exports"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


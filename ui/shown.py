"""What the chat shows, without the web framework: the `Emitter` a `ChatController` talks to,
the shapes it is given (buttons, pictures, steps, the history element, uploads), and the props
the web adapter (`ui/app.py`) sends to the page's custom elements."""

from __future__ import annotations

import base64
import mimetypes
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from promptartisan.ui.render import data_url

PREVIEW_LONG_SIDE = 512  # the version a move went to, in the history element (PNG)
COMPARE_LONG_SIDE = 768  # each side of the compare slider (PNG): wider than the chat column


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

    def file(self, text: str, path: Path, name: str) -> None:
        """A file as a link in the chat."""
        ...

    def download(self, text: str, path: Path, name: str) -> None:
        """A file the browser saves at once (a button's "Download"), with a link that saves it
        again."""
        ...

    def ask(self, question: str, choices: Sequence[str],
            pictures: Sequence[Picture] = (), key: str = "") -> None:
        """A question with its answers as buttons (and, on a picture with boxes, the boxes to
        click); each answer's payload carries `key`, the question it answers."""
        ...

    def close_questions(self) -> None:
        """Every question asked so far is answered or overtaken: its buttons go and its boxes
        stop answering, in the chat and in the saved transcript."""
        ...

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


def download_props(path: Path, name: str) -> dict[str, Any]:
    """The download element's props (public/elements/DownloadFile.jsx): the file as a data URL
    (it stays in the transcript, whatever happens to the server), and when it was made and a key
    of its own, so the browser saves it once: when it arrives, not at every reload."""
    mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return {"name": name, "key": secrets.token_hex(8), "made": int(time.time() * 1000),
            "src": f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"}


def compare_props(before: Picture, after: Picture, labels: tuple[str, str]) -> dict[str, Any]:
    """The compare slider's props (public/elements/CompareSlider.jsx); `aspect` (width over
    height) keeps a tall picture within the screen's height."""
    sides = {side: {"name": picture.name, "label": label,
                    "src": data_url(picture.image, COMPARE_LONG_SIDE)}
             for side, picture, label in zip(("before", "after"), (before, after), labels,
                                             strict=True)}
    return {**sides, "aspect": after.image.width / after.image.height}

"""The server side of the chat's selection canvas (public/elements/SelectionCanvas.jsx): the
person points at a version (clicks in and out, boxes, brush and eraser strokes), SAM segments
each gesture, and the canvas shows every numbered selection as a coloured overlay, answered in
the same round trip. The selections of a canvas go with the chat's next request (typed, or from
the canvas's own instruction fields), as regions of one engine call.

Also here: the candidates of a "which one?" question as numbered boxes a click answers, and an
uploaded black-and-white picture offered as a mask for the current version.

A canvas is named by a random token this chat minted when it opened it, never by a session id
a client sends: a payload with any other token is refused. A canvas belongs to one version;
once the chat has moved on (an edit, an undo) its gestures are refused with a message saying
so, and once its selections made an edit it is closed.

Selections are work: each change is saved in the session's folder (`SAVED_SELECTIONS`), and a
chat reopened after a reload or a server restart opens a canvas with them again when the
picture is still at their version.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from promptartisan.tools.atomic import write_atomically
from promptartisan.tools.overlay import colour
from promptartisan.ui.render import data_url
from promptartisan.ui.render import escape_markdown as md

log = logging.getLogger(__name__)

CANVAS_LONG_SIDE = 1024  # the picture and its overlays; a larger version is shown smaller
MASK_ALPHA = 0.45  # an overlay's opacity, as tools/overlay.py's tint
BRUSH_SHARE = 1 / 40  # the brush's radius, as a share of the picture's long side
STATUS_WAIT_S = 2.0  # a canvas asking whether its picture is ready waits this long at most
REFINE_SHARE = 1 / 128  # grow and shrink steps (at least 4 pixels), as a share of it
# An upload is offered as a mask when nearly all its pixels are black or white and grey.
MASK_EXTREMES = 0.98
MASK_GREY_SPREAD = 24

SAVED_SELECTIONS = "selections.json"  # in the session's folder: the newest canvas's selections
RESTORED_TEXT = "Your selections on version {version} are back, as you left them."

SELECT = "select"  # the button that opens a canvas under a version
SELECTION = "selection"  # every gesture and button of a canvas
USE_MASK, USE_PICTURE = "use_mask", "use_picture"  # an upload that looks like a mask
ACTIONS = (SELECT, SELECTION, USE_MASK, USE_PICTURE)

# The canvas shows its messages as plain text (no Markdown): buttons are named in quotes.
NOT_THIS_CANVAS = ("This selection canvas isn't open in this chat (it may be from before the page "
                   "was reloaded), so nothing was done. Use “Select on the picture” under the "
                   "version to point at.")
CANVAS_CLOSED = ("This canvas's selections already made version {version}; nothing more goes "
                 "from here. Use “Select on the picture” under the version you want to edit.")
CANVAS_REPLACED = "A newer canvas replaced this one for this picture; point there instead."
NO_OFFER = "That choice isn't one this chat offered, so nothing was done."
OPEN_TEXT = ("Point at what to change: **click** to select a thing (shift-click or **Exclude** "
             "to take a part out), **drag** for a box, or paint with the **Brush** (the "
             "**Eraser** takes paint away). Each selection gets a number: write what to do in "
             "its field, or refer to it in a message (*make 1 red and 2 gold*).")
WHERE_TEXT = "Or point at it on the picture, then press **This is where**."


@dataclass
class Canvas:
    """One canvas: the version it shows and the selections made on it."""

    token: str
    session_id: str
    version: int
    size: tuple[int, int]
    book: Any  # promptartisan.tools.selection.SelectionBook
    answering: bool = False  # opened by a "where is it?" question
    closed: str = ""  # why no gesture counts any more
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Each selection as last shown: its mask's digest and its overlay, drawn once per change.
    shown: dict[int, tuple[bytes, dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class MaskOffer:
    """An upload that may be a mask of the earlier picture's current version."""

    photo: str  # the new session the upload started (the default: a new picture)
    into: str  # the earlier picture's session
    version: int
    text: str
    mask: np.ndarray


def default_selector(settings: Any) -> Any:
    """The process's selection service (SAM, one embedding per picture, cached)."""
    from promptartisan.tools.selection import Selector

    return Selector.shared(settings)


def sam_present(settings: Any) -> bool:
    """Whether SAM loads without a download (the tiny one, a folder, or the hub cache)."""
    if settings.tiny:
        return True
    from promptartisan import models

    return any(row["name"] == "sam" and row["present"] for row in models.cached(settings))


def mask_overlay(mask: np.ndarray, number: int) -> str:
    """Selection `number`'s mask as a transparent PNG data URL, tinted in its colour."""
    rgba = np.zeros((*mask.shape, 4), dtype=np.uint8)
    rgba[mask] = (*colour(number - 1), round(MASK_ALPHA * 255))
    picture = Image.fromarray(rgba, "RGBA")
    if max(picture.size) > CANVAS_LONG_SIDE:
        picture.thumbnail((CANVAS_LONG_SIDE, CANVAS_LONG_SIDE), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def anchor(mask: np.ndarray) -> list[float] | None:
    """Where a selection's number goes: its deepest inside point (always inside the mask,
    unlike a ring's centroid); None for an empty mask."""
    if not mask.any():
        return None
    from scipy import ndimage

    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return [float(x) + 0.5, float(y) + 0.5]


def hex_colour(number: int) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour(number - 1))


def candidate_props(picture: Any, boxes: Sequence[Sequence[float]],
                    choices: Sequence[str], key: str = "") -> dict[str, Any]:
    """A "which one?" question's picture with its candidates as numbered boxes (choose mode);
    box k answers `choices[k]`, naming the question by `key`. `closed` (set once it is
    answered) disables the boxes."""
    image = picture.image
    # The choices end with "all of them", which no box stands for.
    return {"mode": "choose", "name": picture.name, "src": data_url(image, CANVAS_LONG_SIDE),
            "question": key, "closed": False,
            "width": image.width, "height": image.height,
            "candidates": [{"number": k, "box": [float(v) for v in box], "choice": choice,
                            "colour": hex_colour(k)}
                           for k, (box, choice) in enumerate(zip(boxes, choices, strict=False),
                                                           start=1)]}


def looks_like_mask(upload: Image.Image, picture: Image.Image) -> bool:
    """Whether an upload is a black-and-white picture of `picture`'s aspect: grey, nearly every
    pixel black or white, some of each."""
    from promptartisan.engine.regions import ASPECT_TOLERANCE

    ratio = (upload.width / upload.height) / (picture.width / picture.height)
    if abs(ratio - 1) > ASPECT_TOLERANCE:
        return False
    small = upload.convert("RGB")
    small.thumbnail((256, 256))
    pixels = np.asarray(small, dtype=np.int16)
    if (pixels.max(axis=2) - pixels.min(axis=2)).max() > MASK_GREY_SPREAD:
        return False
    grey = pixels.mean(axis=2)
    dark, light = grey < 32, grey > 223
    return bool((dark | light).mean() >= MASK_EXTREMES and dark.any() and light.any())


class SelectionDesk:
    """This chat's canvases and mask offers. `controller` is the ChatController that owns it
    (its sessions, emitter, busy lock and turns)."""

    def __init__(self, controller: Any, selector_factory: Callable[[Any], Any]) -> None:
        self._controller = controller
        self._selector_factory = selector_factory
        self._selector: Any = None
        self._made_for: Any = None  # the settings `_selector` and `_early` were made for
        self._canvases: dict[str, Canvas] = {}
        self._live: dict[str, str] = {}  # session id → the token of its newest canvas
        self._offers: dict[str, MaskOffer] = {}
        self._early: bool | None = None  # whether showing a version starts preparing it

    @property
    def selector(self) -> Any:
        """The selection service for the chat's settings as they are now (the tiny demo
        models, a changed device)."""
        settings = self._controller.settings
        if self._selector is None or self._made_for is not settings:
            self._selector, self._made_for = self._selector_factory(settings), settings
            self._early = None
        return self._selector

    # ----- preparing and opening ----------------------------------------------------------

    def prepare(self, image: Image.Image, shown: bool = True) -> None:
        """Start SAM's embedding of a version just `shown`, in the background, so the canvas
        is ready when the person opens it; a failure shows when they do. Only with SAM on this
        machine: a version shown never starts a download; opening a canvas does."""
        selector = self.selector
        if shown and self._early is None:
            self._early = sam_present(self._controller.settings)
        if shown and not self._early:
            return
        try:
            selector.prepare(image)
        except Exception:  # a missing model: said when a canvas is opened
            log.info("selection preparation failed", exc_info=True)

    def open(self, session: Any, version: int | None = None, answering: bool = False,
             book: Any = None, text: str = "") -> None:
        """A new canvas on `version` (default: where the chat is) of `session`, with `book`'s
        selections when given (restored), else this chat window's on that version."""
        chat = self._controller
        number = session.current if version is None else version
        image = session.image(number)
        self.prepare(image, shown=False)
        # Books are kept per chat window and version: two windows don't share selections.
        book = book or self.selector.book(f"{chat.view}/{session.id}", number, image)
        canvas = Canvas(secrets.token_urlsafe(16), session.id, number, image.size, book,
                        answering)
        earlier = self._canvases.get(self._live.get(session.id, ""))
        if earlier is not None and not earlier.closed:
            earlier.closed = CANVAS_REPLACED
        self._canvases[canvas.token] = canvas
        self._live[session.id] = canvas.token
        text = text or (WHERE_TEXT if answering else OPEN_TEXT)
        chat.emitter.canvas(f"Version {number}: {text}", self.props(canvas))

    def restore(self, session: Any) -> None:
        """Open a canvas with the selections saved in `session`'s folder, when the chat is on
        their version; saved selections that can't be read are left as they are and said."""
        path = session.folder / SAVED_SELECTIONS
        if not path.is_file():
            return
        from promptartisan.tools.selection import SelectionBook

        try:
            data = json.loads(path.read_text())
            if int(data["version"]) != session.current:
                return  # the picture moved on since: they belonged to another version
            image = session.image(session.current)
            book = SelectionBook.from_json(data, image, self.selector.segment,
                                           self._controller.settings.max_regions)
        except Exception:  # a damaged file loses the selections, never the chat
            log.warning("saved selections of session %s unreadable", session.id, exc_info=True)
            self._controller.emitter.text("Your saved selections on this picture couldn't be "
                                          "read; the picture and its history are fine.")
            return
        if book.numbers:
            self.open(session, session.current, book=book,
                      text=RESTORED_TEXT.format(version=session.current) + " " + OPEN_TEXT)

    def _save(self, canvas: Canvas) -> None:
        """Keep `canvas`'s selections in its session's folder (atomically), so a reload or a
        restart doesn't lose them; a failure to save is logged, never raised at the person."""
        session = self._controller._open(canvas.session_id)
        if session is None:
            return
        data = json.dumps(canvas.book.to_json()).encode()
        try:
            write_atomically(session.folder / SAVED_SELECTIONS,
                             lambda handle: handle.write(data))
        except OSError:
            log.warning("could not save the selections of %s", canvas.session_id, exc_info=True)

    def _forget_saved(self, session_id: str) -> None:
        """Selections that made an edit are done: nothing to bring back after a reload."""
        session = self._controller._open(session_id)
        if session is not None:
            (session.folder / SAVED_SELECTIONS).unlink(missing_ok=True)

    def props(self, canvas: Canvas) -> dict[str, Any]:
        """The canvas element's props (SelectionCanvas.jsx): JSON, pictures as data URLs."""
        image = canvas.book.image
        width, height = canvas.size
        return {"mode": "select", "canvas": canvas.token, "version": canvas.version,
                "name": f"{canvas.session_id}-v{canvas.version:04d}.png",
                # JPEG: a tenth of a photo's PNG bytes; the overlays on it are exact PNGs.
                "src": data_url(image, CANVAS_LONG_SIDE, lossless=False), "width": width,
                "height": height, "brush": round(max(width, height) * BRUSH_SHARE, 1),
                "answering": canvas.answering, "state": self.state(canvas)}

    def state(self, canvas: Canvas, message: str = "") -> dict[str, Any]:
        """What the canvas shows now: each selection as it goes to the engine (overlaps
        resolved, the later one winning), whether SAM is still preparing, and a message."""
        masks = canvas.book.masks()
        selections = [_shown(canvas, n, masks[n]) for n in canvas.book.numbers]
        preparing = not canvas.closed and not self._ready(canvas)
        return {"selections": selections, "preparing": preparing,
                "message": canvas.closed or message, "closed": bool(canvas.closed)}

    def _ready(self, canvas: Canvas) -> bool:
        return bool(self.selector.ready(canvas.book.image))

    # ----- the canvas's calls -------------------------------------------------------------

    def act(self, payload: dict[str, Any]) -> dict[str, Any]:
        """One call of a canvas (`op`: gesture, refine, reorder, status, apply, answer); the
        answer is the canvas's new state, with a message when something was refused."""
        canvas = self._canvases.get(str(payload.get("canvas", "")))
        if canvas is None:
            log.warning("refused a selection call for canvas %r, not this chat's",
                        payload.get("canvas"))
            return {"ok": False, "message": NOT_THIS_CANVAS}
        op = payload.get("op")
        if op == "status":
            return self._status(canvas)
        if canvas.closed:
            return {"ok": False, "state": self.state(canvas)}
        moved = self._moved_on(canvas)
        if moved:
            return {"ok": False, "state": self.state(canvas, moved)}
        if op in ("apply", "answer"):
            return self._run(canvas, payload)
        with canvas.lock:
            try:
                number = self._change(canvas, op, payload)
            except (ValueError, TypeError, KeyError) as exc:  # SelectionError included
                return {"ok": False, "state": self.state(canvas, _sentence(exc))}
            except Exception as exc:  # a model that can't load, out of memory: said, not raised
                log.exception("selection failed")
                return {"ok": False, "state": self.state(canvas, f"Selecting failed: {exc}.")}
            self._save(canvas)
            return {"ok": True, "number": number, "state": self.state(canvas)}

    def _status(self, canvas: Canvas) -> dict[str, Any]:
        """The state once the picture's embedding is ready, or after `STATUS_WAIT_S`; a model
        that can't load is said, and the canvas stops waiting for it."""
        image = canvas.book.image
        try:
            self.selector.segmenter  # noqa: B018 (loads SAM once; raises when it is missing)
        except Exception as exc:
            log.warning("the selection model can't be loaded: %s", exc)
            state = self.state(canvas, f"The selection model can't be loaded: {md(str(exc))}")
            return {"ok": False, "state": {**state, "preparing": False}}
        self.selector.prepare(image)  # nothing when it is ready or being prepared
        self.selector.wait(image, timeout=STATUS_WAIT_S)
        return {"ok": True, "state": self.state(canvas)}

    def _moved_on(self, canvas: Canvas) -> str:
        """Why the canvas's version is no longer the chat's, or ""."""
        session = self._controller._open(canvas.session_id)
        if session is None:
            return "This picture's history can't be opened any more."
        if session.current != canvas.version:
            return (f"This canvas shows version {canvas.version}, but the chat is now on version "
                    f"{session.current}: nothing was changed. Use “Select on the picture” under "
                    f"version {session.current} to point at it.")
        return ""

    def _change(self, canvas: Canvas, op: Any, payload: dict[str, Any]) -> int | None:
        book = canvas.book
        if op == "gesture":  # the book checks the gesture and says what is wrong with it
            gesture = {"kind": payload.get("kind"), "points": payload.get("points"),
                       "radius": payload.get("radius") or max(canvas.size) * BRUSH_SHARE}
            return int(book.gesture(gesture, _number(payload.get("number"))))
        if op == "refine":
            number, refine = _number(payload.get("number")), str(payload.get("refine"))
            if number is None:
                raise ValueError("Choose a selection to refine.")
            book.refine(number, refine, pixels=max(4, round(max(canvas.size) * REFINE_SHARE)))
            return None if refine == "remove" else number
        if op == "reorder":
            book.reorder([_number(n) for n in payload.get("numbers") or []])
            return None
        raise ValueError(f"unknown canvas call {op!r}")

    def _run(self, canvas: Canvas, payload: dict[str, Any]) -> dict[str, Any]:
        """The canvas's own request: its instruction fields ("apply") or, for a "where is
        it?" question, its selection as the answer."""
        from promptartisan.agent.planning.plan import Instruction, Plan, selection_target

        chat = self._controller
        if not canvas.book.numbers:
            return {"ok": False, "state": self.state(canvas, "Select something first.")}
        if payload.get("op") == "answer":
            masks = canvas.book.masks()
            union = np.logical_or.reduce([masks[n] for n in canvas.book.numbers])
            chat.emitter.text("*Your answer: the selection on the picture*")
            done = chat.selection_turn(canvas.session_id, "", mask=union)
            if done is not None and done.kind == "edit":
                canvas.closed = CANVAS_CLOSED.format(version=done.version_id)
                self._forget_saved(canvas.session_id)
        else:
            written = payload.get("instructions")
            try:
                texts = {_number(n): str(text).strip() for n, text in written.items()
                         if str(text).strip()} if isinstance(written, dict) else {}
                missing = [str(n) for n in texts if n not in canvas.book.numbers]
                if missing:
                    raise ValueError(f"there is no selection {', '.join(missing)} on this canvas")
                if not texts:
                    raise ValueError("write what to do in a selection's field first")
                instructions = [Instruction(target=selection_target(n), instruction=texts[n])
                                for n in canvas.book.numbers if n in texts]
            except ValueError as exc:  # a validation error of an instruction too
                return {"ok": False, "state": self.state(canvas, _sentence(exc))}
            request = "; ".join(f"{i.target}: {i.instruction}" for i in instructions)
            limit = chat.settings.max_message_chars
            if len(request) > limit:  # the same limit as a typed message's
                return {"ok": False, "state": self.state(canvas, (
                    f"Those instructions are {len(request):,} characters long; I read requests "
                    f"of up to {limit:,}. Shorten them: a sentence or two for each selection."))}
            plan = Plan(action="edit", instructions=instructions)
            chat.emitter.text(f"*Your request: {md(request)}*")
            done = chat.selection_turn(canvas.session_id, request, plan=plan)
        return {"ok": done is not None, "state": self.state(canvas)}

    # ----- the chat's requests ------------------------------------------------------------

    def masks(self, session: Any) -> dict[int, np.ndarray]:
        """The selections that go with a request on `session`: those of its newest canvas,
        if that canvas shows the version the chat is on, each its own mask (the Editor
        layers the ones the request names)."""
        canvas = self._canvases.get(self._live.get(session.id, ""))
        if canvas is None or canvas.closed or canvas.version != session.current:
            return {}
        with canvas.lock:
            return canvas.book.own_masks() if canvas.book.numbers else {}

    def used(self, session: Any, result: Any) -> None:
        """A turn's `result` on `session` with its canvas's selections: when an edit used
        them (a region of it is a selection), the canvas closes; else they stay for the next
        request."""
        from promptartisan.agent.planning.plan import selection_number

        canvas = self._canvases.get(self._live.get(session.id, ""))
        plan = result.plan
        if canvas is None or canvas.closed or result.kind != "edit" or plan is None:
            return
        if any(selection_number(i.target) is not None for i in plan.instructions):
            canvas.closed = CANVAS_CLOSED.format(version=result.version_id)
            self._forget_saved(session.id)

    # ----- an upload that looks like a mask -----------------------------------------------

    def offer_mask(self, photo: Any, into: Any, text: str) -> bool:
        """When the photo just uploaded with `text` (session `photo`) is a black-and-white
        picture of `into`'s current version's aspect, offer it as that version's mask beside
        the default, a new picture, and act on `text` only after the choice; else False."""
        from promptartisan.tools.mask_io import read_mask

        upload, version = photo.image(0), into.current
        picture = into.image(version)
        if not text or not looks_like_mask(upload, picture):
            return False
        mask = read_mask(upload, picture.size)
        token = secrets.token_urlsafe(16)
        self._offers[token] = MaskOffer(photo.id, into.id, version, text, mask)
        from promptartisan.ui.shown import ActionButton

        share = mask.mean()
        self._controller.emitter.text(
            f"This photo is black and white, the shape of version {version} of the earlier "
            f"picture: it may be a mask ({share:.0%} of the picture white). It is kept as a new "
            f"picture, and requests go there unless you choose otherwise. Where should "
            f"“{md(text)}” go?",
            [ActionButton(USE_MASK, f"Use it as a mask on version {version}", {"offer": token}),
             ActionButton(USE_PICTURE, "Use it as a new picture", {"offer": token})])
        return True

    def take_offer(self, name: str, payload: dict[str, Any]) -> None:
        """A click on one of `offer_mask`'s buttons."""
        chat = self._controller
        offer = self._offers.pop(str(payload.get("offer", "")), None)
        if offer is None:
            chat.emitter.error(NO_OFFER)
            return
        if name == USE_PICTURE:
            chat.selection_turn(offer.photo, offer.text)
            return
        session = chat._open(offer.into)
        if session is None:
            return
        if session.current != offer.version:
            chat.emitter.error(f"The earlier picture is now on version {session.current}, not "
                               f"{offer.version}: attach the mask again with your request.")
            return
        chat.session_ids = [offer.into]
        chat.selection_turn(offer.into, offer.text, mask=offer.mask)


def _shown(canvas: Canvas, number: int, mask: np.ndarray) -> dict[str, Any]:
    """Selection `number` as the canvas shows it: its overlay and the place of its number,
    drawn again only when its mask changed (every call shows every selection)."""
    digest = hashlib.blake2b(np.packbits(mask).tobytes(), digest_size=16).digest() \
        + repr(mask.shape).encode()
    earlier = canvas.shown.get(number)
    if earlier is not None and earlier[0] == digest:
        return earlier[1]
    entry = {"number": number, "colour": hex_colour(number), "mask": mask_overlay(mask, number),
             "anchor": anchor(mask)}
    canvas.shown = {n: shown for n, shown in canvas.shown.items() if n in canvas.book.numbers}
    canvas.shown[number] = (digest, entry)
    return entry


def _number(value: Any) -> int | None:
    """A selection number from a payload (JSON may bring it as text); None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not str(value).strip().isdigit():
        raise ValueError(f"{value!r} is not a selection number")
    return int(str(value).strip())


def _sentence(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."

"""Selections the person makes on a picture: clicks in and out, a box, a brush and an eraser,
numbered 1, 2, 3 … so a message can say what each becomes ("make 1 red and 2 gold").

A `SelectionBook` holds the numbered selections on one version of one session. Each selection
is the list of steps that made it (gestures and refinements), so undo is taking the last step
back and the book can be saved as data. Its mask is replayed from the steps: SAM segments the
clicks and the box of the selection together (a second click refines the same object), brush
strokes and eraser strokes paint on top, grow / shrink / invert act on what is there.

`Selector` is the process-wide service: one SAM model, its image embeddings kept per version
(the encoder runs once per picture; every later click costs only the light decoder), a
background `prepare` that encodes a version as soon as it is shown, and the books of every chat.
"""

from __future__ import annotations

import base64
import io
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image, ImageDraw
from pydantic import BaseModel, Field, ValidationError

if TYPE_CHECKING:
    from promptartisan.settings import Settings
    from promptartisan.tools.sam import Segmenter

GestureKind = Literal["include", "exclude", "box", "brush", "erase"]
RefineOp = Literal["grow", "shrink", "invert", "clear", "undo", "remove"]

MAX_STROKE_POINTS = 10_000
"""Points in one brush or eraser stroke: a long drag sampled at 60 Hz for a minute and more."""

MAX_STROKE_SIDES = 500
"""A brush or eraser stroke's length, at most, in the picture's long sides: painting the whole
picture over at the canvas's brush size takes some 20."""

MAX_SELECTION_STEPS = 200
"""Gestures and refinements one selection keeps: its mask is replayed from them at each call."""

MAX_REFINE_PIXELS = 256
"""Grow / shrink step limit: beyond it a person means another selection, not a refinement."""

BOOKS_KEPT = 64
"""Books a `Selector` keeps (one per chat and version; the least recently used goes first)."""

_SAM_KINDS = ("include", "exclude", "box")
_SEGMENTS_KEPT = 8  # SAM results per selection, by prompts: undo and redo of clicks are free


class SelectionError(ValueError):
    """A gesture or refinement that can't be done; the message is for the person."""


class Gesture(BaseModel):
    """One gesture on the picture, in the version's pixels (x right, y down): `include` (a
    click) and `exclude` (a shift-click) one point each, `box` two corners, `brush` and `erase`
    the stroke's points with their `radius`."""

    kind: GestureKind
    points: list[tuple[float, float]] = Field(min_length=1, max_length=MAX_STROKE_POINTS)
    radius: float = 8.0


class RefineStep(BaseModel):
    """A step that changes a selection's mask as it stands: grow / shrink by `pixels`, invert,
    or clear (which also forgets the clicks and box before it)."""

    kind: Literal["grow", "shrink", "invert", "clear"]
    pixels: int = 0


Step = Gesture | RefineStep


def _step(data: dict[str, Any]) -> Step:
    return Gesture.model_validate(data) if data.get("kind") in (
        *_SAM_KINDS, "brush", "erase") else RefineStep.model_validate(data)


class _Selection:
    """The steps of one selection and the SAM results for the prompts it has had."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.segments: OrderedDict[str, np.ndarray] = OrderedDict()
        self.rendered: np.ndarray | None = None  # the mask of `steps`, until they change

    def push(self, step: Step) -> None:
        self.steps.append(step)
        self.rendered = None

    def pop(self) -> None:
        self.steps.pop()
        self.rendered = None

    def live(self) -> list[Step]:
        """The steps after the last clear: the ones the mask is made of."""
        cleared = [i for i, s in enumerate(self.steps) if s.kind == "clear"]
        return self.steps[cleared[-1] + 1:] if cleared else list(self.steps)


def _prompts(steps: Sequence[Step]) -> tuple[list[list[float]], list[int], list[float] | None]:
    """SAM's prompts from the gestures: every click (1 in, 0 out) and the last box."""
    points, labels, box = [], [], None
    for step in steps:
        if step.kind in ("include", "exclude"):
            points.append(list(step.points[0]))
            labels.append(int(step.kind == "include"))
        elif step.kind == "box":
            (x0, y0), (x1, y1) = step.points
            box = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
    return points, labels, box


def _segments(points: Sequence[tuple[float, float]]) -> np.ndarray:
    """The stroke through `points` as segments (n, 2 ends, xy); one point is one dot."""
    xy = np.asarray(points, dtype=np.float64)
    return np.stack([xy[:-1], xy[1:]], axis=1) if len(xy) > 1 else xy[None].repeat(2, axis=1)


def _clipped(segments: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The parts of `segments` inside `box` (x0, y0, x1, y1), by Liang–Barsky clipping;
    segments that miss it are dropped. A far-off point then costs nothing to draw."""
    start, delta = segments[:, 0], segments[:, 1] - segments[:, 0]
    enter, leave = np.zeros(len(segments)), np.ones(len(segments))
    keep = np.ones(len(segments), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis, low, high in ((0, box[0], box[2]), (1, box[1], box[3])):
            # Inside is p * t <= q for both sides of this axis.
            for p, q in ((-delta[:, axis], start[:, axis] - low),
                         (delta[:, axis], high - start[:, axis])):
                keep &= (p != 0) | (q >= 0)
                t = q / p
                enter = np.where(p < 0, np.maximum(enter, t), enter)
                leave = np.where(p > 0, np.minimum(leave, t), leave)
    keep &= enter <= leave
    start, delta = start[keep], delta[keep]
    return np.stack([start + enter[keep, None] * delta, start + leave[keep, None] * delta],
                    axis=1)


def _stroke_reach(size: tuple[int, int], radius: float) -> tuple[float, float, float, float]:
    """The picture widened by the brush: a stroke's points beyond it paint no pixel."""
    reach = math.ceil(radius) + 1
    return (-reach, -reach, size[0] + reach, size[1] + reach)


def _stroke(size: tuple[int, int], points: Sequence[tuple[float, float]],
            radius: float) -> np.ndarray:
    """The pixels within `radius` of the stroke through `points`: its segments clipped to the
    picture, the thin lines Pillow draws of them widened by their distance transform, over
    the stroke's box only (so the cost is bounded by the picture's size)."""
    from scipy import ndimage

    width, height = size
    mask = np.zeros((height, width), dtype=bool)
    segments = _clipped(_segments(points), _stroke_reach(size, radius))
    if not len(segments):
        return mask
    reach = math.ceil(radius) + 1
    ends = segments.reshape(-1, 2)
    x0, y0 = np.maximum(np.floor(ends.min(axis=0)).astype(int) - reach, 0)
    x1, y1 = np.minimum(np.ceil(ends.max(axis=0)).astype(int) + reach + 1, [width, height])
    if x1 <= x0 or y1 <= y0:
        return mask
    line = Image.new("1", (int(x1 - x0), int(y1 - y0)), 0)
    draw = ImageDraw.Draw(line)
    for (ax, ay), (bx, by) in (segments - [x0, y0]).tolist():
        draw.line([(ax, ay), (bx, by)], fill=1, width=1)
    mask[y0:y1, x0:x1] = ndimage.distance_transform_edt(~np.array(line, dtype=bool)) <= radius
    return mask


def _grown(mask: np.ndarray, pixels: int) -> np.ndarray:
    from promptartisan.tools.masks import dilate

    return dilate(mask, pixels)


def _shrunk(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Pixels farther than `pixels` from the selection's outline; the picture's edge is not an
    outline (the selection goes on beyond the frame)."""
    from scipy import ndimage

    if not mask.any():
        return mask.copy()
    return ndimage.distance_transform_edt(mask) > pixels


def _png(mask: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(mask).save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _unpng(text: str, size: tuple[int, int]) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(text))) as picture:
        mask = np.array(picture.convert("1"), dtype=bool)
    if mask.shape != (size[1], size[0]):
        raise SelectionError("the saved selections don't fit this picture's size")
    return mask


class SelectionBook:
    """The numbered selections on ONE version of one session. `segment(image, points=,
    labels=, boxes=)` is SAM (a `Grounder.segment` or `Selector.segment`): it returns a mask
    or anything with a `.mask`. Thread-safe: one gesture at a time."""

    def __init__(self, image: Image.Image, version: int,
                 segment: Callable[..., Any], max_regions: int) -> None:
        self.image = image
        self.version = version
        self.segment = segment
        self.max_regions = max_regions
        self.numbers: list[int] = []
        self._selections: dict[int, _Selection] = {}
        self._lock = threading.RLock()

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    # ----- gestures and refinements -------------------------------------------------------

    def gesture(self, gesture: Gesture | dict[str, Any], number: int | None = None) -> int:
        """Apply `gesture` to selection `number`, or to a new selection when None; its number.
        Clicks and a box go to SAM together with the selection's earlier ones. A shift-click
        with no number takes away from the selection under it (the topmost), else the one on
        top: it never starts a selection."""
        gesture = self._valid(gesture)
        with self._lock:
            if number is None and gesture.kind == "exclude":
                number = self._under(gesture.points[0])
            created = number is None
            if number is None:
                if len(self.numbers) >= self.max_regions:
                    raise SelectionError(
                        f"One edit takes at most {self.max_regions} selections; remove one, or "
                        "add to an existing selection.")
                number = max(self._selections, default=0) + 1
                selection = _Selection()
                self._selections[number] = selection
                self.numbers.append(number)
            else:
                selection = self._get(number)
                if gesture.kind == "exclude" and not any(
                        s.kind in ("include", "box") for s in selection.live()):
                    raise SelectionError(f"A shift-click takes away from what a click or a box "
                                         f"found; selection {number} has neither yet.")
                _check_room(number, selection)
            selection.push(gesture)
            try:
                self._render(selection)
            except Exception:
                selection.pop()
                if created:
                    self._forget(number)
                raise
            return number

    def refine(self, number: int, op: RefineOp, pixels: int = 4) -> None:
        """grow / shrink by `pixels`, invert, clear, undo (the last step), remove (the
        selection itself; the others keep their numbers)."""
        with self._lock:
            selection = self._get(number)
            if op == "remove":
                self._forget(number)
            elif op == "undo":
                if not selection.steps:
                    raise SelectionError(f"Selection {number} has nothing to undo.")
                selection.pop()
            elif op in ("grow", "shrink", "invert", "clear"):
                if op in ("grow", "shrink") and (
                        isinstance(pixels, bool) or not isinstance(pixels, int)
                        or not 1 <= pixels <= MAX_REFINE_PIXELS):
                    raise SelectionError(f"Grow or shrink by 1 to {MAX_REFINE_PIXELS} pixels, "
                                         f"not {pixels!r}.")
                _check_room(number, selection)
                selection.push(RefineStep(kind=op, pixels=pixels if op in (
                    "grow", "shrink") else 0))
            else:
                raise SelectionError(f"unknown refinement {op!r}: grow, shrink, invert, clear, "
                                     "undo or remove")

    def reorder(self, numbers: list[int]) -> None:
        """Put the selections in this order: a later one wins where they overlap."""
        with self._lock:
            if sorted(numbers) != sorted(self.numbers) or len(set(numbers)) != len(numbers):
                raise SelectionError(
                    f"Give every selection once to reorder them: {_listed(self.numbers)}.")
            self.numbers = list(numbers)

    def check_version(self, version: int) -> None:
        """Refuse to go on when the chat shows another version than these selections' own."""
        if version != self.version:
            raise SelectionError(
                f"These selections were made on version {self.version}, but the chat is now at "
                f"version {version}: select again on the picture shown.")

    # ----- masks --------------------------------------------------------------------------

    def mask(self, number: int) -> np.ndarray:
        """Selection `number`'s own mask: bool (height, width), overlaps not resolved."""
        with self._lock:
            return self._render(self._get(number))

    def _under(self, point: tuple[float, float]) -> int:
        """The topmost selection whose mask holds `point`, else the top one (the lock held)."""
        if not self.numbers:
            raise SelectionError("A shift-click takes away from a selection: start one with a "
                                 "click or a box first.")
        x, y = (min(max(int(v), 0), side - 1) for v, side in zip(point, self.size, strict=True))
        return next((n for n in reversed(self.numbers)
                     if self._render(self._selections[n])[y, x]), self.numbers[-1])

    def own_masks(self) -> dict[int, np.ndarray]:
        """Every selection's own mask, in the current order, overlaps not resolved: what a
        request takes, so only the selections it names are layered (`layered`)."""
        with self._lock:
            return {n: self._render(self._selections[n]) for n in self.numbers}

    def masks(self) -> dict[int, np.ndarray]:
        """Every selection's mask in the current order, a later one winning where they
        overlap (so they don't overlap)."""
        return layered(self.own_masks())

    # ----- saving -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The book as JSON data: each selection's steps, and SAM's mask for its current
        clicks and box so `from_json` needs no model to show it again."""
        with self._lock:
            selections = []
            for number in self.numbers:
                selection = self._selections[number]
                key = self._segment_key(selection.live())
                sam = selection.segments.get(key) if key else None
                selections.append({"number": number,
                                   "steps": [s.model_dump(mode="json") for s in selection.steps],
                                   "sam_mask": None if sam is None else _png(sam)})
            return {"version": self.version, "size": list(self.size),
                    "max_regions": self.max_regions, "selections": selections}

    @classmethod
    def from_json(cls, data: dict[str, Any], image: Image.Image,
                  segment: Callable[..., Any], max_regions: int | None = None) -> SelectionBook:
        """The book `to_json` saved, on `image` (the same version's picture)."""
        try:
            if list(data["size"]) != list(image.size):
                raise SelectionError(
                    f"The saved selections were made on a {data['size'][0]}×{data['size'][1]} "
                    f"picture, not this {image.width}×{image.height} one.")
            book = cls(image, int(data["version"]), segment,
                       max_regions or int(data["max_regions"]))
            for entry in data["selections"]:
                number = int(entry["number"])
                selection = _Selection()
                selection.steps = [_step(step) for step in entry["steps"]]
                if len(selection.steps) > MAX_SELECTION_STEPS:
                    raise SelectionError(f"saved selections that can't be read: selection "
                                         f"{number} has more than {MAX_SELECTION_STEPS} steps")
                for step in selection.steps:
                    if isinstance(step, Gesture):
                        book._valid(step)
                key = book._segment_key(selection.live())
                if key and entry.get("sam_mask"):
                    selection.segments[key] = _unpng(entry["sam_mask"], image.size)
                book._selections[number] = selection
                book.numbers.append(number)
        except SelectionError:
            raise
        except (KeyError, TypeError, ValueError, OSError) as exc:  # a damaged save, any part
            raise SelectionError(f"saved selections that can't be read: {exc}") from exc
        if len(book.numbers) > book.max_regions or len(set(book.numbers)) != len(book.numbers):
            raise SelectionError("saved selections that can't be read: too many or repeated")
        return book

    # ----- inside -------------------------------------------------------------------------

    def _get(self, number: int) -> _Selection:
        if number not in self._selections:
            have = f"; the selections are {_listed(self.numbers)}" if self.numbers else ""
            raise SelectionError(f"There is no selection {number}{have}.")
        return self._selections[number]

    def _forget(self, number: int) -> None:
        del self._selections[number]
        self.numbers.remove(number)

    def _valid(self, gesture: Gesture | dict[str, Any]) -> Gesture:
        """`gesture` checked against the picture, or a SelectionError saying what is wrong."""
        if not isinstance(gesture, Gesture):
            try:
                gesture = Gesture.model_validate(gesture)
            except ValidationError as exc:
                problem = exc.errors()[0]
                raise SelectionError(f"That gesture can't be read ({problem['msg']}).") from exc
        width, height = self.size
        points = np.asarray(gesture.points, dtype=np.float64)
        if not np.isfinite(points).all():
            raise SelectionError("A gesture's points must be numbers.")
        expected = {"include": 1, "exclude": 1, "box": 2}.get(gesture.kind)
        if expected is not None and len(points) != expected:
            raise SelectionError(f"A {gesture.kind} gesture has {expected} point"
                                 f"{'s' if expected > 1 else ''}, not {len(points)}.")
        inside = (points[:, 0] >= 0) & (points[:, 0] <= width) & (points[:, 1] >= 0) \
            & (points[:, 1] <= height)
        if gesture.kind in ("include", "exclude") and not inside.all():
            x, y = points[0]
            raise SelectionError(f"The click at ({x:g}, {y:g}) is outside the {width}×{height} "
                                 "picture.")
        if gesture.kind == "box":
            x0, x1 = np.clip(np.sort(points[:, 0]), 0, width)
            y0, y1 = np.clip(np.sort(points[:, 1]), 0, height)
            if x1 - x0 < 1 or y1 - y0 < 1:
                raise SelectionError("That box has no area inside the picture: drag across the "
                                     "part to select.")
            gesture = gesture.model_copy(
                update={"points": [(float(x0), float(y0)), (float(x1), float(y1))]})
        if gesture.kind in ("brush", "erase"):
            if not (math.isfinite(gesture.radius) and 0 < gesture.radius <= max(width, height)):
                raise SelectionError(f"A brush radius must be above 0 and at most "
                                     f"{max(width, height)} pixels, not {gesture.radius:g}.")
            segments = _segments(gesture.points)
            length = float(np.hypot(*(segments[:, 1] - segments[:, 0]).T).sum())
            limit = MAX_STROKE_SIDES * max(width, height)
            if not length <= limit:  # an overflow to infinity too
                raise SelectionError(
                    f"That stroke is {length:,.0f} pixels long; one stroke on this picture may "
                    f"be {limit:,} pixels long at most ({MAX_STROKE_SIDES} times its long side)"
                    ": paint in shorter strokes.")
            if not len(_clipped(segments, _stroke_reach(self.size, gesture.radius))):
                raise SelectionError(f"That stroke is outside the {width}×{height} picture.")
        return gesture

    def _segment_key(self, steps: Sequence[Step]) -> str | None:
        points, labels, box = _prompts(steps)
        if box is None and 1 not in labels:
            return None
        return repr((points, labels, box))

    def _sam_mask(self, selection: _Selection, steps: Sequence[Step]) -> np.ndarray | None:
        """SAM's mask for the selection's clicks and box, remembered by prompts."""
        key = self._segment_key(steps)
        if key is None:
            return None
        if key not in selection.segments:
            points, labels, box = _prompts(steps)
            try:
                found = self.segment(self.image, points=points or None,
                                     labels=labels or None,
                                     boxes=None if box is None else [box])
            except ValueError as exc:
                if isinstance(exc, SelectionError):
                    raise
                raise SelectionError(f"That selection can't be made: {exc}.") from exc
            mask = np.asarray(getattr(found, "mask", found), dtype=bool)
            if mask.ndim == 3:  # (k, height, width) from a bare segmenter: one mask here
                mask = np.logical_or.reduce(mask)
            selection.segments[key] = mask
            while len(selection.segments) > _SEGMENTS_KEPT:
                selection.segments.popitem(last=False)
        selection.segments.move_to_end(key)
        return selection.segments[key]

    def _render(self, selection: _Selection) -> np.ndarray:
        """The selection's mask, replayed from its live steps once after each change (a call
        on the canvas shows every selection: none is drawn again unless it changed)."""
        if selection.rendered is None:
            selection.rendered = self._replay(selection)
        return selection.rendered.copy()

    def _replay(self, selection: _Selection) -> np.ndarray:
        steps = selection.live()
        width, height = self.size
        base = self._sam_mask(selection, steps)
        mask = np.zeros((height, width), dtype=bool) if base is None else base.copy()
        for step in steps:
            if step.kind == "brush":
                mask |= _stroke(self.size, step.points, step.radius)
            elif step.kind == "erase":
                mask &= ~_stroke(self.size, step.points, step.radius)
            elif step.kind == "grow":
                mask = _grown(mask, step.pixels)
            elif step.kind == "shrink":
                mask = _shrunk(mask, step.pixels)
            elif step.kind == "invert":
                mask = ~mask
        return mask


def layered(masks: dict[int, np.ndarray],
            numbers: Sequence[int] | None = None) -> dict[int, np.ndarray]:
    """The masks of `numbers` (default: all), in `masks`' order, a later one winning where
    they overlap; the others take no part, so a selection a request doesn't name never
    takes pixels from one it does."""
    chosen = [n for n in masks if numbers is None or n in numbers]
    taken: np.ndarray | None = None
    resolved: dict[int, np.ndarray] = {}
    for number in reversed(chosen):
        own = np.asarray(masks[number], dtype=bool)
        resolved[number] = own if taken is None else own & ~taken
        taken = own.copy() if taken is None else taken | own
    return {n: resolved[n] for n in chosen}


def _check_room(number: int, selection: _Selection) -> None:
    """Refuse a step beyond `MAX_SELECTION_STEPS`: every call replays a selection's steps."""
    if len(selection.steps) >= MAX_SELECTION_STEPS:
        raise SelectionError(f"Selection {number} has {MAX_SELECTION_STEPS} steps, as many as "
                             "one selection keeps: undo some, or start another selection.")


def _listed(numbers: Sequence[int]) -> str:
    words = [str(n) for n in numbers]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


class Selector:
    """The process's pointing service: one SAM segmenter (its embeddings kept per picture),
    background encoding of a version as soon as it is shown, and the books of every chat.
    `segmenter`: the segmenter, or a function that loads it on first use."""

    def __init__(self, segmenter: Segmenter | Callable[[], Segmenter], max_regions: int = 8,
                 books_kept: int = BOOKS_KEPT) -> None:
        self._make = segmenter if callable(segmenter) else (lambda: segmenter)
        self._segmenter: Segmenter | None = None
        self.max_regions = max_regions
        self.books_kept = books_kept
        self._books: OrderedDict[tuple[str, int], SelectionBook] = OrderedDict()
        self._preparing: dict[bytes, threading.Thread] = {}
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, settings: Settings) -> Selector:
        """The process's one Selector for these settings' SAM model and device."""
        from promptartisan import models
        from promptartisan.shared import shared_model
        from promptartisan.tools.sam import load_segmenter

        device = settings.resolved_device()
        key = ("selector", settings.sam, settings.tiny, str(settings.tiny_dir), device,
               settings.max_regions)
        return shared_model(key, lambda: cls(
            lambda: load_segmenter(models.resolve("sam", settings), device),
            settings.max_regions))

    @property
    def segmenter(self) -> Segmenter:
        with self._lock:
            if self._segmenter is None:
                self._segmenter = self._make()
            return self._segmenter

    def book(self, session_id: str, version: int, image: Image.Image) -> SelectionBook:
        """The selections of chat `session_id` on `version` (an empty book the first time)."""
        key = (session_id, version)
        with self._lock:
            book = self._books.get(key)
            if book is None or book.size != image.size:
                book = SelectionBook(image, version, self.segment, self.max_regions)
                self._books[key] = book
            self._books.move_to_end(key)
            while len(self._books) > self.books_kept:
                self._books.popitem(last=False)
            return book

    def segment(self, image: Image.Image, points: Any = None, labels: Any = None,
                boxes: Any = None) -> np.ndarray:
        """SAM's mask for clicks and a box, at `image`'s size; a picture longer than the
        grounding limit is segmented on a smaller copy, as text grounding is."""
        from promptartisan.shared import DEVICE_LOCK
        from promptartisan.tools.mask_io import resize_mask

        small = _working_copy(image)
        scale = np.array([small.width / image.width, small.height / image.height])
        if points is not None:
            points = (np.asarray(points, dtype=np.float64) * scale).tolist()
        if boxes is not None:
            boxes = (np.asarray(boxes, dtype=np.float64) * np.tile(scale, 2)).tolist()
        segmenter = self.segmenter
        with DEVICE_LOCK:
            masks, _ = segmenter.predict(small, points=points, labels=labels, boxes=boxes)
        return resize_mask(np.logical_or.reduce(masks), image.size)

    def prepare(self, image: Image.Image) -> None:
        """Start encoding `image` in the background (under the device lock) unless it is
        encoded or being encoded; returns at once."""
        from promptartisan.tools.sam import _digest

        small = _working_copy(image)
        key = _digest(small)
        with self._lock:
            running = self._preparing.get(key)
            if running is not None and running.is_alive():
                return
            thread = threading.Thread(target=self._encode, args=(small, key),
                                      name="sam-prepare", daemon=True)
            self._preparing[key] = thread
        thread.start()

    def ready(self, image: Image.Image) -> bool:
        """Whether a click on `image` is answered without encoding it first."""
        with self._lock:
            segmenter = self._segmenter
        return segmenter is not None and segmenter.encoded(_working_copy(image))

    def wait(self, image: Image.Image, timeout: float | None = None) -> bool:
        """Wait for `image`'s background encoding (if one runs); whether it is ready."""
        from promptartisan.tools.sam import _digest

        with self._lock:
            running = self._preparing.get(_digest(_working_copy(image)))
        if running is not None:
            running.join(timeout)
        return self.ready(image)

    def _encode(self, small: Image.Image, key: bytes) -> None:
        from promptartisan.shared import DEVICE_LOCK

        try:
            segmenter = self.segmenter
            with DEVICE_LOCK:
                segmenter.encode(small)
        except Exception:  # a failed prepare only means the first click encodes
            import logging

            logging.getLogger(__name__).exception("preparing the selection model failed")
        finally:
            with self._lock:
                self._preparing.pop(key, None)


def _working_copy(image: Image.Image) -> Image.Image:
    """The copy SAM sees: the picture itself, or one `GROUNDING_LONG_SIDE` long."""
    from promptartisan.tools.grounding import GROUNDING_LONG_SIDE

    scale = GROUNDING_LONG_SIDE / max(image.size)
    if scale >= 1:
        return image if image.mode == "RGB" else image.convert("RGB")
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.convert("RGB").resize(size, Image.Resampling.BILINEAR)

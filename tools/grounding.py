"""Grounding: from the target phrases of a turn, clicks or boxes to masks.

A grounder encodes the image once per call and answers every phrase from that encoding;
whole-image phrases never reach a model. Backends only find instances of a noun; which of
them a phrase means ("the left car", "every car") is decided here, the same for all backends.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import ExifTags, Image

from promptartisan.tools.images import InvalidImageError, load_image
from promptartisan.tools.mask_io import resize_mask
from promptartisan.tools.masks import Refinement, box_of, refine
from promptartisan.tools.phrases import choose, parse

if TYPE_CHECKING:
    from promptartisan.settings import Settings
    from promptartisan.tools.sam import Segmenter

BACKENDS = ("clipseg", "grounded-sam", "sam")

GROUNDING_LONG_SIDE = 2048
"""A bigger image is grounded on a copy this long: the models see 352 to 1024 pixels, so
refining masks at full size only costs memory (label and distance maps of gigabytes at
7000×7000). Masks come back resized to the image, boxes in its pixels."""


@dataclass
class Grounding:
    """Where one phrase (or one set of clicks) lands in the image."""

    mask: np.ndarray = field(repr=False)  # bool (height, width), the image's size
    score: float
    boxes: np.ndarray  # (k, 4) xyxy in image pixels: the instances the mask came from
    label: str
    group: int | None = None  # plural targets: one group, generated consistently
    ambiguous: bool = False  # a singular phrase matched several similar instances
    candidates: list[np.ndarray] = field(default_factory=list)  # their boxes, left to right

    @property
    def area(self) -> float:
        """Fraction of the image the mask covers."""
        return float(self.mask.mean())


@dataclass
class Instance:
    """One object a backend found for a query: its mask at the image's size, box and score."""

    mask: np.ndarray = field(repr=False)
    box: np.ndarray
    score: float


def as_image(image: Image.Image | np.ndarray | str | Path | bytes) -> Image.Image:
    """An RGB PIL image from what callers hand over, or an `InvalidImageError`."""
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or image.size == 0:
            raise InvalidImageError(f"an image array must be HxW or HxWxC, got {image.shape}")
        if image.dtype != np.uint8:
            raise InvalidImageError(f"an image array must be uint8, got {image.dtype}")
        image = Image.fromarray(image)
    if isinstance(image, Image.Image):  # in memory: no decoding to guard, so no pixel limit
        if image.mode == "RGB" and image.getexif().get(ExifTags.Base.Orientation, 1) == 1:
            return image  # already upright RGB: no full-size copy
        return load_image(image, max_pixels=image.width * image.height)
    return load_image(image)


def as_phrases(phrases: Sequence[str] | str) -> list[str]:
    """A non-empty list of non-blank phrases; one string is one phrase."""
    if isinstance(phrases, str):
        phrases = [phrases]
    phrases = list(phrases)
    if not phrases:
        raise ValueError("no phrases to ground: give at least one target phrase")
    for phrase in phrases:
        if not isinstance(phrase, str) or not phrase.strip():
            raise ValueError(f"a target phrase must be non-empty text, got {phrase!r}")
    return phrases


def full_grounding(size: tuple[int, int], label: str) -> Grounding:
    width, height = size
    return Grounding(
        mask=np.ones((height, width), dtype=bool), score=1.0,
        boxes=np.array([[0, 0, width, height]], dtype=np.float32), label=label,
    )


def _for_grounding(image: Image.Image) -> Image.Image:
    """`image`, or a copy with the long side `GROUNDING_LONG_SIDE` when it is longer."""
    scale = GROUNDING_LONG_SIDE / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR)


def _at_size(grounding: Grounding, small: tuple[int, int], size: tuple[int, int]) -> Grounding:
    """`grounding` found on a copy of `small` size, for the image of `size`."""
    if small == size:
        return grounding
    scale = np.array([size[0] / small[0], size[1] / small[1]] * 2, dtype=np.float32)
    return replace(grounding, mask=resize_mask(grounding.mask, size),
                   boxes=np.asarray(grounding.boxes, dtype=np.float32).reshape(-1, 4) * scale,
                   candidates=[np.asarray(box, dtype=np.float32) * scale
                               for box in grounding.candidates])


class Grounder(ABC):
    """Text → masks for all the phrases of a turn; clicks and boxes → a mask (through SAM)."""

    def __init__(self, refinement: Refinement | None = None,
                 segmenter: Callable[[], Segmenter] | None = None) -> None:
        self.refinement = refinement or Refinement()
        self._make_segmenter = segmenter
        self._segmenter: Segmenter | None = None

    @abstractmethod
    def find(self, image: Image.Image, queries: list[str]) -> list[list[Instance]]:
        """Every instance of each query, from one encoding of `image`."""

    def ground(self, image: Image.Image | np.ndarray | str | Path | bytes,
               phrases: Sequence[str] | str) -> list[Grounding | None]:
        """One grounding per phrase (None where nothing fits), in the phrases' order. Plural
        phrases get `group` = their position in `phrases`."""
        image = as_image(image)
        small = _for_grounding(image)
        return [None if found is None else _at_size(found, small.size, image.size)
                for found in self._ground(small, phrases)]

    def _ground(self, image: Image.Image, phrases: Sequence[str] | str
                ) -> list[Grounding | None]:
        targets = [parse(phrase) for phrase in as_phrases(phrases)]
        queries = list(dict.fromkeys(t.query for t in targets if not t.whole))
        found = dict(zip(queries, self.find(image, queries), strict=True)) if queries else {}
        results: list[Grounding | None] = []
        for position, target in enumerate(targets):
            if target.whole:
                results.append(full_grounding(image.size, target.text))
                continue
            instances = found[target.query]
            boxes = np.array([i.box for i in instances], dtype=np.float32).reshape(-1, 4)
            scores = np.array([i.score for i in instances], dtype=np.float32)
            choice = choose(target, boxes, scores, image.size)
            if choice is None:
                results.append(None)
                continue
            score = float(max(scores[i] for i in choice.indices))
            mask = refine(np.logical_or.reduce([instances[i].mask for i in choice.indices]),
                          self.refinement)
            if mask is None or score < self.refinement.min_score:
                results.append(None)
                continue
            results.append(Grounding(
                mask=mask, score=score, boxes=boxes[choice.indices], label=target.text,
                group=position if target.plural else None, ambiguous=choice.ambiguous,
                candidates=[boxes[i] for i in choice.candidates or []],
            ))
        return results

    def segment(self, image: Image.Image | np.ndarray | str | Path | bytes,
                points: Sequence[Sequence[float]] | None = None,
                labels: Sequence[int] | None = None,
                boxes: Sequence[Sequence[float]] | None = None) -> Grounding:
        """The region a person pointed at: `points` (x, y) with `labels` (1 in, 0 out; all 1
        by default) and/or `boxes` (x0, y0, x1, y1), in image pixels. Always a mask: a click
        on something tiny keeps its tiny mask rather than None."""
        full = as_image(image)
        image = _for_grounding(full)
        if image is not full:  # clicks and boxes in the copy's pixels
            x, y = image.width / full.width, image.height / full.height
            if points is not None:
                points = (np.asarray(points, dtype=np.float64) * [x, y]).tolist()
            if boxes is not None:
                boxes = (np.asarray(boxes, dtype=np.float64) * [x, y, x, y]).tolist()
        masks, scores = self.segmenter.predict(image, points=points, labels=labels, boxes=boxes)
        raw = np.logical_or.reduce(masks)
        mask = refine(raw, self.refinement)
        given = np.asarray(boxes, dtype=np.float32).reshape(-1, 4) if boxes is not None else None
        return _at_size(Grounding(
            mask=raw if mask is None else mask, score=float(np.mean(scores)),
            boxes=given if given is not None and len(given) else box_of(raw)[None],
            label="selection",
        ), image.size, full.size)

    @property
    def segmenter(self) -> Segmenter:
        """SAM, loaded on first use: grounders that never see a click never load it."""
        if self._segmenter is None:
            if self._make_segmenter is None:
                raise ValueError(f"{type(self).__name__} has no SAM model for clicks and boxes")
            self._segmenter = self._make_segmenter()
        return self._segmenter


def load_grounder(backend: str | None = None, model: str | None = None,
                  device: str | None = None, settings: Settings | None = None) -> Grounder:
    """A grounder by backend name: "clipseg", "grounded-sam", "sam" or "auto" (None) for the
    settings' choice. `model` overrides the backend's main model (a hub id or a folder; for
    "sam" also a segment-anything `.pth` checkpoint); clicks use `settings.sam`."""
    from promptartisan.settings import Settings

    settings = settings or Settings()
    backend = settings.resolved_grounding_backend() if backend in (None, "auto") else backend
    device = device or settings.resolved_device()
    if backend == "clipseg":
        from promptartisan.tools.clipseg import ClipSegGrounder

        return ClipSegGrounder.load(settings, model=model, device=device)
    if backend == "grounded-sam":
        from promptartisan.tools.grounded_sam import GroundedSamGrounder

        return GroundedSamGrounder.load(settings, model=model, device=device)
    if backend == "sam":
        from promptartisan.tools.sam import SamGrounder

        return SamGrounder.load(settings, model=model, device=device)
    raise ValueError(f"unknown grounding backend {backend!r}; known: {', '.join(BACKENDS)}, auto")

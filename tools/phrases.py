"""What a target phrase asks for, and which detected instances it means.

The models are asked only for the noun ("car"); the words around it decide among what they
find: "the left car" takes the leftmost instance, "every car" all of them as one group,
"the second car from the right" counts from the right. A singular phrase that several
similar instances match, with nothing to decide between them, is flagged ambiguous so the
agent can ask which one was meant instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

WHOLE_IMAGE = frozenset(
    "image photo photograph picture pic img scene frame shot everything all it".split()
)
_FRAMING = frozenset("the a an this that my our your whole entire full complete overall".split())
_DETERMINERS = frozenset("the a an this that these those my our your his her its their".split())
_QUANTIFIERS = {"every": None, "each": None, "all": None, "both": 2, "two": 2, "three": 3,
                "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
_QUALIFIERS = {
    **dict.fromkeys(["left", "leftmost", "left-hand", "lefthand"], "left"),
    **dict.fromkeys(["right", "rightmost", "right-hand", "righthand"], "right"),
    **dict.fromkeys(["top", "upper", "topmost", "uppermost", "highest"], "top"),
    **dict.fromkeys(["bottom", "lower", "bottommost", "lowest"], "bottom"),
    **dict.fromkeys(["middle", "center", "centre", "central", "centered"], "middle"),
    **dict.fromkeys(["largest", "biggest", "larger", "bigger", "big", "large"], "largest"),
    **dict.fromkeys(["smallest", "tiniest", "smaller", "small", "tiny"], "smallest"),
}
_ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3,
             "4th": 3, "fifth": 4, "5th": 4, "last": -1}
# Words that tie a qualifier to the phrase: "on the left", "second from the right", "left side".
_LINKS = frozenset("on to at in from of the side hand most one".split())
# Uncountable regions: every piece found is the region, never a choice between instances.
STUFF = frozenset(
    """sky grass water sea ocean lake river background foreground ground floor ceiling wall road
    street sidewalk snow sand field forest hair fur skin fog smoke mist lighting light sunlight
    beach lawn dirt mud ice fire scenery landscape vegetation foliage carpet""".split()
)
_IRREGULAR_PLURALS = frozenset(
    "people men women children feet teeth mice geese oxen cattle police".split()
)
_SINGULAR_S = frozenset("bus gas lens canvas atlas christmas news series species".split())
SIMILAR_AREA = 0.25  # a rival instance must be at least this share of the best one's box

_RELATIONS = frozenset(
    "of with next near on in behind under above below by holding wearing beside".split()
)


@dataclass(frozen=True)
class Target:
    """A parsed target phrase. `query` is what the model looks for."""

    text: str
    query: str
    whole: bool = False
    plural: bool = False
    count: int | None = None  # "two cats": the two best instances
    qualifiers: tuple[str, ...] = ()
    ordinal: int | None = None  # 0-based; -1 is "last"
    stuff: bool = False


@dataclass(frozen=True)
class Choice:
    """The instances a target means (indices into the detections)."""

    indices: list[int]
    ambiguous: bool = False
    candidates: list[int] | None = None


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:[-'][a-z0-9]+)*", text.lower())


def is_plural(noun: str) -> bool:
    """English plural by form: 'cars', 'people', 'leaves'; not 'bus', 'glass', 'cactus'."""
    if noun in _IRREGULAR_PLURALS:
        return True
    if noun in _SINGULAR_S or len(noun) < 3 or not noun.endswith("s"):
        return False
    return not noun.endswith(("ss", "us", "is"))


def parse(phrase: str) -> Target:
    """Split `phrase` into the noun phrase to look for and the words that choose."""
    words = _words(phrase)
    if not words:
        raise ValueError(f"the target phrase {phrase!r} has no words")
    if all(w in _FRAMING or w in WHOLE_IMAGE for w in words) and any(
        w in WHOLE_IMAGE or w in ("whole", "entire") for w in words
    ):
        return Target(text=phrase, query="", whole=True)
    plural, count, qualifiers, ordinal = False, None, [], None
    kept: list[str] = []
    for i, word in enumerate(words):
        after = words[i + 1] if i + 1 < len(words) else ""
        if word in _QUANTIFIERS and not kept:
            plural, count = True, _QUANTIFIERS[word] or count
        elif word in _ORDINALS and after != "of":
            ordinal = _ORDINALS[word]
        elif word in _QUALIFIERS and after != "of":
            qualifiers.append(_QUALIFIERS[word])
        elif (word in _DETERMINERS or word == "of") and not kept:
            continue
        else:
            kept.append(word)
    if qualifiers or ordinal is not None:
        kept = _drop_links(kept)
    kept = _drop_trailing_frame(kept)
    query = " ".join(kept) or phrase.strip()
    head = _head_noun(kept)
    plural = plural or is_plural(head)
    return Target(
        text=phrase, query=query, plural=plural, count=count, qualifiers=tuple(qualifiers),
        ordinal=ordinal, stuff=head in STUFF,
    )


def _drop_links(words: list[str]) -> list[str]:
    """Remove the glue a removed qualifier leaves behind ("car on the" → "car")."""
    while words and words[-1] in _LINKS:
        words = words[:-1]
    while words and words[0] in _LINKS:
        words = words[1:]
    return words


def _drop_trailing_frame(words: list[str]) -> list[str]:
    """"the car in the picture" → "car": the frame is not part of the object."""
    if len(words) >= 2 and words[-1] in WHOLE_IMAGE - {"all", "it", "everything"}:
        cut = len(words) - 1
        while cut > 0 and words[cut - 1] in _LINKS:
            cut -= 1
        if cut < len(words) - 1:
            return words[:cut]
    return words


def _head_noun(words: list[str]) -> str:
    """The noun the phrase is about: the last word before a relation ("man next to the car")."""
    for i, word in enumerate(words):
        if i and word in _RELATIONS:
            return words[i - 1]
    return words[-1] if words else ""


def choose(target: Target, boxes: np.ndarray, scores: np.ndarray, size: tuple[int, int],
           similar: float = 0.8) -> Choice | None:
    """Pick the instances `target` means among detections (`boxes` xyxy, `scores`), in an
    image of `size` (width, height). None when nothing fits ("the third car" of two).
    A singular target without qualifier is ambiguous when another instance scores at least
    `similar` times the best one and is not much smaller (a fragment of the same object,
    such as a dog's tail cut off by a fence, is no second dog)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(boxes) == 0:
        return None
    by_score = [int(i) for i in np.argsort(-scores, kind="stable")]
    if target.plural and not target.qualifiers and target.ordinal is None:
        return Choice(indices=sorted(by_score[: target.count or len(by_score)]))
    if target.qualifiers or target.ordinal is not None:
        key = _position_key(target.qualifiers or ("left",), boxes, size)
        order = [int(i) for i in np.argsort(key, kind="stable")]
        index = target.ordinal or 0
        if not -len(order) <= index < len(order):
            return None
        return Choice(indices=[order[index]])
    if target.stuff:
        return Choice(indices=sorted(by_score))
    best = by_score[0]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    close = [i for i in by_score
             if scores[i] >= similar * scores[best] and area[i] >= SIMILAR_AREA * area[best]]
    if len(close) > 1:
        close.sort(key=lambda i: (boxes[i, 0] + boxes[i, 2]))
        return Choice(indices=[best], ambiguous=True, candidates=close)
    return Choice(indices=[best])


def _position_key(qualifiers: tuple[str, ...], boxes: np.ndarray,
                  size: tuple[int, int]) -> np.ndarray:
    """Lower is a better match: the sum of each qualifier's normalised key."""
    width, height = size
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 / max(width, 1)
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 / max(height, 1)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    area = area / max(area.max(), 1e-9)
    keys = {
        "left": cx, "right": 1 - cx, "top": cy, "bottom": 1 - cy,
        "middle": np.hypot(cx - 0.5, cy - 0.5), "largest": 1 - area, "smallest": area,
    }
    return np.sum([keys[q] for q in qualifiers], axis=0)

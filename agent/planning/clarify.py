"""Questions the agent asks about where to edit, and reading the answers.

A target that matched several instances gets a question with choices named by position
("the left one", "the right one", "all of them"); a target that matched nothing gets a request
to rephrase or point at it.
"""

from __future__ import annotations

import re

import numpy as np

ALL = "all of them"
_ALL_WORDS = {"all", "both", "every", "each", "everything", "them"}
_ORDINALS = {"first": 0, "1st": 0, "1": 0, "second": 1, "2nd": 1, "two": 1, "2": 1,
             "third": 2, "3rd": 2, "three": 2, "3": 2, "fourth": 3, "4th": 3, "four": 3, "4": 3,
             "fifth": 4, "5th": 4, "five": 4, "5": 4, "sixth": 5, "6th": 5, "six": 5, "6": 5}
_ORDINAL_NAMES = ["1st", "2nd", "3rd", "4th", "5th", "6th", "7th", "8th", "9th", "10th"]


def order_left_to_right(boxes: list[np.ndarray]) -> list[list[float]]:
    """Candidate boxes (x0, y0, x1, y1) sorted by their centre's x, as plain lists."""
    ordered = sorted(boxes, key=lambda box: float(box[0] + box[2]) / 2)
    return [[float(v) for v in box] for box in ordered]


def position_choices(count: int) -> list[str]:
    """Names for `count` candidates ordered left to right, then "all of them"."""
    if count == 2:
        names = ["the left one", "the right one"]
    elif count == 3:
        names = ["the left one", "the middle one", "the right one"]
    else:
        names = [f"the {_ORDINAL_NAMES[i] if i < len(_ORDINAL_NAMES) else f'{i + 1}th'} "
                 f"from the left" for i in range(count)]
    return [*names, ALL]


def which_question(target: str, count: int) -> str:
    return f"I see {count} of \"{target}\" in the picture. Which one should I change?"


def not_found_question(target: str) -> str:
    return (f"I couldn't find \"{target}\" in the picture. Could you describe it differently, "
            f"or point at it (draw a mask or click on it)?")


def pick_choice(answer: str, choices: list[str]) -> int | str | None:
    """Which candidate (index, left to right) an answer names, ALL for every one of them, or
    None when it names none (then it is read as a new request)."""
    text = answer.strip().lower().rstrip(".!")
    count = len(choices) - 1
    for index, choice in enumerate(choices[:-1]):
        if text == choice or text == choice.removeprefix("the "):
            return index
    words = re.findall(r"[a-z0-9]+", text)
    if text == ALL or _ALL_WORDS & set(words):
        return ALL
    ordinal = next((_ORDINALS[w] for w in words if w in _ORDINALS), None)
    from_right = "right" in words
    if ordinal is not None and ordinal < count:
        return count - 1 - ordinal if from_right and "left" not in words else ordinal
    if "middle" in words or "center" in words or "centre" in words:
        return count // 2 if count % 2 else None
    if "left" in words or "leftmost" in words:
        return 0
    if "right" in words or "rightmost" in words:
        return count - 1
    return None


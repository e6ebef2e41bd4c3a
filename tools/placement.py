"""Where an addition placed by a relation goes ("add a cat next to the dog"): the target
"next to the dog" is a relation and an anchor; the anchor is grounded like any target, and the
region the new thing is painted in follows from the anchor's box and mask.

The rules, with w×h the anchor's box (x0, y0)–(x1, y1); every region is clipped to the image:

=================  ===========================================  =================================
relation           region                                       why
=================  ===========================================  =================================
next to, beside    a box of the anchor's size, on its rows,     things side by side stand on the
                   touching the side with more room             same ground at about one size;
                                                                the roomier side fits it best
left of, right of  the same box, on the side named              as above, the side is given
on top of, on      the anchor's columns, from h/2 above its     a thing resting on another
                   top edge to h/4 into it                      covers the top of its surface
above              the anchor's columns, a box of its height    over it, not touching: no
                   ending at its top edge                       overlap with the anchor
below              the anchor's columns, a box of its height    under it in the picture, not
                   starting at its bottom edge                  touching
under              the anchor's columns, from its middle to     what is under a table or a
                   h/4 below its bottom, minus the anchor's     chair shows between its legs,
                   own pixels                                   which stay in front of it
behind             the anchor's box grown by w/2 and h/2 on     the new thing can only show
                   each side, minus the anchor's own pixels     around the anchor, which stays
                                                                whole in front of it
in front of        the anchor's columns grown by w/4 on each    a nearer thing hides the
                   side, from its middle to h/4 below its       anchor's lower part and stands a
                   bottom, the anchor included                  little lower in the picture
=================  ===========================================  =================================
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from promptartisan.tools.grounding import Grounding
from promptartisan.tools.masks import box_of
from promptartisan.tools.phrases import parse

RELATIONS = ("next to", "beside", "left of", "right of", "behind", "in front of", "on top of",
             "on", "above", "below", "under")
_PLACEMENT = re.compile(
    r"(?:to the |to )?(" + "|".join(sorted(RELATIONS, key=len, reverse=True)).replace(" ", r"\s+")
    + r")\s+(.+)")
# Anchors that are places in the frame, not things: "on the left" is a position, not a relation.
_POSITIONS = frozenset("the left right top bottom middle center centre side corner edge "
                       "background foreground front back".split())


def parse_placement(target: str) -> tuple[str, str] | None:
    """("next to", "the dog") for the target "next to the dog"; None when the target names no
    relation to a thing ("the dog", "on the left", "on the image")."""
    match = _PLACEMENT.fullmatch(" ".join(target.lower().split()))
    if match is None:
        return None
    relation, anchor = " ".join(match.group(1).split()), match.group(2).strip(" .,!")
    words = re.findall(r"[a-z0-9]+", anchor)
    if not words or set(words) <= _POSITIONS or parse(anchor).whole:
        return None
    return relation, anchor


def placement_mask(anchor_mask: np.ndarray, relation: str, size: tuple[int, int]
                   ) -> np.ndarray:
    """The region (bool, height × width of `size`) where a thing placed `relation` to the
    anchor goes, by the module's table; empty when the anchor is empty or there is no room
    (nothing above an anchor at the top edge)."""
    width, height = size
    anchor = np.asarray(anchor_mask, dtype=bool)
    if anchor.shape != (height, width):
        raise ValueError(f"the anchor mask is {anchor.shape[1]}×{anchor.shape[0]}, the image "
                         f"is {width}×{height}")
    if relation not in RELATIONS:
        raise ValueError(f"unknown placement {relation!r}; known: {', '.join(RELATIONS)}")
    out = np.zeros((height, width), dtype=bool)
    if not anchor.any():
        return out
    x0, y0, x1, y1 = (int(v) for v in box_of(anchor))
    w, h = x1 - x0, y1 - y0
    if relation in ("next to", "beside"):
        relation = "left of" if x0 > width - x1 else "right of"
    box = {
        "left of": (x0 - w, y0, x0, y1),
        "right of": (x1, y0, x1 + w, y1),
        "on top of": (x0, y0 - h // 2, x1, y0 + h // 4),
        "on": (x0, y0 - h // 2, x1, y0 + h // 4),
        "above": (x0, y0 - h, x1, y0),
        "below": (x0, y1, x1, y1 + h),
        "under": (x0, y0 + h // 2, x1, y1 + h // 4),
        "behind": (x0 - w // 2, y0 - h // 2, x1 + w // 2, y1 + h // 2),
        "in front of": (x0 - w // 4, y0 + h // 2, x1 + w // 4, y1 + h // 4),
    }[relation]
    left, top = max(0, box[0]), max(0, box[1])
    right, bottom = min(width, box[2]), min(height, box[3])
    out[top:bottom, left:right] = True
    if relation in ("under", "behind"):
        out &= ~anchor
    return out


def place(grounding: Grounding, placement: tuple[str, str] | None) -> Grounding:
    """The anchor's grounding turned into the region `placement` (relation, anchor) names; the
    grounding itself without one. A ValueError when the picture has no room there."""
    if placement is None:
        return grounding
    relation, anchor = placement
    height, width = grounding.mask.shape
    mask = placement_mask(grounding.mask, relation, (width, height))
    if not mask.any():
        raise ValueError(f"there is no room {relation} {anchor} in the picture; try another "
                         "place, or draw where it should go")
    return replace(grounding, mask=mask, boxes=box_of(mask)[None], label=f"{relation} {anchor}",
                   ambiguous=False, candidates=[])

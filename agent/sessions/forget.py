"""Forget one earlier instruction and keep the rest ("undo the sky but keep the wolf"):
DialogPaint's "Forget", per instruction.

The new version is the current one except on the named instruction's region, which comes back
from the version before that instruction through the engine's own feathered paste-back
(`tools.paste.paste_back`, with the radius that edit was pasted with). So every pixel farther
than that radius from the region is the current version's, bit for bit, and the region's core
is the earlier version's. When another edit the person keeps changed part of that area (a
later one, or another instruction of the same turn: "undo the sky but keep the car" where the
two masks meet), taking it back would undo that edit there too, so the person is asked first,
and the result says so. Nothing is deleted: the result is a new child of the current version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from promptartisan.agent.planning.plan import Plan
from promptartisan.agent.sessions.history_search import MIN_SHARE, Outcome, share, stems
from promptartisan.agent.sessions.store import PendingRequest, Session
from promptartisan.tools.paste import ENGINE_FEATHER, feather_rows, grown_box, paste_back

_YES = {"yes", "y", "yeah", "yep", "sure", "ok", "okay", "go ahead", "do it", "please",
        "anyway", "take it back", "yes please", "fine"}
_NO = {"no", "n", "nope", "cancel", "stop", "don't", "dont", "no thanks", "leave it",
       "keep it", "never mind", "nevermind"}


@dataclass(frozen=True)
class Named:
    """One earlier instruction to take back: region `k` of the edit that made `version`."""

    name: str
    version: int
    k: int
    target: str
    instruction: str
    parent: int
    radius: int


def read_confirmation(answer: str) -> bool | None:
    """Yes or no to "take it back anyway?"; None when the answer is neither (then it is read
    as a new request)."""
    text = " ".join(re.findall(r"[a-z']+", answer.lower()))
    first = text.split(" ", 1)[0]
    return True if text in _YES or first in _YES else False if text in _NO or first in _NO \
        else None


def find_instruction(session: Session, name: str, lineage: list[int]) -> Named | None:
    """The edit region `name` means among the edits `lineage` carries (newest first): the
    one whose target and instruction hold the largest share of its words (the target's share
    breaks ties, then the newest wins); None when none holds `MIN_SHARE`."""
    wanted = stems(name)
    best: tuple[float, float] | None = None
    found: Named | None = None
    for number in lineage:
        version = session.version(number)
        if version.parent is None or version.provenance.get("kind") != "edit":
            continue
        for region in session.regions(number):
            key = (share(wanted, stems(f"{region['target']} {region['prompt']}")),
                   share(wanted, stems(region["target"])))
            if key[0] >= MIN_SHARE and (best is None or key > best):
                best = key
                found = Named(name, number, region["k"], region["target"], region["prompt"],
                              version.parent,
                              int(version.provenance.get("feather_px") or ENGINE_FEATHER))
    return found


def reach(mask: np.ndarray, radius: int) -> np.ndarray:
    """Where `paste_back(…, mask, radius)` may change a pixel: its feather weight is above 0."""
    out = np.zeros(mask.shape, dtype=bool)
    box = grown_box(mask, radius)
    if box is not None:
        x0, y0, x1, y1 = box
        out[y0:y1, x0:x1] = feather_rows(mask, x0, x1, y0, y1, radius) > 0
    return out


def changed_regions(session: Session, number: int) -> list[tuple[str, np.ndarray]]:
    """(what, mask) for each region version `number`'s turn changed: an edit's regions, or
    the regions a forget took back."""
    version = session.version(number)
    if version.provenance.get("kind") == "forget":
        return [(f"earlier take-back of {f['target']}", session.mask(f["version"], f["k"]))
                for f in version.provenance.get("forgot") or []]
    return [(_edit_name(r["target"]), session.mask(number, r["k"]))
            for r in session.regions(number)]


def forget(session: Session, text: str, plan: Plan, confirmed: bool | None = None) -> Outcome:
    """Take back the instructions `plan.forget` names, as a new version of this view's
    current one (recorded). `confirmed`: the answer to "a later edit changed part of that
    area; take it back anyway?" (None: not asked yet; False: leave it)."""
    plan_json = plan.model_dump(mode="json")

    def say(message: str) -> Outcome:
        session.record_turn(text, "chat", message, plan_json)
        return Outcome("chat", message)

    if confirmed is False:
        return say("Left as it is; nothing was taken back.")
    current = session.current
    lineage = session.lineage(current)
    named: list[Named] = []
    for name in (n.strip() for n in plan.forget if n.strip()):
        found = find_instruction(session, name, lineage)
        if found is None:
            return say(f"I found no earlier instruction about \"{name}\" in this version's "
                       "history, so nothing was taken back.")
        newer = lineage[:lineage.index(found.version)]
        if any(session.version(n).provenance.get("kind") == "upload" for n in newer):
            return say(f"\"{found.instruction}\" was made on an earlier photo than this one, "
                       "so it can't be taken back here. Nothing was changed.")
        named.append(found)
    named = list({(n.version, n.k): n for n in named}.values())  # named twice: once
    clashes = _overlaps(session, named, lineage)
    if confirmed is None and clashes:
        names = " and ".join(n.name for n in named)
        question = (f"The {_listed(clashes)} also changed part of that area, and would be taken "
                    f"back there too; take {names} back anyway?")
        session.record_turn(text, "clarify", question, plan_json, pending=PendingRequest(
            text, question, "forget", ["yes", "no"], {"plan": plan_json}))
        return Outcome("clarify", question, ["yes", "no"])
    image = session.image(current)
    for item in sorted(named, key=lambda n: -n.version):  # the oldest one's "before" wins
        image = paste_back(image, session.image(item.parent), session.mask(item.version, item.k),
                           item.radius)
    done = "; ".join(f"{n.instruction} ({n.target}, version {n.version}: its area is back as in "
                     f"version {n.parent})" for n in named)
    also = (f"Where they overlap, the {_listed(clashes)} {'is' if len(clashes) == 1 else 'are'}"
            " taken back too. " if clashes else "")
    message = f"Took back {done}. {also}Everything else is as in version {current}"
    provenance = {"kind": "forget", "request": text, "plan": plan_json, "forgot": [
        {"version": n.version, "k": n.k, "target": n.target, "instruction": n.instruction,
         "restored_from": n.parent, "feather_px": n.radius} for n in named]}
    number = session.add_version(image, [], provenance, text=text, message=message,
                                 plan=plan_json, parent=current, kind="forget")
    return Outcome("forget", f"{message} (version {number})")


def _overlaps(session: Session, named: list[Named], lineage: list[int]
              ) -> list[tuple[str, int]]:
    """(what, version) of each kept edit whose region meets an area being taken back: the
    other instructions of the same turn (its parent, which the area comes back from, lacks
    them), then the later edits, oldest first. Earlier edits are in that parent: kept."""
    taken = {(n.version, n.k) for n in named}
    found: list[tuple[str, int]] = []
    for item in named:
        area = reach(session.mask(item.version, item.k), item.radius)
        same = [(_edit_name(r["target"]), session.mask(item.version, r["k"]))
                for r in session.regions(item.version) if (item.version, r["k"]) not in taken]
        later = [(what, number, mask)
                 for number in reversed(lineage[:lineage.index(item.version)])
                 for what, mask in changed_regions(session, number)]
        for what, number, mask in [(w, item.version, m) for w, m in same] + later:
            if mask.shape == area.shape and (mask & area).any() \
                    and (what, number) not in found:
                found.append((what, number))
    return found


def _listed(clashes: list[tuple[str, int]]) -> str:
    """ "car edit in version 1 and hat edit in version 2"."""
    parts = [f"{what} in version {number}" for what, number in clashes]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _edit_name(target: str) -> str:
    """ "hat edit", "whole-picture edit": an edit named by its target."""
    from promptartisan.tools.phrases import parse

    return "whole-picture edit" if parse(target).whole else f"{_bare(target)} edit"


def _bare(target: str) -> str:
    """"the hat" → "hat": a target as a noun before "edit"."""
    return re.sub(r"^(?:the|a|an|my|this|that)\s+", "", target.strip(), flags=re.IGNORECASE)

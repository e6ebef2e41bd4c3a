"""Versions described in words ("the one with the red car", "before the hat"): which version's
own edit the words name, read from what each version stored (the request, its plan's targets
and instructions, its regions), with no model.

A version matches by word stems: the share of the description's content words ("red", "car")
found among the words of the edit that made it. Only the best share counts, and only when it
is at least half of the words; two or more versions equally good are a question, not a guess.
A version that took an instruction back ("forget") names that instruction too, but it is the
one version that no longer shows it: it matches only a description that speaks of undoing
("the one where I undid the sky"), never "the sunset" alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from snowballstemmer import stemmer

from promptartisan.agent.planning.clarify import ALL, pick_choice
from promptartisan.agent.planning.plan import Plan
from promptartisan.agent.sessions.store import PendingRequest, Session, Version

MIN_SHARE = 0.5
"""The least share of the description's words a version's edit must hold to match."""

_STEMMER = stemmer("english")
_UNDOING = frozenset(_STEMMER.stemWords(
    "undo undid undone undoing forget forgot forgotten forgetting took taken".split()))
# Words that name no content: articles, pronouns, the words for versions and pictures, and
# the verbs every edit shares ("make", "turn", "add").
_FILLER = """a an the one ones with without of to and or in into on it its this that these
those i me my we our you your he she they them where when which what who was were is are be
been being do did done has had have there here version versions picture pictures image images
photo photos pic shot make makes made making turn turns turned turning add adds added adding
change changes changed changing put puts putting give gives gave edit edits edited please just
now then back again go went show get got let""".split()


def stems(text: str) -> set[str]:
    """The stems of `text`'s content words ("Added red hats" → {"red", "hat"})."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return set(_STEMMER.stemWords([w for w in words if w not in _FILLER]))


def share(described: set[str], words: set[str]) -> float:
    """The share of `described` found in `words` (0 when nothing is described)."""
    return len(described & words) / len(described) if described else 0.0


def edit_words(version: Version, regions: Iterable[dict[str, Any]]) -> set[str]:
    """The stems of what made `version`: its request, its plan's targets and instructions, its
    regions' targets and prompts; for a forget, what it took back and the words for undoing;
    "original" for an upload."""
    provenance = version.provenance
    if provenance.get("kind") == "forget":
        return _UNDOING | stems(" ".join(f"{f.get('target', '')} {f.get('instruction', '')}"
                                         for f in provenance.get("forgot") or []))
    texts = [str(provenance.get("request") or "")]
    plan = provenance.get("plan") or {}
    texts += [f"{i.get('target', '')} {i.get('instruction', '')}"
              for i in plan.get("instructions") or []]
    texts += [f"{r['target']} {r['prompt']}" for r in regions]
    if provenance.get("kind") == "upload":
        texts.append("original upload uploaded")
    return stems(" ".join(texts))


def matching_versions(session: Session, description: str) -> list[int]:
    """The versions whose own edit the description names best (oldest first): empty when
    none holds `MIN_SHARE` of its words, several when they tie."""
    described = stems(description)
    scores = {v.id: share(described, edit_words(v, session.regions(v.id)))
              for v in session.versions()
              if described & _UNDOING or v.provenance.get("kind") != "forget"}
    best = max(scores.values(), default=0.0)
    if best < MIN_SHARE:
        return []
    return [number for number, score in scores.items() if score == best]


def related_version(session: Session, number: int,
                    relation: Literal["with", "before", "after"]) -> int | str:
    """The version `relation` to `number` (before: its parent; after: its child on the branch
    this view is on, else its newest child), or a sentence saying there is none."""
    if relation == "with":
        return number
    if relation == "before":
        parent = session.version(number).parent
        return parent if parent is not None else (
            f"Version {number} is the original picture: nothing comes before it.")
    children = session.children(number)
    if not children:
        return f"Version {number} is the newest on its branch: nothing comes after it."
    on_branch = [child for child in session.lineage(session.current) if child in children]
    return on_branch[0] if on_branch else children[-1]


def version_label(session: Session, number: int) -> str:
    """"version 3: make the hat red" — a version by what made it."""
    version = session.version(number)
    done = [f"{r['prompt']} ({r['target']})" for r in session.regions(number)]
    done += [f"took back {f.get('target', '')}" for f in version.provenance.get("forgot") or []]
    if not done:
        done = ["the original picture" if version.parent is None else "a new photo"]
    return f"version {number}: " + "; ".join(done)


def pick_version(answer: str, candidates: list[int]) -> int | None:
    """The candidate an answer names: "version 4" or "4" (a candidate's number), or its place
    in the list ("the second", "the last one"); None when it names none (then the message is
    read as a new request)."""
    text = answer.strip().lower()
    named = [int(n) for n in re.findall(r"(?:version|v|#)\s*(\d+)", text)]
    if named:  # "version 7" is that version or none of these, never the 7th
        return named[0] if len(named) == 1 and named[0] in candidates else None
    numbers = [int(n) for n in re.findall(r"\d+", text)]
    if len(numbers) == 1 and numbers[0] in candidates:
        return numbers[0]
    if "last" in re.findall(r"[a-z]+", text):
        return candidates[-1]
    place = pick_choice(text, [*(str(n) for n in candidates), ALL])
    return candidates[place] if isinstance(place, int) else None


@dataclass(frozen=True)
class Outcome:
    """What a history request did. kind: "goto" (moved), "forget" (a new version), "clarify"
    (asked; `choices` are the answers offered) or "chat" (nothing matched: said so, nothing
    changed)."""

    kind: Literal["goto", "forget", "clarify", "chat"]
    message: str
    choices: list[str] = field(default_factory=list)


def go_to_described(session: Session, text: str, plan: Plan,
                    picked: int | None = None) -> Outcome:
    """Move this view to the version `plan.version` describes (`picked`: the one the person
    chose when several matched), recorded as a turn; ask which when several match; say so
    when none does."""
    if plan.version is None:
        raise ValueError("a goto plan needs the version's description")
    plan_json = plan.model_dump(mode="json")
    description, relation = plan.version.description, plan.version.relation
    numbered = re.fullmatch(r"(?:version|v|#)\s*(\d+)", description.strip().lower())
    if picked is None and numbered is not None:  # "go to version 3": a number, not words
        picked = int(numbered.group(1))
        if picked not in {v.id for v in session.versions()}:
            message = f"There is no version {picked}; nothing was changed."
            session.record_turn(text, "chat", message, plan_json)
            return Outcome("chat", message)
    matches = [picked] if picked is not None else matching_versions(session, description)
    if not matches:
        message = (f"I found no version made by \"{description}\"; nothing was changed. "
                   "The history shows every version, and you can click one to go there.")
        session.record_turn(text, "chat", message, plan_json)
        return Outcome("chat", message)
    if len(matches) > 1:
        labels = [version_label(session, number) for number in matches]
        question = (f"{len(matches)} versions match \"{description}\": "
                    + "; ".join(f"{i}. {label}" for i, label in enumerate(labels, 1))
                    + ". Which one did you mean?")
        choices = [f"version {number}" for number in matches]
        session.record_turn(text, "clarify", question, plan_json, pending=PendingRequest(
            text, question, "version", choices, {"plan": plan_json, "candidates": matches}))
        return Outcome("clarify", question, choices)
    target = related_version(session, matches[0], relation)
    if isinstance(target, str):
        session.record_turn(text, "chat", target + " Nothing was changed.", plan_json)
        return Outcome("chat", target + " Nothing was changed.")
    moved = session.go(target, text, plan_json)
    return Outcome("goto", moved.message)

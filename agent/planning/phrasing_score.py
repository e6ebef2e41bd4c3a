"""How well a planner reads the phrasings people use: `promptartisan plan --score`.

The corpus (`agent/benchmarks/phrasings.jsonl`, one case a line) holds requests of the kinds
planners misread (counted history moves, versions named by what they show, undoing one
instruction, wishes, a style alone, numbered lists, additions placed next to something,
particle verbs, wishes about an unnamed quality), each with what a correct plan contains:

- ``action``: equal.
- ``count`` (undo/redo): equal; 1 when the case names none.
- ``version`` (goto): the relation equal, and every key word of ``words`` in the plan's
  description.
- ``forget``: as many items as the plan's, each with its key words in a distinct one of them.
- ``instructions`` (edit): as many as the plan's, each paired with a distinct instruction whose
  target is the expected one (``a|b``: either) once both are normalised (lower case, no
  articles, the whole image's names read as ``image``) and whose instruction holds every key
  word (``a|b``: either).

A case is correct when all of these hold; the score is `K/N correct`.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from promptartisan.agent.planning.plan import Plan

CORPUS = "phrasings.jsonl"
_ARTICLES = {"the", "a", "an"}
_WHOLE_IMAGE = {"image", "whole image", "entire image", "it", "picture", "whole picture",
                "photo", "whole photo", "everything", "scene", "whole scene", "all"}


@dataclass
class Case:
    """One request and what a correct plan of it contains."""

    id: str
    kind: str
    user: str
    context: list[str]
    expect: dict[str, Any]


@dataclass
class Score:
    """The result of planning every case: misses, per-kind counts, seconds per plan."""

    total: int = 0
    correct: int = 0
    kinds: dict[str, list[int]] = field(default_factory=dict)  # kind → [correct, total]
    misses: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    answered_by: Counter[str] = field(default_factory=Counter)  # Plan.planner → plans

    def percentile(self, q: int) -> float:
        """The q-th percentile of the seconds per plan (nearest rank, inclusive)."""
        if len(self.seconds) < 2:
            return self.seconds[0] if self.seconds else 0.0
        return statistics.quantiles(self.seconds, n=100, method="inclusive")[q - 1]

    def lines(self) -> list[str]:
        """The report: the misses, the score per kind, the total, and the latency."""
        out = [f"MISS {miss}" for miss in self.misses]
        out += [f"{kind:20s} {good}/{n}" for kind, (good, n) in sorted(self.kinds.items())]
        out.append("answered by: " + ", ".join(
            f"{name} {n}/{self.total}" for name, n in self.answered_by.most_common()))
        out.append(f"latency p50 {1000 * self.percentile(50):.2f} ms, "
                   f"p99 {1000 * self.percentile(99):.2f} ms")
        out.append(f"{self.correct}/{self.total} correct")
        return out


def load_cases(path: Path | None = None) -> list[Case]:
    """The corpus shipped with the package, or the JSONL file at `path`."""
    if path is None:
        text = resources.files("promptartisan.agent").joinpath("benchmarks", CORPUS).read_text(
            encoding="utf-8")
        name = CORPUS
    else:
        text, name = path.read_text(encoding="utf-8"), str(path)
    cases = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            cases.append(Case(str(raw["id"]), str(raw.get("kind", "other")), str(raw["user"]),
                              list(raw.get("context") or []), dict(raw["expect"])))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{name}:{number}: expected {{\"id\", \"user\", \"expect\", …}} "
                             f"({exc})") from exc
    return cases


def normalise_target(target: str) -> str:
    """Lower case, no articles, one space; every name of the whole picture is "image"."""
    words = [w for w in re.sub(r"[^\w\s'-]", " ", target.lower()).split() if w not in _ARTICLES]
    text = " ".join(words)
    return "image" if text in _WHOLE_IMAGE else text


def _has_words(text: str, words: Iterable[str]) -> bool:
    """Every key word (or one of its `a|b` alternatives) is in `text`."""
    text = text.lower()
    return all(any(alt.strip().lower() in text for alt in word.split("|")) for word in words)


def _paired(wanted: list[Any], got: list[Any], fits: Any) -> bool:
    """Each wanted item fits a distinct got item, and there are as many of each (greedy)."""
    if len(wanted) != len(got):
        return False
    free = list(range(len(got)))
    for want in wanted:
        index = next((i for i in free if fits(want, got[i])), None)
        if index is None:
            return False
        free.remove(index)
    return True


def why_wrong(case: Case, plan: Plan) -> str | None:
    """What the plan gets wrong about the case, or None when it is correct."""
    expect = case.expect
    if plan.action != expect["action"]:
        return f"action {plan.action}, expected {expect['action']}"
    if plan.action in {"undo", "redo"} and plan.count != expect.get("count", 1):
        return f"count {plan.count}, expected {expect.get('count', 1)}"
    if plan.action == "goto":
        want = expect["version"]
        have = plan.version
        if have is None or have.relation != want.get("relation", "with") or not _has_words(
                have.description, want["words"]):
            return f"version {have.model_dump() if have else None}, expected {want}"
    if plan.action == "forget" and not _paired(
            expect["forget"], plan.forget, lambda want, have: _has_words(have, want.split())):
        return f"forget {plan.forget}, expected {expect['forget']}"
    if plan.action == "edit":
        wanted = expect.get("instructions", [])

        def fits(want: dict[str, Any], have: Any) -> bool:
            return normalise_target(have.target) in {
                normalise_target(alt) for alt in want["target"].split("|")} and \
                _has_words(have.instruction, want.get("words", []))

        if not _paired(wanted, plan.instructions, fits):
            got = [(i.target, i.instruction) for i in plan.instructions]
            return f"instructions {got}, expected {[(w['target'], w['words']) for w in wanted]}"
    return None


def score(planner: Any, cases: list[Case], name: str = "") -> Score:
    """Plan every case with `planner` (anything with `plan(text, context) -> Plan`), timing
    each call. Who answered is each plan's `planner`, else `name`: an LLM planner that fell
    back shows as "rules"."""
    result = Score()
    for case in cases:
        start = time.perf_counter()
        plan = planner.plan(case.user, case.context)
        result.seconds.append(time.perf_counter() - start)
        wrong = why_wrong(case, plan)
        counts = result.kinds.setdefault(case.kind, [0, 0])
        counts[1] += 1
        result.total += 1
        result.answered_by[plan.planner or name or "?"] += 1
        if wrong is None:
            counts[0] += 1
            result.correct += 1
        else:
            result.misses.append(f"{case.id} {case.user!r}: {wrong}")
    return result

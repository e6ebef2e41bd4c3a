"""A turn's visible steps (plan, grounding, editing, saving): `TurnProgress` turns the Editor's
progress events into `StepUpdate`s, each closed with what its stage did."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from promptartisan.ui.render import escape_markdown as md
from promptartisan.ui.shown import Emitter, Picture, StepUpdate

STAGE_TITLES = {
    "planning": "Plan",
    "grounding": "Grounding",
    "editing": "Editing",
    "saving": "Saving",
}

# What a step still open says when the turn ends without an edit.
STEP_ASKED = "Stopped here to ask a question (below)."
STEP_STOPPED = "Stopped."
STEP_FAILED = "Failed (the reason is below)."

# What the plan step says when the request makes no edit.
PLANS_WITHOUT_EDITS = {
    "clarify": "Not clear enough to edit yet: asking a question first.",
    "chat": "Nothing to edit: a reply.",
    "undo": "Undo.",
    "redo": "Redo.",
    "reset": "Back to the original.",
    "goto": "Going to the version you described.",
    "forget": "Taking back an earlier instruction, keeping the rest.",
}



class TurnProgress:
    """Turns the Editor's progress events into visible steps. Each step closes when its stage
    ends, saying what it did: the plan with the plan, grounding with its masks (before editing
    starts), saving with the version saved; a question, a stop or an error closes every step
    still open, saying so."""

    def __init__(self, emitter: Emitter, label: str = "") -> None:
        self.emitter = emitter
        self.label = label
        self.turn = uuid.uuid4().hex  # step keys are unique to this turn
        self.open: dict[str, str] = {}  # stage → the last text shown
        self.closed: set[str] = set()
        self.plan: Any = None

    def title(self, stage: str) -> str:
        title = STAGE_TITLES.get(stage, stage.capitalize())
        return f"{self.label} · {title}" if self.label else title

    def key(self, stage: str) -> str:
        return f"{self.turn}/{stage}"

    def event(self, event: Any) -> None:
        """Editor's on_event: a new stage closes the earlier ones."""
        stage = event.stage
        for earlier in [s for s in self.open if s != stage and s not in self.closed]:
            self._update(earlier, self.open[earlier], done=True)
        plan = getattr(event, "plan", None)
        if plan is not None:
            self._show_plan(plan)
            return
        overlay = getattr(event, "overlay", None)
        if overlay is not None:
            self._update(stage, grounding_text(self.plan, event.groundings), done=True,
                         pictures=(Picture("masks.png", overlay),))
            return
        text = event.message or ""
        if event.total and event.step:  # the bar says "step n of N" itself
            text = progress_bar(event.step, event.total)
        self._update(stage, text)

    def _show_plan(self, plan: Any) -> None:
        self.plan = plan
        if plan.instructions:
            self._update("planning", plan_text(plan) + planned_by(plan), done=True)
        elif plan.action in PLANS_WITHOUT_EDITS:
            self._update("planning", PLANS_WITHOUT_EDITS[plan.action] + planned_by(plan),
                         done=True)

    def finish(self, result: Any) -> None:
        """Show the plan if no event did, and close every step still open with how its stage
        ended."""
        plan = getattr(result, "plan", None)
        if plan is not None and "planning" not in self.closed:
            self._show_plan(plan)
        if result.kind == "clarify":
            self.close(STEP_ASKED)
        elif result.kind == "cancelled":
            self.close(STEP_STOPPED, failed=True)
        elif result.kind == "error":
            self.close(STEP_FAILED, failed=True)
        else:
            if "saving" in self.open and "saving" not in self.closed:
                self._update("saving", f"Saved as version {result.version_id}.", done=True)
            self.close()

    def close(self, outcome: str = "", failed: bool = False) -> None:
        """Close every open step; `outcome` follows its last text (why the stage ended)."""
        for stage in [s for s in self.open if s not in self.closed]:
            text = self.open[stage]
            self._update(stage, f"{text}\n\n{outcome}" if outcome and text else outcome or text,
                         done=True, failed=failed)

    def _update(self, stage: str, text: str, done: bool = False, failed: bool = False,
                pictures: tuple[Picture, ...] = ()) -> None:
        self.open[stage] = text
        if done:
            self.closed.add(stage)
        self.emitter.step(StepUpdate(self.key(stage), self.title(stage), text, pictures, done,
                                     failed))


def plan_text(plan: Any) -> str:
    """Each instruction with the region it targets, as Markdown."""
    lines = []
    for number, instruction in enumerate(plan.instructions, start=1):
        group = f" *(group {instruction.group})*" if instruction.group is not None else ""
        lines.append(f"{number}. **{instruction.target}** → {instruction.instruction}{group}")
    if getattr(plan, "note", None):
        lines.append(f"\n_{plan.note}_")
    return "\n".join(lines)


def planned_by(plan: Any) -> str:
    """The plan step's last line: which planner made the plan and, when auto chose it, why
    ('' when the plan doesn't say)."""
    name = getattr(plan, "planner", None)
    reason = getattr(plan, "planner_reason", None)
    why = f" ({md(reason)})" if reason else ""
    return f"\n\n*Planned by {md(name)}{why}.*" if name else ""


def grounding_text(plan: Any, groundings: Sequence[Any] | None) -> str:
    """Which target was found where (and how sure the grounder was)."""
    if plan is None or not groundings:
        return "The masks of this edit:"
    lines = []
    for instruction, grounding in zip(plan.instructions, groundings, strict=False):
        if grounding is None:
            lines.append(f"- **{instruction.target}**: nothing found")
        else:
            lines.append(f"- **{instruction.target}**: {found_text(grounding)}")
    return "\n".join(lines)


WEAK_MATCH = 0.25  # a grounder's score below this is a guess, and said to be one


def found_text(grounding: Any) -> str:
    """ "found (match 87%)", or "a weak guess (match 3%)": the grounder's score as a person
    reads it (scores are 0–1; a tiny negative one from rounding is 0%)."""
    score = getattr(grounding, "score", None)
    if not isinstance(score, float):
        return "found"
    share = min(max(score, 0.0), 1.0)
    return f"{'a weak guess' if share < WEAK_MATCH else 'found'} (match {share:.0%})"


def progress_bar(step: int, total: int, width: int = 20) -> str:
    filled = round(width * min(step, total) / total) if total else 0
    return f"`{'█' * filled}{'░' * (width - filled)}` step {step} of {total}"

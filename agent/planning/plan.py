"""The plan a planner makes of one chat message: what to do, and to which region."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

Action = Literal["edit", "clarify", "undo", "redo", "reset", "goto", "forget", "chat"]

WHOLE_IMAGE = "image"

_SELECTION = re.compile(r"selection (\d+)")


def selection_target(number: int) -> str:
    """The target that names the person's numbered selection `number` (1, 2, …) on the
    canvas: the Editor takes its mask instead of grounding the phrase."""
    return f"selection {number}"


def selection_number(target: str) -> int | None:
    """The selection number a target names ("selection 2" → 2), else None."""
    match = _SELECTION.fullmatch(target.strip().lower())
    return int(match.group(1)) if match else None


class Instruction(BaseModel):
    """One edit bound to one region."""

    target: str = Field(
        description="Phrase naming the region that must change, e.g. 'the sky', 'the left car'; "
        "'image' for a global edit (style, season, weather, time of day); 'selection 2' for "
        "the person's numbered selection 2 on the picture."
    )
    instruction: str = Field(
        description="Imperative edit in InstructPix2Pix's style: 'turn the dog into a cheetah'."
    )
    group: int | None = Field(
        default=None,
        description="Instructions with the same group are generated consistently "
        "(plural targets such as 'every balloon'); None means a group of its own.",
    )

    @model_validator(mode="after")
    def _not_blank(self) -> Instruction:
        if not self.target.strip() or not self.instruction.strip():
            raise ValueError("target and instruction must be non-empty")
        return self


class VersionQuery(BaseModel):
    """A version the person describes instead of numbering ("the one with the red car")."""

    description: str = Field(
        description="What the version shows or which edit made it, in the person's words: "
        "'the red car', 'the hat'."
    )
    relation: Literal["with", "before", "after"] = Field(
        default="with",
        description="'with': the version the edit described made; 'before': the version just "
        "before that edit ('the one before the hat'); 'after': the one just after it.",
    )

    @model_validator(mode="after")
    def _not_blank(self) -> VersionQuery:
        if not self.description.strip():
            raise ValueError("a version description must be non-empty")
        return self


class Plan(BaseModel):
    """What a planner understood of one message."""

    action: Action = Field(
        description="edit, clarify (ask a question), undo, redo, reset, goto (a version the "
        "person describes), forget (undo one earlier instruction, keep the rest) or chat.")
    instructions: list[Instruction] = Field(
        default_factory=list, description="For action 'edit': one entry per distinct instruction."
    )
    count: int = Field(
        default=1, ge=1, le=100,
        description="For undo and redo: how many steps ('undo twice' is 2).")
    version: VersionQuery | None = Field(
        default=None, description="For action 'goto': the version the person describes.")
    forget: list[str] = Field(
        default_factory=list,
        description="For action 'forget': the earlier instructions to take back, each named by "
        "its target or its words ('the sky' in 'undo the sky but keep the wolf').")
    question: str | None = Field(default=None, description="For action 'clarify': the question.")
    reply: str | None = Field(default=None, description="For action 'chat': the answer.")
    note: str | None = Field(
        default=None, description="Anything the user should know about how the plan was made."
    )
    planner: SkipJsonSchema[str | None] = Field(
        default=None, description="Which planner made this plan ('rules', 'ollama:MODEL'): set "
        "by the program, never asked of a model (it is not in the JSON schema).")
    planner_reason: SkipJsonSchema[str | None] = Field(
        default=None, description="Why `planner = auto` chose that planner ('no GPU for the "
        "local model; no Ollama at …'): set by the program, never asked of a model.")

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        if self.action == "edit" and not self.instructions:
            raise ValueError("an edit plan needs at least one instruction")
        if self.action == "clarify" and not (self.question or "").strip():
            raise ValueError("a clarify plan needs a question")
        if self.action == "goto" and self.version is None:
            raise ValueError("a goto plan needs the version's description")
        if self.action == "forget" and not [t for t in self.forget if t.strip()]:
            raise ValueError("a forget plan needs the instruction to take back")
        return self

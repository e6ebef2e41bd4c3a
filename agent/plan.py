"""The plan a planner makes of one chat message: what to do, and to which region."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

Action = Literal["edit", "clarify", "undo", "redo", "reset", "chat"]

WHOLE_IMAGE = "image"


class Instruction(BaseModel):
    """One edit bound to one region."""

    target: str = Field(
        description="Phrase naming the region that must change, e.g. 'the sky', 'the left car'; "
        "'image' for a global edit (style, season, weather, time of day)."
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


class Plan(BaseModel):
    """What a planner understood of one message."""

    action: Action = Field(description="edit, clarify (ask a question), undo, redo, reset or chat.")
    instructions: list[Instruction] = Field(
        default_factory=list, description="For action 'edit': one entry per distinct instruction."
    )
    question: str | None = Field(default=None, description="For action 'clarify': the question.")
    reply: str | None = Field(default=None, description="For action 'chat': the answer.")
    note: str | None = Field(
        default=None, description="Anything the user should know about how the plan was made."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        if self.action == "edit" and not self.instructions:
            raise ValueError("an edit plan needs at least one instruction")
        if self.action == "clarify" and not (self.question or "").strip():
            raise ValueError("a clarify plan needs a question")
        return self

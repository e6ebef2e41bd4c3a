"""The agent: plans, planners, clarification, sessions and the turn that ties them together.

Names load on first use, so `import promptartisan.agent` stays quick."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Plan": "plan",
    "Instruction": "plan",
    "Planner": "planners",
    "load_planner": "planners",
    "RulesPlanner": "rules_planner",
    "LLMPlanner": "llm_planner",
    "Session": "session",
    "Editor": "editor",
    "TurnResult": "editor",
    "ProgressEvent": "editor",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)

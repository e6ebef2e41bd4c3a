"""The agent: the turn (`editor`) that ties its rooms together: `planning` (the plan and the
planners), `sessions` (versions on disk, history search, forget) and `batch` (one request over
many images); `image_edit` edits one image outside a session, `evaluation` runs the benchmarks.

Names load on first use, so `import promptartisan.agent` stays quick."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Plan": "planning.plan",
    "Instruction": "planning.plan",
    "Planner": "planning.planners",
    "load_planner": "planning.planners",
    "RulesPlanner": "planning.rules_planner",
    "LLMPlanner": "planning.llm_planner",
    "Session": "sessions.store",
    "Editor": "editor",
    "TurnResult": "editor",
    "ProgressEvent": "editor",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)

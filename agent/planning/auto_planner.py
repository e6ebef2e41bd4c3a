"""`planner = "auto"` (the default): the best planner this machine can run now.

`CANDIDATES` are tried in order of preference; the first that can answer here plans, and the
rules planner answers when none can:

1. the in-process model (`local`, `local_planner.py`): the `planner_model` setting
   (Qwen2.5-1.5B-Instruct), when it is downloaded and a GPU is here, or the
   `local_planner_on_cpu` setting asks for it on the CPU (seconds per plan there)
2. Ollama (`ollama`): a server at the `ollama_host` setting, $OLLAMA_HOST or
   http://127.0.0.1:11434 that answers `GET /api/tags` within `PROBE_SECONDS`, with a chat
   model pulled: the `ollama_model` setting when it names one, else the first model Ollama
   lists (the most recently pulled) that is not an embedding model (`is_embedding_model`).

A candidate is quick: a server that is not there refuses at once, one that hangs costs
`PROBE_SECONDS`. The choice is made when an auto planner first plans and kept for the process
(`choose`); a new chat looks again (`forget_choices`), so a server started since is found.
Every plan says who made it in `Plan.planner`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any

from promptartisan.agent.planning.plan import Plan
from promptartisan.agent.planning.planners import (
    RULES,
    Planner,
    PlannerError,
    UnloadedPlanner,
    load_planner,
    ollama_url,
    plan_turn,
)
from promptartisan.settings import Settings

log = logging.getLogger(__name__)

PROBE_SECONDS = 0.5
"""How long auto waits for an Ollama server to answer its model list."""

EMBEDDING_FAMILIES = ("bert",)
"""Model families (in Ollama's `details.families`) that only embed text: BERT and its kin
(nomic-bert, xlm-roberta-based bge-m3 report "bert")."""


@dataclass(frozen=True)
class Choice:
    """The planner auto uses, its name (as `Plan.planner` gives it) and why it was chosen."""

    planner: Planner
    name: str
    reason: str


Candidate = Callable[[Settings], "Choice | str"]
"""Offers its planner for these settings, or says why it can't answer here (a str)."""


def ollama(settings: Settings) -> Choice | str:
    """An Ollama server with a chat model (see the module's docstring). The standard library
    asks: an httpx client costs some 70 ms to make (its TLS context), a refused port 1 ms."""
    url = ollama_url(settings)
    try:
        with urllib.request.urlopen(f"{url}/api/tags", timeout=PROBE_SECONDS) as reply:
            listed = [model for model in json.load(reply).get("models") or []
                      if isinstance(model, dict) and model.get("name")]
    except (OSError, HTTPException, ValueError, AttributeError) as exc:  # nothing, or not Ollama
        return f"no Ollama at {url} ({type(exc).__name__}: {exc})"
    wanted = settings.ollama_model
    if wanted:
        if not {wanted, f"{wanted}:latest"} & {str(model["name"]) for model in listed}:
            return (f"Ollama at {url} has no model {wanted!r} (the ollama_model setting); "
                    f"pull it with: ollama pull {wanted}")
        model = wanted
    else:
        chat = [str(model["name"]) for model in listed if not is_embedding_model(model)]
        if not chat:
            return f"Ollama at {url} has no chat model pulled"
        model = chat[0]
    planner = load_planner(f"llm:ollama:{model}", settings)  # its server: ollama_url(settings)
    if isinstance(planner, UnloadedPlanner):
        return f"Ollama at {url} serves {model}, but {planner.why}"
    return Choice(planner, f"ollama:{model}", f"Ollama at {url} serves {model}")


def local(settings: Settings) -> Choice | str:
    """The in-process model of `planner_model` (`local_planner.py`), when its files are
    on this machine and a GPU is here, or `local_planner_on_cpu` asks for it on the CPU."""
    from promptartisan.agent.planning.local_planner import model_present

    name = f"local:{settings.planner_model}"
    if settings.resolved_device() == "cpu" and not settings.local_planner_on_cpu:
        return f"{name}: no GPU here (local_planner_on_cpu = true runs it on the CPU)"
    if not model_present(settings):
        return (f"{name} is not downloaded (promptartisan models download planner, or point "
                f"PROMPTARTISAN_PLANNER_MODEL at its folder)")
    return Choice(load_planner("local", settings), name,
                  f"{settings.planner_model} is here, on {settings.resolved_device()}")


CANDIDATES: list[Candidate] = [local, ollama]
"""The planners auto tries, most preferred first."""


def is_embedding_model(model: dict[str, Any]) -> bool:
    """Whether an entry of Ollama's model list only embeds text: "embed" in its name
    (nomic-embed-text, mxbai-embed-large, qwen3-embedding) or a BERT family (all-minilm)."""
    details = model.get("details") or {}
    families = [details.get("family") or "", *(details.get("families") or [])]
    return "embed" in str(model.get("name", "")).lower() or any(
        kind in str(family).lower() for family in families for kind in EMBEDDING_FAMILIES)


_choices: dict[str, Choice] = {}
_choosing = threading.Lock()


def choose(settings: Settings, recheck: bool = False) -> Choice:
    """The first candidate that can answer here, else the rules planner; kept for the
    process per settings (and $OLLAMA_HOST), looked for again with `recheck`."""
    key = settings.model_dump_json() + (os.environ.get("OLLAMA_HOST") or "")
    with _choosing:
        if recheck or key not in _choices:
            _choices[key] = _first_available(settings)
            log.info("planner auto: %s (%s)", _choices[key].name, _choices[key].reason)
        return _choices[key]


def forget_choices() -> None:
    """Forget every choice made so far: the next auto planner to plan looks again."""
    with _choosing:
        _choices.clear()


def _first_available(settings: Settings) -> Choice:
    reasons = []
    for candidate in CANDIDATES:
        try:
            offer = candidate(settings)
        except PlannerError as exc:  # a package to install, an address to fix: said as is
            offer = str(exc)
        except Exception as exc:  # a candidate that breaks must not keep the rules planner out
            log.exception("planner auto: candidate %s failed", candidate.__name__)
            offer = f"{candidate.__name__}: {type(exc).__name__}: {exc}"
        if isinstance(offer, Choice):
            return offer
        reasons.append(offer)
    return Choice(load_planner(RULES, settings), RULES, "; ".join(reasons) or "no candidates")


class AutoPlanner:
    """Plans with the planner `choose` finds, chosen at its first plan and kept for its life
    (one chat keeps one planner); its plans name the planner that made them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._choice: Choice | None = None

    @property
    def choice(self) -> Choice:
        if self._choice is None:
            self._choice = choose(self.settings)
        return self._choice

    @property
    def name(self) -> str:
        return self.choice.name

    def plan(self, text: str, context: list[str], history: list[str] | None = None,
             cancel: threading.Event | None = None) -> Plan:
        """`history`: the session's versions (`planners.version_history`), passed on to a
        chosen planner that reads them; `cancel`, the turn's stop, to one that heeds it."""
        choice = self.choice
        planned = plan_turn(choice.planner, text, context,
                            None if history is None else lambda: history, cancel)
        return planned.model_copy(update={"planner": planned.planner or choice.name,
                                          "planner_reason": choice.reason})

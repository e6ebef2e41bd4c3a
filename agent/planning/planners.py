"""Choosing a planner by name.

Specs:

- ``auto`` (the default): the best planner this machine can run now, looked for in a second
  or less: a running Ollama with a chat model, else the rules planner (``auto_planner.py``
  says how it chooses).
- ``rules``: the offline rules planner (no model, no server, instant).
- ``local``: the instruct model of the ``planner_model`` setting, run in this process on the
  engine's device and held to Plan's JSON schema while it decodes (``local_planner.py``).
- ``llm:ollama:MODEL``: a model served by Ollama (``pip install 'promptartisan[ollama]'``);
  the server is the ``ollama_host`` setting, else ``$OLLAMA_HOST``, else
  http://127.0.0.1:11434, or name it with a suffix: ``llm:ollama:llama3.1:8b@http://gpu-box:11434``.
- ``llm:openai:MODEL``: OpenAI or any OpenAI-compatible server (vLLM, llama.cpp's server,
  LM Studio; ``pip install 'promptartisan[openai]'``). The base URL is a ``@URL`` suffix
  (``llm:openai:qwen2.5-7b@http://localhost:8000/v1``) or ``$OPENAI_BASE_URL``; the key is
  ``$OPENAI_API_KEY`` (local servers need none).
- ``llm:llamacpp:/path/model.gguf``: a GGUF file run in-process by llama-cpp-python
  (``pip install 'promptartisan[llamacpp]'``).

Ollama and OpenAI-compatible servers answer with the backend's structured output, constrained
by Plan's JSON schema (Ollama's ``format``, OpenAI's ``response_format`` ``json_schema``); a
GGUF model answers with a Plan tool call. Every LLM planner falls back to the rules planner
when its model fails to load (a missing extra, a client that refuses its settings, no GGUF
file), fails or can't be reached, with a note that names the cause. A server is given
`settings.planner_connect_timeout` seconds to accept the connection and
`settings.planner_read_timeout` for each read of the answer and `settings.planner_deadline`
for the whole of it, and is not asked again: a server that accepts and never answers costs one
read timeout, one that trickles its answer a byte at a time the deadline, then the rules
planner plans. Ollama decodes with the tight schema the local planner uses (one variant per
action, `local_planner.decoding_schema`); OpenAI-compatible servers get Plan's own. (A GGUF
model runs in this process and has no timeout; the chat's stop button ends the wait for it.)
"""

from __future__ import annotations

import importlib
import inspect
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from promptartisan.agent.planning.plan import Plan
from promptartisan.settings import Settings

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from promptartisan.agent.sessions.store import Session

PROVIDERS = ("ollama", "openai", "llamacpp")

SPEC_FORMS = ("auto, rules, local, llm:ollama:MODEL[@URL], llm:openai:MODEL[@URL], "
              "llm:llamacpp:/path/model.gguf")

RULES = "rules"
"""The rules planner's name, in `Plan.planner` and in specs."""

OLLAMA_URL = "http://127.0.0.1:11434"
"""Where Ollama listens unless the settings or $OLLAMA_HOST say otherwise."""

HISTORY_VERSIONS = 30
"""The most recent versions a planner reads: enough to find a described one, bounded prompt."""


class Planner(Protocol):
    """Anything that turns a message (and the earlier ones, oldest first) into a Plan.

    A planner whose `plan` also takes `history` (a keyword: the session's versions, one line
    each, oldest first, from `version_history`) gets it from `plan_turn`: the LLM planners read
    it to resolve a version the person describes."""

    def plan(self, text: str, context: list[str]) -> Plan: ...


class PlannerError(ValueError):
    """A planner spec can't be used; the message says why and what to install or change."""


def load_planner(spec: str, settings: Settings) -> Planner:
    """The planner named by `spec` (see the module's docstring for the forms)."""
    from promptartisan.agent.planning.rules_planner import RulesPlanner

    spec = spec.strip()
    if spec == RULES:
        return RulesPlanner()
    if spec == "auto":
        from promptartisan.agent.planning.auto_planner import AutoPlanner

        return AutoPlanner(settings)
    if spec == "local":
        from promptartisan.agent.planning.local_planner import LocalPlanner

        return LocalPlanner(settings, fallback=RulesPlanner())
    kind, _, rest = spec.partition(":")
    provider, _, model = rest.partition(":")
    if kind != "llm" or not model:
        raise PlannerError(f"unknown planner {spec!r}; use one of: {SPEC_FORMS}")
    if provider not in PROVIDERS:
        raise PlannerError(f"unknown LLM provider {provider!r}; use one of: {SPEC_FORMS}")
    from promptartisan.agent.planning.llm_planner import LLMPlanner

    try:
        model_client = chat_model(provider, model, settings)
    except PlannerError as exc:
        return UnloadedPlanner(rest, str(exc), fallback=RulesPlanner())
    if provider == "llamacpp":  # in this process: no deadline, the chat's stop ends the wait
        return LLMPlanner(model_client, fallback=RulesPlanner(), name=rest, exclusive=True,
                          output="tool_call")
    schema = None
    if provider == "ollama":  # Ollama decodes any JSON schema: the tight one, as `local` does
        from promptartisan.agent.planning.local_planner import decoding_schema

        schema = decoding_schema(settings.max_regions)
    return LLMPlanner(model_client, fallback=RulesPlanner(), name=rest, schema=schema,
                      deadline=settings.planner_deadline)


class UnloadedPlanner:
    """An LLM planner whose model could not be loaded (`why`): the rules planner (`fallback`)
    plans instead, each plan noting the cause, as when a loaded model fails to answer."""

    def __init__(self, name: str, why: str, fallback: Planner) -> None:
        self.name = name
        self.why = why
        self.fallback = fallback

    def plan(self, text: str, context: list[str]) -> Plan:
        return fallback_plan(self.fallback, text, context,
                             f"The language model couldn't be loaded ({self.name}: {self.why}); "
                             f"the offline rules planner made this plan instead.")


def fallback_plan(fallback: Planner, text: str, context: list[str], note: str) -> Plan:
    """`fallback`'s plan of `text` in place of a model's, its note saying why (after any note of
    its own) and named as the rules planner's unless it names its maker."""
    planned = fallback.plan(text, context)
    return planned.model_copy(update={
        "note": f"{planned.note} {note}" if planned.note else note,
        "planner": planned.planner or RULES})


def short_error(error: BaseException, limit: int = 300) -> str:
    """An exception in one line of at most `limit` characters, for a plan's note."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def reads_history(planner: Planner) -> bool:
    """Whether `planner.plan` takes the session's history (a `history` keyword)."""
    return "history" in inspect.signature(planner.plan).parameters


def plan_turn(planner: Planner, text: str, context: list[str],
              history: Callable[[], list[str]] | None = None,
              cancel: threading.Event | None = None) -> Plan:
    """`planner`'s plan of `text`; a planner that reads history gets `history()` too (called
    only for such a planner: the rules planner needs none), one whose `plan` takes a `cancel`
    keyword (an in-process model) gets the turn's stop event and ends its work when it is set.
    The rules planner's own plans are named here (`Plan.planner`); the others name theirs."""
    from promptartisan.agent.planning.rules_planner import RulesPlanner

    keywords: dict[str, Any] = {}
    if history is not None and reads_history(planner):
        keywords["history"] = history()
    if cancel is not None and "cancel" in inspect.signature(planner.plan).parameters:
        keywords["cancel"] = cancel
    reader: Any = planner
    planned: Plan = reader.plan(text, context, **keywords)
    if planned.planner is None and isinstance(planner, RulesPlanner):
        return planned.model_copy(update={"planner": RULES})
    return planned


def version_history(session: Session, limit: int = HISTORY_VERSIONS) -> list[str]:
    """The session's last `limit` versions, one line each, oldest first, as a planner reads
    them: "v3 (from v2): sky → make the sky stormy; the dog → turn the dog into a wolf", the
    one this chat is on marked "(current)"."""
    current = session.current
    lines = []
    for version in session.versions()[-limit:]:
        made = version.provenance
        regions = made.get("regions") or []
        if regions:
            what = "; ".join(f"{r.get('target')} → {r.get('prompt')}" for r in regions)
        elif made.get("kind") == "upload":
            what = "the uploaded picture"
        elif made.get("kind") == "forget":
            what = "took back " + "; ".join(
                f"{f.get('target')} → {f.get('instruction')} (of v{f.get('version')})"
                for f in made.get("forgot") or [])
        else:
            what = str(made.get("kind") or "a version")
        parent = f" (from v{version.parent})" if version.parent is not None else ""
        retry = f" (retry of v{made['retry_of']})" if "retry_of" in made else ""
        mark = " (current)" if version.id == current else ""
        lines.append(f"v{version.id}{parent}{retry}{mark}: {what}")
    return lines


def ollama_url(settings: Settings, environ: dict[str, str] | None = None) -> str:
    """The Ollama server to use: the `ollama_host` setting, else $OLLAMA_HOST, else
    http://127.0.0.1:11434; read as Ollama's own client reads them ("host", "host:port",
    "https://host"; a listen address 0.0.0.0 means this machine)."""
    environ = os.environ if environ is None else environ
    host = (settings.ollama_host or environ.get("OLLAMA_HOST") or OLLAMA_URL).strip()
    parts = urlsplit(host if "://" in host else f"http://{host}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 11434)
    except ValueError as exc:
        raise PlannerError(f"the Ollama address {host!r} has no valid port ({exc})") from None
    name = parts.hostname or "127.0.0.1"
    name = "127.0.0.1" if name in ("0.0.0.0", "::") else f"[{name}]" if ":" in name else name
    return f"{parts.scheme}://{name}:{port}{parts.path.rstrip('/')}"


def chat_model(provider: str, model: str, settings: Settings) -> BaseChatModel:
    """A LangChain chat model at temperature 0 for `provider`, with the settings' timeouts and
    no retries; nothing is contacted yet. Raises PlannerError when it can't be built."""
    if provider == "ollama":
        name, _, url = model.partition("@")
        return _build("langchain_ollama", "ChatOllama", "ollama", model=name, temperature=0,
                      base_url=url or ollama_url(settings),
                      client_kwargs={"timeout": _http_timeout(settings)})
    if provider == "openai":
        name, _, url = model.partition("@")
        base_url = url or os.environ.get("OPENAI_BASE_URL")
        api_key = os.environ.get("OPENAI_API_KEY") or ("not-needed" if base_url else None)
        if api_key is None:
            raise PlannerError("llm:openai needs OPENAI_API_KEY, or a local server's URL "
                               "(llm:openai:MODEL@http://host:port/v1 or OPENAI_BASE_URL)")
        return _build("langchain_openai", "ChatOpenAI", "openai", model=name, temperature=0,
                      base_url=base_url, api_key=api_key, timeout=_http_timeout(settings),
                      max_retries=0)
    if provider == "llamacpp":
        path = Path(model).expanduser()
        if not path.is_file():
            raise PlannerError(f"llm:llamacpp: no GGUF file at {path}")
        return _build("langchain_community.chat_models", "ChatLlamaCpp", "llamacpp",
                      model_path=str(path), temperature=0, n_ctx=4096, verbose=False)
    raise PlannerError(f"unknown LLM provider {provider!r}; use one of: {SPEC_FORMS}")


def _http_timeout(settings: Settings) -> tuple[float, float, float, float]:
    """The settings' timeouts as plain numbers, (connect, read, write, pool): the form every
    provider's client takes whatever HTTP library it is built on (httpx, httpx2), where a
    timeout object of one library is refused by another."""
    connect, read = settings.planner_connect_timeout, settings.planner_read_timeout
    return (connect, read, read, connect)


def _build(module: str, name: str, extra: str, **options: Any) -> BaseChatModel:
    """Construct `module.name(**options)` from an optional provider package; a missing package
    says which extra installs it (ChatLlamaCpp imports llama-cpp-python only when
    constructed), a client that refuses its options says why."""
    try:
        chat_class = getattr(importlib.import_module(module), name)
        return chat_class(**options)
    except ImportError as exc:
        raise PlannerError(
            f"the {extra} planner needs a package that is not installed ({exc}); "
            f"install it with: pip install 'promptartisan[{extra}]'"
        ) from exc
    except Exception as exc:  # a client release that refuses what it was given
        raise PlannerError(f"the {extra} client could not be built "
                           f"({type(exc).__name__}: {exc})") from exc

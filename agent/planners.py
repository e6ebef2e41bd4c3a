"""Choosing a planner by name.

Specs:

- ``rules``: the offline rules planner (no model, no server, instant). The default.
- ``llm:ollama:MODEL``: a model served by Ollama (``pip install 'promptartisan[ollama]'``);
  the server is ``$OLLAMA_HOST`` or http://localhost:11434, or name it with a suffix:
  ``llm:ollama:llama3.1:8b@http://gpu-box:11434``.
- ``llm:openai:MODEL``: OpenAI or any OpenAI-compatible server (vLLM, llama.cpp's server,
  LM Studio; ``pip install 'promptartisan[openai]'``). The base URL is a ``@URL`` suffix
  (``llm:openai:qwen2.5-7b@http://localhost:8000/v1``) or ``$OPENAI_BASE_URL``; the key is
  ``$OPENAI_API_KEY`` (local servers need none).
- ``llm:llamacpp:/path/model.gguf``: a GGUF file run in-process by llama-cpp-python
  (``pip install 'promptartisan[llamacpp]'``).

Every LLM planner falls back to the rules planner when its model fails or can't be reached.
A server is given `settings.planner_connect_timeout` seconds to accept the connection and
`settings.planner_read_timeout` for each read of the answer, and is not asked again: a server
that accepts and never answers costs one read timeout, then the rules planner plans. (A GGUF
model runs in this process and has no timeout; the chat's stop button ends the wait for it.)
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from promptartisan.agent.plan import Plan
from promptartisan.settings import Settings

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

SPEC_FORMS = "rules, llm:ollama:MODEL[@URL], llm:openai:MODEL[@URL], llm:llamacpp:/path/model.gguf"


class Planner(Protocol):
    """Anything that turns a message (and the earlier ones, oldest first) into a Plan."""

    def plan(self, text: str, context: list[str]) -> Plan: ...


class PlannerError(ValueError):
    """A planner spec can't be used; the message says why and what to install or change."""


def load_planner(spec: str, settings: Settings) -> Planner:
    """The planner named by `spec` (see the module's docstring for the forms)."""
    from promptartisan.agent.rules_planner import RulesPlanner

    spec = spec.strip()
    if spec == "rules":
        return RulesPlanner()
    kind, _, rest = spec.partition(":")
    provider, _, model = rest.partition(":")
    if kind != "llm" or not model:
        raise PlannerError(f"unknown planner {spec!r}; use one of: {SPEC_FORMS}")
    from promptartisan.agent.llm_planner import LLMPlanner

    return LLMPlanner(chat_model(provider, model, settings), fallback=RulesPlanner(), name=rest,
                      exclusive=provider == "llamacpp")


def chat_model(provider: str, model: str, settings: Settings) -> BaseChatModel:
    """A LangChain chat model at temperature 0 for `provider`, with the settings' timeouts and
    no retries; nothing is contacted yet."""
    if provider == "ollama":
        name, _, url = model.partition("@")
        options: dict[str, Any] = {"base_url": url or os.environ.get("OLLAMA_HOST")}
        return _build("langchain_ollama", "ChatOllama", "ollama", model=name, temperature=0,
                      client_kwargs={"timeout": _http_timeout(settings)},
                      **{k: v for k, v in options.items() if v})
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


def _http_timeout(settings: Settings) -> Any:
    """The settings' timeouts as the providers' clients (httpx, both) take them."""
    import httpx

    return httpx.Timeout(settings.planner_read_timeout, connect=settings.planner_connect_timeout)


def _build(module: str, name: str, extra: str, **options: Any) -> BaseChatModel:
    """Construct `module.name(**options)` from an optional provider package, or say which
    extra installs it (ChatLlamaCpp imports llama-cpp-python only when constructed)."""
    try:
        return getattr(importlib.import_module(module), name)(**options)
    except ImportError as exc:
        raise PlannerError(
            f"the {extra} planner needs a package that is not installed ({exc}); "
            f"install it with: pip install 'promptartisan[{extra}]'"
        ) from exc

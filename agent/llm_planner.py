"""A planner backed by a LangChain chat model with structured output (a `Plan` tool call).

The model's answer is validated against `Plan`; an invalid answer is retried once with the
validation error, and a second failure, a provider that can't be reached or one that doesn't
answer within its timeouts (`agent/planners.py` sets them) falls back to the offline planner
with a note saying so. A conversation never stops because a server is down or hangs.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import ValidationError

from promptartisan.agent.plan import Plan

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from promptartisan.agent.planners import Planner

log = logging.getLogger(__name__)

SYSTEM_PROMPT = """\
You plan edits for an image editor. Read the user's message (and the earlier messages of the
chat, for context) and answer with one Plan.

action:
- "edit": the message asks for one or more changes to the picture.
- "clarify": the request is too vague to act on; ask one short, specific question. Ask when
  there is no target ("change something", "make it nicer"), or a target but no change
  ("change the dog": become what?). Do not guess.
- "undo" / "redo": go back one version / forward again ("undo", "go back", "forget that").
- "reset": back to the original upload ("start over", "reset").
- "chat": a question or remark that asks for no change; answer it in "reply".

instructions (for "edit"), one per distinct change, never two changes in one:
- target: the REGION THAT MUST CHANGE, as a short noun phrase a segmentation model can find,
  with its qualifiers ("the left car", "the man's shirt"). It is the place where pixels change,
  which is not always the object named: "add a rainbow over the mountains" -> target "sky";
  "put a hat on the man" -> target "the man's head"; "add snow on the ground" -> "ground".
  Use "image" for a change of the whole picture: style ("as a watercolor"), season, weather,
  time of day, lighting, black and white.
- instruction: an imperative edit in InstructPix2Pix's style, short and concrete:
  "turn the dog into a cheetah", "make the sky a sunset", "add a red hat".
- group: plural targets ("every balloon", "all the windows", "a hat on each child") are ONE
  instruction with a plural target; give instructions that must look alike the same group
  number, and leave group empty otherwise.
- Keep phrases that are one idea together: "black and white", "salt and pepper".
- Pronouns ("it", "them", "make it darker") refer to the targets of the earlier messages.

Examples:
"make the sky a sunset and turn the dog into a cheetah" -> edit: [sky: "make the sky a sunset"],
  [the dog: "turn the dog into a cheetah"]
"add a rainbow over the mountains" -> edit: [sky: "add a rainbow over the mountains"]
"make it look like winter" -> edit: [image: "make it winter"]
"put a balloon above every child" -> edit: [every child: "add a balloon above the child",
  group 1]
"change the car" -> clarify: "What should the car become, or what about it should change?"
"undo that" -> undo
"""

INVALID_RETRY = (
    "Your answer was not a valid plan: {error}\nAnswer again with one valid Plan for the same "
    "message."
)


class LLMPlanner:
    """Plans with `chat_model` (any LangChain chat model that supports tool calling); falls
    back to `fallback` (the rules planner) when the model fails. `exclusive`: the model runs in
    this process and can't serve two calls at once (llama.cpp), so calls queue; a turn stopped
    during planning leaves its call running, and the next turn's call waits for it."""

    def __init__(self, chat_model: BaseChatModel, fallback: Planner, name: str,
                 context_turns: int = 6, exclusive: bool = False) -> None:
        self.name = name
        self.fallback = fallback
        self.context_turns = context_turns
        self._structured = chat_model.with_structured_output(Plan, include_raw=True)
        self._turns = threading.Lock() if exclusive else contextlib.nullcontext()

    def plan(self, text: str, context: list[str]) -> Plan:
        with self._turns:
            return self._plan(text, context)

    def _plan(self, text: str, context: list[str]) -> Plan:
        messages = self.messages(text, context)
        try:
            problem = self._ask(messages)
            if isinstance(problem, Plan):
                return problem
            log.warning("%s gave an invalid plan (%s); retrying once", self.name, problem)
            messages.append(HumanMessage(INVALID_RETRY.format(error=problem)))
            retried = self._ask(messages)
            if isinstance(retried, Plan):
                return retried
            note = (f"The language model ({self.name}) gave no valid plan twice ({retried}); "
                    f"the offline rules planner made this one instead.")
        except Exception as exc:  # providers raise many types (httpx, openai, ollama, OSError)
            log.warning("%s failed: %r", self.name, exc)
            problem = "didn't answer in time" if _timed_out(exc) else "couldn't be reached"
            note = (f"The language model {problem} ({self.name}: {_short(exc)}); the offline "
                    f"rules planner made this plan instead.")
        planned = self.fallback.plan(text, context)
        return planned.model_copy(update={"note": _join(planned.note, note)})

    def messages(self, text: str, context: list[str]) -> list[BaseMessage]:
        """The system prompt, then one message with the recent turns and the one to plan."""
        recent = context[-self.context_turns:] if self.context_turns else []
        lines = [f"- {message}" for message in recent]
        earlier = ("Earlier messages, oldest first:\n" + "\n".join(lines) + "\n\n") if lines else ""
        return [SystemMessage(SYSTEM_PROMPT), HumanMessage(f"{earlier}Message to plan: {text}")]

    def _ask(self, messages: list[BaseMessage]) -> Plan | str:
        """The model's plan, or why its answer isn't one."""
        answer: dict[str, Any] = self._structured.invoke(messages)
        parsed, error = answer.get("parsed"), answer.get("parsing_error")
        if error is not None:
            return _short(error)
        if parsed is None:
            return "the answer held no Plan tool call"
        try:
            return Plan.model_validate(parsed)
        except ValidationError as exc:
            return _short(exc)


def _timed_out(error: BaseException) -> bool:
    """Whether a provider's error comes from a timeout: the providers wrap httpx's (or the
    socket's) timeout in their own types, and keep it as the cause."""
    import httpx
    from langchain_core.exceptions import ModelTimeoutError

    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, TimeoutError | httpx.TimeoutException | ModelTimeoutError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _short(error: BaseException, limit: int = 300) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _join(first: str | None, second: str) -> str:
    return f"{first} {second}" if first else second

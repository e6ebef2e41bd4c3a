"""A planner backed by a LangChain chat model with structured output: the backend's JSON
schema mode (Ollama's `format`, OpenAI's `response_format`) given Plan's JSON schema, or a Plan
tool call for a model that has no such mode (llama.cpp in-process).

The model reads the session's history (each version and the instructions that made it) and
the recent messages, so it can resolve "go back to the one with the red car". Its answer is
validated against `Plan`; an unusable answer (not JSON, or not a valid Plan) is retried once
with the error, and a second one, a provider that can't be reached or one that doesn't answer
within its timeouts (`planners.py` sets them) falls back to the offline planner with a
note saying so. A conversation never stops because a server is down, hangs or talks nonsense.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import ValidationError

from promptartisan.agent.planning.plan import Plan
from promptartisan.agent.planning.planners import RULES

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from promptartisan.agent.planning.planners import Planner

log = logging.getLogger(__name__)

SYSTEM_PROMPT = """\
You plan edits for an image editor. Read the user's message (with the picture's versions and
the earlier messages of the chat, for context) and answer with one Plan, as JSON.

action:
- "edit": the message asks for one or more changes to the picture.
- "clarify": the request is too vague to act on; ask one short, specific question. Ask when
  there is no target ("change something", "make it nicer"), or a target but no change
  ("change the dog": become what?). Do not guess.
- "undo" / "redo": go back / forward again ("undo", "go back", "forget that"); "count" is how
  many steps ("undo twice" -> count 2, "undo the last three" -> count 3).
- "reset": back to the original upload ("start over", "reset").
- "goto": go to a version the person DESCRIBES instead of stepping ("the one with the red
  car", "before the hat"): "version" = {description: what that version shows or which edit
  made it, in words from the versions list ("the red car"), relation: "with" (the version
  that edit made), "before" (the one just before it) or "after" (the one just after it)}.
- "forget": take back one earlier instruction and keep the others ("undo the sky but keep the
  wolf", "remove the hat again"): "forget" = the instructions to take back, each named by its
  target or its words ("the sky").
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
"undo the last two edits" -> undo, count 2
"go back to the one with the red car" -> goto: version {description: "the red car"}
"show me the picture before the hat" -> goto: version {description: "the hat", relation: "before"}
"undo the sky but keep the wolf" -> forget: ["the sky"]
"""

INVALID_RETRY = (
    "Your answer was not a valid plan: {error}\nAnswer again with one valid Plan for the same "
    "message."
)

Output = Literal["json_schema", "tool_call"]

PLAN_SCHEMA: dict[str, Any] = Plan.model_json_schema()
"""What a backend's structured output is constrained by (`Plan.planner` is not in it)."""


class LLMPlanner:
    """Plans with `chat_model`; falls back to `fallback` (the rules planner) when the model
    fails. `output`: "json_schema" (the backend's structured output constrained by Plan's JSON
    schema: Ollama, OpenAI-compatible servers) or "tool_call" (a Plan tool call, for a model
    without a JSON schema mode). `exclusive`: the model runs in this process and can't serve
    two calls at once (llama.cpp), so calls queue; a turn stopped during planning leaves its
    call running, and the next turn's call waits for it. Every plan names who made it in
    `Plan.planner`: `name`, or the rules planner when it answered instead."""

    def __init__(self, chat_model: BaseChatModel, fallback: Planner, name: str,
                 context_turns: int = 6, exclusive: bool = False,
                 output: Output = "json_schema") -> None:
        self.name = name
        self.fallback = fallback
        self.context_turns = context_turns
        if output == "json_schema":
            self._structured = chat_model.with_structured_output(
                PLAN_SCHEMA, method="json_schema", include_raw=True)
        else:
            self._structured = chat_model.with_structured_output(Plan, include_raw=True)
        self._turns = threading.Lock() if exclusive else contextlib.nullcontext()

    def plan(self, text: str, context: list[str], history: list[str] | None = None) -> Plan:
        """`history`: the session's versions, one line each, oldest first
        (`planners.version_history`)."""
        with self._turns:
            return self._plan(text, context, history or [])

    def _plan(self, text: str, context: list[str], history: list[str]) -> Plan:
        messages = self.messages(text, context, history)
        try:
            problem = self._ask(messages)
            if isinstance(problem, Plan):
                return problem
            log.warning("%s gave an unusable answer (%s); asking once more", self.name, problem)
            messages.append(HumanMessage(INVALID_RETRY.format(error=problem)))
            retried = self._ask(messages)
            if isinstance(retried, Plan):
                return retried
            note = (f"The language model's answer was unusable twice ({self.name}: {retried}); "
                    f"the offline rules planner made this plan instead.")
        except Exception as exc:  # providers raise many types (httpx, openai, ollama, OSError)
            log.warning("%s failed: %r", self.name, exc)
            problem = "didn't answer in time" if _timed_out(exc) else "couldn't be reached"
            note = (f"The language model {problem} ({self.name}: {_short(exc)}); the offline "
                    f"rules planner made this plan instead.")
        planned = self.fallback.plan(text, context)
        return planned.model_copy(update={"note": _join(planned.note, note),
                                          "planner": planned.planner or RULES})

    def messages(self, text: str, context: list[str],
                 history: list[str] | None = None) -> list[BaseMessage]:
        """The system prompt, then one message with the picture's versions, the recent turns
        and the one to plan."""
        return plan_messages(text, context, history, self.context_turns)

    def _ask(self, messages: list[BaseMessage]) -> Plan | str:
        """The model's plan (named as its own), or why its answer isn't one."""
        answer: dict[str, Any] = self._structured.invoke(messages)
        parsed, error = answer.get("parsed"), answer.get("parsing_error")
        if error is not None:
            return _short(error)
        if parsed is None:
            return "the answer held no plan"
        try:
            plan = parsed if isinstance(parsed, Plan) else Plan.model_validate(parsed)
        except ValidationError as exc:
            return _short(exc)
        return plan.model_copy(update={"planner": self.name})


def plan_messages(text: str, context: list[str], history: list[str] | None = None,
                  context_turns: int = 6) -> list[BaseMessage]:
    """Every LLM planner's prompt: the system prompt, then one message with the picture's
    versions, the last `context_turns` messages and the one to plan."""
    parts = []
    if history:
        parts.append("The picture's versions, oldest first (each with the instructions "
                     "that made it from its parent):\n" + "\n".join(history))
    recent = context[-context_turns:] if context_turns else []
    if recent:
        parts.append("Earlier messages, oldest first:\n"
                     + "\n".join(f"- {message}" for message in recent))
    parts.append(f"Message to plan: {text}")
    return [SystemMessage(SYSTEM_PROMPT), HumanMessage("\n\n".join(parts))]


TIMEOUT_NAMES = ("Timeout", "TimeoutError", "TimeoutException")
"""How the providers' timeout types are named, whatever transport raised them: httpx's and
httpx2's `TimeoutException` (`ReadTimeout`, `ConnectTimeout`), openai's `APITimeoutError`,
LangChain's `ModelTimeoutError`, the socket's `TimeoutError`."""


def _timed_out(error: BaseException) -> bool:
    """Whether a provider's error comes from a timeout: the providers wrap their transport's
    (or the socket's) timeout in their own types, and keep it as the cause."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, TimeoutError) or any(
                kind.__name__.endswith(TIMEOUT_NAMES) for kind in type(cause).__mro__):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _short(error: BaseException, limit: int = 300) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _join(first: str | None, second: str) -> str:
    return f"{first} {second}" if first else second

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
import time
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import ValidationError

from promptartisan.agent.planning.plan import Plan
from promptartisan.agent.planning.planners import fallback_plan, short_error

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


class DeadlinePassed(TimeoutError):
    """The model's whole answer took longer than the planner's deadline."""


class LLMPlanner:
    """Plans with `chat_model`; falls back to `fallback` (the rules planner) when the model
    fails. `output`: "json_schema" (the backend's structured output constrained by `schema`,
    Plan's JSON schema unless given: Ollama, OpenAI-compatible servers) or "tool_call" (a Plan
    tool call, for a model without a JSON schema mode). `exclusive`: the model runs in this
    process and can't serve two calls at once (llama.cpp), so calls queue; a turn stopped
    during planning leaves its call running, and the next turn's call waits for it.
    `deadline`: seconds the whole of a plan's answers may take (both tries); a call past it is
    left to end on its own in its thread, its answer unused, and while it runs the next plans
    go to the rules planner at once, so a server that trickles bytes holds one thread, never
    a turn. Every plan names who made it in `Plan.planner`: `name`, or the rules planner when
    it answered instead."""

    def __init__(self, chat_model: BaseChatModel, fallback: Planner, name: str,
                 context_turns: int = 6, exclusive: bool = False,
                 output: Output = "json_schema", schema: dict[str, Any] | None = None,
                 deadline: float | None = None) -> None:
        self.name = name
        self.fallback = fallback
        self.context_turns = context_turns
        self.deadline = deadline
        if output == "json_schema":
            self._structured = chat_model.with_structured_output(
                schema or PLAN_SCHEMA, method="json_schema", include_raw=True)
        else:
            self._structured = chat_model.with_structured_output(Plan, include_raw=True)
        self._turns = threading.Lock() if exclusive else contextlib.nullcontext()
        self._late: threading.Thread | None = None

    def plan(self, text: str, context: list[str], history: list[str] | None = None) -> Plan:
        """`history`: the session's versions, one line each, oldest first
        (`planners.version_history`)."""
        with self._turns:
            return self._plan(text, context, history or [])

    def _plan(self, text: str, context: list[str], history: list[str]) -> Plan:
        messages = self.messages(text, context, history)
        ends = None if self.deadline is None else time.monotonic() + self.deadline
        try:
            if self._late is not None and self._late.is_alive():
                raise DeadlinePassed(f"its answer to an earlier plan is still coming, past "
                                     f"the {self.deadline:g} s deadline")
            problem, raw = self._ask(messages, ends)
            if isinstance(problem, Plan):
                return problem
            log.warning("%s gave an unusable answer (%s); asking once more", self.name, problem)
            if raw is not None:  # the model sees what it said, then what was wrong with it
                messages.append(raw)
            messages.append(HumanMessage(INVALID_RETRY.format(error=problem)))
            retried, _ = self._ask(messages, ends)
            if isinstance(retried, Plan):
                return retried
            note = (f"The language model's answer was unusable twice ({self.name}: {retried}); "
                    f"the offline rules planner made this plan instead.")
        except Exception as exc:  # providers raise many types (httpx, openai, ollama, OSError)
            log.warning("%s failed: %r", self.name, exc)
            problem = "didn't answer in time" if _timed_out(exc) else "couldn't be reached"
            note = (f"The language model {problem} ({self.name}: {short_error(exc)}); the offline "
                    f"rules planner made this plan instead.")
        return fallback_plan(self.fallback, text, context, note)

    def messages(self, text: str, context: list[str],
                 history: list[str] | None = None) -> list[BaseMessage]:
        """The system prompt, then one message with the picture's versions, the recent turns
        and the one to plan."""
        return plan_messages(text, context, history, self.context_turns)

    def _ask(self, messages: list[BaseMessage],
             ends: float | None) -> tuple[Plan | str, BaseMessage | None]:
        """The model's plan (named as its own), or why its answer isn't one; and the answer
        as the model gave it (None when there was none)."""
        answer = self._invoke(messages, ends)
        parsed, error, raw = answer.get("parsed"), answer.get("parsing_error"), answer.get("raw")
        raw = raw if isinstance(raw, BaseMessage) else None
        if error is not None:
            return short_error(error), raw
        if parsed is None:
            return "the answer held no plan", raw
        try:
            plan = parsed if isinstance(parsed, Plan) else Plan.model_validate(parsed)
        except ValidationError as exc:
            return short_error(exc), raw
        return plan.model_copy(update={"planner": self.name}), raw

    def _invoke(self, messages: list[BaseMessage], ends: float | None) -> dict[str, Any]:
        """The structured answer; with a deadline, waited for until `ends` in a thread of its
        own (the HTTP clients' timeouts bound each read, not a whole answer)."""
        if ends is None:
            return self._structured.invoke(messages)
        outcome: dict[str, Any] = {}

        def call() -> None:
            try:
                outcome["answer"] = self._structured.invoke(messages)
            except BaseException as exc:  # handed to the planning thread
                outcome["error"] = exc

        worker = threading.Thread(target=call, name=f"planner {self.name}", daemon=True)
        worker.start()
        worker.join(max(0.0, ends - time.monotonic()))
        if worker.is_alive():
            self._late = worker
            raise DeadlinePassed(f"no whole answer within {self.deadline:g} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["answer"]


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


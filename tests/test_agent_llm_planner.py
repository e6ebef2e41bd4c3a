"""The LLM planner through a fake LangChain chat model that answers with tool calls."""

from __future__ import annotations

import sys
import threading
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage

from promptartisan.agent.llm_planner import LLMPlanner
from promptartisan.agent.plan import Instruction, Plan
from promptartisan.agent.planners import PlannerError, chat_model, load_planner
from promptartisan.settings import Settings

JOIN_SECONDS = 30
"""A bound against a test hanging, not a measurement."""


class ToolCallingFake(GenericFakeChatModel):
    """Answers from a script; records what it was sent. `bind_tools` is a no-op, which is all
    `with_structured_output` needs from a model."""

    seen: list[list[BaseMessage]] = []

    def bind_tools(self, tools: Any, **kwargs: Any) -> ToolCallingFake:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


class Unreachable(GenericFakeChatModel):
    def bind_tools(self, tools: Any, **kwargs: Any) -> Unreachable:
        return self

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("[Errno 111] Connection refused")


class FallbackPlanner:
    """Stands in for the rules planner; remembers it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, list[str]]] = []

    def plan(self, text: str, context: list[str]) -> Plan:
        self.asked.append((text, context))
        return Plan(action="edit", instructions=[Instruction(target="image",
                                                             instruction=text)])


def tool_call(args: dict[str, Any], call_id: str = "1") -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": "Plan", "args": args, "id": call_id}])


def fake(answers: list[AIMessage]) -> ToolCallingFake:
    return ToolCallingFake(messages=iter(answers), seen=[])


VALID = {"action": "edit", "instructions": [
    {"target": "sky", "instruction": "add a rainbow over the mountains", "group": None}]}


def test_valid_tool_call_becomes_the_plan_and_the_model_sees_recent_turns() -> None:
    model, fallback = fake([tool_call(VALID)]), FallbackPlanner()
    planner = LLMPlanner(model, fallback, name="fake", context_turns=2)
    plan = planner.plan("add a rainbow over the mountains", ["one", "two", "three"])
    assert plan == Plan.model_validate(VALID)
    assert fallback.asked == []
    (messages,) = model.seen
    assert "region that must change" in messages[0].content.lower()
    prompt = messages[-1].content
    assert "- two" in prompt and "- three" in prompt and "- one" not in prompt
    assert prompt.endswith("Message to plan: add a rainbow over the mountains")


def test_invalid_output_is_retried_with_the_error_then_accepted() -> None:
    invalid = {"action": "edit", "instructions": []}  # an edit needs an instruction
    model, fallback = fake([tool_call(invalid), tool_call(VALID, "2")]), FallbackPlanner()
    plan = LLMPlanner(model, fallback, name="fake").plan("add a rainbow", [])
    assert plan.instructions[0].target == "sky" and fallback.asked == []
    assert len(model.seen) == 2
    retry = model.seen[1][-1].content
    assert "not a valid plan" in retry and "at least one instruction" in retry


def test_invalid_twice_falls_back_to_the_rules_planner_and_says_so() -> None:
    answers = [tool_call({"action": "paint"}), AIMessage(content="Sure! I'd make it red.")]
    model, fallback = fake(answers), FallbackPlanner()
    plan = LLMPlanner(model, fallback, name="fake").plan("make it red", ["earlier"])
    assert fallback.asked == [("make it red", ["earlier"])]
    assert plan.action == "edit" and plan.instructions[0].instruction == "make it red"
    assert "no valid plan twice" in plan.note and "rules planner" in plan.note
    assert len(model.seen) == 2


def test_provider_down_falls_back_with_a_message() -> None:
    model, fallback = Unreachable(messages=iter([])), FallbackPlanner()
    plan = LLMPlanner(model, fallback, name="ollama:llama3.1").plan("make it red", [])
    assert fallback.asked == [("make it red", [])]
    assert "couldn't be reached (ollama:llama3.1" in plan.note
    assert "Connection refused" in plan.note


class Hanging(Unreachable):
    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Request timed out.") from TimeoutError("timed out")


def test_provider_timeout_falls_back_and_says_it_took_too_long() -> None:
    plan = LLMPlanner(Hanging(messages=iter([])), FallbackPlanner(), name="openai:qwen").plan(
        "make it red", [])
    assert "didn't answer in time (openai:qwen: Request timed out.)" in plan.note


def test_an_in_process_model_plans_one_message_at_a_time() -> None:
    """A turn stopped while llama.cpp plans leaves its call running; the next turn's call must
    wait for it, since one model in this process can't serve two at once."""
    entered, release = [threading.Event(), threading.Event()], threading.Event()
    started: list[int] = []

    class Blocking(ToolCallingFake):
        def _generate(self, *args: Any, **kwargs: Any) -> Any:
            entered[len(started)].set()
            started.append(1)
            release.wait(JOIN_SECONDS)
            return super()._generate(*args, **kwargs)

    model = Blocking(messages=iter([tool_call(VALID), tool_call(VALID, "2")]), seen=[])
    planner = LLMPlanner(model, FallbackPlanner(), name="llamacpp", exclusive=True)
    calls = [threading.Thread(target=planner.plan, args=("add a rainbow", [])) for _ in "ab"]
    calls[0].start()
    assert entered[0].wait(JOIN_SECONDS)
    calls[1].start()
    assert not entered[1].wait(0.5), "a second call ran while the first was still running"
    release.set()
    for call in calls:
        call.join(JOIN_SECONDS)
    assert len(started) == 2 and not any(call.is_alive() for call in calls)


@pytest.mark.parametrize("spec, extra, module", [
    ("llm:ollama:llama3.1:8b", "ollama", "langchain_ollama"),
    ("llm:openai:qwen@http://localhost:8000/v1", "openai", "langchain_openai"),
])
def test_missing_provider_package_names_the_extra(
        spec: str, extra: str, module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what an import finds when not installed
    with pytest.raises(PlannerError, match=rf"pip install 'promptartisan\[{extra}\]'"):
        load_planner(spec, Settings())


def test_provider_clients_get_the_settings_timeouts_and_no_retries() -> None:
    settings = Settings(planner_connect_timeout=2.5, planner_read_timeout=40)
    ollama = chat_model("ollama", "llama3.1:8b@http://gpu-box:11434", settings)
    openai = chat_model("openai", "qwen@http://localhost:8000/v1", settings)
    assert openai.max_retries == 0
    for timeout in (ollama.client_kwargs["timeout"], openai.request_timeout):
        assert (timeout.connect, timeout.read) == (2.5, 40)


@pytest.mark.parametrize("spec", ["magic", "llm:", "llm:bard:x", "llm:llamacpp:/no/such.gguf"])
def test_bad_specs_are_refused_clearly(spec: str) -> None:
    with pytest.raises(PlannerError, match="planner|provider|GGUF"):
        load_planner(spec, Settings())


"""The LLM planner through a fake LangChain chat model that answers with tool calls."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage

from promptartisan.agent.llm_planner import LLMPlanner
from promptartisan.agent.plan import Instruction, Plan
from promptartisan.agent.planners import PlannerError, load_planner
from promptartisan.settings import Settings


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
    assert "Couldn't reach the language model (ollama:llama3.1" in plan.note
    assert "Connection refused" in plan.note


@pytest.mark.parametrize("spec, extra", [
    ("llm:ollama:llama3.1:8b", "ollama"),
    ("llm:openai:qwen@http://localhost:8000/v1", "openai"),
])
def test_missing_provider_package_names_the_extra(spec: str, extra: str) -> None:
    with pytest.raises(PlannerError, match=rf"pip install 'promptartisan\[{extra}\]'"):
        load_planner(spec, Settings())


@pytest.mark.parametrize("spec", ["magic", "llm:", "llm:bard:x", "llm:llamacpp:/no/such.gguf"])
def test_bad_specs_are_refused_clearly(spec: str) -> None:
    with pytest.raises(PlannerError, match="planner|provider|GGUF"):
        load_planner(spec, Settings())


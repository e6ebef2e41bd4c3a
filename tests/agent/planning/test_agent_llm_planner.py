"""The LLM planner: structured output against a real HTTP server on localhost that speaks
Ollama's and OpenAI's APIs with fixed answers (the providers' own clients, a real socket), and
the Plan tool call of an in-process model through a scripted LangChain chat model."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from model_server import ModelServer
from PIL import Image
from test_agent_fakes import ScriptedPlanner

from promptartisan.agent.editor import Editor
from promptartisan.agent.planning.llm_planner import PLAN_SCHEMA, LLMPlanner
from promptartisan.agent.planning.local_planner import decoding_schema
from promptartisan.agent.planning.plan import Instruction, Plan
from promptartisan.agent.planning.planners import (
    Planner,
    PlannerError,
    chat_model,
    load_planner,
    plan_turn,
    version_history,
)
from promptartisan.agent.planning.rules_planner import RulesPlanner
from promptartisan.agent.sessions.store import RegionRecord, Session
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


def tool_planner(model: GenericFakeChatModel, fallback: Planner, **options: Any) -> LLMPlanner:
    """An LLM planner that asks for a Plan tool call (llama.cpp's way)."""
    return LLMPlanner(model, fallback, output="tool_call", **options)


VALID = {"action": "edit", "instructions": [
    {"target": "sky", "instruction": "add a rainbow over the mountains", "group": None}]}


@pytest.fixture
def server() -> Iterator[ModelServer]:
    served = ModelServer()
    yield served
    served.close()


def spec(provider: str, server: ModelServer) -> str:
    return f"llm:{provider}:qwen2.5:3b@{server.url}" + ("/v1" if provider == "openai" else "")


def sent_schema(provider: str, request: dict[str, Any]) -> Any:
    """The JSON schema a chat request constrains the answer by, where each backend takes it
    (OpenAI's has the schema's title and description beside it, as name and description)."""
    if provider == "ollama":
        return request["format"]
    assert request["response_format"]["type"] == "json_schema"
    named = request["response_format"]["json_schema"]
    return {**named["schema"], "title": named["name"], "description": named["description"]}


# --- structured output against a real server (Ollama's and OpenAI's APIs) ---------------


@pytest.mark.parametrize("provider", ["ollama", "openai"])
def test_the_request_carries_plans_json_schema_and_the_answer_is_the_plan(
        provider: str, server: ModelServer) -> None:
    server.replies = [json.dumps(VALID)]
    plan = load_planner(spec(provider, server), Settings()).plan("add a rainbow", [])

    assert plan.model_copy(update={"planner": None}) == Plan.model_validate(VALID)
    assert plan.planner == spec(provider, server).removeprefix("llm:")
    (request,) = server.chats()
    schema = sent_schema(provider, request)
    if provider == "ollama":  # the tight schema the local planner decodes with
        assert schema == decoding_schema(Settings().max_regions)
        variants = {v["properties"]["action"]["const"]: v for v in schema["anyOf"]}
        assert set(variants["undo"]["properties"]) == {"action", "count"}
        assert "planner" not in variants["edit"]["properties"]
    else:
        assert schema == PLAN_SCHEMA
        assert set(schema["properties"]) >= {"action", "instructions", "count", "version",
                                             "forget"}
        assert "planner" not in schema["properties"]  # the program says who planned


@pytest.mark.parametrize("provider", ["ollama", "openai"])
def test_a_malformed_answer_is_asked_again_once_with_the_error(
        provider: str, server: ModelServer) -> None:
    server.replies = ["Sure! I would paint the sky.", json.dumps(VALID)]
    fallback = FallbackPlanner()
    planner = load_planner(spec(provider, server), Settings())
    planner.fallback = fallback
    plan = planner.plan("add a rainbow", [])

    assert plan.instructions[0].target == "sky" and plan.note is None and fallback.asked == []
    first, second = server.chats()
    correction = second["messages"][-1]["content"]
    assert "not a valid plan" in correction and "Invalid json output" in correction
    # The model is shown its own answer, then what was wrong with it.
    assert second["messages"][:-2] == first["messages"]
    shown = second["messages"][-2]
    assert shown["role"] == "assistant" and shown["content"] == "Sure! I would paint the sky."
    assert sent_schema(provider, second) == sent_schema(provider, first)


@pytest.mark.parametrize("provider", ["ollama", "openai"])
@pytest.mark.parametrize("second", ['{"action": "paint"}', '{"action": "edit", "instru',
                                    "null", "[1, 2]"])
def test_two_unusable_answers_and_the_rules_planner_answers_with_a_note(
        provider: str, second: str, server: ModelServer) -> None:
    server.replies = ["not json", second]
    plan = load_planner(spec(provider, server), Settings()).plan("make the sky red", ["hi"])

    assert len(server.chats()) == 2  # asked once more, not again
    assert plan.planner == "rules"
    assert "answer was unusable twice" in plan.note and "rules planner" in plan.note
    rules = RulesPlanner().plan("make the sky red", ["hi"])
    assert plan.model_copy(update={"note": None, "planner": None}) == rules


def test_the_model_reads_the_versions_and_the_recent_turns(server: ModelServer) -> None:
    server.replies = [json.dumps({"action": "goto", "version": {"description": "stormy sky"}})]
    planner = load_planner(spec("ollama", server), Settings())
    history = ["v0: the uploaded picture", "v1 (from v0): sky → make the sky stormy",
               "v2 (from v1) (current): the dog → turn the dog into a wolf"]
    plan = planner.plan("back to the stormy one", ["one", "two", "three", "four", "five", "six",
                                                   "seven"], history=history)

    assert plan.action == "goto" and plan.version.description == "stormy sky"
    (request,) = server.chats()
    system, user = request["messages"]
    assert system["role"] == "system" and '"goto"' in system["content"]
    prompt = user["content"]
    assert "\n".join(history) in prompt
    assert "- two" in prompt and "- seven" in prompt and "- one" not in prompt
    assert prompt.index("v1 (from v0)") < prompt.index("- seven") < prompt.index("Message to plan")
    assert prompt.endswith("Message to plan: back to the stormy one")


def test_a_turn_gives_the_planner_the_sessions_versions(
        server: ModelServer, tmp_path: Path, photo: Image.Image) -> None:
    """The editor hands an LLM planner the session's history through plan_turn; the rules
    planner (no `history`) is asked as before."""
    session = Session.create(tmp_path, photo)
    sky = np.zeros((photo.height, photo.width), dtype=bool)
    sky[:100] = True
    session.add_version(photo, [RegionRecord(sky, "make the sky stormy", "sky")],
                        {"kind": "edit"}, text="make the sky stormy", message="done")
    server.replies = [json.dumps({"action": "chat", "reply": "That was version 1."})]
    settings = Settings(session_dir=tmp_path)
    editor = Editor(settings, planner=load_planner(spec("ollama", server), settings))

    result = editor.turn(session, "which version has the stormy sky?")
    assert result.kind == "chat" and result.message == "That was version 1."
    assert result.plan.planner == spec("ollama", server).removeprefix("llm:")
    prompt = server.chats()[0]["messages"][-1]["content"]
    assert "v0: the uploaded picture\nv1 (from v0) (current): sky → make the sky stormy" in prompt
    assert "- make the sky stormy" in prompt  # the earlier message, as context

    scripted = ScriptedPlanner({"undo": Plan(action="undo")})
    assert plan_turn(scripted, "undo", [], lambda: pytest.fail("history read")).action == "undo"


def test_version_history_marks_retries_and_keeps_the_latest(
        tmp_path: Path, photo: Image.Image) -> None:
    session = Session.create(tmp_path, photo)
    mask = np.ones((photo.height, photo.width), dtype=bool)
    first = session.add_version(photo, [RegionRecord(mask, "make it red", "the car")],
                                {"kind": "edit"}, text="red car", message="done")
    session.add_version(photo, [RegionRecord(mask, "make it red", "the car")],
                        {"kind": "edit", "retry_of": first}, text="red car", message="again",
                        parent=0)
    assert version_history(session) == [
        "v0: the uploaded picture", "v1 (from v0): the car → make it red",
        "v2 (from v0) (retry of v1) (current): the car → make it red"]
    assert version_history(session, limit=1) == [
        "v2 (from v0) (retry of v1) (current): the car → make it red"]
    session.add_version(photo, [], {"kind": "forget", "forgot": [
        {"version": 1, "k": 0, "target": "the car", "instruction": "make it red"}]},
        text="undo the car", message="took back", parent=first, kind="forget")
    assert version_history(session)[-1] == (
        "v3 (from v1) (current): took back the car → make it red (of v1)")


# --- a Plan tool call (an in-process GGUF model), through a scripted chat model ---------


def test_valid_tool_call_becomes_the_plan_and_the_model_sees_recent_turns() -> None:
    model, fallback = fake([tool_call(VALID)]), FallbackPlanner()
    planner = tool_planner(model, fallback, name="fake", context_turns=2)
    plan = planner.plan("add a rainbow over the mountains", ["one", "two", "three"])
    assert plan == Plan.model_validate(VALID).model_copy(update={"planner": "fake"})
    assert fallback.asked == []
    (messages,) = model.seen
    assert "region that must change" in messages[0].content.lower()
    prompt = messages[-1].content
    assert "- two" in prompt and "- three" in prompt and "- one" not in prompt
    assert prompt.endswith("Message to plan: add a rainbow over the mountains")


def test_invalid_output_is_retried_with_the_error_then_accepted() -> None:
    invalid = {"action": "edit", "instructions": []}  # an edit needs an instruction
    model, fallback = fake([tool_call(invalid), tool_call(VALID, "2")]), FallbackPlanner()
    plan = tool_planner(model, fallback, name="fake").plan("add a rainbow", [])
    assert plan.instructions[0].target == "sky" and fallback.asked == []
    assert len(model.seen) == 2
    retry = model.seen[1][-1].content
    assert "not a valid plan" in retry and "at least one instruction" in retry


def test_invalid_twice_falls_back_to_the_rules_planner_and_says_so() -> None:
    answers = [tool_call({"action": "paint"}), AIMessage(content="Sure! I'd make it red.")]
    model, fallback = fake(answers), FallbackPlanner()
    plan = tool_planner(model, fallback, name="fake").plan("make it red", ["earlier"])
    assert fallback.asked == [("make it red", ["earlier"])]
    assert plan.action == "edit" and plan.instructions[0].instruction == "make it red"
    assert "unusable twice" in plan.note and "rules planner" in plan.note
    assert plan.planner == "rules"
    assert len(model.seen) == 2


def test_provider_down_falls_back_with_a_message() -> None:
    model, fallback = Unreachable(messages=iter([])), FallbackPlanner()
    plan = tool_planner(model, fallback, name="ollama:llama3.1").plan("make it red", [])
    assert fallback.asked == [("make it red", [])]
    assert "couldn't be reached (ollama:llama3.1" in plan.note
    assert "Connection refused" in plan.note


class Hanging(Unreachable):
    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Request timed out.") from TimeoutError("timed out")


def test_provider_timeout_falls_back_and_says_it_took_too_long() -> None:
    plan = tool_planner(Hanging(messages=iter([])), FallbackPlanner(), name="openai:qwen").plan(
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
    planner = tool_planner(model, FallbackPlanner(), name="llamacpp", exclusive=True)
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
def test_missing_provider_package_plans_with_the_rules_and_names_the_extra(
        spec: str, extra: str, module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what an import finds when not installed
    planned = plan_turn(load_planner(spec, Settings()), "make the car red", [])
    assert planned.planner == "rules"
    assert [(i.target, i.instruction) for i in planned.instructions] == [
        ("car", "make the car red")]
    assert "couldn't be loaded" in planned.note
    assert f"pip install 'promptartisan[{extra}]'" in planned.note


def test_a_client_that_refuses_its_arguments_plans_with_the_rules(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A client release that refuses what it is given (as openai on httpx2 refused an
    `httpx.Timeout`) costs the LLM, not the plan: the rules plan, and a note with the cause."""
    import langchain_openai

    class Refusing(langchain_openai.ChatOpenAI):
        def __init__(self, **options: Any) -> None:
            raise TypeError("Invalid timeout: expected a number, got <class 'httpx.Timeout'>")

    monkeypatch.setattr(langchain_openai, "ChatOpenAI", Refusing)
    planned = plan_turn(load_planner("llm:openai:m@http://127.0.0.1:9/v1", Settings()),
                        "make the car red", [])
    assert planned.planner == "rules" and planned.instructions[0].target == "car"
    assert "TypeError: Invalid timeout" in planned.note


def test_provider_clients_get_the_settings_timeouts_as_numbers_and_no_retries() -> None:
    """The timeouts reach each provider's own HTTP client (built for real) as plain numbers,
    which every transport takes; no transport's timeout object is made here."""
    settings = Settings(planner_connect_timeout=2.5, planner_read_timeout=40)
    ollama = chat_model("ollama", "llama3.1:8b@http://gpu-box:11434", settings)
    openai = chat_model("openai", "qwen@http://localhost:8000/v1", settings)
    assert openai.max_retries == 0
    for given in (ollama.client_kwargs["timeout"], openai.request_timeout):
        assert given == (2.5, 40, 40, 2.5)
    for client in (ollama._client._client, openai.root_client._client):
        assert (client.timeout.connect, client.timeout.read) == (2.5, 40)


def test_a_missing_gguf_file_plans_with_the_rules() -> None:
    planned = plan_turn(load_planner("llm:llamacpp:/no/such.gguf", Settings()), "undo", [])
    assert planned.action == "undo" and planned.planner == "rules"
    assert "no GGUF file at /no/such.gguf" in planned.note


@pytest.mark.parametrize("spec", ["magic", "llm:", "llm:bard:x"])
def test_bad_specs_are_refused_clearly(spec: str) -> None:
    with pytest.raises(PlannerError, match="planner|provider"):
        load_planner(spec, Settings())


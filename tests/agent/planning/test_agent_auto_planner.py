"""planner = "auto": an Ollama server on localhost with a chat model plans, else the rules
planner; the chat's Plan step and `promptartisan plan` say which one answered. Every server
here is a real HTTP server on a real socket (tests/model_server.py) that speaks Ollama's API
with fixed answers; "no Ollama" is a port that refuses."""

from __future__ import annotations

import io
import json
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from model_server import CHAT_MODEL, EMBEDDING_MODEL, ModelServer
from PIL import Image
from test_agent_fakes import ScriptedPlanner
from test_agent_planner_limits import SilentServer
from test_ui_handlers import BoxGrounder, FakeEngine, RecordingEmitter, upload

from promptartisan.agent.editor import Editor
from promptartisan.agent.planning import auto_planner
from promptartisan.agent.planning.auto_planner import AutoPlanner, choose, forget_choices
from promptartisan.agent.planning.local_planner import decoding_schema
from promptartisan.agent.planning.plan import Plan
from promptartisan.agent.planning.planners import PlannerError, load_planner, ollama_url, plan_turn
from promptartisan.agent.planning.rules_planner import RulesPlanner
from promptartisan.settings import Settings
from promptartisan.ui import reports
from promptartisan.ui.cli import main
from promptartisan.ui.handlers import ChatController

JOIN_SECONDS = 60
"""A bound against a test hanging, not a measurement."""

STORMY = json.dumps({"action": "edit", "instructions": [
    {"target": "the sky", "instruction": "make the sky stormy"}]})
LLAMA = {"name": "llama3.2:latest", "model": "llama3.2:latest",
         "details": {"family": "llama", "families": ["llama"]}}

OLLAMA_SCHEMA = decoding_schema(Settings().max_regions)
"""What Ollama decodes a plan with: the local planner's tight schema."""


@pytest.fixture(autouse=True)
def fresh_choices(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test looks for its own server: no choice carried over from another test, and the
    Ollama candidate alone (whether an in-process model is here depends on the machine)."""
    monkeypatch.setattr(auto_planner, "CANDIDATES", [auto_planner.ollama])
    forget_choices()
    yield
    forget_choices()


@pytest.fixture
def server() -> Iterator[ModelServer]:
    served = ModelServer([STORMY], models=[EMBEDDING_MODEL, CHAT_MODEL])
    yield served
    served.close()


@pytest.fixture
def refusing_url() -> Iterator[str]:
    """An address where nothing listens: the port is held, never listening, so it refuses."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"


def tags_asked(server: ModelServer) -> int:
    return sum(path == "/api/tags" for path, _ in server.requests)


# --- choosing -------------------------------------------------------------------------


def test_auto_is_the_default_and_picks_ollamas_first_chat_model(server: ModelServer) -> None:
    assert Settings().planner == "auto"
    planner = load_planner("auto", Settings(ollama_host=server.url))
    plan = planner.plan("make the sky stormy", [])

    assert isinstance(planner, AutoPlanner)
    assert plan.planner == "ollama:qwen2.5:3b"  # not the embedding model listed first
    assert plan.instructions[0].instruction == "make the sky stormy" and plan.note is None
    (path, _), (chat_path, request) = server.requests
    assert (path, chat_path) == ("/api/tags", "/api/chat")
    assert request["model"] == "qwen2.5:3b" and request["format"] == OLLAMA_SCHEMA


def test_without_ollama_auto_is_the_rules_planner_and_says_so(refusing_url: str) -> None:
    planner = load_planner("auto", Settings(ollama_host=refusing_url))
    plan = planner.plan("make the sky stormy", ["make it red"])

    assert plan.planner == "rules" and plan.note is None  # no server is no news
    unnamed = {"planner": None, "planner_reason": None}
    assert plan.model_copy(update=unnamed) == RulesPlanner().plan(
        "make the sky stormy", ["make it red"])
    assert planner.choice.reason.startswith(f"no Ollama at {refusing_url} (URLError")
    assert "Connection refused" in planner.choice.reason


def test_the_test_suites_default_ollama_address_refuses() -> None:
    """conftest points $OLLAMA_HOST at a refusing port: no test reaches a real Ollama here."""
    choice = choose(Settings())
    assert choice.name == "rules" and "Connection refused" in choice.reason


@pytest.mark.parametrize("models, reason", [
    ([], "has no chat model pulled"),
    ([EMBEDDING_MODEL, {"name": "all-minilm:latest", "details": {"family": "bert"}}],
     "has no chat model pulled"),
])
def test_ollama_without_a_chat_model_leaves_the_rules_planner(
        server: ModelServer, models: list[dict[str, object]], reason: str) -> None:
    server.models = models
    planner = load_planner("auto", Settings(ollama_host=server.url))
    assert planner.plan("make the sky stormy", []).planner == "rules"
    assert reason in planner.choice.reason and server.chats() == []


def test_the_ollama_model_setting_names_the_model(server: ModelServer) -> None:
    server.models = [CHAT_MODEL, LLAMA]
    named = AutoPlanner(Settings(ollama_host=server.url, ollama_model="llama3.2"))
    assert named.plan("make the sky stormy", []).planner == "ollama:llama3.2"
    assert server.chats()[-1]["model"] == "llama3.2"

    missing = AutoPlanner(Settings(ollama_host=server.url, ollama_model="mistral"))
    assert missing.plan("make the sky stormy", []).planner == "rules"
    assert "no model 'mistral'" in missing.choice.reason
    assert "ollama pull mistral" in missing.choice.reason


def test_a_server_that_is_not_ollama_leaves_the_rules_planner(server: ModelServer) -> None:
    planner = AutoPlanner(Settings(ollama_host=server.url + "/elsewhere"))
    assert planner.plan("make the sky stormy", []).planner == "rules"
    assert "HTTP Error 404" in planner.choice.reason


def test_a_server_that_never_answers_costs_the_probe_timeout_only() -> None:
    silent = SilentServer()
    try:
        planner = AutoPlanner(Settings(ollama_host=f"http://127.0.0.1:{silent.port}"))
        plans: list[object] = []
        thread = threading.Thread(target=lambda: plans.append(planner.plan("undo", [])),
                                  daemon=True)
        thread.start()
        thread.join(JOIN_SECONDS)
        assert not thread.is_alive(), "auto waited past its probe timeout"
        assert silent.accepted.is_set()
        assert "timed out" in planner.choice.reason and planner.choice.name == "rules"
    finally:
        silent.close()


def test_the_choice_is_kept_per_process_until_looked_for_again(server: ModelServer) -> None:
    settings = Settings(ollama_host=server.url)
    server.models = []  # Ollama runs, nothing pulled yet
    assert AutoPlanner(settings).plan("make the sky stormy", []).planner == "rules"
    server.models = [CHAT_MODEL]  # the person pulls a model
    assert AutoPlanner(settings).plan("make the sky stormy", []).planner == "rules"
    assert tags_asked(server) == 1  # the second planner took the process's choice

    assert choose(settings, recheck=True).name == "ollama:qwen2.5:3b"
    assert AutoPlanner(settings).plan("make the sky stormy", []).planner == "ollama:qwen2.5:3b"
    forget_choices()
    assert AutoPlanner(settings).plan("make the sky stormy", []).planner == "ollama:qwen2.5:3b"
    assert tags_asked(server) == 3


def test_the_choice_follows_ollama_host_in_the_environment(
        server: ModelServer, refusing_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", refusing_url)
    assert choose(Settings()).name == "rules"
    monkeypatch.setenv("OLLAMA_HOST", server.url)
    assert choose(Settings()).name == "ollama:qwen2.5:3b"


def test_a_candidate_that_breaks_leaves_the_rules_planner(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(settings: Settings) -> str:
        raise RuntimeError("driver exploded")

    monkeypatch.setattr(auto_planner, "CANDIDATES", [broken, *auto_planner.CANDIDATES])
    choice = choose(Settings())
    assert choice.name == "rules"
    assert "broken: RuntimeError: driver exploded" in choice.reason


# --- a malformed answer ----------------------------------------------------------------


def test_a_malformed_answer_is_retried_once_then_the_rules_planner_answers_with_a_note(
        server: ModelServer) -> None:
    server.replies = ["The sky should be stormy!", '{"action": "edit", "instructions": []}']
    plan = AutoPlanner(Settings(ollama_host=server.url)).plan("make the sky stormy", [])

    first, second = server.chats()  # asked twice, not three times
    assert first["format"] == second["format"] == OLLAMA_SCHEMA
    assert "not a valid plan" in second["messages"][-1]["content"]
    assert plan.planner == "rules"
    assert "answer was unusable twice (ollama:qwen2.5:3b" in plan.note
    assert plan.model_copy(update={"planner": None, "planner_reason": None,
                               "note": None}) == RulesPlanner().plan(
        "make the sky stormy", [])


def test_a_good_second_answer_is_the_models(server: ModelServer) -> None:
    server.replies = ["{not json", STORMY]
    plan = AutoPlanner(Settings(ollama_host=server.url)).plan("make the sky stormy", [])
    assert plan.planner == "ollama:qwen2.5:3b" and plan.note is None
    assert len(server.chats()) == 2


# --- the Ollama address ----------------------------------------------------------------


@pytest.mark.parametrize("setting, environ, url", [
    (None, {}, "http://127.0.0.1:11434"),
    (None, {"OLLAMA_HOST": "0.0.0.0"}, "http://127.0.0.1:11434"),
    (None, {"OLLAMA_HOST": "gpu-box:8080"}, "http://gpu-box:8080"),
    ("https://ollama.example.org", {"OLLAMA_HOST": "other"}, "https://ollama.example.org:443"),
    ("http://[::1]:9000/", {}, "http://[::1]:9000"),
])
def test_the_ollama_address(setting: str | None, environ: dict[str, str], url: str) -> None:
    assert ollama_url(Settings(ollama_host=setting), environ) == url


def test_a_bad_ollama_address_is_refused_clearly() -> None:
    with pytest.raises(PlannerError, match="no valid port"):
        ollama_url(Settings(ollama_host="localhost:eleven"), {})
    assert "no valid port" in choose(Settings(ollama_host="localhost:eleven")).reason


def test_llm_ollama_specs_use_the_same_address(server: ModelServer) -> None:
    planner = load_planner("llm:ollama:qwen2.5:3b", Settings(ollama_host=server.url))
    assert planner.plan("make the sky stormy", []).planner == "ollama:qwen2.5:3b"
    assert server.chats()


# --- who answered: the chat's Plan step and `promptartisan plan` ------------------------


def chat(settings: Settings, emitter: RecordingEmitter) -> ChatController:
    """A chat whose editor has the settings' own planner (auto), a box grounder, a fake
    engine."""
    return ChatController(settings, emitter, editor_factory=lambda s: Editor(
        s, grounder=BoxGrounder(), pipeline=FakeEngine()))


def plan_steps(emitter: RecordingEmitter) -> list[str]:
    return [item.text for item in emitter.of("step") if item.step.title.endswith("Plan")]


def test_the_chats_plan_step_names_the_planner_and_a_new_chat_looks_again(
        server: ModelServer, tmp_path: Path, small_photo: Image.Image,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports, "missing_models", lambda settings: [])  # no cache scans
    settings = Settings(ollama_host=server.url, session_dir=tmp_path / "sessions", steps=2,
                        working_size=64, device="cpu", dtype="float32")
    server.models = []
    first = RecordingEmitter()
    one = chat(settings, first)
    one.start()
    one.message("make the sky stormy", [upload(small_photo)])
    why_rules = "has no chat model pulled).*"  # the step says why auto chose the rules
    assert "*Planned by rules (" in plan_steps(first)[-1]
    assert plan_steps(first)[-1].endswith(why_rules)

    server.models = [CHAT_MODEL]  # pulled while the first chat is open
    one.message("make the sky stormy")
    assert plan_steps(first)[-1].endswith(why_rules)  # a chat keeps its planner

    second = RecordingEmitter()
    two = chat(settings, second)
    two.start()
    two.message("make the sky stormy", [upload(small_photo)])
    shown = plan_steps(second)[-1]
    assert "**the sky** → make the sky stormy" in shown
    assert shown.endswith(f"*Planned by ollama:qwen2.5:3b (Ollama at {server.url} serves "
                          f"qwen2.5:3b).*")
    assert "version 1" in second.last("pictures").text  # the edit went through


def test_promptartisan_plan_names_the_planner(
        server: ModelServer, refusing_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PROMPTARTISAN_OLLAMA_HOST", server.url)
    assert main(["plan", "make the sky stormy"]) == 0
    assert json.loads(capsys.readouterr().out)["planner"] == "ollama:qwen2.5:3b"

    monkeypatch.setenv("PROMPTARTISAN_OLLAMA_HOST", refusing_url)
    assert main(["plan", "make the sky stormy"]) == 0
    assert json.loads(capsys.readouterr().out)["planner"] == "rules"

    monkeypatch.setenv("PROMPTARTISAN_OLLAMA_HOST", server.url)
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"user": "undo"}\n'))
    assert main(["plan", "--planner", "rules", "--jsonl", "-"]) == 0  # named, not chosen
    assert json.loads(capsys.readouterr().out)["planner"] == "rules"


def test_plan_score_says_which_planner_auto_chose(
        server: ModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps({"id": "sky", "user": "make the sky stormy", "expect": {
        "action": "edit"}}) + "\n")
    monkeypatch.setenv("PROMPTARTISAN_OLLAMA_HOST", server.url)
    assert main(["plan", "--score", "--cases", str(cases)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("planner auto (ollama:qwen2.5:3b): 1 cases")
    assert len(server.chats()) == 1


def test_the_rules_planners_plans_are_named_when_asked_through_plan_turn() -> None:
    assert RulesPlanner().plan("undo", []).planner is None  # it plans without knowing names
    assert plan_turn(load_planner("rules", Settings()), "undo", []).planner == "rules"
    scripted = ScriptedPlanner({"undo": Plan(action="undo")})
    assert plan_turn(scripted, "undo", []).planner is None  # a stand-in stays unnamed

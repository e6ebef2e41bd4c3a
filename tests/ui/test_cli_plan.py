"""`promptartisan plan`: one request or a JSONL file of them, printed as Plan JSON."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from promptartisan.agent.planning.plan import Plan
from promptartisan.ui.cli import main

CORPUS = Path(__file__).parents[1] / "data" / "planner_requests.jsonl"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["plan", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_one_request(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "make the sky a sunset and turn the dog into a cheetah")
    plan = Plan.model_validate_json(out)
    assert code == 0
    assert plan.action == "edit"
    assert [i.target for i in plan.instructions] == ["sky", "dog"]


def test_context_resolves_the_pronoun(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--planner", "rules", "--context", "make the shirt red",
                        "make it darker")
    plan = Plan.model_validate_json(out)
    assert code == 0
    assert plan.instructions[0].target == "shirt"
    assert "darker" in plan.instructions[0].instruction


def test_jsonl_prints_one_plan_a_line_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    cases = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
    code, out, _ = _run(capsys, "--jsonl", str(CORPUS))
    plans = [Plan.model_validate_json(line) for line in out.splitlines()]
    assert code == 0
    assert len(plans) == len(cases)
    expected = [case["expect"]["action"] for case in cases]
    agree = sum(plan.action in (want if isinstance(want, list) else [want])
                for plan, want in zip(plans, expected, strict=True))
    assert agree / len(cases) >= 0.95


def test_jsonl_from_stdin_skips_blank_lines(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    lines = ['{"context": [], "user": "undo"}', "", '{"user": "hello"}']
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    code, out, _ = _run(capsys, "--jsonl", "-")
    assert code == 0
    assert [json.loads(line)["action"] for line in out.splitlines()] == ["undo", "chat"]


@pytest.mark.parametrize("argv", [[], ["--jsonl", "x.jsonl", "make it red"],
                                  ["--jsonl", "-", "--context", "make the car red"]])
def test_wrong_arguments_are_refused(capsys: pytest.CaptureFixture[str],
                                     argv: list[str]) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("promptartisan plan:")


def test_a_bad_line_names_its_number(capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_text('{"user": "make the car red"}\n{"context": []}\n')
    code, out, err = _run(capsys, "--jsonl", str(path))
    assert code == 2
    assert len(out.splitlines()) == 1
    assert f"{path}:2" in err


def test_unknown_planner(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "--planner", "nonsense", "make it red")
    assert code == 2
    assert "unknown planner" in err


@pytest.mark.slow
def test_the_command_line_entry_point() -> None:
    done = subprocess.run([sys.executable, "-m", "promptartisan.ui.cli", "plan", "undo that"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["action"] == "undo"


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _plan_command(*argv: str) -> subprocess.CompletedProcess[str]:
    """`promptartisan plan` as a person runs it: the installed command, its own process."""
    command = Path(sys.executable).with_name("promptartisan")
    return subprocess.run([str(command), "plan", *argv], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OPENAI_API_KEY": ""})


@pytest.mark.slow
def test_an_openai_compatible_server_on_localhost_plans_from_the_command_line() -> None:
    from model_server import ModelServer

    answer = {"action": "edit", "instructions": [
        {"target": "the red car", "instruction": "paint the car crimson"}]}
    server = ModelServer([json.dumps(answer)])
    try:
        done = _plan_command("--planner", f"llm:openai:m@{server.url}/v1", "make the car red")
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    plan = Plan.model_validate_json(done.stdout)
    assert plan.planner == "openai:m@" + server.url + "/v1"
    assert [(i.target, i.instruction) for i in plan.instructions] == [
        ("the red car", "paint the car crimson")]


@pytest.mark.slow
def test_no_server_there_gives_the_rules_plan_and_a_note_not_a_traceback() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    done = _plan_command("--planner", f"llm:openai:m@{url}", "make the car red")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    plan = Plan.model_validate_json(done.stdout)
    assert plan.planner == "rules"
    assert [i.target for i in plan.instructions] == ["car"]
    assert "couldn't be reached" in plan.note and "rules planner" in plan.note

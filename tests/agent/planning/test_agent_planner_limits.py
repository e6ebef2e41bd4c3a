"""Planning has bounds: an LLM server that hangs costs its timeouts, a stop ends the wait,
a long message is refused, and the rules planner's work grows linearly with the message."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from test_agent_fakes import ScriptedPlanner

from promptartisan.agent.editor import Editor, TurnResult
from promptartisan.agent.planning import rules_planner
from promptartisan.agent.planning.bench_planner import FAMILIES
from promptartisan.agent.planning.plan import Plan
from promptartisan.agent.planning.planners import load_planner
from promptartisan.agent.planning.rules_planner import ClauseReader, RulesPlanner
from promptartisan.agent.sessions.store import Session
from promptartisan.settings import Settings

JOIN_SECONDS = 60
"""How long a test waits for a call that must end well before: a bound against hanging, not
a measurement."""


def llm_spec(provider: str, port: int) -> str:
    """An LLM planner spec for a server on this machine's `port`."""
    url = f"http://127.0.0.1:{port}" + ("/v1" if provider == "openai" else "")
    return f"llm:{provider}:tiny-model@{url}"


class SilentServer:
    """A TCP server on localhost that accepts every connection and never answers."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.accepted = threading.Event()
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:  # closed
                return
            self.connections.append(connection)
            self.accepted.set()
            self.serve(connection)

    def serve(self, connection: socket.socket) -> None:
        """What the server does with an accepted connection: nothing."""

    def close(self) -> None:
        for connection in [self.socket, *self.connections]:
            connection.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def full_server() -> Iterator[int]:
    """A port whose listening socket never accepts and whose queue is full: a new connection
    is never completed, so only a connect timeout ends the wait."""
    server = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = server.getsockname()[1]
    queued = []
    for _ in range(4):
        client = socket.socket()
        client.setblocking(False)
        client.connect_ex(("127.0.0.1", port))
        queued.append(client)
    yield port
    for each in [server, *queued]:
        each.close()


def in_thread(call: Any, *args: Any) -> tuple[threading.Thread, list[Any]]:
    """Run `call(*args)` in a daemon thread; its result lands in the returned list."""
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(call(*args)), daemon=True)
    thread.start()
    return thread, results


def snapshot(session: Session) -> tuple[int, int, int, object]:
    return session.current, len(session.versions()), len(session.turns()), session.pending


# --- timeouts ---------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "ollama"])
def test_a_server_that_never_answers_costs_the_read_timeout_then_the_rules_plan(
        silent_server: SilentServer, provider: str) -> None:
    settings = Settings(planner_read_timeout=0.5)
    planner = load_planner(llm_spec(provider, silent_server.port), settings)
    text, context = "turn the dog into a cheetah", ["make the sky a sunset"]
    thread, results = in_thread(planner.plan, text, context)
    thread.join(JOIN_SECONDS)

    assert not thread.is_alive(), "the planner ignored its read timeout"
    assert silent_server.accepted.is_set()  # the request reached the server
    (plan,) = results
    assert "didn't answer in time" in plan.note and "rules planner" in plan.note
    assert plan.planner == "rules"
    assert plan.model_copy(update={"note": None, "planner": None}) == \
        RulesPlanner().plan(text, context)


class DrippingServer(SilentServer):
    """Answers every request with a status line and headers, then a byte of body every 0.1 s
    until it is closed: each read succeeds well within any read timeout, the answer never
    ends."""

    def serve(self, connection: socket.socket) -> None:
        threading.Thread(target=self._drip, args=(connection,), daemon=True).start()

    @staticmethod
    def _drip(connection: socket.socket) -> None:
        try:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               b"Content-Length: 100000\r\n\r\n")
            while True:
                connection.sendall(b" ")
                time.sleep(0.1)
        except OSError:  # the server or the client closed it
            return


@pytest.mark.parametrize("provider", ["openai", "ollama"])
def test_a_server_that_trickles_its_answer_costs_the_deadline_then_the_rules_plan(
        provider: str) -> None:
    """The read timeout is per read, so only the whole answer's deadline ends this wait; the
    call left running holds one thread, and the next plan doesn't wait for it."""
    server = DrippingServer()
    try:
        settings = Settings(planner_read_timeout=30, planner_deadline=1)
        planner = load_planner(llm_spec(provider, server.port), settings)
        thread, results = in_thread(planner.plan, "make the sky red", [])
        thread.join(JOIN_SECONDS)
        assert not thread.is_alive(), "the planner ignored its deadline"
        (plan,) = results
        assert plan.planner == "rules" and "didn't answer in time" in plan.note
        assert "no whole answer within 1 s" in plan.note

        connections = len(server.connections)
        thread, results = in_thread(planner.plan, "make the car blue", [])
        thread.join(JOIN_SECONDS)
        (again,) = results
        assert again.planner == "rules" and "still coming" in again.note
        assert len(server.connections) == connections  # not asked while the first drips
    finally:
        server.close()
    planner._late.join(JOIN_SECONDS)
    assert not planner._late.is_alive(), "the abandoned call outlived its server"


@pytest.mark.parametrize("provider", ["openai", "ollama"])
def test_a_server_that_never_accepts_costs_the_connect_timeout(
        full_server: int, provider: str) -> None:
    settings = Settings(planner_connect_timeout=0.5, planner_read_timeout=600)
    planner = load_planner(llm_spec(provider, full_server), settings)
    thread, results = in_thread(planner.plan, "make it red", [])
    thread.join(JOIN_SECONDS)

    assert not thread.is_alive(), "the planner ignored its connect timeout"
    (plan,) = results
    assert "didn't answer in time" in plan.note
    assert plan.planner == "rules"
    assert plan.model_copy(update={"note": None, "planner": None}) == \
        RulesPlanner().plan("make it red", [])


def test_a_refused_connection_is_reported_as_unreachable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again: nothing listens there now
    planner = load_planner(llm_spec("openai", port), Settings())
    plan = planner.plan("make it red", [])
    assert "couldn't be reached" in plan.note and "rules planner" in plan.note


# --- the editor: stop during planning, the fallback's note, the length cap --------------


def test_stop_ends_a_turn_waiting_for_a_silent_planner(
        silent_server: SilentServer, tmp_path: Path, photo: Image.Image) -> None:
    settings = Settings(session_dir=tmp_path, planner_read_timeout=600)
    editor = Editor(settings, planner=load_planner(llm_spec("openai", silent_server.port),
                                                   settings))
    session = Session.create(tmp_path, photo)
    before = snapshot(session)
    cancel = threading.Event()
    thread, results = in_thread(lambda: editor.turn(session, "make the sky pink",
                                                    cancel=cancel))
    assert silent_server.accepted.wait(JOIN_SECONDS), "the planner never called the server"
    cancel.set()
    thread.join(JOIN_SECONDS)

    assert not thread.is_alive(), "the stop did not end the planning wait"
    (result,) = results
    assert isinstance(result, TurnResult) and result.kind == "cancelled"
    assert snapshot(session) == before


def test_a_turn_whose_planner_times_out_goes_on_with_the_rules_plan(
        silent_server: SilentServer, tmp_path: Path, photo: Image.Image) -> None:
    settings = Settings(session_dir=tmp_path, planner_read_timeout=0.5)
    editor = Editor(settings, planner=load_planner(llm_spec("ollama", silent_server.port),
                                                   settings))
    session = Session.create(tmp_path, photo)
    thread, results = in_thread(lambda: editor.turn(session, "change the dog"))
    thread.join(JOIN_SECONDS)

    assert not thread.is_alive()
    (result,) = results
    rules = RulesPlanner().plan("change the dog", [])
    assert result.kind == "clarify" == rules.action and result.message == rules.question
    assert "didn't answer in time" in result.plan.note
    assert session.pending is not None and session.pending.question == rules.question


def test_a_message_over_the_length_cap_is_refused_before_planning(
        tmp_path: Path, photo: Image.Image) -> None:
    planner = ScriptedPlanner({"x" * 40: Plan(action="chat", reply="read")})
    editor = Editor(Settings(session_dir=tmp_path, max_message_chars=40), planner=planner)
    session = Session.create(tmp_path, photo)
    before = snapshot(session)

    refused = editor.turn(session, "x" * 41, image=photo)
    assert refused.kind == "error" and refused.error is None
    assert "41 characters" in refused.message and "up to 40" in refused.message
    assert planner.calls == [] and snapshot(session) == before  # not even the upload stored

    assert editor.turn(session, f"  {'x' * 40}\n").message == "read"  # the cap counts the text


def test_the_cap_defaults_to_a_paragraph() -> None:
    assert Settings().max_message_chars == 2000
    assert (Settings().planner_connect_timeout, Settings().planner_read_timeout) == (5.0, 60.0)


# --- the rules planner's work is linear in the message ----------------------------------


def work(text: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """Python calls made while planning `text`, and characters handed to the pattern table
    (a clause read again whole each time it grows makes the second quadratic)."""
    read = ClauseReader.read
    characters = 0

    def counting_read(self: ClauseReader, clause: str, verbless: bool) -> Any:
        nonlocal characters
        characters += len(clause)
        return read(self, clause, verbless)

    calls = 0

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    with monkeypatch.context() as patch:
        patch.setattr(ClauseReader, "read", counting_read)
        sys.setprofile(count)
        try:
            RulesPlanner().plan(text, [])
        finally:
            sys.setprofile(None)
    return calls, characters


@pytest.mark.parametrize("family", ["red and blue …", "a comma list", "random lexicon words",
                                    "sentences", "is not … enough", "locations"])
def test_planning_work_doubles_when_the_message_doubles(
        family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    size = 8 * rules_planner.MAX_CLAUSE_CHARS  # well past the longest clause
    small, large = (work(FAMILIES[family](n), monkeypatch) for n in (size, 2 * size))
    for name, a, b in zip(("calls", "characters read"), small, large, strict=True):
        assert b <= 2.5 * a, f"{family}: {name} grew {b / a:.1f}× for twice the text"


def test_long_messages_that_used_to_backtrack_for_ever_plan_at_once(tmp_path: Path) -> None:
    """Overlapping alternatives under a repeat once backtracked exponentially ("undo the a one
    the a one …" took 1.3 s at 20 repeats, twice as long with each more); a child process
    plans them, with a timeout far above what they take now."""
    script = tmp_path / "plan_long.py"
    script.write_text(
        "from promptartisan.agent.planning.rules_planner import RulesPlanner\n"
        "for text in ['undo' + ' the a one' * 60, 'make it red' + ', in the image please' * 60,"
        " 'red and blue ' * 2000]:\n"
        "    RulesPlanner().plan(text, [])\n"
        "print('planned')\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "planned"

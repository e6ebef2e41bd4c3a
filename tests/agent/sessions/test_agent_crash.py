"""Crash safety: a process SIGKILLed in the middle of a turn leaves a session that reopens with
every finished version intact, nothing half-written, and a consistent database."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path

import numpy as np
from PIL import Image
from test_agent_fakes import BoxGrounder, PaintingEngine, ScriptedPlanner, edit

from promptartisan.agent.editor import Editor
from promptartisan.agent.sessions.store import Session
from promptartisan.settings import Settings

PLANS = {"red sky": edit(("sky", "make the sky red"))}

def hanging_turn(root: Path, session_id: str, kill_point: str, marker: Path) -> None:
    """In a forked child: one turn that stops dead at `kill_point` after writing `marker`."""

    def hang() -> None:
        marker.write_text(kill_point)
        time.sleep(600)

    replace = os.replace

    def replace_then_maybe_hang(source: str, target: str) -> None:
        if kill_point == "before_rename" and str(target).endswith("versions/0002.png"):
            hang()
        replace(source, target)
        if kill_point == "before_commit" and str(target).endswith("masks/0002-0.png"):
            hang()

    os.replace = replace_then_maybe_hang  # this child's only
    settings = Settings(device="cpu", dtype="float32", steps=3, working_size=64, seed=1)
    engine = PaintingEngine(during_step=hang if kill_point == "editing" else None)
    Editor(settings, ScriptedPlanner(PLANS), BoxGrounder({"sky": (0.0, 0.0, 1.0, 0.3)}),
           engine).turn(Session.open(session_id, root), "red sky")
    marker.write_text("finished")


KILL_POINTS = ["editing", "before_rename", "before_commit"]


def editor(settings: Settings) -> Editor:
    return Editor(settings, ScriptedPlanner(PLANS), BoxGrounder({"sky": (0.0, 0.0, 1.0, 0.3)}),
                  PaintingEngine())


def test_sigkill_in_the_middle_of_a_turn_loses_nothing_finished(
        tmp_path: Path, small_photo: Image.Image) -> None:
    settings = Settings(device="cpu", dtype="float32", steps=3, working_size=64, seed=1)
    sessions, children = {}, {}
    for point in KILL_POINTS:
        session = Session.create(tmp_path / "sessions", small_photo)
        assert editor(settings).turn(session, "red sky").version_id == 1  # a finished version
        sessions[point] = session
        marker = tmp_path / f"{point}.marker"
        # Forked, so the child starts with everything imported: no seconds of torch import.
        child = multiprocessing.get_context("fork").Process(
            target=hanging_turn, args=(tmp_path / "sessions", session.id, point, marker))
        child.start()
        children[point] = (child, marker)

    deadline = time.monotonic() + 60
    for point, (child, marker) in children.items():
        while not marker.exists() and child.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists() and marker.read_text() == point, f"{point}: never got there"
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=30)
        assert child.exitcode == -signal.SIGKILL

    for point, session in sessions.items():
        folder = session.folder
        leftovers = {p.name for p in (folder / "versions").iterdir()} | \
            {p.name for p in (folder / "masks").iterdir()}
        if point == "before_rename":  # a whole file under a temporary name only
            assert any(name.endswith(".tmp") for name in leftovers)
            assert "0002.png" not in leftovers
        if point == "before_commit":  # files in place, no row for them
            assert {"0002.png", "0002-0.png"} <= leftovers

        reopened = Session.open(session.id, tmp_path / "sessions")
        assert reopened.current == 1, point
        assert [v.id for v in reopened.versions()] == [0, 1], point
        assert [t.version_after for t in reopened.turns()] == [1], point
        with sqlite3.connect(folder / "session.sqlite") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        on_disk = sorted(p.relative_to(folder).as_posix() for sub in ("versions", "masks")
                         for p in (folder / sub).iterdir())
        assert on_disk == ["masks/0001-0.png", "versions/0000.png", "versions/0001.png"], point
        assert not [p.name for p in folder.iterdir() if p.name.startswith(".")], point  # journal
        for version in reopened.versions():
            with Image.open(version.file) as image:
                image.load()  # a complete PNG
        assert np.array_equal(np.asarray(reopened.image(0)), np.asarray(small_photo))

        again = editor(settings).turn(reopened, "red sky")  # and the session goes on
        assert (again.kind, again.version_id) == ("edit", 2), point

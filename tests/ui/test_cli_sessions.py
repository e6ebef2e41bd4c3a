"""`promptartisan sessions list|show|export` with --tiny."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from test_agent_fakes import BoxGrounder, PaintingEngine, ScriptedPlanner, edit

from promptartisan.agent.editor import Editor
from promptartisan.agent.sessions.store import Session
from promptartisan.settings import Settings
from promptartisan.ui.cli import main


@pytest.fixture
def session(tmp_path: Path, small_photo: Image.Image) -> Session:
    settings = Settings(session_dir=tmp_path / "sessions", working_size=64, seed=9, steps=2,
                        device="cpu")
    editor = Editor(settings, ScriptedPlanner({"red sky": edit(("sky", "make the sky red"))}),
                    BoxGrounder({"sky": (0.0, 0.0, 1.0, 0.3)}), PaintingEngine())
    session = Session.create(settings.session_dir, small_photo)
    assert editor.turn(session, "red sky").kind == "edit"
    return session


def test_list_and_show(session: Session, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    root = str(tmp_path / "sessions")
    assert main(["sessions", "list", "--dir", root, "--tiny"]) == 0
    listing = capsys.readouterr().out
    assert session.id in listing and listing.splitlines()[1].split()[-3:] == ["2", "1", "1"]
    assert main(["sessions", "show", session.id, "--dir", root, "--tiny"]) == 0
    shown = capsys.readouterr().out
    assert "* " in shown and "red sky seed=9" in shown and "make the sky red [sky]" in shown


def test_export_writes_a_zip_with_every_version(session: Session, tmp_path: Path) -> None:
    out = tmp_path / "export.zip"
    assert main(["sessions", "export", session.id, "--dir", str(tmp_path / "sessions"),
                 "--out", str(out), "--tiny"]) == 0
    with zipfile.ZipFile(out) as archive:
        assert {"versions/0000.png", "versions/0001.png", "provenance/0001.json",
                "masks/0001-0.png", "session.json"} <= set(archive.namelist())


def test_an_export_is_the_owners_only_whatever_the_umask(session: Session,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "export.zip"
    previous = os.umask(0o022)
    try:
        assert main(["sessions", "export", session.id, "--dir", str(tmp_path / "sessions"),
                     "--out", str(out), "--tiny"]) == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_an_unknown_session_is_a_clear_error(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sessions", "show", "nope", "--dir", str(tmp_path), "--tiny"]) == 2
    assert "no session 'nope'" in capsys.readouterr().err
    assert main(["sessions", "list", "--dir", str(tmp_path / "none"), "--tiny"]) == 0


def test_list_shows_a_damaged_session_beside_the_others(
        session: Session, tmp_path: Path, small_photo: Image.Image,
        capsys: pytest.CaptureFixture[str]) -> None:
    damaged = Session.create(tmp_path / "sessions", small_photo)
    (damaged.folder / "session.sqlite").write_bytes(b"garbage " * 200)
    root = str(tmp_path / "sessions")
    assert main(["sessions", "list", "--dir", root, "--tiny"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines[session.id].split()[-3:] == ["2", "1", "1"]
    assert "damaged: file is not a database" in lines[damaged.id]
    assert main(["sessions", "show", damaged.id, "--dir", root, "--tiny"]) == 2
    assert f"session {damaged.id} can't be read: file is not a database" in \
        capsys.readouterr().err


HOLD_THE_DATABASE = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
sys.stdin.readline()
"""


def test_list_says_in_use_at_once_for_a_session_another_process_holds(
        session: Session, tmp_path: Path, small_photo: Image.Image,
        capsys: pytest.CaptureFixture[str]) -> None:
    held = Session.create(tmp_path / "sessions", small_photo)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_DATABASE,
                               str(held.folder / "session.sqlite")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert main(["sessions", "list", "--dir", str(tmp_path / "sessions"), "--tiny"]) == 0
    finally:
        holder.communicate("done\n", timeout=30)
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "in use by another program" in lines[held.id] and "damaged" not in lines[held.id]
    assert lines[session.id].split()[-3:] == ["2", "1", "1"]
    assert Session.list(tmp_path / "sessions")[-1].versions == 1  # released: read as usual


def test_export_replaces_an_existing_file_only_with_force(
        session: Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "export.zip"
    out.write_text("an older file")
    command = ["sessions", "export", session.id, "--dir", str(tmp_path / "sessions"),
               "--out", str(out), "--tiny"]
    assert main(command) == 2
    assert "already exists (use --force" in capsys.readouterr().err
    assert out.read_text() == "an older file"
    assert main([*command, "--force"]) == 0
    assert zipfile.is_zipfile(out)
    database = session.folder / "session.sqlite"
    assert main([*command[:-2], str(database), "--force", "--tiny"]) == 2
    assert "inside the session folder" in capsys.readouterr().err
    assert Session.open(session.id, tmp_path / "sessions").current == 1

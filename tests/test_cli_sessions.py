"""`promptartisan sessions list|show|export` with --tiny."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from PIL import Image
from test_agent_fakes import BoxGrounder, PaintingEngine, ScriptedPlanner, edit

from promptartisan.agent.editor import Editor
from promptartisan.agent.session import Session
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


def test_an_unknown_session_is_a_clear_error(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sessions", "show", "nope", "--dir", str(tmp_path), "--tiny"]) == 2
    assert "no session 'nope'" in capsys.readouterr().err
    assert main(["sessions", "list", "--dir", str(tmp_path / "none"), "--tiny"]) == 0

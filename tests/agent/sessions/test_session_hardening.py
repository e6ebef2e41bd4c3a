"""Sessions never lose data and never trust what's on disk: damaged databases, crafted paths,
export destinations that aren't new files, missing files, a full disk, a failed creation.
Real SQLite files and real folders throughout."""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from promptartisan.agent.sessions import store as session_module
from promptartisan.agent.sessions.files import is_temporary, new_files, sweep
from promptartisan.agent.sessions.store import RegionRecord, Session, SessionError


def edit(session: Session, image: Image.Image, text: str = "edit") -> int:
    mask = np.zeros((image.size[1], image.size[0]), dtype=bool)
    mask[:4] = True
    region = RegionRecord(mask=mask, prompt="red", target="sky")
    return session.add_version(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), [region],
                               {"kind": "edit"}, text=text, message="done")


def update(session: Session, sql: str, *params: Any) -> None:
    with sqlite3.connect(session.folder / "session.sqlite") as conn:
        conn.execute(sql, params)
    conn.close()


def leftovers(folder: Path) -> list[str]:
    """Everything in `folder` and its subfolders that looks like an app temporary."""
    return [p.name for p in folder.rglob("*") if is_temporary(p)]


# ----- damaged databases --------------------------------------------------------------------

DAMAGES: dict[str, Callable[[Path], None]] = {
    "not a database": lambda db: db.write_bytes(b"garbage " * 200),
    "no such table": lambda db: db.write_bytes(b""),
    "no 'created'": lambda db: sqlite3.connect(db).execute(
        "DELETE FROM state WHERE key = 'created'").connection.commit(),
    "not a number": lambda db: sqlite3.connect(db).execute(
        "UPDATE state SET value = 'x' WHERE key = 'current'").connection.commit(),
}


@pytest.mark.parametrize("reason", list(DAMAGES))
def test_a_damaged_session_is_listed_as_damaged_and_hides_no_other(
        tmp_path: Path, small_photo: Image.Image, reason: str) -> None:
    first, damaged, last = (Session.create(tmp_path, small_photo) for _ in range(3))
    edit(last, small_photo)
    DAMAGES[reason](damaged.folder / "session.sqlite")
    infos = {info.id: info for info in Session.list(tmp_path)}
    assert set(infos) == {first.id, damaged.id, last.id}
    assert infos[first.id].damaged is None and infos[last.id].damaged is None
    assert infos[last.id].versions == 2
    assert reason in (infos[damaged.id].damaged or "")
    with pytest.raises(SessionError, match=rf"session {damaged.id}.*{reason}"):
        Session.open(damaged.id, tmp_path)
    assert Session.open(last.id, tmp_path).current == 1


def test_reading_never_creates_a_database(tmp_path: Path, small_photo: Image.Image) -> None:
    session = Session.create(tmp_path, small_photo)
    (session.folder / "session.sqlite").unlink()
    with pytest.raises(SessionError, match="can't be read"):
        session.versions()
    assert not (session.folder / "session.sqlite").exists()


# ----- export destinations ------------------------------------------------------------------

@pytest.fixture
def session(tmp_path: Path, small_photo: Image.Image) -> Session:
    session = Session.create(tmp_path / "sessions", small_photo)
    edit(session, small_photo)
    return session


def test_export_onto_the_sessions_own_database_is_refused(session: Session) -> None:
    database = session.folder / "session.sqlite"
    before = database.read_bytes()
    with pytest.raises(SessionError, match="inside the session folder"):
        session.export(database, force=True)
    assert database.read_bytes() == before
    assert Session.open(session.id, session.folder.parent).current == 1
    with pytest.raises(SessionError, match="inside the session folder"):
        session.export(session.folder / "versions" / "new.zip")
    assert leftovers(session.folder) == []


def test_export_inside_another_session_is_refused(session: Session,
                                                  small_photo: Image.Image) -> None:
    other = Session.create(session.folder.parent, small_photo)
    with pytest.raises(SessionError, match=f"inside the session folder .*{other.id}"):
        session.export(other.folder / "masks" / "x.zip")
    assert sorted(p.name for p in (other.folder / "masks").iterdir()) == []


def test_export_to_a_folder_is_refused(session: Session, tmp_path: Path) -> None:
    with pytest.raises(SessionError, match="is a folder"):
        session.export(tmp_path)
    assert leftovers(tmp_path) == []


def test_export_to_a_fifo_is_refused_even_with_force(session: Session, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.zip"
    os.mkfifo(fifo)
    for force in (False, True):
        with pytest.raises(SessionError, match="not a regular file"):
            session.export(fifo, force=force)
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_export_through_a_link_is_refused(session: Session, tmp_path: Path) -> None:
    target = tmp_path / "target.txt"
    target.write_text("keep me")
    link = tmp_path / "link.zip"
    link.symlink_to(target)
    with pytest.raises(SessionError, match="is a link"):
        session.export(link, force=True)
    assert link.is_symlink() and target.read_text() == "keep me"


def test_an_existing_file_is_replaced_only_with_force(session: Session, tmp_path: Path) -> None:
    out = tmp_path / "export.zip"
    out.write_text("an older file")
    with pytest.raises(SessionError, match="already exists"):
        session.export(out)
    assert out.read_text() == "an older file"
    assert session.export(out, force=True) == out.resolve()
    with zipfile.ZipFile(out) as archive:
        assert "versions/0001.png" in archive.namelist()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("parent", ["a-file", "missing"])
def test_an_out_path_whose_folder_is_not_a_folder_is_refused(
        session: Session, tmp_path: Path, parent: str) -> None:
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(SessionError, match="is not a folder|doesn't exist"):
        session.export(tmp_path / parent / "export.zip")
    assert (tmp_path / "a-file").read_text() == "x" and not (tmp_path / "missing").exists()


def test_a_failing_write_leaves_no_temporary(session: Session, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(SessionError, match="No space left"):
        session.export(tmp_path / "export.zip")
    assert list(tmp_path.glob("*.zip")) == [] and leftovers(tmp_path) == []


# ----- paths stored in the database ---------------------------------------------------------

CRAFTED = {
    "absolute version": ("UPDATE versions SET file = ? WHERE id = 1", "/etc/hostname"),
    "version up and out": ("UPDATE versions SET file = ? WHERE id = 1",
                           "../../../../etc/hostname"),
    "the database as a version": ("UPDATE versions SET file = ? WHERE id = 1",
                                  "session.sqlite"),
    "mask up and out": ("UPDATE regions SET mask_file = ?", "../../../../etc/passwd"),
    "absolute mask": ("UPDATE regions SET mask_file = ?", "/etc/passwd"),
    "not text": ("UPDATE regions SET mask_file = ?", 7),
}


@pytest.mark.parametrize("crafted", list(CRAFTED))
def test_paths_from_a_crafted_database_are_refused(session: Session, tmp_path: Path,
                                                   crafted: str) -> None:
    sql, value = CRAFTED[crafted]
    update(session, sql, value)
    reopened = Session.open(session.id, session.folder.parent)
    out = tmp_path / "export.zip"
    with pytest.raises(SessionError, match="is damaged: its database names"):
        reopened.export(out)
    assert not out.exists() and leftovers(tmp_path) == []
    with pytest.raises(SessionError, match="is damaged"):
        reopened.mask(1, 0) if "mask" in crafted or crafted == "not text" \
            else reopened.image(1)


def test_a_version_that_links_out_of_the_folder_is_refused(session: Session,
                                                           tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    session.image(0).save(secret)
    version = session.folder / "versions" / "0001.png"
    version.unlink()
    version.symlink_to(secret)
    with pytest.raises(SessionError, match="is damaged"):
        session.image(1)
    with pytest.raises(SessionError, match="is damaged"):
        session.export(tmp_path / "export.zip")


def test_export_entry_names_are_built_from_numbers(session: Session, tmp_path: Path,
                                                   small_photo: Image.Image) -> None:
    (session.folder / "versions" / "0002.png").write_bytes(b"someone else's file")
    assert edit(session, small_photo) == 2  # stored under another name, exported as 0002
    assert session.version(2).file.name != "0002.png"
    with zipfile.ZipFile(session.export(tmp_path / "export.zip")) as archive:
        names = archive.namelist()
        assert np.array_equal(np.asarray(Image.open(archive.open("versions/0002.png"))),
                              np.asarray(session.image(2)))
    pattern = re.compile(r"(session\.json|versions/\d{4}\.png|masks/\d{4}-\d+\.png|"
                         r"provenance/\d{4}\.json)")
    assert all(pattern.fullmatch(name) for name in names), names
    assert sorted(n for n in names if n.startswith("versions/")) == [
        "versions/0000.png", "versions/0001.png", "versions/0002.png"]


# ----- missing files ------------------------------------------------------------------------

def test_a_missing_version_picture_is_a_clear_error(session: Session, tmp_path: Path) -> None:
    (session.folder / "versions" / "0001.png").unlink()
    with pytest.raises(SessionError, match="version 1 is missing"):
        session.image(1)
    with pytest.raises(SessionError, match="versions/0001.png is missing"):
        session.export(tmp_path / "export.zip")
    assert not (tmp_path / "export.zip").exists()


def test_a_missing_masks_folder_is_a_clear_error_and_the_session_goes_on(
        session: Session, tmp_path: Path, small_photo: Image.Image) -> None:
    for path in (session.folder / "masks").iterdir():
        path.unlink()
    (session.folder / "masks").rmdir()
    reopened = Session.open(session.id, session.folder.parent)
    with pytest.raises(SessionError, match="mask 0 of version 1 is missing"):
        reopened.mask(1, 0)
    with pytest.raises(SessionError, match="no mask 3"):
        reopened.mask(1, 3)
    with pytest.raises(SessionError, match="masks/0001-0.png is missing"):
        reopened.export(tmp_path / "export.zip")
    assert edit(reopened, small_photo) == 2
    assert reopened.mask(2, 0)[:4].all()


# ----- a full disk, a failed creation -------------------------------------------------------

def test_a_full_disk_surfaces_as_itself_and_the_session_stays_usable(
        session: Session, small_photo: Image.Image, monkeypatch: pytest.MonkeyPatch) -> None:
    connect = Session._connect

    def no_room_to_grow(self: Session, **options: Any) -> sqlite3.Connection:
        conn = connect(self, **options)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite then reports SQLITE_FULL
        return conn

    before = sorted(p.name for p in session.folder.rglob("*"))
    monkeypatch.setattr(Session, "_connect", no_room_to_grow)
    with pytest.raises(SessionError, match="database or disk is full") as raised:
        edit(session, small_photo, text="x" * 50_000)
    assert "cannot rollback" not in str(raised.value)
    with pytest.raises(SessionError, match="database or disk is full"):
        session.record_turn("y" * 50_000, "chat", "hello")
    assert sorted(p.name for p in session.folder.rglob("*")) == before  # nothing left over
    monkeypatch.undo()
    assert session.current == 1 and [t.version_after for t in session.turns()] == [1]
    assert edit(session, small_photo, text="x" * 50_000) == 2
    assert Session.open(session.id, session.folder.parent).current == 2


def test_a_failed_creation_leaves_no_folder(tmp_path: Path, small_photo: Image.Image,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def full(image: Image.Image, final: Path) -> None:
        final.write_bytes(b"half a png")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(session_module, "write_png", full)
    with pytest.raises(SessionError, match="can't create a session.*No space left"):
        Session.create(tmp_path, small_photo)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(SessionError, match="can't create a session"):
        Session.create(tmp_path / "a-file", small_photo)


def test_a_session_folder_is_private_to_its_owner(tmp_path: Path, small_photo: Image.Image) -> None:
    old = os.umask(0o022)  # the usual umask would leave a new folder readable by everyone
    try:
        session = Session.create(tmp_path, small_photo)
    finally:
        os.umask(old)
    assert stat.S_IMODE(session.folder.stat().st_mode) == 0o700


# ----- the journal --------------------------------------------------------------------------

def test_a_dead_writes_journal_removes_only_its_own_uncommitted_files(
        session: Session) -> None:
    folder = session.folder
    (folder / "versions" / "0005.png").write_bytes(b"placed by a write that died")
    (folder / "versions" / "0006.png").write_bytes(b"a person's file")
    files = new_files(folder).__enter__()  # a write killed before its commit: no exit
    files.claim(["versions/0005.png", "versions/0001.png", "session.sqlite",
                 "versions/../session.sqlite", "masks/../../outside.png"])
    (folder.parent / "outside.png").write_bytes(b"outside")
    sweep(folder, {"versions/0000.png", "versions/0001.png", "masks/0001-0.png"})
    assert not (folder / "versions" / "0005.png").exists()
    assert (folder / "versions" / "0001.png").is_file()  # committed
    assert (folder / "versions" / "0006.png").is_file()  # not in the journal
    assert (folder / "session.sqlite").is_file() and (folder.parent / "outside.png").is_file()
    assert not files.journal.exists()
    assert Session.open(session.id, folder.parent).current == 1

"""Sessions: the version tree, undo/redo/reset/branch, pending questions, provenance, export."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from promptartisan.agent.sessions.store import (
    Direction,
    PendingRequest,
    RegionRecord,
    Session,
    SessionError,
)


def tinted(image: Image.Image, value: int) -> Image.Image:
    return Image.fromarray((np.asarray(image).astype(np.int16) + value).clip(0, 255)
                           .astype(np.uint8))


def add(session: Session, image: Image.Image, value: int) -> int:
    mask = np.zeros((image.size[1], image.size[0]), dtype=bool)
    mask[: value % image.size[1] + 1] = True
    region = RegionRecord(mask=mask, prompt=f"tint {value}", target="top", group=1,
                          boxes=[[0.0, 0.0, 4.0, 4.0]])
    return session.add_version(tinted(image, value), [region], {"kind": "edit", "steps": 3},
                               text=f"tint {value}", message="done", plan={"action": "edit"},
                               seed=value)


def moved(session: Session, direction: Direction) -> tuple[int, int]:
    result = session.move(direction)
    return result.before, result.after


def test_create_stores_the_upload_as_version_zero(tmp_path: Path,
                                                  small_photo: Image.Image) -> None:
    session = Session.create(tmp_path, small_photo)
    assert session.current == 0
    assert np.array_equal(np.asarray(session.image()), np.asarray(small_photo))
    assert [info.id for info in Session.list(tmp_path)] == [session.id]
    assert [p.name for p in tmp_path.iterdir()] == [session.id]  # no staging left behind


def test_undo_redo_reset_move_the_pointer_and_an_edit_after_undo_branches(
        tmp_path: Path, small_photo: Image.Image) -> None:
    session = Session.create(tmp_path, small_photo)
    assert add(session, small_photo, 10) == 1
    assert add(session, small_photo, 20) == 2
    assert moved(session, "undo") == (2, 1)
    assert moved(session, "undo") == (1, 0)
    assert moved(session, "undo") == (0, 0)  # nowhere to go
    assert session.turns()[-1].message.startswith("Nothing to undo")
    assert moved(session, "redo") == (0, 1)
    assert moved(session, "redo") == (1, 2)
    assert moved(session, "redo") == (2, 2)
    assert moved(session, "reset") == (2, 0)
    assert moved(session, "redo") == (0, 1)
    assert add(session, small_photo, 30) == 3  # an edit on version 1: a branch beside 2
    assert session.version(3).parent == 1 and session.children(1) == [2, 3]
    assert moved(session, "undo") == (3, 1)
    assert moved(session, "redo") == (1, 3)  # the most recent child
    assert np.array_equal(np.asarray(session.image(2)), np.asarray(tinted(small_photo, 20)))
    assert all(v.file.is_file() for v in session.versions())  # nothing deleted
    reopened = Session.open(session.id, tmp_path)
    assert reopened.current == 3 and len(reopened.versions()) == 4


def test_every_version_records_what_made_it(tmp_path: Path, small_photo: Image.Image) -> None:
    session = Session.create(tmp_path, small_photo)
    number = add(session, small_photo, 5)
    version = session.version(number)
    assert version.seed == 5 and version.parent == 0
    assert version.provenance["steps"] == 3 and version.provenance["seed"] == 5
    (region,) = version.provenance["regions"]
    assert region["prompt"] == "tint 5" and region["mask_file"] == "masks/0001-0.png"
    stored = session.regions(number)[0]
    assert stored["group"] == 1 and stored["boxes"] == [[0.0, 0.0, 4.0, 4.0]]
    mask = session.mask(number, 0)
    assert mask.shape == (48, 64) and mask[:6].all() and not mask[6:].any()
    (turn,) = session.turns()
    assert turn.text == "tint 5" and turn.version_before == 0 and turn.version_after == 1


def test_a_pending_question_survives_reopening_and_an_edit_clears_it(
        tmp_path: Path, small_photo: Image.Image) -> None:
    session = Session.create(tmp_path, small_photo)
    pending = PendingRequest("change the dog", "What should the dog become?", "which",
                             ["the left one", "the right one"], {"index": 0})
    session.record_turn("change the dog", "clarify", pending.question, pending=pending)
    assert Session.open(session.id, tmp_path).pending == pending
    assert session.recent_messages() == ["change the dog"]
    add(session, small_photo, 1)
    assert session.pending is None


def test_export_holds_every_version_with_its_provenance(tmp_path: Path,
                                                        small_photo: Image.Image) -> None:
    session = Session.create(tmp_path / "sessions", small_photo)
    add(session, small_photo, 7)
    (tmp_path / "out").mkdir()
    archive = session.export(tmp_path / "out" / "export.zip")
    with zipfile.ZipFile(archive) as zipped:
        names = set(zipped.namelist())
        assert {"session.json", "versions/0000.png", "versions/0001.png", "masks/0001-0.png",
                "provenance/0000.json", "provenance/0001.json"} <= names
        provenance = json.loads(zipped.read("provenance/0001.json"))
        tree = json.loads(zipped.read("session.json"))
    assert provenance["seed"] == 7 and provenance["parent"] == 0
    assert [v["parent"] for v in tree["versions"]] == [None, 0]


def test_opening_sweeps_the_apps_temporaries_and_keeps_files_a_person_put_there(
        tmp_path: Path, small_photo: Image.Image) -> None:
    session = Session.create(tmp_path, small_photo)
    versions = session.folder / "versions"
    (versions / ".0001.png.123-0123abcd.tmp").write_bytes(b"half")
    (session.folder / "masks" / ".0001-0.png.77-deadbeef.tmp").write_bytes(b"half")
    mine = {"versions/backup.png": b"my backup", "versions/0001.png": b"my own 0001",
            "versions/0009.png": b"mine too", "masks/notes.txt": b"notes",
            "versions/.hidden.tmp": b"not the app's pattern"}
    for name, data in mine.items():
        (session.folder / name).write_bytes(data)
    reopened = Session.open(session.id, tmp_path)
    assert not (versions / ".0001.png.123-0123abcd.tmp").exists()
    assert not (session.folder / "masks" / ".0001-0.png.77-deadbeef.tmp").exists()
    assert {name: (session.folder / name).read_bytes() for name in mine} == mine
    # The next version is number 1, yet the person's versions/0001.png is not replaced.
    assert add(reopened, small_photo, 3) == 1
    assert (versions / "0001.png").read_bytes() == b"my own 0001"
    assert reopened.version(1).file.parent == versions.resolve()
    assert np.array_equal(np.asarray(reopened.image(1)), np.asarray(tinted(small_photo, 3)))
    assert {name: (session.folder / name).read_bytes() for name in mine} == mine


@pytest.mark.parametrize("name", ["nope", "", "../x", ".hidden"])
def test_opening_an_unknown_session_is_a_clear_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(SessionError, match="no session"):
        Session.open(name, tmp_path)


def test_listing_removes_abandoned_creations_but_not_recent_ones(
        tmp_path: Path, small_photo: Image.Image) -> None:
    import os
    import time

    from promptartisan.agent.sessions.store import ABANDONED_AFTER_S, STAGING_PREFIX

    session = Session.create(tmp_path, small_photo)
    abandoned = tmp_path / f"{STAGING_PREFIX}died-mid-create"
    recent = tmp_path / f"{STAGING_PREFIX}still-being-written"
    for folder in (abandoned, recent):
        (folder / "versions").mkdir(parents=True)
        (folder / "versions" / "0000.png").write_bytes(b"partial")
    old = time.time() - ABANDONED_AFTER_S - 60
    os.utime(abandoned, (old, old))
    assert [info.id for info in Session.list(tmp_path)] == [session.id]
    assert not abandoned.exists()
    assert recent.exists()


def test_two_views_keep_their_own_positions_and_redo_returns_to_their_own_branch(
        tmp_path: Path, small_photo: Image.Image) -> None:
    """The issue's case: windows A and C both on version 1 edit it (siblings 2 and 3); neither
    moves the other, and A's redo comes back to A's 2, not to C's newer 3."""
    session = Session.create(tmp_path, small_photo)
    add(session, small_photo, 10)
    a = session.in_view("window-a")
    c = Session.open(session.id, tmp_path, view="window-c")
    assert (a.current, c.current) == (1, 1)  # a new view starts where the session was left
    assert add(a, small_photo, 20) == 2
    assert c.current == 1
    assert add(c, small_photo, 30) == 3
    assert session.children(1) == [2, 3]
    assert moved(a, "undo") == (2, 1)
    assert c.current == 3
    assert moved(a, "redo") == (1, 2)  # A's own, though 3 is newer
    assert moved(c, "undo") == (3, 1)
    assert moved(c, "redo") == (1, 3)
    assert moved(a, "reset") == (2, 0)
    assert moved(a, "redo") == (0, 1)
    assert moved(a, "redo") == (1, 2)
    assert c.current == 3
    reopened = Session.open(session.id, tmp_path, view="window-a")
    assert reopened.current == 2
    assert Session.open(session.id, tmp_path).current == 2  # where the session was last left
    assert Session.list(tmp_path)[0].current == 2


def test_go_reaches_any_version_as_a_recorded_move_and_redo_follows_its_branch(
        tmp_path: Path, small_photo: Image.Image) -> None:
    """Versions 1 → 2 → 3 and a branch 1 → 4: going to 3 from the branch's tip is one move,
    recorded like undo; after Reset, Redo retraces the branch last gone to."""
    session = Session.create(tmp_path, small_photo)
    add(session, small_photo, 10)
    add(session, small_photo, 20)
    add(session, small_photo, 30)
    session.go(1)
    assert add(session, small_photo, 40) == 4 and session.children(1) == [2, 4]
    a, c = session.in_view("a"), session.in_view("c")
    went = a.go(3)
    assert (went.before, went.after) == (4, 3) and a.current == 3 and c.current == 4
    turn = a.turns()[-1]
    assert (turn.kind, turn.version_before, turn.version_after) == ("go", 4, 3)
    assert turn.message == "Went to version 3 (from version 4)."
    assert a.go(3).message == "Already at version 3."
    assert moved(a, "reset") == (3, 0)
    assert [moved(a, "redo")[1] for _ in range(3)] == [1, 2, 3]  # not the newer branch's 4
    assert moved(c, "undo") == (4, 1) and moved(c, "redo") == (1, 4)  # C's trail is its own
    assert all(v.file.is_file() for v in session.versions())  # nothing deleted
    with pytest.raises(SessionError, match="no version 9"):
        a.go(9)
    assert a.current == 3


def test_each_view_has_its_own_pending_question(tmp_path: Path,
                                                small_photo: Image.Image) -> None:
    session = Session.create(tmp_path, small_photo)
    a, c = session.in_view("a"), session.in_view("c")
    a.record_turn("change it", "clarify", "How?", pending=PendingRequest("change it", "How?"))
    assert a.pending is not None and a.pending.question == "How?"
    assert c.pending is None and session.pending is None
    add(c, small_photo, 10)  # another window's edit answers nothing of A's
    assert a.pending is not None and a.current == 0
    add(a, small_photo, 20)
    assert a.pending is None and session.version(2).parent == 0


def test_a_view_made_like_another_starts_from_its_place_and_then_keeps_its_own(
        tmp_path: Path, small_photo: Image.Image) -> None:
    """A reopened chat window (`like` its thread's saved view): it starts on that view's
    version, with its question and redo trail, though another view left the session
    elsewhere; after that neither moves the other."""
    session = Session.create(tmp_path, small_photo)
    a = session.in_view("a")
    for seed in (10, 20, 30):
        add(a, small_photo, seed)
    assert moved(a, "undo") == (3, 2)
    a.record_turn("change it", "clarify", "How?", pending=PendingRequest("change it", "How?"))
    other = session.in_view("other")
    assert moved(other, "reset") == (2, 0)  # the session was last left at the upload
    b = Session.open(session.id, tmp_path, view="b", like="a")
    assert b.current == 2 and b.pending is not None and b.pending.question == "How?"
    assert moved(b, "redo") == (2, 3)  # A's trail: back to 3
    assert moved(b, "reset") == (3, 0)
    assert a.current == 2  # B's moves are B's
    assert moved(a, "undo") == (2, 1)
    assert b.current == 0
    assert Session.open(session.id, tmp_path, view="b", like="other").current == 0  # kept
    with pytest.raises(SessionError, match="not a view id"):
        session.in_view("c", like="../x")


@pytest.mark.parametrize("view", ["", "a:b", "../x", "x" * 65])
def test_a_bad_view_id_is_refused(tmp_path: Path, small_photo: Image.Image, view: str) -> None:
    session = Session.create(tmp_path, small_photo)
    with pytest.raises(SessionError, match="not a view id"):
        session.in_view(view)

"""A session: one folder per picture holding every version, each turn's masks, and one SQLite
database recording how each version was made.

Layout::

    ROOT/SESSION_ID/
        session.sqlite        turns, plans, regions, parameters, the version tree, the pointer
        versions/NNNN.png     version NNNN (0000 is the upload)
        masks/NNNN-K.png      mask K of the turn that made version NNNN

Crash safety: an image or mask is written to a dot-named temporary file, synced and renamed
onto a name nothing else has, and only then does the row that references it commit, all while
the turn holds the database's write lock. A process killed at any point leaves either the whole
version or no row at all; `Session.open` sweeps what the app itself left behind (its
temporaries, and the files a dead write's journal lists) and nothing else. Undo, redo,
reset and go move the pointer; nothing is ever deleted. Every failure is a `SessionError` that says
which session and why: a damaged database, a missing file, a full disk.

Views: several windows on one session each hold their own position in the tree (and their own
pending question), so none moves another's or makes a version unreachable. `in_view(view)`
gives the session as one view sees it; without a view it is the session's own pointer,
`current`, which every move of every view also sets: where the session was last left, where a
view without a position yet starts, and what the command line works on. Positions live in the
`state` table (`current:VIEW`, `pending:VIEW`, `came:VIEW:PARENT`), so sessions written before
views open unchanged.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from promptartisan.agent.sessions.export import export_session
from promptartisan.agent.sessions.files import (
    DB_NAME,
    MASKS,
    STAGING_PREFIX,
    VERSIONS,
    SessionError,
    free_name,
    new_files,
    stored_path,
    sweep,
    write_png,
)
from promptartisan.tools.images import DEFAULT_MAX_PIXELS, load_image

ABANDONED_AFTER_S = 600
# How long a read waits for another process's write: a turn's transaction is short, so 30 s
# is only ever reached by a stuck writer; a listing waits a moment and says "in use".
BUSY_WAIT_S = 30.0
LISTING_BUSY_WAIT_S = 0.5
ORIGINAL = 0

Direction = Literal["undo", "redo", "reset"]
VIEW_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

SCHEMA = """
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    text TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    plan TEXT,
    version_before INTEGER NOT NULL,
    version_after INTEGER NOT NULL,
    seconds REAL
);
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY,
    parent INTEGER REFERENCES versions(id),
    turn_id INTEGER REFERENCES turns(id),
    file TEXT NOT NULL,
    created REAL NOT NULL,
    seed INTEGER,
    provenance TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS regions (
    version_id INTEGER NOT NULL REFERENCES versions(id),
    k INTEGER NOT NULL,
    target TEXT NOT NULL,
    prompt TEXT NOT NULL,
    grp INTEGER,
    ord INTEGER NOT NULL,
    mask_file TEXT NOT NULL,
    source TEXT NOT NULL,
    score REAL,
    label TEXT,
    boxes TEXT NOT NULL,
    PRIMARY KEY (version_id, k)
);
"""


@dataclass(frozen=True)
class RegionRecord:
    """One region of an edit: its mask at the image's size and where the mask came from."""

    mask: np.ndarray
    prompt: str
    target: str
    group: int | None = None
    order: int = 0
    source: str = "grounding"  # grounding | user | whole-image | choice
    score: float | None = None
    label: str | None = None
    boxes: list[list[float]] = field(default_factory=list)


@dataclass(frozen=True)
class Version:
    id: int
    parent: int | None
    turn_id: int | None
    file: Path
    created: float
    seed: int | None
    provenance: dict[str, Any]


@dataclass(frozen=True)
class Turn:
    id: int
    created: float
    text: str
    kind: str
    message: str
    plan: dict[str, Any] | None
    version_before: int
    version_after: int
    seconds: float | None


@dataclass(frozen=True)
class PendingRequest:
    """A question the agent asked and is waiting on; the next message is read as its answer.

    kind: "clarify" (the planner asked), "locate" (a target wasn't found) or "which" (a target
    matched several instances). `data` holds what the answer needs (the plan, candidates)."""

    text: str
    question: str
    kind: str = "clarify"
    choices: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Moved:
    """Where undo/redo/reset went: `before` == `after` when there was nowhere to go."""

    before: int
    after: int
    message: str


@dataclass(frozen=True)
class SessionInfo:
    """One line of `Session.list`. `damaged`: why the session can't be read (then the counts
    are 0 and `created` is its folder's time), None when it can. `in_use`: another process
    held its database longer than a listing waits (the counts are 0 then too)."""

    id: str
    folder: Path
    created: float
    versions: int
    current: int
    turns: int
    damaged: str | None = None
    in_use: bool = False


def _sweep_abandoned(staging: Path) -> None:
    """Remove a session folder whose creation died before its rename. One younger than
    `ABANDONED_AFTER_S` may still be being written by another process, so it stays."""
    try:
        if time.time() - staging.stat().st_mtime > ABANDONED_AFTER_S:
            shutil.rmtree(staging, ignore_errors=True)
    except FileNotFoundError:  # its creator just renamed it
        pass


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _mask_image(mask: np.ndarray) -> Image.Image:
    return Image.fromarray(np.asarray(mask, dtype=bool).astype(np.uint8) * 255, mode="L")


class Session:
    """One picture's history, as one view (a chat window) sees it; `view` None is the
    session's own pointer. Safe to use from several threads; each write is one transaction."""

    def __init__(self, folder: Path, view: str | None = None,
                 busy_wait_s: float = BUSY_WAIT_S) -> None:
        if view is not None and not VIEW_ID.fullmatch(view):
            raise SessionError(f"{view!r} is not a view id (letters, digits, - and _, at most "
                               "64)")
        self.folder = Path(folder)
        self.id = self.folder.name
        self.view = view
        self._db = self.folder / DB_NAME
        self._lock = threading.RLock()
        self._busy_wait_s = busy_wait_s

    def in_view(self, view: str | None, like: str | None = None) -> Session:
        """This session as `view` sees it: its own position, pending question and redo trail.
        A view new to the session starts, from now on, as view `like` is (its position,
        question and trail copied: a reloaded or reopened chat window goes on from its
        thread's place without sharing it), or where the session was last left."""
        session = Session(self.folder, view)
        if view is not None and session._state(session._key("current"), None) is None:
            with session._lock, session._transaction() as conn:
                if like is not None and like != view:
                    source = Session(self.folder, like)
                    for name in ("current", "pending"):
                        conn.execute("INSERT OR IGNORE INTO state (key, value) SELECT ?, value "
                                     "FROM state WHERE key = ?",
                                     (session._key(name), source._key(name)))
                    trail = f"came:{like}:"  # came:VIEW:PARENT, see _key
                    conn.execute("INSERT OR IGNORE INTO state (key, value) SELECT ? || "
                                 "substr(key, ?), value FROM state WHERE substr(key, 1, ?) = ?",
                                 (f"came:{view}:", len(trail) + 1, len(trail), trail))
                conn.execute("INSERT OR IGNORE INTO state (key, value) SELECT ?, value FROM "
                             "state WHERE key = 'current'", (session._key("current"),))
        return session

    # ----- creating, opening, listing -------------------------------------------------------

    @classmethod
    def create(cls, root: str | Path, image: Image.Image | str | Path | bytes,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> Session:
        """A new session whose version 0 is `image`. The folder appears whole or not at all."""
        original = load_image(image, max_pixels)
        root = Path(root)
        session_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        staging = root / f"{STAGING_PREFIX}{session_id}"
        upload = f"{VERSIONS}/{ORIGINAL:04d}.png"
        try:
            staging.mkdir(mode=0o700, parents=True)  # photos are private to their owner
            staging.chmod(0o700)  # whatever the umask
            (staging / VERSIONS).mkdir()
            (staging / MASKS).mkdir()
            write_png(original, staging / upload)
            now = time.time()
            with closing(sqlite3.connect(staging / DB_NAME)) as conn, conn:
                conn.executescript(SCHEMA)
                conn.execute(
                    "INSERT INTO versions (id, parent, turn_id, file, created, seed, "
                    "provenance) VALUES (?, NULL, NULL, ?, ?, NULL, ?)",
                    (ORIGINAL, upload, now,
                     json.dumps({"kind": "upload", "size": list(original.size)})),
                )
                conn.executemany("INSERT INTO state (key, value) VALUES (?, ?)",
                                 [("current", str(ORIGINAL)), ("created", repr(now))])
            os.replace(staging, root / session_id)
        except (OSError, sqlite3.Error) as exc:
            raise SessionError(f"can't create a session in {root}: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # already gone once renamed
        return cls(root / session_id)

    @classmethod
    def open(cls, session_id: str, root: str | Path, view: str | None = None,
             like: str | None = None) -> Session:
        """Reopen a session (as `view` sees it; a new view starts as `like`, see `in_view`),
        e.g. after a crash: what a killed write left is swept; every finished version is
        there. A damaged one is a SessionError naming it and why."""
        folder = Path(root) / session_id
        if not session_id or "/" in session_id or session_id.startswith(".") \
                or not os.path.isfile(folder / DB_NAME):
            raise SessionError(f"no session {session_id!r} in {root}")
        session = cls(folder)
        session.info()  # a damaged database fails here, naming the session and why
        session._sweep()
        return session.in_view(view, like)

    @staticmethod
    def list(root: str | Path) -> list[SessionInfo]:
        """Every session under `root`, oldest first. One that can't be read is listed with
        the reason (`SessionInfo.damaged`) and never hides the others."""
        root = Path(root)
        if not root.is_dir():
            return []
        try:
            folders = list(root.iterdir())
        except OSError as exc:
            raise SessionError(f"can't list the sessions in {root}: {exc}") from exc
        infos = []
        for folder in folders:
            if folder.name.startswith(STAGING_PREFIX):
                _sweep_abandoned(folder)
            elif not folder.name.startswith(".") and os.path.isfile(folder / DB_NAME):
                infos.append(Session(folder, busy_wait_s=LISTING_BUSY_WAIT_S)._listing())
        return sorted(infos, key=lambda info: (info.created, info.id))

    def info(self) -> SessionInfo:
        with self._read() as conn:
            versions = conn.execute("SELECT COUNT(*) FROM versions").fetchone()[0]
            turns = conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0]
        return SessionInfo(self.id, self.folder, self._number("created", float), versions,
                           self._number("current", int), turns)

    # ----- reading ------------------------------------------------------------------------

    @property
    def current(self) -> int:
        """The version the next edit starts from: this view's position (a view that has none
        yet starts where the session was last left)."""
        with self._read() as conn:
            return self._position(conn)

    @property
    def pending(self) -> PendingRequest | None:
        """The question this view awaits an answer to, if any."""
        value = self._state(self._key("pending"), None)
        return None if value is None else PendingRequest(**self._json(value, "pending"))

    def image(self, version: int | None = None) -> Image.Image:
        """The pixels of `version` (default: the current one)."""
        record = self.version(self.current if version is None else version)
        return self._picture(record.file, f"version {record.id}", "RGB")

    def version(self, number: int) -> Version:
        with self._read() as conn:
            row = conn.execute("SELECT * FROM versions WHERE id = ?", (number,)).fetchone()
        if row is None:
            raise SessionError(f"session {self.id} has no version {number}")
        return self._version(row)

    def versions(self) -> list[Version]:
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM versions ORDER BY id").fetchall()
        return [self._version(row) for row in rows]

    def regions(self, number: int) -> list[dict[str, Any]]:
        """The regions that made version `number`, each with its mask file's path."""
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM regions WHERE version_id = ? ORDER BY k",
                                (number,)).fetchall()
        if any(not isinstance(row["k"], int) for row in rows):
            raise SessionError(f"session {self.id} is damaged: version {number} has a region "
                               "whose number is not a number")
        return [{"k": row["k"], "target": row["target"], "prompt": row["prompt"],
                 "group": row["grp"], "order": row["ord"],
                 "mask_file": str(stored_path(self.folder, row["mask_file"], MASKS)),
                 "source": row["source"], "score": row["score"], "label": row["label"],
                 "boxes": self._json(row["boxes"], f"boxes of version {number}")}
                for row in rows]

    def mask(self, number: int, k: int) -> np.ndarray:
        """Mask `k` of the edit that made version `number`, at the image's size."""
        with self._read() as conn:
            row = conn.execute("SELECT mask_file FROM regions WHERE version_id = ? AND k = ?",
                               (number, k)).fetchone()
        if row is None:
            raise SessionError(f"session {self.id} has no mask {k} for version {number}")
        path = stored_path(self.folder, row["mask_file"], MASKS)
        return np.asarray(self._picture(path, f"mask {k} of version {number}", "L")) > 127

    def turns(self) -> list[Turn]:
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM turns ORDER BY id").fetchall()
        return [Turn(row["id"], row["created"], row["text"], row["kind"], row["message"],
                     self._json(row["plan"], f"plan of turn {row['id']}") if row["plan"]
                     else None, row["version_before"],
                     row["version_after"], row["seconds"]) for row in rows]

    def recent_messages(self, limit: int = 6) -> list[str]:
        """The user's last `limit` messages, oldest first: the planner's context."""
        with self._read() as conn:
            rows = conn.execute("SELECT text FROM turns WHERE text != '' ORDER BY id DESC "
                                "LIMIT ?", (limit,)).fetchall()
        return [row["text"] for row in reversed(rows)]

    def children(self, number: int) -> list[int]:
        with self._read() as conn:
            rows = conn.execute("SELECT id FROM versions WHERE parent = ? ORDER BY id",
                                (number,)).fetchall()
        return [row["id"] for row in rows]

    # ----- writing ------------------------------------------------------------------------

    def add_version(self, image: Image.Image, regions: list[RegionRecord],
                    provenance: dict[str, Any], text: str, message: str,
                    plan: dict[str, Any] | None = None, parent: int | None = None,
                    seed: int | None = None, seconds: float | None = None,
                    kind: str = "edit") -> int:
        """Store a new version (child of `parent`, default the current one), its masks and the
        turn that made it (`kind`: edit or upload), make it this view's current one and clear
        its pending question. Returns its number."""
        with self._lock, new_files(self.folder) as files, self._transaction() as conn:
            parent = self._position(conn) if parent is None else parent
            number = conn.execute("SELECT COALESCE(MAX(id), -1) + 1 FROM versions").fetchone()[0]
            image_file = free_name(self.folder, VERSIONS, f"{number:04d}")
            mask_files = [free_name(self.folder, MASKS, f"{number:04d}-{k}")
                          for k in range(len(regions))]
            files.claim([image_file, *mask_files])
            files.write_png(image.convert("RGB"), image_file)
            for region, mask_file in zip(regions, mask_files, strict=True):
                files.write_png(_mask_image(region.mask), mask_file)
            now = time.time()
            turn_id = self._insert_turn(conn, now, text, kind, message, plan, parent, number,
                                        seconds)
            record = {**provenance, "parent": parent, "seed": seed, "regions": [
                {**_region_json(region), "mask_file": mask_file}
                for region, mask_file in zip(regions, mask_files, strict=True)]}
            conn.execute(
                "INSERT INTO versions (id, parent, turn_id, file, created, seed, provenance) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (number, parent, turn_id, image_file, now, seed, json.dumps(record)),
            )
            conn.executemany(
                "INSERT INTO regions (version_id, k, target, prompt, grp, ord, mask_file, "
                "source, score, label, boxes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(number, k, r.target, r.prompt, r.group, r.order, mask_files[k],
                  r.source, r.score, r.label, json.dumps(r.boxes))
                 for k, r in enumerate(regions)],
            )
            self._go(conn, number)
        return number

    def record_turn(self, text: str, kind: str, message: str,
                    plan: dict[str, Any] | None = None,
                    pending: PendingRequest | None = None, seconds: float | None = None) -> None:
        """Record a turn that made no version (a question, a chat reply). `pending` becomes the
        question this view awaits an answer to; None clears it."""
        with self._lock, self._transaction() as conn:
            current = self._position(conn)
            self._insert_turn(conn, time.time(), text, kind, message, plan, current, current,
                              seconds)
            if pending is None:
                conn.execute("DELETE FROM state WHERE key = ?", (self._key("pending"),))
            else:
                self._set_state(conn, self._key("pending"), json.dumps(asdict(pending)))

    def move(self, kind: Direction, text: str = "", plan: dict[str, Any] | None = None,
             steps: int = 1) -> Moved:
        """Move this view `steps` times ("undo 3 times"): undo (to the parent), redo (to the
        child this view last undid from, else the most recent child) or reset (to the upload,
        whatever `steps`), recorded as one turn; it stops early at the upload or at a branch's
        newest version and says so. Deletes nothing."""
        with self._lock, self._transaction() as conn:
            before = after = self._position(conn)
            taken = 0
            for _ in range(max(1, steps) if kind != "reset" else 1):
                step = self._step(conn, kind, after)
                if step == after:
                    break
                after, taken = step, taken + 1
            message = _move_message(kind, before, after, taken, steps)
            self._insert_turn(conn, time.time(), text, kind, message, plan, before, after, None)
            self._go(conn, after)
        return Moved(before, after, message)

    def _step(self, conn: sqlite3.Connection, kind: Direction, at: int) -> int:
        """Where one undo, redo or reset from version `at` leads (`at` when nowhere)."""
        if kind == "undo":
            row = conn.execute("SELECT parent FROM versions WHERE id = ?", (at,)).fetchone()
            after = at if row is None or row["parent"] is None else row["parent"]
            if after != at:  # redo comes back here, whatever other views add meanwhile
                self._set_state(conn, self._key(f"came:{after}"), str(at))
            return int(after)
        if kind == "redo":
            children = [row[0] for row in conn.execute(
                "SELECT id FROM versions WHERE parent = ? ORDER BY id", (at,))]
            came = conn.execute("SELECT value FROM state WHERE key = ?",
                                (self._key(f"came:{at}"),)).fetchone()
            return (int(came[0]) if came is not None and came[0].isdigit()
                    and int(came[0]) in children else children[-1] if children else at)
        return ORIGINAL

    def lineage(self, number: int) -> list[int]:
        """Version `number` and its ancestors up to the upload, newest first: the edits whose
        pixels it carries."""
        with self._read() as conn:
            parents = dict(conn.execute("SELECT id, parent FROM versions").fetchall())
        if number not in parents:
            raise SessionError(f"session {self.id} has no version {number}")
        chain = [number]
        while parents.get(chain[-1]) is not None and parents[chain[-1]] not in chain:
            chain.append(parents[chain[-1]])
        return chain

    def go(self, number: int, text: str = "", plan: dict[str, Any] | None = None) -> Moved:
        """Move this view to version `number` (any version, on any branch), recorded as a turn
        of kind "go" (with `plan`, when a described version led there). Redo from each of its
        ancestors then leads back along its branch. Deletes nothing; a version the session
        lacks is a SessionError."""
        with self._lock, self._transaction() as conn:
            before = self._position(conn)
            parents = dict(conn.execute("SELECT id, parent FROM versions").fetchall())
            if number not in parents:
                raise SessionError(f"session {self.id} has no version {number}")
            child, seen = number, set()
            while parents.get(child) is not None and child not in seen:  # the redo trail
                seen.add(child)
                self._set_state(conn, self._key(f"came:{parents[child]}"), str(child))
                child = parents[child]
            message = (f"Already at version {number}." if before == number
                       else f"Went to version {number} (from version {before}).")
            self._insert_turn(conn, time.time(), text, "go", message, plan, before, number, None)
            self._go(conn, number)
        return Moved(before, number, message)

    def export(self, out: str | Path, force: bool = False) -> Path:
        """A zip with every version, its masks and its provenance (JSON), and the session's
        tree and turns. `out` must be a new file (or, with `force`, an existing regular file)
        outside every session folder; see `session_export`."""
        return export_session(self, out, force)

    # ----- internals ----------------------------------------------------------------------

    def _listing(self) -> SessionInfo:
        """`info()`, or an entry saying it is in use or why it can't be read."""
        try:
            return self.info()
        except (SessionError, OSError) as exc:
            cause = exc.__cause__
            if isinstance(cause, sqlite3.Error) and cause.sqlite_errorcode == sqlite3.SQLITE_BUSY:
                return SessionInfo(self.id, self.folder, _modified(self.folder), 0, 0, 0,
                                   in_use=True)
            return SessionInfo(self.id, self.folder, _modified(self.folder), 0, 0, 0,
                               damaged=str(exc.__cause__ or exc))

    def _sweep(self) -> None:
        """Remove what killed writes left (see `session_files.sweep`), and nothing else: a
        file someone put in the folder stays. Runs under the write lock, so no writer is
        half-way through a turn meanwhile."""
        with self._lock, self._transaction() as conn:
            referenced = {row[0] for row in conn.execute("SELECT file FROM versions")}
            referenced |= {row[0] for row in conn.execute("SELECT mask_file FROM regions")}
            sweep(self.folder, referenced)

    def _connect(self, **options: Any) -> sqlite3.Connection:
        """A connection to the session's database; it is never created here."""
        conn = sqlite3.connect(f"{self._db.resolve().as_uri()}?mode=rw", uri=True,
                               timeout=self._busy_wait_s,
                               **options)
        conn.row_factory = sqlite3.Row
        return conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(self._connect()) as conn:
                yield conn
        except sqlite3.Error as exc:
            raise SessionError(f"session {self.id} can't be read: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction holding SQLite's write lock from its first statement. On any
        failure it is rolled back, if SQLite hasn't already (a full disk does), and the
        failure itself is what surfaces."""
        try:
            with closing(self._connect(isolation_level=None)) as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                finally:
                    if conn.in_transaction:
                        with suppress(sqlite3.Error):  # closing rolls back all the same
                            conn.execute("ROLLBACK")
        except (sqlite3.Error, OSError) as exc:
            raise SessionError(f"session {self.id} can't be written: {exc}") from exc

    def _state(self, key: str, *default: str | None) -> Any:
        with self._read() as conn:
            row = conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        if row is None:
            if default:
                return default[0]
            raise SessionError(f"session {self.id} is damaged: no {key!r} in its state")
        return row["value"]

    def _number(self, key: str, kind: type[int] | type[float]) -> Any:
        value = self._state(key)
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise SessionError(f"session {self.id} is damaged: its {key!r} is {value!r}, "
                               "not a number") from None

    def _json(self, text: Any, what: str) -> Any:
        try:
            return json.loads(text)
        except (TypeError, ValueError):
            raise SessionError(f"session {self.id} is damaged: the {what} is not JSON") from None

    def _picture(self, path: Path, what: str, mode: str) -> Image.Image:
        try:
            with Image.open(path) as image:
                return image.convert(mode)
        except FileNotFoundError:
            raise SessionError(f"session {self.id}: the file of {what} is missing ({path})"
                               ) from None
        except (OSError, Image.DecompressionBombError) as exc:
            raise SessionError(f"session {self.id}: the file of {what} can't be read ({exc})"
                               ) from exc

    def _key(self, name: str) -> str:
        """The state key of this view's `name`."""
        if self.view is None:
            return name
        head, _, tail = name.partition(":")
        return f"{head}:{self.view}:{tail}" if tail else f"{name}:{self.view}"

    def _position(self, conn: sqlite3.Connection) -> int:
        """This view's version; a view that has none yet is where the session was left."""
        for key in dict.fromkeys([self._key("current"), "current"]):
            row = conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
            if row is not None:
                try:
                    return int(row[0])
                except (TypeError, ValueError):
                    raise SessionError(f"session {self.id} is damaged: its {key!r} is "
                                       f"{row[0]!r}, not a number") from None
        raise SessionError(f"session {self.id} is damaged: no 'current' in its state")

    def _go(self, conn: sqlite3.Connection, number: int) -> None:
        """Put this view (and the session's last-left pointer) on `number`; its pending
        question, if any, is answered by the move."""
        self._set_state(conn, self._key("current"), str(number))
        self._set_state(conn, "current", str(number))
        conn.execute("DELETE FROM state WHERE key = ?", (self._key("pending"),))

    @staticmethod
    def _set_state(conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute("INSERT INTO state (key, value) VALUES (?, ?) "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    @staticmethod
    def _insert_turn(conn: sqlite3.Connection, created: float, text: str, kind: str,
                     message: str, plan: dict[str, Any] | None, before: int, after: int,
                     seconds: float | None) -> int:
        cursor = conn.execute(
            "INSERT INTO turns (created, text, kind, message, plan, version_before, "
            "version_after, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (created, text, kind, message, json.dumps(plan) if plan is not None else None,
             before, after, seconds),
        )
        return int(cursor.lastrowid)

    def _version(self, row: sqlite3.Row) -> Version:
        return Version(row["id"], row["parent"], row["turn_id"],
                       stored_path(self.folder, row["file"], VERSIONS), row["created"],
                       row["seed"], self._json(row["provenance"], f"provenance of version "
                                               f"{row['id']}"))


def _region_json(region: RegionRecord) -> dict[str, Any]:
    return {"target": region.target, "prompt": region.prompt, "group": region.group,
            "order": region.order, "source": region.source, "score": region.score,
            "label": region.label, "boxes": region.boxes}


def _move_message(kind: Direction, before: int, after: int, taken: int, steps: int) -> str:
    if before == after:
        return {"undo": "Nothing to undo: this is the original image.",
                "redo": "Nothing to redo.",
                "reset": "This is already the original image."}[kind]
    if kind == "reset" or steps <= 1:
        return {"undo": f"Undone: back to version {after}.",
                "redo": f"Redone: version {after}.",
                "reset": "Back to the original image (every version is kept)."}[kind]
    plural = "s" if taken > 1 else ""
    if taken < steps:
        return {"undo": f"There were only {taken} step{plural} to undo: back to the original "
                        f"image (version {after}).",
                "redo": f"There were only {taken} step{plural} to redo: version {after} is the "
                        "newest on this branch."}[kind]
    return {"undo": f"Undone {taken} steps: back to version {after}.",
            "redo": f"Redone {taken} steps: version {after}."}[kind]

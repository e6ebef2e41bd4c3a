"""The chat's memory across reloads and restarts: Chainlit's own SQLAlchemy data layer on a
SQLite file in the chat's state folder, elements (pictures, uploads) as files beside it, and
which user owns which session.

Everything lives in the state folder (`<session_dir>/../chainlit`, 0700): `chat.sqlite` holds
Chainlit's users, threads, steps and elements and this app's `session_owners` table; the
pictures are under `elements/USER_ID/ELEMENT_ID/NAME`. The schema is created at start (Chainlit
expects it to exist), so there is nothing for the person to run. Elements are served back only
to the user whose thread holds them (`ELEMENTS_ROUTE`, see `element_path`).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from chainlit.data.storage_clients.base import BaseStorageClient

DB_NAME = "chat.sqlite"
ELEMENTS_DIR = "elements"
ELEMENTS_ROUTE = "/promptartisan/elements"

# The tables Chainlit's SQLAlchemyDataLayer reads and writes (its documented schema, with the
# columns Chainlit 2.x steps and elements carry), and this app's session owners.
SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    "id" TEXT PRIMARY KEY,
    "identifier" TEXT NOT NULL UNIQUE,
    "metadata" TEXT NOT NULL,
    "createdAt" TEXT
);
CREATE TABLE IF NOT EXISTS threads (
    "id" TEXT PRIMARY KEY,
    "createdAt" TEXT,
    "name" TEXT,
    "userId" TEXT,
    "userIdentifier" TEXT,
    "tags" TEXT,
    "metadata" TEXT,
    FOREIGN KEY ("userId") REFERENCES users("id") ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS steps (
    "id" TEXT PRIMARY KEY,
    "name" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "threadId" TEXT NOT NULL,
    "parentId" TEXT,
    "streaming" BOOLEAN NOT NULL,
    "waitForAnswer" BOOLEAN,
    "isError" BOOLEAN,
    "metadata" TEXT,
    "tags" TEXT,
    "input" TEXT,
    "output" TEXT,
    "createdAt" TEXT,
    "command" TEXT,
    "modes" TEXT,
    "start" TEXT,
    "end" TEXT,
    "generation" TEXT,
    "showInput" TEXT,
    "language" TEXT,
    "indent" INT,
    "defaultOpen" BOOLEAN,
    "autoCollapse" BOOLEAN,
    FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS elements (
    "id" TEXT PRIMARY KEY,
    "threadId" TEXT,
    "type" TEXT,
    "url" TEXT,
    "chainlitKey" TEXT,
    "name" TEXT NOT NULL,
    "display" TEXT,
    "objectKey" TEXT,
    "size" TEXT,
    "page" INT,
    "language" TEXT,
    "forId" TEXT,
    "mime" TEXT,
    "props" TEXT,
    "autoPlay" BOOLEAN,
    "playerConfig" TEXT,
    FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS feedbacks (
    "id" TEXT PRIMARY KEY,
    "forId" TEXT NOT NULL,
    "threadId" TEXT NOT NULL,
    "value" INT NOT NULL,
    "comment" TEXT,
    FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS session_owners (
    "session_id" TEXT PRIMARY KEY,
    "user_identifier" TEXT NOT NULL
);
"""


def database_path(state: Path) -> Path:
    return state / DB_NAME


def create_schema(state: Path) -> Path:
    """The database with every table Chainlit and this app use (created once, kept after);
    readable by this user only."""
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = database_path(state)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(SCHEMA)
    return path


def chat_data_layer(state: Path) -> ChatDataLayer:
    """Chainlit's SQLAlchemy data layer on the state folder's database, elements as files."""
    path = create_schema(state)
    return ChatDataLayer(f"sqlite+aiosqlite:///{path}",
                         storage_provider=LocalStorage(state / ELEMENTS_DIR))


class ChatDataLayer(SQLAlchemyDataLayer):
    """Chainlit's SQLAlchemy data layer, with custom elements' props read back as the objects
    they were (it returns SQLite's JSON text, and a resumed history element showed nothing)."""

    async def get_all_user_threads(self, user_id: str | None = None,
                                   thread_id: str | None = None) -> list[Any] | None:
        threads = await super().get_all_user_threads(user_id=user_id, thread_id=thread_id)
        for thread in threads or []:
            for element in thread["elements"]:
                if isinstance(element.get("props"), str):
                    element["props"] = json.loads(element["props"] or "{}")
        return threads


class LocalStorage(BaseStorageClient):
    """Chainlit's element storage as files under `root` (there is no cloud storage here);
    their URL is this app's route, which checks the reader owns them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, object_key: str) -> Path:
        """The file for `object_key`; a key that would leave `root` is refused."""
        parts = object_key.split("/")
        if not object_key or any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"not an element key: {object_key!r}")
        return self.root.joinpath(*parts)

    async def upload_file(self, object_key: str, data: bytes | str,
                          mime: str = "application/octet-stream", overwrite: bool = True,
                          content_disposition: str | None = None) -> dict[str, Any]:
        path = self.path(object_key)
        if path.exists() and not overwrite:
            return {"object_key": object_key, "url": element_url(object_key)}
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(data.encode() if isinstance(data, str) else data)
        os.replace(temporary, path)
        return {"object_key": object_key, "url": element_url(object_key)}

    async def delete_file(self, object_key: str) -> bool:
        self.path(object_key).unlink(missing_ok=True)
        return True

    async def get_read_url(self, object_key: str) -> str:
        return element_url(object_key)

    async def close(self) -> None:
        return None


def element_url(object_key: str) -> str:
    return f"{ELEMENTS_ROUTE}/{object_key}"


async def element_path(layer: SQLAlchemyDataLayer, storage: LocalStorage, object_key: str,
                       user_id: str) -> Path | None:
    """The file of an element in one of `user_id`'s threads; None for another user's element,
    or one with no file. (Chainlit names keys after the thread's user, but an upload stored
    before its thread was written is named `unknown/...`: the thread decides, not the key.)"""
    rows = await layer.execute_sql(
        'SELECT t."userId" AS owner FROM elements e JOIN threads t ON e."threadId" = t."id" '
        'WHERE e."objectKey" = :key', {"key": object_key})
    if not isinstance(rows, list) or not rows or any(row["owner"] != user_id for row in rows):
        return None
    try:
        path = storage.path(object_key)
    except ValueError:
        return None
    return path if path.is_file() else None


class SessionOwners:
    """Which signed-in user each session belongs to (the `session_owners` table), read and
    written from the chat's worker threads."""

    def __init__(self, state: Path) -> None:
        self.path = create_schema(state)

    def add(self, session_id: str, user: str) -> None:
        with closing(sqlite3.connect(self.path)) as conn, conn:
            conn.execute("INSERT OR IGNORE INTO session_owners VALUES (?, ?)",
                         (session_id, user))

    def owned(self, user: str) -> set[str]:
        with closing(sqlite3.connect(self.path)) as conn:
            rows = conn.execute("SELECT session_id FROM session_owners WHERE user_identifier "
                                "= ?", (user,)).fetchall()
        return {row[0] for row in rows}


class OwnedSessions:
    """`Session` as one signed-in user sees it: listing shows only their sessions, opening
    another's is a SessionError, and each session created is recorded as theirs. Given to the
    `ChatController` in place of `Session` when the chat has several users."""

    def __init__(self, owners: SessionOwners, user: str) -> None:
        from promptartisan.agent.sessions.store import Session

        self._session = Session
        self.owners = owners
        self.user = user

    def list(self, root: str | Path) -> Sequence[Any]:
        owned = self.owners.owned(self.user)
        return [info for info in self._session.list(root) if info.id in owned]

    def open(self, session_id: str, root: str | Path, view: str | None = None,
             like: str | None = None) -> Any:
        from promptartisan.agent.sessions.store import SessionError

        if session_id not in self.owners.owned(self.user):
            raise SessionError(f"session {session_id!r} is not one of yours")
        return self._session.open(session_id, root, view=view, like=like)

    def create(self, root: str | Path, *args: Any, **kwargs: Any) -> Any:
        session = self._session.create(root, *args, **kwargs)
        self.owners.add(session.id, self.user)
        return session

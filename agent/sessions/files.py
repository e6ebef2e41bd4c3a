"""A session's files on disk: atomic writes under names only this app uses, the journal that
lets a reopened session prove which leftover files are its own, and the check that keeps every
path read from a session's database inside its folder.

Nothing here deletes or replaces a file the app didn't create: a new file never takes a name
that is already there, and a sweep removes only the app's temporaries and the files a journal
says the app placed for a write that never committed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from PIL import Image

from promptartisan.tools.atomic import temporary_path, write_atomically

DB_NAME = "session.sqlite"
STAGING_PREFIX = ".creating-"
VERSIONS = "versions"
MASKS = "masks"
JOURNAL = "writing"

# `.NAME.PID-HEX8.tmp`: what `temporary_path` makes, and the only names a sweep removes.
TEMPORARY = re.compile(r"^\..+\.\d+-[0-9a-f]{8}\.tmp$")


class SessionError(ValueError):
    """A session can't be found or used; the message says which and why."""


def is_temporary(path: Path) -> bool:
    return TEMPORARY.match(path.name) is not None


def stored_path(folder: Path, stored: object, sub: str) -> Path:
    """`stored`, a file name read from the database of the session in `folder`, as a path
    inside `folder/sub`. A damaged or crafted database naming anything else (an absolute path,
    `..`, a link out of the folder) is refused."""
    base = folder.resolve() / sub
    try:
        path = (folder / stored).resolve() if isinstance(stored, str) and stored else None
    except (OSError, ValueError):  # an embedded NUL, a link loop
        path = None
    if path is None or path.parent != base:
        raise SessionError(f"session {folder.name} is damaged: its database names {stored!r}, "
                           f"which is not a file in its {sub}/ folder")
    return path


def free_name(folder: Path, sub: str, stem: str) -> str:
    """`sub/STEM.png`, or a unique variant when something already has that name: a file
    someone put in the folder is never replaced."""
    name = f"{sub}/{stem}.png"
    while os.path.lexists(folder / name):
        name = f"{sub}/{stem}.{secrets.token_hex(4)}.png"
    return name


def write_png(image: Image.Image, final: Path) -> None:
    """Write `image` under `final` atomically: a synced temporary, then a rename."""
    final.parent.mkdir(exist_ok=True)
    write_atomically(final, lambda handle: image.save(handle, format="PNG"))


class NewFiles:
    """The files one write places in a session folder, listed in a synced journal (itself an
    app temporary) before the first of them appears."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.journal = temporary_path(folder / JOURNAL)
        self.placed: list[str] = []

    def claim(self, names: list[str]) -> None:
        """Record `names` (relative to the folder) before writing any of them."""
        with open(self.journal, "x", encoding="utf-8") as handle:
            json.dump(names, handle)
            handle.flush()
            os.fsync(handle.fileno())

    def write_png(self, image: Image.Image, name: str) -> None:
        write_png(image, self.folder / name)
        self.placed.append(name)


@contextmanager
def new_files(folder: Path) -> Iterator[NewFiles]:
    """Files for one write. Enter it before the write's transaction and leave it after the
    commit: if anything fails, the files placed so far are removed; a killed process leaves
    its journal for `sweep`."""
    files = NewFiles(folder)
    try:
        yield files
    except BaseException:
        for name in files.placed:
            (folder / name).unlink(missing_ok=True)
        raise
    finally:
        files.journal.unlink(missing_ok=True)


def sweep(folder: Path, referenced: set[str]) -> None:
    """Remove what dead writes left: temporaries, and the files a journal listed that no
    committed row references. Call it under the database's write lock."""
    for journal in folder.glob(f".{JOURNAL}.*"):
        if not is_temporary(journal):
            continue
        for name in _journal_names(journal):
            sub = name.partition("/")[0]
            if name not in referenced and sub in (VERSIONS, MASKS):
                with suppress(SessionError):
                    stored_path(folder, name, sub).unlink(missing_ok=True)
        journal.unlink(missing_ok=True)
    for sub in (VERSIONS, MASKS):
        if (folder / sub).is_dir():
            for path in (folder / sub).iterdir():
                if is_temporary(path):
                    path.unlink(missing_ok=True)


def _journal_names(journal: Path) -> list[str]:
    """The names a journal lists; none when it is unreadable (its write died before placing
    anything)."""
    try:
        names = json.loads(journal.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [name for name in names if isinstance(name, str)] if isinstance(names, list) else []

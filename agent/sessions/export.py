"""A session as one zip: every version, its masks and provenance, the tree and the turns.

The destination is the user's to name, so it is checked before anything is written: only a
new regular file, or an existing one when replacing it was asked for, never a folder, a link,
a device or anything inside a session folder. The zip is written to a temporary beside it and
renamed, and its entry names are built here from version numbers, never from stored strings.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import IO, TYPE_CHECKING

from promptartisan.agent.sessions.files import (
    DB_NAME,
    MASKS,
    STAGING_PREFIX,
    VERSIONS,
    SessionError,
)
from promptartisan.tools.atomic import write_atomically

if TYPE_CHECKING:
    from promptartisan.agent.sessions.store import Session

def export_session(session: Session, out: str | Path, force: bool = False) -> Path:
    """Write `session`'s zip to `out` (see the module's docstring); returns where it went."""
    target = export_destination(Path(out), force)
    versions = session.versions()
    entries = []  # (file on disk, name in the zip)
    for version in versions:
        entries.append((version.file, f"{VERSIONS}/{version.id:04d}.png"))
        entries += [(Path(region["mask_file"]), f"{MASKS}/{version.id:04d}-{region['k']}.png")
                    for region in session.regions(version.id)]
    for path, name in entries:
        if not path.is_file():
            raise SessionError(f"session {session.id} can't be exported: the file of {name} "
                               f"is missing ({path})")
    summary = {
        "id": session.id, "created": session.info().created, "current": session.current,
        "versions": [{"id": v.id, "parent": v.parent, "file": f"{VERSIONS}/{v.id:04d}.png",
                      "turn_id": v.turn_id, "created": v.created} for v in versions],
        "turns": [asdict(turn) for turn in session.turns()],
    }
    def write(handle: IO[bytes]) -> None:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("session.json", json.dumps(summary, indent=2))
            for version in versions:
                provenance = {"id": version.id, "parent": version.parent, **version.provenance}
                archive.writestr(f"provenance/{version.id:04d}.json",
                                 json.dumps(provenance, indent=2))
            for path, name in entries:
                archive.write(path, name)

    try:
        write_atomically(target, write, mode=0o600)  # a session's pictures are private
    except OSError as exc:
        raise SessionError(f"can't write the export to {target}: {exc}") from exc
    return target


def export_destination(out: Path, force: bool) -> Path:
    """`out` as an absolute path in a real folder, or a SessionError saying why it can't be."""
    out = out.absolute()
    folder = out.parent
    if not folder.is_dir():
        what = "doesn't exist" if not folder.exists() else "is not a folder"
        raise SessionError(f"can't export to {out}: {folder} {what}")
    folder = folder.resolve()
    target = folder / out.name
    inside = next((f for f in (folder, *folder.parents) if _is_session_folder(f)), None)
    if inside is not None:
        raise SessionError(f"can't export to {out}: it is inside the session folder {inside}")
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return target
    if stat.S_ISLNK(mode):
        raise SessionError(f"can't export to {out}: it is a link; name the file itself")
    if stat.S_ISDIR(mode):
        raise SessionError(f"can't export to {out}: it is a folder; give a file name")
    if not stat.S_ISREG(mode):
        raise SessionError(f"can't export to {out}: it is not a regular file")
    if not force:
        raise SessionError(f"can't export to {out}: it already exists (use --force to "
                           "replace it)")
    return target


def _is_session_folder(folder: Path) -> bool:
    return folder.name.startswith(STAGING_PREFIX) or (folder / DB_NAME).is_file()

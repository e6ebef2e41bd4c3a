"""Each chat server's own folder for Chainlit's uploads.

Chainlit keeps uploads in `<app root>/.files` and deletes that whole folder when its server
stops, so two chats on one state folder (or a chat restarted while the old one is still
stopping) deleted each other's uploads: every later upload failed. Each server here gets a
folder of its own inside `.files`, named in a lock file it holds while it runs; a folder whose
lock nobody holds belonged to a server that is gone (killed before it could clean up), and the
next server to start removes it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

LOCK_SUFFIX = ".lock"
_held: list[int] = []  # the lock's descriptor, open for the life of the process


def own_files_folder(root: Path) -> Path:
    """A new folder in `root` for this process alone, held until it exits; the folders of
    servers that are gone are removed first."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    sweep_abandoned(root)
    folder = Path(tempfile.mkdtemp(prefix="server-", dir=root))
    # Locked under a name no sweep looks at, then renamed: a sweep never sees it unheld.
    locking = folder.with_name(f".{folder.name}{LOCK_SUFFIX}")
    descriptor = os.open(locking, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    locking.rename(folder.with_name(folder.name + LOCK_SUFFIX))
    _held.append(descriptor)
    return folder


def sweep_abandoned(root: Path) -> None:
    """Remove each folder in `root` whose lock file no running server holds."""
    for lock in root.glob(f"server-*{LOCK_SUFFIX}"):
        try:
            descriptor = os.open(lock, os.O_RDWR)
        except FileNotFoundError:  # another server's sweep removed it meanwhile
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a running server's
            os.close(descriptor)
            continue
        try:
            shutil.rmtree(lock.with_name(lock.name.removesuffix(LOCK_SUFFIX)),
                          ignore_errors=True)
            lock.unlink(missing_ok=True)
        finally:
            os.close(descriptor)

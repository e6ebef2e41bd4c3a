"""Where a batch reads and writes. A local path goes through pathlib and `tools.atomic`; a URI
(s3://, gs://, file://, hdfs://, …) through the pyarrow filesystem that
`pyarrow.fs.FileSystem.from_uri` gives for it, the same filesystems Ray Data reads.

A file is written whole or not at all: locally a synced temporary and a rename; on an object
store (S3, GCS, Azure) one upload, which makes no object until it completes; on any other pyarrow
filesystem a temporary and a move.

Two names are the same file when their `identity` is: a `file://` URI, a relative path and a
link to it all name one file on this machine's disk, so an output is never taken for an input
whatever scheme names either."""

from __future__ import annotations

import io
import os
import posixpath
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from promptartisan.agent.sessions.files import is_temporary
from promptartisan.tools.atomic import temporary_path, write_atomically

OBJECT_STORES = ("s3", "gcs", "abfs")
"""pyarrow filesystem types on which an upload appears whole or not at all."""

LOCK = "batch.lock"
"""In an output folder on a disk this machine mounts: held by the run writing there."""

STALE_TEMPORARY_S = 3600.0
"""Where no lock can be held (HDFS), a temporary this old has no live writer: one file is
written in seconds."""


class FolderInUse(ValueError):
    """Another batch is writing to this output folder."""


@dataclass(frozen=True)
class Location:
    """A file or folder: on the local disk (`fs` None, `path` a local path) or on a pyarrow
    filesystem (`path` in that filesystem's terms); `uri` is how a person names it."""

    uri: str
    path: str
    fs: Any = None

    @property
    def local(self) -> Path | None:
        return Path(self.path) if self.fs is None else None

    @property
    def on_this_disk(self) -> bool:
        """On a disk this machine mounts (a path, or a file:// URI)."""
        return self.fs is None or self.fs.type_name == "local"

    @property
    def identity(self) -> tuple[str, str]:
        """What this names, however it was named: (filesystem type, path), local paths
        absolute with their links resolved."""
        if self.on_this_disk:
            folder, name = os.path.split(os.path.abspath(self.path))
            if name and not os.path.islink(self.path):  # a folder's files share its real path
                return "local", os.path.join(_real_folder(folder), name)
            return "local", os.path.realpath(self.path)
        return self.fs.type_name, self.path.rstrip("/")

    def contains(self, other: Location) -> bool:
        """Whether `other` is this folder or lies beneath it."""
        (kind, folder), (other_kind, path) = self.identity, other.identity
        return kind == other_kind and (path == folder or path.startswith(folder.rstrip("/") + "/"))

    def child(self, name: str) -> Location:
        if self.fs is None:
            return Location(str(Path(self.path) / name), str(Path(self.path) / name))
        base = self.uri if self.uri.endswith("/") else self.uri + "/"
        return Location(base + quote(name), f"{self.path.rstrip('/')}/{name}", self.fs)

    def is_dir(self) -> bool:
        if self.fs is None:
            return Path(self.path).is_dir()
        from pyarrow.fs import FileType

        return self.fs.get_file_info(self.path).type == FileType.Directory

    def read_bytes(self) -> bytes:
        if self.fs is None:
            return Path(self.path).read_bytes()
        with self.fs.open_input_stream(self.path) as stream:
            return stream.read()

    def write(self, fill: Callable[[Any], Any]) -> str:
        """Write this file whole or not at all by calling `fill(handle)`; returns `uri`."""
        if self.fs is None:
            write_atomically(Path(self.path), fill)
            return self.uri
        buffer = io.BytesIO()
        fill(buffer)
        if self.fs.type_name in OBJECT_STORES:
            with self.fs.open_output_stream(self.path) as stream:
                stream.write(buffer.getvalue())
            return self.uri
        folder, name = posixpath.split(self.path)
        temporary = posixpath.join(folder, temporary_path(Path(name)).name)
        with self.fs.open_output_stream(temporary) as stream:
            stream.write(buffer.getvalue())
        self.fs.move(temporary, self.path)
        return self.uri

    def make_folder(self) -> None:
        if self.fs is None:
            Path(self.path).mkdir(parents=True, exist_ok=True)
        else:
            self.fs.create_dir(self.path, recursive=True)

    def names(self) -> set[str]:
        """The names of the files directly in this folder (none when it does not exist)."""
        if self.fs is None:
            folder = Path(self.path)
            return {entry.name for entry in os.scandir(folder)} if folder.is_dir() else set()
        from pyarrow.fs import FileSelector

        infos = self.fs.get_file_info(FileSelector(self.path, allow_not_found=True))
        return {posixpath.basename(info.path) for info in infos}

    def delete(self) -> None:
        """Remove this file if it is there."""
        if self.fs is None:
            Path(self.path).unlink(missing_ok=True)
            return
        from pyarrow.fs import FileType

        if self.fs.get_file_info(self.path).type == FileType.File:
            self.fs.delete_file(self.path)

    def sweep_temporaries(self, locked: bool) -> None:
        """Remove the temporaries that interrupted runs left in this folder: all of them when
        this run holds the folder's lock (no other writer is alive), else only those too old
        to have a live writer. Object stores have none: an upload is whole or absent."""
        if self.fs is not None and self.fs.type_name in OBJECT_STORES:
            return
        if self.fs is None:
            if Path(self.path).is_dir():
                for path in Path(self.path).iterdir():
                    if is_temporary(path) and (locked or _stale(path.stat().st_mtime)):
                        path.unlink(missing_ok=True)
            return
        from pyarrow.fs import FileSelector

        for info in self.fs.get_file_info(FileSelector(self.path, allow_not_found=True)):
            if is_temporary(Path(info.path)) and (
                    locked or (info.mtime is not None and _stale(info.mtime.timestamp()))):
                self.fs.delete_file(info.path)

    @contextmanager
    def lock(self) -> Iterator[bool]:
        """Hold this folder for one run: on a disk this machine mounts (NFS included), an
        exclusive lock on `batch.lock` that a second run is refused, naming the holder; the
        lock ends with the process, however it ends. Yields whether a lock is held (elsewhere
        none can be)."""
        if not self.on_this_disk:
            yield False
            return
        import fcntl

        path = Path(self.path) / LOCK
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise FolderInUse(f"{self.uri} is in use by another batch ({holder}); wait for "
                                  "it to end or choose another --out") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            handle.flush()
            yield True


@lru_cache(maxsize=4096)
def _real_folder(folder: str) -> str:
    return os.path.realpath(folder)


def _stale(mtime: float) -> bool:
    return time.time() - mtime > STALE_TEMPORARY_S


def is_uri(text: str) -> bool:
    return "://" in text


def absolute(text: str) -> str:
    """`text` as every process reads it, whatever its working folder: a local path made
    absolute here, a URI as it is."""
    return text if is_uri(text) else os.path.abspath(text)


def location(text: str) -> Location:
    """`text` (a local path or a URI) as a Location. A URI's filesystem is made once per
    folder and process, not once per file."""
    if not is_uri(text):
        return Location(text, text)
    parts = urlsplit(text)
    folder, _, name = parts.path.rstrip("/").rpartition("/")
    query = f"?{parts.query}" if parts.query else ""
    if not name:  # s3://bucket, file:///: the top itself
        return _filesystem_folder(text)
    if not folder and not parts.netloc:  # file:///tmp: a folder at the top
        return _filesystem_folder(f"{parts.scheme}:///{query}").child(unquote(name))
    return _filesystem_folder(f"{parts.scheme}://{parts.netloc}{folder}{query}").child(
        unquote(name))


@lru_cache(maxsize=256)
def _filesystem_folder(uri: str) -> Location:
    try:
        from pyarrow.fs import FileSystem
    except ImportError as exc:
        raise ValueError(f"{uri}: reading and writing URIs needs pyarrow: pip install "
                         "'promptartisan[ray]'") from exc
    try:
        fs, path = FileSystem.from_uri(uri)
    except (OSError, ValueError) as exc:
        hint = (" (a file:// URI names an absolute path: file:///folder/…)"
                if uri.startswith("file://") and not uri.startswith("file:///") else "")
        raise ValueError(f"{uri}: {exc}{hint}") from exc
    return Location(uri, path, fs)

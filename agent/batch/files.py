"""Where a batch reads and writes. A local path goes through pathlib and `tools.atomic`; a URI
(s3://, gs://, file://, hdfs://, …) through the pyarrow filesystem that
`pyarrow.fs.FileSystem.from_uri` gives for it, the same filesystems Ray Data reads.

A file is written whole or not at all: locally a synced temporary and a rename; on an object
store (S3, GCS) one upload, which makes no object until it completes; on any other pyarrow
filesystem a temporary and a move."""

from __future__ import annotations

import io
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from promptartisan.agent.sessions.files import is_temporary
from promptartisan.tools.atomic import temporary_path, write_atomically

OBJECT_STORES = ("s3", "gcs")
"""pyarrow filesystem types on which an upload appears whole or not at all."""


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

    def child(self, name: str) -> Location:
        if self.fs is None:
            return Location(str(Path(self.path) / name), str(Path(self.path) / name))
        return Location(f"{self.uri.rstrip('/')}/{quote(name)}",
                        f"{self.path.rstrip('/')}/{name}", self.fs)

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

    def sweep_temporaries(self) -> None:
        """Remove the temporaries an interrupted run of this app left in this local folder."""
        if self.fs is None and Path(self.path).is_dir():
            for path in Path(self.path).iterdir():
                if is_temporary(path):
                    path.unlink(missing_ok=True)


def location(text: str) -> Location:
    """`text` (a local path or a URI) as a Location. A URI's filesystem is made once per
    folder and process, not once per file."""
    if "://" not in text:
        return Location(text, text)
    folder, name = text.rstrip("/").rsplit("/", 1)
    if folder.endswith(":/"):  # s3://bucket: the bucket itself
        return _filesystem_folder(text.rstrip("/"))
    return _filesystem_folder(folder).child(name)


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
        raise ValueError(f"{uri}: {exc}") from exc
    return Location(uri, path, fs)

"""Which images a batch reads: files, folders (every image beneath them), globs, and text or
CSV lists of any of these, each a local path or a URI. Only names, sizes and modification
times are read here; the pictures themselves are read one at a time by whoever edits them.
A folder is listed one subfolder a thread (`LISTING_THREADS`): an object store answers a
listing a page of 1,000 names a round trip, so a bucket of a million objects listed as one
prefix is a thousand round trips in a row, and split by its subfolders they overlap.
Local paths come out absolute: a worker on another node, in another folder, reads the same
file. Nothing inside the output folder is an input, whatever scheme names either."""

from __future__ import annotations

import csv
import fnmatch
import glob
import os
import posixpath
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from promptartisan.agent.batch.files import Location, absolute, location

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
"""What a folder or a glob contributes; a file named on its own is taken whatever its name."""

GLOB_CHARACTERS = "*?["
LISTING_THREADS = 16
"""Subfolders listed at once: enough to overlap an object store's round trips."""
PATH_COLUMNS = ("path", "uri", "image", "file")
"""A CSV list's column of inputs: the first of these in its header, else its first column."""


@dataclass(frozen=True)
class Source:
    """One input image: how it is named, and its size and modification time, which say
    whether it changed since an earlier run."""

    uri: str
    size: int
    mtime_ns: int

    @property
    def name(self) -> str:
        """The file's name without its suffix."""
        return posixpath.splitext(posixpath.basename(self.uri.rstrip("/")))[0] or "image"


def expand(specs: list[str], lists: list[str] = (), skip: Location | None = None,
           left_out: list[str] | None = None) -> list[Source]:
    """Every image `specs` and the `lists` name, in their order, each once. Images inside
    `skip` (the output folder) are never inputs: those a folder or glob finds go to
    `left_out`; a file named inside it is refused (the run would write over it). A named
    file, folder or list that is not there, or that holds no image outside `skip`, is an
    error, before any work."""
    found: dict[str, Source] = {}
    for spec in [*specs, *(entry for name in lists for entry in read_list(name))]:
        sources = _expand_one(spec)
        if not sources:
            raise ValueError(f"{spec}: no images there")
        inside = {s.uri for s in sources if skip is not None and skip.contains(location(s.uri))}
        if inside and _named_file(spec):
            raise ValueError(f"{spec} is inside the output folder {skip.uri}, where this run "
                             "writes its results and report; a batch never reads its own "
                             "output: copy it out, or choose another --out")
        if len(inside) == len(sources):
            raise ValueError(f"{spec}: no images outside the output folder {skip.uri} (its "
                             f"{len(sources)} are inside it, and a batch never reads its own "
                             "output); choose an --out outside the inputs")
        if left_out is not None:
            left_out.extend(sorted(inside))
        found.update((s.uri, s) for s in sources if s.uri not in found and s.uri not in inside)
    return list(found.values())


def _named_file(spec: str) -> bool:
    """Whether `spec` names one file, rather than a folder or a glob."""
    return not any(char in spec for char in GLOB_CHARACTERS) and not location(spec).is_dir()


def read_list(name: str) -> list[str]:
    """The entries of a list: a .csv file's path column, else one entry a line (blank lines
    and lines starting with # skipped). Relative local entries are read from the list's
    folder."""
    text = location(name).read_bytes().decode("utf-8-sig")
    if name.lower().endswith(".csv"):
        rows = list(csv.reader(text.splitlines()))
        header = [cell.strip().lower() for cell in rows[0]] if rows else []
        column = next((header.index(c) for c in PATH_COLUMNS if c in header), None)
        body = rows[1:] if column is not None else rows
        entries = [row[column or 0].strip() for row in body if row and row[column or 0].strip()]
    else:
        entries = [line.strip() for line in text.splitlines()
                   if line.strip() and not line.lstrip().startswith("#")]
    base = location(name).local
    return [entry if "://" in entry or os.path.isabs(entry) or base is None
            else str(base.parent / entry) for entry in entries]


def _expand_one(spec: str) -> list[Source]:
    where = location(spec)
    if where.fs is None:
        return _expand_local(spec)
    return _expand_remote(where)


def _expand_local(spec: str) -> list[Source]:
    path = Path(absolute(spec))
    if any(char in spec for char in GLOB_CHARACTERS) and not path.exists():
        files = [Path(p) for p in sorted(glob.glob(str(path), recursive=True))]
    elif path.is_dir():
        return _by_subfolder(path, [entry.path for entry in os.scandir(path) if entry.is_dir()],
                             _local_tree)
    elif path.is_file():
        return [_local_source(path)]
    else:
        raise ValueError(f"{spec}: no such file or folder")
    return [_local_source(p) for p in files if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]


def _by_subfolder(top: object, subfolders: Iterable[str],
                  tree: Callable[[object, bool], list[Source]]) -> list[Source]:
    """The images of folder `top`, in path order: its own files (`tree(top, False)`) and
    each subfolder's whole tree (`tree(sub, True)`), the subfolders listed in threads."""
    with ThreadPoolExecutor(LISTING_THREADS) as pool:
        parts = list(pool.map(lambda sub: tree(sub, True), subfolders))
    return sorted([*tree(top, False), *(s for part in parts for s in part)],
                  key=lambda source: source.uri)


def _local_tree(folder: object, recursive: bool) -> list[Source]:
    """The images in `folder` (beneath it too when `recursive`): the names first, one stat
    per image only."""
    if recursive:
        names = (os.path.join(place, name) for place, _, names in os.walk(str(folder))
                 for name in names)
    else:
        names = (entry.path for entry in os.scandir(str(folder)) if not entry.is_dir())
    return [_local_source(Path(name)) for name in names
            if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES and os.path.isfile(name)]


def _local_source(path: Path) -> Source:
    stat = path.stat()
    return Source(str(path), stat.st_size, stat.st_mtime_ns)


def _expand_remote(where: Location) -> list[Source]:
    from pyarrow.fs import FileSelector, FileType

    pattern = None
    if any(char in where.path for char in GLOB_CHARACTERS):
        pattern = where.path
        fixed = where.path[:min(where.path.find(c) for c in GLOB_CHARACTERS
                                if c in where.path)]
        base = fixed.rsplit("/", 1)[0]
    else:
        info = where.fs.get_file_info(where.path)
        if info.type == FileType.File:
            return [Source(where.uri, info.size, info.mtime_ns or 0)]
        if info.type != FileType.Directory:
            raise ValueError(f"{where.uri}: no such file or folder")
        base = where.path

    def tree(folder: object, recursive: bool) -> list[Source]:
        infos = where.fs.get_file_info(FileSelector(str(folder), recursive=recursive,
                                                    allow_not_found=True))
        return [Source(_uri(where.uri, info.path), info.size, info.mtime_ns or 0)
                for info in infos if info.type == FileType.File
                and posixpath.splitext(info.path)[1].lower() in IMAGE_SUFFIXES
                and (pattern is None or fnmatch.fnmatchcase(info.path, pattern))]

    top = where.fs.get_file_info(FileSelector(base, allow_not_found=True))
    return _by_subfolder(base, [info.path for info in top if info.type == FileType.Directory],
                         tree)


def _uri(near: str, path: str) -> str:
    """The URI of `path` on the filesystem of the URI `near`: s3:// and gs:// paths begin with
    the bucket; file:// and hdfs:// paths with a slash, after the URI's host."""
    parts = urlsplit(near)
    host = parts.netloc if path.startswith("/") else ""
    return f"{parts.scheme}://{host}{quote(path)}"

"""Files written whole or not at all: a synced, dot-named temporary beside the destination,
then a rename, so a failed or interrupted write never leaves half a file under the final name."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def temporary_path(final: Path) -> Path:
    """A dot-named sibling of `final`: `.NAME.PID-HEX8.tmp`."""
    return final.with_name(f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def write_atomically(final: Path, write: Callable[[IO[bytes]], Any],
                     mode: int | None = None) -> None:
    """Call `write` on a new temporary beside `final`, sync it, then rename it to `final`.
    With `mode`, the file has exactly that mode whatever the umask (0o600: the owner's only)."""
    temporary = temporary_path(final)
    try:
        with open(temporary, "xb") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)

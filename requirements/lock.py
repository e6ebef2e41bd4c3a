"""Write the locks that `make run` and `make test` install from (`make lock` runs this).

Every dependency is resolved by uv for all platforms and pinned with its hashes, except torch,
torchvision and what only they need (triton, CUDA's wheels): a person's own CUDA build in
`.venv` is kept, and a fresh `.venv` gets whatever build pip picks for the machine.

    python requirements/lock.py UV [--upgrade]
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Installed by pip beside the lock, never from it (see the module docstring).
USER_CHOSEN = {"torch", "torchvision"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==")
VIA_ONE = re.compile(r"^\s+# via (\S+)$")
VIA_MANY = re.compile(r"^\s+#\s+(\S+)$")
HEADER = "# Written by `make lock` (requirements/lock.py); installed by requirements/install.sh.\n"


def compile_lock(uv: str, out: Path, extras: list[str], extra_args: list[str],
                 source: str = "pyproject.toml") -> str:
    cmd = [uv, "pip", "compile", source, "--universal", "--python-version", "3.11",
           "--quiet", "--no-header", "-o", str(out), *extra_args]
    for extra in extras:
        cmd += ["--extra", extra]
    subprocess.run(cmd, cwd=ROOT, check=True)
    return out.read_text()


def needed_only_by_user_chosen(text: str) -> set[str]:
    """Packages that nothing but torch, torchvision and their own dependencies ask for."""
    via: dict[str, set[str]] = {}
    name = None
    for line in text.splitlines():
        if m := PIN.match(line):
            name = m.group(1).lower()
            via[name] = set()
        elif name and (m := VIA_ONE.match(line) or VIA_MANY.match(line)):
            if m.group(1) != "via":
                via[name].add(m.group(1).lower())
    dropped = set(USER_CHOSEN)
    while True:
        more = {n for n, parents in via.items()
                if n not in dropped and parents and parents <= dropped}
        if not more:
            return dropped
        dropped |= more


def main(argv: list[str]) -> None:
    uv, *flags = argv
    upgrade = ["--upgrade"] if "--upgrade" in flags else []
    scratch = HERE / ".resolution.txt"
    if (HERE / "dev.lock").exists():  # keep today's pins unless asked to upgrade
        scratch.write_text((HERE / "dev.lock").read_text())
    text = compile_lock(uv, scratch, ["dev", "ray"], upgrade)
    scratch.unlink()
    left_out = sorted(needed_only_by_user_chosen(text))
    no_emit = [arg for name in left_out for arg in ("--no-emit-package", name)]
    hashed = ["--generate-hashes", *no_emit]
    compile_lock(uv, HERE / "dev.lock", ["dev", "ray"], upgrade + hashed)
    # The chat's own lock: the same versions, without the test tools and Ray.
    compile_lock(uv, HERE / "run.lock", [], hashed + ["-c", str(HERE / "dev.lock")])
    # What installs the locks: uv itself, and the build backend of the editable install.
    compile_lock(uv, HERE / "tools.lock", [], upgrade + ["--generate-hashes"],
                 source=str(HERE / "tools.in"))
    for lock in ("dev.lock", "run.lock", "tools.lock"):
        path = HERE / lock
        path.write_text(HEADER + path.read_text())


if __name__ == "__main__":
    main(sys.argv[1:])

"""The locks and their installer (`requirements/install.sh`, which `make run` and `make test`
call): every locked package pinned with hashes, torch left to the person, and a torch already
in the venv (a CUDA build, say; here a stand-in wheel built in the test) kept as it is."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements"
LOCKS = ("dev.lock", "run.lock", "tools.lock")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
USER_CHOSEN = re.compile(r"^(torch|torchvision|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+)$")


def pins(lock: str) -> dict[str, str]:
    found = {}
    for line in (REQUIREMENTS / lock).read_text().splitlines():
        if m := PIN.match(line):
            found[m.group(1).lower()] = m.group(2)
    return found


@pytest.mark.parametrize("lock", LOCKS)
def test_every_locked_package_is_pinned_with_hashes(lock: str) -> None:
    text = (REQUIREMENTS / lock).read_text()
    entries = re.split(r"\n(?=\S)", text)
    requirements = [entry for entry in entries if not entry.startswith("#")]
    assert requirements and all(PIN.match(entry) for entry in requirements)
    assert not [entry.splitlines()[0] for entry in requirements if "--hash=sha256:" not in entry]


@pytest.mark.parametrize("lock", ["dev.lock", "run.lock"])
def test_torch_and_what_only_it_needs_are_left_to_the_person(lock: str) -> None:
    assert not [name for name in pins(lock) if USER_CHOSEN.match(name)]


def test_the_run_lock_is_the_dev_lock_less_the_test_tools() -> None:
    dev, run = pins("dev.lock"), pins("run.lock")
    assert {name: dev.get(name) for name in run} == run
    assert {"pytest", "ray", "playwright"} <= set(dev) - set(run)


def test_every_dependency_says_what_it_is_for() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    block = text[text.index("dependencies = [") : text.index("]\n", text.index("dependencies"))]
    lines = [line.strip() for line in block.splitlines()[1:] if line.strip().startswith('"')]
    assert lines and not [line for line in lines if "#" not in line]


def _wheel(out: Path, name: str, version: str, code: str) -> Path:
    """A minimal wheel of package `name` whose `__init__` is `code`."""
    tag = f"{name}-{version}"
    files = {f"{name}/__init__.py": code.encode(),
             f"{tag}.dist-info/METADATA":
                 f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{tag}.dist-info/WHEEL":
                 b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{tag}.dist-info/RECORD,,")
    wheel = out / f"{tag}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr(f"{tag}.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


def _lock_of(wheel: Path) -> str:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    name = wheel.name.split("-")[0]
    return f"{name} @ {wheel.as_uri()} --hash=sha256:{digest}\n"


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A venv that sees this one's packages (uv and the build backend, pinned as tools.lock
    pins them, so nothing is downloaded) after its own site-packages, where its torch goes."""
    path = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    (_site_packages(path) / "outer.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return path


def _site_packages(venv: Path) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return venv / "lib" / version / "site-packages"


def _install(venv: Path, lock: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UV_OFFLINE": "1", "PIP_NO_INDEX": "1", "PROJECT": ""}
    return subprocess.run([str(REQUIREMENTS / "install.sh"), str(venv), str(lock)],
                          capture_output=True, text=True, env=env, timeout=300)


def _version(venv: Path, module: str) -> str:
    return subprocess.run([str(venv / "bin" / "python"), "-c",
                           f"import {module}; print({module}.__version__)"],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_a_torch_already_in_the_venv_is_kept(venv: Path, tmp_path: Path) -> None:
    """A person's own build (a stand-in wheel here) survives the install; the lock's packages
    and the project go in beside it."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    standins = [_wheel(wheels, name, "99.0+standin", '__version__ = "99.0+standin"\n')
                for name in ("torch", "torchvision")]
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "uv", "pip", "install", "--python", python, "--offline",
                    "--no-deps", *map(str, standins)], check=True, capture_output=True)
    locked = _wheel(wheels, "lockedpkg", "1.0", '__version__ = "1.0"\n')
    lock = tmp_path / "test.lock"
    lock.write_text(_lock_of(locked))

    done = _install(venv, lock)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "keeping" in done.stdout and "99.0+standin" in done.stdout
    assert _version(venv, "torch") == _version(venv, "torchvision") == "99.0+standin"
    assert _version(venv, "lockedpkg") == "1.0"


def test_a_torch_without_its_torchvision_is_refused_clearly(venv: Path, tmp_path: Path) -> None:
    python = str(venv / "bin" / "python")
    standin = _wheel(tmp_path, "torch", "99.0+standin", '__version__ = "99.0+standin"\n')
    subprocess.run([python, "-m", "uv", "pip", "install", "--python", python, "--offline",
                    "--no-deps", str(standin)], check=True, capture_output=True)
    # The outer venv's torchvision would import against the stand-in torch: hide it.
    hidden = _site_packages(venv) / "torchvision.py"
    hidden.write_text("raise ImportError('no torchvision here')\n")
    lock = tmp_path / "test.lock"
    lock.write_text("")
    done = _install(venv, lock)
    assert done.returncode == 1
    assert "torch 99.0+standin but no torchvision" in done.stderr

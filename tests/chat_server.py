"""`promptartisan chat` as a real server on a free localhost port, for the tests that talk to it
over HTTP, socket.io or a browser."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SERVER_START_S = 90


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def promptartisan_command() -> list[str]:
    script = Path(sys.executable).parent / "promptartisan"
    return [str(script)] if script.exists() else [sys.executable, "-m", "promptartisan.ui.cli"]


@contextmanager
def serve_chat(state: Path, tiny_dir: Path, *flags: str,
               env_extra: dict[str, str] | None = None,
               log_name: str = "server.log") -> Iterator[str]:
    """`promptartisan chat --headless FLAGS` on a free port, with its sessions, Chainlit state
    and Hugging Face cache in `state` (and `env_extra` in its environment), its output in
    `state/log_name`; stopped (with its Chainlit server) at the end."""
    state.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PROMPTARTISAN_", "HF_"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(state / "hf"), OMP_WAIT_POLICY="PASSIVE",
               PROMPTARTISAN_SESSION_DIR=str(state / "sessions"),
               PROMPTARTISAN_TINY_DIR=str(tiny_dir), PROMPTARTISAN_STEPS="4",
               PROMPTARTISAN_WORKING_SIZE="256", PROMPTARTISAN_DEVICE="cpu")
    env.update(env_extra or {})  # a test's own values win
    log_path = state / log_name
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [*promptartisan_command(), "chat", "--headless", "--port", str(port), *flags],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"the chat server exited:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the chat server didn't answer in {SERVER_START_S}s:\n"
                            f"{log_path.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        # Stopped means every process of the server's group is gone, not only the first: a
        # child still shutting down holds what the server holds (its uploads folder's lock).
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            pass
        if not _group_gone(server.pid, 15):
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
            _group_gone(server.pid, 15)
    assert (state / "chainlit" / ".chainlit" / "config.toml").is_file(), \
        "Chainlit's state is not in the state folder"


def _group_gone(group: int, seconds: float) -> bool:
    """Whether no process of process group `group` is left within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False

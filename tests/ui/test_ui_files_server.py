"""Uploads on the real chat server (`promptartisan chat --tiny` on localhost ports): two chats
on one state folder keep their uploads apart, so one stopping (or restarting) doesn't break the
other's, and one message brings at most the page's own number of files."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from chat_client import ChatClient
from chat_server import serve_chat
from PIL import Image

from promptartisan.ui.files_folder import LOCK_SUFFIX, own_files_folder, sweep_abandoned

pytestmark = pytest.mark.slow  # real chat servers: seconds to start

UPLOAD_LIMIT = 10  # ui/chainlit_app/config.toml's max_files


def png() -> bytes:
    buffer = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").resize((32, 24)).save(buffer, format="PNG")
    return buffer.getvalue()


def uploaded(chat: ChatClient) -> str:
    status, answer = chat.upload("photo.png", png())
    assert status == 200, (status, answer)
    return str(json.loads(answer)["id"])


def sessions_in(state: Path) -> list[Path]:
    folder = state / "sessions"
    return [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.is_dir() else []


def test_two_chats_on_one_state_folder_keep_their_uploads_apart(tmp_path: Path,
                                                               tiny_dir: Path) -> None:
    state = tmp_path / "state"
    with serve_chat(state, tiny_dir, "--tiny", log_name="b.log") as second:
        with serve_chat(state, tiny_dir, "--tiny", log_name="a.log") as first:
            with ChatClient(first) as chat:
                uploaded(chat)
            with ChatClient(second) as other:
                uploaded(other)
        # The first chat stopped (Chainlit removed its uploads folder): the other goes on.
        with ChatClient(second) as other:
            other.send("", [uploaded(other)])
            other.text_containing("Got this photo")
        # Restarted on the same state folder while the other runs: both still take uploads.
        with serve_chat(state, tiny_dir, "--tiny", log_name="a2.log") as restarted:
            with ChatClient(restarted) as chat:
                uploaded(chat)
            with ChatClient(second) as other:
                uploaded(other)
        with ChatClient(second) as other:
            uploaded(other)
    assert len(sessions_in(state)) == 1
    # No server holds a folder any more: whatever one left (Chainlit deletes its folder only
    # when it stops gracefully) goes at the next start.
    files = state / "chainlit" / ".files"
    sweep_abandoned(files)
    assert list(files.iterdir()) == []


HOLD = """
import sys, time
from pathlib import Path
from promptartisan.ui.files_folder import own_files_folder
print(own_files_folder(Path(sys.argv[1])), flush=True)
time.sleep(60)
"""


def test_a_killed_servers_folder_is_removed_by_the_next_and_a_running_ones_kept(
        tmp_path: Path) -> None:
    holders = [subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)],
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        killed, running = (Path(holder.stdout.readline().strip()) for holder in holders)
        (killed / "upload.png").write_bytes(png())
        (running / "upload.png").write_bytes(png())
        holders[0].kill()
        holders[0].wait()
        own = own_files_folder(tmp_path)
        assert not killed.exists() and not killed.with_name(killed.name + LOCK_SUFFIX).exists()
        assert (running / "upload.png").is_file() and own.is_dir()
        sweep_abandoned(tmp_path)  # this process's own folder is held too
        assert own.is_dir() and (running / "upload.png").is_file()
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, tiny_dir: Path):
    state = tmp_path_factory.mktemp("chat")
    with serve_chat(state, tiny_dir, "--tiny") as served:
        yield served, state


def test_a_message_with_more_files_than_the_page_allows_is_refused(url) -> None:
    served, state = url
    with ChatClient(served) as chat:
        chat.send("make it red", [uploaded(chat) for _ in range(UPLOAD_LIMIT + 1)])
        said = chat.text_containing("nothing was done")
        assert f"at most {UPLOAD_LIMIT} pictures, and this one has {UPLOAD_LIMIT + 1}" in said
        assert sessions_in(state) == []
        chat.send("", [uploaded(chat) for _ in range(2)])
        chat.text_containing("Got these 2 photos")
    assert len(sessions_in(state)) == 2

"""`promptartisan chat`: where Chainlit's state goes, what is written there, what the server is
told, and how the command fails when it can't serve."""

from __future__ import annotations

import json
import socket
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from chat_server import free_port

from promptartisan.settings import Settings, load_settings
from promptartisan.ui import auth, cli_chat
from promptartisan.ui.cli import build_parser, main


def test_chat_is_a_command() -> None:
    args = build_parser().parse_args(["chat", "--tiny", "--port", "8123", "--headless"])
    assert (args.tiny, args.port, args.headless, args.host) == (True, 8123, True, "127.0.0.1")


def test_state_lives_beside_the_sessions(tmp_path: Path) -> None:
    settings = Settings(session_dir=tmp_path / "data" / "sessions")
    assert cli_chat.state_dir(settings) == (tmp_path / "data" / "chainlit").resolve()


def test_app_root_has_the_config_and_an_offline_frontend(tmp_path: Path) -> None:
    root = cli_chat.prepare_app_root(tmp_path / "chainlit")
    assert stat.S_IMODE(root.stat().st_mode) == 0o700  # the uploads are in there
    config = tomllib.loads((root / ".chainlit" / "config.toml").read_text())
    assert config["UI"]["name"] == "PromptArtisan"
    assert config["project"]["allow_origins"] == []  # no CORS grant to any other site
    assert config["UI"]["custom_build"] == cli_chat.FRONTEND
    assert config["features"]["spontaneous_file_upload"]["accept"] == ["image/*"]
    assert (root / "chainlit.md").read_text().startswith("# PromptArtisan")
    assert (root / "public" / "style.css").is_file()
    texts = json.loads((root / ".chainlit" / "translations" / "en-US.json").read_text())
    assert texts["chat"]["messages"]["status"]["used"] == ""

    index = (root / cli_chat.FRONTEND / "index.html").read_text()
    assert "https://" not in index.split("<meta property=\"og", 1)[0]
    assert "fonts.googleapis.com" not in index and "katex" not in index
    assert '<script type="module"' in index
    original = cli_chat.chainlit_package() / "frontend" / "dist"
    assets = root / cli_chat.FRONTEND / "assets"
    assert sorted(p.name for p in assets.iterdir()) == sorted(
        p.name for p in (original / "assets").iterdir())

    # A second start rewrites everything in place.
    assert cli_chat.prepare_app_root(root) == root


def test_the_server_gets_every_setting_with_absolute_paths(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my-ip2p").mkdir()
    settings = Settings(tiny=True, steps=7, seed=3, session_dir=Path("rel/sessions"),
                        instruct_pix2pix="my-ip2p")
    env = cli_chat.chat_environment(settings, tmp_path / "root")
    assert env["CHAINLIT_APP_ROOT"] == str(tmp_path / "root")
    assert env["PROMPTARTISAN_SESSION_DIR"] == str(tmp_path / "rel" / "sessions")
    assert env["PROMPTARTISAN_INSTRUCT_PIX2PIX"] == str(tmp_path / "my-ip2p")
    assert env["PROMPTARTISAN_CLIPSEG"] == "CIDAS/clipseg-rd64-refined"
    assert "PROMPTARTISAN_CONFIG" not in env
    # What the server reads back is what the command line resolved.
    served = load_settings(environ=env)  # no ./promptartisan.toml in tmp_path
    assert served.model_dump() == {
        **settings.model_dump(), "session_dir": tmp_path / "rel" / "sessions",
        "tiny_dir": settings.tiny_dir.resolve(), "instruct_pix2pix": str(tmp_path / "my-ip2p")}


@pytest.fixture
def chat_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`promptartisan chat` run from an empty folder, its sessions and state inside it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROMPTARTISAN_SESSION_DIR", str(tmp_path / "sessions"))
    return tmp_path


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another program is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_a_port_in_use_fails_with_a_message(chat_here: Path, taken_port: int,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "--headless", "--tiny", "--port", str(taken_port)]) == 2
    error = capsys.readouterr().err
    assert f"port {taken_port} on 127.0.0.1 is already in use" in error and "--port" in error
    assert not (chat_here / "chainlit").exists()  # failed before anything was written


def test_an_unknown_host_fails_with_a_message(chat_here: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "--headless", "--host", "no-such-host.invalid", "--port", "8000"]) == 2
    assert "can't serve on host 'no-such-host.invalid'" in capsys.readouterr().err
    assert main(["chat", "--headless", "--port", "0"]) == 2
    assert "choose one from 1 to 65535" in capsys.readouterr().err


@pytest.mark.slow
def test_a_server_that_stops_by_itself_fails_the_command(
        chat_here: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The port taken between the check and the start: the real Chainlit server can't listen,
    logs it and exits 0; the command still fails."""
    monkeypatch.setattr(cli_chat, "check_address", lambda host, port: None)
    assert main(["chat", "--headless", "--tiny", "--port", str(taken_port)]) == 2
    assert "the chat server stopped by itself" in capsys.readouterr().err


def test_beyond_loopback_without_a_secret_the_chat_refuses_to_start(
        chat_here: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(auth.SECRET_ENV, raising=False)
    port = free_port()
    assert main(["chat", "--headless", "--tiny", "--host", "0.0.0.0", "--port", str(port)]) == 2
    error = capsys.readouterr().err
    assert f"set {auth.SECRET_ENV}" in error and "--password-for NAME" in error
    assert not (chat_here / "chainlit").exists()  # refused before anything was written
    monkeypatch.setenv(auth.SECRET_ENV, "short")
    assert main(["chat", "--headless", "--host", "0.0.0.0", "--port", str(port)]) == 2
    assert "too short" in capsys.readouterr().err


def test_passwords_are_printed_from_the_secret(chat_here: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(auth.SECRET_ENV, raising=False)
    assert main(["chat", "--password-for", "alice"]) == 2
    assert f"set {auth.SECRET_ENV} first" in capsys.readouterr().err
    monkeypatch.setenv(auth.SECRET_ENV, "a-test-secret-that-is-long-enough")
    assert main(["chat", "--password-for", "alice"]) == 0
    password = capsys.readouterr().out.strip()
    assert auth.password_matches("a-test-secret-that-is-long-enough", "alice", password)
    assert main(["chat", "--password-for", "not a name"]) == 2
    assert not (chat_here / "chainlit").exists()

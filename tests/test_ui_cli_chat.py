"""`promptartisan chat` without starting a server: where Chainlit's state goes, what is written
there, and what the server is told."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from promptartisan.settings import Settings, load_settings
from promptartisan.ui import cli_chat
from promptartisan.ui.cli import build_parser


def test_chat_is_a_command() -> None:
    args = build_parser().parse_args(["chat", "--tiny", "--port", "8123", "--headless"])
    assert (args.tiny, args.port, args.headless, args.host) == (True, 8123, True, "127.0.0.1")


def test_state_lives_beside_the_sessions(tmp_path: Path) -> None:
    settings = Settings(session_dir=tmp_path / "data" / "sessions")
    assert cli_chat.state_dir(settings) == (tmp_path / "data" / "chainlit").resolve()


def test_app_root_has_the_config_and_an_offline_frontend(tmp_path: Path) -> None:
    root = cli_chat.prepare_app_root(tmp_path / "chainlit")
    config = tomllib.loads((root / ".chainlit" / "config.toml").read_text())
    assert config["UI"]["name"] == "PromptArtisan"
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
    served = load_settings(config=tmp_path / "none.toml", environ=env)
    assert served.model_dump() == {
        **settings.model_dump(), "session_dir": tmp_path / "rel" / "sessions",
        "tiny_dir": settings.tiny_dir.resolve(), "instruct_pix2pix": str(tmp_path / "my-ip2p")}

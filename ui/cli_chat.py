"""`promptartisan chat`: the chat UI, Chainlit serving ui/app.py.

Chainlit keeps its config, translations and uploaded files in its app root. That root is a
state folder next to the sessions folder (`<session_dir>/../chainlit`), never the source tree:
each start copies the committed config from ui/chainlit_app/ there and builds an offline copy
of Chainlit's frontend (its index.html without the Google Fonts and KaTeX CDN links). The
folder is the user's alone (0700): it holds the uploaded photos.

Beyond this machine (a host that is not loopback) the chat needs PROMPTARTISAN_CHAT_SECRET and
signs each person in (ui/auth.py); without one the command refuses to start.

Chainlit's server exits 0 when it can't listen (it only logs why), so the address is tried
first, and a server that stops without being asked is a failure.
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from promptartisan.settings import ENV_PREFIX, Settings
from promptartisan.ui.auth import (
    JWT_ENV,
    SECRET_ENV,
    chat_secret,
    check_secret,
    jwt_secret,
    user_password,
)
from promptartisan.ui.cli import settings_from_args
from promptartisan.ui.origin import is_loopback

UI_DIR = Path(__file__).resolve().parent
APP = UI_DIR / "app.py"
TEMPLATE = UI_DIR / "chainlit_app"
FRONTEND = "frontend"  # the config's `custom_build`
# Chainlit's English texts changed here: a step reads "Plan", "Editing" (not "Used Plan"), and
# the footer speaks of this app rather than of LLMs.
TRANSLATION_CHANGES = {
    ("chat", "messages", "status", "using"): "",
    ("chat", "messages", "status", "used"): "",
    ("chat", "watermark"): "Every version is kept: Undo, Redo and Reset are always there.",
    # Beyond loopback a person signs in with a name (ui/auth.py), not an email address.
    ("auth", "login", "form", "email", "label"): "Your name",
    ("auth", "login", "form", "email", "placeholder"): "",
    ("auth", "login", "form", "email", "required"): "Your name is needed",
    ("auth", "login", "errors", "default"): "Sign in failed: use your name and the password "
                                           "made for it (promptartisan chat --password-for NAME).",
}
# <link> tags that load from another host: fonts and KaTeX's stylesheet.
EXTERNAL_LINK = re.compile(r"<link\b[^>]*\bhref=\"https?://[^\"]*\"[^>]*>\s*", re.DOTALL)


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("chat", parents=[common], help="open the chat UI (Chainlit)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=int, default=8000, help="port to serve on")
    parser.add_argument("--headless", action="store_true",
                        help="don't open a browser window")
    parser.add_argument("--password-for", metavar="NAME",
                        help=f"print the password of user NAME (from {SECRET_ENV}) and exit")
    parser.set_defaults(func=_chat)


def _chat(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    secret = chat_secret()
    if args.password_for is not None:
        if secret is None:
            raise ValueError(f"set {SECRET_ENV} first: passwords are made from it")
        print(user_password(secret, args.password_for))
        return 0
    check_address(args.host, args.port)
    check_secret(args.host, secret, is_loopback(args.host))
    app_root = prepare_app_root(state_dir(settings))
    command = [sys.executable, "-m", "chainlit", "run", str(APP), "--host", args.host,
               "--port", str(args.port)]
    if args.headless:
        command.append("--headless")
    print(f"PromptArtisan chat on http://{args.host}:{args.port}  "
          f"(sessions: {settings.session_dir}; Chainlit state: {app_root})", flush=True)
    if not is_loopback(args.host):
        print("Each person signs in with a name and the password `promptartisan chat "
              "--password-for NAME` prints.", flush=True)
    env = chat_environment(settings, app_root)
    env[JWT_ENV] = jwt_secret(app_root)
    if secret is not None:
        env[SECRET_ENV] = secret
    process = subprocess.Popen(command, cwd=app_root, env=env)
    stopped: list[int] = []

    def stop(signum: int, frame: object) -> None:
        """A terminated `promptartisan chat` takes its server along."""
        stopped.append(signum)
        process.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        code = process.wait()
        if not stopped:
            raise RuntimeError(f"the chat server stopped by itself (exit status {code}); its "
                               "messages are above")
        return code
    except KeyboardInterrupt:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        return 130


def check_address(host: str, port: int) -> None:
    """Raise ValueError, in words, when the server can't listen on `host`:`port`: bound the way
    uvicorn binds (an IPv6 socket for an address with a colon, SO_REUSEADDR), then let go."""
    if not 0 < port < 65536:
        raise ValueError(f"port {port} can't be served on; choose one from 1 to 65535 (--port)")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except socket.gaierror as exc:
            raise ValueError(f"can't serve on host {host!r}: {exc.strerror} (--host takes an "
                             "address of this machine, such as 127.0.0.1)") from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ValueError(f"port {port} on {host} is already in use (another chat or "
                                 "program serves there); choose another with --port") from None
            raise ValueError(f"can't serve on {host}:{port}: {exc.strerror}") from None


def state_dir(settings: Settings) -> Path:
    """Chainlit's app root: beside the sessions, outside the source tree."""
    return settings.session_dir.expanduser().resolve().parent / "chainlit"


def prepare_app_root(root: Path) -> Path:
    """Write the config, readme, style sheet, English texts and the offline frontend into
    Chainlit's app root, which only this user may enter."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    root.chmod(0o700)
    (root / ".chainlit").mkdir(exist_ok=True)
    shutil.copyfile(TEMPLATE / "config.toml", root / ".chainlit" / "config.toml")
    shutil.copyfile(TEMPLATE / "readme.md", root / "chainlit.md")
    shutil.copytree(TEMPLATE / "public", root / "public", dirs_exist_ok=True)
    package = chainlit_package()
    write_translation(package / "translations" / "en-US.json",
                      root / ".chainlit" / "translations" / "en-US.json")
    build_offline_frontend(package / "frontend" / "dist", root / FRONTEND)
    return root


def chainlit_package() -> Path:
    """Chainlit's package folder, found without importing chainlit (whose import creates
    `.files/` and `.chainlit/` in the current folder)."""
    spec = importlib.util.find_spec("chainlit")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("chainlit is not installed; run `make run` or `pip install -e .`")
    return Path(next(iter(spec.submodule_search_locations)))


def write_translation(source: Path, out: Path) -> None:
    """Chainlit's English texts with TRANSLATION_CHANGES applied (Chainlit keeps a file that
    is already there, so this runs before the server starts)."""
    texts = json.loads(source.read_text(encoding="utf-8"))
    for path, value in TRANSLATION_CHANGES.items():
        node = texts
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(texts, indent=2, ensure_ascii=False), encoding="utf-8")


def build_offline_frontend(dist: Path, out: Path) -> None:
    """`out`: Chainlit's frontend with every external <link> removed from index.html; the
    other files are links to (or, where links can't be made, copies of) the originals."""
    out.mkdir(parents=True, exist_ok=True)
    index = (dist / "index.html").read_text(encoding="utf-8")
    (out / "index.html").write_text(EXTERNAL_LINK.sub("", index), encoding="utf-8")
    for entry in dist.iterdir():
        target = out / entry.name
        if entry.name == "index.html":
            continue
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        try:
            target.symlink_to(entry, target_is_directory=entry.is_dir())
        except OSError:
            if entry.is_dir():
                shutil.copytree(entry, target)
            else:
                shutil.copyfile(entry, target)


def chat_environment(settings: Settings, app_root: Path) -> dict[str, str]:
    """The server's environment: Chainlit's app root, and every setting as a PROMPTARTISAN_*
    variable (paths absolute, since the server runs in the app root)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(ENV_PREFIX)}
    env["CHAINLIT_APP_ROOT"] = str(app_root)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, Path):
            value = value.expanduser().resolve()
        elif isinstance(value, str) and Path(value).expanduser().is_dir():
            value = Path(value).expanduser().resolve()  # a model folder relative to here
        env[ENV_PREFIX + name.upper()] = (json.dumps(value) if isinstance(value, list | dict)
                                          else str(value))
    return env

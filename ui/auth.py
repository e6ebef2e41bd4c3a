"""Who is using the chat.

On a loopback host there is one user, the person at this machine: the page signs in as
`LOCAL_USER` without a password. On any other host the chat needs a secret
(PROMPTARTISAN_CHAT_SECRET, never a setting in a file the settings command prints) and each
person signs in with a name and the password made for that name from the secret
(`promptartisan chat --password-for NAME` prints it), so one person can't sign in as another
without the secret. Chainlit signs its session cookies (JWTs) with a key kept in the state
folder, made on first start.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

SECRET_ENV = "PROMPTARTISAN_CHAT_SECRET"
JWT_ENV = "CHAINLIT_AUTH_SECRET"
JWT_FILE = "auth-secret"
LOCAL_USER = "local"
MIN_SECRET_CHARS = 16
USER_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")

NEED_SECRET = (
    "Serving the chat on {host}, beyond this machine, needs a secret so that each person signs "
    f"in: set {SECRET_ENV} to a random text of at least {MIN_SECRET_CHARS} characters (for "
    "example `export {env}=$(python -c 'import secrets; print(secrets.token_urlsafe())')`), "
    "start the chat again, and give each person the password that `promptartisan chat "
    "--password-for NAME` prints. Or serve on 127.0.0.1 (the default) for yourself alone."
)


def chat_secret(environ: dict[str, str] | None = None) -> str | None:
    """The chat's secret, or None when it has none."""
    value = (os.environ if environ is None else environ).get(SECRET_ENV, "").strip()
    return value or None


def check_secret(host: str, secret: str | None, loopback: bool) -> None:
    """ValueError, saying how to set one, when a chat beyond this machine has no usable
    secret."""
    if loopback:
        return
    if secret is None:
        raise ValueError(NEED_SECRET.format(host=host, env=SECRET_ENV))
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(f"{SECRET_ENV} is too short to keep others out: use at least "
                         f"{MIN_SECRET_CHARS} random characters.")


def user_password(secret: str, name: str) -> str:
    """The password of user `name`: derived from the secret, so only who holds it can make
    one."""
    if not USER_NAME.fullmatch(name):
        raise ValueError(f"{name!r} can't be a user name: use 1 to 64 letters, digits, "
                         "'.', '_', '-' or '@'")
    digest = hmac.new(secret.encode(), f"promptartisan-chat-user:{name}".encode(),
                      hashlib.sha256).hexdigest()
    return digest[:32]


def password_matches(secret: str, name: str, password: str) -> bool:
    if not USER_NAME.fullmatch(name):
        return False
    return hmac.compare_digest(user_password(secret, name), password.strip())


def jwt_secret(state: Path) -> str:
    """The key Chainlit signs its session cookies with: made once, kept in the state folder
    (readable by this user only), so sign-ins survive a restart."""
    path = state / JWT_FILE
    if not path.is_file():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()

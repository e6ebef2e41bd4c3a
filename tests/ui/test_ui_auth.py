"""Who may use the chat: one local user on loopback; beyond it, people who sign in with the
password made from the chat's secret, each seeing only their own threads, pictures and
sessions. Unit tests on the pieces, then a real server on every interface with two people in
two browser contexts."""

from __future__ import annotations

import asyncio
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from chat_server import serve_chat
from PIL import Image
from test_ui_browser import browser  # noqa: F401 (a fixture)

from promptartisan.agent.sessions.store import Session, SessionError
from promptartisan.ui import auth
from promptartisan.ui.data_layer import (
    LocalStorage,
    OwnedSessions,
    SessionOwners,
    chat_data_layer,
    element_path,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

SECRET = "a-test-secret-that-is-long-enough"


def test_a_password_admits_only_its_own_name() -> None:
    alice = auth.user_password(SECRET, "alice")
    assert auth.password_matches(SECRET, "alice", alice)
    assert not auth.password_matches(SECRET, "bob", alice)
    assert not auth.password_matches("another-secret-of-the-same-length", "alice", alice)
    assert not auth.password_matches(SECRET, "alice", SECRET)  # the secret is no password
    assert not auth.password_matches(SECRET, "../alice", alice)
    with pytest.raises(ValueError, match="can't be a user name"):
        auth.user_password(SECRET, "a b")


def test_beyond_loopback_a_secret_is_required() -> None:
    auth.check_secret("127.0.0.1", None, loopback=True)
    with pytest.raises(ValueError, match=auth.SECRET_ENV) as refused:
        auth.check_secret("0.0.0.0", None, loopback=False)
    assert "--password-for" in str(refused.value)
    with pytest.raises(ValueError, match="too short"):
        auth.check_secret("0.0.0.0", "short", loopback=False)
    auth.check_secret("0.0.0.0", SECRET, loopback=False)
    assert auth.chat_secret({auth.SECRET_ENV: "  "}) is None


def test_the_cookie_key_is_made_once_and_private(tmp_path: Path) -> None:
    key = auth.jwt_secret(tmp_path / "state")
    assert len(key) >= 32 and auth.jwt_secret(tmp_path / "state") == key
    assert stat.S_IMODE((tmp_path / "state" / auth.JWT_FILE).stat().st_mode) == 0o600


def test_each_user_sees_and_opens_only_their_own_sessions(tmp_path: Path,
                                                          small_photo: Image.Image) -> None:
    owners = SessionOwners(tmp_path / "state")
    alice, bob = OwnedSessions(owners, "alice"), OwnedSessions(owners, "bob")
    root = tmp_path / "sessions"
    made = alice.create(root, small_photo)
    Session.create(root, small_photo)  # one made outside the chat (the command line): no one's
    assert [info.id for info in alice.list(root)] == [made.id]
    assert bob.list(root) == []
    assert alice.open(made.id, root, view="v1").id == made.id
    with pytest.raises(SessionError, match="not one of yours"):
        bob.open(made.id, root, view="v2")


def test_element_files_stay_in_their_folder(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "elements")
    for key in ("../x", "a/../../x", "/etc/passwd", "", "a//b"):
        with pytest.raises(ValueError):
            storage.path(key)
    asyncio.run(storage.upload_file("u1/e1/pic.png", b"png"))
    assert (tmp_path / "elements" / "u1" / "e1" / "pic.png").read_bytes() == b"png"


def test_an_element_is_served_only_to_its_threads_user(tmp_path: Path) -> None:
    """Chainlit's tables on a real SQLite file: the thread decides who reads an element, not
    the key's first part (an upload stored before its thread is named `unknown/...`)."""

    async def check() -> None:
        layer = chat_data_layer(tmp_path)
        storage = layer.storage_provider
        assert isinstance(storage, LocalStorage)
        await storage.upload_file("unknown/e1/photo.png", b"png")
        await layer.execute_sql('INSERT INTO users VALUES (\'u1\', \'alice\', \'{}\', \'\')', {})
        await layer.execute_sql('INSERT INTO threads ("id", "userId", "userIdentifier") '
                                "VALUES ('t1', 'u1', 'alice')", {})
        await layer.execute_sql('INSERT INTO elements ("id", "threadId", "name", "objectKey") '
                                "VALUES ('e1', 't1', 'photo.png', 'unknown/e1/photo.png')", {})
        assert await element_path(layer, storage, "unknown/e1/photo.png", "u1") == \
            tmp_path / "elements" / "unknown" / "e1" / "photo.png"
        assert await element_path(layer, storage, "unknown/e1/photo.png", "u2") is None
        assert await element_path(layer, storage, "unknown/e9/other.png", "u1") is None
        await layer.close()

    asyncio.run(check())


def _open(context: BrowserContext, url: str, external: list[str]) -> Page:
    """A page of `context` (a browser profile: one person's cookies) on the chat; every request
    to another host is appended to `external`."""
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.add_init_script("delete window.showOpenFilePicker")  # uploads through the <input>
    page.on("request", lambda request: external.append(request.url)
            if not request.url.startswith((url, "data:", "blob:")) else None)
    page.goto(url)
    return page


def _sign_in(page: Page, name: str, password: str) -> None:
    page.fill("#email", name)
    page.fill("#password", password)
    page.get_by_role("button", name="Sign In").click()


@pytest.mark.browser
def test_two_people_beyond_loopback_see_only_their_own_chats(
        browser: Browser, tmp_path: Path, tiny_dir: Path, photo: Image.Image) -> None:  # noqa: F811
    """On every interface with a secret: a wrong password is refused; Alice's thread, picture
    and session are hers alone: Bob's sidebar, welcome and the thread API show none of them,
    and her thread and picture's addresses give him nothing."""
    from playwright.sync_api import expect

    upload = tmp_path / "astronaut.png"
    photo.save(upload)
    external: list[str] = []
    with serve_chat(tmp_path / "state", tiny_dir, "--tiny", "--host", "0.0.0.0",
                    env_extra={auth.SECRET_ENV: SECRET}) as url:
        anonymous = browser.new_context()
        answer = anonymous.request.post(f"{url}/project/threads", data={
            "pagination": {"first": 20}, "filter": {}})
        assert answer.status == 401
        anonymous.close()

        alice = _open(browser.new_context(), url, external)
        _sign_in(alice, "alice", auth.user_password(SECRET, "bob"))  # Bob's password
        expect(alice.get_by_text("Sign in failed: use your name and the password")).to_be_visible()
        expect(alice.get_by_text("Welcome to PromptArtisan")).to_have_count(0)
        _sign_in(alice, "alice", auth.user_password(SECRET, "alice"))
        expect(alice.get_by_text("Welcome to PromptArtisan")).to_be_visible()
        alice.set_input_files("#upload-button-input", str(upload))
        expect(alice.locator("#message-composer img")).to_have_count(1)
        alice.fill("#chat-input", "make the suit gold")
        alice.click("#chat-submit")
        expect(alice.get_by_text("(version 1)")).to_be_visible()
        expect(alice).to_have_url(re.compile(r"/thread/[0-9a-f-]+$"))
        thread = alice.url.rsplit("/", 1)[1]
        picture = alice.locator('img[alt="astronaut.png"]').first
        alice.reload()  # the picture from the data layer's address, not the live session's
        expect(picture).to_be_visible()
        picture_url = picture.get_attribute("src") or ""
        assert "/promptartisan/elements/" in picture_url
        assert alice.request.get(f"{url}{picture_url}").status == 200
        mine = alice.request.post(f"{url}/project/threads", data={
            "pagination": {"first": 20}, "filter": {}}).json()
        assert [t["id"] for t in mine["data"]] == [thread]
        again = _open(alice.context, url, external)  # a new chat of Alice's offers her session
        expect(again.get_by_role("button", name=re.compile("^Continue "))).to_have_count(1)

        bob = _open(browser.new_context(), url, external)
        _sign_in(bob, "bob", auth.user_password(SECRET, "bob"))
        expect(bob.get_by_text("Welcome to PromptArtisan")).to_be_visible()
        expect(bob.get_by_text("Or continue where you left off")).to_have_count(0)
        expect(bob.get_by_role("button", name=re.compile("^Continue "))).to_have_count(0)
        expect(bob.locator('a[href*="/thread/"]')).to_have_count(0)
        theirs = bob.request.post(f"{url}/project/threads", data={
            "pagination": {"first": 20}, "filter": {}}).json()
        assert theirs["data"] == []
        assert bob.request.get(f"{url}/project/thread/{thread}").status == 401
        assert bob.request.get(f"{url}{picture_url}").status == 404
        bob.goto(f"{url}/thread/{thread}")
        expect(bob.get_by_text("make the suit gold")).to_have_count(0)
        alice.context.close()
        bob.context.close()
    assert not external, f"the page loaded from outside the server: {external}"

"""The real chat server (`promptartisan chat --tiny` on a localhost port) answers only its own
page: HTTP requests and socket.io connections from another origin, or to another host name (a
DNS-rebinding page), are refused; the same requests from the app's origin go through."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import socketio
from chat_server import serve_chat

pytestmark = pytest.mark.slow  # a real chat server per module: seconds to start

EVIL = "http://evil.example"
SOCKET_IO_PATH = "/ws/socket.io"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, tiny_dir: Path) -> Iterator[str]:
    with serve_chat(tmp_path_factory.mktemp("chat"), tiny_dir, "--tiny") as served:
        yield served


def request(url: str, path: str, method: str = "GET", body: dict | None = None,
            **headers: str) -> tuple[int, dict[str, str], str]:
    """Status, headers (lower-case names) and text of one request."""
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        headers["Content-Type"] = "application/json"
    call = urllib.request.Request(f"{url}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(call, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, \
                response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, \
            error.read().decode()


def signed_in(url: str) -> str:
    """The cookie of the chat's one local user: its page signs in by header, from its origin."""
    status, headers, _ = request(url, "/auth/header", "POST", {}, Origin=url)
    assert status == 200
    return headers["set-cookie"].split(";", 1)[0]


SETTINGS = "/project/settings?language=en-US"
ACTION = {"sessionId": "any", "action": {"name": "download", "payload": {"session": "any"},
                                         "forId": "x", "id": "y"}}


def test_another_origin_is_refused_over_http(url: str) -> None:
    for method, path, body in (("GET", SETTINGS, None), ("GET", "/", None),
                               ("POST", "/project/action", ACTION), ("POST", "/auth/header", {})):
        status, headers, text = request(url, path, method, body, Origin=EVIL)
        assert status == 403, (method, path)
        assert "only the chat's own page" in text
        assert "access-control-allow-origin" not in headers
    # The CORS preflight a page's fetch() sends first: refused, no grant.
    status, headers, _ = request(url, "/project/action", "OPTIONS", Origin=EVIL,
                                 **{"Access-Control-Request-Method": "POST"})
    assert status == 403 and "access-control-allow-origin" not in headers


def test_the_apps_own_origin_goes_through(url: str) -> None:
    assert request(url, SETTINGS, Origin=url)[0] == 401  # signed in first
    cookie = signed_in(url)
    status, _, text = request(url, SETTINGS, Origin=url, Cookie=cookie)
    assert status == 200 and json.loads(text)["ui"]["name"] == "PromptArtisan"
    assert request(url, SETTINGS, Cookie=cookie)[0] == 200  # a local program (no Origin)
    port = url.rsplit(":", 1)[1]
    local = f"localhost:{port}"  # the same server under its other loopback name
    assert request(url, SETTINGS, Host=local, Origin=f"http://{local}", Cookie=cookie)[0] == 200


def test_sharing_a_chat_is_closed(url: str) -> None:
    """The signed-in user's own page can't share a thread, and nobody can read a shared one:
    Chainlit serves both whatever `allow_thread_sharing` says."""
    cookie = signed_in(url)
    status, _, text = request(url, "/project/thread/share", "PUT",
                              {"threadId": "any", "isShared": True}, Origin=url, Cookie=cookie)
    assert status == 403 and "Sharing chats is switched off" in text
    assert request(url, "/project/share/any")[0] == 403


def test_another_host_name_is_refused(url: str) -> None:
    """A page on evil.example whose DNS name now points at 127.0.0.1: same-origin for the
    browser, but its Host header names the wrong server."""
    port = url.rsplit(":", 1)[1]
    rebound = f"evil.example:{port}"
    status, _, text = request(url, SETTINGS, Host=rebound, Origin=f"http://{rebound}")
    assert status == 403 and "is not this chat server" in text
    assert request(url, "/", Host=rebound)[0] == 403


def test_the_local_page_arrives_signed_in_and_a_rebound_one_gets_no_cookie(url: str) -> None:
    """The loopback chat's page carries the local user's sign-in cookie, so the page's first
    calls to /user aren't refused; a page asked for under another host name gets none."""
    status, headers, _ = request(url, "/", Accept="text/html")
    assert status == 200
    cookie = headers["set-cookie"].split(";", 1)[0]
    assert cookie.startswith("access_token=")
    status, _, text = request(url, "/user", Cookie=cookie)
    assert status == 200 and json.loads(text)["identifier"] == "local"
    assert "set-cookie" not in request(url, "/", Cookie=cookie)[1]  # signed in already
    assert request(url, "/user")[0] == 401  # the API itself still wants the cookie
    rebound = f"evil.example:{url.rsplit(':', 1)[1]}"
    status, headers, _ = request(url, "/", Host=rebound, Accept="text/html")
    assert status == 403 and "set-cookie" not in headers


def connect_polling(url: str, origin: str, cookie: str = "") -> socketio.Client:
    client = socketio.Client(reconnection=False)
    client.connect(url, socketio_path=SOCKET_IO_PATH, transports=["polling"],
                   headers={"Origin": origin, "Cookie": cookie}, wait_timeout=20,
                   auth={"sessionId": str(uuid.uuid4()), "clientType": "webapp"})
    return client


async def connect_websocket(url: str, origin: str, cookie: str = "") -> bool:
    """Whether a socket.io client on a WebSocket (no polling first) gets connected."""
    async with aiohttp.ClientSession() as http:
        client = socketio.AsyncClient(reconnection=False, http_session=http)
        try:
            await client.connect(url, socketio_path=SOCKET_IO_PATH, transports=["websocket"],
                                 headers={"Origin": origin, "Cookie": cookie}, wait_timeout=20,
                                 auth={"sessionId": str(uuid.uuid4()), "clientType": "webapp"})
        except socketio.exceptions.ConnectionError:
            return False
        connected = client.connected
        await client.disconnect()
        return connected


def test_socketio_from_another_origin_is_refused(url: str) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError, match="403"):
        connect_polling(url, EVIL)
    assert not asyncio.run(connect_websocket(url, EVIL))


def test_socketio_from_the_apps_origin_connects(url: str) -> None:
    cookie = signed_in(url)
    client = connect_polling(url, url, cookie)
    assert client.connected
    client.eio.disconnect(abort=True)  # not waiting for the long poll in flight (30 s)
    assert asyncio.run(connect_websocket(url, url, cookie))
    assert not asyncio.run(connect_websocket(url, url))  # not signed in

"""Which requests `SameOriginOnly` lets through, for the addresses the chat may be served on
(the real server on 127.0.0.1 is tested in test_ui_security_server.py)."""

from __future__ import annotations

from promptartisan.ui.origin import refusal, served_hosts


def scope(host: str, origin: str | None = None, scheme: str = "http", path: str = "/") -> dict:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    kind = "websocket" if scheme.startswith("ws") else "http"
    return {"type": kind, "scheme": scheme, "headers": headers, "path": path}


def test_sharing_a_chat_is_closed_even_from_the_apps_own_page() -> None:
    """Chainlit serves these whatever `allow_thread_sharing` says; a shared thread is readable
    without signing in, and its metadata names the chat's sessions."""
    hosts = served_hosts("127.0.0.1", 8000)
    own = "http://127.0.0.1:8000"
    for path in ("/project/thread/share", "/project/share/0a1b-thread"):
        assert "Sharing chats is switched off" in refusal(scope("127.0.0.1:8000", own, path=path),
                                                          hosts)
    assert refusal(scope("127.0.0.1:8000", own, path="/project/threads"), hosts) is None


def test_a_loopback_server_answers_to_every_loopback_name() -> None:
    names = {"127.0.0.1:8000", "localhost:8000", "[::1]:8000"}
    assert served_hosts("127.0.0.1", 8000) == names
    assert served_hosts("localhost", 8000) == names
    assert served_hosts("::1", 8000) == names
    # Browsers leave the default port out of Host and Origin.
    assert served_hosts("127.0.0.1", 80) == {"127.0.0.1:80", "localhost:80", "[::1]:80",
                                             "127.0.0.1", "localhost", "[::1]"}


def test_an_address_answers_to_itself_and_every_interface_to_any_name() -> None:
    assert served_hosts("192.168.1.5", 8000) == {"192.168.1.5:8000"}
    assert served_hosts("fe80::1", 8000) == {"[fe80::1]:8000"}
    assert served_hosts("0.0.0.0", 8000) is None
    assert served_hosts("::", 8000) is None


def test_only_the_page_the_server_serves_may_call_it() -> None:
    hosts = served_hosts("127.0.0.1", 8000)
    assert refusal(scope("127.0.0.1:8000"), hosts) is None  # a local program
    assert refusal(scope("localhost:8000", "http://localhost:8000"), hosts) is None
    assert refusal(scope("127.0.0.1:8000", "http://127.0.0.1:8000", "ws"), hosts) is None
    for origin in ("http://evil.example", "null", "http://127.0.0.1:8001",
                   "https://127.0.0.1:8000", "http://localhost:8000"):
        assert "may not use this chat" in refusal(scope("127.0.0.1:8000", origin), hosts)
    assert "not this chat server" in refusal(scope("evil.example:8000",
                                                   "http://evil.example:8000"), hosts)
    assert "not this chat server" in refusal(scope(""), hosts)


def test_on_every_interface_the_origin_must_match_the_host() -> None:
    assert refusal(scope("10.0.0.7:8000", "http://10.0.0.7:8000"), None) is None
    assert refusal(scope("10.0.0.7:8000", "https://10.0.0.7:8000", "wss"), None) is None
    assert refusal(scope("10.0.0.7:8000", "https://10.0.0.7:8000", "ws"), None) is not None
    assert refusal(scope("10.0.0.7:8000", "http://evil.example"), None) is not None

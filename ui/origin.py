"""Only the chat's own page may talk to the chat server.

Any web page the person visits can send requests to 127.0.0.1, with the chat's cookies. Chainlit
doesn't stop them: its `allow_origins` only decides which CORS headers go back (the request
itself still runs), and its socket.io server checks no Origin at all. `SameOriginOnly` sits in
front of Chainlit's whole app (HTTP routes and socket.io, polling and WebSocket alike) and
refuses a request whose Host header doesn't name this server (a page on a DNS name rebound to
127.0.0.1) or whose Origin is not the page it serves (any other web page). It also closes
Chainlit's thread-sharing routes, which ignore `allow_thread_sharing = false`: a shared chat
would be readable by anyone with its link, session ids included.
"""

from __future__ import annotations

import ipaddress
import logging

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketClose

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
EVERY_INTERFACE = ("", "0.0.0.0", "::")
DEFAULT_PORTS = (80, 443)  # browsers leave these out of Host and Origin
# Chainlit's routes to share a thread and to read a shared one, whatever its settings say.
SHARING_PATHS = ("/project/thread/share", "/project/share/")
POLICY_VIOLATION = 1008  # WebSocket close code; the server answers the handshake with 403


def served_hosts(host: str, port: int) -> frozenset[str] | None:
    """The Host header values that name a server listening on `host`:`port` (any loopback name
    for a loopback address); None when it listens on every interface, where any name may."""
    if host in EVERY_INTERFACE:
        return None
    names = {f"[{host}]" if ":" in host else host}
    if is_loopback(host):
        names.update(LOOPBACK_NAMES)
    hosts = {f"{name.lower()}:{port}" for name in names}
    if port in DEFAULT_PORTS:
        hosts.update(name.lower() for name in names)
    return frozenset(hosts)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refusal(scope: Scope, hosts: frozenset[str] | None) -> str | None:
    """Why this request may not reach the app, or None when it comes from the app's own page
    (or from no page at all: a client that sends no Origin is a local program, not a site)."""
    if scope.get("path", "").startswith(SHARING_PATHS):
        return "Sharing chats is switched off: a shared chat is readable by anyone."
    headers = Headers(scope=scope)
    host = headers.get("host", "").lower()
    if hosts is not None and host not in hosts:
        return f"Host {host!r} is not this chat server."
    origin = headers.get("origin")
    scheme = {"ws": "http", "wss": "https"}.get(scope["scheme"], scope["scheme"])
    if origin is not None and origin.lower() != f"{scheme}://{host}":
        return f"Origin {origin!r} may not use this chat: only the chat's own page may."
    return None


class SameOriginOnly:
    """ASGI middleware: requests from another origin or to another host name get 403."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = refusal(scope, self.hosts) if scope["type"] in ("http", "websocket") else None
        if problem is None:
            await self.app(scope, receive, send)
            return
        log.warning("refused %s %s: %s", scope["type"], scope.get("path", ""), problem)
        if scope["type"] == "http":
            await PlainTextResponse(problem, status_code=403)(scope, receive, send)
        else:
            await WebSocketClose(POLICY_VIOLATION, problem)(scope, receive, send)

"""ASGI middleware for a loopback chat: its page arrives signed in as the local user.

Without it, a browser's first visit asks Chainlit's `/user` twice without a cookie (two 401s in
the browser's console) before the page signs in through the header callback, which on loopback
gives everyone the same user (`LOCAL_USER`) anyway. Added inside `SameOriginOnly`, so a page
served to another host name (DNS rebinding) is refused before it could be given a cookie.
"""

from __future__ import annotations

from chainlit.auth.cookie import get_token_from_cookies, set_auth_cookie
from chainlit.auth.jwt import create_jwt, decode_jwt
from chainlit.user import User
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from promptartisan.ui.auth import LOCAL_USER


class LocalSignIn:
    """A page (an HTML answer to a GET) for a browser without a valid sign-in cookie gets one
    for `LOCAL_USER`, made as Chainlit's header sign-in makes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope) if scope["type"] == "http" else None
        if request is None or request.method != "GET" or signed_in(request):
            await self.app(scope, receive, send)
            return

        async def send_signed_in(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200 \
                    and is_page(message):
                cookies = Response()
                set_auth_cookie(request, cookies, create_jwt(User(identifier=LOCAL_USER)))
                message = {**message, "headers": [
                    *message.get("headers", []),
                    *((name, value) for name, value in cookies.raw_headers
                      if name == b"set-cookie")]}
            await send(message)

        await self.app(scope, receive, send_signed_in)


def signed_in(request: Request) -> bool:
    """Whether the request carries a sign-in cookie this server made and still accepts."""
    token = get_token_from_cookies(request.cookies)
    if not token:
        return False
    try:
        decode_jwt(token)
    except Exception:  # expired, or signed with another key: sign in again
        return False
    return True


def is_page(message: Message) -> bool:
    return any(name == b"content-type" and value.startswith(b"text/html")
               for name, value in message.get("headers", []))

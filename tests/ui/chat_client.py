"""A chat window without a browser, for the tests that drive a real `promptartisan chat`
server: it signs in as the page does, holds a socket.io connection, uploads files over HTTP,
sends messages and clicks buttons, and keeps what the server sends (messages, actions,
elements) in order."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import socketio

SOCKET_IO_PATH = "/ws/socket.io"
WAIT_S = 120  # a tiny-model turn on a loaded two-core machine


class ChatClient:
    """One chat window on the server at `url`, signed in as its local user."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session_id = str(uuid.uuid4())
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._changed = threading.Condition()
        self.cookie = self._sign_in()
        self.socket = socketio.Client(reconnection=False)
        for event in ("new_message", "update_message", "action", "element"):
            self.socket.on(event, self._recorder(event))
        self.socket.connect(url, socketio_path=SOCKET_IO_PATH, transports=["polling"],
                            headers={"Origin": url, "Cookie": self.cookie}, wait_timeout=30,
                            auth={"sessionId": self.session_id, "clientType": "webapp"})
        self.socket.emit("connection_successful")

    def close(self) -> None:
        """Leave the chat at once: the disconnect is sent, and the long poll in flight is not
        waited for (python-socketio's `disconnect` waits for it: up to 30 s a window)."""
        self.socket.eio.disconnect(abort=True)  # engine.io's close ends every namespace

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- HTTP -----------------------------------------------------------------------------

    def request(self, path: str, method: str = "GET", data: bytes | None = None,
                content_type: str = "", timeout: float = 60) -> tuple[int, str]:
        """Status and text of one request from this window's page."""
        headers = {"Origin": self.url, "Cookie": getattr(self, "cookie", "")}
        if content_type:
            headers["Content-Type"] = content_type
        call = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                      headers=headers)
        try:
            with urllib.request.urlopen(call, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def _sign_in(self) -> str:
        call = urllib.request.Request(f"{self.url}/auth/header", data=b"{}", method="POST",
                                      headers={"Origin": self.url,
                                               "Content-Type": "application/json"})
        with urllib.request.urlopen(call, timeout=30) as response:
            return response.headers["set-cookie"].split(";", 1)[0]

    def upload(self, name: str, data: bytes, mime: str = "image/png") -> tuple[int, str]:
        """Status and answer of an upload, as the page's attach button sends it."""
        boundary = uuid.uuid4().hex
        body = io.BytesIO()
        body.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                   f"filename=\"{name}\"\r\nContent-Type: {mime}\r\n\r\n".encode())
        body.write(data)
        body.write(f"\r\n--{boundary}--\r\n".encode())
        return self.request(f"/project/file?session_id={self.session_id}", "POST",
                            body.getvalue(), f"multipart/form-data; boundary={boundary}")

    def send(self, text: str, files: list[str] = ()) -> None:
        """A message, with the ids of files uploaded before it."""
        self.socket.emit("client_message", {
            "message": {"id": str(uuid.uuid4()), "threadId": "", "name": "User",
                        "type": "user_message", "output": text,
                        "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            "fileReferences": [{"id": file} for file in files]})

    def action(self, name: str, payload: dict[str, Any],
               timeout: float = WAIT_S) -> tuple[int, Any]:
        """A button's (or a canvas's) call; status and the callback's answer."""
        body = json.dumps({"sessionId": self.session_id,
                           "action": {"name": name, "payload": payload, "id": str(uuid.uuid4()),
                                      "forId": str(uuid.uuid4())}}).encode()
        status, text = self.request("/project/action", "POST", body, "application/json",
                                    timeout)
        return status, json.loads(text).get("response") if status == 200 else text

    # ----- what the server sent ---------------------------------------------------------------

    def _recorder(self, event: str) -> Callable[[dict[str, Any]], None]:
        def record(data: dict[str, Any]) -> None:
            with self._changed:
                self.events.append((event, data))
                self._changed.notify_all()
        return record

    def wait_for(self, found: Callable[[str, dict[str, Any]], bool],
                 timeout: float = WAIT_S) -> dict[str, Any]:
        """The first event (name, data) `found` accepts, waiting for it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                match = next((data for event, data in self.events if found(event, data)), None)
                if match is not None:
                    return match
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"nothing matching came in {timeout}s; got: "
                                         f"{[(e, str(d)[:200]) for e, d in self.events]}")
                self._changed.wait(left)

    def button(self, name: str) -> dict[str, Any]:
        """The newest button `name` the server sent, waiting for one."""
        self.wait_for(lambda event, data: event == "action" and data.get("name") == name)
        with self._changed:
            return next(data for event, data in reversed(self.events)
                        if event == "action" and data.get("name") == name)

    def text_containing(self, words: str, timeout: float = WAIT_S) -> str:
        """A message whose text has `words`, waiting for one."""
        return str(self.wait_for(lambda event, data: event in ("new_message", "update_message")
                                 and words in str(data.get("output", "")), timeout)["output"])

"""A language-model server on localhost for the planner tests: a real HTTP server on a real
socket that speaks enough of Ollama's API (`GET /api/tags`, `POST /api/chat`, streamed or not)
and OpenAI's (`POST /v1/chat/completions`) to drive the providers' own clients. It answers
from a script of fixed replies and records every request it got."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHAT_MODEL = {"name": "qwen2.5:3b", "model": "qwen2.5:3b",
              "details": {"family": "qwen2", "families": ["qwen2"]}}
EMBEDDING_MODEL = {"name": "nomic-embed-text:latest", "model": "nomic-embed-text:latest",
                   "details": {"family": "nomic-bert", "families": ["nomic-bert"]}}


class ModelServer:
    """`replies`: the answers' contents, in order (one per chat request; the last repeats).
    `models`: what `/api/tags` lists. `requests`: (path, JSON body or None) of each request."""

    def __init__(self, replies: list[str] | None = None,
                 models: list[dict[str, Any]] | None = None) -> None:
        self.replies = list(replies or [])
        self.models = [CHAT_MODEL] if models is None else models
        self.requests: list[tuple[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def chats(self) -> list[dict[str, Any]]:
        """The bodies of the chat requests, in order."""
        return [body for path, body in self.requests if path != "/api/tags"]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _reply(self) -> str:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, None))
                if self.path == "/api/tags":
                    self._send({"models": server.models})
                else:
                    self._send({"error": "not found"}, 404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"null")
                server.requests.append((self.path, body))
                if self.path == "/api/chat":
                    self._ollama_chat(body)
                elif self.path == "/v1/chat/completions":
                    self._openai_chat(body)
                else:
                    self._send({"error": "not found"}, 404)

            def _ollama_chat(self, body: dict[str, Any]) -> None:
                content, model = server._reply(), body.get("model")
                done = {"model": model, "created_at": "2026-01-01T00:00:00Z",
                        "message": {"role": "assistant", "content": ""}, "done": True,
                        "done_reason": "stop", "total_duration": 1, "eval_count": 1,
                        "prompt_eval_count": 1}
                if body.get("stream", True):
                    first = {**done, "message": {"role": "assistant", "content": content},
                             "done": False}
                    lines = [first, done]
                    self._send_raw("".join(json.dumps(line) + "\n" for line in lines),
                                   "application/x-ndjson")
                else:
                    self._send({**done, "message": {"role": "assistant", "content": content}})

            def _openai_chat(self, body: dict[str, Any]) -> None:
                self._send({
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 0,
                    "model": body.get("model"),
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {
                        "role": "assistant", "content": server._reply()}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

            def _send(self, payload: Any, status: int = 200) -> None:
                self._send_raw(json.dumps(payload), "application/json", status)

            def _send_raw(self, text: str, kind: str, status: int = 200) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

"""What `planner = "auto"` costs to choose: `python -m promptartisan.agent.planning.bench_auto`.

Prints the median and the slowest of `--repeat` fresh choices (`choose(recheck=True)`: the
Ollama candidate alone) against a port that refuses (no Ollama: the usual case), a server on
localhost that lists a chat model the way Ollama does (the choice then builds the Ollama
planner), and a port that accepts and never answers (costs the probe's timeout). The first
choice of a process also imports what it needs; it is printed apart.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from promptartisan.agent.planning import auto_planner
from promptartisan.settings import Settings

MODELS = {"models": [{"name": "qwen2.5:3b", "details": {"family": "qwen2"}}]}


class _Tags(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(MODELS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _refusing() -> Iterator[str]:
    with socket.socket() as held:  # bound, never listening: connections are refused
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"


@contextmanager
def _listing() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Tags)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _silent() -> Iterator[str]:
    with socket.create_server(("127.0.0.1", 0)) as server:  # accepted by the kernel, unread
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def _milliseconds(url: str, repeat: int) -> tuple[str, float, list[float]]:
    settings = Settings(ollama_host=url)
    started = time.perf_counter()
    name = auto_planner.choose(settings, recheck=True).name
    first = (time.perf_counter() - started) * 1000
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        auto_planner.choose(settings, recheck=True)
        times.append((time.perf_counter() - started) * 1000)
    return name, first, times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    results = []
    auto_planner.CANDIDATES[:] = [auto_planner.ollama]
    for label, place in (("no Ollama (refused)", _refusing), ("Ollama listing a model", _listing),
                         ("silent port", _silent)):
        with place() as url:
            repeat = args.repeat if place is not _silent else 3
            name, first, times = _milliseconds(url, repeat)
        print(f"{label:24} → {name:18} first {first:7.1f} ms, then median "
              f"{statistics.median(times):6.1f} ms, slowest {max(times):6.1f} ms ({repeat} runs)")
        results.append({"place": label, "chose": name, "first_ms": first,
                         "median_ms": statistics.median(times), "slowest_ms": max(times),
                         "runs": repeat})
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

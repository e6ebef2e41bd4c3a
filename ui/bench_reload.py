"""Seconds a chat takes to come back after a reload, as it grows: a real `promptartisan chat
--tiny` on a free localhost port, one chat driven by Chromium through Playwright (the browser
tests' set-up; `make chromium`, and playwright and scikit-image from the dev requirements):

    OMP_WAIT_POLICY=PASSIVE python -m promptartisan.ui.bench_reload [--counts 10,50,200]

The chat gets one photo and one edit, then the person's messages cycle "undo", "redo",
"thanks" (a history move, another, a reply) until it holds each count of the person's
messages; at each count the page reloads `--repeat` times, each timed from the reload to the
chat's "Continuing …" history element with its picture loaded. It prints each count's
median and worst reload, and the messages and steps on the page after each reload (they must
not grow: a reload adds nothing to the transcript).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
START_S = 180  # the server's first start writes the tiny models
TURN_MS = 300_000
CYCLE = ("undo", "redo", "thanks")
# What each message of the cycle shows once it is done.
DONE = {"undo": "Undone: back to version 0", "redo": "Redone: version 1",
        "thanks": "Glad you like it"}
CONTINUING = r"^Continuing session .* What next\?$"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _chat_server(state: Path) -> Iterator[str]:
    """`promptartisan chat --tiny --headless` with its state in `state`, stopped after."""
    state.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PROMPTARTISAN_", "HF_"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(state / "hf"), OMP_WAIT_POLICY="PASSIVE",
               PROMPTARTISAN_SESSION_DIR=str(state / "sessions"),
               PROMPTARTISAN_TINY_DIR=str(state / "tiny"), PROMPTARTISAN_STEPS="4",
               PROMPTARTISAN_WORKING_SIZE="256", PROMPTARTISAN_DEVICE="cpu")
    script = Path(sys.executable).parent / "promptartisan"
    command = [str(script)] if script.exists() else [sys.executable, "-m",
                                                     "promptartisan.ui.cli"]
    with open(state / "server.log", "wb") as log:
        server = subprocess.Popen([*command, "chat", "--tiny", "--headless", "--port",
                                   str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the chat server didn't start: see {state / 'server.log'}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _send(page: Any, text: str) -> None:
    page.fill("#chat-input", text)
    page.click("#chat-submit")


def _reload(page: Any) -> float:
    """Seconds from a reload to the chat's "Continuing …" element with its picture shown."""
    import re

    from playwright.sync_api import expect

    started = time.perf_counter()
    page.reload()
    expect(page.get_by_text(re.compile(CONTINUING))).to_have_count(1)
    preview = page.locator(".pa-history-preview").last
    preview.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=preview.element_handle())
    return time.perf_counter() - started


def run(counts: list[int], repeat: int, photo: Path, folder: Path) -> list[dict[str, Any]]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TURN_MS)
    rows: list[dict[str, Any]] = []
    with _chat_server(folder / "state") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(TURN_MS)
        page.add_init_script("delete window.showOpenFilePicker")
        page.goto(url)
        expect(page.get_by_text("Welcome to PromptArtisan")).to_be_visible()
        page.set_input_files("#upload-button-input", str(photo))
        page.locator("#message-composer img").last.wait_for()
        _send(page, "make it look like a painting")
        expect(page.get_by_text("Done in one pass")).to_have_count(1)
        sent = 1
        done = {text: 0 for text in CYCLE}
        for count in sorted(counts):
            while sent < count:
                text = CYCLE[(sent - 1) % len(CYCLE)]
                _send(page, text)
                done[text] += 1
                mark = page.get_by_text(DONE[text])
                if text == "thanks":  # replies stay; a history move replaces the last one
                    expect(mark).to_have_count(done[text])
                else:
                    expect(mark.last).to_be_visible()
                sent += 1
            seconds, shown = [], []
            for _ in range(repeat):
                seconds.append(_reload(page))
                shown.append(page.locator("[data-step-type]").count())
            rows.append({"messages": count, "median_s": statistics.median(seconds),
                         "worst_s": max(seconds), "shown_after_each_reload": shown})
            print(f"{count:>4} messages: reload {rows[-1]['median_s']:.2f} s median, "
                  f"{rows[-1]['worst_s']:.2f} s worst; steps on the page {shown}", flush=True)
        browser.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="promptartisan bench reload", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="10,50,200",
                        help="the person's messages at which to reload (default 10,50,200)")
    parser.add_argument("--repeat", type=int, default=3, help="reloads at each count")
    parser.add_argument("--json", type=Path, help="write the rows as JSON")
    args = parser.parse_args(argv)
    counts = [int(part) for part in args.counts.split(",") if part.strip()]
    if not CHROMIUM.exists():
        raise SystemExit(f"Debian's Chromium is missing ({CHROMIUM}): run `make chromium`.")
    folder = Path(tempfile.mkdtemp(prefix="promptartisan-reload-"))
    try:
        from PIL import Image
        from skimage import data

        photo = folder / "astronaut.png"
        Image.fromarray(data.astronaut()).save(photo)
        rows = run(counts, args.repeat, photo, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

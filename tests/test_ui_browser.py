"""The chat in a real browser: `promptartisan chat --tiny` served on a free port, driven by
Playwright through Debian's Chromium (headless). Screenshots of every stage land in the test's
folder, and also in $PROMPTARTISAN_SCREENSHOTS when set (docs/screenshots/ for the README)."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SERVER_START_S = 90
TURN_S = 120
TWO_EDITS = "turn the flag red and make the suit gold"
VAGUE = "change something"
VIEWPORT = {"width": 1280, "height": 1500}
SCROLL_TO_END = """() => { for (const element of document.querySelectorAll('*')) {
    const style = getComputedStyle(element);
    if (['auto', 'scroll'].includes(style.overflowY) && element.scrollHeight > element.clientHeight)
        element.scrollTop = element.scrollHeight; } }"""
ANSWER = "make it look like a painting"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def promptartisan_command() -> list[str]:
    script = Path(sys.executable).parent / "promptartisan"
    return [str(script)] if script.exists() else [sys.executable, "-m", "promptartisan.ui.cli"]


@pytest.fixture(scope="module")
def chat_url(tmp_path_factory: pytest.TempPathFactory, tiny_dir: Path) -> Iterator[str]:
    """`promptartisan chat --tiny --headless` on a free port, its sessions in a temporary
    folder; stopped (with its Chainlit server) at the end."""
    state = tmp_path_factory.mktemp("chat")
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("PROMPTARTISAN_")}
    env.update(HF_HUB_OFFLINE="1", OMP_WAIT_POLICY="PASSIVE",
               PROMPTARTISAN_SESSION_DIR=str(state / "sessions"),
               PROMPTARTISAN_TINY_DIR=str(tiny_dir), PROMPTARTISAN_STEPS="4",
               PROMPTARTISAN_WORKING_SIZE="256", PROMPTARTISAN_DEVICE="cpu")
    log_path = state / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [*promptartisan_command(), "chat", "--tiny", "--headless", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"the chat server exited:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the chat server didn't answer in {SERVER_START_S}s:\n"
                            f"{log_path.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert not (Path.cwd() / ".files").exists() or (Path.cwd() / ".files").stat().st_mtime < \
        state.stat().st_mtime, "Chainlit wrote .files/ into the current folder"


class Screenshots:
    """Full-page screenshots, numbered in order, in the test's folder and maybe the docs'."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.docs = Path(os.environ["PROMPTARTISAN_SCREENSHOTS"]) \
            if os.environ.get("PROMPTARTISAN_SCREENSHOTS") else None
        self.count = 0

    def take(self, page: Page, name: str, docs: bool = False) -> Path:
        """The chat scrolled to its end (Chainlit scrolls an inner panel, not the page)."""
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.evaluate(SCROLL_TO_END)
        page.wait_for_timeout(300)
        page.screenshot(path=str(path))
        if docs and self.docs is not None:
            self.docs.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, self.docs / f"{name}.png")
        return path


def test_chat_in_the_browser(chat_url: str, tmp_path: Path, photo: Image.Image) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"Debian's Chromium is missing ({CHROMIUM}): run `make test`, which "
                    "installs it (apt-get install chromium).")
    from playwright.sync_api import expect, sync_playwright

    upload = tmp_path / "astronaut.png"
    photo.save(upload)
    shots = Screenshots(tmp_path)
    external: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                             headless=True)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(TURN_S * 1000)
            expect.set_options(timeout=TURN_S * 1000)
            # Chainlit's upload button prefers the File System Access API, which Playwright
            # can't drive; without it, the button falls back to the <input type=file>.
            page.add_init_script("delete window.showOpenFilePicker")
            page.on("request", lambda request: external.append(request.url)
                    if not request.url.startswith((chat_url, "data:", "blob:")) else None)

            # The welcome says what to do.
            page.goto(chat_url)
            expect(page.get_by_text("Welcome to PromptArtisan")).to_be_visible()
            shots.take(page, "welcome", docs=True)

            # A photo and a request with two edits: the plan, the masks, the result.
            page.set_input_files("#upload-button-input", str(upload))
            expect(page.locator("#message-composer img")).to_have_count(1)
            page.fill("#chat-input", TWO_EDITS)
            page.click("#chat-submit")
            done = page.get_by_text("Done in one pass")
            which = page.get_by_text("Which one should I change?")
            expect(done.or_(which).first).to_be_visible()
            if which.count():  # the tiny grounder found two of something: answer with a click
                shots.take(page, "which-question")
                page.get_by_role("button", name="all of them").last.click()
            expect(done).to_have_count(1)
            plan = page.locator('[data-step-type="tool"]', has_text="Plan").last
            expect(plan).to_contain_text("flag → turn the flag red")
            expect(plan).to_contain_text("suit → make the suit gold")
            masks = page.locator('[data-step-type="tool"]', has_text="Grounding").last
            expect(masks.locator('img[alt="masks.png"]')).to_be_visible()
            result = page.locator('img[alt$="-v0001.png"]')
            expect(result).to_be_visible()
            assert result.evaluate("img => img.naturalWidth") == photo.width
            shots.take(page, "edit", docs=True)

            # Undo shows the previous version: the upload itself.
            page.get_by_role("button", name="Undo").last.click()
            expect(page.get_by_text("Undone: back to version 0")).to_be_visible()
            previous = page.locator('img[alt$="-v0000.png"]').last
            expect(previous).to_be_visible()
            pixels = page.request.get(previous.get_attribute("src") or "").body()
            shown = np.asarray(Image.open(io.BytesIO(pixels)).convert("RGB"))
            assert np.array_equal(shown, np.asarray(photo)), "Undo didn't show the upload"
            shots.take(page, "undo")

            # A vague request gets a question; the answer gets an edit.
            page.fill("#chat-input", VAGUE)
            page.click("#chat-submit")
            expect(page.get_by_text("What would you like me to change")).to_be_visible()
            shots.take(page, "question", docs=True)
            page.fill("#chat-input", ANSWER)
            page.click("#chat-submit")
            expect(done).to_have_count(2)
            expect(page.locator('[data-step-type="tool"]', has_text="Plan").last
                   ).to_contain_text("painting")
            shots.take(page, "answered")
        except Exception:
            shots.take(page, "failure")
            raise
        finally:
            browser.close()
    assert not external, f"the page loaded from outside the server: {external}"

"""The chat in a real browser: `promptartisan chat --tiny` served on a free port, driven by
Playwright through Debian's Chromium (headless). Screenshots of every stage land in the test's
folder, and also in $PROMPTARTISAN_SCREENSHOTS when set (docs/screenshots/ for the README)."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from chat_server import serve_chat
from PIL import Image

from promptartisan.agent.sessions.store import Session

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TURN_S = 120
TWO_EDITS = "turn the flag red and make the suit gold"
VAGUE = "change something"
VIEWPORT = {"width": 1280, "height": 1600}
PHONE = {"width": 390, "height": 844}
SCROLL_TO_END = """() => { for (const element of document.querySelectorAll('*')) {
    const style = getComputedStyle(element);
    if (['auto', 'scroll'].includes(style.overflowY) && element.scrollHeight > element.clientHeight)
        element.scrollTop = element.scrollHeight; } }"""
ANSWER = "make it look like a painting"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless; missing Chromium fails (not skips) the browser tests."""
    if not CHROMIUM.exists():
        pytest.fail(f"Debian's Chromium is missing ({CHROMIUM}): run `make test`, which "
                    "installs it (apt-get install chromium).")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TURN_S * 1000)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def open_chat(browser: Browser, url: str, problems: list[str],
              viewport: dict[str, int] = VIEWPORT) -> Page:
    """A new chat page; every request to another host, and every answer that refuses the
    page's sign-in (401: the loopback page arrives signed in), is appended to `problems`."""
    page = browser.new_page(viewport=viewport)
    page.set_default_timeout(TURN_S * 1000)
    # Chainlit's upload button prefers the File System Access API, which Playwright can't
    # drive; without it, the button falls back to the <input type=file>.
    page.add_init_script("delete window.showOpenFilePicker")
    page.on("request", lambda request: problems.append(f"outside: {request.url}")
            if not request.url.startswith((url, "data:", "blob:")) else None)
    page.on("response", lambda response: problems.append(f"401: {response.url}")
            if response.status == 401 else None)
    page.goto(url)
    return page


class Screenshots:
    """Full-page screenshots, numbered in order, in the test's folder and maybe the docs'."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.docs = Path(os.environ["PROMPTARTISAN_SCREENSHOTS"]) \
            if os.environ.get("PROMPTARTISAN_SCREENSHOTS") else None
        self.count = 0

    def take(self, page: Page, name: str, docs: bool = False, top: Locator | None = None
             ) -> Path:
        """The chat scrolled to its end, or to `top` (Chainlit scrolls an inner panel, not the
        page)."""
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        if top is None:
            page.evaluate(SCROLL_TO_END)
        else:
            top.evaluate("element => element.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(300)
        page.screenshot(path=str(path))
        if docs and self.docs is not None:  # 256 colours: a third of the bytes in git
            self.docs.mkdir(parents=True, exist_ok=True)
            with Image.open(path) as shot:
                shot.convert("RGB").quantize(256).save(self.docs / f"{name}.png", optimize=True)
        return path


@contextmanager
def chat_page(browser: Browser, url: str, shots: Screenshots,
              viewport: dict[str, int] = VIEWPORT) -> Iterator[Page]:
    """A chat page for one test: a screenshot of it when the test fails, closed after, and
    nothing loaded from outside the server, no sign-in refused."""
    problems: list[str] = []
    page = open_chat(browser, url, problems, viewport)
    try:
        yield page
    except Exception:
        shots.take(page, "failure")
        raise
    finally:
        page.close()
    assert not problems, f"the page loaded from outside the server or was refused: {problems}"


def test_chat_in_the_browser(browser: Browser, tmp_path: Path, tiny_dir: Path,
                             photo: Image.Image) -> None:
    from playwright.sync_api import expect

    upload = tmp_path / "astronaut.png"
    photo.save(upload)
    shots = Screenshots(tmp_path)
    with (serve_chat(tmp_path / "state", tiny_dir, "--tiny") as url,
          chat_page(browser, url, shots) as page):
        # The welcome says what to do.
        expect(page.get_by_text("Welcome to PromptArtisan")).to_be_visible()
        shots.take(page, "welcome", docs=True)
        page.click("#chat-settings-open-modal")
        expect(page.get_by_text("Image guidance")).to_be_visible()
        shots.take(page, "settings", docs=True)
        page.keyboard.press("Escape")
        expect(page.get_by_text("Image guidance")).to_have_count(0)

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
        saving = page.locator('[data-step-type="tool"]', has_text="Saving").last
        expect(saving).to_contain_text("Saved as version 1")
        assert result.evaluate("img => img.naturalWidth") == photo.width
        shots.take(page, "edit", docs=True, top=plan)

        # The history element under the result: versions 0 and 1, the chat on 1.
        history = page.locator(".pa-history")
        expect(history).to_have_count(1)
        expect(history).to_have_attribute("data-current", "1")
        expect(history.locator(".pa-history-node")).to_have_count(2)

        # Compare: a before/after slider, version 0 under version 1.
        page.get_by_role("button", name="Compare").last.click()
        slider = page.locator(".pa-compare").last
        expect(slider).to_be_visible()
        expect(slider.locator('img[alt$="-v0000.png"]')).to_be_visible()
        expect(slider.locator('img[alt$="-v0001.png"]')).to_be_visible()
        shots.take(page, "compare", docs=True, top=slider)

        # Download PNG: the browser saves version 1's file itself, as it is on disk.
        with page.expect_download() as saving:
            page.get_by_role("button", name="Download PNG").last.click()
        saved = saving.value
        session = Session.open(Session.list(tmp_path / "state" / "sessions")[0].id,
                               tmp_path / "state" / "sessions")
        assert saved.suggested_filename == f"{session.id}-v0001.png"
        assert Path(saved.path()).read_bytes() == session.version(1).file.read_bytes()
        again = page.get_by_role("link", name=f"Save {session.id}-v0001.png again")
        expect(again).to_be_visible()

        # Undo posts no picture: the history element, moved below the slider, shows the
        # upload itself.
        messages = page.locator('[data-step-type="assistant_message"]')
        count = messages.count()
        assert count > 3, count
        page.get_by_role("button", name="Undo").last.click()
        expect(history).to_have_attribute("data-current", "0")
        expect(page.get_by_text("Undone: back to version 0")).to_be_visible()
        expect(history).to_have_count(1)
        expect(messages).to_have_count(count)  # the history moved to the end, none added
        previous = history.locator('img.pa-history-preview[alt$="-v0000.png"]')
        expect(previous).to_be_visible()
        head, data = (previous.get_attribute("src") or ",").split(",", 1)
        assert head == "data:image/png;base64", head
        shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
        assert np.array_equal(shown, np.asarray(photo)), "Undo didn't show the upload"
        page.get_by_role("button", name="Redo").last.click()  # nothing moves the messages
        expect(history).to_have_attribute("data-current", "1")
        page.get_by_role("button", name="Redo").last.click()
        expect(page.get_by_text("Nothing to redo.")).to_be_visible()
        expect(messages).to_have_count(count)
        page.get_by_role("button", name="Undo").last.click()
        expect(history).to_have_attribute("data-current", "0")
        shots.take(page, "undo")

        # The buttons under the undone picture act on version 0, not on version 1.
        page.get_by_role("button", name="Compare").last.click()
        expect(page.get_by_text("This is the original picture")).to_be_visible()

        # Retry under the edit: the same edit with a new seed, beside version 1.
        page.get_by_role("button", name="Retry").last.click()
        expect(page.get_by_text("Tried again with a new seed")).to_be_visible()
        expect(page.locator('img[alt$="-v0002.png"]')).to_be_visible()
        expect(page.get_by_text("beside version 1")).to_be_visible()

        # The history shows the branch: 2 beside 1, each a click away.
        expect(history).to_have_count(1)
        expect(history).to_have_attribute("data-current", "2")
        one = history.locator('.pa-history-node[data-version="1"]')
        two = history.locator('.pa-history-node[data-version="2"]')
        assert one.bounding_box()["y"] != two.bounding_box()["y"], "no lane for the branch"
        one.hover()
        expect(history.locator(".pa-history-detail")).to_contain_text("Version 1:")
        shots.take(page, "history-hover")
        count = messages.count()
        assert count > 3, count
        one.click()
        expect(history).to_have_attribute("data-current", "1")
        expect(page.get_by_text("Went to version 1 (from version 2)")).to_be_visible()
        expect(history.locator('img.pa-history-preview[alt$="-v0001.png"]')).to_be_visible()
        shots.take(page, "history", docs=True)
        two.click()
        expect(history).to_have_attribute("data-current", "2")
        expect(history.locator('img.pa-history-preview[alt$="-v0002.png"]')).to_be_visible()
        expect(messages).to_have_count(count)  # a click changes the element, posts nothing

        # "Compare version 2 with …" version 0: a slider between any two versions.
        history.locator("select").select_option("0")
        expect(page.get_by_text("Version 0 → version 2")).to_be_visible()
        chosen = page.locator(".pa-compare").last
        expect(chosen.locator('img[alt$="-v0000.png"]')).to_be_visible()
        expect(chosen.locator('img[alt$="-v0002.png"]')).to_be_visible()

        # A vague request gets a question; the answer gets an edit.
        page.fill("#chat-input", VAGUE)
        page.click("#chat-submit")
        expect(page.get_by_text("What would you like me to change")).to_be_visible()
        shots.take(page, "question", docs=True)
        page.fill("#chat-input", ANSWER)
        page.click("#chat-submit")
        expect(done).to_have_count(2)
        plans = page.locator('[data-step-type="tool"]', has_text="Plan")
        expect(plans.last).to_contain_text("painting")
        expect(plans.first).to_contain_text("flag")  # each turn keeps its own steps
        shots.take(page, "answered")

        # A reload shows the download's link again, and saves nothing by itself.
        downloads: list[object] = []
        page.on("download", lambda download: downloads.append(download))
        page.reload()
        expect(again).to_be_visible()
        page.wait_for_timeout(3000)
        assert not downloads, "a reload saved the PNG again"


def test_compare_slider_on_a_phone(browser: Browser, tmp_path: Path, tiny_dir: Path,
                                   photo: Image.Image) -> None:
    """At 390×844 (a phone), the slider spans the chat column; a drag moves the divider and
    reveals more of one version, and the range input under it does the same by keyboard."""
    from playwright.sync_api import expect

    upload = tmp_path / "astronaut.png"
    photo.save(upload)
    shots = Screenshots(tmp_path)
    with (serve_chat(tmp_path / "state", tiny_dir, "--tiny") as url,
          chat_page(browser, url, shots, PHONE) as page):
        expect(page.get_by_text("Welcome to PromptArtisan")).to_be_visible()
        _send(page, ANSWER, upload)
        expect(page.get_by_text("Done in one pass")).to_have_count(1)
        page.get_by_role("button", name="Compare").last.click()
        box = page.locator(".pa-compare-box").last
        expect(box.locator("img")).to_have_count(2)
        area = box.bounding_box()
        assert area is not None and area["width"] >= 0.75 * PHONE["width"], area
        box.scroll_into_view_if_needed()
        before = box.screenshot()
        shots.take(page, "compare-phone", docs=True, top=box)
        area = box.bounding_box()
        middle = area["y"] + area["height"] / 2
        page.mouse.move(area["x"] + area["width"] / 2, middle)
        page.mouse.down()
        page.mouse.move(area["x"] + area["width"] * 0.2, middle, steps=8)
        page.mouse.up()
        reveal = page.locator(".pa-compare-range").last
        expect(reveal).to_have_value("20")
        clip = box.locator(".pa-compare-before").evaluate("img => img.style.clipPath")
        assert clip == "inset(0px 80% 0px 0px)", clip
        dragged = box.screenshot()
        assert dragged != before, "the drag changed nothing on screen"
        shots.take(page, "compare-phone-dragged", top=box)
        reveal.focus()
        page.keyboard.press("End")
        expect(reveal).to_have_value("100")
        assert box.screenshot() not in (before, dragged)


def test_missing_models_offer_the_tiny_ones(browser: Browser, tmp_path: Path,
                                            tiny_dir: Path) -> None:
    """Without --tiny, offline and with an empty model cache (a first `make run` without
    internet): the welcome says how to get the models and offers the tiny ones."""
    from playwright.sync_api import expect

    shots = Screenshots(tmp_path)
    with (serve_chat(tmp_path / "state", tiny_dir) as url,
          chat_page(browser, url, shots) as page):
        expect(page.get_by_text("promptartisan models download")).to_be_visible()
        shots.take(page, "missing-models", docs=True)
        page.get_by_role("button", name="Use the tiny demo models").click()
        expect(page.get_by_text("Switched this chat to the")).to_be_visible()
        shots.take(page, "tiny")


def two_photos(folder: Path, photo: Image.Image) -> tuple[Path, Path]:
    """Two uploads: the photo, and the photo upside down (another picture to the chat)."""
    first, second = folder / "first.png", folder / "second.png"
    photo.save(first)
    photo.rotate(180).save(second)
    return first, second


def _send(page: Page, text: str, upload: Path | None = None) -> None:
    if upload is not None:
        page.set_input_files("#upload-button-input", str(upload))
        page.locator("#message-composer img").last.wait_for()
    page.fill("#chat-input", text)
    page.click("#chat-submit")


def test_two_windows_on_one_session_and_a_new_photo(browser: Browser, tmp_path: Path,
                                                    tiny_dir: Path, photo: Image.Image) -> None:
    """Window A edits (version 1); window B continues the session, undoes and edits
    (version 2, beside 1); A's Undo and Redo stay on A's own branch. Then a new photo in A
    starts a session of its own, and its button adds it to the earlier one instead."""
    import re

    from playwright.sync_api import expect

    first, second = two_photos(tmp_path, photo)
    shots = Screenshots(tmp_path)
    with (serve_chat(tmp_path / "state", tiny_dir, "--tiny") as url,
          chat_page(browser, url, shots) as a):
        expect(a.get_by_text("Welcome to PromptArtisan")).to_be_visible()
        _send(a, ANSWER, first)
        expect(a.get_by_text("Done in one pass")).to_have_count(1)

        with chat_page(browser, url, shots) as b:
            b.get_by_role("button", name=re.compile("^Continue ")).first.click()
            expect(b.get_by_text("at version 1")).to_be_visible()
            # The chat is named after the picture's first request, not after the button
            # (renamed once the Continue is done: looked for until then).
            _wait_for_thread_name(tmp_path / "state", f"Continued: {ANSWER}")
            # The resume ends with the history element; a click before it is answered "busy".
            expect(b.get_by_role("group", name="Versions of this picture")).to_be_visible()
            b.get_by_role("button", name="Undo").last.click()
            expect(b.get_by_text("Undone: back to version 0")).to_be_visible()
            _send(b, ANSWER)
            expect(b.get_by_text("(version 2)")).to_be_visible()

            a.get_by_role("button", name="Undo").last.click()
            expect(a.get_by_text("Undone: back to version 0")).to_be_visible()
            a.get_by_role("button", name="Redo").last.click()
            expect(a.get_by_text("Redone: version 1")).to_be_visible()  # not B's newer 2
            shots.take(a, "window-a")

            _send(a, "", second)
            add = a.get_by_role("button", name="Add it to the earlier picture's history instead")
            expect(add).to_be_visible()
            add.click()
            expect(a.get_by_text("history as version 3")).to_be_visible()
            shots.take(a, "added-photo")


def _wait_for_thread_name(state: Path, name: str) -> None:
    """Until a chat in the chat's own database has `name` (and none is named "resume")."""
    import sqlite3
    import time
    from contextlib import closing

    deadline = time.monotonic() + TURN_S
    while True:
        with closing(sqlite3.connect(state / "chainlit" / "chat.sqlite")) as conn:
            names = [row[0] for row in conn.execute('SELECT "name" FROM threads')]
        if name in names and "resume" not in names:
            return
        assert time.monotonic() < deadline, f"no chat named {name!r}: {names}"
        time.sleep(0.5)


def test_a_stop_says_so_once(browser: Browser, tmp_path: Path, tiny_dir: Path,
                             photo: Image.Image) -> None:
    """The stop button while the model runs: one message says what the stop did (Chainlit's
    own "Task manually stopped." is taken back), and no version was made."""
    from playwright.sync_api import expect

    from promptartisan.ui.message_turns import STOPPED

    upload = tmp_path / "astronaut.png"
    photo.save(upload)
    shots = Screenshots(tmp_path)
    with (serve_chat(tmp_path / "state", tiny_dir, "--tiny",
                     env_extra={"PROMPTARTISAN_STEPS": "30"}) as url,
          chat_page(browser, url, shots) as page):
        expect(page.get_by_text("Welcome to PromptArtisan")).to_be_visible()
        _send(page, ANSWER, upload)
        expect(page.get_by_text("Editing")).to_be_visible()
        page.locator("#stop-button").click()
        expect(page.get_by_text(STOPPED)).to_have_count(1)
        page.wait_for_timeout(2000)  # a second message would have come by now
        expect(page.get_by_text("Task manually stopped.")).to_have_count(0)
        expect(page.get_by_text("Done in one pass")).to_have_count(0)
        shots.take(page, "stopped")

"""A chat survives a reload and a server restart: `promptartisan chat --tiny` in Debian's
Chromium, its transcript, pictures, settings and sessions read back from the chat's SQLite
data layer. Chainlit's known resume problems (elements lost, messages sent while resuming
vanishing) are checked here, not assumed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from chat_server import serve_chat
from PIL import Image
from test_ui_browser import (  # noqa: F401 (a fixture)
    Screenshots,
    browser,
    chat_page,
    open_chat,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

REQUEST = "make the suit gold"
SEED = "1234"
TURN_RELOADS = 60  # reloads, 2 s apart, waiting for a turn the page can't see end


def _wait_for_edit(page: Page, count: int) -> None:
    from playwright.sync_api import expect

    done = page.get_by_text("Done in one pass")
    which = page.get_by_role("button", name="all of them")
    expect(done.or_(which).first).to_be_visible()
    if which.count() and done.count() < count:  # the tiny grounder found two of something
        which.last.click()
    expect(done).to_have_count(count)


ATTEMPTS = 5  # a reloaded page may replace a picture while it is being looked at


def _natural_width(page: Page, selector: str) -> int:
    """The shown picture's width once loaded (0 when the browser couldn't load it)."""
    from playwright.sync_api import Error, expect

    for attempt in range(ATTEMPTS):
        picture = page.locator(selector).last
        expect(picture).to_be_visible()
        try:
            picture.scroll_into_view_if_needed(timeout=10_000)  # a lazy picture loads on screen
            handle = picture.element_handle()
            page.wait_for_function("img => img.complete", arg=handle)
            return int(handle.evaluate("img => img.naturalWidth"))
        except Error:  # Chainlit re-rendered the transcript under us: find the picture again
            if attempt == ATTEMPTS - 1:
                raise
            page.wait_for_timeout(1000)
    raise AssertionError("unreachable")


def _seed_in_panel(page: Page) -> str:
    from playwright.sync_api import expect

    page.click("#chat-settings-open-modal")
    seed = page.locator("#seed")
    expect(seed).to_be_visible()
    value = seed.input_value()
    page.keyboard.press("Escape")
    return value


def test_a_reload_and_a_restart_keep_the_chat(browser: Browser, tmp_path: Path,  # noqa: F811
                                              tiny_dir: Path, photo: Image.Image) -> None:
    from playwright.sync_api import expect

    upload = tmp_path / "astronaut.png"
    photo.save(upload)
    shots = Screenshots(tmp_path)
    problems: list[str] = []
    state = tmp_path / "state"
    with serve_chat(state, tiny_dir, "--tiny") as url:
        page = open_chat(browser, url, problems)
        try:
            expect(page.get_by_text("Welcome to PromptArtisan")).to_be_visible()
            page.click("#chat-settings-open-modal")
            page.fill("#seed", SEED)
            page.get_by_role("button", name="Confirm").click()
            expect(page.get_by_text(f"seed {SEED},")).to_be_visible()

            page.set_input_files("#upload-button-input", str(upload))
            expect(page.locator("#message-composer img")).to_have_count(1)
            page.fill("#chat-input", REQUEST)
            page.click("#chat-submit")
            _wait_for_edit(page, 1)
            expect(page).to_have_url(re.compile(r"/thread/[0-9a-f-]+$"))
            thread = page.url.rsplit("/", 1)[1]

            # A reload: the transcript with its pictures, the chat's settings, its session.
            page.reload()
            expect(page.get_by_text(REQUEST).first).to_be_visible()
            assert _natural_width(page, 'img[alt$="-v0001.png"]') == photo.width
            assert _natural_width(page, 'img[alt="astronaut.png"]') == photo.width
            expect(page.get_by_text("at version 1. What next?")).to_be_visible()
            shots.take(page, "reloaded")
            assert _seed_in_panel(page) == SEED
            page.fill("#chat-input", "make it look like a painting")
            page.click("#chat-submit")
            _wait_for_edit(page, 1)  # the reload showed the earlier one as history
            expect(page.locator('img[alt$="-v0002.png"]').last).to_be_visible()
        except Exception:
            shots.take(page, "failure")
            raise
        finally:
            page.close()

    # The server stopped and started again: the thread is in the sidebar and resumes.
    with serve_chat(state, tiny_dir, "--tiny") as url:
        page = open_chat(browser, url, problems)
        try:
            expect(page.get_by_text("Welcome to PromptArtisan")).to_be_visible()
            page.locator(f'a[href$="/thread/{thread}"]').first.click()
            expect(page).to_have_url(re.compile(f"/thread/{thread}$"))
            assert _natural_width(page, 'img[alt$="-v0002.png"]') == photo.width
            assert _natural_width(page, 'img[alt$="-v0001.png"]') == photo.width
            expect(page.get_by_text("at version 2. What next?")).to_be_visible()
            assert _seed_in_panel(page) == SEED
            shots.take(page, "resumed", docs=True)
            page.get_by_role("button", name="Undo").last.click()
            expect(page.get_by_text("Undone: back to version 1")).to_be_visible()
        except Exception:
            shots.take(page, "failure")
            raise
        finally:
            page.close()
    assert not problems, f"the page loaded from outside the server or was refused: {problems}"


def test_an_edit_running_at_a_reload_is_kept(browser: Browser, tmp_path: Path,  # noqa: F811
                                             tiny_dir: Path, photo: Image.Image) -> None:
    """The page reloads while the model runs: the edit goes on, is saved with the chat, and a
    later reload shows it; the chat's place in the history moved with it."""
    from playwright.sync_api import expect

    upload = tmp_path / "astronaut.png"
    photo.save(upload)
    shots = Screenshots(tmp_path)
    with (serve_chat(tmp_path / "state", tiny_dir, "--tiny") as url,
          chat_page(browser, url, shots) as page):
        expect(page.get_by_text("Welcome to PromptArtisan")).to_be_visible()
        page.set_input_files("#upload-button-input", str(upload))
        expect(page.locator("#message-composer img")).to_have_count(1)
        page.fill("#chat-input", REQUEST)
        page.click("#chat-submit")
        expect(page.get_by_text("Editing")).to_be_visible()
        expect(page).to_have_url(re.compile(r"/thread/[0-9a-f-]+$"))
        result = page.locator('img[alt$="-v0001.png"]')
        reopened = page.get_by_text(re.compile(r"^Continuing session .* What next\?$"))
        for _ in range(TURN_RELOADS):  # the turn ends unseen by this page: look again
            page.reload()
            expect(reopened.first).to_be_visible()  # after the whole saved transcript
            if result.count():
                break
            page.wait_for_timeout(2000)
        assert _natural_width(page, 'img[alt$="-v0001.png"]') == photo.width
        expect(page.get_by_text("at version 1. What next?").last).to_be_visible()
        # The turn's own result message is in the transcript unless it was sent while the
        # page was away (Chainlit drops it then); the version above is there either way.
        assert page.get_by_text("Done in one pass").count() <= 1
        shots.take(page, "edit-kept")

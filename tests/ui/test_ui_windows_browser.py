"""One chat in two browser windows (two Playwright contexts), and a chat reloaded again and
again: `promptartisan chat --tiny` in Debian's Chromium. A window opened from the sidebar has
its own place in the history, a reloaded chat keeps every picture it had, and reloads add
nothing to the transcript."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from chat_server import serve_chat
from PIL import Image
from test_ui_browser import (  # noqa: F401 (a fixture)
    ANSWER,
    Screenshots,
    _send,
    browser,
    chat_page,
    two_photos,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

RELOADS = 3
CONTINUING = re.compile(r"^Continuing session .* What next\?$")
NOT_THIS_CHATS = "didn't open"


def _history(page: Page, session: str) -> str:
    return f'.pa-history[data-session="{session}"]'


def _session_of(page: Page) -> str:
    """The session of the chat's last history element."""
    strip = page.locator(".pa-history").last
    strip.wait_for()
    return str(strip.get_attribute("data-session"))


def test_windows_from_the_sidebar_keep_their_own_places_and_reloads_keep_every_picture(
        browser: Browser, tmp_path: Path, tiny_dir: Path,  # noqa: F811
        photo: Image.Image) -> None:
    """A edits photo 1 to version 2; B opens the same chat from the sidebar and undoes (2→1);
    A's Undo goes 2→1 too (its own place, not B's). A adds photo 2 and reloads three times:
    one "Continuing…" message and one history element per picture, and photo 1's history
    still answers."""
    from playwright.sync_api import expect

    first, second = two_photos(tmp_path, photo)
    shots = Screenshots(tmp_path)
    with (serve_chat(tmp_path / "state", tiny_dir, "--tiny") as url,
          chat_page(browser, url, shots) as a):
        expect(a.get_by_text("Welcome to PromptArtisan")).to_be_visible()
        _send(a, ANSWER, first)
        expect(a.get_by_text("Done in one pass")).to_have_count(1)
        _send(a, ANSWER)
        expect(a.get_by_text("(version 2)")).to_be_visible()
        photo1 = _session_of(a)
        expect(a).to_have_url(re.compile(r"/thread/[0-9a-f-]+$"))
        thread = a.url.rsplit("/", 1)[1]

        with chat_page(browser, url, shots) as b:  # a page of its own
            expect(b.get_by_text("Welcome to PromptArtisan")).to_be_visible()
            b.locator(f'a[href$="/thread/{thread}"]').first.click()
            expect(b.get_by_text("at version 2. What next?")).to_be_visible()
            b.locator(_history(b, photo1)).get_by_role("button", name="Undo").click()
            expect(b.get_by_text("Undone: back to version 1")).to_be_visible()
            shots.take(b, "window-b-from-the-sidebar")

            a.get_by_role("button", name="Undo").last.click()
            expect(a.get_by_text("Undone: back to version 1")).to_be_visible()  # A's own 2→1
            expect(a.get_by_text("Undone: back to version 0")).to_have_count(0)

            _send(a, ANSWER, second)  # photo 2, in the same chat
            expect(a.get_by_text("Done in one pass")).to_have_count(3)
            # Photo 2's history comes after its result: one history element per picture.
            expect(a.locator(".pa-history")).to_have_count(2)
            photo2 = _session_of(a)
            assert photo2 != photo1
            messages = None
            for _ in range(RELOADS):
                a.reload()
                expect(a.get_by_text(CONTINUING)).to_have_count(1)
                expect(a.locator(_history(a, photo2))).to_have_count(1)
                expect(a.locator(_history(a, photo1))).to_have_count(1)
                shown = a.locator(".step").count()
                assert messages in (None, shown), (messages, shown)  # a reload adds nothing
                messages = shown
            shots.take(a, "reloaded-three-times", docs=True)

            # Photo 1's history (the first picture) still answers after the reloads.
            a.locator(_history(a, photo1)).locator('[data-version="0"]').click()
            expect(a.get_by_text("Went to version 0 (from version 1)")).to_be_visible()
            expect(a.get_by_text(NOT_THIS_CHATS)).to_have_count(0)
            a.locator(_history(a, photo1)).get_by_role("button", name="Redo").click()
            expect(a.get_by_text("Redone: version 1")).to_be_visible()
            expect(a.get_by_text(NOT_THIS_CHATS)).to_have_count(0)
            shots.take(a, "first-picture-after-reloads")


def test_taking_back_one_edit_that_meets_a_kept_one_asks_first_and_says_so(
        browser: Browser, tmp_path: Path, tiny_dir: Path,  # noqa: F811
        photo: Image.Image) -> None:
    """The suit and the whole picture in one edit; "undo the suit but keep the painting": the
    painting covers the suit's area, so the chat asks first, and after "yes" says the
    painting is taken back there too (not "everything else is as it was"). A second window
    on the chat sees the answered question without its buttons."""
    from playwright.sync_api import expect
    from test_ui_resume_browser import _wait_for_edit

    upload = tmp_path / "astronaut.png"
    photo.save(upload)
    shots = Screenshots(tmp_path)
    with (serve_chat(tmp_path / "state", tiny_dir, "--tiny") as url,
          chat_page(browser, url, shots) as page):
        expect(page.get_by_text("Welcome to PromptArtisan")).to_be_visible()
        _send(page, "make the suit gold and make the whole picture look like a painting",
              upload)
        _wait_for_edit(page, 1)
        _send(page, "undo the suit but keep the painting")
        asked = page.get_by_text(re.compile(
            r"whole-picture edit in version 1 also changed part of that area.*anyway\?"))
        expect(asked).to_be_visible()
        expect(page.get_by_text("Took back")).to_have_count(0)  # nothing done yet
        shots.take(page, "forget-asks-first", docs=True)
        page.get_by_role("button", name="yes", exact=True).click()
        done = page.get_by_text(re.compile(r"^Took back .* Where they overlap, the "
                                           r"whole-picture edit in version 1 is taken "
                                           r"back too\."))
        expect(done).to_be_visible()
        expect(page.get_by_role("button", name="yes", exact=True)).to_have_count(0)
        shots.take(page, "forget-says-so")
        thread = page.url.rsplit("/", 1)[1]
        with chat_page(browser, url, shots) as other:
            other.locator(f'a[href$="/thread/{thread}"]').first.click()
            expect(other.get_by_text(asked.inner_text())).to_be_visible()
            expect(other.get_by_role("button", name="yes", exact=True)).to_have_count(0)

"""Pointing in a real browser: the selection canvas of `promptartisan chat --tiny` driven by
Playwright through Debian's Chromium (the set-up of tests/test_ui_browser.py). Screenshots land
in the test's folder, and in $PROMPTARTISAN_SCREENSHOTS when set (docs/screenshots/)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from chat_server import serve_chat
from PIL import Image
from test_ui_browser import (  # noqa: F401 (a fixture)
    PHONE,
    VIEWPORT,
    Screenshots,
    browser,
    chat_page,
)

from promptartisan.agent.sessions.store import Session
from promptartisan.ui.selection_view import SAVED_SELECTIONS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = pytest.mark.browser

THREE = "make 1 red, 2 gold and 3 a cheetah"
# Where the gestures go, as shares of the picture (the astronaut, 512×512): the flag, the
# rocket, and a box around the badge on the suit.
CLICKS = [(0.08, 0.2), (0.8, 0.3)]
BOX = ((0.25, 0.65), (0.45, 0.85))


def _upload_and_open_canvas(page: Page, upload: Path) -> Locator:
    """Attach the photo without a request, then open the canvas under it; ready to point."""
    from playwright.sync_api import expect

    expect(page.get_by_text("Welcome to PromptArtisan")).to_be_visible()
    page.set_input_files("#upload-button-input", str(upload))
    expect(page.locator("#message-composer img")).to_have_count(1)
    page.click("#chat-submit")
    expect(page.get_by_text("What should I change?")).to_be_visible()
    page.get_by_role("button", name="Select on the picture").last.click()
    canvas = page.locator('.pa-select[data-mode="select"]').last
    expect(canvas).to_be_visible()
    expect(canvas).to_have_attribute("data-preparing", "false")  # SAM has the picture
    return canvas


@contextmanager
def _canvas_chat(browser: Browser, folder: Path,  # noqa: F811 (the fixture, passed on)
                 tiny_dir: Path, photo: Image.Image) -> Iterator[tuple[Page, Locator, Screenshots]]:
    """A chat server on `folder / "state"` and a page on it, the photo attached and its canvas
    open; the screenshots go to `folder`."""
    upload = folder / "astronaut.png"
    photo.save(upload)
    shots = Screenshots(folder)
    with (serve_chat(folder / "state", tiny_dir, "--tiny") as url,
          chat_page(browser, url, shots) as page):
        yield page, _upload_and_open_canvas(page, upload), shots


def _point(page: Page, canvas: Locator, share: tuple[float, float]) -> tuple[float, float]:
    """Where `share` of the picture is on the screen, the picture scrolled into view first."""
    picture = canvas.locator(".pa-select-box")
    picture.evaluate("element => element.scrollIntoView({block: 'center'})")
    page.wait_for_timeout(200)
    area = picture.bounding_box()
    assert area is not None
    return area["x"] + share[0] * area["width"], area["y"] + share[1] * area["height"]


def _gesture_done(canvas: Locator, count: int) -> None:
    from playwright.sync_api import expect

    expect(canvas).to_have_attribute("data-count", str(count))
    expect(canvas).to_have_attribute("data-busy", "false")


def _shown_masks(canvas: Locator) -> dict[int, np.ndarray]:
    """Each overlay the canvas shows, as the mask of its opaque pixels."""
    masks = {}
    for overlay in canvas.locator("img.pa-select-mask").all():
        head, data = (overlay.get_attribute("src") or ",").split(",", 1)
        assert head == "data:image/png;base64", head
        with Image.open(io.BytesIO(base64.b64decode(data))) as picture:
            masks[int(overlay.get_attribute("data-number") or 0)] = \
                np.asarray(picture.getchannel("A")) > 0
    return masks


def test_two_clicks_and_a_box_make_one_edit_with_three_regions(
        browser, tmp_path: Path, tiny_dir: Path, photo: Image.Image) -> None:  # noqa: F811
    from playwright.sync_api import expect

    state = tmp_path / "state"
    with _canvas_chat(browser, tmp_path, tiny_dir, photo) as (page, canvas, shots):
        for count, share in enumerate(CLICKS, start=1):
            page.mouse.click(*_point(page, canvas, share))
            _gesture_done(canvas, count)
        start, end = (_point(page, canvas, corner) for corner in BOX)
        page.mouse.move(*start)
        page.mouse.down()
        page.mouse.move(*end, steps=8)
        page.mouse.up()
        _gesture_done(canvas, 3)

        # Three numbered, coloured overlays, one row (number, instruction field) each.
        expect(canvas.locator("img.pa-select-mask")).to_have_count(3)
        expect(canvas.locator(".pa-select-row")).to_have_count(3)
        badges = canvas.locator(".pa-select-box .pa-select-number")
        expect(badges).to_have_count(3)
        assert badges.all_inner_texts() == ["1", "2", "3"]
        colours = {badge.evaluate("e => getComputedStyle(e).backgroundColor")
                   for badge in badges.all()}
        assert len(colours) == 3, colours
        shown = _shown_masks(canvas)
        assert sorted(shown) == [1, 2, 3]
        assert all(mask.shape == (photo.height, photo.width) and mask.any()
                   for mask in shown.values())
        shots.take(page, "selection-canvas", docs=True, top=canvas)

        # One message refers to them by number: ONE engine call, three regions, the masks shown.
        page.fill("#chat-input", THREE)
        page.click("#chat-submit")
        expect(page.get_by_text("Done in one pass")).to_have_count(1)
        plan = page.locator('[data-step-type="tool"]', has_text="Plan").last
        expect(plan).to_contain_text("selection 1 → make it red")
        expect(plan).to_contain_text("selection 3 → make it a cheetah")
        sessions = Session.list(state / "sessions")
        assert len(sessions) == 1
        session = Session.open(sessions[0].id, state / "sessions")
        assert [v.id for v in session.versions()] == [0, 1], "more than one engine call"
        regions = session.regions(1)
        assert [r["target"] for r in regions] == ["selection 1", "selection 2", "selection 3"]
        for number, region in enumerate(regions, start=1):
            assert np.array_equal(session.mask(1, region["k"]), shown[number]), number
        shots.take(page, "selection-edit", docs=True, top=plan)

        # The canvas's selections are used: a click there says so, and changes nothing.
        canvas.scroll_into_view_if_needed()
        page.mouse.click(*_point(page, canvas, CLICKS[0]))
        expect(canvas.locator(".pa-select-message")).to_contain_text("already made version 1")

        page.get_by_role("button", name="Undo").last.click()
        expect(page.get_by_text("Undone: back to version 0")).to_be_visible()


def test_the_canvas_on_a_phone(browser, tmp_path: Path, tiny_dir: Path,  # noqa: F811
                               photo: Image.Image) -> None:
    """390 px wide: the canvas spans the column, a tap selects, the toolbar wraps, and the
    brush paints a second selection."""

    upload = tmp_path / "astronaut.png"
    photo.save(upload)
    shots = Screenshots(tmp_path)
    with (serve_chat(tmp_path / "state", tiny_dir, "--tiny") as url,
          chat_page(browser, url, shots, PHONE) as page):
        canvas = _upload_and_open_canvas(page, upload)
        box = canvas.locator(".pa-select-box").bounding_box()
        assert box is not None and box["width"] >= 0.75 * PHONE["width"], box
        assert canvas.bounding_box()["width"] <= PHONE["width"]
        canvas.scroll_into_view_if_needed()
        page.mouse.click(*_point(page, canvas, CLICKS[0]))
        _gesture_done(canvas, 1)
        canvas.get_by_role("button", name="Brush").click()
        start, end = _point(page, canvas, (0.3, 0.9)), _point(page, canvas, (0.7, 0.9))
        page.mouse.move(*start)
        page.mouse.down()
        page.mouse.move(*end, steps=8)
        page.mouse.up()
        _gesture_done(canvas, 2)
        painted = _shown_masks(canvas)[2]
        assert painted[int(0.9 * photo.height), int(0.5 * photo.width)]
        canvas.get_by_role("button", name="Grow selection 2").click()
        _gesture_done(canvas, 2)
        assert _shown_masks(canvas)[2].sum() > painted.sum()
        shots.take(page, "selection-phone", docs=True, top=canvas)


# Scroll the chat so that a button sits in the row of Chainlit's scroll-down button (16 px
# above the scroller's bottom, 36 px high); then where a click at the button's middle goes.
BEHIND_SCROLL_BUTTON = """button => {
    let scroller = button.parentElement;
    while (!(['auto', 'scroll'].includes(getComputedStyle(scroller).overflowY)
             && scroller.scrollHeight > scroller.clientHeight)) scroller = scroller.parentElement;
    const s = scroller.getBoundingClientRect(), b = button.getBoundingClientRect();
    scroller.scrollTop += b.top + b.height / 2 - (s.bottom - 34); }"""
WHERE_CLICKS_GO = """button => {
    const row = document.querySelector('.relative.flex-grow.overflow-y-auto > .absolute.bottom-4');
    if (!row) return null;
    const r = row.getBoundingClientRect(), b = button.getBoundingClientRect();
    const x = b.x + b.width / 2, y = b.y + b.height / 2;
    return { x, y, behind: r.top <= y && y <= r.bottom,
             hit: button.contains(document.elementFromPoint(x, y)) }; }"""


def _saved_steps(state: Path) -> dict[int, list[tuple[str, list[list[float]]]]]:
    """Each selection's gestures as the chat saved them in the session's folder."""
    session = Session.open(Session.list(state / "sessions")[0].id, state / "sessions")
    saved = json.loads((session.folder / SAVED_SELECTIONS).read_text())
    return {s["number"]: [(step["kind"], step["points"]) for step in s["steps"]]
            for s in saved["selections"]}


def test_the_canvas_from_the_keyboard(browser, tmp_path: Path, tiny_dir: Path,  # noqa: F811
                                      photo: Image.Image) -> None:
    """Tab to the picture: a cursor in its middle; the arrows move it 2.5 % of a side a press;
    Enter selects where it is, Shift+Enter takes that point out; no key sends a message."""
    from playwright.sync_api import expect

    state = tmp_path / "state"
    with _canvas_chat(browser, tmp_path, tiny_dir, photo) as (page, canvas, shots):
        sent = page.locator('[data-step-type="user_message"]')
        messages = sent.count()
        assert messages >= 1  # the upload's
        canvas.get_by_role("button", name="New selection").focus()
        page.keyboard.press("Tab")
        cursor = canvas.locator(".pa-select-cursor")
        expect(cursor).to_be_visible()
        middle = [photo.width / 2, photo.height / 2]
        assert [float(cursor.get_attribute(a) or "nan") for a in ("data-x", "data-y")] == middle
        page.keyboard.press("Enter")
        _gesture_done(canvas, 1)
        assert _saved_steps(state) == {1: [("include", [middle])]}

        for key in ("ArrowRight",) * 4 + ("ArrowDown",) * 2 + ("ArrowLeft",):
            page.keyboard.press(key)
        moved = [middle[0] + 3 * 0.025 * photo.width, middle[1] + 2 * 0.025 * photo.height]
        assert [float(cursor.get_attribute(a) or "nan") for a in ("data-x", "data-y")] == \
            pytest.approx(moved)
        page.keyboard.press("Enter")  # "New selection" is on: a second selection
        _gesture_done(canvas, 2)
        shots.take(page, "selection-keyboard", docs=True, top=canvas)
        page.keyboard.press("Shift+Enter")  # takes the point out of the one under it
        expect(canvas).to_have_attribute("data-busy", "false")
        steps = _saved_steps(state)
        assert len(steps) == 2 and steps[1][0] == ("include", [middle])
        assert steps[2][0][0] == "include" and steps[2][0][1][0] == pytest.approx(moved)
        excluded = [step for gestures in steps.values() for step in gestures
                    if step[0] == "exclude"]
        assert len(excluded) == 1 and excluded[0][1][0] == pytest.approx(moved), steps
        page.keyboard.press("ArrowUp")
        expect(canvas).to_have_attribute("data-count", "2")
        assert sent.count() == messages, "a key on the canvas sent a chat message"

        # Chainlit's scroll-down button takes no click meant for a button in its row.
        grow = canvas.get_by_role("button", name="Grow selection 1")
        grow.evaluate(BEHIND_SCROLL_BUTTON)
        page.wait_for_timeout(500)
        place = grow.evaluate(WHERE_CLICKS_GO)
        assert place is not None, "no scroll-down button: the chat is at its end"
        assert place["behind"], place
        assert place["hit"], "the scroll-down button's row took the click"
        before = _shown_masks(canvas)[1].sum()
        page.mouse.click(place["x"], place["y"])
        for _ in range(40):  # the grown overlay's round trip
            if _shown_masks(canvas)[1].sum() > before:
                break
            page.wait_for_timeout(250)
        assert _shown_masks(canvas)[1].sum() > before, "the click didn't reach Grow"

        # In a short window the picture is narrower than the chat: a click beside it is said.
        page.set_viewport_size({"width": VIEWPORT["width"], "height": 700})
        stage = canvas.locator(".pa-select-stage")
        stage.evaluate("element => element.scrollIntoView({block: 'center'})")
        page.wait_for_timeout(300)
        area, picture = stage.bounding_box(), canvas.locator(".pa-select-box").bounding_box()
        assert area is not None and picture is not None
        assert area["x"] + area["width"] - (picture["x"] + picture["width"]) > 40, (area, picture)
        page.mouse.click(area["x"] + area["width"] - 20, picture["y"] + picture["height"] / 2)
        expect(canvas.locator(".pa-select-message")).to_contain_text(
            "That click was beside the picture")
        expect(canvas).to_have_attribute("data-count", "2")


def test_a_click_on_a_numbered_box_answers_which_one(browser, tmp_path: Path,  # noqa: F811
                                                     tiny_dir: Path, photo: Image.Image) -> None:
    """The tiny GroundingDINO finds several faces on the astronaut: the question shows them as
    numbered boxes, and a click on a number chooses that one."""
    from playwright.sync_api import expect

    upload = tmp_path / "astronaut.png"
    photo.save(upload)
    shots = Screenshots(tmp_path)
    state = tmp_path / "state"
    with (serve_chat(state, tiny_dir, "--tiny",
                     env_extra={"PROMPTARTISAN_GROUNDING_BACKEND": "grounded-sam"}) as url,
          chat_page(browser, url, shots) as page):
        expect(page.get_by_text("Welcome to PromptArtisan")).to_be_visible()
        page.set_input_files("#upload-button-input", str(upload))
        expect(page.locator("#message-composer img")).to_have_count(1)
        page.fill("#chat-input", "make the face blue")
        page.click("#chat-submit")
        expect(page.get_by_text("Which one should I change?")).to_be_visible()
        choose = page.locator('.pa-select[data-mode="choose"]').last
        numbers = choose.locator(".pa-select-pick")
        expect(numbers.first).to_be_visible()
        count = numbers.count()
        assert count >= 2, count
        assert numbers.all_inner_texts() == [str(n) for n in range(1, count + 1)]
        shots.take(page, "selection-which", docs=True, top=choose)
        # A click on the picture beside every box says so, and answers nothing.
        spot = choose.locator(".pa-select-box img").evaluate(
            """picture => { const r = picture.getBoundingClientRect();
                for (let i = 1; i < 20; i++) for (let j = 1; j < 20; j++) {
                  const x = r.x + (i * r.width) / 20, y = r.y + (j * r.height) / 20;
                  if (document.elementFromPoint(x, y) === picture) return [x, y]; }
                return null; }""")
        assert spot is not None, "the boxes cover the whole picture"
        page.mouse.click(*spot)
        expect(choose.locator(".pa-select-message")).to_contain_text(
            "That spot is in none of the numbered boxes")
        expect(page.get_by_text("Your answer:")).to_have_count(0)
        # The number on top where it sits (boxes may overlap; numbers stay above them).
        pick = next(n for n in range(count, 0, -1) if numbers.nth(n - 1).evaluate(
            """e => { const r = e.getBoundingClientRect();
                      return document.elementFromPoint(r.x + r.width / 2,
                                                       r.y + r.height / 2) === e; }"""))
        label = numbers.nth(pick - 1).get_attribute("aria-label") or ""
        choice = label.split(": ", 1)[1]
        numbers.nth(pick - 1).click()
        expect(page.get_by_text(f"Your answer: {choice}")).to_be_visible()
        expect(page.get_by_text("Done in one pass")).to_have_count(1)
        session = Session.open(Session.list(state / "sessions")[0].id, state / "sessions")
        region = session.regions(1)[0]
        assert region["source"] == "choice"
        # Answered: its boxes no longer answer and its buttons are gone, in this window and
        # in a second one opened on the chat from the sidebar (the saved transcript).
        _expect_closed(page)
        shots.take(page, "selection-which-answered", docs=True, top=choose)
        thread = page.url.rsplit("/", 1)[1]
        with chat_page(browser, page.url.split("/thread/")[0], shots) as other:
            other.locator(f'a[href$="/thread/{thread}"]').first.click()
            expect(other.get_by_text("What next?")).to_be_visible()
            _expect_closed(other)
        assert len(session.versions()) == 2  # nothing more was made


def _expect_closed(page: Page) -> None:
    """The page's "which one?" question is closed: boxes disabled, no answer buttons."""
    from playwright.sync_api import expect

    choose = page.locator('.pa-select[data-mode="choose"]').last
    expect(choose).to_have_attribute("data-closed", "true")
    expect(choose.get_by_text("Answered: these boxes no longer choose.")).to_be_visible()
    for pick in choose.locator(".pa-select-pick, .pa-select-candidate").all():
        expect(pick).to_be_disabled()
    expect(page.get_by_role("button", name="all of them")).to_have_count(0)
    choose.locator(".pa-select-pick").first.click(force=True)  # a click does nothing
    page.wait_for_timeout(2000)  # an answer would echo within this
    expect(page.get_by_text("Your answer:")).to_have_count(1)  # the one answer, no second


def test_a_selection_the_message_does_not_name_takes_nothing_from_one_it_names(
        browser, tmp_path: Path, tiny_dir: Path, photo: Image.Image) -> None:  # noqa: F811
    """Two brush strokes crossing: selection 2 lies over 1 where they cross. "make 1 red"
    edits all of 1, the crossing too, and the reply says 2 was left out."""
    from playwright.sync_api import expect

    state = tmp_path / "state"
    with _canvas_chat(browser, tmp_path, tiny_dir, photo) as (page, canvas, shots):
        canvas.get_by_role("button", name="Brush").click()
        for count, (start, end) in enumerate([((0.1, 0.5), (0.6, 0.5)),
                                              ((0.35, 0.2), (0.35, 0.8))], start=1):
            page.mouse.move(*_point(page, canvas, start))
            page.mouse.down()
            page.mouse.move(*_point(page, canvas, end), steps=8)
            page.mouse.up()
            _gesture_done(canvas, count)
        shown = _shown_masks(canvas)
        crossing = (int(0.5 * photo.height), int(0.35 * photo.width))
        assert shown[2][crossing] and not shown[1][crossing]  # on the canvas, 2 is on top
        page.fill("#chat-input", "make 1 red")
        page.click("#chat-submit")
        reply = page.get_by_text("Done in one pass")
        expect(reply).to_have_count(1)
        expect(reply).to_contain_text("(selection 1)")
        expect(reply).to_contain_text("Left out selection 2, which this request didn't name")
        session = Session.open(Session.list(state / "sessions")[0].id, state / "sessions")
        (region,) = session.regions(1)
        edited = session.mask(1, region["k"])
        assert edited[crossing], "selection 2, not named, cut the crossing out of selection 1"
        assert np.array_equal(edited | shown[1], edited)
        shots.take(page, "selection-named-only", docs=True, top=reply)

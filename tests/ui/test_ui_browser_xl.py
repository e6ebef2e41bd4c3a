"""The chat in a real browser with the tiny SDXL InstructPix2Pix model as its engine: the engine
setting names the model's folder (as a user points it at sdxl-instructpix2pix-768), without
--tiny, and the edit the page shows is the one the SDXL pipeline made, by the session database
the server wrote."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from chat_server import serve_chat
from engine_families import tiny_folder
from PIL import Image
from test_ui_browser import ANSWER, Screenshots, browser, chat_page  # noqa: F401 (a fixture)

from promptartisan.agent.sessions.files import DB_NAME
from promptartisan.tiny import write_tiny_models

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser


def test_chat_edits_with_the_tiny_sdxl_engine(browser: Browser, tmp_path: Path,  # noqa: F811
                                              tiny_dir: Path, photo: Image.Image) -> None:
    from playwright.sync_api import expect

    upload = tmp_path / "astronaut.png"
    photo.save(upload)
    shots = Screenshots(tmp_path)
    settings = {"PROMPTARTISAN_INSTRUCT_PIX2PIX": str(tiny_folder(tiny_dir, "sdxl")),
                "PROMPTARTISAN_CLIPSEG": str(write_tiny_models(tiny_dir, ["clipseg"]) / "clipseg"),
                "PROMPTARTISAN_GROUNDING_BACKEND": "clipseg", "PROMPTARTISAN_PLANNER": "rules"}
    state = tmp_path / "state"
    with (serve_chat(state, tiny_dir, env_extra=settings) as url,
          chat_page(browser, url, shots) as page):
        expect(page.get_by_text("Welcome to PromptArtisan")).to_be_visible()
        expect(page.get_by_text("promptartisan models download")).to_have_count(0)
        page.set_input_files("#upload-button-input", str(upload))
        expect(page.locator("#message-composer img")).to_have_count(1)
        page.fill("#chat-input", ANSWER)
        page.click("#chat-submit")
        expect(page.get_by_text("Done in one pass")).to_have_count(1)
        result = page.locator('img[alt$="-v0001.png"]')
        expect(result).to_be_visible()
        assert result.evaluate("img => img.naturalWidth") == photo.width
        expect(page.get_by_role("button", name="Undo").last).to_be_visible()
        shots.take(page, "edit-sdxl")

    databases = list((state / "sessions").glob(f"*/{DB_NAME}"))
    assert len(databases) == 1, databases
    with sqlite3.connect(f"file:{databases[0]}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT provenance FROM versions WHERE id = 1").fetchone()
    assert row is not None, "the server stored no version 1"
    provenance = json.loads(row[0])
    assert provenance["models"]["engine_class"] == "PromptArtisanXLPipeline", provenance
    assert provenance["models"]["engine"] == settings["PROMPTARTISAN_INSTRUCT_PIX2PIX"]
    assert provenance["models"]["tiny"] is False

"""`promptartisan edit --point … --box …` with --tiny: clicks and boxes segmented by SAM, each
one region of the same single engine call; bad coordinates are clear messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import box_mask
from PIL import Image

from promptartisan.agent.editor import Editor
from promptartisan.settings import Settings
from promptartisan.tools.selection import Gesture, SelectionBook, Selector
from promptartisan.ui.cli import main


@pytest.fixture(autouse=True)
def tiny_env(monkeypatch: pytest.MonkeyPatch, tiny_dir: Path, tmp_path: Path) -> None:
    monkeypatch.setenv("PROMPTARTISAN_TINY_DIR", str(tiny_dir))
    monkeypatch.setenv("PROMPTARTISAN_WORKING_SIZE", "64")
    monkeypatch.setenv("PROMPTARTISAN_DEVICE", "cpu")
    monkeypatch.delenv("PROMPTARTISAN_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[list[Any]]:
    """The regions of every engine call the CLI makes."""
    calls: list[list[Any]] = []
    render = Editor.render

    def counting(self: Editor, source: Any, regions: list[Any], *args: Any,
                 **kwargs: Any) -> Any:
        calls.append(regions)
        return render(self, source, regions, *args, **kwargs)

    monkeypatch.setattr(Editor, "render", counting)
    return calls


@pytest.mark.slow
def test_points_boxes_and_masks_are_regions_of_one_pass(
        tmp_path: Path, tiny_dir: Path, small_photo: Image.Image,
        renders: list[list[Any]]) -> None:
    small_photo.save(tmp_path / "photo.png")
    Image.fromarray(box_mask(small_photo.size, (50, 30, 60, 44)).astype(np.uint8) * 255).save(
        tmp_path / "corner.png")
    out = tmp_path / "out"
    code = main(["edit", str(tmp_path / "photo.png"),
                 "--point", "10,10;20,12;-30,20", "make it red",
                 "--box", "30,5,60,40", "make it gold",
                 "--region", str(tmp_path / "corner.png"), "make it blue",
                 "--out", str(out), "--tiny", "--steps", "2", "--seed", "3"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["regions"] == [
        {"point": "10,10;20,12;-30,20", "prompt": "make it red"},
        {"box": "30,5,60,40", "prompt": "make it gold"},
        {"mask": str(tmp_path / "corner.png"), "prompt": "make it blue"}]
    (entry,) = report["images"]
    assert [(r["prompt"], r["order"], r["source"]) for r in entry["regions"]] == [
        ("make it red", 0, "user"), ("make it gold", 1, "user"), ("make it blue", 2, "user")]
    (regions,) = renders  # one engine call with the three regions
    assert len(regions) == 3

    # The written masks are SAM's for the same clicks and box (the chat's selections).
    settings = Settings(tiny=True, tiny_dir=tiny_dir, device="cpu")
    book = SelectionBook(small_photo, 0, Selector.shared(settings).segment, max_regions=2)
    red = book.gesture(Gesture(kind="include", points=[(10, 10)]))
    book.gesture(Gesture(kind="include", points=[(20, 12)]), red)
    book.gesture(Gesture(kind="exclude", points=[(30, 20)]), red)
    gold = book.gesture(Gesture(kind="box", points=[(30, 5), (60, 40)]))
    for region, number in zip(entry["regions"], (red, gold), strict=False):
        written = np.asarray(Image.open(region["mask"])) > 127
        assert np.array_equal(written, book.mask(number))


def test_a_click_outside_one_image_fails_that_image_only(
        tmp_path: Path, small_photo: Image.Image, capsys: pytest.CaptureFixture) -> None:
    small_photo.save(tmp_path / "small.png")
    small_photo.resize((128, 96)).save(tmp_path / "big.png")
    out = tmp_path / "out"
    code = main(["edit", str(tmp_path / "small.png"), str(tmp_path / "big.png"),
                 "--point", "100,50", "make it red", "--out", str(out), "--tiny", "--steps", "1"])
    assert code == 1
    small, big = json.loads((out / "report.json").read_text())["images"]
    assert small["status"] == "error" and big["status"] == "edited"
    assert "click at (100, 50) is outside the 64×48 picture" in small["message"]
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(("arguments", "message"), [
    (["--point", "12,abc", "make it red"], "'abc'|is not a list of numbers"),
    (["--point", "12", "make it red"], "doesn't fit here"),
    (["--point", "1,2,3,4", "make it red"], "doesn't fit here"),
    (["--point", "nan,4", "make it red"], "not a list of numbers"),
    (["--box", "10,10", "make it red"], "the box comes first"),
    (["--box", "10,10,20,20;-5,5;30,30,40,40", "make it red"], "doesn't fit here"),
    (["--box", "10,10,10,30", "make it red"], None),  # zero area: reported per image
    (["--point", "1,1", "a", "--point", "2,2", "b", "--point", "3,3", "c"],
     "3 regions: one pass takes at most 2"),
    (["--request", "make it red", "--point", "1,1", "make it blue"], "not both"),
    ([], "give --request TEXT, or regions"),
])
def test_bad_points_and_boxes_are_one_line_errors(
        tmp_path: Path, small_photo: Image.Image, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch, arguments: list[str], message: str | None) -> None:
    monkeypatch.setenv("PROMPTARTISAN_MAX_REGIONS", "2")
    small_photo.save(tmp_path / "photo.png")
    code = main(["edit", str(tmp_path / "photo.png"), *arguments, "--out",
                 str(tmp_path / "out"), "--tiny", "--steps", "1"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if message is None:
        assert code == 1
        (entry,) = json.loads((tmp_path / "out" / "report.json").read_text())["images"]
        assert "box has no area" in entry["message"]
    else:
        import re

        assert code == 2 and re.search(message, err), err
        assert len(err.strip().splitlines()) == 1
        assert not (tmp_path / "out").exists()

"""`promptartisan edit` with --tiny: a request on several images (one bad), and mask regions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import box_mask
from PIL import Image
from scipy import ndimage

from promptartisan.ui.cli import main


@pytest.fixture(autouse=True)
def tiny_env(monkeypatch: pytest.MonkeyPatch, tiny_dir: Path, tmp_path: Path) -> None:
    monkeypatch.setenv("PROMPTARTISAN_TINY_DIR", str(tiny_dir))
    monkeypatch.setenv("PROMPTARTISAN_WORKING_SIZE", "64")
    monkeypatch.setenv("PROMPTARTISAN_DEVICE", "cpu")
    monkeypatch.chdir(tmp_path)  # no promptartisan.toml of the developer's


def test_a_request_on_many_images_reports_the_bad_one_and_edits_the_rest(
        tmp_path: Path, small_photo: Image.Image) -> None:
    small_photo.save(tmp_path / "a.png")
    small_photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "b.jpg")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    code = main(["edit", str(tmp_path / "a.png"), str(tmp_path / "broken.png"),
                 str(tmp_path / "b.jpg"), "--request", "make it look like winter",
                 "--out", str(out), "--tiny", "--steps", "2", "--seed", "5"])
    assert code == 1  # not every image was edited
    report = json.loads((out / "report.json").read_text())
    assert report["plan"]["action"] == "edit"
    assert [entry["status"] for entry in report["images"]] == ["edited", "error", "edited"]
    assert "broken.png" in report["images"][1]["message"]
    for entry in (report["images"][0], report["images"][2]):
        assert Image.open(entry["output"]).size == small_photo.size
        assert entry["seed"] == 5 and entry["regions"][0]["source"] == "whole-image"


def test_regions_from_masks_skip_planning_and_keep_the_rest_of_the_image(
        tmp_path: Path, small_photo: Image.Image) -> None:
    small_photo.save(tmp_path / "photo.png")
    left, right = box_mask(small_photo.size, (2, 2, 20, 20)), box_mask(small_photo.size,
                                                                       (44, 26, 62, 46))
    Image.fromarray(left.astype(np.uint8) * 255).save(tmp_path / "left.png")
    Image.fromarray(right.astype(np.uint8) * 255).resize((128, 96)).save(tmp_path / "right.png")
    out = tmp_path / "out"
    code = main(["edit", str(tmp_path / "photo.png"), "--region", str(tmp_path / "left.png"),
                 "make it gold", "--region", str(tmp_path / "right.png"), "make it blue",
                 "--out", str(out), "--tiny", "--steps", "2"])
    assert code == 0
    (entry,) = json.loads((out / "report.json").read_text())["images"]
    assert [r["prompt"] for r in entry["regions"]] == ["make it gold", "make it blue"]
    assert np.array_equal(np.asarray(Image.open(entry["regions"][1]["mask"])) > 127, right)
    edited = np.asarray(Image.open(entry["output"]))
    away = ~ndimage.binary_dilation(left | right, iterations=entry["parameters"]["feather_px"] + 1,
                                    structure=np.ones((3, 3), bool))
    assert np.array_equal(edited[away], np.asarray(small_photo)[away])


def test_a_request_that_is_not_an_edit_stops_before_any_image(
        tmp_path: Path, small_photo: Image.Image, capsys: pytest.CaptureFixture[str]) -> None:
    small_photo.save(tmp_path / "a.png")
    code = main(["edit", str(tmp_path / "a.png"), "--request", "change something",
                 "--out", str(tmp_path / "out"), "--tiny"])
    assert code == 2 and "not an edit" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

"""`promptartisan edit` with --tiny: a request on several images (one bad), and mask regions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

import numpy as np
import pytest
from conftest import box_mask
from PIL import Image
from scipy import ndimage

from promptartisan.tools.atomic import write_atomically
from promptartisan.ui.cli import main


@pytest.fixture(autouse=True)
def tiny_env(monkeypatch: pytest.MonkeyPatch, tiny_dir: Path, tmp_path: Path) -> None:
    monkeypatch.setenv("PROMPTARTISAN_TINY_DIR", str(tiny_dir))
    monkeypatch.setenv("PROMPTARTISAN_WORKING_SIZE", "64")
    monkeypatch.setenv("PROMPTARTISAN_DEVICE", "cpu")
    monkeypatch.delenv("PROMPTARTISAN_CONFIG", raising=False)
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


def _edit_args(*images: Path, out: Path) -> list[str]:
    return ["edit", *map(str, images), "--request", "make it look like winter", "--out", str(out),
            "--tiny", "--steps", "2", "--seed", "1"]


def test_an_input_that_is_also_an_output_stops_the_run_before_any_work(
        tmp_path: Path, small_photo: Image.Image, capsys: pytest.CaptureFixture[str]) -> None:
    # The case: a.png's edit would be written to ow/a.edited.png, the second input.
    folder = tmp_path / "ow"
    folder.mkdir()
    small_photo.save(folder / "a.png")
    small_photo.transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(folder / "a.edited.png")
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    for force in ([], ["--force"]):  # --force replaces earlier outputs, never an input
        code = main(_edit_args(folder / "a.png", folder / "a.edited.png", out=folder) + force)
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
        assert f"{folder / 'a.edited.png'} is an input of this run" in err
        assert f"the edit of {folder / 'a.png'}" in err
        assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


def test_a_region_mask_is_an_input_too(tmp_path: Path, small_photo: Image.Image,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    small_photo.save(tmp_path / "photo.png")
    mask = tmp_path / "photo.mask-0.png"
    Image.fromarray(box_mask(small_photo.size, (2, 2, 20, 20)).astype(np.uint8) * 255).save(mask)
    before = mask.read_bytes()
    code = main(["edit", str(tmp_path / "photo.png"), "--region", str(mask), "make it gold",
                 "--out", str(tmp_path), "--tiny", "--steps", "2", "--force"])
    assert code == 2 and f"{mask} is an input of this run" in capsys.readouterr().err
    assert mask.read_bytes() == before and not (tmp_path / "photo.edited.png").exists()


def test_an_earlier_runs_files_are_replaced_only_with_force(
        tmp_path: Path, small_photo: Image.Image, capsys: pytest.CaptureFixture[str]) -> None:
    small_photo.save(tmp_path / "a.png")
    out = tmp_path / "out"
    assert main(_edit_args(tmp_path / "a.png", out=out)) == 0
    first = {path.name: path.read_bytes() for path in out.iterdir()}
    assert sorted(first) == ["a.edited.png", "a.mask-0.png", "report.json"]

    code = main(_edit_args(tmp_path / "a.png", out=out) + ["--seed", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "exists already (and 2 more)" in err and "--force" in err
    assert {path.name: path.read_bytes() for path in out.iterdir()} == first

    assert main(_edit_args(tmp_path / "a.png", out=out) + ["--seed", "2", "--force"]) == 0
    again = {path.name: path.read_bytes() for path in out.iterdir()}
    assert sorted(again) == sorted(first)  # no temporaries left behind
    assert again["a.edited.png"] != first["a.edited.png"]  # another seed, replaced
    assert json.loads(again["report.json"])["images"][0]["seed"] == 2


def test_inputs_with_the_same_name_get_distinct_outputs(
        tmp_path: Path, small_photo: Image.Image) -> None:
    # Distinct even ignoring case, for file systems that do (macOS, Windows).
    for folder, name in (("x", "a.png"), ("y", "a.png"), ("z", "A.png")):
        (tmp_path / folder).mkdir()
        small_photo.save(tmp_path / folder / name)
    out = tmp_path / "out"
    assert main(_edit_args(tmp_path / "x" / "a.png", tmp_path / "y" / "a.png",
                           tmp_path / "z" / "A.png", out=out)) == 0
    report = json.loads((out / "report.json").read_text())
    assert [Path(entry["output"]).name for entry in report["images"]] == [
        "a.edited.png", "a-2.edited.png", "A-3.edited.png"]


def test_a_failed_write_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "a.edited.png"
    target.write_bytes(b"earlier")

    def half_then_fail(handle: IO[bytes]) -> None:
        handle.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_atomically(target, half_then_fail)
    assert target.read_bytes() == b"earlier" and list(tmp_path.iterdir()) == [target]
    write_atomically(target, lambda handle: handle.write(b"whole"))
    assert target.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [target]

"""The one mask reader: every kind of mask the CLI, the chat and the agent take, read by the same
rules (alpha is the mask where there is one; 0/1, 0–255 and 16-bit values; one aspect rule)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from promptartisan.engine.regions import RegionError, mask_array
from promptartisan.tools.mask_io import MaskError, read_mask, resize_mask

SIZE = (40, 30)  # width, height


def left_half() -> np.ndarray:
    mask = np.zeros((30, 40), dtype=bool)
    mask[:, :20] = True
    return mask


def png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def test_transparent_keep_area_of_an_rgba_mask_is_not_edited() -> None:
    """White everywhere (as an eraser leaves colour behind), opaque only on the left half."""
    rgba = np.full((30, 40, 4), 255, dtype=np.uint8)
    rgba[:, 20:, 3] = 0
    picture = Image.fromarray(rgba, mode="RGBA")
    for source in (picture, png(picture), rgba):
        mask = read_mask(source, SIZE)
        assert np.array_equal(mask, left_half()), type(source)


def test_an_rgba_mask_with_no_transparency_is_read_by_its_grey_levels() -> None:
    rgba = np.zeros((30, 40, 4), dtype=np.uint8)
    rgba[:, :20, :3] = 255
    rgba[..., 3] = 255
    assert np.array_equal(read_mask(Image.fromarray(rgba, mode="RGBA"), SIZE), left_half())
    assert np.array_equal(read_mask(rgba, SIZE), left_half())


def test_grey_and_gray_alpha_masks() -> None:
    grey = Image.fromarray(left_half().astype(np.uint8) * 255, mode="L")
    assert np.array_equal(read_mask(grey, SIZE), left_half())
    la = Image.merge("LA", (Image.new("L", (40, 30), 255), grey))
    assert np.array_equal(read_mask(png(la), SIZE), left_half())


def test_one_bit_masks(tmp_path: Path) -> None:
    path = tmp_path / "mask.png"
    Image.fromarray(left_half()).convert("1").save(path)
    assert Image.open(path).mode == "1"
    assert np.array_equal(read_mask(path, SIZE), left_half())


def test_zero_one_integer_arrays_are_not_empty() -> None:
    for dtype in (np.uint8, np.int64, np.int32):
        mask = read_mask(left_half().astype(dtype), SIZE)
        assert np.array_equal(mask, left_half()), dtype
    zero_one_png = png(Image.fromarray(left_half().astype(np.uint8), mode="L"))
    assert np.array_equal(read_mask(zero_one_png, SIZE), left_half())


def test_zero_to_255_and_fractions_threshold_at_half() -> None:
    values = np.array([[0, 127, 128, 255]], dtype=np.uint8)
    assert read_mask(values).tolist() == [[False, False, True, True]]
    fractions = np.array([[0.0, 0.49, 0.5, 1.0]], dtype=np.float32)
    assert read_mask(fractions).tolist() == [[False, False, True, True]]


def test_sixteen_bit_masks_by_their_type() -> None:
    values = np.array([[0, 255, 32767, 32768, 65535]], dtype=np.uint16)
    expected = [[False, False, False, True, True]]
    assert read_mask(values).tolist() == expected
    picture = Image.open(io.BytesIO(png(Image.fromarray(values))))
    assert picture.mode.startswith("I")
    assert read_mask(picture).tolist() == expected


def test_paths_as_text_and_as_path_objects(tmp_path: Path) -> None:
    path = tmp_path / "mask.png"
    Image.fromarray(left_half().astype(np.uint8) * 255).save(path)
    assert np.array_equal(read_mask(str(path), SIZE), left_half())
    assert np.array_equal(read_mask(path, SIZE), left_half())


def test_torch_tensors_of_any_layout() -> None:
    tensor = torch.from_numpy(left_half())
    for source in (tensor, tensor.float()[None], tensor.half()[None, None], tensor.to(torch.uint8)):
        assert np.array_equal(read_mask(source, SIZE), left_half())


def test_a_mask_at_another_resolution_is_resized() -> None:
    big = np.kron(left_half(), np.ones((4, 4), dtype=bool))
    assert np.array_equal(read_mask(big, SIZE), left_half())
    assert np.array_equal(resize_mask(left_half(), (160, 120)), big)


def test_another_aspect_ratio_is_refused_with_both_sizes(tmp_path: Path) -> None:
    """The reader and the engine draw the line at the same place and name both sizes."""
    wide = np.ones((30, 60), dtype=bool)
    with pytest.raises(MaskError, match=r"60×30.*40×30"):
        read_mask(wide, SIZE)
    with pytest.raises(RegionError, match=r"60×30.*40×30"):
        mask_array(wide, SIZE)
    near = np.ones((30, 41), dtype=bool)  # within the engine's tolerance: both accept it
    assert read_mask(near, SIZE).all() and mask_array(near, SIZE).all()


def test_bad_masks_say_why() -> None:
    cases = [(np.array([[0, 300]], dtype=np.int32), "reaches 300"),
             (np.array([[-1, 1]]), "negative"),
             (np.array([[0.0, 2.0]]), r"\[0, 1\]"),
             (np.array([[np.nan]]), r"\[0, 1\]"),
             (np.zeros((2, 3, 5)), "shape"),
             (np.array([["a"]]), "numbers"),
             (12, "not int"),
             (b"not a picture", "can't be read")]
    for source, message in cases:
        with pytest.raises(MaskError, match=message):
            read_mask(source, SIZE)
    with pytest.raises(MaskError, match="no such file"):
        read_mask(Path("/nonexistent/mask.png"), SIZE)


@pytest.mark.slow
def test_the_cli_reads_region_masks_by_their_alpha(
        tmp_path: Path, tiny_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`edit --region` with an RGBA mask edits only the opaque half; a mask for a picture of
    another shape is reported with both sizes."""
    from promptartisan.ui.cli import main

    monkeypatch.setenv("PROMPTARTISAN_TINY_DIR", str(tiny_dir))
    monkeypatch.delenv("PROMPTARTISAN_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save("photo.png")
    rgba = np.full((48, 64, 4), 255, dtype=np.uint8)
    rgba[:, 32:, 3] = 0
    Image.fromarray(rgba, mode="RGBA").save("keep-right.png")
    Image.new("L", (100, 20), 255).save("other.png")

    def edit(mask: str, out: str) -> dict:
        code = main(["edit", "photo.png", "--region", mask, "make it gold", "--out", out,
                     "--tiny", "--device", "cpu", "--steps", "2", "--seed", "1"])
        report = json.loads((tmp_path / out / "report.json").read_text())
        return {"code": code, **report["images"][0]}

    done = edit("keep-right.png", "out")
    assert done["code"] == 0, done
    written = np.asarray(Image.open(done["regions"][0]["mask"])) > 0
    assert written[:, :32].all() and not written[:, 32:].any()
    refused = edit("other.png", "out2")
    assert refused["code"] == 1 and refused["status"] == "error"
    assert "100×20" in refused["message"] and "64×48" in refused["message"]


def test_the_editor_reads_a_mask_file_by_its_alpha_and_refuses_another_shape(
        tmp_path: Path) -> None:
    """`Editor.turn(mask="file.png")` (it said UFuncTypeError): the region is the opaque half;
    a mask of another aspect ratio ends the turn with both sizes named, nothing stored."""
    from test_agent_fakes import PaintingEngine, ScriptedPlanner, edit

    from promptartisan.agent.editor import Editor
    from promptartisan.agent.sessions.store import Session
    from promptartisan.settings import Settings

    settings = Settings(session_dir=tmp_path / "sessions", device="cpu", steps=2,
                        working_size=64, seed=1)
    plan = edit(("the left", "make it gold"))
    editor = Editor(settings, ScriptedPlanner({"make it gold": plan}), None, PaintingEngine())
    session = Session.create(settings.session_dir, Image.new("RGB", (40, 30), (90, 90, 90)))
    rgba = np.full((30, 40, 4), 255, dtype=np.uint8)
    rgba[:, 20:, 3] = 0
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "mask.png")

    result = editor.turn(session, "make it gold", mask=str(tmp_path / "mask.png"))
    assert result.kind == "edit", result.message
    assert np.array_equal(result.masks[0], left_half())

    Image.new("L", (90, 30), 255).save(tmp_path / "wide.png")
    refused = editor.turn(session, "make it gold", mask=tmp_path / "wide.png")
    assert refused.kind == "error" and "90×30" in refused.message and "40×30" in refused.message
    assert session.current == result.version_id


def test_the_engine_reads_a_regions_mask_by_the_same_rules() -> None:
    """A `Region` handed to the pipeline directly gets what the CLI and the agent get: alpha
    where a picture has one, 0/1 integers as edit/keep (they read as empty before)."""
    rgba = np.full((30, 40, 4), 255, dtype=np.uint8)
    rgba[:, 20:, 3] = 0
    sources = [Image.fromarray(rgba, mode="RGBA"), rgba, left_half().astype(np.uint8),
               left_half().astype(np.int64), torch.from_numpy(left_half().astype(np.uint8)),
               Image.fromarray(left_half().astype(np.uint8) * 255), left_half() * 0.9]
    for source in sources:
        assert np.array_equal(mask_array(source, SIZE), read_mask(source, SIZE))
        assert np.array_equal(mask_array(source, SIZE), left_half()), type(source)
    with pytest.raises(RegionError, match="region 2: a mask of fractions"):
        mask_array(np.full((30, 40), 1.5), SIZE, name="region 2")

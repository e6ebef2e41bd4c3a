"""`promptartisan` ends a failed command with one line on standard error and a non-zero exit
status, never a traceback: bad settings, unusable paths, a missing GPU, a broken session
database, a failing model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from promptartisan.ui.cli import main


@pytest.fixture(autouse=True)
def tiny_env(monkeypatch: pytest.MonkeyPatch, tiny_dir: Path, tmp_path: Path) -> None:
    monkeypatch.setenv("PROMPTARTISAN_TINY_DIR", str(tiny_dir))
    monkeypatch.setenv("PROMPTARTISAN_WORKING_SIZE", "64")
    monkeypatch.delenv("PROMPTARTISAN_CONFIG", raising=False)
    monkeypatch.delenv("PROMPTARTISAN_DEVICE", raising=False)
    monkeypatch.chdir(tmp_path)  # no promptartisan.toml of the developer's


@pytest.fixture
def photo_file(tmp_path: Path, small_photo: Image.Image) -> Path:
    small_photo.save(tmp_path / "photo.png")
    return tmp_path / "photo.png"


def _fails_with(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 2) -> str:
    """Run the command; it must exit with `code` and end with one line saying why (model
    loading may draw progress bars before it)."""
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_edit_out_that_is_a_file(tmp_path: Path, photo_file: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    out.write_bytes(b"not a folder")
    line = _fails_with(capsys, ["edit", str(photo_file), "--request", "make it red",
                                "--out", str(out), "--tiny", "--device", "cpu"])
    assert line == f"promptartisan edit: --out {out} is a file; give a folder"
    assert out.read_bytes() == b"not a folder"


@pytest.mark.slow
def test_out_paths_under_a_file(tmp_path: Path, photo_file: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_bytes(b"")
    line = _fails_with(capsys, ["edit", str(photo_file), "--request", "make it red",
                                "--out", str(tmp_path / "file" / "out"), "--tiny"])
    assert line == (f"promptartisan edit: --out {tmp_path / 'file' / 'out'}: "
                    f"{tmp_path / 'file'} is a file, not a folder")
    # ground writes its overlay after the work: the system's words, with the path.
    line = _fails_with(capsys, ["ground", str(photo_file), "the sky", "--tiny", "--device",
                                "cpu", "--out", str(tmp_path / "file" / "overlay.png")])
    assert line == f"promptartisan ground: {tmp_path / 'file' / 'overlay.png'}: Not a directory"


def test_ground_checks_its_out_before_any_work(tmp_path: Path, photo_file: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    before = photo_file.read_bytes()
    line = _fails_with(capsys, ["ground", str(photo_file), "the sky", "--tiny", "--out",
                                str(photo_file.parent / "." / photo_file.name)])
    assert line.startswith("promptartisan ground: ") and "is the input image" in line
    assert photo_file.read_bytes() == before
    line = _fails_with(capsys, ["ground", str(photo_file), "the sky", "--out", str(tmp_path)])
    assert line == (f"promptartisan ground: --out {tmp_path} is a folder; give a file name "
                    f"such as overlay.png")
    line = _fails_with(capsys, ["ground", str(photo_file), "the sky", "--out", "overlay.svg"])
    assert line == ("promptartisan ground: --out overlay.svg: give an image file name, such "
                    "as overlay.png")


def test_a_gpu_device_that_is_not_there(photo_file: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # any machine is GPU-less
    line = _fails_with(capsys, ["ground", str(photo_file), "the sky", "--tiny",
                                "--device", "cuda"])
    assert line.startswith("promptartisan ground: device (from command line): cuda is not "
                           "available here")
    monkeypatch.setenv("PROMPTARTISAN_DEVICE", "cuda")
    line = _fails_with(capsys, ["plan", "make the sky red"])
    assert "device (from PROMPTARTISAN_DEVICE): cuda is not available" in line


def test_a_settings_file_that_is_not_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.toml"
    line = _fails_with(capsys, ["plan", "--config", str(missing), "make the sky red"])
    assert line == (f"promptartisan plan: settings file {missing} (from --config) "
                    f"does not exist")
    monkeypatch.setenv("PROMPTARTISAN_CONFIG", str(missing))
    line = _fails_with(capsys, ["plan", "make the sky red"])
    assert line == (f"promptartisan plan: settings file {missing} (from PROMPTARTISAN_CONFIG) "
                    f"does not exist")
    monkeypatch.delenv("PROMPTARTISAN_CONFIG")
    assert main(["plan", "make the sky red"]) == 0  # no ./promptartisan.toml: defaults


def test_a_seed_out_of_range(photo_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _fails_with(capsys, ["edit", str(photo_file), "--request", "make it red", "--out",
                                "out", "--tiny", "--seed", str(2**70)])
    assert line.startswith("promptartisan edit: invalid settings: seed (from command line): ")
    assert not Path("out").exists()


def test_an_unreadable_input_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _fails_with(capsys, ["plan", "--jsonl", str(tmp_path / "cases.jsonl")])
    assert line == f"promptartisan plan: {tmp_path / 'cases.jsonl'}: No such file or directory"
    (tmp_path / "cases.jsonl").write_bytes(b"\x89PNG\r\n")
    line = _fails_with(capsys, ["plan", "--jsonl", str(tmp_path / "cases.jsonl")])
    assert line == (f"promptartisan plan: {tmp_path / 'cases.jsonl'}: not UTF-8 text "
                    f"(invalid start byte)")


def test_a_broken_session_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "sessions" / "s1").mkdir(parents=True)
    (tmp_path / "sessions" / "s1" / "session.sqlite").write_bytes(b"not a database" * 100)
    line = _fails_with(capsys, ["sessions", "show", "s1", "--dir", str(tmp_path / "sessions")])
    assert line.startswith("promptartisan sessions show: ")


def test_a_runtime_failure_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    def failing_planner(spec: str, settings: object) -> None:
        raise RuntimeError("CUDA error: an illegal memory access was encountered\n"
                           "CUDA kernel errors might be asynchronously reported …")

    monkeypatch.setattr("promptartisan.agent.planning.planners.load_planner", failing_planner)
    line = _fails_with(capsys, ["plan", "make the sky red"])
    assert line == ("promptartisan plan: CUDA error: an illegal memory access was "
                    "encountered")

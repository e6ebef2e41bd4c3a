"""`promptartisan batch` on a local Ray cluster (two CPUs, tiny models): the same bits as the
in-process run, the failures named, and a rerun that skips what is done."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import batch_fakes
import pytest
import ray
from batch_fakes import REQUEST, red_box_editor, write_photos
from PIL import Image

from promptartisan.agent.batch.ray_runner import RayRunner, code_fingerprint, stage_code
from promptartisan.agent.batch.run import run_batch
from promptartisan.settings import Settings


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """One local cluster for the module: starting one takes tens of seconds here."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning",
             log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(batch_fakes)  # the workers can't import tests/
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def settings(tiny_dir: Path) -> Settings:
    return Settings(tiny=True, tiny_dir=tiny_dir, device="cpu", dtype="float32", steps=2,
                    working_size=64, planner="rules")


@pytest.mark.slow
def test_two_ray_workers_give_the_in_process_bits_and_name_the_failures(
        cluster: None, settings: Settings, tmp_path: Path, photo: Image.Image) -> None:
    inputs = tmp_path / "in"
    write_photos(inputs, photo, 6)
    photo.crop((0, 0, 256, 192)).resize((64, 48)).save(inputs / "no-box.png")
    (inputs / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    runner = RayRunner(workers=2, batch_size=2, make_editor=red_box_editor)
    on_ray = run_batch(settings, REQUEST, [str(inputs)], str(tmp_path / "ray"), runner=runner,
                       make_editor=red_box_editor, threads=1, progress=False)
    local = run_batch(settings, REQUEST, [str(inputs)], str(tmp_path / "local"),
                      make_editor=red_box_editor, threads=1, progress=False)

    for summary in (on_ray, local):
        assert (summary["total"], summary["done"], summary["failed"]) == (8, 6, 2)
        reasons = {Path(f["input"]).name: f["reason"] for f in summary["failures"]}
        assert reasons.keys() == {"broken.jpg", "no-box.png"}
        assert "InvalidImageError" in reasons["broken.jpg"]
        assert "couldn't find \"red box\"" in reasons["no-box.png"]
    pictures = sorted(p.name for p in (tmp_path / "local").glob("*.png"))
    assert len(pictures) == 12  # 6 results, 6 masks
    assert sorted(p.name for p in (tmp_path / "ray").glob("*.png")) == pictures
    for name in pictures:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    lines = [json.loads(line) for line in (tmp_path / "ray" / "report.jsonl").read_text()
             .splitlines()]
    assert sorted(line["status"] for line in lines) == ["done"] * 6 + ["failed"] * 2

    again = run_batch(settings, REQUEST, [str(inputs)], str(tmp_path / "ray"), runner=runner,
                      make_editor=red_box_editor, threads=1, progress=False)
    assert (again["skipped"], again["done"], again["failed"]) == (6, 0, 2)


def test_a_node_that_runs_another_version_is_refused_before_any_image(
        cluster: None, settings: Settings, tmp_path: Path, photo: Image.Image,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import promptartisan

    write_photos(tmp_path / "in", photo, 1)
    monkeypatch.setattr(promptartisan, "__version__", "0.0.9")  # this driver only
    with pytest.raises(ValueError, match=r"runs promptartisan 0\.1\.0 \(\w+\), this driver "
                                         r"0\.0\.9 .*install the same version on every node"):
        run_batch(settings, REQUEST, [str(tmp_path / "in")], str(tmp_path / "out"),
                  runner=RayRunner(workers=1, make_editor=red_box_editor),
                  make_editor=red_box_editor, progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["batch.lock"]


def test_the_code_shipped_to_a_cluster_is_this_driver_s(tmp_path: Path) -> None:
    folder = stage_code(tmp_path)
    there = subprocess.run(
        [sys.executable, "-c", "import promptartisan\n"
         "from promptartisan.agent.batch.ray_runner import code_fingerprint\n"
         "print(promptartisan.__file__); print(code_fingerprint())"],
        env={**os.environ, "PYTHONPATH": str(tmp_path)}, cwd="/", capture_output=True,
        text=True, check=True).stdout.splitlines()
    assert there == [str(folder / "__init__.py"), code_fingerprint()]
    with open(folder / "agent" / "batch.py", "a", encoding="utf-8") as handle:
        handle.write("# one line more\n")
    changed = subprocess.run(
        [sys.executable, "-c", "from promptartisan.agent.batch.ray_runner import code_fingerprint\n"
         "print(code_fingerprint())"], env={**os.environ, "PYTHONPATH": str(tmp_path)},
        cwd="/", capture_output=True, text=True, check=True).stdout.strip()
    assert changed.startswith("0.1.0 (") and changed != code_fingerprint()

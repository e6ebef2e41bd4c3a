"""Where a batch reads and writes: URIs of every shape, one run per output folder, the
temporaries only a dead writer leaves, and a report written in shards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from batch_fakes import REQUEST, red_box_editor, write_photos
from PIL import Image
from pyarrow.fs import LocalFileSystem, SubTreeFileSystem

from promptartisan.agent.batch import report as batch_report
from promptartisan.agent.batch.files import FolderInUse, Location, location
from promptartisan.agent.batch.report import Report, keep_cut_runs
from promptartisan.agent.batch.run import run_batch
from promptartisan.settings import Settings


@pytest.fixture
def settings(tiny_dir: Path) -> Settings:
    return Settings(tiny=True, tiny_dir=tiny_dir, device="cpu", dtype="float32", steps=2,
                    working_size=64, planner="rules")


def test_file_uris_at_the_top_and_with_a_slash_name_the_local_file() -> None:
    for uri, path in (("file:///tmp/", "/tmp"), ("file:///tmp", "/tmp"), ("file:///", "/"),
                      ("file:///tmp/a%20b/c%20d.png", "/tmp/a b/c d.png")):
        where = location(uri)
        assert where.identity == ("local", os.path.realpath(path)), uri
    assert location("file:///tmp/").child("x.png").uri == "file:///tmp/x.png"
    assert location("file:///tmp").contains(location("/tmp/a/b.png"))
    assert not location("file:///tmp/a").contains(location("/tmp/ab.png"))
    with pytest.raises(ValueError, match="names an absolute path"):
        location("file://photos/x.png")


def test_a_file_uri_folder_with_the_output_inside_it_is_read_once(
        settings: Settings, tmp_path: Path, photo: Image.Image) -> None:
    for n, out in enumerate((f"file://{tmp_path}/in0/out/", str(tmp_path / "in1" / "out"))):
        write_photos(tmp_path / f"in{n}", photo, 3)
        first = run_batch(settings, REQUEST, [f"file://{tmp_path}/in{n}"], out,
                          make_editor=red_box_editor, progress=False)
        again = run_batch(settings, REQUEST, [f"file://{tmp_path}/in{n}/"], out,
                          make_editor=red_box_editor, progress=False)
        assert (first["total"], first["done"]) == (3, 3), out
        assert (again["total"], again["skipped"], again["done"], again["left_out"]) == (
            3, 3, 0, 6), out  # 3 results and 3 masks of the first run left out


def test_a_second_run_on_a_folder_in_use_is_refused_and_keeps_the_live_temporaries(
        settings: Settings, tmp_path: Path, photo: Image.Image) -> None:
    write_photos(tmp_path / "in", photo, 1)
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from promptartisan.agent.batch.files import location\n"
         f"with location({str(out)!r}).lock():\n print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        live = out / ".photo-0.abc.edited.png.123-0badc0de.tmp"
        live.write_bytes(b"being written")
        with pytest.raises(FolderInUse, match=f"pid {holder.pid} on .*choose another --out"):
            run_batch(settings, REQUEST, [str(tmp_path / "in")], str(out),
                      make_editor=red_box_editor, progress=False)
        assert live.exists()
    finally:
        holder.kill()
        holder.wait()
    summary = run_batch(settings, REQUEST, [str(tmp_path / "in")], str(out),
                        make_editor=red_box_editor, progress=False)
    assert summary["done"] == 1 and not live.exists()  # its writer is gone now


def test_temporaries_where_no_lock_can_be_held_go_only_once_their_writer_is_surely_gone(
        tmp_path: Path) -> None:
    fs = SubTreeFileSystem(str(tmp_path), LocalFileSystem())  # neither local nor a store
    folder = Location("subtree://out", "out", fs)
    (tmp_path / "out").mkdir()
    old, fresh = (tmp_path / "out" / f".a.png.1-0000000{n}.tmp" for n in (1, 2))
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    with folder.lock() as locked:
        assert locked is False
        folder.sweep_temporaries(locked)
    assert not old.exists() and fresh.exists()


def test_the_report_is_written_in_shards_of_new_entries_and_a_cut_run_s_are_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_report, "WRITE_EVERY_S", -1.0)  # a shard per entry
    folder = location(str(tmp_path))
    cut = Report(folder, REQUEST, {}, 3, progress=False)
    for n in range(3):
        cut.add({"input": f"in/{n}.png", "key": str(n), "status": "done", "seconds": 1.0})
    shards = sorted((tmp_path / "report.parts").iterdir())
    assert [len(p.read_text().splitlines()) for p in shards] == [1, 1, 1]  # no rewrites
    # the run is cut off here: no merge; the next run keeps what it said
    (kept,) = keep_cut_runs(folder)
    assert [json.loads(line)["key"] for line in Path(kept).read_text().splitlines()] == [
        "0", "1", "2"]
    assert not list((tmp_path / "report.parts").iterdir())

    with Report(folder, REQUEST, {}, 2, progress=False) as report:
        report.add({"input": "a.png", "key": "a", "status": "done", "seconds": 2.0,
                    "load_seconds": 5.0})
        report.add({"input": "b.png", "key": "b", "status": "failed", "reason": "no",
                    "seconds": 1.0})
    lines = [json.loads(line) for line in (tmp_path / "report.jsonl").read_text().splitlines()]
    assert [line["key"] for line in lines] == ["a", "b"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["done"], summary["failed"], summary["seconds_per_image"],
            summary["model_loads"], summary["model_load_seconds"]) == (1, 1, 2.0, 1, 5.0)
    assert not list((tmp_path / "report.parts").iterdir())

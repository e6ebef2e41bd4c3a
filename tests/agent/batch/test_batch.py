"""`promptartisan batch` in this process: inputs of every kind, per-image failures, provenance
that remakes a result bit for bit, a vague request refused before any image is read, resume
after the driver is killed, and outputs that never replace inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from batch_fakes import REQUEST, red_box_editor, write_photos
from PIL import Image

from promptartisan.agent.batch import files as batch_files
from promptartisan.agent.batch import run as batch
from promptartisan.agent.batch.inputs import expand, read_list
from promptartisan.agent.batch.run import items_of, plan_request, run_batch
from promptartisan.agent.planning.rules_planner import RulesPlanner
from promptartisan.agent.sessions.store import RegionRecord
from promptartisan.settings import Settings
from promptartisan.ui.cli import main


@pytest.fixture
def settings(tiny_dir: Path) -> Settings:
    return Settings(tiny=True, tiny_dir=tiny_dir, device="cpu", dtype="float32", steps=2,
                    working_size=64, planner="rules")


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tiny_dir: Path, tmp_path: Path) -> None:
    monkeypatch.setenv("PROMPTARTISAN_TINY_DIR", str(tiny_dir))
    monkeypatch.setenv("PROMPTARTISAN_WORKING_SIZE", "64")
    monkeypatch.setenv("PROMPTARTISAN_DEVICE", "cpu")
    monkeypatch.setenv("PROMPTARTISAN_PLANNER", "rules")
    monkeypatch.delenv("PROMPTARTISAN_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def test_each_image_is_edited_or_failed_with_its_reason_and_its_record_remakes_it(
        settings: Settings, tmp_path: Path, photo: Image.Image) -> None:
    good = write_photos(tmp_path / "in", photo, 2)
    photo.crop((0, 0, 256, 192)).resize((64, 48)).save(tmp_path / "in" / "no-box.png")
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    summary = run_batch(settings, REQUEST, [str(tmp_path / "in")], f"file://{out}",
                        make_editor=red_box_editor, progress=False)
    assert (summary["total"], summary["done"], summary["failed"]) == (4, 2, 2)
    reasons = {Path(f["input"]).name: f["reason"] for f in summary["failures"]}
    assert f"InvalidImageError: {tmp_path}/in/broken.png: not an image" in reasons["broken.png"]
    assert "couldn't find" in reasons["no-box.png"]
    assert (summary["model_loads"], summary["seconds_per_image"] > 0) == (1, True)
    lines = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
    assert summary["seconds_per_image"] == round(
        sum(line["seconds"] for line in lines if line["status"] == "done") / 2, 3)
    assert ["load_seconds" in line for line in lines].count(True) == 1  # cached: maybe 0 s
    assert sorted(line["status"] for line in lines) == ["done", "done", "failed", "failed"]
    assert json.loads((out / "summary.json").read_text())["done"] == 2

    editor = red_box_editor(settings)
    for line in (line for line in lines if line["status"] == "done"):
        record = json.loads(Path(line["record"].removeprefix("file://")).read_text())
        source = Image.open(record["input"]).convert("RGB")
        assert Path(record["input"]) in good and record["regions"][0]["source"] == "grounding"
        regions = [RegionRecord(
            mask=np.asarray(Image.open(r["mask"].removeprefix("file://"))) > 127,
            prompt=r["prompt"], target=r["target"], group=r["group"], order=r["order"])
            for r in record["regions"]]
        red = np.all(np.asarray(source) == (255, 0, 0), axis=-1)
        assert regions[0].mask[red].all() and regions[0].mask.mean() < 0.3  # the red box
        again = editor.render(source, regions, seed=record["seed"])
        edited = Image.open(record["output"].removeprefix("file://"))
        assert np.array_equal(np.asarray(again.image), np.asarray(edited))
        assert record["parameters"]["seed"] == record["seed"]


def test_a_vague_request_is_refused_before_any_input_is_looked_at(
        cli_env: None, tmp_path: Path, photo: Image.Image, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    write_photos(tmp_path / "in", photo, 2)
    touched: list[str] = []
    monkeypatch.setattr(batch_files.Location, "read_bytes",
                        lambda self: touched.append(self.uri) or b"")
    monkeypatch.setattr(batch, "expand", lambda *args, **kwargs: touched.append("listed"))
    code = main(["batch", str(tmp_path / "in"), "--request", "change something",
                 "--out", str(tmp_path / "out"), "--tiny", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "a batch can't give" in err and "What would you like" in err
    assert touched == [] and not (tmp_path / "out").exists()


def test_inputs_come_from_folders_globs_lists_and_file_uris_each_once(
        tmp_path: Path, photo: Image.Image) -> None:
    first = write_photos(tmp_path / "in" / "a", photo, 2)
    second = write_photos(tmp_path / "in" / "b" / "deeper", photo, 1)
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    out = tmp_path / "in" / "out"
    write_photos(out, photo, 1)  # an earlier run's output folder inside the input folder
    (tmp_path / "list.txt").write_text(f"# photos\n\nin/a/{first[0].name}\n{second[0]}\n")
    (tmp_path / "list.csv").write_text(f"id,path\n1,in/a/{first[1].name}\n")
    assert read_list(str(tmp_path / "list.csv")) == [str(tmp_path / "in/a" / first[1].name)]

    folder = [s.uri for s in expand([str(tmp_path / "in")], skip=batch_files.location(str(out)))]
    assert folder == [str(p) for p in [*first, *second]]
    listed = [s.uri for s in expand([], [str(tmp_path / "list.txt"), str(tmp_path / "list.csv")])]
    assert listed == [str(first[0]), str(second[0]), str(first[1])]
    globbed = [s.uri for s in expand([str(tmp_path / "in" / "**" / "photo-0.png"),
                                      str(first[0])])]
    assert globbed == [str(first[0]), str(second[0]), str(out / "photo-0.png")]
    uris = expand([f"file://{tmp_path}/in/a", f"file://{tmp_path}/in/b/deeper/photo-0.png"])
    assert [s.uri for s in uris] == [f"file://{p}" for p in [*first, *second]]
    assert uris[0].size == first[0].stat().st_size and uris[0].name == "photo-0"
    with pytest.raises(ValueError, match="no such file or folder"):
        expand([str(tmp_path / "missing")])


def test_an_output_never_replaces_an_input(settings: Settings, tmp_path: Path,
                                           photo: Image.Image) -> None:
    (source,) = write_photos(tmp_path / "in", photo, 1)
    plan = plan_request(RulesPlanner(), REQUEST)
    (item,) = items_of(expand([str(source)]), plan, settings.model_copy(update={"seed": 0}))
    out = tmp_path / "out"
    out.mkdir()
    victim = out / f"{item.stem}.edited.png"
    victim.write_bytes(source.read_bytes())  # an input that has the name of an output
    summary = out / "summary.json"
    summary.write_bytes(source.read_bytes())  # ... and one the report would write over
    (out / "report.jsonl").write_text(f"{source}\n")  # a list the report would write over
    for inputs, lists in (([str(source), str(victim)], []), ([str(summary)], []),
                          ([f"file://{out}/./summary.json"], []),
                          ([], [str(out / "report.jsonl")])):
        with pytest.raises(ValueError, match="inside the output folder|report would be written"):
            run_batch(settings, REQUEST, inputs, str(out), lists, progress=False,
                      make_editor=red_box_editor)
    assert victim.read_bytes() == source.read_bytes() == summary.read_bytes()
    assert (out / "report.jsonl").read_text() == f"{source}\n"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [victim.name, "summary.json", "report.jsonl"])


@pytest.mark.slow
def test_a_rerun_after_the_driver_is_killed_does_only_the_rest(
        cli_env: None, tmp_path: Path, photo: Image.Image, tiny_dir: Path) -> None:
    write_photos(tmp_path / "in", photo, 10)
    (tmp_path / "in" / "broken.png").write_bytes(b"not a picture")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "promptartisan.ui.cli", "batch", "in", "--request",
               "make the dog red", "--out", "out", "--tiny", "--steps", "2", "--quiet"]
    driver = subprocess.Popen(command, cwd=tmp_path, env=os.environ.copy(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while len(list(out.glob("photo-*.json"))) < 3 and driver.poll() is None:
        assert time.monotonic() < deadline, "the batch never got going"
        time.sleep(0.02)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert driver.returncode == -signal.SIGKILL, driver.stderr.read().decode()
    records = {p.name: p.stat().st_mtime_ns for p in out.glob("photo-*.json")}
    finished = {name.split(".")[0] for name in records}
    assert 3 <= len(finished) < 10

    code = main(["batch", "in", "--request", "make the dog red", "--out", "out", "--tiny",
                 "--steps", "2", "--quiet"])
    assert code == 1  # the broken file
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["skipped"], summary["done"], summary["failed"]) == (
        len(finished), 10 - len(finished), 1)
    assert summary["skipped"] + summary["done"] + summary["failed"] == summary["total"] == 11
    lines = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
    redone = {Path(line["input"]).stem for line in lines if line["status"] == "done"}
    assert redone.isdisjoint(finished) and len(redone | finished) == 10
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("photo-*.json")
            if p.name in records} == records  # what was done stays as it was
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries left
    for record in out.glob("photo-*.json"):
        made = json.loads(record.read_text())
        for path in (made["output"], *(r["mask"] for r in made["regions"])):
            with Image.open(path) as image:
                image.load()  # a whole PNG
    assert len(list(out.glob("*.edited.png"))) == 10


def test_settings_that_shape_a_result_change_its_key_and_seed(settings: Settings,
                                                              tmp_path: Path,
                                                              photo: Image.Image) -> None:
    sources = expand([str(p) for p in write_photos(tmp_path / "in", photo, 2)])
    plan = plan_request(RulesPlanner(), REQUEST)
    base = items_of(sources, plan, settings)
    assert items_of(sources, plan, settings) == base
    assert base[0].seed != base[1].seed
    for changed in ({"steps": 3}, {"seed": 9}, {"working_size": 128}):
        other = items_of(sources, plan, settings.model_copy(update=changed))
        assert {i.key for i in other}.isdisjoint(i.key for i in base), changed
    assert items_of(sources, plan, settings.model_copy(
        update={"planner_read_timeout": 5.0}))[0].key == base[0].key
    noted = plan.model_copy(update={"note": "the language model timed out; rules planned"})
    assert items_of(sources, noted, settings) == base


def test_a_result_without_its_record_or_a_leftover_temporary_is_not_done(
        settings: Settings, tmp_path: Path, photo: Image.Image) -> None:
    write_photos(tmp_path / "in", photo, 3)
    out = tmp_path / "out"
    first = run_batch(settings, REQUEST, [str(tmp_path / "in")], str(out),
                      make_editor=red_box_editor, progress=False)
    assert first["done"] == 3
    (cut,) = list(out.glob("photo-1.*.json"))
    cut.unlink()  # a run cut off between the result and its record
    leftover = out / f".{cut.stem}.edited.png.123-0badc0de.tmp"
    leftover.write_bytes(b"half a picture")
    again = run_batch(settings, REQUEST, [str(tmp_path / "in")], str(out),
                      make_editor=red_box_editor, progress=False)
    assert (again["skipped"], again["done"], again["failed"]) == (2, 1, 0)
    lines = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
    assert [Path(line["input"]).name for line in lines if line["status"] == "done"] == [
        "photo-1.png"]
    assert cut.exists() and not leftover.exists()


@pytest.mark.parametrize(("flags", "says"), [
    (["--ray", "photos", "x.png"], "not a Ray address"),
    (["x.png", "--workers", "0"], "--workers must be at least 1"),
    ([], "no inputs"),
])
def test_bad_flags_are_refused_with_a_line_that_says_why(
        cli_env: None, flags: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["batch", *flags, "--request", REQUEST, "--out", "out", "--tiny"])
    assert code == 2 and says in capsys.readouterr().err


def test_without_ray_workers_run_in_this_process_and_say_so(
        cli_env: None, tmp_path: Path, photo: Image.Image, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from promptartisan.agent.batch import ray_runner as batch_ray

    monkeypatch.setattr(batch_ray, "ray_available", lambda: False)
    monkeypatch.setattr(batch_ray.RayRunner, "__call__", lambda *args: pytest.fail("Ray ran"))
    write_photos(tmp_path / "in", photo, 1)
    code = main(["batch", "in", "--request", "make the dog red", "--out", "out", "--tiny",
                 "--steps", "2", "--workers", "2", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0 and "Ray is not installed: running in this process" in captured.err
    assert "1 done, 0 skipped" in captured.out


def test_an_output_folder_around_the_inputs_is_named_and_relative_paths_made_absolute(
        cli_env: None, tmp_path: Path, photo: Image.Image,
        capsys: pytest.CaptureFixture[str]) -> None:
    write_photos(tmp_path / "photos", photo, 1)
    code = main(["batch", "photos", "--request", "make the dog red", "--out", ".", "--tiny"])
    err = capsys.readouterr().err
    assert code == 2 and "photos: no images outside the output folder" in err
    assert "its 1 are inside it" in err and not (tmp_path / "report.jsonl").exists()

    code = main(["batch", "photos", "--request", "make the dog red", "--out", "photos/out",
                 "--tiny", "--steps", "2", "--quiet"])
    assert code == 0
    (line,) = [json.loads(line) for line in
               (tmp_path / "photos/out/report.jsonl").read_text().splitlines()]
    assert line["input"] == str(tmp_path / "photos/photo-0.png")
    assert Path(line["output"]).parent == tmp_path / "photos/out"
    code = main(["batch", "photos", "--request", "make the dog red", "--out", "photos/out",
                 "--tiny", "--steps", "2"])
    captured = capsys.readouterr()
    assert code == 0 and "0 done, 1 skipped" in captured.out
    assert "2 image(s) inside the output folder" in captured.err  # its result and mask


def test_a_rewording_that_plans_the_same_edit_keeps_every_key(
        settings: Settings, tmp_path: Path, photo: Image.Image) -> None:
    sources = expand([str(p) for p in write_photos(tmp_path / "in", photo, 2)])
    planner = RulesPlanner()
    plans = [plan_request(planner, text) for text in
             (REQUEST, f"{REQUEST}!!", f"  {REQUEST.capitalize()}.", "turn the red box green")]
    keys = [[item.key for item in items_of(sources, plan, settings)] for plan in plans]
    assert plans[0].instructions == plans[1].instructions == plans[2].instructions
    assert keys[0] == keys[1] == keys[2] and set(keys[3]).isdisjoint(keys[0])
    run_batch(settings, REQUEST, [str(tmp_path / "in")], str(tmp_path / "out"),
              make_editor=red_box_editor, progress=False)
    again = run_batch(settings, f"{REQUEST}!!", [str(tmp_path / "in")], str(tmp_path / "out"),
                      make_editor=red_box_editor, progress=False)
    assert (again["skipped"], again["done"]) == (2, 0)

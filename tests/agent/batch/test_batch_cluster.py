"""`promptartisan batch` on real Ray clusters: a private one that no stale cluster can divert
and that leaves no process behind when its driver is killed, and a cluster of two nodes in
two working folders driven from a third (tiny models, one CPU a node)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import ray
from batch_fakes import write_photos
from PIL import Image
from ray.cluster_utils import Cluster
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from promptartisan.agent.batch.ray_runner import RayRunner
from promptartisan.agent.batch.run import run_batch
from promptartisan.settings import Settings

REQUEST = "make the dog red"


def processes_with(marker: str) -> list[psutil.Process]:
    """This user's processes whose environment holds `marker` (Ray's processes inherit the
    driver's environment, whatever their command line)."""
    found = []
    for process in psutil.process_iter():
        try:
            if marker in "\0".join(f"{k}={v}" for k, v in process.environ().items()):
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def left_after(marker: str, seconds: float) -> list[psutil.Process]:
    """The processes with `marker` still there after up to `seconds` (Ray's agents notice
    their raylet is gone within a few)."""
    deadline = time.monotonic() + seconds
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def test_workers_without_ray_start_a_private_cluster_whatever_a_stale_one_says(
        tmp_path: Path, photo: Image.Image, tiny_dir: Path) -> None:
    write_photos(tmp_path / "in", photo, 6)
    ray_tmp = Path(tempfile.mkdtemp(prefix="pa-ray-", dir="/tmp"))  # short: Ray's sockets
    (ray_tmp / "ray").mkdir()
    (ray_tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:9\n")  # a killed head
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "PROMPTARTISAN_TINY_DIR": str(tiny_dir),
           "PROMPTARTISAN_WORKING_SIZE": "64", "PROMPTARTISAN_DEVICE": "cpu",
           "PROMPTARTISAN_PLANNER": "rules", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    command = [sys.executable, "-m", "promptartisan.ui.cli", "batch", "in", "--request",
               REQUEST, "--out", "out", "--tiny", "--steps", "2", "--workers", "2",
               "--threads", "1", "--quiet"]
    try:
        driver = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        deadline = time.monotonic() + 600
        while not list((tmp_path / "out").glob("photo-*.json")) and driver.poll() is None:
            assert time.monotonic() < deadline, "the batch never got going"
            time.sleep(0.05)
        assert driver.poll() is None, driver.stderr.read().decode()
        assert processes_with(str(ray_tmp))  # the private cluster, running
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        left = left_after(str(ray_tmp), 60)
        assert not left, [p.cmdline()[:2] for p in left]  # no agent outlives a killed run

        again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=600)
        assert again.returncode == 0, again.stderr
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        assert summary["skipped"] >= 1 and summary["skipped"] + summary["done"] == 6
        # Each actor's model load is reported on its first entry and counted apart from the
        # images' seconds, which are the editing alone.
        entries = [json.loads(line) for line in
                   (tmp_path / "out" / "report.jsonl").read_text().splitlines()]
        loads = [entry["load_seconds"] for entry in entries if "load_seconds" in entry]
        edits = [entry["seconds"] for entry in entries if entry["status"] == "done"]
        assert loads and summary["model_loads"] == len(loads)
        assert summary["model_load_seconds"] == round(sum(loads), 3)
        assert summary["seconds_per_image"] == round(sum(edits) / len(edits), 3)
        assert not left_after(str(ray_tmp), 60)
    finally:
        for process in processes_with(str(ray_tmp)):  # only if an assertion failed above
            process.kill()


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    """Two Ray nodes of one CPU each, started in two different working folders: a worker's
    relative path would land in its node's folder."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    root = tmp_path_factory.mktemp("nodes")
    here = os.getcwd()
    ray_tmp = tempfile.mkdtemp(prefix="pa-ray-", dir="/tmp")  # short: sockets
    # The cluster's address file goes there too, not into a machine-wide /tmp/ray that a
    # fresh machine may not have (and another run of Ray may be using).
    previous_tmp = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = ray_tmp
    os.makedirs(os.path.join(ray_tmp, "ray"))  # Ray writes the file there, making no folder
    cluster = Cluster()
    head = {"include_dashboard": False, "temp_dir": ray_tmp}
    try:
        for n in range(2):
            (root / f"node-{n}").mkdir()
            os.chdir(root / f"node-{n}")  # the node's processes, and so its workers, start here
            cluster.add_node(num_cpus=1, **(head if n == 0 else {}))
        os.chdir(here)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level="warning")
        where = ray.remote(num_cpus=0)(lambda: os.getcwd())  # by value: tests/ isn't there
        folders = ray.get([where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            node.node_id, soft=False)).remote() for node in cluster.list_all_nodes()])
        ray.shutdown()
        assert sorted(folders) == [str(root / "node-0"), str(root / "node-1")]
        yield cluster, root
    finally:
        os.chdir(here)
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        if previous_tmp is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = previous_tmp


@pytest.fixture
def settings(tiny_dir: Path) -> Settings:
    return Settings(tiny=True, tiny_dir=tiny_dir, device="cpu", dtype="float32", steps=2,
                    working_size=64, planner="rules")


def test_two_nodes_in_other_folders_write_where_the_report_says_and_a_rerun_skips_all(
        two_nodes: tuple[Cluster, Path], settings: Settings, tmp_path: Path,
        photo: Image.Image, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster, nodes = two_nodes
    driver = tmp_path / "driver"
    write_photos(driver / "in", photo, 4)
    monkeypatch.chdir(driver)
    context = ray.data.DataContext.get_current()  # the driver's: images go out once both
    monkeypatch.setattr(context, "wait_for_min_actors_s", 300)  # actors are up, so both work

    def run(inputs: list[str], out: str, shared_fs: bool) -> dict:
        runner = RayRunner(address=cluster.address, workers=2, shared_fs=shared_fs)
        return run_batch(settings, REQUEST, inputs, out, runner=runner, threads=1,
                         progress=False)

    with pytest.raises(ValueError, match="in has 2 nodes|--shared-fs"):
        run(["in"], "out", shared_fs=False)  # local paths a second node may not see
    assert not (driver / "out").exists() or not list((driver / "out").glob("photo-*"))

    first = run(["in"], "out", shared_fs=True)
    assert (first["total"], first["done"], first["failed"]) == (4, 4, 0), first["failures"]
    assert first["model_loads"] == 2  # an actor on each node
    lines = [json.loads(line) for line in (driver / "out/report.jsonl").read_text().splitlines()]
    assert {line["node"] for line in lines} == {n.node_id for n in cluster.list_all_nodes()}
    for line in lines:
        assert Path(line["input"]).is_absolute() and Path(line["input"]).parent == driver / "in"
        record = json.loads(Path(line["record"]).read_text())
        assert Path(record["output"]) == Path(line["output"])
        assert Path(line["output"]).parent == driver / "out" and Path(line["output"]).is_file()
    assert not [p for p in nodes.rglob("*") if p.is_file()]  # nothing in the nodes' folders

    again = run([f"file://{driver}/in"], f"file://{driver}/out", shared_fs=False)  # URIs
    assert (again["skipped"], again["done"], again["failed"]) == (4, 0, 0)
    assert sorted(p.relative_to(driver).as_posix() for p in driver.rglob("*") if p.is_file()
                  and p.parent.name != "in") == sorted(
        ["out/batch.lock", "out/report.jsonl", "out/summary.json",
         *(f"out/{Path(line['output']).name}" for line in lines),
         *(f"out/{Path(line['record']).name}" for line in lines),
         *(f"out/{Path(line['output']).name.replace('.edited.png', '.mask-0.png')}"
           for line in lines)])

"""A batch on a Ray cluster through Ray Data: the items (names only) stream through
`map_batches` with a callable class, so a fixed pool of actors each loads the models once and
edits image after image (`edit_item`, as in-process runs do); each entry comes back to the
driver as soon as its batch is done. Needs the extra: pip install 'promptartisan[ray]'.

Without an address the run starts a private cluster of its own (`address="local"`), which no
other run, stale address file or RAY_ADDRESS can join or divert; only an address joins a
running cluster. There, the workers import the driver's own code (shipped as a runtime_env
`py_modules` package, or from a named container image), every node is asked for its version
before any image, and local paths need a filesystem every node sees."""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from promptartisan.agent.batch.files import location
from promptartisan.agent.batch.run import (
    Item,
    Job,
    MakeEditor,
    edit_item,
    load_models,
    quiet_loading,
)
from promptartisan.agent.editor import Editor

MAX_BLOCKS = 1000
"""Ray Data blocks of items: one per batch up to this many, so images spread over every actor
and results come back as batches finish, not in a few large lumps."""

SUBPACKAGES = ("agent", "tools", "engine", "ui")
"""promptartisan's sub-packages, each in its own top-level folder (pyproject's package-dir)."""

URI_SCHEMES = "s3://, gs://, abfs://, file://"


@dataclass(frozen=True)
class RayRunner:
    """`address`: a cluster's (ray://host:10001, host:6379, auto) to join, None for a private
    one that lives as long as the run. `workers` actors, each with `gpus_per_worker` GPUs and
    the job's threads (default 1) as its CPUs, taking `batch_size` images at a time.
    `shared_fs`: the person's word that local paths are on a filesystem every node mounts at
    the same place (else a cluster of several nodes takes only URIs). `image`: a container
    image holding this version for the workers (else a joined cluster gets the driver's code
    as a runtime_env package)."""

    address: str | None = None
    workers: int = 2
    gpus_per_worker: float = 0
    batch_size: int = 1
    make_editor: MakeEditor = Editor
    shared_fs: bool = False
    image: str | None = None

    def __call__(self, job: Job, items: list[Item]) -> Iterator[dict[str, Any]]:
        """Join or start the cluster and check its nodes now (a refusal comes before any
        report is written); the entries come from the returned iterator, which leaves the
        cluster when it ends."""
        if not items:
            return iter(())
        ray = require_ray()
        started_here = not ray.is_initialized()
        staging = Path(tempfile.mkdtemp(prefix="promptartisan-code-"))
        try:
            if started_here:  # else the caller's cluster, with the caller's runtime_env
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
                if self.address is None:  # private: never whatever cluster is found
                    ray.init(address="local", include_dashboard=False,
                             logging_level="warning", log_to_driver=False,
                             runtime_env=self._runtime_env(staging))
                else:
                    ray.init(address=self.address, logging_level="warning",
                             runtime_env=self._runtime_env(staging))
            check_nodes(ray, job, [item.input for item in items], self.shared_fs)
        except BaseException:
            _leave(ray, started_here, staging)
            raise
        return self._entries(ray, job, items, started_here, staging)

    def _entries(self, ray: Any, job: Job, items: list[Item], started_here: bool,
                 staging: Path) -> Iterator[dict[str, Any]]:
        try:
            yield from self._run(ray, job, items)
        finally:
            _leave(ray, started_here, staging)

    def _runtime_env(self, staging: Path) -> dict[str, Any] | None:
        """What the workers run: a named image, this driver's code on a joined cluster, or
        (a private cluster on this machine) this very install."""
        if self.image is not None:
            return {"image_uri": self.image}
        if self.address is None:
            return None
        return {"py_modules": [str(stage_code(staging))]}

    def _run(self, ray: Any, job: Job, items: list[Item]) -> Iterator[dict[str, Any]]:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the driver's own bar counts images
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        blocks = min(MAX_BLOCKS, math.ceil(len(items) / self.batch_size))
        dataset = ray.data.from_items([asdict(item) for item in items],
                                      override_num_blocks=blocks).map_batches(
            Worker, fn_constructor_kwargs={"job": job, "make_editor": self.make_editor},
            batch_size=self.batch_size, compute=ray.data.ActorPoolStrategy(size=self.workers),
            num_cpus=job.threads or 1, num_gpus=self.gpus_per_worker or None)
        for row in dataset.iter_rows():
            yield json.loads(row["entry"])


def _leave(ray: Any, started_here: bool, staging: Path) -> None:
    """Shut down what this run started, and drop its staged code."""
    if started_here:
        ray.shutdown()
    shutil.rmtree(staging, ignore_errors=True)


class Worker:
    """One actor: the models loaded once (its first entry says how long that took), then image
    after image; each entry names the node that made it."""

    def __init__(self, job: Job, make_editor: MakeEditor) -> None:
        import ray
        import torch

        self.node = ray.get_runtime_context().get_node_id()

        torch.set_num_threads(job.threads or 1)  # the CPUs Ray gave this actor
        quiet_loading()
        self.job = job
        self.editor = make_editor(job.settings)
        self.loaded: float | None = load_models(self.editor)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        items = [Item(str(i), str(n), str(k))
                 for i, n, k in zip(batch["input"], batch["name"], batch["key"], strict=True)]
        entries = [{**edit_item(self.editor, self.job, item), "node": self.node}
                   for item in items]
        if self.loaded is not None and entries:
            entries[0]["load_seconds"], self.loaded = self.loaded, None
        return {"entry": [json.dumps(entry) for entry in entries]}


def check_nodes(ray: Any, job: Job, inputs: list[str], shared_fs: bool) -> None:
    """Refuse, before any image, a cluster whose nodes can't all do the job: local paths on
    a cluster of several nodes (unless `shared_fs`), or a node whose promptartisan differs
    from this driver's."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes() if node["Alive"]]
    if len(nodes) > 1 and not shared_fs:
        local = next((text for text in (job.out, *inputs) if location(text).fs is None), None)
        if local is not None:
            raise ValueError(
                f"{local} is a path on this machine, and this Ray cluster has {len(nodes)} "
                f"nodes that may not see it: give URIs ({URI_SCHEMES} for a folder every "
                "node mounts at the same path), or, if every node mounts it there, say so "
                "with --shared-fs")
    probe = ray.remote(num_cpus=0)(code_fingerprint)
    here = code_fingerprint()
    answers = ray.get([probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        node["NodeID"], soft=False)).remote() for node in nodes])
    for node, there in zip(nodes, answers, strict=True):
        if there != here:
            raise ValueError(
                f"the Ray node {node['NodeManagerAddress']} runs promptartisan {there}, this "
                f"driver {here}: install the same version on every node, or name an image "
                "that holds it (--ray-image)")


def code_fingerprint() -> str:
    """promptartisan's version and a hash of its Python files: equal on two machines only
    when they run the same code."""
    import promptartisan

    digest = hashlib.sha256()
    root, *subpackages = _package_folders()
    files = [(path.relative_to(root).as_posix(), path) for path in root.rglob("*.py")
             if path.relative_to(root).parts[0] not in SUBPACKAGES]
    for name, folder in zip(SUBPACKAGES, subpackages, strict=True):
        files += [(f"{name}/{path.relative_to(folder).as_posix()}", path)
                  for path in folder.rglob("*.py")]
    for name, path in sorted(files):
        digest.update(f"{name}\0".encode())
        digest.update(path.read_bytes())
    return f"{promptartisan.__version__} ({digest.hexdigest()[:12]})"


def _package_folders() -> list[Path]:
    import promptartisan

    return [Path(promptartisan.__path__[0]), *(
        Path(importlib.import_module(f"promptartisan.{name}").__path__[0])
        for name in SUBPACKAGES)]


def stage_code(staging: Path) -> Path:
    """The installed promptartisan laid out as one package folder under `staging` (its
    sub-packages live in separate folders in the source tree), for a runtime_env's
    py_modules."""
    root, *subpackages = _package_folders()
    package = staging / "promptartisan"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(root, package, ignore=skip)
    for name, folder in zip(SUBPACKAGES, subpackages, strict=True):
        shutil.copytree(folder, package / name, ignore=skip)
    return package


def require_ray() -> Any:
    """The ray module, or a ValueError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ValueError("Ray is not installed: pip install 'promptartisan[ray]'") from exc
    return ray


def ray_available() -> bool:
    try:
        require_ray()
    except ValueError:
        return False
    return True

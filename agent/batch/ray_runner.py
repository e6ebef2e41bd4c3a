"""A batch on a Ray cluster through Ray Data: the items (names only) stream through
`map_batches` with a callable class, so a fixed pool of actors each loads the models once and
edits image after image (`edit_item`, as in-process runs do); each entry comes back to the
driver as soon as its batch is done. Needs the extra: pip install 'promptartisan[ray]'."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from promptartisan.agent.batch.run import Item, Job, MakeEditor, edit_item, quiet_loading
from promptartisan.agent.editor import Editor

MAX_BLOCKS = 1000
"""Ray Data blocks of items: one per batch up to this many, so images spread over every actor
and results come back as batches finish, not in a few large lumps."""


@dataclass(frozen=True)
class RayRunner:
    """`address`: a cluster's (ray://host:10001, host:6379, auto), None for a local one that
    lives as long as the run. `workers` actors, each with `gpus_per_worker` GPUs and the job's
    threads (default 1) as its CPUs, taking `batch_size` images at a time."""

    address: str | None = None
    workers: int = 2
    gpus_per_worker: float = 0
    batch_size: int = 1
    make_editor: MakeEditor = Editor

    def __call__(self, job: Job, items: list[Item]) -> Iterator[dict[str, Any]]:
        ray = require_ray()
        if not items:
            return
        started_here = not ray.is_initialized()
        if started_here:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            local = {"include_dashboard": False} if self.address is None else {}
            ray.init(address=self.address, logging_level="warning", **local)
        try:
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
        finally:
            if started_here:
                ray.shutdown()


class Worker:
    """One actor: the models loaded once, then image after image."""

    def __init__(self, job: Job, make_editor: MakeEditor) -> None:
        import torch

        torch.set_num_threads(job.threads or 1)  # the CPUs Ray gave this actor
        quiet_loading()
        self.job = job
        self.editor = make_editor(job.settings)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        items = [Item(str(i), str(n), str(k))
                 for i, n, k in zip(batch["input"], batch["name"], batch["key"], strict=True)]
        return {"entry": [json.dumps(edit_item(self.editor, self.job, item))
                          for item in items]}


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

"""A batch run's report: report.jsonl (a line per input: done, skipped or failed and why, and
its seconds) and summary.json (the counts, the failures, seconds per image, model loads,
images per second), in the output folder, with a progress bar on the terminal.

While a run goes, every few seconds the entries since the last write go into a new shard,
`report.parts/RUN-NNNNNN.jsonl`: a write costs what it holds, never what came before (no file
is rewritten or appended to, so it works the same on S3). At the end a last step merges the
run's shards, in order, into report.jsonl, writes summary.json, and removes the shards. A run
cut off leaves its shards: the next run on the folder merges them into `report.cut-RUN.jsonl`
before it starts its own, so what the cut run said is kept."""

from __future__ import annotations

import json
import os
import sys
import time
from types import TracebackType
from typing import Any

from promptartisan.agent.batch.files import Location

REPORT = "report.jsonl"
SUMMARY = "summary.json"
PARTS = "report.parts"
WRITE_EVERY_S = 10.0


class Report:
    """Entries as they come; a context that writes the files on leaving, whatever happened.
    Holds the counts and the failures, not the entries, so a million images fit."""

    def __init__(self, folder: Location, request: str, plan: dict[str, Any], total: int,
                 progress: bool = True, left_out: int = 0) -> None:
        from tqdm import tqdm

        self.folder, self.request, self.plan, self.total = folder, request, plan, total
        self.left_out = left_out
        self.run = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        self.parts = folder.child(PARTS)
        self.shards: list[Location] = []
        self.pending: list[str] = []
        self.counts = {"done": 0, "skipped": 0, "failed": 0}
        self.failures: list[dict[str, str]] = []
        self.edit_seconds = 0.0
        self.loads: list[float] = []
        self.started = time.monotonic()
        self.written = self.started
        self.bar = tqdm(total=total, unit="image", desc="batch", disable=not progress,
                        file=sys.stderr)

    def add(self, entry: dict[str, Any]) -> None:
        entry["finished_s"] = round(time.monotonic() - self.started, 3)
        self.pending.append(json.dumps(entry) + "\n")
        self.counts[entry["status"]] += 1
        if entry["status"] == "done":
            self.edit_seconds += entry["seconds"]
        if "load_seconds" in entry:
            self.loads.append(entry["load_seconds"])
        self.bar.update()
        if entry["status"] == "failed":
            self.failures.append({"input": entry["input"], "reason": entry["reason"]})
            self.bar.write(f"{entry['input']}: {entry['reason']}", file=sys.stderr)
        if time.monotonic() - self.written > WRITE_EVERY_S:
            self.flush()

    def summary(self) -> dict[str, Any]:
        seconds = time.monotonic() - self.started
        done = self.counts["done"]
        return {"request": self.request, "plan": self.plan, "total": self.total, **self.counts,
                "unfinished": self.total - sum(self.counts.values()),
                "left_out": self.left_out,
                "failures": self.failures, "seconds": round(seconds, 3),
                "seconds_per_image": round(self.edit_seconds / done, 3) if done else None,
                "model_loads": len(self.loads),
                "model_load_seconds": round(sum(self.loads), 3),
                "images_per_second": round(done / seconds, 4) if seconds else None}

    def flush(self) -> None:
        """The entries since the last flush, as the run's next shard."""
        if self.pending:
            shard = self.parts.child(f"{self.run}-{len(self.shards):06d}.jsonl")
            text = "".join(self.pending).encode("utf-8")
            if not self.shards:
                self.parts.make_folder()
            shard.write(lambda handle: handle.write(text))
            self.shards.append(shard)
            self.pending = []
        self.written = time.monotonic()

    def finish(self) -> None:
        """Merge this run's shards into report.jsonl, write summary.json, drop the shards."""
        self.flush()
        _merge(self.shards, self.folder.child(REPORT))
        summary = json.dumps(self.summary(), indent=2)
        self.folder.child(SUMMARY).write(lambda handle: handle.write(summary.encode("utf-8")))
        for shard in self.shards:
            shard.delete()

    def __enter__(self) -> Report:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.bar.close()
        self.finish()


def keep_cut_runs(folder: Location) -> list[str]:
    """Merge the shards that runs cut off left in `folder` into `report.cut-RUN.jsonl`, one
    per run, and remove them; the URIs of those reports. Call it holding the folder."""
    parts = folder.child(PARTS)
    runs: dict[str, list[Location]] = {}
    for name in sorted(parts.names()):
        if name.endswith(".jsonl"):
            runs.setdefault(name.rsplit("-", 1)[0], []).append(parts.child(name))
    kept = []
    for run, shards in runs.items():
        report = folder.child(f"report.cut-{run}.jsonl")
        _merge(shards, report)
        for shard in shards:
            shard.delete()
        kept.append(report.uri)
    return kept


def _merge(shards: list[Location], into: Location) -> None:
    """`shards`, in order, as the one file `into`, streamed shard by shard."""
    def fill(handle: Any) -> None:
        for shard in shards:
            handle.write(shard.read_bytes())

    into.write(fill)

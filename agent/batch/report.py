"""A batch run's report: report.jsonl (a line per input: done, skipped or failed and why, and
its seconds) and summary.json (the counts, the failures, seconds per image, images per
second), in the output folder, with a progress bar on the terminal. Both files are written
whole every few seconds and at the end, so a run cut off leaves what it did."""

from __future__ import annotations

import json
import sys
import time
from types import TracebackType
from typing import Any

from promptartisan.agent.batch.files import Location

REPORT = "report.jsonl"
SUMMARY = "summary.json"
WRITE_EVERY_S = 10.0


class Report:
    """Entries as they come; a context that writes the files on leaving, whatever happened."""

    def __init__(self, folder: Location, request: str, plan: dict[str, Any], total: int,
                 progress: bool = True) -> None:
        from tqdm import tqdm

        self.folder, self.request, self.plan, self.total = folder, request, plan, total
        self.entries: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self.written = self.started
        self.bar = tqdm(total=total, unit="image", desc="batch", disable=not progress,
                        file=sys.stderr)

    def add(self, entry: dict[str, Any]) -> None:
        entry["finished_s"] = round(time.monotonic() - self.started, 3)
        self.entries.append(entry)
        self.bar.update()
        if entry["status"] == "failed":
            self.bar.write(f"{entry['input']}: {entry['reason']}", file=sys.stderr)
        if time.monotonic() - self.written > WRITE_EVERY_S:
            self.write()

    def summary(self) -> dict[str, Any]:
        counts = {status: sum(e["status"] == status for e in self.entries)
                  for status in ("done", "skipped", "failed")}
        edited = [e["seconds"] for e in self.entries if e["status"] == "done"]
        seconds = time.monotonic() - self.started
        return {"request": self.request, "plan": self.plan, "total": self.total, **counts,
                "unfinished": self.total - len(self.entries),
                "failures": [{"input": e["input"], "reason": e["reason"]}
                             for e in self.entries if e["status"] == "failed"],
                "seconds": round(seconds, 3),
                "seconds_per_image": round(sum(edited) / len(edited), 3) if edited else None,
                "images_per_second": round(counts["done"] / seconds, 4) if seconds else None}

    def write(self) -> None:
        lines = "".join(json.dumps(entry) + "\n" for entry in self.entries)
        self.folder.child(REPORT).write(lambda handle: handle.write(lines.encode("utf-8")))
        summary = json.dumps(self.summary(), indent=2)
        self.folder.child(SUMMARY).write(lambda handle: handle.write(summary.encode("utf-8")))
        self.written = time.monotonic()

    def __enter__(self) -> Report:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.bar.close()
        self.write()

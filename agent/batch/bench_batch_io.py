"""What a batch's bookkeeping costs at scale, on this machine's disk:
`python -m promptartisan.agent.batch.bench_batch_io [--entries 1000000] [--files 100000]`.

Prints the report's cost per flush as the entries written so far grow (a flush writes one
shard of the entries since the last: its cost must not grow with them), the final merge into
report.jsonl, and the time to list a folder tree of `--files` images (names, sizes and
modification times, as `expand` gathers them). Figures, not tests: other load moves them."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from promptartisan.agent.batch import report as batch_report
from promptartisan.agent.batch.files import location
from promptartisan.agent.batch.inputs import expand
from promptartisan.agent.batch.report import Report


def bench_report(folder: Path, entries: int, per_flush: int) -> None:
    batch_report.WRITE_EVERY_S = float("inf")  # flushed here, every `per_flush` entries
    report = Report(location(str(folder)), "make the background white", {}, entries,
                    progress=False)
    marks = {entries // 100, entries // 10, entries // 2, entries}
    costs: list[float] = []
    for n in range(1, entries + 1):
        report.add({"input": f"s3://shop/photos/{n:08d}.jpg", "key": f"{n:064x}",
                    "status": "done", "output": f"s3://shop/edited/{n:08d}.{n:016x}.edited.png",
                    "record": f"s3://shop/edited/{n:08d}.{n:016x}.json", "seconds": 1.234,
                    "node": "f" * 56})
        if n % per_flush == 0:
            started = time.perf_counter()
            report.flush()
            costs.append(time.perf_counter() - started)
            if n in marks or n == per_flush:
                recent = costs[-10:]
                print(f"  {n:>9,} written: flush of {per_flush:,} entries "
                      f"{1000 * sum(recent) / len(recent):6.1f} ms (mean of last {len(recent)})")
    started = time.perf_counter()
    report.finish()
    size = (folder / batch_report.REPORT).stat().st_size
    print(f"  final merge into report.jsonl ({size / 1e6:.0f} MB) and summary.json: "
          f"{time.perf_counter() - started:.1f} s, once")


def bench_listing(folder: Path, files: int) -> None:
    per_folder = 1000
    started = time.perf_counter()
    for n in range(files):
        sub = folder / f"d{n // per_folder:04d}"
        if n % per_folder == 0:
            sub.mkdir(parents=True)
        (sub / f"photo-{n:07d}.jpg").touch()
    print(f"  made {files:,} empty files in {files // per_folder} folders: "
          f"{time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    found = expand([str(folder)], skip=location(str(folder.parent / "out")))
    seconds = time.perf_counter() - started
    print(f"  listed {len(found):,} inputs: {seconds:.2f} s ({len(found) / seconds:,.0f} files/s)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--per-flush", type=int, default=10_000,
                        help="entries a flush writes (a run writes every 10 s)")
    parser.add_argument("--files", type=int, default=100_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-batch-io-") as scratch:
        print(f"report of {args.entries:,} synthetic entries, a flush every "
              f"{args.per_flush:,}:")
        bench_report(Path(scratch) / "report", args.entries, args.per_flush)
        print(f"listing {args.files:,} local files:")
        bench_listing(Path(scratch) / "in", args.files)


if __name__ == "__main__":
    main()

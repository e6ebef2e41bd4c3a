"""Batch throughput, in this process against a local Ray cluster, with the tiny models on this
machine's CPU: `python -m promptartisan.agent.batch.bench_batch [--images 24] [--workers 2]`.

Prints, for each way, the wall time of the whole run (planning, start-up, model loading
included) and the steady rate (images per second between the first and the last result). A
figure, not a test: the machine's other load moves it."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from promptartisan.agent.batch.ray_runner import RayRunner
from promptartisan.agent.batch.run import run_batch
from promptartisan.settings import load_settings

REQUEST = "make the dog red"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--size", type=int, default=128, help="images' and working long side")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    settings = load_settings(overrides={"tiny": True, "device": "cpu", "dtype": "float32",
                                        "steps": args.steps, "working_size": args.size,
                                        "planner": "rules", "seed": 0})
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as scratch:
        inputs = _write_images(Path(scratch) / "in", args.images, args.size)
        print(f"{args.images} images {args.size}×{args.size * 3 // 4}, {args.steps} steps, "
              f"tiny models, CPU")
        ways: list[tuple[str, Any, int | None]] = [
            ("in-process", None, None),
            (f"Ray local, {args.workers} workers × 1 thread",
             RayRunner(workers=args.workers), 1)]
        results = []
        for name, runner, threads in ways:
            out = Path(scratch) / name.split(",")[0].replace(" ", "-")
            started = time.monotonic()
            summary = run_batch(settings, REQUEST, [str(inputs)], str(out), runner=runner,
                                threads=threads, progress=False)
            wall = time.monotonic() - started
            finished = sorted(json.loads(line)["finished_s"]
                              for line in (out / "report.jsonl").read_text().splitlines())
            steady = (len(finished) - 1) / (finished[-1] - finished[0]) \
                if len(finished) > 1 and finished[-1] > finished[0] else float("nan")
            print(f"{name:38s} {summary['done']:3d} done  wall {wall:6.1f} s "
                  f"({summary['done'] / wall:.3f} images/s)  steady {steady:.3f} images/s")
            results.append({"way": name, "done": summary["done"], "wall_s": wall,
                            "images_per_second": summary["done"] / wall,
                            "steady_images_per_second": steady})
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _write_images(folder: Path, count: int, size: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 256, (size * 3 // 4, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"image-{i:04d}.png")
    return folder


if __name__ == "__main__":
    sys.exit(main())

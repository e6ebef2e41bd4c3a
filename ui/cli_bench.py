"""`promptartisan bench WHAT`: every benchmark of the project, from one place.

`bench engine` is the single pass against stock InstructPix2Pix and the sequential baseline; a
table on the terminal, optionally JSON rows and a PNG plot of speedup against n. Every other
`bench WHAT [ARGS…]` runs the benchmark module beside the code it measures (`BENCHMARKS`),
`python -m MODULE ARGS…` as well: each has `main(argv) -> int`, prints a table and writes its
results as JSON (`--json PATH`; the GPU benchmark writes `bench_gpu.json` into `--out`);
`bench WHAT --help` is the module's own."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path

from promptartisan.ui.cli import settings_from_args

# OpenMP reads this when torch loads: idle worker threads must sleep, not spin, or the threads
# of the timing harness and of other processes steal each other's cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

BENCHMARKS = {
    "gpu": ("promptartisan.engine.bench_gpu",
            "the engine on a GPU, eager and compiled, against stock (JSON into --out)"),
    "kontext": ("promptartisan.engine.bench_kontext",
                "the Kontext single pass at full width against stock and the baseline, CPU"),
    "engine-memory": ("promptartisan.engine.bench_engine_memory",
                      "device memory per family and memory/quantize setting (estimates), "
                      "and CPU peak RSS of full-size edits"),
    "joint-mask": ("promptartisan.engine.bench_joint_mask",
                   "the Kontext joint attention mask: dense size and block sparsity"),
    "block-mask": ("promptartisan.engine.bench_block_mask",
                   "flex block masks: seconds and peak memory, by classes and token by token"),
    "attention-cpu": ("promptartisan.engine.bench_attention_cpu",
                      "CPU seconds per UNet step: these attention processors against a commit's"),
    "grounding": ("promptartisan.tools.bench_grounding",
                  "seconds per ground call for each grounding backend at full size"),
    "sam": ("promptartisan.tools.bench_sam", "the point/box segmenters: encode and click seconds"),
    "memory": ("promptartisan.agent.bench_memory",
               "peak memory of one edit of a big upload, beyond the models"),
    "planner": ("promptartisan.agent.planning.bench_planner",
                "the rules planner on long messages"),
    "local-planner": ("promptartisan.agent.planning.bench_local_planner",
                      "the local planner's model at full size on the CPU, guided and not"),
    "auto": ("promptartisan.agent.planning.bench_auto", "what planner = auto costs to choose"),
    "batch": ("promptartisan.agent.batch.bench_batch",
              "batch throughput in process against a local Ray cluster"),
    "reload": ("promptartisan.ui.bench_reload",
               "a chat's reload in Chromium at 10, 50 and 200 messages"),
    "batch-io": ("promptartisan.agent.batch.bench_batch_io",
                 "the batch report's flush cost as it grows, and listing many files"),
}
"""`promptartisan bench NAME` → (the benchmark's module, what it measures)."""


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("bench", help="measure the engine, the tools and the agent")
    actions = parser.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    engine = actions.add_parser(
        "engine", parents=[common],
        help="single pass with n regions vs stock InstructPix2Pix vs one pass per instruction")
    engine.add_argument("--arch", choices=["tiny", "tiny-sdxl", "sd15", "sdxl"], default="sd15",
                        help="sd15: full-size InstructPix2Pix, random weights (default); "
                             "sdxl: full-size SDXL InstructPix2Pix, random weights; tiny, "
                             "tiny-sdxl: the tiny test models of each family")
    engine.add_argument("--size", type=int, default=256, help="image side in pixels")
    engine.add_argument("--steps", type=int, default=4, help="denoising steps")
    engine.add_argument("--regions", type=_counts, default=[1, 2, 4, 8],
                        help="comma-separated region counts (default 1,2,4,8)")
    engine.add_argument("--repeat", type=int, default=1, help="runs of each, best time kept")
    engine.add_argument("--json", type=Path, help="write the rows as JSON")
    engine.add_argument("--plot", type=Path, help="write a PNG of speedup against n")
    engine.set_defaults(func=_engine)
    for name, (module, measures) in BENCHMARKS.items():
        # Its arguments are the module's own: this parser reads none of them (no "-" prefix).
        other = actions.add_parser(name, help=measures, add_help=False, prefix_chars="+")
        other.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        other.set_defaults(func=_module, module=module)


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("region counts must be ≥ 1")
    return counts


def _module(args: argparse.Namespace) -> int:
    import importlib

    return int(importlib.import_module(args.module).main(args.args) or 0)


def _engine(args: argparse.Namespace) -> int:
    from promptartisan import models
    from promptartisan.engine import PromptArtisanPipeline, PromptArtisanXLPipeline, benchmark
    from promptartisan.tiny import write_tiny_models

    if args.size < 64 or args.size % 8 or args.steps < 1 or args.repeat < 1:
        raise ValueError("--size must be a multiple of 8, at least 64; --steps, --repeat ≥ 1")
    settings = settings_from_args(args)
    device, dtype = settings.resolved_device(), settings.resolved_dtype()
    if args.arch == "tiny":
        pipe = models.load(PromptArtisanPipeline, "instruct-pix2pix",
                           settings.model_copy(update={"tiny": True}), dtype=dtype)
    elif args.arch == "tiny-sdxl":
        folder = write_tiny_models(settings.tiny_dir, ["instruct-pix2pix-xl"])
        pipe = models.load_from(PromptArtisanXLPipeline, str(folder / "instruct-pix2pix-xl"),
                                dtype=dtype)
    else:
        pipe = benchmark.sdxl_pipeline() if args.arch == "sdxl" else benchmark.sd15_pipeline()
        if pipe.dtype != dtype:
            pipe = pipe.to(dtype=dtype)
    pipe = pipe.to(device)
    print(f"bench engine: {args.arch}, {args.size} px, {args.steps} steps, {device} "
          f"{str(dtype).removeprefix('torch.')}, {benchmark.thread_note()}")
    rows = benchmark.run(pipe, args.regions, size=args.size, steps=args.steps,
                         repeat=args.repeat, progress=lambda line: print("  " + line))

    print(f"{'n':>3} {'stock s':>9} {'single s':>9} {'sequential s':>13} {'speedup':>8} "
          f"{'0.95·n':>7} {'overhead':>9} {'peak MB':>8} {'stock MB':>9}")
    for row in rows:
        print(f"{row.n:>3} {row.stock_s:>9.2f} {row.single_s:>9.2f} {row.sequential_s:>13.2f} "
              f"{row.speedup:>8.2f} {0.95 * row.n:>7.2f} {row.overhead:>9.3f} "
              f"{row.peak_mb:>8.0f} {row.stock_peak_mb:>9.0f}")
    context = {"arch": args.arch, "size": args.size, "steps": args.steps, "device": device,
               "dtype": str(dtype).removeprefix("torch.")}
    if args.json:
        args.json.write_text(json.dumps([asdict(row) | context for row in rows], indent=2))
    if args.plot:
        _plot(rows, args.plot, f"{args.arch}, {args.size} px, {args.steps} steps, {device}")
    return 0


def _plot(rows: list, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = [row.n for row in rows]
    figure, axes = plt.subplots(figsize=(5, 4))
    axes.plot(counts, counts, "--", color="grey", label="ideal: n")
    axes.plot(counts, [0.95 * n for n in counts], ":", color="grey", label="target: 0.95·n")
    axes.plot(counts, [row.speedup for row in rows], "o-", label="measured")
    axes.set(xlabel="instructions n", ylabel="speedup (sequential / single pass)", title=title)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)

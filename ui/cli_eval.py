"""`promptartisan eval`: the single pass against the sequential baselines on a benchmark."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from promptartisan.ui.cli import settings_from_args


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one name")
    return names


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from promptartisan.agent.evaluation import METHODS

    parser = subparsers.add_parser(
        "eval", parents=[common], help="score editing methods on a benchmark",
        description="Run each method on each case with the same seed, then write results.csv, "
                    "summary.md, plot.png and a comparison grid per case to --out.")
    parser.add_argument("--bench", default="mie-lite",
                        help="a built-in benchmark (mie-lite) or a benchmark JSON file")
    parser.add_argument("--methods", type=_names, default=list(METHODS),
                        help=f"comma-separated, from {', '.join(METHODS)} (default: all)")
    parser.add_argument("--cases", type=_names, help="comma-separated case ids (default: all)")
    parser.add_argument("--steps", type=int, help="denoising steps per pass")
    parser.add_argument("--size", type=int, help="working size: the long side in pixels")
    parser.add_argument("--seed", type=int, help="base seed (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    from promptartisan.agent.benchmarks import load_benchmark
    from promptartisan.agent.evaluation import engine_methods, evaluate
    from promptartisan.models import engine_guidance_scale, engine_working_size
    from promptartisan.tools.metrics import ClipScorer, PickScorer

    settings = settings_from_args(args, steps=args.steps, working_size=args.size, seed=args.seed)
    size = engine_working_size(settings)  # --size, else the engine family's
    bench = load_benchmark(args.bench)
    if args.cases:
        bench = bench.select(args.cases)
    methods = engine_methods(args.methods, settings)
    clip, pick = ClipScorer.load(settings), PickScorer.load(settings)
    seed = settings.seed or 0
    notes = [f"{len(bench.cases)} cases · {settings.steps} steps · {size} px "
             f"long side · seed {seed} · guidance {engine_guidance_scale(settings)} / image "
             f"{settings.image_guidance_scale} · device {settings.resolved_device()}"]
    if settings.tiny:
        notes.append("**Tiny random-weight models: these numbers are meaningless; they only "
                     "show that the pipeline runs end to end.**")
    report = evaluate(bench, methods, args.out, clip, pick, size=size,
                      seed=seed, notes=notes, progress=not args.no_progress)
    print((args.out / "summary.md").read_text(encoding="utf-8"))
    print(f"results: {args.out}")
    if report.failures:
        print(f"{len(report.failures)} failure(s); see summary.md", file=sys.stderr)
        return 1
    return 0

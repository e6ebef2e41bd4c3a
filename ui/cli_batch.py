"""`promptartisan batch INPUT… --request TEXT --out DIR|URI [--ray [ADDRESS]] [--workers N]`:
one request over thousands of images, in this process or on a Ray cluster, resumable."""

from __future__ import annotations

import argparse
import re
import sys

from promptartisan.ui.cli import settings_from_args

RAY_ADDRESS = re.compile(r"local|auto|ray://\S+|[\w.-]+:\d+")


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "batch", parents=[common], help="one request over many images, resumable, on Ray",
        description="Plan the request once (a request that needs a question is refused before "
                    "any image is read), then ground and edit every image: in this process, or "
                    "on a Ray cluster (--ray, or --workers above 1). Results, masks and a record "
                    "per image are named by a hash of (input, request, settings): a rerun "
                    "skips what is done and redoes what failed or was cut off. OUT/report.jsonl "
                    "and OUT/summary.json say what happened.")
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="image files, folders, globs ('photos/**/*.jpg'); local paths or "
                             "URIs (s3://, gs://, file://)")
    parser.add_argument("--list", action="append", default=[], metavar="FILE", dest="lists",
                        help="a text file (one input a line) or a CSV (a path/uri/image/file "
                             "column, else the first); repeatable")
    parser.add_argument("--request", required=True, metavar="TEXT",
                        help='what to change, e.g. "make the background white"')
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder or URI for the results and the report")
    parser.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                        help="run on Ray: join the cluster at ADDRESS (auto, HOST:PORT, "
                             "ray://HOST:PORT), else (or with local) start a private one "
                             "for this run")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="Ray actors, each holding the models once (default 1: in this "
                             "process unless --ray; above 1 without --ray: a private local "
                             "cluster, never one that is running)")
    parser.add_argument("--shared-fs", action="store_true",
                        help="local paths (inputs, --out) are on a filesystem every node of "
                             "the cluster mounts at the same place (NFS, a cluster volume); "
                             "without it a cluster of several nodes takes only URIs")
    parser.add_argument("--ray-image", metavar="IMAGE",
                        help="a container image with this version installed, for the "
                             "workers (default: the driver's code is shipped to a joined "
                             "cluster as a runtime_env package)")
    parser.add_argument("--gpus-per-worker", type=float, default=0, metavar="G",
                        help="GPUs per Ray actor (e.g. 1; 0.5 puts two actors on a GPU)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads per worker (Ray: its CPUs, default 1; in this "
                             "process: torch's default). Results on a CPU are bit-identical "
                             "at the same count")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N",
                        help="images per Ray call (default 1)")
    parser.add_argument("--planner", help="rules or llm:PROVIDER:MODEL (default: settings)")
    parser.add_argument("--steps", type=int, help="denoising steps")
    parser.add_argument("--seed", type=int, help="base seed (default 0); each image's seed "
                                                  "comes from it and the image's key")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_batch)


def _batch(args: argparse.Namespace) -> int:
    from promptartisan.agent.batch.ray_runner import RayRunner, ray_available
    from promptartisan.agent.batch.run import run_batch

    for flag, value in (("--workers", args.workers), ("--batch-size", args.batch_size),
                        ("--threads", args.threads)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be at least 1")
    if args.gpus_per_worker < 0:
        raise ValueError("--gpus-per-worker can't be negative")
    if args.ray is not None and not RAY_ADDRESS.fullmatch(args.ray):
        raise ValueError(f"--ray {args.ray}: not a Ray address (local, auto, HOST:PORT or "
                         "ray://HOST:PORT); give --ray after the inputs")
    if not args.inputs and not args.lists:
        raise ValueError("no inputs: name images, folders or globs, or --list FILE")
    settings = settings_from_args(args, planner=args.planner, steps=args.steps, seed=args.seed)
    runner = None
    if args.ray is not None or args.workers > 1:
        if args.ray is None and not ray_available():
            print(f"Ray is not installed: running in this process, not on {args.workers} "
                  "workers (pip install 'promptartisan[ray]')", file=sys.stderr)
        else:
            runner = RayRunner(address=None if args.ray in (None, "local") else args.ray,
                               workers=args.workers, gpus_per_worker=args.gpus_per_worker,
                               batch_size=args.batch_size, shared_fs=args.shared_fs,
                               image=args.ray_image)
    summary = run_batch(settings, args.request, args.inputs, args.out, args.lists,
                        runner=runner, threads=args.threads, progress=not args.quiet)
    print(f"{summary['done']} done, {summary['skipped']} skipped (done before), "
          f"{summary['failed']} failed of {summary['total']}; "
          f"{summary['seconds_per_image'] or 0:.2f} s per image "
          f"(+{summary['model_load_seconds']:.1f} s loading models, {summary['model_loads']}×), "
          f"{summary['images_per_second'] or 0:.3f} images/s; report: {args.out}")
    return 0 if summary["failed"] == 0 and summary["unfinished"] == 0 else 1

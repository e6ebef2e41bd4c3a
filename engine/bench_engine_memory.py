"""The engine's memory per family and setting: the device memory each `memory`/`quantize`
setting needs, estimated from the full-size parameter counts (`engine.memory`), and on this
machine's CPU the peak resident memory and seconds of one edit, measured on the full-size
architecture with random weights (each configuration in its own process, so one's peak can't
hide another's).

    python -m promptartisan.engine.bench_engine_memory [--measure sd15:none,sd15:int8] [--json P]

Estimates (GPU, 16-bit weights): `none` holds every component; `offload` (model CPU offload)
the largest one; `group-offload` (leaf level, streamed) about one layer group, so the working
allowance dominates; int8 / fp8 store the quantized components in 1 byte a weight, nf4 in
about 0.55. Each adds `memory.WORKING_ALLOWANCE` (activations, the VAE's decode, the CUDA
context), an allowance, not a measurement. Measured (CPU, float32 or int8 weights): peak RSS of
the process (ru_maxrss: weights, activations, Python and torch) and one edit's seconds at the
family's working size with `--steps` steps and two regions."""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from promptartisan.engine.memory import (
    FULL_SIZE_PARAMETERS,
    GIB,
    QUANTIZED_COMPONENTS,
    WORKING_ALLOWANCE,
    component_bytes,
)

SETTINGS = [("none", "none"), ("offload", "none"), ("group-offload", "none"), ("none", "int8"),
            ("offload", "int8"), ("none", "nf4"), ("offload", "nf4")]
WORKING_SIZE = {"sd15": 512, "sdxl": 768}
GROUP_RESIDENT = 0.5 * GIB  # leaf-level group offload: the layers in flight, streamed in turn


def estimate_gib(family: str, memory: str, quantize: str) -> float:
    """Device memory the setting needs for one edit, in GiB (an estimate, see the docstring)."""
    import torch

    sizes = component_bytes(FULL_SIZE_PARAMETERS[family], torch.float16, quantize, family)
    held = {"none": sum(sizes.values()), "offload": max(sizes.values()),
            "group-offload": GROUP_RESIDENT}[memory]
    return (held + WORKING_ALLOWANCE[family]) / GIB


def measure_one(family: str, quantize: str, steps: int) -> dict[str, Any]:
    """Build the full-size family on the CPU with random weights, quantize (torchao's int8
    weight-only config, as `quantize = int8`), then one edit; peak RSS and seconds."""
    import numpy as np
    import torch

    from promptartisan.engine import benchmark
    from promptartisan.engine.regions import Region

    started = time.perf_counter()
    pipe = benchmark.sdxl_pipeline() if family == "sdxl" else benchmark.sd15_pipeline()
    if quantize == "int8":
        from torchao.quantization import Int8WeightOnlyConfig, quantize_

        for name in QUANTIZED_COMPONENTS[family]:
            quantize_(getattr(pipe, name), Int8WeightOnlyConfig())
    pipe.set_progress_bar_config(disable=True)
    built = time.perf_counter() - started
    size = WORKING_SIZE[family]
    image = benchmark.bench_image(size)
    half = np.zeros((size, size), dtype=bool)
    half[:, : size // 2] = True
    regions = [Region(half, "make it red", group=1), Region(~half, "add snow", group=2)]
    start = time.perf_counter()
    with torch.no_grad():  # under inference_mode the full-size build fails (version counter)
        pipe(image, regions, num_inference_steps=steps, generator=torch.Generator().manual_seed(0))
    return {"family": family, "quantize": quantize, "steps": steps, "size": size,
            "edit_s": round(time.perf_counter() - start, 1), "build_s": round(built, 1),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                                  / GIB, 2), "threads": torch.get_num_threads()}


def table(estimates: list[dict[str, Any]], measured: list[dict[str, Any]]) -> str:
    lines = ["| family | memory | quantize | GPU memory (estimate) |", "|---|---|---|---|"]
    lines += [f"| {row['family']} | {row['memory']} | {row['quantize']} | "
              f"{row['estimate_gib']:.1f} GiB |" for row in estimates]
    if measured:
        lines += ["", "| family | quantize | CPU peak RSS (measured) | s / edit | steps | px |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {row['family']} | {row['quantize']} | {row['peak_rss_gib']:.2f} GiB | "
                  f"{row['edit_s']} | {row['steps']} | {row['size']} |" for row in measured]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m promptartisan.engine.bench_engine_memory",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--measure", default="",
                        help="FAMILY:QUANTIZE pairs to measure on the CPU (sd15|sdxl : "
                             "none|int8), comma separated; default none (estimates only)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child process's own pair
    args = parser.parse_args(argv)
    if args.one:
        family, quantize = args.one.split(":")
        print(json.dumps(measure_one(family, quantize, args.steps)))
        return 0
    estimates = [{"family": family, "memory": memory, "quantize": quantize,
                  "estimate_gib": round(estimate_gib(family, memory, quantize), 1)}
                 for family in FULL_SIZE_PARAMETERS for memory, quantize in SETTINGS]
    measured = []
    for pair in filter(None, args.measure.split(",")):
        child = subprocess.run([sys.executable, "-m", __spec__.name, "--one", pair,
                                "--steps", str(args.steps)], capture_output=True, text=True)
        if child.returncode != 0:
            print(f"{pair}: failed: {child.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        measured.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print(table(estimates, measured))
    if args.json:
        args.json.write_text(json.dumps({"estimates": estimates, "measured": measured},
                                        indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

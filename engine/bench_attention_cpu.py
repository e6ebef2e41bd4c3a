"""CPU seconds per UNet step with the attention processors of the working tree against those of
an earlier commit, and against stock diffusers' processors.

    promptartisan bench attention-cpu --before c453fd4^ --size 256 --regions 4,8 --rounds 4

Method: the full-size SD 1.5 InstructPix2Pix UNet (`benchmark.sd15_pipeline`, random weights),
float32, batch 3 (InstructPix2Pix's three guidance rows), one UNet call per measurement at a
fixed timestep, regions from `benchmark.bench_regions` (each its own group). The earlier
processors are loaded from `git show <commit>:engine/attention.py` under another module name,
so both run in one process, interleaved round by round (the first round warms up): a shared
machine's load then moves them alike. Figures are CPU seconds (process time, every thread),
which a busy machine disturbs much less than wall time; the median of the rounds is printed.
`--count-ops` counts the ATen operations one UNet call dispatches instead (views excepted): on a
GPU each is about one kernel launch, what an eager step's host time grows with. With
`--compiled-path`, the processors take the branch compiled code takes (told so by
`torch.compiler.is_compiling`), the dense-mask one, as many operations as CUDA's flex path.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from promptartisan.engine import attention, benchmark
from promptartisan.engine.regions import attention_shapes, label_maps, prepare_regions

REPO = Path(__file__).resolve().parents[1]


class OpCounter(TorchDispatchMode):
    """Counts the ATen operations dispatched inside it, views excepted (they launch nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        if not func.is_view:
            self.count += 1
        return func(*args, **(kwargs or {}))


def earlier_attention(commit: str) -> object:
    """engine/attention.py as it was at `commit`, imported as its own module."""
    source = subprocess.run(["git", "show", f"{commit}:engine/attention.py"], cwd=REPO,
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "earlier_attention.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("earlier_attention", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["earlier_attention"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the commit to compare with")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--regions", default="4,8")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--count-ops", action="store_true",
                        help="count the operations of one call instead of timing")
    parser.add_argument("--compiled-path", action="store_true",
                        help="with --count-ops: count the path compiled code takes")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.regions.split(",")]
    before = earlier_attention(args.before)

    unet = benchmark.sd15_pipeline().unet.eval()
    stock = unet.attn_processors
    side = args.size // 8
    shapes = attention_shapes(side, side, len(unet.config.block_out_channels))
    sample = torch.randn(3, 8, side, side, generator=torch.Generator().manual_seed(0))
    setups = {"stock": (None, torch.randn(3, 77, 768))}
    for n in counts:
        _, masks, groups = prepare_regions(benchmark.bench_regions(n, args.size),
                                           (args.size, args.size), 8)
        maps = label_maps(torch.from_numpy(masks), [0] * n, groups, shapes)
        words = torch.zeros(n + 1, 77, dtype=torch.bool)
        words[:n, 1:5] = True
        for name, module in (("before", before), ("now", attention)):
            control = module.AttentionControl(maps, words, 0.3, "cpu")
            control.sigma = 3.0
            setups[f"{name} n={n}"] = (control, torch.randn(3, 77 * (n + 1), 768))

    seconds: dict[str, list[float]] = {key: [] for key in setups}
    with torch.no_grad():
        for round_ in range(args.rounds + 1):
            for key, (control, context) in setups.items():
                processors = dict(stock)  # set_attn_processor empties the dict it is given
                unet.set_attn_processor(processors if control is None
                                        else control.processors(processors))
                if hasattr(control, "set_context"):
                    control.set_context(unet, context)
                if args.count_ops and round_:
                    compiling = torch.compiler.is_compiling
                    if args.compiled_path:
                        torch.compiler.is_compiling = lambda: True
                    try:
                        with OpCounter() as counter:
                            unet(sample, torch.tensor(500.0), encoder_hidden_states=context)
                    finally:
                        torch.compiler.is_compiling = compiling
                    seconds[key].append(counter.count)
                    print(f"{key}: {counter.count} operations", flush=True)
                    continue
                start = time.process_time()
                unet(sample, torch.tensor(500.0), encoder_hidden_states=context)
                if round_:
                    seconds[key].append(time.process_time() - start)
                    print(f"{key}: {seconds[key][-1]:.2f} CPU s", flush=True)
    results = {key: {"median_s": round(statistics.median(values), 3),
                     "all": [round(v, 2) for v in values]} for key, values in seconds.items()}
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the Kontext single pass costs at full width against stock FluxKontextPipeline and the
sequential baseline, on the CPU with random weights (the cost of a forward pass doesn't depend on
the weights' values):

    OMP_WAIT_POLICY=PASSIVE python -m promptartisan.engine.bench_kontext [--size 1024]

The transformer is FLUX.1 Kontext's at full width (hidden size 3072: 24 heads × 128, RoPE axes
16/56/56, guidance embedding) with fewer blocks (`--double`, `--single`; FLUX.1 has 19 and 38),
so a step costs what that many of FLUX.1's blocks cost at the same token count. The text
encoders and the VAE are the tiny model's: their cost is per prompt and per edit (encode,
decode), not per step, and the figures leave it out where they say "transformer". At 1024 px
the transformer reads 4096 target and 4096 reference tokens and the text (stock: 512 padded T5
tokens; the single pass: each instruction's own tokens and the background prompt's).

Interleaved, one after the other: a stock edit (and one whose T5 prompt is the instruction's
own tokens, as the single pass reads it: the difference is the mask's cost), the single pass
with n = 1, 2, 4 regions and the sequential baseline (one stock edit per instruction) with
n = 2, 4; a warm-up at 256 px first. Per run: seconds, the seconds inside the transformer and
its number of forwards, and the peak resident memory above the loaded weights.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from diffusers import FluxTransformer2DModel

from promptartisan.engine.baseline import SequentialBaseline
from promptartisan.engine.benchmark import bench_image, bench_regions, measure, thread_note
from promptartisan.engine.pipeline_kontext import PromptArtisanKontextPipeline
from promptartisan.engine.tiny_kontext import write_tiny_kontext

# FLUX.1's transformer width: 24 heads × 128 = 3072, RoPE axes summing to the head size.
FULL_WIDTH = {"attention_head_dim": 128, "num_attention_heads": 24,
              "axes_dims_rope": (16, 56, 56)}


def kontext_pipeline(folder: Path, double: int, single: int, width: dict | None = None
                     ) -> PromptArtisanKontextPipeline:
    """The tiny Kontext in `folder` with a random transformer of `width` (FULL_WIDTH by
    default) and `double` double-stream, `single` single-stream blocks."""
    pipe = PromptArtisanKontextPipeline.from_pretrained(str(folder), dtype=torch.float32)
    torch.manual_seed(0)
    pipe.transformer = FluxTransformer2DModel.from_config(
        {**pipe.transformer.config, **(width or FULL_WIDTH), "num_layers": double,
         "num_single_layers": single})
    pipe.set_progress_bar_config(disable=True)
    return pipe


class TransformerClock:
    """Seconds spent in the transformer's forwards, and how many there were, since `reset`."""

    def __init__(self, transformer: torch.nn.Module) -> None:
        self.seconds, self.forwards, self._start = 0.0, 0, 0.0
        transformer.register_forward_pre_hook(self._enter)
        transformer.register_forward_hook(self._exit)

    def reset(self) -> None:
        self.seconds, self.forwards = 0.0, 0

    def _enter(self, *_: object) -> None:
        self._start = time.perf_counter()

    def _exit(self, *_: object) -> None:
        self.seconds += time.perf_counter() - self._start
        self.forwards += 1


def run(pipe: PromptArtisanKontextPipeline, size: int = 1024, steps: int = 1,
        counts: tuple[int, ...] = (1, 2, 4), sequential_counts: tuple[int, ...] = (2, 4),
        progress: Callable[[str], None] = print) -> list[dict[str, float | int | str]]:
    """The interleaved runs; one row each: method, n, seconds, transformer seconds, forwards,
    peak MB above the level at its start."""
    baseline = SequentialBaseline(pipe)
    clock = TransformerClock(pipe.transformer)

    def stock(image, regions, **kwargs) -> None:
        baseline.stock_edit(regions[0].prompt, image, num_inference_steps=steps,
                            generator=torch.Generator().manual_seed(0), **kwargs)

    def stock_own_length(image, regions) -> None:  # T5 reads the instruction's tokens only
        tokens = len(pipe.tokenizer_2(regions[0].prompt).input_ids)
        stock(image, regions, max_sequence_length=tokens)

    def single(image, regions) -> None:
        pipe(image, regions, num_inference_steps=steps,
             generator=torch.Generator().manual_seed(0))

    def sequential(image, regions) -> None:
        baseline(image, regions, num_inference_steps=steps,
                 generator=torch.Generator().manual_seed(0))

    warm = bench_image(256)
    stock(warm, bench_regions(1, 256))
    single(warm, bench_regions(2, 256))
    image = bench_image(size)
    plan = [("stock", 1, stock), ("stock-own", 1, stock_own_length),
            *[("single", n, single) for n in counts],
            *[("sequential", n, sequential) for n in sequential_counts]]
    rows = []
    for method, n, fn in plan:
        clock.reset()
        seconds, peak = measure(partial(fn, image, bench_regions(n, size)), torch.device("cpu"))
        rows.append({"method": method, "n": n, "seconds": seconds,
                     "transformer_s": clock.seconds, "forwards": clock.forwards,
                     "peak_mb": peak})
        progress(f"{method} n={n}: {seconds:.1f} s ({clock.seconds:.1f} s in "
                 f"{clock.forwards} transformer forwards), peak +{peak:.0f} MB")
    return rows


def table(rows: list[dict[str, float | int | str]]) -> str:
    """The rows, and per n the ratios the goals name: sequential / single (goal ≥ 0.95·n) and
    single / stock, per transformer step (goal ≤ 1.10)."""
    stock = next(r for r in rows if r["method"] == "stock")
    single = {r["n"]: r for r in rows if r["method"] == "single"}
    lines = [f"{'method':<11}{'n':>3}{'edit s':>9}{'transformer s':>15}{'forwards':>10}"
             f"{'s/forward':>11}{'peak MB':>9}"]
    for r in rows:
        lines.append(f"{r['method']:<11}{r['n']:>3}{r['seconds']:>9.1f}"
                     f"{r['transformer_s']:>15.1f}{r['forwards']:>10}"
                     f"{r['transformer_s'] / max(r['forwards'], 1):>11.1f}{r['peak_mb']:>9.0f}")
    lines.append("")
    per_step = stock["transformer_s"] / stock["forwards"]
    for n, r in single.items():
        ratio = r["transformer_s"] / r["forwards"] / per_step
        lines.append(f"single n={n}: {ratio:.2f}× stock's transformer step (goal ≤ 1.10), "
                     f"{r['seconds'] / stock['seconds']:.2f}× stock's edit")
    for r in rows:
        if r["method"] == "sequential" and r["n"] in single:
            speedup = r["seconds"] / single[r["n"]]["seconds"]
            lines.append(f"sequential / single, n={r['n']}: {speedup:.2f} "
                         f"(goal ≥ {0.95 * r['n']:.2f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="square image side, px")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--double", type=int, default=1, help="double-stream blocks")
    parser.add_argument("--single", type=int, default=1, help="single-stream blocks")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        write_tiny_kontext(Path(folder))
        pipe = kontext_pipeline(Path(folder), args.double, args.single)
    blocks = f"{args.double} double + {args.single} single blocks"
    params = sum(p.numel() for p in pipe.transformer.parameters()) / 1e6
    print(f"Kontext transformer at full width, {blocks} ({params:.0f} M parameters), "
          f"{args.size} px, {args.steps} step(s), {thread_note()}")
    rows = run(pipe, args.size, args.steps)
    print(table(rows))
    print(f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

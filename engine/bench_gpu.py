"""The engine on a GPU: what one pass with n regions costs against stock InstructPix2Pix, eager
and under `torch.compile`, as JSON figures in an output folder.

    timeout 600 python -m promptartisan.engine.bench_gpu --out "$OUT" --budget-s 420

Method
- Model: full-size SD 1.5 InstructPix2Pix architecture (`benchmark.sd15_pipeline`; `--arch
  sdxl`: SDXL InstructPix2Pix, `benchmark.sdxl_pipeline`) with random weights, built on the
  device, in float16 by default: a forward pass costs the same whatever the weights' values.
  Image: `benchmark.bench_image`, 512 px; regions: `benchmark.bench_regions` (n boxes on a
  grid, each its own group, so self-attention is blocked for n ≥ 2); 20 steps.
- Cases, in each mode: `stock` (diffusers' InstructPix2Pix pipeline of the family, one prompt),
  `single` with n = 1, 2, 4, 8 (one PromptArtisan pass), `sequential` with n = 4 (one stock pass
  per instruction, each on the previous output). Modes: `eager`, then `compiled`
  (`torch.compile(unet, dynamic=False)`, default mode, one compiled UNet shared by every case:
  static graphs, one per call shape, so every compiled row runs the same kind of graph; the
  JSON's `compile` says which).
- Each case runs once to warm up (its compile time shows in `warmup_s`), then `--repeat` timed
  runs. `edit_s`: the best whole edit, synchronised, from the image in to the image out.
  `step_s`: the median UNet call of the best run, timed with CUDA events around each call
  (forward hooks on the outermost UNet module, outside the compiled code; on CPU, the clock).
  `peak_mb`: peak allocated memory during the timed runs, above what was allocated before
  (the weights); `peak_total_mb`: the absolute peak; both CUDA only (null elsewhere).
- Check first: flex_attention's self-attention against the dense-mask kernel, float32, on
  the device (`check.flex_vs_mask_max_abs`; the CPU tests hold both to the rules within 1e-5).
  Then a server's stream (`flex_stream`): 12 aspect ratios through the flex self-attention,
  the sequence lengths they give, the padded lengths and how many compiles the process's
  compiled flex_attention made (one per padded length at most), and the worst difference
  from the dense mask.
- Goals (from issue 12): eager single pass n = 4 ≤ 1.05× and n = 8 ≤ 1.10× eager stock per edit;
  compiled single pass faster than eager stock. `summary` holds these ratios.
- A slot is never lost: the JSON is written once the model is built, before the kernel check,
  and after every case, so a run cut short still leaves its figures; a case that fails (out
  of memory, a compile error) is listed in `failed` with its error and the run goes on
  (`--inject-failure MODE:CASE:N` drills it); a case that would start after `--budget-s`
  seconds is skipped, and so are a case's timed runs past it (`skipped`, with the reason).
  The script prints the `timeout` to run it under: the budget + 180 s.

A smoke run on any machine: `--arch tiny --size 64 --steps 2 --device cpu --dtype float32
--compile-backend eager`.

FLUX.1 Kontext's memory settings: `--arch kontext --size 1024 --steps 8` (cases none, offload,
int8, group-offload: `engine.bench_gpu_kontext`), each its own row in bench_gpu_kontext.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from promptartisan.engine import bench_gpu_kontext, benchmark, flex
from promptartisan.engine.attention import AttentionControl, GroupSelfAttnProcessor
from promptartisan.engine.baseline import SequentialBaseline
from promptartisan.engine.pipeline import PromptArtisanPipeline
from promptartisan.engine.pipeline_xl import PromptArtisanXLPipeline
from promptartisan.engine.regions import Region, attention_shapes, label_maps


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    deadline = started + args.budget_s
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype or ("float16" if device.type == "cuda" else "float32"))
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m promptartisan.engine.bench_gpu " + " ".join(
        sys.argv[1:] if argv is None else argv)
    print(f"budget {args.budget_s:.0f} s; run it under: timeout {timeout_for(args.budget_s)} "
          f"{command}", flush=True)
    if args.arch == "kontext":
        return _kontext(args, device)
    report: dict[str, Any] = {
        "command": command, "timeout_s": timeout_for(args.budget_s),
        "arch": args.arch, "size": args.size, "steps": args.steps, "dtype": args.dtype
        or str(dtype).removeprefix("torch."), "device": _device_name(device),
        "torch": torch.__version__, "python": platform.python_version(),
        "compile": {"backend": args.compile_backend, "dynamic": False},
        "rows": [], "skipped": [], "failed": [],
    }

    def write() -> None:
        report["summary"] = _summary(report["rows"])
        report["elapsed_s"] = round(time.perf_counter() - started, 1)
        (args.out / "bench_gpu.json").write_text(json.dumps(report, indent=2))

    pipe = _pipeline(args.arch, device, dtype)
    pipe.set_progress_bar_config(disable=True)
    report["build_s"] = round(time.perf_counter() - started, 2)
    write()  # before anything that might fail on the device
    report["check"] = _attempt(report, "check", partial(_check_kernels, pipe, args.size, device))
    if report["check"]:
        print(f"flex vs dense-mask self-attention, float32: max |difference| "
              f"{report['check']['flex_vs_mask_max_abs']:.2e}", flush=True)
    report["flex_stream"] = _attempt(report, "flex_stream",
                                     partial(_flex_stream, pipe, args.size, device))
    if report["flex_stream"]:
        stream = report["flex_stream"]
        print(f"flex stream: {stream['requests']} aspect ratios, {len(stream['lengths'])} "
              f"lengths, {len(stream['padded_lengths'])} padded, {stream['compiles']} compiles",
              flush=True)
    write()
    image = benchmark.bench_image(args.size)
    for mode in args.modes:
        if mode == "compiled":
            # Static graphs, one per call shape: with torch's automatic dynamic shapes the
            # cases after the first recompile would run another kind of graph than the first.
            pipe.unet = torch.compile(pipe.unet, backend=args.compile_backend, dynamic=False)
        timer = _UnetTimer(pipe.unet, device)
        stock = SequentialBaseline(pipe)  # stock of the pipeline's family, on its components
        stock.stock.set_progress_bar_config(disable=True)
        for case, n in _cases(args, mode):
            where = {"mode": mode, "case": case, "n": n}
            if time.perf_counter() > deadline:
                report["skipped"].append({**where, "reason": "time budget"})
                continue
            regions = benchmark.bench_regions(n, args.size)
            edit = _edit(case, pipe, stock, image, regions, args.steps, device)
            if args.inject_failure == f"{mode}:{case}:{n}":
                edit = _injected_failure
            row = _attempt(report, where, partial(_measure, edit, timer, device, args.repeat,
                                                  deadline))
            if row is None:
                continue
            if not row["edit_s_all"]:
                report["skipped"].append({**where, "reason": "time budget after the warm-up",
                                          "warmup_s": row["warmup_s"]})
                continue
            report["rows"].append({**where, **row})
            print(f"{mode:>8} {case:>10} n={n}: {row['edit_s']:.3f} s/edit, "
                  f"{row['step_s'] * 1000:.1f} ms/step, warm-up {row['warmup_s']:.1f} s, "
                  f"peak {row['peak_mb']} MB", flush=True)
            write()
        timer.remove()
    write()
    (args.out / "bench_gpu.md").write_text(_table(report))
    print(_table(report))
    return 0


def timeout_for(budget_s: float) -> int:
    """The wall-clock limit to run the script under: the budget, and 180 s for the case that
    starts just before it runs out and for writing the figures."""
    return math.ceil(budget_s) + 180


def _attempt(report: dict[str, Any], where: str | dict[str, Any], run: Callable[[], Any]
             ) -> Any:
    """`run()`, or None with its error recorded in `report["failed"]` (an out-of-memory, a
    compile error): one case failing must not lose the device slot's other figures."""
    try:
        return run()
    except Exception as error:  # noqa: BLE001 - every failure is recorded, the run goes on
        report["failed"].append({**(where if isinstance(where, dict) else {"step": where}),
                                 "error": f"{type(error).__name__}: {error}"[:2000]})
        print(f"failed: {where}: {type(error).__name__}: {error}", flush=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return None


def _injected_failure() -> None:
    raise RuntimeError("injected failure (--inject-failure)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m promptartisan.engine.bench_gpu",
        description="single pass vs stock InstructPix2Pix on a GPU, eager and compiled")
    parser.add_argument("--out", type=Path, required=True, help="folder for bench_gpu.json/.md")
    parser.add_argument("--arch", choices=["sd15", "sdxl", "tiny", "tiny-sdxl", "kontext"],
                        default="sd15", help="kontext: FLUX.1 Kontext's memory cases "
                        "(engine.bench_gpu_kontext), each its own row in bench_gpu_kontext.json")
    parser.add_argument("--kontext-cases", type=_kontext_cases,
                        default=list(bench_gpu_kontext.CASES), help="with --arch kontext: "
                        f"some of {','.join(bench_gpu_kontext.CASES)}")
    parser.add_argument("--kontext-transformer", choices=["full", "tiny"], default="full",
                        help="with --arch kontext: FLUX.1's full-size transformer, or the tiny "
                             "one (a smoke run)")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--regions", type=_counts, default=[1, 2, 4, 8])
    parser.add_argument("--sequential", type=_counts, default=[4],
                        help="region counts for the sequential baseline")
    parser.add_argument("--modes", type=_modes, default=["eager", "compiled"])
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per case")
    parser.add_argument("--device", help="default: cuda if available")
    parser.add_argument("--dtype", choices=["float16", "bfloat16", "float32"],
                        help="default: float16 on cuda, float32 elsewhere")
    parser.add_argument("--compile-backend", default="inductor",
                        help="torch.compile backend (eager: a quick smoke run)")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="skip the cases, and the timed runs of a case, that would start "
                             "after this many seconds; run the script under `timeout` of this "
                             "+ 180 s")
    parser.add_argument("--inject-failure", metavar="MODE:CASE:N",
                        help="a drill: this case (e.g. eager:single:2) raises, to see the run "
                             "record it and go on")
    return parser


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if min(counts, default=0) < 1:
        raise argparse.ArgumentTypeError("region counts must be ≥ 1")
    return counts


def _modes(text: str) -> list[str]:
    modes = [part.strip() for part in text.split(",") if part.strip()]
    if not modes or set(modes) - {"eager", "compiled"}:
        raise argparse.ArgumentTypeError("modes: eager, compiled or both")
    return modes


def _kontext_cases(text: str) -> list[str]:
    cases = [part.strip() for part in text.split(",") if part.strip()]
    if not cases or set(cases) - set(bench_gpu_kontext.CASES):
        raise argparse.ArgumentTypeError(f"kontext cases: {', '.join(bench_gpu_kontext.CASES)}")
    return cases


def _kontext(args: argparse.Namespace, device: torch.device) -> int:
    """FLUX.1 Kontext's memory cases, each row written to bench_gpu_kontext.json as it ends."""
    from promptartisan.settings import load_settings
    from promptartisan.tiny import write_tiny_models

    folder = write_tiny_models(load_settings().tiny_dir, ["flux-kontext"]) / "flux-kontext"
    report: dict[str, Any] = {"device": _device_name(device), "torch": torch.__version__,
                              "rows": []}

    def record(row: dict[str, Any]) -> None:
        report["rows"].append(row)
        (args.out / "bench_gpu_kontext.json").write_text(json.dumps(report, indent=2))
        shown = row.get("error") or (f"{row['edit_s']:.2f} s/edit, peak {row['peak_mb']} MB, "
                                     f"warm-up {row['warmup_s']:.1f} s")
        print(f"kontext {row['case']:>13}: {shown}", flush=True)

    bench_gpu_kontext.run_cases(args.kontext_cases, folder, args.size, args.steps, device,
                                args.kontext_transformer == "full", record)
    return 0


def _pipeline(arch: str, device: torch.device, dtype: torch.dtype
              ) -> PromptArtisanPipeline | PromptArtisanXLPipeline:
    """The model built on the device itself: initialising 1.1 (SDXL: 3.5) billion random
    weights on the host and copying them over would take longer than the measurements."""
    if arch in ("tiny", "tiny-sdxl"):
        from promptartisan import models
        from promptartisan.settings import load_settings
        from promptartisan.tiny import write_tiny_models

        settings = load_settings(overrides={"tiny": True})
        if arch == "tiny":
            return models.load(PromptArtisanPipeline, "instruct-pix2pix", settings,
                               dtype=dtype).to(device)
        folder = write_tiny_models(settings.tiny_dir, ["instruct-pix2pix-xl"])
        return models.load_from(PromptArtisanXLPipeline, str(folder / "instruct-pix2pix-xl"),
                                dtype=dtype).to(device)
    with torch.device(device):
        pipe = benchmark.sdxl_pipeline() if arch == "sdxl" else benchmark.sd15_pipeline()
    return pipe if pipe.dtype == dtype else pipe.to(dtype=dtype)


def _first_block(pipe: PromptArtisanPipeline | PromptArtisanXLPipeline
                 ) -> tuple[int, torch.nn.Module]:
    """The UNet's first transformer block, a float32 copy, and its level (resolution /2^level
    of the latent's)."""
    level, down = next((level, down) for level, down in enumerate(pipe.unet.down_blocks)
                       if hasattr(down, "attentions"))
    return level, copy.deepcopy(down.attentions[0].transformer_blocks[0]).float()


def _self_attention(block: torch.nn.Module, masks: torch.Tensor, device: torch.device
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The block's self-attention with the flex kernel and with the dense mask, in float32, for
    regions `masks` (n, h, w) each its own group, on random hidden states of batch 3."""
    num, height, width = masks.shape
    maps = label_maps(masks, [0] * num, list(range(1, num + 1)), [(height, width)])
    words = torch.zeros(num + 1, 77, dtype=torch.bool)
    hidden = torch.randn(3, height * width, block.attn1.to_q.in_features, device=device,
                         generator=torch.Generator(device).manual_seed(0))
    with torch.no_grad():
        flex, mask = (GroupSelfAttnProcessor(AttentionControl(maps, words, 0.0, device,
                                                              kernel=kernel))(block.attn1, hidden)
                      for kernel in ("flex", "mask"))
    return flex, mask


def _check_kernels(pipe: PromptArtisanPipeline | PromptArtisanXLPipeline, size: int,
                   device: torch.device) -> dict[str, float]:
    """The two self-attention kernels on this device, in float32, on the UNet's first
    transformer block at its resolution (SD1.5: the latent's, SDXL: half of it) with 4 regions:
    flex_attention (fused on CUDA) must compute what the dense mask does, which the tests check
    against the rules on the CPU."""
    level, block = _first_block(pipe)
    side = size // pipe.vae_scale_factor // 2**level
    regions = benchmark.bench_regions(4, side)
    masks = torch.from_numpy(np.stack([region.mask for region in regions]))
    flex_out, mask_out = _self_attention(block, masks, device)
    return {"flex_vs_mask_max_abs": float((flex_out - mask_out).abs().max()),
            "pixels": side * side}


ASPECTS = [(1, 1), (4, 3), (3, 4), (3, 2), (2, 3), (16, 9), (9, 16), (5, 4), (4, 5), (2, 1),
           (1, 2), (21, 9)]
"""Width : height of the pictures in the flex stream."""


def _flex_stream(pipe: PromptArtisanPipeline | PromptArtisanXLPipeline, size: int,
                 device: torch.device) -> dict[str, Any]:
    """What a server meets: pictures of 12 aspect ratios (long side `size`, each side a
    multiple of 8 px, as the pipelines round them), 4 regions in 4 groups, through the first
    transformer block's flex self-attention; the compiles `flex.FLEX` made for them (at most
    one per padded length, never past torch's limit into the unfused kernel; 0 where it
    doesn't fuse, off CUDA) and the largest difference from the dense mask."""
    level, block = _first_block(pipe)
    before, lengths, worst = flex.FLEX.compiles, [], 0.0
    for across, down in ASPECTS:
        width, height = ((size, max(64, round(size * down / across / 8) * 8)) if across >= down
                         else (max(64, round(size * across / down / 8) * 8), size))
        shape = attention_shapes(height // pipe.vae_scale_factor, width // pipe.vae_scale_factor,
                                 len(pipe.unet.config.block_out_channels))[level]
        h, w = shape
        masks = torch.zeros(4, h, w, dtype=torch.bool)
        for k in range(4):
            row, col = divmod(k, 2)
            masks[k, row * h // 2 + h // 8:(row + 1) * h // 2 - h // 8,
                  col * w // 2 + w // 8:(col + 1) * w // 2 - w // 8] = True
        flex_out, mask_out = _self_attention(block, masks, device)
        worst = max(worst, float((flex_out - mask_out).abs().max()))
        lengths.append(h * w)
    return {"requests": len(ASPECTS), "lengths": sorted(set(lengths)),
            "padded_lengths": sorted({flex.padded_length(n) for n in lengths}),
            "compiles": flex.FLEX.compiles - before, "fused": flex.FLEX.fuses(device),
            "flex_vs_mask_max_abs": worst}


def _cases(args: argparse.Namespace, mode: str) -> list[tuple[str, int]]:
    """Stock first (the reference), then the single passes, then the sequential baseline. In
    compiled mode the sequential baseline follows stock, whose compiled graph it reuses, and
    n = 4 and 8 come first among the single passes: if time runs out, the goals are measured."""
    single = [("single", n) for n in args.regions]
    sequential = [("sequential", n) for n in args.sequential]
    if mode == "compiled":
        single.sort(key=lambda case: (case[1] not in (4, 8), case[1]))
        return [("stock", 1), *sequential, *single]
    return [("stock", 1), *single, *sequential]


def _edit(case: str, pipe: PromptArtisanPipeline | PromptArtisanXLPipeline,
          stock: SequentialBaseline, image: Any, regions: list[Region], steps: int,
          device: torch.device) -> Callable[[], None]:
    def generator() -> torch.Generator:
        return torch.Generator(device).manual_seed(0)

    if case == "stock":
        return lambda: stock.stock_edit(regions[0].prompt, image, num_inference_steps=steps,
                                        generator=generator())
    if case == "single":
        return lambda: pipe(image, regions, num_inference_steps=steps, generator=generator())

    def sequential() -> None:
        current = image
        for region in regions:
            current = stock.stock_edit(region.prompt, current, num_inference_steps=steps,
                                       generator=generator())

    return sequential


class _UnetTimer:
    """Times every UNet call: CUDA events recorded by hooks on the outermost module (outside
    any compiled code, and without synchronising), or the host clock on a CPU."""

    def __init__(self, unet: torch.nn.Module, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks: list[tuple[Any, Any]] = []
        self._handles = [unet.register_forward_pre_hook(self._start),
                         unet.register_forward_hook(self._stop)]

    def _now(self) -> Any:
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def _start(self, *_: object) -> None:
        self.marks.append((self._now(), None))

    def _stop(self, *_: object) -> None:
        self.marks[-1] = (self.marks[-1][0], self._now())

    def seconds(self) -> list[float]:
        if self.cuda:
            torch.cuda.synchronize()
            return [start.elapsed_time(stop) / 1000 for start, stop in self.marks]
        return [stop - start for start, stop in self.marks]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def _measure(edit: Callable[[], None], timer: _UnetTimer, device: torch.device, repeat: int,
             deadline: float) -> dict[str, Any]:
    """One warm-up edit, then up to `repeat` timed ones, none started after `deadline`
    (`edit_s_all` is empty when the warm-up ended past it)."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    sync()
    start = time.perf_counter()
    edit()
    sync()
    warmup = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    runs = []
    for _ in range(repeat):
        if time.perf_counter() > deadline:
            break
        timer.marks.clear()
        sync()
        start = time.perf_counter()
        edit()
        sync()
        runs.append((time.perf_counter() - start, statistics.median(timer.seconds())))
    row: dict[str, Any] = {"edit_s_all": [round(r[0], 4) for r in runs],
                           "warmup_s": round(warmup, 2), "peak_mb": None, "peak_total_mb": None}
    if not runs:
        return row
    best = min(runs)
    row.update(edit_s=round(best[0], 4), step_s=round(best[1], 5), unet_calls=len(timer.marks))
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        row["peak_mb"], row["peak_total_mb"] = (round((peak - base) / 2**20),
                                                round(peak / 2**20))
    return row


def _summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The issue's goals as ratios of whole-edit seconds (lower is better)."""
    edit = {(row["mode"], row["case"], row["n"]): row["edit_s"] for row in rows}
    stock = edit.get(("eager", "stock", 1))
    summary = {}
    if stock:
        for n in (1, 2, 4, 8):
            for mode in ("eager", "compiled"):
                if (mode, "single", n) in edit:
                    summary[f"{mode}_single_n{n}_over_eager_stock"] = round(
                        edit[(mode, "single", n)] / stock, 3)
        if ("eager", "sequential", 4) in edit and ("eager", "single", 4) in edit:
            summary["eager_speedup_n4"] = round(edit[("eager", "sequential", 4)]
                                                / edit[("eager", "single", 4)], 2)
    return summary


def _table(report: dict[str, Any]) -> str:
    lines = [f"{report['arch']}, {report['size']} px, {report['steps']} steps, "
             f"{report['device']}, {report['dtype']}, torch {report['torch']}", "",
             "| mode | case | n | s / edit | ms / UNet step | peak MB | warm-up s |",
             "|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        lines.append(f"| {row['mode']} | {row['case']} | {row['n']} | {row['edit_s']:.3f} | "
                     f"{row['step_s'] * 1000:.1f} | {row['peak_mb']} | {row['warmup_s']:.1f} |")
    for skipped in report["skipped"]:
        lines.append(f"| {skipped['mode']} | {skipped['case']} | {skipped['n']} | skipped "
                     f"({skipped['reason']}) | | | |")
    for failed in report["failed"]:
        where = (f"{failed['mode']} | {failed['case']} | {failed['n']}" if "mode" in failed
                 else f"{failed['step']} | | ")
        lines.append(f"| {where} | failed: {failed['error'][:200]} | | | |")
    return "\n".join(lines) + "\n"


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({torch.get_num_threads()} threads)"


if __name__ == "__main__":
    raise SystemExit(main())

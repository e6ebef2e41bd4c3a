"""FLUX.1 Kontext's memory settings on a GPU: the single pass with the transformer on the device,
under model CPU offload, under group offload, and with int8 weights, each case its own row
(`bench_gpu --arch kontext`; a case that fails records its error and the next one runs).

Model: the tiny Kontext folder's text encoders and VAE with a random transformer at FLUX.1's
full size (19 double and 38 single blocks, 3072 wide: `bench_kontext.kontext_pipeline`), in
bfloat16, built once on the host; each case gets a fresh transformer on those same weights and
its own copies of the small parts, so no case's hooks reach the next.
What the T5-XXL encoder adds beside it is in the README's memory table, from parameter counts.
The placements are `engine.memory.place`'s (the ones `memory = offload | group-offload` use);
int8 is torchao's `Int8WeightOnlyConfig`, the config `quantize = int8` hands diffusers, applied
with `quantize_` to the built transformer (diffusers applies it while loading a checkpoint).
`peak_mb`: the device's peak allocated memory during the timed edit (CUDA only)."""

from __future__ import annotations

import copy
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import FluxTransformer2DModel

from promptartisan.engine.bench_kontext import FULL_WIDTH, kontext_pipeline
from promptartisan.engine.benchmark import bench_image, measure
from promptartisan.engine.memory import MemoryChoice, place
from promptartisan.engine.pipeline_kontext import PromptArtisanKontextPipeline
from promptartisan.engine.regions import Region

CASES = ("none", "offload", "int8", "group-offload")
FULL_BLOCKS = (19, 38)


def host_pipeline(folder: Path, blocks: tuple[int, int], width: dict | None, dtype: torch.dtype
                  ) -> tuple[PromptArtisanKontextPipeline, dict[str, torch.Tensor]]:
    """The pipeline on the host in `dtype`, and its transformer's weights to rebuild it from."""
    pipe = kontext_pipeline(folder, *blocks, width=width).to(dtype=dtype)
    return pipe, pipe.transformer.state_dict()


def fresh_transformer(config: dict, weights: dict[str, torch.Tensor]) -> FluxTransformer2DModel:
    """A transformer on `weights` themselves (no copy): every case starts from the host's."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        transformer = FluxTransformer2DModel.from_config(config)
    transformer.load_state_dict(weights, assign=True)
    return transformer


def prepare(case: str, pipe: PromptArtisanKontextPipeline, device: torch.device) -> None:
    """Place the pipeline for `case` (int8: quantize the transformer, then all on the device)."""
    if case == "int8":
        from torchao.quantization import Int8WeightOnlyConfig, quantize_

        quantize_(pipe.transformer, Int8WeightOnlyConfig())
    mode = "none" if case == "int8" else case
    place(pipe, MemoryChoice(mode, f"bench case {case}", mode != "none"), str(device))


def run_case(case: str, base: PromptArtisanKontextPipeline, weights: dict[str, torch.Tensor],
             size: int, steps: int, device: torch.device) -> dict[str, Any]:
    """One case: build, place, warm up, then one timed edit with two regions."""
    started = time.perf_counter()
    components = {name: copy.deepcopy(part) if isinstance(part, torch.nn.Module) else part
                  for name, part in base.components.items() if name != "transformer"}
    components["transformer"] = fresh_transformer(dict(base.transformer.config), weights)
    pipe = PromptArtisanKontextPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    prepare(case, pipe, device)
    image = bench_image(size)
    half = np.zeros((size, size), dtype=bool)
    half[:, : size // 2] = True
    regions = [Region(half, "make it red", group=1), Region(~half, "add snow", group=2)]

    def edit() -> None:
        pipe(image, regions, num_inference_steps=steps, generator=torch.Generator().manual_seed(0))

    row = _timed(edit, device)
    row.update(case=case, setup_s=round(time.perf_counter() - started - row["edit_s"]
                                        - row["warmup_s"], 1))
    return row


def run_cases(cases: list[str], folder: Path, size: int, steps: int, device: torch.device,
              full: bool, record: Callable[[dict[str, Any]], None]) -> None:
    """Each case in turn, `record`ed as it ends; a failure is recorded as its error."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    blocks, width = (FULL_BLOCKS, FULL_WIDTH) if full else ((1, 1), {})
    base, weights = host_pipeline(folder, blocks, width, dtype)
    for case in cases:
        try:
            row = run_case(case, base, weights, size, steps, device)
        except Exception as exc:  # one case's failure (out of memory, a backend) loses no other
            row = {"case": case, "error": f"{type(exc).__name__}: {exc}"[:500],
                   "trace": traceback.format_exc(limit=3)[-1500:]}
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        record({"transformer_parameters": sum(w.numel() for w in weights.values()),
                "size": size, "steps": steps, **row})


def _timed(edit: Callable[[], None], device: torch.device) -> dict[str, Any]:
    """A warm-up edit, then one timed; `peak_mb` is the device's whole peak (weights too)."""
    warmup, _ = measure(edit, device)
    seconds, _ = measure(edit, device)  # resets the device's peak before it starts
    row: dict[str, Any] = {"edit_s": round(seconds, 3), "warmup_s": round(warmup, 2),
                           "peak_mb": None}
    if device.type == "cuda":
        row["peak_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
    return row

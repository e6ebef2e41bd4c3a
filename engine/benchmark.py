"""What one pass with n regions costs against stock InstructPix2Pix and against the sequential
baseline, for either family. The cost of a forward pass doesn't depend on the weights' values, so
the full-size architectures are built from configs with random weights: no download."""

from __future__ import annotations

import ctypes
import gc
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import PIL.Image
import torch
from diffusers import (
    AutoencoderKL,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from promptartisan.engine.baseline import SequentialBaseline
from promptartisan.engine.pipeline import PromptArtisanPipeline
from promptartisan.engine.pipeline_xl import PromptArtisanXLPipeline
from promptartisan.engine.regions import Region
from promptartisan.tokenizer import clip_tokenizer

PROMPTS = ["make it red", "turn it into gold", "add snow", "make it look like a watercolor",
           "turn it into a cat", "make it glow", "add flowers", "make it wooden"]


@dataclass
class BenchRow:
    """Seconds per edit (best of the repeats) and working memory above the loaded weights, in MB
    (CUDA: allocated; CPU: resident set, sampled)."""

    n: int
    stock_s: float
    single_s: float
    sequential_s: float
    speedup: float  # sequential / single: the target is ≥ 0.95·n
    overhead: float  # single / stock single edit: the target is ≤ 1.05
    peak_mb: float  # the single pass
    stock_peak_mb: float


def sd15_pipeline() -> PromptArtisanPipeline:
    """InstructPix2Pix at full size (SD 1.5 UNet with 8 input channels, SD 1.5 VAE, CLIP ViT-L/14
    text encoder, CLIP's real tokenizer) with random weights."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=8, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=768, attention_head_dim=8,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
        block_out_channels=(128, 256, 512, 512), sample_size=512,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
        projection_dim=768, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
    ))
    # On the host whatever device the caller builds the models on (`with torch.device(...)`):
    # the scheduler computes its tables through numpy.
    with torch.device("cpu"):
        scheduler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                                    beta_schedule="scaled_linear")
    return PromptArtisanPipeline(vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(),
                                 unet=unet, scheduler=scheduler)


def sdxl_pipeline() -> PromptArtisanXLPipeline:
    """SDXL InstructPix2Pix at full size (sdxl-instructpix2pix-768's and CosXL Edit's shape: the
    SDXL UNet with 8 input channels, the SDXL VAE, CLIP ViT-L/14 and OpenCLIP ViT-bigG/14 text
    encoders, CLIP's real tokenizer) with random weights."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=128, in_channels=8, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20),
        use_linear_projection=True, cross_attention_dim=2048, addition_embed_type="text_time",
        addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
        block_out_channels=(128, 256, 512, 512), sample_size=1024, scaling_factor=0.13025,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    )
    text = {"vocab_size": 49408, "max_position_embeddings": 77, "bos_token_id": 49406,
            "eos_token_id": 49407, "pad_token_id": 49407}
    text_encoder = CLIPTextModel(CLIPTextConfig(
        hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        hidden_act="quick_gelu", projection_dim=768, **text))
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(
        hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
        hidden_act="gelu", projection_dim=1280, **text))
    tokenizer_2 = clip_tokenizer()
    tokenizer_2.pad_token = "!"
    with torch.device("cpu"):  # as in sd15_pipeline
        scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                           beta_schedule="scaled_linear", steps_offset=1)
    return PromptArtisanXLPipeline(vae=vae, text_encoder=text_encoder,
                                   text_encoder_2=text_encoder_2, tokenizer=clip_tokenizer(),
                                   tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler)


def bench_image(size: int) -> PIL.Image.Image:
    """A smooth synthetic photo stand-in: the cost doesn't depend on the pixels either."""
    y, x = np.mgrid[0:size, 0:size] / size
    rgb = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * x * y)], axis=-1)
    return PIL.Image.fromarray((rgb * 255).astype(np.uint8))


def bench_regions(n: int, size: int) -> list[Region]:
    """n boxes on a grid, each its cell less a margin, so there is background around them."""
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    regions = []
    for k in range(n):
        row, col = divmod(k, cols)
        mask = np.zeros((size, size), dtype=bool)
        y0, y1 = row * size // rows, (row + 1) * size // rows
        x0, x1 = col * size // cols, (col + 1) * size // cols
        my, mx = (y1 - y0) // 8, (x1 - x0) // 8
        mask[y0 + my:y1 - my, x0 + mx:x1 - mx] = True
        regions.append(Region(mask, PROMPTS[k % len(PROMPTS)]))
    return regions


def run(pipe: PromptArtisanPipeline | PromptArtisanXLPipeline, counts: Sequence[int],
        size: int = 256, steps: int = 4, repeat: int = 1,
        progress: Callable[[str], None] | None = None) -> list[BenchRow]:
    """For each n, interleaved: a stock single edit, the single pass with n regions and the
    sequential baseline with n instructions; each `repeat` times, keeping the best time."""
    pipe.set_progress_bar_config(disable=True)
    baseline = SequentialBaseline(pipe)
    image = bench_image(size)
    device = pipe._execution_device

    def stock(regions: list[Region]) -> None:
        baseline.stock_edit(regions[0].prompt, image, num_inference_steps=steps,
                            generator=torch.Generator(device).manual_seed(0))

    def single(regions: list[Region]) -> None:
        pipe(image, regions, num_inference_steps=steps,
             generator=torch.Generator(device).manual_seed(0))

    def sequential(regions: list[Region]) -> None:
        baseline(image, regions, num_inference_steps=steps,
                 generator=torch.Generator(device).manual_seed(0))

    warm = bench_regions(1, size)
    stock(warm)
    single(warm)
    rows = []
    for n in counts:
        regions = bench_regions(n, size)
        times: dict[str, list[float]] = {"stock": [], "single": [], "sequential": []}
        peaks: dict[str, float] = {}
        for _ in range(repeat):
            for name, fn in (("stock", stock), ("single", single), ("sequential", sequential)):
                seconds, peak = measure(partial(fn, regions), device)
                times[name].append(seconds)
                peaks[name] = max(peaks.get(name, 0.0), peak)
                if progress:
                    progress(f"n={n} {name}: {seconds:.2f} s, {peak:.0f} MB")
        best = {name: min(values) for name, values in times.items()}
        rows.append(BenchRow(n=n, stock_s=best["stock"], single_s=best["single"],
                             sequential_s=best["sequential"],
                             speedup=best["sequential"] / best["single"],
                             overhead=best["single"] / best["stock"], peak_mb=peaks["single"],
                             stock_peak_mb=peaks["stock"]))
    return rows


def measure(fn: Callable[[], None], device: torch.device) -> tuple[float, float]:
    """Seconds and peak working memory (MB) of one call."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        return seconds, (torch.cuda.max_memory_allocated(device) - base) / 2**20
    with _ResidentPeak() as memory:
        start = time.perf_counter()
        fn()
        seconds = time.perf_counter() - start
    return seconds, memory.peak_mb


class _ResidentPeak:
    """Peak resident memory above the level at entry, sampled every 2 ms from /proc (Linux;
    NaN elsewhere). Freed heap is returned to the system first, so the entry level is honest."""

    def __enter__(self) -> _ResidentPeak:
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.peak_mb = (self.peak - self.base) / 2**20

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> float:
        try:
            with open("/proc/self/statm") as statm:
                return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, AttributeError):
            return math.nan


def thread_note() -> str:
    """How the CPU measurements were taken, for the table's header."""
    return (f"{torch.get_num_threads()} threads, "
            f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")

"""Where the engine's weights live and in what precision, through diffusers' own mechanisms: the
whole pipeline on the device, model CPU offload (one component on the device at a time), group
offload (blocks of layers streamed in, with CUDA streams on CUDA), VAE tiling and slicing while
offloading, and quantized weights from diffusers' quantization configs (torchao int8/fp8,
bitsandbytes NF4, a GGUF transformer file for FLUX.1 Kontext).

`choose_memory` is the pure rule `memory = "auto"` follows, from the device's free memory and
the components' sizes; `place` applies a choice to a loaded pipeline."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

GIB = 2**30

# Activations, the VAE's decode and the CUDA context beside the weights at the family's working
# size: an allowance, not a measurement (README: the memory table).
WORKING_ALLOWANCE = {"sd15": 1.5 * GIB, "sdxl": 3 * GIB, "kontext": 5 * GIB}

# Parameters of each family's full-size components (counted on the meta device from the
# published configs: engine.benchmark's SD1.5 and SDXL, FLUX.1 Kontext's transformer, T5-XXL,
# CLIP ViT-L/14 and its 16-channel VAE). Used when the model's files are not on this machine.
FULL_SIZE_PARAMETERS: dict[str, dict[str, int]] = {
    "sd15": {"unet": 859_532_484, "text_encoder": 123_060_480, "vae": 83_653_863},
    "sdxl": {"unet": 2_567_475_204, "text_encoder_2": 694_659_840,
             "text_encoder": 123_060_480, "vae": 83_653_863},
    "kontext": {"transformer": 11_901_408_320, "text_encoder_2": 4_893_906_944,
                "text_encoder": 123_060_480, "vae": 83_819_683},
}

# The denoiser, and for Kontext T5-XXL (4.9 B parameters), are what quantization shrinks.
QUANTIZED_COMPONENTS = {"sd15": ("unet",), "sdxl": ("unet",),
                        "kontext": ("transformer", "text_encoder_2")}
BYTES_PER_PARAMETER = {"int8": 1.0, "fp8": 1.0, "nf4": 0.55}  # NF4: 4 bits and block scales


@dataclass(frozen=True)
class MemoryChoice:
    """The placement in use and why, in words for the settings panel and `models list`."""

    mode: str  # "offload" | "group-offload" | "none"
    reason: str
    tile_vae: bool  # decode in tiles and slices: the VAE's peak stays small beside offloading


def choose_memory(setting: str, device: str, free_bytes: int | None,
                  component_bytes: Mapping[str, float], family: str) -> MemoryChoice:
    """The placement for `setting` ("auto" or an explicit mode) on `device`. "auto": everything on
    the device when the weights and the working allowance fit its free memory; else model CPU
    offload when the largest component and the allowance fit; else group offload. A CPU (or a
    device whose free memory torch can't tell) keeps everything where it is."""
    total, largest = sum(component_bytes.values()), max(component_bytes.values(), default=0)
    allowance = WORKING_ALLOWANCE.get(family, 2 * GIB)
    sizes = f"the weights take {total / GIB:.1f} GiB, the largest part {largest / GIB:.1f} GiB"
    if setting != "auto":
        return MemoryChoice(setting, f"memory = {setting} (set); {sizes}", setting != "none")
    if device != "cuda" or free_bytes is None:
        return MemoryChoice("none", f"auto: on {device} the weights stay in its memory; {sizes}",
                            False)
    free = f"{free_bytes / GIB:.1f} GiB free on {device}"
    if total + allowance <= free_bytes:
        return MemoryChoice("none", f"auto: {free}, {sizes}: all on the device", False)
    if largest + allowance <= free_bytes:
        return MemoryChoice("offload", f"auto: {free}, {sizes}: one part on the device at a "
                            "time (model CPU offload)", True)
    hint = "" if family != "kontext" else "; quantize = int8, nf4 or a GGUF file is faster"
    return MemoryChoice("group-offload", f"auto: {free}, {sizes}: even the largest part does "
                        f"not fit, so blocks of layers stream in (group offload){hint}", True)


def device_free_bytes(device: str) -> int | None:
    """Free memory on a CUDA device now (torch's `mem_get_info`), None elsewhere."""
    if device != "cuda" or not torch.cuda.is_available():
        return None
    return int(torch.cuda.mem_get_info()[0])


def component_bytes(parameters: Mapping[str, int], dtype: torch.dtype, quantize: str,
                    family: str) -> dict[str, float]:
    """Bytes each component's weights take at `dtype`, the quantized ones at their width (a
    GGUF file: its size on disk)."""
    width = torch.finfo(dtype).bits / 8
    quantized = QUANTIZED_COMPONENTS.get(family, ())
    sizes = {}
    for name, count in parameters.items():
        if name in quantized and quantize in BYTES_PER_PARAMETER:
            sizes[name] = count * BYTES_PER_PARAMETER[quantize]
        elif name == "transformer" and is_gguf(quantize):
            sizes[name] = float(Path(quantize).expanduser().stat().st_size)
        else:
            sizes[name] = count * width
    return sizes


VARIANT = re.compile(r"\.(fp16|bf16|fp32|non_ema|ema)\.safetensors$")


def stored_parameters(folder: Path) -> dict[str, int]:
    """Parameters of each component of a diffusers folder, read from its safetensors headers
    (no weights loaded); variant files (`*.fp16.safetensors`) beside the main ones are left
    out, shards are added up."""
    from safetensors import safe_open

    counts: dict[str, int] = {}
    for file in sorted(folder.glob("*/*.safetensors")):
        if VARIANT.search(file.name):
            continue
        with safe_open(str(file), "pt") as weights:
            total = sum(_numel(weights.get_slice(key).get_shape()) for key in weights.keys())
        counts[file.parent.name] = counts.get(file.parent.name, 0) + total
    return counts


def _numel(shape: list[int]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def is_gguf(quantize: str) -> bool:
    return quantize.lower().endswith(".gguf")


def quantization_config(quantize: str, family: str, dtype: torch.dtype) -> Any:
    """diffusers' `PipelineQuantizationConfig` for int8 / fp8 (torchao weight-only) or nf4
    (bitsandbytes 4-bit NF4, CUDA only) on the family's denoiser (and Kontext's T5); None for
    none and for a GGUF file (`gguf_transformer` loads that)."""
    if quantize == "none" or is_gguf(quantize):
        return None
    import diffusers
    import transformers
    from diffusers import PipelineQuantizationConfig

    mapping = {}
    for component in QUANTIZED_COMPONENTS[family]:
        library = transformers if component.startswith("text_encoder") else diffusers
        mapping[component] = _backend_config(library, quantize, dtype)
    return PipelineQuantizationConfig(quant_mapping=mapping)


def _backend_config(library: Any, quantize: str, dtype: torch.dtype) -> Any:
    if quantize == "nf4":
        if not torch.cuda.is_available():
            raise ValueError("quantize = nf4 runs on CUDA only (bitsandbytes); on this machine "
                             "use int8 or fp8 (torchao), which run on the CPU too")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as exc:
            raise ValueError("quantize = nf4 needs bitsandbytes: pip install "
                             "'promptartisan[quantize]'") from exc
        return library.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                          bnb_4bit_compute_dtype=dtype)
    try:
        from torchao.quantization import Float8WeightOnlyConfig, Int8WeightOnlyConfig
    except ImportError as exc:
        raise ValueError(f"quantize = {quantize} needs torchao: pip install "
                         "'promptartisan[quantize]'") from exc

    weights = Int8WeightOnlyConfig() if quantize == "int8" else Float8WeightOnlyConfig()
    return library.TorchAoConfig(weights)


def gguf_transformer(path: str, source: str, dtype: torch.dtype) -> Any:
    """FLUX.1 Kontext's transformer from a GGUF file (the original BFL layout, as the common
    Kontext GGUF files have it, or diffusers' own), its weights kept quantized and computed in
    `dtype`; the config comes from the model's `transformer` folder."""
    from diffusers import FluxTransformer2DModel, GGUFQuantizationConfig

    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(f"quantize: no GGUF file {file}")
    return FluxTransformer2DModel.from_single_file(
        str(file), quantization_config=GGUFQuantizationConfig(compute_dtype=dtype),
        config=source, subfolder="transformer", dtype=dtype)


def place(pipe: Any, choice: MemoryChoice, device: str) -> Any:
    """Put `pipe` where `choice` says: `.to(device)`, `enable_model_cpu_offload`, or
    `enable_group_offload` (leaf level on CUDA streams, so the next layer loads while one runs;
    block by block elsewhere); VAE tiling and slicing with either offload."""
    target = torch.device(device)
    if choice.mode == "none":
        return pipe.to(target)
    if choice.mode == "offload":
        pipe.enable_model_cpu_offload(device=target)
    else:
        streams = target.type == "cuda"
        pipe.enable_group_offload(
            onload_device=target, offload_device=torch.device("cpu"),
            offload_type="leaf_level" if streams else "block_level",
            num_blocks_per_group=None if streams else 1, use_stream=streams)
    if choice.tile_vae:
        pipe.vae.enable_tiling()
        pipe.vae.enable_slicing()
    return pipe

"""Adapter files the adapter tests load as users load theirs: a random LoRA on the attention
projections written by PEFT and diffusers' `save_lora_weights`, and a GGUF file of the tiny
Kontext transformer written by the gguf package (Q8_0 where a row fits its 32-value blocks)."""

from __future__ import annotations

import copy
from pathlib import Path

import gguf
import numpy as np
import torch
from diffusers import FluxKontextPipeline, FluxTransformer2DModel
from diffusers.loaders import StableDiffusionLoraLoaderMixin, StableDiffusionXLLoraLoaderMixin
from peft import LoraConfig, get_peft_model_state_dict

# Both streams' projections in the MMDiT, the UNet's self- and cross-attention ones.
PROJECTIONS = {"unet": ["to_q", "to_k", "to_v", "to_out.0"],
               "transformer": ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj",
                               "add_v_proj", "to_add_out"]}
SAVE = {"sd15": StableDiffusionLoraLoaderMixin, "sdxl": StableDiffusionXLLoraLoaderMixin,
        "kontext": FluxKontextPipeline}


def write_random_lora(denoiser: torch.nn.Module, family: str, out: Path, rank: int = 4) -> Path:
    """A LoRA of `rank` with random A and B (PEFT's init would make B zero, a LoRA that changes
    nothing) on the denoiser's attention projections, saved as users get them: one
    `pytorch_lora_weights.safetensors`. `denoiser` is left as it was."""
    kind = "transformer" if isinstance(denoiser, FluxTransformer2DModel) else "unet"
    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=PROJECTIONS[kind],
                        init_lora_weights=False)
    torch.manual_seed(7)
    wrapped = copy.deepcopy(denoiser)
    wrapped.add_adapter(config, adapter_name="written")
    layers = get_peft_model_state_dict(wrapped, adapter_name="written")
    SAVE[family].save_lora_weights(str(out), **{f"{kind}_lora_layers": layers})
    return out / "pytorch_lora_weights.safetensors"


def write_gguf_transformer(transformer: FluxTransformer2DModel, path: Path) -> Path:
    """`transformer`'s weights in a GGUF file with diffusers' key names: matrices whose rows fill
    Q8_0's 32-value blocks quantized, the rest float32 (as the published Kontext files keep
    norms and biases)."""
    writer = gguf.GGUFWriter(str(path), arch="flux")
    block = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0]
    for name, tensor in transformer.state_dict().items():
        values = tensor.detach().float().numpy()
        if values.ndim == 2 and values.shape[-1] % block == 0:
            quantized = gguf.quants.quantize(values, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, quantized, raw_shape=quantized.shape,
                              raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(name, np.ascontiguousarray(values))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path

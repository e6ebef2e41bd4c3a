"""What the UNet families (SD1.5 and SDXL InstructPix2Pix) share beyond every family's
region_pass.py: the UNet they can drive, their checks, the noise level eDiff-I's boost is
scaled by, the scheduler's step arguments and initial noise, latent blending through the
scheduler's `add_noise`, InstructPix2Pix's three-branch guidance and CLIP's 77-token chunks.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import UNet2DConditionModel
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPTokenizer

from promptartisan.engine.region_pass import RegionCall, RegionPassMixin
from promptartisan.engine.regions import Region, attention_shapes, label_maps

# eDiff-I's w. Paint-with-words' reference runs use 0.4 × a per-word strength of 0.5–1.5 to pull
# each word into its area against every other word of one shared prompt. Here routing already
# gives each region its own prompt alone, so the boost only has to draw attention from the start
# token (the attention sink) to the instruction's words: the low end of that range is enough,
# and a smaller w keeps InstructPix2Pix's 7.5× text guidance from over-saturating the edit.
DEFAULT_ATTENTION_BOOST = 0.3
# The boost grows with log(1 + σ). The highest σ a schedule shipped with diffusers starts from is
# CosXL's 120 (EDM's 80, SD1.5's 14.6); a zero-terminal-SNR schedule starts from σ = ∞. Capped
# here, the boost stays finite and at most as strong as at EDM's start.
MAX_NOISE_LEVEL = 100.0
# The UNet blocks whose attention layers the processors control, at the resolutions
# `attention_shapes` predicts (stride-2 downsamplers); other blocks attend elsewhere or differently.
CONTROLLED_BLOCKS = {"CrossAttnDownBlock2D", "DownBlock2D", "UNetMidBlock2DCrossAttn",
                     "CrossAttnUpBlock2D", "UpBlock2D"}


class UNetPassMixin(RegionPassMixin):
    """A UNet family's pipeline: it has `unet`, `vae`, `scheduler`, `image_processor` and
    `vae_scale_factor`, as diffusers' do, and names the `addition_embed_type` its UNet must
    have (`unet_conditioning`)."""

    unet_conditioning: str | None = None
    _callback_tensor_inputs: list[str] = ["latents", "prompt_embeds", "image_latents"]

    def check_call(self, image: PIL.Image.Image | np.ndarray, regions: Sequence[Region],
                   num_inference_steps: int, blend_steps: int | None, feather: int,
                   attention_boost: float, max_regions: int, output_type: str,
                   callback_on_step_end_tensor_inputs: Sequence[str]) -> RegionCall:
        """Every check of a call, before any model runs, and the composite label maps (design
        step 2): a layout that can't be routed fails here too."""
        check_unet(self.unet, self.unet_conditioning)
        source, regions, masks, groups, blend_steps = self.check_regions(
            image, regions, num_inference_steps, blend_steps, feather, max_regions, output_type,
            callback_on_step_end_tensor_inputs)
        if attention_boost < 0:
            raise ValueError("attention_boost must be ≥ 0")
        scheduler = type(self.scheduler).__name__
        if blend_steps > 0 and not hasattr(self.scheduler, "add_noise"):
            raise ValueError(f"{scheduler} can't noise the source for latent blending: pass "
                             f"blend_steps=0")
        if attention_boost > 0 and not any(hasattr(self.scheduler, name)
                                           for name in ("sigmas", "alphas_cumprod")):
            raise ValueError(f"{scheduler} gives no noise level to scale the attention boost by: "
                             f"pass attention_boost=0")
        height, width = self.image_processor.get_default_height_width(source)
        shapes = attention_shapes(height // self.vae_scale_factor, width // self.vae_scale_factor,
                                  len(self.unet.config.block_out_channels),
                                  round_up=self.unet.config.downsample_padding == 1)
        maps = label_maps(torch.from_numpy(masks), [r.order for r in regions], groups, shapes)
        return RegionCall(source, regions, masks, maps, height, width, blend_steps)

    def noise_level(self, index: int, timestep: torch.Tensor) -> float:
        """The noise level σ of loop iteration `index`, which eDiff-I's boost is scaled by: the
        scheduler's own `sigmas[index]` where it keeps them (the Karras-style and EDM schedulers,
        whose timesteps are no index into ᾱ; KDPM2's second call reads its step's σ, not the
        interpolated one), else sqrt((1 − ᾱ_t) / ᾱ_t); capped at MAX_NOISE_LEVEL."""
        sigmas = getattr(self.scheduler, "sigmas", None)
        if sigmas is not None and index < len(sigmas):
            sigma = float(sigmas[index])
        else:
            alpha = float(self.scheduler.alphas_cumprod[int(timestep.round())])
            sigma = math.sqrt((1 - alpha) / alpha) if alpha > 0 else math.inf
        return min(max(sigma, 0.0), MAX_NOISE_LEVEL)

    # As diffusers' StableDiffusionPipeline.prepare_extra_step_kwargs, which stock uses.
    def prepare_extra_step_kwargs(self, generator: torch.Generator | None, eta: float
                                  ) -> dict[str, Any]:
        """`eta` and `generator` for schedulers whose `step` takes them, as stock passes them
        (η is DDIM's and TCD's stochasticity; the other schedulers have no such argument)."""
        accepted = set(inspect.signature(self.scheduler.step).parameters)
        extra_step_kwargs: dict[str, Any] = {}
        if "eta" in accepted:
            extra_step_kwargs["eta"] = eta
        if "generator" in accepted:
            extra_step_kwargs["generator"] = generator
        return extra_step_kwargs

    def prepare_noise(self, shape: tuple[int, ...], generator: torch.Generator | None,
                      latents: torch.Tensor | None, device: torch.device, dtype: torch.dtype
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """The initial noise (the caller's `latents`, else drawn from `generator`, as stock draws
        it), which blending noises the source with, and the first latents: the noise at the
        scheduler's initial σ."""
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        noise = latents.to(device=device, dtype=dtype)
        return noise, noise * self.scheduler.init_noise_sigma

    def blend_background(self, latents: torch.Tensor, source_latents: torch.Tensor,
                         noise: torch.Tensor, inside: torch.Tensor, timesteps: torch.Tensor,
                         index: int) -> torch.Tensor:
        """Latent blending (design step 6): outside the regions, the source at the noise level
        of the step after `index` (the source itself after the last one)."""
        background = (source_latents if index + 1 == len(timesteps) else
                      self.scheduler.add_noise(source_latents, noise,
                                               timesteps[index + 1:index + 2]))
        return latents * inside + background * (1 - inside)


def guide(noise_pred: torch.Tensor, guidance_scale: float, image_guidance_scale: float
          ) -> torch.Tensor:
    """InstructPix2Pix's guidance from the batch of three (text + image, image only, neither)."""
    text, image_only, uncond = noise_pred.chunk(3)
    return (uncond + guidance_scale * (text - image_only)
            + image_guidance_scale * (image_only - uncond))


def warn_overlong(tokenizer: CLIPTokenizer, prompts: Sequence[str]) -> None:
    """A warning naming each prompt longer than the tokenizer's chunk: CLIP reads 77 tokens."""
    length = tokenizer.model_max_length
    for index, prompt in enumerate(prompts):
        count = len(tokenizer(prompt).input_ids)
        if count > length:
            warnings.warn(f"region {index + 1}'s prompt {prompt!r} is {count} tokens; CLIP "
                          f"reads {length}, the rest is ignored", stacklevel=4)


def tokenize_chunks(tokenizer: CLIPTokenizer, prompts: Sequence[str]
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each prompt on its own chunk of the tokenizer's length (77), then the empty prompt (design
    step 1). Returns the token ids (n + 1, 77) and which positions are word tokens (bool, same
    shape): neither the start token nor the first end token and what follows it (end tokens or
    padding), which eDiff-I's boost raises."""
    length = tokenizer.model_max_length
    tokens = tokenizer(list(prompts) + [""], padding="max_length", max_length=length,
                       truncation=True, return_tensors="pt")
    ends = tokens.attention_mask.sum(dim=1, keepdim=True) - 1  # the first end token
    positions = torch.arange(length)[None]
    return tokens.input_ids, (positions >= 1) & (positions < ends)


def check_unet(unet: UNet2DConditionModel, conditioning: str | None = None) -> None:
    """Refuse a UNet a pipeline can't drive, with the reason, before anything runs: it must be
    an InstructPix2Pix UNet (8 input channels: the noisy latent and the source's latent),
    conditioned on the text and on `conditioning` (its `addition_embed_type`: None for SD1.5,
    "text_time" for SDXL) alone, built of the blocks whose attention the processors control."""
    config = unet.config
    if config.in_channels != 8:
        raise ValueError(f"the UNet takes {config.in_channels} input channels, not 8: "
                         f"PromptArtisan needs an InstructPix2Pix UNet, which reads the noisy "
                         f"latent and the source image's latent (a 4-channel UNet is a "
                         f"text-to-image model)")
    addition = None if config.addition_embed_type == "text" else config.addition_embed_type
    needs = {
        "class_embed_type": config.class_embed_type,
        "num_class_embeds": config.num_class_embeds,
        "addition_embed_type": None if addition == conditioning else addition,
        "encoder_hid_dim_type": None if config.encoder_hid_dim_type == "text_proj"
        else config.encoder_hid_dim_type,
        "attention_type": None if config.attention_type == "default" else config.attention_type,
    }
    extra = [f"{key}={value!r}" for key, value in needs.items() if value is not None]
    if extra:
        family = "SDXL" if conditioning == "text_time" else "SD1.5"
        raise ValueError(f"the UNet needs conditioning besides the text and the source image "
                         f"({', '.join(extra)}), which this pipeline does not provide: it drives "
                         f"{family} InstructPix2Pix UNets (PromptArtisanPipeline: SD1.5, "
                         f"PromptArtisanXLPipeline: SDXL)")
    if conditioning is not None and addition != conditioning:
        raise ValueError(f"the UNet has addition_embed_type={config.addition_embed_type!r}, "
                         f"not {conditioning!r}: PromptArtisanXLPipeline drives SDXL "
                         f"InstructPix2Pix UNets; an SD1.5 one loads with PromptArtisanPipeline")
    blocks = {*config.down_block_types, *config.up_block_types, config.mid_block_type} - {None}
    if not blocks <= CONTROLLED_BLOCKS or config.downsample_padding not in (0, 1):
        raise ValueError(f"the UNet is built of {sorted(blocks)} with downsample_padding="
                         f"{config.downsample_padding}; PromptArtisan's attention control knows "
                         f"{sorted(CONTROLLED_BLOCKS)} with a padding of 0 or 1")

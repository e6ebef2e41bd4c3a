"""PromptArtisanPipeline: n instructions, each bound to its region, in one InstructPix2Pix pass
with Complete Attention Control (DESIGN.md, "The engine", steps 1–7)."""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.pipeline_utils import StableDiffusionMixin
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPTextModel, CLIPTokenizer

from promptartisan.engine.attention import AttentionControl
from promptartisan.engine.regions import (
    Region,
    attention_shapes,
    feather_mask,
    label_maps,
    prepare_regions,
)

# eDiff-I's w. Paint-with-words' reference runs use 0.4 × a per-word strength of 0.5–1.5 to pull
# each word into its area against every other word of one shared prompt. Here routing already
# gives each region its own prompt alone, so the boost only has to draw attention from the start
# token (the attention sink) to the instruction's words: the low end of that range is enough,
# and a smaller w keeps InstructPix2Pix's 7.5× text guidance from over-saturating the edit.
DEFAULT_ATTENTION_BOOST = 0.3
MAX_REGIONS = 8
# The boost grows with log(1 + σ). The highest σ a schedule shipped with diffusers starts from is
# EDM's 80 (SD1.5's is 14.6); a zero-terminal-SNR schedule starts from σ = ∞. Capped here, the
# boost stays finite and at most as strong as at EDM's start.
MAX_NOISE_LEVEL = 100.0
# The UNet blocks whose attention layers the processors control, at the resolutions
# `attention_shapes` predicts (stride-2 downsamplers); other blocks attend elsewhere or differently.
CONTROLLED_BLOCKS = {"CrossAttnDownBlock2D", "DownBlock2D", "UNetMidBlock2DCrossAttn",
                     "CrossAttnUpBlock2D", "UpBlock2D"}


@dataclass
class PromptArtisanPipelineOutput(BaseOutput):
    """`images`: the edited images (PIL list, numpy array or latents, per `output_type`); empty
    when the run was stopped. `interrupted`: a callback stopped it with `pipe.interrupt_run()`."""

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    interrupted: bool = False


class PromptArtisanPipeline(DiffusionPipeline, StableDiffusionMixin):
    """InstructPix2Pix with many instructions, each bound to its own mask, in one pass.

    Loads from any InstructPix2Pix folder or hub id (`from_pretrained`), or reuses a loaded
    `StableDiffusionInstructPix2PixPipeline` with `PromptArtisanPipeline.from_pipe(stock)`. The
    safety checker is not part of it. Its attention processors are installed for a call only, so
    between calls the components remain a plain InstructPix2Pix.
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"
    _callback_tensor_inputs = ["latents", "prompt_embeds", "image_latents"]

    def __init__(self, vae: AutoencoderKL, text_encoder: CLIPTextModel, tokenizer: CLIPTokenizer,
                 unet: UNet2DConditionModel, scheduler: KarrasDiffusionSchedulers) -> None:
        super().__init__()
        check_unet(unet)
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                              scheduler=scheduler)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        self._interrupt = False

    def interrupt_run(self) -> None:
        """Stop the running call after the current step (for a callback: the UI's stop button)."""
        self._interrupt = True

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    def encode_prompts(self, prompts: Sequence[str], device: torch.device
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each prompt on its own 77 tokens, then the empty prompt (design step 1). Returns the
        context (1, 77·(n+1), dim) and which positions are word tokens (bool (n+1, 77)): neither
        the start token nor the end token and its padding."""
        length = self.tokenizer.model_max_length
        for index, prompt in enumerate(prompts):
            count = len(self.tokenizer(prompt).input_ids)
            if count > length:
                warnings.warn(f"region {index + 1}'s prompt {prompt!r} is {count} tokens; CLIP "
                              f"reads {length}, the rest is ignored", stacklevel=3)
        tokens = self.tokenizer(list(prompts) + [""], padding="max_length", max_length=length,
                                truncation=True, return_tensors="pt")
        embeds = self.text_encoder(tokens.input_ids.to(device))[0]
        ends = tokens.attention_mask.sum(dim=1, keepdim=True) - 1  # the first end token
        positions = torch.arange(length)[None]
        words = (positions >= 1) & (positions < ends)
        return embeds.reshape(1, -1, embeds.shape[-1]).to(self.text_encoder.dtype), words

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

    @torch.no_grad()
    def __call__(
        self,
        image: PIL.Image.Image | np.ndarray,
        regions: Sequence[Region],
        num_inference_steps: int = 20,
        guidance_scale: float = 7.5,
        image_guidance_scale: float = 1.5,
        attention_boost: float = DEFAULT_ATTENTION_BOOST,
        blend_steps: int | None = None,
        preserve_background: bool = True,
        feather: int = 8,
        max_regions: int = MAX_REGIONS,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        callback_on_step_end: Callable[..., dict[str, Any]] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> PromptArtisanPipelineOutput:
        """Apply every region's instruction to `image` in one denoising pass.

        `attention_boost`: eDiff-I's w on each region's word tokens (0 disables).
        `blend_steps`: for this many first denoising steps the latent outside the regions is reset
        to the noised source; None means half the steps. A step is counted as stock
        InstructPix2Pix counts it on its progress bar, so a second-order solver (Heun, KDPM2),
        which calls the UNet twice a step, blends as many steps as any other. The first half
        fixes the layout and the low frequencies: holding the background to the source
        trajectory then stops edits leaking into it (colour casts through self-attention);
        freeing it for the second half lets the borders of each edit heal into their
        surroundings instead of looking pasted on.
        `preserve_background`: paste the result into the source through the union of the masks
        feathered over `feather` pixels, so pixels farther away are the source's own, bit for
        bit. `max_regions`: more regions are refused. `eta`: DDIM's η (and TCD's), for schedulers
        that take it, as in stock. `latents`: the initial noise (standard normal), as in
        diffusers. `output_type`: "pil", "np" or "latent" (the final latents,
        neither decoded nor pasted back).
        `callback_on_step_end(pipe, step, timestep, tensors) -> tensors` runs after each UNet
        call, as in stock (`step` counts them); it may call `pipe.interrupt_run()`, and the
        output then has `interrupted=True`, no images.
        """
        # 0. Check inputs.
        check_unet(self.unet)
        source = _source_image(image)
        regions, masks, groups = prepare_regions(regions, source.size, max_regions)
        blend_steps = num_inference_steps // 2 if blend_steps is None else blend_steps
        if num_inference_steps < 1 or blend_steps < 0 or feather < 0 or attention_boost < 0:
            raise ValueError("num_inference_steps must be ≥ 1 and blend_steps, feather and "
                             "attention_boost ≥ 0")
        if output_type not in ("pil", "np", "latent"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'latent', not {output_type!r}")
        scheduler = type(self.scheduler).__name__
        if blend_steps > 0 and not hasattr(self.scheduler, "add_noise"):
            raise ValueError(f"{scheduler} can't noise the source for latent blending: pass "
                             f"blend_steps=0")
        if attention_boost > 0 and not any(hasattr(self.scheduler, name)
                                           for name in ("sigmas", "alphas_cumprod")):
            raise ValueError(f"{scheduler} gives no noise level to scale the attention boost by: "
                             f"pass attention_boost=0")
        unknown = set(callback_on_step_end_tensor_inputs) - set(self._callback_tensor_inputs)
        if unknown:
            raise ValueError(f"callback tensors {sorted(unknown)} are not among "
                             f"{self._callback_tensor_inputs}")
        #    The composite label maps at every attention resolution (design step 2), here so
        #    that a layout that can't be routed fails before any model runs.
        height, width = self.image_processor.get_default_height_width(source)
        shapes = attention_shapes(height // self.vae_scale_factor, width // self.vae_scale_factor,
                                  len(self.unet.config.block_out_channels),
                                  round_up=self.unet.config.downsample_padding == 1)
        maps = label_maps(torch.from_numpy(masks), [r.order for r in regions], groups, shapes)
        self._interrupt = False
        device = self._execution_device
        guided = guidance_scale > 1.0 and image_guidance_scale >= 1.0

        # 1. Embeddings: [c_1, …, c_n, c_null] for the text branch, c_null tiled for the others.
        prompt_embeds, words = self.encode_prompts([r.prompt for r in regions], device)
        dtype = prompt_embeds.dtype
        if guided:
            null = prompt_embeds[:, -self.tokenizer.model_max_length:].repeat(1, len(regions) + 1,
                                                                              1)
            prompt_embeds = torch.cat([prompt_embeds, null, null])

        # 2. Source latents: unscaled to condition the UNet (as InstructPix2Pix was trained),
        #    scaled for blending into the denoised latent.
        pixels = self.image_processor.preprocess(source).to(device=device, dtype=dtype)
        image_latents = self.vae.encode(pixels).latent_dist.mode()
        source_latents = image_latents * self.vae.config.scaling_factor
        if guided:
            image_latents = torch.cat([image_latents, image_latents,
                                       torch.zeros_like(image_latents)])

        # 3. Timesteps and initial noise.
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        if latents is None:
            latents = randn_tensor(source_latents.shape, generator=generator, device=device,
                                   dtype=dtype)
        noise = latents.to(device=device, dtype=dtype)
        latents = noise * self.scheduler.init_noise_sigma

        # 4. Attention control from the label maps, once for the whole call.
        control = AttentionControl(maps, words, attention_boost, device)
        inside = (maps.labels[shapes[0]] > 0).to(device=device, dtype=dtype)[None, None]
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta)
        # As stock counts them: a solver of order k calls the UNet k times a step, after the
        # calls of its warm-up (PNDM's Runge-Kutta start).
        num_warmup_steps = len(timesteps) - num_inference_steps * self.scheduler.order
        steps_done = 0

        # 5. Denoising loop: one UNet call per step for any number of regions.
        original_processors = self.unet.attn_processors
        self.unet.set_attn_processor(control.processors(original_processors))
        try:
            with self.progress_bar(total=num_inference_steps) as progress_bar:
                for i, t in enumerate(timesteps):
                    if self._interrupt:
                        break
                    control.sigma = self.noise_level(i, t) if attention_boost > 0 else 0.0
                    model_input = torch.cat([latents] * 3) if guided else latents
                    model_input = torch.cat(
                        [self.scheduler.scale_model_input(model_input, t), image_latents], dim=1)
                    control.set_context(self.unet, prompt_embeds)
                    noise_pred = self.unet(model_input, t, encoder_hidden_states=prompt_embeds,
                                           return_dict=False)[0]
                    if guided:
                        text, image_only, uncond = noise_pred.chunk(3)
                        noise_pred = (uncond + guidance_scale * (text - image_only)
                                      + image_guidance_scale * (image_only - uncond))
                    latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs,
                                                  return_dict=False)[0]
                    step_ends = i + 1 == len(timesteps) or (
                        i + 1 > num_warmup_steps and (i + 1) % self.scheduler.order == 0)
                    steps_done += step_ends

                    # 6. Latent blending: outside the regions, the source at the next noise level,
                    #    after each of the first `blend_steps` denoising steps.
                    if step_ends and steps_done <= blend_steps:
                        background = (source_latents if i + 1 == len(timesteps) else
                                      self.scheduler.add_noise(source_latents, noise,
                                                               timesteps[i + 1:i + 2]))
                        latents = latents * inside + background * (1 - inside)

                    if callback_on_step_end is not None:
                        tensors = {"latents": latents, "prompt_embeds": prompt_embeds,
                                   "image_latents": image_latents}
                        outputs = callback_on_step_end(
                            self, i, t, {k: tensors[k] for k in callback_on_step_end_tensor_inputs})
                        latents = outputs.pop("latents", latents)
                        prompt_embeds = outputs.pop("prompt_embeds", prompt_embeds)
                        image_latents = outputs.pop("image_latents", image_latents)
                    if step_ends:
                        progress_bar.update()
        finally:
            self.unet.set_attn_processor(original_processors)

        interrupted = self._interrupt
        if interrupted or output_type == "latent":
            self.maybe_free_model_hooks()
            return PromptArtisanPipelineOutput(images=[] if interrupted else latents,
                                               interrupted=interrupted)

        # 7. Decode at the source's size; paste back through the feathered union of the masks.
        decoded = self.vae.decode(latents / self.vae.config.scaling_factor, return_dict=False)[0]
        if decoded.shape[-2:] != (source.height, source.width):
            decoded = F.interpolate(decoded.float(), size=(source.height, source.width),
                                    mode="bicubic", antialias=True, align_corners=False)
        result = self.image_processor.postprocess(decoded, output_type="np")
        if preserve_background:
            alpha = feather_mask(masks.any(axis=0), feather)[None, :, :, None]
            original = np.asarray(source, dtype=np.float32)[None] / 255.0
            result = np.where(alpha > 0, alpha * result + (1.0 - alpha) * original, original)
        self.maybe_free_model_hooks()
        images = self.image_processor.numpy_to_pil(result) if output_type == "pil" else result
        return PromptArtisanPipelineOutput(images=images, interrupted=False)


def _source_image(image: PIL.Image.Image | np.ndarray) -> PIL.Image.Image:
    """The image to edit as RGB: a PIL image, or an (H, W, 3) array, uint8 or float in [0, 1]."""
    if isinstance(image, PIL.Image.Image):
        source = image.convert("RGB")
    elif isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[-1] == 3:
        if image.dtype != np.uint8:
            image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
        source = PIL.Image.fromarray(image)
    else:
        raise ValueError("image must be a PIL image or an (height, width, 3) array")
    if min(source.size) < 8:
        raise ValueError(f"image is {source.width}×{source.height}; it must be at least 8×8")
    return source


def check_unet(unet: UNet2DConditionModel) -> None:
    """Refuse a UNet this pipeline can't drive, with the reason, before anything runs: it must be
    an InstructPix2Pix UNet (8 input channels: the noisy latent and the source's latent),
    conditioned on the text alone, built of the blocks whose attention the processors control."""
    config = unet.config
    if config.in_channels != 8:
        raise ValueError(f"the UNet takes {config.in_channels} input channels, not 8: "
                         f"PromptArtisan needs an InstructPix2Pix UNet, which reads the noisy "
                         f"latent and the source image's latent (a 4-channel UNet is a "
                         f"text-to-image model)")
    needs = {
        "class_embed_type": config.class_embed_type,
        "num_class_embeds": config.num_class_embeds,
        "addition_embed_type": None if config.addition_embed_type == "text"
        else config.addition_embed_type,
        "encoder_hid_dim_type": None if config.encoder_hid_dim_type == "text_proj"
        else config.encoder_hid_dim_type,
        "attention_type": None if config.attention_type == "default" else config.attention_type,
    }
    extra = [f"{key}={value!r}" for key, value in needs.items() if value is not None]
    if extra:
        raise ValueError(f"the UNet needs conditioning besides the text and the source image "
                         f"({', '.join(extra)}), which PromptArtisan does not provide: it drives "
                         f"SD1.5-style InstructPix2Pix UNets")
    blocks = {*config.down_block_types, *config.up_block_types, config.mid_block_type} - {None}
    if not blocks <= CONTROLLED_BLOCKS or config.downsample_padding not in (0, 1):
        raise ValueError(f"the UNet is built of {sorted(blocks)} with downsample_padding="
                         f"{config.downsample_padding}; PromptArtisan's attention control knows "
                         f"{sorted(CONTROLLED_BLOCKS)} with a padding of 0 or 1")

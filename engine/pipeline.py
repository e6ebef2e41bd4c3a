"""PromptArtisanPipeline: n instructions, each bound to its region, in one InstructPix2Pix pass
with Complete Attention Control (DESIGN.md, "The engine", steps 1–7): the SD1.5 family. What it
shares with every family is region_pass.py, with the SDXL family unet_pass.py."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    StableDiffusionInstructPix2PixPipeline,
    UNet2DConditionModel,
)
from diffusers.image_processor import VaeImageProcessor
from diffusers.loaders import StableDiffusionLoraLoaderMixin
from diffusers.pipelines.pipeline_utils import StableDiffusionMixin
from diffusers.schedulers import KarrasDiffusionSchedulers
from transformers import CLIPTextModel, CLIPTokenizer

from promptartisan.engine.attention import AttentionControl
from promptartisan.engine.region_pass import (
    MAX_REGIONS,
    PromptArtisanPipelineOutput,
    is_step_end,
    routed,
)
from promptartisan.engine.regions import Region
from promptartisan.engine.unet_pass import (
    DEFAULT_ATTENTION_BOOST,
    UNetPassMixin,
    check_unet,
    guide,
    tokenize_chunks,
    warn_overlong,
)


class PromptArtisanPipeline(UNetPassMixin, DiffusionPipeline, StableDiffusionMixin,
                            StableDiffusionLoraLoaderMixin):
    """InstructPix2Pix (SD1.5) with many instructions, each bound to its own mask, in one pass.

    Loads from any InstructPix2Pix folder or hub id (`from_pretrained`), or reuses a loaded
    `StableDiffusionInstructPix2PixPipeline` with `PromptArtisanPipeline.from_pipe(stock)`. The
    safety checker is not part of it. Its attention processors are installed for a call only, so
    between calls the components remain a plain InstructPix2Pix.
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"

    def __init__(self, vae: AutoencoderKL, text_encoder: CLIPTextModel, tokenizer: CLIPTokenizer,
                 unet: UNet2DConditionModel, scheduler: KarrasDiffusionSchedulers) -> None:
        super().__init__()
        check_unet(unet, self.unet_conditioning)
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                              scheduler=scheduler)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)

    default_guidance_scale = 7.5
    """Text guidance when the settings name none: stock InstructPix2Pix's default."""

    @classmethod
    def working_size_for(cls, config: Mapping[str, Any]) -> int:
        """The long side to edit at, from the pipeline's config: 512 px, the size
        InstructPix2Pix and its fine-tunes (MagicBrush) were trained at."""
        return 512

    @property
    def default_working_size(self) -> int:
        return self.working_size_for(self.config)

    def stock_pipeline(self) -> StableDiffusionInstructPix2PixPipeline:
        """Diffusers' own pipeline on these components: the sequential baseline runs it."""
        return StableDiffusionInstructPix2PixPipeline(
            **self.components, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False)

    def encode_prompts(self, prompts: Sequence[str], device: torch.device
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each prompt on its own 77 tokens, then the empty prompt (design step 1). Returns the
        context (1, 77·(n+1), dim) and which positions are word tokens (bool (n+1, 77))."""
        warn_overlong(self.tokenizer, prompts)
        input_ids, words = tokenize_chunks(self.tokenizer, prompts)
        embeds = self.text_encoder(input_ids.to(device))[0]
        return embeds.reshape(1, -1, embeds.shape[-1]).to(self.text_encoder.dtype), words

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
        # 0. Check inputs; the composite label maps at every attention resolution (step 2).
        call = self.check_call(image, regions, num_inference_steps, blend_steps, feather,
                               attention_boost, max_regions, output_type,
                               callback_on_step_end_tensor_inputs)
        device = self._execution_device
        guided = guidance_scale > 1.0 and image_guidance_scale >= 1.0

        # 1. Embeddings: [c_1, …, c_n, c_null] for the text branch, c_null tiled for the others.
        prompt_embeds, words = self.encode_prompts([r.prompt for r in call.regions], device)
        dtype = prompt_embeds.dtype
        if guided:
            null = prompt_embeds[:, -self.tokenizer.model_max_length:].repeat(
                1, len(call.regions) + 1, 1)
            prompt_embeds = torch.cat([prompt_embeds, null, null])

        # 2. Source latents: unscaled to condition the UNet (as InstructPix2Pix was trained),
        #    scaled for blending into the denoised latent.
        pixels = self.image_processor.preprocess(call.source).to(device=device, dtype=dtype)
        image_latents = self.vae.encode(pixels).latent_dist.mode()
        source_latents = image_latents * self.vae.config.scaling_factor
        if guided:
            image_latents = torch.cat([image_latents, image_latents,
                                       torch.zeros_like(image_latents)])

        # 3. Timesteps and initial noise.
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        noise, latents = self.prepare_noise(source_latents.shape, generator, latents, device,
                                            dtype)

        # 4. Attention control from the label maps, once for the whole call.
        control = AttentionControl(call.maps, words, attention_boost, device)
        inside = call.inside(device, dtype)
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta)
        steps_done = 0

        # 5. Denoising loop: one UNet call per step for any number of regions.
        with routed(self.unet, control), self.progress_bar(total=num_inference_steps) as bar:
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
                    noise_pred = guide(noise_pred, guidance_scale, image_guidance_scale)
                latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs,
                                              return_dict=False)[0]
                step_ends = is_step_end(i, timesteps, num_inference_steps, self.scheduler.order)
                steps_done += step_ends

                # 6. Latent blending after each of the first `blend_steps` denoising steps.
                if step_ends and steps_done <= call.blend_steps:
                    latents = self.blend_background(latents, source_latents, noise, inside,
                                                    timesteps, i)

                if callback_on_step_end is not None:
                    latents, prompt_embeds, image_latents = self.step_callback(
                        callback_on_step_end, i, t, callback_on_step_end_tensor_inputs,
                        latents=latents, prompt_embeds=prompt_embeds, image_latents=image_latents)
                if step_ends:
                    bar.update()

        if self._interrupt or output_type == "latent":
            self.maybe_free_model_hooks()
            return PromptArtisanPipelineOutput(images=[] if self._interrupt else latents,
                                               interrupted=self._interrupt)

        # 7. Decode; at the source's size, pasted back through the feathered union of the masks.
        decoded = self.vae.decode(latents / self.vae.config.scaling_factor, return_dict=False)[0]
        images = self.paste_back(decoded, call, preserve_background, feather, output_type)
        self.maybe_free_model_hooks()
        return PromptArtisanPipelineOutput(images=images, interrupted=False)

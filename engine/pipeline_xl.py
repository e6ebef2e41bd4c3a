"""PromptArtisanXLPipeline: the single pass on the SDXL InstructPix2Pix family (768–1024 px):
diffusers/sdxl-instructpix2pix-768, CosXL Edit (EDM, v-prediction), HQ-Edit. Regions, label maps,
attention control, guidance, blending and paste-back are the SD1.5 pipeline's (region_pass.py,
unet_pass.py);
what differs is the conditioning: two text encoders, the pooled text embedding and the time ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    StableDiffusionXLInstructPix2PixPipeline,
    UNet2DConditionModel,
)
from diffusers.image_processor import VaeImageProcessor
from diffusers.loaders import StableDiffusionXLLoraLoaderMixin
from diffusers.pipelines.pipeline_utils import StableDiffusionMixin
from diffusers.schedulers import KarrasDiffusionSchedulers
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

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

# How the instructions are joined into the one prompt whose pooled embedding conditions the
# time embedding (see `encode_pooled`).
POOLED_JOIN = ", "


class PromptArtisanXLPipeline(UNetPassMixin, DiffusionPipeline, StableDiffusionMixin,
                              StableDiffusionXLLoraLoaderMixin):
    """SDXL InstructPix2Pix with many instructions, each bound to its own mask, in one pass.

    Loads from any SDXL InstructPix2Pix folder or hub id (`from_pretrained`), or reuses a loaded
    `StableDiffusionXLInstructPix2PixPipeline` with `PromptArtisanXLPipeline.from_pipe(stock)`
    (for CosXL Edit, which stock loads with `from_single_file(..., is_cosxl_edit=True)`, pass
    `is_cosxl_edit=True` to `from_pipe` too: stock keeps it outside its config). There is no
    watermarker. `force_zeros_for_empty_prompt` and `is_cosxl_edit` mean what they mean in
    stock, and are saved with the pipeline's config.
    """

    model_cpu_offload_seq = "text_encoder->text_encoder_2->unet->vae"
    unet_conditioning = "text_time"

    def __init__(self, vae: AutoencoderKL, text_encoder: CLIPTextModel,
                 text_encoder_2: CLIPTextModelWithProjection, tokenizer: CLIPTokenizer,
                 tokenizer_2: CLIPTokenizer, unet: UNet2DConditionModel,
                 scheduler: KarrasDiffusionSchedulers, force_zeros_for_empty_prompt: bool = True,
                 is_cosxl_edit: bool = False) -> None:
        super().__init__()
        check_unet(unet, self.unet_conditioning)
        self.register_modules(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                              tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet,
                              scheduler=scheduler)
        self.register_to_config(force_zeros_for_empty_prompt=force_zeros_for_empty_prompt,
                                is_cosxl_edit=is_cosxl_edit)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)

    default_guidance_scale = 5.0
    """Text guidance when the settings name none: stock SDXL InstructPix2Pix's default."""

    @classmethod
    def working_size_for(cls, config: Mapping[str, Any]) -> int:
        """The long side to edit at, from the pipeline's config: 1024 px for CosXL Edit (trained
        at 1024), else 768, the size diffusers/sdxl-instructpix2pix-768 was trained at (not the
        UNet's sample size, which a model tuned from SDXL base may keep at base's 1024 px)."""
        return 1024 if config.get("is_cosxl_edit") else 768

    @property
    def default_working_size(self) -> int:
        return self.working_size_for(self.config)

    def stock_pipeline(self) -> StableDiffusionXLInstructPix2PixPipeline:
        """Diffusers' own pipeline on these components: the sequential baseline runs it."""
        return StableDiffusionXLInstructPix2PixPipeline(
            **self.components, add_watermarker=False,
            force_zeros_for_empty_prompt=self.config.force_zeros_for_empty_prompt,
            is_cosxl_edit=self.config.is_cosxl_edit)

    def encode_prompts(self, prompts: Sequence[str], device: torch.device
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each prompt on its own 77 tokens through both text encoders (their penultimate hidden
        states side by side, as stock reads them: 768 + 1280 = 2048 wide), then the null chunk:
        what stock's image-only and unconditional branches read (zeros when
        `force_zeros_for_empty_prompt`, then not encoded at all; else the empty prompt's
        encoding), so a background pixel reads in the text branch exactly what it reads in the
        others and no instruction reaches it. Returns the context (1, 77·(n+1), 2048) and the
        word tokens (bool (n+1, 77))."""
        warn_overlong(self.tokenizer, prompts)
        zeros = self.config.force_zeros_for_empty_prompt
        input_ids, words = tokenize_chunks(self.tokenizer, prompts)
        input_ids_2, _ = tokenize_chunks(self.tokenizer_2, prompts)
        if zeros:  # the empty prompt's chunk is replaced by zeros: nothing to encode
            input_ids, input_ids_2 = input_ids[:-1], input_ids_2[:-1]
        hidden = self.text_encoder(input_ids.to(device), output_hidden_states=True)
        hidden_2, _ = self.encode_2(input_ids_2, device)
        embeds = torch.cat([hidden.hidden_states[-2], hidden_2], dim=-1)
        if zeros:
            embeds = torch.cat([embeds, torch.zeros_like(embeds[:1])])
        return embeds.reshape(1, -1, embeds.shape[-1]).to(self.text_encoder_2.dtype), words

    def encode_pooled(self, prompts: Sequence[str], device: torch.device
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """The pooled text embeddings (1, 1280) of the text branch and of the null branches.

        The pooled embedding enters the time embedding, which every ResNet block adds to every
        pixel: it can't be routed to a region. The text branch's is the instructions joined
        into one prompt ("make the sky a sunset, turn the dog into a cheetah"), the prompt a
        person would give stock for the same request, because
        - with one instruction it is that instruction's, so n = 1 equals stock for any mask;
        - the UNet always saw the instruction's pooled embedding in training (diffusers'
          train_instruct_pix2pix_sdxl.py drops the text its cross-attention reads for
          classifier-free guidance, never the pooled embedding), so never a null pooled
          embedding beside a real text; the null one would also hold every edit's text branch
          to the image-only branch's global conditioning, weakening each instruction
          everywhere;
        - what the joined prompt adds to the background through the time embedding is what
          latent blending (the first half of the steps) and the paste-back (beyond the
          feather) hold back anyway.
        The null branches' is stock's negative one: zeros with `force_zeros_for_empty_prompt`
        (the empty prompt is then not encoded), else the empty prompt's. Within a call, a
        sequence `encode_prompts` already ran through ViT-bigG (the one instruction at n = 1,
        the empty prompt) is not encoded again."""
        zeros = self.config.force_zeros_for_empty_prompt
        tokens = self.tokenizer_2([POOLED_JOIN.join(prompts), *([] if zeros else [""])],
                                  padding="max_length", truncation=True,
                                  max_length=self.tokenizer_2.model_max_length,
                                  return_tensors="pt")
        _, pooled = self.encode_2(tokens.input_ids, device)
        text = pooled[:1]
        return text, torch.zeros_like(text) if zeros else pooled[1:]

    def encode_2(self, input_ids: torch.Tensor, device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """ViT-bigG's penultimate hidden states (rows, 77, 1280) and pooled embeddings (rows,
        1280) of each row of token ids; inside `one_encoding`, rows it has seen in this call
        are taken from there, and the others encoded in one batch."""
        seen = self._encoded_2 if self._encoded_2 is not None else {}
        keys = [tuple(row.tolist()) for row in input_ids]
        new = [index for index, key in enumerate(keys) if key not in seen]
        if new:
            output = self.text_encoder_2(input_ids[new].to(device), output_hidden_states=True)
            for row, index in enumerate(new):
                seen[keys[index]] = (output.hidden_states[-2][row], output.text_embeds[row])
        hidden, pooled = zip(*(seen[key] for key in keys), strict=True)
        return torch.stack(hidden), torch.stack(pooled).to(self.text_encoder_2.dtype)

    _encoded_2: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] | None = None

    @contextmanager
    def one_encoding(self) -> Iterator[None]:
        """One call's text encoding: ViT-bigG encodes each distinct sequence once (the weights
        may change between calls, a LoRA loaded, so nothing is kept after it)."""
        self._encoded_2 = {}
        try:
            yield
        finally:
            self._encoded_2 = None

    def time_ids(self, original_size: tuple[int, int], crops_coords_top_left: tuple[int, int],
                 target_size: tuple[int, int]) -> torch.Tensor:
        """SDXL's micro-conditioning (original size, crop's top left, target size), (1, 6);
        a UNet whose added embedding expects another width is refused, as in stock."""
        time_ids = [*original_size, *crops_coords_top_left, *target_size]
        passed = (self.unet.config.addition_time_embed_dim * len(time_ids)
                  + self.text_encoder_2.config.projection_dim)
        expected = self.unet.add_embedding.linear_1.in_features
        if passed != expected:
            raise ValueError(f"the UNet's added embedding takes {expected} values, but the time "
                             f"ids and text_encoder_2's projection give {passed}: the UNet and "
                             f"the text encoder don't belong together")
        return torch.tensor([time_ids], dtype=self.text_encoder_2.dtype)

    @contextmanager
    def vae_in_float32(self) -> Iterator[None]:
        """Stock's fp16 upcast: a float16 VAE whose config says `force_upcast` (SDXL's VAE
        overflows in float16) runs in float32 here and goes back to float16 afterwards."""
        upcast = self.vae.dtype == torch.float16 and self.vae.config.force_upcast
        if upcast:
            self.vae.to(dtype=torch.float32)
        try:
            yield
        finally:
            if upcast:
                self.vae.to(dtype=torch.float16)

    def latents_scale(self, device: torch.device, dtype: torch.dtype
                      ) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        """(mean, scale) between the VAE's latents z and the denoised ones: (z − mean) · scale
        and back, as stock decodes (per-channel mean and std where the VAE's config has them)."""
        config = self.vae.config
        mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
        if mean is None or std is None:
            return 0.0, config.scaling_factor
        mean = torch.tensor(mean).view(1, -1, 1, 1).to(device, dtype)
        return mean, config.scaling_factor / torch.tensor(std).view(1, -1, 1, 1).to(device, dtype)

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
        original_size: tuple[int, int] | None = None,
        crops_coords_top_left: tuple[int, int] = (0, 0),
        target_size: tuple[int, int] | None = None,
        output_type: str = "pil",
        callback_on_step_end: Callable[..., dict[str, Any]] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> PromptArtisanPipelineOutput:
        """Apply every region's instruction to `image` in one denoising pass.

        The arguments are PromptArtisanPipeline's (see there), and SDXL's micro-conditioning:
        `original_size` and `target_size` (height, width), default the working size, and
        `crops_coords_top_left`, as in stock.
        """
        # 0. Check inputs; the composite label maps at every attention resolution (step 2).
        call = self.check_call(image, regions, num_inference_steps, blend_steps, feather,
                               attention_boost, max_regions, output_type,
                               callback_on_step_end_tensor_inputs)
        size = (call.height, call.width)
        add_time_ids = self.time_ids(original_size or size, crops_coords_top_left,
                                     target_size or size)
        device = self._execution_device
        guided = guidance_scale > 1.0 and image_guidance_scale >= 1.0

        # 1. Embeddings: [c_1, …, c_n, c_null] for the text branch, c_null tiled for the others;
        #    the pooled embedding and the time ids for the time embedding.
        prompts = [r.prompt for r in call.regions]
        with self.one_encoding():
            prompt_embeds, words = self.encode_prompts(prompts, device)
            add_text_embeds, null_pooled = self.encode_pooled(prompts, device)
        dtype = prompt_embeds.dtype
        add_time_ids = add_time_ids.to(device)
        if guided:
            null = prompt_embeds[:, -self.tokenizer.model_max_length:].repeat(
                1, len(call.regions) + 1, 1)
            prompt_embeds = torch.cat([prompt_embeds, null, null])
            add_text_embeds = torch.cat([add_text_embeds, null_pooled, null_pooled])
            add_time_ids = add_time_ids.repeat(3, 1)

        # 2. Source latents: the VAE's to condition the UNet (scaled for CosXL Edit, as it was
        #    trained), normalised as the denoised latent for blending.
        pixels = self.image_processor.preprocess(call.source).to(device=device, dtype=dtype)
        with self.vae_in_float32():
            encoded = self.vae.encode(pixels.to(self.vae.dtype)).latent_dist.mode()
        encoded = encoded.to(self.vae.dtype)
        mean, scale = self.latents_scale(device, encoded.dtype)
        source_latents = ((encoded - mean) * scale).to(dtype)
        image_latents = encoded * self.vae.config.scaling_factor if self.config.is_cosxl_edit \
            else encoded
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
        added_cond_kwargs = {"text_embeds": add_text_embeds, "time_ids": add_time_ids}
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
                                       added_cond_kwargs=added_cond_kwargs, return_dict=False)[0]
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

        # 7. Decode (in float32 where stock upcasts); at the source's size, pasted back through
        #    the feathered union of the masks.
        with self.vae_in_float32():
            mean, scale = self.latents_scale(device, self.vae.dtype)
            decoded = self.vae.decode(latents.to(self.vae.dtype) / scale + mean,
                                      return_dict=False)[0]
        images = self.paste_back(decoded, call, preserve_background, feather, output_type)
        self.maybe_free_model_hooks()
        return PromptArtisanPipelineOutput(images=images, interrupted=False)

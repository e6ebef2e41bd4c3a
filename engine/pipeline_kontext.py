"""PromptArtisanKontextPipeline: n instructions, each bound to its region, in one FLUX.1 Kontext
pass (DESIGN.md, "Engine families": the MMDiT instruction editor). What it shares with the UNet
families (regions, label maps, the checks, paste-back) comes from regions.py and region_pass.py;
who reads whom in the joint attention is joint_attention_rules.py.

Per call: each instruction is encoded by T5 on its own, as long as its tokens (not 512 padded
ones), then the background prompt; the transformer reads [c_1, …, c_n, c_bg | target |
reference] with the joint mask of the regions' label map at the token grid (16 px a token);
guidance is Kontext's distilled guidance, one transformer call per step; the background is
blended back to the noised source for the first steps; the result is pasted back into the
source through the feathered union of the masks.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    FlowMatchEulerDiscreteScheduler,
    FluxKontextPipeline,
    FluxTransformer2DModel,
)
from diffusers.image_processor import VaeImageProcessor
from diffusers.loaders import FluxLoraLoaderMixin
from diffusers.pipelines.flux.pipeline_flux_kontext import calculate_shift, retrieve_timesteps
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

from promptartisan.engine.joint_attention import JointAttentionControl
from promptartisan.engine.joint_attention_rules import joint_tokens
from promptartisan.engine.region_pass import (
    MAX_REGIONS,
    PromptArtisanPipelineOutput,
    RegionCall,
    RegionPassMixin,
    is_step_end,
    routed,
)
from promptartisan.engine.regions import Region, label_maps

T5_MAX_TOKENS = 512  # the most T5 tokens Flux reads per prompt, as stock's max_sequence_length


class PromptArtisanKontextPipeline(RegionPassMixin, DiffusionPipeline, FluxLoraLoaderMixin):
    """FLUX.1 Kontext with many instructions, each bound to its own mask, in one pass.

    Loads from any FLUX.1 Kontext folder or hub id (`from_pretrained`; the components are
    stock's, so `from_pipe(FluxKontextPipeline)` works too). Its attention processors are
    installed for a call only; between calls the transformer is stock Kontext's.
    """

    model_cpu_offload_seq = "text_encoder->text_encoder_2->transformer->vae"

    def __init__(self, scheduler: FlowMatchEulerDiscreteScheduler, vae: AutoencoderKL,
                 text_encoder: CLIPTextModel, tokenizer: CLIPTokenizer,
                 text_encoder_2: T5EncoderModel, tokenizer_2: T5TokenizerFast,
                 transformer: FluxTransformer2DModel) -> None:
        super().__init__()
        check_transformer(transformer, vae)
        self.register_modules(scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                              tokenizer=tokenizer, text_encoder_2=text_encoder_2,
                              tokenizer_2=tokenizer_2, transformer=transformer)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        # Flux packs 2 × 2 latent pixels into one token: a token covers 16 px of an 8× VAE.
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor * 2)

    default_guidance_scale = 2.5
    """Text guidance when the settings name none: FLUX.1 Kontext's distilled guidance at
    stock's default."""

    @classmethod
    def working_size_for(cls, config: Mapping[str, Any]) -> int:
        """The long side to edit at: 1024 px, the size FLUX.1 Kontext was trained around (its
        preferred resolutions are ~1 megapixel)."""
        return 1024

    @property
    def default_working_size(self) -> int:
        return self.working_size_for(self.config)

    def stock_pipeline(self) -> FluxKontextPipeline:
        """Diffusers' own pipeline on these components."""
        return FluxKontextPipeline(**self.components)

    def check_call(self, image: PIL.Image.Image | np.ndarray, regions: Sequence[Region],
                   num_inference_steps: int, blend_steps: int | None, feather: int,
                   max_regions: int, output_type: str,
                   callback_on_step_end_tensor_inputs: Sequence[str]) -> RegionCall:
        """Every check of a call before any model runs, and the label map at the token grid."""
        check_transformer(self.transformer, self.vae)
        source, regions, masks, groups, blend_steps = self.check_regions(
            image, regions, num_inference_steps, blend_steps, feather, max_regions, output_type,
            callback_on_step_end_tensor_inputs)
        height, width = self.image_processor.get_default_height_width(source)
        if min(height, width) < 16:
            raise ValueError(f"image is {source.width}×{source.height}; Kontext needs at least "
                             f"16 px a side (one token)")
        grid = (height // 16, width // 16)
        maps = label_maps(torch.from_numpy(masks), [r.order for r in regions], groups, [grid])
        return RegionCall(source, regions, masks, maps, height, width, blend_steps)

    def encode_prompts(self, prompts: Sequence[str], background_prompt: str,
                       device: torch.device) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """T5: each prompt, then `background_prompt`, encoded on its own at its own length (its
        tokens and the end token, no padding), joined: (1, T, dim), and each chunk's length.
        CLIP's pooled embedding (1, dim) reaches every token through the transformer's
        modulation, so it can't be routed: with one instruction it is that instruction's (as
        stock), with several the background prompt's, so that no instruction acts outside its
        region through it."""
        chunks, lengths = [], []
        for index, prompt in enumerate([*prompts, background_prompt]):
            ids = self.tokenizer_2(prompt, return_tensors="pt").input_ids
            if ids.shape[1] > T5_MAX_TOKENS:
                warnings.warn(f"prompt {index + 1} ({prompt!r}) is {ids.shape[1]} T5 tokens; "
                              f"Flux reads {T5_MAX_TOKENS}, the rest is ignored", stacklevel=3)
                ids = torch.cat([ids[:, :T5_MAX_TOKENS - 1], ids[:, -1:]], dim=1)
            chunks.append(self.text_encoder_2(ids.to(device), output_hidden_states=False)[0])
            lengths.append(ids.shape[1])
        prompt_embeds = torch.cat(chunks, dim=1).to(self.text_encoder_2.dtype)
        pooled_prompt = prompts[0] if len(prompts) == 1 else background_prompt
        clip_ids = self.tokenizer(pooled_prompt, padding="max_length", truncation=True,
                                  max_length=self.tokenizer.model_max_length,
                                  return_tensors="pt").input_ids
        pooled = self.text_encoder(clip_ids.to(device), output_hidden_states=False).pooler_output
        return prompt_embeds, pooled.to(self.text_encoder.dtype), lengths

    def blend_background(self, latents: torch.Tensor, source_latents: torch.Tensor,
                         noise: torch.Tensor, inside: torch.Tensor, timesteps: torch.Tensor,
                         index: int) -> torch.Tensor:
        """Latent blending on the flow-matching path: outside the regions, the source at the
        noise level σ of the step after `index`, (1 − σ)·source + σ·noise (σ = 0 after the
        last step: the source itself)."""
        sigma = self.scheduler.sigmas[index + 1].to(device=latents.device, dtype=latents.dtype)
        background = (1 - sigma) * source_latents + sigma * noise
        return latents * inside + background * (1 - inside)

    @torch.no_grad()
    def __call__(
        self,
        image: PIL.Image.Image | np.ndarray,
        regions: Sequence[Region],
        num_inference_steps: int = 28,
        guidance_scale: float = 2.5,
        background_prompt: str = "",
        blend_steps: int | None = None,
        preserve_background: bool = True,
        feather: int = 8,
        max_regions: int = MAX_REGIONS,
        kernel: str | None = None,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        callback_on_step_end: Callable[..., dict[str, Any]] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> PromptArtisanPipelineOutput:
        """Apply every region's instruction to `image` in one denoising pass.

        `guidance_scale`: Kontext's distilled guidance (an input of the transformer, one call a
        step; BFL's examples use 2.5). `background_prompt`: the chunk the background reads (""
        as the empty prompt; "keep the picture as it is" also fits). `blend_steps`: for this
        many first steps the latent outside the regions is reset to the noised source (None:
        half). `preserve_background`/`feather`: paste back into the source through the union
        of the masks feathered over `feather` pixels; pixels farther away are the source's own.
        `kernel`: the joint attention's, "flex" (default on CUDA) or "mask" (dense, exact).
        `latents`: the initial packed noise (1, tokens, 4·channels), as stock's. `output_type`
        "latent" gives the packed final latents, as stock. `callback_on_step_end(pipe, step,
        timestep, tensors) -> tensors` as stock; `pipe.interrupt_run()` stops the run.
        """
        call = self.check_call(image, regions, num_inference_steps, blend_steps, feather,
                               max_regions, output_type, callback_on_step_end_tensor_inputs)
        device = self._execution_device

        # 1. Text chunks [c_1, …, c_n, c_bg] and the pooled embedding; text positions are 0.
        prompt_embeds, pooled, lengths = self.encode_prompts(
            [r.prompt for r in call.regions], background_prompt, device)
        dtype = prompt_embeds.dtype
        text_ids = torch.zeros(prompt_embeds.shape[1], 3, device=device,
                               dtype=self.text_encoder.dtype)

        # 2. The source as Kontext's reference tokens (and the latent blending's target), the
        #    noise, and their positions: the reference is the target's grid on RoPE axis 0 = 1.
        pixels = self.image_processor.preprocess(call.source, call.height, call.width)
        source = self.vae.encode(pixels.to(device=device, dtype=dtype)).latent_dist.mode()
        source = (source - self.vae.config.shift_factor) * self.vae.config.scaling_factor
        channels, lat_h, lat_w = source.shape[1:]
        source_latents = FluxKontextPipeline._pack_latents(source, 1, channels, lat_h, lat_w)
        if latents is None:
            latents = FluxKontextPipeline._pack_latents(
                randn_tensor(source.shape, generator=generator, device=device, dtype=dtype),
                1, channels, lat_h, lat_w)
        noise = latents = latents.to(device=device, dtype=dtype)
        target_ids = FluxKontextPipeline._prepare_latent_image_ids(1, lat_h // 2, lat_w // 2,
                                                                   device, dtype)
        reference_ids = target_ids.clone()
        reference_ids[..., 0] = 1
        image_ids = torch.cat([target_ids, reference_ids])

        # 3. Timesteps as stock: σ from 1 to 1/n, shifted by the number of target tokens.
        mu = calculate_shift(latents.shape[1], self.scheduler.config.get("base_image_seq_len", 256),
                             self.scheduler.config.get("max_image_seq_len", 4096),
                             self.scheduler.config.get("base_shift", 0.5),
                             self.scheduler.config.get("max_shift", 1.15))
        timesteps, num_inference_steps = retrieve_timesteps(
            self.scheduler, num_inference_steps, device,
            sigmas=np.linspace(1.0, 1 / num_inference_steps, num_inference_steps), mu=mu)
        self.scheduler.set_begin_index(0)
        guidance = (torch.full([1], guidance_scale, device=device, dtype=torch.float32)
                    if self.transformer.config.guidance_embeds else None)

        # 4. The joint mask from the label map at the token grid, once for the whole call.
        grid = call.maps.shapes[0]
        labels = call.maps.labels[grid].flatten()
        control = JointAttentionControl(
            joint_tokens(lengths, labels, call.maps.groups[grid].flatten()), device, kernel)
        inside = (labels > 0).to(device=device, dtype=dtype)[None, :, None]
        steps_done = 0

        # 5. Denoising: one transformer call per step for any number of regions.
        with routed(self.transformer, control), control.in_token_order(self.transformer), \
                self.progress_bar(total=num_inference_steps) as bar:
            for i, t in enumerate(timesteps):
                if self._interrupt:
                    break
                noise_pred = self.transformer(
                    hidden_states=torch.cat([latents, source_latents], dim=1),
                    timestep=t.expand(1).to(dtype) / 1000, guidance=guidance,
                    pooled_projections=pooled, encoder_hidden_states=prompt_embeds,
                    txt_ids=text_ids, img_ids=image_ids, return_dict=False)[0]
                noise_pred = noise_pred[:, :latents.shape[1]]
                latents = self.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
                step_ends = is_step_end(i, timesteps, num_inference_steps, self.scheduler.order)
                steps_done += step_ends

                # 6. Latent blending after each of the first `blend_steps` steps.
                if step_ends and steps_done <= call.blend_steps:
                    latents = self.blend_background(latents, source_latents, noise, inside,
                                                    timesteps, i)
                if callback_on_step_end is not None:
                    latents, prompt_embeds = self.step_callback(
                        callback_on_step_end, i, t, callback_on_step_end_tensor_inputs,
                        latents=latents, prompt_embeds=prompt_embeds)
                if step_ends:
                    bar.update()

        if self._interrupt or output_type == "latent":
            self.maybe_free_model_hooks()
            return PromptArtisanPipelineOutput(images=[] if self._interrupt else latents,
                                               interrupted=self._interrupt)

        # 7. Decode; at the source's size, pasted back through the feathered union of the masks.
        unpacked = FluxKontextPipeline._unpack_latents(latents, call.height, call.width,
                                                       self.vae_scale_factor)
        unpacked = unpacked / self.vae.config.scaling_factor + self.vae.config.shift_factor
        decoded = self.vae.decode(unpacked, return_dict=False)[0]
        images = self.paste_back(decoded, call, preserve_background, feather, output_type)
        self.maybe_free_model_hooks()
        return PromptArtisanPipelineOutput(images=images, interrupted=False)


def check_transformer(transformer: FluxTransformer2DModel, vae: AutoencoderKL) -> None:
    """Refuse a transformer this pipeline can't drive, with the reason: a Flux transformer
    (patch size 1) that reads 2 × 2 packed latents of this VAE."""
    if not isinstance(transformer, FluxTransformer2DModel):
        raise ValueError(f"the transformer is a {type(transformer).__name__}, not a "
                         f"FluxTransformer2DModel: PromptArtisanKontextPipeline drives FLUX.1 "
                         f"Kontext")
    config = transformer.config
    if config.patch_size != 1 or config.in_channels != 4 * vae.config.latent_channels:
        raise ValueError(f"the transformer reads {config.in_channels} channels with patch size "
                         f"{config.patch_size}; Kontext packs 2 × 2 latents of the VAE's "
                         f"{vae.config.latent_channels} channels (patch size 1, "
                         f"{4 * vae.config.latent_channels} channels)")

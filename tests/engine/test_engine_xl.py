"""The SDXL InstructPix2Pix family on its tiny random-weight model (two CLIP text encoders,
addition_embed_type 'text_time', 8 input channels): the anchor under Euler-A, Euler, CosXL's EDM
Euler with v-prediction and more; what only SDXL has (null chunk, pooled embedding, time ids,
CosXL's scaled latents, the fp16 VAE upcast); the family read from the config; an Editor turn.
The routing, blocking, order, blending, paste-back and call-count tests run on both families
in test_engine_pipeline.py and test_engine_attention.py."""

from __future__ import annotations

from pathlib import Path

import diffusers
import numpy as np
import pytest
import torch
from conftest import box_mask
from diffusers import UNet2DConditionModel
from engine_families import stock_edit, tiny_engine, tiny_folder
from PIL import Image

from promptartisan import models
from promptartisan.agent.editor import Editor
from promptartisan.agent.sessions.store import Session
from promptartisan.engine import (
    PromptArtisanPipeline,
    PromptArtisanXLPipeline,
    Region,
    family_of,
)
from promptartisan.engine.pipeline_xl import POOLED_JOIN
from promptartisan.settings import Settings

PROMPT = "turn the sky into a sunset"
# CosXL Edit's schedule (Cosine-Continuous EDM, v-prediction; σ from 0.002 to 120, σ_data 1).
COSXL = {"sigma_min": 0.002, "sigma_max": 120.0, "sigma_data": 1.0,
         "prediction_type": "v_prediction", "sigma_schedule": "exponential"}
ZERO_SNR = {"rescale_betas_zero_snr": True, "prediction_type": "v_prediction",
            "timestep_spacing": "trailing"}
SCHEDULERS = [("EulerAncestralDiscreteScheduler", {}), ("EulerDiscreteScheduler", {}),
              ("EDMEulerScheduler", COSXL), ("DDIMScheduler", ZERO_SNR),
              ("DPMSolverMultistepScheduler", {}), ("HeunDiscreteScheduler", {})]


def seed() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def controls_off(pipe: PromptArtisanXLPipeline, image: Image.Image, **kwargs) -> np.ndarray:
    full = [Region(np.ones((image.height, image.width), dtype=bool), PROMPT)]
    return pipe(image, full, num_inference_steps=3, attention_boost=0, blend_steps=0,
                preserve_background=False, generator=seed(), output_type="np", **kwargs).images


def pair(tiny_dir: Path, scheduler: str = "EulerDiscreteScheduler", options: dict | None = None,
         **config) -> tuple[PromptArtisanXLPipeline, diffusers.DiffusionPipeline]:
    """Ours and stock on the same tiny model, each with its own scheduler of class `scheduler`."""
    ours = tiny_engine(tiny_dir, "sdxl", **config)
    stock = tiny_engine(tiny_dir, "sdxl", stock=True, **config)
    for pipe in (ours, stock):
        pipe.scheduler = getattr(diffusers, scheduler).from_config(pipe.scheduler.config,
                                                                   **(options or {}))
    return ours, stock


@pytest.mark.parametrize(("name", "options"), SCHEDULERS,
                         ids=[name + ("-cosxl" if options is COSXL else
                                      "-zero-snr" if options is ZERO_SNR else "")
                              for name, options in SCHEDULERS])
@pytest.mark.filterwarnings("ignore")
@pytest.mark.slow
def test_one_full_region_equals_stock_sdxl_instruct_pix2pix(tiny_dir, small_photo, name: str,
                                                            options: dict) -> None:
    ours, stock = pair(tiny_dir, name, options)
    expected = stock_edit(stock, PROMPT, small_photo, num_inference_steps=3, generator=seed())
    edited = controls_off(ours, small_photo)
    assert np.isfinite(expected).all() and edited.shape == expected.shape == (1, 48, 64, 3)
    assert np.abs(edited - expected).max() <= 1e-4
    assert np.abs(expected - np.asarray(small_photo) / 255).max() > 0.05  # it did edit


@pytest.mark.parametrize("config", [{"is_cosxl_edit": True},
                                    {"force_zeros_for_empty_prompt": False}],
                         ids=["cosxl-edit", "empty-prompt-null"])
@pytest.mark.filterwarnings("ignore")
@pytest.mark.slow
def test_cosxl_latents_and_the_empty_prompt_null_equal_stock(tiny_dir, small_photo,
                                                            config: dict) -> None:
    """CosXL Edit's scaled source latents, and a model whose null branches read the empty
    prompt's encoding instead of zeros, as stock does each."""
    ours, stock = pair(tiny_dir, "EDMEulerScheduler", COSXL, **config)
    expected = stock_edit(stock, PROMPT, small_photo, num_inference_steps=3, generator=seed())
    assert np.abs(controls_off(ours, small_photo) - expected).max() <= 1e-4
    plain, _ = pair(tiny_dir, "EDMEulerScheduler", COSXL)
    assert np.abs(controls_off(plain, small_photo) - expected).max() > 1e-3  # it matters


def test_conditioning_routes_chunks_and_joins_the_pooled_prompt(tiny_dir, small_photo) -> None:
    """Text row: [c_1, c_2, zeros]; guidance rows: zeros (force_zeros_for_empty_prompt). The
    time embedding: the joined instructions' pooled embedding in the text row, zeros in the
    others; time ids (original size, crop, target size) in every row."""
    pipe = tiny_engine(tiny_dir, "sdxl")
    seen = {}

    def keep(_module, args, kwargs):
        seen.update(context=kwargs["encoder_hidden_states"], **kwargs["added_cond_kwargs"])

    handle = pipe.unet.register_forward_pre_hook(keep, with_kwargs=True)
    prompts = ["make it red", "add snow"]
    regions = [Region(box_mask(small_photo.size, (0, 0, 32, 48)), prompts[0]),
               Region(box_mask(small_photo.size, (32, 0, 64, 48)), prompts[1])]
    try:
        pipe(small_photo, regions, num_inference_steps=1, original_size=(96, 128),
             output_type="latent")
    finally:
        handle.remove()
    device = torch.device("cpu")
    chunks, _ = pipe.encode_prompts(prompts, device)
    assert seen["context"].shape == (3, 3 * 77, 64)
    assert torch.equal(seen["context"][:1], chunks)
    assert not seen["context"][0, 2 * 77:].any() and not seen["context"][1:].any()
    joined = pipe.tokenizer_2(POOLED_JOIN.join(prompts), padding="max_length", max_length=77,
                              truncation=True, return_tensors="pt").input_ids
    pooled = pipe.text_encoder_2(joined)[0]
    assert torch.allclose(seen["text_embeds"][:1], pooled, atol=1e-6)
    assert not seen["text_embeds"][1:].any()
    assert seen["time_ids"].tolist() == [[96, 128, 0, 0, 48, 64]] * 3


@pytest.mark.slow
def test_the_fp16_vae_runs_in_float32_and_goes_back(tiny_dir, small_photo) -> None:
    """A float16 VAE whose config says force_upcast encodes and decodes in float32 (SDXL's VAE
    overflows in half precision), as stock does, and is float16 again after the call."""
    ours, stock = pair(tiny_dir)
    ran_in: list[torch.dtype] = []
    for pipe in (ours, stock):
        pipe.vae.to(torch.float16)
    hooks = [module.register_forward_pre_hook(
        lambda module, args: ran_in.append(module.weight.dtype))
        for module in (ours.vae.encoder.conv_in, ours.vae.decoder.conv_in)]
    try:
        edited = controls_off(ours, small_photo)
    finally:
        for hook in hooks:
            hook.remove()
    expected = stock_edit(stock, PROMPT, small_photo, num_inference_steps=3, generator=seed())
    assert ran_in == [torch.float32, torch.float32]
    assert ours.vae.dtype == torch.float16
    assert np.abs(edited - expected).max() <= 1e-4


@pytest.mark.slow
def test_the_family_comes_from_the_config_not_the_name(tiny_dir, tmp_path) -> None:
    """The same tiny SDXL model under a folder name that says nothing loads as SDXL; the SD1.5
    one as SD1.5; each works at its family's size unless the settings say otherwise."""
    xl, sd15 = tiny_folder(tiny_dir, "sdxl"), tiny_folder(tiny_dir, "sd15")
    assert family_of(UNet2DConditionModel.load_config(xl / "unet")) == "sdxl"
    assert family_of(UNet2DConditionModel.load_config(sd15 / "unet")) == "sd15"
    renamed = tmp_path / "instruct-pix2pix"
    renamed.symlink_to(xl, target_is_directory=True)
    for folder, cls, size in ((renamed, PromptArtisanXLPipeline, 768),
                              (sd15, PromptArtisanPipeline, 512)):
        settings = Settings(instruct_pix2pix=str(folder), device="cpu", dtype="float32")
        pipe = models.load_engine(settings, dtype=torch.float32)
        assert type(pipe) is cls and pipe.default_working_size == size
        assert models.engine_working_size(settings) == size
        assert models.engine_working_size(settings.model_copy(
            update={"working_size": 256})) == 256


def test_guidance_is_the_familys_unless_the_settings_name_one(tiny_dir) -> None:
    """Unset, the text guidance is each family's stock default (7.5 SD1.5, 5.0 SDXL), read from
    the model's config; a value in the settings wins."""
    for family, guidance in (("sdxl", 5.0), ("sd15", 7.5)):
        settings = Settings(instruct_pix2pix=str(tiny_folder(tiny_dir, family)))
        assert models.engine_guidance_scale(settings) == guidance
        assert models.engine_guidance_scale(settings.model_copy(
            update={"guidance_scale": 3.0})) == 3.0


@pytest.mark.slow
def test_an_editor_turn_edits_with_the_tiny_sdxl_model(tiny_dir, tmp_path, photo) -> None:
    """Through Editor.turn: the engine setting names the SDXL model's folder; the edit runs at
    SDXL's working size and keeps every pixel away from the mask."""
    settings = Settings(instruct_pix2pix=str(tiny_folder(tiny_dir, "sdxl")), device="cpu",
                        dtype="float32", steps=2, seed=3, planner="rules",
                        session_dir=tmp_path / "sessions")
    source = photo.resize((384, 288))
    session = Session.create(settings.session_dir, source)
    mask = box_mask(source.size, (100, 60, 220, 180))
    result = Editor(settings).turn(session, "make the helmet gold", mask=mask)
    assert result.kind == "edit", result.message
    provenance = session.version(result.version_id).provenance
    assert provenance["models"]["engine_class"] == "PromptArtisanXLPipeline"
    assert provenance["working_size"] == [768, 576]
    edited = np.asarray(session.image(result.version_id))
    away = np.ones(mask.shape, dtype=bool)
    away[40:200, 80:240] = False  # the mask and more than the scaled feather around it
    assert np.array_equal(edited[away], np.asarray(source)[away])
    assert not np.array_equal(edited[mask], np.asarray(source)[mask])


@pytest.mark.slow
def test_a_cosxl_edit_folder_saved_as_the_readme_says_loads_as_cosxl(tiny_dir, tmp_path,
                                                                     small_photo) -> None:
    """The README's CosXL route on the tiny model: stock loaded with is_cosxl_edit (stock keeps
    it outside its config), CosXL's scheduler, `from_pipe(..., is_cosxl_edit=True)`, saved; the
    engine setting naming that folder loads CosXL Edit at 1024 px with its scheduler, and it
    edits as stock CosXL does."""
    stock = tiny_engine(tiny_dir, "sdxl", stock=True, is_cosxl_edit=True)
    stock.scheduler = diffusers.EDMEulerScheduler(**COSXL)
    PromptArtisanXLPipeline.from_pipe(stock, is_cosxl_edit=True).save_pretrained(
        tmp_path / "cosxl-edit")
    settings = Settings(instruct_pix2pix=str(tmp_path / "cosxl-edit"), device="cpu",
                        dtype="float32")
    pipe = models.load_engine(settings, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.config.is_cosxl_edit and models.engine_working_size(settings) == 1024
    assert type(pipe.scheduler).__name__ == "EDMEulerScheduler"
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    expected = stock_edit(stock, PROMPT, small_photo, num_inference_steps=3, generator=seed())
    assert np.abs(controls_off(pipe, small_photo) - expected).max() <= 1e-4


@pytest.mark.parametrize("force_zeros", [True, False])
def test_nothing_is_encoded_or_projected_twice(tiny_dir, small_photo, force_zeros: bool) -> None:
    """Per edit, ViT-bigG encodes each instruction once, the joined prompt only for n ≥ 2 (at
    n = 1 it is the instruction) and the empty prompt only when its chunk isn't zeros; ViT-L
    the instructions (and the empty prompt, when not zeros); every cross-attention layer
    projects the guidance rows' one null chunk once, not once a row."""
    pipe = tiny_engine(tiny_dir, "sdxl", force_zeros_for_empty_prompt=force_zeros)
    rows: dict[str, list[int]] = {"vit_l": [], "bigg": [], "null_keys": []}
    hooks = [pipe.text_encoder.register_forward_pre_hook(
                 lambda _m, args: rows["vit_l"].append(len(args[0]))),
             pipe.text_encoder_2.register_forward_pre_hook(
                 lambda _m, args: rows["bigg"].append(len(args[0])))]
    layer = next(module for name, module in pipe.unet.named_modules() if name.endswith("attn2"))
    hooks.append(layer.to_k.register_forward_pre_hook(
        lambda _m, args: rows["null_keys"].append(len(args[0]))))
    empty = 0 if force_zeros else 1
    try:
        for n in (1, 2, 4):
            for values in rows.values():
                values.clear()
            width = small_photo.width // n
            regions = [Region(box_mask(small_photo.size, (k * width, 0, (k + 1) * width, 48)),
                              f"make part {k} red") for k in range(n)]
            pipe(small_photo, regions, num_inference_steps=2, output_type="latent")
            assert sum(rows["bigg"]) == n + (n >= 2) + empty, n
            assert sum(rows["vit_l"]) == n + empty, n
            assert rows["null_keys"] == [1, 1], n  # the text row, then one null row
    finally:
        for hook in hooks:
            hook.remove()

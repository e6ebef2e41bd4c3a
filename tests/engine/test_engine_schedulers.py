"""The pipeline under every scheduler stock InstructPix2Pix runs: the equivalence anchor (one
full-image region, controls off, equals stock), the boost's noise level (EDM's σ, zero terminal
SNR's σ = ∞), η reaching the step, and blending counted in denoising steps (Heun)."""

from __future__ import annotations

from pathlib import Path

import diffusers
import numpy as np
import pytest
import torch
from conftest import box_mask
from diffusers import StableDiffusionInstructPix2PixPipeline
from PIL import Image

from promptartisan import models
from promptartisan.engine import PromptArtisanPipeline, Region
from promptartisan.engine.unet_pass import MAX_NOISE_LEVEL
from promptartisan.settings import Settings

PROMPT = "turn the sky into a sunset"
ZERO_SNR = {"rescale_betas_zero_snr": True, "prediction_type": "v_prediction",
            "timestep_spacing": "trailing"}
# Every scheduler diffusers 0.42 ships that stock InstructPix2Pix runs (ε-prediction tiny model,
# 3 steps; the SDE solvers through torchsde, in the dev extra). Left out, as stock can't run
# them: those whose `step`, constructor or attributes differ (flow matching, Amused,
# VQ-Diffusion, RePaint, KarrasVe, …).
SCHEDULERS = [(name, {}) for name in (
    "CMStochasticIterativeScheduler", "CogVideoXDDIMScheduler",
    "CosineDPMSolverMultistepScheduler", "DDIMParallelScheduler",
    "DDIMScheduler", "DDPMParallelScheduler", "DDPMScheduler", "DEISMultistepScheduler",
    "DPMSolverMultistepInverseScheduler", "DPMSolverMultistepScheduler",
    "DPMSolverSinglestepScheduler", "EDMDPMSolverMultistepScheduler", "EDMEulerScheduler",
    "EulerAncestralDiscreteScheduler", "EulerDiscreteScheduler", "HeunDiscreteScheduler",
    "IPNDMScheduler", "KDPM2AncestralDiscreteScheduler", "KDPM2DiscreteScheduler",
    "LCMScheduler", "LMSDiscreteScheduler", "SASolverScheduler", "TCDScheduler",
    "UniPCMultistepScheduler")]
# PNDM as SD1.5 ships it (its Runge-Kutta start needs more steps than 3), DDIM as zero-SNR
# v-prediction models (CosXL Edit's family) use it.
# DPM-Solver SDE draws its Brownian tree's seed from torch's global generator unless given one.
SCHEDULERS += [("PNDMScheduler", {"skip_prk_steps": True}), ("DDIMScheduler", ZERO_SNR),
               ("DPMSolverSDEScheduler", {"noise_sampler_seed": 0})]


@pytest.fixture(scope="module")
def pipes(tiny_dir: Path) -> tuple[PromptArtisanPipeline, StableDiffusionInstructPix2PixPipeline]:
    settings = Settings(tiny=True, tiny_dir=tiny_dir, device="cpu", dtype="float32")
    stock = models.load(StableDiffusionInstructPix2PixPipeline, "instruct-pix2pix", settings,
                        dtype=torch.float32)
    ours = PromptArtisanPipeline.from_pipe(stock)
    for pipe in (ours, stock):
        pipe.set_progress_bar_config(disable=True)
    MODEL_SCHEDULER.update(stock.scheduler.config)
    return ours, stock


MODEL_SCHEDULER: dict = {}  # the tiny model's own scheduler config


def use(pipes, name: str, options: dict) -> None:
    """Give both pipelines their own scheduler of class `name`, from the model's config."""
    for pipe in pipes:
        pipe.scheduler = getattr(diffusers, name).from_config(MODEL_SCHEDULER, **options)


def seed() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def full(size: Image.Image) -> list[Region]:
    return [Region(np.ones((size.height, size.width), dtype=bool), PROMPT)]


def controls_off(pipe: PromptArtisanPipeline, image: Image.Image, **kwargs) -> np.ndarray:
    return pipe(image, full(image), num_inference_steps=3, attention_boost=0, blend_steps=0,
                preserve_background=False, generator=seed(), output_type="np", **kwargs).images


@pytest.mark.parametrize(("name", "options"), SCHEDULERS,
                         ids=[name + ("-zero-snr" if options is ZERO_SNR else "")
                              for name, options in SCHEDULERS])
@pytest.mark.filterwarnings("ignore")
def test_one_full_region_equals_stock_under_every_scheduler(pipes, small_photo, name: str,
                                                            options: dict) -> None:
    use(pipes, name, options)
    ours, stock = pipes
    expected = stock(PROMPT, small_photo, num_inference_steps=3, generator=seed(),
                     output_type="np").images
    edited = controls_off(ours, small_photo)
    assert np.isfinite(expected).all() and edited.shape == expected.shape == (1, 48, 64, 3)
    assert np.abs(edited - expected).max() <= 1e-4


def test_eta_reaches_the_step_as_in_stock(pipes, small_photo) -> None:
    use(pipes, "DDIMScheduler", {})
    ours, stock = pipes
    expected = stock(PROMPT, small_photo, num_inference_steps=3, eta=0.8, generator=seed(),
                     output_type="np").images
    edited = controls_off(ours, small_photo, eta=0.8)
    assert np.abs(edited - expected).max() <= 1e-4
    assert np.abs(edited - controls_off(ours, small_photo)).max() > 1e-3  # η = 0 differs


@pytest.mark.parametrize(("name", "options", "first_sigma"),
                         [("EDMEulerScheduler", {}, 80.0),
                          ("DDIMScheduler", ZERO_SNR, MAX_NOISE_LEVEL),
                          ("EulerDiscreteScheduler", {}, 14.6146)])
def test_boost_reads_a_finite_noise_level_under_any_parametrisation(
        pipes, small_photo, monkeypatch, name: str, options: dict, first_sigma: float) -> None:
    use(pipes, name, options)
    ours = pipes[0]
    sigmas: list[float] = []
    noise_level = ours.noise_level
    monkeypatch.setattr(ours, "noise_level",
                        lambda index, t: sigmas.append(noise_level(index, t)) or sigmas[-1])
    half = [Region(box_mask(small_photo.size, (0, 0, 64, 24)), PROMPT)]
    kwargs = {"num_inference_steps": 3, "output_type": "latent"}
    boosted = ours(small_photo, half, attention_boost=0.3, generator=seed(), **kwargs).images
    assert sigmas[0] == pytest.approx(first_sigma, rel=1e-3)
    assert all(0 <= s <= MAX_NOISE_LEVEL for s in sigmas) and sigmas == sorted(sigmas)[::-1]
    sigmas.clear()
    plain = ours(small_photo, half, attention_boost=0, generator=seed(), **kwargs).images
    assert sigmas == []  # with the boost off the noise level is never read
    assert torch.isfinite(boosted).all() and torch.isfinite(plain).all()
    assert (boosted - plain).abs().max() > 1e-4


def test_blending_counts_denoising_steps_not_unet_calls(pipes, small_photo) -> None:
    """Heun calls the UNet twice a step: 6 steps are 11 calls. blend_steps=3 holds the
    background to the noised source after the calls that end steps 1–3, and no others."""
    use(pipes, "HeunDiscreteScheduler", {})
    ours = pipes[0]
    region = [Region(box_mask(small_photo.size, (16, 8, 40, 32)), PROMPT)]
    noise = torch.randn(1, 4, 6, 8, generator=torch.Generator().manual_seed(1))
    seen: list[torch.Tensor] = []

    def keep(_pipe, step, timestep, tensors):
        seen.append(tensors["latents"].clone())
        return tensors

    ours(small_photo, region, num_inference_steps=6, blend_steps=3, latents=noise,
         attention_boost=0, generator=seed(), callback_on_step_end=keep, output_type="latent")
    pixels = ours.image_processor.preprocess(small_photo)
    source = ours.vae.encode(pixels).latent_dist.mode() * ours.vae.config.scaling_factor
    outside = torch.ones(6, 8, dtype=torch.bool)
    outside[1:4, 2:5] = False
    timesteps = ours.scheduler.timesteps
    assert len(seen) == len(timesteps) == 11
    held = []
    for call, latents in enumerate(seen[:-1]):
        noised = ours.scheduler.add_noise(source, noise, timesteps[call + 1:call + 2])
        held.append(bool((latents - noised)[..., outside].abs().amax() <= 1e-5))
    assert held == [False, True, False, True, False, True, False, False, False, False]

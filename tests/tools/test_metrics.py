"""Metrics on constructed inputs with known answers; the CLIP metrics on tiny random models."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import metrics as skimage_metrics

from promptartisan.settings import Settings
from promptartisan.tools.metrics import (
    PSNR_CAP_DB,
    SSIM_RADIUS,
    ClipScorer,
    PickScorer,
    background_mask,
    background_preservation,
    crop_box,
    default_dilation,
    dilate,
    psnr,
    softmax,
    ssim,
    ssim_map,
)


@pytest.fixture(scope="module")
def image(photo: Image.Image) -> np.ndarray:
    return np.asarray(photo.resize((96, 80)))


def noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, image.shape)
    return np.clip(image + noise, 0, 255).round().astype(np.uint8)


def test_identical_images_give_ssim_one_and_capped_psnr(image: np.ndarray) -> None:
    assert ssim(image, image.copy()) == pytest.approx(1.0, abs=1e-12)
    assert psnr(image, image.copy()) == PSNR_CAP_DB
    assert background_preservation(image, image, [np.zeros(image.shape[:2], bool)]) == (
        PSNR_CAP_DB, pytest.approx(1.0, abs=1e-12))


def test_psnr_of_a_known_error_matches_the_formula() -> None:
    gray = np.full((40, 50, 3), 120, dtype=np.uint8)
    assert psnr(gray, gray + 5) == pytest.approx(20 * math.log10(255 / 5))
    rng = np.random.default_rng(1)
    signs = rng.choice([-3, 3], size=gray.shape)  # |error| = 3 everywhere: MSE = 9 exactly
    assert psnr(gray, (gray + signs).astype(np.uint8)) == pytest.approx(10 * math.log10(255**2 / 9))


def test_psnr_of_gaussian_noise_is_near_the_expected_level() -> None:
    gray = np.full((200, 200, 3), 128, dtype=np.uint8)
    assert psnr(gray, noisy(gray, 8.0)) == pytest.approx(20 * math.log10(255 / 8), abs=0.15)


def test_psnr_only_counts_the_masked_pixels(image: np.ndarray) -> None:
    changed = image.copy()
    changed[:20] = 255 - changed[:20]
    keep = np.ones(image.shape[:2], bool)
    keep[:20] = False
    assert psnr(image, changed, keep) == PSNR_CAP_DB
    assert psnr(image, changed) < 20
    assert math.isnan(psnr(image, changed, np.zeros_like(keep)))


def test_ssim_drops_as_noise_grows(image: np.ndarray) -> None:
    values = [ssim(image, noisy(image, sigma)) for sigma in (2, 10, 40)]
    assert 0 < values[2] < values[1] < values[0] < 1


@pytest.mark.parametrize("sigma", [3.0, 25.0])
def test_ssim_matches_scikit_image(image: np.ndarray, sigma: float) -> None:
    other = noisy(image, sigma, seed=2)
    expected, full = skimage_metrics.structural_similarity(
        image, other, channel_axis=-1, gaussian_weights=True, use_sample_covariance=False,
        data_range=255, full=True)
    assert ssim(image, other) == pytest.approx(expected, abs=1e-9)
    np.testing.assert_allclose(ssim_map(image, other), full.mean(axis=-1), atol=1e-9)


def test_ssim_matches_scikit_image_on_grayscale(image: np.ndarray) -> None:
    gray = image[..., 0]
    other = noisy(gray, 12.0)
    expected = skimage_metrics.structural_similarity(
        gray, other, gaussian_weights=True, use_sample_covariance=False, data_range=255)
    assert ssim(gray, other) == pytest.approx(expected, abs=1e-9)


def test_mismatched_sizes_are_refused(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="differ in size"):
        psnr(image, image[:-1])
    with pytest.raises(ValueError, match="mask"):
        ssim(image, image, np.ones((3, 3), bool))


def test_dilate_grows_a_square() -> None:
    mask = np.zeros((9, 9), bool)
    mask[4, 4] = True
    grown = dilate(mask, 2)
    assert grown.sum() == 25 and grown[2:7, 2:7].all()
    assert (dilate(mask, 0) == mask).all()


def test_background_ignores_edits_inside_the_dilated_masks(image: np.ndarray) -> None:
    mask = np.zeros(image.shape[:2], bool)
    mask[20:50, 30:60] = True
    edited = image.copy()
    edited[mask] = 0
    assert background_preservation(image, edited, [mask]) == (
        PSNR_CAP_DB, pytest.approx(1.0, abs=1e-12))
    assert not background_mask([mask], 3)[17:53, 27:63].any()
    assert background_mask([mask], 3).sum() == mask.size - 36 * 36
    leaked = edited.copy()
    leaked[:5] = 0  # far from the mask: counts
    low_psnr, low_ssim = background_preservation(image, leaked, [mask])
    assert low_psnr < 30 and low_ssim < 1


def test_default_dilation_scales_with_the_image() -> None:
    assert default_dilation((512, 384)) == 15
    assert default_dilation((40, 30)) == 8
    assert SSIM_RADIUS == 5


def test_crop_box_pads_and_clips() -> None:
    mask = np.zeros((100, 200), bool)
    mask[10:60, 150:200] = True
    assert crop_box(mask) == (145, 5, 200, 65)
    with pytest.raises(ValueError, match="empty"):
        crop_box(np.zeros((4, 4), bool))


def test_softmax_known_answers() -> None:
    np.testing.assert_allclose(softmax(np.array([3.0, 3.0, 3.0, 3.0])), 0.25)
    np.testing.assert_allclose(softmax(np.array([0.0, math.log(3.0)])), [0.25, 0.75])
    assert softmax(np.array([1000.0, 0.0])).sum() == pytest.approx(1.0)


# --- CLIP-T and PickScore on tiny random CLIP models (same code path as the real ones) ---

@pytest.fixture(scope="module")
def tiny_metric_settings(tiny_dir: Path) -> Settings:
    return Settings(tiny=True, tiny_dir=tiny_dir, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def clip(tiny_metric_settings: Settings) -> ClipScorer:
    return ClipScorer.load(tiny_metric_settings)


@pytest.fixture(scope="module")
def pick(tiny_metric_settings: Settings) -> PickScorer:
    return PickScorer.load(tiny_metric_settings)


@pytest.fixture(scope="module")
def variants(photo: Image.Image) -> list[Image.Image]:
    small = photo.resize((64, 64))
    return [small, small.rotate(90), small.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
            Image.fromarray(255 - np.asarray(small))]


TEXTS = ["an astronaut", "turn the flag into a rainbow flag", "a cat", "a red rocket on a pad"]


@pytest.mark.slow
def test_clip_t_is_100_times_the_models_cosine(clip: ClipScorer,
                                               variants: list[Image.Image]) -> None:
    inputs = clip.processor(text=TEXTS, images=variants, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = clip.model(**inputs)
        cosine = out.logits_per_image.diagonal() / clip.model.logit_scale.exp()
    np.testing.assert_allclose(clip.scores(variants, TEXTS), 100 * cosine.numpy(), atol=1e-3)


def test_clip_t_does_not_depend_on_batch_order(clip: ClipScorer,
                                               variants: list[Image.Image]) -> None:
    scores = clip.scores(variants, TEXTS)
    order = [2, 0, 3, 1]
    shuffled = clip.scores([variants[i] for i in order], [TEXTS[i] for i in order])
    np.testing.assert_allclose(shuffled, scores[order], atol=1e-4)
    clip.batch_size = 1
    try:
        np.testing.assert_allclose(clip.scores(variants, TEXTS), scores, atol=1e-4)
    finally:
        clip.batch_size = 16
    assert np.all(np.abs(scores) <= 100)


def test_region_scores_score_each_crop_against_its_prompt(clip: ClipScorer,
                                                          variants: list[Image.Image]) -> None:
    image = variants[0]
    masks = [np.zeros((64, 64), bool) for _ in range(2)]
    masks[0][5:20, 5:30] = True
    masks[1][30:60, 40:60] = True
    expected = clip.scores([image.crop(crop_box(m)) for m in masks], TEXTS[:2])
    np.testing.assert_allclose(clip.region_scores(image, masks, TEXTS[:2]), expected)


def test_pickscore_matches_the_models_logits(pick: PickScorer,
                                             variants: list[Image.Image]) -> None:
    inputs = pick.processor(text=[TEXTS[0]], images=variants, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = pick.model(**inputs).logits_per_text[0].numpy()
    np.testing.assert_allclose(pick.scores(TEXTS[0], variants), expected, atol=1e-3)


def test_pickscore_softmax_sums_to_one_and_follows_the_images(
        pick: PickScorer, variants: list[Image.Image]) -> None:
    probs = pick.probabilities(TEXTS[1], variants)
    assert probs.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(probs > 0)
    order = [3, 1, 0, 2]
    np.testing.assert_allclose(pick.probabilities(TEXTS[1], [variants[i] for i in order]),
                               probs[order], atol=1e-6)
    twins = pick.probabilities(TEXTS[1], [variants[0], variants[0]])
    np.testing.assert_allclose(twins, [0.5, 0.5], atol=1e-6)

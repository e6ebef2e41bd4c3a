"""Evaluation metrics: CLIP score (CLIP-T), PickScore and background preservation (PSNR, SSIM).

Text-image metrics follow the papers the PromptArtisan paper compares against: CLIP-T is
100 · cos(image, text) of CLIP's projected embeddings; PickScore is Pick-a-Pic's
`logit_scale.exp() · text·image` on normalised embeddings, turned into a softmax across the
methods compared on the same case. Background preservation compares source and result only
outside the dilated union of the edit masks, where nothing should have changed.

PSNR of identical images is capped at `PSNR_CAP_DB` (100 dB) rather than infinity, so means
and CSV files stay finite; any value at the cap means "no measurable change". LPIPS is left out:
its weights can't be fetched offline. SSIM is implemented here (numpy) so that the package
does not need scikit-image at runtime; the tests check it against `skimage.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from promptartisan.settings import Settings

PSNR_CAP_DB = 100.0
SSIM_SIGMA = 1.5  # Wang et al. 2004: Gaussian window, σ = 1.5, 11 taps
SSIM_RADIUS = 5
SSIM_K1, SSIM_K2 = 0.01, 0.03
DATA_RANGE = 255.0

ImageLike = Image.Image | np.ndarray


def _array(image: ImageLike) -> np.ndarray:
    """HxWxC float64 in [0, 255]."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image, dtype=np.float64)
    return array[..., None] if array.ndim == 2 else array


def _pair(a: ImageLike, b: ImageLike) -> tuple[np.ndarray, np.ndarray]:
    x, y = _array(a), _array(b)
    if x.shape != y.shape:
        raise ValueError(f"images differ in size: {x.shape} and {y.shape}")
    return x, y


def _region(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if mask is None:
        return np.ones(shape[:2], dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != shape[:2]:
        raise ValueError(f"mask is {mask.shape}, the images are {shape[:2]}")
    return mask


def psnr(a: ImageLike, b: ImageLike, mask: np.ndarray | None = None) -> float:
    """PSNR in dB over the pixels where `mask` is true (all when None), 8-bit range.

    Identical pixels give `PSNR_CAP_DB`; an empty mask gives NaN (nothing to compare).
    """
    x, y = _pair(a, b)
    region = _region(mask, x.shape)
    if not region.any():
        return float("nan")
    mse = float(np.mean((x[region] - y[region]) ** 2))
    if mse == 0.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * np.log10(DATA_RANGE**2 / mse))


def _gaussian_kernel() -> np.ndarray:
    offsets = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    return kernel / kernel.sum()


def _blur(image: np.ndarray) -> np.ndarray:
    """Separable Gaussian blur of an HxWxC array, borders mirrored (scipy's 'reflect')."""
    kernel = _gaussian_kernel()
    r = SSIM_RADIUS
    padded = np.pad(image, ((r, r), (r, r), (0, 0)), mode="symmetric")
    height, width = image.shape[:2]
    rows = sum(kernel[i] * padded[i : i + height] for i in range(2 * r + 1))
    return sum(kernel[i] * rows[:, i : i + width] for i in range(2 * r + 1))


def ssim_map(a: ImageLike, b: ImageLike) -> np.ndarray:
    """Per-pixel SSIM (Wang et al. 2004: Gaussian σ 1.5, K1 0.01, K2 0.03, population
    covariance), averaged over the colour channels: HxW."""
    x, y = _pair(a, b)
    if min(x.shape[:2]) < 2 * SSIM_RADIUS + 1:
        raise ValueError(f"SSIM needs images of at least {2 * SSIM_RADIUS + 1} px a side")
    ux, uy = _blur(x), _blur(y)
    vx = _blur(x * x) - ux * ux
    vy = _blur(y * y) - uy * uy
    vxy = _blur(x * y) - ux * uy
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s.mean(axis=-1)


def ssim(a: ImageLike, b: ImageLike, mask: np.ndarray | None = None) -> float:
    """Mean SSIM over `mask` (all when None), leaving out the window's radius at the image
    border as scikit-image does, so that with no mask the two agree. Empty → NaN."""
    s = ssim_map(a, b)
    region = _region(mask, s.shape).copy()
    r = SSIM_RADIUS
    region[:r], region[-r:], region[:, :r], region[:, -r:] = False, False, False, False
    return float(s[region].mean()) if region.any() else float("nan")


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grow a bool mask by `radius` pixels (square structuring element)."""
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0:
        return mask
    tensor = torch.from_numpy(mask.astype(np.float32))[None, None]
    grown = torch.nn.functional.max_pool2d(tensor, 2 * radius + 1, stride=1, padding=radius)
    return grown[0, 0].numpy() > 0.5


def default_dilation(size: tuple[int, int]) -> int:
    """3 % of the long side (15 px at 512), at least 8 px: the engine edits on an 8× latent grid
    and feathers its paste-back over 8 px, so pixels just outside a mask may legitimately
    change."""
    return max(8, round(0.03 * max(size)))


def background_mask(masks: Sequence[np.ndarray], dilation: int) -> np.ndarray:
    """True where no dilated mask reaches: the pixels an edit must leave alone."""
    union = np.zeros(np.asarray(masks[0]).shape, dtype=bool)
    for mask in masks:
        union |= np.asarray(mask, dtype=bool)
    return ~dilate(union, dilation)


def background_preservation(source: ImageLike, result: ImageLike, masks: Sequence[np.ndarray],
                            dilation: int | None = None) -> tuple[float, float]:
    """(PSNR, SSIM) of `result` against `source` outside the dilated union of `masks`.

    SSIM keeps only pixels whose whole window lies outside it, so an edit inside a mask can't
    lower the background's score through the window; a result that equals the source there
    scores exactly 1.
    """
    x, y = _pair(source, result)
    if dilation is None:
        dilation = default_dilation((x.shape[1], x.shape[0]))
    return (psnr(x, y, background_mask(masks, dilation)),
            ssim(x, y, background_mask(masks, dilation + SSIM_RADIUS)))


def crop_box(mask: np.ndarray, pad: float = 0.1, min_pad: int = 4) -> tuple[int, int, int, int]:
    """The mask's bounding box (x0, y0, x1, y1), grown by `pad` of its size on each side so
    CLIP sees the object with a little context, clipped to the image."""
    ys, xs = np.nonzero(np.asarray(mask, dtype=bool))
    if len(xs) == 0:
        raise ValueError("the mask is empty")
    height, width = mask.shape
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    px = max(min_pad, round(pad * (x1 - x0)))
    py = max(min_pad, round(pad * (y1 - y0)))
    return (max(0, x0 - px), max(0, y0 - py), min(width, x1 + px), min(height, y1 + py))


def _features(output: Any) -> torch.Tensor:
    """transformers ≥ 5 returns a model output from get_*_features; 4.x returns the tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class _ClipEmbedder:
    """A CLIPModel and its processor, loaded once; embeds images and texts in batches."""

    def __init__(self, model: Any, processor: Any, device: str = "cpu", batch_size: int = 16):
        self.model = model.eval().to(device)
        self.processor = processor
        self.device = device
        self.batch_size = batch_size

    @torch.no_grad()
    def embed_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        chunks = []
        for start in range(0, len(images), self.batch_size):
            batch = [im.convert("RGB") for im in images[start : start + self.batch_size]]
            inputs = self.processor(images=batch, return_tensors="pt")
            pixels = inputs["pixel_values"].to(self.device, self.model.dtype)
            chunks.append(_features(self.model.get_image_features(pixel_values=pixels)).float())
        return torch.nn.functional.normalize(torch.cat(chunks), dim=-1).cpu()

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            inputs = self.processor(text=list(texts[start : start + self.batch_size]),
                                    padding=True, truncation=True, max_length=77,
                                    return_tensors="pt")
            ids = inputs["input_ids"].to(self.device)
            mask = inputs["attention_mask"].to(self.device)
            out = self.model.get_text_features(input_ids=ids, attention_mask=mask)
            chunks.append(_features(out).float())
        return torch.nn.functional.normalize(torch.cat(chunks), dim=-1).cpu()


class ClipScorer(_ClipEmbedder):
    """CLIP-T: 100 · cosine between an image and a text (the "CLIP score" of editing papers)."""

    @classmethod
    def load(cls, settings: Settings, name: str = "clip") -> ClipScorer:
        from transformers import CLIPModel, CLIPProcessor

        from promptartisan import models

        model = models.load(CLIPModel, name, settings)
        processor = models.load(CLIPProcessor, name, settings)
        return cls(model, processor, device=settings.resolved_device())

    def scores(self, images: Sequence[Image.Image], texts: Sequence[str]) -> np.ndarray:
        """One score per (image, text) pair, in order."""
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images but {len(texts)} texts")
        if not images:
            return np.zeros(0)
        cosine = (self.embed_images(images) * self.embed_texts(texts)).sum(-1)
        return (100.0 * cosine).numpy().astype(np.float64)

    def region_scores(self, image: Image.Image, masks: Sequence[np.ndarray],
                      prompts: Sequence[str]) -> np.ndarray:
        """CLIP-T of each region's padded bounding-box crop against its own prompt."""
        crops = [image.crop(crop_box(mask)) for mask in masks]
        return self.scores(crops, prompts)


class PickScorer(_ClipEmbedder):
    """PickScore (Kirstain et al., Pick-a-Pic): PickScore_v1 with CLIP-H's processor."""

    @classmethod
    def load(cls, settings: Settings) -> PickScorer:
        from transformers import CLIPModel, CLIPProcessor

        from promptartisan import models

        model = models.load(CLIPModel, "pickscore", settings)
        processor = models.load(CLIPProcessor, "pickscore-processor", settings)
        return cls(model, processor, device=settings.resolved_device())

    def scores(self, prompt: str, images: Sequence[Image.Image]) -> np.ndarray:
        """`logit_scale.exp() · text·image` for each image against one prompt."""
        if not images:
            return np.zeros(0)
        text = self.embed_texts([prompt])
        scale = float(self.model.logit_scale.detach().exp())
        return (scale * (self.embed_images(images) @ text[0])).numpy().astype(np.float64)

    def probabilities(self, prompt: str, images: Sequence[Image.Image]) -> np.ndarray:
        """Softmax of the scores across `images` (one per compared method): sums to 1."""
        return softmax(self.scores(prompt, images))


def softmax(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()

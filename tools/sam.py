"""SAM: points and boxes → masks. The image is embedded once (the expensive ViT) and kept for
the prompts that follow on the same image, as segment-anything's `SamPredictor` does, so a
person's successive clicks and Grounded-SAM's boxes cost only the light mask decoder.

Three ways in: transformers' `SamModel` or `Sam2Model` (SAM 2 / 2.1: a hub id or folder,
like every model here, told apart by the config's model type) or, for people who already have
Meta's checkpoints, the `segment-anything` package with a `.pth`. Each keeps the embeddings of
the last few images, so going back to a version shown before costs no encoding either.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from PIL import Image

from promptartisan import models
from promptartisan.tools.grounding import Grounder, Instance

if TYPE_CHECKING:
    from promptartisan.settings import Settings

# segment-anything checkpoints name no architecture; the patch embedding's width tells it.
SAM_KINDS = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}
_PATCH_WEIGHT = "image_encoder.patch_embed.proj.weight"

EMBEDDINGS_KEPT = 4
"""Image embeddings a segmenter keeps (least recently used goes first): the version a chat
shows, the one it is about to show, and a few other chats' at once, without re-encoding."""


class Segmenter(Protocol):
    def predict(self, image: Image.Image, points: Sequence[Sequence[float]] | None = None,
                labels: Sequence[int] | None = None,
                boxes: Sequence[Sequence[float]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Masks (k, height, width) bool and their scores (k,): one mask for the points (with
        at most one box), or one per box."""
        ...

    def encode(self, image: Image.Image) -> None:
        """Compute and keep `image`'s embedding now (a prepare step before the first click)."""
        ...

    def encoded(self, image: Image.Image) -> bool:
        """Whether `image`'s embedding is kept, so a click on it costs only the decoder."""
        ...


def check_prompts(size: tuple[int, int], points: Any, labels: Any, boxes: Any,
                  ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Prompts as arrays, or a ValueError that says what is wrong with them."""
    if points is None and boxes is None:
        raise ValueError("give points (clicks) or boxes to segment")
    width, height = size
    pts = lbl = bxs = None
    if points is not None:
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
            raise ValueError(f"points must be a list of (x, y) pairs, got shape {pts.shape}")
        lbl = np.ones(len(pts), dtype=np.int64) if labels is None else np.asarray(labels)
        if lbl.shape != (len(pts),) or not np.isin(lbl, (0, 1)).all():
            raise ValueError("labels must be one 1 (inside) or 0 (outside) per point")
        if not lbl.any() and boxes is None:
            raise ValueError("at least one point must be inside (label 1), or give a box")
    elif labels is not None:
        raise ValueError("labels were given without points")
    if boxes is not None:
        bxs = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(bxs) == 0 or (bxs[:, 2] <= bxs[:, 0]).any() or (bxs[:, 3] <= bxs[:, 1]).any():
            raise ValueError("boxes must be (x0, y0, x1, y1) with x1 > x0 and y1 > y0")
        if pts is not None and len(bxs) > 1:
            raise ValueError("points go with at most one box")
    for name, values in (("points", pts), ("boxes", bxs)):
        if values is not None and not np.isfinite(values).all():
            raise ValueError(f"{name} must be finite numbers")
    if pts is not None and ((pts < 0).any() or (pts[:, 0] > width).any()
                            or (pts[:, 1] > height).any()):
        raise ValueError(f"points must lie inside the {width}×{height} image")
    return pts, lbl, bxs


def _digest(image: Image.Image) -> bytes:
    return hashlib.blake2b(image.tobytes(), digest_size=16).digest() + repr(image.size).encode()


class EmbeddingCache:
    """The last `EMBEDDINGS_KEPT` images' embeddings (or whatever a backend keeps per image),
    by the image's content: the same picture loaded again hits."""

    def __init__(self, size: int = EMBEDDINGS_KEPT) -> None:
        self.size = size
        self._entries: OrderedDict[bytes, Any] = OrderedDict()

    def get(self, image: Image.Image) -> Any | None:
        key = _digest(image)
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        return None

    def put(self, image: Image.Image, value: Any) -> None:
        key = _digest(image)
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __contains__(self, image: Image.Image) -> bool:
        return _digest(image) in self._entries


class SamSegmenter:
    """transformers' `SamModel`: `get_image_embeddings` once per image, prompts after."""

    def __init__(self, model: Any, processor: Any, device: str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = device
        self.embeddings = EmbeddingCache()

    @classmethod
    def load(cls, source: str, device: str = "cpu") -> SamSegmenter:
        from transformers import SamModel, SamProcessor

        model = models.load_from(SamModel, source, name="sam", dtype=torch.float32)
        return cls(model, models.load_from(SamProcessor, source, name="sam"), device)

    def embed(self, image: Image.Image, pixel_values: torch.Tensor) -> torch.Tensor:
        embedding = self.embeddings.get(image)
        if embedding is None:
            embedding = self.model.get_image_embeddings(pixel_values.to(self.device))
            self.embeddings.put(image, embedding)
        return embedding

    @torch.inference_mode()
    def encode(self, image: Image.Image) -> None:
        if image not in self.embeddings:
            self.embed(image, self.processor(images=image, return_tensors="pt")["pixel_values"])

    def encoded(self, image: Image.Image) -> bool:
        return image in self.embeddings

    @torch.inference_mode()
    def predict(self, image: Image.Image, points: Sequence[Sequence[float]] | None = None,
                labels: Sequence[int] | None = None,
                boxes: Sequence[Sequence[float]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        pts, lbl, bxs = check_prompts(image.size, points, labels, boxes)
        inputs = self.processor(
            images=image,
            input_points=None if pts is None else [pts.tolist()],
            input_labels=None if lbl is None else [lbl.tolist()],
            input_boxes=None if bxs is None else [bxs.tolist()],
            return_tensors="pt",
        )
        prompts = {k: inputs[k].to(self.device) for k in
                   ("input_points", "input_labels", "input_boxes") if k in inputs}
        if "input_points" in prompts:
            prompts["input_points"] = prompts["input_points"].float()
        if "input_boxes" in prompts:
            prompts["input_boxes"] = prompts["input_boxes"].float()
        out = self.model(image_embeddings=self.embed(image, inputs["pixel_values"]),
                         multimask_output=False, **prompts)
        masks = self.processor.post_process_masks(
            out.pred_masks.float().cpu(), inputs["original_sizes"], inputs["reshaped_input_sizes"]
        )[0]
        return masks[:, 0].numpy().astype(bool), out.iou_scores[0, :, 0].float().cpu().numpy()


class Sam2Segmenter(SamSegmenter):
    """transformers' `Sam2Model` (SAM 2.1, a Hiera encoder): the same protocol and cache; its
    embedding is the encoder's feature pyramid, and its prompts nest one level deeper (image,
    object, point)."""

    @classmethod
    def load(cls, source: str, device: str = "cpu") -> Sam2Segmenter:
        from transformers import Sam2Model, Sam2Processor

        model = models.load_from(Sam2Model, source, name="sam", dtype=torch.float32)
        return cls(model, models.load_from(Sam2Processor, source, name="sam"), device)

    def embed(self, image: Image.Image, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        embedding = self.embeddings.get(image)
        if embedding is None:
            embedding = list(self.model.get_image_embeddings(pixel_values.to(self.device)))
            self.embeddings.put(image, embedding)
        return embedding

    @torch.inference_mode()
    def predict(self, image: Image.Image, points: Sequence[Sequence[float]] | None = None,
                labels: Sequence[int] | None = None,
                boxes: Sequence[Sequence[float]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        pts, lbl, bxs = check_prompts(image.size, points, labels, boxes)
        inputs = self.processor(
            images=image,
            input_points=None if pts is None else [[pts.tolist()]],
            input_labels=None if lbl is None else [[lbl.tolist()]],
            input_boxes=None if bxs is None else [bxs.tolist()],
            return_tensors="pt",
        )
        prompts = {k: inputs[k].to(self.device) for k in
                   ("input_points", "input_labels", "input_boxes") if k in inputs}
        out = self.model(image_embeddings=self.embed(image, inputs["pixel_values"]),
                         multimask_output=False, **prompts)
        masks = self.processor.post_process_masks(out.pred_masks.float().cpu(),
                                                  inputs["original_sizes"])[0]
        return masks[:, 0].numpy().astype(bool), out.iou_scores[0, :, 0].float().cpu().numpy()


class SegmentAnythingSegmenter:
    """Meta's `segment-anything` with a local checkpoint, through its `SamPredictor`."""

    def __init__(self, sam: Any, device: str = "cpu") -> None:
        from segment_anything import SamPredictor

        self.predictor = SamPredictor(sam.to(device).eval())
        self.embeddings = EmbeddingCache()

    @classmethod
    def load(cls, checkpoint: str | Path, device: str = "cpu") -> SegmentAnythingSegmenter:
        """Build the architecture the checkpoint's shapes name with `sam_model_registry`, and
        load it with `weights_only=True`: a checkpoint is data, never code to run."""
        from segment_anything import sam_model_registry

        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise models.ModelError(f"SAM checkpoint {path}: no such file")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle and zip errors of many types: all mean unreadable
            raise models.ModelError(f"SAM checkpoint {path} can't be read: {exc}") from exc
        weight = state.get(_PATCH_WEIGHT) if isinstance(state, dict) else None
        if weight is None:
            raise models.ModelError(f"{path} is not a segment-anything SAM checkpoint")
        kind = SAM_KINDS.get(int(weight.shape[0]))
        if kind is None:
            raise models.ModelError(
                f"{path}: a SAM image encoder {weight.shape[0]} wide matches none of "
                f"{', '.join(SAM_KINDS.values())}"
            )
        sam = sam_model_registry[kind]()
        try:
            sam.load_state_dict(state)
        except RuntimeError as exc:
            raise models.ModelError(f"{path} doesn't fit SAM {kind}: {exc}") from exc
        return cls(sam, device)

    @torch.inference_mode()
    def predict(self, image: Image.Image, points: Sequence[Sequence[float]] | None = None,
                labels: Sequence[int] | None = None,
                boxes: Sequence[Sequence[float]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        pts, lbl, bxs = check_prompts(image.size, points, labels, boxes)
        self.encode(image)
        if bxs is not None and len(bxs) > 1:
            device = self.predictor.device
            box_tensor = self.predictor.transform.apply_boxes_torch(
                torch.as_tensor(bxs, dtype=torch.float32, device=device), (image.height,
                                                                          image.width))
            masks, scores, _ = self.predictor.predict_torch(
                None, None, boxes=box_tensor, multimask_output=False)
            return masks[:, 0].cpu().numpy(), scores[:, 0].float().cpu().numpy()
        masks, scores, _ = self.predictor.predict(
            point_coords=pts, point_labels=lbl, box=None if bxs is None else bxs[0],
            multimask_output=False,
        )
        return masks.astype(bool), scores.astype(np.float32)

    @torch.inference_mode()
    def encode(self, image: Image.Image) -> None:
        """`SamPredictor` holds one image's features; the cache keeps a few and puts the one
        asked for back in place."""
        kept = self.embeddings.get(image)
        if kept is None:
            self.predictor.set_image(np.asarray(image))
            kept = (self.predictor.features, self.predictor.original_size,
                    self.predictor.input_size)
            self.embeddings.put(image, kept)
        predictor = self.predictor
        predictor.features, predictor.original_size, predictor.input_size = kept
        predictor.is_image_set = True

    def encoded(self, image: Image.Image) -> bool:
        return image in self.embeddings


SAM2_TYPES = ("sam2", "sam2_video")
"""transformers model types of SAM 2 / 2.1 checkpoints; the hub's sam2.1 ones are `sam2_video`,
whose image part `Sam2Model` loads (every weight it has; the video memory is left out)."""


def load_segmenter(source: str, device: str = "cpu") -> Segmenter:
    """A `.pth` file → segment-anything; a transformers checkpoint (hub id or folder) → SAM 2
    or SAM by its config's model type."""
    if source.endswith(".pth"):
        return SegmentAnythingSegmenter.load(source, device)
    from transformers import AutoConfig

    kind = models.load_from(AutoConfig, source, name="sam").model_type
    return (Sam2Segmenter if kind in SAM2_TYPES else SamSegmenter).load(source, device)


class SamGrounder(Grounder):
    """The "sam" backend: clicks and boxes only. Whole-image phrases still work (they need no
    model); any other phrase needs a text backend."""

    def find(self, image: Image.Image, queries: list[str]) -> list[list[Instance]]:
        raise ValueError(
            f"the sam backend segments clicks and boxes, not phrases ({', '.join(queries)}); "
            "use the clipseg or grounded-sam backend for text"
        )

    @classmethod
    def load(cls, settings: Settings, model: str | None = None,
             device: str = "cpu") -> SamGrounder:
        segmenter = load_segmenter(model or models.resolve("sam", settings), device)
        return cls(segmenter=lambda: segmenter)

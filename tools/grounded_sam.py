"""Grounded-SAM: GroundingDINO finds boxes for the phrases, SAM turns the boxes into masks.

All queries go into one caption ("car. sky. dog.") as GroundingDINO was trained, so the
image goes through the detector once per call; SAM then embeds the image once and decodes
every box in one batch. Each query keeps the boxes whose best token within its own part of
the caption passes the public Grounded-SAM thresholds (box 0.3, text 0.25), through the
processor's own post-processing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from promptartisan import models
from promptartisan.tools.grounding import Grounder, Instance
from promptartisan.tools.masks import Refinement

if TYPE_CHECKING:
    from promptartisan.settings import Settings
    from promptartisan.tools.sam import Segmenter

BOX_THRESHOLD = 0.3
TEXT_THRESHOLD = 0.25
NMS_IOU = 0.7  # GroundingDINO often returns the same object twice; that is not two objects


def caption(queries: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The detector's caption and each query's character span in it. Dots end phrases in
    GroundingDINO's captions, so they can't appear inside one."""
    text, spans = "", []
    for query in queries:
        clean = " ".join(query.lower().replace(".", " ").replace("?", " ").split())
        spans.append((len(text), len(text) + len(clean)))
        text += clean + ". "
    return text.strip(), spans


class GroundedSamGrounder(Grounder):
    """Instances from GroundingDINO boxes, masks from SAM."""

    def __init__(self, detector: Any, processor: Any, segmenter: Segmenter,
                 device: str = "cpu", refinement: Refinement | None = None,
                 box_threshold: float = BOX_THRESHOLD,
                 text_threshold: float = TEXT_THRESHOLD) -> None:
        super().__init__(refinement, lambda: segmenter)
        self.detector = detector.to(device).eval()
        self.processor = processor
        self.device = device
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold

    @classmethod
    def load(cls, settings: Settings, model: str | None = None,
             device: str = "cpu") -> GroundedSamGrounder:
        from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor

        from promptartisan.tools.sam import load_segmenter

        source = model or models.resolve("groundingdino", settings)
        return cls(
            models.load_from(GroundingDinoForObjectDetection, source, name="groundingdino",
                             dtype=torch.float32),
            models.load_from(GroundingDinoProcessor, source, name="groundingdino"),
            load_segmenter(models.resolve("sam", settings), device),
            device,
        )

    @torch.inference_mode()
    def detect(self, image: Image.Image, queries: list[str]) -> list[tuple[np.ndarray,
                                                                             np.ndarray]]:
        """(boxes (k, 4) xyxy in image pixels, scores (k,)) per query, from one detector pass."""
        from torchvision.ops import nms
        from transformers.models.grounding_dino.modeling_grounding_dino import (
            GroundingDinoObjectDetectionOutput,
        )

        text, spans = caption(queries)
        tokens = self.processor.tokenizer(text, return_offsets_mapping=True)
        limit = self.detector.config.max_text_len
        if len(tokens["input_ids"]) > limit:
            raise ValueError(
                f"the phrases make {len(tokens['input_ids'])} tokens, over GroundingDINO's "
                f"{limit}; ground fewer or shorter phrases at a time"
            )
        inputs = self.processor(images=image, text=text, return_tensors="pt").to(self.device)
        outputs = self.detector(**inputs)
        offsets = tokens["offset_mapping"]
        found = []
        for start, end in spans:
            inside = [i for i, (a, b) in enumerate(offsets) if b > a and a >= start and b <= end]
            logits = torch.full_like(outputs.logits, float("-inf"))
            logits[..., inside] = outputs.logits[..., inside]
            own = GroundingDinoObjectDetectionOutput(logits=logits, pred_boxes=outputs.pred_boxes)
            result = self.processor.post_process_grounded_object_detection(
                own, inputs["input_ids"], threshold=self.box_threshold,
                text_threshold=self.text_threshold, target_sizes=[(image.height, image.width)],
            )[0]
            boxes, scores = result["boxes"].float().cpu(), result["scores"].float().cpu()
            keep = nms(boxes, scores, NMS_IOU)
            boxes = boxes[keep].clamp(min=0)
            boxes[:, 0::2] = boxes[:, 0::2].clamp(max=image.width)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(max=image.height)
            found.append((boxes.numpy(), scores[keep].numpy()))
        return found

    def find(self, image: Image.Image, queries: list[str]) -> list[list[Instance]]:
        detections = self.detect(image, queries)
        valid = [(b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1]) for b, _ in detections]
        all_boxes = np.concatenate([b[v] for (b, _), v in zip(detections, valid, strict=True)])
        if len(all_boxes) == 0:
            return [[] for _ in queries]
        masks, _ = self.segmenter.predict(image, boxes=all_boxes)
        found, start = [], 0
        for (boxes, scores), v in zip(detections, valid, strict=True):
            boxes, scores = boxes[v], scores[v]
            found.append([Instance(mask=masks[start + i], box=boxes[i], score=float(scores[i]))
                          for i in range(len(boxes))])
            start += len(boxes)
        return found

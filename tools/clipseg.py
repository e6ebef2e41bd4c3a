"""CLIPSeg (transformers): text → heat map, fast on a CPU.

`CLIPSegForImageSegmentation.forward` runs the CLIP vision encoder once per (image, text)
pair, so n phrases would encode the same image n times. Here the vision encoder runs once,
the texts once as one batch, and only the light decoder runs per phrase — the same
computation as the model's forward (a test checks the logits match), n times cheaper in its
expensive part.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from PIL import Image

from promptartisan import models
from promptartisan.tools.grounding import Grounder, Instance
from promptartisan.tools.masks import Refinement, box_of, components

if TYPE_CHECKING:
    from promptartisan.settings import Settings
    from promptartisan.tools.sam import Segmenter


class ClipSegGrounder(Grounder):
    """Text grounding with CLIPSeg; instances are the connected pieces of each heat map."""

    def __init__(self, model: Any, processor: Any, device: str = "cpu",
                 refinement: Refinement | None = None,
                 segmenter: Callable[[], Segmenter] | None = None) -> None:
        super().__init__(refinement, segmenter)
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = device

    @classmethod
    def load(cls, settings: Settings, model: str | None = None,
             device: str = "cpu") -> ClipSegGrounder:
        from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

        from promptartisan.tools.sam import load_segmenter

        source = model or models.resolve("clipseg", settings)
        return cls(
            models.load_from(CLIPSegForImageSegmentation, source, name="clipseg",
                             dtype=torch.float32),
            models.load_from(CLIPSegProcessor, source, name="clipseg"),
            device,
            segmenter=lambda: load_segmenter(models.resolve("sam", settings), device),
        )

    @torch.inference_mode()
    def probabilities(self, image: Image.Image, queries: list[str]) -> torch.Tensor:
        """(n, height, width) probabilities at the image's size, one map per query."""
        pixels = self.processor(images=image, return_tensors="pt")["pixel_values"]
        text = self.processor.tokenizer(queries, padding=True, truncation=True,
                                        return_tensors="pt")
        clip = self.model.clip
        vision = clip.get_image_features(pixel_values=pixels.to(self.device),
                                         output_hidden_states=True)
        # hidden_states[0] is the embedding output, so layer i's output is at i + 1.
        activations = [vision.hidden_states[i + 1].expand(len(queries), -1, -1)
                       for i in self.model.extract_layers]
        conditional = clip.get_text_features(
            input_ids=text["input_ids"].to(self.device),
            attention_mask=text["attention_mask"].to(self.device),
        ).pooler_output
        logits = self.model.decoder(activations, conditional).logits
        logits = logits.reshape(len(queries), *logits.shape[-2:])
        probs = torch.sigmoid(logits.float())[:, None]
        return F.interpolate(probs, size=(image.height, image.width), mode="bilinear",
                             align_corners=False)[:, 0].cpu()

    def find(self, image: Image.Image, queries: list[str]) -> list[list[Instance]]:
        probs = self.probabilities(image, queries).numpy()
        min_pixels = max(1, round(self.refinement.min_area * image.width * image.height))
        found = []
        for prob in probs:
            pieces = components(prob > self.refinement.threshold, min_pixels)
            found.append([Instance(mask=piece, box=box_of(piece), score=float(prob[piece].max()))
                          for piece in pieces])
        return found

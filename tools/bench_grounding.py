"""Seconds per `ground` call for each backend at full size, random weights (the cost of a
forward pass does not depend on the weights' values):

    OMP_WAIT_POLICY=PASSIVE python -m promptartisan.tools.bench_grounding [--repeat 3]

CLIPSeg as clipseg-rd64-refined (ViT-B/16, 352 px), GroundingDINO as grounding-dino-tiny
(Swin-T, BERT-base, 800 px short side), SAM as sam-vit-base (ViT-B, 1024 px).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from promptartisan.tools.clipseg import ClipSegGrounder  # noqa: E402
from promptartisan.tools.grounded_sam import GroundedSamGrounder  # noqa: E402
from promptartisan.tools.sam import SamSegmenter  # noqa: E402

PHRASES = ["the dog", "the left car", "every balloon", "the sky"]
BOXES_PER_PHRASE = 2  # what a real detector keeps on a real photo; random logits keep ~all


def full_clipseg(device: str) -> ClipSegGrounder:
    from transformers import (
        CLIPSegConfig,
        CLIPSegForImageSegmentation,
        CLIPSegProcessor,
        CLIPSegVisionConfig,
        ViTImageProcessor,
    )

    from promptartisan.tokenizer import clip_tokenizer

    config = CLIPSegConfig(vision_config=CLIPSegVisionConfig(patch_size=16).to_dict(),
                           use_complex_transposed_convolution=True)
    processor = CLIPSegProcessor(
        image_processor=ViTImageProcessor(size={"height": 352, "width": 352},
                                          image_mean=[0.485, 0.456, 0.406],
                                          image_std=[0.229, 0.224, 0.225]),
        tokenizer=clip_tokenizer())
    return ClipSegGrounder(CLIPSegForImageSegmentation(config), processor, device)


def full_sam(device: str) -> SamSegmenter:
    from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

    return SamSegmenter(SamModel(SamConfig()), SamProcessor(SamImageProcessor()), device)


def full_grounded_sam(device: str) -> GroundedSamGrounder:
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    from promptartisan.tools.tiny_grounding import bert_vocab

    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(),
        tokenizer=BertTokenizer(vocab=bert_vocab(), model_max_length=256))
    grounder = GroundedSamGrounder(GroundingDinoForObjectDetection(GroundingDinoConfig()),
                                   processor, full_sam(device), device)
    detect = grounder.detect

    def few(image: Image.Image, queries: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(b[:BOXES_PER_PHRASE], s[:BOXES_PER_PHRASE]) for b, s in detect(image, queries)]

    grounder.detect = few  # type: ignore[method-assign]
    return grounder


def seconds(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds (all threads) of `repeat` runs after a warm-up.
    CPU seconds are what a busy shared machine distorts least."""
    call()
    wall = cpu = float("inf")
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8))
    rows = []
    print(f"device={args.device} threads={torch.get_num_threads()} "
          f"image={args.width}x{args.height} best of {args.repeat}; load {os.getloadavg()[0]:.1f}")

    def record(backend: str, what: str, phrases: int, call: Callable[[], object]) -> None:
        wall, cpu = seconds(call, args.repeat)
        rows.append({"backend": backend, "what": what, "phrases": phrases,
                     "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3)})
        print(f"{backend:<13} {what:<28} {wall:7.2f} s  ({cpu:7.2f} CPU s)", flush=True)

    def fresh() -> Callable[[], Image.Image]:
        """A new image each call (one pixel changed), so SAM's one-image cache can't help."""
        counter = iter(range(1, 10_000))

        def new() -> Image.Image:
            k, copy = next(counter), image.copy()
            copy.putpixel((k % image.width, 0), (k % 256, 255 - k % 256, 7))
            return copy

        return new

    with torch.inference_mode():
        grounder = full_clipseg(args.device)
        for n in (1, 4):
            record("clipseg", f"ground, {n} phrase(s)", n,
                   lambda n=n: grounder.ground(image, PHRASES[:n]))
        grounder = full_grounded_sam(args.device)
        for n in (1, 4):
            new = fresh()
            record("grounded-sam", f"ground, {n} phrase(s)", n,
                   lambda n=n, new=new: grounder.ground(new(), PHRASES[:n]))
        record("groundingdino", "detect only, 4 phrases", 4,
               lambda: grounder.detect(image, PHRASES))
        sam = grounder.segmenter
        new = fresh()
        record("sam", "click on a new image", 0, lambda: sam.predict(new(), points=[[320, 240]]))
        record("sam", "next click, same image", 0,
               lambda: sam.predict(image, points=[[300, 200]]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(rows, file, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

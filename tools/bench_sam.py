"""The point/box segmenters side by side at full size, random weights (a forward pass costs
the same whatever the weights' values): seconds to encode a new picture, and per later click
once its embedding is kept, both through the segmenter the product calls.

    OMP_WAIT_POLICY=PASSIVE python -m promptartisan.tools.bench_sam [--repeat 3] [--clicks 10]

SAM ViT-B as sam-vit-base (1024 px), SAM 2.1 as sam2.1-hiera-tiny and sam2.1-hiera-small
(Hiera, 1024 px). Quality can't be measured with random weights: see the README for the
published figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from promptartisan.tools.sam import Sam2Segmenter, SamSegmenter  # noqa: E402

HIERA = {  # SAM 2.1's configs (sam2.1_hiera_t.yaml, sam2.1_hiera_s.yaml)
    "tiny": {"blocks_per_stage": [1, 2, 7, 2], "global_attention_blocks": [5, 7, 9]},
    "small": {"blocks_per_stage": [1, 2, 11, 2], "global_attention_blocks": [7, 10, 13]},
}


def sam_vit_b(device: str) -> SamSegmenter:
    from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

    return SamSegmenter(SamModel(SamConfig()), SamProcessor(SamImageProcessor()), device)


def sam2(size: str) -> Callable[[str], Sam2Segmenter]:
    def build(device: str) -> Sam2Segmenter:
        from transformers import (
            Sam2Config,
            Sam2HieraDetConfig,
            Sam2ImageProcessor,
            Sam2Model,
            Sam2Processor,
            Sam2VisionConfig,
        )

        vision = Sam2VisionConfig(backbone_config=Sam2HieraDetConfig(**HIERA[size]).to_dict())
        return Sam2Segmenter(Sam2Model(Sam2Config(vision_config=vision.to_dict())),
                             Sam2Processor(image_processor=Sam2ImageProcessor()), device)

    return build


SEGMENTERS: dict[str, Callable[[str], SamSegmenter]] = {
    "sam-vit-base": sam_vit_b,
    "sam2.1-hiera-tiny": sam2("tiny"),
    "sam2.1-hiera-small": sam2("small"),
}


def measure(segmenters: dict[str, SamSegmenter], image: Image.Image, repeat: int,
            clicks: int) -> dict[str, dict[str, float]]:
    """Median seconds to encode a new picture and per later click, the models taking turns
    within each repeat so that a busy machine slows them alike."""
    encodes: dict[str, list[float]] = {name: [] for name in segmenters}
    times: dict[str, list[float]] = {name: [] for name in segmenters}
    rng = np.random.default_rng(0)
    for index in range(repeat + 1):  # the first round warms up
        picture = image.rotate(index)  # a new picture each round: nothing cached
        points = rng.uniform([0, 0], image.size, size=(clicks, 2)).tolist()
        for name, segmenter in segmenters.items():
            started = time.perf_counter()
            segmenter.encode(picture)
            encodes[name].append(time.perf_counter() - started)
            for point in points:
                started = time.perf_counter()
                segmenter.predict(picture, points=[point])
                times[name].append(time.perf_counter() - started)
    return {name: {
        "parameters_m": round(sum(p.numel() for p in segmenters[name].model.parameters()) / 1e6,
                              1),
        "encode_s": round(statistics.median(encodes[name][1:]), 3),
        "click_s": round(statistics.median(times[name][clicks:]), 4)} for name in segmenters}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="encodings timed per model")
    parser.add_argument("--clicks", type=int, default=10, help="clicks timed per encoding")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", choices=list(SEGMENTERS), default=list(SEGMENTERS))
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    from skimage import data

    image = Image.fromarray(data.astronaut())  # 512 × 512
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device}, "
          f"picture {image.width}×{image.height}, load average {os.getloadavg()[0]:.1f}")
    torch.manual_seed(0)
    segmenters = {name: SEGMENTERS[name](args.device) for name in args.models}
    with torch.inference_mode():
        results = measure(segmenters, image, args.repeat, args.clicks)
    print(f"{'model':<20} {'params (M)':>10} {'encode (s)':>11} {'click (s)':>10}")
    for name, row in results.items():
        print(f"{name:<20} {row['parameters_m']:>10} {row['encode_s']:>11} {row['click_s']:>10}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(json.dumps(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

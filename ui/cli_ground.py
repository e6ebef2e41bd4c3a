"""`promptartisan ground IMAGE PHRASE… [--backend …] [--out overlay.png]`: what each phrase
lands on, as numbers and as a picture."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from promptartisan.ui.cli import settings_from_args


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "ground", parents=[common], help="find the region each phrase names",
        description="Ground target phrases in an image and print each one's area, score and "
                    "boxes; with --out, also draw them.",
    )
    parser.add_argument("image", type=Path)
    parser.add_argument("phrases", nargs="+", metavar="PHRASE",
                        help='target phrases, e.g. "the left car" "every balloon" "the sky"')
    parser.add_argument("--backend", choices=["auto", "clipseg", "grounded-sam"],
                        help="text grounding backend (default: the grounding_backend setting)")
    parser.add_argument("--model", help="the backend's model: a hub id or a local folder")
    parser.add_argument("--out", type=Path, help="write an overlay of the masks here")
    parser.set_defaults(func=_ground)


def _ground(args: argparse.Namespace) -> int:
    from promptartisan.tools import load_grounder, overlay
    from promptartisan.tools.images import load_image

    settings = settings_from_args(args, grounding_backend=args.backend)
    if args.out is not None:
        _check_out(args.out, args.image)
    image = load_image(args.image, settings.max_pixels)
    grounder = load_grounder(None, model=args.model, settings=settings)
    groundings = grounder.ground(image, args.phrases)
    for phrase, grounding in zip(args.phrases, groundings, strict=True):
        if grounding is None:
            print(f"{phrase!r}: not found")
            continue
        boxes = " ".join("[" + ",".join(f"{v:.0f}" for v in box) + "]" for box in grounding.boxes)
        extra = "" if grounding.group is None else f" group={grounding.group}"
        if grounding.ambiguous:
            extra += f" ambiguous: {len(grounding.candidates)} candidates"
        print(f"{phrase!r}: area={grounding.area:.1%} score={grounding.score:.2f} "
              f"boxes={boxes}{extra}")
    if args.out:
        overlay(image, groundings).save(args.out)
        print(f"overlay: {args.out}")
    return 0


def _check_out(out: Path, image: Path) -> None:
    """Before any work: the overlay needs an image file name, and never the input's."""
    from PIL import Image

    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name such as overlay.png")
    if out.suffix.lower() not in Image.registered_extensions():
        raise ValueError(f"--out {out}: give an image file name, such as overlay.png")
    if out.is_file() and image.is_file() and os.path.samefile(out, image):
        raise ValueError(f"--out {out} is the input image; choose another file")

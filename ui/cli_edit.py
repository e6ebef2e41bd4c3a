"""`promptartisan edit IMAGE… --request TEXT --out DIR`: one plain-language request applied to
many images (planned once, grounded and edited per image), or
`promptartisan edit IMAGE… --region MASK.png PROMPT [--region …] --out DIR` with regions given
as masks (no planning, no grounding). Writes the edits, their masks and report.json."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from promptartisan.ui.cli import settings_from_args


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "edit", parents=[common], help="edit images from a request or from masks",
        description="Apply one request to every image (planned once, grounded per image, all "
                    "instructions in one diffusion pass), or edit given mask regions. A bad "
                    "image is reported and the others go on; DIR/report.json says what "
                    "happened to each.",
    )
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--request", metavar="TEXT",
                     help='what to change, e.g. "make the sky a sunset and the car red"')
    how.add_argument("--region", nargs=2, action="append", metavar=("MASK", "PROMPT"),
                     help="a mask image (white = edit) and its instruction; repeatable")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder for the results and report.json")
    parser.add_argument("--planner", help="rules (default) or llm:PROVIDER:MODEL")
    parser.add_argument("--steps", type=int, help="denoising steps")
    parser.add_argument("--seed", type=int, help="random seed (default: a new one per image)")
    parser.set_defaults(func=_edit)


def _edit(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from promptartisan.agent.editor import Editor
    from promptartisan.tools.images import load_image

    settings = settings_from_args(args, planner=args.planner, steps=args.steps, seed=args.seed)
    editor = Editor(settings)
    report: dict[str, Any] = {"request": args.request, "images": []}
    instructions, regions = None, None
    if args.request is not None:
        plan = editor.planner.plan(args.request, [])
        report["plan"] = plan.model_dump(mode="json")
        if plan.note:
            print(f"planner: {plan.note}", file=sys.stderr)
        if plan.action != "edit":
            print(f"promptartisan edit: the request is not an edit "
                  f"({plan.question or plan.reply or plan.action}); say what to change "
                  f"and where", file=sys.stderr)
            return 2
        instructions = plan.instructions
    else:
        regions = [(load_image(Path(mask)), prompt) for mask, prompt in args.region]
        report["regions"] = [{"mask": mask, "prompt": prompt} for mask, prompt in args.region]
    args.out.mkdir(parents=True, exist_ok=True)
    names: set[str] = set()
    with tqdm(args.images, unit="image", desc="editing") as bar:
        for path in bar:
            name = _unique(path.stem, names)
            entry: dict[str, Any] = {"input": str(path)}
            started = time.monotonic()
            try:
                entry.update(_edit_one(editor, path, name, args.out, instructions, regions,
                                       lambda e: bar.set_postfix_str(e.message, refresh=True)))
            except Exception as exc:  # one bad image must not stop the batch
                entry.update(status="error", message=f"{type(exc).__name__}: {exc}")
            entry["seconds"] = round(time.monotonic() - started, 3)
            if entry["status"] != "edited":
                tqdm.write(f"{path}: {entry['message']}", file=sys.stderr)
            report["images"].append(entry)
    (args.out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    edited = sum(entry["status"] == "edited" for entry in report["images"])
    print(f"{edited} of {len(args.images)} images edited; report: {args.out / 'report.json'}")
    return 0 if edited == len(args.images) else 1


def _edit_one(editor: Any, path: Path, name: str, out: Path, instructions: list[Any] | None,
              regions: list[tuple[Any, str]] | None, on_event: Any) -> dict[str, Any]:
    """Ground `instructions` (or take `regions`: mask, prompt) and edit one image; the
    report's entry for it."""
    from PIL import Image

    from promptartisan.agent.editor import Question, fit_mask
    from promptartisan.agent.session import RegionRecord
    from promptartisan.tools.images import load_image

    image = load_image(path, editor.settings.max_pixels)
    if instructions is not None:
        located = editor.locate(image, instructions)
        if isinstance(located, Question):
            return {"status": "skipped", "message": located.text, "choices": located.choices}
        records = located.regions
    else:
        records = [RegionRecord(mask=fit_mask(mask, image.size), prompt=prompt,
                                target=f"region {k}", order=k, source="user")
                   for k, (mask, prompt) in enumerate(regions or [])]
    rendered = editor.render(image, records, on_event=on_event)
    output = out / f"{name}.edited.png"
    rendered.image.save(output)
    masks = []
    for k, record in enumerate(records):
        mask_path = out / f"{name}.mask-{k}.png"
        Image.fromarray(record.mask.astype("uint8") * 255).save(mask_path)
        masks.append({"target": record.target, "prompt": record.prompt, "mask": str(mask_path),
                      "source": record.source, "score": record.score})
    return {"status": "edited", "output": str(output), "seed": rendered.seed,
            "regions": masks, "parameters": rendered.parameters}


def _unique(stem: str, taken: set[str]) -> str:
    name, number = stem, 2
    while name in taken:
        name, number = f"{stem}-{number}", number + 1
    taken.add(name)
    return name

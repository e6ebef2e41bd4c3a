"""`promptartisan edit IMAGE… --request TEXT --out DIR`: one plain-language request applied to
many images (planned once, grounded and edited per image), or
`promptartisan edit IMAGE… --region MASK.png PROMPT --point X,Y PROMPT --box X0,Y0,X1,Y1 PROMPT
--out DIR` with regions given as masks, clicks or boxes (no planning; clicks and boxes go to
SAM), all in one pass. Writes the edits, their masks and report.json, never over an input of
the run, nor over an existing file without --force."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

from promptartisan.tools.atomic import write_atomically
from promptartisan.ui.cli import settings_from_args

REPORT = "report.json"


POINTING_SYNTAX = ("write --point X,Y[;X,Y…] (an exclude point as -X,Y after an include one) "
                   "or --box X0,Y0,X1,Y1[;X,Y…], in the image's pixels")


class Outputs(NamedTuple):
    """The files one image's edit writes."""

    edited: Path
    masks: list[Path]


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "edit", parents=[common], help="edit images from a request or from regions",
        description="Apply one request to every image (planned once, grounded per image, all "
                    "instructions in one diffusion pass), or edit given regions: masks, "
                    "clicks and boxes. A bad image is reported and the others go on; "
                    "DIR/report.json says what happened to each.",
    )
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    how = parser.add_argument_group(
        "what to change", "--request, or regions: --region, --point and --box in any mix and "
        "number, each one region of the same single pass (a later one wins where they overlap)")
    how.add_argument("--request", metavar="TEXT",
                     help='what to change, e.g. "make the sky a sunset and the car red"')
    how.add_argument("--region", nargs=2, action=_Regions, dest="regions",
                     metavar=("MASK", "PROMPT"),
                     help="a mask image and its instruction; repeatable. White = edit, "
                          "black = keep; a mask with transparency: opaque = edit, "
                          "transparent = keep. Same aspect ratio as the image")
    how.add_argument("--point", nargs=2, action=_Regions, dest="regions",
                     metavar=("X,Y[;X,Y…]", "PROMPT"),
                     help="clicks on the thing to edit (SAM segments it) and its instruction; "
                          "repeatable. Image pixels, x right, y down; several clicks on one "
                          "thing join with ';'; a click to leave out is -X,Y after an inside "
                          "one: --point '120,340;-150,300' \"make it red\"")
    how.add_argument("--box", nargs=2, action=_Regions, dest="regions",
                     metavar=("X0,Y0,X1,Y1[;X,Y…]", "PROMPT"),
                     help="a box around the thing to edit (SAM segments it), optionally with "
                          "clicks as for --point, and its instruction; repeatable")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder for the results and report.json")
    parser.add_argument("--force", action="store_true",
                        help="replace files an earlier run left in DIR (never an input)")
    parser.add_argument("--planner", help="auto (default), rules or llm:PROVIDER:MODEL")
    parser.add_argument("--steps", type=int, help="denoising steps")
    parser.add_argument("--seed", type=int, help="random seed (default: a new one per image)")
    parser.set_defaults(func=_edit, regions=None)


class _Regions(argparse.Action):
    """--region, --point and --box into one list in the order given: (flag, spec, prompt)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        given = list(getattr(namespace, self.dest) or [])
        given.append(((option_string or "--region").lstrip("-"), values[0], values[1]))
        setattr(namespace, self.dest, given)


def pointing(flag: str, spec: str) -> list[Any]:
    """The gestures of a --point or --box spec, or a ValueError saying how to write it."""
    from promptartisan.tools.selection import Gesture

    gestures = []
    for item in (part.strip() for part in spec.split(";")):
        exclude = item.startswith("-")
        try:
            values = [float(v) for v in item.removeprefix("-").split(",")]
        except ValueError:
            values = []
        if not values or not all(math.isfinite(v) for v in values):
            raise ValueError(f"--{flag} {spec!r}: {item!r} is not a list of numbers; "
                             f"{POINTING_SYNTAX}")
        if len(values) == 4 and not exclude and flag == "box" and not gestures:
            gestures.append(Gesture(kind="box", points=[values[:2], values[2:]]))
        elif len(values) == 2 and (gestures or flag == "point") and (gestures or not exclude):
            gestures.append(Gesture(kind="exclude" if exclude else "include",
                                    points=[values]))
        else:
            first = "the box" if flag == "box" else "an inside click"
            raise ValueError(f"--{flag} {spec!r}: {item!r} doesn't fit here ({first} comes "
                             f"first, then clicks X,Y or -X,Y); {POINTING_SYNTAX}")
    return gestures


def _edit(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from promptartisan.agent.editor import Editor
    from promptartisan.agent.image_edit import edited_name, mask_name
    from promptartisan.tools.mask_io import read_mask

    settings = settings_from_args(args, planner=args.planner, steps=args.steps, seed=args.seed)
    if (args.request is None) == (not args.regions):
        raise ValueError("give --request TEXT, or regions (--region, --point, --box), not both")
    _check_out_folder(args.out)
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
        if len(args.regions) > settings.max_regions:
            raise ValueError(f"{len(args.regions)} regions: one pass takes at most "
                             f"{settings.max_regions} (max_regions)")
        regions = [(read_mask(Path(spec), max_pixels=settings.max_pixels) if flag == "region"
                    else pointing(flag, spec), prompt) for flag, spec, prompt in args.regions]
        report["regions"] = [{"mask" if flag == "region" else flag: spec, "prompt": prompt}
                             for flag, spec, prompt in args.regions]
    count = len(instructions) if instructions is not None else len(args.regions)
    outputs = [Outputs(args.out / edited_name(name),
                       [args.out / mask_name(name, k) for k in range(count)])
               for name in _names(args.images)]
    region_masks = [Path(spec) for flag, spec, _ in args.regions or [] if flag == "region"]
    _refuse_overwrites(args.images, region_masks, outputs, args.out / REPORT, args.force)
    args.out.mkdir(parents=True, exist_ok=True)
    with tqdm(list(zip(args.images, outputs, strict=True)), unit="image", desc="editing") as bar:
        for path, written in bar:
            entry: dict[str, Any] = {"input": str(path)}
            started = time.monotonic()
            try:
                entry.update(_edit_one(editor, path, written, instructions, regions,
                                       lambda e: bar.set_postfix_str(e.message, refresh=True)))
            except Exception as exc:  # one bad image must not stop the batch
                entry.update(status="error", message=f"{type(exc).__name__}: {exc}")
            entry["seconds"] = round(time.monotonic() - started, 3)
            if entry["status"] != "edited":
                tqdm.write(f"{path}: {entry['message']}", file=sys.stderr)
            report["images"].append(entry)
    write_atomically(args.out / REPORT,
                      lambda handle: handle.write(json.dumps(report, indent=2).encode("utf-8")))
    edited = sum(entry["status"] == "edited" for entry in report["images"])
    print(f"{edited} of {len(args.images)} images edited; report: {args.out / REPORT}")
    return 0 if edited == len(args.images) else 1


def _edit_one(editor: Any, path: Path, written: Outputs, instructions: list[Any] | None,
              regions: list[tuple[Any, str]] | None, on_event: Any) -> dict[str, Any]:
    """Ground `instructions` (or take `regions`: a mask or the gestures SAM segments, and a
    prompt) and edit one image; the report's entry for it."""
    from promptartisan.agent.image_edit import NotLocated, edit_image, edited_name
    from promptartisan.agent.sessions.store import RegionRecord
    from promptartisan.tools.images import load_image

    image = load_image(path, editor.settings.max_pixels)
    records = None if regions is None else [
        RegionRecord(mask=_region_mask(editor, image, given), prompt=prompt,
                     target=f"region {k}", order=k, source="user")
        for k, (given, prompt) in enumerate(regions)]

    def write(name: str, fill: Any) -> str:
        write_atomically(written.edited.parent / name, fill)
        return str(written.edited.parent / name)

    stem = written.edited.name.removesuffix(edited_name(""))
    edited = edit_image(editor, image, stem, write, instructions, records, on_event=on_event)
    if isinstance(edited, NotLocated):
        return {"status": "skipped", "message": edited.question.text,
                "choices": edited.question.choices}
    return {"status": "edited", **edited}


def _region_mask(editor: Any, image: Any, given: Any) -> Any:
    """A --region mask at the image's size, or the mask SAM makes of --point/--box gestures
    (a SelectionError names a click outside this image)."""
    from promptartisan.tools.mask_io import read_mask
    from promptartisan.tools.selection import SelectionBook, SelectionError, Selector

    if not isinstance(given, list):
        return read_mask(given, image.size)
    book = SelectionBook(image, 0, Selector.shared(editor.settings).segment, max_regions=1)
    number = None
    for gesture in given:
        number = book.gesture(gesture, number)
    mask = book.mask(number)
    if not mask.any():
        raise SelectionError("the clicks selected nothing; click inside the thing to edit")
    return mask


def _names(images: list[Path]) -> list[str]:
    """A file-name stem per image, distinct even where the file system ignores case:
    a.png, b/a.png, A.jpg → a, a-2, A-3."""
    taken: set[str] = set()
    names = []
    for path in images:
        name, number = path.stem, 2
        while name.casefold() in taken:
            name, number = f"{path.stem}-{number}", number + 1
        taken.add(name.casefold())
        names.append(name)
    return names


def _check_out_folder(out: Path) -> None:
    """--out must be a folder, or a path where one can be made: say so before any work."""
    for folder in (out, *out.parents):
        if folder.exists():
            if folder == out and not out.is_dir():
                raise ValueError(f"--out {out} is a file; give a folder")
            if not folder.is_dir():
                raise ValueError(f"--out {out}: {folder} is a file, not a folder")
            return


def _refuse_overwrites(images: list[Path], region_masks: list[Path], outputs: list[Outputs],
                       report: Path, force: bool) -> None:
    """Before any image is edited: no output may be an input of this run (not even with
    --force, and whatever path leads to it), nor an existing file unless --force."""
    present = [path for path in (*images, *region_masks) if path.is_file()]
    planned = [(report, "the report")] + [
        (path, f"the edit of {image}") for image, written in zip(images, outputs, strict=True)
        for path in (written.edited, *written.masks)]
    existing = [(path, what) for path, what in planned if path.exists()]
    for path, what in existing:
        for source in present:
            if os.path.samefile(path, source):
                raise ValueError(f"{path} is an input of this run and {what} would be written "
                                 f"over it; choose another --out")
    if existing and not force:
        path, what = existing[0]
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise ValueError(f"{path} exists already{more}; {what} would replace it: use --force, "
                         f"or another --out")



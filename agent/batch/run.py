"""One request over many images, resumable: `promptartisan batch`.

The request is planned once; a request that would need a question is refused before any image
is read. Each image is keyed by a hash of (input, plan, the settings that shape a result): the
plan, not the request's words, so rewording that plans the same edit redoes nothing. Its
result, masks and record (the provenance, written last) are named by that key, so an image is
done when its result and its record are there, and a rerun skips it. Each image's seed comes
from its key, so where and in what order an image is edited doesn't change it. One run at a
time writes to an output folder (`Location.lock`).

The images run in this process (`run_in_process`) or on a Ray cluster
(`promptartisan.agent.batch.ray_runner`); both call `edit_item` per image.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from promptartisan.agent.batch.files import Location, absolute, location
from promptartisan.agent.batch.inputs import Source, expand
from promptartisan.agent.batch.report import REPORT, SUMMARY, Report, keep_cut_runs
from promptartisan.agent.editor import Editor
from promptartisan.agent.image_edit import NotLocated, edit_image, edited_name
from promptartisan.agent.planning.plan import Plan
from promptartisan.settings import Settings

RESULT_SETTINGS = ("instruct_pix2pix", "clipseg", "groundingdino", "sam", "tiny", "dtype",
                   "steps", "guidance_scale", "image_guidance_scale", "preserve_background",
                   "seed", "max_regions", "working_size", "max_pixels", "grounding_backend",
                   "quantize", "lora", "scheduler")
"""The settings a result depends on, and so its key (the plan's instructions stand for the
planner's)."""

KEY_CHARS = 16
"""Hex digits of the key in output names: 64 bits."""

Runner = Callable[["Job", list["Item"]], Iterator[dict[str, Any]]]
"""Runs `edit_item` on every item somewhere and yields each report entry as it is done."""

MakeEditor = Callable[[Settings], Editor]


class VagueRequest(ValueError):
    """The request needs a question answered, and a batch can't ask one."""


@dataclass(frozen=True)
class Job:
    """What every image of a batch shares. `threads`: torch's CPU threads per worker (CPU
    sums depend on how many threads share them, so a result is reproduced bit for bit at the
    same count); None leaves torch's default."""

    settings: Settings
    request: str
    plan: dict[str, Any]
    out: str
    threads: int | None = None


@dataclass(frozen=True)
class Item:
    """One image of a batch: its input, the name its outputs start with, its key."""

    input: str
    name: str
    key: str

    @property
    def stem(self) -> str:
        return f"{self.name}.{self.key[:KEY_CHARS]}"

    @property
    def seed(self) -> int:
        """The image's seed, from its key (which holds the settings' seed)."""
        return int(self.key[:8], 16) & 0x7FFFFFFF


def record_name(stem: str) -> str:
    return f"{stem}.json"


def plan_request(planner: Any, request: str) -> Plan:
    """The request's plan; a VagueRequest, with the question it would have asked, unless it is
    an edit."""
    plan = planner.plan(request, [])
    if plan.action != "edit" or not plan.instructions:
        question = plan.question or plan.reply or "What should change, and where?"
        raise VagueRequest(f"the request needs an answer a batch can't give: {question} "
                           f"Say what to change and where")
    return plan


def items_of(sources: list[Source], plan: Plan, settings: Settings) -> list[Item]:
    """An item per source, keyed by (the input, whatever names it; the plan's instructions and
    targets; result settings): not the request's words, which a planner may read the same way
    twice."""
    instructions = [i.model_dump(mode="json") for i in plan.instructions]  # not its notes
    basis = json.dumps({"instructions": instructions,
                        "settings": settings.model_dump(mode="json", include=set(RESULT_SETTINGS))},
                       sort_keys=True)
    return [Item(source.uri, source.name, hashlib.sha256(
        f"{basis}\0{_identity(source.uri)}\0{source.size}\0{source.mtime_ns}".encode()
    ).hexdigest()) for source in sources]


def _identity(uri: str) -> str:
    """What the input is, however it is named (a path, a file:// URI, a link)."""
    kind, path = location(uri).identity
    return f"{kind}:{path}"


def edit_item(editor: Editor, job: Job, item: Item) -> dict[str, Any]:
    """Read, ground, edit and write one image, then its record; the report's entry. Never
    raises for the image's sake: a failure is an entry with its reason."""
    import torch

    from promptartisan.tools.images import load_image

    started = time.monotonic()
    entry: dict[str, Any] = {"input": item.input, "key": item.key}
    out = location(job.out)
    try:
        data = location(item.input).read_bytes()
        image = load_image(data, job.settings.max_pixels, name=item.input)
        plan = Plan.model_validate(job.plan)
        edited = edit_image(editor, image, item.stem,
                            lambda name, fill: out.child(name).write(fill),
                            plan.instructions, seed=item.seed)
        if isinstance(edited, NotLocated):
            entry.update(status="failed", reason=edited.question.text)
        else:
            record = {"kind": "edit", "input": item.input,
                      "input_sha256": hashlib.sha256(data).hexdigest(), "key": item.key,
                      "request": job.request, "plan": job.plan, "torch_threads":
                      torch.get_num_threads(), **edited}
            entry.update(status="done", output=edited["output"], record=out.child(
                record_name(item.stem)).write(lambda handle: handle.write(
                    json.dumps(record, indent=2).encode("utf-8"))))
    except Exception as exc:  # one image's failure is its entry; the batch goes on
        entry.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
    entry["seconds"] = round(time.monotonic() - started, 3)
    return entry


def run_in_process(editor: Editor, job: Job, items: list[Item]) -> Iterator[dict[str, Any]]:
    """Every item, one after another, with `editor`'s models."""
    quiet_loading()
    with torch_threads(job.threads):
        loaded = load_models(editor) if items else None
        for item in items:
            entry = edit_item(editor, job, item)
            if loaded is not None:
                entry["load_seconds"], loaded = loaded, None
            yield entry


def load_models(editor: Editor) -> float:
    """Load the editor's models now, so that no image's seconds hold them; the seconds it
    took (a worker's first entry carries them as `load_seconds`)."""
    started = time.monotonic()
    editor.grounder  # noqa: B018 - loads on first use
    editor.pipeline  # noqa: B018
    return round(time.monotonic() - started, 3)


def quiet_loading() -> None:
    """No progress bars of diffusers' and transformers' own while models load: the batch's
    bar counts images."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """torch's CPU threads set to `count` (None: as they are) for the duration."""
    import torch

    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_batch(settings: Settings, request: str, inputs: list[str], out: str,
              lists: list[str] = (), runner: Runner | None = None,
              make_editor: MakeEditor = Editor, threads: int | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Plan `request`, find the inputs, skip what an earlier run did, run the rest with
    `runner` (default: in this process), and write report.jsonl and summary.json into `out`.
    Returns the summary. Without a seed in the settings the base seed is 0: a batch is
    reproducible, and resumable, by default. Local paths are made absolute here, so workers
    anywhere read and write the same files."""
    if settings.seed is None:
        settings = settings.model_copy(update={"seed": 0})
    editor = make_editor(settings)
    plan = plan_request(editor.planner, request)
    out = absolute(out)
    folder = location(out)
    lists = [absolute(name) for name in lists]
    _refuse_overwrites(lists, folder)
    left_out: list[str] = []
    items = items_of(expand(inputs, lists, skip=folder, left_out=left_out), plan, settings)
    if left_out and progress:
        print(f"{len(left_out)} image(s) inside the output folder {out} left out: a batch "
              "never reads its own output", file=sys.stderr)
    folder.make_folder()
    with folder.lock() as locked:
        folder.sweep_temporaries(locked)
        keep_cut_runs(folder)
        present = folder.names()
        finished = [item for item in items
                    if edited_name(item.stem) in present and record_name(item.stem) in present]
        job = Job(settings, request, plan.model_dump(mode="json"), out, threads)
        done = {item.key for item in finished}
        pending = [item for item in items if item.key not in done]
        run = runner or (lambda job, items: run_in_process(editor, job, items))
        entries = run(job, pending)  # a runner that refuses does it here, before the report
        report = Report(folder, request, job.plan, len(items), progress, len(left_out))
        with report:
            for item in finished:
                report.add({"input": item.input, "key": item.key, "status": "skipped",
                            "output": folder.child(edited_name(item.stem)).uri,
                            "record": folder.child(record_name(item.stem)).uri})
            for entry in entries:
                report.add(entry)
        return report.summary()


def _refuse_overwrites(lists: list[str], folder: Location) -> None:
    """No list may be a file the report writes (inputs inside the output folder are never
    inputs: `expand`)."""
    written = {folder.child(name).identity for name in (REPORT, SUMMARY)}
    clash = next((name for name in lists if location(name).identity in written), None)
    if clash is not None:
        raise ValueError(f"{clash} is a list of this run's inputs and its report would be "
                         "written over it; choose another --out")

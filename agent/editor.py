"""One chat turn, start to finish: plan → a question | a move in the history | ground every
target → the engine once with all regions → store the version.

The engine and the grounder are loaded once per process and shared by every Editor and
session; `DEVICE_LOCK` lets one model run on the device at a time, so concurrent turns queue
rather than interleave. A turn that fails or is cancelled stores nothing.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from promptartisan.agent.planning.clarify import (
    not_found_question,
    pick_choice,
    position_choices,
    which_question,
)
from promptartisan.agent.planning.plan import Instruction, Plan, selection_number, selection_target
from promptartisan.agent.planning.planners import plan_turn, version_history
from promptartisan.agent.sessions.store import PendingRequest, RegionRecord, Session
from promptartisan.settings import Settings
from promptartisan.shared import DEVICE_LOCK, shared_model
from promptartisan.tools.images import from_working_size, load_image, to_working_size
from promptartisan.tools.mask_io import read_mask, resize_mask
from promptartisan.tools.paste import ENGINE_FEATHER, paste_back

if TYPE_CHECKING:
    from promptartisan.agent.planning.planners import Planner
    from promptartisan.tools.grounding import Grounder, Grounding

log = logging.getLogger(__name__)

CANCEL_POLL_SECONDS = 0.05
"""How often a turn waiting for its planner looks whether it was cancelled."""

Stage = Literal["planning", "grounding", "editing", "saving"]
Kind = Literal["edit", "clarify", "undo", "redo", "reset", "goto", "forget", "chat", "error",
               "cancelled"]

@dataclass(frozen=True)
class ProgressEvent:
    """Where a turn is. `plan` comes with the planning stage's last event, `overlay` and
    `groundings` (the masks found) with the grounding stage's, so a UI can show what was
    understood and where while the turn goes on."""

    stage: Stage
    message: str
    step: int | None = None
    total: int | None = None
    plan: Plan | None = None
    overlay: Image.Image | None = None
    groundings: list[Grounding] | None = None


@dataclass
class TurnResult:
    """What a turn did. `version_id` and `image` are the current version after the turn;
    `choices` are the answers offered with a question; `masks` the regions edited; `error` the
    exception behind a kind "error" result, so a UI can say what to do about it."""

    kind: Kind
    message: str
    plan: Plan | None = None
    version_id: int | None = None
    image: Image.Image | None = None
    overlay: Image.Image | None = None
    groundings: list[Grounding] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0
    error: BaseException | None = None


@dataclass(frozen=True)
class Rendered:
    """An edit at the source's size, with everything that made it."""

    image: Image.Image
    seed: int
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Question:
    """Grounding could not decide where instruction `index` applies."""

    kind: Literal["locate", "which"]
    index: int
    text: str
    choices: list[str] = field(default_factory=list)
    candidates: list[list[float]] = field(default_factory=list)
    grounding: Grounding | None = None


@dataclass(frozen=True)
class Located:
    regions: list[RegionRecord]
    groundings: list[Grounding]


@dataclass(frozen=True)
class Request:
    """What to act on this turn: the request text (merged with a pending one), its plan,
    boxes the person already chose for some instructions (index → boxes), and which
    instruction the person's mask belongs to, if any; `picked`: the version chosen among
    several a description matched; `confirmed`: the answer to "take it back anyway?"."""

    text: str
    plan: Plan
    chosen: dict[str, list[list[float]]] = field(default_factory=dict)
    mask_index: int | None = None
    picked: int | None = None
    confirmed: bool | None = None


class Cancelled(Exception):
    """The person cancelled the turn."""


def _ignore(event: ProgressEvent) -> None:
    """The default progress listener."""


class Editor:
    """Runs chat turns against sessions. `planner`, `grounder` and `pipeline` default to the
    settings' choices (the last two shared process-wide); pass objects to use others."""

    def __init__(self, settings: Settings, planner: Planner | None = None,
                 grounder: Grounder | None = None, pipeline: Any = None) -> None:
        self.settings = settings
        self._planner = planner
        self._grounder = grounder
        self._pipeline = pipeline

    @property
    def planner(self) -> Planner:
        if self._planner is None:
            from promptartisan.agent.planning.planners import load_planner

            self._planner = load_planner(self.settings.planner, self.settings)
        return self._planner

    @property
    def grounder(self) -> Grounder:
        if self._grounder is None:
            from promptartisan.tools.grounding import load_grounder

            s = self.settings
            backend, device = s.resolved_grounding_backend(), s.resolved_device()
            key = ("grounder", backend, device, s.clipseg, s.groundingdino, s.sam, s.tiny,
                   str(s.tiny_dir))
            self._grounder = shared_model(
                key, lambda: load_grounder(backend, device=device, settings=s))
        return self._grounder

    @property
    def pipeline(self) -> Any:
        if self._pipeline is None:
            from promptartisan import models

            s = self.settings
            device, dtype = s.resolved_device(), s.resolved_dtype()
            key = ("engine", s.instruct_pix2pix, s.tiny, str(s.tiny_dir), device, str(dtype),
                   s.memory, s.quantize, s.scheduler, repr(s.lora))
            # The family's pipeline, as the model's config says, placed as `memory` says.
            self._pipeline = shared_model(key, lambda: _quiet(models.load_engine_on_device(s)))
        return self._pipeline

    # ----- the turn -----------------------------------------------------------------------

    def turn(self, session: Session, text: str, image: Any = None, mask: Any = None,
             plan: Plan | None = None, on_event: Callable[[ProgressEvent], None] | None = None,
             cancel: threading.Event | None = None,
             selections: dict[int, np.ndarray] | None = None) -> TurnResult:
        """Answer one message. `image`: a new upload (stored as a version first); `mask`: the
        region the person drew or clicked, which replaces grounding for a one-instruction
        edit; `plan`: skip planning; `selections`: the person's numbered selections on the
        current version (`SelectionBook.masks()`), which the message names by number ("make 1
        red"). Never raises for bad input or a failing model: the result is then kind "error"
        and the session is as it was."""
        return self._guarded(session, lambda: self._turn(
            session, text.strip(), image, mask, plan, on_event or _ignore,
            cancel or threading.Event(), selections))

    def retry(self, session: Session, version: int,
              on_event: Callable[[ProgressEvent], None] | None = None,
              cancel: threading.Event | None = None) -> TurnResult:
        """The edit that made `version` once more with a new seed: the same regions and
        instructions on the same parent, stored as a sibling of `version`. Never raises (see
        `turn`)."""
        return self._guarded(session, lambda: self._retry(
            session, version, on_event or _ignore, cancel or threading.Event()))

    def _guarded(self, session: Session, work: Callable[[], TurnResult]) -> TurnResult:
        """`work()`'s result, timed; a cancel or a failure is a result too."""
        started = time.monotonic()
        try:
            result = work()
        except Cancelled:
            result = self._unchanged(session, "cancelled", "Cancelled; nothing was changed.")
        except Exception as exc:  # a turn must not crash the conversation
            log.exception("turn failed in session %s", session.id)
            result = self._unchanged(session, "error", _friendly(exc))
            result.error = exc
        result.seconds = time.monotonic() - started
        return result

    def _turn(self, session: Session, text: str, image: Any, mask: Any, plan: Plan | None,
              emit: Callable[[ProgressEvent], None], cancel: threading.Event,
              selections: dict[int, np.ndarray] | None = None) -> TurnResult:
        limit = self.settings.max_message_chars
        if len(text) > limit:
            return self._unchanged(session, "error", (
                f"That message is {len(text):,} characters long; I read requests of up to "
                f"{limit:,}. Please send a shorter one: a sentence or two for each change. "
                f"Nothing was changed."))
        if image is not None:
            upload = load_image(image, self.settings.max_pixels)
            number = session.add_version(upload, [], {"kind": "upload", "size": list(upload.size)},
                                         text="", message="New image uploaded.", kind="upload")
            if not text and plan is None:
                return TurnResult("edit", f"New image uploaded as version {number}.",
                                  version_id=number, image=upload)
        _check(cancel)
        emit(ProgressEvent("planning", "Reading the request…"))
        request = self._understand(session, text, plan, mask is not None, cancel, selections)
        plan = request.plan
        emit(ProgressEvent("planning", "Planned.", plan=plan))
        plan_json = plan.model_dump(mode="json")
        _check(cancel)
        if plan.action == "clarify":
            question = plan.question or "Could you say more about what to change?"
            session.record_turn(request.text, "clarify", question, plan_json,
                                pending=PendingRequest(request.text, question))
            return self._unchanged(session, "clarify", question, plan)
        if plan.action == "chat":
            reply = plan.reply or "I edit pictures: tell me what to change."
            session.record_turn(request.text, "chat", reply, plan_json)
            return self._unchanged(session, "chat", reply, plan)
        if plan.action in ("undo", "redo", "reset"):
            moved = session.move(plan.action, request.text, plan_json, steps=plan.count)
            return self._unchanged(session, plan.action, _with_note(moved.message, plan), plan)
        if plan.action in ("goto", "forget"):
            return self._history(session, request)
        return self._edit(session, request, mask, emit, cancel, selections)

    def _understand(self, session: Session, text: str, plan: Plan | None,
                    has_mask: bool, cancel: threading.Event,
                    selections: dict[int, np.ndarray] | None = None) -> Request:
        """The request this message makes, read as the answer to a pending question if any."""
        if plan is not None:
            return Request(text, plan)
        pending = session.pending
        context = session.recent_messages()
        history = partial(version_history, session)  # for a planner that reads it
        if pending is not None and pending.kind in ("which", "locate") and has_mask:
            return Request(pending.text, Plan.model_validate(pending.data["plan"]),
                           pending.data["chosen"], mask_index=pending.data["index"])
        if pending is not None and pending.kind == "which":
            pick = pick_choice(text, pending.choices)
            if pick is not None:
                candidates = pending.data["candidates"]
                boxes = candidates if isinstance(pick, str) else [candidates[pick]]
                chosen = {**pending.data["chosen"], str(pending.data["index"]): boxes}
                return Request(pending.text, Plan.model_validate(pending.data["plan"]), chosen)
        if pending is not None and pending.kind in ("version", "forget"):
            from promptartisan.agent.sessions.forget import read_confirmation
            from promptartisan.agent.sessions.history_search import pick_version

            asked = Plan.model_validate(pending.data["plan"])
            if pending.kind == "version" and (
                    picked := pick_version(text, pending.data["candidates"])) is not None:
                return Request(pending.text, asked, picked=picked)
            if pending.kind == "forget" and (confirmed := read_confirmation(text)) is not None:
                return Request(pending.text, asked, confirmed=confirmed)
        if pending is not None and pending.kind == "locate":
            own = self._plan(text, context, cancel, history)
            if own.action in ("edit", "undo", "redo", "reset", "goto", "forget"):
                return Request(text, own)
            rephrased = _retarget(Plan.model_validate(pending.data["plan"]),
                                  pending.data["index"], text)
            return Request(pending.text, rephrased, pending.data["chosen"])
        if pending is not None and pending.kind == "clarify":
            from promptartisan.agent.planning.rules_planner import merge_answer

            text = merge_answer(pending.text, pending.question, text)
        if selections is not None:  # "make 1 red": the numbers are read before the planner
            from promptartisan.agent.planning.selection_refs import plan_with_selections

            return Request(text, plan_with_selections(
                text, list(selections), lambda rest: self._plan(rest, context, cancel, history)))
        return Request(text, self._plan(text, context, cancel, history))

    def _plan(self, text: str, context: list[str], cancel: threading.Event,
              history: Callable[[], list[str]] | None = None) -> Plan:
        """The planner's plan of `text` (`history`: the session's versions, for a planner that
        reads them). The planner runs in a thread of its own while the turn looks at `cancel`,
        so a stop ends the turn at once even while a language model's server keeps the planner
        waiting; the abandoned call ends by its own timeouts, unheard."""
        planner = self.planner
        planned: Future[Plan] = Future()

        def run() -> None:
            try:
                planned.set_result(plan_turn(planner, text, context, history, cancel))
            except BaseException as exc:  # raised again in the turn, which reports it
                planned.set_exception(exc)

        threading.Thread(target=run, name="planner", daemon=True).start()
        while not wait([planned], timeout=CANCEL_POLL_SECONDS).done:
            _check(cancel)
        return planned.result()

    def _edit(self, session: Session, request: Request, mask: Any,
              emit: Callable[[ProgressEvent], None], cancel: threading.Event,
              selections: dict[int, np.ndarray] | None = None) -> TurnResult:
        plan = request.plan
        parent = session.current
        source = session.image(parent)
        emit(ProgressEvent("grounding", "Finding where to edit…"))
        mask_index = request.mask_index
        if mask_index is None and len(plan.instructions) == 1:
            mask_index = 0
        masks = {mask_index: mask} if mask is not None and mask_index is not None else {}
        located = self.locate(source, plan.instructions, request.chosen, masks, selections)
        if isinstance(located, Question):
            return self._ask_where(session, request, source, located)
        overlay = self._overlay(source, located.groundings)
        emit(ProgressEvent("grounding", "Found where to edit.", overlay=overlay,
                           groundings=located.groundings))
        _check(cancel)
        rendered = self.render(source, located.regions, emit, cancel)
        _check(cancel)
        emit(ProgressEvent("saving", "Saving the new version…"))
        provenance = {"kind": "edit", "request": request.text,
                      "plan": plan.model_dump(mode="json"), **rendered.parameters}
        message = _edit_message(plan, located.regions, ignored_mask=mask is not None
                                and not masks, left_out=_left_out(plan, selections or {}))
        number = session.add_version(rendered.image, located.regions, provenance,
                                     text=request.text, message=message,
                                     plan=plan.model_dump(mode="json"), parent=parent,
                                     seed=rendered.seed)
        return TurnResult("edit", f"{message} (version {number})", plan, number, rendered.image,
                          overlay, located.groundings,
                          masks=[region.mask for region in located.regions])

    def _history(self, session: Session, request: Request) -> TurnResult:
        """Go to a version the person described, or take back earlier instructions (a new
        version); either may ask first (which version? take it back anyway?)."""
        from promptartisan.agent.sessions.forget import forget
        from promptartisan.agent.sessions.history_search import go_to_described

        plan = request.plan
        outcome = (go_to_described(session, request.text, plan, request.picked)
                   if plan.action == "goto"
                   else forget(session, request.text, plan, request.confirmed))
        result = self._unchanged(session, outcome.kind, _with_note(outcome.message, plan), plan)
        result.choices = list(outcome.choices)
        return result

    def _retry(self, session: Session, number: int, emit: Callable[[ProgressEvent], None],
               cancel: threading.Event) -> TurnResult:
        made = session.version(number)
        records = session.regions(number)
        if made.parent is None or not records:
            return self._unchanged(session, "error", f"Version {number} was not made by an "
                                   "edit, so there is nothing to try again.")
        regions = [RegionRecord(
            mask=session.mask(number, r["k"]), prompt=r["prompt"], target=r["target"],
            group=r["group"], order=r["order"], source=r["source"], score=r["score"],
            label=r["label"], boxes=r["boxes"]) for r in records]
        seed = made.seed
        while seed == made.seed:
            seed = secrets.randbelow(2**31)
        rendered = self.render(session.image(made.parent), regions, emit, cancel, seed=seed)
        _check(cancel)
        emit(ProgressEvent("saving", "Saving the new version…"))
        plan_json = made.provenance.get("plan")
        request = str(made.provenance.get("request") or "")
        message = "Tried again with a new seed: " + "; ".join(
            f"{r.prompt} ({r.target})" for r in regions)
        added = session.add_version(
            rendered.image, regions, {"kind": "edit", "request": request, "plan": plan_json,
                                      "retry_of": number, **rendered.parameters},
            text=request, message=message, plan=plan_json, parent=made.parent,
            seed=rendered.seed)
        plan = Plan.model_validate(plan_json) if plan_json else None
        return TurnResult("edit", f"{message} (version {added}, beside version {number})",
                          plan, added, rendered.image, masks=[r.mask for r in regions])

    def _ask_where(self, session: Session, request: Request, source: Image.Image,
                   question: Question) -> TurnResult:
        """Store the question (it survives a restart) and return it with its choices."""
        plan_json = request.plan.model_dump(mode="json")
        pending = PendingRequest(
            request.text, question.text, question.kind, question.choices,
            {"plan": plan_json, "index": question.index, "chosen": request.chosen,
             "candidates": question.candidates})
        session.record_turn(request.text, "clarify", question.text, plan_json, pending=pending)
        result = self._unchanged(session, "clarify", question.text, request.plan)
        result.choices = question.choices
        if question.grounding is not None:
            result.groundings = [question.grounding]
            result.overlay = self._overlay(source, [question.grounding])
        return result

    def _unchanged(self, session: Session, kind: Kind, message: str,
                   plan: Plan | None = None) -> TurnResult:
        """A result that shows the session's current version."""
        try:
            number: int | None = session.current
            image: Image.Image | None = session.image(number)
        except Exception:  # the error being reported may be that the session is unreadable
            log.exception("session %s unreadable", session.id)
            number, image = None, None
        return TurnResult(kind, message, plan, number, image)

    # ----- grounding ----------------------------------------------------------------------

    def locate(self, image: Image.Image, instructions: list[Instruction],
               chosen: dict[str, list[list[float]]] | None = None,
               masks: dict[int, Any] | None = None,
               selections: dict[int, Any] | None = None) -> Located | Question:
        """A region (mask at the image's size) for every instruction, or the question to ask
        when a target is not found or matches several instances. `masks` maps instruction
        index → the person's own mask, `chosen` index → boxes the person chose; either
        replaces grounding for that instruction. `selections` maps the person's selection
        numbers → masks, for the targets `selection_target(n)`."""
        from promptartisan.tools.grounding import full_grounding
        from promptartisan.tools.phrases import parse
        from promptartisan.tools.placement import parse_placement, place

        chosen, masks = chosen or {}, masks or {}
        selections = _named_selections(image, instructions, selections or {},
                                       self.settings.max_pixels)
        found: dict[int, tuple[Grounding, str]] = {}
        # "next to the dog": ground the anchor, then place the region by the relation.
        placed = {i: p for i, ins in enumerate(instructions)
                  if (p := parse_placement(ins.target)) is not None}
        for index, instruction in enumerate(instructions):
            number = selection_number(instruction.target)
            if number is not None:
                found[index] = (_selection_grounding(image, number, selections,
                                                     self.settings.max_pixels), "user")
            elif index in masks:
                mask = read_mask(masks[index], image.size, self.settings.max_pixels)
                found[index] = (_grounding_of(mask, "your selection"), "user")
            elif str(index) in chosen:
                with DEVICE_LOCK:
                    selected = self.grounder.segment(image, boxes=chosen[str(index)])
                found[index] = (place(selected, placed.get(index)), "choice")
            elif parse(instruction.target).whole:
                found[index] = (full_grounding(image.size, instruction.target), "whole-image")
        remaining = [i for i in range(len(instructions)) if i not in found]
        if remaining:
            with DEVICE_LOCK:
                groundings = self.grounder.ground(image, [
                    placed[i][1] if i in placed else instructions[i].target for i in remaining])
            for index, grounding in zip(remaining, groundings, strict=True):
                target = placed[index][1] if index in placed else instructions[index].target
                if grounding is None or not grounding.mask.any():
                    return Question("locate", index, not_found_question(target))
                if grounding.ambiguous:
                    candidates = [[float(v) for v in box] for box in grounding.candidates]
                    return Question("which", index, which_question(target, len(candidates)),
                                    position_choices(len(candidates)), candidates, grounding)
                found[index] = (place(grounding, placed.get(index)), "grounding")
        regions = []
        for index, instruction in enumerate(instructions):
            grounding, source = found[index]
            if not grounding.mask.any():
                raise ValueError(f"the region for \"{instruction.target}\" is empty")
            regions.append(RegionRecord(
                mask=read_mask(grounding.mask, image.size), prompt=instruction.instruction,
                target=instruction.target, group=instruction.group, order=index, source=source,
                score=float(grounding.score), label=grounding.label,
                boxes=np.asarray(grounding.boxes, dtype=float).reshape(-1, 4).tolist()))
        return Located(regions, [found[i][0] for i in range(len(instructions))])

    def _overlay(self, image: Image.Image, groundings: list[Grounding]) -> Image.Image:
        from promptartisan.tools import overlay

        return overlay(image, groundings)

    # ----- editing ------------------------------------------------------------------------

    def render(self, source: Image.Image, regions: list[RegionRecord],
               on_event: Callable[[ProgressEvent], None] | None = None,
               cancel: threading.Event | None = None, seed: int | None = None) -> Rendered:
        """Every region in one engine call at working size, then back at the source's size:
        the result enters the original upload through the feathered union of the masks, so
        pixels away from them are the source's own. Raises Cancelled when cancelled."""
        import torch

        from promptartisan.engine import DEFAULT_ATTENTION_BOOST, Region

        s = self.settings
        emit, cancel = on_event or _ignore, cancel or threading.Event()
        seed = seed if seed is not None else s.seed if s.seed is not None \
            else secrets.randbelow(2**31)
        # Unset, the working size is the engine family's (SD1.5: 512, SDXL: 768, CosXL: 1024);
        # an engine that names none works at 512, as InstructPix2Pix does.
        work = to_working_size(source, s.working_size or getattr(
            self.pipeline, "default_working_size", 512))
        engine_regions = [Region(mask=resize_mask(r.mask, work.size), prompt=r.prompt,
                                 group=r.group, order=r.order) for r in regions]

        def on_step(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]
                    ) -> dict[str, Any]:
            emit(ProgressEvent("editing", f"Editing: step {step + 1} of {s.steps}", step + 1,
                               s.steps))
            if cancel.is_set():
                pipe.interrupt_run()
            return kwargs

        guidance = s.guidance_scale if s.guidance_scale is not None else getattr(
            self.pipeline, "default_guidance_scale", 7.5)  # unset: the engine family's
        engine_settings = {"num_inference_steps": s.steps, "guidance_scale": guidance,
                           "image_guidance_scale": s.image_guidance_scale,
                           "attention_boost": DEFAULT_ATTENTION_BOOST,
                           "blend_steps": s.steps // 2,
                           "preserve_background": s.preserve_background,
                           "feather": ENGINE_FEATHER, "max_regions": s.max_regions}
        # Each family takes the settings its backbone has (FLUX.1 Kontext: no image guidance and
        # no word boost; its guidance_scale is the distilled guidance).
        accepted = inspect.signature(self.pipeline.__call__).parameters.values()
        if all(p.kind is not p.VAR_KEYWORD for p in accepted):
            engine_settings = {k: v for k, v in engine_settings.items()
                               if k in {p.name for p in accepted}}
        generator = torch.Generator(device="cpu").manual_seed(seed)
        emit(ProgressEvent("editing", "Waiting for the engine…", 0, s.steps))
        with DEVICE_LOCK:
            _check(cancel)
            pipe = self.pipeline
            output = pipe(image=work, regions=engine_regions, generator=generator,
                          callback_on_step_end=on_step, **engine_settings)
        if output.interrupted:
            raise Cancelled
        feather = math.ceil(ENGINE_FEATHER * max(source.size) / max(work.size))
        if s.preserve_background:
            union = np.array(regions[0].mask, dtype=bool)
            for region in regions[1:]:
                union |= region.mask
            result = paste_back(source, output.images[0], union, feather)
        else:
            result = from_working_size(output.images[0], source.size)
        parameters = {
            "size": list(source.size), "working_size": list(work.size), "steps": s.steps,
            "engine": engine_settings, "feather_px": feather, "seed": seed,
            "generator": "torch.Generator('cpu').manual_seed(seed)",
            "device": s.resolved_device(), "dtype": str(s.resolved_dtype()),
            "models": {"engine": str(getattr(pipe, "name_or_path", None) or s.instruct_pix2pix),
                       "engine_class": type(pipe).__name__,
                       "grounder": type(self._grounder).__name__ if self._grounder else None,
                       "grounding_backend": s.grounding_backend, "clipseg": s.clipseg,
                       "groundingdino": s.groundingdino, "sam": s.sam, "tiny": s.tiny},
            "packages": _package_versions(),
        }
        return Rendered(result, seed, parameters)


# ----- helpers --------------------------------------------------------------------------------


def _quiet(pipe: Any) -> Any:
    """No tqdm bar of the engine's own: progress goes out as ProgressEvents."""
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _check(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise Cancelled


def _grounding_of(mask: np.ndarray, label: str) -> Grounding:
    from promptartisan.tools.grounding import Grounding
    from promptartisan.tools.masks import box_of

    return Grounding(mask=mask, score=1.0, boxes=box_of(mask)[None], label=label)


def _named_selections(image: Image.Image, instructions: list[Instruction],
                      selections: dict[int, Any], max_pixels: int) -> dict[int, Any]:
    """The selections the instructions name, read at the image's size and layered among
    themselves only (a later one in the selections' order wins where two overlap): one the
    message doesn't name takes no pixels from one it does. The others stay as they are, for
    `_selection_grounding` to name."""
    from promptartisan.tools.selection import layered

    named = [n for i in instructions if (n := selection_number(i.target)) in selections]
    read = {n: read_mask(mask, image.size, max_pixels) for n, mask in selections.items()
            if n in named}
    return {**selections, **layered(read)}


def _left_out(plan: Plan, selections: dict[int, Any]) -> list[int]:
    """The selections on the picture that the plan doesn't use."""
    named = {selection_number(i.target) for i in plan.instructions}
    return [n for n in selections if n not in named]


def _selection_grounding(image: Image.Image, number: int, selections: dict[int, Any],
                         max_pixels: int) -> Grounding:
    """Selection `number`'s mask as a grounding, or a ValueError the person can act on."""
    if number not in selections:
        have = ", ".join(str(n) for n in selections)
        raise ValueError(f"there is no selection {number}" + (
            f"; the selections are {have}" if have else "; select a part of the picture first"))
    mask = read_mask(selections[number], image.size, max_pixels)
    if not mask.any():
        raise ValueError(f"selection {number} is empty, or wholly under a later selection this "
                         "request names; select something in it, remove it or reorder them")
    return _grounding_of(mask, selection_target(number))


def _retarget(plan: Plan, index: int, answer: str) -> Plan:
    """`plan` with instruction `index` aimed at the phrase the person answered with."""
    phrase = answer.strip().rstrip(".!")
    for lead in ("it's ", "it is ", "i mean ", "try "):
        if phrase.lower().startswith(lead):
            phrase = phrase[len(lead):]
    from promptartisan.tools.placement import parse_placement

    instructions = list(plan.instructions)
    placement = parse_placement(instructions[index].target)
    if placement is not None and parse_placement(phrase) is None:
        phrase = f"{placement[0]} {phrase}"  # the answer named the anchor that wasn't found
    instructions[index] = instructions[index].model_copy(update={"target": phrase})
    return plan.model_copy(update={"instructions": instructions})


def _edit_message(plan: Plan, regions: list[RegionRecord], ignored_mask: bool,
                  left_out: Sequence[int] = ()) -> str:
    done = "; ".join(f"{r.prompt} ({r.target})" for r in regions)
    message = f"Done in one pass: {done}"
    if ignored_mask:
        message += ". Your mask was not used: it applies to a request with one instruction"
    if left_out:
        named = _numbers_text(left_out)
        message += (f". Left out selection{'s' if len(left_out) > 1 else ''} {named}, which "
                    "this request didn't name (say \"all selections\" to use every one)")
    return _with_note(message, plan)


def _numbers_text(numbers: Sequence[int]) -> str:
    """ "4–8", "2, 5 and 7": runs of numbers as a person writes them."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    parts = [f"{run[0]}–{run[-1]}" if len(run) > 2 else ", ".join(map(str, run))
             for run in runs]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _with_note(message: str, plan: Plan) -> str:
    return f"{message}. {plan.note}" if plan.note else message


def _friendly(error: BaseException) -> str:
    from promptartisan.models import ModelError
    from promptartisan.tools.images import InvalidImageError

    if isinstance(error, InvalidImageError):
        reason = f"that image can't be used: {error}"
    elif isinstance(error, ModelError):
        reason = str(error)
    else:
        reason = f"{error}" if isinstance(error, ValueError) else \
            f"{type(error).__name__}: {error}"
    return f"Sorry, that didn't work ({reason}). Nothing was changed."


def _package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in ("promptartisan", "torch", "diffusers", "transformers"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions

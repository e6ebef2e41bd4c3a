"""The language-model planner that runs in this process: a small instruct model
(`settings.planner_model`, Qwen2.5-1.5B-Instruct by default) loaded once per process through
`promptartisan.models`, on the engine's device and dtype, and held to Plan's JSON schema while it
decodes (llguidance masks every token the schema does not allow next), so every finished
answer parses as a Plan: nothing is retried for syntax.

It plans under the process's `DEVICE_LOCK` (`promptartisan.shared`: one model on the device at
a time), stops when the turn's cancel event is set, within `settings.planner_read_timeout`
seconds and after `MAX_NEW_TOKENS`; then, or when the model can't be loaded, the rules planner
plans instead and the plan's note says why.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from pydantic import ValidationError

from promptartisan.agent.planning.plan import Action, Plan
from promptartisan.agent.planning.planners import fallback_plan, short_error
from promptartisan.settings import Settings

if TYPE_CHECKING:
    from promptartisan.agent.planning.planners import Planner

log = logging.getLogger(__name__)

MAX_NEW_TOKENS = 4096
"""More than the longest answer the decoding schema allows (its strings and lists are bounded)
in one-character tokens: the schema, not this cap, ends an answer."""

ACTION_FIELDS: dict[str, list[str]] = {
    "edit": ["instructions"], "clarify": ["question"], "undo": ["count"], "redo": ["count"],
    "reset": [], "goto": ["version"], "forget": ["forget"], "chat": ["reply"],
}
"""The Plan fields the model writes for each action (the others keep their defaults)."""

JSON_OPTIONS = {"whitespace_flexible": False}
"""The model writes compact JSON (`{"action":"undo","count":1}`): no answer spends its tokens on
blanks."""


def _text(longest: int) -> dict[str, Any]:
    """One line of at most `longest` characters that starts with a visible one (Plan refuses
    blank targets and questions)."""
    return {"type": "string", "pattern": r"^\S.*$", "maxLength": longest}


def decoding_schema(max_instructions: int) -> dict[str, Any]:
    """Plan's JSON schema as the model may write it: one variant per action with exactly the
    fields that action needs (required, so `Plan`'s own checks pass), strings, lists and numbers
    bounded so that every answer ends. Any document it accepts is a valid Plan."""
    instruction = {
        "type": "object",
        "properties": {"target": _text(80), "instruction": _text(160),
                       "group": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 9},
                                           {"type": "null"}]}},
        "required": ["target", "instruction", "group"], "additionalProperties": False,
    }
    fields: dict[str, Any] = {
        "instructions": {"type": "array", "items": instruction, "minItems": 1,
                         "maxItems": max_instructions},
        "question": _text(200),
        "reply": _text(300),
        "count": {"type": "integer", "minimum": 1, "maximum": 100},
        "version": {"type": "object",
                    "properties": {"description": _text(100),
                                   "relation": {"enum": ["with", "before", "after"]}},
                    "required": ["description", "relation"], "additionalProperties": False},
        "forget": {"type": "array", "items": _text(80), "minItems": 1, "maxItems": 4},
    }
    variants = []
    for action in get_args(Action):
        properties = {"action": {"const": action},
                      **{name: fields[name] for name in ACTION_FIELDS[action]}}
        variants.append({"type": "object", "properties": properties,
                         "required": list(properties), "additionalProperties": False})
    return {"anyOf": variants}


@dataclass(frozen=True)
class LocalModel:
    """A loaded planner model: the causal LM, its tokenizer, llguidance's view of that tokenizer
    (built once: about a second per 100k tokens) and the decoding schema as llguidance's grammar."""

    model: Any
    tokenizer: Any
    guide_tokenizer: Any
    grammar: str
    device: str


def model_present(settings: Settings) -> bool:
    """Whether the planner model's files are on this machine (a folder, the Hugging Face cache,
    or the tiny model, which is written on first use): auto never downloads it."""
    from huggingface_hub import try_to_load_from_cache

    from promptartisan import models

    if settings.tiny:
        return True
    source = models.resolve("planner", settings)
    if Path(source).expanduser().is_dir():
        return (Path(source).expanduser() / "config.json").is_file()
    if models.names_a_folder(source):
        return False
    try:
        def cached(name: str) -> bool:
            return isinstance(try_to_load_from_cache(source, name), str)

        return cached("config.json") and cached("tokenizer_config.json") and (
            cached("model.safetensors") or cached("model.safetensors.index.json"))
    except ValueError:  # neither a folder here nor a hub id
        return False


_missing: dict[tuple[Any, ...], str] = {}
"""Why a planner model is not on this machine, by `load_local_model`'s key: looked for once
per process, not at every plan (a hub id not in the cache can cost tens of seconds)."""


def load_local_model(settings: Settings) -> LocalModel:
    """The planner model of `settings`, loaded on first use and shared by the whole process.
    A model that isn't on this machine raises `MissingModelError`, found out once."""
    from promptartisan import models
    from promptartisan.shared import shared_model

    device, dtype = settings.resolved_device(), settings.resolved_dtype()
    key = ("planner", settings.planner_model, settings.tiny, str(settings.tiny_dir), device,
           str(dtype), settings.max_regions)
    if key in _missing:
        raise models.MissingModelError(_missing[key])

    def load() -> LocalModel:
        """Looked for only when not loaded yet: a plan with the model in memory stats nothing."""
        if not model_present(settings):
            source = models.resolve("planner", settings)
            _missing[key] = (f"no such folder {source}" if models.names_a_folder(source) else
                             f"{source} is not downloaded (promptartisan models download "
                             f"planner, or point PROMPTARTISAN_PLANNER_MODEL at its folder)")
            raise models.MissingModelError(_missing[key])
        return _load(settings, device, dtype)

    return shared_model(key, load)


def _load(settings: Settings, device: str, dtype: Any) -> LocalModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from promptartisan import models

    tokenizer = models.load(AutoTokenizer, "planner", settings)
    model = models.load(AutoModelForCausalLM, "planner", settings, dtype=dtype).to(device).eval()
    guide_tokenizer, grammar = load_guide(tokenizer, model.config.vocab_size,
                                          settings.max_regions)
    return LocalModel(model, tokenizer, guide_tokenizer, grammar, device)


def load_guide(tokenizer: Any, vocab_size: int, max_instructions: int) -> tuple[Any, str]:
    """llguidance's view of `tokenizer` (the model's `vocab_size` rows) and the decoding schema
    as its grammar (compiled lazily, as decoding goes)."""
    import llguidance
    import llguidance.hf

    guide_tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size,
                                                   eos_token=tokenizer.eos_token_id)
    grammar = llguidance.LLMatcher.grammar_from_json_schema(
        decoding_schema(max_instructions), defaults=JSON_OPTIONS)
    return guide_tokenizer, grammar


class SchemaGuide:
    """A transformers logits processor that lets through only the tokens the grammar allows
    next (the end of text once the answer is complete). One per `generate` call."""

    def __init__(self, local: LocalModel) -> None:
        import llguidance
        import llguidance.torch

        self.matcher = llguidance.LLMatcher(local.guide_tokenizer, local.grammar)
        self.mask = llguidance.torch.allocate_token_bitmask(1, local.model.config.vocab_size)
        self.started = False

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import llguidance.torch

        if self.started and not self.matcher.consume_token(int(input_ids[0, -1])):
            raise RuntimeError(f"the grammar refused its own token: {self.matcher.get_error()}")
        self.started = True
        llguidance.torch.fill_next_token_bitmask(self.matcher, self.mask, 0)
        llguidance.torch.apply_token_bitmask_inplace(scores, self.mask.to(scores.device))
        return scores


class LocalPlanner:
    """Plans with the local model (`model`, default: the settings' one, shared by the process);
    falls back to `fallback` (the rules planner) when the model can't be loaded, is stopped,
    runs out of time, or its plan fails Plan's checks."""

    def __init__(self, settings: Settings, fallback: Planner, context_turns: int = 6,
                 model: LocalModel | None = None) -> None:
        self.settings = settings
        self.fallback = fallback
        self.context_turns = context_turns
        self._model = model
        self.name = f"local:{settings.planner_model}" + (" (tiny)" if settings.tiny else "")

    def plan(self, text: str, context: list[str], history: list[str] | None = None,
             cancel: threading.Event | None = None) -> Plan:
        """`history`: the session's versions (`planners.version_history`); `cancel`: the turn's
        stop, which ends decoding at the next token."""
        try:
            answer, why = self._answer(self.messages(text, context, history),
                                       cancel or threading.Event())
        except Exception as exc:  # a missing model, out of memory, a tokenizer without a template
            log.warning("%s failed: %r", self.name, exc)
            answer, why = None, f"couldn't run ({short_error(exc)})"
        if answer is not None:
            try:
                planned = Plan.model_validate_json(answer)
                return planned.model_copy(update={"planner": self.name})
            except ValidationError as exc:  # the schema holds syntax; Plan's checks have the say
                why = f"gave a plan that fails its checks ({short_error(exc)})"
        return fallback_plan(self.fallback, text, context,
                             f"The local language model ({self.name}) {why}; the offline rules "
                             f"planner made this plan instead.")

    def messages(self, text: str, context: list[str],
                 history: list[str] | None = None) -> list[dict[str, Any]]:
        """Every LLM planner's prompt (`llm_planner.plan_messages`) as chat-template turns."""
        from langchain_core.messages import convert_to_openai_messages

        from promptartisan.agent.planning.llm_planner import plan_messages

        return convert_to_openai_messages(
            plan_messages(text, context, history, self.context_turns))  # type: ignore[return-value]

    def _answer(self, messages: list[dict[str, Any]],
                cancel: threading.Event) -> tuple[str | None, str]:
        """The model's JSON answer, or None and why there is none."""
        import torch
        from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

        from promptartisan.shared import DEVICE_LOCK

        local = self._model or load_local_model(self.settings)
        prompt = local.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt",
            return_dict=True).to(local.device)
        limit = self.settings.planner_read_timeout

        class Stopped(StoppingCriteria):
            def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool,
                                  device=input_ids.device)

        with DEVICE_LOCK, torch.inference_mode():
            started = time.monotonic()
            output = local.model.generate(
                **prompt, do_sample=False, max_new_tokens=MAX_NEW_TOKENS, max_time=limit,
                logits_processor=LogitsProcessorList([SchemaGuide(local)]),
                stopping_criteria=StoppingCriteriaList([Stopped()]),
                eos_token_id=local.tokenizer.eos_token_id,
                pad_token_id=local.tokenizer.pad_token_id or local.tokenizer.eos_token_id)
            seconds = time.monotonic() - started
        new = output[0, prompt["input_ids"].shape[1]:]
        if cancel.is_set():
            return None, "was stopped"
        if new.numel() == 0 or new[-1].item() != local.tokenizer.eos_token_id:
            if seconds >= limit:
                return None, f"didn't answer within {limit:g} s"
            return None, f"didn't finish its answer in {MAX_NEW_TOKENS} tokens"
        return local.tokenizer.decode(new, skip_special_tokens=True), ""


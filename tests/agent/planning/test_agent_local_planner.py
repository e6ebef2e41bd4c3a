"""The in-process planner: a tiny random-weight Qwen2 model built from its config, with a
byte-level BPE tokenizer trained here, saved with `save_pretrained` and loaded through
`promptartisan.models` as the real Qwen2.5-Instruct is. Its plans are nonsense (random weights);
what is proven is the constraint, the loading, the device lock, the stop and the time limit."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, get_args

import pytest

from promptartisan import models
from promptartisan.agent.editor import DEVICE_LOCK, Editor
from promptartisan.agent.planning.auto_planner import AutoPlanner, forget_choices
from promptartisan.agent.planning.llm_planner import SYSTEM_PROMPT
from promptartisan.agent.planning.local_planner import (
    LocalPlanner,
    decoding_schema,
    load_local_model,
    model_present,
)
from promptartisan.agent.planning.plan import Action, Plan
from promptartisan.agent.planning.planners import RULES, load_planner, plan_turn
from promptartisan.agent.planning.rules_planner import RulesPlanner
from promptartisan.agent.sessions.store import Session
from promptartisan.settings import Settings
from promptartisan.tiny import write_tiny_planner
from promptartisan.ui.cli import main

DATA = Path(__file__).parents[2] / "data"
PHRASINGS = Path(__file__).parents[3] / "agent" / "benchmarks" / "phrasings.jsonl"


def corpus_requests(count: int = 50) -> list[tuple[list[str], str]]:
    """`count` requests with their context: the shared corpus's cases, then the phrasing
    corpus's, in file order."""
    lines = [*DATA.joinpath("planner_requests.jsonl").read_text().splitlines(),
             *PHRASINGS.read_text().splitlines()]
    cases = [json.loads(line) for line in lines if line.strip()]
    return [(case["context"], case["user"]) for case in cases[:count]]


@pytest.fixture(scope="module")
def planner_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny planner model, its tokenizer trained on the planner's prompt and the corpus."""
    out = tmp_path_factory.mktemp("tiny-planner")
    texts = [SYSTEM_PROMPT, *(" ".join([*context, user]) for context, user in corpus_requests())]
    write_tiny_planner(out, texts=texts)
    return out


def local_settings(folder: Path, tmp_path: Path, **values: Any) -> Settings:
    return Settings(**{"planner_model": str(folder), "planner": "local", "device": "cpu",
                       "dtype": "float32", "session_dir": tmp_path / "sessions", **values})


@pytest.fixture
def settings(planner_folder: Path, tmp_path: Path) -> Settings:
    return local_settings(planner_folder, tmp_path)


def count_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every model `models.load_from` loads from now on (its source), in order."""
    loads: list[str] = []
    real = models.load_from

    def counting(cls: type, source: str, *args: Any, **kwargs: Any) -> Any:
        loads.append(f"{cls.__name__}:{source}")
        return real(cls, source, *args, **kwargs)

    monkeypatch.setattr(models, "load_from", counting)
    return loads


# --- held to the schema --------------------------------------------------------------------

def test_the_decoding_schema_has_every_action_and_only_plan_fields() -> None:
    schema = decoding_schema(max_instructions=8)
    actions = [variant["properties"]["action"]["const"] for variant in schema["anyOf"]]
    assert actions == list(get_args(Action))
    for variant in schema["anyOf"]:
        assert set(variant["properties"]) <= set(Plan.model_fields)
        assert set(variant["required"]) == set(variant["properties"])


@pytest.mark.slow
def test_constrained_answers_all_parse_and_unconstrained_ones_mostly_do_not(
        settings: Settings) -> None:
    import torch

    planner = LocalPlanner(settings, fallback=RulesPlanner())
    requests = corpus_requests()
    assert len(requests) == 50
    plans = [planner.plan(user, context) for context, user in requests]
    constrained = sum(plan.planner == planner.name and plan.note is None for plan in plans)

    local = load_local_model(settings)
    unconstrained = 0
    for context, user in requests:
        prompt = local.tokenizer.apply_chat_template(
            planner.messages(user, context), add_generation_prompt=True, return_tensors="pt",
            return_dict=True)
        with torch.inference_mode():
            output = local.model.generate(**prompt, do_sample=False, max_new_tokens=48,
                                          pad_token_id=local.tokenizer.pad_token_id)
        answer = local.tokenizer.decode(output[0, prompt["input_ids"].shape[1]:],
                                        skip_special_tokens=True)
        try:
            Plan.model_validate_json(answer)
            unconstrained += 1
        except ValueError:
            pass
    actions = sorted({plan.action for plan in plans})
    print(f"constrained: {constrained}/50 parse as Plan (actions {actions}); "
          f"unconstrained: {unconstrained}/50")
    assert constrained == 50
    assert unconstrained < 25


def test_the_prompt_holds_the_recent_turns_and_the_versions(settings: Settings) -> None:
    planner = LocalPlanner(settings, fallback=RulesPlanner())
    history = ["v1: the uploaded picture", "v2 (from v1) (current): sky → make the sky red"]
    prompt = load_local_model(settings).tokenizer.apply_chat_template(
        planner.messages("go back to the one before the red sky", ["make the sky red"], history),
        add_generation_prompt=True, tokenize=False)
    assert SYSTEM_PROMPT in prompt
    assert "v2 (from v1) (current): sky → make the sky red" in prompt
    assert "- make the sky red" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


# --- loading -------------------------------------------------------------------------------

@pytest.mark.slow
def test_loaded_once_per_process_over_several_turns_and_chats(
        planner_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        tiny_dir: Path, small_photo: Any) -> None:
    # A settings key of its own (max_regions), so this process hasn't loaded it yet.
    settings = local_settings(planner_folder, tmp_path, max_regions=3, tiny=False, steps=1)
    loads = count_loads(monkeypatch)
    session = Session.create(settings.session_dir, small_photo)
    plans = []
    for _ in range(2):  # two chats, each a new Editor with its own planner
        editor = Editor(settings, grounder=object())  # a plan that needs grounding fails
        plans += [editor.turn(session, text).plan for text in ("undo", "make the sky red")]
    plans.append(plan_turn(load_planner("local", settings), "reset", []))
    assert all(plan is not None and plan.planner == f"local:{planner_folder}" for plan in plans)
    assert loads == [f"AutoTokenizer:{planner_folder}", f"AutoModelForCausalLM:{planner_folder}"]


def test_a_missing_model_leaves_the_rules_planner_to_answer(tmp_path: Path) -> None:
    settings = local_settings(tmp_path / "no-such-model", tmp_path)
    assert not model_present(settings)
    plan = LocalPlanner(settings, fallback=RulesPlanner()).plan("make the sky red", [])
    assert plan.planner == RULES
    assert plan.action == "edit"
    assert "couldn't run" in (plan.note or "") and "no-such-model" in (plan.note or "")


def test_a_missing_model_is_looked_for_once_per_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every later plan answers with the rules at once, without looking again."""
    from promptartisan.agent.planning import local_planner

    settings = local_settings(tmp_path / "gone", tmp_path)
    looked: list[Settings] = []
    real = local_planner.model_present
    monkeypatch.setattr(local_planner, "model_present",
                        lambda s: looked.append(s) or real(s))
    planner = LocalPlanner(settings, fallback=RulesPlanner())
    plans = [planner.plan(text, []) for text in ("make the sky red", "undo", "reset")]
    assert len(looked) == 1
    assert [p.planner for p in plans] == [RULES] * 3
    assert all(f"no such folder {tmp_path / 'gone'}" in p.note for p in plans)


def test_a_missing_folder_is_named_as_a_folder_not_as_a_hub_id(tmp_path: Path) -> None:
    from promptartisan import models

    for missing in (str(tmp_path / "qwen"), "./models/qwen", "~/nowhere/qwen"):
        settings = Settings(planner_model=missing, session_dir=tmp_path)
        with pytest.raises(models.MissingModelError, match="no such folder"):
            models.load(object, "planner", settings)
    assert not models.names_a_folder("Qwen/Qwen2.5-1.5B-Instruct")


def test_tiny_mode_brings_its_own_planner_model(tiny_settings: Settings) -> None:
    assert model_present(tiny_settings)
    planner = load_planner("local", tiny_settings)
    plan = planner.plan("make the sky red", [])
    assert plan.planner == planner.name and "(tiny)" in planner.name


# --- the device lock, the stop and the time limit -----------------------------------------

def test_it_decodes_holding_the_device_lock(settings: Settings,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_local_model(settings).model
    held: list[bool] = []
    real = model.generate
    monkeypatch.setattr(model, "generate",
                        lambda **kw: held.append(DEVICE_LOCK.locked()) or real(**kw))
    plan = LocalPlanner(settings, fallback=RulesPlanner()).plan("undo", [])
    assert held == [True]
    assert plan.planner.startswith("local:")
    assert not DEVICE_LOCK.locked()


def stop_after(model: Any, steps: int, cancel: threading.Event) -> tuple[list[int], Any]:
    """Set `cancel` at the model's `steps`-th forward pass; the list counts the passes, the
    handle removes the hook."""
    calls: list[int] = []

    def hook(*_: Any) -> None:
        calls.append(1)
        if len(calls) == steps:
            cancel.set()

    return calls, model.register_forward_hook(hook)


def test_the_stop_ends_decoding_at_the_next_token(settings: Settings) -> None:
    cancel = threading.Event()
    calls, hook = stop_after(load_local_model(settings).model, 3, cancel)
    try:
        plan = LocalPlanner(settings, fallback=RulesPlanner()).plan(
            "make the sky a sunset", [], cancel=cancel)
    finally:
        hook.remove()
    assert len(calls) == 3  # an answer is dozens of tokens; decoding ended at the stop
    assert plan.planner == RULES and "was stopped" in (plan.note or "")


def test_the_editors_stop_button_reaches_the_model(settings: Settings,
                                                  small_photo: Any) -> None:
    session = Session.create(settings.session_dir, small_photo)
    before = session.current
    cancel = threading.Event()
    calls, hook = stop_after(load_local_model(settings).model, 2, cancel)
    try:
        result = Editor(settings).turn(session, "make the sky a sunset", cancel=cancel)
        assert DEVICE_LOCK.acquire(timeout=120)  # the abandoned decoding lets go of the device
        DEVICE_LOCK.release()
    finally:
        hook.remove()
    assert result.kind == "cancelled"
    assert len(calls) == 2
    assert session.current == before


def test_a_time_limit_ends_decoding(planner_folder: Path, tmp_path: Path) -> None:
    settings = local_settings(planner_folder, tmp_path, planner_read_timeout=0.001)
    plan = LocalPlanner(settings, fallback=RulesPlanner()).plan("make the sky red", [])
    assert plan.planner == RULES
    assert "didn't answer within 0.001 s" in (plan.note or "")


# --- choosing it ---------------------------------------------------------------------------

def test_auto_prefers_the_local_model_when_asked_for_on_the_cpu(
        planner_folder: Path, tmp_path: Path) -> None:
    forget_choices()
    cpu = local_settings(planner_folder, tmp_path, planner="auto", local_planner_on_cpu=True,
                         ollama_host="http://127.0.0.1:9")
    planner = AutoPlanner(cpu)
    plan = planner.plan("undo", [])
    assert planner.name == f"local:{planner_folder}"
    assert plan.planner == planner.name
    forget_choices()
    declined = AutoPlanner(cpu.model_copy(update={"local_planner_on_cpu": False}))
    assert declined.plan("undo", []).planner == RULES
    assert "no GPU here" in declined.choice.reason
    forget_choices()


def test_plan_score_runs_with_the_local_planner(planner_folder: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text("\n".join(PHRASINGS.read_text().splitlines()[:3]) + "\n")
    monkeypatch.setenv("PROMPTARTISAN_PLANNER_MODEL", str(planner_folder))
    monkeypatch.setenv("PROMPTARTISAN_DEVICE", "cpu")
    code = main(["plan", "--score", "--planner", "local", "--cases", str(cases)])
    out = capsys.readouterr().out
    assert code == 0
    assert "planner local: 3 cases" in out
    assert f"local:{planner_folder}" in out


# --- the benchmark -------------------------------------------------------------------------

@pytest.mark.slow
def test_the_benchmark_runs_its_three_instruction_answer_through_the_guide(
        planner_folder: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The benchmark's code on a small config (its figures are printed, not tested): the forced
    three-instruction answer passes the guide token by token, and both guides compare."""
    from promptartisan.agent.planning import bench_local_planner as bench

    for name, value in {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                        "num_attention_heads": 4, "num_key_value_heads": 2}.items():
        monkeypatch.setitem(bench.QWEN25_15B, name, value)
    bench.main(["--tokenizer", str(planner_folder)])
    bench.main(["--tokenizer", str(planner_folder), "--guides"])
    out = capsys.readouterr().out
    assert "seconds per plan (three instructions, guided)" in out
    assert "llguidance: tokenizer" in out

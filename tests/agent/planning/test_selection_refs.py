"""Messages that name the person's numbered selections, read with the rules planner for the
rest of the message."""

from __future__ import annotations

import pytest

from promptartisan.agent.planning.plan import Instruction, Plan
from promptartisan.agent.planning.rules_planner import RulesPlanner
from promptartisan.agent.planning.selection_refs import named_selections, plan_with_selections

EXISTING = [1, 2, 3]


def planned(text: str, numbers: list[int] = EXISTING) -> Plan:
    planner = RulesPlanner()
    return plan_with_selections(text, numbers, lambda rest: planner.plan(rest, []))


def pairs(plan: Plan) -> list[tuple[str, str]]:
    return [(i.target, i.instruction) for i in plan.instructions]


@pytest.mark.parametrize(("text", "expected"), [
    ("make 1 red and 2 gold", [("selection 1", "make it red"), ("selection 2", "make it gold")]),
    ("make 1 red, 2 gold and 3 a cheetah", [("selection 1", "make it red"),
                                            ("selection 2", "make it gold"),
                                            ("selection 3", "make it a cheetah")]),
    ("selection 2 → a cheetah", [("selection 2", "turn it into a cheetah")]),
    ("selection 2 -> a cheetah", [("selection 2", "turn it into a cheetah")]),
    ("#1 red", [("selection 1", "make it red")]),
    ("make the first selection red", [("selection 1", "make it red")]),
    ("turn the second selection into a tiger", [("selection 2", "turn it into a tiger")]),
    ("make the last selection blue", [("selection 3", "make it blue")]),
    ("1: make it red", [("selection 1", "make it red")]),
    ("1: make it red, 2: make it gold", [("selection 1", "make it red"),
                                         ("selection 2", "make it gold")]),
    ("Make selection one red", [("selection 1", "Make it red")]),
    ("turn 1 into a cat and 2 into a dog", [("selection 1", "turn it into a cat"),
                                            ("selection 2", "turn it into a dog")]),
    ("put a hat on selection 2", [("selection 2", "put a hat on it")]),
    ("make 1 black and white", [("selection 1", "make it black and white")]),
    ("1 red, 2 gold", [("selection 1", "make it red"), ("selection 2", "make it gold")]),
])
def test_references_to_selections_become_selection_targets(
        text: str, expected: list[tuple[str, str]]) -> None:
    plan = planned(text)
    assert plan.action == "edit"
    assert pairs(plan) == expected


def test_selections_and_text_targets_mix_in_the_message_order() -> None:
    assert pairs(planned("make 1 red and the sky a sunset")) == [
        ("selection 1", "make it red"), ("sky", "make the sky a sunset")]
    assert pairs(planned("make the sky a sunset and 1 red")) == [
        ("sky", "make the sky a sunset"), ("selection 1", "make it red")]
    assert pairs(planned("make 2 red and add 2 birds to the sky")) == [
        ("selection 2", "make it red"), ("sky", "add 2 birds to the sky")]


def test_one_instruction_for_several_selections_shares_a_group() -> None:
    for text in ("make selections 1 and 2 red", "make 1, 2 and 3 gold"):
        plan = planned(text)
        groups = {i.group for i in plan.instructions}
        assert len(groups) == 1 and None not in groups
        assert len({i.instruction for i in plan.instructions}) == 1


@pytest.mark.parametrize("text", [
    "add 2 birds", "make it 10% brighter", "rotate it 90 degrees", "make the 2 dogs red",
    "make 2 dogs red", "2 birds on the roof", "make the sky a sunset",
])
def test_numbers_that_are_not_selections_stay_the_planners(text: str) -> None:
    assert planned(text) == RulesPlanner().plan(text, [])


def test_bare_numbers_need_an_existing_selection_explicit_ones_do_not() -> None:
    assert planned("make 3 gold", [1, 2]) == RulesPlanner().plan("make 3 gold", [])
    assert pairs(planned("make selection 7 blue", [1, 2])) == [("selection 7", "make it blue")]
    assert pairs(planned("make #4 blue", [])) == [("selection 4", "make it blue")]


def test_a_planner_question_about_the_rest_is_asked() -> None:
    plan = planned("make 1 red and change something")
    assert plan.action == "clarify" and plan.question


def test_planner_targets_naming_a_selection_are_written_one_way() -> None:
    plan = Plan(action="edit", instructions=[
        Instruction(target="the Selection 2", instruction="make it red"),
        Instruction(target="sky", instruction="make it blue")])
    assert [i.target for i in named_selections(plan).instructions] == ["selection 2", "sky"]


def test_with_one_selection_it_means_the_selection() -> None:
    plan = planned("make it blue", [1])
    assert pairs(plan) == [("selection 1", "make it blue")]
    assert plan.note and "selection 1" in plan.note
    mixed = planned("make it blue and the sky a sunset", [1])
    assert pairs(mixed) == [("selection 1", "make it blue"), ("sky", "make the sky a sunset")]
    for text in ("make the whole picture blue", "make the entire photo a watercolor"):
        assert planned(text, [1]) == RulesPlanner().plan(text, [])  # named the whole picture
    assert planned("make it blue", [1, 2]) == RulesPlanner().plan("make it blue", [])  # which?

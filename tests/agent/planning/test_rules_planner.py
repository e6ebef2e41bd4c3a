"""The offline rules planner: phrasing families, pronouns, groups, clarification merging, and
the public corpus scored the way `shared/corpus/score_planner.py` scores it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptartisan.agent.planning.grammar import (
    INTENSIFIERS,
    change_phrase_starts,
    is_adjective,
    is_change_phrase,
)
from promptartisan.agent.planning.plan import Plan
from promptartisan.agent.planning.rules_planner import RulesPlanner, merge_answer

# The team's shared corpus where this checkout sits beside it, else the repository's copy.
SHARED_CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "planner_requests.jsonl"
CORPUS = SHARED_CORPUS if SHARED_CORPUS.is_file() else (
    Path(__file__).parents[2] / "data" / "planner_requests.jsonl")
WHOLE = {"image", "whole image", "entire image", "the image", "whole", "*", "everything",
         "scene", "whole photo", "entire photo", "photo", "picture"}


# --- the corpus scorer's matching -------------------------------------------------------


def target_ok(expected: list[str], got: str) -> bool:
    got = (got or "").lower().strip()
    for word in expected:
        if word == "*":
            if got in WHOLE or "whole" in got or "entire" in got:
                return True
        elif word.lower() in got:
            return True
    return False


def edit_ok(expected: list[list[str]], instruction: dict) -> bool:
    text = " ".join(str(instruction.get(k, "")) for k in ("instruction", "target")).lower()
    return all(any(w.lower() in text for w in alts) for alts in expected)


def instructions_match(expected: list[dict], got: list[dict]) -> bool:
    """Greedy bipartite match: every expected instruction pairs with a distinct predicted one."""
    if len(expected) != len(got):
        return False
    used: set[int] = set()
    for want in expected:
        for index, have in enumerate(got):
            if index not in used and target_ok(want["target"], have.get("target")) \
                    and edit_ok(want["edit"], have):
                used.add(index)
                break
        else:
            return False
    return True


def case_ok(case: dict, plan: Plan) -> bool:
    expect = case["expect"]
    allowed = expect["action"] if isinstance(expect["action"], list) else [expect["action"]]
    if plan.action not in allowed:
        return False
    if plan.action == "edit":
        got = [i.model_dump() for i in plan.instructions]
        return instructions_match(expect["instructions"], got)
    return True


@pytest.fixture(scope="module")
def planner() -> RulesPlanner:
    return RulesPlanner()


# --- the public corpus ------------------------------------------------------------------


def _score(path: Path, planner: RulesPlanner) -> tuple[int, int, list[str]]:
    cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    failures = []
    for case in cases:
        plan = planner.plan(case["user"], case["context"])
        if not case_ok(case, plan):
            failures.append(f"{case['id']}: {case['user']!r} -> {plan.model_dump_json()}")
    return len(cases) - len(failures), len(cases), failures


def test_public_corpus(planner: RulesPlanner) -> None:
    correct, total, failures = _score(CORPUS, planner)
    assert correct / total >= 0.95, "\n".join(failures)


# --- phrasing families ------------------------------------------------------------------
# (user, context, action, [(target words, [[edit alternatives], …]), …])

E = "edit"
CASES: list[tuple[str, list[str], str, list[tuple[list[str], list[list[str]]]]]] = [
    # make / turn / change / paint
    ("make the car red", [], E, [(["car"], [["red"]])]),
    ("Make The Car RED!", [], E, [(["car"], [["red"]])]),
    ("make the red car blue", [], E, [(["red car"], [["blue"]])]),
    ("please make the walls light blue", [], E, [(["wall"], [["light blue"]])]),
    ("can you make the grass greener?", [], E, [(["grass"], [["greener"]])]),
    ("could you turn the sky purple please", [], E, [(["sky"], [["purple"]])]),
    ("turn the dog into a wolf", [], E, [(["dog"], [["wolf"]])]),
    ("change the car to red", [], E, [(["car"], [["red"]])]),
    ("change the background to a beach", [], E, [(["background"], [["beach"]])]),
    ("change the color of the car to green", [], E, [(["car"], [["green"]])]),
    ("change her hair color to blonde", [], E, [(["hair"], [["blonde"]])]),
    ("paint the fence white", [], E, [(["fence"], [["white"]])]),
    ("dye his hair pink", [], E, [(["hair"], [["pink"]])]),
    ("transform the cat into a lion", [], E, [(["cat"], [["lion"]])]),
    ("convert the bicycle into a motorbike", [], E, [(["bicycle"], [["motorbike"]])]),
    ("make the man smile", [], E, [(["man"], [["smile"]])]),
    ("make the dog look like a cartoon", [], E, [(["dog"], [["cartoon"]])]),
    ("make the car wet and muddy", [], E, [(["car"], [["wet"], ["muddy"]])]),
    ("make the car red, shiny and new", [], E, [(["car"], [["red"], ["shiny"], ["new"]])]),
    ("make the dog a bit bigger", [], E, [(["dog"], [["bigger"]])]),
    ("make the man in a suit taller", [], E, [(["man in a suit"], [["taller"]])]),
    ("dog -> wolf", [], E, [(["dog"], [["wolf"]])]),
    ("brighten the sky", [], E, [(["sky"], [["bright"]])]),
    ("blur the background", [], E, [(["background"], [["blur"]])]),
    ("increase the contrast", [], E, [(["*"], [["contrast"]])]),
    # replace / swap
    ("replace the dog with a cat", [], E, [(["dog"], [["cat"]])]),
    ("swap the sandwich for a burger", [], E, [(["sandwich"], [["burger"]])]),
    ("substitute a vase for the bottle", [], E, [(["bottle"], [["vase"]])]),
    ("could you replace the clouds with a starry sky?", [], E, [(["cloud"], [["star"]])]),
    # add / put / give
    ("add a rainbow over the mountains", [], E, [(["sky"], [["rainbow"]])]),
    ("add a rainbow", [], E, [(["sky"], [["rainbow"]])]),
    ("add snow on the ground", [], E, [(["ground"], [["snow"]])]),
    ("add a hat to the dog", [], E, [(["dog"], [["hat"]])]),
    ("add sunglasses", [], E, [(["face"], [["sunglasses"]])]),
    ("add a man in a red suit", [], E, [(["*"], [["man"]])]),
    ("add a hat and a scarf to the snowman", [], E, [(["snowman"], [["hat"], ["scarf"]])]),
    ("hang a painting on the wall", [], E, [(["wall"], [["painting"]])]),
    ("put sunglasses on the cat", [], E, [(["cat"], [["sunglasses"]])]),
    ("put the dog on the moon", [], E, [(["background"], [["moon"]])]),
    ("give the girl red hair", [], E, [(["hair"], [["red"]])]),
    ("give the dog a bow tie", [], E, [(["dog"], [["bow tie"]])]),
    ("give him a mustache", [], E, [(["man"], [["mustache"]])]),
    ("draw a mustache on the man", [], E, [(["man"], [["mustache"]])]),
    ("add some birds in the sky", [], E, [(["sky"], [["bird"]])]),
    ("more clouds", [], E, [(["sky"], [["cloud"]])]),
    # remove
    ("remove the car", [], E, [(["car"], [["remove"]])]),
    ("erase the person on the left", [], E, [(["person on the left"], [["remove"]])]),
    ("get rid of the trash can", [], E, [(["trash can"], [["remove"]])]),
    ("delete the power lines from the photo", [], E, [(["power lines"], [["remove"]])]),
    ("take the hat off the man", [], E, [(["hat"], [["remove"]])]),
    ("remove the cup and the plate", [], E,
     [(["cup"], [["remove"]]), (["plate"], [["remove"]])]),
    ("remove the salt and pepper", [], E, [(["salt and pepper"], [["remove"]])]),
    ("no people please", [], E, [(["people"], [["remove"]])]),
    ("the car should be removed", [], E, [(["car"], [["remove"]])]),
    # should / want / let
    ("the sky should be orange", [], E, [(["sky"], [["orange"]])]),
    ("the sky should look stormy", [], E, [(["sky"], [["stormy"]])]),
    ("I want the dress to be green", [], E, [(["dress"], [["green"]])]),
    ("i'd like the car to look like a race car", [], E, [(["car"], [["race car"]])]),
    ("let the flowers be yellow", [], E, [(["flower"], [["yellow"]])]),
    ("what if the house was made of candy?", [], E, [(["house"], [["candy"]])]),
    ("his shirt needs to be white", [], E, [(["shirt"], [["white"]])]),
    # multi-clause
    ("make the sky pink, the grass blue and the house yellow", [], E,
     [(["sky"], [["pink"]]), (["grass"], [["blue"]]), (["house"], [["yellow"]])]),
    ("Make the sky darker. Then add a moon.", [], E,
     [(["sky"], [["dark"]]), (["sky"], [["moon"]])]),
    ("remove the car; make the road wet", [], E,
     [(["car"], [["remove"]]), (["road"], [["wet"]])]),
    ("turn the apple into an orange and also make the table wooden", [], E,
     [(["apple"], [["orange"]]), (["table"], [["wooden"]])]),
    ("replace the chair with a sofa and the lamp with a plant", [], E,
     [(["chair"], [["sofa"]]), (["lamp"], [["plant"]])]),
    ("make the car black and white and add a rainbow", [], E,
     [(["car"], [["black and white"]]), (["sky"], [["rainbow"]])]),
    ("make the left shoe red and the right one blue", [], E,
     [(["left shoe"], [["red"]]), (["right shoe"], [["blue"]])]),
    ("make the sky red but keep the clouds", [], E, [(["sky"], [["red"]])]),
    # shared changes and plurals
    ("turn the cat and the dog into tigers", [], E,
     [(["cat"], [["tiger"]]), (["dog"], [["tiger"]])]),
    ("make the sea and the sky darker", [], E, [(["sea"], [["dark"]]), (["sky"], [["dark"]])]),
    ("make every balloon gold", [], E, [(["every balloon"], [["gold"]])]),
    ("paint all the apples green", [], E, [(["apples"], [["green"]])]),
    ("turn the apples into pears", [], E, [(["apples"], [["pear"]])]),
    # whole image
    ("make it look like a pencil sketch", [], E, [(["*"], [["sketch"]])]),
    ("as a watercolor", [], E, [(["*"], [["watercolor"]])]),
    ("in anime style please", [], E, [(["*"], [["anime"]])]),
    ("van gogh style", [], E, [(["*"], [["van gogh"]])]),
    ("make it black and white", [], E, [(["*"], [["black and white"]])]),
    ("turn the photo into an oil painting", [], E, [(["*"], [["oil painting"]])]),
    ("make it night", [], E, [(["*"], [["night"]])]),
    ("at sunset", [], E, [(["*"], [["sunset"]])]),
    ("make it rain", [], E, [(["*"], [["rain"]])]),
    ("make it foggy", [], E, [(["*"], [["fog"]])]),
    ("change the season to autumn", [], E, [(["*"], [["autumn"]])]),
    ("make it look like it's winter", [], E, [(["*"], [["winter"]])]),
    ("let it snow", [], E, [(["*"], [["snow"]])]),
    ("make the whole picture brighter", [], E, [(["*"], [["bright"]])]),
    ("make it look like a pencil sketch", ["make the shirt red"], E, [(["*"], [["sketch"]])]),
    # pronouns from earlier turns
    ("make it darker", [], E, [(["*"], [["dark"]])]),
    ("make it darker", ["make the shirt red"], E, [(["shirt"], [["dark"]])]),
    ("now make them bigger", ["make the balloons red"], E, [(["balloons"], [["bigger"]])]),
    ("remove it", ["add a hat to the dog", "make the car blue"], E, [(["car"], [["remove"]])]),
    ("make it bigger", ["make the car blue", "undo"], E, [(["car"], [["bigger"]])]),
    ("a bit brighter", ["make the lamp yellow"], E, [(["lamp"], [["brighter"]])]),
    ("give her a crown", ["make the woman's dress red"], E, [(["woman"], [["crown"]])]),
    # vague → clarify
    ("change something", [], "clarify", []),
    ("make it nicer", [], "clarify", []),
    ("make it look better", [], "clarify", []),
    ("edit the picture", [], "clarify", []),
    ("change the dog", [], "clarify", []),
    ("fix it", [], "clarify", []),
    ("improve this", [], "clarify", []),
    ("can you do something with the sky?", [], "clarify", []),
    ("make the sky prettier", [], "clarify", []),
    ("replace the car", [], "clarify", []),
    ("add something", [], "clarify", []),
    ("change the color of the car", [], "clarify", []),
    ("make them blue", [], "clarify", []),
    ("make the sky blue and change the dog", [], "clarify", []),
    ("banana", [], "clarify", []),
    # history
    ("undo", [], "undo", []),
    ("Undo that.", ["make the shirt red"], "undo", []),
    ("go back", [], "undo", []),
    ("revert", [], "undo", []),
    ("forget that", [], "undo", []),
    ("never mind", [], "undo", []),
    ("oops, undo the last edit please", [], "undo", []),
    ("I don't like it", [], "undo", []),
    ("redo", [], "redo", []),
    ("put it back", ["make the car red", "undo"], "redo", []),
    ("put it back", ["remove the car"], "undo", []),
    ("start over", [], "reset", []),
    ("back to the original", [], "reset", []),
    ("reset", [], "reset", []),
    ("let's start again from scratch", [], "reset", []),
    ("undo everything", [], "reset", []),
    # more phrasing seen in the wild
    ("I'd love it if the cat was orange", [], E, [(["cat"], [["orange"]])]),
    ("give it a retro feel", [], E, [(["*"], [["retro"]])]),
    ("apply a sepia filter", [], E, [(["*"], [["sepia"]])]),
    ("convert to black and white", [], E, [(["*"], [["black and white"]])]),
    ("put the man in a tuxedo", [], E, [(["man"], [["tuxedo"]])]),
    ("the sky is too dark", [], E, [(["sky"], [["bright"]])]),
    ("set the house on fire", [], E, [(["house"], [["fire"]])]),
    ("i don't want the car", [], E, [(["car"], [["remove"]])]),
    ("the shirt in blue please", [], E, [(["shirt"], [["blue"]])]),
    ("yo make the car purple lol", [], E, [(["car"], [["purple"]])]),
    ("write hello on the sign", [], E, [(["sign"], [["hello"]])]),
    ("turn the grass into sand and the trees into palm trees", [], E,
     [(["grass"], [["sand"]]), (["trees"], [["palm"]])]),
    ("put a red hat on the woman, make her dress blue", [], E,
     [(["woman"], [["hat"]]), (["woman's dress"], [["blue"]])]),
    ("give the cat a bow tie and make its eyes blue", [], E,
     [(["cat"], [["bow tie"]]), (["cat's eyes"], [["blue"]])]),
    ("I'd like the flowers to be purple and the vase to be gold", [], E,
     [(["flower"], [["purple"]]), (["vase"], [["gold"]])]),
    ("erase the car, then add a fountain in its place", [], E,
     [(["car"], [["remove"]]), (["car"], [["fountain"]])]),
    ("make the water clear and the sand white", [], E,
     [(["water"], [["clear"]]), (["sand"], [["white"]])]),
    ("put a scarf around the dog's neck", [], E, [(["dog"], [["scarf"]])]),
    ("the dog -> a lion, the cat -> a tiger", [], E,
     [(["dog"], [["lion"]]), (["cat"], [["tiger"]])]),
    ("make the dog smaller and move it to the left", [], E, [(["dog"], [["smaller"]])]),
    ("never mind, make it green instead", ["make the car red"], E, [(["car"], [["green"]])]),
    ("i don't like the hat", [], "clarify", []),
    ("paint the walls", [], "clarify", []),
    ("do whatever you want", [], "clarify", []),
    ("adjust the colors", [], "clarify", []),
    ("previous version please", [], "undo", []),
    ("do it again", [], "redo", []),
    ("can you edit videos?", [], "chat", []),
    ("move the car to the right", [], "chat", []),
    # follow-ups on the last edit
    ("the truck too", ["make the car red"], E, [(["truck"], [["red"]])]),
    ("do the same to the truck", ["make the car red"], E, [(["truck"], [["red"]])]),
    ("and the woman", ["remove the man"], E, [(["woman"], [["remove"]])]),
    ("even more", ["make the sky pink"], E, [(["sky"], [["pink"]])]),
    ("less", ["make the sky pink"], "clarify", []),
    ("make the sky pink, the sea too", [], E, [(["sky"], [["pink"]]), (["sea"], [["pink"]])]),
    ("make the flowers, the grass and the trees red", [], E,
     [(["flowers"], [["red"]]), (["grass"], [["red"]]), (["trees"], [["red"]])]),
    ("put the cat and the dog in party hats", [], E,
     [(["cat"], [["party hat"]]), (["dog"], [["party hat"]])]),
    # chat
    ("hi", [], "chat", []),
    ("hello there!", [], "chat", []),
    ("thanks!", [], "chat", []),
    ("thank you, that looks great", [], "chat", []),
    ("what can you do?", [], "chat", []),
    ("how do I undo?", [], "chat", []),
    ("can you crop the image?", [], "chat", []),
    ("help", [], "chat", []),
]


@pytest.mark.parametrize(("user", "context", "action", "expected"), CASES,
                         ids=[f"{i:03d}-{c[0][:40]}" for i, c in enumerate(CASES)])
def test_phrasing(planner: RulesPlanner, user: str, context: list[str], action: str,
                  expected: list[tuple[list[str], list[list[str]]]]) -> None:
    plan = planner.plan(user, context)
    case = {"expect": {"action": action,
                       "instructions": [{"target": t, "edit": e} for t, e in expected]}}
    assert case_ok(case, plan), plan.model_dump_json()
    if action == "clarify":
        assert plan.question and "?" in plan.question
    if action == "chat":
        assert plan.reply


def test_case_count() -> None:
    assert len(CASES) >= 80


def test_plural_targets_get_a_group_each(planner: RulesPlanner) -> None:
    plan = planner.plan("turn both cats into tigers and make every balloon red", [])
    groups = [i.group for i in plan.instructions]
    assert [i.target for i in plan.instructions] == ["both cats", "every balloon"]
    assert None not in groups and len(set(groups)) == 2


def test_coordinated_targets_share_one_group(planner: RulesPlanner) -> None:
    plan = planner.plan("turn the cat and the dog into tigers, and make the sky red", [])
    cat, dog, sky = plan.instructions
    assert cat.instruction == "turn the cat into a tiger"
    assert dog.instruction == "turn the dog into a tiger"
    assert cat.group == dog.group is not None and sky.group is None


def test_singular_targets_have_no_group(planner: RulesPlanner) -> None:
    plan = planner.plan("make the left car yellow and the right car green", [])
    assert [i.group for i in plan.instructions] == [None, None]


def test_instructions_are_imperative(planner: RulesPlanner) -> None:
    plan = planner.plan("Could you please get rid of the person in the background?", [])
    assert plan.instructions[0].instruction == "remove the person in the background"


def test_a_specific_question_names_the_target(planner: RulesPlanner) -> None:
    plan = planner.plan("change the dog", [])
    assert plan.question == "What should the dog become, or how should it change?"


def test_put_it_back_redoes_after_an_undo(planner: RulesPlanner) -> None:
    assert planner.plan("put it back", ["make the car red", "undo"]).action == "redo"
    assert planner.plan("put it back", ["make the car red"]).action == "undo"


def test_unsupported_moves_are_explained(planner: RulesPlanner) -> None:
    alone = planner.plan("move the car to the left", [])
    mixed = planner.plan("make the car red and move it to the left", [])
    assert alone.action == "chat" and "move" in (alone.reply or "")
    assert mixed.action == "edit" and len(mixed.instructions) == 1 and mixed.note


@pytest.mark.parametrize(("pending", "answer", "merged"), [
    ("change the dog", "a wolf", "turn the dog into a wolf"),
    ("change the dog", "wolf", "turn the dog into a wolf"),
    ("change the dog", "into a wolf please", "turn the dog into a wolf"),
    ("make it look nicer", "make the sky bluer", "make the sky bluer"),
    ("change the car", "make it red", "make the car red"),
    ("change the car", "red", "make the car red"),
    ("change the color of the car", "green", "make the car green"),
    ("paint the walls", "light green", "make the walls light green"),
    ("replace the cup", "a mug", "replace the cup with a mug"),
    ("add something", "a rainbow", "add a rainbow"),
    ("add something to the sky", "a rainbow", "add a rainbow to the sky"),
    ("make them blue", "the balloons", "make the balloons blue"),
    ("change the weather", "rain", "make it rain"),
    ("make it nicer", "as a watercolor", "turn it into a watercolor"),
    ("fix it", "the sky is too dark", "make the sky brighter"),
    ("make the sky blue and change the dog", "a wolf",
     "make the sky blue and turn the dog into a wolf"),
    ("change something", "the dog", "change the dog"),
    ("change the dog", "never mind", "never mind"),
    ("change the dog", "thanks", "thanks"),
    ("I'd like the weather to be different", "rain", "make it rain"),
    ("the background needs changing", "a beach", "turn the background into a beach"),
    ("can we try a different mood", "dark and moody", "make it dark and moody"),
])
def test_merge_answer(pending: str, answer: str, merged: str) -> None:
    assert merge_answer(pending, "a question", answer) == merged


def test_merged_answer_plans_as_an_edit(planner: RulesPlanner) -> None:
    first = planner.plan("change the dog", [])
    merged = merge_answer("change the dog", first.question, "a wolf")
    plan = planner.plan(merged, ["change the dog"])
    assert plan.action == "edit"
    assert plan.instructions[0].target == "dog" and "wolf" in plan.instructions[0].instruction


def test_long_chats_read_only_the_recent_messages(
        planner: RulesPlanner, monkeypatch: pytest.MonkeyPatch) -> None:
    context = ["hello"] * 40 + ["make the shirt red", "make it darker", "thanks"] * 5
    understood: list[str] = []
    understand = RulesPlanner._understand

    def counting(self: RulesPlanner, text: str, *args: object) -> object:
        understood.append(text)
        return understand(self, text, *args)

    monkeypatch.setattr(RulesPlanner, "_understand", counting)
    plan = planner.plan("make it bigger", context)
    assert len(understood) == RulesPlanner.LOOKBACK + 1  # each recent message once, then this
    assert plan.instructions[0].target == "shirt"


def test_change_phrase_tails_match_the_phrase_test_on_every_tail() -> None:
    """`change_phrase_starts` answers for every tail at once; each must be what the plain
    definition says of that tail."""
    import random

    def plain(words: list[str]) -> bool:
        content = [w for w in words if w not in INTENSIFIERS and w not in {"and", "or", ","}]
        return bool(content) and all(is_adjective(w, last=w == words[-1]) for w in content) \
            and is_adjective(words[-1])

    vocabulary = ["red", "bright", "a", "bit", "and", ",", "or", "the", "car", "marble",
                  "darker", "more", "very", "glass", "shiny-blue", "blue-ish", "old", "sky"]
    rng = random.Random(7)
    for _ in range(3000):
        words = [rng.choice(vocabulary) for _ in range(rng.randint(0, 9))]
        starts = change_phrase_starts(words)
        assert [k in starts for k in range(len(words) + 1)] == \
            [plain(words[k:]) for k in range(len(words) + 1)], words
        assert is_change_phrase(words) == plain(words)


# --- history beyond one step, placements, particles (issue 15) ------------------------


@pytest.mark.parametrize(("text", "plan"), [
    ("undo twice", {"action": "undo", "count": 2}),
    ("go back three steps", {"action": "undo", "count": 3}),
    ("redo 4 times", {"action": "redo", "count": 4}),
    ("undo undo", {"action": "undo", "count": 2}),
    ("undo the last edit", {"action": "undo", "count": 1}),
    ("go back to the version with the red car",
     {"action": "goto", "version": {"description": "the red car", "relation": "with"}}),
    ("the one before the hat",
     {"action": "goto", "version": {"description": "the hat", "relation": "before"}}),
    ("go to version 3",
     {"action": "goto", "version": {"description": "version 3", "relation": "with"}}),
    ("undo the sky but keep the wolf", {"action": "forget", "forget": ["the sky"]}),
    ("take back the sky and the hat", {"action": "forget", "forget": ["the sky", "the hat"]}),
])
def test_history_requests_plan_exactly(planner: RulesPlanner, text: str, plan: dict) -> None:
    got = planner.plan(text, []).model_dump(include=set(plan))
    assert got == plan


@pytest.mark.parametrize(("text", "target", "instruction"), [
    ("add a cat next to the dog", "next to the dog", "add a cat next to the dog"),
    ("put a lamp to the left of the sofa", "left of the sofa",
     "put a lamp to the left of the sofa"),
    ("add a ball under the table", "under the table", "add a ball under the table"),
    ("add a moon above the mountains", "sky", "add a moon above the mountains"),
    ("put a hat on the dog", "dog", "put a hat on the dog"),
    ("brighten it up", "image", "make it brighter"),
    ("tone down the red", "red", "tone down the red"),
    ("clean up the background", "background", "clean up the background"),
    ("it would be nice if the car were red", "car", "make the car red"),
    ("in the style of a Pixar film", "image", "make it in the style of a pixar film"),
])
def test_new_phrasings_plan_exactly(planner: RulesPlanner, text: str, target: str,
                                    instruction: str) -> None:
    plan = planner.plan(text, [])
    assert [(i.target, i.instruction) for i in plan.instructions] == [(target, instruction)]


def test_a_numbered_list_is_one_instruction_per_item(planner: RulesPlanner) -> None:
    plan = planner.plan("1) sky -> stormy 2) dog -> cat", [])
    assert [(i.target, i.instruction) for i in plan.instructions] == [
        ("sky", "turn the sky stormy"), ("dog", "turn the dog into a cat")]

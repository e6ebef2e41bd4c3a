"""The phrasing corpus and its score (`promptartisan plan --score`): the corpus's shape, what
counts as correct, the rules planner on the corpus and on phrasings that are not in it, and
the command for the rules planner and for an LLM spec whose server is down."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from promptartisan.agent.planning.phrasing_score import (
    Case,
    load_cases,
    normalise_target,
    score,
    why_wrong,
)
from promptartisan.agent.planning.plan import Instruction, Plan, VersionQuery
from promptartisan.agent.planning.rules_planner import RulesPlanner
from promptartisan.ui.cli import main

KINDS = {"counted_history", "described_version", "forget_instruction", "hypothetical",
         "style_alone", "numbered_list", "placed_addition", "particle_verb", "unnamed_quality"}


@pytest.fixture(scope="module")
def planner() -> RulesPlanner:
    return RulesPlanner()


# --- the corpus -------------------------------------------------------------------------


def test_the_corpus_has_ten_phrasings_of_each_kind() -> None:
    cases = load_cases()
    kinds = Counter(case.kind for case in cases)
    assert set(kinds) == KINDS
    assert min(kinds.values()) >= 10, kinds
    assert len({case.id for case in cases}) == len(cases)
    assert len({case.user for case in cases}) == len(cases)


def test_every_expected_plan_is_one_a_plan_can_be() -> None:
    """Each case's expectation builds a valid Plan, so a correct answer exists."""
    for case in load_cases():
        expect = case.expect
        plan = Plan(action=expect["action"], count=expect.get("count", 1),
                    version=VersionQuery(description=" ".join(expect["version"]["words"]),
                                         relation=expect["version"]["relation"])
                    if "version" in expect else None,
                    forget=expect.get("forget", []), question="?", reply="",
                    instructions=[Instruction(target=i["target"],
                                              instruction=" ".join(i["words"]).split("|")[0])
                                  for i in expect.get("instructions", [])])
        assert why_wrong(case, plan) is None, case.id


# --- what counts as correct -------------------------------------------------------------


def _case(action: str, **expect: object) -> Case:
    return Case("t-1", "test", "a request", [], {"action": action, **expect})


def test_targets_compare_without_articles_and_every_name_of_the_whole_image() -> None:
    assert normalise_target("The Sky") == normalise_target("sky") == "sky"
    assert normalise_target("next to the dog") == normalise_target("next to dog")
    assert {normalise_target(t) for t in ("image", "the whole image", "it", "the picture")} \
        == {"image"}
    assert normalise_target("the left car") != normalise_target("car")


def test_an_edit_needs_each_target_and_its_key_words() -> None:
    case = _case("edit", instructions=[{"target": "the sky", "words": ["stormy|storm"]},
                                       {"target": "dog", "words": ["cat"]}])
    good = Plan(action="edit", instructions=[
        Instruction(target="dog", instruction="turn the dog into a cat"),
        Instruction(target="sky", instruction="make the sky stormy")])
    assert why_wrong(case, good) is None
    swapped = Plan(action="edit", instructions=[
        Instruction(target="dog", instruction="make the dog stormy"),
        Instruction(target="sky", instruction="turn the sky into a cat")])
    one = Plan(action="edit", instructions=[Instruction(target="sky", instruction="storm")])
    assert why_wrong(case, swapped) and why_wrong(case, one)


def test_history_plans_need_their_count_version_or_forget() -> None:
    assert why_wrong(_case("undo", count=3), Plan(action="undo", count=3)) is None
    assert "count 2" in why_wrong(_case("undo", count=3), Plan(action="undo", count=2))
    assert why_wrong(_case("undo"), Plan(action="redo")).startswith("action redo")
    before = _case("goto", version={"words": ["hat"], "relation": "before"})
    assert why_wrong(before, Plan(action="goto", version=VersionQuery(
        description="the red hat", relation="before"))) is None
    assert why_wrong(before, Plan(action="goto", version=VersionQuery(description="the hat")))
    two = _case("forget", forget=["sky", "hat"])
    assert why_wrong(two, Plan(action="forget", forget=["the hat", "the sky"])) is None
    assert why_wrong(two, Plan(action="forget", forget=["the sky"]))


def test_the_score_counts_misses_per_kind() -> None:
    class Undoer:
        def plan(self, text: str, context: list[str]) -> Plan:
            return Plan(action="undo")

    result = score(Undoer(), load_cases(), name="undoer")
    counted = result.kinds["counted_history"]
    assert result.correct < result.total == len(result.misses) + result.correct
    assert result.kinds["placed_addition"][0] == 0
    assert counted[0] < counted[1]
    assert result.answered_by == Counter({"undoer": result.total})
    assert result.lines()[-1] == f"{result.correct}/{result.total} correct"


# --- the rules planner ------------------------------------------------------------------


def test_the_rules_planner_reads_every_corpus_phrasing(planner: RulesPlanner) -> None:
    result = score(planner, load_cases())
    assert result.correct == result.total, "\n".join(result.misses)


#: Phrasings of the same kinds that are not in the corpus (written after it, in five batches,
#: each before the rules were run on it: 38/41, 34/42, 32/35, 29/35 and 21/32 read right at
#: first): the rules must read the kind, not the corpus's sentences.
UNSEEN: list[tuple[str, list[str], str, dict[str, object]]] = [
    ("undo five times", [], "undo", {"count": 5}),
    ("please go back 2 edits", [], "undo", {"count": 2}),
    ("rewind three steps", [], "undo", {"count": 3}),
    ("redo two more steps", [], "redo", {"count": 2}),
    ("undo the last couple of changes", [], "undo", {"count": 2}),
    ("go back to the version where the boat was red", [], "goto",
     {"version": {"words": ["boat", "red"], "relation": "with"}}),
    ("the picture before the rainbow please", [], "goto",
     {"version": {"words": ["rainbow"], "relation": "before"}}),
    ("take me to the one after the sunset edit", [], "goto",
     {"version": {"words": ["sunset"], "relation": "after"}}),
    ("revert to the picture without the moustache", [], "goto",
     {"version": {"words": ["mustache"], "relation": "before"}}),
    ("open version 7", [], "goto", {"version": {"words": ["version 7"], "relation": "with"}}),
    ("undo the crown but keep the cape", [], "forget", {"forget": ["crown"]}),
    ("take back just the fog", [], "forget", {"forget": ["fog"]}),
    ("revert the river change and keep the rest", [], "forget", {"forget": ["river"]}),
    ("undo the balloons and the confetti", [], "forget", {"forget": ["balloons", "confetti"]}),
    ("it would be awesome if the bus were yellow", [], "edit",
     {"instructions": [{"target": "bus", "words": ["yellow"]}]}),
    ("wouldn't it be neat if the bird was a parrot", [], "edit",
     {"instructions": [{"target": "bird", "words": ["parrot"]}]}),
    ("i wish the man had a beard", [], "edit",
     {"instructions": [{"target": "man", "words": ["beard"]}]}),
    ("if only the grass were greener", [], "edit",
     {"instructions": [{"target": "grass", "words": ["greener"]}]}),
    ("in the style of Hayao Miyazaki", [], "edit",
     {"instructions": [{"target": "image", "words": ["miyazaki"]}]}),
    ("like an old Charlie Chaplin film", [], "edit",
     {"instructions": [{"target": "image", "words": ["chaplin"]}]}),
    ("Tim Burton aesthetic", [], "edit",
     {"instructions": [{"target": "image", "words": ["burton"]}]}),
    ("as if drawn by a child", [], "edit",
     {"instructions": [{"target": "image", "words": ["child"]}]}),
    ("1) the cup -> a mug 2) the spoon -> gold", [], "edit",
     {"instructions": [{"target": "cup", "words": ["mug"]},
                       {"target": "spoon", "words": ["gold"]}]}),
    ("- remove the cones\n- make the road wet", [], "edit",
     {"instructions": [{"target": "cones", "words": ["remove"]},
                       {"target": "road", "words": ["wet"]}]}),
    ("a. sky -> pink b. sea -> green", [], "edit",
     {"instructions": [{"target": "sky", "words": ["pink"]},
                       {"target": "sea", "words": ["green"]}]}),
    ("add a dog beside the bench", [], "edit",
     {"instructions": [{"target": "beside the bench", "words": ["dog"]}]}),
    ("put a cactus to the right of the chair", [], "edit",
     {"instructions": [{"target": "right of the chair", "words": ["cactus"]}]}),
    ("place a rug under the table", [], "edit",
     {"instructions": [{"target": "under the table", "words": ["rug"]}]}),
    ("add a bird next to it", ["make the statue gold"], "edit",
     {"instructions": [{"target": "next to the statue", "words": ["bird"]}]}),
    ("cool it down a bit", [], "edit",
     {"instructions": [{"target": "image", "words": ["cool"]}]}),
    ("tidy the room up", [], "edit", {"instructions": [{"target": "room", "words": ["tidy"]}]}),
    ("wash out the colors", [], "edit",
     {"instructions": [{"target": "colors", "words": ["wash out"]}]}),
    ("i'd like the style to be different", [], "clarify", {}),
    ("can the lighting change?", [], "clarify", {}),
    ("try another season", [], "clarify", {}),
    # two more batches, each written before the rules were run on it
    ('undo that three times', [], 'undo', {'count': 3}),
    ('go back 10 steps', [], 'undo', {'count': 10}),
    ('could you undo the last 3 things', [], 'undo', {'count': 3}),
    ('step back a few times', [], 'undo', {'count': 3}),
    ('redo, redo', [], 'redo', {'count': 2}),
    ('back two', [], 'undo', {'count': 2}),
    ('I want to go back to the picture with the snowman', [], 'goto',
     {'version': {'relation': 'with', 'words': ['snowman']}}),
    ('return to the image before you added the clouds', [], 'goto',
     {'version': {'relation': 'before', 'words': ['clouds']}}),
    ("let's go back to where the walls were blue", [], 'goto',
     {'version': {'relation': 'with', 'words': ['walls', 'blue']}}),
    ('show the version right after the first edit', [], 'goto',
     {'version': {'relation': 'after', 'words': ['first edit']}}),
    ('jump to version 12', [], 'goto', {'version': {'words': ['version 12'], 'relation': 'with'}}),
    ('the version without the graffiti', [], 'goto',
     {'version': {'relation': 'before', 'words': ['graffiti']}}),
    ('undo the change to the sky only', [], 'forget', {'forget': ['sky']}),
    ('take the moustache back but keep the hat', [], 'forget', {'forget': ['mustache']}),
    ('revert what you did to the car', [], 'forget', {'forget': ['car']}),
    ('undo the snow, the lights are fine', [], 'forget', {'forget': ['snow']}),
    ('cancel my edit to the lake', [], 'forget', {'forget': ['lake']}),
    ("it'd be sweet if the truck was a firetruck", [], 'edit',
     {'instructions': [{'target': 'truck', 'words': ['firetruck']}]}),
    ('would be so cool if the ceiling had stars', [], 'edit',
     {'instructions': [{'target': 'ceiling', 'words': ['stars']}]}),
    ('i kinda wish the water were turquoise', [], 'edit',
     {'instructions': [{'target': 'water', 'words': ['turquoise']}]}),
    ("wouldn't it be better if the lamp was on", [], 'edit',
     {'instructions': [{'target': 'lamp', 'words': ['on']}]}),
    ('imagine the horse with a unicorn horn', [], 'edit',
     {'instructions': [{'target': 'horse', 'words': ['unicorn horn']}]}),
    ('in the vein of Edward Hopper', [], 'edit',
     {'instructions': [{'target': 'image', 'words': ['hopper']}]}),
    ('like a frame from a Wes Anderson movie', [], 'edit',
     {'instructions': [{'target': 'image', 'words': ['wes anderson']}]}),
    ('Studio Ghibli vibes', [], 'edit',
     {'instructions': [{'target': 'image', 'words': ['ghibli']}]}),
    ('rendered like a PS1 game', [], 'edit',
     {'instructions': [{'target': 'image', 'words': ['ps1']}]}),
    ('1) hair -> silver\n2) jacket -> denim\n3) remove the bag', [], 'edit',
     {'instructions': [{'target': 'hair', 'words': ['silver']},
                       {'target': 'jacket', 'words': ['denim']},
                       {'target': 'bag', 'words': ['remove']}]}),
    ('1. Make the moon bigger 2. Add stars to the sky', [], 'edit',
     {'instructions': [{'target': 'moon', 'words': ['bigger']},
                       {'target': 'sky', 'words': ['stars']}]}),
    ('• remove the kite\n• make the grass yellow', [], 'edit',
     {'instructions': [{'target': 'kite', 'words': ['remove']},
                       {'target': 'grass', 'words': ['yellow']}]}),
    ('add a fox to the left of the tree', [], 'edit',
     {'instructions': [{'target': 'left of the tree', 'words': ['fox']}]}),
    ('put a mug on top of the desk', [], 'edit',
     {'instructions': [{'target': 'on top of the desk', 'words': ['mug']}]}),
    ('place a lantern above the door', [], 'edit',
     {'instructions': [{'target': 'above the door', 'words': ['lantern']}]}),
    ('stick a small robot behind the girl', [], 'edit',
     {'instructions': [{'target': 'behind the girl', 'words': ['robot']}]}),
    ('add some ducks in front of the boat', [], 'edit',
     {'instructions': [{'target': 'in front of the boat', 'words': ['ducks']}]}),
    ('tone down the orange a little', [], 'edit',
     {'instructions': [{'target': 'orange', 'words': ['tone down']}]}),
    ('dial back the saturation', [], 'edit',
     {'instructions': [{'target': 'image', 'words': ['saturation']}]}),
    ('brighten the faces up', [], 'edit',
     {'instructions': [{'target': 'faces', 'words': ['bright']}]}),
    ('tidy up the shelves', [], 'edit',
     {'instructions': [{'target': 'shelves', 'words': ['tidy']}]}),
    ('could the atmosphere be different?', [], 'clarify', {}),
    ("I'd love a different season", [], 'clarify', {}),
    ('change up the weather', [], 'clarify', {}),
    ('the colors should be different', [], 'clarify', {}),
    ('please undo the last four changes', [], 'undo', {'count': 4}),
    ('go two steps back', [], 'undo', {'count': 2}),
    ('revert 3 times', [], 'undo', {'count': 3}),
    ('redo it twice', [], 'redo', {'count': 2}),
    ('ctrl z twice', [], 'undo', {'count': 2}),
    ('can i see the version with the purple hair again', [], 'goto',
     {'version': {'relation': 'with', 'words': ['purple hair']}}),
    ('go back to before you changed the sky', [], 'goto',
     {'version': {'relation': 'before', 'words': ['sky']}}),
    ('return to the edit after the hat one', [], 'goto',
     {'version': {'relation': 'after', 'words': ['hat']}}),
    ('switch back to the image where it was night', [], 'goto',
     {'version': {'relation': 'with', 'words': ['night']}}),
    ('bring me back to version 5', [], 'goto',
     {'version': {'relation': 'with', 'words': ['version 5']}}),
    ('undo only the beard', [], 'forget', {'forget': ['beard']}),
    ('revert the sky edit, leave everything else', [], 'forget', {'forget': ['sky']}),
    ('forget about the dragon, keep the castle', [], 'forget', {'forget': ['dragon']}),
    ('take back the change to her dress', [], 'forget', {'forget': ['dress']}),
    ('it would be great if the fence were white', [], 'edit',
     {'instructions': [{'target': 'fence', 'words': ['white']}]}),
    ("honestly it'd look nicer if the car was black", [], 'edit',
     {'instructions': [{'target': 'car', 'words': ['black']}]}),
    ('what if the cat were wearing a crown', [], 'edit',
     {'instructions': [{'target': 'cat', 'words': ['crown']}]}),
    ("wouldn't it be cool if the bridge was made of ice", [], 'edit',
     {'instructions': [{'target': 'bridge', 'words': ['ice']}]}),
    ('in the style of Picasso please', [], 'edit',
     {'instructions': [{'target': 'image', 'words': ['picasso']}]}),
    ('as though painted by Rembrandt', [], 'edit',
     {'instructions': [{'target': 'image', 'words': ['rembrandt']}]}),
    ('Moebius comic style', [], 'edit',
     {'instructions': [{'target': 'image', 'words': ['moebius']}]}),
    ('like a still from a noir film', [], 'edit',
     {'instructions': [{'target': 'image', 'words': ['noir']}]}),
    ('1) the bike -> red 2) the helmet -> white', [], 'edit',
     {'instructions': [{'target': 'bike', 'words': ['red']},
                       {'target': 'helmet', 'words': ['white']}]}),
    ('- make the sea calmer\n- add a sailboat', [], 'edit',
     {'instructions': [{'target': 'sea', 'words': ['calm']},
                       {'target': 'water', 'words': ['sailboat']}]}),
    ('add a cat beside the armchair', [], 'edit',
     {'instructions': [{'target': 'beside the armchair', 'words': ['cat']}]}),
    ('draw a small bird on top of the fence', [], 'edit',
     {'instructions': [{'target': 'on top of the fence', 'words': ['bird']}]}),
    ('put a bucket below the tap', [], 'edit',
     {'instructions': [{'target': 'below the tap', 'words': ['bucket']}]}),
    ('add a man in front of the shop', [], 'edit',
     {'instructions': [{'target': 'in front of the shop', 'words': ['man']}]}),
    ('tone down the highlights', [], 'edit',
     {'instructions': [{'target': 'image', 'words': ['highlights']}]}),
    ('clean up the table', [], 'edit', {'instructions': [{'target': 'table', 'words': ['clean']}]}),
    ('smooth out her skin', [], 'edit',
     {'instructions': [{'target': 'skin', 'words': ['smooth']}]}),
    ('brighten it up a little', [], 'edit',
     {'instructions': [{'target': 'image', 'words': ['bright']}]}),
    ('I want the lighting to be different', [], 'clarify', {}),
    ('maybe a different atmosphere?', [], 'clarify', {}),
    ('the background needs changing', [], 'clarify', {}),
    # a fourth batch, after the fixes for the first three: 29/35 at first
    ('hmm undo that twice', [], 'undo', {'count': 2}),
    ('roll it back two versions', [], 'undo', {'count': 2}),
    ('go forward once more', [], 'redo', {'count': 1}),
    ('undo the previous 6 steps please', [], 'undo', {'count': 6}),
    ('go back to how it looked with the yellow umbrella', [], 'goto',
     {'version': {'relation': 'with', 'words': ['yellow umbrella']}}),
    ('I liked the one with the red scarf better, go back to it', [], 'goto',
     {'version': {'relation': 'with', 'words': ['red scarf']}}),
    ('restore the version from before the sunset edit', [], 'goto',
     {'version': {'relation': 'before', 'words': ['sunset']}}),
    ('back to the picture right before the cat was added', [], 'goto',
     {'version': {'relation': 'before', 'words': ['cat']}}),
    ('show version 2 again', [], 'goto', {'version': {'words': ['version 2'], 'relation': 'with'}}),
    ('undo what i did to the lamp', [], 'forget', {'forget': ['lamp']}),
    ('remove the rain edit but keep the puddles', [], 'forget', {'forget': ['rain']}),
    ('revert just the hair color', [], 'forget', {'forget': ['hair']}),
    ('get rid of the fog change', [], 'forget', {'forget': ['fog']}),
    ("it'd be hilarious if the dog was wearing sunglasses", [], 'edit',
     {'instructions': [{'target': 'dog', 'words': ['sunglasses']}]}),
    ("wouldn't it look better if the sky were orange", [], 'edit',
     {'instructions': [{'target': 'sky', 'words': ['orange']}]}),
    ('I really wish the road was wet', [], 'edit',
     {'instructions': [{'target': 'road', 'words': ['wet']}]}),
    ('suppose the tree had pink blossoms', [], 'edit',
     {'instructions': [{'target': 'tree', 'words': ['pink blossoms']}]}),
    ('in the manner of a 90s anime', [], 'edit',
     {'instructions': [{'target': 'image', 'words': ['anime']}]}),
    ('like an oil painting by Turner', [], 'edit',
     {'instructions': [{'target': 'image', 'words': ['turner']}]}),
    ('Pixar style please', [], 'edit', {'instructions': [{'target': 'image', 'words': ['pixar']}]}),
    ('done in the style of a comic book', [], 'edit',
     {'instructions': [{'target': 'image', 'words': ['comic']}]}),
    ('1) boat -> yacht 2) remove the buoy 3) sky -> sunset', [], 'edit',
     {'instructions': [{'target': 'boat', 'words': ['yacht']},
                       {'target': 'buoy', 'words': ['remove']},
                       {'target': 'sky', 'words': ['sunset']}]}),
    ('- the cup => gold\n- the saucer => silver', [], 'edit',
     {'instructions': [{'target': 'cup', 'words': ['gold']},
                       {'target': 'saucer', 'words': ['silver']}]}),
    ('2 things: 1) make the cat black 2) add a bowl next to it', [], 'edit',
     {'instructions': [{'target': 'cat', 'words': ['black']},
                       {'target': 'next to the cat', 'words': ['bowl']}]}),
    ('add a little house behind the hill', [], 'edit',
     {'instructions': [{'target': 'behind the hill', 'words': ['house']}]}),
    ('put a vase of flowers on top of the piano', [], 'edit',
     {'instructions': [{'target': 'on top of the piano', 'words': ['vase']}]}),
    ('add a shadow under the chair', [], 'edit',
     {'instructions': [{'target': 'under the chair', 'words': ['shadow']}]}),
    ('add a parrot to the right of the man', [], 'edit',
     {'instructions': [{'target': 'right of the man', 'words': ['parrot']}]}),
    ('turn down the reds', [], 'edit',
     {'instructions': [{'target': 'reds', 'words': ['turn down']}]}),
    ('tone the saturation down', [], 'edit',
     {'instructions': [{'target': 'image', 'words': ['saturation']}]}),
    ('liven up the colors', [], 'clarify', {}),
    ('blur the background out a bit', [], 'edit',
     {'instructions': [{'target': 'background', 'words': ['blur']}]}),
    ("i'd like the hair to look different", [], 'clarify', {}),
    ('could we change the vibe', [], 'clarify', {}),
    ('the lighting could be better', [], 'clarify', {}),
    # a fifth, casual batch: 21/32 at first (and one more case: a sign, not a cloud, above a
    # house)
    ('Undo x3', [], 'undo', {'count': 3}),
    ('pls go back like 2 steps', [], 'undo', {'count': 2}),
    ('Redo the last two', [], 'redo', {'count': 2}),
    ('undo. undo.', [], 'undo', {'count': 2}),
    ('Back to the one with the balloons!', [], 'goto',
     {'version': {'relation': 'with', 'words': ['balloons']}}),
    ('could you show me the image from before the fireworks were added?', [], 'goto',
     {'version': {'relation': 'before', 'words': ['fireworks']}}),
    ('revert to v3', [], 'goto', {'version': {'words': ['version 3'], 'relation': 'with'}}),
    ('the version after the snow please', [], 'goto',
     {'version': {'relation': 'after', 'words': ['snow']}}),
    ('undo the dog thing', [], 'forget', {'forget': ['dog']}),
    ('Undo the sunglasses, everything else is perfect', [], 'forget', {'forget': ['sunglasses']}),
    ('reverse the change on the roof', [], 'forget', {'forget': ['roof']}),
    ('It would be really nice if the flowers were purple!', [], 'edit',
     {'instructions': [{'target': 'flowers', 'words': ['purple']}]}),
    ('wouldnt it be cool if the car was a tank', [], 'edit',
     {'instructions': [{'target': 'car', 'words': ['tank']}]}),
    ('i wish the statue had a crown', [], 'edit',
     {'instructions': [{'target': 'statue', 'words': ['crown']}]}),
    ('Kind of wish the sofa were green', [], 'edit',
     {'instructions': [{'target': 'sofa', 'words': ['green']}]}),
    ('Pixar-style', [], 'edit', {'instructions': [{'target': 'image', 'words': ['pixar']}]}),
    ('in the style of a renaissance fresco', [], 'edit',
     {'instructions': [{'target': 'image', 'words': ['fresco']}]}),
    ('like a scene out of Blade Runner', [], 'edit',
     {'instructions': [{'target': 'image', 'words': ['blade runner']}]}),
    ('1) sky: darker 2) sea: calmer', [], 'edit',
     {'instructions': [{'target': 'sky', 'words': ['dark']},
                       {'target': 'sea', 'words': ['calm']}]}),
    ('1 make the door red\n2 make the window blue', [], 'edit',
     {'instructions': [{'target': 'door', 'words': ['red']},
                       {'target': 'window', 'words': ['blue']}]}),
    ('a) add a hat to the man b) remove the cup', [], 'edit',
     {'instructions': [{'target': 'man', 'words': ['hat']},
                       {'target': 'cup', 'words': ['remove']}]}),
    ('Add a dog next to the girl on the left', [], 'edit',
     {'instructions': [{'target': 'next to the girl on the left', 'words': ['dog']}]}),
    ('put a small table beside the bed', [], 'edit',
     {'instructions': [{'target': 'beside the bed', 'words': ['table']}]}),
    ('add a cloud above the house', [], 'edit',
     {'instructions': [{'target': 'sky', 'words': ['cloud']}]}),
    ('add a sign above the house', [], 'edit',
     {'instructions': [{'target': 'above the house', 'words': ['sign']}]}),
    ('place a cat under the bench', [], 'edit',
     {'instructions': [{'target': 'under the bench', 'words': ['cat']}]}),
    ('tone down the pink a bit', [], 'edit',
     {'instructions': [{'target': 'pink', 'words': ['tone down']}]}),
    ('brighten up the whole thing', [], 'edit',
     {'instructions': [{'target': 'image', 'words': ['bright']}]}),
    ('clear out the clutter', [], 'edit',
     {'instructions': [{'target': 'clutter', 'words': ['remove|clear']}]}),
    ('light up the windows', [], 'edit',
     {'instructions': [{'target': 'windows', 'words': ['bright|light|glow']}]}),
    ('I would like the sky to be different', [], 'clarify', {}),
    ('can the season be something else', [], 'clarify', {}),
    ('a different time of day maybe', [], 'clarify', {}),
]


@pytest.mark.parametrize(("user", "context", "action", "expect"), UNSEEN,
                         ids=[case[0][:40] for case in UNSEEN])
def test_unseen_phrasings_of_each_kind(planner: RulesPlanner, user: str, context: list[str],
                                       action: str, expect: dict[str, object]) -> None:
    case = Case("unseen", "unseen", user, context, {"action": action, **expect})
    plan = planner.plan(user, context)
    assert why_wrong(case, plan) is None, plan.model_dump_json()


def test_a_wish_about_an_unnamed_quality_asks_how(planner: RulesPlanner) -> None:
    plan = planner.plan("I'd like the weather to be different", [])
    assert plan.action == "clarify"
    assert plan.question is not None and plan.question.startswith("What weather")


def test_motion_is_still_refused_but_a_film_style_is_not(planner: RulesPlanner) -> None:
    assert planner.plan("turn it into a short movie", []).action == "chat"
    assert planner.plan("animate the dog", []).action == "chat"
    styled = planner.plan("in the style of a Pixar film", [])
    assert styled.action == "edit" and styled.instructions[0].target == "image"


def test_a_wish_inside_a_wish_is_read_once(planner: RulesPlanner) -> None:
    """The wish frame's re-reading never re-enters itself: a long chain of wishes plans (it
    once recursed until Python gave up)."""
    plan = planner.plan("wouldn't it be nice if " * 300 + "the car was red", [])
    assert plan.action in {"edit", "clarify"}


@pytest.mark.slow
def test_adversarial_messages_of_the_new_shapes_plan_at_once(tmp_path: Path) -> None:
    """Long runs of the shapes the new rules read (lists, wishes, particles, placements,
    history requests) plan in a child process, with a timeout far above what they take (about
    a second each for 50 KB): a rule that backtracked would run for ever."""
    script = tmp_path / "plan_long.py"
    script.write_text(
        "from promptartisan.agent.planning.rules_planner import RulesPlanner\n"
        "units = ['1) sky -> red ', '1.a 2.', '- a\\n', 'it would be nice if the car was ',\n"
        "         'tone the red ', 'up ', 'like a ', 'add a cat next to the ',\n"
        "         'undo the sky and the ', 'go back to the version with the ', 'undo two steps ',\n"
        "         'i want the weather to be ', 'pixar-', '1) sky: dark ', 'a: b\\n', 'undo x3 ',\n"
        "         'kind of wish ', 'like a scene from ']\n"
        "for unit in units:\n"
        "    RulesPlanner().plan((unit * (50000 // len(unit) + 1))[:50000], [])\n"
        "print('planned')\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "planned"


# --- the command ------------------------------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["plan", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_score_prints_k_of_n_per_kind_and_latency(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--score", "--planner", "rules")
    lines = out.splitlines()
    total = len(load_cases())
    assert code == 0
    assert lines[-1] == f"{total}/{total} correct"
    assert any(line.startswith("latency p50 ") and " ms, p99 " in line for line in lines)
    assert f"answered by: rules {total}/{total}" in lines
    for kind in KINDS:
        assert any(line.split() == [kind, line.split()[1]] for line in lines), kind


def test_score_reads_a_corpus_of_ones_own(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    cases = tmp_path / "mine.jsonl"
    cases.write_text("\n".join(json.dumps(c) for c in [
        {"id": "a", "kind": "mine", "user": "undo twice", "expect": {"action": "undo",
                                                                    "count": 2}},
        {"id": "b", "kind": "mine", "user": "make the car red",
         "expect": {"action": "edit", "instructions": [{"target": "car", "words": ["blue"]}]}},
    ]) + "\n")
    code, out, _ = _run(capsys, "--score", "--planner", "rules", "--cases", str(cases))
    assert code == 0
    assert out.splitlines()[-1] == "1/2 correct"
    assert "MISS b 'make the car red'" in out


def test_score_of_an_llm_whose_server_is_down_counts_the_rules_answers(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Any planner spec is scored; an LLM planner that can't reach its server falls back, and
    the tally says who answered."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again: nothing listens there now
    cases = tmp_path / "one.jsonl"
    cases.write_text(json.dumps({"id": "a", "user": "undo twice",
                                 "expect": {"action": "undo", "count": 2}}) + "\n")
    code, out, _ = _run(capsys, "--score", "--cases", str(cases),
                        "--planner", f"llm:ollama:tiny@http://127.0.0.1:{port}")
    assert code == 0
    assert "answered by: rules 1/1" in out.splitlines()
    assert out.splitlines()[-1] == "1/1 correct"


@pytest.mark.parametrize("argv", [["--score", "make it red"], ["--cases", "x.jsonl", "undo"],
                                  ["--score", "--context", "make the car red"]])
def test_score_arguments_are_checked(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("promptartisan plan:")


def test_a_bad_case_names_its_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cases = tmp_path / "bad.jsonl"
    cases.write_text('{"id": "a", "user": "undo", "expect": {"action": "undo"}}\n{"id": "b"}\n')
    code, _, err = _run(capsys, "--score", "--planner", "rules", "--cases", str(cases))
    assert code == 2
    assert f"{cases}:2" in err


# --- issue 26: requests as people write them ----------------------------------------------

FRESH26 = Path(__file__).parents[2] / "data" / "phrasings_fresh26.jsonl"


def test_the_issue_26_batch_reads_as_measured(planner: RulesPlanner) -> None:
    """185 requests of eight kinds, written before the rules saw them (74/185 at first sight):
    the rules read 158 now; every kind but heading lists (9/20) at least four in five."""
    result = score(planner, load_cases(FRESH26))
    assert result.correct >= 158, "\n".join(result.misses)
    assert all(good * 5 >= n * 4 for kind, (good, n) in result.kinds.items()
               if kind != "heading_list"), result.kinds


def test_a_story_names_what_the_next_sentence_means(planner: RulesPlanner) -> None:
    plan = planner.plan("My son is holding a kite. Make it orange.", [])
    assert [(i.target, i.instruction) for i in plan.instructions] == [
        ("kite", "make the kite orange")]
    alone = planner.plan("the kettle looks dull", [])
    assert alone.action == "clarify" and "the kettle" in (alone.question or "")


def test_a_request_read_in_part_asks_quoting_what_was_understood(
        planner: RulesPlanner) -> None:
    plan = planner.plan("make the shoes red, the socks are weird", [])
    assert plan.action == "clarify"
    assert plan.question == ("I'll make the shoes red. Did you also want something done to "
                             "the socks?")
    asked = planner.plan("make the shoes red and the socks", [])
    assert asked.question is not None and asked.question.startswith("I'll make the shoes red.")
    assert "the socks" in asked.question


def test_plan_explain_prints_the_clauses_and_targets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--planner", "rules", "--explain",
                 "There's a bike by the gate. Paint it teal."]) == 0
    out = capsys.readouterr().out
    assert "clause 1: \"there's a bike by the gate\"" in out
    assert "names, for it/him/them later: 'bike'" in out
    assert "target 'bike': paint the bike teal" in out

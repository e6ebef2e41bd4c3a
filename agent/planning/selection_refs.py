"""References to the person's numbered selections in a message: "make 1 red and 2 gold",
"selection 2 → a cheetah", "#1 red", "the first selection", "1: make it red".

Read here, before any planner, and taken out of the text the planner sees: a planner does not
know which selections exist, so "2 gold" is a number to it, and an exact reading of these few
forms needs no model. Each reference becomes an instruction whose target is
`selection_target(n)`; what is left of the message ("and the sky a sunset") goes to the
planner, and the two sets of instructions are put together in the message's order. A number
is a selection only where it stands as the thing changed: explicitly ("selection 2", "#2", "the
second selection"), before an arrow or colon ("2: …", "2 → …"), or as the object of a change
verb ("make 2 gold"); counts and amounts ("add 2 birds", "make it 10% brighter", "turn it 90
degrees") stay the planner's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from promptartisan.agent.planning.plan import Instruction, Plan, selection_number, selection_target

ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
            "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10}
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10}

CHANGE_VERBS = ("make", "turn", "paint", "color", "colour", "recolor", "recolour", "change",
                "fill", "render")
"""Verbs whose object is the region itself: "make 2 gold" names selection 2."""

IMPERATIVES = (*CHANGE_VERBS, "add", "remove", "replace", "put", "give", "draw", "erase",
               "delete", "swap", "convert", "transform", "place", "insert", "let", "set",
               "apply", "show", "cover", "dress", "blur", "brighten", "darken")
"""Words an instruction starts with: a clause starting with one needs no borrowed verb."""

DETERMINERS = ("the", "a", "an", "my", "his", "her", "its", "our", "their", "all", "every",
               "each", "both", "this", "that", "these", "those", "some")

UNITS = ("%", "percent", "per", "degree", "degrees", "°", "times", "x", "px", "pixel", "pixels",
         "more", "less", "of", "out", "by", "to", "or")
"""Words after a number that make it an amount, not a selection ("make it 10% brighter")."""

_SEPARATOR = re.compile(r"\s*(?:[;,\n]+|\.(?:\s+|$)|\b(?:and then|then|and|also)\b)\s*",
                        re.IGNORECASE)
_MARKER = r"\s*(?:→|->|=>|=|:|\)|\s-\s)\s*"
_NUMBER = r"\d+|" + "|".join(NUMBER_WORDS)
_EXPLICIT = re.compile(
    r"\b(?P<all>all|every|each|both)\s+(?:of\s+)?(?:the\s+|my\s+)?selections?\b"
    rf"|(?:\bthe\s+)?\bselections?\s*(?:number\s*)?#?\s*(?P<n>{_NUMBER})\b"
    rf"|#\s*(?P<hash>\d+)\b"
    rf"|(?:\bthe\s+)?\b(?P<ord>{'|'.join(ORDINALS)}|last)\s+selection\b",
    re.IGNORECASE)
_BARE = re.compile(rf"^(?:(?P<verb>{'|'.join(CHANGE_VERBS)})\s+)?(?P<n>\d+)"
                   rf"(?:(?P<marker>{_MARKER})|\s+|$)(?P<tail>.*)$", re.IGNORECASE)


@dataclass
class Clause:
    """One clause of the message; `numbers` are the selections it is about (empty: a text
    clause for the planner)."""

    text: str
    numbers: list[int] = field(default_factory=list)
    instruction: str = ""
    verb: str | None = None
    strong: bool = True  # False: a bare "2 gold", taken only beside surer references


def _first_word(text: str) -> str:
    match = re.match(r"[\w%°']+", text.strip().lower())
    return match.group(0) if match else ""


def _number(word: str) -> int:
    return int(word) if word.isdigit() else NUMBER_WORDS[word.lower()]


def _compose(verb: str | None, rest: str) -> str:
    """An instruction about "it" from a borrowed verb and what follows the reference."""
    rest = rest.strip().rstrip(".!")
    if _first_word(rest) in IMPERATIVES:
        return rest
    verb = (verb or "").lower()
    if verb == "turn" or (not verb and _first_word(rest) in ("a", "an", "into")):
        return "turn it " + (rest if _first_word(rest) == "into" else "into " + rest)
    return f"{verb or 'make'} it {rest}"


def _explicit(clause: str, numbers: list[int], verb: str | None) -> Clause | None:
    """The clause read around an explicit reference ("make selection 1 red", "#2 gold",
    "make all selections gold": every one)."""
    match = _EXPLICIT.search(clause)
    if match is None or (match.group("all") and not numbers):
        return None
    if match.group("all"):
        named = list(numbers)
    elif match.group("ord"):
        word = match.group("ord").lower()
        if word == "last":
            if not numbers:
                return None
            number = numbers[-1]
        else:
            number = ORDINALS[word]
        named = [number]
    else:
        named = [_number(match.group("n") or match.group("hash"))]
    before, after = clause[:match.start()].strip(), clause[match.end():]
    marker = re.match(_MARKER, after)
    if not after.strip() and before.lower() in CHANGE_VERBS:  # "make selections 1 and 2 red"
        return Clause(clause, named, "", before.lower())
    if not before:
        rest = after[marker.end():] if marker else after
        if not rest.strip():
            return Clause(clause, named, "", verb)
        return Clause(clause, named, _compose(verb, rest), verb)
    own = _first_word(before)
    text = f"{before} it{after}".strip().rstrip(".!")
    return Clause(clause, named, text, own if own in CHANGE_VERBS else verb)


def _bare(clause: str, numbers: list[int], verb: str | None) -> Clause | None:
    """A clause about a selection named by its bare number ("make 2 gold", "2: …")."""
    match = _BARE.match(clause.strip())
    if match is None or int(match.group("n")) not in numbers:
        return None
    tail, own = match.group("tail"), match.group("verb")
    first = _first_word(tail)
    if first in UNITS or tail.lstrip().startswith("%"):
        return None
    number = int(match.group("n"))
    if not tail.strip():
        return Clause(clause, [number], "", own or verb, strong=bool(own))
    plural = len(first) > 3 and first.endswith("s") and not first.endswith("ss")
    strong = bool(own or match.group("marker") or verb)
    if plural and not match.group("marker") and (not strong or len(tail.split()) > 1):
        return None  # "2 birds on the roof", "make 2 dogs red": a count
    return Clause(clause, [number], _compose(own or verb, tail), own or verb, strong)


def read_clauses(text: str, numbers: Collection[int]) -> list[Clause]:
    """The message's clauses, each with the selections it refers to (if any)."""
    numbers = list(numbers)
    pieces = [p for p in _SEPARATOR.split(text) if p and p.strip()]
    clauses: list[Clause] = []
    verb: str | None = None  # the last change verb, lent to a verbless clause after it
    for piece in pieces:
        piece = piece.strip()
        found = _explicit(piece, numbers, verb) or _bare(piece, numbers, verb)
        if found is None:
            found = Clause(piece)
            own = _first_word(piece)
            verb = own if own in CHANGE_VERBS else verb if own not in IMPERATIVES else None
        else:
            verb = found.verb or verb
        clauses.append(found)
    if not any(c.numbers and c.strong for c in clauses) and \
            not all(c.numbers for c in clauses):
        clauses = [c if not c.numbers or c.strong else Clause(c.text) for c in clauses]
    _share_complements(clauses)
    _merge_fragments(clauses)
    return clauses


def _share_complements(clauses: list[Clause]) -> None:
    """ "make 1, 2 and 3 gold": a bare reference takes the next reference's instruction."""
    waiting: list[Clause] = []
    for clause in clauses:
        if clause.numbers and not clause.instruction:
            waiting.append(clause)
        elif clause.numbers:
            for early in waiting:
                early.instruction = clause.instruction
            waiting = []
        else:
            waiting = []
    for early in waiting:  # "make it red: 1 and 2" is not read; say what is missing
        early.instruction = ""


def _merge_fragments(clauses: list[Clause]) -> None:
    """ "make 1 black and white": a verbless, determinerless text fragment after a selection
    clause belongs to it."""
    index = 1
    while index < len(clauses):
        clause, before = clauses[index], clauses[index - 1]
        first = _first_word(clause.text)
        if (not clause.numbers and before.numbers and before.instruction
                and first not in IMPERATIVES and first not in DETERMINERS):
            before.instruction = f"{before.instruction} and {clause.text}".rstrip(".!")
            del clauses[index]
        else:
            index += 1


def plan_with_selections(text: str, numbers: Collection[int],
                         plan_text: Callable[[str], Plan]) -> Plan:
    """The plan of `text` with its references to `numbers` (the selections that exist) read
    here and the rest planned by `plan_text`; the instructions in the message's order."""
    clauses = read_clauses(text, numbers)
    if not any(c.numbers for c in clauses):
        planned = named_selections(plan_text(text))
        return _onto_the_one_selection(planned, text, list(numbers))
    missing = [c for c in clauses if c.numbers and not c.instruction]
    if missing:
        named = " and ".join(f"selection {n}" for c in missing for n in c.numbers)
        return Plan(action="clarify", question=f"What should I do with {named}?")
    rest = _rest(clauses)
    planned = named_selections(plan_text(rest)) if rest else None
    if planned is not None and planned.action != "edit":
        return planned
    groups = [i.group for i in planned.instructions if i.group is not None] if planned else []
    group = max(groups, default=-1) + 1
    instructions: list[Instruction] = []
    placed = False
    by_instruction: dict[str, int] = {}
    for clause in clauses:
        if not clause.numbers:
            if planned is not None and not placed:
                instructions.extend(planned.instructions)
                placed = True
            continue
        for number in clause.numbers:
            shared = len(clause.numbers) > 1 or sum(
                c.instruction == clause.instruction for c in clauses if c.numbers) > 1
            if shared and clause.instruction not in by_instruction:
                by_instruction[clause.instruction] = group
                group += 1
            instructions.append(Instruction(
                target=selection_target(number), instruction=clause.instruction,
                group=by_instruction.get(clause.instruction) if shared else None))
    note = planned.note if planned is not None else None
    return Plan(action="edit", instructions=instructions, note=note)


_WHOLE_WORDS = re.compile(r"\b(?:whole|entire|everything|everywhere|all over|picture|image|"
                          r"photo|photograph|scene|background)\b", re.IGNORECASE)


def _onto_the_one_selection(plan: Plan, text: str, numbers: list[int]) -> Plan:
    """With one selection on the canvas, "make it blue" means the selection: a person who has
    just pointed at a thing says "it" of that thing. Whole-image instructions move onto the
    selection unless the message names the whole picture ("make the whole picture blue");
    instructions with targets of their own keep them."""
    from promptartisan.tools.phrases import parse

    if len(numbers) != 1 or plan.action != "edit" or _WHOLE_WORDS.search(text):
        return plan
    moved = [i.model_copy(update={"target": selection_target(numbers[0])})
             if parse(i.target).whole else i for i in plan.instructions]
    if moved == plan.instructions:
        return plan
    note = (f"Applied to your selection {numbers[0]}; say \"the whole picture\" to edit "
            "everything.")
    return plan.model_copy(update={"instructions": moved,
                                   "note": f"{plan.note} {note}" if plan.note else note})


def _rest(clauses: list[Clause]) -> str:
    """The text clauses, each with the change verb it borrowed from the clause before."""
    parts, verb = [], None
    for clause in clauses:
        first = _first_word(clause.text)
        if clause.numbers:
            verb = clause.verb or verb
            continue
        if first not in IMPERATIVES and verb:
            parts.append(f"{verb} {clause.text}")
        else:
            parts.append(clause.text)
        verb = first if first in CHANGE_VERBS else verb
    return " and ".join(parts)


def named_selections(plan: Plan) -> Plan:
    """A planner's plan with targets such as "the selection 2" or "Selection 2" written as
    `selection_target(2)`, the one form the Editor looks up."""
    instructions = []
    for instruction in plan.instructions:
        target = re.sub(r"^(?:the\s+)", "", instruction.target.strip(), flags=re.IGNORECASE)
        number = selection_number(target)
        if number is not None:
            instruction = instruction.model_copy(update={"target": selection_target(number)})
        instructions.append(instruction)
    return plan.model_copy(update={"instructions": instructions})

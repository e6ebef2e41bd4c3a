"""The rules planner's noun phrases: what a clause targets.

`Phrase` is a noun phrase as written and as grounded; `Reading` what one clause says (its
edits, or the question it needs). `split_attribute` ("the color of the car"),
`split_subject_change` ("the left car yellow") and `agree` ("make them …") read the target
apart from the change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from promptartisan.agent.planning.grammar import (
    COMPLEMENT_VERBS,
    DETERMINERS,
    PERSON_PRONOUNS,
    PLURAL_PRONOUNS,
    SINGULAR_PRONOUNS,
    change_phrase_starts,
    is_adjective,
    is_plural,
    singular,
    with_article,
)
from promptartisan.agent.planning.plan import WHOLE_IMAGE

# --- phrases and readings -------------------------------------------------------------


@dataclass(frozen=True)
class Phrase:
    """A noun phrase as written (`text`, for the instruction) and as grounded (`target`)."""

    text: str
    target: str
    plural: bool = False
    kind: str = "thing"  # thing | image | vague (names nothing) | unresolved (pronoun)
    from_pronoun: bool = False
    described: bool = False  # named by a sentence that describes, not by an edit


    @property
    def head(self) -> str:
        return head_noun(self.target.split()) if self.kind == "thing" else ""


IMPLICIT_IMAGE = Phrase("it", WHOLE_IMAGE, kind="image", from_pronoun=True)


@dataclass
class Reading:
    """What one clause asks for: edits, or a question about one subject."""

    source: str
    edits: list[tuple[Phrase, str]] = field(default_factory=list)
    question: str | None = None
    subject: Phrase | None = None  # what a question is about, for merging the answer
    ask: str = "change"  # which kind of answer completes the question (see _COMPLETIONS)
    verb: str = ""  # leading verb, repeated for elliptic clauses
    change: str = ""  # the change part, shared by coordinated targets
    shared: bool = False  # coordinated targets sharing one change: one group
    unsupported: str | None = None  # a clause asking for what the editor can't do: why
    verbless: bool = False  # read by a verbless pattern ("darker", "at sunset")
    subject_text: str = ""  # the subject as written, every conjunct ("the flowers, the grass")
    #: What a describing sentence names ("my son is holding a balloon": the balloon, the son),
    #: for "it", "him" and "them" in the clauses after it; nothing to edit.
    referents: list[Phrase] = field(default_factory=list)
    unread: bool = False  # a piece no pattern read, kept to ask about what it names

    @property
    def mentions(self) -> list[Phrase]:
        """What later pronouns may refer to: the edited targets, else the referents."""
        return [subject for subject, _ in self.edits] or self.referents

    @property
    def complete(self) -> bool:
        return bool(self.edits) and self.question is None


ATTRIBUTE_WORDS = {
    "color": "color", "colors": "color", "shade": "color", "hue": "color", "tone": "color",
    "paint": "color", "texture": "texture", "material": "material", "pattern": "pattern",
    "size": "size", "expression": "expression", "face expression": "expression",
    "lighting": "lighting", "light": "lighting", "style": "style", "art style": "style",
    "season": "season", "time of day": "time", "time": "time", "weather": "weather",
    "mood": "mood", "atmosphere": "mood", "vibe": "mood", "look": "style",
}
# --- noun phrases and changes ---------------------------------------------------------

PREPOSITIONS = {"in", "on", "at", "with", "of", "from", "near", "next", "behind", "under",
                 "over", "by", "to", "wearing", "holding", "that", "who", "which", "above",
                 "below", "beside", "inside", "outside", "around", "between", "across", "after",
                 "before", "during", "like", "as", "for", "without", "except"}
IMAGE_LOCATIVE = re.compile(
    r"\s+(?:in|from|of|on|out of|off)\s+(?:the|this|my|our)\s+(?:whole\s+|entire\s+)?"
    r"(?:image|photo|picture|shot|scene|photograph|frame|one|version)$")
_ATTRIBUTE_OF = re.compile(r"^(?:the\s+)?(?P<attr>[a-z ]+?)\s+of\s+(?P<np>.+)$")
_ATTRIBUTE_POSSESSIVE = re.compile(r"^(?P<np>.+?)(?:'s?)?\s+(?P<attr>[a-z]+)$")


def head_noun(words: list[str]) -> str:
    """The noun a phrase is about: the last word before its first preposition."""
    for index, word in enumerate(words[1:], start=1):
        if word in PREPOSITIONS:
            return words[index - 1].removesuffix("'s")
    return words[-1].removesuffix("'s") if words else ""


def split_attribute(noun_phrase: str) -> tuple[str, str | None]:
    """("the car", "color") from "the color of the car", "the car's color", "the car color";
    ("", "weather") from "the weather"."""
    bare = noun_phrase.removeprefix("the ").strip()
    if bare in ATTRIBUTE_WORDS:
        return "", ATTRIBUTE_WORDS[bare]
    match = _ATTRIBUTE_OF.match(noun_phrase)
    if match and match["attr"] in ATTRIBUTE_WORDS:
        return match["np"], ATTRIBUTE_WORDS[match["attr"]]
    match = _ATTRIBUTE_POSSESSIVE.match(noun_phrase)
    if match and match["attr"] in ATTRIBUTE_WORDS and match["np"] not in DETERMINERS:
        return match["np"], ATTRIBUTE_WORDS[match["attr"]]
    return noun_phrase, None


_CHANGE_STARTERS = COMPLEMENT_VERBS | {
    "a", "an", "some", "more", "less", "much", "very", "really", "super", "even", "slightly",
    "extra", "way", "too", "twice", "so", "completely", "totally", "entirely", "fully",
    "into", "like", "all", "somewhat", "quite", "kind", "sort", "bright", "dark", "light",
    "pale", "deep", "neon", "pure", "almost", "different", "gradient", "ombre"}
SUBJECT_PRONOUNS = SINGULAR_PRONOUNS | PLURAL_PRONOUNS | set(PERSON_PRONOUNS) | {
    "everything", "everyone", "everybody"}
_NOT_BEFORE_A_CHANGE = PREPOSITIONS | {"and", ","}


def split_subject_change(rest: str) -> tuple[str, str]:
    """Split "the red car bright blue" into ("the red car", "bright blue"); the change is ""
    when there is none ("the car"). Used for make/turn/paint X Y and "X Y" answers."""
    words = rest.replace(",", " , ").split()
    if not words:
        return "", ""
    first = words[0]
    if first in SUBJECT_PRONOUNS and (first != "her" or len(words) < 2
                                       or words[1] in _CHANGE_STARTERS
                                       or is_adjective(words[1])):
        return first, _join(words[1:])
    start = 0
    while start < len(words) - 1 and (words[start] in DETERMINERS
                                      or words[start] in {"whole", "entire"}):
        start += 1
    changes = change_phrase_starts(words)
    for index in range(start + 1, len(words)):
        word = words[index]
        following = words[index + 1] if index + 1 < len(words) else ""
        if word == "the" and following in {"same", "color", "shade"} or (
                word == "in" and index + 1 in changes):
            return _join(words[:index]), _join(words[index:])
        if word in _CHANGE_STARTERS and words[index - 1] not in _NOT_BEFORE_A_CHANGE:
            if word in {"bright", "dark", "light", "pale", "deep", "neon", "pure"} and not (
                    index + 1 < len(words) and is_adjective(words[index + 1])):
                continue
            return _join(words[:index]), _join(words[index:])
    cut = len(words)
    while cut - 1 > start and (is_adjective(words[cut - 1], last=cut == len(words))
                               or (words[cut - 1] in {"and", "or", ","} and cut < len(words))):
        cut -= 1
    if cut < len(words):
        return _join(words[:cut]), _join(words[cut:])
    middle = next((i for i in range(start + 1, len(words) - 1) if is_adjective(words[i], False)
                   and words[i + 1] in PREPOSITIONS), None)
    if middle is not None:  # "the road wet after rain"
        return _join(words[:middle]), _join(words[middle:])
    if len(words) - start >= 2 and not is_adjective(words[-2], last=False) and words[-2] not in (
            DETERMINERS | PREPOSITIONS):
        return _join(words[:-1]), words[-1]
    return _join(words), ""


def _join(words: list[str]) -> str:
    return " ".join(words).replace(" ,", ",").strip(" ,")


def is_noun_phrase_start(text: str) -> bool:
    """Whether a piece starts like a noun phrase of its own ("the right car", "her shoes")."""
    first = text.split()[0] if text.split() else ""
    return first in DETERMINERS or first in SUBJECT_PRONOUNS or first.endswith("'s")


def agree(change: str, subject: Phrase) -> str:
    """A shared plural change fitted to one singular target: "into tigers" → "into a tiger"."""
    words = change.split()
    if subject.plural or len(words) < 2 or words[0] != "into" or words[1] in DETERMINERS:
        return change
    if not is_plural(words[-1]):
        return change
    return "into " + with_article(" ".join([*words[1:-1], singular(words[-1])]))



"""The rules planner's second step: a message into sentences, a sentence into clauses.

`split_sentences` cuts on sentence ends; `clean_clause` drops the politeness and filler around
a clause ("could you please …", "… for me, thanks"); fixed pairs ("black and white", "salt and
pepper") are protected from the split on "and" (`protect` / `unprotect`). Where the pieces are
glued back into clauses is the planner's (`rules_planner.RulesPlanner.read_message`).
"""

from __future__ import annotations

import re

# --- cleaning clauses -----------------------------------------------------------------

LEADING_FILLER = re.compile(
    r"^(?:(?:no|nope|right|yes|yeah|yep|sure|great|cool|nice|perfect)\s*[,!]\s*|(?:and|then|also|"
    r"now|next|finally|first|"
    r"firstly|secondly|lastly|after that|oh|ok|okay|so|well|alright|um|uh|hmm|ah|actually|"
    r"first off|first of all|first things first|first thing|second(?: thing)?|third(?: thing)?|"
    r"thirdly|next up|afterwards|to (?:begin|start)(?: with)?|start by|begin by|last of all|"
    r"last but not least|and finally|1st|2nd|3rd|4th|step (?:one|two|three|four|\d)|"
    r"before anything else|sorry|so like|like(?= (?:make|turn|add|remove|change|put|give|can|"
    r"could)\b)|yo|after you|once you|when you|have to|need to|must|"
    r"instead|plus|maybe|perhaps|just|thanks|thank you|hi|hello|"
    r"hey|yo|wait|oops|"
    r"please|pls|kindly|can you|could you|would you|will you|would you mind|do you mind|"
    r"i'?d like you to|i would like you to|i want you to|i need you to|i'?d love you to|"
    r"go ahead and|try to|try and|let'?s|let us|i'?d like to|i would like to|i want to|"
    r"i need to|i'?d love to|help me|is it possible to|are you able to|can we|could we|we "
    r"should|you should|how about|what about|how do i|how can i|i wonder if you could|"
    r"quickly|also please|lets|now please|i think|i guess|somehow|see if you can)\b[,\s]*)+")
_TRAILING_FILLER = re.compile(
    r"(?:[,\s]+(?:please|for me|thanks|thank you|if you can|if possible|if you could|too|"
    r"(?:because|since) .+|without (?:touching|changing|affecting|altering) .+|"
    r"as well|instead|now|again|real quick|quickly|ok|okay|for once|right now|thx|lol|lmao|"
    r"haha|hehe|:\)|:d|xd|asap|already|thanks in advance|ty|cheers|"
    r"in (?:the|this|my) (?:image|photo|picture|pic|shot|scene)|"
    r"(?:in|on|of|from) (?:the|this|my) (?:image|photo|picture|shot) (?:please)?))+$")
_GERUND = {"making": "make", "turning": "turn", "changing": "change", "adding": "add",
           "putting": "put", "giving": "give", "removing": "remove", "replacing": "replace",
           "painting": "paint", "coloring": "color", "erasing": "erase", "deleting": "delete",
           "swapping": "swap", "placing": "place", "drawing": "draw", "converting": "convert",
           "transforming": "transform", "getting rid of": "get rid of", "dyeing": "dye",
           "brightening": "brighten", "darkening": "darken", "blurring": "blur"}
_GERUND_START = re.compile("^(" + "|".join(map(re.escape, _GERUND)) + ") ")
DROPPED = re.compile(
    r"^(?:(?:but |and |while |without )?(?:keep|keeping|leave|leaving|don'?t (?:change|touch"
    r"|alter|modify)|do not (?:change|touch)|without (?:changing|touching|altering)|"
    r"preserve|preserving)\b.*|thanks|thank you|please|ok|okay|great|perfect|nice|cool|"
    r"awesome|hi|hello|hey|yes|no|now|then|also|and|wait|oops|hmm|actually|"
    # what stays as it is: "not the hats", "except the big one", "the laces should stay white"
    r"(?:but |and )?(?:not|except|except for|apart from|other than|save for|besides) .+|"
    r".+ (?:stays?|should stay|can stay|remains?|should remain|can remain|is fine|are fine)"
    r"(?: .+)?|nothing else|no (?:other )?changes? (?:to|on) .+|"
    # sequencing said on its own: "last of all", "to finish"
    r"last of all|finally|lastly|to finish|and then|after that|afterwards|next)$")
#: Where an exception is said inside a clause ("all the balloons red apart from the big one"):
#: the exception is cut from what the patterns read, and said in the plan's note.
_EXCEPTED = (r",?\s+(?:except(?: for)?|apart from|other than|save for|but not)\s+"
             r"(?P<x>(?:the|a|an|this|that|these|those|my|his|her|its|their|our) [^,.;!?]+)")
EXCEPTION = re.compile(_EXCEPTED + "$")
EXCEPTION_INSIDE = re.compile(_EXCEPTED)
_BINOMIALS = [
    "black and white", "salt and pepper", "rock and roll", "bread and butter",
    "fish and chips", "mac and cheese", "macaroni and cheese", "peanut butter and jelly",
    "bow and arrow", "cup and saucer", "knife and fork", "fork and knife", "pen and paper",
    "cookies and cream", "sweet and sour", "thunder and lightning", "cream and sugar",
    "ham and cheese", "bacon and eggs", "milk and cookies", "day and night",
    "stars and stripes", "arts and crafts", "table and chairs", "tables and chairs",
    "needle and thread", "lock and key", "nuts and bolts", "bits and pieces",
    "odds and ends", "sticks and stones", "hide and seek", "pros and cons", "black and gold",
]
_PROTECTED_AND = "_and_"
SEPARATOR = re.compile(
    r"(\s*,\s*(?:(?:and|but|then|also|plus|so)\s+)*|\s+(?:and|but|then|plus|also|as well as|"
    r"after that|afterwards|followed by|while)\s+(?:(?:then|also)\s+)*)")
_SENTENCE_END = re.compile(r"(?:[!?;:\n]|\.(?!\d))+")


_FILLER_TAIL = 64
"""How far from a clause's end trailing fillers are looked for. The pattern ends in `$`, so a
search from the start would try it at every position of a long clause, and its overlapping
alternatives backtrack without end on a long run of near-fillers; a run longer than this is
stripped over several rounds."""


def clean_clause(text: str) -> str:
    """A clause without politeness, fillers and trailing "please": the part patterns read; an
    exception at its end ("… except the big one") is cut (`exceptions` names it)."""
    text = EXCEPTION.sub("", text.strip(" ,.!?"))
    for _ in range(3):
        before = text
        text = LEADING_FILLER.sub("", text).strip(" ,")
        trailing = _TRAILING_FILLER.search(text, max(0, len(text) - _FILLER_TAIL))
        text = (text[: trailing.start()] if trailing else text).strip(" ,")
        if text == before:
            break
    gerund = _GERUND_START.match(text)
    return _GERUND[gerund[1]] + text[gerund.end(1):] if gerund else text


def exceptions(message: str) -> list[str]:
    """What a message excepts from its targets ("all the balloons red apart from the big one"):
    said in the plan's note, since a region can't leave part of itself out."""
    return [m["x"] for m in EXCEPTION_INSIDE.finditer(message)]


def split_sentences(message: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(message) if s.strip(" ,")]


_BUT_EXCEPT = re.compile(r"\b(everyone|everybody|everything|all|nothing|anything|no one|"
                        r"every \w+|all the \w+) but (?=the |a |an |my |his |her |their )")


def protect(sentence: str) -> str:
    """Pairs that are one thing ("black and white") and "everyone but X" (an exception, not a
    second clause) kept from the split on and/but."""
    sentence = _BUT_EXCEPT.sub(r"\1 except ", sentence)
    for phrase in _BINOMIALS:
        sentence = sentence.replace(phrase, phrase.replace(" and ", _PROTECTED_AND))
    return sentence


def unprotect(text: str) -> str:
    return text.replace(_PROTECTED_AND, " and ")



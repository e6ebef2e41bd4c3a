"""Requests that move in the version history beyond one step: how many steps ("undo twice",
"go back three versions"), which version by what it shows ("the one with the red car", "back
to before the hat", "version 3"), and which one earlier instruction to take back ("undo the sky
but keep the wolf").

Each reader takes a message already cleaned of politeness (see `rules_clauses.clean_clause`)
and returns a `Plan`, or None when the message is no such request. The patterns are anchored
and their repeats are separated by fixed words, so a reading is linear in the message.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from promptartisan.agent.planning.plan import Plan, VersionQuery

MAX_CHARS = 200
"""The longest message read as a history request: far longer than any such request, so a long
message costs nothing here."""

_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                 "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2,
                 "a couple": 2, "couple of": 2, "a pair of": 2, "a few": 3, "few": 3,
                 "once": 1, "twice": 2, "thrice": 3}
_NUMBER_ALTERNATIVES = r"\d{1,3}|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True))
_NUMBER = rf"(?P<n>{_NUMBER_ALTERNATIVES})"
_UNIT = (r"(?:steps?|edits?|changes?|versions?|times|moves?|undos?|redos?|turns?|images?|"
         r"pictures?|levels?|stages?|revisions?|iterations?|things|ones|actions|operations|"
         r"requests|instructions)")
_COUNTED = re.compile(
    rf"(?<!\S)(?:(?:(?:the|my|your) )?(?:(?:last|previous|past|latest|most recent|next) )?"
    rf"(?:(?:like|about|maybe|around|just) )?{_NUMBER} (?:more |last |previous |of my |of the )?"
    rf"{_UNIT}(?: (?P<way>back|forward)| ago| before)?|(?P<adverb>once|twice|thrice)(?: more)?|"
    rf"(?:the |my )?(?:last|previous|past|latest) (?P<last>{_NUMBER_ALTERNATIVES})|"
    rf"x ?(?P<times>\d{{1,3}})|(?P<times2>\d{{1,3}}) ?x)(?!\S)")
#: What is left of "go two steps back" once the count is taken out: the direction says it.
_MOTION = {"", "go", "step", "move", "jump", "head", "skip", "hop", "please go", "take me"}
_BARE_COUNT = re.compile(rf"(?P<rest>.+) {_NUMBER}")  # "go back 2", "back two"
_REPEATED = re.compile(r"(?P<w>undo|redo)(?:[\s,.;!]+(?P=w))+")
#: Verbs that take back edits once "the last two edits" says they are edits.
_COUNTED_UNDO = re.compile(r"(?:remove|discard|drop|delete|scrap|throw away|get rid of|lose|"
                           r"take back|reverse|back up|go back|step back|back)")


def counted(text: str, move: Callable[[str], str | None]) -> Plan | None:
    """"undo twice", "go back three steps", "redo the last 2 changes", "undo undo undo": an
    undo or redo with its count. `move` reads what is left once the count is taken out."""
    if len(text) > MAX_CHARS:
        return None
    repeated = _REPEATED.fullmatch(text)
    if repeated:
        return Plan(action=repeated["w"], count=min(100, len(re.findall(r"undo|redo", text))))
    match = _COUNTED.search(text)
    bare = _BARE_COUNT.fullmatch(text) if match is None else None
    if match is None and bare is None:
        return None
    if bare is not None:
        words, rest = bare["n"], bare["rest"]
        action = move(rest)
    else:
        words = match["n"] or match["adverb"] or match["last"] or match["times"] or \
            match["times2"]
        rest = " ".join((text[: match.start()] + " " + text[match.end():]).split()).strip(" ,.")
        action = move(rest)
        if action is None and match["way"] and rest in _MOTION:
            action = "undo" if match["way"] == "back" else "redo"
        if action is None and not match["adverb"] and _COUNTED_UNDO.fullmatch(rest):
            action = "undo"
    steps = int(words) if words.isdigit() else _NUMBER_WORDS[words]
    if action not in {"undo", "redo"} or steps < 1:
        return None
    return Plan(action=action, count=min(100, steps))


_LEAD = (r"(?:(?:go|get|jump|skip|hop|move|switch|return|revert|roll|flip|head|take me|bring me|"
         r"send me|take it|bring it|set it|put it|change it)(?: back)?(?: to)?|back to|restore|"
         r"bring back|show(?: me)?|give me|load|open|use|pick|choose|select|i want|i'?d like|"
         r"(?:can i|could i|may i|let me|i want to|i'?d like to) (?:see|view|have|get))")
#: Leads that ask for a version only when it is named as one ("show me the version with …").
_WEAK_LEADS = {"show", "show me", "give me", "load", "open", "use", "pick", "choose", "select",
               "i want", "i'd like", "id like"}
_WEAK_LEAD_ENDS = (" see", " view", " have", " get")
_VERSION_NOUN = (r"(?:version|one|image|picture|photo|pic|edit|state|point|stage|result|shot|"
                 r"(?:how|the way|what) it (?:looked|was|looked like))")
_RELATIONS = {"with": "with", "that had": "with", "that has": "with", "which had": "with",
              "where": "with", "when": "with", "in which": "with", "showing": "with",
              "featuring": "with", "that showed": "with", "without": "before",
              "before": "before", "prior to": "before", "after": "after"}
_DESCRIBED = re.compile(
    rf"(?:(?:the|that|this) )?(?:(?P<noun>{_VERSION_NOUN}) )?(?:(?:from|just|right|from just|"
    rf"from right|the one|one) )?(?P<rel>"
    + "|".join(sorted(_RELATIONS, key=len, reverse=True)) + r") (?P<desc>.+)")
_NUMBERED = re.compile(r"(?:(?:the|that) )?(?:version|v|revision|edit|number|no\.?) ?"
                       r"(?:number |no\.? )?(?P<n>\d{1,3})")
_LED = re.compile(rf"(?P<lead>{_LEAD}) (?P<rest>.+)")
_DESCRIPTION_TAIL = re.compile(r"(?<!first)(?<!second)(?<!third)(?<!last)(?<!latest)"
                               r"(?<!previous)(?: (?:one|version|edit|change|image|picture|"
                               r"photo|again|back|instead|please))+$")
_PREDICATE = re.compile(r"\b(?:should|must|needs?|could|would|can|will|make|turn|into)\b")
_NOW = {"that", "this", "it", "now", "the last one", "the last edit", "the last change",
        "the current one", "this one", "that one"}


#: "i liked the one with the scarf better, go back to it": a version named, then asked for.
_PREFERRED = re.compile(r"i (?:liked|loved|preferred|prefer|like|love) (?P<v>(?:the|that) .+?)"
                        r"(?: (?:better|more|best|most))?,? (?:so |and |let'?s |please |can we |"
                        r"could you )*(?:go back to|switch (?:back )?to|return to|revert to|use|"
                        r"bring back|restore|show me) (?:it|that|that one|this one)(?: again)?")


def described_version(text: str) -> Plan | None:
    """"go back to the version with the red car", "the one before the hat", "version 3": a
    goto with what the version shows and how it relates to that (with/before/after). A
    numbered version is described as "version N"."""
    if len(text) > MAX_CHARS:
        return None
    preferred = _PREFERRED.fullmatch(text)
    if preferred:
        text = f"go back to {preferred['v']}"
    led = _LED.fullmatch(text)
    lead, rest = (led["lead"], led["rest"]) if led else ("", text)
    numbered = _NUMBERED.fullmatch(rest)
    if numbered and (led or text.startswith(("version", "v"))):
        return Plan(action="goto", version=VersionQuery(description=f"version "
                                                                    f"{int(numbered['n'])}"))
    match = _DESCRIBED.fullmatch(rest)
    if match is None:
        return None
    relation = _RELATIONS[match["rel"]]
    named = match["noun"] is not None
    if not led and (not named or match["noun"] == "one" and relation == "with"):
        return None  # "the one with the hat" may answer "which dog?"; "the one before" can't
    weak = lead in _WEAK_LEADS or lead.endswith(_WEAK_LEAD_ENDS)
    if not named and (weak or relation == "with" and match["rel"] not in {
            "where", "when"}):
        return None
    description = _DESCRIPTION_TAIL.sub("", match["desc"]).strip(" ,")
    description = re.sub(r"^(?:i|we|you) ", "", description)
    if not description or _PREDICATE.search(description):
        return None  # "the one with the hat should be red" is an edit
    if description in _NOW and relation == "before":
        return Plan(action="undo")
    if description in _NOW:
        return None
    return Plan(action="goto", version=VersionQuery(description=description, relation=relation))


_KEPT_TAIL = re.compile(r"(?:\s*[,;]\s*|\s+)(?:but |and |while |yet |just )?(?:keep|keeping|"
                        r"leave|leaving|not|except|without|don'?t (?:touch|undo|change|revert)|"
                        r"everything else|the rest|all the rest|all else|the others?)\b.*$")
_FORGET_VERBS = (r"undo|revert|take back|cancel|forget|scrap|scratch|roll back|reverse|drop|"
                 r"remove|delete|discard|get rid of|throw out|ditch|lose|un-?do")
#: Verbs that take back a thing named bare ("undo the sky"); the others ("remove", "drop")
#: only when the thing is named as an edit ("remove the hat edit"), else they are edits.
_TAKE_BACK = {"undo", "revert", "take back", "cancel", "forget", "scrap", "scratch",
              "roll back", "reverse", "un-do"}
_FORGET = re.compile(rf"(?P<verb>{_FORGET_VERBS}) (?:(?:just|only|about) )?(?P<x>.+?)"
                     r"(?: only| alone| though)?")
_EDIT_OF = re.compile(r"(?:the|my|your|that) (?:change|edit|changes|edits|part|bit|step|"
                      r"request|instruction) (?:to|of|on|for|about|with|that (?:added|changed|"
                      r"made|removed)) (?P<y>.+)|what (?:you|i) (?:did|said|asked|changed|added|"
                      r"made)(?: to| about| with| for)? (?P<y2>.+)")
_EDIT_NAMED = re.compile(r"(?P<y>(?:the|my|your|that) .+?) (?:change|edit|edits|changes|part|"
                         r"bit|one|thing|addition|removal|request|instruction)")
_THING = re.compile(r"(?:the|my|his|her|their|its|your) .+")
_ITEM_SPLIT = re.compile(r"\s*,\s*(?:and\s+)?(?=(?:the|my|his|her|their|its|your) )|"
                         r"\s+and\s+(?=(?:the|my|his|her|their|its|your) )")
_NOT_A_THING = re.compile(r"(?:the |my |your )?(?:last|previous|latest|most recent|recent|"
                          r"whole|entire|current|first)\b.*|.* (?:to|into|with|as|from) .*")
_SAID_FINE = re.compile(r" (?:is|are|looks?|stays?|can stay|should stay)\b")
_WHOLE = {"everything", "all", "it", "that", "this", "image", "picture", "photo", "the image",
          "the picture", "the photo", "the whole thing", "the lot"}


def forget(text: str) -> Plan | None:
    """"undo the sky but keep the wolf", "take back the hat", "cancel the rainbow edit": a
    forget of the instructions named (what is kept is implicit: everything else)."""
    if len(text) > MAX_CHARS:
        return None
    text = _KEPT_TAIL.sub("", text).strip(" ,")
    text = re.sub(r"^take (.+?) back$", r"take back \1", text)  # "take the hat back"
    match = _FORGET.fullmatch(text)
    if match is None:
        return None
    x = match["x"]
    edit_of = _EDIT_OF.fullmatch(x) or _EDIT_NAMED.fullmatch(x)
    if edit_of:
        named = edit_of.groupdict().get("y") or edit_of.groupdict()["y2"]
    elif match["verb"] in _TAKE_BACK and _THING.fullmatch(x):
        named = x
    else:
        return None
    items = [item.strip(" ,") for item in _ITEM_SPLIT.split(named)
             if item.strip(" ,") and not _SAID_FINE.search(item)]  # "the lights are fine"
    if not items or any(item in _WHOLE or _NOT_A_THING.fullmatch(item) for item in items):
        return None
    return Plan(action="forget", forget=items)

"""The rules planner's third and fourth steps: a clause into instructions, or a question.

`ClauseReader.read(clause)` matches the clause against a table of verb patterns
(`ClauseReader.PATTERNS`: make X Y, turn X into Y, replace X with Y, add Y to X, remove X, …)
and gives a `Reading`: its edits (target phrase, InstructPix2Pix-style instruction), or the
specific question a vague clause needs (`ASK_*`). A person adding a phrasing adds a pattern
and its handler here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import ClassVar

from promptartisan.agent.planning.grammar import (
    ADDED_THING_REGIONS,
    ANIMALS,
    ANIMATE,
    ARTICLES,
    BODY_PARTS,
    DEMONSTRATIVES,
    DETERMINERS,
    GROUP_QUANTIFIERS,
    IMAGE_WORDS,
    LANDSCAPE,
    MATERIALS,
    PERSON_PRONOUNS,
    PLURAL_PRONOUNS,
    POSSESSIVE_PRONOUNS,
    SINGULAR_PRONOUNS,
    VAGUE_NOUNS,
    global_kind,
    is_adjective,
    is_change_phrase,
    is_global_phrase,
    is_plural,
    is_vague_change,
    pluralize,
    singular,
    style_of_verb,
    with_article,
)
from promptartisan.agent.planning.plan import WHOLE_IMAGE
from promptartisan.agent.planning.rules_clauses import protect, unprotect
from promptartisan.agent.planning.rules_targets import (
    IMAGE_LOCATIVE,
    IMPLICIT_IMAGE,
    PREPOSITIONS,
    SUBJECT_PRONOUNS,
    Phrase,
    Reading,
    agree,
    head_noun,
    is_noun_phrase_start,
    split_attribute,
    split_subject_change,
)

# --- questions ------------------------------------------------------------------------

ASK_WHAT = ("What would you like me to change, and how? For example: \"make the sky a "
            "sunset\", \"turn the dog into a cheetah\" or \"remove the person on the left\".")
ASK_UNKNOWN = ("I'm not sure what to change. Could you say what should change and how? "
               "For example: \"make the sky a sunset\" or \"remove the person\".")
ASK_ATTRIBUTE = {
    "color": "What color should {x} be?",
    "texture": "What texture or material should {x} have?",
    "material": "What material should {x} be made of?",
    "pattern": "What pattern should {x} have — striped, checkered, floral…?",
    "size": "Should {x} be bigger or smaller?",
    "expression": "What expression should {x} have — smiling, surprised, angry…?",
    "lighting": "How should the lighting change — brighter, darker, warmer, or more dramatic?",
    "style": "Which style — for example a watercolor, an oil painting, anime or a pencil "
             "sketch?",
    "season": "Which season should it be — winter, spring, summer or autumn?",
    "time": "What time of day should it be — sunrise, noon, sunset or night?",
    "weather": "What weather should it be — rain, snow, fog or a storm?",
    "mood": "What mood should it have — for example dark and moody, bright and cheerful, "
            "or dreamy?",
}
ASK_COLORS = "How should the colors change — warmer, cooler, more vivid, or muted?"
#: Attributes of the whole picture: "change the weather to rain" edits the image.
GLOBAL_ATTRIBUTES = {"lighting", "style", "season", "time", "weather", "mood"}

UNSUPPORTED = ("I can change what things look like, add and remove them, but I can't move, "
               "rotate, flip, crop or resize them; to move something, remove it and add it "
               "where it should be.")
# --- the reader -----------------------------------------------------------------------

_REMOVE_VERBS = (r"remove|erase|delete|eliminate|get rid of|take away|take out|take off|"
                 r"cut out|wipe out|wipe away|clear away|edit out|paint out|photoshop out|"
                 r"lose|ditch|hide|rub out|clean out|extract|omit|drop")
_REPLACE_VERBS = r"replace|swap|switch|exchange|trade|substitute|swap out|switch out"
_INTO_VERBS = (r"turn|change|transform|convert|morph|make|switch|alter|modify|edit|shift|"
               r"evolve|mutate|render|recolor|color|paint|redo|reimagine|reshape")
_CHANGE_VERBS = r"make|turn|paint|color|dye|tint|recolor|shade|render|get|set|keep"
_ADD_VERBS = (r"add|insert|write|engrave|carve|spray paint|spray-paint|scribble|print|"
              r"include|draw|paint|put|place|stick|hang|sprinkle|scatter|throw|"
              r"plant|attach|pop|slap|overlay|create|generate|show|spawn|bring|position|lay|"
              r"set|drop|fill in|introduce|give me|i want|i'?d like|i need|we want|"
              r"there should be|there needs to be|let there be|can there be|have|want")
_VAGUE_VERBS = (r"edit|fix|improve|enhance|modify|alter|adjust|tweak|change|update|retouch|"
                r"touch up|beautify|polish|upgrade|work on|do something (?:to|with)|jazz up|"
                r"spice up|liven up|redo|rework|refine|play with|mess with|mess around with|"
                r"do (?:some|an) edit(?:s|ing)? (?:on|to)|optimi[sz]e|perfect|correct|"
                r"do|transform|stylize|restyle")
_LOCATIONS = ("on top of", "in front of", "next to", "to the left of", "to the right of",
              "on the left of", "on the right of", "left of", "right of", "close to",
              "in the middle of", "onto", "on", "into", "inside", "in", "to", "at", "over",
              "above", "under", "underneath", "below", "beneath", "behind", "beside", "near",
              "around", "across", "along", "by", "among", "between", "throughout", "all over")
#: Where an added thing goes relative to an anchor, as the target names it ("next to the dog"):
#: the seam with `tools/placement.py`, which turns such a target into a region.
PLACEMENTS = {"next to": "next to", "close to": "next to", "near": "next to", "by": "next to",
              "beside": "beside", "to the left of": "left of", "on the left of": "left of",
              "left of": "left of", "to the right of": "right of", "on the right of": "right of",
              "right of": "right of", "behind": "behind", "in front of": "in front of",
              "on top of": "on top of", "above": "above", "over": "above", "below": "below",
              "under": "under", "underneath": "under", "beneath": "under"}
#: Places around several anchors, which no one region names: the whole image.
_SPREAD_PLACES = {"around", "between", "among"}
_ADJUSTMENTS = {
    "brighten": "brighter", "darken": "darker", "lighten": "lighter", "blur": "blurry",
    "sharpen": "sharper", "enlarge": "bigger", "shrink": "smaller", "soften": "softer",
    "warm": "warmer", "cool": "cooler in tone", "saturate": "more saturated",
    "desaturate": "less saturated", "age": "older", "widen": "wider", "thicken": "thicker",
    "lengthen": "longer", "shorten": "shorter", "freeze": "frozen", "redden": "redder",
    "whiten": "whiter", "blacken": "blacker", "fade": "faded", "colorize": "colorful",
    "grow": "bigger", "de-age": "younger", "rejuvenate": "younger", "flood": "flooded",
    "burn": "burnt", "rust": "rusty", "weather": "weathered", "illuminate": "brighter",
    "light up": "brighter", "dim": "dimmer", "intensify": "more intense", "open": "open",
    "close": "closed", "shut": "closed",
}
_LEVEL_ATTRIBUTES = (r"brightness|contrast|saturation|exposure|warmth|sharpness|vibrance|"
                     r"vibrancy|colors|color saturation|light|lighting|shadows|highlights|"
                     r"glow|blur|noise|grain|clarity|detail|details|size|color")
_OPPOSITES = {
    "dark": "brighter", "bright": "darker", "light": "darker", "big": "smaller",
    "large": "smaller", "small": "bigger", "tiny": "bigger", "saturated": "less saturated",
    "blurry": "sharper", "sharp": "softer", "busy": "simpler", "warm": "cooler",
    "cold": "warmer", "cool": "warmer", "long": "shorter", "short": "longer", "tall": "shorter",
    "thin": "thicker", "thick": "thinner", "old": "younger", "young": "older",
}
_DEGREE = (r"(?:a bit|a little(?: bit)?|slightly|more|a touch|a tad|a notch|some|a lot|"
           r"a little more)")
#: What a wish leads with ("it would be nice if", "wouldn't it be cool if", "i wish"): the
#: wished-for state follows, and is the edit.
_WISH = re.compile(
    r"^(?:(?:i think|maybe|honestly|personally|wow|hmm|oh|you know),? )?(?:(?:how|so) [\w']+ )?"
    r"(?:(?:what|how) would (?:it|this|that|they) look(?: like)? if|"
    r"(?:(?:wouldn'?t|would|could|might|will|won'?t|it'?d|it'?ll|that'?d|it|that|this|things)"
    r"(?: it| that| this| things)?(?: [\w']+){0,5}? if)|(?:(?:i|we|kind of|kinda|sort of|really|"
    r"just|so|honestly|still|actually|do) )*wish|if only|"
    r"suppose|supposing|imagine if|imagine|what if|picture if|"
    r"(?:i'?d|i would) (?:love|like|prefer) it if) "
    r"(?P<rest>.+)$")
_WISHED_STATES = [(re.compile(p), form) for p, form in [
    (r"^(?P<x>.+?) (?:was|were|is|are|be|got) (?P<verb>wearing|holding|carrying) (?P<y>.+)$",
     "make {x} {verb} {y}"),
    (r"^(?P<x>.+?) (?:had|has|have|got) (?P<y>.+)$", "{x} should have {y}"),
    (r"^(?P<x>.+?) (?P<verb>was|were|is|are|looked|look|looks|seemed|appeared|became|become|"
     r"turned|turn|got|had been|could be|would be)(?P<like> like| into)? (?P<y>.+)$",
     "{x} should {verb}{like} {y}"),
    (r"^(?P<x>.+?) with (?P<y>.+)$", "{x} should have {y}"),  # "imagine the horse with wings"
]]
_WISH_VERBS = {"looked": "look", "looks": "look", "seemed": "look", "appeared": "look",
               "became": "become", "turned": "become", "turn": "become", "got": "become"}
#: A verb and its particle: "tone down the red", "clean the floor up". Verbs whose particle
#: asks for "better" without saying how ("jazz it up") get a question.
_PARTICLES = r"(?P<part>up|down|out|off|away)"
_VAGUE_PARTICLE_VERBS = {"jazz", "spice", "liven", "spruce", "pretty", "fix", "doll", "tart",
                         "punch", "touch", "freshen", "perk", "beef", "glam", "juice", "soup",
                         "zhuzh", "dress", "mess around", "tidy things"}
_LOOK_NOUNS = re.compile(r"^(?:a|an|the|some)\s+|\s+(?:feel|look|vibe|vibes|aesthetic|effect|"
                         r"filter|tone|finish|atmosphere|mood|touch|treatment)$")
_GIFT_STARTS = DETERMINERS | {"more", "less"}
_REMOVED_STATES = {"disappear", "vanish", "go away", "removed", "gone", "deleted", "erased",
                   "away", "taken out", "eliminated", "out of the picture", "out", "invisible",
                   "not there", "missing"}


class ClauseReader:
    """Reads one clause against the pattern table (`PATTERNS`, after the handlers), resolving
    pronouns in a scope."""

    def __init__(self, refs: list[Phrase], last_head: str | None = None) -> None:
        self.refs = refs
        self.last_head = last_head

    def read(self, clause: str, verbless: bool) -> Reading | None:
        """The reading of a cleaned clause, or None when no pattern fits it."""
        return self._read(clause, verbless, wish=True)

    def _read(self, clause: str, verbless: bool, wish: bool) -> Reading | None:
        """`read`; without the wish frame (`wish=False`) for what a wish wished, so that a
        wish inside a wish is not unwrapped again and again."""
        if not clause:
            return None
        for pattern, handler, needs_verbless in self.PATTERNS:
            if needs_verbless and not verbless or handler is ClauseReader._wish and not wish:
                continue
            match = pattern.match(clause)
            if match:
                reading = handler(self, match)
                if reading is not None:
                    reading.source = clause
                    reading.verbless = needs_verbless
                    return reading
        return None

    # -- noun phrases

    def phrases(self, raw: str) -> list[Phrase]:
        """The phrases a noun phrase names: pronouns resolved, image words → the image."""
        raw = IMAGE_LOCATIVE.sub("", raw.strip(" ,")).strip()
        listed = re.split(r",\s*(?:and\s+)?", raw)
        if len(listed) > 1 and all(is_noun_phrase_start(part) for part in listed):
            return [phrase for part in listed for phrase in self.phrases(part)]
        if " and " in protect(raw):
            return [phrase for part in protect(raw).split(" and ")
                    for phrase in self.phrases(unprotect(part))]
        words = raw.split()
        if not words:
            return [Phrase("something", "", kind="vague")]
        if raw in SINGULAR_PRONOUNS:
            things = [ref for ref in self.refs if ref.head not in ANIMATE - ANIMALS]
            ref = (things or self.refs)[-1:] if self.refs else []
            return [replace(ref[0], from_pronoun=True)] if ref else [IMPLICIT_IMAGE]
        if raw in PLURAL_PRONOUNS:
            plural = [ref for ref in self.refs if ref.plural]
            if self.refs:
                return [replace(ref, from_pronoun=True) for ref in plural or self.refs]
            return [Phrase(raw, "", plural=True, kind="unresolved")]
        if raw in PERSON_PRONOUNS:
            animate = [ref for ref in self.refs if ref.head in ANIMATE]
            if animate:
                return [replace(animate[-1], from_pronoun=True)]
            text = PERSON_PRONOUNS[raw]
            return [Phrase(text, text.removeprefix("the "), plural=raw == "us")]
        if raw in VAGUE_NOUNS or {"something", "anything", "stuff", "whatever"} & set(words):
            return [Phrase(raw, "", kind="vague")]
        if raw in {"everything else", "the rest", "the rest of it", "the rest of the image",
                   "everything around it"}:
            return [Phrase(raw, "background")]
        core = list(words)
        if core[0] in ARTICLES | DEMONSTRATIVES | POSSESSIVE_PRONOUNS and len(core) > 1:
            core = core[1:]
        owner = self._owner(words[0]) if len(words) > 1 else None
        if owner is not None and core[0] != "own":
            name = owner.head if PREPOSITIONS & set(owner.target.split()) else owner.target
            core = [f"{name}'s", *core]
        bare = [w for w in core if w not in {"whole", "entire", "overall", "full"}]
        if not bare or " ".join(bare) in IMAGE_WORDS:
            return [Phrase(raw, WHOLE_IMAGE, kind="image")]
        exception = re.search(r" (?:except|but|apart from|other than|besides) .+$", raw)
        if exception:
            kept = self.phrases(raw[: exception.start()])
            return [replace(p, text=raw if p.target == "people" else p.text) for p in kept]
        if raw in {"everyone", "everybody", "all the people", "all people"}:
            return [Phrase(raw, "people", plural=True)]
        if core[-1] in {"one", "ones"} and self.last_head and len(core) > 1:
            noun = pluralize(self.last_head) if core[-1] == "ones" else self.last_head
            core[-1] = noun
            raw = " ".join([*words[: len(words) - len(core)], *core])
        head = head_noun(core)
        plural = any(w in GROUP_QUANTIFIERS for w in words[:2]) or is_plural(head)
        if words[0] not in DETERMINERS and not words[0].endswith("'s"):
            raw = "the " + raw
        return [Phrase(raw, " ".join(core), plural=plural)]

    def _owner(self, possessive: str) -> Phrase | None:
        """Whom "his", "her", "its" or "their" refers to: the latest fitting antecedent
        ("put a hat on the woman, make her dress blue" → "woman's dress")."""
        if possessive not in {"his", "her", "its", "their"}:
            return None
        for ref in reversed(self.refs):
            if ref.kind != "thing" or ref.plural != (possessive == "their"):
                continue
            if possessive in {"its", "their"} or ref.head in ANIMATE:
                return ref
        return None

    # -- building readings

    def _edits(self, subjects: list[Phrase], build: Callable[[Phrase], str],
               change: str = "", verb: str = "") -> Reading:
        """A reading that applies `build(subject)` to each subject, or asks about them."""
        for subject in subjects:
            if subject.kind == "vague":
                return Reading("", question=ASK_WHAT, ask="what", verb=verb)
            if subject.kind == "unresolved":
                return Reading("", question=f"Which things do you mean by \"{subject.text}\"?",
                               subject=subject, ask="pronoun", verb=verb, change=change)
        edits = [(subject, build(subject)) for subject in subjects]
        return Reading("", edits=edits, verb=verb, change=change, shared=len(edits) > 1)

    def _ask_change(self, subject: Phrase, verb: str, change: str = "") -> Reading:
        """The question for a target with no change, or only a vague one ("nicer")."""
        name = name_of(subject)
        if subject.kind == "image":
            if change:
                question = (f"What would make it {change.removeprefix('look ')}? For example a "
                            f"style (\"as a watercolor\"), a time of day (\"at sunset\"), or a "
                            f"change to one thing (\"make the sky bluer\").")
            else:
                question = ASK_WHAT
            return Reading("", question=question, subject=subject, ask="change", verb=verb)
        if change:
            question = (f"How should {name} look {change.removeprefix('look ')}? For example a "
                        f"color, a material, or something it should turn into.")
        else:
            question = f"What should {name} become, or how should it change?"
        return Reading("", question=question, subject=subject, ask="change", verb=verb)

    def _change(self, verb: str, subject_text: str, change: str) -> Reading:
        """make/turn/paint X Y, and everything that means it ("X should be Y")."""
        written = subject_text
        subject_text, attribute = split_attribute(subject_text)
        subjects = self.phrases(subject_text) if subject_text else [
            Phrase("it", WHOLE_IMAGE, kind="image") if attribute else IMPLICIT_IMAGE]
        change = change.strip(" ,")
        if change.split()[:1] == ["like"]:
            change = "look " + change
        if change.split()[:1] == ["in"] and is_change_phrase(change.split()[1:]):
            change = change[3:]
        vague = not change or is_vague_change(change.split())
        if attribute in GLOBAL_ATTRIBUTES and not vague and subjects[0].kind == "image":
            return self._global(change)
        if change in _REMOVED_STATES:
            return self._edits(subjects, lambda s: f"remove {s.text}", verb="remove")
        if vague:
            if subjects[0].kind == "thing" and not attribute:
                reading = self._ask_change(subjects[0], verb, change)
                reading.subject_text = written
                return reading
            if attribute:
                question = ASK_ATTRIBUTE.get(attribute, "").format(x=name_of(subjects[0]))
                if question:
                    return Reading("", question=question, subject=subjects[0], ask=attribute,
                                   verb=verb)
            if subjects[0].kind in {"vague", "unresolved"}:
                return self._edits(subjects, str, verb=verb)
            return self._ask_change(subjects[0], verb, change)
        if all(s.kind == "image" or s.from_pronoun and not s.described for s in subjects) \
                and global_kind(change):
            return self._global(change)
        verb = verb if verb in {"make", "turn", "paint", "color", "dye", "tint"} else "make"
        if change.startswith(("into ", "to ")):
            change = "into " + change.split(" ", 1)[1]
            verb = "turn"
        elif change.split()[0] in {"a", "an"} and verb in {"paint", "color", "dye"}:
            verb = "make"

        def build(subject: Phrase) -> str:
            return f"{verb} {subject.text} {agree(change, subject)}"

        return self._edits(subjects, build, change=change, verb=verb)

    def _global(self, change: str) -> Reading:
        """A whole-image edit: a style, season, time of day or weather."""
        change = re.sub(r"^(?:in|into|during|at|to|become|be)\s+", "", change.strip())
        if change.startswith(("look ", "looks ")):
            instruction = f"make it {change}"
        elif change.startswith(("like ", "as ")):
            instruction = f"make it look {change}" if change.startswith("like ") else \
                f"turn it into {change[3:]}"
        elif change.startswith(("a ", "an ")) and global_kind(change) == "style":
            instruction = f"turn it into {change}"
        elif "style" in change.split() and not change.startswith("the style"):
            instruction = f"make it {change}"
        elif change.startswith("the style of"):
            instruction = f"make it in {change}"
        else:
            instruction = f"make it {change}"
        return Reading("", edits=[(Phrase("it", WHOLE_IMAGE, kind="image"), instruction)],
                       verb="make", change=change)


    # -- sentences that describe: what later pronouns refer to

    def _referents(self, texts: list[str]) -> list[Phrase]:
        """The things named by noun phrases of a describing sentence, as referents ("a bike" is
        "the bike" when an instruction names it later)."""
        found: list[Phrase] = []
        for text in texts:
            for phrase in self.phrases(text):
                if phrase.kind == "thing":
                    named = re.sub(r"^(?:a|an|some) ", "the ", phrase.text)
                    found.append(replace(phrase, text=named, described=True,
                                         from_pronoun=False))
        return found

    def _describe(self, match: re.Match[str]) -> Reading | None:
        """ "the cake looks plain", "my son is holding a balloon", "he has his eyes closed": a
        state as it is, no edit; its subject and object are what "it", "him", "them" mean next."""
        subject, rest = match["x"], match["y"]
        if len(subject.split()) > 6 or subject in {"i", "we", "you", "there", "here"}:
            return None
        after = re.sub(r"^(?:\w+ing|kind of|sort of|so|really|very|a bit|a little|too|not|"
                       r"all|now|still|just) ", "", rest)
        obj = noun_chunk(after)
        referents = self._referents([t for t in (obj, subject) if t])
        if not referents and not self.refs:
            return None
        return Reading("", referents=referents, subject=referents[-1] if referents else None,
                       verb="describe")

    def _introduce(self, match: re.Match[str]) -> Reading | None:
        """ "there's a bike leaning on the fence", "this is my uncle", "see the old barn?": the
        thing introduced, for the sentences after it."""
        rest = match["x"]
        if rest.split()[0] in {"no", "nothing", "not"}:
            return None
        chunk = noun_chunk(rest) if is_noun_phrase_start(rest) else noun_chunk(f"the {rest}")
        if chunk is None:
            return None
        if match.string.startswith(("there", "here")):
            chunk = split_location(chunk)[0]  # "a vase on the table": the vase
        referents = self._referents([chunk])
        return Reading("", referents=referents, subject=referents[-1],
                       verb="describe") if referents else None

    def _narrate(self, match: re.Match[str]) -> Reading:
        """ "we were at the lake last summer", "i took this at dusk": the story around the
        picture; the first thing it names is a referent."""
        rest = match["rest"]
        chunk = next((noun_chunk(rest[m.start():]) for m in re.finditer(
            r"(?:(?<=^)|(?<= ))(?:the|my|our|a|an) ", rest)), None)
        referents = self._referents([chunk] if chunk else [])
        return Reading("", referents=referents, subject=referents[-1] if referents else None,
                       verb="describe")

    def _topic(self, match: re.Match[str]) -> Reading | None:
        """ "only the roof", "start with the hat", "do the sky first", "the dog": the thing the
        next clause's "it" means."""
        thing = match["x"]
        if noun_chunk(thing) != thing or thing.startswith("the same"):
            return None  # "the lighting isn't right", "do the same to the truck"
        referents = [replace(r, described=False) for r in self._referents([thing])]
        return Reading("", referents=referents, subject=referents[-1],
                       verb="topic") if referents else None

    # -- more ways to say an edit

    def _style_verb(self, match: re.Match[str]) -> Reading | None:
        """A verb made of a style: "anime-fy it", "watercolorize the photo", "pixelate",
        "steampunk the car"."""
        style = style_of_verb(match["verb"])
        if style is None:
            return None
        subjects = self.phrases(match["x"]) if match["x"] else [IMPLICIT_IMAGE]
        if subjects[0].kind == "image":
            return self._global(f"in {style} style")
        return self._edits(subjects, lambda s: f"make {s.text} in {style} style", verb="make",
                           change=f"in {style} style")

    def _item(self, match: re.Match[str]) -> Reading | None:
        """A list item "shirt to red", "dog as a wolf": a thing and what it becomes (a change
        or a new thing), never "back to the stormy one" or "up to 40"."""
        words = match["y"].split()
        if match["x"].split()[0] in _NOT_A_VERB | {"back", "up", "down", "go", "message"} or not (
                words[0] in {"a", "an"} or is_change_phrase(words) or global_kind(match["y"])):
            return None
        return self._into(match)

    def _fill(self, match: re.Match[str]) -> Reading:
        return self._edits(self.phrases(match["x"]),
                           lambda s: f"fill {s.text} with {match['y']}", verb="fill")

    def _instead(self, match: re.Match[str]) -> Reading | None:
        """ "a cat instead of the dog": replace the dog with a cat."""
        return self._read(f"replace {match['x']} with {match['y']}", verbless=False, wish=False)

    def _from_to(self, match: re.Match[str]) -> Reading | None:
        """ "change the color of the car from red to blue": the old state said, the new one
        wanted."""
        if split_subject_change(match["x"])[1]:
            return None  # "make the sky a gradient from pink to purple"
        return self._into_parts("turn" if match["verb"] == "change" else match["verb"],
                                match["x"], match["y"])

    def _see_as(self, match: re.Match[str]) -> Reading | None:
        """ "wanna see the car in blue", "let me see it as an oil painting"."""
        if match["prep"] == "as":
            return self._into_parts("turn", match["x"], match["y"])
        return self._change("make", match["x"], match["y"])

    def _should_verb(self, match: re.Match[str]) -> Reading | None:
        """ "its top should glow", "the dog should sit": make X do it."""
        if _QUESTION_WORDS & set(match["x"].split()):
            return None  # "what should the dog become?"
        subjects = self.phrases(match["x"])
        if len(match["x"].split()) > 6 or subjects[0].kind != "thing":
            return None
        action = " ".join(p for p in (match["verb"], match["y"]) if p)
        return self._edits(subjects, lambda s: f"make {s.text} {action}", verb="make")

    # -- pattern handlers

    def _as_is(self, match: re.Match[str]) -> Reading:
        """ "turn on the lamp", "turn them off": as written, a pronoun replaced by its target."""
        text = match.string if match.string.startswith("turn") else f"turn {match.string}"

        def build(subject: Phrase) -> str:
            return text.replace(match["x"], subject.text, 1) if subject.from_pronoun else text

        return self._edits(self.phrases(match["x"]), build, verb="turn")

    def _remove(self, match: re.Match[str]) -> Reading | None:
        subject = match["x"]
        location = match.groupdict().get("loc")
        if subject in {"everything", "all", "all of it", "stuff", "things", "everything else",
                       "the clutter", "clutter", "all the stuff"} and location:
            return self._edits(self.phrases(location),
                               lambda s: f"remove everything from {s.text}", verb="remove")
        subjects = self.phrases(subject)
        if subjects[0].kind == "image":
            return Reading("", question="What should I remove?", ask="remove", verb="remove")
        if subjects[0].kind == "vague":
            return Reading("", question="What should I remove?", ask="remove", verb="remove")
        return self._edits(subjects, lambda s: f"remove {s.text}", verb="remove")

    def _replace(self, match: re.Match[str]) -> Reading:
        old, new = match["x"], match["y"]
        if match["verb"] == "substitute" and match["prep"] == "for":
            old, new = new, old
        if match["prep"] == "and":
            return self._edits(self.phrases(old), lambda s: f"replace {s.text} with {new}",
                               verb="replace", change=f"with {new}")
        if is_change_phrase(new.split()):
            return self._change("make", old, new)
        return self._edits(self.phrases(old), lambda s: f"replace {s.text} with {new}",
                           verb="replace", change=f"with {new}")

    def _replace_what(self, match: re.Match[str]) -> Reading:
        subjects = self.phrases(match["x"])
        if subjects[0].kind in {"vague", "unresolved"}:
            return self._edits(subjects, str)
        return Reading("", question=f"What should replace {name_of(subjects[0])}?",
                       subject=subjects[0], ask="replace", verb="replace")

    def _into(self, match: re.Match[str]) -> Reading | None:
        if re.search(r"\bfrom \S+$", match["x"]):
            return None  # "a gradient from pink to purple"
        verb = match.groupdict().get("verb") or "turn"
        return self._into_parts(verb, match["x"], match["y"].strip())

    def _into_parts(self, verb: str, subject_text: str, target: str) -> Reading:
        """turn X into Y, change X to Y: a recolor when Y is an adjective, else a new thing."""
        plain, attribute = split_attribute(subject_text)
        if attribute in GLOBAL_ATTRIBUTES or (not attribute and global_kind(plain)
                                              and global_kind(target) and len(plain.split()) <= 2
                                              and global_kind(plain) != "style"):
            if global_kind(target) or attribute in GLOBAL_ATTRIBUTES:
                return self._global(target)
        if (is_change_phrase(target.split()) and target.split()[-1] not in MATERIALS) \
                or attribute:
            return self._change(verb, subject_text, target)
        if not is_vague_change(target.split()) and global_kind(target) in {None, "style"}:
            target = with_article(target)
        return self._change("turn", subject_text, "into " + target)

    def _adjust(self, match: re.Match[str]) -> Reading:
        subject = match["x"] or "it"
        return self._change("make", subject, _ADJUSTMENTS[match["verb"]])

    def _level(self, match: re.Match[str]) -> Reading:
        up = match["dir"] not in {"decrease", "reduce", "lower", "turn down", "tone down", "less",
                                  "lessen", "cut", "dial down", "dial back", "scale back",
                                  "pull back", "knock down", "bring down"}
        attribute = match["attr"]
        instruction = f"{'increase' if up else 'reduce'} the {attribute}"
        subjects = self.phrases(match["x"]) if match["x"] else [IMPLICIT_IMAGE]
        return self._edits(subjects, lambda s: instruction if s.kind == "image"
                           else f"{instruction} of {s.text}", verb="make", change=instruction)

    def _give(self, match: re.Match[str]) -> Reading | None:
        words = match["rest"].split()
        if words[0] in SUBJECT_PRONOUNS:
            cut = 1
        else:
            cut = next((i for i in range(1, len(words)) if words[i] in _GIFT_STARTS), 0)
            if not cut:
                start = 1 if words[0] in DETERMINERS else 0
                cut = start + 1
                while cut < len(words) - 1 and is_adjective(words[cut - 1]):
                    cut += 1
        owner_text, gift = " ".join(words[:cut]), " ".join(words[cut:])
        if not gift:
            return None
        owners = self.phrases(owner_text)
        if all(o.kind == "image" or o.from_pronoun for o in owners) and global_kind(gift):
            return self._global(_LOOK_NOUNS.sub("", gift))
        if is_vague_change(gift.split()):
            return self._ask_change(owners[0], "give", gift)
        part = next((w for w in gift.split() if w in BODY_PARTS), None)

        def region(owner: Phrase) -> Phrase:
            if part is None or owner.kind != "thing":
                return owner
            target = part if owner.from_pronoun else f"{owner.target}'s {part}"
            return replace(owner, target=target)

        reading = self._edits(owners, lambda o: f"give {o.text} {gift}", verb="give",
                              change=gift)
        reading.edits = [(region(owner), text) for owner, text in reading.edits]
        return reading

    def _wear(self, match: re.Match[str]) -> Reading:
        verb = match["verb"].removesuffix("ing")
        if verb in {"have", "has"}:  # "let the girl have pigtails"
            return self._edits(self.phrases(match["x"]),
                               lambda s: f"give {s.text} {match['y']}", verb="give")
        return self._edits(self.phrases(match["x"]),
                           lambda s: f"make {s.text} {verb} {match['y']}", verb="make")

    def _dress(self, match: re.Match[str]) -> Reading:
        return self._edits(self.phrases(match["x"]),
                           lambda s: f"dress {s.text} in {match['y']}", verb="dress")

    def _make_xy(self, match: re.Match[str]) -> Reading:
        return self._change("make", match["x"], match["y"])

    def _change_verb(self, match: re.Match[str]) -> Reading | None:
        verb, rest = match["verb"], match["rest"]
        if verb in {"get", "set", "keep"} and not re.search(r"\b(?:more|less|er)\b|er$", rest):
            return None
        if rest.split()[0] in {"up", "down", "out", "off", "away"}:
            return None  # "turn down the reds": a particle verb
        subject, change = split_subject_change(rest)
        if verb in {"paint", "color", "dye"} and not change and is_noun_phrase_start(rest) \
                and rest.split()[0] not in {"a", "an", "some"} and not split_location(rest)[2]:
            subject = self.phrases(rest)[0]
            return Reading("", question=ASK_ATTRIBUTE["color"].format(x=name_of(subject)),
                           subject=subject, ask="color", verb="make")
        if verb in {"paint", "draw"} and (not change or not is_change_phrase(change.split())):
            return None  # "paint a mural on the wall": an addition
        return self._change(verb, subject, change)

    def _add(self, match: re.Match[str]) -> Reading | None:
        verb, rest = match["verb"], match["rest"]
        thing, preposition, place = split_location(rest)
        if verb in {"i want", "i'd like", "id like", "i need", "we want", "give me", "have",
                    "want"}:
            subject, change = split_subject_change(rest)
            if change in _REMOVED_STATES:
                return self._edits(self.phrases(subject), lambda s: f"remove {s.text}",
                                   verb="remove")
            if change and not preposition and is_noun_phrase_start(rest) and (
                    rest.split()[0] in {"the", "his", "her", "its", "their", "my"}
                    or subject in SUBJECT_PRONOUNS):
                return self._change("make", subject, change)
            if not preposition and is_global_phrase(rest):
                return self._global(rest)
            if verb == "have":
                return None
            verb = "add"
        if verb in {"show"} and not preposition:
            return None
        if thing.split()[:1] == ["it"] and verb in {"put", "bring", "set"}:
            return None
        if not place and thing.split()[-1] in {"there", "here"} and self.refs:
            thing = thing.rsplit(" ", 1)[0]  # "remove the man, add a dog there"
            return self._edits([replace(self.refs[-1], from_pronoun=True)],
                               lambda s: f"{verb} {thing} where {s.text} is", verb="add")
        if not thing or thing in VAGUE_NOUNS or thing.split()[-1] in {"something", "stuff"}:
            where = f" to {place}" if place else ""
            return Reading("", question=f"What should I add{where}?", ask="add", verb="add",
                           subject=self.phrases(place)[0] if place else None)
        worn = re.fullmatch(r"(?P<x>(?:the|his|her|their|my) .+?) in (?P<y>(?:a|an|some) .+|"
                            r"[\w ]+s)", thing)
        if verb in {"put", "place"} and not place and worn:
            return self._edits(self.phrases(worn["x"]),
                               lambda s: f"dress {s.text} in {worn['y']}", verb="dress")
        instruction = f"{verb} {thing}" + (f" {preposition} {place}" if place else "")
        if verb in {"put", "place", "set", "lay", "position", "bring"} and place and (
                thing.split()[0] in {"the", "his", "her", "its", "their", "my"}):
            return self._edits([Phrase("the background", "background")],
                               lambda s: instruction, verb="put")
        if not place:
            region = _added_region(thing)
            return self._edits([Phrase(region, region, kind="image" if region == WHOLE_IMAGE
                                       else "thing")], lambda s: instruction, verb="add")
        if re.fullmatch(r"(?:its|their|his|her) (?:place|spot|position)", place):
            places = self.phrases("them" if place.startswith("their") else "it")
            return self._edits(places, lambda s: instruction, verb="add")
        places = self.phrases(place)
        attached = is_participle(thing.split()[-1])  # "ivy growing up the wall"
        if attached and preposition not in PLACEMENTS and places[0].kind == "thing":
            return self._edits(places, lambda s: f"{verb} {thing} {preposition} {s.text}",
                               verb="add")
        worn = preposition == "around" and ("'s" in place or places[0].head in BODY_PARTS)
        if preposition in _SPREAD_PLACES and not worn:
            return self._edits([Phrase("it", WHOLE_IMAGE, kind="image")],
                               lambda s: instruction, verb="add")
        if preposition in {"over", "above"} and any(p.head in LANDSCAPE for p in places) and \
                _added_region(thing) == "sky":  # "a rainbow over the mountains"
            return self._edits([Phrase("the sky", "sky")], lambda s: instruction, verb="add")
        if preposition in PLACEMENTS and places[0].kind == "thing":
            anchor = places[0].text if len(places) == 1 else place
            target = f"{PLACEMENTS[preposition]} {anchor}"
            return self._edits([Phrase(target, target)],
                               lambda s: f"{verb} {thing} {preposition} {anchor}", verb="add")
        if places[0].kind == "image":
            region = _added_region(thing)
            return self._edits([Phrase(region, region, kind="image" if region == WHOLE_IMAGE
                                       else "thing")], lambda s: instruction, verb="add")
        return self._edits(places, lambda s: f"{verb} {thing} {preposition} {s.text}",
                           verb="add")

    def _should(self, match: re.Match[str]) -> Reading | None:
        subject, change = match["x"], match["y"]
        if len(subject.split()) > 6 or subject in {"i", "we", "you", "there"}:
            return None
        if re.match(r"(?:what|how) would", match.string) and not global_kind(change):
            return None
        linking = re.search(r" (?:look|appear|seem)(?: like)? ", match.string)
        if linking and not change.startswith("like"):
            change = ("look like " if " like " in linking.group(0) else "look ") + change
        elif re.search(r" (?:look|appear|seem|be|become) like ", match.string):
            change = "look like " + change
        elif re.search(r" (?:turn|become|go|get) into ", match.string) or (
                change.split()[0] in {"a", "an"} and not global_kind(change)):
            change = "into " + change
        return self._change("make", subject, change)

    def _should_have(self, match: re.Match[str]) -> Reading:
        subjects = self.phrases(match["x"])
        verb, thing = match["verb"], match["y"]
        if verb == "have":
            return self._edits(subjects, lambda s: f"give {s.text} {thing}", verb="give")
        return self._edits(subjects, lambda s: f"make {s.text} {verb} {thing}", verb="make")

    def _unsupported(self, match: re.Match[str]) -> Reading:
        return Reading("", verb="move", unsupported=UNSUPPORTED)

    def _dislike(self, match: re.Match[str]) -> Reading:
        return self._ask_change(self.phrases(match["x"])[0], "change")

    def _on_fire(self, match: re.Match[str]) -> Reading:
        subject = match["x"] or match["x2"]
        return self._edits(self.phrases(subject), lambda s: f"set {s.text} on fire", verb="set")

    def _filter(self, match: re.Match[str]) -> Reading | None:
        effect = match["y"]
        if not global_kind(effect) and not is_adjective(effect.split()[-1]):
            return None
        if match["x"]:
            return self._change("make", match["x"], effect)
        return self._global(effect)

    def _into_image(self, match: re.Match[str]) -> Reading:
        return self._into_parts("turn", "it", match["y"])

    def _too(self, match: re.Match[str]) -> Reading | None:
        quality = match["y"]
        if not is_change_phrase(quality.split()):
            return None
        subject = match.groupdict().get("x") or "it"
        return self._change("make", subject, _OPPOSITES.get(quality, f"less {quality}"))

    def _enough(self, match: re.Match[str]) -> Reading | None:
        quality = match["y"]
        if not is_change_phrase(quality.split()):
            return None
        return self._change("make", match.groupdict().get("x") or "it", f"more {quality}")

    def _let_it(self, match: re.Match[str]) -> Reading | None:
        return self._global(match["y"]) if global_kind(match["y"]) else None

    def _vague_verb(self, match: re.Match[str]) -> Reading | None:
        verb, subject_text = match["verb"], match["x"] or "it"
        if verb == "do" and not match["x"]:
            return None
        subject_text = re.sub(r"^(?:(?:a )?(?:bit|little)(?: of)?|some(?: of)?)\s+", "",
                              subject_text)
        plain, attribute = split_attribute(subject_text)
        if attribute:
            subjects = self.phrases(plain) if plain else [IMPLICIT_IMAGE]
            question = ASK_ATTRIBUTE[attribute].format(x=name_of(subjects[0]))
            if attribute == "color" and subjects[0].kind == "image":
                question = ASK_COLORS
            return Reading("", question=question, subject=subjects[0], ask=attribute,
                           verb="make")
        subjects = self.phrases(subject_text)
        if subjects[0].kind in {"vague", "unresolved"}:
            return self._edits(subjects, str, verb="change")
        if subjects[0].kind == "image" and verb not in {"change", "transform"}:
            question = (f"What should I {verb} — a style (\"as a watercolor\"), the light "
                        f"(\"brighter\"), the season or time of day (\"at sunset\"), or one thing "
                        f"(\"make the sky bluer\")?")
            return Reading("", question=question, subject=subjects[0], ask="change",
                           verb="change")
        if verb in {"fix", "correct", "improve", "enhance", "perfect", "optimize", "optimise",
                    "polish", "refine", "clean up", "retouch", "touch up"}:
            question = f"What's wrong with {name_of(subjects[0])}, and how should it look instead?"
            return Reading("", question=question, subject=subjects[0], ask="change",
                           verb="change")
        return self._ask_change(subjects[0], "change")

    def _more(self, match: re.Match[str]) -> Reading | None:
        thing = match["y"]
        if is_change_phrase(thing.split()):
            return self._change("make", "it", "more " + thing)
        if is_vague_change(thing.split()):
            return None
        region = _added_region(thing)
        subject = Phrase(region, region, kind="image" if region == WHOLE_IMAGE else "thing")
        return self._edits([subject], lambda s: f"add more {thing}", verb="add")

    def _verbless(self, match: re.Match[str]) -> Reading | None:
        """A piece with no verb: "at sunset", "darker", "the sky a bit bluer"."""
        text = match["rest"]
        if is_global_phrase(text):
            return self._global(text)
        if is_change_phrase(text.split()) and not is_vague_change(text.split()):
            return self._change("make", "it", text)
        subject, change = split_subject_change(text)
        if change and is_change_phrase(change.split()) and not is_vague_change(change.split()):
            return self._change("make", subject, change)
        return None

    def _wish(self, match: re.Match[str]) -> Reading | None:
        """ "it would be nice if the car were red", "i wish the sky was pink": the wished-for
        state, read as the edit it asks for ("the car should be red")."""
        rest = match["rest"]
        for pattern, form in _WISHED_STATES:
            state = pattern.match(rest)
            if state is None:
                continue
            parts = state.groupdict(default="")
            verb = parts.get("verb", "")
            verb = verb.removesuffix("ing") if form.startswith("make") else (
                "look" if _WISH_VERBS.get(verb) == "look" else
                "become" if verb in _WISH_VERBS else "be")
            wished = re.sub(r"^(?:made|built) (?:out )?(?:of|from) ", "", parts["y"])
            reading = self._read(form.format(x=parts["x"], verb=verb,
                                             like=parts.get("like", ""), y=wished),
                                 verbless=False, wish=False)
            if reading is not None:
                return reading
        reading = self._read(rest, verbless=True, wish=False)
        return reading or Reading("", question=ASK_UNKNOWN)

    def _unnamed_change(self, match: re.Match[str]) -> Reading | None:
        """ "i'd like the weather to change", "a different mood": a change that names no new
        state: the question of how. The thing must be named: a noun phrase or two words ("tell
        me what to change" names nothing)."""
        thing = match["x"]
        words = thing.split()
        named = is_noun_phrase_start(thing) or split_attribute(thing)[1] is not None or (
            len(words) <= 2 and not {"what", "how", "which", "who", "anything", "something",
                                     "nothing", "everything"} & set(words))
        if not named or thing in VAGUE_NOUNS:
            return None
        return self._change("make", thing, "different")

    def _style(self, match: re.Match[str]) -> Reading | None:
        """A style phrase on its own: "in the manner of a disney cartoon", "wes anderson
        style", "as if painted by monet", "like a tim burton film"."""
        text = match.string
        if text.startswith(("in ", "with ")):
            instruction = f"make it {text}"
        elif text.startswith(("like ", "as if ", "as though ", "from ")):
            instruction = f"make it look {text}"
        elif match.groupdict().get("how"):
            how, prep, rest = match["how"], match["prep"], match["y"]
            if prep == "in" and not global_kind(rest):
                return None  # "done in one pass"
            instruction = (f"make it look {how} by {rest}" if prep == "by" else
                           f"make it look like {rest}" if prep in {"like", "as"} else
                           f"make it in {rest}")
        else:
            instruction = f"make it in {text}" if not text.endswith(("look", "feel")) else \
                f"give it {with_article(text)}"
        return Reading("", edits=[(Phrase("it", WHOLE_IMAGE, kind="image"), instruction)],
                       verb="make", change=text)

    def _phrasal(self, match: re.Match[str]) -> Reading | None:
        """A verb with its particle: "tone down the red" → the red; "brighten it up" → the
        image; the particle stays with the verb, never in the target."""
        verb, part, thing = match["verb"], match["part"], match["x"]
        words = thing.split()
        if verb in _NOT_A_VERB or words[0] in _NOT_A_VERB - DETERMINERS - SUBJECT_PRONOUNS or (
                match.start("x") < match.start("part") and not is_noun_phrase_start(thing)) \
                or {"is", "are", "was", "were", "be", "been"} & set(words):
            return None  # "request timed out", "out of memory", "chats is switched off"
        if match.start("x") < match.start("part"):  # "tone the saturation down": read as
            return self._read(f"{verb} {part} {thing}", verbless=False, wish=False)  # "tone down …"
        subjects = self.phrases(thing)
        if verb in _VAGUE_PARTICLE_VERBS:
            return self._ask_change(subjects[0], "change") if subjects[0].kind == "thing" else \
                Reading("", question=ASK_WHAT, subject=subjects[0], ask="change")

        def build(subject: Phrase) -> str:
            if subject.from_pronoun or subject.text in SINGULAR_PRONOUNS | PLURAL_PRONOUNS:
                return f"{verb} {subject.text} {part}"
            return f"{verb} {part} {subject.text}"

        return self._edits(subjects, build, verb=verb)

    #: The patterns in the order they are tried, each with its handler and whether it reads only
    #: a piece that stands on its own (the verbless ones); compiled once, shared by every reader.
    PATTERNS: ClassVar[list[tuple[re.Pattern[str], Callable[[ClauseReader, re.Match[str]],
                                                            Reading | None], bool]]] = [
        (re.compile(pattern), handler, verbless) for pattern, handler, verbless in [
            (r"^(?:turn|switch) (?:on|off) (?P<x>.+)$", _as_is, False),
            (r"^(?P<y>(?:a|an|some) .+?) instead of (?P<x>(?:the|my|this|that|his|her|its|"
             r"their|our) .+)$", _instead, False),
            (r"^(?P<rest>.+?) instead of (?:the |a |an |my )?[\w'-]+(?: [\w'-]+)?$",
             lambda self, m: self._read(m["rest"], verbless=False, wish=False), False),
            (r"^(?P<verb>change|turn|switch|recolor|make) (?P<x>.+?) from (?:[\w'-]+ ){1,3}?"
             r"(?:to|into) (?P<y>.+)$", _from_to, False),
            (r"^(?:(?:i )?want to |let me |can i |could i |i'?d like to )?see (?P<x>.+?) "
             r"(?P<prep>as|in) (?P<y>.+)$", _see_as, False),
            (r"^fill (?P<x>.+?) (?:up )?with (?P<y>.+)$", _fill, False),
            (_WISH.pattern, _wish, False),
            (r"^(?:set (?P<x>.+?) on fire|set fire to (?P<x2>.+))$", _on_fire, False),
            (r"^(?:move|shift|relocate|drag|slide|push|rotate|flip|mirror|crop|resize|rescale|"
             r"scale|zoom|upscale|straighten|tilt|reposition)\b.*$", _unsupported, False),
            (r"^(?:i|we) (?:don'?t|do not) (?:want|need) (?:to see )?(?P<x>.+?)(?: (?:there|"
             r"here|anymore|any more|at all))?$", _remove, False),
            (r"^(?P<x>.+?) (?:shouldn'?t|should not|must not|mustn'?t|doesn'?t need to|don'?t "
             r"need to|can'?t) be (?:there|here|visible|in it|in the (?:picture|photo|image))$",
             _remove, False),
            (r"^(?:i|we) (?:don'?t|do not) like (?P<x>.+)$", _dislike, False),
            (r"^(?:i|we)(?:'d| would| d)? (?:want|like|need|wish|prefer|love|expect) "
             r"(?P<x>.+?) to (?:be|look|become|appear|seem|turn|get)(?: like| into)? "
             r"(?P<y>.+)$", _should, False),
            (r"^(?:(?:i|we)(?:'d| would)? (?:want|like|need|wish|prefer|expect) )?(?P<x>.+?) "
             r"(?:to|should|could|can|must|needs to|need to|has to|have to) (?:change|be "
             r"changed|be altered|be modified|be different|be something else)$",
             _unnamed_change, False),
            (r"^(?:can|could|may|should|shall) (?P<x>.+?) (?:change|be changed|be altered|be "
             r"modified|be different|be something else)$", _unnamed_change, False),
            (r"^(?P<x>.+?) (?:needs?|could use|wants?|deserves?) (?:changing|a change|some change|"
             r"altering|redoing|a rethink|to be different)$", _unnamed_change, False),
            (r"^(?:try|go for|go with|opt for|use|pick|choose|let'?s have|let'?s try|have|"
             r"i'?d prefer|i prefer|i want|i'?d like|give it|give me) (?:a |an |some )?"
             r"(?:different|other|another|new) (?P<x>.+)$", _unnamed_change, False),
            (r"^(?:make|have|get) (?P<x>.+?) to (?:be|look|become|appear|seem)(?: like| into)? "
             r"(?P<y>.+)$", _should, False),
            (r"^(?:turn|switch) (?P<x>.+?) (?:on|off)$", _as_is, False),
            (r"^(?:take|cut|edit|paint|rub|wipe|get|clean|cross|crop|photoshop|scrub) "
             r"(?P<x>.+?) (?:out|off|away)(?: (?:of|from|off of|off))?(?: (?P<loc>.+))?$",
             _remove, False),
            (rf"^(?:{_REMOVE_VERBS}) (?P<x>.+?)(?: (?:from|off|out of|off of) (?P<loc>.+))?$",
             _remove, False),
            (rf"^(?P<verb>{_REPLACE_VERBS}) (?P<x>.+?) (?P<prep>with|for|by|into|to|and) "
             rf"(?P<y>.+)$", _replace, False),
            (rf"^(?:{_REPLACE_VERBS})(?: out)? (?P<x>.+)$", _replace_what, False),
            (rf"^(?P<verb>{_INTO_VERBS}) (?P<x>.+?)(?<!next)(?<!close)(?<!up) (?:into|to)"
             rf"(?: be| become| look like| a different)? (?P<y>.+)$", _into, False),
            (r"^(?P<verb>" + "|".join(sorted(_ADJUSTMENTS, key=len, reverse=True))
             + r")(?: up| down| out)?(?: (?P<x>.+?))?(?: up| down| out)?(?: " + _DEGREE + ")?$",
             _adjust, False),
            (rf"^(?P<dir>increase|boost|raise|up|turn up|crank up|pump up|add more|more|"
             rf"decrease|reduce|lower|turn down|tone down|less|lessen|cut|dial down|dial back|"
             rf"scale back|pull back|knock down|bring down|dial up|"
             rf"bump up|enhance) (?:the )?(?P<attr>{_LEVEL_ATTRIBUTES})(?: (?:of|on|in) "
             rf"(?P<x>.+))?$", _level, False),
            (r"^give (?P<rest>.+)$", _give, False),
            (r"^(?:make|have|let|get) (?P<x>.+?) (?P<verb>wear|hold|carry|wearing|"
             r"holding|have|has) (?P<y>.+)$", _wear, False),
            (r"^(?:dress) (?P<x>.+?) (?:in|as|up as|up in) (?P<y>.+)$", _dress, False),
            (r"^make sure (?P<x>.+?) (?:is|are|looks?) (?P<y>.+)$", _make_xy, False),
            (r"^(?:once|as soon as|after|when|now that) (?P<x>.+?) (?:is|are|looks?) (?P<y>.+)$",
             _make_xy, False),  # "once the sky is purple, add stars to it"
            (r"^(?:can|could|may) (?P<x>.+?) (?P<verb>have|wear|hold|carry) (?P<y>.+)$",
             _should_have, False),
            (rf"^(?P<verb>{_CHANGE_VERBS}) (?P<rest>.+)$", _change_verb, False),
            (rf"^(?P<verb>{_ADD_VERBS}) (?P<rest>.+)$", _add, False),
            (r"^(?P<x>.+?) (?:should|must|needs to|need to|has to|have to|could|would|"
             r"ought to|shall|will|can|is going to|are going to|gotta) (?:be|look|become|"
             r"appear|seem|turn|get|go)(?: like| into)? (?P<y>.+)$", _should, False),
            (r"^(?P<x>.+?) (?:should|must|needs to|need to|could|would) (?P<verb>have|wear|"
             r"hold|carry) (?P<y>.+)$", _should_have, False),
            (r"^(?:let|have|can|could|may) (?P<x>.+?) (?:be|look|become|appear|seem|turn)"
             r"(?: like| into)? (?P<y>.+)$", _should, False),
            (r"^(?:what would|how would) (?P<x>.+?) look(?: like)? (?P<y>.+)$",
             _should, False),
            (r"^let it (?P<y>.+)$", _let_it, False),
            (r"^(?:apply|use|add|put|throw on|slap on|give it) (?:a |an |the |some )?(?P<y>.+?)"
             r" (?:filter|effect|preset|overlay|look|style|treatment|tint)(?: (?:to|on) "
             r"(?P<x>.+))?$", _filter, False),
            (r"^(?:convert|turn|change|make|switch|transform|render|redo)(?: it| this| "
             r"everything| the whole thing)? (?:to|into|in) (?P<y>.+)$", _into_image,
             False),
            (r"^(?P<x>.+?) (?:is|are|looks?|seems?|appears?|feels?) (?:way |a bit |a little |"
             r"much |kind of |slightly |far )?too (?P<y>.+)$", _too, False),
            (r"^(?:(?:it|this|that)(?:'s| is) )?(?:way |a bit |a little |much |kind of |slightly"
             r" |far )?too (?P<y>.+)$", _too, False),
            (r"^(?=.* enough$)(?P<x>.+?) (?:is|are|looks?|seems?) not (?P<y>.+?) enough$",
             _enough, False),
            (r"^(?:(?:it|this|that)(?:'s| is) )?not (?P<y>.+?) enough$", _enough, False),
            (r"^(?P<verb>[a-z][a-z0-9]*(?:-?ify|-fy|-?ize|-ise)|pixell?ate|[a-z][\w-]*) "
             r"(?P<x>it|this|that|them|me|him|her|us|(?:the|my|our|this|his|her|their) .+?)"
             r"(?: up)?$", _style_verb, False),
            (r"^(?P<verb>[a-z][a-z0-9]*(?:-?ify|-fy|-?ize|-ise)|pixell?ate)(?P<x>)$", _style_verb,
             False),
            (r"^(?:there'?s|there is|there are|there was|there were|here'?s|here is|here are|"
             r"this is|this was|that'?s|that is|that was|these are|those are|meet|see|look at|"
             r"check out|notice|you see|you can see) (?P<x>.+)$", _introduce, False),
            (r"^(?:i|we|my \w+ and i|me and my \w+) (?:\w+ed|took|went|got|made|had|saw|was|"
             r"were|did|shot|found|bought|drew|met|ran|spent|came|left|built) ?(?P<rest>.*)$",
             _narrate, False),
            (r"^(?P<x>(?:the|my|our|his|her|its|their|this|that|these|those|your|he|she|they|"
             r"it)\b.*?) "
             r"(?:is|are|was|were|looks?|looked|seems?|seemed|"
             r"appears?|feels?|came out|turned out|got|has|have|had) (?P<y>.+)$", _describe,
             False),
            (r"^(?P<x>.+?) (?:should|must|needs to|need to|has to|have to) "
             r"(?P<verb>(?!(?:be|look|have|get|go|stay|remain)\b)[a-z]+)"
             r"(?: (?P<y>.+))?$", _should_verb, False),
            (r"^(?:only|just|as for|for|regarding|focus on|do|start with|begin with|end with|"
             r"finish with|then|next|now) (?P<x>.+?)(?: first| next| last| now| only| too)?$",
             _topic, False),
            (rf"^(?P<verb>{_VAGUE_VERBS})(?: (?P<x>.+?))?(?: up| a bit| a little)?$",
             _vague_verb, False),
            (rf"^(?P<verb>[a-z][\w-]*) {_PARTICLES} (?P<x>.+?)(?: {_DEGREE})?$", _phrasal, False),
            (rf"^(?P<verb>[a-z][\w-]*) (?P<x>.+?) {_PARTICLES}(?: {_DEGREE})?$", _phrasal, False),
            # verbless pieces: only where a piece stands on its own
            (r"^(?:in|with) (?:the|a|an) (?:style|manner|spirit|look|vein|fashion|aesthetic|vibe|"
             r"mood|tradition|tone) of (?P<y>.+)$", _style, True),
            (r"^(?:as if|as though)(?: it (?:was|were)| it'?s)? (?P<how>painted|drawn|made|shot|"
             r"filmed|directed|designed|rendered|illustrated|sketched|photographed|created|done) "
             r"(?P<prep>by) (?P<y>.+)$", _style, True),
            (r"^(?P<how>styled|done|drawn|painted|rendered|shot|filmed|illustrated|animated|"
             r"reimagined) (?P<prep>like|as|in|by) (?P<y>.+)$", _style, True),
            (r"^like (?:a |an |the )?(?:scene|shot|still|frame|panel|page) (?:from|out of|in|of) "
             r".+$", _style, True),
            (r"^(?:like|as if from|as in|from) (?:a |an |the )?(?:scene (?:from|in|of) (?:a |an |"
             r"the )?)?.+? (?:movie|film|cartoon|animation|anime|comic|show|series|video game|"
             r"game|painting|illustration|poster|photograph|photo|music video)$", _style, True),
            (r"^(?!(?:the|a|an|my|this|that|his|her|its|their|our|your) )(?!.* (?:in|on|of|"
             r"with|for|to|at|by) )(?:[\w']+[ -]){1,4}"
             r"(?:style|aesthetic|look|vibe|vibes|feel|esque|inspired)$", _style, True),
            (r"^(?:a |an |some )?(?:different|other|another) (?P<x>.+)$", _unnamed_change, True),
            (r"^(?P<x>.+?) into (?P<y>.+)$", _into, True),
            (r"^(?P<x>(?:the |my |his |her |its |their |our )?[a-z][\w']*(?: [\w']+){0,2}) "
             r"(?:to|as) (?P<y>.+)$", _item, True),
            (r"^(?P<x>(?:the |my |his |her |its |their |our )?[a-z][\w' ]*?) (?:on|off)$",
             _as_is, True),

            (r"^(?:no|without|no more) (?P<x>.+)$", _remove, True),
            (r"^(?:more|extra|additional) (?P<y>.+)$", _more, True),
            (r"^(?P<rest>.+)$", _verbless, True),
            (r"^(?P<x>(?:the|my|our|his|her|its|their|this|that|these|those) .+?)"
             r"(?: first| next| last| now| only| too)?$", _topic, True),
        ]]


#: First words that make no verb of a particle clause ("the sky up", "it up").
_NOT_A_VERB = DETERMINERS | SUBJECT_PRONOUNS | PREPOSITIONS | {"there", "here", "i", "we",
                                                                  "you", "and", "or", "not"}


_QUESTION_WORDS = {"what", "how", "why", "which", "who", "where", "when", "whose"}
_CHUNK_STOPS = PREPOSITIONS | {"and", "or", "but", "is", "are", "was", "were", "last",
                               "yesterday", "today", "ago", "here", "there", "now", "who",
                               "which", "where", "when", "because"}
_POSITIONS = {"left", "right", "middle", "center", "centre", "front", "back", "top", "bottom",
              "corner", "background", "foreground"}


def noun_chunk(text: str) -> str | None:
    """The noun phrase a text starts with: "a bike" of "a bike leaning on the fence", "the
    man on the right" (a position stays with its noun), None when it starts with none."""
    words = text.split()
    if not words or not is_noun_phrase_start(text) or words[0] in SUBJECT_PRONOUNS - {
            "her", "his", "its", "their"}:
        return None
    end = 1
    while end < len(words) and end < 8:
        word = words[end]
        positional = word in PREPOSITIONS and end + 2 < len(words) + 1 and any(
            w in _POSITIONS for w in words[end + 1: end + 3])
        if (word in _CHUNK_STOPS or is_participle(word)) and not positional:
            break
        if positional:
            end += 1 + next(i for i, w in enumerate(words[end + 1: end + 3], 1) if w in _POSITIONS)
            continue
        end += 1
    if end == 1 and words[0] in DETERMINERS:
        return None
    return " ".join(words[:end])


def name_of(subject: Phrase) -> str:
    """How a question names a subject: "the dog", "her dress", "the picture"."""
    if subject.kind == "image":
        return "the picture"
    if subject.text.split()[0] in DETERMINERS or subject.text.endswith("s'"):
        return subject.text
    return f"the {subject.text}"


_LOCATION = re.compile(r" (" + "|".join(re.escape(p) for p in _LOCATIONS) + r") ")
_FIRST_WORD = re.compile(r"\s*(\S*)")
_DEFINITE_STARTS = {"the", "his", "her", "its", "their", "my", "your", "this", "that", "every",
                    "each", "all", "both", "it", "him", "them"}
_BARE_PLACES = {"sky", "ground", "background", "foreground", "water", "distance"}


#: Relations that place a thing only after a participle: "steam rising from the cup", "ivy
#: growing up the wall", "water dripping off the leaves".
_PARTICIPLE_LOCATION = re.compile(r"(?:(?<=ing)|(?<=ed)) (out of|out from|off of|from|off|up|down|"
                                  r"through|out) ")
_IRREGULAR_PARTICIPLES = {"hung", "stuck", "spread", "lit", "laid", "sat", "stood", "held",
                          "wound", "caught", "built", "set"}


def is_participle(word: str) -> bool:
    """Whether a word reads as a participle that places a thing ("rising", "perched")."""
    return (len(word) > 4 and word.endswith(("ing", "ed")) and word not in {"thing", "something",
            "anything", "everything", "nothing", "ring", "king", "wing", "string", "ceiling",
            "building", "painting", "wedding", "bed", "shed", "sled", "red"}) \
        or word in _IRREGULAR_PARTICIPLES


def split_location(rest: str) -> tuple[str, str, str]:
    """("a red hat", "on", "the woman") from "a red hat on the woman"; the place is the
    first one that names something definite ("a man in a suit" has none). Each candidate
    place is judged by its first word, without copying the rest of the clause. After a
    participle, "from", "off", "up" … place too ("smoke coming out of the chimney")."""
    candidates = sorted([*_LOCATION.finditer(rest), *_PARTICIPLE_LOCATION.finditer(rest)],
                        key=lambda m: m.start())
    for match in candidates:
        word = _FIRST_WORD.match(rest, match.end())
        first = word[1]
        whole_place = word.start(1) == match.end() and word.end(1) == len(rest)
        if first in _DEFINITE_STARTS or first.endswith("'s") or (
                first in _BARE_PLACES and whole_place):
            return rest[: match.start()], match.group(1), rest[match.end():]
    return rest, "", ""


_LONGEST_ADDED_THING = max(len(thing.split()) for things in ADDED_THING_REGIONS.values()
                           for thing in things)


def _added_region(thing: str) -> str:
    """Where a thing added without a place goes: "a rainbow" → the sky, "rain" → the image.
    Runs of words from each start, longest first, up to the longest listed thing."""
    words = thing.split()
    for i in range(len(words)):
        for j in range(min(len(words), i + _LONGEST_ADDED_THING), i, -1):
            candidate = " ".join(words[i:j])
            for region, things in ADDED_THING_REGIONS.items():
                if candidate in things or singular(candidate) in things:
                    return region
    return WHOLE_IMAGE



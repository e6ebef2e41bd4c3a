"""The offline planner: a grammar of English edit requests. No model, no server, instant.

A message is read in four steps, each in its own module:

1. **History and chat** (here). "undo", "go back", "start over", "redo"… move in the version
   history, with a count ("undo twice"), to a version named by what it shows ("the one before
   the hat") or by number, or take back one instruction ("undo the sky but keep the wolf"; see
   `history_requests.py`); greetings, thanks and questions about the tool get a reply.
2. **Clauses** (`rules_clauses.py`). List items and lines are sentences ("1) … 2) …", bullets;
   `grammar.split_list`). Sentences split on `. ! ? ;`, then on commas and and/then/also/plus.
   A piece that starts no clause of its own is glued back ("black and white", "red, shiny and
   new", "add a hat and a scarf"); a piece that is a noun phrase plus a change repeats the verb
   before it ("turn the left car yellow and the right car green").
3. **Patterns** (`rules_reader.py`, on the noun phrases of `rules_targets.py`). Each clause is
   matched against a table of verb patterns (make X Y, turn X into Y, replace X with Y, add Y
   to X, remove X, give X Y, X should be Y, …) that yield a target phrase (the region to
   change; "image" for styles, seasons, time of day and weather) and an InstructPix2Pix-style
   instruction. A wish ("it would be nice if the car were red") is read as the edit it wishes
   for; an addition placed by a relation targets "<relation> <anchor>" ("next to the dog",
   `rules_reader.PLACEMENTS`); a particle stays with its verb ("tone down the red" targets the
   red).
4. **Vagueness** (`rules_reader.py`). A clause with no target ("change something") or no
   change ("change the dog", "make it nicer") becomes a specific question; `merge_answer`
   (here) folds the answer in.

Coordinated targets sharing one change ("turn the cat and the dog into tigers") become one
instruction per target, in one group, so each is grounded on its own and generated
consistently. Plural targets ("both cats", "every balloon", "the apples") stay one phrase
and get a group of their own. Pronouns ("it", "them", "her") refer to the previous clause's
target, else to the last target of the conversation, else "it" is the whole image.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from promptartisan.agent.planning import history_requests
from promptartisan.agent.planning.grammar import (
    is_change_phrase,
    is_global_phrase,
    normalize,
    with_article,
)
from promptartisan.agent.planning.plan import Instruction, Plan
from promptartisan.agent.planning.rules_clauses import (
    DROPPED,
    LEADING_FILLER,
    SEPARATOR,
    clean_clause,
    exceptions,
    protect,
    split_sentences,
    unprotect,
)
from promptartisan.agent.planning.rules_reader import (
    ASK_UNKNOWN,
    GLOBAL_ATTRIBUTES,
    ClauseReader,
    name_of,
    split_location,
)
from promptartisan.agent.planning.rules_targets import Phrase, Reading, is_noun_phrase_start

# --- replies --------------------------------------------------------------------------

HELP_REPLY = (
    "I edit photos from plain requests. Tell me what to change and how — for example "
    "\"make the sky a sunset\", \"turn the dog into a cheetah\", \"remove the person on the "
    "left\", \"add fireworks to the sky\", or a change to the whole picture such as \"make "
    "it winter\" or \"as a watercolor\". Several edits in one message are applied together "
    "in one pass. Say \"undo\", \"redo\" or \"start over\" to move between versions."
)
CHAT_REPLIES: list[tuple[re.Pattern[str], str]] = [(re.compile(p), reply) for p, reply in [
    (r"\b(?:undo|go back|revert|previous version|history|redo)\b",
     "Say \"undo\" to go back one version, \"redo\" to step forward again, and \"start over\" "
     "to return to the original. Nothing is ever deleted: every version is kept."),
    (r"\b(?:save|download|export|keep a copy)\b",
     "Every version is saved in your session as you go; download the image from the chat, "
     "or export the whole session with \"promptartisan sessions export ID\"."),
    (r"\b(?:crop|rotate|flip|mirror|resize|upscale|zoom|straighten)\b",
     "I change what is in the picture — objects, colors, styles, weather — but I don't crop, "
     "rotate, flip or resize it; an image viewer does that best."),
    (r"\b(?:video|gif|animat\w*)\b", "I edit still images only, one version at a time."),
    (r"\b(?:how does (?:it|this) work|what model|which model|how do you work)\b",
     "I split your request into separate instructions, find the region each one is about, "
     "and apply all of them in one diffusion pass with InstructPix2Pix, so the rest of the "
     "picture stays as it was."),
    (r"\b(?:select|mask|point|click|region|area)\b",
     "Name the region in words (\"the left car\", \"the sky\"), or draw a mask or click on "
     "it, and tell me what it should become."),
    (r"^(?:hi|hello|hey|hiya|howdy|yo|greetings|good (?:morning|afternoon|evening)|sup|"
     r"what'?s up)\b",
     "Hi! Send a photo and tell me what to change — for example \"make the sky a sunset and "
     "turn the dog into a cheetah\"."),
    (r"\b(?:thanks|thank you|cheers|appreciate it|great job|well done|love it|(?:looks|that'?s|"
     r"it'?s) (?:so |really |very )?(?:great|good|nice|amazing|perfect|awesome|beautiful|"
     r"better|cool))\b|^(?:perfect|awesome|amazing|nice|great|cool|wonderful|lovely|"
     r"excellent|beautiful|wow|brilliant|fantastic|sweet|neat)\b",
     "Glad you like it! Anything else to change? You can always say \"undo\" to step back."),
    (r"^(?:bye|goodbye|see you|see ya|that'?s all|i'?m done|done|that'?s it)\b",
     "Bye! Your versions stay in this session if you want to come back to them."),
    (r"^(?:ok|okay|k|sure|yes|yeah|yep|no|nope|alright|fine|got it|hmm+|um+|uh+|ha(?:ha)+|"
     r"lol|lmao|hehe|:\)|:d)$",
     "Okay! What would you like to change next?"),
]]
_QUESTION_START = re.compile(r"^(?:what|how|why|who|when|where|which|is|are|do|does|did|can|"
                             r"could|will|would|should|am|help)\b")

# --- history --------------------------------------------------------------------------

#: What may follow "undo" ("that", "the last two edits", "please"): short, and checked to be
#: short first, since its alternatives overlap and a long run of them would backtrack for ever.
_UNDO_OBJECT = (r"(?=.{0,80}$)"
                r"(?:\s+(?:that|it|this|please|the last (?:one|edit|change|step|thing|\w+ "
                r"(?:edits|changes|steps))|the (?:previous|last) (?:edit|change|step|version)|"
                r"(?:one|a) step|the (?:latest|most recent|recent|bad|wrong|last|previous)"
                r"(?: [\w']+)? (?:one|edit|change)|that (?:last )?(?:one|edit|"
                r"change)|last (?:edit|change|step)|again|now|the change|my last (?:edit|"
                r"request|change)))*")
HISTORY_PATTERNS: list[tuple[str, re.Pattern[str]]] = [(action, re.compile(p)) for action, p in [
    ("reset", r"(?:let'?s |please )?(?:start(?:ing)? (?:over|again|fresh|afresh|from scratch)"
              r"|reset|from scratch|clear (?:all|everything)|undo (?:all|everything|"
              r"every(?:thing)? ?(?:edit|change)s?)|(?:remove|discard|drop|scrap|throw away) "
              r"(?:all|every) (?:the |my )?(?:edits|changes))(?:\s+\S+)*"),
    ("reset", r"(?:(?:go|get|take me|revert|switch|change it|return|bring it|put it|set it|"
              r"restore)(?: it| everything| this)? )?(?:back )?(?:to |the )*original"
              r"(?: (?:image|photo|picture|version|one))?(?: please| again)?"),
    ("reset", r"(?:restore|show|give me|use)(?: me)? the original(?: (?:image|photo|picture|"
              r"version|one))?"),
    ("redo", r"(?:redo|re-do|re do|go forward|step forward|fast[- ]?forward|"
             r"undo (?:the|that|my) undo|reapply|re-apply|ctrl[- ]?y|do (?:it|that) again)"
             + _UNDO_OBJECT),
    ("redo", r"(?:actually,? )?(?:keep (?:it|that)|bring (?:it|that) back|i changed my mind)"),
    ("undo", r"(?:undo|revert|go back|step back|roll ?back|back ?track|take (?:that|it) back|"
             r"(?:roll|step|wind|set) (?:it|that|this|things|everything) back|"
             r"cancel|forget|scratch|never ?mind|nvm|ctrl[- ]?z|back|rewind)" + _UNDO_OBJECT),
    ("undo", r"(?:i (?:don'?t|do not) like (?:it|that|this)(?: one)?|that'?s (?:wrong|bad|"
             r"worse|not (?:right|it|what i wanted|good))|not (?:like that|what i wanted)|"
             r"(?:put|change|make|set) it (?:back )?(?:the way|how|like) it was(?: before)?|"
             r"(?:go|take it) back to (?:how|the way|what) it was(?: before)?|"
             r"(?:go back to )?(?:the )?previous (?:version|one|image|edit)|oops|whoops)"),
]]
_ANIMATION = re.compile(
    r"\b(?:videos?(?! game)|gifs?)\b|^(?:please )?animate\b|\banimate (?:it|this|them|the)"
    r"\b|\b(?:make|create|generate|render|produce|turn|convert)(?: it| this| them)?(?: into)? "
    r"(?:a |an )(?:short |little )?(?:movie|film|animation)s?$")
_TOOL_QUESTION = re.compile(r"^(?:how|what|why|when|where|which|who|is there|are there|does)\b")
_BACK_AGAIN = re.compile(r"(?:put|bring) (?:it|that|them) back")

# --- the planner ----------------------------------------------------------------------


def history_action(message: str, context: list[str]) -> str | None:
    """The action of `history_plan`, or None."""
    plan = history_plan(message, context)
    return plan.action if plan is not None else None


def history_plan(message: str, context: list[str]) -> Plan | None:
    """A plan that moves in the history when the whole message asks to: undo / redo (with a
    count), reset, goto a described version, forget one earlier instruction."""
    if _TOOL_QUESTION.match(message):
        return None
    if re.fullmatch(r"(?:oops|whoops|oh no|uh oh)", message.strip(" .!?")):
        return Plan(action="undo")
    light = LEADING_FILLER.sub("", message.strip(" .!?")).strip(" ,.!?")
    for text in dict.fromkeys([clean_clause(message), light]):
        text = re.sub(r"^(?:no|nope|oops|ugh|hmm|wait|actually|nah|ok|okay)[,\s]+", "", text)
        if _BACK_AGAIN.fullmatch(text):
            previous = history_action(context[-1], context[:-1]) if context else None
            return Plan(action="redo" if previous == "undo" else "undo")
        plan = history_requests.counted(text, _history_move)
        if plan is not None:
            return plan
        action = _history_move(text)
        if action is not None:
            return Plan(action=action)
        plan = history_requests.described_version(text) or history_requests.forget(text)
        if plan is not None:
            return plan
    return None


def _history_move(text: str) -> str | None:
    """undo / redo / reset when `text` (cleaned) is one of the history patterns."""
    for action, pattern in HISTORY_PATTERNS:
        if pattern.fullmatch(text):
            return action
    return None


def chat_reply(message: str) -> str | None:
    """A reply to a message that is talk, not an edit: greetings, thanks, questions."""
    text = message.strip(" .!?")
    for pattern, reply in CHAT_REPLIES:
        if pattern.search(text):
            return reply
    if message.rstrip().endswith("?") or _QUESTION_START.match(text):
        return HELP_REPLY
    return None


@dataclass(frozen=True)
class Memory:
    """What earlier messages leave behind: pronoun antecedents and the latest edits."""

    refs: list[Phrase]
    edits: list[tuple[Phrase, str]]


_FOLLOW_UPS = [re.compile(p) for p in (
    r"(?:do |apply )?(?:the )?same(?: thing)?(?: change| edit)?(?: to| for| with| on) (?P<x>.+)",
    r"(?P<x>.+?),? (?:too|as well|also)",
    r"(?:and|also|plus|and also) (?P<x>.+)",
)]
_MORE = re.compile(r"(?:(?:a bit|a little|even|much|way|some) )?(?:more|stronger|further)(?: "
                   r"please)?|(?:do it |again,? )?(?:but )?(?:even )?stronger|keep going|"
                   r"more of (?:that|it)|intensify it")
_LESS = re.compile(r"(?:(?:a bit|a little|much|way) )?(?:less|weaker|too much|not so much|"
                   r"tone it down|that'?s too much|overdone|too strong)(?: please)?")
ASK_LESS = ("Should I undo the last edit, or redo it more gently? Say \"undo\", then ask again "
            "with \"slightly\" (for example \"make the sky slightly pinker\").")


def follow_up(message: str, memory: Memory) -> list[Reading]:
    """The last edits again: "more" repeats them, "the truck too" / "same for the truck"
    applies them to a new target. Empty when the message is no such follow-up."""
    text = message.strip(" .!?")
    if not memory.edits:
        return []
    if _MORE.fullmatch(text):
        return [Reading(text, edits=list(memory.edits), verb="make")]
    reader = ClauseReader(memory.refs)
    for pattern in _FOLLOW_UPS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        own = reader.read(clean_clause(match["x"]), verbless=True)
        if own is not None and not own.referents:  # a thing named alone is no reading of its own
            continue
        subjects = reader.phrases(match["x"])
        if any(s.kind != "thing" or s.from_pronoun for s in subjects):
            continue
        edits = [(new, text.replace(old.text, new.text, 1)) for old, text in memory.edits
                 if old.text in text for new in subjects]
        if edits:
            return [Reading(text, edits=edits, verb="make", shared=len(subjects) > 1)]
    return []


#: A sentence that is only a verb, before a list: "Remove: the cones, the trash can"; the
#: vague ones ("change the following:") announce the list and are dropped.
_HEADING_VERB = re.compile(r"(?P<verb>remove|add|delete|erase|get rid of|put in|insert|change|"
                           r"edit|fix|do|make)(?: (?:the following|these|this|these things|"
                           r"the following (?:things|changes|edits)))?")
_VAGUE_HEADINGS = {"change", "edit", "fix", "do", "make"}
#: A kept part with its exception: "leave everything as is except the bench".
_KEPT_BUT = re.compile(r"(?:leave|keep|don'?t (?:change|touch)|change|touch|edit|alter) "
                       r"(?:everything|nothing|all)(?: else)?(?: (?:as is|as it is|alone|the same|"
                       r"untouched))? (?:except(?: for)?|but|apart from|other than|besides|save) "
                       r"(?P<x>.+)")

MAX_CLAUSE_CHARS = 400
"""The longest clause that pieces are glued into (see `RulesPlanner._read_sentence`): several
times the longest request a person writes as one clause."""


class RulesPlanner:
    """The offline planner: a grammar of English edit requests (see the module's docstring)."""

    #: How many earlier messages are searched for what a pronoun means.
    LOOKBACK = 8

    def plan(self, text: str, context: list[str]) -> Plan:
        return self.understand(text, context)[0]

    def understand(self, text: str, context: list[str]) -> tuple[Plan, list[Reading]]:
        """The plan of a message and the clause readings it was made from."""
        return self._understand(text, context, self.recall(context))

    def _understand(self, text: str, context: list[str],
                    memory: Memory) -> tuple[Plan, list[Reading]]:
        message = normalize(text)
        moved = history_plan(message, context)
        if moved is not None:
            return moved, []
        if _ANIMATION.search(message):
            return Plan(action="chat", reply=chat_reply("video")), []
        if _LESS.fullmatch(message.strip(" .!?")) and memory.edits:
            return Plan(action="clarify", question=ASK_LESS), []
        readings = follow_up(message, memory) or self.read_message(message, memory.refs)
        edits = [r for r in readings if r.complete]
        questions = [r for r in readings if r.question] + _left_over(readings)
        if questions:
            return Plan(action="clarify", question=_partial_question(edits, questions[0])), \
                readings
        unsupported = " ".join(dict.fromkeys(r.unsupported for r in readings if r.unsupported))
        if edits:
            excepted = exceptions(message)
            kept = ("Not left out: " + ", ".join(excepted) + " (one region can't leave part of "
                    "itself out; select it and undo, or draw a mask).") if excepted else None
            note = " ".join(n for n in (unsupported, _pronoun_note(edits), kept) if n) or None
            return Plan(action="edit", instructions=_instructions(edits), note=note), readings
        if unsupported:
            return Plan(action="chat", reply=unsupported), readings
        reply = chat_reply(message)
        if reply:
            return Plan(action="chat", reply=reply), readings
        described = next((r.subject for r in readings if r.subject is not None), None)
        if described is not None:
            return Plan(action="clarify", question=ask_about(described)), readings
        return Plan(action="clarify", question=ASK_UNKNOWN), readings

    def recall(self, context: list[str]) -> Memory:
        """What "it" and "them" may mean: the targets of the latest earlier message that
        edited something or was asked about (history moves, chat and requests that named
        nothing are skipped), and the latest edits, for "the truck too" and "more". One pass,
        oldest first, so each message is read with its own past."""
        memory = Memory([], [])
        for index in range(max(0, len(context) - self.LOOKBACK), len(context)):
            plan, readings = self._understand(context[index], context[:index], memory)
            edits = [(subject, text) for r in readings for subject, text in r.edits]
            targets = [subject for subject, _ in edits]
            targets += [r.subject for r in readings if r.subject is not None]
            if plan.action in {"edit", "clarify"} and targets:
                refs = [replace(t, from_pronoun=False) for t in targets if t.kind == "thing"] or (
                    [t for t in targets if t.kind == "image"][-1:])
                memory = Memory(refs, edits if plan.action == "edit" else [])
        return memory

    def read_message(self, message: str, refs: list[Phrase]) -> list[Reading]:
        readings: list[Reading] = []
        latest: Reading | None = None  # the latest reading with edits: what "it" means next
        sentences = split_sentences(message)
        for index, sentence in enumerate(sentences):
            heading = _HEADING_VERB.fullmatch(clean_clause(sentence))
            if heading and index + 1 < len(sentences):  # "Remove: the cones, the trash can"
                verb = heading["verb"]
                if verb not in _VAGUE_HEADINGS:
                    items = re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+", sentences[index + 1])
                    sentences[index + 1] = "; ".join(f"{verb} {item}" for item in items)
                continue
            read = self._read_sentence(sentence, refs, latest)
            readings += read
            latest = next((r for r in reversed(read) if r.mentions), latest)
        return readings

    def _read_sentence(self, sentence: str, refs: list[Phrase],
                       before: Reading | None) -> list[Reading]:
        """Clauses of one sentence: split on commas and conjunctions, glue back pieces that
        start no clause, repeat the verb for elliptic ones. `before`: the latest reading with
        edits of the sentences before. A clause is read again whole each time a piece is glued
        to it, so it grows to `MAX_CLAUSE_CHARS` at most: past that, a piece starts a clause of
        its own, as at the start of a sentence, and a long message is read in linear time."""
        parts = SEPARATOR.split(protect(sentence))
        clauses: list[str] = []  # raw text of each clause, separators kept
        readings: list[Reading | None] = []
        settled = before  # the latest reading with edits before the last clause

        def reader() -> ClauseReader:
            last = readings[-1] if readings else None
            done = last if last is not None and last.mentions else settled
            local = done.mentions if done is not None else []
            last_head = next((s.head for s in reversed(local) if s.head), None)
            return ClauseReader(local or refs, last_head)

        def start(clause: str, reading: Reading | None) -> None:
            nonlocal settled
            if readings and readings[-1] is not None and readings[-1].mentions:
                settled = readings[-1]
            clauses.append(clause)
            readings.append(reading)

        items = self._items(parts, reader())
        if items:
            return items
        for index in range(0, len(parts), 2):
            piece = clean_clause(unprotect(parts[index]))
            kept = _KEPT_BUT.fullmatch(piece)
            if kept:  # "leave everything as is except the bench": the bench is the topic
                piece = f"only {kept['x']}"
            elif not piece or DROPPED.match(piece):
                continue
            first = not clauses
            reading = reader().read(piece, verbless=first)
            if reading is None and not first and index + 2 < len(parts):
                topic = self._topic(piece, clean_clause(unprotect(parts[index + 2])), reader())
                if topic is not None:  # "…, and then the dog, make it a wolf"
                    start(parts[index], topic)
                    continue
            if reading is not None or first:
                start(parts[index], reading)
                continue
            previous = readings[-1]
            if previous is not None and previous.complete:
                again = follow_up(unprotect(parts[index]), Memory([], previous.edits))
                if again:  # "make the sky pink, the sea too"
                    start(parts[index], again[0])
                    continue
            elliptic = self._elliptic(previous, piece, reader())
            if elliptic is not None:
                shared, new = elliptic
                if shared is not None:
                    readings[-1] = shared
                start(parts[index], new)
                continue
            glued = clauses[-1] + parts[index - 1] + parts[index]
            if len(glued) > MAX_CLAUSE_CHARS:
                start(parts[index], reader().read(piece, verbless=True))
                continue
            clauses[-1] = glued
            whole = clean_clause(unprotect(glued))
            readings[-1] = reader().read(whole, verbless=len(clauses) == 1)
        return [r for r in readings if r is not None]

    @staticmethod
    def _items(parts: list[str], reader: ClauseReader) -> list[Reading]:
        """A sentence that is a list of items, each a thing and its change ("hat -> yellow,
        scarf -> blue", "jacket leather, boots black"), maybe after a heading ("colors, …"):
        one reading per item. Empty when any item is not one."""
        pieces = [clean_clause(unprotect(parts[i])) for i in range(0, len(parts), 2)]
        if len(pieces) < 2 or any(parts[i].strip() not in {",", ";"}
                                  for i in range(1, len(parts), 2)):
            return []
        read = [reader.read(piece, verbless=True) for piece in pieces]
        if read[0] is None or not read[0].complete:
            read, pieces = read[1:], pieces[1:]  # a heading
        own = [r for r in read if r is not None and r.complete and r.verbless
               and all(s.kind == "thing" and not s.from_pronoun for s, _ in r.edits)]
        return own if len(own) == len(read) >= 2 else []

    @staticmethod
    def _topic(piece: str, following: str, reader: ClauseReader) -> Reading | None:
        """A thing named on its own ("the dog") when the next clause says what to do to it
        with a pronoun ("make it a wolf")."""
        named = reader.read(f"only {piece}", verbless=False)
        if named is None or not named.referents:
            return None
        after = ClauseReader(named.referents).read(following, verbless=False)
        if after is None or not after.complete or not all(
                s.from_pronoun for s, _ in after.edits):
            return None
        return named

    @staticmethod
    def _elliptic(previous: Reading | None, piece: str,
                  reader: ClauseReader) -> tuple[Reading | None, Reading] | None:
        """A piece that repeats the previous verb: "… and the right car green" (a clause of its
        own), or "turn the cat and the dog into tigers" (the change shared by both)."""
        piece = piece.removeprefix("with ") if piece.startswith(("with a ", "with an ",
                                                                 "with some ")) else piece
        glued = previous is not None and previous.verb == "add" and not split_location(
            previous.source)[2]  # "add a hat and a scarf to the snowman": one addition
        if piece.split()[0] in {"a", "an", "some"} and split_location(piece)[2] and not glued:
            added = reader.read(f"add {piece}", verbless=False)
            return (None, added) if added is not None and added.complete else None
        if previous is None or previous.verb not in {"make", "turn", "paint", "color", "dye",
                                                     "replace", "remove", "change", "tint"}:
            return None
        verb = "turn" if previous.verb == "change" else previous.verb
        new = reader.read(f"{verb} {piece}", verbless=False)
        if new is not None and new.question and previous.complete and new.subject is not None \
                and new.subject.kind == "thing" and is_noun_phrase_start(piece) \
                and not piece.split()[0].isdigit():
            return None, new  # "make the shoes red and the socks": ask about the socks alone
        if new is None or not new.complete:
            return None
        if previous.question and previous.subject is not None and previous.ask == "change" \
                and new.change and not previous.edits:
            subject = previous.subject_text or previous.subject.text
            shared = reader.read(f"{verb} {subject} {new.change}", verbless=False)
            if shared is not None and shared.complete:
                shared.shared = new.shared = True
                return shared, new
            return None
        if previous.complete and is_noun_phrase_start(piece) and verb != "replace" or (
                previous.complete and verb == "replace" and " with " in piece):
            return None, new
        return None


def _instructions(readings: list[Reading]) -> list[Instruction]:
    """Instructions in order, without repeats; plural targets get a group each, coordinated
    targets sharing one change get one group together."""
    instructions: list[Instruction] = []
    seen: set[tuple[str, str]] = set()
    next_group = 1
    shared_group: int | None = None
    for reading in readings:
        if not reading.shared:
            shared_group = None
        for subject, text in reading.edits:
            key = (subject.target, text)
            if key in seen:
                continue
            seen.add(key)
            group = None
            if reading.shared:
                if shared_group is None:
                    shared_group, next_group = next_group, next_group + 1
                group = shared_group
            elif subject.plural:
                group, next_group = next_group, next_group + 1
            instructions.append(Instruction(target=subject.target, instruction=text,
                                            group=group))
    return instructions


def explain(text: str, context: list[str]) -> list[str]:
    """How the rules read a message, a line per clause: its words, then the targets and
    instructions it gave, the referents it named for later pronouns, or its question."""
    plan, readings = RulesPlanner().understand(text, context)
    lines = [f"message, as read: {normalize(text)!r}"]
    for number, reading in enumerate(readings, start=1):
        lines.append(f"clause {number}: {reading.source!r}")
        lines += [f"  target {subject.target!r}: {instruction}"
                  for subject, instruction in reading.edits]
        if reading.referents:
            lines.append("  names, for it/him/them later: "
                         + ", ".join(repr(r.target) for r in reading.referents))
        if reading.question:
            lines.append(f"  asks: {reading.question}")
    if not readings:
        lines.append(f"no clause read: {plan.action}")
    return lines


def _left_over(readings: list[Reading]) -> list[Reading]:
    """Things named after the last edit that nothing edits ("make the shoes red, the socks
    are weird"): read in part, so asked about rather than dropped."""
    last = max((i for i, r in enumerate(readings) if r.complete), default=None)
    if last is None:
        return []
    used = {s.target for r in readings for s, _ in r.edits}
    return [replace(r, question=f"Did you also want something done to {name_of(r.subject)}?")
            for r in readings[last + 1:] if r.subject is not None and r.referents
            and len(name_of(r.subject).split()) > 1 and r.subject.target not in used]


def ask_about(subject: Phrase) -> str:
    """The question for a thing described or named with no change asked of it."""
    return f"What should {name_of(subject)} look like instead, or what should I do to it?"


def _partial_question(edits: list[Reading], vague: Reading) -> str:
    """The question of a message read in part: what was understood, quoted, then what is
    missing ("I'll make the shoes red. What should the socks become …?")."""
    question = vague.question or ASK_UNKNOWN
    if not edits:
        return question
    done = "; ".join(text for reading in edits for _, text in reading.edits)
    return f"I'll {done}. {question}"


def _pronoun_note(readings: list[Reading]) -> str | None:
    resolved = {s.target for r in readings for s, _ in r.edits if s.from_pronoun
                and s.kind == "thing"}
    if not resolved:
        return None
    return "Read the pronoun as: " + ", ".join(sorted(resolved)) + "."


# --- clarification answers ------------------------------------------------------------

def _complete_change(subject: str, answer: str) -> str:
    """ "change the dog" + "a wolf" → "turn the dog into a wolf"; + "red" → "make the dog red"."""
    if is_change_phrase(answer.split()) or answer.startswith(("look", "more", "less")):
        return f"make {subject} {answer}"
    return f"turn {subject} into {with_article(re.sub(r'^(?:into|to) ', '', answer))}"


_COMPLETIONS: dict[str, Callable[[str, str], str]] = {
    "change": _complete_change,
    "replace": lambda x, a: f"replace {x} with {with_article(re.sub(r'^with ', '', a))}",
    "add": lambda x, a: f"add {a}" + (f" to {x}" if x else ""),
    "remove": lambda x, a: f"remove {a}",
    "what": lambda x, a: f"change {a}",
    "pronoun": lambda x, a: x,  # handled in merge_answer: the pronoun is replaced
    **{attr: (lambda x, a: f"make {x} {a}") for attr in
       ("color", "texture", "material", "pattern", "size", "expression")},
    **{attr: (lambda x, a: f"make it {a}") for attr in GLOBAL_ATTRIBUTES},
}


def merge_answer(pending_text: str, question: str | None, answer: str) -> str:
    """The request a clarification answer completes.

    `pending_text` is the message that got the question (`question`, kept for the record and
    for planners that need it; the rules re-read the pending message instead), `answer` the
    reply. A full edit in the answer replaces the vague part ("make it look nicer" + "make the
    sky bluer" → "make the sky bluer"; "change the car" + "make it red" → "make the car red");
    a fragment completes it ("change the dog" + "a wolf" → "turn the dog into a wolf",
    "change the car" + "red" → "make the car red"). Clear parts of the pending message are
    kept. History moves and chat ("never mind", "thanks") come back unchanged.
    """
    del question  # the pending message says everything the question did
    planner = RulesPlanner()
    plan, pending = planner.understand(pending_text, [])
    answer_text = normalize(answer).strip(" .!?")
    if plan.action != "clarify" or history_action(answer_text, [pending_text]):
        return answer
    vague = next((r for r in pending if r.question), None)
    if vague is None:
        return answer
    refs = [vague.subject] if vague.subject is not None and vague.subject.kind == "thing" else []
    own = planner.read_message(answer_text, refs)
    if own and all(r.complete for r in own) and (
            not own[0].verbless or is_global_phrase(answer_text)):
        fix = " and ".join(text for r in own for _, text in r.edits)
    elif not own and chat_reply(answer_text) and not is_change_phrase(answer_text.split()):
        return answer
    else:
        fragment = clean_clause(answer_text)
        subject = vague.subject
        if vague.ask == "pronoun" and subject is not None:
            fix = re.sub(rf"\b{re.escape(subject.text)}\b", fragment, vague.source, count=1)
        else:
            name = "it" if subject is None or subject.kind == "image" else subject.text
            if vague.ask == "add":
                name = subject.text if subject is not None else ""
            fix = _COMPLETIONS[vague.ask](name, fragment)
    parts = [fix if r is vague else r.source for r in pending if r.complete or r is vague]
    return " and ".join(parts)

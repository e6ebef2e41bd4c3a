"""The lexicon of English edit requests: word classes, whole-image vocabularies, inflection.

Data first: the rules planner (`rules_planner.py`) reads these tables to split a request
into clauses, find each clause's target and change, and tell whole-image edits (styles,
seasons, time of day, weather) from edits of one region. Adding a word here teaches the
planner that word everywhere it is used.
"""

from __future__ import annotations

import re

# --- normalising ------------------------------------------------------------------------

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                         "\u2014": ", ", "\u2013": ", ", "\u2192": " -> "})

#: Chat shorthand and spellings that the patterns don't need to know about.
SHORTHAND = {
    "pls": "please", "plz": "please", "u": "you", "ur": "your", "thx": "thanks", "ty": "thanks",
    "w/": "with", "w/o": "without", "bg": "background", "b&w": "black and white",
    "b/w": "black and white", "pic": "picture", "pics": "pictures", "img": "image",
    "grey": "gray", "wanna": "want to", "gonna": "going to", "lemme": "let me",
    "colour": "color", "colours": "colors", "coloured": "colored", "recolour": "recolor",
    "watercolour": "watercolor", "moustache": "mustache", "greyscale": "grayscale",
    "im": "i'm", "dont": "don't", "cant": "can't", "id": "i'd", "thats": "that's",
    "whats": "what's", "wouldnt": "wouldn't", "couldnt": "couldn't", "shouldnt": "shouldn't",
    "isnt": "isn't", "wasnt": "wasn't", "werent": "weren't", "itd": "it'd",
    "gimme": "i want", "gotta": "have to", "hafta": "have to",
    "cud": "could", "cld": "could", "wd": "would", "shd": "should", "ya": "you", "yah": "yeah",
    "n": "and", "b4": "before", "abt": "about", "bc": "because", "cuz": "because",
    "coz": "because", "cos": "because", "smth": "something", "sth": "something",
    "rly": "really", "sry": "sorry", "srsly": "seriously", "prolly": "probably",
    "kinda": "kind of", "sorta": "sort of", "outta": "out of", "w": "with",
}
#: Chat words that carry no request (hedges, intensifiers, "right now"): dropped wherever they
#: stand, as whole words.
DISCOURSE = {"rn", "tho", "ngl", "tbh", "imo", "imho", "idk", "lowkey", "highkey",
             "fr", "af", "lol", "lmao", "omg", "literally", "basically", "y'know"}
#: "the car's kinda dull": "'s" before a degree word is "is", not a possessive.
_IS_CONTRACTED = re.compile(r"(?<=\w)'s (?=(?:kind of|sort of|so|really|too|very|a bit|"
                            r"a little|pretty|quite|way|not|super|all|looking|getting)\b)")
#: A label and its value inside a line, "hat: yellow" or "sky - dusk", between separators:
#: read as "hat -> yellow" (a list item of its own).
_LABEL_PAIRS = {mark: re.compile(
    r"(?:(?<=^)|(?<=[,;:.\n])|(?<=[,;:.]\s))\s*(?P<x>[a-z][\w']*(?: [\w']+){0,2})"
    rf"\s*{mark}\s+(?P<y>[\w'-]+(?: [\w'-]+){{0,3}})\s*(?=[,;.\n]|$)") for mark in (":", r"\s-")}
_NO_LABEL = {"i", "we", "you", "it", "make", "turn", "add", "remove", "please", "and", "undo",
             "redo", "go", "step", "note", "ps"}


#: How items of a list are marked: "1)", "(2)", "3.", "4 -", "a)", "ii)", "step 5:", bullets.
_LIST_MARKERS = {
    "number": r"\(?\d{1,2}\)", "dotted": r"\d{1,2}\.(?!\d)", "letter": r"\(?[a-h]\)",
    "roman": r"\(?(?:i{1,3}|iv|vi{0,3}|ix|x)\)", "dashed": r"\d{1,2} ?[-:](?![->])",
    "step": r"step ?\d{1,2} ?[:.)-]?", "bullet": r"[-*\u2022\u25e6\u25aa\u2023\u25cf\u25ba\u25b8]",
}
_MARKER_AT_START = {kind: re.compile(rf"\s*{marker}(?=\s|[a-z])")
                    for kind, marker in _LIST_MARKERS.items()}
_MARKER_INSIDE = {kind: re.compile(rf"(?:(?<=\s)|(?<=[.;,]))\s*{marker}(?=\s|[a-z])")
                  for kind, marker in _LIST_MARKERS.items()}
_ITEM_BREAK = " ; "
_BARE_NUMBER = re.compile(r"\s*\d{1,2}\s+(?=[a-z])")
#: A list item written "label: change" ("sky: darker", "dog: a cat"), read as "sky -> darker".
_LABELLED = re.compile(r"^\s*(?P<x>[\w' ]{1,30}?)\s*:\s*(?P<y>[\w'-]+(?: [\w'-]+){0,2})\s*$")
#: A list announced within a line: "2 things: 1) … 2) …".
_LIST_AFTER_COLON = re.compile(r":\s*(?=\(?(?:1|a|i)[).]\s*[a-z])")


def split_list(text: str) -> str:
    """A numbered or bulleted list as sentences, one item each: "1) sky -> stormy 2) dog -> cat"
    → "sky -> stormy ; dog -> cat". Lines are items too. Markers are read only where the
    message or a line starts with one; inside a line, only the kind that line started with.
    Lines that each start with a bare number ("1 make …", "2 make …") are numbered too, and in
    a list an item "sky: darker" is "sky -> darker"."""
    lines = [part for line in text.lower().splitlines()
             for part in _LIST_AFTER_COLON.split(line, maxsplit=1)]
    numbered = sum(bool(_BARE_NUMBER.match(line)) for line in lines) >= 2
    listed = len(lines) > 1
    items = []
    for line in lines:
        kind = next((k for k, start in _MARKER_AT_START.items() if start.match(line)), None)
        if kind is not None:
            listed = True
            line = _MARKER_INSIDE[kind].sub(_ITEM_BREAK, _MARKER_AT_START[kind].sub("", line, 1))
        elif numbered:
            line = _BARE_NUMBER.sub("", line, 1)
        items += line.split(_ITEM_BREAK) if listed else [line]
    if listed:
        items = [_LABELLED.sub(r"\g<x> -> \g<y>", item) for item in items]
    items = [_label_pairs(item) for item in items]
    return _ITEM_BREAK.join(item for item in items if item.strip())


def _label_pairs(item: str) -> str:
    """ "hat: yellow" → "hat -> yellow", "sky - dusk, car - blue" → "sky -> dusk, car -> blue".
    A label has no verb of its own ("I have a request: …" stays), a value no relation of its
    own ("edits: shirt to red" is a heading), and a dash marks pairs only when two or more
    stand in one line ("make it pop - red" stays)."""
    for mark, pattern in _LABEL_PAIRS.items():
        pairs = [m for m in pattern.finditer(item) if m["x"].split()[0] not in _NO_LABEL
                 and _is_value(m["y"].split())]
        if mark == ":" or len(pairs) >= 2:
            for m in reversed(pairs):
                item = f"{item[: m.start()]} {m['x']} -> {m['y']}{item[m.end():]}"
    return item


def _is_value(words: list[str]) -> bool:
    """What a label's value may be: a change ("yellow", "marble", "dusk", "on") or a new thing
    ("a beach"), never a relation of its own ("shirt to red") or a plain noun ("tokenizer")."""
    if {"to", "into", "as", "-", "->", "=>"} & set(words):
        return False
    return words[0] in {"a", "an", "on", "off", "gone", "removed"} or is_change_phrase(words) \
        or global_kind(" ".join(words)) is not None


def normalize(text: str) -> str:
    """Lower case, plain quotes, one space, shorthand spelled out, list items as sentences:
    the form the rules read."""
    text = split_list(text.translate(_QUOTES)).strip()
    text = re.sub(r'["`*_]', "", text)
    text = re.sub(r"[^\w\s'.,!?;:&/+()=>-]", " ", text)  # emoji and other symbols
    text = re.sub(r"\s*(?:->|=>)\s*", " into ", text)
    text = re.sub(r"(?<=\w)\s*&\s*(?=\w)", " and ", text)
    words = [SHORTHAND.get(word, word) for word in text.split()]
    text = " ".join(word for word in words if word.strip(",.!?") not in DISCOURSE)
    return _IS_CONTRACTED.sub(" is ", text)


# --- determiners and pronouns -----------------------------------------------------------

ARTICLES = {"the", "a", "an"}
DEMONSTRATIVES = {"this", "that", "these", "those"}
POSSESSIVE_PRONOUNS = {"my", "your", "his", "her", "its", "their", "our"}
NUMBERS = {"two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "2", "3",
           "4", "5", "6", "7", "8", "9", "10"}
#: Words that make a target a group: every instance is edited, consistently.
GROUP_QUANTIFIERS = {"every", "each", "all", "both", "several", "many", "multiple"} | NUMBERS
DETERMINERS = ARTICLES | DEMONSTRATIVES | POSSESSIVE_PRONOUNS | GROUP_QUANTIFIERS | {
    "some", "any", "other", "another"}

SINGULAR_PRONOUNS = {"it", "this", "that", "this one", "that one", "this thing", "that thing"}
PLURAL_PRONOUNS = {"them", "they", "these", "those", "these ones", "those ones"}
#: Person pronouns and who they name when the conversation has named nobody.
PERSON_PRONOUNS = {"him": "the man", "he": "the man", "her": "the woman", "she": "the woman",
                   "me": "the person", "us": "the people"}

#: Nouns that name the picture itself: a target made of these is the whole image.
IMAGE_WORDS = {"image", "photo", "picture", "photograph", "scene", "everything", "shot",
               "frame", "whole thing", "entire thing", "thing", "whole", "overall",
               "pictures", "photos", "images", "all", "the lot"}
#: Targets that name nothing: "change something".
VAGUE_NOUNS = {"something", "anything", "stuff", "things", "whatever", "some things",
               "a few things", "some stuff", "a thing", "something else", "a bit",
               "a little", "the rest"}

#: People and animals: a person pronoun may refer back to these.
ANIMATE = {
    "man", "woman", "person", "boy", "girl", "child", "kid", "baby", "lady", "guy", "men",
    "women", "people", "children", "kids", "boys", "girls", "father", "mother", "dad", "mom",
    "mum", "grandma", "grandpa", "bride", "groom", "player", "rider", "driver", "student",
    "teacher", "doctor", "soldier", "king", "queen", "prince", "princess", "dog", "cat",
    "horse", "puppy", "kitten", "bird", "cow", "sheep", "bear", "lion", "tiger", "monkey",
    "rabbit", "fox", "wolf", "deer", "elephant", "giraffe", "zebra", "snowman", "statue",
    "son", "daughter", "brother", "sister", "uncle", "aunt", "friend",
    "husband", "wife", "boyfriend", "girlfriend", "cousin", "nephew", "niece", "grandson",
    "granddaughter", "grandmother", "grandfather", "parents", "family", "toddler",
    "guest", "guests", "couple", "gentleman", "mate", "buddy", "colleague", "partner",
}
#: Animals among `ANIMATE`: "it" may mean one of these, never a person.
ANIMALS = {"dog", "cat", "horse", "puppy", "kitten", "bird", "cow", "sheep", "bear", "lion",
           "tiger", "monkey", "rabbit", "fox", "wolf", "deer", "elephant", "giraffe", "zebra"}

# --- adjectives -------------------------------------------------------------------------

COLORS = {
    "red", "orange", "yellow", "green", "blue", "purple", "violet", "pink", "brown", "black",
    "white", "gray", "gold", "golden", "silver", "teal", "turquoise", "cyan", "magenta",
    "maroon", "navy", "beige", "tan", "cream", "ivory", "lavender", "lilac", "indigo",
    "crimson", "scarlet", "burgundy", "olive", "lime", "mint", "peach", "coral", "salmon",
    "khaki", "amber", "emerald", "ruby", "sapphire", "charcoal", "aqua", "fuchsia", "rose",
    "mustard", "bronze", "copper", "platinum", "neon", "pastel", "rainbow", "blonde", "blond",
    "brunette", "ginger", "auburn", "multicolored", "colorful", "colorless", "vermilion",
    "azure", "cobalt", "jade", "chartreuse", "sepia", "grayscale", "monochrome",
}

ADJECTIVES = {
    # size and shape
    "big", "large", "huge", "giant", "gigantic", "enormous", "massive", "tiny", "small",
    "little", "tall", "short", "long", "wide", "narrow", "thick", "thin", "fat", "slim",
    "skinny", "round", "square", "flat", "curved", "pointy", "sharp",
    # age and state
    "old", "new", "young", "ancient", "modern", "futuristic", "vintage", "retro", "antique",
    "rusty", "shiny", "glossy", "matte", "dull", "clean", "dirty", "wet", "dry", "muddy",
    "dusty", "sandy", "icy", "frozen", "snowy", "rainy", "stormy", "cloudy", "foggy", "misty",
    "sunny", "windy", "hazy", "smoky", "frosty", "broken", "cracked", "burnt", "burned",
    "melted", "melting", "rotten", "fresh", "ripe", "wilted", "blooming", "dead", "alive",
    "overgrown", "abandoned", "ruined", "destroyed", "damaged", "empty", "full", "crowded",
    "busy", "heavy", "open", "closed", "lit", "unlit", "bare", "leafless", "flooded", "wild",
    "elderly", "muscular", "strong", "weak", "healthy", "sick", "bald", "bearded",
    # light and colour quality
    "bright", "dark", "light", "pale", "deep", "vivid", "vibrant", "saturated", "faded",
    "muted", "glowing", "sparkling", "sparkly", "glittery", "shimmering", "translucent",
    "transparent", "opaque", "see-through", "invisible", "reflective", "iridescent",
    "holographic", "fluorescent", "luminous", "warm", "hot", "cold", "cool", "contrasty",
    "blurry", "blurred", "focused", "detailed", "crisp", "soft", "hard", "smooth", "rough",
    # texture and material
    "fluffy", "furry", "hairy", "curly", "straight", "wavy", "spiky", "silky", "fuzzy",
    "wooden", "metallic", "woolen", "knitted",
    # pattern
    "striped", "checkered", "checked", "plaid", "spotted", "dotted", "polka-dot", "floral",
    "patterned", "tie-dye", "camouflage", "camo", "tartan", "paisley",
    # mood and look
    "happy", "sad", "angry", "smiling", "surprised", "scared", "scary", "creepy", "spooky",
    "cute", "funny", "serious", "sleepy", "tired", "excited", "worried", "grumpy", "calm",
    "dramatic", "moody", "gloomy", "dreamy", "cinematic", "realistic", "photorealistic",
    "surreal", "magical", "mysterious", "eerie", "ethereal", "peaceful", "cheerful", "festive",
    "romantic", "cozy", "rustic", "elegant", "tropical", "autumnal", "wintry", "summery",
    "gothic", "medieval", "robotic", "mechanical", "cartoonish", "pixelated", "abstract",
    "psychedelic", "sunlit", "moonlit", "shadowy", "haunted", "fiery", "burning", "wintery",
    "clear", "still", "choppy", "turbulent", "murky", "delicious", "tasty",
    "juicy", "crispy", "crunchy", "spicy", "sweet", "sour", "hungry", "thirsty", "lush",
    "barren", "arid", "bloody", "natural", "artificial", "organic",
    "luxurious", "cheap", "expensive", "fancy", "simple", "plain", "ornate", "shabby",
    "neat", "tidy", "messy", "cluttered", "spotless", "polished", "worn", "torn", "ripped",
    "brand-new", "industrial", "minimal", "bold", "subtle",
    "intense", "harsh", "dim", "dimmer", "lively", "boring", "quiet", "loud",
    "noisy", "sunburnt", "tanned", "freckled", "wrinkled", "younger",
    "older", "fit", "chubby", "tame", "friendly", "fierce", "evil",
    "menacing", "joyful", "asleep", "awake", "alert", "nervous",
}
#: Nouns of stuff, not things: no "a" before them ("turn the coffee into tea").
MASS_NOUNS = {"tea", "coffee", "wine", "beer", "milk", "juice", "soup", "water", "ice cream",
              "bread", "cheese", "meat", "grass", "sand", "snow", "ice", "lava", "fire", "smoke",
              "fog", "rain", "mud", "dirt", "gravel", "concrete", "glass", "gold", "silver",
              "chocolate", "candy", "jelly", "slime", "foam", "money", "light", "darkness",
              "furniture", "hair", "fur", "paint", "graffiti", "steam", "dust", "oil", "honey",
              "lemonade", "soda", "cotton candy", "popcorn", "rice", "pasta", "spaghetti"}

#: Materials: a change as the last word ("make the table marble"), a noun elsewhere
#: ("the wine glass").
MATERIALS = {"metal", "glass", "marble", "stone", "crystal", "chrome", "plastic", "paper", "ice",
             "lego", "clay", "velvet", "silk", "leather", "denim", "fur", "brass", "steel",
             "concrete", "brick", "wood", "gold", "silver", "diamond", "candy", "chocolate",
             "lava", "water", "fire", "snow", "sand", "rubber", "cardboard", "porcelain",
             "ceramic", "jelly", "cotton", "wool", "bamboo", "granite", "rust", "moss", "straw",
             "wicker", "tin"}

#: Adjectives that ask for "better" without saying how: the request needs a question.
VAGUE_ADJECTIVES = {
    "nice", "nicer", "nicest", "better", "best", "good", "great", "cool", "awesome", "amazing",
    "pretty", "prettier", "beautiful", "lovely", "interesting", "different", "fancy",
    "fancier", "special", "unique", "perfect", "fun", "exciting", "attractive", "appealing",
    "impressive", "professional", "stunning", "gorgeous", "fine", "right", "correct", "okay",
    "decent", "better-looking", "good-looking", "improved", "changed", "edited", "fixed",
    "beautified", "enhanced", "neater", "more beautiful", "prettiest", "best-looking", "cooler",
}
#: Other words of a change that says nothing: "give it more life", "make it pop".
VAGUE_WORDS = VAGUE_ADJECTIVES | {
    "pop", "wow", "else", "something", "anything", "stuff", "life", "love", "oomph",
    "character", "personality", "flair", "spark", "makeover", "upgrade", "refresh", "update",
    "touch", "whatever", "stand", "out", "good", "it", "thing", "things", "way", "look",
}

_KNOWN_ADJECTIVES = COLORS | ADJECTIVES | VAGUE_ADJECTIVES
_CONJUNCTIONS = {"and", "or", ","}

#: Words that grade a change without being one ("a bit darker", "much more blue").
INTENSIFIERS = {
    "more", "less", "much", "very", "really", "super", "even", "slightly", "extra", "way",
    "too", "twice", "so", "fully", "completely", "totally", "entirely", "a", "bit", "little",
    "lot", "somewhat", "quite", "rather", "kind", "sort", "of", "tad", "abit",
    "all", "overall", "as", "well", "like", "look", "looks", "just", "in", "general",
    "somehow", "maybe", "the",
}

#: Verbs a made thing may do: "make the river glow blue", "make the man smile".
COMPLEMENT_VERBS = {
    "look", "looks", "appear", "seem", "become", "be", "glow", "shine", "sparkle", "wear",
    "show", "display", "say", "read", "point", "reflect", "shimmer", "smoke", "rain", "drip",
    "hold", "smile", "laugh", "frown", "cry", "jump", "fly", "run", "sit", "stand", "dance",
    "sleep", "melt", "burn", "float", "have", "turn", "resemble", "face", "blush",
}


def _comparative_stems(word: str) -> list[str]:
    """The positive forms a comparative or superlative may come from ("bigger" → "big")."""
    for ending in ("er", "est"):
        if word.endswith(ending) and len(word) > len(ending) + 2:
            stem = word[: -len(ending)]
            return [stem, stem + "e", stem[:-1], stem[:-1] + "y" if stem.endswith("i") else stem]
    return []


def is_adjective(word: str, last: bool = True) -> bool:
    """Whether a word can be the change in "make X <word>": colours, known adjectives,
    their comparatives, and the regular adjective endings (-ish, -ed, -ful, -ous). A material
    counts only as the `last` word ("make the table marble", not "the wine glass red")."""
    word = word.strip(",")
    if word in _KNOWN_ADJECTIVES or (last and word in MATERIALS):
        return True
    if "-" in word:
        return any(part in _KNOWN_ADJECTIVES or is_adjective(part)
                   for part in word.split("-") if part)
    if any(stem in _KNOWN_ADJECTIVES for stem in _comparative_stems(word)):
        return True
    if len(word) > 5 and word.endswith(("ish", "ful", "ous", "ive")):
        return True
    return len(word) > 4 and word.endswith("ed") and not word.endswith("eed")


def is_change_phrase(words: list[str]) -> bool:
    """Whether words are a graded adjective phrase: "a bit darker", "bright red and shiny"."""
    return 0 in change_phrase_starts(words)


def change_phrase_starts(words: list[str]) -> range:
    """Every k for which `words[k:]` is a change phrase, in one pass over the words, so that a
    reader asking it of every tail of a long clause takes linear time: the tails share the last
    word, so they are change phrases from just after the last content word that is no adjective
    up to the last content word."""
    if not words or not is_adjective(words[-1]):
        return range(0)
    last_content = last_other = -1
    for index, word in enumerate(words):
        if word in INTENSIFIERS or word in _CONJUNCTIONS:
            continue
        last_content = index
        if not is_adjective(word, last=word == words[-1]):
            last_other = index
    return range(last_other + 1, last_content + 1)


def is_vague_change(words: list[str]) -> bool:
    """Whether a change says only "better": "look nicer", "more interesting", "pop"."""
    return all(w in VAGUE_WORDS for w in words if w not in INTENSIFIERS and w not in _CONJUNCTIONS)


# --- whole-image vocabularies -----------------------------------------------------------

STYLES = {
    "painting", "painted", "watercolor", "oil painting", "sketch", "drawing", "pencil",
    "charcoal", "cartoon", "anime", "manga", "comic", "comic book", "pixel art", "mosaic",
    "stained glass", "pop art", "impressionist", "impressionism", "cubist", "cubism",
    "expressionist", "surrealist", "renaissance", "baroque", "art deco", "art nouveau",
    "ukiyo-e", "woodblock", "woodcut", "engraving", "etching", "pastel", "crayon", "chalk",
    "ink", "low poly", "3d render", "cgi", "claymation", "origami", "pixar", "disney",
    "ghibli", "studio ghibli", "van gogh", "monet", "picasso", "dali", "rembrandt", "warhol",
    "da vinci", "hokusai", "klimt", "vermeer", "munch", "cezanne", "matisse", "kandinsky",
    "banksy", "style", "cyberpunk", "steampunk", "vaporwave", "synthwave", "noir",
    "film noir", "black and white", "grayscale", "monochrome", "sepia", "vintage", "retro",
    "polaroid", "old photo", "old photograph", "cinematic", "hdr", "infrared", "negative",
    "x-ray", "thermal", "blueprint", "psychedelic", "abstract", "minimalist",
    "photorealistic", "hyperrealistic", "fantasy", "sci-fi", "illustration", "cel-shaded",
    "line art", "doodle", "embroidery", "tapestry", "fresco", "art", "artwork", "portrait",
    "poster", "postcard", "storybook", "pixelated", "lego", "render", "artistic",
}
#: Verbs in -ify/-ize that are ordinary English, not a style made into a verb.
ORDINARY_IZE_VERBS = {
    "modify", "beautify", "simplify", "intensify", "clarify", "justify", "specify", "verify",
    "identify", "notify", "amplify", "magnify", "purify", "solidify", "liquify", "liquefy",
    "electrify", "glorify", "horrify", "terrify", "satisfy", "unify", "classify", "quantify",
    "rectify", "falsify", "diversify", "exemplify", "gratify", "qualify", "certify", "mystify",
    "resize", "realize", "realise", "organize", "organise", "optimize", "optimise", "stylize",
    "stylise", "minimize", "maximize", "emphasize", "recognize", "sanitize", "prioritize",
    "finalize", "apologize", "personalize", "customize", "summarize", "visualize",
    "standardize", "equalize", "normalize", "neutralize", "harmonize", "colorize", "energize",
    "randomize", "synchronize", "categorize", "memorize", "size", "prize", "seize", "capsize",
    "supersize", "downsize", "upsize", "itemize", "digitize", "vectorize", "authorize",
    "criticize", "utilize", "mobilize", "stabilize", "symbolize", "sympathize", "revitalize",
    "rise", "raise", "praise", "advise", "revise", "devise", "surprise", "comprise", "promise",
    "exercise", "advertise", "supervise", "improvise", "despise", "otherwise", "chastise",
    "disguise", "bruise", "cruise", "franchise", "televise", "defy", "deify", "edify",
}
#: Styles whose verb is spelled apart from their name ("pixelate" → pixel art).
STYLE_VERBS = {"pixelate": "pixel art", "pixellate": "pixel art", "zombify": "zombie",
               "zombiefy": "zombie", "posterize": "poster", "cartoonize": "cartoon"}
_STYLE_SUFFIX = re.compile(r"^(?P<stem>[a-z][a-z0-9-]*?)-?(?:ify|fy|ize|ise)$")


def style_of_verb(verb: str) -> str | None:
    """The style a verb is made of: "anime-fy" → anime, "watercolorize" → watercolor,
    "pixelate" → pixel art, "steampunk" (a style used as a verb) → steampunk; None for
    ordinary verbs ("modify", "realize") and words that are no style. A hyphenated coinage
    ("minecraft-ify") is a style whatever its stem."""
    if verb in STYLE_VERBS:
        return STYLE_VERBS[verb]
    if verb in STYLES and verb not in {"painting", "painted", "render", "art", "style",
                                       "drawing", "negative", "portrait", "artistic"}:
        return verb
    match = _STYLE_SUFFIX.match(verb)
    if match is None or verb in ORDINARY_IZE_VERBS:
        return None
    stem = match["stem"].rstrip("-")
    if len(stem) < 3:
        return None
    for candidate in (stem, stem + "e", stem + "y", stem.removesuffix("i") + "y"):
        if candidate in STYLES:
            return candidate
    return stem if "-" in verb or verb.endswith(("ify", "ize")) else None


SEASONS = {"winter", "wintertime", "wintry", "wintery", "summer", "summertime", "summery",
           "autumn", "autumnal", "fall", "spring", "springtime", "christmas", "halloween"}
TIMES_OF_DAY = {"night", "nighttime", "night-time", "midnight", "evening", "dusk", "twilight",
                "sunset", "sunrise", "dawn", "morning", "noon", "midday", "daytime", "day",
                "golden hour", "blue hour", "afternoon", "daylight", "nightfall"}
WEATHER = {"rain", "raining", "rainy", "snow", "snowing", "snowy", "fog", "foggy", "mist",
           "misty", "storm", "stormy", "thunderstorm", "lightning", "cloudy", "overcast",
           "sunny", "windy", "hazy", "haze", "blizzard", "hail", "drizzle", "sandstorm",
           "frosty", "frost", "rainstorm", "snowstorm", "snowfall", "rainfall"}
GLOBAL_VOCABULARIES = {"style": STYLES, "season": SEASONS, "time": TIMES_OF_DAY,
                       "weather": WEATHER}
#: Words that may sit around a whole-image phrase without making it about something else.
GLOBAL_FILLER = {"a", "an", "the", "of", "in", "into", "as", "like", "at", "during", "to",
                 "look", "looks", "style", "version", "effect", "filter", "mode", "scene",
                 "setting", "time", "please", "more", "very", "really", "heavy", "light",
                 "photo", "image", "picture", "it", "made", "by", "with", "day", "old",
                 "classic", "famous", "cute", "dark", "bright", "beautiful", "cold",
                 "snowy", "rainy", "foggy", "sunny", "stormy", "starry", "clear", "late",
                 "early", "full", "on", "one", "done", "painter", "artist", "theme", "themed",
                 "vibe", "vibes", "feel", "aesthetic", "kind", "sort", "type", "some"}


def _phrase_pattern(words: set[str]) -> re.Pattern[str]:
    alternatives = sorted(words, key=len, reverse=True)
    return re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, alternatives)) + r")(?![\w-])")


_GLOBAL_PATTERNS = {kind: _phrase_pattern(words) for kind, words in GLOBAL_VOCABULARIES.items()}
_DECADE = re.compile(r"(?<!\w)(?:19|20)?[0-9]0'?s(?!\w)")


def global_kind(phrase: str) -> str | None:
    """Which whole-image vocabulary ("style", "season", "time", "weather") a change belongs
    to, or None: "look like a van gogh painting" → "style", "night" → "time"."""
    for kind, pattern in _GLOBAL_PATTERNS.items():
        if pattern.search(phrase):
            return kind
    return "style" if _DECADE.search(phrase) else None


def is_global_phrase(phrase: str) -> bool:
    """Whether a verbless phrase is entirely a whole-image change: "in anime style",
    "as a watercolor", "at sunset", "black and white", "van gogh style"."""
    kind = global_kind(phrase)
    if kind is None:
        return False
    rest = _GLOBAL_PATTERNS[kind].sub(" ", phrase)
    for other in _GLOBAL_PATTERNS.values():
        rest = other.sub(" ", rest)
    leftover = [w for w in rest.replace(",", " ").split() if w not in GLOBAL_FILLER]
    led_by_preposition = phrase.split()[0] in {"in", "as", "like", "at", "during", "into"}
    return len(leftover) <= (2 if led_by_preposition else 0)


# --- where added things go --------------------------------------------------------------

#: The region an added thing belongs in when the request names no place ("add a rainbow").
ADDED_THING_REGIONS = {
    "sky": {"rainbow", "firework", "fireworks", "moon", "sun", "star", "stars", "cloud",
            "clouds", "bird", "birds", "plane", "airplane", "aeroplane", "jet", "jets",
            "helicopter", "kite", "kites", "aurora", "northern lights", "comet", "meteor",
            "meteors", "shooting star", "ufo", "dragon", "eagle", "seagull", "seagulls",
            "lightning", "sunset", "sunrise", "blimp", "zeppelin", "spaceship", "galaxy",
            "milky way", "planet", "planets", "hot air balloon", "hot air balloons",
            "moonlight", "crescent moon", "full moon", "flock"},
    "ground": {"puddle", "puddles", "footprints", "fallen leaves", "mushrooms", "rocks",
               "stones", "pebbles", "tracks", "path", "rug", "carpet", "shadow", "shadows"},
    "water": {"boat", "boats", "ship", "ships", "sailboat", "sailboats", "swan", "swans",
              "duck", "ducks", "waves", "reflection", "reflections", "lily pads", "surfer",
              "kayak", "canoe", "yacht", "dolphin", "dolphins"},
    "face": {"beard", "mustache", "glasses", "sunglasses", "makeup", "lipstick", "freckles",
             "smile", "eyepatch", "mask", "clown nose", "scar", "war paint", "blush",
             "eyeliner", "goatee", "stubble", "monocle", "tears"},
    "head": {"hat", "cap", "crown", "helmet", "wig", "tiara", "headband", "hood", "beanie",
             "sombrero", "top hat", "cowboy hat", "party hat", "halo", "horns", "antlers",
             "bunny ears", "cat ears", "headphones", "flower crown", "bandana", "turban"},
    "wall": {"painting", "poster", "clock", "graffiti", "mural", "picture frame", "shelf",
             "shelves", "wallpaper"},
    "image": {"rain", "snow", "fog", "mist", "haze", "lens flare", "vignette", "film grain",
              "grain", "bokeh", "light rays", "god rays", "sun rays", "sunbeams", "confetti",
              "sunlight", "light", "contrast", "color", "colors", "noise", "blur", "glow",
              "warmth", "drama", "smoke", "snowfall", "frame", "border"},
}
#: Places that a thing added "over" or "above" hangs in the sky of.
LANDSCAPE = {
    "mountain", "mountains", "hill", "hills", "city", "town", "village", "skyline", "buildings",
    "building", "houses", "house", "rooftops", "roofs", "trees", "tree", "forest", "woods",
    "lake", "sea", "ocean", "river", "bay", "harbor", "beach", "field", "fields", "meadow",
    "valley", "horizon", "desert", "island", "bridge", "castle", "tower", "park", "farm",
    "landscape", "street", "road", "crowd", "stadium", "water", "waves", "church", "skyscrapers",
}
#: Parts of a body or thing that a "give" hands a new look ("give her blue hair").
BODY_PARTS = {"hair", "eyes", "eye", "lips", "skin", "nose", "ears", "teeth", "nails",
              "fur", "feathers", "cheeks", "eyebrows", "face", "hands", "legs", "arms", "neck",
              "waist", "wrist", "wrists", "shoulders", "finger", "fingers", "head", "body"}

# --- inflection -------------------------------------------------------------------------

IRREGULAR_PLURALS = {
    "people": "person", "men": "man", "women": "woman", "children": "child", "mice": "mouse",
    "geese": "goose", "feet": "foot", "teeth": "tooth", "wolves": "wolf", "leaves": "leaf",
    "knives": "knife", "wives": "wife", "lives": "life", "calves": "calf", "halves": "half",
    "shelves": "shelf", "loaves": "loaf", "thieves": "thief", "elves": "elf", "oxen": "ox",
    "cacti": "cactus", "fungi": "fungus", "dice": "die", "puppies": "puppy",
}
#: Words ending in -s that name one thing (or one region) all the same.
NOT_PLURAL = {
    "glasses", "sunglasses", "jeans", "pants", "shorts", "trousers", "scissors", "goggles",
    "headphones", "earphones", "tights", "leggings", "overalls", "pajamas", "pyjamas",
    "clothes", "news", "lens", "canvas", "iris", "bus", "gas", "christmas", "always",
    "fireworks", "northern lights", "mathematics", "physics", "series", "species", "this",
    "has", "was", "is", "as", "us", "yes", "its", "his", "hers", "lights", "stairs",
    "tennis", "oasis", "axis", "crisis", "analysis", "chassis", "trellis", "pelvis", "paris",
    "woods", "remains", "surroundings", "outskirts", "bokeh", "freckles", "waves", "whiskers",
}
_SIBILANT_PLURAL = re.compile(r"(?:ch|sh|x|ss|z)es$")


def is_plural(noun: str) -> bool:
    """Whether a head noun names several things ("cats", "people"), not "glass" or "jeans"."""
    if noun in IRREGULAR_PLURALS:
        return True
    if noun in NOT_PLURAL or noun in IRREGULAR_PLURALS.values():
        return False
    return len(noun) > 2 and noun.endswith("s") and not noun.endswith(("ss", "us", "'s"))


def singular(noun: str) -> str:
    """The singular of a regular or common irregular plural ("tigers" → "tiger")."""
    if noun in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[noun]
    if not is_plural(noun):
        return noun
    if noun.endswith("ies") and len(noun) > 4:
        return noun[:-3] + "y"
    if _SIBILANT_PLURAL.search(noun):
        return noun[:-2]
    return noun[:-1]


def pluralize(noun: str) -> str:
    """The plural of a singular noun ("car" → "cars"), for "the right ones"."""
    reverse = {one: many for many, one in IRREGULAR_PLURALS.items()}
    if noun in reverse:
        return reverse[noun]
    if noun.endswith("y") and noun[-2:-1] not in set("aeiou"):
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def with_article(noun_phrase: str) -> str:
    """A bare singular noun phrase with "a"/"an" ("wolf" → "a wolf"); others unchanged."""
    words = noun_phrase.split()
    if not words or words[0] in DETERMINERS or is_plural(words[-1]) or words[-1] in MATERIALS | \
            MASS_NOUNS | {"night", "day", "winter", "summer", "autumn"}:
        return noun_phrase
    return ("an " if words[0][0] in "aeiou" else "a ") + noun_phrase

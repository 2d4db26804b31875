"""Lexical guards: refuse near matches whose numbers, negations or named entities differ.

Embeddings place "How do I learn Python?" next to "How do I learn Java?", and "Is 7 prime?" next
to "Is 9 prime?": a cosine threshold alone serves wrong answers for such pairs. These guards look
at the words: a guard that fires refuses the candidate outright (semcache/decision.py). Everything
here is plain string work on two short texts: microseconds per candidate.
"""

import re
from dataclasses import dataclass
from functools import lru_cache

_WORD = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?")
# A possessive or "is" contraction ("Chrome's", "it's") names the same thing as the bare word:
# "clear Chrome's cache" asks what "clear the cache in Chrome" asks.
_APOSTROPHE_S = re.compile(r"['’][sS]$")
_NUMBER = re.compile(r"(?<![A-Za-z])[-+]?\d+(?:[.,:/]\d+)*")
_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
    "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40",
    "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90",
    "hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000",
    "first": "1", "second": "2", "third": "3", "fourth": "4", "fifth": "5", "half": "0.5",
    "double": "x2", "twice": "x2", "triple": "x3",
}
_NEGATIONS = {
    "not", "no", "never", "none", "nothing", "nobody", "nowhere", "neither", "nor", "cannot",
    "without", "non", "unable", "lack", "lacks", "lacking", "isnt", "arent", "wasnt", "werent",
    "dont", "doesnt", "didnt", "cant", "couldnt", "wont", "wouldnt", "shouldnt", "hasnt",
    "havent", "hadnt", "mustnt", "neednt", "aint",
}
# Words that carry no topic: leaving one out or adding one does not change the question.
_STOPWORDS = set(
    """a an the and or but if then else of to in on at by for with from into onto over under about
    as is are was were be been being am do does did doing done have has had having will would shall
    should can could may might must i me my mine we us our ours you your yours he him his she her
    hers it its they them their theirs this that these those there here what which who whom whose
    when where why how whats hows whos wheres whens whys some any all each every more most much
    many very really so too also just than such own same other another something anything someone
    anyone thing things way ways get got getting go going make makes made know tell please best
    good better great top list one ones s t ever still even now like need want use used using
    possible actually exactly ok okay e g etc vs via per""".split()
)


def _stem(word: str) -> str:
    """Return a crude stem: enough to equate plurals and -ing/-ed forms."""
    for suffix, minimum in (("ies", 5), ("ing", 6), ("ed", 5), ("es", 5), ("s", 4)):
        if word.endswith(suffix) and len(word) >= minimum:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


@dataclass(frozen=True)
class TextFeatures:
    """What the guards need to know about one text."""

    numbers: frozenset
    negated: bool
    entities: frozenset
    content: frozenset   # stems of the content words
    words: frozenset     # every lower-cased word
    sequence: tuple      # content stems in order


@lru_cache(maxsize=65536)
def text_features(text: str) -> TextFeatures:
    """Return the lexical features of `text` (cached: stored prompts are compared often)."""
    raw_words = [_APOSTROPHE_S.sub("", w) for w in _WORD.findall(text)]
    lower = [w.lower().replace("’", "'") for w in raw_words]
    numbers = {n.replace(",", "") for n in _NUMBER.findall(text)}
    numbers.update(_NUMBER_WORDS[w] for w in lower if w in _NUMBER_WORDS)
    flat = [w.replace("'", "") for w in lower]
    negated = any(w in _NEGATIONS or w.endswith("n't") for w in lower) or any(
        w in _NEGATIONS for w in flat
    )
    # Named entities: capitalized words not opening a sentence, and acronyms. Title-cased text
    # ("What Are The Best Books") capitalizes everything, so only acronyms count there.
    capitalized = [
        (i, w) for i, w in enumerate(raw_words) if w[:1].isupper() and not w.isdigit()
    ]
    title_case = len(raw_words) >= 4 and len(capitalized) > 0.6 * len(raw_words)
    entities = set()
    sentence_start = {0}
    for match in re.finditer(r"[.?!:]\s+", text):
        sentence_start.add(len(_WORD.findall(text[: match.end()])))
    for i, w in capitalized:
        lw = w.lower()
        acronym = len(w) >= 2 and w.isupper()
        if lw in _STOPWORDS or lw in _NEGATIONS or lw in _NUMBER_WORDS:
            continue
        if acronym or (not title_case and i not in sentence_start):
            entities.add(_stem(lw))
    # Numbers (digits or words) are the numbers guard's business: once it passed, "7" and
    # "seven" are the same number and must not count as different content words.
    sequence = tuple(
        _stem(w) for w in flat
        if w not in _STOPWORDS and w not in _NEGATIONS and w not in _NUMBER_WORDS
        and not w.isdigit() and len(w) > 1
    )
    return TextFeatures(
        numbers=frozenset(numbers), negated=negated, entities=frozenset(entities),
        content=frozenset(sequence), words=frozenset(flat), sequence=sequence,
    )


@dataclass(frozen=True)
class PairFeatures:
    """How a query and a stored prompt differ, word-wise."""

    refused: str | None     # name of the hard guard that refused, or None


# Words that make the order of the things around them matter.
_DIRECTED = {"before", "after", "than", "to", "from", "into", "over", "under", "instead",
             "replace", "vs", "versus", "convert", "beat", "beats", "bigger", "smaller",
             "older", "younger"}


def _order(sequence: tuple) -> tuple:
    """Return the sequence without repeats (first occurrence order)."""
    return tuple(dict.fromkeys(sequence))


def compare(query: str, stored: str) -> PairFeatures:
    """Return the lexical comparison of a query with a stored prompt."""
    q, s = text_features(query), text_features(stored)
    refused = None
    if q.numbers != s.numbers:
        refused = "numbers"
    elif q.negated != s.negated:
        refused = "negation"
    else:
        q_ent = {e for e in q.entities - s.entities if e not in s.content}
        s_ent = {e for e in s.entities - q.entities if e not in q.content}
        if q_ent and s_ent:
            refused = "entities"
        elif q.content == s.content and _order(q.sequence) != _order(s.sequence) and (
            (q.words | s.words) & _DIRECTED
        ):
            refused = "order"  # "Python before Java" is not "Java before Python"
    return PairFeatures(refused=refused)

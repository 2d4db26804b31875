"""Lexical guards: refuse near matches that ask another question in words an embedding blurs.

Embeddings place "How do I learn Python?" next to "How do I learn Java?", "Is 7 prime?" next to
"Is 9 prime?", "people in Seattle think of Denver" next to "people in Denver think of Seattle" and
"positive effects" next to "negative effects": a cosine threshold alone serves wrong answers for
such pairs. These guards look at the words: a guard that fires refuses the candidate outright
(semcache/decision.py). Everything here is plain string work on two short texts, with each
text's features computed once and cached: microseconds per candidate.

The guards, in the order they are tried (`GUARDS`; `compare(..., only=...)` runs a subset, for
the benches that measure each one):
  deictic     either text points at content it does not carry (semcache/deixis.py);
  unreadable  the texts differ in what the embedder reads as [UNK] (semcache/unknown_tokens.py);
  numbers     different numbers (digits or number words);
  negation    a negation on one side only;
  entities    named entities swapped (on both sides, one the other lacks);
  names       the same for short texts full of names, which look title-cased ("Is Nash County
              in Texas?");
  order       the same content words around a directed word in another order ("to", "before");
  role        two terms (or runs of terms) swapped around a relation ("A barks at B");
  antonym     opposite poles of a curated pair (semcache/antonyms.py).
"""

import re
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache

from semcache.antonyms import opposed, poles
from semcache.deixis import refers_to_unseen
from semcache.unknown_tokens import Unreadable, unreadable, unreadable_differs

GUARDS = ("deictic", "unreadable", "numbers", "negation", "entities", "names", "order", "role",
          "antonym")

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
    names: frozenset     # entities, read in short name-heavy texts too (the `names` guard)
    content: frozenset   # stems of the content words
    words: frozenset     # every lower-cased word
    sequence: tuple      # content stems in order
    tokens: tuple        # every lower-cased word, in order
    positions: tuple     # where each of `sequence` stands in `tokens`
    deictic: bool        # points at content it does not carry
    poles: frozenset     # (pair, side) of the opposite pairs it names
    unreadable: Unreadable


def _entities(capitalized: list, sentence_start: set, title_case: bool) -> frozenset:
    """Return the stems of capitalized words not opening a sentence, and acronyms; in title-cased
    text, acronyms only."""
    entities = set()
    for i, w in capitalized:
        lw = w.lower()
        acronym = len(w) >= 2 and w.isupper()
        if lw in _STOPWORDS or lw in _NEGATIONS or lw in _NUMBER_WORDS:
            continue
        if acronym or (not title_case and i not in sentence_start):
            entities.add(_stem(lw))
    return frozenset(entities)


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
    sentence_start = {0}
    for match in re.finditer(r"[.?!:]\s+", text):
        sentence_start.add(len(_WORD.findall(text[: match.end()])))
    entities = _entities(capitalized, sentence_start, title_case)
    # Names: a short question full of names ("Is Nash County in Texas?") looks title-cased by
    # the count alone; title case also capitalizes its small words ("Are", "The", "On"), so
    # without a capitalized stopword after the start its capitalized words are names.
    names = entities
    if title_case and not any(w.lower() in _STOPWORDS for i, w in capitalized
                              if i not in sentence_start):
        names = _entities(capitalized, sentence_start, False)
    # Numbers (digits or words) are the numbers guard's business: once it passed, "7" and
    # "seven" are the same number and must not count as different content words.
    kept = [
        (i, _stem(w)) for i, w in enumerate(flat)
        if w not in _STOPWORDS and w not in _NEGATIONS and w not in _NUMBER_WORDS
        and not w.isdigit() and len(w) > 1
    ]
    sequence = tuple(stem for _, stem in kept)
    tokens = tuple(flat)
    return TextFeatures(
        numbers=frozenset(numbers), negated=negated, entities=entities, names=names,
        content=frozenset(sequence), words=frozenset(flat), sequence=sequence, tokens=tokens,
        positions=tuple(i for i, _ in kept), deictic=refers_to_unseen(text),
        poles=poles(tokens), unreadable=unreadable(text),
    )


@dataclass(frozen=True)
class PairFeatures:
    """How a query and a stored prompt differ, word-wise."""

    refused: str | None     # name of the hard guard that refused, or None


# Words that make the order of the things around them matter.
_DIRECTED = {"before", "after", "than", "to", "from", "into", "over", "under", "instead",
             "replace", "vs", "versus", "convert", "beat", "beats", "bigger", "smaller",
             "older", "younger"}


# Words that join two terms without ordering them: "bacteria and a virus" asks what "a virus
# and bacteria" asks.
_SYMMETRIC = {"and", "or", "vs", "versus", "v", "with", "plus", "nor", "both", "either",
              "between", "also", "as", "well"}
# Words that carry no relation between two terms: articles, auxiliaries, pronouns, question words,
# intensifiers ("How smart is X?" / "Is X very smart?").
_FILLERS = {"a", "an", "the", "is", "are", "was", "were", "be", "been", "am", "do", "does", "did",
            "can", "could", "will", "would", "should", "shall", "may", "might", "must", "have",
            "has", "had", "i", "you", "we", "they", "he", "she", "it", "my", "your", "our",
            "their", "his", "her", "its", "what", "which", "who", "how", "why", "when", "where",
            "that", "this", "very", "really", "so", "too", "s", "t"}


def _order(sequence: tuple) -> tuple:
    """Return the sequence without repeats (first occurrence order)."""
    return tuple(dict.fromkeys(sequence))


def _first_positions(f: TextFeatures) -> tuple[tuple, tuple]:
    """Return the content stems without repeats and where each first stands in `f.tokens`."""
    first: dict[str, int] = {}
    for stem, position in zip(f.sequence, f.positions, strict=True):
        first.setdefault(stem, position)
    return tuple(first), tuple(first.values())


def _relation(span: tuple, repeated: frozenset) -> tuple:
    """Return the words of `span` that relate the terms around it: not fillers, not content words
    the text repeats ("web designer and web developer")."""
    return tuple(w for w in span if w not in _FILLERS and _stem(w) not in repeated)


def _repeated(f: TextFeatures) -> frozenset:
    return frozenset(stem for stem in f.sequence if f.sequence.count(stem) > 1)


def role_swapped(q: TextFeatures, s: TextFeatures) -> bool:
    """Return whether `s` says what `q` says with two terms, or runs of terms, exchanged around
    the same relation: "people in Seattle think of Denver" / "people in Denver think of
    Seattle", "the recruits bark at the officer" / "the officer barks at the recruits". The words
    between the terms must relate them (not "and", "or", "vs": "bacteria and a virus" asks what
    "a virus and bacteria" asks) and be the same on both sides (not "history books" / "books on
    history", "where in Spain can I go hiking" / "where can I go hiking in Spain")."""
    if q.content != s.content:
        return False
    a, a_at = _first_positions(q)
    b, b_at = _first_positions(s)
    if a == b:
        return False
    start = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
    end = next(i for i in range(len(a) - 1, -1, -1) if a[i] != b[i]) + 1
    mid_a, mid_b, m = a[start:end], b[start:end], end - start
    for lx in range(1, m):
        for ly in range(1, m - lx + 1):
            # a: X M Y; b: Y M X.
            if mid_b != mid_a[m - ly:] + mid_a[lx:m - ly] + mid_a[:lx]:
                continue
            between_a = _relation(q.tokens[a_at[start + lx - 1] + 1:a_at[start + m - ly]],
                                  _repeated(q))
            between_b = _relation(s.tokens[b_at[start + ly - 1] + 1:b_at[start + m - lx]],
                                  _repeated(s))
            return between_a == between_b and any(w not in _SYMMETRIC for w in between_a)
    return False


def _swapped(q_entities: frozenset, s_entities: frozenset, q: TextFeatures,
             s: TextFeatures) -> bool:
    """Return whether each text names something the other neither names nor mentions."""
    q_ent = {e for e in q_entities - s_entities if e not in s.content}
    s_ent = {e for e in s_entities - q_entities if e not in q.content}
    return bool(q_ent and s_ent)


def _order_reversed(q: TextFeatures, s: TextFeatures) -> bool:
    # "Python before Java" is not "Java before Python".
    return q.content == s.content and _order(q.sequence) != _order(s.sequence) and bool(
        (q.words | s.words) & _DIRECTED)


_CHECKS = {
    "deictic": lambda q, s: q.deictic or s.deictic,
    "unreadable": lambda q, s: unreadable_differs(q.unreadable, s.unreadable),
    "numbers": lambda q, s: q.numbers != s.numbers,
    "negation": lambda q, s: q.negated != s.negated,
    "entities": lambda q, s: _swapped(q.entities, s.entities, q, s),
    "names": lambda q, s: _swapped(q.names, s.names, q, s),
    "order": _order_reversed,
    "role": role_swapped,
    "antonym": lambda q, s: opposed(q.poles, s.poles),
}


def compare(query: str, stored: str, *, only: Collection[str] | None = None) -> PairFeatures:
    """Return the lexical comparison of a query with a stored prompt: the first guard of
    `GUARDS` (or of those in `only`) that refuses."""
    q, s = text_features(query), text_features(stored)
    for name in GUARDS:
        if (only is None or name in only) and _CHECKS[name](q, s):
            return PairFeatures(refused=name)
    return PairFeatures(refused=None)

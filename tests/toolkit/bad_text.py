"""Hypothesis strategies for JSON documents whose strings may hold lone surrogates or NUL, and the
oracle the parser is held to (llmops/api/parsers.py)."""

import re

from hypothesis import strategies as st

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
BAD_CHARS = st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"])
# "[" and "." stay out of keys so that a reported path can be followed back (`resolve`).
_ANY_CHARS = st.characters(codec=None, categories=None, exclude_characters="[].")
CLEAN = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00[]."),
                max_size=8)
BAD = st.tuples(CLEAN, BAD_CHARS, CLEAN).map("".join)
# Clean strings, strings with one bad character somewhere, and strings from every character
# category with bad ones mixed in, so that both outcomes are common.
TEXT = st.one_of(CLEAN, BAD, st.text(st.one_of(_ANY_CHARS, BAD_CHARS), max_size=8))
KEYS = TEXT.filter(bool)  # an empty key would make an empty path segment
DOCUMENTS = st.recursive(
    TEXT | st.integers(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children,
                                                                      max_size=4),
    max_leaves=20)


def is_bad(text: str) -> bool:
    """Return whether `text` holds a NUL or a lone surrogate."""
    return _BAD_TEXT.search(text) is not None


def strings_of(document) -> list[str]:
    """Return every string of a JSON document, object keys included."""
    found, stack = [], [document]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            found.append(node)
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            found.extend(node)
            stack.extend(node.values())
    return found


def resolve(document, path: str | None):
    """Follow a parser path ("a[1].b"; None is the whole document) into `document`."""
    node = document
    for part in (path or "").replace("[", ".[").split("."):
        if part:
            node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    return node


def names_bad_text(document, path: str | None) -> bool:
    """Return whether `path` leads to a bad string, or to an object with a bad key."""
    target = resolve(document, path)
    if isinstance(target, str):
        return is_bad(target)
    return isinstance(target, dict) and any(is_bad(key) for key in target)

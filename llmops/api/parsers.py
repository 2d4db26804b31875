"""A JSON parser that refuses what would become 500s: deep nesting, bad UTF-8, surrogates, NUL."""

import json
import re

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from llmops.errors import InvalidRequest

# A lone surrogate (a valid JSON escape, invalid Unicode) cannot be encoded: hashing, storage and
# every provider's HTTP body would fail on it later, after admission. PostgreSQL's text and jsonb
# refuse NUL. Both can only come from a `\u` escape: UTF-8 decoding refuses encoded surrogates and
# json.loads refuses raw control characters inside strings.
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
# The escapes that can produce them (\u0000, \uD800-\uDFFF; also matched where the backslash is
# itself escaped, which only costs a walk that finds nothing). A body without any is clean.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _depth_exceeds(text: str, limit: int) -> bool:
    """Return whether brackets nest deeper than `limit` (strings are skipped). O(len(text))."""
    if text.count("[") + text.count("{") <= limit:
        return False  # counted in C: most bodies never need the character loop below
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _has_bad_text(data) -> bool:
    """Return whether any string in `data` (object keys included) holds a NUL or a lone
    surrogate. Iterative, one regex scan per string: O(size of the document)."""
    search = _BAD_TEXT.search
    stack = [data]
    pop, push = stack.pop, stack.append
    while stack:
        value = pop()
        if isinstance(value, str):
            if search(value):
                return True
        elif isinstance(value, dict):
            for key, item in value.items():
                if search(key):
                    return True
                if isinstance(item, str):
                    if search(item):
                        return True
                elif isinstance(item, (dict, list)):
                    push(item)
        elif isinstance(value, list):
            stack.extend(item for item in value if isinstance(item, (str, dict, list)))
    return False


def _bad_text(data) -> tuple[str, str]:
    """Return (JSON path, what is wrong) of a bad string of `data`: the first in document order,
    except that an object's keys come before its values; a bad key names its object. Only run
    once `_has_bad_text` found one."""
    stack = [(data, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            found = _BAD_TEXT.search(value)
            if found:
                return path, _what(found.group())
        elif isinstance(value, dict):
            for key in value:
                found = _BAD_TEXT.search(key)
                if found:
                    return path, f"has a key that {_what(found.group())}"
            stack.extend((item, f"{path}.{key}" if path else key)
                         for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{index}]")
                         for index, item in reversed(list(enumerate(value))))
    raise AssertionError("no bad string in the document")


def _what(char: str) -> str:
    if char == "\x00":
        return "contains a NUL character (\\u0000)"
    return "contains invalid Unicode (a lone surrogate)"


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"Request body is not valid UTF-8: {exc.reason}.") from None
        if not text.strip():
            raise ParseError("Request body is empty; expected a JSON object.")
        if _depth_exceeds(text, settings.LLMOPS_MAX_JSON_DEPTH):
            raise ParseError(
                f"JSON nests deeper than {settings.LLMOPS_MAX_JSON_DEPTH} levels."
            )
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"Request body is not valid JSON: {exc}") from None
        # Without a NUL or surrogate escape no string can hold either (see _BAD_TEXT): most
        # bodies skip the walk (escaped astral characters, emoji, need it). Refused here, once
        # for every field and endpoint, before anything is admitted.
        if _SUSPECT_ESCAPE.search(text) and _has_bad_text(data):
            path, what = _bad_text(data)
            path = path[:200]
            # The path may contain the object keys of the client's own document, never the bad
            # string itself (a lone surrogate cannot be rendered into the error body).
            raise InvalidRequest(f"{path or 'The request body'} {what}.", code="invalid_value",
                                 param=path or None)
        return data

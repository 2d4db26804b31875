"""A JSON parser that refuses what the standard one turns into 500s: deep nesting, bad UTF-8."""

import json

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _depth_exceeds(text: str, limit: int) -> bool:
    """Return whether brackets nest deeper than `limit` (strings are skipped). O(len(text))."""
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
            return json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"Request body is not valid JSON: {exc}") from None

"""StrictJSONParser refuses lone surrogates and NUL in any string of a body, naming the path."""

import io
import json

import pytest
from hypothesis import event, given, settings

from llmops.api import parsers
from llmops.api.parsers import StrictJSONParser
from llmops.errors import InvalidRequest
from tests.toolkit.bad_text import DOCUMENTS, is_bad, names_bad_text, strings_of


def parse(raw: str):
    return StrictJSONParser().parse(io.BytesIO(raw.encode()))


@pytest.mark.parametrize("raw,param,what", [
    ('{"a": "\\ud800"}', "a", "surrogate"),
    ('{"a": [1, {"b": ["ok", "x\\u0000"]}]}', "a[1].b[1]", "NUL"),
    ('{"a": {"\\udc00": 1}}', "a", "has a key that contains invalid Unicode"),
    ('{"\\u0000": 1}', None, "has a key that contains a NUL"),
    ('["\\ud800"]', "[0]", "surrogate"),
    ('"\\ud800"', None, "surrogate"),
    # Document order: the first bad string is named, whatever comes after it.
    ('{"first": "\\u0000", "second": "\\ud800"}', "first", "NUL"),
    ('{"a": ["fine", "\\udfff"], "b": "\\u0000"}', "a[1]", "surrogate"),
])
def test_the_error_names_the_path_and_never_echoes_the_text(raw, param, what):
    with pytest.raises(InvalidRequest) as refused:
        parse(raw)
    assert refused.value.param == param
    assert refused.value.code == "invalid_value"
    message = str(refused.value.detail)
    assert what in message
    message.encode("utf-8")  # renderable: the bad text itself is not in it


@pytest.mark.parametrize("raw", [
    '{"emoji": "\\ud83e\\uddea"}',  # a valid surrogate pair
    '{"text": "C:\\\\ud800\\\\u0000"}',  # escaped backslashes: the text is literal
    '{"hangul": "\\ud55c\\uae00"}',
    '{"accents": "\\u00e9t\\u00e9", "raw": "été ✓"}',
])
def test_lookalikes_parse(raw):
    assert parse(raw) == json.loads(raw)


def test_bodies_without_a_suspect_escape_are_not_walked(monkeypatch):
    walked = []
    monkeypatch.setattr(parsers, "_has_bad_text", lambda data: walked.append(data) or False)
    parse('{"messages": [{"role": "user", "content": "caf\\u00e9 ok"}]}')
    assert walked == []
    parse('{"messages": [{"role": "user", "content": "\\ud83e\\uddea"}]}')
    assert len(walked) == 1


@settings(max_examples=400, deadline=None)
@given(DOCUMENTS)
def test_any_document_parses_iff_no_string_holds_bad_text(document):
    raw = json.dumps(document)  # ensure_ascii: every surrogate and NUL becomes a \u escape
    # What the body means: a high surrogate escape followed by a low one is one character.
    document = json.loads(raw)
    bad = any(is_bad(text) for text in strings_of(document))
    event("refused" if bad else "clean")
    if not bad:
        assert parse(raw) == document
        return
    with pytest.raises(InvalidRequest) as refused:
        parse(raw)
    assert names_bad_text(document, refused.value.param)

"""Fuzzing the free-form fields of a chat request with lone surrogates and NUL over real HTTP:
tools, tool_calls, response_format, logit_bias keys and metadata hold arbitrary JSON, and any bad
string anywhere in them is a 400 naming its path, before admission (nothing reserved, nothing
recorded, no model called)."""

import json
import os

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from budgets.models import BudgetReservation, UsageRecord
from tests.toolkit.assertions import assert_openai_error
from tests.toolkit.bad_text import BAD, DOCUMENTS, TEXT, names_bad_text

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
HYPOTHESIS = settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                      derandomize=True, phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))
USER = {"role": "user", "content": "hi"}


def _tools(doc):
    return {"tools": [{"type": "function", "function": {"name": "f", "parameters": doc}}]}


def _tool_calls(arguments):
    return {"messages": [USER, {"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_1", "type": "function", "function": {"name": "f", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "done"}]}


# Each field's free-form part: a document holding at least one bad string somewhere.
WITH_BAD = st.one_of(BAD, st.lists(DOCUMENTS, min_size=1, max_size=3).map(
    lambda docs: [*docs, {"k": "\x00"}]), st.dictionaries(TEXT.filter(bool), DOCUMENTS,
                                                          max_size=3).map(
    lambda doc: {**doc, "\ud800": 1}))
FIELDS = {
    "tools": WITH_BAD.map(_tools),
    "tool_calls": BAD.map(_tool_calls),
    "response_format": WITH_BAD.map(lambda doc: {"response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"examples": doc}}}}),
    "logit_bias": BAD.map(lambda key: {"logit_bias": {"50256": 1, key: -1}}),
    "metadata": st.dictionaries(TEXT.filter(bool), TEXT, max_size=3).flatmap(
        lambda doc: BAD.map(lambda bad: {"metadata": {**doc, "note": bad}})),
}


@pytest.mark.slow
@pytest.mark.parametrize("field", list(FIELDS))
def test_bad_text_in_free_form_fields_is_400_before_admission(
        gateway_http, fake_profile, fake_provider, field):
    fake_profile("wire-model")

    @HYPOTHESIS
    @given(extra=FIELDS[field])
    def run(extra) -> None:
        body = {"model": "wire-model", "messages": [USER], **extra}
        raw = json.dumps(body)  # every bad character travels as a \u escape
        response = gateway_http.post("/v1/chat/completions", content=raw.encode(),
                                     headers={"Content-Type": "application/json"})
        error = assert_openai_error(response, 400, code="invalid_value")
        assert names_bad_text(json.loads(raw), error["param"]), (error, raw[:300])

    run()
    assert not UsageRecord.objects.exists()
    assert not BudgetReservation.objects.exists()
    assert fake_provider.requests == []


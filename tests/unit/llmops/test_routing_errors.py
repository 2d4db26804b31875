"""Routing's plain refusals (routing/errors.py) render as the API's OpenAI-shaped errors."""

import pytest

from llmops.errors import exception_handler
from routing import errors


@pytest.mark.parametrize("error,status,error_type", [
    (errors.InvalidRequest("No model meets the request's limits.", param="metadata",
                           code="no_model_within_limits"), 400, "invalid_request_error"),
    (errors.ModelNotFound("The model 'x' does not exist or is not enabled.", param="model"),
     404, "invalid_request_error"),
    (errors.ModelNotConfigured("Model 'gpt-4o' cannot be called: OPENAI_API_KEY is not set "
                               "on this gateway.", param="model"), 400, "invalid_request_error"),
    (errors.ModelsUnavailable("Every candidate model is cooling down.",
                              code="models_cooling_down", retry_after=30), 503, "api_error"),
])
def test_each_routing_refusal_keeps_its_message_code_and_param(error, status, error_type):
    response = exception_handler(error, {})
    assert response.status_code == status
    assert response.data == {"error": {"message": error.message, "type": error_type,
                                       "code": error.code, "param": error.param}}


def test_retry_after_becomes_the_header():
    response = exception_handler(errors.ModelsUnavailable("cooling", retry_after=30), {})
    assert response["Retry-After"] == "30"


def test_default_codes():
    assert errors.ModelNotFound("gone").code == "model_not_found"
    assert errors.InvalidRequest("bad").code == "invalid_request"
    assert errors.ModelNotConfigured("no key").code == "model_not_configured"

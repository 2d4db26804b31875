"""Judged answers become routing examples: prompt, model, score scaled to 0-1."""

import numpy as np
import pytest

from llmops.models import ResponseFeedback
from llmops.observability.examples import quality_examples_export
from llmops.observability.feedback import response_feedback_create, verdict_from
from routing.models import RoutingExample

pytestmark = pytest.mark.django_db


def _embed(texts: list[str]) -> np.ndarray:
    # A deterministic stand-in for the embedder: the export's job is the labels, not vectors.
    vectors = np.ones((len(texts), 384), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_judged_verdicts_are_exported_once(make_api_key, make_usage):
    key = make_api_key()
    judged = make_usage(key, served_model="simulated-efficient")
    response_feedback_create(
        usage_record=judged, source="judge", verdict=verdict_from(score=8),
        prompt=[{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Sort a list in Python"}])
    # A user's thumbs carry no prompt text: nothing to export.
    response_feedback_create(usage_record=make_usage(key), source="user",
                             verdict=verdict_from(thumbs="up"))
    assert ResponseFeedback.objects.count() == 2

    assert quality_examples_export(embed=_embed) == 1
    example = RoutingExample.objects.get()
    assert example.prompt == "Sort a list in Python"
    assert example.model_name == "simulated-efficient" and example.score == 0.8
    assert example.request_id == judged.request_id and example.source == "quality:judge"
    assert quality_examples_export(embed=_embed) == 0

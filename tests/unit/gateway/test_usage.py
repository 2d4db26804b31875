"""The usage a call is billed at (llmops/gateway/usage.py): the provider's report when it passes
the checks, else the gateway's own count, logged and counted."""

import logging
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY

from llmops.gateway import usage
from llmops.gateway.usage import billed_usage, local_usage, under_reported, usage_problem
from llmops.providers.base import Usage
from routing.tokens import estimate_text_tokens, tokenizer_count
from tests.unit.gateway.factories import profile, request

PROMPT = "What is the capital of France? Please answer in one full sentence, with its river."
ANSWER = "The capital of France is Paris, which lies on the river Seine."


def asked(bound: int = 40, **fields):
    """Return the context of a request for PROMPT whose prompt bound on model "m" is `bound`."""
    ctx = request(**fields)
    ctx.messages = [{"role": "user", "content": PROMPT}]
    ctx.prompt_bounds = {"m": bound}
    ctx.estimated_prompt_tokens = bound
    return ctx


def rejected(reason: str, model: str = "m") -> float:
    return REGISTRY.get_sample_value("llm_provider_usage_rejected_total",
                                     {"model": model, "reason": reason}) or 0.0


def spy_tokenizer(monkeypatch) -> list[str]:
    counted: list[str] = []

    def count(text: str) -> int | None:
        counted.append(text)
        return tokenizer_count(text)

    monkeypatch.setattr(usage, "tokenizer_count", count)
    return counted


class TestUsageProblem:
    CEILINGS = {"prompt_ceiling": 100, "completion_ceiling": 50}

    def test_an_honest_report_up_to_the_ceilings_has_none(self):
        honest = Usage(prompt_tokens=100, completion_tokens=50, cached_tokens=10,
                       reasoning_tokens=5)
        assert usage_problem(honest, **self.CEILINGS) is None

    @pytest.mark.parametrize(("reported", "problem"), [
        (None, "missing"),
        (Usage(prompt_tokens=10.5, completion_tokens=3), "non_integer"),
        (Usage(prompt_tokens=True, completion_tokens=3), "non_integer"),
        (Usage(prompt_tokens=10, completion_tokens=3, reasoning_tokens=1.0), "non_integer"),
        (Usage(prompt_tokens=-1, completion_tokens=3), "negative"),
        (Usage(prompt_tokens=10, completion_tokens=3, cached_tokens=-5), "negative"),
        (Usage(prompt_tokens=101, completion_tokens=3), "absurd"),
        (Usage(prompt_tokens=10, completion_tokens=51), "absurd"),
    ])
    def test_each_problem_is_named(self, reported, problem):
        assert usage_problem(reported, **self.CEILINGS) == problem


class TestUnderReported:
    def test_an_honest_prompt_costs_no_tokenizer_pass_over_the_prompt(self, monkeypatch):
        counted = spy_tokenizer(monkeypatch)
        assert not under_reported(asked(), Usage(prompt_tokens=30, completion_tokens=12),
                                  prompt_bound=40, completion_text=ANSWER)
        assert counted == [ANSWER]

    def test_a_prompt_below_a_quarter_of_its_text_is_under_reported(self):
        assert under_reported(asked(), Usage(prompt_tokens=1, completion_tokens=12),
                              prompt_bound=40, completion_text=ANSWER)

    def test_far_below_the_bound_is_no_proof_while_the_text_alone_is_covered(self):
        # The bound holds images and tools the text does not: the text's count decides.
        text = tokenizer_count(PROMPT)
        assert not under_reported(asked(400), Usage(prompt_tokens=text, completion_tokens=12),
                                  prompt_bound=400, completion_text=ANSWER)

    def test_an_answer_below_a_quarter_of_its_text_is_under_reported(self):
        assert under_reported(asked(), Usage(prompt_tokens=30, completion_tokens=1),
                              prompt_bound=40, completion_text=ANSWER)

    def test_no_answer_text_no_answer_check(self, monkeypatch):
        counted = spy_tokenizer(monkeypatch)
        assert not under_reported(asked(), Usage(prompt_tokens=30, completion_tokens=0),
                                  prompt_bound=40, completion_text="")
        assert counted == []

    def test_the_prompt_is_counted_through_routings_memo(self, monkeypatch):
        memo: list[str] = []

        def count(text: str) -> int | None:
            memo.append(text)
            return tokenizer_count(text)

        ctx = asked()
        ctx.route = SimpleNamespace(prompt_estimate=SimpleNamespace(tokenizer_count=count))
        counted = spy_tokenizer(monkeypatch)
        assert under_reported(ctx, Usage(prompt_tokens=1, completion_tokens=12),
                              prompt_bound=40, completion_text=ANSWER)
        assert memo == [PROMPT] and PROMPT not in counted


class TestLocalUsage:
    def test_the_prompt_bound_of_the_model_and_the_answer_bound_of_its_provider(self):
        ctx = asked(40)
        ctx.estimated_prompt_tokens = 55
        assert local_usage(ctx, profile("m"), ANSWER) == Usage(
            prompt_tokens=40, completion_tokens=estimate_text_tokens(ANSWER, provider="openai"))
        # A model the request was not bounded on: the request's estimate.
        assert local_usage(ctx, profile("other"), "").prompt_tokens == 55

    def test_the_answer_bound_stops_at_the_output_limit_that_was_reserved(self):
        """An answer cut at max_tokens: the estimate's margin would charge past the
        reservation (how a limit leaks); the provider cannot bill more than the limit."""
        exact = tokenizer_count(ANSWER)
        assert estimate_text_tokens(ANSWER, provider="openai") > exact
        ctx = asked(40, max_output_tokens=exact)
        assert local_usage(ctx, profile("m"), ANSWER).completion_tokens == exact

    def test_an_answer_longer_than_its_limit_is_charged_as_long_as_it_is(self):
        """A provider that ignored max_tokens sent more than the limit: the text is the truth."""
        ctx = asked(40, max_output_tokens=tokenizer_count(ANSWER) - 3)
        assert local_usage(ctx, profile("m"), ANSWER).completion_tokens == estimate_text_tokens(
            ANSWER, provider="openai")


class TestBilledUsage:
    def test_a_report_that_passes_is_billed_as_it_is(self):
        reported = Usage(prompt_tokens=30, completion_tokens=12, cached_tokens=4)
        before = sum(rejected(r) for r in ("missing", "negative", "absurd", "under_reported"))
        assert billed_usage(asked(), profile("m"), reported, ANSWER) is reported
        assert sum(rejected(r) for r in ("missing", "negative", "absurd",
                                         "under_reported")) == before

    @pytest.mark.parametrize(("reported", "reason"), [
        (Usage(prompt_tokens=-50, completion_tokens=8), "negative"),
        (Usage(prompt_tokens=10**12, completion_tokens=8), "absurd"),
        (Usage(prompt_tokens=12.5, completion_tokens=8), "non_integer"),
        (Usage(prompt_tokens=1, completion_tokens=1), "under_reported"),
    ])
    def test_a_report_that_fails_is_replaced_logged_and_counted(self, reported, reason, caplog):
        ctx, served = asked(), profile("m")
        before = rejected(reason)
        with caplog.at_level(logging.WARNING, logger="llmops.gateway"):
            billed = billed_usage(ctx, served, reported, ANSWER)
        assert billed == local_usage(ctx, served, ANSWER)
        assert rejected(reason) == before + 1
        [record] = [r for r in caplog.records if r.getMessage().startswith("provider usage")]
        assert (record.reason, record.model, record.request_id) == (reason, "m", "req-1")

    def test_a_missing_report_is_counted_but_not_logged(self, caplog):
        ctx, served = asked(), profile("m")
        before = rejected("missing")
        with caplog.at_level(logging.WARNING, logger="llmops.gateway"):
            assert billed_usage(ctx, served, None, ANSWER) == local_usage(ctx, served, ANSWER)
        assert rejected("missing") == before + 1
        assert caplog.records == []

    def test_the_ceilings_are_twice_the_window_and_the_output_limit(self):
        # A prompt above our bound but within twice the model's window is a count, not a lie.
        served = profile("m", context_window=1000, max_output_tokens=100)
        ctx = asked(40)
        within = Usage(prompt_tokens=2000, completion_tokens=200)
        assert billed_usage(ctx, served, within, ANSWER) is within
        for beyond in (Usage(prompt_tokens=2001, completion_tokens=12),
                       Usage(prompt_tokens=30, completion_tokens=201)):
            assert billed_usage(ctx, served, beyond, ANSWER) == local_usage(ctx, served, ANSWER)

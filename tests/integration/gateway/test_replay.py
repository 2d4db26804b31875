"""`manage.py replay LOG --estimate`: a request log priced as llmops would serve it, no provider."""

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.toolkit.cache_engine import fresh_cache_engine

pytestmark = pytest.mark.django_db(transaction=True)  # routing reads on the gateway's DB pool


@pytest.fixture
def profiles(fake_profile, settings):
    settings.ENABLE_SEMANTIC_CACHE = True
    with fresh_cache_engine(settings) as engine:
        yield {
            "cheap": fake_profile("rp-cheap", tier="efficient", quality_score=0.9,
                                  input_price_per_token="0.000001",
                                  output_price_per_token="0.000002"),
            "dear": fake_profile("rp-dear", tier="premium", quality_score=0.95,
                                 input_price_per_token="0.00001",
                                 output_price_per_token="0.00003"),
            "engine": engine,
        }


def batch_line(custom_id: str, body: dict, url: str = "/v1/chat/completions") -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


def chat(model: str, content: str, **fields) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": content}], **fields}


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "requests.jsonl"
    repeated = chat("auto", "Which planet is known as the red planet?", max_tokens=100)
    path.write_text("\n".join([
        batch_line("r1", repeated),
        batch_line("r2", chat("rp-dear", "Summarize the causes of the French revolution.",
                              max_tokens=100)),
        batch_line("r3", repeated),
        batch_line("r4", repeated),
        batch_line("e1", {"model": "text-embedding-3-small", "input": "x"}, url="/v1/embeddings"),
        batch_line("bad", {"model": "auto"}),  # no messages
        "",
    ]))
    return path


def replay(*args) -> tuple[dict, str]:
    out, err = StringIO(), StringIO()
    call_command("replay", *args, "--estimate", "--json", stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue()


def test_the_estimate_calls_no_provider(profiles, log, make_api_key, fake_provider):
    team = make_api_key(team="replayers").api_key.team
    team.reference_model = "rp-dear"
    team.save()
    data, progress = replay(str(log), "--team", "replayers")
    assert len(fake_provider.requests) == 0  # the provider was never called
    assert data["requests"] == 4
    assert data["skipped"] == {"invalid request": 1, "not POST /v1/chat/completions": 1}
    # The repeated question: one miss routed to the cheap model, then two exact hits.
    assert (data["exact_hits"], data["routed"], data["routed_strong"]) == (2, 1, 0)
    assert data["models"] == {"rp-cheap": 1, "rp-dear": 1}
    as_sent, estimated = Decimal(data["bill_as_sent"]), Decimal(data["bill_estimated"])
    assert estimated < as_sent
    assert Decimal(data["saved_total"]) == as_sent - estimated
    assert Decimal(data["saved_routing"]) > 0 and Decimal(data["saved_exact"]) > 0
    assert "request" in progress  # the progress bar, on stderr


def test_the_gateway_cache_is_left_alone(profiles, log, fake_provider):
    replay(str(log))
    assert list(profiles["engine"].store.namespaces()) == []  # the scratch store held it all
    assert len(fake_provider.requests) == 0


def test_without_a_reference_auto_claims_no_routing_saving(profiles, log, settings):
    settings.LLMOPS_REFERENCE_MODEL = ""
    data, _ = replay(str(log))
    assert Decimal(data["saved_routing"]) == 0 and data["exact_hits"] == 2


def test_text_report_and_clear_errors(profiles, log, tmp_path):
    out = StringIO()
    call_command("replay", str(log), "--estimate", "--no-progress", stdout=out)
    assert "estimated bill" in out.getvalue() and "exact cache hits" in out.getvalue()
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    with pytest.raises(CommandError, match="line 1: not JSON"):
        call_command("replay", str(broken), "--estimate")
    with pytest.raises(CommandError, match="--estimate"):
        call_command("replay", str(log))
    with pytest.raises(CommandError, match="No team"):
        call_command("replay", str(log), "--estimate", "--team", "nobody")

"""`manage.py replay LOG` without --estimate: a log really sent through a key to the live
gateway (fake provider behind it); the bill, outcome counts and Batch output lines."""

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from budgets.models import UsageRecord
from tests.toolkit.cache_engine import fresh_cache_engine


@pytest.fixture
def gateway(live_gateway, fake_profile, settings):
    settings.ENABLE_SEMANTIC_CACHE = True
    with fresh_cache_engine(settings):
        fake_profile("rs-model", tier="standard", input_price_per_token="0.000001",
                     output_price_per_token="0.000002")
        yield live_gateway


def line(custom_id: str, body: dict, *, url: str = "/v1/chat/completions",
         method: str = "POST") -> str:
    return json.dumps({"custom_id": custom_id, "method": method, "url": url, "body": body})


def chat(content: str, model: str = "rs-model") -> dict:
    return {"model": model, "messages": [{"role": "user", "content": content}],
            "max_tokens": 50}


def test_a_log_is_sent_billed_and_written_as_batch_output(gateway, api_key, fake_provider,
                                                          tmp_path):
    log, output, key_file = (tmp_path / "log.jsonl", tmp_path / "out.jsonl",
                             tmp_path / "key.txt")
    log.write_text("\n".join([
        line("a", chat("Name the largest ocean on Earth.")),
        line("b", chat("Which gas do plants take in for photosynthesis?")),
        line("c", chat("hello", model="no-such-model")),
        line("d", {}, method="GET", url="/v1/models"),
    ]) + "\n")
    key_file.write_text(api_key.key + "\n")
    out, err = StringIO(), StringIO()
    call_command("replay", str(log), "--url", gateway.url, "--key-file", str(key_file),
                 "--concurrency", "2", "--rate", "50", "--output", str(output), "--json",
                 stdout=out, stderr=err)
    data = json.loads(out.getvalue())
    assert "request" in err.getvalue()  # the progress bar
    assert data["sent"] == 3 and data["skipped"] == {"not POST": 1}
    assert len(fake_provider.requests) == 2  # the unknown model never went upstream
    rows = {row["custom_id"]: row for row in map(json.loads, output.read_text().splitlines())}
    assert set(rows) == {"a", "b", "c"}
    for custom_id in ("a", "b"):
        response = rows[custom_id]["response"]
        assert response["status_code"] == 200 and rows[custom_id]["error"] is None
        assert response["body"]["object"] == "chat.completion"
        assert UsageRecord.objects.filter(request_id=response["request_id"]).exists()
    assert rows["c"]["response"]["status_code"] >= 400
    assert "error" in rows["c"]["response"]["body"]
    assert sum(data["statuses"].values()) == 3 and data["statuses"]["200"] == 2
    ledger = sum(UsageRecord.objects.values_list("cost", flat=True), Decimal(0))
    assert Decimal(data["bill"]) == pytest.approx(ledger, abs=Decimal("1e-9")) and ledger > 0
    # Named models, no cache hit: nothing saved, the bill is the bill as sent.
    assert Decimal(data["bill_as_sent"]) == Decimal(data["bill"])


def test_a_repeat_is_a_hit_and_the_bill_as_sent_adds_what_it_saved(gateway, api_key, tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(line("first", chat("Who wrote the novel Moby-Dick?")) + "\n")
    args = (str(log), "--url", gateway.url, "--key", api_key.key, "--json", "--no-progress")
    first = json.loads(_run(*args))
    for _ in range(50):  # the answer is stored off the request path
        again = json.loads(_run(*args))
        if again["cache"].get("hit_exact"):
            break
    assert again["cache"] == {"hit_exact": 1} and Decimal(again["bill"]) == 0
    assert Decimal(again["bill_as_sent"]) == Decimal(first["bill"]) > 0
    assert again["bill_cut"] == 1.0


def test_text_bill_and_a_missing_key(gateway, tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(line("x", chat("hi")) + "\n")
    out = StringIO()
    call_command("replay", str(log), "--url", gateway.url, "--key", "sk-not-a-key",
                 "--no-progress", stdout=out)
    assert "bill as sent" in out.getvalue() and "status 401: 1" in out.getvalue()


def _run(*args) -> str:
    out = StringIO()
    call_command("replay", *args, stdout=out, stderr=StringIO())
    return out.getvalue()

"""Fixtures for the observability end-to-end tests: routes and a little real gateway traffic."""

import json
import shutil
import time
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest


def binary_or_skip(name: str) -> str:
    """Return the path of `name`, or skip: CI installs it (.ci/run), a laptop may not have it."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {name}); CI installs it")
    return path


@dataclass
class Traffic:
    request_ids: list[str]
    statuses: list[int]


@pytest.fixture
def gateway_traffic(live_gateway, openai_client, api_key, make_api_key, fake_profile,
                    fake_provider, settings) -> Traffic:
    """Send a little of every kind of request through the live gateway.

    Plain, repeated (cache), streamed (TTFT), auto-routed, a failing model with a fallback, a
    failing model without one, one refused by a budget, a user's feedback and one judged answer:
    every metric the dashboard and the alerts query gets at least one series.
    """
    from budgets.models import Budget
    from llmops.observability.tasks import judge_response
    from tests.toolkit.fakeprovider import Behavior

    Budget.objects.create(scope="team", team=api_key.api_key.team, daily_limit=Decimal("5"))
    fake_profile("flaky", upstream="fake-error-500", fallbacks=["simulated-standard"])
    fake_profile("broken", upstream="fake-error-503")
    judge_profile = fake_profile("judge-model", upstream="judge-upstream")
    settings.QUALITY_JUDGE_MODEL = judge_profile.name

    ids, statuses = [], []
    headers = {"Authorization": f"Bearer {api_key.key}"}

    def send(model: str, content: str, *, key: str = api_key.key, **extra) -> httpx.Response:
        response = httpx.post(f"{live_gateway.api_base}/chat/completions",
                              headers={"Authorization": f"Bearer {key}"},
                              json={"model": model,
                                    "messages": [{"role": "user", "content": content}], **extra},
                              timeout=30)
        ids.append(response.headers.get("x-request-id"))
        statuses.append(response.status_code)
        return response

    send("simulated-standard", "What is the capital of France?")
    # The cache stores answers off the request path: ask again until the answer comes from it.
    for _ in range(30):
        if send("simulated-standard", "What is the capital of France?").headers.get(
                "x-llmops-cache", "").startswith("hit"):
            break
        time.sleep(0.1)
    send("auto", "Summarize the plot of Hamlet in one line.")
    send("simulated-efficient", "Tell me a short story", stream=True,
         stream_options={"include_usage": True})
    send("flaky", "Which fallback answers this?")
    send("broken", "Nobody answers this.")
    # A key whose budget is spent: refused (402) before any model is called.
    broke = make_api_key(team="team-broke", user="carol")
    Budget.objects.create(scope="key", api_key=broke.api_key, daily_limit=Decimal("0"))
    send("simulated-standard", "Nothing left to spend on this.", key=broke.key)

    feedback = httpx.post(f"{live_gateway.api_base}/feedback", headers=headers,
                          json={"request_id": ids[0], "thumbs": "up", "task_type": "general"},
                          timeout=30)
    assert feedback.status_code == 201, feedback.text
    fake_provider.enqueue(Behavior(text=json.dumps(
        {"score": 4, "task_type": "general", "unsupported_claims": ["made-up fact"]})))
    judge_response.delay(ids[2], [{"role": "user", "content": "Summarize Hamlet."}],
                         "Hamlet is a comedy.", api_key.api_key.team_id).get()
    return Traffic(request_ids=ids, statuses=statuses)

"""`auto` on a fresh install, end to end: the shipped default predictor sends simple prompts to
the efficient tier and hard ones up, until the deployment's own examples replace it."""

import json
import time

import openai
import pytest

from routing import selectors
from routing.default_predictor import SHIPPED_EXAMPLES, default_models
from routing.examples import read_labels
from routing.predictor import TIER
from routing.services import embedder_embed, profiles_load_defaults, routing_examples_import

SIMPLE = ["hi", "What is 2+2?", "Good morning! How are you?", "What is the capital of Peru?",
          "Translate 'see you tomorrow' into Spanish.",
          "Rewrite this more politely: fix the printer today."]
HARD = ["Prove that there are infinitely many primes of the form 4k + 3.",
        "A tank holds 500 litres. Pipe A fills it in 5 hours, pipe B in 8 hours and a leak drains "
        "it in 20 hours. Both pipes run for 2 hours, then A is closed. How long until it is full? "
        "Show every step.",
        "Implement a persistent, thread-safe skip list in C++ with range queries and write tests "
        "for concurrent inserts and deletes.",
        "Write a detailed analysis of the economic and political causes of the Great Depression "
        "and evaluate which mattered most."]


@pytest.fixture
def fresh_install(db, settings):
    """What `make run` installs (default profiles, no routing examples), with the default
    predictor on and the semantic cache off (each prompt is routed, never served from it)."""
    settings.ROUTING_DEFAULT_EXAMPLES = str(SHIPPED_EXAMPLES)
    settings.ENABLE_SEMANTIC_CACHE = False
    profiles_load_defaults()
    default_models()  # the gateway's first refit fits it; here once, before the clock starts
    selectors.invalidate_predictor()
    yield
    selectors.invalidate_predictor()


def client_for(live_gateway, make_api_key, tier: str) -> openai.OpenAI:
    key = make_api_key(team=f"team-{tier}", user=f"user-{tier}", tier=tier)
    return openai.OpenAI(base_url=live_gateway.api_base, api_key=key.key, max_retries=0,
                         timeout=60)


def served(client: openai.OpenAI, prompt: str) -> str:
    """Return the model that served `prompt`, sent as `auto`."""
    reply = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": prompt}],
        extra_headers={"Cache-Control": "no-store"})
    return reply.usage.model_extra["llmops"]["model"]


def wait_for_refit(client: openai.OpenAI, ready, timeout: float = 120.0) -> None:
    """Requests never wait for a refit: send one, then wait until the gateway's predictor (this
    process's: the live gateway runs here) is `ready`."""
    served(client, "warm up")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = selectors._predictor
        if current is not None and ready(current[2]):
            return
        time.sleep(0.2)
    pytest.fail("the gateway's predictor was never refitted")


def test_auto_sends_simple_prompts_to_the_efficient_tier_and_hard_ones_up(
        fresh_install, live_gateway, make_api_key):
    standard = client_for(live_gateway, make_api_key, "standard")
    wait_for_refit(standard, lambda predictor: predictor.defaults)
    assert {p: served(standard, p) for p in SIMPLE} == dict.fromkeys(
        SIMPLE, "simulated-efficient")
    # A standard-tier key: up to the standard tier (its static prior meets the key's level).
    assert {p: served(standard, p) for p in HARD} == dict.fromkeys(HARD, "simulated-standard")
    premium = client_for(live_gateway, make_api_key, "premium")
    assert {p: served(premium, p) for p in HARD} == dict.fromkeys(HARD, "simulated-premium")
    assert served(premium, "hello there") == "simulated-efficient"


def test_without_the_default_auto_routes_on_priors(fresh_install, live_gateway, make_api_key,
                                                   settings):
    settings.ROUTING_DEFAULT_EXAMPLES = ""
    standard = client_for(live_gateway, make_api_key, "standard")
    wait_for_refit(standard, lambda predictor: not predictor.defaults)
    assert served(standard, "hi") == "simulated-standard"


def test_the_deployments_own_examples_replace_the_default(fresh_install, live_gateway,
                                                          make_api_key, tmp_path):
    # The deployment's outcomes say the opposite of the default: its efficient model fails
    # small talk and short facts, and handles the hard problems.
    own = tmp_path / "own.jsonl"
    with open(SHIPPED_EXAMPLES, encoding="utf-8") as shipped, open(own, "w") as out:
        for line in shipped:
            row = json.loads(line)
            row["weak_correct"] = 1 - row["weak_correct"]
            out.write(json.dumps(row) + "\n")
    from semcache.embedder import get_embedder

    labels = read_labels(own, targets={"weak": (TIER, "efficient"),
                                       "strong": (TIER, "premium")}, source="own")
    routing_examples_import(labels=[label for label in labels if label.tier == "efficient"],
                            embed=embedder_embed(get_embedder()))
    standard = client_for(live_gateway, make_api_key, "standard")
    wait_for_refit(standard, lambda predictor: (TIER, "efficient") in predictor.learned)
    assert served(standard, "hi") == "simulated-standard"
    assert served(standard, HARD[2]) == "simulated-efficient"

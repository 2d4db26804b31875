"""Savings per request by source, and shadow mode's estimates, as settlement fills them in."""

from decimal import Decimal
from types import SimpleNamespace

from llmops.gateway.context import SavingsOptions
from llmops.gateway.settlement import Outcome, entry_finish
from llmops.gateway.shadow import ShadowFindings, withhold_hit
from llmops.providers.base import Usage
from routing.pricing import usage_cost
from tests.unit.gateway.factories import profile, request

CHEAP = profile("cheap", input_price="0.000001", output_price="0.000002")
DEAR = profile("dear", input_price="0.00001", output_price="0.00003")
USAGE = Usage(prompt_tokens=1000, completion_tokens=200, cached_tokens=100)


def served(ctx, model, usage: Usage = USAGE):
    outcome = Outcome.of(ctx, reason="cheapest_capable")
    outcome.profile, outcome.usage = model, usage
    return entry_finish(ctx, outcome)


def cost(model, usage: Usage = USAGE) -> Decimal:
    return usage_cost(model, prompt_tokens=usage.prompt_tokens,
                      completion_tokens=usage.completion_tokens,
                      cached_tokens=usage.cached_tokens)


def a_hit(kind: str = "semantic", similarity: float | None = 0.93):
    return SimpleNamespace(kind=kind, similarity=similarity, entry_id="entry-7", model="dear",
                           cost=Decimal("0.004"))


class TestRealized:
    def test_routing_saves_the_reference_cost_at_the_real_tokens_minus_the_charge(self):
        ctx = request(model="auto", reference=DEAR)
        entry = served(ctx, CHEAP)
        assert entry.reference_model == "dear"
        assert entry.routing_saved == cost(DEAR) - cost(CHEAP) > 0
        assert entry.cost_saved == entry.routing_saved and entry.cache_saved == 0

    def test_a_dearer_model_than_the_reference_saves_a_negative_amount(self):
        ctx = request(model="cheap", reference=CHEAP)  # the named model fell back to `dear`
        entry = served(ctx, DEAR)
        assert entry.routing_saved == cost(CHEAP) - cost(DEAR) < 0
        assert entry.cost_saved == entry.routing_saved

    def test_the_reference_itself_saves_exactly_nothing(self):
        entry = served(request(model="dear", reference=DEAR), DEAR)
        assert (entry.reference_model, entry.routing_saved, entry.cost_saved) == ("dear", 0, 0)

    def test_without_a_usable_reference_no_routing_saving_is_claimed(self):
        entry = served(request(model="auto", reference=None), CHEAP)
        assert (entry.reference_model, entry.routing_saved, entry.cost_saved) == ("", 0, 0)

    def test_a_cache_hit_saves_what_the_call_that_stored_it_cost(self):
        ctx = request(model="auto", reference=DEAR)
        ctx.cache_status = "hit_semantic"
        entry = entry_finish(ctx, Outcome.of(ctx), cost_saved=Decimal("0.004"), hit=a_hit())
        assert (entry.cost, entry.cache_saved, entry.routing_saved) == (0, Decimal("0.004"), 0)
        assert entry.cost_saved == Decimal("0.004") and entry.cache_status == "hit_semantic"


class TestShadow:
    def shadow_ctx(self, **fields):
        return request(savings=SavingsOptions(shadow=True), **fields)

    def test_a_withheld_hit_is_served_as_a_miss_and_not_stored_again(self):
        ctx = self.shadow_ctx(model="dear")
        ctx.cache_status, ctx.cache_similarity = "hit_semantic", 0.93
        assert withhold_hit(ctx, a_hit()) is None
        assert (ctx.cache_status, ctx.cache_similarity) == ("miss", None)
        assert ctx.cache_control.no_store and ctx.shadow.hit.entry_id == "entry-7"

    def test_outside_shadow_mode_a_hit_is_served(self):
        ctx = request(model="dear")
        hit = a_hit()
        assert withhold_hit(ctx, hit) is hit and ctx.shadow is None

    def test_a_would_hit_would_have_avoided_the_whole_charge(self):
        ctx = self.shadow_ctx(model="dear", reference=DEAR)
        ctx.shadow = ShadowFindings(hit=a_hit("exact", None), model=CHEAP)
        entry = served(ctx, DEAR)
        assert entry.shadow and entry.shadow_cache_status == "hit_exact"
        assert (entry.shadow_cache_entry, entry.shadow_cache_similarity) == ("entry-7", 1.0)
        assert entry.shadow_cache_saved == entry.cost == cost(DEAR)
        assert entry.shadow_model == "cheap" and entry.shadow_routing_saved == 0
        # Served as sent: nothing realized.
        assert (entry.cache_saved, entry.routing_saved, entry.cost_saved) == (0, 0, 0)

    def test_a_would_route_saves_the_charge_minus_that_model_at_the_same_tokens(self):
        ctx = self.shadow_ctx(model="dear", reference=DEAR)
        ctx.shadow = ShadowFindings(model=CHEAP)
        entry = served(ctx, DEAR)
        assert entry.shadow_cache_status == "" and entry.shadow_cache_saved == 0
        assert entry.shadow_routing_saved == cost(DEAR) - cost(CHEAP) > 0

    def test_rows_outside_shadow_mode_say_so(self):
        entry = served(request(model="dear", reference=DEAR), DEAR)
        assert not entry.shadow and entry.shadow_model == "" and entry.shadow_routing_saved == 0

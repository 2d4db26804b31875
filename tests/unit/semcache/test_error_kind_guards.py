"""The guards for the error kinds read by hand (docs/semantic-cache.md, "Judged evaluation"):
pointers to unseen content, role swaps, opposite poles, unreadable text. Each refuses its own
cases and lets the rewordings through. Our own sentences, none from QQP."""

import pytest

from semcache.antonyms import opposed, poles
from semcache.decision import decide
from semcache.deixis import refers_to_unseen
from semcache.gateway import answer_cacheable
from semcache.guards import compare, text_features
from semcache.index import Candidate
from semcache.unknown_tokens import unreadable
from tests.unit.semcache.helpers import ANSWER, make_ctx


class TestDeixis:
    @pytest.mark.parametrize("text", [
        "How do I solve this quadratic equation below?",
        "Can someone translate the Greek text in this picture?",
        "What does this code do?",
        "What is the output of the following C++ program?",
        "Please proofread the attached essay.",
        "What does the sentence above mean?",
        "Who is the woman in the photo?",
        "What is the answer to the following?",
        "What does this mean?",
        "Can anyone solve this?",
        "Is this chart misleading?",
        "Which font is used in this logo?",
    ])
    def test_points_at_unseen_content(self, text):
        assert refers_to_unseen(text)

    @pytest.mark.parametrize("text", [
        "What are the best things to do in Lisbon this weekend?",
        "Is this the right time to buy a house?",
        "What does this code do: print(sum(range(10)))",
        'Translate this sentence into Spanish: "the cat sleeps on the sofa"',
        "Solve 3x + 4 = 19 for x; is the method below the fastest?",
        "Is it true that code reviews catch most bugs?",
        "How do I take a screenshot on a Mac?",
        "What is the average temperature above the Arctic circle?",
        "How do I read a file line by line in Go?",
        "What happened this year in astronomy?",
    ])
    def test_carries_or_names_its_content(self, text):
        assert not refers_to_unseen(text)

    def test_never_served_not_even_identical_text(self):
        text = "How do I solve this quadratic equation below?"
        assert decide(text, [Candidate("x", 1.0, text)], threshold=0.5) is None
        assert decide("How can I solve the equation below?",
                      [Candidate("x", 0.99, "How do I solve this equation below?")],
                      threshold=0.5) is None

    def test_a_stored_pointer_is_not_served_either(self):
        assert compare("How do I solve quadratic equations?",
                       "How do I solve this quadratic equation?").refused == "deictic"

    def test_never_stored(self, memory_engine):
        ctx = make_ctx("Who can translate the Arabic writing in this picture?")
        ctx.cache_status = "miss"
        assert not answer_cacheable(ctx, message=ANSWER, finish_reason="stop")

    def test_a_message_with_the_image_itself_may_be_stored(self, memory_engine):
        ctx = make_ctx(messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}])
        ctx.cache_status = "miss"
        assert answer_cacheable(ctx, message=ANSWER, finish_reason="stop")


class TestRoleSwap:
    @pytest.mark.parametrize("query,stored", [
        ("What do people in Lyon think of Nice?", "What do people in Nice think of Lyon?"),
        ("Why is the cat chasing the dog?", "Why is the dog chasing the cat?"),
        ("Why do lawyers distrust journalists?", "Why do journalists distrust lawyers?"),
        ("How do I migrate from Postgres to MySQL?", "How do I migrate from MySQL to Postgres?"),
        ("Is a flight from New Delhi to Hong Kong cheap?",
         "Is a flight from Hong Kong to New Delhi cheap?"),
    ])
    def test_swapped_roles_are_refused(self, query, stored):
        assert compare(query, stored).refused in ("role", "order")

    @pytest.mark.parametrize("query,stored", [
        ("Which is healthier, tea or coffee?", "Which is healthier, coffee or tea?"),
        ("What is the difference between a crocodile and an alligator?",
         "What is the difference between an alligator and a crocodile?"),
        ("What are good science fiction novels?", "What are good novels of science fiction?"),
        ("How can I mix oil with water?", "How can I mix water with oil?"),
    ])
    def test_reorderings_that_keep_the_meaning_pass(self, query, stored):
        assert compare(query, stored).refused is None


class TestAntonyms:
    @pytest.mark.parametrize("query,stored", [
        ("What are the positive effects of remote work?",
         "What are the negative effects of remote work?"),
        ("How do I maximize my savings rate?", "How do I minimize my savings rate?"),
        ("Is it hard to cycle up a steep hill?", "Is it hard to cycle down a steep hill?"),
        ("Should I stand in front of the speaker?", "Should I stand behind the speaker?"),
        ("What should I eat before a marathon?", "What should I eat after a marathon?"),
        ("When is the best time to buy a used car?", "When is the best time to sell a used car?"),
        ("Which countries export the most coffee?", "Which countries import the most coffee?"),
        ("How can I gain weight quickly?", "How can I lose weight quickly?"),
        ("How do I turn on dark mode?", "How do I turn off dark mode?"),
        ("How do I zoom in on a PDF?", "How do I zoom out on a PDF?"),
        ("What time is hotel check-in?", "What time is hotel check-out?"),
        ("How do I opt in to the newsletter?", "How do I opt out of the newsletter?"),
    ])
    def test_opposite_poles_are_refused(self, query, stored):
        assert compare(query, stored).refused == "antonym"

    def test_naming_both_poles_is_not_opposing_one(self):
        assert not opposed(poles(("pros", "and", "cons")), poles(("cons",)))

    @pytest.mark.parametrize("query,stored", [
        ("What are the advantages of electric cars?", "What are the benefits of electric cars?"),
        ("What are the pros and cons of living alone?",
         "What are the advantages and disadvantages of living alone?"),
        ("How can I increase my vocabulary?", "How do I increase my vocabulary fast?"),
        ("Where can I buy cheap books online?", "Where can I purchase cheap books online?"),
        ("How do I zoom in on a photo?", "How can I zoom in on a picture?"),
        ("Can I check in online for my flight?",
         "Is it possible to check in online for my flight?"),
    ])
    def test_same_pole_rewordings_pass(self, query, stored):
        assert compare(query, stored).refused is None


class TestUnreadable:
    def test_emoji_and_cjk_are_read_as_unknown(self):
        assert unreadable("What does 🦊 mean?").parts == {"🦊"}
        assert unreadable("ไทย").share == 1.0
        assert unreadable("Plain ASCII text").share == 0.0

    @pytest.mark.parametrize("query,stored", [
        ("What does 🦊 mean?", "What does 🐼 mean?"),
        ("早上好", "晚上好"),
        ("What does 早上好 mean?", "What does 晚上好 mean?"),
    ])
    def test_different_unknown_parts_are_refused(self, query, stored):
        assert compare(query, stored).refused == "unreadable"

    @pytest.mark.parametrize("query,stored", [
        ("What does 🦊 mean?", "what does 🦊 mean"),
        ("How do I learn to juggle? 🙏", "How can I learn to juggle?"),
        ("¿Qué es la fotosíntesis?", "¿Qué significa la fotosíntesis?"),
    ])
    def test_same_or_negligible_unknown_parts_pass(self, query, stored):
        assert compare(query, stored).refused is None


class TestDecisionRefusesEachKind:
    """End to end through semcache.decision.decide: a near-identical cosine is not enough."""

    @pytest.mark.parametrize("query,stored", [
        ("What does this code do?", "What does this code snippet do?"),
        ("What do people in Lyon think of Nice?", "What do people in Nice think of Lyon?"),
        ("What are the positive effects of remote work?",
         "What are the negative effects of remote work?"),
        ("Is Nash County in Texas?", "Is Davidson County in Texas?"),
        ("What does 🦊 mean?", "What does 🐼 mean?"),
    ])
    def test_refused_at_a_cosine_of_0_999(self, query, stored):
        assert decide(query, [Candidate("x", 0.999, stored)], threshold=0.5) is None

    def test_features_are_computed_once_per_text(self):
        text_features.cache_clear()
        compare("How can I gain weight?", "How can I lose weight?")
        compare("How can I gain weight?", "How can I lose weight?")
        assert text_features.cache_info().hits == 2

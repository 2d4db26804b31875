"""Namespaces: what separates entries, what normalizes away."""

from semcache.namespaces import build_scope


def scope(content="What is the capital of France?", **kwargs):
    options = {"team_id": 1, "requested_model": "auto", "answer_params": {}}
    options.update(kwargs)
    messages = options.pop("messages", None) or [{"role": "user", "content": content}]
    return build_scope(messages=messages, **options)


class TestNamespace:
    def test_same_request_same_namespace_and_exact_key(self):
        a, b = scope(), scope("  What is the   capital of France? ")
        assert a.namespace == b.namespace
        assert a.exact_key == b.exact_key

    def test_tenant_separates(self):
        assert scope(team_id=1).namespace != scope(team_id=2).namespace
        assert scope(team_id=1).exact_key != scope(team_id=2).exact_key

    def test_opt_in_sharing_pools_teams(self):
        assert scope(team_id=1, shared=True).namespace == scope(team_id=2, shared=True).namespace
        assert scope(team_id=1, shared=True).namespace != scope(team_id=1).namespace

    def test_model_scope_separates(self):
        assert scope(requested_model="gpt-4o").namespace != scope(requested_model="auto").namespace
        assert scope(requested_model="").model_scope == "auto"

    def test_answer_params_separate_with_temperature_buckets(self):
        base = scope(answer_params={"temperature": 0.7}).namespace
        assert scope(answer_params={"temperature": 0.71}).namespace == base
        assert scope(answer_params={"temperature": 0.0}).namespace != base
        for params in ({"top_p": 0.5}, {"stop": ["\n"]}, {"response_format": {"type": "json"}},
                       {"tools": [{"type": "function", "function": {"name": "f"}}]}):
            assert scope(answer_params=params).namespace != scope().namespace

    def test_system_prompt_separates(self):
        user = {"role": "user", "content": "Hi"}
        a = scope(messages=[{"role": "system", "content": "Be terse."}, user])
        b = scope(messages=[{"role": "system", "content": "Be verbose."}, user])
        assert a.namespace != b.namespace
        assert a.query_text == b.query_text == "Hi"

    def test_multi_turn_keys_on_whole_conversation(self):
        def convo(topic):
            return [{"role": "user", "content": f"Tell me about {topic}."},
                    {"role": "assistant", "content": "..."},
                    {"role": "user", "content": "How big is it?"}]

        a, b = scope(messages=convo("France")), scope(messages=convo("Spain"))
        assert a.namespace != b.namespace and a.exact_key != b.exact_key
        assert a.query_text == "How big is it?"

    def test_non_text_last_message_is_exact_only(self):
        image = [{"type": "text", "text": "What is this?"},
                 {"type": "image_url", "image_url": {"url": "data:..."}}]
        s = scope(messages=[{"role": "user", "content": image}])
        assert not s.semantic and s.query_text == ""
        tool = scope(messages=[{"role": "user", "content": "x"},
                               {"role": "tool", "content": "42", "tool_call_id": "c1"}])
        assert not tool.semantic


class TestEmbedderSeparates:
    """fp32 and int8 cosines differ by ~0.005 (docs/semantic-cache.md, "int8 embedder"): an entry
    embedded by one precision is never compared with a query embedded by the other, as after an
    upgrade that changes SEMCACHE_EMBED_PRECISION while Redis keeps the old entries."""

    def test_precision_separates_namespace_and_exact_key(self):
        fp32, int8 = scope(vectors="fp32"), scope(vectors="int8")
        assert fp32.namespace != int8.namespace
        assert fp32.exact_key != int8.exact_key

    def test_default_is_the_configured_precision(self, settings):
        assert settings.SEMCACHE_EMBED_PRECISION == "fp32"
        assert scope().namespace == scope(vectors="fp32").namespace
        settings.SEMCACHE_EMBED_PRECISION = "int8"
        assert scope().namespace == scope(vectors="int8").namespace
        assert scope().namespace != scope(vectors="fp32").namespace

    def test_an_other_precision_entry_is_not_found(self, memory_engine):
        import numpy as np

        vector = np.ones(384, dtype=np.float32) / np.sqrt(384)
        stored = scope(vectors="fp32")
        memory_engine.put(stored, vector=vector, message={"role": "assistant", "content": "Paris"},
                          finish_reason="stop", model="m", usage={}, cost=0, ttl_seconds=60)
        assert memory_engine.find_semantic(stored, vector, threshold=0.9) is not None
        query = scope(vectors="int8")
        assert memory_engine.find_exact(query) is None
        assert memory_engine.find_semantic(query, vector, threshold=0.9) is None

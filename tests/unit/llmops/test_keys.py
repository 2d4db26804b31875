"""API key secrets: format, hashing with a named algorithm, constant-time verification."""

from llmops.keys import KEY_PREFIX, generate_key, hash_secret, split_key, verify_secret


def test_generated_key_round_trips():
    key, prefix, hashed = generate_key()
    assert key.startswith(KEY_PREFIX)
    assert split_key(key) == (prefix, key.split(".", 1)[1])
    assert hashed.startswith("sha256$")
    assert key.split(".", 1)[1] not in hashed
    assert verify_secret(key.split(".", 1)[1], hashed)


def test_wrong_secret_and_unknown_algorithm_are_refused():
    _, _, hashed = generate_key()
    assert not verify_secret("not-the-secret", hashed)
    assert not verify_secret("x", "md5$" + hash_secret("x").split("$", 1)[1])


def test_foreign_keys_are_not_ours():
    for raw in ("sk-openai-123", "llmops-", "llmops-abc", "llmops-.secret",
                "llmops-" + "p" * 17 + ".s"):
        assert split_key(raw) is None

"""API key secrets: generate, hash (with the algorithm named in the stored value), verify."""

import hashlib
import hmac
import secrets

KEY_PREFIX = "llmops-"
_ALGORITHM = "sha256"


def generate_key() -> tuple[str, str, str]:
    """Return `(full_key, prefix, hashed_secret)` for a new key; only the hash is stored.

    The secret carries 256 bits of randomness, so a fast hash is enough: there is nothing to
    brute-force that a slow password hash would protect.
    """
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"{KEY_PREFIX}{prefix}.{secret}", prefix, hash_secret(secret)


def hash_secret(secret: str) -> str:
    """Return the stored form of a secret: `<algorithm>$<hex digest>`."""
    return f"{_ALGORITHM}${hashlib.sha256(secret.encode()).hexdigest()}"


def split_key(raw: str) -> tuple[str, str] | None:
    """Return `(prefix, secret)` from a presented key, or None when it is not ours."""
    if not raw.startswith(KEY_PREFIX):
        return None
    prefix, sep, secret = raw[len(KEY_PREFIX) :].partition(".")
    if not sep or not prefix or not secret or len(prefix) > 16:
        return None
    return prefix, secret


def verify_secret(secret: str, hashed: str) -> bool:
    """Return whether `secret` matches `hashed`, compared in constant time."""
    algorithm, _, digest = hashed.partition("$")
    if algorithm != _ALGORITHM:
        return False
    candidate = hashlib.sha256(secret.encode()).hexdigest()
    return hmac.compare_digest(candidate, digest)


# A fixed stored value to verify against when the prefix is unknown, so that the time taken does
# not tell an attacker whether a prefix exists.
DUMMY_HASH = hash_secret("llmops-dummy-secret")

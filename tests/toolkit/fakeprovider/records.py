"""What the fake keeps: every request it received (keys redacted) and its invoice lines."""

import hashlib
from dataclasses import dataclass

from tests.toolkit.fakeprovider.behaviors import Behavior


def key_fingerprint(key: str) -> str:
    """Return how a recorded request shows `key` (tests compare, logs never see the key)."""
    return f"[redacted:{hashlib.sha256(key.encode()).hexdigest()[:12]}]"


@dataclass
class RecordedRequest:
    """One request the fake received. Authorization and x-api-key are fingerprints."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict | None
    behavior: Behavior

    def sent_key(self, key: str) -> bool:
        """Return True when this request carried `key` (as Bearer token or x-api-key)."""
        fingerprint = key_fingerprint(key)
        return fingerprint in (self.headers.get("authorization", "").partition(" ")[2],
                               self.headers.get("x-api-key", ""))


def redact(headers: dict[str, str]) -> dict[str, str]:
    """Return `headers` with the keys they carry replaced by their fingerprints."""
    headers = dict(headers)
    if "authorization" in headers:
        scheme, _, token = headers["authorization"].partition(" ")
        headers["authorization"] = f"{scheme} {key_fingerprint(token)}"
    if "x-api-key" in headers:
        headers["x-api-key"] = key_fingerprint(headers["x-api-key"])
    return headers


@dataclass
class InvoiceLine:
    """What the provider bills one request id: every call that carried it, summed."""

    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cut: bool = False  # an answer was not delivered whole (the client left, or the fake cut it)
    calls: int = 0


@dataclass
class Bill:
    """One call being answered: its invoice line and the answer tokens it was billed so far."""

    line: InvoiceLine
    completion_tokens: int = 0
    delivered: bool = False


def raw_key(headers: dict[str, str]) -> str:
    """Return the key a request carried, as the Bearer token or the x-api-key header."""
    return headers.get("authorization", "").partition(" ")[2] or headers.get("x-api-key", "")

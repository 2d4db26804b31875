"""A real HTTP fake of OpenAI Chat Completions, OpenAI Responses, Anthropic Messages and OpenAI
Embeddings, scripted per request.

It listens on 127.0.0.1 (ephemeral port) in a background thread running its own asyncio loop,
so thousands of concurrent and slow connections cost little. Each request's behaviour comes from
the server's FIFO queue (`server.enqueue(Behavior(...))`) or, when the queue is empty, from the
upstream model name (`fake-error-429-ra-3`, `fake-slow-2000-pace-10`, `fake-cut-3`, ... see
`behavior_for_model`) or, for a real model name, the same rules in an `X-Fake-Behavior` request
header (`slow-2000-pace-10`; a profile sends it through its `extra_headers` option). Every
request is recorded with its keys redacted to a fingerprint.

    with run_fake_provider() as server:
        server.enqueue(Behavior(status=500))
        ... ProviderCall(base_url=server.base_url, upstream_model="gpt-4o-mini", ...)
        assert server.requests[-1].body["model"] == "gpt-4o-mini"

It also keeps an invoice, as a provider bills: per request id (the `X-Request-ID` header), the
prompt of every call it accepted and the answer tokens it actually sent, also when the client
left before the first byte or mid-stream (`cut`). Reported usage follows the invoice unless a
behaviour lies (`Behavior(lie=...)`, `fake-lie-huge`). Tokens are the fake's word count by
default; `run_fake_provider(billing=True)` counts them as a real provider bills them
(tests.toolkit.billing: tool definitions, schemas and images included).

A behaviour can also quote the key a request carried in its error body (`echo_key`,
`fake-error-401-echokey`), as some providers quote a key they refuse: the gateway must pass
none of it on.

By job: `behaviors` (what to do with a request), `answers` (the answer and its token counts),
`openai_format`, `responses_format`, `anthropic_format` and `embeddings_format` (the wire
formats; embeddings are deterministic unit vectors billed per cl100k token, `fake_vector`),
`records` (recorded requests and invoice lines), `transport` (HTTP/1.1 on the socket), `server`
(the server, its queue and its invoice) and `fixtures` (the pytest fixtures `fake_provider` and
`fake_provider_session`).
"""

from tests.toolkit.fakeprovider.answers import BillingMeter, WordMeter
from tests.toolkit.fakeprovider.behaviors import LIES, Behavior, ToolCall, behavior_for_model
from tests.toolkit.fakeprovider.embeddings_format import fake_tokens, fake_vector
from tests.toolkit.fakeprovider.records import InvoiceLine, RecordedRequest, key_fingerprint
from tests.toolkit.fakeprovider.server import FakeProvider, run_fake_provider

__all__ = [
    "LIES",
    "Behavior",
    "BillingMeter",
    "FakeProvider",
    "InvoiceLine",
    "RecordedRequest",
    "ToolCall",
    "WordMeter",
    "behavior_for_model",
    "fake_tokens",
    "fake_vector",
    "key_fingerprint",
    "run_fake_provider",
]

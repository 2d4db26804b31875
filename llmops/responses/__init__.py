"""The OpenAI Responses API front door: its request and response shapes, its event stream, and
the responses it keeps per team so that a follow-up can continue a conversation."""

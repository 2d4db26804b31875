"""The Anthropic Messages API front door (`POST /v1/messages`, `/v1/messages/count_tokens`).

It parses Anthropic's wire format into the chat pipeline's RequestContext (translate.py), runs
the one pipeline, and renders Anthropic's message object (translate.py), event stream
(stream.py) and error shape (errors.py).
"""

"""The official openai SDK in tests: read a streamed chat completion as a client would."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass
class StreamRead:
    """What a client got from a streamed completion."""

    text: str = ""
    finish_reason: str | None = None
    usage: Any = None  # the usage chunk's `CompletionUsage`, None when none came


def read_stream(stream: Iterable) -> StreamRead:
    """Return the text, finish reason and usage of an SDK chat completion stream."""
    read = StreamRead()
    for chunk in stream:
        if chunk.choices:
            read.text += chunk.choices[0].delta.content or ""
            read.finish_reason = chunk.choices[0].finish_reason or read.finish_reason
        if chunk.usage:
            read.usage = chunk.usage
    return read

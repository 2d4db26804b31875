"""The answer, shared by both wire formats: its words, its finish and its token counts.

A meter decides what the tokens are: the fake's word count (`WordMeter`, the default) or what a
real provider bills (`BillingMeter`). `WireFormat` is what both wire formats share: the request
read once into an `Answer`, and the tool call's arguments streamed in two pieces.
"""

import json
import uuid
from dataclasses import dataclass, field

from tests.toolkit.fakeprovider.behaviors import Behavior, ToolCall

_FILLER = ("the fake provider answers deterministically so tests can assert exact text usage "
           "latency and every failure mode of a real upstream model").split()
_TOKENS_PER_MESSAGE = 4


def message_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text") or p.get("content") or "") for p in content
                        if isinstance(p, dict))
    return ""


class WordMeter:
    """The fake's own token count (the default): a prompt is 3 + (4 + its words) per message,
    an answer one token per word. Small exact numbers that tests can assert."""

    def prompt_tokens(self, body: dict, *, wire: str, texts: list[str]) -> int:
        return 3 + sum(_TOKENS_PER_MESSAGE + len(t.split()) for t in texts)

    def output_tokens(self, words: list[str], tool_call: ToolCall | None) -> int:
        return len(words)


class BillingMeter:
    """A real provider's count (tests.toolkit.billing): the whole request body as billed (tool
    definitions, schemas and images included), the answer's text and tool call as tokens."""

    def prompt_tokens(self, body: dict, *, wire: str, texts: list[str]) -> int:
        from tests.toolkit.billing import billed_prompt_tokens

        return billed_prompt_tokens(body, model=str(body.get("model", "")), provider=wire)

    def output_tokens(self, words: list[str], tool_call: ToolCall | None) -> int:
        from tests.toolkit.billing import billed_text_tokens

        tokens = billed_text_tokens(" ".join(words)) if words else 0
        if tool_call is not None:
            tokens += billed_text_tokens(tool_call.name + json.dumps(tool_call.arguments))
        return tokens


@dataclass
class Answer:
    words: list[str]
    finish: str  # "stop" | "length" | "tool_calls"
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    tool_call: ToolCall | None
    meter: WordMeter | BillingMeter = field(default_factory=WordMeter, repr=False)

    @property
    def chunks(self) -> list[str]:
        return [w if i == 0 else " " + w for i, w in enumerate(self.words)]

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def tokens_sent(self, chunks: int) -> int:
        """Return the answer tokens billed once `chunks` content chunks were sent (the reasoning
        came before them; the tool call comes after them)."""
        return self.meter.output_tokens(self.words[:chunks], None) + self.reasoning_tokens


def answer_for(behavior: Behavior, prompt_texts: list[str], max_tokens: int | None, *,
            prompt_tokens: int, meter: WordMeter | BillingMeter) -> Answer:
    last = prompt_texts[-1] if prompt_texts else ""
    if behavior.text is not None:
        words = behavior.text.split(" ") if behavior.text else []
    else:
        words = ["Echo:", *last.split()[:6]]
        while len(words) < behavior.words:
            words.append(_FILLER[len(words) % len(_FILLER)])
        words = words[:behavior.words]
    finish = "stop"
    if max_tokens is not None:
        while words and meter.output_tokens(words, behavior.tool_call) > max_tokens:
            words, finish = words[:-1], "length"
    if behavior.tool_call is not None:
        finish = "tool_calls"
    return Answer(words=words, finish=finish, prompt_tokens=prompt_tokens,
                  completion_tokens=(meter.output_tokens(words, behavior.tool_call)
                                     + behavior.reasoning_tokens),
                  cached_tokens=min(behavior.cached_tokens, prompt_tokens),
                  reasoning_tokens=behavior.reasoning_tokens, tool_call=behavior.tool_call,
                  meter=meter)



class WireFormat:
    """One request in one wire format: the answer it gets and the bodies that carry it.

    Subclasses set `path`, `wire` and `id_prefix`, read the prompt's texts and output limit from
    their request body, and build the error body, the whole answer and the stream's events
    (`opening`, `content`, `closing`).
    """

    path: str
    wire: str
    id_prefix: str

    def __init__(self, body: dict, behavior: Behavior, meter: WordMeter | BillingMeter):
        self.model = body.get("model", "")
        self.id = f"{self.id_prefix}{uuid.uuid4().hex[:24]}"
        texts = self.prompt_texts(body)
        self.answer = answer_for(behavior, texts, self.max_tokens(body), meter=meter,
                                 prompt_tokens=meter.prompt_tokens(body, wire=self.wire,
                                                                   texts=texts))
        self.behavior = behavior
        self.reports_usage = behavior.usage and behavior.lie != "missing"

    def prompt_texts(self, body: dict) -> list[str]:
        raise NotImplementedError("a wire format must say which texts make its prompt")

    def max_tokens(self, body: dict) -> int | None:
        raise NotImplementedError("a wire format must say where its output limit is")


def argument_pieces(tool: ToolCall) -> tuple[str, str]:
    """Return a tool call's JSON arguments cut in two, as a stream sends them."""
    arguments = json.dumps(tool.arguments)
    half = len(arguments) // 2
    return arguments[:half], arguments[half:]

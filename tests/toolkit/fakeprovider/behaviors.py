"""What the fake does with one request: a `Behavior`, scripted or read from the model name."""

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class ToolCall:
    """A tool call the fake answers with instead of (after) its text."""

    name: str = "get_weather"
    arguments: dict = field(default_factory=lambda: {"city": "Paris"})
    id: str = "call_fake_1"


@dataclass(frozen=True)
class Behavior:
    """How the fake answers one request. The defaults are a normal, quick, complete answer."""

    status: int = 200               # an HTTP error status answers with the provider's error body
    retry_after: str | None = None  # Retry-After header value (seconds or an HTTP date)
    delay_ms: int = 0               # wait before the response headers (the first byte)
    interval_ms: int = 0            # wait between streamed chunks
    text: str | None = None         # the answer; default: derived from the last user message
    words: int = 8                  # length of the default answer, in words (= tokens here)
    cut_after: int | None = None    # abort the socket after N content chunks (non-stream: no body)
    stall_after: int | None = None  # after N content chunks send nothing for `stall_seconds`
                                    # (non-stream: the headers, then a stalled body)
    stall_seconds: float = 30.0
    malformed: bool = False         # 200 whose body / first stream event is not JSON
    missing_fields: bool = False    # 200 JSON without the answer fields (choices / content)
    usage: bool = True              # False: a 200 without any usage
    cached_tokens: int = 0          # OpenAI cached_tokens / Anthropic cache_read_input_tokens
    cache_creation_tokens: int = 0  # Anthropic cache_creation_input_tokens
    reasoning_tokens: int = 0       # OpenAI completion_tokens_details.reasoning_tokens
    tool_call: ToolCall | None = None
    drop: bool = False              # close the connection without any answer
    replay: str | None = None       # send this body verbatim (a recorded answer or SSE stream)
    ignore_stream: bool = False     # answer a stream request with the whole JSON answer
    lie: str | None = None          # report usage falsely (see LIES); the invoice keeps the truth
    echo_key: bool = False          # the error body quotes the key the request carried, as some
                                    # providers quote a key they refuse

    def __post_init__(self) -> None:
        if self.lie is not None and self.lie not in LIES:
            raise ValueError(f"unknown lie {self.lie!r}; one of {', '.join(LIES)}")


#: How a lying provider reports the prompt and answer tokens it bills (`Behavior.lie`).
LIES = {
    "negative": lambda prompt, completion: (-max(prompt, 1), -max(completion, 1)),
    "float": lambda prompt, completion: (prompt + 0.5, completion + 0.5),
    "huge": lambda prompt, completion: (10**12, 10**12),
    "under": lambda prompt, completion: (prompt // 10, completion // 10),
    "missing": None,  # no usage at all
}


def reported(behavior: Behavior, prompt: int, completion: int) -> tuple[float, float]:
    """Return the (prompt, completion) numbers the provider reports for what it bills."""
    lie = LIES.get(behavior.lie) if behavior.lie else None
    return lie(prompt, completion) if lie else (prompt, completion)


def behavior_for_model(model: str) -> Behavior:
    """Return the behaviour a model name asks for (`fake-<rule>[-<value>]...`, else normal).

    Rules: error-<status>, ra-<seconds> (Retry-After), slow-<ms> (before first byte),
    pace-<ms> (between chunks), cut-<n>, stall-<n>, malformed, missing, nousage, tool,
    cached-<n>, reasoning-<n>, words-<n>, drop, echokey, lie-<kind> (see LIES). Other words are
    ignored. E.g. `fake-error-429-ra-3`, `fake-slow-200-cut-2`, `fake-lie-huge-words-20`,
    `fake-error-401-echokey`.
    """
    parts = model.split("-")
    if not parts or parts[0] != "fake":
        return Behavior()
    flags = {"malformed": {"malformed": True}, "missing": {"missing_fields": True},
             "nousage": {"usage": False}, "tool": {"tool_call": ToolCall()}, "drop": {"drop": True},
             "echokey": {"echo_key": True}}
    numbers = {"error": "status", "ra": "retry_after", "slow": "delay_ms", "pace": "interval_ms",
               "cut": "cut_after", "stall": "stall_after", "cached": "cached_tokens",
               "reasoning": "reasoning_tokens", "words": "words"}
    changes: dict = {}
    tokens = iter(parts[1:])
    for token in tokens:
        if token in flags:
            changes.update(flags[token])
        elif token in numbers:
            value = next(tokens, "0")
            changes[numbers[token]] = value if token == "ra" else int(value)
        elif token == "lie":
            changes["lie"] = next(tokens, "")
    if changes.get("status") == 429 and "retry_after" not in changes:
        changes["retry_after"] = "1"
    return replace(Behavior(), **changes)

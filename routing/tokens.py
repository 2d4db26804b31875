"""Token counting before the call: an estimate that never under-counts a chat prompt."""

import json
import re

# OpenAI's documented chat overheads: every message costs a few tokens of framing and every
# reply is primed with a few more.
TOKENS_PER_MESSAGE = 4
TOKENS_PER_REPLY = 3

_WORDISH = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def message_text(message: dict) -> str:
    """Return the text a message contributes to the prompt (content parts joined)."""
    content = message.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        text = "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    extras = [message.get("name"), message.get("tool_call_id")]
    if message.get("tool_calls"):
        extras.append(json.dumps(message["tool_calls"], ensure_ascii=False))
    return text + "".join(e for e in extras if e)


def count_text_tokens(text: str) -> int:
    """Return an approximate token count of `text` (words and punctuation)."""
    return len(_WORDISH.findall(text))


def estimate_prompt_tokens(messages: list[dict]) -> int:
    """Return an upper bound on the prompt tokens of `messages`.

    Byte-level BPE tokenizers never produce more tokens than the UTF-8 bytes they encode, so the
    byte count is a bound that holds for any such model.
    """
    total = TOKENS_PER_REPLY
    for message in messages:
        total += TOKENS_PER_MESSAGE + len(message_text(message).encode("utf-8", "surrogatepass"))
        total += len(str(message.get("role", "")))
    return total

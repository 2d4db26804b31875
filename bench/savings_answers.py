"""The savings bench's simulated answers: what the provider says, what it bills, how it is scored.

The simulated provider (bench/mock_upstream.py ``--labels``) answers a workload prompt with a
JSON content that carries the prompt's answer key and whether the model that served it got it
right. A cached answer is the stored content, so it still names the question that stored it:
it is correct only if it was correct there and its key is the asking request's key.
"""

import hashlib
import json
import math

#: profile name -> the simulated upstream model id (also: whose correctness label applies)
UPSTREAM = {"bench-weak": "labelled-weak", "bench-strong": "labelled-strong"}
KIND = {"labelled-weak": "weak", "labelled-strong": "strong"}
#: tokens of every simulated answer (below the workload's max_tokens)
ANSWER_TOKENS = 200


def prompt_tokens(prompt: str) -> int:
    """Return the prompt tokens the simulated provider bills (≈ 4 characters a token + framing)."""
    return math.ceil(len(prompt) / 4) + 7


def answer_key(prompt: str, label: dict) -> str:
    """Return the request's answer key: the QQP cluster, or for a task the task itself."""
    if "answer_key" in label:
        return str(label["answer_key"])
    return "task-" + hashlib.sha256(prompt.encode()).hexdigest()[:16]


def correct_for(label: dict, kind: str) -> int:
    """Return whether a fresh answer by the `kind` ("weak"/"strong") model is correct."""
    if "answer_key" in label:
        return 1
    return int(label[f"{kind}_correct"])


def answer_content(prompt: str, label: dict | None, kind: str) -> str:
    """Return the simulated answer's content (an unknown prompt is never correct)."""
    if label is None:
        return json.dumps({"key": "unknown", "correct": 0, "model": kind})
    return json.dumps({"key": answer_key(prompt, label), "correct": correct_for(label, kind),
                       "model": kind})


def score(prompt: str, label: dict, content: str) -> int:
    """Return 1 if `content` (fresh or cached) is a correct answer to this request."""
    try:
        answer = json.loads(content)
    except (TypeError, ValueError):
        return 0
    if not isinstance(answer, dict):
        return 0
    return int(answer.get("key") == answer_key(prompt, label) and answer.get("correct") == 1)


def labels_by_prompt(lines: list[dict]) -> dict[str, dict]:
    """Return each workload prompt's label (the last user message of each line)."""
    return {line["body"]["messages"][-1]["content"]: line["label"] for line in lines}


def stored_key(content: str) -> str | None:
    """Return the answer key an answer's content carries (None if it is not a bench answer)."""
    try:
        return json.loads(content).get("key")
    except (TypeError, ValueError, AttributeError):
        return None

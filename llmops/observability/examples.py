"""Export stored quality verdicts as routing examples (routing.RoutingExample labels).

Only verdicts that kept their prompt can be exported: the judge's (it receives the texts). A
user's feedback is linked to an answer whose text the gateway, by design, never stored.
"""

from collections.abc import Iterator
from datetime import datetime

from llmops.models import ResponseFeedback
from routing.services import Embed, ExampleLabel, routing_examples_import
from routing.tokens import message_text


def quality_example_labels(*, since: datetime | None = None) -> Iterator[ExampleLabel]:
    """Yield one routing label per verdict that kept its prompt (score scaled to 0-1)."""
    rows = ResponseFeedback.objects.filter(prompt__isnull=False).exclude(model="")
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    for prompt, model, score, source, request_id in rows.values_list(
            "prompt", "model", "score", "source", "usage_record__request_id").iterator():
        # The router embeds the last user message, so that is the example's prompt.
        last_user = next((m for m in reversed(prompt or []) if m.get("role") == "user"), None)
        text = message_text(last_user) if last_user else ""
        if text.strip():
            yield ExampleLabel(prompt=text, score=score / 10, model_name=model,
                               source=f"quality:{source}",
                               request_id=request_id or "")  # none once archived


def quality_examples_export(*, embed: Embed, since: datetime | None = None) -> int:
    """Store the verdicts as routing examples (already exported ones are skipped); return added."""
    return routing_examples_import(labels=quality_example_labels(since=since), embed=embed)

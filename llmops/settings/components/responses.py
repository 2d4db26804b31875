"""Settings for the Responses API front door (llmops/responses/)."""

from llmops.settings.env import env

# How long a response created with store=true (OpenAI's default) can be retrieved and continued
# with previous_response_id; expired ones are deleted by the beat task or `purge_responses`.
RESPONSES_STORE_TTL_DAYS = env.float("RESPONSES_STORE_TTL_DAYS", default=30.0)

"""DRF authentication by llmops API key (`Authorization: Bearer llmops-…`).

API keys authenticate API calls only; Django admin uses its own session login, so a key can
never open admin. A revoked or expired key, or one whose Django user is deactivated, is refused
(401) from the next request on.
"""

from rest_framework.authentication import BaseAuthentication, get_authorization_header

from llmops.errors import InvalidApiKey
from llmops.models import ApiKey
from llmops.selectors import api_key_from_bearer


class ApiKeyAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request) -> tuple[object, ApiKey] | None:
        header = get_authorization_header(request).split()
        if not header:
            # Also accept `x-api-key` as Anthropic-style SDKs send it.
            raw = request.META.get("HTTP_X_API_KEY", "")
            if not raw:
                return None
        else:
            if header[0].lower() != self.keyword or len(header) != 2:
                raise InvalidApiKey("Malformed Authorization header: expected 'Bearer <api key>'.")
            try:
                raw = header[1].decode("ascii")
            except UnicodeDecodeError:
                raise InvalidApiKey() from None
        api_key = api_key_from_bearer(raw_key=raw)
        if api_key is None:
            raise InvalidApiKey()
        return api_key.user, api_key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="llmops"'

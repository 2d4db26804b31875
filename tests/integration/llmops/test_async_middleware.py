"""The ASGI middleware chain: Django's middlewares without thread hops, browser-session ones
skipped on the API only, and the same security behaviour as Django's stock classes."""

import re

import httpx
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from llmops import async_middleware
from llmops.async_middleware import ASYNC_EQUIVALENTS, GatewayASGIHandler


def _chain(handler) -> list[type]:
    """The middleware classes of a loaded handler, outermost first."""
    classes, node = [], handler._middleware_chain
    while node is not None:
        node = getattr(node, "__wrapped__", node)
        if not hasattr(node, "get_response"):
            break
        classes.append(type(node))
        node = node.get_response
    return classes


def test_every_stock_middleware_in_settings_has_a_hop_free_equivalent():
    stock = {path for path in settings.MIDDLEWARE
             if path.startswith(("django.", "whitenoise."))}
    assert stock and set(ASYNC_EQUIVALENTS) == stock


def test_the_asgi_handler_loads_the_equivalents_and_leaves_settings_alone():
    configured = list(settings.MIDDLEWARE)
    handler = GatewayASGIHandler()
    handler.load_middleware(is_async=True)
    assert list(settings.MIDDLEWARE) == configured  # checks and the test client see Django's
    modules = {cls.__module__ for cls in _chain(handler)}
    assert async_middleware.__name__ in modules
    assert not modules & {"django.middleware.security", "django.contrib.sessions.middleware",
                          "django.middleware.csrf", "whitenoise.middleware"}


def test_api_responses_keep_security_headers_and_set_no_session(live_gateway, api_key,
                                                                 simulated_profiles):
    response = httpx.post(f"{live_gateway.api_base}/chat/completions", timeout=60,
                          headers={"Authorization": f"Bearer {api_key.key}"},
                          json={"model": "simulated-efficient",
                                "messages": [{"role": "user", "content": "hello"}]})
    assert response.status_code == 200, response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "set-cookie" not in response.headers


def test_admin_over_asgi_still_has_sessions_csrf_and_login(live_gateway):
    get_user_model().objects.create_user("asgi-staff", password="pw-staff-123", is_staff=True,
                                         is_superuser=True)
    with httpx.Client(base_url=live_gateway.url, timeout=60) as browser:
        page = browser.get("/admin/login/")
        assert page.status_code == 200 and "csrftoken" in browser.cookies
        # Without the token: refused by CSRF, as Django's own middleware would.
        refused = browser.post("/admin/login/", data={"username": "asgi-staff",
                                                      "password": "pw-staff-123"})
        assert refused.status_code == 403
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        login = browser.post("/admin/login/?next=/admin/",
                             data={"username": "asgi-staff", "password": "pw-staff-123",
                                   "csrfmiddlewaretoken": token},
                             headers={"Referer": f"{live_gateway.url}/admin/login/"})
        assert login.status_code == 302 and "sessionid" in browser.cookies
        assert browser.get("/admin/").status_code == 200


@pytest.mark.parametrize("path", ["/v1/models", "/v1/chat/completions"])
def test_is_api_request_matches_the_api_prefix_only(rf, path):
    assert async_middleware.is_api_request(rf.get(path))
    assert not async_middleware.is_api_request(rf.get("/admin/login/"))


async def _serve_once(handler, path: str) -> int:
    """One GET through `handler` as an ASGI server would call it; return the status."""
    from asgiref.testing import ApplicationCommunicator

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
             "query_string": b"", "headers": [(b"host", b"127.0.0.1")],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    communicator = ApplicationCommunicator(handler, scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(timeout=30)
    while (await communicator.receive_output(timeout=30)).get("more_body"):
        pass
    await communicator.wait(timeout=30)
    return start["status"]


@pytest.mark.django_db(transaction=True)
async def test_the_api_request_cycle_stays_on_the_event_loop_thread():
    """Django sends request_started / request_finished through a per-request executor thread;
    on the API the handler sends them inline, everywhere else Django's cycle is unchanged."""
    import threading

    from django.core import signals

    seen: list[tuple[str, int]] = []

    def started(**kwargs):
        seen.append(("started", threading.get_ident()))

    def finished(**kwargs):
        seen.append(("finished", threading.get_ident()))

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        handler = GatewayASGIHandler()
        loop_thread = threading.get_ident()
        for _ in range(3):
            assert await _serve_once(handler, "/v1/models") == 401  # no key: refused, cleanly
        assert seen == [("started", loop_thread), ("finished", loop_thread)] * 3
        seen.clear()
        assert await _serve_once(handler, "/no-such-page/") == 404
        assert [name for name, _ in seen] == ["started", "finished"]
        assert all(ident != loop_thread for _, ident in seen)
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)

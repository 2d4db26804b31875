"""A hostile provider on 127.0.0.1 that echoes the caller's API key back in its error bodies.

Some real providers quote the key they refused ("Incorrect API key provided: sk-..."); the
gateway must never pass that on to its client or its logs.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    status = 401

    def do_POST(self):  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        key = (self.headers.get("Authorization", "").partition(" ")[2]
               or self.headers.get("x-api-key", ""))
        body = json.dumps({"error": {
            "message": f"Incorrect API key provided: {key}. Header was Bearer {key}",
            "type": "invalid_request_error", "code": "invalid_api_key", "param": key,
        }}).encode()
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output quiet
        pass


class EchoKeyProvider:
    def __init__(self, status: int = 401):
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.status = status  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> "EchoKeyProvider":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

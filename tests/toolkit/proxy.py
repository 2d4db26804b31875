"""A TCP proxy on 127.0.0.1 that a test can cut and restore: "the database went away".

    with TcpProxy("127.0.0.1", 5432) as proxy:
        ... point a gateway at proxy.port ...
        proxy.cut()      # live connections reset, new ones refused
        proxy.restore()  # accepting again, on the same port

Only the proxy is cut: the real server (shared with other tests) never notices.
"""

import socket
import threading

from tests.toolkit.net import free_port


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, port: int | None = None):
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._accepting = threading.Event()
        self.connections = 0  # accepted so far (tests can assert the gateway came through us)

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> "TcpProxy":
        self._listen()
        return self

    def cut(self) -> None:
        """Stop listening and reset every live connection (clients see ECONNREFUSED/RST)."""
        self._accepting.clear()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            live, self._sockets = list(self._sockets), set()
        for sock in live:
            _abort(sock)

    def restore(self) -> None:
        """Listen again on the same port."""
        if self._listener is None:
            self._listen()

    def stop(self) -> None:
        self.cut()

    def __enter__(self) -> "TcpProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- internals ---------------------------------------------------------------------
    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._accepting.set()
        threading.Thread(target=self._accept_loop, args=(listener,), daemon=True,
                         name=f"tcp-proxy-{self.port}").start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while self._accepting.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by cut()
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _abort(client)
                continue
            with self._lock:
                if not self._accepting.is_set():
                    _abort(client)
                    _abort(upstream)
                    return
                self._sockets.update((client, upstream))
                self.connections += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.discard(src)
                self._sockets.discard(dst)
            _abort(src)
            _abort(dst)


def _abort(sock: socket.socket) -> None:
    """Close with a reset, as a crashed peer or a dropped link looks to the other side."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        # Wake the pump thread blocked in recv() on it: close() alone does not, and while that
        # recv holds the socket the connection stays up (PostgreSQL kept the backend, and the
        # test database could not be dropped at the end of the run).
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass

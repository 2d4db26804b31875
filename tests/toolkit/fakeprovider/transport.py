"""The fake's HTTP/1.1: read a body, send a JSON answer, an SSE chunk, a replay."""

import asyncio
import json

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 408: "Request Timeout", 422: "Unprocessable Entity",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 529: "Overloaded"}


class Aborted(Exception):
    """The behaviour closed the socket; the connection is finished."""


def client_gone(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Return True once the client closed its end (a client sends nothing more while waiting
    for its answer, so end-of-stream or a reset here means it left)."""
    return (reader.at_eof() or reader.exception() is not None
            or writer.transport.is_closing())


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                return b"".join(parts)
            parts.append(data[:-2])
    length = int(headers.get("content-length") or 0)
    return await reader.readexactly(length) if length else b""


async def send(writer: asyncio.StreamWriter, status: int, body: dict | bytes,
               extra_headers: dict[str, str] | None = None) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            "Content-Type: application/json", f"Content-Length: {len(data)}"]
    head += [f"{name}: {value}" for name, value in (extra_headers or {}).items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
    await writer.drain()


async def replay(writer: asyncio.StreamWriter, text: str, *, stream: bool) -> None:
    if not stream:
        await send(writer, 200, text.encode())
        return
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    for event in text.encode().split(b"\n\n"):
        if event.strip():
            await chunk(writer, event + b"\n\n")
    await chunk(writer, b"")


async def chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    await writer.drain()


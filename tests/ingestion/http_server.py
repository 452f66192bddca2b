"""A loopback HTTP file server for download tests: counts requests, can misbehave on purpose."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class ServerState:
    """What to serve and how; what was asked.

    Attributes:
        files: URL path -> body.
        support_range: answer ``Range`` requests with 206.
        drop_first: the first GET sends only half the body and closes the connection.
        fail_first_status: the first GET answers this status (e.g. 503) instead.
        truncate_without_length: every GET sends half the body with no ``Content-Length`` and
            closes the connection (the client cannot tell the body is incomplete).
        requests: (path, Range header or None) for every request received.
    """

    files: dict[str, bytes] = field(default_factory=dict)
    support_range: bool = True
    drop_first: bool = False
    fail_first_status: int | None = None
    truncate_without_length: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)


def _handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            range_header = self.headers.get("Range")
            state.requests.append((self.path, range_header))
            first = len(state.requests) == 1
            if first and state.fail_first_status:
                self.send_response(state.fail_first_status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            start = 0
            if range_header and state.support_range:
                start = int(range_header.removeprefix("bytes=").split("-")[0])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            payload = body[start:]
            if state.truncate_without_length:
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.send_header("Content-Length", str(len(payload)))
            if first and state.drop_first:
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@contextmanager
def serve(state: ServerState) -> Iterator[str]:
    """Serve ``state`` on 127.0.0.1 (random port) in a thread; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

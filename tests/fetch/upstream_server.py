"""A loopback HTTP server standing in for the upstream hosts, with faults on demand.

Faults are queued per path and each request takes the next one:
    ``500`` / ``503``  an HTTP error
    ``reset``          the connection is closed before any response
    ``truncate``       the full Content-Length is announced, half the body sent, then closed
    ``slow``           the body starts only after ``slow_seconds`` (longer than the read timeout)
    ``wrong``          a body of the right length with other bytes
    ``html``           an HTML error page with status 200 (Google Drive's quota page)
    ``norange``        a Range request is answered with the whole file (status 200)
``throttle[path]`` limits a path to that many bytes per second (to catch a fetch mid-file).
"""
from __future__ import annotations

import collections
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HTML_PAGE = (b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head>"
              b"<body>Too many users have viewed or downloaded this file recently.</body></html>")


class Upstream:
    """The files served, the faults queued and a log of what was asked for.

    Attributes:
        files: path -> bytes served.
        faults: path -> queue of fault names.
        throttle: path -> bytes per second.
        requests: (path, Range header or None) of every request, in order.
        sent: path -> body bytes sent so far.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.content_types: dict[str, str] = {}
        self.faults: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self.throttle: dict[str, float] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.sent: dict[str, int] = collections.defaultdict(int)
        self.slow_seconds = 2.0
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, path: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Serve ``data`` at ``path``; return its URL."""
        self.files[path] = data
        self.content_types[path] = content_type
        return self.base_url + path

    def fail(self, path: str, *faults: str) -> None:
        self.faults[path].extend(faults)

    def requests_for(self, path: str) -> list:
        return [r for p, r in self.requests if p == path]

    def _next_fault(self, path: str) -> str | None:
        with self.lock:
            queue = self.faults.get(path)
            return queue.popleft() if queue else None


def _handler(upstream: Upstream):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send_body(self, path: str, body: bytes) -> None:
            rate = upstream.throttle.get(path)
            step = 64 << 10
            for start in range(0, len(body), step):
                if rate:
                    rate = upstream.throttle.get(path)
                    if rate:
                        time.sleep(step / rate)
                self.wfile.write(body[start:start + step])
                with upstream.lock:
                    upstream.sent[path] += len(body[start:start + step])

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            range_header = self.headers.get("Range")
            with upstream.lock:
                upstream.requests.append((path, range_header))
            if path not in upstream.files:
                self.send_error(404)
                return
            data = upstream.files[path]
            fault = upstream._next_fault(path)
            if fault in ("500", "503"):
                self.send_error(int(fault))
                return
            if fault == "reset":
                self.close_connection = True
                self.connection.close()
                return
            if fault == "html":
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(_HTML_PAGE)))
                self.end_headers()
                self.wfile.write(_HTML_PAGE)
                return
            if fault == "wrong":
                data = bytes((b + 1) % 256 for b in data)
            start = 0
            if range_header and fault != "norange":
                start = int(range_header.split("=")[1].split("-")[0])
            body = data[start:]
            self.send_response(206 if start else 200)
            self.send_header("Content-Type", upstream.content_types[path])
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if fault == "slow":
                time.sleep(upstream.slow_seconds)
            if fault == "truncate":
                self._send_body(path, body[: len(body) // 2])
                self.close_connection = True
                return
            try:
                self._send_body(path, body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


def start(upstream: Upstream) -> Upstream:
    """Start serving ``upstream`` on 127.0.0.1 (a free port) in a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(upstream))
    server.daemon_threads = True
    upstream.server = server
    threading.Thread(target=server.serve_forever, name="upstream", daemon=True).start()
    return upstream


def stop(upstream: Upstream) -> None:
    upstream.server.shutdown()
    upstream.server.server_close()

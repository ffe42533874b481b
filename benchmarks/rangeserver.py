"""A range-request HTTP server on loopback with an object store's latency, for the latency
benchmark (benchmarks/latency.py) and the remote-read tests (tests/test_io_latency.py).

It serves the files of a folder under ``/files/`` over HTTP/1.1 with keep-alive, answering HEAD
and GET with ``Range: bytes=a-b`` (one range: 206 with ``Content-Range``; several: 206
``multipart/byteranges``, RFC 9110 §14 and §15.3.7) after a fixed delay per request (the
round trip to an object store across the internet, 50–150 ms), optionally answering
``429 Too Many Requests`` (RFC 6585 §4, with ``Retry-After``) to the first ``fail_first``
requests. It counts requests, bytes sent, statuses and the largest number of requests it was
answering at once. Real sockets, real HTTP: not a mock.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["RangeServer", "items_over_http"]

_RANGE = re.compile(r"(\d*)-(\d*)")


class RangeServer:
    """``with RangeServer(folder, delay=0.08) as srv:`` files of ``folder`` at ``srv.url + "/files/<path>"``.

    Parameters
    ----------
    folder
        Root of the served files.
    delay
        Seconds each request waits before it is answered (per request, concurrent requests
        wait in parallel, as on a real server).
    fail_first
        The first this many requests (GET or HEAD, any file) are answered 429.
    refuse
        Requests whose path ends with this are always answered 429 (a throttle that outlasts
        the client's retries).
    """

    def __init__(self, folder: Path | str, *, delay: float = 0.0, fail_first: int = 0, refuse: str | None = None):
        self.folder = Path(folder).resolve()
        self.delay = delay
        self.fail_first = fail_first
        self.refuse = refuse
        self.requests = 0
        self.bytes_sent = 0
        self.statuses: Counter = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
                with server._lock:
                    server.statuses[status] += 1
                    server.bytes_sent += len(body) if self.command != "HEAD" else 0
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    if self.command != "HEAD" and body:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up
                    pass

            def _handle(self) -> None:
                with server._lock:
                    server.requests += 1
                    n = server.requests
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if server.delay:
                        time.sleep(server.delay)
                    if n <= server.fail_first or (server.refuse and self.path.split("?", 1)[0].endswith(server.refuse)):
                        return self._send(429, {"Retry-After": "1", "Content-Length": "0"})
                    self._file()
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _file(self) -> None:
                rel = self.path.split("?", 1)[0].removeprefix("/files/")
                path = (server.folder / rel).resolve()
                if not self.path.startswith("/files/") or not path.is_relative_to(server.folder) or not path.is_file():
                    return self._send(404, {"Content-Length": "0"})
                size = path.stat().st_size
                spec = self.headers.get("Range")
                if not spec or not spec.startswith("bytes="):
                    data = path.read_bytes() if self.command != "HEAD" else b""
                    return self._send(200, {"Content-Length": str(size), "Accept-Ranges": "bytes", "Content-Type": "image/tiff"}, data)
                ranges = []
                for part in spec.removeprefix("bytes=").split(","):
                    m = _RANGE.fullmatch(part.strip())
                    if not m or (not m.group(1) and not m.group(2)):
                        return self._send(416, {"Content-Range": f"bytes */{size}", "Content-Length": "0"})
                    if m.group(1):
                        a, b = int(m.group(1)), min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
                    else:  # suffix: the last n bytes
                        a, b = max(0, size - int(m.group(2))), size - 1
                    if a > b:
                        return self._send(416, {"Content-Range": f"bytes */{size}", "Content-Length": "0"})
                    ranges.append((a, b))
                with path.open("rb") as f:
                    chunks = []
                    for a, b in ranges:
                        f.seek(a)
                        chunks.append(f.read(b - a + 1))
                if len(ranges) == 1:
                    (a, b), body = ranges[0], chunks[0]
                    return self._send(206, {"Content-Range": f"bytes {a}-{b}/{size}", "Content-Length": str(len(body)),
                                            "Accept-Ranges": "bytes", "Content-Type": "image/tiff"}, body)
                boundary = "redline-byteranges"
                body = b"".join(
                    f"--{boundary}\r\nContent-Type: image/tiff\r\nContent-Range: bytes {a}-{b}/{size}\r\n\r\n".encode() + c + b"\r\n"
                    for (a, b), c in zip(ranges, chunks)) + f"--{boundary}--\r\n".encode()
                self._send(206, {"Content-Type": f"multipart/byteranges; boundary={boundary}", "Content-Length": str(len(body))}, body)

            do_GET = do_HEAD = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256  # many clients connect at once

            def handle_error(self, request, client_address) -> None:  # a client closing its keep-alive connection
                pass

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def reset_counts(self) -> None:
        """Zero the counters (requests, bytes, statuses, largest concurrency)."""
        with self._lock:
            self.requests, self.bytes_sent, self.max_in_flight = 0, 0, 0
            self.statuses = Counter()

    def __enter__(self) -> RangeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def items_over_http(build_root: Path | str, out_dir: Path | str, base_url: str | None, *, every: int = 1, query: str = "") -> Path:
    """A copy of a demo build's STAC documents (``items.json``, ``collection.json``) in ``out_dir``
    whose asset hrefs point at ``base_url + "/files/<path under build_root>"`` instead of the local
    files (``None``: the local hrefs kept); ``every``: keep one scene in ``every`` (a sparser revisit);
    ``query``: appended to each URL as ``?query`` (other URLs for the same files: a process's
    GDAL /vsicurl/ cache does not serve one run from the previous one's reads). Returns ``out_dir``."""
    root, out = Path(build_root).resolve(), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = json.loads((root / "items.json").read_text(encoding="utf-8"))
    items["features"] = items["features"][::every]
    for f in items["features"]:
        for a in f["assets"].values():
            href = a["href"].removeprefix("file://")
            if base_url and Path(href).is_absolute() and Path(href).resolve().is_relative_to(root):
                a["href"] = f"{base_url}/files/{Path(href).resolve().relative_to(root).as_posix()}" + (f"?{query}" if query else "")
    (out / "items.json").write_text(json.dumps(items), encoding="utf-8")
    (out / "collection.json").write_text((root / "collection.json").read_text(encoding="utf-8"), encoding="utf-8")
    return out

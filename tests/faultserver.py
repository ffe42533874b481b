"""A small HTTP server on loopback that puts faults in front of a real STAC API.

It forwards requests to an upstream API (the embedded rustac server), rewriting the upstream's
address in the answers so that the client keeps talking through it, and on the way it can
answer with an HTTP error the first n times, wait before answering (timeouts), or change the
JSON of an answer (a malformed item). Paths under ``/files/`` are served from a folder, and a
file that is not there is a real 404. Real sockets, real HTTP: not a mock.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Rule:
    """A fault on requests whose path starts with ``path`` (and whose method is ``method``)."""

    path: str
    method: str | None = None
    status: int | None = None  # answer with this HTTP status …
    times: int | None = None  # … the first `times` matching requests (None: always)
    delay: float = 0.0  # seconds to wait before answering
    rewrite: Callable[[dict], dict] | None = None  # change the upstream's JSON answer
    seen: int = 0


@dataclass
class FaultServer:
    upstream: str | None = None
    files: Path | None = None
    rules: list[Rule] = field(default_factory=list)
    log: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, status answered)

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _answer(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                server.log.append((self.command, self.path, status))
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                rewrite = None
                for rule in server.rules:
                    if self.path.startswith(rule.path) and (rule.method is None or rule.method == self.command):
                        if rule.times is not None and rule.seen >= rule.times:
                            continue
                        rule.seen += 1
                        if rule.delay:
                            time.sleep(rule.delay)
                        if rule.status is not None:
                            return self._answer(rule.status, json.dumps({"code": "fault", "description": f"injected {rule.status}"}).encode())
                        rewrite = rule.rewrite or rewrite
                if self.path.startswith("/files/"):
                    return self._file()
                req = urllib.request.Request(server.upstream + self.path, data=body, method=self.command,
                                             headers={"Content-Type": self.headers.get("Content-Type", "application/json")})
                try:
                    with urllib.request.urlopen(req, timeout=30) as resp:
                        status, data, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "application/json")
                except urllib.error.HTTPError as err:
                    status, data, ctype = err.code, err.read(), err.headers.get("Content-Type", "application/json")
                data = data.replace(server.upstream.encode(), server.url.encode())
                if rewrite is not None and status == 200:
                    data = json.dumps(rewrite(json.loads(data))).encode()
                self._answer(status, data, ctype)

            def _file(self) -> None:
                path = (server.files / self.path.removeprefix("/files/")) if server.files else None
                if path is None or not path.is_file():
                    return self._answer(404, b"not found", "text/plain")
                self._answer(200, path.read_bytes(), "image/tiff")

            do_GET = do_POST = do_HEAD = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def answered(self, path: str) -> Counter:
        """How often each status was answered for requests whose path starts with ``path``."""
        return Counter(status for _, p, status in self.log if p.startswith(path))

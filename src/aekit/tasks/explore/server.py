"""The explorer's HTTP server: a static page and three JSON endpoints, on the standard library.

    GET  /                  the page (page.html), GET /explore.js its script
    GET  /api/info          latent size, input shape, the 2-D map (points, labels), slider ranges
    POST /api/decode        {"z": [D numbers]} or {"point": [x, y]} -> {"z", "point", "image"}
    POST /api/interpolate   {"a": i, "b": j, "steps": n} -> {"images", "originals", "z", "points"}
    GET  /api/features      the feature browser (a sparse autoencoder given with --sae): every latent's firing
                            rate and largest activation (404 without an SAE)
    POST /api/feature       {"latent": i} -> {"latent", "firing_rate", "top": [{"index", "value", "label", "image"}]}

Every request is checked (validate.py) and a bad one gets a 4xx status with a JSON
{"error": message}: unknown paths 404, wrong methods 405, oversized bodies 413, bad JSON or
values 400, and a Host header that is not the loopback name when serving on loopback 403 (a
web page elsewhere cannot drive the server through DNS rebinding); a request target that cannot be
parsed is a 400. Clients are answered concurrently by a bounded pool of `max_threads` worker
threads; connections beyond `max_pending` waiting ones get a 503 at once. Each request (its
request line, headers and body) must arrive within `request_deadline` seconds in all, however
slowly its bytes trickle in; a request past it is dropped (408 when the body is late). The model
is only read (eval mode, no_grad), so no lock is needed. HTTP/1.1 keep-alive is on. Port 0
picks a free port; `server.url` is the address actually bound.
"""

from __future__ import annotations

import io
import json
import queue
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from . import validate as v
from .state import ExploreState

HERE = Path(__file__).resolve().parent
STATIC = {"/": ("page.html", "text/html; charset=utf-8"), "/index.html": ("page.html", "text/html; charset=utf-8"),
          "/explore.js": ("explore.js", "text/javascript; charset=utf-8")}
POST_ROUTES = ("/api/decode", "/api/interpolate", "/api/feature")
GET_ROUTES = tuple(STATIC) + ("/api/info", "/api/features")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
IDLE_SLICE = 0.2  # seconds: how often a worker waiting for a request's first byte checks for queued connections
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'"


class _DeadlineReader(io.RawIOBase):
    """The connection's reading side: every read waits at most until the handler's request deadline."""

    def __init__(self, sock: socket.socket, handler: "ExploreHandler") -> None:
        super().__init__()
        self.sock, self.handler = sock, handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        handler = self.handler
        while True:
            left = handler.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request deadline passed")
            if not handler.idle:
                self.sock.settimeout(min(left, handler.timeout))
                return self.sock.recv_into(buffer)
            # no byte of the next request yet: wait in short slices, and give the worker up to a
            # queued connection at once (held, silent connections cannot starve the pool)
            self.sock.settimeout(min(left, IDLE_SLICE))
            try:
                n = self.sock.recv_into(buffer)
            except TimeoutError:
                if handler.server.waiting():
                    raise
                continue
            handler.idle = False
            return n


class ExploreHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every response carries Content-Length
    server_version = "aekit-explore"
    timeout = 30  # seconds a client may idle mid-request before the connection is dropped
    request_deadline = 30.0  # seconds for a whole request (an idle keep-alive wait included), however it trickles
    deadline = 0.0
    idle = False
    disable_nagle_algorithm = True  # headers and body go out as two writes: without TCP_NODELAY, delayed ACKs add ~40 ms

    # ------------------------------------------------------------------ plumbing
    def setup(self) -> None:
        super().setup()
        self.deadline = time.monotonic() + self.request_deadline
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, self))

    def handle_one_request(self) -> None:
        self.deadline = time.monotonic() + self.request_deadline  # a new request: a new deadline
        self.idle = True  # until its first byte arrives
        super().handle_one_request()

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if content_type.startswith("text/html"):
            self.send_header("Content-Security-Policy", CSP)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj, extra: dict | None = None) -> None:
        self._send(status, json.dumps(obj, separators=(",", ":")).encode(), "application/json; charset=utf-8", extra)

    def _error(self, status: int, message: str, extra: dict | None = None) -> None:
        self._json(status, {"error": message, "status": status}, extra)

    def send_error(self, code, message=None, explain=None):
        """The standard library's protocol errors (bad request line, huge headers, ...) as JSON 4xx."""
        code = {501: 405, 505: 400}.get(int(code), int(code))  # unknown method / HTTP version: the client's fault
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # not parsed yet: answer with a status line all the same
            self.request_version = "HTTP/1.0"
        self._error(code, message or explain or self.responses.get(code, ("error",))[0])

    def __getattr__(self, name: str):
        if name.startswith("do_"):  # any other method (BREW, TRACE, ...): 404 or 405 from _dispatch
            return lambda: self._dispatch(name[3:])
        raise AttributeError(name)

    # ------------------------------------------------------------------ dispatch
    def do_GET(self):  # noqa: N802 - http.server naming
        self._dispatch("GET")

    def do_POST(self):  # noqa: N802
        self._dispatch("POST")

    def do_HEAD(self):  # noqa: N802
        self._dispatch("HEAD")

    def do_PUT(self):  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self):  # noqa: N802
        self._dispatch("DELETE")

    def do_PATCH(self):  # noqa: N802
        self._dispatch("PATCH")

    def do_OPTIONS(self):  # noqa: N802
        self._dispatch("OPTIONS")

    def _dispatch(self, method: str) -> None:
        self._consumed = False  # whether this request's body has been read
        try:
            if method != "POST":  # a body on GET/HEAD/...: read and ignored, so keep-alive stays in step
                self._drop_body()
                self._consumed = True
            self._check_host()
            try:
                path = urlsplit(self.path).path
            except ValueError as exc:  # "http://[", "HTTP://[x]/api/info": an invalid authority
                self.close_connection = True
                raise v.RequestError(400, f"malformed request target {self.path[:100]!r} ({exc}).") from None
            if path not in GET_ROUTES + POST_ROUTES:
                raise v.RequestError(404, f"no such path {path!r}; the API is GET /api/info, POST /api/decode, "
                                          "POST /api/interpolate, GET /api/features, POST /api/feature.")
            allowed = "POST" if path in POST_ROUTES else "GET, HEAD"
            if method not in allowed.split(", "):
                if not self._consumed:
                    self._drop_body()
                    self._consumed = True
                self._error(405, f"{path} accepts {allowed}; got {method}.", {"Allow": allowed})
                return
            if path in STATIC:
                name, kind = STATIC[path]
                self._send(200, (HERE / name).read_bytes(), kind)
            elif path == "/api/info":
                self._send(200, self.server.info_bytes, "application/json; charset=utf-8")
            elif path == "/api/features":
                if self.server.features_bytes is None:
                    raise v.RequestError(404, "this explorer has no sparse autoencoder; start it with --sae SAE_DIR.")
                self._send(200, self.server.features_bytes, "application/json; charset=utf-8")
            elif path == "/api/feature":
                features = self.server.state.features
                latent = v.feature_request(self._body(("latent",)), features)
                self._json(200, features.feature(latent))
            elif path == "/api/decode":
                self._json(200, self._decode(self._body(("z", "point"))))
            else:
                self._json(200, self._interpolate(self._body(("a", "b", "steps"))))
        except v.RequestError as exc:
            if not self._consumed:
                self._drop_body()
            self._error(exc.status, exc.message)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except TimeoutError:  # the client stopped sending mid-body, or sent it too slowly
            self.close_connection = True
            self._error(408, f"the request body did not arrive within {self.timeout} s (a read) or "
                             f"{self.request_deadline:g} s (the whole request).")
        except Exception as exc:  # a bug, not a bad request: say so, keep serving
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            self._error(500, f"internal error: {type(exc).__name__}: {exc}")

    def _check_host(self) -> None:
        if not self.server.loopback:
            return
        host = (self.headers.get("Host") or "").strip()
        name = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        if name.lower() not in LOOPBACK_NAMES:
            self.close_connection = True
            raise v.RequestError(403, f"Host {host!r} is not a loopback name ({', '.join(LOOPBACK_NAMES)}); "
                                      "this server only answers local pages.")

    def _drop_body(self) -> None:
        """Consume a small body of a refused request so the keep-alive stream stays in step."""
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if 0 < n <= v.MAX_BODY:
            self.rfile.read(n)
        elif n != 0:
            self.close_connection = True

    def _body(self, allowed: tuple[str, ...]) -> dict:
        try:
            n = v.content_length(self.headers.get("Content-Length"))
        except v.RequestError:
            self.close_connection = True  # the unread body would be taken for the next request
            self._consumed = True
            raise
        body = self.rfile.read(n)
        self._consumed = True
        if len(body) != n:
            self.close_connection = True
            raise v.RequestError(400, f"the body ended after {len(body)} of {n} bytes.")
        v.content_type(self.headers.get("Content-Type"))
        return v.parse_object(body, allowed)

    # ------------------------------------------------------------------ endpoints
    def _decode(self, obj: dict) -> dict:
        state: ExploreState = self.server.state
        key, values = v.decode_request(obj, state.latent_dim)
        z = np.asarray(values, dtype=np.float64) if key == "z" else state.unproject(values)  # (D,)
        return state.decode_response(z)

    def _interpolate(self, obj: dict) -> dict:
        state: ExploreState = self.server.state
        a, b, steps = v.interpolate_request(obj, len(state.points))
        return state.interpolate(a, b, steps)


class ExploreServer(HTTPServer):
    allow_reuse_address = True
    request_queue_size = 128  # listen backlog; socketserver's 5 resets connections when many clients arrive at once
    max_threads = 32  # worker threads (daemons: a hung client never keeps the process alive)
    max_pending = 512  # accepted connections waiting for a worker; beyond: 503 at once

    def __init__(self, state: ExploreState, host: str = "127.0.0.1", port: int = 8000, *, verbose: bool = False):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.state = state
        self.verbose = verbose
        self.loopback = host in LOOPBACK_NAMES
        self.info_bytes = json.dumps(state.info(), separators=(",", ":")).encode()  # computed once
        features = getattr(state, "features", None)
        self.features_bytes = None if features is None else json.dumps(features.summary(), separators=(",", ":")).encode()
        self._queue: queue.Queue = queue.Queue()
        self._workers: list[threading.Thread] = []
        self._pending = 0
        self._lock = threading.Lock()
        super().__init__((host, port), ExploreHandler)

    def process_request(self, request, client_address) -> None:
        """Hand the connection to the pool (started on demand, at most max_threads), or refuse it with a 503."""
        with self._lock:
            if self._pending >= self.max_pending:
                busy = True
            else:
                busy = False
                self._pending += 1
                if len(self._workers) < self.max_threads and self._pending > self._idle_workers():
                    worker = threading.Thread(target=self._work, daemon=True, name="aekit-explore-worker")
                    self._workers.append(worker)
                    worker.start()
        if busy:
            body = b'{"error":"the server is busy; try again","status":503}'
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        self._queue.put((request, client_address))

    def _idle_workers(self) -> int:
        return len(self._workers) - self._busy if hasattr(self, "_busy") else 0

    def waiting(self) -> bool:
        """Whether accepted connections wait for a worker."""
        return not self._queue.empty()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            request, client_address = item
            with self._lock:
                self._busy = getattr(self, "_busy", 0) + 1
            try:
                self.finish_request(request, client_address)
            except Exception:  # noqa: BLE001 - socketserver's own policy: report, keep serving
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)
                with self._lock:
                    self._busy -= 1
                    self._pending -= 1

    def server_close(self) -> None:
        super().server_close()
        for _ in self._workers:
            self._queue.put(None)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def make_server(state: ExploreState, host: str = "127.0.0.1", port: int = 8000, *, verbose: bool = False) -> ExploreServer:
    """Bind (port 0: any free port) without serving yet; call serve_forever() or run it in a thread."""
    return ExploreServer(state, host, port, verbose=verbose)


__all__ = ["ExploreHandler", "ExploreServer", "make_server"]

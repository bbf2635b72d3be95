"""The HTTP side: /metrics, /healthz and the status page, nothing else.

Only GET and HEAD on known paths (405 otherwise); at most ``max_concurrent``
requests are handled at once (a flood gets 503 instead of a thread each), each
within a deadline; an unexpected error is logged with its traceback and answered
with a bare 500. TLS, basic auth and the rate limit plug in as ``wrap_socket``
and ``authorize`` (see ``exporter.webconfig``): a refused request is answered
401, or 429 when the rate limit or the bounded bcrypt work turns it away.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from exporter import __version__
from exporter.cache import SnapshotCache
from exporter.exposition import ExpositionCache
from exporter.webconfig import Authorizer, SocketWrapper, Verdict

logger = logging.getLogger(__name__)

# A connection must be done within this (the whole request: read, collection,
# answer); each read from the client may stall for at most the idle timeout.
REQUEST_TIMEOUT_SECONDS = 20.0
IDLE_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Request:
    path: str
    query: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


Route = Callable[[Request], Response]


def metrics_route(exposition: ExpositionCache) -> Route:
    """/metrics: the latest collection's exposition, in the format the scraper asks for."""

    def serve(request: Request) -> Response:
        body = exposition.body(
            request.headers.get("accept", ""), request.headers.get("accept-encoding", "")
        )
        headers = {"Content-Encoding": "gzip"} if body.gzipped else {}
        return Response(HTTPStatus.OK, body.data, body.content_type, headers)

    return serve


def healthz_route(snapshots: SnapshotCache) -> Route:
    """Liveness: 200 while the process serves. Database health is a metric."""

    def serve(_request: Request) -> Response:
        latest = snapshots.latest
        state = {
            "status": "ok",
            "version": __version__,
            "last_collection_ok": None if latest is None else latest.ok,
            "last_error": None if latest is None or latest.error is None else latest.error.reason,
        }
        return Response(HTTPStatus.OK, json.dumps(state).encode(), "application/json")

    return serve


class _Connection:
    """An accepted connection and when it must be finished."""

    __slots__ = ("deadline", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline


class ExporterServer(ThreadingHTTPServer):
    """A threading server that bounds its work.

    - At most ``max_concurrent`` connections are served at once; one more is
      answered 503 from the accept loop (over TLS, where no plain answer can be
      read, it is closed) instead of getting a thread.
    - Every connection carries one request (``Connection: close``), so an idle
      keep-alive client cannot sit on a slot, and must be done within
      ``request_timeout`` seconds: the accept loop cuts connections past their
      deadline, so a client trickling bytes (slowloris) holds a slot no longer.
    """

    daemon_threads = True
    block_on_close = False
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        routes: Mapping[str, Route],
        *,
        max_concurrent: int,
        request_timeout: float = REQUEST_TIMEOUT_SECONDS,
        wrap_socket: Callable[[socket.socket], socket.socket] | None = None,
        authorize: Authorizer | None = None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.routes = dict(routes)
        self.max_concurrent = max_concurrent
        self.slots = threading.BoundedSemaphore(max_concurrent)
        self.request_timeout = request_timeout
        self.wrap_socket = wrap_socket
        self.authorize = authorize
        self._connections: dict[int, _Connection] = {}
        self._connections_lock = threading.Lock()
        self._busy = _BusyLog(max_concurrent)
        super().__init__(address, RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self._busy.refused()
            if self.wrap_socket is None:
                _refuse_busy(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: give the slot back
            self.slots.release()
            self.shutdown_request(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        connection = self._track(request)
        try:
            request.settimeout(min(self.request_timeout, IDLE_TIMEOUT_SECONDS))
            if self.wrap_socket is not None:
                request = self._secure(connection, request, self.wrap_socket)
            self.finish_request(request, client_address)
        except OSError as exc:  # resets, timeouts, TLS failures: the client's doing
            logger.debug("connection from %s dropped: %s", client_address, exc)
        except Exception:
            logger.exception("error on the connection from %s", client_address)
        finally:
            self._untrack(connection)
            self.shutdown_request(request)
            self.slots.release()

    def _secure(
        self, connection: _Connection, request: socket.socket, wrap: SocketWrapper
    ) -> socket.socket:
        wrapped = wrap(request)
        with self._connections_lock:
            connection.sock = wrapped  # the deadline now cuts the TLS socket
        if isinstance(wrapped, ssl.SSLSocket):
            try:
                wrapped.do_handshake()
            except OSError:
                # The plain socket was detached into ``wrapped``: shutting the
                # request down later would not close it.
                wrapped.close()
                raise
        return wrapped

    def _track(self, sock: socket.socket) -> _Connection:
        connection = _Connection(sock, time.monotonic() + self.request_timeout)
        with self._connections_lock:
            self._connections[id(connection)] = connection
        return connection

    def _untrack(self, connection: _Connection) -> None:
        with self._connections_lock:
            self._connections.pop(id(connection), None)

    def service_actions(self) -> None:
        """Called by ``serve_forever`` twice a second: cut overdue connections."""
        now = time.monotonic()
        with self._connections_lock:
            overdue = [c for c in self._connections.values() if c.deadline <= now]
            for connection in overdue:
                _cut(connection.sock)
        if overdue:
            logger.debug(
                "cut %d connection(s) past the %g s deadline", len(overdue), self.request_timeout
            )

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The accept loop's errors go to the log, not to stderr as a bare traceback."""
        logger.error(
            "error accepting the connection from %s", client_address, exc_info=sys.exc_info()
        )

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), int(self.server_address[1])
        scheme = "https" if self.wrap_socket else "http"
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{port}"


def _cut(sock: socket.socket) -> None:
    """Shut a socket down so that the thread blocked on it wakes up and finishes.

    The base class method, not ``SSLSocket.shutdown``: that one drops the TLS
    state under the feet of the thread still using it.
    """
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _refuse_busy(request: socket.socket) -> None:
    with contextlib.suppress(OSError):
        request.setblocking(False)
        request.recv(65536)  # what has arrived of the request: closing then sends FIN, not RST
    with contextlib.suppress(OSError):
        request.setblocking(True)
        request.sendall(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
            b"Retry-After: 1\r\nConnection: close\r\n\r\n"
        )


class _BusyLog:
    """A warning when requests are refused, at most once a minute, with the count."""

    def __init__(self, limit: int, every_seconds: float = 60.0) -> None:
        self._limit = limit
        self._every = every_seconds
        self._refused = 0
        self._last = -math.inf

    def refused(self) -> None:  # called from the accept loop only
        self._refused += 1
        now = time.monotonic()
        if now - self._last >= self._every:
            logger.warning(
                "all %d request slots busy: refused %d connection(s) since the last warning",
                self._limit,
                self._refused,
            )
            self._refused = 0
            self._last = now


ALLOWED_METHODS = frozenset({"GET", "HEAD"})
REFUSALS: Mapping[Verdict, Response] = {
    Verdict.DENIED: Response(
        HTTPStatus.UNAUTHORIZED,
        b"unauthorized\n",
        headers={"WWW-Authenticate": 'Basic realm="governance-exporter"'},
    ),
    # Not checked: the bcrypt workers were busy or too slow. Try again.
    Verdict.BUSY: Response(
        HTTPStatus.TOO_MANY_REQUESTS, b"too many requests\n", headers={"Retry-After": "1"}
    ),
    # rate_limit's bucket is empty, answered as exporter-toolkit answers it.
    Verdict.LIMITED: Response(HTTPStatus.TOO_MANY_REQUESTS, b"too many requests\n"),
}


class RequestHandler(BaseHTTPRequestHandler):
    """GET and HEAD on the known routes; every other answer is a bare status line
    and phrase: no HTML, nothing of the request echoed back, no traceback."""

    server: ExporterServer
    server_version = f"governance-exporter/{__version__}"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = None  # the server has set the socket's idle timeout already

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.command not in ALLOWED_METHODS:
            self._respond(
                Response(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    b"method not allowed\n",
                    headers={"Allow": "GET, HEAD"},
                ),
                include_body=True,
            )
            return False
        return True

    def do_GET(self) -> None:
        self._respond(self._handle(), include_body=True)

    def do_HEAD(self) -> None:
        self._respond(self._handle(), include_body=False)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        status = HTTPStatus(code)
        self._respond(
            Response(status, f"{status.phrase.lower()}\n".encode()),
            include_body=self.command != "HEAD",
        )

    def _handle(self) -> Response:
        headers = {k.lower(): v for k, v in self.headers.items()}
        if self.server.authorize is not None:
            refusal = REFUSALS.get(self.server.authorize(headers))
            if refusal is not None:
                return refusal
        path, _, query = self.path.partition("?")
        route = self.server.routes.get(path)
        if route is None:
            return Response(HTTPStatus.NOT_FOUND, b"not found\n")
        try:
            return route(Request(path=path, query=query, headers=headers))
        except Exception:
            logger.exception("error serving %s", path)
            return Response(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n")

    def _respond(self, response: Response, *, include_body: bool) -> None:
        if self.request_version == "HTTP/0.9":  # unparsed or ancient: answer with a status line
            self.request_version = "HTTP/1.0"
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Connection", "close")  # one request per connection
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if include_body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

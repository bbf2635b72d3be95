"""The HTTP side: /metrics, /healthz and the status page, nothing else.

Only GET and HEAD on known paths (405 otherwise); connections are kept alive
for the next request (HTTP/1.1); at most ``max_concurrent`` connections are
served at once (a flood gets 503 instead of a thread each, after the connections
idle between requests have been closed to make room), each request within a
deadline; an unexpected error is logged with its traceback and answered with a
bare 500. TLS, basic auth and the rate limit plug in as ``wrap_socket``
and ``authorize`` (see ``exporter.webconfig``): a refused request is answered
401, or 429 when the rate limit or the bounded bcrypt work turns it away.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from exporter import __version__
from exporter.cache import SnapshotCache
from exporter.exposition import ExpositionCache
from exporter.webconfig import Authorizer, SocketWrapper, Verdict

logger = logging.getLogger(__name__)

# A request must be done within this (the whole of it: read, collection,
# answer); each read from the client may stall for at most the read timeout.
REQUEST_TIMEOUT_SECONDS = 20.0
READ_TIMEOUT_SECONDS = 10.0
# How long a connection may wait for its next request. Above the scrape
# intervals in common use (Prometheus's default is 1 m; 2 m still fits, and no
# common interval lands on it, where a close would cross the scrape on the wire)
# and above the 90 s after which Go's default HTTP client drops an idle
# connection itself. Prometheus keeps its scrape connections up to 5 min: for
# longer intervals the server closes first; Go's client notices the close while
# the connection idles, and retries a GET that a close crossed on a reused
# connection. An idle connection costs a thread, never a newcomer's slot: it is
# closed to make room.
KEEPALIVE_TIMEOUT_SECONDS = 150.0


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
    """An accepted connection: when its request must be finished, and since when
    it has been idle between requests (``None`` while a request is in progress)."""

    __slots__ = ("deadline", "idle_since", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.idle_since: float | None = None


class ExporterServer(ThreadingHTTPServer):
    """A threading server that bounds its work.

    - At most ``max_concurrent`` connections are served at once. When all are
      taken, a newcomer takes the slot of the connection idle the longest
      between requests, which is closed (as nginx closes its idle keep-alive
      connections when it runs out of connections); if none is idle, it is answered 503 from the
      accept loop (over TLS, where no plain answer can be read, it is closed)
      instead of getting a thread. So an idle keep-alive client never keeps
      anyone out.
    - Every request must be done within ``request_timeout`` seconds from its
      first byte (the first one from the accept, TLS handshake included): the
      accept loop cuts connections past their deadline, so a client trickling
      bytes (slowloris) holds a slot no longer. A connection waiting for its
      next request is closed after ``keepalive_timeout`` seconds.
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
        keepalive_timeout: float = KEEPALIVE_TIMEOUT_SECONDS,
        wrap_socket: Callable[[socket.socket], socket.socket] | None = None,
        authorize: Authorizer | None = None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.routes = dict(routes)
        self.max_concurrent = max_concurrent
        self.request_timeout = request_timeout
        self.read_timeout = min(request_timeout, READ_TIMEOUT_SECONDS)
        self.keepalive_timeout = keepalive_timeout
        self.wrap_socket = wrap_socket
        self.authorize = authorize
        # The connections holding a slot; an evicted one leaves the set at once.
        self._connections: set[_Connection] = set()
        self._connections_lock = threading.Lock()
        self._busy = _BusyLog(max_concurrent)
        # ``_serve`` builds each handler with its slot; the base class's
        # ``finish_request``, which would build one without, is never called.
        super().__init__(address, RequestHandler)  # type: ignore[arg-type]

    def server_bind(self) -> None:
        """Bind, without ``HTTPServer.server_bind``'s ``socket.getfqdn``: nothing here
        reads the ``server_name`` it finds (URLs come from ``server_address``), and it
        costs a reverse DNS lookup at start (slow where the resolver is) and about
        0.5 MiB resident for the resolver's libraries and the IDNA codec it loads."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        connection = self._admit(request)
        if connection is None:
            self._busy.refused()
            if self.wrap_socket is None:
                _refuse_busy(request)
            self.shutdown_request(request)
            return
        try:
            threading.Thread(
                target=self._serve, args=(connection, client_address), daemon=True
            ).start()
        except BaseException:  # no thread started: give the slot back
            self._untrack(connection)
            self.shutdown_request(request)
            raise

    def _admit(self, sock: socket.socket) -> _Connection | None:
        """A slot for a new connection: a free one, else the one of the connection
        idle the longest, which is closed; ``None`` when every slot is at work."""
        with self._connections_lock:
            if len(self._connections) >= self.max_concurrent:
                idle = [c for c in self._connections if c.idle_since is not None]
                if not idle:
                    return None
                oldest = min(idle, key=lambda c: c.idle_since or 0.0)
                self._connections.discard(oldest)  # its slot is the newcomer's now
                _cut(oldest.sock)
                logger.debug("closed an idle keep-alive connection to make room")
            connection = _Connection(sock, time.monotonic() + self.request_timeout)
            self._connections.add(connection)
            return connection

    def _serve(self, connection: _Connection, client_address: Any) -> None:
        request = connection.sock
        try:
            # One write per answer, and none held back waiting for the client's
            # delayed ACK of the previous one (Nagle; a TLS answer is several writes).
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request.settimeout(self.read_timeout)
            if self.wrap_socket is not None:
                request = self._secure(connection, request, self.wrap_socket)
            RequestHandler(request, client_address, self, connection)
        except OSError as exc:  # resets, timeouts, TLS failures: the client's doing
            logger.debug("connection from %s dropped: %s", client_address, exc)
        except Exception:
            logger.exception("error on the connection from %s", client_address)
        finally:
            self._untrack(connection)
            self.shutdown_request(request)

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

    def connection_idle(self, connection: _Connection) -> None:
        """Between requests: no deadline, and the first to go when slots run out."""
        with self._connections_lock:
            connection.idle_since = time.monotonic()
            connection.deadline = math.inf

    def request_begins(self, connection: _Connection) -> bool:
        """The next request's first byte arrived: its deadline starts. False when
        the connection was evicted meanwhile (its slot is someone else's)."""
        with self._connections_lock:
            if connection not in self._connections:
                return False
            connection.idle_since = None
            connection.deadline = time.monotonic() + self.request_timeout
            return True

    def _untrack(self, connection: _Connection) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def service_actions(self) -> None:
        """Called by ``serve_forever`` twice a second: cut overdue connections."""
        now = time.monotonic()
        with self._connections_lock:
            overdue = [c for c in self._connections if c.deadline <= now]
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
    """GET and HEAD on the known routes, requests in sequence on one connection;
    every other answer is a bare status line and phrase: no HTML, nothing of the
    request echoed back, no traceback."""

    server: ExporterServer
    server_version = f"governance-exporter/{__version__}"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = None  # the server has set the socket's read timeout already

    def __init__(
        self, request: socket.socket, client_address: Any, server: ExporterServer, slot: _Connection
    ) -> None:
        self.slot = slot
        super().__init__(request, client_address, server)

    def handle(self) -> None:
        """The first request, then more while both sides keep the connection."""
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection and self._next_request_arrives():
            self.handle_one_request()

    def _next_request_arrives(self) -> bool:
        """Idle until the next request's first byte: False when the client
        leaves, the keep-alive timeout passes or the server evicts us."""
        self.server.connection_idle(self.slot)
        self.connection.settimeout(self.server.keepalive_timeout)
        try:
            # Peek, not read: the request line is the stdlib's to read.
            arrived = bool(cast(io.BufferedReader, self.rfile).peek(1))
        except OSError as exc:  # the keep-alive timeout, a reset, an evicted TLS socket
            logger.debug("idle connection from %s closed: %s", self.address_string(), exc)
            return False
        self.connection.settimeout(self.server.read_timeout)
        return arrived and self.server.request_begins(self.slot)

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.command not in ALLOWED_METHODS:
            self.close_connection = True  # it may have sent a body we will not read
            self._respond(
                Response(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    b"method not allowed\n",
                    headers={"Allow": "GET, HEAD"},
                ),
                include_body=True,
            )
            return False
        if self._carries_body():
            # Answered, then closed: the unread body must never be read as
            # the next request (request smuggling).
            self.close_connection = True
        return True

    def _carries_body(self) -> bool:
        length = self.headers.get("Content-Length", "0").strip()
        return length != "0" or "Transfer-Encoding" in self.headers

    def do_GET(self) -> None:
        self._respond(self._handle(), include_body=True)

    def do_HEAD(self) -> None:
        self._respond(self._handle(), include_body=False)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The stdlib calls this on a request it could not parse (400, 414, 431,
        # 505...): where the next request would start is unknown, so close.
        self.close_connection = True
        status = HTTPStatus(code)
        self._respond(
            Response(status, f"{status.phrase.lower()}\n".encode()),
            include_body=self.command != "HEAD",
        )

    def _handle(self) -> Response:
        headers = {k.lower(): v for k, v in self.headers.items()}
        if self.server.authorize is not None:  # on every request, not once per connection
            client = str(self.client_address[0])  # the share of bcrypt work is per client
            refusal = REFUSALS.get(self.server.authorize(headers, client))
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
        """Status line, headers and body in one write: two would let Nagle hold
        the body until the client's delayed ACK of the headers (40 ms on Linux)."""
        self.log_request(response.status)
        head = "".join(f"{line}\r\n" for line in self._head_lines(response)) + "\r\n"
        self.wfile.write(head.encode("latin-1") + (response.body if include_body else b""))

    def _head_lines(self, response: Response) -> list[str]:
        status = HTTPStatus(response.status)
        return [
            f"{self.protocol_version} {status.value} {status.phrase}",
            f"Server: {self.version_string().strip()}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            "X-Content-Type-Options: nosniff",
            *self._connection_lines(),
            *(f"{name}: {value}" for name, value in response.headers.items()),
        ]

    def _connection_lines(self) -> list[str]:
        # Said in full even where HTTP/1.1 implies it: an HTTP/1.0 client that
        # asked for keep-alive needs the answer, and the timeout is a hint to all.
        if self.close_connection:
            return ["Connection: close"]
        return ["Connection: keep-alive", f"Keep-Alive: timeout={self.server.keepalive_timeout:g}"]

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

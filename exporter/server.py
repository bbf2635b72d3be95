"""The HTTP side: /metrics, /healthz and the status page, nothing else.

Only GET and HEAD on known paths; at most ``max_concurrent`` requests are handled
at once (a flood gets 503 instead of a thread each); an unexpected error is
logged with its traceback and answered with a bare 500.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from exporter import __version__
from exporter.collection import SnapshotCache

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 30


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


def metrics_route(registry: CollectorRegistry) -> Route:
    def serve(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        body = encoder(registry)
        headers: dict[str, str] = {}
        if "gzip" in request.headers.get("accept-encoding", ""):
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        return Response(HTTPStatus.OK, body, content_type, headers)

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


class ExporterServer(ThreadingHTTPServer):
    """A threading server that refuses work beyond a fixed number of requests."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        routes: Mapping[str, Route],
        *,
        max_concurrent: int = 16,
        wrap_socket: Callable[[socket.socket], socket.socket] | None = None,
        authorize: Callable[[Mapping[str, str]], bool] | None = None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.routes = dict(routes)
        self.slots = threading.BoundedSemaphore(max_concurrent)
        self.wrap_socket = wrap_socket
        self.authorize = authorize
        super().__init__(address, RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            _refuse_busy(request)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            if self.wrap_socket is not None:
                request = self.wrap_socket(request)
            super().process_request_thread(request, client_address)
        except OSError as exc:
            logger.debug("connection from %s dropped: %s", client_address, exc)
            self.shutdown_request(request)
        finally:
            self.slots.release()

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), int(self.server_address[1])
        scheme = "https" if self.wrap_socket else "http"
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{port}"


def _refuse_busy(request: socket.socket) -> None:
    with contextlib.suppress(OSError):
        request.sendall(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
            b"Retry-After: 1\r\nConnection: close\r\n\r\n"
        )


class RequestHandler(BaseHTTPRequestHandler):
    server: ExporterServer
    server_version = f"governance-exporter/{__version__}"
    sys_version = ""
    timeout = REQUEST_TIMEOUT_SECONDS
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._respond(self._handle(), include_body=True)

    def do_HEAD(self) -> None:
        self._respond(self._handle(), include_body=False)

    def _not_allowed(self) -> None:
        self._respond(
            Response(
                HTTPStatus.METHOD_NOT_ALLOWED,
                b"method not allowed\n",
                headers={"Allow": "GET, HEAD"},
            ),
            include_body=True,
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed

    def _handle(self) -> Response:
        headers = {k.lower(): v for k, v in self.headers.items()}
        if self.server.authorize is not None and not self.server.authorize(headers):
            return Response(
                HTTPStatus.UNAUTHORIZED,
                b"unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="governance-exporter"'},
            )
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
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if include_body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

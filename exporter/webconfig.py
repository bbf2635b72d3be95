"""The web config: optional TLS, basic auth and rate limit for the HTTP endpoint.

The file is the one Prometheus' own exporters read (exporter-toolkit's
``--web.config.file``); its format and the checks of every key are
``exporter.webconfig_file``, imported only when a file is given. This module
turns the checked file into the server's two hooks (``WebConfig``): the TLS
socket wrapper and the ``authorize`` check.

Everything is read and checked at start: a bad file raises ``WebConfigError``
(the command turns it into one line and exit 2) instead of serving without the
protection it asks for.

Basic auth itself (bcrypt in lanes that guessing cannot cross) is
``exporter.basicauth``; this module puts the pieces in order.
"""

from __future__ import annotations

import base64
import enum
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exporter.basicauth import BasicAuth
    from exporter.webconfig_file import TLSServerConfig, WebConfigFile

logger = logging.getLogger(__name__)


class Verdict(enum.Enum):
    """What the server is told about a request before it answers it."""

    GRANTED = "granted"
    DENIED = "denied"  # 401: no or wrong credentials
    BUSY = "busy"  # 429: no room in the check's bcrypt lane, or it did not finish in time
    LIMITED = "limited"  # 429: rate_limit's bucket is empty


SocketWrapper = Callable[[socket.socket], socket.socket]
# The request's headers (names in lower case) and the client's IP address.
Authorizer = Callable[[Mapping[str, str], str], Verdict]

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# What Go's exporters answer to plain HTTP on a TLS port.
PLAIN_HTTP_ANSWER = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
)
_TLS_HANDSHAKE_RECORD = 0x16


class WebConfigError(ValueError):
    """The web config file cannot be used: which file (once known) and the problem, one line."""

    def __init__(self, problem: str, path: Path | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path = path

    def __str__(self) -> str:
        return self.problem if self.path is None else f"{self.path}: {self.problem}"


class PlainHTTPOnTLSPort(ConnectionError):
    """A client spoke plain HTTP to the TLS port; it was answered 400 and dropped."""


# --- loading -------------------------------------------------------------------------


@dataclass(frozen=True)
class WebConfig:
    """The HTTP server's hooks; both ``None`` means plain HTTP without auth."""

    wrap_socket: SocketWrapper | None = None
    authorize: Authorizer | None = None

    @property
    def tls(self) -> bool:
        return self.wrap_socket is not None


def load_web_config(path: Path | None) -> WebConfig:
    """Read, check and prepare the file; ``WebConfigError`` naming it if it is bad.

    No bcrypt work happens here, whatever the configured cost: start-up is not
    held up by a costly hash.
    """
    if path is None:
        return WebConfig()
    from exporter.webconfig_file import parse_web_config, read_yaml  # noqa: PLC0415 - its models are built only when a file is given

    try:
        return _prepare(parse_web_config(read_yaml(path)), path.parent)
    except WebConfigError as exc:
        raise WebConfigError(exc.problem, path) from None


def _prepare(config: WebConfigFile, base: Path) -> WebConfig:
    wrap = tls_wrapper(ssl_context(config.tls_server_config, base))
    auth = None
    if config.basic_auth_users:
        from exporter.basicauth import BasicAuth  # noqa: PLC0415 - it imports this module

        auth = BasicAuth(config.basic_auth_users)
    limit = config.rate_limit
    limiter = RateLimiter(limit.interval, limit.burst) if limit.enabled else None
    if limiter is not None:
        logger.info(
            "rate limit: bursts of %d request(s), then one per %g s", limit.burst, limit.interval
        )
    authorize = AccessControl(auth, limiter) if auth or limiter else None
    return WebConfig(wrap_socket=wrap, authorize=authorize)


# --- TLS -----------------------------------------------------------------------------


def _no_passphrase() -> bytes:
    return b""  # an encrypted key then fails to load instead of prompting on a terminal


def ssl_context(tls: TLSServerConfig, base: Path) -> ssl.SSLContext | None:
    """A server context from the config, every file loaded now; ``None`` without TLS."""
    if not tls.enabled:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.minimum_version = TLS_VERSIONS[tls.min_version]
        if tls.max_version is not None:
            context.maximum_version = TLS_VERSIONS[tls.max_version]
    except ValueError as exc:
        raise WebConfigError(f"tls_server_config: TLS version not available ({exc})") from None
    cert, key = base / tls.cert_file, base / tls.key_file
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except (OSError, ssl.SSLError) as exc:
        raise WebConfigError(
            f"tls_server_config: cannot load cert_file {cert} / key_file {key} ({_ssl_reason(exc)})"
        ) from None
    context.verify_mode = tls.verify_mode
    if tls.client_ca_file:
        ca = base / tls.client_ca_file
        try:
            context.load_verify_locations(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(
                f"tls_server_config: cannot load client_ca_file {ca} ({_ssl_reason(exc)})"
            ) from None
    return context


def _ssl_reason(exc: OSError | ssl.SSLError) -> str:
    return str(getattr(exc, "reason", None) or exc.strerror or exc).strip()


def tls_wrapper(context: ssl.SSLContext | None) -> SocketWrapper | None:
    """Wraps an accepted socket for the server, which then runs the handshake.

    A client that speaks plain HTTP gets Go's 400 answer instead of a TLS alert
    it could not read, and is dropped.
    """
    if context is None:
        return None

    def wrap(sock: socket.socket) -> socket.socket:
        first = sock.recv(1, socket.MSG_PEEK)
        if not first:
            raise ConnectionAbortedError("closed before the TLS handshake")
        if first[0] != _TLS_HANDSHAKE_RECORD:
            if first.isalpha():
                sock.recv(65536)  # read the request, so closing sends FIN, not RST
                sock.sendall(PLAIN_HTTP_ANSWER)
            raise PlainHTTPOnTLSPort("plain HTTP (or garbage) on the TLS port")
        return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)

    return wrap


# --- access: rate limit and basic auth -----------------------------------------------


class AccessControl:
    """The server's ``authorize`` hook: ``rate_limit`` first, then basic auth.

    Credentials already proven are let through before the rate limit is asked:
    they cost one SHA-256 lookup, and counting them would let a flood of guesses
    spend the bucket and lock the scraper out. Everything else (guesses, and
    every request when no users are configured) is limited as exporter-toolkit
    limits it, a first login included: a flood that keeps the bucket empty
    holds that back too (docs/security.md says so).
    """

    def __init__(self, auth: BasicAuth | None, limiter: RateLimiter | None) -> None:
        self._auth = auth
        self._limiter = limiter

    def __call__(self, headers: Mapping[str, str], client: str) -> Verdict:
        credentials = _basic_credentials(headers.get("authorization", ""))
        if self._auth is not None and credentials is not None and self._auth.proven(*credentials):
            return Verdict.GRANTED
        if self._limiter is not None and not self._limiter.allow():
            return Verdict.LIMITED
        if self._auth is None:
            return Verdict.GRANTED
        if credentials is None:
            return Verdict.DENIED
        return self._auth.verify(*credentials, client)


class RateLimiter:
    """A token bucket as Go's ``rate.NewLimiter(rate.Every(interval), burst)``:
    it starts full with ``burst`` tokens and gains one every ``interval`` seconds."""

    def __init__(
        self, interval: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._at) / self._interval)
            self._at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None

"""The web config file: optional TLS and basic auth for the HTTP endpoint.

The format is the one Prometheus' own exporters read (exporter-toolkit's
``--web.config.file``), so one file serves node_exporter and this exporter::

    tls_server_config:
      cert_file: server.crt          # relative paths: to the config file's directory
      key_file: server.key
      min_version: TLS12             # TLS10..TLS13, default TLS12
      max_version: TLS13             # optional
      client_auth_type: RequireAndVerifyClientCert   # or VerifyClientCertIfGiven
      client_ca_file: clients-ca.crt
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':')
    rate_limit:                      # optional token bucket over every request
      interval: 1s                   # one more request allowed per interval; 0 = off
      burst: 10                      # requests allowed at once

Everything is read and checked at start: a bad file raises ``WebConfigError``
(the command turns it into one line and exit 2) instead of serving without the
protection it asks for. Keys this server does not implement (cipher_suites,
curve_preferences, client certificates accepted without verification, ...) are
refused by name.

Basic auth itself (bcrypt in lanes that guessing cannot cross) is
``exporter.basicauth``; this module reads the file and puts the pieces in order.
"""

from __future__ import annotations

import base64
import enum
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

if TYPE_CHECKING:
    from exporter.basicauth import BasicAuth

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
TLSVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
ClientAuthType = Literal[
    "",
    "NoClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
]
_VERIFY_MODES = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_UNSUPPORTED_TLS_KEYS = (
    "cert",
    "key",
    "cipher_suites",
    "curve_preferences",
    "prefer_server_cipher_suites",
    "client_allowed_sans",
)
# $2a$, $2b$ or $2y$; the bare "$2$" of 1999 is refused by the bcrypt library.
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
# Go's time.ParseDuration units, as exporter-toolkit reads rate_limit.interval.
_GO_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
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


# --- the file's shape ----------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TLSServerConfig(_Strict):
    cert_file: str = ""
    key_file: str = ""
    client_auth_type: ClientAuthType = ""
    client_ca_file: str = ""
    min_version: TLSVersionName = "TLS12"
    max_version: TLSVersionName | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsupported(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in _UNSUPPORTED_TLS_KEYS:
                if key in data:
                    raise ValueError(f"{key} is not supported by governance-exporter")
        return data

    @model_validator(mode="after")
    def _check(self) -> TLSServerConfig:
        if bool(self.cert_file) != bool(self.key_file):
            missing = "key_file" if self.cert_file else "cert_file"
            raise ValueError(f"{missing} is missing (cert_file and key_file go together)")
        if not self.cert_file and (self.client_ca_file or self.client_auth_type):
            raise ValueError("client certificates need cert_file and key_file")
        if self.client_auth_type in ("RequestClientCert", "RequireAnyClientCert"):
            raise ValueError(
                f"client_auth_type {self.client_auth_type} accepts client certificates "
                "without verifying them and is not supported: use VerifyClientCertIfGiven "
                "or RequireAndVerifyClientCert"
            )
        if self.verify_mode != ssl.CERT_NONE and not self.client_ca_file:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        if self.client_ca_file and self.client_auth_type == "NoClientCert":
            raise ValueError("client_ca_file is set but client_auth_type is NoClientCert")
        if self.max_version is not None and self.max_version < self.min_version:
            raise ValueError(f"max_version {self.max_version} is below min_version")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file)

    @property
    def verify_mode(self) -> ssl.VerifyMode:
        # exporter-toolkit's rule: a CA without an explicit type requires client certs.
        if self.client_auth_type == "":
            return ssl.CERT_REQUIRED if self.client_ca_file else ssl.CERT_NONE
        return _VERIFY_MODES[self.client_auth_type]


class HTTPServerConfig(_Strict):
    http2: bool = True  # accepted for compatibility; this server speaks HTTP/1.1

    @model_validator(mode="before")
    @classmethod
    def _refuse_headers(cls, data: Any) -> Any:
        if isinstance(data, dict) and "headers" in data:
            raise ValueError("headers is not supported by governance-exporter")
        return data


def parse_go_duration(value: Any) -> float:
    """Seconds from a Go duration string ("1s", "1m30s", "250ms", "0")."""
    if value == 0 and not isinstance(value, bool):
        return 0.0
    if not isinstance(value, str):
        raise ValueError("expected a duration with its unit, such as 1s or 250ms")
    text = value.strip()
    if text == "0":
        return 0.0
    parts = _GO_DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"{value!r} is not a duration such as 1s, 250ms or 1m30s")
    return sum(float(number) * _GO_DURATION_UNITS[unit] for number, unit in parts)


class RateLimitConfig(_Strict):
    """exporter-toolkit's ``rate_limit``: a token bucket over every request."""

    interval: float = 0.0  # seconds between two requests once the burst is spent; 0 = off
    burst: int = 0

    @field_validator("interval", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_go_duration(value)

    @model_validator(mode="after")
    def _check(self) -> RateLimitConfig:
        if self.interval < 0:
            raise ValueError("interval must not be negative")
        if self.burst < 0:
            raise ValueError("burst must not be negative")
        if self.enabled and self.burst == 0:
            raise ValueError("burst 0 would refuse every request: set it to 1 or more")
        return self

    @property
    def enabled(self) -> bool:
        return self.interval > 0


class WebConfigFile(_Strict):
    tls_server_config: TLSServerConfig = TLSServerConfig()
    http_server_config: HTTPServerConfig = HTTPServerConfig()
    basic_auth_users: dict[str, str] = {}
    rate_limit: RateLimitConfig = RateLimitConfig()

    @field_validator(
        "tls_server_config", "http_server_config", "basic_auth_users", "rate_limit", mode="before"
    )
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("basic_auth_users")
    @classmethod
    def _check_users(cls, users: dict[str, str]) -> dict[str, str]:
        for user, hashed in users.items():
            if not user or ":" in user:
                raise ValueError(f"user name {user!r} is empty or has a colon")
            if not _BCRYPT_HASH.match(hashed):
                raise ValueError(f"the password of {user!r} is not a bcrypt hash ($2y$10$...)")
        return users


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
    try:
        return _prepare(parse_web_config(_read_yaml(path)), path.parent)
    except WebConfigError as exc:
        raise WebConfigError(exc.problem, path) from None


def _read_yaml(path: Path) -> Any:
    import yaml  # noqa: PLC0415 - only needed when a web config is given

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WebConfigError(f"cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise WebConfigError(f"not valid YAML{line}") from None


def parse_web_config(document: Any) -> WebConfigFile:
    """The parsed YAML document checked against the exporter-toolkit format."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise WebConfigError("expected a mapping with tls_server_config / basic_auth_users")
    try:
        return WebConfigFile.model_validate(document)
    except ValidationError as exc:
        raise WebConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{where}: {message}" if where else message


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

"""The web config file's format, read and checked: the pydantic models of its sections.

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

Keys this server does not implement (cipher_suites, curve_preferences, client
certificates accepted without verification, ...) are refused by name.

Only ``exporter.webconfig.load_web_config`` imports this module, and only when a
file is given: building the models' validators costs about 0.3 MiB of resident
memory, which a ``serve`` without a web config (the default) does not pay.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from exporter.webconfig import WebConfigError

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


# --- reading -------------------------------------------------------------------------


def read_yaml(path: Path) -> Any:
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

"""Why a collection failed: a typed error per bounded reason; connection errors sorted by cause.

Every ``CollectionError`` has a ``reason`` (the label value of
``governance_exporter_collection_errors_total``), an optional ``sqlstate`` and
a ``cause``: what went wrong in words that stay the same from one collection
to the next, so that the log can name a cause once, when it changes.

Connection failures (``ConnectFailed``) are sorted from libpq's message, since
psycopg reports no SQLSTATE for an error during the start-up handshake. The
messages matched are the English ones; a server with another ``lc_messages``
still gives an error, as ``database_unavailable`` with the server's own words.
"""

from __future__ import annotations

import re

import psycopg
from psycopg import errors


class CollectionError(Exception):
    """The database could not be read fully; ``reason`` is a bounded label value."""

    reason = "query_failed"

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate

    @property
    def cause(self) -> str:
        """What went wrong, without what changes every collection (times, counts)."""
        return str(self)


class DatabaseUnavailable(CollectionError):
    """No usable connection: none from the pool in time, a server starting up or
    shutting down, out of connection slots, or a connection lost mid-collection."""

    reason = "database_unavailable"


class QueryTimeout(CollectionError):
    reason = "query_timeout"


class SchemaNotFound(CollectionError):
    reason = "schema_unknown"


class AccountNotVisible(CollectionError):
    reason = "account_not_visible"


class PermissionDenied(CollectionError):
    """The monitoring role lacks a grant (SQLSTATE 42501) on what a collection reads."""

    reason = "permission_denied"


class ConnectFailed(CollectionError):
    """No connection could be opened. ``cause`` is libpq's first line (it never
    holds the password); ``next_attempt`` says when the exporter tries again."""

    reason = "database_unavailable"
    refused_login = False  # True: the server refused the login; back off before trying again

    def __init__(self, cause: str, next_attempt: str, *, sqlstate: str | None = None) -> None:
        super().__init__(f"{cause}; {next_attempt}", sqlstate=sqlstate)
        self._cause = cause
        self.next_attempt = next_attempt

    @property
    def cause(self) -> str:
        return self._cause


class HostUnreachable(ConnectFailed):
    """No TCP (or Unix socket) connection: refused, unknown host name, no route."""

    reason = "host_unreachable"


class ConnectTimeout(ConnectFailed):
    """The server did not complete the connection within the connect timeout."""

    reason = "connect_timeout"


class LoginRefused(ConnectFailed):
    """The server answered and refused this login: retrying at once cannot help, and
    a burst of refusals trips auth-failure alarms and lockouts."""

    refused_login = True


class AuthenticationFailed(LoginRefused):
    """Wrong password, unknown role, no pg_hba.conf entry, role without LOGIN (28P01, 28000)."""

    reason = "authentication_failed"


class DatabaseMissing(LoginRefused):
    """The database named in the URL does not exist (3D000)."""

    reason = "database_missing"


class ConnectNotPermitted(LoginRefused):
    """The role has no CONNECT privilege on the database (42501 at log-in)."""

    reason = "permission_denied"


COLLECTION_ERROR_REASONS = (
    DatabaseUnavailable.reason,
    HostUnreachable.reason,
    ConnectTimeout.reason,
    AuthenticationFailed.reason,
    DatabaseMissing.reason,
    PermissionDenied.reason,
    QueryTimeout.reason,
    SchemaNotFound.reason,
    AccountNotVisible.reason,
    CollectionError.reason,
)

# --- connection errors by cause ------------------------------------------------------

# Should psycopg ever report the SQLSTATE of a start-up error, it wins.
_BY_SQLSTATE: dict[str, type[ConnectFailed]] = {
    "28P01": AuthenticationFailed,
    "28000": AuthenticationFailed,
    "3D000": DatabaseMissing,
    "42501": ConnectNotPermitted,
}

# libpq's and the server's English words, most specific first. A message holding
# several attempts (one per host address) is sorted by the first pattern any
# attempt matches: a refused login anywhere outranks a host that was down.
_BY_MESSAGE: tuple[tuple[str, type[ConnectFailed], str | None], ...] = (
    (r"password authentication failed", AuthenticationFailed, "28P01"),
    (r"no pg_hba\.conf entry", AuthenticationFailed, "28000"),
    (r"is not permitted to log in", AuthenticationFailed, "28000"),
    (r"role \"[^\"]*\" does not exist", AuthenticationFailed, "28000"),
    (r"\w+ authentication failed", AuthenticationFailed, "28000"),  # ident, peer, ldap...
    (r"fe_sendauth: no password supplied|password is missing", AuthenticationFailed, "28000"),
    (r"database \"[^\"]*\" does not exist", DatabaseMissing, "3D000"),
    (r"permission denied for database", ConnectNotPermitted, "42501"),
    (r"timeout expired", ConnectTimeout, None),
    (
        r"connection refused|failed to resolve host|could not translate host name"
        r"|name or service not known|temporary failure in name resolution"
        r"|no route to host|network is unreachable|host is down|no such file or directory",
        HostUnreachable,
        None,
    ),
    (
        r"the database system is (starting up|shutting down|in recovery mode)",
        ConnectFailed,
        "57P03",
    ),
    (r"too many (clients|connections)|connection slots are reserved", ConnectFailed, "53300"),
)


def first_line(exc: BaseException) -> str:
    """An error's message as one line (the driver's often run to several)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect_cause(exc: psycopg.Error) -> str:
    """libpq's message as one line, without the prefixes that say nothing."""
    line = first_line(exc)
    line = line.removeprefix("connection failed: ").removeprefix("connection is bad: ")
    return re.sub(r"\b(FATAL|ERROR):\s+", "", line)


def classify_connect_error(exc: psycopg.Error) -> tuple[type[ConnectFailed], str | None]:
    """The error type and SQLSTATE of a failed connection attempt."""
    if isinstance(exc, errors.ConnectionTimeout):
        return ConnectTimeout, None
    if exc.sqlstate is not None and exc.sqlstate in _BY_SQLSTATE:
        return _BY_SQLSTATE[exc.sqlstate], exc.sqlstate
    text = str(exc).lower()
    for pattern, error_type, sqlstate in _BY_MESSAGE:
        if re.search(pattern, text):
            return error_type, sqlstate
    return ConnectFailed, exc.sqlstate

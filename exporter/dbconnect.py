"""Opening connections: after a failure one attempt per collection; a refused login backs off.

psycopg_pool retries a failed connection in its own background loop, and a
client waiting on the pool learns only "no connection in time". So the pool
here opens its connections through a ``Connector`` (its ``connection_class`` is
bound to one), which sorts each failure by cause (``exporter.dberrors``) and,
once an attempt has failed, refuses the pool's own retries without touching the
network. From then on a collection makes the attempt itself, at most one:

- after a refused login (wrong password, no pg_hba.conf entry, database
  missing, no CONNECT privilege) only once the back-off has run out: 5 s after
  the first refusal, doubling with each refusal in a row up to 5 min. A
  collection during the back-off fails at once, saying when the next try is;
- after any other failure (host unreachable, connect timeout, server starting
  up) at every collection: such attempts are cheap and raise no auth alarm.

The first attempt that succeeds ends it; the pool then connects freely again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self

import psycopg

from exporter.dberrors import (
    ConnectFailed,
    ConnectTimeout,
    classify_connect_error,
    connect_cause,
)

logger = logging.getLogger(__name__)

BACKOFF_FIRST_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 300.0

Connection = psycopg.Connection[Any]


def backoff_seconds(refusals: int) -> float:
    """How long to wait after ``refusals`` refused logins in a row: 5, 10, 20 s ... 5 min."""
    if refusals <= 0:
        return 0.0
    return min(BACKOFF_FIRST_SECONDS * 2.0 ** min(refusals - 1, 32), BACKOFF_MAX_SECONDS)


def _seconds_text(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


@dataclass(frozen=True)
class _Failure:
    """The last connection attempt, which failed."""

    error_type: type[ConnectFailed]
    cause: str
    sqlstate: str | None
    refusals: int  # refused logins in a row; 0 when this was no refusal
    failed_at: float  # monotonic
    retry_at: float  # monotonic: no attempt before this
    retry_at_wall: datetime


class Connector:
    """Makes, counts and sorts connection attempts for one pool and its collections."""

    def __init__(
        self,
        conninfo: str,
        *,
        connect_kwargs: dict[str, Any],
        configure: Callable[[Connection], None],
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conninfo = conninfo
        self._kwargs = dict(connect_kwargs)
        self._configure = configure
        self._clock = clock or (lambda: datetime.now(UTC))
        self._monotonic = monotonic
        self._lock = threading.Lock()
        # One attempt at a time, each deciding on the outcome of the one before: the
        # pool fills min_size and grows for a waiting client at once, and two
        # logins racing with the same wrong password would both reach the server.
        self._attempting = threading.Lock()
        self._failure: _Failure | None = None
        self.attempts = 0  # connection attempts that reached the network
        self.connection_class = GatedConnection.bound_to(self)

    def now(self) -> float:
        """This connector's monotonic clock, for ``failure(since=...)``."""
        return self._monotonic()

    def failure(self, since: float | None = None) -> ConnectFailed | None:
        """Why the last attempt failed (if it did, at or after ``since``), as a new error."""
        with self._lock:
            failure = self._failure
        if failure is None or (since is not None and failure.failed_at < since):
            return None
        return self._error(failure)

    def connection_for_collection(self) -> Connection | None:
        """Called as a collection starts. ``None``: the last attempt succeeded, use
        the pool. After a failure: raises why at once while a refused login backs
        off; otherwise makes this collection's one attempt and returns the open
        connection (the caller closes it) or raises why it failed."""
        with self._attempting:
            with self._lock:
                failure = self._failure
            if failure is None:
                return None
            if self._monotonic() < failure.retry_at:
                raise self._error(failure)
            return self._attempt(self._open)

    def pool_connect(self, connect: Callable[[], Connection]) -> Connection:
        """The pool's own attempts: made only while the last attempt succeeded."""
        with self._attempting:
            with self._lock:
                failure = self._failure
            if failure is not None:
                raise self._error(failure)  # no attempt: the next collection makes it
            return self._attempt(connect)

    def _open(self) -> Connection:
        conn = psycopg.Connection.connect(self._conninfo, **self._kwargs)
        try:
            self._configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _attempt(self, connect: Callable[[], Connection]) -> Connection:
        with self._lock:
            self.attempts += 1
        try:
            conn = connect()
        except psycopg.Error as exc:
            raise self._error(self._record(exc)) from exc
        with self._lock:
            recovered, self._failure = self._failure, None
        if recovered is not None:
            logger.info("connected to the database again (%s ended)", recovered.error_type.reason)
        return conn

    def _record(self, exc: psycopg.Error) -> _Failure:
        error_type, sqlstate = classify_connect_error(exc)
        now = self._monotonic()
        with self._lock:
            previous = self._failure
            refusals = 0
            if error_type.refused_login:
                refusals = 1 + (previous.refusals if previous is not None else 0)
            delay = backoff_seconds(refusals)
            failure = _Failure(
                error_type,
                self._timeout_cause() if error_type is ConnectTimeout else connect_cause(exc),
                sqlstate,
                refusals,
                failed_at=now,
                retry_at=now + delay,
                retry_at_wall=self._clock() + timedelta(seconds=delay),
            )
            self._failure = failure
        if refusals > 1:  # the first refusal is logged with its cause by the collection
            logger.warning(
                "database login refused again (%s, %d in a row): next attempt in %s, at %s",
                error_type.reason,
                refusals,
                _seconds_text(delay),
                failure.retry_at_wall.strftime("%H:%M:%S UTC"),
            )
        return failure

    def _timeout_cause(self) -> str:
        """psycopg's "connection timeout expired" says neither where nor how long."""
        params = psycopg.conninfo.conninfo_to_dict(self._conninfo)
        host = params.get("host") or params.get("hostaddr") or "localhost"
        port = params.get("port") or "5432"
        seconds = self._kwargs.get("connect_timeout") or params.get("connect_timeout")
        return f"no answer from {host}:{port} within the {seconds} s connect timeout"

    def _error(self, failure: _Failure) -> ConnectFailed:
        return failure.error_type(
            failure.cause, self._next_attempt(failure), sqlstate=failure.sqlstate
        )

    def _next_attempt(self, failure: _Failure) -> str:
        if not failure.refusals:
            return "trying again at the next collection"
        wait = failure.retry_at - self._monotonic()
        times = "once" if failure.refusals == 1 else f"{failure.refusals} times in a row"
        when = (
            "at the next collection"
            if wait <= 0
            else f"at {failure.retry_at_wall.strftime('%H:%M:%S UTC')} (in {_seconds_text(wait)})"
        )
        return (
            f"login refused {times}, next attempt {when}; back-off "
            f"{BACKOFF_FIRST_SECONDS:g} s doubling to {BACKOFF_MAX_SECONDS / 60:g} min"
        )


class GatedConnection(psycopg.Connection[Any]):
    """A pooled connection, opened only when its class's ``connector`` allows."""

    connector: ClassVar[Connector]

    @classmethod
    def bound_to(cls, connector: Connector) -> type[GatedConnection]:
        return type("GatedConnection", (cls,), {"connector": connector})

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
        opened = cls.connector.pool_connect(
            lambda: super(GatedConnection, cls).connect(conninfo, **kwargs)
        )
        if not isinstance(opened, cls):  # the lambda above made it: cannot happen
            raise TypeError(f"expected a {cls.__name__}, got {type(opened).__name__}")
        return opened


def connector_of(pool: Any) -> Connector | None:
    """The connector a pool from ``open_pool`` connects through, if any."""
    connection_class = getattr(pool, "connection_class", None)
    connector = getattr(connection_class, "connector", None)
    return connector if isinstance(connector, Connector) else None

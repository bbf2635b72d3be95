"""Opening and guarding connections: a refused login backs off; an overdue collection is cut.

Opening. psycopg_pool retries a failed connection in its own background loop,
and a client waiting on the pool learns only "no connection in time". So the
pool here opens its connections through a ``ConnectionGuard``, handed to its
connection class in the pool's connect arguments: the guard sorts each failure
by cause (``exporter.dberrors``) and, once an attempt has failed, refuses the
pool's own retries without touching the network. From then on a collection
makes the attempt itself, at most one:

- after a refused login (wrong password, no pg_hba.conf entry, database
  missing, no CONNECT privilege) only once the back-off has run out: 5 s after
  the first refusal, doubling with each refusal in a row up to 5 min. A
  collection during the back-off fails at once, saying when the next try is;
- after any other failure (host unreachable, connect timeout, server starting
  up) at every collection: such attempts are cheap and raise no auth alarm.

The first attempt that succeeds ends it; the pool then connects freely again.

Guarding. psycopg waits on a socket without a client-side timeout, so a path
that accepts and never answers would hold a scrape for ever: a ``Watchdog``
severs the socket of a collection that outlives its deadline.

``GuardedPool`` puts the three together: ``run`` lends one collection a sound
connection (the pool's, or the one it opens itself after a failure), under the
deadline, once more on another if the connection broke under it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Self, TypeVar

import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg_pool import ConnectionPool, PoolTimeout

from exporter.dberrors import (
    ConnectFailed,
    ConnectTimeout,
    DatabaseUnavailable,
    classify_connect_error,
    connect_cause,
    first_line,
)

logger = logging.getLogger(__name__)

# --- opening: the refused-login back-off -------------------------------------------------

# psycopg_pool's own back-off (AttemptWithBackoff: 1 s doubling with jitter until
# reconnect_timeout) cannot give the outcome measured in tests/test_db_errors.py
# (at most 3 refused logins in 30 s when scraped every 5 s): each of its tasks makes
# at least two attempts, on its own clock rather than the scrapes', and a waiting
# client learns only PoolTimeout, never the cause. So a refused login backs off here.
BACKOFF_FIRST_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 300.0

Connection = psycopg.Connection[Any]
C = TypeVar("C", bound=Connection)
T = TypeVar("T")


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


class ConnectionGuard:
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

    def now(self) -> float:
        """This guard's monotonic clock, for ``failure(since=...)``."""
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

    def pool_connect(self, connect: Callable[[], C]) -> C:
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

    def _attempt(self, connect: Callable[[], C]) -> C:
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


class GuardedConnection(psycopg.Connection[Any]):
    """A pooled connection, opened only when the ``guard`` it is given allows.

    ``open_pool`` passes the guard in the pool's ``kwargs``, which the pool hands
    to ``connect`` on each of its attempts; it is taken out before libpq sees them.
    """

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
        # Taken from **kwargs, not a keyword parameter of its own: psycopg types
        # the connect arguments as str | int | None, and libpq must not see it.
        guard = kwargs.pop("guard", None)
        if guard is None:
            return super().connect(conninfo, **kwargs)
        if not isinstance(guard, ConnectionGuard):
            raise TypeError(f"guard: expected a ConnectionGuard, got {type(guard).__name__}")
        opened = super().connect
        return guard.pool_connect(lambda: opened(conninfo, **kwargs))


class _LenientText(Loader):
    """Text as str even from a SQL_ASCII database (where psycopg would hand over
    bytes): invalid UTF-8 becomes U+FFFD instead of breaking the collection."""

    def load(self, data: Buffer) -> str:
        return bytes(data).decode("utf-8", errors="replace")


def configure_connection(conn: psycopg.Connection[Any]) -> None:
    """Pooled connections are in autocommit mode: a collection sends its own
    ``BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY`` and ``COMMIT`` in the
    same pipeline as its reads (one round trip). A transaction psycopg opens
    itself on them (``conn.transaction()``) is read-only REPEATABLE READ too,
    and the monitoring role's default_transaction_read_only covers the rest."""
    conn.read_only = True
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.autocommit = True
    for text_type in ("text", "varchar", "bpchar", "name"):
        conn.adapters.register_loader(text_type, _LenientText)


# --- guarding: the collection deadline ---------------------------------------------------

# The server enforces statement_timeout; this covers a server or network path
# that stops answering altogether, which no server-side timeout can reach.
DEADLINE_GRACE_SECONDS = 1.0


class Alarm:
    """One collection's deadline on one connection's socket."""

    __slots__ = ("due", "fd", "fired", "seconds")

    def __init__(self, fd: int, seconds: float, due: float) -> None:
        self.fd = fd
        self.seconds = seconds
        self.due = due
        self.fired = False


class Watchdog:
    """Severs a connection's socket if a collection outlives its deadline.

    psycopg waits on the socket without a client-side timeout, so a path that
    accepts and then never answers would block the scrape. Shutting the socket
    down makes that wait fail at once; the pool then discards the connection.

    One thread watches every armed deadline (a thread started per collection
    cost about 0.1 ms each time); it ends after ``linger`` seconds with nothing
    armed, so an idle exporter, or a test making many sources, keeps no thread.
    Once ``disarm`` has returned, that alarm can no longer fire: its descriptor
    may be reused by then.
    """

    def __init__(self, *, linger: float = 300.0) -> None:
        self._linger = linger
        self._cond = threading.Condition()
        self._armed: set[Alarm] = set()
        self._thread: threading.Thread | None = None

    def arm(self, conn: psycopg.Connection[Any], seconds: float) -> Alarm:
        alarm = Alarm(conn.fileno(), seconds, time.monotonic() + seconds)
        with self._cond:
            self._armed.add(alarm)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="collection-deadline", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return alarm

    def disarm(self, alarm: Alarm) -> None:
        with self._cond:
            self._armed.discard(alarm)

    def _watch(self) -> None:
        with self._cond:
            idle_since = time.monotonic()
            while True:
                now = time.monotonic()
                for alarm in [a for a in self._armed if a.due <= now]:
                    self._armed.discard(alarm)
                    _sever(alarm)
                if self._armed:
                    idle_since = now
                elif now - idle_since >= self._linger:
                    self._thread = None
                    return
                due = min((a.due for a in self._armed), default=idle_since + self._linger)
                self._cond.wait(max(due - now, 0.0))


def _sever(alarm: Alarm) -> None:
    alarm.fired = True
    logger.warning(
        "no answer from the database within %g s; closing that connection", alarm.seconds
    )
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=os.dup(alarm.fd))
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()


# --- the pool, its guard and its watchdog ------------------------------------------------

# How often a collection waiting on the pool looks whether the pool's attempt to
# open a connection has failed meanwhile.
POOL_POLL_SECONDS = 0.1
# How long a collection looks for an idle pooled connection while new ones fail.
IDLE_WAIT_SECONDS = 0.01


class BrokenConnection(Exception):
    """The connection died under a collection; safe to run it again on another."""

    def __init__(self, error: psycopg.OperationalError) -> None:
        super().__init__(str(error))
        self.error = error


class GuardedPool:
    """A pool whose connections a guard opens, lent to one collection at a time
    under its deadline."""

    def __init__(
        self,
        pool: ConnectionPool[GuardedConnection],
        guard: ConnectionGuard,
        *,
        timeout_seconds: float,
        watchdog: Watchdog | None = None,
    ) -> None:
        self.pool = pool
        self.guard = guard
        self._timeout_seconds = timeout_seconds
        self._watchdog = watchdog or Watchdog()

    def close(self, timeout: float = 5.0) -> None:
        self.pool.close(timeout=timeout)

    def run(self, read: Callable[[Connection], T]) -> T:
        """``read`` on a sound connection, within the deadline; raises why not.

        There is no liveness ping when a connection leaves the pool (the pool's
        ``check`` callback would cost a round trip on every collection). A
        connection found broken (the server restarted, a proxy dropped it) has
        the pool check its idle ones (``ConnectionPool.check``) and ``read`` runs
        once more on a sound one: ``read`` must be safe to repeat (read-only)."""
        since = self.guard.now()
        try:
            try:
                return self._run_once(read, since)
            except BrokenConnection as broken:
                logger.info(
                    "pooled connection was broken (%s); retrying once", first_line(broken.error)
                )
                self.pool.check()
                try:
                    return self._run_once(read, since)
                except BrokenConnection as again:
                    raise again.error from again
        except PoolTimeout as exc:
            raise DatabaseUnavailable(
                f"no database connection within {self._timeout_seconds:g} s"
            ) from exc

    def _run_once(self, read: Callable[[Connection], T], since: float) -> T:
        """On a pooled connection. After a failed connection attempt: on one still
        idle in the pool if there is one, else on the one this collection opens
        itself, closed afterwards."""
        if self.guard.failure() is not None:
            idle = self._idle_connection()
            if idle is not None:  # a refill was refused, but this one still works
                with self._lent(idle) as conn:
                    return self._within_deadline(conn, read)
            own = self.guard.connection_for_collection()
            if own is not None:
                with own:
                    return self._within_deadline(own, read)
        with self._lent(self._getconn(since)) as conn:
            return self._within_deadline(conn, read)

    @contextlib.contextmanager
    def _lent(self, conn: GuardedConnection) -> Iterator[GuardedConnection]:
        """``pool.connection()`` for a connection already taken from the pool."""
        try:
            with conn:
                yield conn
        finally:
            self.pool.putconn(conn)

    def _idle_connection(self) -> GuardedConnection | None:
        if not self.pool.get_stats().get("pool_available"):
            return None  # asking would only make the pool try to grow
        try:
            return self.pool.getconn(timeout=IDLE_WAIT_SECONDS)
        except PoolTimeout:
            return None

    def _getconn(self, since: float) -> GuardedConnection:
        """A pooled connection; ends the wait early with the cause as soon as the
        pool's attempt to open one has failed (the pool itself only times out, and
        a waiting client cannot be woken otherwise: hence the polling)."""
        deadline = time.monotonic() + self._timeout_seconds
        while True:
            wait = min(POOL_POLL_SECONDS, deadline - time.monotonic())
            try:
                return self.pool.getconn(timeout=max(wait, 0.001))
            except PoolTimeout:
                failure = self.guard.failure(since)
                if failure is not None:
                    raise failure from None
                if time.monotonic() >= deadline:
                    raise

    def _within_deadline(self, conn: Connection, read: Callable[[Connection], T]) -> T:
        seconds = self._timeout_seconds + DEADLINE_GRACE_SECONDS
        alarm = self._watchdog.arm(conn, seconds)
        try:
            return read(conn)
        except psycopg.OperationalError as exc:
            if alarm.fired:
                raise DatabaseUnavailable(
                    f"the database did not answer within {seconds:g} s"
                ) from exc
            if conn.broken:
                raise BrokenConnection(exc) from exc
            raise
        finally:
            self._watchdog.disarm(alarm)


def open_pool(
    conninfo: str,
    *,
    max_size: int,
    timeout_seconds: float,
    name: str = "governance",
    clock: Callable[[], datetime] | None = None,
) -> GuardedPool:
    """A small pool that never blocks start-up and never hammers a refusing server.

    The pool opens without waiting, so the exporter starts while the database is
    down. What psycopg_pool does itself, it does here too: it fills ``min_size``,
    replaces a connection returned broken or expired, grows for a waiting client
    up to ``max_size``, and drops broken idle ones on ``check()``. Its attempts go
    through the guard: once one has failed they are refused without touching the
    network, and a short ``reconnect_timeout`` lets the pool give those up quickly.
    Its ``reconnect_failed`` callback is not used: it learns that the pool gave
    up, never why, and the guard has said why already.
    """
    connect_kwargs: dict[str, Any] = {
        # libpq takes whole seconds and treats anything below 2 as 2; rounding
        # up keeps a connection attempt from giving up before the pool wait.
        "connect_timeout": max(2, math.ceil(timeout_seconds)),
        "application_name": "governance-exporter",
    }
    guard = ConnectionGuard(
        conninfo, connect_kwargs=connect_kwargs, configure=configure_connection, clock=clock
    )
    pool: ConnectionPool[GuardedConnection] = ConnectionPool(
        conninfo,
        connection_class=GuardedConnection,
        kwargs={**connect_kwargs, "guard": guard},
        min_size=1,
        max_size=max_size,
        open=False,
        name=name,
        timeout=timeout_seconds,
        reconnect_timeout=max(timeout_seconds, 1.0),
        configure=configure_connection,
    )
    pool.open(wait=False)
    return GuardedPool(pool, guard, timeout_seconds=timeout_seconds)

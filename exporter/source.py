"""Database access: every SQL statement the exporter runs is in this module.

A collection is one round trip on one pooled connection: one pipeline holding a
whole read-only REPEATABLE READ transaction:

    BEGIN; set the row-level-security user and the statement timeout for this
    transaction only; read the catalog (schema version); read the facts, one
    statement each; COMMIT.

The fact statements depend on the schema version (runs table, error_code
column), so they are written for the version the previous collection found; the
catalog read in the same transaction confirms it. When it does not (the first
collection, or a migration since), or a statement fails because the guessed
table or column is gone, the transaction is done again with the version just
read: one more round trip, only then.

There is no liveness ping when a connection leaves the pool. A collection that
finds its connection broken (the server restarted, a proxy dropped it) has the
pool check its idle connections and runs once more on a sound one: the
transaction is read-only, so doing it again is harmless.

Setting ``app.current_user_id`` per transaction (``set_config(..., true)``)
rather than per session means no connection can ever lack it: not one the pool
opens after a reconnect, nor one a transaction-pooling proxy hands over.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, LiteralString

import psycopg
from psycopg import errors, sql
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.rows import class_row
from psycopg_pool import ConnectionPool, PoolTimeout

from exporter.model import BLANK_CHARACTERS
from exporter.snapshot import (
    SCHEMA_2026_02,
    SCHEMA_2026_03,
    AccountRow,
    CatalogRow,
    LastOutcomeRow,
    RecentRunRow,
    RunCountRow,
    ScheduleRow,
    SchemaInfo,
    Snapshot,
    SpendRow,
)

logger = logging.getLogger(__name__)

RECENT_RUNS_LIMIT = 10
_MESSAGE_PREFIX_CHARS = 200


class CollectionError(Exception):
    """The database could not be read fully; ``reason`` is a bounded label value."""

    reason = "query_failed"


class DatabaseUnavailable(CollectionError):
    reason = "database_unavailable"


class QueryTimeout(CollectionError):
    reason = "query_timeout"


class SchemaNotFound(CollectionError):
    reason = "schema_unknown"


class AccountNotVisible(CollectionError):
    reason = "account_not_visible"


COLLECTION_ERROR_REASONS = (
    DatabaseUnavailable.reason,
    QueryTimeout.reason,
    SchemaNotFound.reason,
    AccountNotVisible.reason,
    CollectionError.reason,
)

# --- statements -----------------------------------------------------------------

# Pooled connections are in autocommit mode; a collection states its transaction
# itself, so that BEGIN, the reads and COMMIT travel in one pipeline.
BEGIN_READ_ONLY: LiteralString = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
COMMIT: LiteralString = "COMMIT"

SET_TRANSACTION_CONTEXT: LiteralString = """
SELECT set_config('app.current_user_id', %(rls_user_id)s, true),
       set_config('statement_timeout', %(statement_timeout_ms)s, true)
"""

READ_CATALOG: LiteralString = """
SELECT to_regclass('schedule_runs') IS NOT NULL AS has_schedule_runs,
       to_regclass('graph_runs') IS NOT NULL AS has_graph_runs,
       EXISTS (SELECT 1 FROM pg_attribute
               WHERE attrelid = to_regclass('graph_runs')
                 AND attname = 'error_code' AND NOT attisdropped) AS graph_runs_has_error_code
"""

READ_ACCOUNT: LiteralString = """
SELECT id AS account_id, balance_credits::numeric AS balance_credits
FROM billing_accounts
WHERE slug = %(account)s
"""

# The (billing_account_id, created_at) index bounds this to the window's rows.
# count(c.charged_credits) (NOT NULL, and granted to the monitoring role), not
# count(*): with no charge in the window the LEFT JOIN still yields one
# NULL-padded row, which count(*) would count as a charge.
READ_SPEND: LiteralString = """
SELECT coalesce(sum(c.charged_credits), 0)::numeric AS spent_credits,
       count(c.charged_credits) AS charges,
       (SELECT max(l.created_at) FROM charge_receipts l
        WHERE l.billing_account_id = a.id AND l.created_at <= %(now)s) AS last_charge_at
FROM billing_accounts a
LEFT JOIN charge_receipts c
       ON c.billing_account_id = a.id
      AND c.created_at > %(since)s AND c.created_at <= %(now)s
WHERE a.slug = %(account)s
GROUP BY a.id
"""

_GOVERNANCE_SCHEDULE_IDS: LiteralString = """
SELECT s.id
FROM schedules s
JOIN execution_grants g ON g.id = s.execution_grant_id
JOIN billing_accounts a ON a.id = g.billing_account_id
WHERE a.slug = %(account)s
"""

READ_SCHEDULES: LiteralString = """
SELECT s.id::text AS schedule_id, s.temporal_schedule_id, s.input ->> 'message' AS message,
       s.cron, s.timezone, s.enabled, s.next_run_at
FROM schedules s
JOIN execution_grants g ON g.id = s.execution_grant_id
JOIN billing_accounts a ON a.id = g.billing_account_id
WHERE a.slug = %(account)s
ORDER BY s.created_at, s.id
LIMIT %(schedule_limit)s
"""

# Runs table and error_code column depend on the schema version, so these are
# templates completed with psycopg.sql (identifiers, never string formatting).
_READ_RUN_COUNTS: LiteralString = (
    """
SELECT r.schedule_id::text AS schedule_id, r.status, {error_code} AS error_code,
       left(r.error_message, {prefix}) AS error_message, count(*) AS runs
FROM {runs} r
WHERE r.schedule_id IN ("""
    + _GOVERNANCE_SCHEDULE_IDS
    + """)
  AND r.scheduled_for > %(since)s AND r.scheduled_for <= %(now)s
GROUP BY 1, 2, 3, 4
"""
)

# Latest run by scheduled_for, walking the unique (schedule_id, scheduled_for)
# index backwards and stopping at the first match. status is compared exactly
# (model.normalise_status does the same): the partial indexes of
# sql/optional-indexes.sql are used only while the planner can see that this
# predicate implies theirs, and any expression on status (lower, btrim, or an
# OR with one) hides that. btrim on the message and code costs no index and
# matches model.is_failure: a message of blank characters only is no error.
_READ_LAST_OUTCOMES: LiteralString = (
    """
SELECT s.id::text AS schedule_id,
       (SELECT coalesce(r.completed_at, r.scheduled_for) FROM {runs} r
        WHERE r.schedule_id = s.id AND r.scheduled_for <= %(now)s AND r.status = 'success'
        ORDER BY r.scheduled_for DESC LIMIT 1) AS last_success_at,
       (SELECT coalesce(r.completed_at, r.scheduled_for) FROM {runs} r
        WHERE r.schedule_id = s.id AND r.scheduled_for <= %(now)s
          AND (r.status = 'error'
               OR (r.status = 'skipped'
                   AND (btrim(coalesce(r.error_message, ''), {blank}) <> ''
                        OR btrim(coalesce({error_code}, ''), {blank}) <> '')))
        ORDER BY r.scheduled_for DESC LIMIT 1) AS last_failure_at
FROM schedules s
WHERE s.id IN ("""
    + _GOVERNANCE_SCHEDULE_IDS
    + """)
"""
)

_READ_RECENT_RUNS: LiteralString = (
    """
SELECT s.id::text AS schedule_id, r.scheduled_for, r.status, r.error_code,
       r.error_message
FROM schedules s
CROSS JOIN LATERAL (
    SELECT r.scheduled_for, r.status, {error_code} AS error_code,
           left(r.error_message, {prefix}) AS error_message
    FROM {runs} r
    WHERE r.schedule_id = s.id AND r.scheduled_for <= %(now)s
    ORDER BY r.scheduled_for DESC
    LIMIT {limit}
) r
WHERE s.id IN ("""
    + _GOVERNANCE_SCHEDULE_IDS
    + """)
ORDER BY r.scheduled_for DESC
LIMIT {limit}
"""
)


def _escaped_literal(text: str) -> sql.SQL:
    """``text`` as an escape-string literal of printable characters (E'\\x09'), so
    that statements stay readable when printed or copied into a config file."""
    return sql.SQL("E'" + "".join(f"\\x{ord(c):02x}" for c in text) + "'")


_BLANK_LITERAL = _escaped_literal(BLANK_CHARACTERS)


def _runs_statement(template: LiteralString, schema: SchemaInfo) -> sql.Composed:
    error_code = sql.SQL("r.error_code" if schema.has_error_code else "NULL::text")
    return sql.SQL(template).format(
        runs=sql.Identifier(schema.runs_table),
        error_code=error_code,
        prefix=sql.Literal(_MESSAGE_PREFIX_CHARS),
        limit=sql.Literal(RECENT_RUNS_LIMIT),
        blank=_BLANK_LITERAL,
    )


def schema_info(catalog: CatalogRow) -> SchemaInfo:
    """The 2026-03 schema (graph_runs) wins when a migration left both tables."""
    if catalog.has_graph_runs:
        return SchemaInfo(SCHEMA_2026_03, "graph_runs", catalog.graph_runs_has_error_code)
    if catalog.has_schedule_runs:
        return SchemaInfo(SCHEMA_2026_02, "schedule_runs", False)
    raise SchemaNotFound(
        "neither schedule_runs (schema 2026-02) nor graph_runs (schema 2026-03) "
        "is visible on the search_path"
    )


class _BrokenConnection(Exception):
    """The connection died under a collection; safe to run it again on another."""

    def __init__(self, error: psycopg.OperationalError) -> None:
        super().__init__(str(error))
        self.error = error


class Source:
    """Reads a ``Snapshot`` of one billing account's governance from the pool."""

    def __init__(
        self,
        pool: ConnectionPool[psycopg.Connection[Any]],
        *,
        account: str,
        rls_user_id: str,
        window_seconds: int,
        timeout_seconds: float,
        max_charters: int,
    ) -> None:
        self._pool = pool
        self._account = account
        self._rls_user_id = rls_user_id
        self._window = timedelta(seconds=window_seconds)
        self._timeout_seconds = timeout_seconds
        self._max_charters = max_charters
        self._schema: SchemaInfo | None = None  # as found by the last collection

    def read(self, now: datetime) -> Snapshot:
        """One consistent snapshot as of ``now``; raises ``CollectionError``."""
        try:
            try:
                return self._read_pooled(now)
            except _BrokenConnection as broken:
                # A stale pooled connection: drop the broken ones, try once more.
                logger.info(
                    "pooled connection was broken (%s); retrying once", _first_line(broken.error)
                )
                self._pool.check()
                try:
                    return self._read_pooled(now)
                except _BrokenConnection as again:
                    raise again.error from again
        except PoolTimeout as exc:
            raise DatabaseUnavailable(
                f"no database connection within {self._timeout_seconds:g} s"
            ) from exc
        except errors.QueryCanceled as exc:
            raise QueryTimeout(
                f"a query ran past the {self._timeout_seconds:g} s statement timeout"
            ) from exc
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"database connection failed: {_first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise CollectionError(f"query failed: {_first_line(exc)}") from exc

    def _read_pooled(self, now: datetime) -> Snapshot:
        with self._pool.connection(timeout=self._timeout_seconds) as conn:
            deadline = _Deadline(conn, self._timeout_seconds + DEADLINE_GRACE_SECONDS)
            try:
                with deadline:
                    return self._read(conn, now)
            except psycopg.OperationalError as exc:
                if deadline.fired:
                    raise DatabaseUnavailable(
                        f"the database did not answer within {deadline.seconds:g} s"
                    ) from exc
                if conn.broken:
                    raise _BrokenConnection(exc) from exc
                raise

    def _params(self, now: datetime) -> dict[str, Any]:
        return {
            "account": self._account,
            "rls_user_id": self._rls_user_id,
            "statement_timeout_ms": str(int(self._timeout_seconds * 1000)),
            "now": now,
            "since": now - self._window,
            "schedule_limit": self._max_charters + 1,
        }

    def _read(self, conn: psycopg.Connection[Any], now: datetime) -> Snapshot:
        params = self._params(now)
        retried_missing = False
        for _ in range(3):
            guess = self._schema
            try:
                catalog, facts = self._transaction(conn, params, guess)
            except (errors.UndefinedTable, errors.UndefinedColumn):
                # Once: the guess may be stale. Twice: the table or column is really
                # missing, and that error is the one to report.
                if guess is None or retried_missing:
                    raise
                retried_missing = True
                conn.rollback()  # the guessed table or column is gone: read the catalog
                self._schema = None
                continue
            schema = schema_info(catalog)
            if facts is not None and schema == guess:
                return self._snapshot(now, schema, facts)
            self._schema = schema
        raise CollectionError("the schema changed during three collections in a row")

    def _transaction(
        self, conn: psycopg.Connection[Any], params: dict[str, Any], schema: SchemaInfo | None
    ) -> tuple[CatalogRow, _Facts | None]:
        """One round trip: BEGIN, context, catalog, the facts for ``schema``, COMMIT."""
        facts: _Facts | None = None
        with conn.pipeline():
            conn.execute(BEGIN_READ_ONLY)
            conn.execute(SET_TRANSACTION_CONTEXT, params)
            catalog_cur = conn.cursor(row_factory=class_row(CatalogRow))
            catalog_cur.execute(READ_CATALOG)
            if schema is not None:
                facts = _Facts(conn, params, schema)
            conn.execute(COMMIT)
        catalog = catalog_cur.fetchone()
        assert catalog is not None
        return catalog, facts

    def _snapshot(self, now: datetime, schema: SchemaInfo, facts: _Facts) -> Snapshot:
        account_row = facts.account.fetchone()
        spend = facts.spend.fetchone()
        if account_row is None or spend is None:
            raise AccountNotVisible(
                f"billing account {self._account!r} not found: wrong slug, or row-level "
                f"security hides it (is {self._rls_user_id!r} its owner?)"
            )
        schedules = facts.schedules.fetchall()
        truncated = len(schedules) > self._max_charters
        if truncated:
            logger.warning(
                "account %s has more than %d governance schedules; exporting the first %d",
                self._account,
                self._max_charters,
                self._max_charters,
            )
        return Snapshot(
            taken_at=now,
            window_seconds=int(self._window.total_seconds()),
            account=self._account,
            schema=schema,
            account_row=account_row,
            spend=spend,
            schedules=tuple(schedules[: self._max_charters]),
            schedules_truncated=truncated,
            run_counts=tuple(facts.counts.fetchall()),
            last_outcomes=tuple(facts.outcomes.fetchall()),
            recent_runs=tuple(facts.recent.fetchall()),
        )


class _Facts:
    """The fact statements of one transaction, queued in its pipeline."""

    def __init__(
        self, conn: psycopg.Connection[Any], params: dict[str, Any], schema: SchemaInfo
    ) -> None:
        self.account = conn.cursor(row_factory=class_row(AccountRow))
        self.account.execute(READ_ACCOUNT, params)
        self.spend = conn.cursor(row_factory=class_row(SpendRow))
        self.spend.execute(READ_SPEND, params)
        self.schedules = conn.cursor(row_factory=class_row(ScheduleRow))
        self.schedules.execute(READ_SCHEDULES, params)
        self.counts = conn.cursor(row_factory=class_row(RunCountRow))
        self.counts.execute(_runs_statement(_READ_RUN_COUNTS, schema), params)
        self.outcomes = conn.cursor(row_factory=class_row(LastOutcomeRow))
        self.outcomes.execute(_runs_statement(_READ_LAST_OUTCOMES, schema), params)
        self.recent = conn.cursor(row_factory=class_row(RecentRunRow))
        self.recent.execute(_runs_statement(_READ_RECENT_RUNS, schema), params)


# The server enforces statement_timeout; this covers a server or network path
# that stops answering altogether, which no server-side timeout can reach.
DEADLINE_GRACE_SECONDS = 1.0


class _Deadline:
    """Severs a connection's socket if a collection outlives ``seconds``.

    psycopg waits on the socket without a client-side timeout, so a path that
    accepts and then never answers would block the scrape. Shutting the socket
    down makes that wait fail at once; the pool then discards the connection.
    """

    def __init__(self, conn: psycopg.Connection[Any], seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self._fd = conn.fileno()
        self._timer = threading.Timer(seconds, self._sever)
        self._timer.daemon = True

    def _sever(self) -> None:
        self.fired = True
        logger.warning(
            "no answer from the database within %g s; closing that connection", self.seconds
        )
        with contextlib.suppress(OSError):
            sock = socket.socket(fileno=os.dup(self._fd))
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()


class _LenientText(Loader):
    """Text as str even from a SQL_ASCII database (where psycopg would hand over
    bytes): invalid UTF-8 becomes U+FFFD instead of breaking the collection."""

    def load(self, data: Buffer) -> str:
        return bytes(data).decode("utf-8", errors="replace")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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


def open_pool(
    conninfo: str, *, max_size: int, timeout_seconds: float, name: str = "governance"
) -> ConnectionPool[psycopg.Connection[Any]]:
    """A small pool that never blocks start-up and recovers within one scrape.

    The pool opens without waiting, so the exporter starts while the database is
    down. A short ``reconnect_timeout`` makes the pool give up a failed attempt
    quickly; the next scrape then asks for a connection and triggers a fresh one,
    instead of waiting out an exponential back-off.
    """
    pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
        conninfo,
        min_size=1,
        max_size=max_size,
        open=False,
        name=name,
        timeout=timeout_seconds,
        reconnect_timeout=max(timeout_seconds, 1.0),
        configure=configure_connection,
        kwargs={
            # libpq takes whole seconds and treats anything below 2 as 2; rounding
            # up keeps a connection attempt from giving up before the pool wait.
            "connect_timeout": max(2, math.ceil(timeout_seconds)),
            "application_name": "governance-exporter",
        },
    )
    pool.open(wait=False)
    return pool


def run_statements(schema: SchemaInfo | None = None) -> Sequence[str]:
    """The statements of one collection, in order (for docs and benchmarks); the
    2026-03 schema unless ``schema`` says otherwise."""
    schema = schema or SchemaInfo(SCHEMA_2026_03, "graph_runs", True)
    return (
        SET_TRANSACTION_CONTEXT,
        READ_CATALOG,
        READ_ACCOUNT,
        READ_SPEND,
        READ_SCHEDULES,
        _runs_statement(_READ_RUN_COUNTS, schema).as_string(None),
        _runs_statement(_READ_LAST_OUTCOMES, schema).as_string(None),
        _runs_statement(_READ_RECENT_RUNS, schema).as_string(None),
    )

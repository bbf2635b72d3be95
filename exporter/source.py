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
import functools
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, LiteralString, TypeVar

import psycopg
from psycopg import errors, sql
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.rows import class_row
from psycopg_pool import ConnectionPool, PoolTimeout

from exporter.dbconnect import Connector, connector_of
from exporter.dberrors import (
    AccountNotVisible,
    PermissionDenied,
    QueryTimeout,
    SchemaNotFound,
    first_line,
)

# Re-exported: check.py and the tests import these from here, where they are raised.
from exporter.dberrors import CollectionError as CollectionError  # noqa: PLC0414
from exporter.dberrors import DatabaseUnavailable as DatabaseUnavailable  # noqa: PLC0414
from exporter.ledger_queries import (
    DISPATCH_PREDICATE,
    LEDGER_CATALOG_COLUMNS,
    READ_DISPATCH_SCHEDULES,
    READ_LAST_REVIEW,
    READ_LEDGER_DISTRIBUTIONS,
    READ_LEDGER_EPOCHS,
    READ_LEDGER_RECEIPTS,
)
from exporter.model import BLANK_CHARACTERS
from exporter.snapshot import (
    SCHEMA_2026_02,
    SCHEMA_2026_03,
    SCHEMA_2026_10,
    AccountRow,
    AttributedSpendRow,
    CatalogRow,
    DistributionStreamRow,
    EpochStreamRow,
    FinishedRunRow,
    LastOutcomeRow,
    LastReviewRow,
    LedgerCursorRow,
    LedgerFacts,
    ReceiptStreamRow,
    RecentRunRow,
    RunCountRow,
    ScheduleRow,
    SchemaInfo,
    Snapshot,
    SpendRow,
    UnscheduledCountRow,
    UnscheduledOutcomeRow,
)

logger = logging.getLogger(__name__)

RECENT_RUNS_LIMIT = 10
# How far back the last success and failure of runs without a schedule are looked for.
UNSCHEDULED_LOOKBACK = timedelta(days=30)
# Finished runs are counted this long after they finish, so that a row written a
# little after its completed_at is not missed.
FINISHED_LAG = timedelta(seconds=15)
_MESSAGE_PREFIX_CHARS = 200


# --- statements -----------------------------------------------------------------

# Pooled connections are in autocommit mode; a collection states its transaction
# itself, so that BEGIN, the reads and COMMIT travel in one pipeline.
BEGIN_READ_ONLY: LiteralString = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
COMMIT: LiteralString = "COMMIT"

SET_TRANSACTION_CONTEXT: LiteralString = """
SELECT set_config('app.current_user_id', %(rls_user_id)s, true),
       set_config('statement_timeout', %(statement_timeout_ms)s, true)
"""

# Which schema this is, and what this role may read of it. A node migrated to
# 0021-0023 keeps graph_runs' schedule-only policy (0024 widened it to
# requested_by): under row-level security its runs without a schedule are
# invisible, which must be said, not read as "none".
READ_CATALOG: LiteralString = (
    """
SELECT to_regclass('schedule_runs') IS NOT NULL AS has_schedule_runs,
       to_regclass('graph_runs') IS NOT NULL AS has_graph_runs,
       EXISTS (SELECT 1 FROM pg_attribute
               WHERE attrelid = to_regclass('graph_runs')
                 AND attname = 'error_code' AND NOT attisdropped) AS graph_runs_has_error_code,
       EXISTS (SELECT 1 FROM pg_attribute
               WHERE attrelid = to_regclass('graph_runs')
                 AND attname = 'requested_by' AND NOT attisdropped) AS graph_runs_has_requested_by,
       EXISTS (SELECT 1 FROM pg_attribute
               WHERE attrelid = to_regclass('graph_runs')
                 AND attname = 'state_key' AND NOT attisdropped) AS graph_runs_has_state_key,
       coalesce(has_column_privilege(to_regclass('ingestion_cursors'), 'scope_id', 'SELECT')
                AND has_column_privilege(to_regclass('ingestion_cursors'), 'retrieved_at',
                                         'SELECT'),
                false) AS ingestion_cursors_readable,
       coalesce(row_security_active(to_regclass('graph_runs'))
                AND NOT EXISTS (SELECT 1 FROM pg_policy p
                                WHERE p.polrelid = to_regclass('graph_runs')
                                  AND pg_get_expr(p.polqual, p.polrelid) LIKE '%%requested_by%%'),
                false) AS unscheduled_runs_hidden"""
    + LEDGER_CATALOG_COLUMNS
)

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

# The operator's dispatch schedules (ledger_queries.READ_DISPATCH_SCHEDULES) are
# not charters: left out here, so they neither page nor take the charters' cap.
READ_SCHEDULES: LiteralString = (
    """
SELECT s.id::text AS schedule_id, s.temporal_schedule_id, s.input ->> 'message' AS message,
       s.cron, s.timezone, s.enabled, s.next_run_at, s.graph_id,
       s.input ->> 'scopeId' AS scope_id
FROM schedules s
JOIN execution_grants g ON g.id = s.execution_grant_id
JOIN billing_accounts a ON a.id = g.billing_account_id
WHERE a.slug = %(account)s AND NOT """
    + DISPATCH_PREDICATE
    + """
ORDER BY s.created_at, s.id
LIMIT %(schedule_limit)s
"""
)

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


# The account's owner is the principal its runs without a schedule are
# requested by (PR reviews, webhooks); the role sweep writes the account's slug
# itself ('cogni_system'). Named through the account, never through row-level
# security: a BYPASSRLS role sees every tenant's runs.
_ACCOUNT_OWNER: LiteralString = (
    "(SELECT a.owner_user_id FROM billing_accounts a WHERE a.slug = %(account)s"
    " UNION ALL SELECT %(account)s::text)"
)

# Walks the (requested_by, started_at) index of migration 0023 for the window.
READ_UNSCHEDULED_COUNTS: LiteralString = (
    """
SELECT r.run_kind, r.status, r.error_code, left(r.error_message, 200) AS error_message,
       count(*) AS runs
FROM graph_runs r
WHERE r.requested_by IN """
    + _ACCOUNT_OWNER
    + """
  AND r.schedule_id IS NULL
  AND r.started_at > %(since)s AND r.started_at <= %(now)s
GROUP BY 1, 2, 3, 4
"""
)

# The latest success and failure of each kind seen in the window, looking back
# at most LOOKBACK: the index is walked backwards and stops at the first match.
READ_UNSCHEDULED_OUTCOMES: LiteralString = (
    """
SELECT k.run_kind,
       (SELECT coalesce(r.completed_at, r.started_at) FROM graph_runs r
        WHERE r.requested_by = k.owner AND r.schedule_id IS NULL
          AND r.run_kind IS NOT DISTINCT FROM k.run_kind AND r.status = 'success'
          AND r.started_at > %(lookback)s AND r.started_at <= %(now)s
        ORDER BY r.started_at DESC LIMIT 1) AS last_success_at,
       (SELECT coalesce(r.completed_at, r.started_at) FROM graph_runs r
        WHERE r.requested_by = k.owner AND r.schedule_id IS NULL
          AND r.run_kind IS NOT DISTINCT FROM k.run_kind
          AND (r.status = 'error'
               OR (r.status = 'skipped'
                   AND (btrim(coalesce(r.error_message, ''), {blank}) <> ''
                        OR btrim(coalesce(r.error_code, ''), {blank}) <> '')))
          AND r.started_at > %(lookback)s AND r.started_at <= %(now)s
        ORDER BY r.started_at DESC LIMIT 1) AS last_failure_at
FROM (SELECT DISTINCT r.run_kind, r.requested_by AS owner FROM graph_runs r
      WHERE r.requested_by IN """
    + _ACCOUNT_OWNER
    + """
        AND r.schedule_id IS NULL
        AND r.started_at > %(since)s AND r.started_at <= %(now)s) k
"""
)

# Which work ate the window's credits: each charge joined to the account's run
# with its run_id (one of its schedules', or requested by its owner).
_READ_ATTRIBUTED_SPEND: LiteralString = (
    """
SELECT r.run_kind, r.schedule_id::text AS schedule_id,
       sum(c.charged_credits)::numeric AS spent_credits
FROM charge_receipts c
JOIN billing_accounts a ON a.id = c.billing_account_id
LEFT JOIN LATERAL (
    SELECT {run_kind} AS run_kind, r.schedule_id FROM {runs} r
    WHERE r.run_id = c.run_id
      AND ({requested_by_owner} OR r.schedule_id IN ("""
    + _GOVERNANCE_SCHEDULE_IDS
    + """))
    LIMIT 1
) r ON true
WHERE a.slug = %(account)s AND c.created_at > %(since)s AND c.created_at <= %(now)s
GROUP BY 1, 2
"""
)

# ingestion_cursors has no tenant: one row per ledger source stream of a scope.
READ_LEDGER_CURSORS: LiteralString = """
SELECT scope_id::text AS scope_id, max(retrieved_at) AS last_retrieved_at
FROM ingestion_cursors
WHERE retrieved_at <= %(now)s
GROUP BY scope_id
"""

# Runs that finished in (finished_after, finished_until], for counters that a
# re-created schedule (whose runs the cascade deletes) cannot decrease. Bounded
# by the indexed start columns: a run is assumed to finish within a day.
_READ_FINISHED_RUNS: LiteralString = (
    """
SELECT 'system_scheduled'::text AS run_kind, r.status, {error_code} AS error_code,
       left(r.error_message, {prefix}) AS error_message, count(*) AS runs
FROM {runs} r
WHERE r.schedule_id IN ("""
    + _GOVERNANCE_SCHEDULE_IDS
    + """)
  AND r.scheduled_for > %(finished_after)s - interval '1 day'
  AND r.scheduled_for <= %(finished_until)s
  AND r.completed_at > %(finished_after)s AND r.completed_at <= %(finished_until)s
GROUP BY 1, 2, 3, 4
{unscheduled}
"""
)
_FINISHED_UNSCHEDULED: LiteralString = (
    """
UNION ALL
SELECT r.run_kind, r.status, r.error_code, left(r.error_message, {prefix}), count(*)
FROM graph_runs r
WHERE r.requested_by IN """
    + _ACCOUNT_OWNER
    + """
  AND r.schedule_id IS NULL
  AND r.started_at > %(finished_after)s - interval '1 day'
  AND r.started_at <= %(finished_until)s
  AND r.completed_at > %(finished_after)s AND r.completed_at <= %(finished_until)s
GROUP BY 1, 2, 3, 4
"""
)


def _escaped_literal(text: str) -> sql.SQL:
    """``text`` as an escape-string literal of printable characters (E'\\x09'), so
    that statements stay readable when printed or copied into a config file."""
    return sql.SQL("E'" + "".join(f"\\x{ord(c):02x}" for c in text) + "'")


_BLANK_LITERAL = _escaped_literal(BLANK_CHARACTERS)
_UNSCHEDULED_OUTCOMES = sql.SQL(READ_UNSCHEDULED_OUTCOMES).format(blank=_BLANK_LITERAL)


# Composed once per template and schema version: not on every collection.
@functools.lru_cache(maxsize=64)
def _runs_statement(template: LiteralString, schema: SchemaInfo) -> sql.Composed:
    error_code = sql.SQL("r.error_code" if schema.has_error_code else "NULL::text")
    unscheduled = sql.SQL(_FINISHED_UNSCHEDULED if schema.has_requested_by else "")
    return sql.SQL(template).format(
        runs=sql.Identifier(schema.runs_table),
        error_code=error_code,
        run_kind=sql.SQL("r.run_kind" if schema.has_requested_by else "'system_scheduled'::text"),
        requested_by_owner=sql.SQL(
            "r.requested_by IN (a.owner_user_id, a.slug)" if schema.has_requested_by else "false"
        ),
        unscheduled=unscheduled.format(prefix=sql.Literal(_MESSAGE_PREFIX_CHARS)),
        prefix=sql.Literal(_MESSAGE_PREFIX_CHARS),
        limit=sql.Literal(RECENT_RUNS_LIMIT),
        blank=_BLANK_LITERAL,
    )


def schema_info(catalog: CatalogRow) -> SchemaInfo:
    """The graph_runs schemas win when a migration left both tables; 2026-10 is told
    from 2026-03 by graph_runs.state_key (migration 0022)."""
    if catalog.has_graph_runs:
        return SchemaInfo(
            SCHEMA_2026_10 if catalog.graph_runs_has_state_key else SCHEMA_2026_03,
            "graph_runs",
            catalog.graph_runs_has_error_code,
            has_requested_by=catalog.graph_runs_has_requested_by,
            ingestion_cursors_readable=catalog.ingestion_cursors_readable,
            unscheduled_runs_hidden=catalog.unscheduled_runs_hidden,
            **_ledger_schema(catalog),
        )
    if catalog.has_schedule_runs:
        return SchemaInfo(
            SCHEMA_2026_02,
            "schedule_runs",
            False,
            ingestion_cursors_readable=catalog.ingestion_cursors_readable,
            **_ledger_schema(catalog),
        )
    raise SchemaNotFound(
        "neither schedule_runs (schema 2026-02) nor graph_runs (schema 2026-03) "
        "is visible on the search_path"
    )


def _ledger_schema(catalog: CatalogRow) -> dict[str, bool]:
    epochs = catalog.has_ledger and catalog.ledger_epochs_readable
    return {
        "has_ledger": catalog.has_ledger,
        "ledger_epochs_readable": epochs,
        "ledger_receipts_readable": catalog.has_ledger and catalog.ledger_receipts_readable,
        # Its streams are the epochs': readable only with them.
        "ledger_distributions_readable": epochs and catalog.ledger_distributions_readable,
    }


# How often a collection waiting on the pool looks whether the pool's attempt to
# open a connection has failed meanwhile.
POOL_POLL_SECONDS = 0.1
# How long a collection looks for an idle pooled connection while new ones fail.
IDLE_WAIT_SECONDS = 0.01


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
        max_ledger_nodes: int = 50,
    ) -> None:
        self._pool = pool
        self._account = account
        self._rls_user_id = rls_user_id
        self._window = timedelta(seconds=window_seconds)
        self._timeout_seconds = timeout_seconds
        self._max_charters = max_charters
        self._max_ledger_nodes = max_ledger_nodes
        self._schema: SchemaInfo | None = None  # as found by the last collection
        # Finished runs are counted from here on (advanced by each snapshot read):
        # the first collection counts none, so the counters start at 0.
        self._finished_after: datetime | None = None
        self._connector = connector_of(pool)
        self._watchdog = _Watchdog()

    def read(self, now: datetime) -> Snapshot:
        """One consistent snapshot as of ``now``; raises ``CollectionError``."""
        since = self._connector.now() if self._connector is not None else 0.0
        try:
            try:
                return self._read_pooled(now, since)
            except _BrokenConnection as broken:
                # A stale pooled connection: drop the broken ones, try once more.
                logger.info(
                    "pooled connection was broken (%s); retrying once", first_line(broken.error)
                )
                self._pool.check()
                try:
                    return self._read_pooled(now, since)
                except _BrokenConnection as again:
                    raise again.error from again
        except PoolTimeout as exc:
            raise DatabaseUnavailable(
                f"no database connection within {self._timeout_seconds:g} s"
            ) from exc
        except errors.QueryCanceled as exc:
            raise QueryTimeout(
                f"a query ran past the {self._timeout_seconds:g} s statement timeout",
                sqlstate=exc.sqlstate,
            ) from exc
        except errors.InsufficientPrivilege as exc:
            raise PermissionDenied(
                f"the monitoring role lacks a grant: {first_line(exc)} "
                "(sql/monitoring-role.sql grants what the exporter reads)",
                sqlstate=exc.sqlstate,
            ) from exc
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(
                f"database connection failed: {first_line(exc)}", sqlstate=exc.sqlstate
            ) from exc
        except psycopg.Error as exc:
            raise CollectionError(
                f"query failed: {first_line(exc)}", sqlstate=exc.sqlstate
            ) from exc

    def _read_pooled(self, now: datetime, since: float) -> Snapshot:
        """On a pooled connection. After a failed connection attempt
        (``exporter.dbconnect``): on one still idle in the pool if there is one, else
        on the one this collection opens itself, closed afterwards."""
        connector = self._connector
        if connector is not None and connector.failure() is not None:
            idle = self._idle_connection()
            if idle is not None:  # a refill was refused, but this one still works
                with self._lent(idle) as conn:
                    return self._read_on(conn, now)
            own = connector.connection_for_collection()
            if own is not None:
                with own:
                    return self._read_on(own, now)
        with self._lent(self._getconn(since)) as conn:
            return self._read_on(conn, now)

    @contextlib.contextmanager
    def _lent(self, conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
        """``pool.connection()`` for a connection already taken from the pool."""
        try:
            with conn:
                yield conn
        finally:
            self._pool.putconn(conn)

    def _idle_connection(self) -> psycopg.Connection[Any] | None:
        if not self._pool.get_stats().get("pool_available"):
            return None  # asking would only make the pool try to grow
        try:
            return self._pool.getconn(timeout=IDLE_WAIT_SECONDS)
        except PoolTimeout:
            return None

    def _getconn(self, since: float) -> psycopg.Connection[Any]:
        """A pooled connection; ends the wait early with the cause as soon as the
        pool's attempt to open one has failed (the pool itself only times out)."""
        if self._connector is None:
            return self._pool.getconn(timeout=self._timeout_seconds)
        deadline = time.monotonic() + self._timeout_seconds
        while True:
            wait = min(POOL_POLL_SECONDS, deadline - time.monotonic())
            try:
                return self._pool.getconn(timeout=max(wait, 0.001))
            except PoolTimeout:
                failure = self._connector.failure(since)
                if failure is not None:
                    raise failure from None
                if time.monotonic() >= deadline:
                    raise

    def _read_on(self, conn: psycopg.Connection[Any], now: datetime) -> Snapshot:
        seconds = self._timeout_seconds + DEADLINE_GRACE_SECONDS
        alarm = self._watchdog.arm(conn, seconds)
        try:
            return self._read(conn, now)
        except psycopg.OperationalError as exc:
            if alarm.fired:
                raise DatabaseUnavailable(
                    f"the database did not answer within {seconds:g} s"
                ) from exc
            if conn.broken:
                raise _BrokenConnection(exc) from exc
            raise
        finally:
            self._watchdog.disarm(alarm)

    def _params(self, now: datetime) -> dict[str, Any]:
        return {
            "account": self._account,
            "rls_user_id": self._rls_user_id,
            "statement_timeout_ms": str(int(self._timeout_seconds * 1000)),
            "now": now,
            "since": now - self._window,
            "schedule_limit": self._max_charters + 1,
            "dispatch_limit": self._max_ledger_nodes + 1,
            "ledger_stream_limit": self._max_ledger_nodes + 1,
            "lookback": now - UNSCHEDULED_LOOKBACK,
            "finished_after": self._finished_after or now - FINISHED_LAG,
            "finished_until": now - FINISHED_LAG,
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
                snapshot = self._snapshot(now, schema, facts)
                self._finished_after = params["finished_until"]
                return snapshot
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
        if catalog is None:  # a SELECT without FROM always yields one row
            raise CollectionError("the catalog query returned no row")
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
            unscheduled_counts=_all(facts.unscheduled_counts),
            unscheduled_outcomes=_all(facts.unscheduled_outcomes),
            attributed_spend=_all(facts.attributed_spend),
            ledger_cursors=_all(facts.ledger_cursors),
            finished_runs=_all(facts.finished),
            ledger=self._ledger(facts),
        )

    def _ledger(self, facts: _Facts) -> LedgerFacts:
        cap = self._max_ledger_nodes
        dispatch = facts.dispatch.fetchall()
        epochs = _all(facts.ledger_epochs)
        receipts = _all(facts.ledger_receipts)
        reviews = _all(facts.last_review)
        return LedgerFacts(
            epochs=epochs[:cap],
            epochs_truncated=len(epochs) > cap,
            receipts=receipts[:cap],
            receipts_truncated=len(receipts) > cap,
            last_review=reviews[0] if reviews else None,
            distributions=_all(facts.distributions)[:cap],
            dispatch=tuple(dispatch[:cap]),
            dispatch_truncated=len(dispatch) > cap,
        )


T = TypeVar("T")


def _all(cursor: psycopg.Cursor[T] | None) -> tuple[T, ...]:
    return tuple(cursor.fetchall()) if cursor is not None else ()


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
        self.attributed_spend = conn.cursor(row_factory=class_row(AttributedSpendRow))
        self.attributed_spend.execute(_runs_statement(_READ_ATTRIBUTED_SPEND, schema), params)
        self.finished = conn.cursor(row_factory=class_row(FinishedRunRow))
        self.finished.execute(_runs_statement(_READ_FINISHED_RUNS, schema), params)
        self.unscheduled_counts: psycopg.Cursor[UnscheduledCountRow] | None = None
        self.unscheduled_outcomes: psycopg.Cursor[UnscheduledOutcomeRow] | None = None
        if schema.has_requested_by:
            self.unscheduled_counts = conn.cursor(row_factory=class_row(UnscheduledCountRow))
            self.unscheduled_counts.execute(READ_UNSCHEDULED_COUNTS, params)
            self.unscheduled_outcomes = conn.cursor(row_factory=class_row(UnscheduledOutcomeRow))
            self.unscheduled_outcomes.execute(_UNSCHEDULED_OUTCOMES, params)
        self.ledger_cursors: psycopg.Cursor[LedgerCursorRow] | None = None
        if schema.ingestion_cursors_readable:
            self.ledger_cursors = conn.cursor(row_factory=class_row(LedgerCursorRow))
            self.ledger_cursors.execute(READ_LEDGER_CURSORS, params)
        self.dispatch = conn.cursor(row_factory=class_row(ScheduleRow))
        self.dispatch.execute(READ_DISPATCH_SCHEDULES, params)
        self._ledger(conn, params, schema)

    def _ledger(
        self, conn: psycopg.Connection[Any], params: dict[str, Any], schema: SchemaInfo
    ) -> None:
        """The attribution ledger's statements (exporter.ledger_queries), where readable."""
        self.ledger_epochs: psycopg.Cursor[EpochStreamRow] | None = None
        self.ledger_receipts: psycopg.Cursor[ReceiptStreamRow] | None = None
        self.last_review: psycopg.Cursor[LastReviewRow] | None = None
        self.distributions: psycopg.Cursor[DistributionStreamRow] | None = None
        if schema.ledger_epochs_readable:
            self.ledger_epochs = conn.cursor(row_factory=class_row(EpochStreamRow))
            self.ledger_epochs.execute(READ_LEDGER_EPOCHS, params)
        if schema.ledger_receipts_readable:
            self.ledger_receipts = conn.cursor(row_factory=class_row(ReceiptStreamRow))
            self.ledger_receipts.execute(READ_LEDGER_RECEIPTS, params)
            if schema.has_requested_by:
                self.last_review = conn.cursor(row_factory=class_row(LastReviewRow))
                self.last_review.execute(READ_LAST_REVIEW, params)
        if schema.ledger_distributions_readable:
            self.distributions = conn.cursor(row_factory=class_row(DistributionStreamRow))
            self.distributions.execute(READ_LEDGER_DISTRIBUTIONS, params)


# The server enforces statement_timeout; this covers a server or network path
# that stops answering altogether, which no server-side timeout can reach.
DEADLINE_GRACE_SECONDS = 1.0


class _Alarm:
    """One collection's deadline on one connection's socket."""

    __slots__ = ("due", "fd", "fired", "seconds")

    def __init__(self, fd: int, seconds: float, due: float) -> None:
        self.fd = fd
        self.seconds = seconds
        self.due = due
        self.fired = False


class _Watchdog:
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
        self._armed: set[_Alarm] = set()
        self._thread: threading.Thread | None = None

    def arm(self, conn: psycopg.Connection[Any], seconds: float) -> _Alarm:
        alarm = _Alarm(conn.fileno(), seconds, time.monotonic() + seconds)
        with self._cond:
            self._armed.add(alarm)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="collection-deadline", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return alarm

    def disarm(self, alarm: _Alarm) -> None:
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


def _sever(alarm: _Alarm) -> None:
    alarm.fired = True
    logger.warning(
        "no answer from the database within %g s; closing that connection", alarm.seconds
    )
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=os.dup(alarm.fd))
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()


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


def open_pool(
    conninfo: str,
    *,
    max_size: int,
    timeout_seconds: float,
    name: str = "governance",
    clock: Callable[[], datetime] | None = None,
) -> ConnectionPool[psycopg.Connection[Any]]:
    """A small pool that never blocks start-up and never hammers a refusing server.

    The pool opens without waiting, so the exporter starts while the database is
    down. It connects through a ``Connector`` (``exporter.dbconnect``): once an
    attempt has failed, the pool's own retries are refused without touching the
    network, and each collection makes at most one attempt itself, after a
    refused login only once its back-off has run out. A short
    ``reconnect_timeout`` lets the pool's refused retries end quickly.
    """
    connect_kwargs: dict[str, Any] = {
        # libpq takes whole seconds and treats anything below 2 as 2; rounding
        # up keeps a connection attempt from giving up before the pool wait.
        "connect_timeout": max(2, math.ceil(timeout_seconds)),
        "application_name": "governance-exporter",
    }
    connector = Connector(
        conninfo,
        connect_kwargs=connect_kwargs,
        configure=configure_connection,
        clock=clock,
    )
    pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
        conninfo,
        connection_class=connector.connection_class,
        min_size=1,
        max_size=max_size,
        open=False,
        name=name,
        timeout=timeout_seconds,
        reconnect_timeout=max(timeout_seconds, 1.0),
        configure=configure_connection,
        kwargs=connect_kwargs,
    )
    pool.open(wait=False)
    return pool


def run_statements(schema: SchemaInfo | None = None) -> Sequence[str]:
    """The statements of one collection, in order (for docs and benchmarks); the
    2026-10 schema unless ``schema`` says otherwise."""
    schema = schema or SchemaInfo(
        SCHEMA_2026_10, "graph_runs", True, has_requested_by=True, ingestion_cursors_readable=True
    )
    statements = [
        SET_TRANSACTION_CONTEXT,
        READ_CATALOG,
        READ_ACCOUNT,
        READ_SPEND,
        READ_SCHEDULES,
        _runs_statement(_READ_RUN_COUNTS, schema).as_string(None),
        _runs_statement(_READ_LAST_OUTCOMES, schema).as_string(None),
        _runs_statement(_READ_RECENT_RUNS, schema).as_string(None),
        _runs_statement(_READ_ATTRIBUTED_SPEND, schema).as_string(None),
        _runs_statement(_READ_FINISHED_RUNS, schema).as_string(None),
    ]
    if schema.has_requested_by:
        statements.append(READ_UNSCHEDULED_COUNTS)
        statements.append(_UNSCHEDULED_OUTCOMES.as_string(None))
    if schema.ingestion_cursors_readable:
        statements.append(READ_LEDGER_CURSORS)
    statements.append(READ_DISPATCH_SCHEDULES)
    if schema.ledger_epochs_readable:
        statements.append(READ_LEDGER_EPOCHS)
    if schema.ledger_receipts_readable:
        statements += [READ_LEDGER_RECEIPTS, READ_LAST_REVIEW]
    if schema.ledger_distributions_readable:
        statements.append(READ_LEDGER_DISTRIBUTIONS)
    return statements

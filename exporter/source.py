"""Database access: every SQL statement the exporter runs is in this module.

A collection is two round trips on one pooled connection, inside one read-only
REPEATABLE READ transaction:

1. set the row-level-security user and the statement timeout for this
   transaction only, and read the catalog to learn the schema version;
2. read the facts, one statement each, sent together in pipeline mode.

Setting ``app.current_user_id`` per transaction (``set_config(..., true)``)
rather than per session means no connection can ever lack it: not one the pool
opens after a reconnect, nor one a transaction-pooling proxy hands over.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, LiteralString

import psycopg
from psycopg import errors, sql
from psycopg.rows import class_row
from psycopg_pool import ConnectionPool, PoolTimeout

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
SELECT id AS account_id, balance_credits
FROM billing_accounts
WHERE slug = %(account)s
"""

# The (billing_account_id, created_at) index bounds this to the window's rows.
READ_SPEND: LiteralString = """
SELECT coalesce(sum(c.charged_credits), 0)::numeric AS spent_credits,
       count(*) AS charges,
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
# index backwards and stopping at the first match.
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
                   AND (coalesce(r.error_message, '') <> ''
                        OR coalesce({error_code}, '') <> '')))
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


def _runs_statement(template: LiteralString, schema: SchemaInfo) -> sql.Composed:
    error_code = sql.SQL("r.error_code" if schema.has_error_code else "NULL::text")
    return sql.SQL(template).format(
        runs=sql.Identifier(schema.runs_table),
        error_code=error_code,
        prefix=sql.Literal(_MESSAGE_PREFIX_CHARS),
        limit=sql.Literal(RECENT_RUNS_LIMIT),
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

    def read(self, now: datetime) -> Snapshot:
        """One consistent snapshot as of ``now``; raises ``CollectionError``."""
        try:
            with self._pool.connection(timeout=self._timeout_seconds) as conn:
                return self._read(conn, now)
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
        with conn.pipeline():
            conn.execute(SET_TRANSACTION_CONTEXT, params)
            catalog_cur = conn.cursor(row_factory=class_row(CatalogRow))
            catalog_cur.execute(READ_CATALOG)
        catalog = catalog_cur.fetchone()
        assert catalog is not None
        schema = schema_info(catalog)

        with conn.pipeline():
            account_cur = conn.cursor(row_factory=class_row(AccountRow))
            account_cur.execute(READ_ACCOUNT, params)
            spend_cur = conn.cursor(row_factory=class_row(SpendRow))
            spend_cur.execute(READ_SPEND, params)
            schedules_cur = conn.cursor(row_factory=class_row(ScheduleRow))
            schedules_cur.execute(READ_SCHEDULES, params)
            counts_cur = conn.cursor(row_factory=class_row(RunCountRow))
            counts_cur.execute(_runs_statement(_READ_RUN_COUNTS, schema), params)
            outcomes_cur = conn.cursor(row_factory=class_row(LastOutcomeRow))
            outcomes_cur.execute(_runs_statement(_READ_LAST_OUTCOMES, schema), params)
            recent_cur = conn.cursor(row_factory=class_row(RecentRunRow))
            recent_cur.execute(_runs_statement(_READ_RECENT_RUNS, schema), params)

        account_row = account_cur.fetchone()
        spend = spend_cur.fetchone()
        if account_row is None or spend is None:
            raise AccountNotVisible(
                f"billing account {self._account!r} not found: wrong slug, or row-level "
                f"security hides it (is {self._rls_user_id!r} its owner?)"
            )
        schedules = schedules_cur.fetchall()
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
            run_counts=tuple(counts_cur.fetchall()),
            last_outcomes=tuple(outcomes_cur.fetchall()),
            recent_runs=tuple(recent_cur.fetchall()),
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def configure_connection(conn: psycopg.Connection[Any]) -> None:
    """Every pooled connection reads in read-only REPEATABLE READ transactions."""
    conn.read_only = True
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ


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
        check=ConnectionPool.check_connection,
        configure=configure_connection,
        kwargs={
            "connect_timeout": max(2, int(timeout_seconds)),
            "application_name": "governance-exporter",
        },
    )
    pool.open(wait=False)
    return pool


def run_statements() -> Sequence[str]:
    """The statements a collection runs on the 2026-03 schema (for docs and benchmarks)."""
    schema = SchemaInfo(SCHEMA_2026_03, "graph_runs", True)
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

"""The one read-only transaction that returns a ``Snapshot``, in one round trip.

A collection is one pipeline on one connection (``exporter.connections`` lends
it and guards it) holding a whole read-only REPEATABLE READ transaction:

    BEGIN; set the row-level-security user and the statement timeout for this
    transaction only; read the catalog (schema version); read the facts, one
    statement each; COMMIT.

The statements are in ``exporter.queries``. The fact statements depend on the
schema version (runs table, error_code column), so they are written for the
version the previous collection found; the catalog read in the same transaction
confirms it. When it does not (the first collection, or a migration since), or a
statement fails because the guessed table or column is gone, the transaction is
done again with the version just read: one more round trip, only then.

Setting ``app.current_user_id`` per transaction (``set_config(..., true)``)
rather than per session means no connection can ever lack it: not one the pool
opens after a reconnect, nor one a transaction-pooling proxy hands over.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, TypeVar

import psycopg
from psycopg import errors
from psycopg.rows import class_row

from exporter import queries
from exporter.connections import GuardedPool
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
)

logger = logging.getLogger(__name__)

# How far back the last success and failure of runs without a schedule are looked for.
UNSCHEDULED_LOOKBACK = timedelta(days=30)
# Finished runs are counted this long after they finish, so that a row written a
# little after its completed_at is not missed.
FINISHED_LAG = timedelta(seconds=15)


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


class Source:
    """Reads a ``Snapshot`` of one billing account's governance through the pool."""

    def __init__(
        self,
        pool: GuardedPool,
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

    def read(self, now: datetime) -> Snapshot:
        """One consistent snapshot as of ``now``; raises ``CollectionError``."""
        try:
            return self._pool.run(lambda conn: self._read(conn, now))
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
            conn.execute(queries.BEGIN_READ_ONLY)
            conn.execute(queries.SET_TRANSACTION_CONTEXT, params)
            catalog_cur = conn.cursor(row_factory=class_row(CatalogRow))
            catalog_cur.execute(queries.READ_CATALOG)
            if schema is not None:
                facts = _Facts(conn, params, schema)
            conn.execute(queries.COMMIT)
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
        statements = queries.for_schema(schema)
        self.account = conn.cursor(row_factory=class_row(AccountRow))
        self.account.execute(statements.account, params)
        self.spend = conn.cursor(row_factory=class_row(SpendRow))
        self.spend.execute(statements.spend, params)
        self.schedules = conn.cursor(row_factory=class_row(ScheduleRow))
        self.schedules.execute(statements.schedules, params)
        self.counts = conn.cursor(row_factory=class_row(RunCountRow))
        self.counts.execute(statements.run_counts, params)
        self.outcomes = conn.cursor(row_factory=class_row(LastOutcomeRow))
        self.outcomes.execute(statements.last_outcomes, params)
        self.recent = conn.cursor(row_factory=class_row(RecentRunRow))
        self.recent.execute(statements.recent_runs, params)
        self.attributed_spend = conn.cursor(row_factory=class_row(AttributedSpendRow))
        self.attributed_spend.execute(statements.attributed_spend, params)
        self.finished = conn.cursor(row_factory=class_row(FinishedRunRow))
        self.finished.execute(statements.finished_runs, params)
        self.unscheduled_counts = _queued(
            conn, UnscheduledCountRow, statements.unscheduled_counts, params
        )
        self.ledger_cursors = _queued(conn, LedgerCursorRow, statements.ledger_cursors, params)
        # The attribution ledger's statements (exporter.ledger_queries), where readable.
        self.dispatch = conn.cursor(row_factory=class_row(ScheduleRow))
        self.dispatch.execute(statements.dispatch_schedules, params)
        self.ledger_epochs = _queued(conn, EpochStreamRow, statements.ledger_epochs, params)
        self.ledger_receipts = _queued(conn, ReceiptStreamRow, statements.ledger_receipts, params)
        self.last_review = _queued(conn, LastReviewRow, statements.last_review, params)
        self.distributions = _queued(
            conn, DistributionStreamRow, statements.ledger_distributions, params
        )


def _queued(
    conn: psycopg.Connection[Any],
    row_type: type[T],
    statement: queries.Statement | None,
    params: dict[str, Any],
) -> psycopg.Cursor[T] | None:
    """``statement`` queued in the pipeline, if this schema has it."""
    if statement is None:
        return None
    cursor = conn.cursor(row_factory=class_row(row_type))
    cursor.execute(statement, params)
    return cursor

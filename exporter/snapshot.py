"""Typed, frozen rows read from the database, and the snapshot that holds them.

One collection reads one ``Snapshot`` inside a single read-only transaction, so
all its facts describe the same instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

SCHEMA_2026_02 = "2026-02"
SCHEMA_2026_03 = "2026-03"
SCHEMA_2026_10 = "2026-10"
SCHEMA_UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CatalogRow:
    has_schedule_runs: bool
    has_graph_runs: bool
    graph_runs_has_error_code: bool
    graph_runs_has_requested_by: bool
    graph_runs_has_state_key: bool
    ingestion_cursors_readable: bool
    unscheduled_runs_hidden: bool


@dataclass(frozen=True, slots=True)
class SchemaInfo:
    """Which version of the Cogni schema the database is on, and what it lets us read."""

    version: str
    runs_table: str
    has_error_code: bool
    # graph_runs.requested_by and run_kind (2026-03 on): runs without a schedule.
    has_requested_by: bool = False
    # ingestion_cursors exists and this role may read it: the ledger's trace.
    ingestion_cursors_readable: bool = False
    # Row-level security applies to us and graph_runs' policy predates 0024, so
    # runs without a schedule are invisible (a node migrated to 0021-0023).
    unscheduled_runs_hidden: bool = False


@dataclass(frozen=True, slots=True)
class AccountRow:
    account_id: str
    balance_credits: Decimal  # cast to numeric in SQL: whatever the column type, one type here


@dataclass(frozen=True, slots=True)
class SpendRow:
    spent_credits: Decimal
    charges: int
    last_charge_at: datetime | None


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    schedule_id: str
    temporal_schedule_id: str | None
    message: str | None
    cron: str
    timezone: str
    enabled: bool
    next_run_at: datetime | None
    graph_id: str | None = None
    scope_id: str | None = None  # input->>'scopeId' of a ledger schedule


@dataclass(frozen=True, slots=True)
class RunCountRow:
    """Runs of one schedule inside the window with one status and error."""

    schedule_id: str
    status: str | None
    error_code: str | None
    error_message: str | None
    runs: int


@dataclass(frozen=True, slots=True)
class LastOutcomeRow:
    schedule_id: str
    last_success_at: datetime | None
    last_failure_at: datetime | None


@dataclass(frozen=True, slots=True)
class RecentRunRow:
    """One of the account's latest runs; a run without a schedule has no
    schedule_id and is dated by its start (``scheduled_for`` holds started_at)."""

    schedule_id: str | None
    scheduled_for: datetime
    status: str | None
    error_code: str | None
    error_message: str | None
    run_kind: str | None = None  # NULL in 2026-02 (schedule_runs has no kind)


@dataclass(frozen=True, slots=True)
class UnscheduledCountRow:
    """Runs of the account's principal without a schedule, inside the window."""

    run_kind: str | None
    status: str | None
    error_code: str | None
    error_message: str | None
    runs: int


@dataclass(frozen=True, slots=True)
class UnscheduledOutcomeRow:
    run_kind: str | None
    last_success_at: datetime | None
    last_failure_at: datetime | None


@dataclass(frozen=True, slots=True)
class AttributedSpendRow:
    """Credits charged inside the window, by the run they paid for (charge_receipts.run_id)."""

    run_kind: str | None  # NULL: no run of the account has that run_id
    schedule_id: str | None
    spent_credits: Decimal


@dataclass(frozen=True, slots=True)
class LedgerCursorRow:
    """The newest ingestion_cursors.retrieved_at of one ledger scope."""

    scope_id: str
    last_retrieved_at: datetime


@dataclass(frozen=True, slots=True)
class FinishedRunRow:
    """Runs that finished (completed_at) inside (finished_after, finished_until]."""

    run_kind: str | None
    status: str | None
    error_code: str | None
    error_message: str | None
    runs: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one collection read, as of ``taken_at``."""

    taken_at: datetime
    window_seconds: int
    account: str
    schema: SchemaInfo
    account_row: AccountRow
    spend: SpendRow
    schedules: tuple[ScheduleRow, ...]
    schedules_truncated: bool
    run_counts: tuple[RunCountRow, ...]
    last_outcomes: tuple[LastOutcomeRow, ...]
    recent_runs: tuple[RecentRunRow, ...]
    unscheduled_counts: tuple[UnscheduledCountRow, ...] = ()
    unscheduled_outcomes: tuple[UnscheduledOutcomeRow, ...] = ()
    attributed_spend: tuple[AttributedSpendRow, ...] = ()
    ledger_cursors: tuple[LedgerCursorRow, ...] = ()
    finished_runs: tuple[FinishedRunRow, ...] = ()

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
SCHEMA_UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CatalogRow:
    has_schedule_runs: bool
    has_graph_runs: bool
    graph_runs_has_error_code: bool


@dataclass(frozen=True, slots=True)
class SchemaInfo:
    """Which version of the Cogni schema the database is on."""

    version: str
    runs_table: str
    has_error_code: bool


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
    schedule_id: str
    scheduled_for: datetime
    status: str | None
    error_code: str | None
    error_message: str | None


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

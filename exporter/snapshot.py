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
# The whole schema of a ledger-era node (exporter/reference/schema-2026-08-full.sql):
# the name of that file, for fixtures; the catalog reports such a node as 2026-10
# (graph_runs has state_key) with the ledger tables besides.
SCHEMA_2026_08 = "2026-08-full"
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
    # The attribution ledger (2026-08): does epochs exist, and what may this role read.
    has_ledger: bool = False
    ledger_epochs_readable: bool = False
    ledger_receipts_readable: bool = False
    # claimant_liabilities and epoch_distribution_manifests force row-level security
    # with no policy: readable only with BYPASSRLS (or as their owner).
    ledger_distributions_readable: bool = False


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
    # The attribution ledger's tables exist (epochs), and which of them we may read.
    has_ledger: bool = False
    ledger_epochs_readable: bool = False
    ledger_receipts_readable: bool = False
    ledger_distributions_readable: bool = False


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
    """Runs of the account's principal without a schedule, inside the window, and
    the latest success and failure of their kind by that principal (looking back
    source.UNSCHEDULED_LOOKBACK): the same on every row of a kind and principal."""

    run_kind: str | None
    status: str | None
    error_code: str | None
    error_message: str | None
    runs: int
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None


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
class EpochStreamRow:
    """The epochs of one (node_id, scope_id): the open one, counts, the oldest in review."""

    node_id: str
    scope_id: str
    epochs_open: int
    epochs_review: int
    epochs_finalized: int
    open_epoch_id: int | None
    open_period_start: datetime | None
    open_period_end: datetime | None
    latest_epoch_id: int | None
    latest_period_start: datetime | None
    latest_period_end: datetime | None
    oldest_review_epoch_id: int | None
    oldest_review_period_start: datetime | None
    oldest_review_period_end: datetime | None
    last_finalized_at: datetime | None


@dataclass(frozen=True, slots=True)
class ReceiptStreamRow:
    """The newest ingestion_receipts of one node: their ingested_at, newest event first."""

    node_id: str
    ingested_at: list[datetime]


@dataclass(frozen=True, slots=True)
class LastReviewRow:
    """The account's latest PR review (system_webhook run), if any in the lookback."""

    last_review_at: datetime | None


@dataclass(frozen=True, slots=True)
class DistributionStreamRow:
    """Distributions of one (node_id, scope_id); readable only with BYPASSRLS."""

    node_id: str
    scope_id: str
    manifests: int
    pending_liabilities: int
    oldest_pending_at: datetime | None
    finalized_without_manifest: int
    oldest_unmanifested_closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class LedgerFacts:
    """What one collection read of the attribution ledger (empty before 2026-08)."""

    epochs: tuple[EpochStreamRow, ...] = ()
    epochs_truncated: bool = False
    receipts: tuple[ReceiptStreamRow, ...] = ()
    receipts_truncated: bool = False
    last_review: LastReviewRow | None = None
    distributions: tuple[DistributionStreamRow, ...] = ()
    # The operator's per-node dispatch schedules (task:… graphs), kept out of the charters.
    dispatch: tuple[ScheduleRow, ...] = ()
    dispatch_truncated: bool = False


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
    attributed_spend: tuple[AttributedSpendRow, ...] = ()
    ledger_cursors: tuple[LedgerCursorRow, ...] = ()
    finished_runs: tuple[FinishedRunRow, ...] = ()
    ledger: LedgerFacts = LedgerFacts()

"""From a snapshot to what is exported: the credit, the work without a schedule, the whole view."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from exporter.model.runs import (
    FAILURE_REASONS,
    LEDGER_GRAPH_ID,
    RUN_STATUSES,
    SPEND_KINDS,
    UNATTRIBUTED,
    UNKNOWN_KIND,
    UNKNOWN_STATUS,
    charter_name,
    failure_reason,
    is_failure,
    normalise_status,
    run_kind_label,
    safe_label,
    still_failing,
)
from exporter.model.schedules import CharterView, ScheduleFacts, _latest, charters
from exporter.repospec import RepoSpecState
from exporter.snapshot import RunCountRow, ScheduleRow, Snapshot, UnscheduledCountRow

if TYPE_CHECKING:  # exporter.ledger builds on this module
    from exporter.ledger import LedgerView

CREDITS_PER_USD = 10_000_000


def burn_rate(spent_credits: float, window_seconds: float) -> float:
    """Credits spent per second over the window."""
    if window_seconds <= 0:
        raise ValueError("window_seconds must be positive")
    return max(spent_credits, 0) / window_seconds


def runway_seconds(balance_credits: float, burn_rate_per_second: float) -> float:
    """Seconds until the balance reaches 0 at the current burn rate.

    0 when the balance is already gone; +Inf when nothing is being spent.
    """
    if balance_credits <= 0:
        return 0.0
    if burn_rate_per_second <= 0:
        return math.inf
    return balance_credits / burn_rate_per_second


@dataclass(frozen=True)
class ReasonFailures:
    """The window's failures of one reason, over every work (charter or run kind)
    that had them: when the last of those works last failed, and whether any of
    them has not succeeded since (the default, for a count with no times known)."""

    last_failure_at: datetime | None = None
    still_failing: bool = True


@dataclass(frozen=True)
class CreditView:
    balance_credits: int
    spent_credits: float
    charges: int
    last_charge_at: datetime | None
    window_seconds: int
    burn_rate_per_second: float
    runway_seconds: float
    # Below this balance the preflight check rejects a run (its estimated cost).
    min_run_cost_credits: int = 0
    # Runs of the account (scheduled or not) that failed in the window for lack
    # of the account's credits, or of the operator's provider account.
    rejected_runs: int = 0
    provider_unavailable_runs: int = 0
    rejected: ReasonFailures = ReasonFailures()
    provider_unavailable: ReasonFailures = ReasonFailures()
    # Which work the window's credits paid for: by run kind, and by charter.
    spent_by_kind: dict[str, float] = field(default_factory=dict)
    spent_by_charter: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkView:
    """Runs of the account's principal without a schedule, of one run kind."""

    run_kind: str
    runs_by_status: dict[str, int]
    failures_by_reason: dict[str, int]
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None

    @property
    def failed_runs(self) -> int:
        return sum(self.failures_by_reason.values())

    @property
    def still_failing(self) -> bool:
        return still_failing(self.last_success_at, self.last_failure_at)


@dataclass(frozen=True)
class RecentRun:
    """One of the account's latest runs: a charter's (``charter`` set) or one without a
    schedule (``charter`` None), with its run kind; ``scheduled_for`` is its start
    when it has no schedule."""

    charter: str | None
    scheduled_for: datetime
    status: str
    reason: str | None
    kind: str = UNKNOWN_KIND


@dataclass(frozen=True)
class GovernanceView:
    """The meaning of one snapshot: credit health, charters and the latest runs."""

    account: str
    schema_version: str
    taken_at: datetime
    credit: CreditView
    charters: list[CharterView]
    recent_runs: list[RecentRun]
    schedules_truncated: bool
    unscheduled: list[WorkView] = field(default_factory=list)
    # None: the schema has no runs without a schedule (2026-02); False: row-level
    # security hides them (a node between migrations 0021 and 0024).
    unscheduled_visible: bool | None = None
    # The repo-spec's declaration in force and how its latest read went (None: none).
    repo_spec: RepoSpecState | None = None
    # The attribution ledger (NodeDeclaration.view adds it; exporter.ledger builds it).
    ledger: LedgerView | None = None


def whole_credits(value: object) -> int:
    """Credits as an int, whatever type the column has today.

    The schema says bigint, but a migration to numeric (or a cast in a view)
    hands over a Decimal; mixing that with float burn rates would raise. Credits
    are whole by definition, so a fraction is dropped.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TypeError(f"balance_credits is a {type(value).__name__}, not a number")
    return int(value)


def _reason_total(
    charters: Sequence[CharterView], unscheduled: Sequence[WorkView], reason: str
) -> int:
    return sum(c.failures_by_reason.get(reason, 0) for c in charters) + sum(
        w.failures_by_reason.get(reason, 0) for w in unscheduled
    )


def reason_failures(
    charters: Sequence[CharterView], unscheduled: Sequence[WorkView], reason: str
) -> ReasonFailures:
    """Over the works whose window holds failures of ``reason``: their latest last
    failure, and whether any of them has not succeeded since its own."""
    works: list[CharterView | WorkView] = [*charters, *unscheduled]
    failed = [w for w in works if w.failures_by_reason.get(reason, 0) > 0]
    return ReasonFailures(
        last_failure_at=_latest(w.last_failure_at for w in failed),
        still_failing=any(w.still_failing for w in failed),
    )


def attributed_spend(snapshot: Snapshot) -> tuple[dict[str, float], dict[str, float]]:
    """The window's credits by run kind (``unattributed``: no run of the account has
    the charge's run_id) and by charter."""
    names = {row.schedule_id: _schedule_charter(row) for row in snapshot.schedules}
    by_kind = dict.fromkeys(SPEND_KINDS, 0.0)
    by_charter: dict[str, float] = {}
    for row in snapshot.attributed_spend:
        credits = float(row.spent_credits)
        if row.run_kind is None and row.schedule_id is None:
            by_kind[UNATTRIBUTED] += credits
            continue
        by_kind[run_kind_label(row.run_kind)] += credits
        if row.schedule_id is not None:
            charter = names.get(row.schedule_id, safe_label(row.schedule_id))
            by_charter[charter] = by_charter.get(charter, 0.0) + credits
    return by_kind, by_charter


def credit_view(
    snapshot: Snapshot,
    charters: Sequence[CharterView] = (),
    unscheduled: Sequence[WorkView] = (),
    *,
    min_run_cost_credits: int = 0,
) -> CreditView:
    balance = whole_credits(snapshot.account_row.balance_credits)
    spent = float(snapshot.spend.spent_credits)
    rate = burn_rate(spent, snapshot.window_seconds)
    runway = runway_seconds(balance, rate)
    by_kind, by_charter = attributed_spend(snapshot)
    return CreditView(
        balance_credits=balance,
        spent_credits=spent,
        charges=snapshot.spend.charges,
        last_charge_at=snapshot.spend.last_charge_at,
        window_seconds=snapshot.window_seconds,
        burn_rate_per_second=rate,
        runway_seconds=runway,
        min_run_cost_credits=min_run_cost_credits,
        rejected_runs=_reason_total(charters, unscheduled, "insufficient_credits"),
        provider_unavailable_runs=_reason_total(charters, unscheduled, "provider_unavailable"),
        rejected=reason_failures(charters, unscheduled, "insufficient_credits"),
        provider_unavailable=reason_failures(charters, unscheduled, "provider_unavailable"),
        spent_by_kind=by_kind,
        spent_by_charter=by_charter,
    )


def _run_tallies(
    rows: Iterable[RunCountRow],
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    by_status: dict[str, dict[str, int]] = {}
    by_reason: dict[str, dict[str, int]] = {}
    for row in rows:
        statuses = by_status.setdefault(row.schedule_id, {})
        status = normalise_status(row.status)
        statuses[status] = statuses.get(status, 0) + row.runs
        if is_failure(row.status, row.error_code, row.error_message):
            reasons = by_reason.setdefault(row.schedule_id, {})
            reason = failure_reason(row.error_code, row.error_message)
            reasons[reason] = reasons.get(reason, 0) + row.runs
    return by_status, by_reason


def _schedule_charter(row: ScheduleRow) -> str:
    return charter_name(row.temporal_schedule_id, row.message, row.schedule_id)


def _ledger_success(snapshot: Snapshot, row: ScheduleRow) -> datetime | None:
    """The newest retrieved_at of the ledger schedule's scope (of the only scope,
    when the schedule's input names none)."""
    cursors = {c.scope_id: c.last_retrieved_at for c in snapshot.ledger_cursors}
    if row.scope_id is not None:
        return cursors.get(row.scope_id)
    return next(iter(cursors.values())) if len(cursors) == 1 else None


def schedule_facts(snapshot: Snapshot) -> list[ScheduleFacts]:
    by_status, by_reason = _run_tallies(snapshot.run_counts)
    outcomes = {row.schedule_id: row for row in snapshot.last_outcomes}
    facts = []
    for row in snapshot.schedules:
        outcome = outcomes.get(row.schedule_id)
        ledger = row.graph_id == LEDGER_GRAPH_ID
        last_success = outcome.last_success_at if outcome else None
        if ledger:
            last_success = _ledger_success(snapshot, row)
        facts.append(
            ScheduleFacts(
                schedule_id=row.schedule_id,
                charter=_schedule_charter(row),
                cron=row.cron,
                timezone=row.timezone,
                enabled=row.enabled,
                cached_next_run_at=row.next_run_at,
                runs_by_status=by_status.get(row.schedule_id, {}),
                failures_by_reason=by_reason.get(row.schedule_id, {}),
                last_success_at=last_success,
                last_failure_at=outcome.last_failure_at if outcome else None,
                ledger=ledger,
                observable=not ledger
                or (snapshot.schema.ingestion_cursors_readable and not snapshot.schema.has_ledger),
                epochs=ledger and snapshot.schema.has_ledger,
            )
        )
    return facts


def _kind_tallies(
    rows: Iterable[UnscheduledCountRow],
) -> dict[str, tuple[dict[str, int], dict[str, int]]]:
    tallies: dict[str, tuple[dict[str, int], dict[str, int]]] = {}
    for row in rows:
        kind = run_kind_label(row.run_kind)
        statuses, reasons = tallies.setdefault(
            kind,
            (dict.fromkeys((*RUN_STATUSES, UNKNOWN_STATUS), 0), dict.fromkeys(FAILURE_REASONS, 0)),
        )
        statuses[normalise_status(row.status)] += row.runs
        if is_failure(row.status, row.error_code, row.error_message):
            reasons[failure_reason(row.error_code, row.error_message)] += row.runs
    return tallies


def unscheduled_work(snapshot: Snapshot) -> list[WorkView]:
    """Runs without a schedule in the window, one view per run kind."""
    outcomes: dict[str, list[tuple[datetime | None, datetime | None]]] = {}
    for row in snapshot.unscheduled_counts:
        kind = run_kind_label(row.run_kind)
        outcomes.setdefault(kind, []).append((row.last_success_at, row.last_failure_at))
    views = []
    for kind, (statuses, reasons) in sorted(_kind_tallies(snapshot.unscheduled_counts).items()):
        seen = outcomes.get(kind, [])
        views.append(
            WorkView(
                run_kind=kind,
                runs_by_status=statuses,
                failures_by_reason=reasons,
                last_success_at=_latest(s for s, _ in seen),
                last_failure_at=_latest(f for _, f in seen),
            )
        )
    return views


def finished_outcomes(snapshot: Snapshot) -> dict[tuple[str, str], int]:
    """Runs that finished since the previous collection, by (run kind, outcome);
    runs that ended neither in success nor in failure (cancelled) are left out."""
    totals: dict[tuple[str, str], int] = {}
    for row in snapshot.finished_runs:
        if normalise_status(row.status) == "success":
            outcome = "success"
        elif is_failure(row.status, row.error_code, row.error_message):
            outcome = "failure"
        else:
            continue
        key = (run_kind_label(row.run_kind), outcome)
        totals[key] = totals.get(key, 0) + row.runs
    return totals


def finished_failures(snapshot: Snapshot) -> dict[tuple[str, str], int]:
    """The failed ones among them, by (run kind, bounded reason)."""
    totals: dict[tuple[str, str], int] = {}
    for row in snapshot.finished_runs:
        if is_failure(row.status, row.error_code, row.error_message):
            key = (run_kind_label(row.run_kind), failure_reason(row.error_code, row.error_message))
            totals[key] = totals.get(key, 0) + row.runs
    return totals


def _recent_runs(snapshot: Snapshot) -> list[RecentRun]:
    names = {row.schedule_id: _schedule_charter(row) for row in snapshot.schedules}
    return [
        RecentRun(
            charter=None
            if run.schedule_id is None
            else names.get(run.schedule_id, safe_label(run.schedule_id)),
            scheduled_for=run.scheduled_for,
            status=normalise_status(run.status),
            reason=failure_reason(run.error_code, run.error_message)
            if is_failure(run.status, run.error_code, run.error_message)
            else None,
            kind=run_kind_label(run.run_kind),
        )
        for run in snapshot.recent_runs
    ]


def governance_view(
    snapshot: Snapshot,
    expected_charters: Sequence[str] = (),
    *,
    spec: RepoSpecState | None = None,
    min_run_cost_credits: int = 0,
) -> GovernanceView:
    """Everything the metrics, the status page and ``check`` show, as of the snapshot.

    ``expected_charters`` and ``spec`` (the repo-spec's declaration in force) name
    the charters that must have a row; ``min_run_cost_credits`` is the balance
    below which runs are refused.
    """
    declared = spec.schedules if spec is not None else None
    views = charters(schedule_facts(snapshot), expected_charters, snapshot.taken_at, declared)
    unscheduled = unscheduled_work(snapshot)
    has_unscheduled = snapshot.schema.has_requested_by
    return GovernanceView(
        account=snapshot.account,
        schema_version=snapshot.schema.version,
        taken_at=snapshot.taken_at,
        credit=credit_view(snapshot, views, unscheduled, min_run_cost_credits=min_run_cost_credits),
        charters=views,
        recent_runs=_recent_runs(snapshot),
        schedules_truncated=snapshot.schedules_truncated,
        unscheduled=unscheduled,
        unscheduled_visible=not snapshot.schema.unscheduled_runs_hidden
        if has_unscheduled
        else None,
        repo_spec=spec,
    )

"""The pure part: what the facts read from the database mean.

Nothing here reads a clock or a socket: every function takes ``now`` (or the
numbers it needs) as an argument, so each can be tested exhaustively. The one
file read is the time zone database (tzdata), through ``ZoneInfo``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from exporter.repospec import DeclaredSchedule, RepoSpecState

if TYPE_CHECKING:  # exporter.ledger builds on this module
    from exporter.ledger import LedgerView
from exporter.snapshot import RunCountRow, ScheduleRow, Snapshot, UnscheduledCountRow

CREDITS_PER_USD = 10_000_000

RUN_STATUSES = ("pending", "running", "success", "error", "skipped", "cancelled")
UNKNOWN_STATUS = "unknown"
# What a blank error code or message may consist of; queries.py's btrim uses the
# same characters, so that SQL and Python agree on what a failure is.
BLANK_CHARACTERS = " \t\n\x0b\f\r"

# Bounded set of failure reasons; free text never becomes a label value.
FAILURE_REASONS = (
    "insufficient_credits",
    "provider_unavailable",
    "grant_validation_failed",
    "graph_execution_failed",
    "timeout",
    "internal",
    "rate_limit",
    "aborted",
    "not_found",
    "invalid_request",
    "other",
)
_CODE_REASONS = frozenset(FAILURE_REASONS) - {"other"}
_MESSAGE_REASONS = {
    "grant validation failed": "grant_validation_failed",
    "graph execution failed": "graph_execution_failed",
}

# graph_runs.run_kind (2026-03 on); anything else is "other", NULL "unknown".
RUN_KINDS = ("system_scheduled", "system_webhook", "user_immediate")
OTHER_KIND = "other"
UNKNOWN_KIND = "unknown"
# Charges whose run_id matches no run of the account.
UNATTRIBUTED = "unattributed"
SPEND_KINDS = (*RUN_KINDS, OTHER_KIND, UNKNOWN_KIND, UNATTRIBUTED)
OUTCOMES = ("success", "failure")

# Schedules whose work is a ledger collection: no run rows, no charges; its trace
# is ingestion_cursors.retrieved_at.
LEDGER_GRAPH_ID = "ledger:ingest"

_CHARTER_PREFIX = "governance:"
MAX_LABEL_LENGTH = 64
_LABEL_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


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


def normalise_status(status: str | None) -> str:
    """A known run status, or ``unknown`` for anything the schemas do not define.

    Exact match, as the source system writes them: the SQL for the last success
    and failure compares ``status`` as is, so that the optional partial indexes
    (``WHERE status = 'success'``) still apply; trimming or lower-casing here
    would make Python and SQL disagree on what a run was.
    """
    value = status or ""
    return value if value in RUN_STATUSES else UNKNOWN_STATUS


def is_failure(status: str | None, error_code: str | None, error_message: str | None) -> bool:
    """A run failed when it errored, or was skipped with an error (a failed grant check).

    A code or message of ``BLANK_CHARACTERS`` only is no error, as in the SQL.
    """
    value = normalise_status(status)
    if value == "error":
        return True
    return value == "skipped" and bool(
        (error_code or "").strip(BLANK_CHARACTERS) or (error_message or "").strip(BLANK_CHARACTERS)
    )


def failure_reason(error_code: str | None, error_message: str | None) -> str:
    """Map a run's error onto the bounded set of reasons in ``FAILURE_REASONS``."""
    for candidate in (error_code, error_message):
        text = (candidate or "").strip().lower()
        if text in _CODE_REASONS:
            return text
        if text in _MESSAGE_REASONS:
            return _MESSAGE_REASONS[text]
    return "other"


def run_kind_label(run_kind: str | None) -> str:
    if run_kind is None or not run_kind.strip():
        return UNKNOWN_KIND
    return run_kind if run_kind in RUN_KINDS else OTHER_KIND


def safe_label(value: str) -> str:
    """Bound a label value from the database: no control characters, at most 64 chars."""
    return _LABEL_UNSAFE.sub("_", value)[:MAX_LABEL_LENGTH]


def charter_name(temporal_schedule_id: str | None, message: str | None, schedule_id: str) -> str:
    """The charter a schedule runs, lower case.

    ``governance:<charter>`` in temporal_schedule_id wins, then the input message,
    then the schedule id itself so that an odd row is still visible.
    """
    tsid = (temporal_schedule_id or "").strip()
    if tsid.lower().startswith(_CHARTER_PREFIX) and tsid[len(_CHARTER_PREFIX) :].strip():
        return safe_label(tsid[len(_CHARTER_PREFIX) :].strip().lower())
    if message and message.strip():
        return safe_label(message.strip().lower())
    return safe_label(schedule_id)


class ScheduleConfigError(ValueError):
    """A schedule's cron expression or time zone cannot be used."""


@dataclass(frozen=True)
class NextRun:
    at: datetime
    interval_seconds: float


def next_run(cron: str, timezone: str, now: datetime) -> NextRun:
    """The next fire time after ``now`` and the gap to the one after it.

    Cron is evaluated in the schedule's own time zone with cron's DST rules
    (cronsim's): a time skipped by a spring-forward fires right after the jump,
    a repeated hour at fall-back fires in both of its occurrences.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    try:
        zone = ZoneInfo(timezone)
    # OSError: a name that is a directory of the zone database ("America")
    # raises IsADirectoryError, not ZoneInfoNotFoundError.
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ScheduleConfigError(f"unknown time zone {timezone!r}") from exc
    try:
        fires = _fires_after(CronSim(cron, now.astimezone(zone)), now.astimezone(UTC))
        first, second = next(fires), next(fires)
    except CronSimError as exc:
        raise ScheduleConfigError(f"invalid cron expression {cron!r}: {exc}") from exc
    except StopIteration as exc:
        raise ScheduleConfigError(f"cron expression {cron!r} never fires") from exc
    return NextRun(at=first, interval_seconds=(second - first).total_seconds())


def _fires_after(fires: Iterator[datetime], after: datetime) -> Iterator[datetime]:
    """Fire times in UTC, strictly increasing and after ``after``.

    Converting to UTC matters: aware datetimes sharing one ZoneInfo subtract as
    wall-clock times, so the repeated hour at fall-back would look 0 s apart.
    Starting inside that repeated hour, cronsim can also yield a time of its first
    occurrence, already past; those are dropped. The lookahead is bounded.
    """
    latest = after
    for fire in islice(fires, 16):
        fire_utc = fire.astimezone(UTC)
        if fire_utc > latest:
            latest = fire_utc
            yield fire_utc


# --- charters -------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleFacts:
    """One schedule row with the outcomes of its runs (input to ``charters``)."""

    schedule_id: str
    charter: str
    cron: str
    timezone: str
    enabled: bool
    cached_next_run_at: datetime | None
    runs_by_status: dict[str, int]
    failures_by_reason: dict[str, int]
    last_success_at: datetime | None
    last_failure_at: datetime | None
    # A ledger schedule's success is not a run row: observable only while
    # ingestion_cursors can be read.
    ledger: bool = False
    observable: bool = True
    # A ledger schedule on a node with the ledger's tables: judged by its epochs
    # (exporter.ledger and policy.ledger_problems), never by runs or cursors.
    epochs: bool = False

    @property
    def pruned(self) -> bool:
        """Paused with next_run_at NULL: the boot sync's mark of a retired entry."""
        return not self.enabled and self.cached_next_run_at is None


@dataclass(frozen=True)
class CharterView:
    """What the exporter says about one charter."""

    charter: str
    configured: bool
    enabled: bool = False
    schedules: int = 0
    runs_by_status: dict[str, int] = field(default_factory=dict)
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    next_run_at: datetime | None = None
    next_run_in_seconds: float | None = None
    interval_seconds: float | None = None
    cached_next_run_at: datetime | None = None
    config_error: str | None = None
    # Pruned by the boot sync and not expected: shown, never a warning.
    retired: bool = False
    # Declared in the repo-spec (None: no repo-spec, or not declared there).
    declared: DeclaredSchedule | None = None
    # How the rows differ from the declaration (the boot sync did not run).
    drift: str | None = None
    ledger: bool = False
    # False when the charter's work leaves no trace the exporter can read.
    observable: bool = True
    # Judged by the ledger's epochs instead (see ScheduleFacts.epochs).
    epochs: bool = False

    @property
    def failed_runs(self) -> int:
        return sum(self.failures_by_reason.values())

    @property
    def still_failing(self) -> bool:
        return still_failing(self.last_success_at, self.last_failure_at)

    @property
    def spends_credits(self) -> bool:
        """Enabled, and its runs are graph runs that charge the account."""
        return self.enabled and not self.ledger


def still_failing(last_success_at: datetime | None, last_failure_at: datetime | None) -> bool:
    """Of a work with failures: no success is known to have come after its last
    failure (it never succeeded, or either time is unknown). The alert rules compare
    the same two timestamps (``last_failure > last_success``, 0 for never)."""
    if last_failure_at is None or last_success_at is None:
        return True
    return last_failure_at >= last_success_at


def _latest(values: Iterable[datetime | None]) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _add_counts(total: dict[str, int], part: dict[str, int]) -> None:
    for key, count in part.items():
        total[key] = total.get(key, 0) + count


def _charter_view(charter: str, schedules: Sequence[ScheduleFacts], now: datetime) -> CharterView:
    runs = dict.fromkeys((*RUN_STATUSES, UNKNOWN_STATUS), 0)
    failures = dict.fromkeys(FAILURE_REASONS, 0)
    upcoming: list[NextRun] = []
    errors: list[str] = []
    for schedule in schedules:
        _add_counts(runs, schedule.runs_by_status)
        _add_counts(failures, schedule.failures_by_reason)
        try:
            planned = next_run(schedule.cron, schedule.timezone, now)
        except ScheduleConfigError as exc:
            errors.append(str(exc))
            continue
        if schedule.enabled:
            upcoming.append(planned)
    soonest = min(upcoming, key=lambda n: n.at, default=None)
    return CharterView(
        charter=charter,
        configured=True,
        enabled=any(s.enabled for s in schedules),
        schedules=len(schedules),
        runs_by_status=runs,
        failures_by_reason=failures,
        last_success_at=_latest(s.last_success_at for s in schedules),
        last_failure_at=_latest(s.last_failure_at for s in schedules),
        next_run_at=soonest.at if soonest else None,
        next_run_in_seconds=(soonest.at - now).total_seconds() if soonest else None,
        interval_seconds=soonest.interval_seconds if soonest else None,
        cached_next_run_at=min(
            (s.cached_next_run_at for s in schedules if s.cached_next_run_at), default=None
        ),
        config_error="; ".join(errors) or None,
        ledger=any(s.ledger for s in schedules),
        observable=all(s.observable for s in schedules),
        epochs=any(s.epochs for s in schedules),
    )


def _normal_cron(cron: str) -> str:
    return " ".join(cron.split())


def drift(declared: DeclaredSchedule, schedules: Sequence[ScheduleFacts]) -> str | None:
    """How the rows of a declared charter differ from its declaration, or None."""
    differences = []
    for schedule in schedules:
        if _normal_cron(schedule.cron) != _normal_cron(declared.cron):
            differences.append(f"cron {schedule.cron!r} where {declared.cron!r} is declared")
        if schedule.timezone != declared.timezone:
            differences.append(
                f"time zone {schedule.timezone!r} where {declared.timezone!r} is declared"
            )
    return "; ".join(dict.fromkeys(differences)) or None


def charters(
    schedules: Sequence[ScheduleFacts],
    expected: Sequence[str],
    now: datetime,
    declared: Sequence[DeclaredSchedule] | None = None,
) -> list[CharterView]:
    """One view per charter: the expected ones (configured or not) and any others found.

    ``declared`` (the repo-spec's schedules) adds to the expected charters and is
    compared with their rows. A charter found only pruned, and not expected, is
    retired. Several schedules of one charter are merged so that label sets stay
    unique.
    """
    by_charter: dict[str, list[ScheduleFacts]] = {}
    for schedule in schedules:
        by_charter.setdefault(schedule.charter, []).append(schedule)
    declarations = {d.charter: d for d in declared or ()}
    wanted = list(dict.fromkeys([*(e.lower() for e in expected), *declarations]))
    names = list(dict.fromkeys([*wanted, *sorted(by_charter)]))
    views = []
    for name in names:
        declaration = declarations.get(name)
        if name not in by_charter:
            views.append(CharterView(charter=name, configured=False, declared=declaration))
            continue
        rows = by_charter[name]
        view = _charter_view(name, rows, now)
        views.append(
            replace(
                view,
                declared=declaration,
                drift=drift(declaration, rows) if declaration else None,
                retired=name not in wanted and all(s.pruned for s in rows),
            )
        )
    return views


# --- from a snapshot to what is exported -------------------------------------------


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
    for row in snapshot.unscheduled_outcomes:
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

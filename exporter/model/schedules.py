"""When a schedule fires next, and what its rows say about each charter (stalls, drift)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import islice
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from exporter.model.runs import FAILURE_REASONS, RUN_STATUSES, UNKNOWN_STATUS, still_failing
from exporter.repospec import DeclaredSchedule


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


class PlannedSchedule(Protocol):
    """What planning a schedule's next run reads of a row (a charter's or a dispatch's)."""

    @property
    def cron(self) -> str: ...
    @property
    def timezone(self) -> str: ...
    @property
    def enabled(self) -> bool: ...


def soonest_next_run(
    schedules: Iterable[PlannedSchedule], now: datetime
) -> tuple[NextRun | None, list[str]]:
    """The soonest next run of the enabled schedules, and why any schedule (enabled
    or not) could not be planned."""
    upcoming: list[NextRun] = []
    errors: list[str] = []
    for schedule in schedules:
        try:
            planned = next_run(schedule.cron, schedule.timezone, now)
        except ScheduleConfigError as exc:
            errors.append(str(exc))
            continue
        if schedule.enabled:
            upcoming.append(planned)
    return min(upcoming, key=lambda n: n.at, default=None), errors


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


def _latest(values: Iterable[datetime | None]) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _add_counts(total: dict[str, int], part: dict[str, int]) -> None:
    for key, count in part.items():
        total[key] = total.get(key, 0) + count


def _charter_view(charter: str, schedules: Sequence[ScheduleFacts], now: datetime) -> CharterView:
    runs = dict.fromkeys((*RUN_STATUSES, UNKNOWN_STATUS), 0)
    failures = dict.fromkeys(FAILURE_REASONS, 0)
    for schedule in schedules:
        _add_counts(runs, schedule.runs_by_status)
        _add_counts(failures, schedule.failures_by_reason)
    soonest, errors = soonest_next_run(schedules, now)
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

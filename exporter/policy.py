"""Every threshold and every verdict: what is green, yellow or red, and which alert says so.

Pure: each function takes the views the model built and ``now``; nothing here reads
a clock, a socket or a file. ``check``, the status page and the tests of the alert
rules read these numbers and rules, and nothing else decides a colour. The alert
rules (``prometheus/rules/``) and the dashboard (``grafana/``) state the same
numbers in their own languages; ``tests/unit/test_parity.py`` holds them equal.

A ``Problem`` names the alert that covers it. ``check`` and the page are one
reading with no history, so they have no ``for:`` delay: they report at once
what the alert reports once it has lasted.

Now versus the window: a problem that counts failures in the window is current
only while the work that failed (the same charter, or the same kind of run
without a schedule) has not succeeded since its last failure. Once it has, the
problem is ``recovered``: listed, but it no longer colours the verdict, and its
alert (which compares the same two timestamps) has stopped.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from exporter.memory import BudgetHeader, FileStatus, Heartbeat, MemorySnapshot
from exporter.model import CharterView, CreditView, GovernanceView, ReasonFailures, WorkView
from exporter.words import (
    format_credits,
    format_duration,
    format_failure_count,
    format_failures,
    format_recovery,
    format_runway,
)

# --- thresholds ------------------------------------------------------------------------

# Credit runway, from the research note: red below 6 h, yellow up to 24 h.
RED_RUNWAY_SECONDS = 6 * 3600
YELLOW_RUNWAY_SECONDS = 24 * 3600

# A charter is stalled after two of its intervals plus 30 min for the run itself.
STALL_INTERVALS = 2
STALL_GRACE_SECONDS = 1800

# The gateway's own readers treat a budget header older than this as unavailable.
BUDGET_HEADER_MAX_AGE_SECONDS = 2 * 3600

# A heartbeat is stale after two of its charter's intervals; one hour (the
# gateway's rhythm) when the database knows no interval for the charter.
HEARTBEAT_STALE_INTERVALS = 2
HEARTBEAT_DEFAULT_INTERVAL_SECONDS = 3600


class Health(enum.StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


_HEALTH_ORDER = (Health.GREEN, Health.YELLOW, Health.RED)


def worst(healths: Iterable[Health]) -> Health:
    return max(healths, key=_HEALTH_ORDER.index, default=Health.GREEN)


# --- credit ------------------------------------------------------------------------------


def credit_health(
    balance_credits: float,
    runway: float,
    *,
    min_run_cost_credits: float = 0,
    refused: bool = False,
) -> Health:
    """Green above 24 h of runway, red below 6 h, at a zero balance, below one run's
    cost (the preflight check refuses runs there), or while runs are ``refused`` for
    credits with nothing spent; else yellow."""
    if balance_credits <= 0 or balance_credits < min_run_cost_credits or refused:
        return Health.RED
    if runway < RED_RUNWAY_SECONDS:
        return Health.RED
    if runway <= YELLOW_RUNWAY_SECONDS:
        return Health.YELLOW
    return Health.GREEN


def runs_refused(credit: CreditView) -> bool:
    """Runs rejected for credits in the window while nothing was spent, and not
    followed by a success of the same work: every run is turned away, whatever
    the balance says (a runway of +Inf is no comfort)."""
    return credit.rejected_runs > 0 and credit.spent_credits <= 0 and credit.rejected.still_failing


def credit_level(credit: CreditView) -> Health:
    """The credit card's colour: the health of the balance and its runway."""
    return credit_health(
        credit.balance_credits,
        credit.runway_seconds,
        min_run_cost_credits=credit.min_run_cost_credits,
        refused=runs_refused(credit),
    )


# --- charters ----------------------------------------------------------------------------


def stall_limit_seconds(interval_seconds: float) -> float:
    return STALL_INTERVALS * interval_seconds + STALL_GRACE_SECONDS


def stalled_for(charter: CharterView, now: datetime) -> float | None:
    """Seconds since the last success when that is over 2 intervals + 30 min;
    +Inf when an enabled charter never succeeded; ``None`` when not stalled."""
    if not charter.enabled or charter.interval_seconds is None or not charter.observable:
        return None  # paused, no schedule to keep, or successes we cannot see
    if charter.last_success_at is None:
        return math.inf
    age = (now - charter.last_success_at).total_seconds()
    return age if age > stall_limit_seconds(charter.interval_seconds) else None


# --- the gateway's memory files ------------------------------------------------------------


def budget_header_fresh(header: BudgetHeader, now: datetime) -> bool:
    if header.updated_at is None:
        return False
    return (now - header.updated_at).total_seconds() <= BUDGET_HEADER_MAX_AGE_SECONDS


def budget_gate_open(header: BudgetHeader, now: datetime) -> bool:
    """As the gateway's readers decide: a fresh, well-formed header that allows runs."""
    if header.file.status is not FileStatus.OK:
        return False
    return budget_header_fresh(header, now) and header.allow_runs is True


def heartbeat_limit_seconds(interval_seconds: float | None) -> float:
    return HEARTBEAT_STALE_INTERVALS * (interval_seconds or HEARTBEAT_DEFAULT_INTERVAL_SECONDS)


# --- the verdict ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One reason the verdict is not green, named after the alert that covers it."""

    health: Health
    subject: str  # "credit", "budget gate", or a charter name
    alert: str
    message: str
    # The work that failed has succeeded since its last failure: shown, not counted.
    recovered: bool = False


@dataclass(frozen=True)
class Assessment:
    """The verdict: the worst health of the current problems. ``recovered`` lists
    failures in the window that have stopped; they never colour the verdict."""

    health: Health
    problems: list[Problem]
    recovered: list[Problem] = field(default_factory=list)

    def for_subject(self, subject: str) -> list[Problem]:
        return [p for p in self.problems if p.subject == subject]


def _balance_problem(credit: CreditView) -> Problem | None:
    if credit.balance_credits <= 0:
        return Problem(
            Health.RED,
            "credit",
            "GovernanceCreditRunwayLow",
            f"balance is {format_credits(credit.balance_credits)}: every governance run "
            "is rejected with insufficient_credits until the account is topped up",
        )
    if credit.balance_credits < credit.min_run_cost_credits:
        return Problem(
            Health.RED,
            "credit",
            "GovernanceCreditRunwayLow",
            f"balance {format_credits(credit.balance_credits)} is below one run's cost "
            f"({format_credits(credit.min_run_cost_credits)}): the preflight check rejects "
            "runs with insufficient_credits until the account is topped up",
        )
    return None


def _reason_count(
    runs: int, reason: str, failures: ReasonFailures, credit: CreditView, now: datetime | None
) -> str:
    """``3 failed with provider_unavailable in the last 24 h, last 2 h ago``."""
    return format_failure_count(
        runs, credit.window_seconds, failures.last_failure_at, now, how=f" with {reason}"
    )


def _refusal_problems(credit: CreditView, now: datetime | None) -> list[Problem]:
    problems = []
    rejected = credit.rejected
    if credit.rejected_runs > 0 and credit.spent_credits <= 0:
        count = _reason_count(credit.rejected_runs, "insufficient_credits", rejected, credit, now)
        problems.append(
            Problem(
                Health.RED,
                "credit",
                "GovernanceRunsRejectedForCredits",
                f"{count}, nothing spent: every run is refused, whatever the balance says"
                if rejected.still_failing
                else f"{count}, nothing spent; recovered: the rejected work has succeeded since",
                recovered=not rejected.still_failing,
            )
        )
    provider = credit.provider_unavailable
    if credit.provider_unavailable_runs > 0:
        count = _reason_count(
            credit.provider_unavailable_runs, "provider_unavailable", provider, credit, now
        )
        problems.append(
            Problem(
                Health.RED,
                "provider",
                "GovernanceProviderUnavailable",
                f"{count}: the operator's LLM provider account is unfunded or the provider "
                "is down, which the balance cannot show"
                if provider.still_failing
                else f"{count}; recovered: the work that failed so has succeeded since",
                recovered=not provider.still_failing,
            )
        )
    return problems


def _runway_problem(credit: CreditView) -> Problem | None:
    runway = format_runway(credit)
    if credit.runway_seconds < RED_RUNWAY_SECONDS:
        return Problem(
            Health.RED,
            "credit",
            "GovernanceCreditRunwayLow",
            f"runway {runway} is below {format_duration(RED_RUNWAY_SECONDS)}",
        )
    if credit.runway_seconds <= YELLOW_RUNWAY_SECONDS:
        return Problem(
            Health.YELLOW,
            "credit",
            "GovernanceCreditRunwayLow",
            f"runway {runway} is at or below {format_duration(YELLOW_RUNWAY_SECONDS)}",
        )
    return None


def credit_problems(
    credit: CreditView, charters: Sequence[CharterView], now: datetime | None = None
) -> list[Problem]:
    """The balance, runway, spend and refusals; ``now`` dates the last failure (without
    it the words leave out how long ago)."""
    window = format_duration(credit.window_seconds)
    # The balance says more than the runway: one problem for the two.
    first = _balance_problem(credit) or _runway_problem(credit)
    problems = [first] if first is not None else []
    spending = [c for c in charters if c.spends_credits]
    if credit.spent_credits <= 0 and spending:
        problems.append(
            Problem(
                Health.YELLOW,
                "credit",
                "GovernanceNoSpend",
                f"nothing spent in the last {window} while {len(spending)} charter(s) "
                "are enabled: runs may be rejected before they spend, or not run at all",
            )
        )
    return problems + _refusal_problems(credit, now)


def _stall_problem(charter: CharterView, now: datetime) -> Problem | None:
    age = stalled_for(charter, now)
    if age is None:
        return None
    interval = format_duration(charter.interval_seconds or 0)
    text = (
        "has never completed a successful run"
        if math.isinf(age)
        else f"no successful run for {format_duration(age)}"
    )
    return Problem(
        Health.RED,
        charter.charter,
        "GovernanceCharterStalled",
        f"{text} (runs every {interval}; stalled after {STALL_INTERVALS} intervals + "
        f"{format_duration(STALL_GRACE_SECONDS)})",
    )


def _failing_problem(
    subject: str,
    reasons: str,
    work: CharterView | WorkView,
    *,
    now: datetime | None,
    window_seconds: float | None,
    which: str = "",
) -> Problem:
    """GovernanceRunsFailing for one charter or run kind: current until it succeeds."""
    count = format_failure_count(
        work.failed_runs, window_seconds, work.last_failure_at, now, which=which
    )
    if work.still_failing:
        return Problem(Health.YELLOW, subject, "GovernanceRunsFailing", f"{count}: {reasons}")
    recovery = format_recovery(work.last_success_at, now)
    return Problem(
        Health.YELLOW,
        subject,
        "GovernanceRunsFailing",
        f"{count}: {reasons}; {recovery}",
        recovered=True,
    )


def charter_problems(
    charter: CharterView, now: datetime, window_seconds: float | None = None
) -> list[Problem]:
    name = charter.charter
    if not charter.configured:
        return [
            Problem(
                Health.RED,
                name,
                "GovernanceCharterMissing",
                "no schedule row in the database: its runs are not recorded (as on 2026-02-15)",
            )
        ]
    if charter.retired:
        return []
    problems = [p for p in [_stall_problem(charter, now)] if p is not None]
    if charter.drift:
        problems.append(
            Problem(
                Health.YELLOW,
                name,
                "GovernanceScheduleDrift",
                f"its schedule differs from the repo-spec ({charter.drift}): the boot sync "
                "did not run",
            )
        )
    if charter.failed_runs > 0:
        problems.append(
            _failing_problem(
                name, format_failures(charter), charter, now=now, window_seconds=window_seconds
            )
        )
    if not charter.enabled:
        problems.append(
            Problem(Health.YELLOW, name, "GovernanceScheduleDisabled", "schedule is disabled")
        )
    if charter.config_error:
        problems.append(
            Problem(Health.YELLOW, name, "GovernanceScheduleConfigInvalid", charter.config_error)
        )
    return problems


BUDGET_GATE = "budget gate"


def budget_problems(header: BudgetHeader, now: datetime) -> list[Problem]:
    """GovernanceBudgetGateClosed and GovernanceBudgetGateStale, as the alerts see them."""
    if header.file.status is not FileStatus.OK:
        return [
            Problem(
                Health.YELLOW,
                BUDGET_GATE,
                "GovernanceBudgetGateStale",
                f"the budget header is {header.file.status.value}: the gateway treats the "
                "budget gate as unavailable",
            )
        ]
    problems = []
    if header.allow_runs is False:
        problems.append(
            Problem(
                Health.YELLOW,
                BUDGET_GATE,
                "GovernanceBudgetGateClosed",
                "the budget header says allow_runs: false: the gateway skips governance runs",
            )
        )
    if header.updated_at is not None and not budget_header_fresh(header, now):
        age = format_duration((now - header.updated_at).total_seconds())
        problems.append(
            Problem(
                Health.YELLOW,
                BUDGET_GATE,
                "GovernanceBudgetGateStale",
                f"the budget header was last updated {age} ago (the gateway treats one older "
                f"than {format_duration(BUDGET_HEADER_MAX_AGE_SECONDS)} as unavailable)",
            )
        )
    return problems


def heartbeat_problems(
    beat: Heartbeat, charter: CharterView | None, now: datetime
) -> list[Problem]:
    """GovernanceHeartbeatStale: quiet while the charter's schedule is paused."""
    if charter is not None and charter.configured and not charter.enabled:
        return []
    if beat.file.status is not FileStatus.OK:
        return [
            Problem(
                Health.YELLOW,
                beat.charter,
                "GovernanceHeartbeatStale",
                f"its heartbeat file is {beat.file.status.value}",
            )
        ]
    if beat.run_at is None:
        return []
    interval = charter.interval_seconds if charter is not None else None
    limit = heartbeat_limit_seconds(interval)
    age = (now - beat.run_at).total_seconds()
    if age <= limit:
        return []
    return [
        Problem(
            Health.YELLOW,
            beat.charter,
            "GovernanceHeartbeatStale",
            f"its heartbeat is {format_duration(age)} old (stale after "
            f"{HEARTBEAT_STALE_INTERVALS} of its intervals: {format_duration(limit)})",
        )
    ]


def memory_problems(
    memory: MemorySnapshot, charters: Sequence[CharterView], now: datetime
) -> list[Problem]:
    by_name = {c.charter: c for c in charters}
    problems = budget_problems(memory.budget, now)
    for beat in memory.heartbeats:
        problems.extend(heartbeat_problems(beat, by_name.get(beat.charter), now))
    return problems


def work_problems(
    work: WorkView, now: datetime | None = None, window_seconds: float | None = None
) -> list[Problem]:
    """Runs without a schedule (PR reviews): GovernanceRunsFailing covers them too."""
    if work.failed_runs <= 0:
        return []
    reasons = ", ".join(
        f"{reason} {n}"
        for reason, n in sorted(work.failures_by_reason.items(), key=lambda i: (-i[1], i[0]))
        if n > 0
    )
    return [
        _failing_problem(
            f"{work.run_kind} runs",
            reasons,
            work,
            now=now,
            window_seconds=window_seconds,
            which=" without a schedule",
        )
    ]


def node_problems(view: GovernanceView) -> list[Problem]:
    """What the exporter cannot see: hidden runs, a repo-spec gone bad."""
    problems = []
    if view.unscheduled_visible is False:
        problems.append(
            Problem(
                Health.YELLOW,
                "unscheduled runs",
                "GovernanceUnscheduledRunsHidden",
                "row-level security hides runs without a schedule (graph_runs' policy "
                "predates migration 0024): PR reviews and their failures cannot be counted",
            )
        )
    spec = view.repo_spec
    if spec is not None and spec.problem is not None:
        problems.append(
            Problem(
                Health.YELLOW,
                "repo-spec",
                "GovernanceRepoSpecUnusable",
                f"the repo-spec is {spec.status} ({spec.problem}); the last good "
                "declaration is kept",
            )
        )
    return problems


def assess(view: GovernanceView, now: datetime, memory: MemorySnapshot | None = None) -> Assessment:
    """The verdict on one view (and the gateway's files, when read): the worst health
    among its problems."""
    window = view.credit.window_seconds
    problems = credit_problems(view.credit, view.charters, now)
    for charter in view.charters:
        problems.extend(charter_problems(charter, now, window))
    for work in view.unscheduled:
        problems.extend(work_problems(work, now, window))
    problems.extend(node_problems(view))
    if memory is not None:
        problems.extend(memory_problems(memory, view.charters, now))
    current = [p for p in problems if not p.recovered]
    recovered = [p for p in problems if p.recovered]
    return Assessment(worst(p.health for p in current), current, recovered)


def charter_health(assessment: Assessment, charter: CharterView) -> Health:
    return worst(p.health for p in assessment.for_subject(charter.charter))

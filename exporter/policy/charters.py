"""The work verdicts: a charter stalled, failing or misconfigured; runs without a schedule."""

from __future__ import annotations

import math
from datetime import datetime

from exporter.model import CharterView, WorkView
from exporter.policy.core import Health, Problem
from exporter.policy.thresholds import STALL_GRACE_SECONDS, STALL_INTERVALS
from exporter.words import (
    format_duration,
    format_failure_count,
    format_failures,
    format_recovery,
)


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

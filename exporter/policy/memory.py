"""The gateway memory verdicts: the budget gate and each charter's heartbeat."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from exporter.memory import BudgetHeader, FileStatus, Heartbeat, MemorySnapshot
from exporter.model import CharterView
from exporter.policy.core import Health, Problem
from exporter.policy.thresholds import (
    BUDGET_HEADER_MAX_AGE_SECONDS,
    HEARTBEAT_DEFAULT_INTERVAL_SECONDS,
    HEARTBEAT_STALE_INTERVALS,
)
from exporter.words import (
    format_duration,
)


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

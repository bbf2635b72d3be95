"""Metric families from the gateway's memory files (optional: --memory-dir).

Like node_exporter's textfile collector it reads a directory at scrape time. A
bad file shows as a parse status, never as a failed scrape, and never touches the
database metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.memory import (
    BUDGET_STATUSES,
    BURN_RATE_TRENDS,
    DECISIONS,
    FILE_STATUSES,
    NO_OP_REASONS,
    BudgetHeader,
    Heartbeat,
    MemorySnapshot,
    read_memory,
)

CHARTER = ["charter"]


def _timestamp(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _one_hot(
    family: GaugeMetricFamily, labels: list[str], states: Sequence[str], current: str | None
) -> None:
    for state in states:
        family.add_metric([*labels, state], 1 if state == current else 0)


def heartbeat_families(heartbeats: Sequence[Heartbeat]) -> list[Metric]:
    status = GaugeMetricFamily(
        "governance_heartbeat_file_status",
        "Parse status of memory/{CHARTER}/heartbeat.md: 1 for the current status "
        "(ok, missing, incomplete, malformed, unreadable), 0 for the others.",
        labels=[*CHARTER, "status"],
    )
    run_at = GaugeMetricFamily(
        "governance_heartbeat_run_timestamp_seconds",
        "run_at of the charter's latest heartbeat, Unix time.",
        labels=CHARTER,
    )
    modified = GaugeMetricFamily(
        "governance_heartbeat_file_modified_timestamp_seconds",
        "Modification time of the charter's heartbeat file, Unix time.",
        labels=CHARTER,
    )
    decision = GaugeMetricFamily(
        "governance_heartbeat_decision",
        "The latest heartbeat's decision as a state set: 1 for action or no-op.",
        labels=[*CHARTER, "decision"],
    )
    reason = GaugeMetricFamily(
        "governance_heartbeat_no_op_reason",
        "Why the latest heartbeat was a no-op, as a state set (all 0 after an action).",
        labels=[*CHARTER, "reason"],
    )
    for beat in heartbeats:
        labels = [beat.charter]
        _one_hot(status, labels, FILE_STATUSES, beat.file.status)
        if (value := _timestamp(beat.file.modified_at)) is not None:
            modified.add_metric(labels, value)
        if (value := _timestamp(beat.run_at)) is not None:
            run_at.add_metric(labels, value)
        if beat.decision is not None:
            _one_hot(decision, labels, DECISIONS, beat.decision)
            _one_hot(reason, labels, NO_OP_REASONS, beat.no_op_reason)
    return [status, run_at, modified, decision, reason]


def _gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    if value is not None:
        family.add_metric([], value)
    return family


def budget_families(budget: BudgetHeader) -> list[Metric]:
    status = GaugeMetricFamily(
        "governance_budget_header_file_status",
        "Parse status of memory/_budget_header.md: 1 for the current status "
        "(ok, missing, incomplete, malformed, unreadable), 0 for the others.",
        labels=["status"],
    )
    _one_hot(status, [], FILE_STATUSES, budget.file.status)
    budget_status = GaugeMetricFamily(
        "governance_budget_status",
        "The budget gate's budget_status as a state set (ok, warn, critical).",
        labels=["status"],
    )
    trend = GaugeMetricFamily(
        "governance_budget_burn_rate_trend",
        "The budget gate's burn_rate_trend as a state set (down, flat, up).",
        labels=["trend"],
    )
    if budget.budget_status is not None:
        _one_hot(budget_status, [], BUDGET_STATUSES, budget.budget_status)
    if budget.burn_rate_trend is not None:
        _one_hot(trend, [], BURN_RATE_TRENDS, budget.burn_rate_trend)
    allow = None if budget.allow_runs is None else (1 if budget.allow_runs else 0)
    return [
        status,
        budget_status,
        trend,
        _gauge(
            "governance_budget_allow_runs",
            "1 when the budget gate allows governance runs, 0 when it is closed.",
            allow,
        ),
        _gauge(
            "governance_budget_updated_timestamp_seconds",
            "updated_at of the budget header, Unix time. The gateway treats the gate "
            "as unavailable when it is older than 2 h.",
            _timestamp(budget.updated_at),
        ),
        _gauge(
            "governance_budget_file_modified_timestamp_seconds",
            "Modification time of the budget header file, Unix time.",
            _timestamp(budget.file.modified_at),
        ),
        _gauge(
            "governance_budget_max_tokens_per_charter_run",
            "Cap on tokens per charter run set by the budget gate.",
            budget.max_tokens_per_charter_run,
        ),
        _gauge(
            "governance_budget_max_tool_calls_per_charter_run",
            "Cap on tool calls per charter run set by the budget gate.",
            budget.max_tool_calls_per_charter_run,
        ),
        _gauge(
            "governance_budget_max_brain_spawns_per_hour",
            "Cap on brain spawns per hour set by the budget gate.",
            budget.max_brain_spawns_per_hour,
        ),
    ]


class MemoryCollector(Collector):
    """Reads the memory directory on every scrape; registering reads nothing."""

    def __init__(
        self,
        directory: Path,
        charters: Sequence[str],
        reader: Callable[[Path, Sequence[str]], MemorySnapshot] = read_memory,
    ) -> None:
        self._directory = directory
        self._charters = tuple(charters)
        self._reader = reader

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        started = time.monotonic()
        snapshot = self._reader(self._directory, self._charters)
        yield from heartbeat_families(snapshot.heartbeats)
        yield from budget_families(snapshot.budget)
        yield _gauge(
            "governance_memory_ignored_entries",
            "Entries in the memory directory that are not an expected charter's folder "
            "or the budget header (not read).",
            snapshot.ignored_entries,
        )
        yield _gauge(
            "governance_memory_directory_readable",
            "1 when the memory directory could be listed, else 0.",
            1 if snapshot.directory_readable else 0,
        )
        yield _gauge(
            "governance_memory_collect_duration_seconds",
            "How long reading the memory directory took, in seconds.",
            time.monotonic() - started,
        )

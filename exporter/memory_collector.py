"""Metric families from the gateway's memory files (optional: --memory-dir).

Like node_exporter's textfile collector it reads a directory at scrape time. A
bad file shows as a parse status, never as a failed scrape, and never touches the
database metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
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
from exporter.metricspec import MetricSpec, unix_time_or_none

CHARTER = ("charter",)

# --- the table: every metric of this collector, in the order a scrape shows them ---------

HEARTBEAT_FILE_STATUS = MetricSpec(
    "governance_heartbeat_file_status",
    "Parse status of memory/{CHARTER}/heartbeat.md: 1 for the current status "
    "(ok, missing, incomplete, malformed, unreadable), 0 for the others.",
    (*CHARTER, "status"),
)
HEARTBEAT_RUN_AT = MetricSpec(
    "governance_heartbeat_run_timestamp_seconds",
    "run_at of the charter's latest heartbeat, Unix time.",
    CHARTER,
)
HEARTBEAT_MODIFIED = MetricSpec(
    "governance_heartbeat_file_modified_timestamp_seconds",
    "Modification time of the charter's heartbeat file, Unix time.",
    CHARTER,
)
HEARTBEAT_DECISION = MetricSpec(
    "governance_heartbeat_decision",
    "The latest heartbeat's decision as a state set: 1 for action or no-op.",
    (*CHARTER, "decision"),
)
HEARTBEAT_NO_OP_REASON = MetricSpec(
    "governance_heartbeat_no_op_reason",
    "Why the latest heartbeat was a no-op, as a state set (all 0 after an action).",
    (*CHARTER, "reason"),
)
BUDGET_FILE_STATUS = MetricSpec(
    "governance_budget_header_file_status",
    "Parse status of memory/_budget_header.md: 1 for the current status "
    "(ok, missing, incomplete, malformed, unreadable), 0 for the others.",
    ("status",),
)
BUDGET_STATUS = MetricSpec(
    "governance_budget_status",
    "The budget gate's budget_status as a state set (ok, warn, critical).",
    ("status",),
)
BUDGET_BURN_RATE_TREND = MetricSpec(
    "governance_budget_burn_rate_trend",
    "The budget gate's burn_rate_trend as a state set (down, flat, up).",
    ("trend",),
)
BUDGET_ALLOW_RUNS = MetricSpec(
    "governance_budget_allow_runs",
    "1 when the budget gate allows governance runs, 0 when it is closed.",
)
BUDGET_UPDATED = MetricSpec(
    "governance_budget_updated_timestamp_seconds",
    "updated_at of the budget header, Unix time. The gateway treats the gate "
    "as unavailable when it is older than 2 h.",
)
BUDGET_MODIFIED = MetricSpec(
    "governance_budget_file_modified_timestamp_seconds",
    "Modification time of the budget header file, Unix time.",
)
BUDGET_MAX_TOKENS = MetricSpec(
    "governance_budget_max_tokens_per_charter_run",
    "Cap on tokens per charter run set by the budget gate.",
)
BUDGET_MAX_TOOL_CALLS = MetricSpec(
    "governance_budget_max_tool_calls_per_charter_run",
    "Cap on tool calls per charter run set by the budget gate.",
)
BUDGET_MAX_BRAIN_SPAWNS = MetricSpec(
    "governance_budget_max_brain_spawns_per_hour",
    "Cap on brain spawns per hour set by the budget gate.",
)
MEMORY_IGNORED_ENTRIES = MetricSpec(
    "governance_memory_ignored_entries",
    "Entries in the memory directory that are not an expected charter's folder "
    "or the budget header (not read).",
)
MEMORY_DIRECTORY_READABLE = MetricSpec(
    "governance_memory_directory_readable",
    "1 when the memory directory could be listed, else 0.",
)
MEMORY_COLLECT_DURATION = MetricSpec(
    "governance_memory_collect_duration_seconds",
    "How long reading the memory directory took, in seconds.",
)

METRICS: tuple[MetricSpec, ...] = (
    HEARTBEAT_FILE_STATUS,
    HEARTBEAT_RUN_AT,
    HEARTBEAT_MODIFIED,
    HEARTBEAT_DECISION,
    HEARTBEAT_NO_OP_REASON,
    BUDGET_FILE_STATUS,
    BUDGET_STATUS,
    BUDGET_BURN_RATE_TREND,
    BUDGET_ALLOW_RUNS,
    BUDGET_UPDATED,
    BUDGET_MODIFIED,
    BUDGET_MAX_TOKENS,
    BUDGET_MAX_TOOL_CALLS,
    BUDGET_MAX_BRAIN_SPAWNS,
    MEMORY_IGNORED_ENTRIES,
    MEMORY_DIRECTORY_READABLE,
    MEMORY_COLLECT_DURATION,
)

# --- the families of one read --------------------------------------------------------------


def _add_state_set(
    family: GaugeMetricFamily, labels: list[str], states: Sequence[str], current: str | None
) -> None:
    """One sample per state: 1 for ``current``, 0 for the others."""
    for state in states:
        family.add_metric([*labels, state], 1 if state == current else 0)


def heartbeat_families(heartbeats: Sequence[Heartbeat]) -> list[Metric]:
    status = HEARTBEAT_FILE_STATUS.gauge()
    run_at = HEARTBEAT_RUN_AT.gauge()
    modified = HEARTBEAT_MODIFIED.gauge()
    decision = HEARTBEAT_DECISION.gauge()
    reason = HEARTBEAT_NO_OP_REASON.gauge()
    for beat in heartbeats:
        labels = [beat.charter]
        _add_state_set(status, labels, FILE_STATUSES, beat.file.status)
        if (value := unix_time_or_none(beat.file.modified_at)) is not None:
            modified.add_metric(labels, value)
        if (value := unix_time_or_none(beat.run_at)) is not None:
            run_at.add_metric(labels, value)
        if beat.decision is not None:
            _add_state_set(decision, labels, DECISIONS, beat.decision)
            _add_state_set(reason, labels, NO_OP_REASONS, beat.no_op_reason)
    return [status, run_at, modified, decision, reason]


def _single_value(spec: MetricSpec, value: float | None) -> GaugeMetricFamily:
    """An unlabelled gauge with one sample, or with none when ``value`` is ``None``."""
    family = spec.gauge()
    if value is not None:
        family.add_metric([], value)
    return family


def budget_families(budget: BudgetHeader) -> list[Metric]:
    status = BUDGET_FILE_STATUS.gauge()
    _add_state_set(status, [], FILE_STATUSES, budget.file.status)
    budget_status = BUDGET_STATUS.gauge()
    trend = BUDGET_BURN_RATE_TREND.gauge()
    if budget.budget_status is not None:
        _add_state_set(budget_status, [], BUDGET_STATUSES, budget.budget_status)
    if budget.burn_rate_trend is not None:
        _add_state_set(trend, [], BURN_RATE_TRENDS, budget.burn_rate_trend)
    allow = None if budget.allow_runs is None else (1 if budget.allow_runs else 0)
    return [
        status,
        budget_status,
        trend,
        _single_value(BUDGET_ALLOW_RUNS, allow),
        _single_value(BUDGET_UPDATED, unix_time_or_none(budget.updated_at)),
        _single_value(BUDGET_MODIFIED, unix_time_or_none(budget.file.modified_at)),
        _single_value(BUDGET_MAX_TOKENS, budget.max_tokens_per_charter_run),
        _single_value(BUDGET_MAX_TOOL_CALLS, budget.max_tool_calls_per_charter_run),
        _single_value(BUDGET_MAX_BRAIN_SPAWNS, budget.max_brain_spawns_per_hour),
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
        yield _single_value(MEMORY_IGNORED_ENTRIES, snapshot.ignored_entries)
        yield _single_value(MEMORY_DIRECTORY_READABLE, 1 if snapshot.directory_readable else 0)
        yield _single_value(MEMORY_COLLECT_DURATION, time.monotonic() - started)

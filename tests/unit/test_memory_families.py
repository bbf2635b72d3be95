"""The memory collector's families from constructed snapshots: names, labels, values.

Through ``MemoryCollector.collect`` with its reader injected, so no directory is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from unit_builders import NOW, Samples, labels, samples_of

from exporter.memory import (
    BUDGET_STATUSES,
    BURN_RATE_TRENDS,
    DECISIONS,
    FILE_STATUSES,
    NO_OP_REASONS,
    BudgetHeader,
    FileFacts,
    FileStatus,
    Heartbeat,
    MemorySnapshot,
)
from exporter.memory_collector import MemoryCollector

OK = FileFacts(FileStatus.OK, modified_at=NOW)
GOOD_BUDGET = BudgetHeader(
    OK,
    updated_at=NOW,
    allow_runs=True,
    budget_status="warn",
    burn_rate_trend="up",
    max_tokens_per_charter_run=1200,
    max_tool_calls_per_charter_run=12,
    max_brain_spawns_per_hour=2,
)


def collect(snapshot: MemorySnapshot) -> Samples:
    seen: list[tuple[Path, tuple[str, ...]]] = []

    def reader(directory: Path, charters: Sequence[str]) -> MemorySnapshot:
        seen.append((directory, tuple(charters)))
        return snapshot

    collector = MemoryCollector(Path("/memory"), ["govern"], reader=reader)
    assert list(collector.describe()) == []
    assert seen == []  # registering reads nothing
    found = samples_of(collector.collect())
    assert seen == [(Path("/memory"), ("govern",))]
    return found


def one_hot(found: Samples, name: str, key: str, **pairs: str) -> dict[str, float]:
    return {
        dict(k)[key]: v
        for k, v in found.get(name, {}).items()
        if all(dict(k).get(n) == x for n, x in pairs.items())
    }


def test_a_good_heartbeat_and_header() -> None:
    beat = Heartbeat("govern", OK, NOW, "no-op", "wip_full")
    found = collect(MemorySnapshot((beat,), GOOD_BUDGET, ignored_entries=2))
    govern = labels(charter="govern")
    assert one_hot(found, "governance_heartbeat_file_status", "status", charter="govern") == {
        s.value: (1 if s is FileStatus.OK else 0) for s in FILE_STATUSES
    }
    assert found["governance_heartbeat_run_timestamp_seconds"] == {govern: NOW.timestamp()}
    assert found["governance_heartbeat_file_modified_timestamp_seconds"] == {
        govern: NOW.timestamp()
    }
    assert one_hot(found, "governance_heartbeat_decision", "decision") == {
        "action": 0,
        "no-op": 1,
    }
    assert one_hot(found, "governance_heartbeat_no_op_reason", "reason") == {
        "veto": 0,
        "wip_full": 1,
        "blocked": 0,
        "no_delta": 0,
    }
    assert one_hot(found, "governance_budget_header_file_status", "status")["ok"] == 1
    assert one_hot(found, "governance_budget_status", "status") == {
        "ok": 0,
        "warn": 1,
        "critical": 0,
    }
    assert one_hot(found, "governance_budget_burn_rate_trend", "trend") == {
        "down": 0,
        "flat": 0,
        "up": 1,
    }
    single = {name: series.get(frozenset()) for name, series in found.items()}
    assert single["governance_budget_allow_runs"] == 1
    assert single["governance_budget_updated_timestamp_seconds"] == NOW.timestamp()
    assert single["governance_budget_file_modified_timestamp_seconds"] == NOW.timestamp()
    assert single["governance_budget_max_tokens_per_charter_run"] == 1200
    assert single["governance_budget_max_tool_calls_per_charter_run"] == 12
    assert single["governance_budget_max_brain_spawns_per_hour"] == 2
    assert single["governance_memory_ignored_entries"] == 2
    assert single["governance_memory_directory_readable"] == 1
    duration = single["governance_memory_collect_duration_seconds"]
    assert duration is not None
    assert duration >= 0


@pytest.mark.parametrize("status", [s for s in FileStatus if s is not FileStatus.OK])
def test_a_bad_heartbeat_has_its_status_and_nothing_else(status: FileStatus) -> None:
    beat = Heartbeat("govern", FileFacts(status))
    found = collect(MemorySnapshot((beat,), BudgetHeader(FileFacts(status)), 0, False))
    statuses = one_hot(found, "governance_heartbeat_file_status", "status", charter="govern")
    assert statuses == {s.value: (1 if s is status else 0) for s in FILE_STATUSES}
    for name in (
        "governance_heartbeat_run_timestamp_seconds",
        "governance_heartbeat_file_modified_timestamp_seconds",
        "governance_heartbeat_decision",
        "governance_heartbeat_no_op_reason",
        "governance_budget_status",
        "governance_budget_burn_rate_trend",
        "governance_budget_allow_runs",
        "governance_budget_updated_timestamp_seconds",
        "governance_budget_max_tokens_per_charter_run",
    ):
        assert found.get(name, {}) == {}, name
    budget = one_hot(found, "governance_budget_header_file_status", "status")
    assert budget == {s.value: (1 if s is status else 0) for s in FILE_STATUSES}
    assert found["governance_memory_directory_readable"] == {frozenset(): 0}


@pytest.mark.parametrize("decision", DECISIONS)
@pytest.mark.parametrize("reason", [*NO_OP_REASONS, None])
def test_decision_and_reason_are_state_sets(decision: str, reason: str | None) -> None:
    chosen = reason if decision == "no-op" else None
    beat = Heartbeat("govern", OK, NOW, decision, chosen)
    found = collect(MemorySnapshot((beat,), BudgetHeader(FileFacts(FileStatus.MISSING)), 0))
    decisions = one_hot(found, "governance_heartbeat_decision", "decision")
    assert decisions == {d: (1 if d == decision else 0) for d in DECISIONS}
    reasons = one_hot(found, "governance_heartbeat_no_op_reason", "reason")
    assert reasons == {r: (1 if r == chosen else 0) for r in NO_OP_REASONS}


@pytest.mark.parametrize("budget_status", BUDGET_STATUSES)
@pytest.mark.parametrize("trend", BURN_RATE_TRENDS)
def test_budget_state_sets(budget_status: str, trend: str) -> None:
    header = BudgetHeader(OK, NOW, False, budget_status, trend)
    found = collect(MemorySnapshot((), header, 0))
    assert one_hot(found, "governance_budget_status", "status") == {
        s: (1 if s == budget_status else 0) for s in BUDGET_STATUSES
    }
    assert one_hot(found, "governance_budget_burn_rate_trend", "trend") == {
        t: (1 if t == trend else 0) for t in BURN_RATE_TRENDS
    }
    assert found["governance_budget_allow_runs"] == {frozenset(): 0}
    assert found.get("governance_budget_max_tokens_per_charter_run", {}) == {}


def test_several_heartbeats_keep_their_own_labels() -> None:
    beats = (
        Heartbeat("govern", OK, NOW, "action"),
        Heartbeat("community", FileFacts(FileStatus.MISSING)),
    )
    found = collect(MemorySnapshot(beats, GOOD_BUDGET, 0))
    assert found["governance_heartbeat_run_timestamp_seconds"] == {
        labels(charter="govern"): NOW.timestamp()
    }
    assert (
        one_hot(found, "governance_heartbeat_file_status", "status", charter="community")["missing"]
        == 1
    )
    assert {dict(k)["charter"] for k in found["governance_heartbeat_decision"]} == {"govern"}

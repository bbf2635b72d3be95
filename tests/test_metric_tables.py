"""Every family a scrape shows is built from its collector's table, exactly as declared.

The docs are tested against the tables (test_docs); this ties the tables to what
the collectors yield: the same names, HELP, types and label names, and no family
outside them. Pure: constructed snapshots, no database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import CollectorRegistry

from exporter import collector, memory_collector
from exporter.cache import SnapshotCache
from exporter.memory_collector import MemoryCollector
from exporter.metricspec import MetricSpec
from exporter.model import governance_view
from exporter.repospec import RepoSpecState
from exporter.snapshot import (
    SCHEMA_2026_03,
    AccountRow,
    SchemaInfo,
    Snapshot,
    SpendRow,
)


class FixedSource:
    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def read(self, now: datetime) -> Snapshot:
        return self._snapshot


def _governance_families() -> list[Metric]:
    snapshot = Snapshot(
        taken_at=datetime(2026, 2, 15, tzinfo=UTC),
        window_seconds=86400,
        account="cogni_system",
        schema=SchemaInfo(SCHEMA_2026_03, "graph_runs", True, has_requested_by=True),
        account_row=AccountRow("id", 1),
        spend=SpendRow(0, 0, None),  # type: ignore[arg-type]
        schedules=(),
        schedules_truncated=False,
        run_counts=(),
        last_outcomes=(),
        recent_runs=(),
    )
    view = governance_view(snapshot, ["govern"])
    result = SnapshotCache(FixedSource(snapshot)).get()
    return [
        *collector.credit_families(view),
        *collector.charter_families(view),
        *collector.unscheduled_families(view),
        *collector.finished_families(view.account, result),
        *collector.repo_spec_families(RepoSpecState(())),
        *collector.health_families(None, "unknown"),
    ]


def _memory_families(directory: Path) -> list[Metric]:
    registry = CollectorRegistry()
    registry.register(MemoryCollector(directory, ["govern"]))
    return list(registry.collect())


def _sample_name(family: Metric) -> str:
    return family.name + {"counter": "_total", "info": "_info"}.get(family.type, "")


def _assert_built_from(families: list[Metric], table: tuple[MetricSpec, ...]) -> None:
    declared = {spec.name: spec for spec in table}
    assert len(declared) == len(table), "a metric is declared twice"
    shown = {_sample_name(family): family for family in families}
    assert set(shown) == set(declared)
    for name, family in shown.items():
        spec = declared[name]
        assert family.documentation == spec.help, name
        assert family.type == spec.type, name
        for sample in family.samples:
            if sample.name == name:  # not a counter's _created
                assert tuple(sample.labels) == spec.labels, name


def test_the_governance_families_are_the_table() -> None:
    _assert_built_from(_governance_families(), collector.METRICS)


def test_the_memory_families_are_the_table(tmp_path: Path) -> None:
    _assert_built_from(_memory_families(tmp_path), memory_collector.METRICS)

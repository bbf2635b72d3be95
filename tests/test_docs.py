"""The README's tables must keep up with the code."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from prometheus_client.registry import CollectorRegistry

from exporter import collector, ledger, ledger_collector
from exporter.cache import SnapshotCache
from exporter.memory_collector import MemoryCollector
from exporter.model import FAILURE_REASONS, RUN_STATUSES, governance_view
from exporter.policy import LedgerThresholds
from exporter.repospec import RepoSpecState
from exporter.settings import Settings, option_env, option_flag
from exporter.snapshot import (
    SCHEMA_2026_03,
    AccountRow,
    DistributionStreamRow,
    EpochStreamRow,
    ReceiptStreamRow,
    ScheduleRow,
    SchemaInfo,
    Snapshot,
    SpendRow,
)

ROOT = Path(__file__).resolve().parent.parent


class FixedSource:
    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def read(self, now: datetime) -> Snapshot:
        return self._snapshot


README = (ROOT / "README.md").read_text()


def test_every_option_is_in_the_configuration_table() -> None:
    for name in Settings.model_fields:
        row = f"| `{option_flag(name)}` | `{option_env(name)}` |"
        assert row in README, f"README's configuration table lacks {name}"


def _exported_names() -> set[str]:
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
    families = [
        *collector.credit_families(view),
        *collector.charter_families(view),
        *collector.unscheduled_families(view),
        *collector.finished_families(view.account, result),
        *collector.repo_spec_families(RepoSpecState(())),
        *collector.health_families(None, "unknown"),
    ]
    names = set()
    for family in families:
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        names.add(family.name + suffix)
    return names


def _ledger_names() -> set[str]:
    """Every ledger family: a view with a stream, receipts, distributions and a dispatch."""
    now = datetime(2026, 12, 7, tzinfo=UTC)
    stream = EpochStreamRow("n", "s", 1, 1, 1, 3, now, now, 3, now, now, 2, now, now, now)
    dispatch = ScheduleRow("id", "governance:n:ledger_ingest", None, "0 6 * * *", "UTC", True, None)
    view = ledger.LedgerView(
        has_ledger=True,
        epochs_observable=True,
        receipts_observable=True,
        distributions_observable=True,
        streams=(ledger.epoch_stream(stream, (), now),),
        streams_truncated=False,
        receipts=(ledger.receipt_view(ReceiptStreamRow("n", [now] * 6), now),),
        receipts_truncated=False,
        last_review_at=None,
        reviews_observable=True,
        distributions=(
            ledger.distribution_view(DistributionStreamRow("n", "s", 1, 1, now, 1, now), now),
        ),
        dispatch=tuple(ledger.dispatch_views([dispatch], now)),
        dispatch_truncated=False,
        cursors={"s": now},
    )
    families = ledger_collector.ledger_families(view, LedgerThresholds(), "cogni_system")
    names = {family.name for family in families}
    assert names == set(ledger_collector.METRICS)
    return names


def _memory_names(directory: Path) -> set[str]:
    registry = CollectorRegistry()
    registry.register(MemoryCollector(directory, ["govern"]))
    return {family.name for family in registry.collect()}


def test_every_metric_is_in_the_metric_tables(tmp_path: Path) -> None:
    documented = set(re.findall(r"^\| `(governance_[a-z_]+)` \|", README, re.MULTILINE))
    exported = _exported_names() | _memory_names(tmp_path) | _ledger_names()
    assert exported <= documented, "README lacks these metrics"
    assert documented - exported == set(), "README documents metrics that do not exist"


def test_statuses_and_reasons_are_documented() -> None:
    for value in (*RUN_STATUSES, *FAILURE_REASONS):
        assert f"`{value}`" in README


def test_bundled_schemas_equal_the_shared_reference() -> None:
    """The package ships copies of the source system's schemas (the demo loads them);
    they must not drift from ../shared/reference, which CI checks out beside us."""
    shared = Path(__file__).resolve().parent.parent.parent / "shared" / "reference"
    if not shared.is_dir():
        pytest.skip(f"{shared} is not beside this checkout (CI has it)")
    bundled = Path(__file__).resolve().parent.parent / "exporter" / "reference"
    for version in ("2026-02", "2026-03", "2026-10", "2026-08-full"):
        name = f"schema-{version}.sql"
        assert (bundled / name).read_text() == (shared / name).read_text(), name


def test_the_alert_table_matches_the_rules() -> None:
    files = sorted((ROOT / "prometheus" / "rules").glob("*.rules.yml"))
    in_rules = sorted(
        (rule["alert"], rule["labels"]["severity"], rule.get("for", "0m"))
        for path in files
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    )
    rows = re.findall(r"^\| `(Governance\w+)` \| (\w+) \| (\w+) \|", README, re.MULTILINE)
    assert sorted(rows) == in_rules

"""The database collector's families from constructed snapshots: names, labels, values.

Written through the collector's public surface (``families`` of one collection,
and ``collect`` through a registry) so that a new way of declaring the metrics
leaves these tests as they are; ``collector_for`` is the one place that builds one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from types import MappingProxyType

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from unit_builders import NOW, SCHEMA_03, Samples, at, labels, samples_of, schedule, snapshot

from exporter import __version__
from exporter.collection import CollectionResult
from exporter.collector import GovernanceCollector
from exporter.declaration import NodeDeclaration
from exporter.model import FAILURE_REASONS, RUN_STATUSES
from exporter.snapshot import (
    SCHEMA_2026_02,
    AccountRow,
    AttributedSpendRow,
    FinishedRunRow,
    LastOutcomeRow,
    RunCountRow,
    SchemaInfo,
    Snapshot,
    SpendRow,
    UnscheduledCountRow,
)

ACCOUNT = "cogni_system"


class _Fixed:
    """Stands where the collection cache stands: hands out one result."""

    def __init__(self, result: CollectionResult) -> None:
        self.result = result

    def get(self) -> CollectionResult:
        return self.result


def result_of(
    snap: Snapshot | None,
    *,
    errors: dict[str, int] | None = None,
    finished: dict[tuple[str, str], int] | None = None,
    failed: dict[tuple[str, str], int] | None = None,
) -> CollectionResult:
    return CollectionResult(
        started_at=NOW,
        duration_seconds=0.25,
        snapshot=snap,
        error=None,
        last_success_at=NOW if snap is not None else None,
        failing_since=None if snap is not None else NOW,
        errors_by_reason=MappingProxyType(errors or {}),
        finished_totals=MappingProxyType(finished or {}),
        failed_totals=MappingProxyType(failed or {}),
    )


def collector_for(result: CollectionResult, expected: Sequence[str] = ()) -> GovernanceCollector:
    declaration = NodeDeclaration(tuple(expected))
    return GovernanceCollector(_Fixed(result), declaration)  # type: ignore[arg-type]


def families(snap: Snapshot | None, expected: Sequence[str] = (), **kwargs: object) -> Samples:
    result = result_of(snap, **kwargs)  # type: ignore[arg-type]
    return samples_of(collector_for(result, expected).families(result))


def scraped(snap: Snapshot | None, expected: Sequence[str] = ()) -> Samples:
    """Through a registry and client_python's own encoder and parser."""
    registry = CollectorRegistry()
    registry.register(collector_for(result_of(snap), expected))
    found: Samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            found.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return found


def one(found: Samples, name: str, **pairs: str) -> float:
    return found[name][labels(**pairs)]


# --- credit -------------------------------------------------------------------------------


def test_credit_families_of_a_healthy_account() -> None:
    found = families(snapshot())
    account = {"account": ACCOUNT}
    assert one(found, "governance_credit_balance_credits", **account) == 30_000_000
    assert one(found, "governance_credit_spent_credits", **account) == 3_000_000
    assert one(found, "governance_credit_charges", **account) == 12
    assert (
        one(found, "governance_credit_last_charge_timestamp_seconds", **account)
        == (NOW - timedelta(minutes=5)).timestamp()
    )
    assert one(found, "governance_credit_burn_rate_credits_per_second", **account) == pytest.approx(
        3_000_000 / 86400
    )
    assert one(found, "governance_credit_runway_seconds", **account) == pytest.approx(864_000)
    assert one(found, "governance_credit_window_seconds") == 86400
    assert one(found, "governance_credit_min_run_cost_credits", **account) == 0
    assert one(found, "governance_credit_rejected_runs", **account) == 0
    assert one(found, "governance_credit_spending_schedules", **account) == 0


@pytest.mark.parametrize(
    ("balance", "spent", "runway"),
    [
        (Decimal(0), Decimal(100), 0.0),
        (Decimal(-5), Decimal(100), 0.0),
        (Decimal(5), Decimal(0), math.inf),
        (Decimal("86400.9"), Decimal(86400), 86400.0),  # credits are whole
        (Decimal(2**63 - 1), Decimal(1), (2**63 - 1) * 86400.0),
    ],
)
def test_runway_edges_as_exported(balance: Decimal, spent: Decimal, runway: float) -> None:
    snap = snapshot(
        account_row=AccountRow("a", balance),
        spend=SpendRow(spent, 1 if spent else 0, None),
    )
    found = families(snap)
    assert one(found, "governance_credit_runway_seconds", account=ACCOUNT) == pytest.approx(runway)
    assert one(found, "governance_credit_last_charge_timestamp_seconds", account=ACCOUNT) == 0


def test_spend_by_run_kind_and_by_charter() -> None:
    snap = snapshot(
        schedules=(schedule("heartbeat"),),
        attributed_spend=(
            AttributedSpendRow("system_scheduled", "heartbeat", Decimal(100)),
            AttributedSpendRow("system_webhook", None, Decimal(40)),
            AttributedSpendRow(None, None, Decimal(7)),
            AttributedSpendRow("weird", None, Decimal(3)),
            AttributedSpendRow(None, "gone-schedule", Decimal(2)),
        ),
    )
    found = families(snap)
    by_kind = {
        dict(k)["run_kind"]: v
        for k, v in found["governance_credit_spent_by_run_kind_credits"].items()
    }
    assert by_kind == {
        "system_scheduled": 100,
        "system_webhook": 40,
        "user_immediate": 0,
        "other": 3,
        "unknown": 2,
        "unattributed": 7,
    }
    # only configured charters get a series; a charge of a vanished schedule does not
    assert found["governance_credit_spent_by_charter_credits"] == {
        labels(account=ACCOUNT, charter="heartbeat"): 100
    }


# --- charters -----------------------------------------------------------------------------


def test_an_expected_charter_without_a_row_has_only_configured_0() -> None:
    found = families(snapshot(), expected=["govern"])
    govern = labels(account=ACCOUNT, charter="govern")
    assert found["governance_charter_configured"] == {govern: 0}
    for name, series in found.items():
        if name.startswith("governance_schedule_"):
            assert govern not in series, name


def test_charter_families_of_a_scheduled_charter() -> None:
    snap = snapshot(
        schedules=(schedule("govern", next_run_at=at(2026, 3, 1)),),
        run_counts=(
            RunCountRow("govern", "success", None, None, 5),
            RunCountRow("govern", "error", None, "insufficient_credits", 2),
            RunCountRow("govern", "skipped", None, "Grant validation failed", 1),
            RunCountRow("govern", "bogus", None, None, 1),
        ),
        last_outcomes=(LastOutcomeRow("govern", at(2026, 3, 4, 11), at(2026, 3, 4, 10)),),
    )
    found = families(snap, expected=["govern"])
    govern = {"account": ACCOUNT, "charter": "govern"}
    assert one(found, "governance_charter_configured", **govern) == 1
    assert one(found, "governance_schedule_enabled", **govern) == 1
    assert one(found, "governance_schedule_config_valid", **govern) == 1
    assert one(found, "governance_schedule_retired", **govern) == 0
    assert one(found, "governance_schedule_observable", **govern) == 1
    assert "governance_schedule_drift" not in found or not found["governance_schedule_drift"]
    assert (
        one(found, "governance_schedule_last_success_timestamp_seconds", **govern)
        == at(2026, 3, 4, 11).timestamp()
    )
    assert (
        one(found, "governance_schedule_last_failure_timestamp_seconds", **govern)
        == at(2026, 3, 4, 10).timestamp()
    )
    assert (
        one(found, "governance_schedule_next_run_timestamp_seconds", **govern)
        == at(2026, 3, 4, 13).timestamp()
    )
    assert one(found, "governance_schedule_next_run_seconds", **govern) == 53 * 60
    assert one(found, "governance_schedule_interval_seconds", **govern) == 3600
    assert (
        one(found, "governance_schedule_cached_next_run_timestamp_seconds", **govern)
        == at(2026, 3, 1).timestamp()
    )
    runs = {dict(k)["status"]: v for k, v in found["governance_schedule_runs"].items()}
    assert runs == {
        "pending": 0,
        "running": 0,
        "success": 5,
        "error": 2,
        "skipped": 1,
        "cancelled": 0,
        "unknown": 1,
    }
    assert set(runs) == {*RUN_STATUSES, "unknown"}
    failed = {dict(k)["reason"]: v for k, v in found["governance_schedule_failed_runs"].items()}
    assert set(failed) == set(FAILURE_REASONS)
    assert failed["insufficient_credits"] == 2
    assert failed["grant_validation_failed"] == 1
    assert sum(failed.values()) == 3
    assert one(found, "governance_credit_rejected_runs", account=ACCOUNT) == 2
    assert one(found, "governance_credit_spending_schedules", account=ACCOUNT) == 1


@pytest.mark.parametrize(
    ("row", "present", "absent"),
    [
        # paused: no next run, valid config
        (
            schedule("govern", enabled=False, next_run_at=at(2026, 3, 1)),
            {"governance_schedule_enabled": 0, "governance_schedule_config_valid": 1},
            ["governance_schedule_next_run_timestamp_seconds"],
        ),
        # a bad cron: config invalid, no next run nor interval
        (
            schedule("govern", cron="61 * * * *"),
            {"governance_schedule_config_valid": 0, "governance_schedule_enabled": 1},
            ["governance_schedule_next_run_seconds", "governance_schedule_interval_seconds"],
        ),
        (
            schedule("govern", timezone="Mars/Olympus"),
            {"governance_schedule_config_valid": 0},
            ["governance_schedule_next_run_timestamp_seconds"],
        ),
        # no cached next_run_at: that series is absent
        (
            schedule("govern"),
            {"governance_schedule_last_success_timestamp_seconds": 0},
            ["governance_schedule_cached_next_run_timestamp_seconds"],
        ),
    ],
)
def test_which_charter_series_exist(
    row: object, present: dict[str, float], absent: list[str]
) -> None:
    found = families(snapshot(schedules=(row,)), expected=["govern"])
    govern = labels(account=ACCOUNT, charter="govern")
    for name, value in present.items():
        assert found[name][govern] == value, name
    for name in absent:
        assert govern not in found.get(name, {}), name


def test_a_pruned_row_nothing_expects_is_retired() -> None:
    found = families(snapshot(schedules=(schedule("govern", enabled=False),)))
    assert one(found, "governance_schedule_retired", account=ACCOUNT, charter="govern") == 1
    found = families(snapshot(schedules=(schedule("govern", enabled=False),)), ["govern"])
    assert one(found, "governance_schedule_retired", account=ACCOUNT, charter="govern") == 0


@pytest.mark.parametrize(
    ("readable", "cursors", "observable", "last_success"),
    [
        (True, (("scope-1", at(2026, 3, 4)),), 1, at(2026, 3, 4).timestamp()),
        (True, (), 1, 0.0),
        (False, (), 0, None),
    ],
)
def test_a_ledger_charter_is_observable_only_with_its_cursors(
    readable: bool,
    cursors: tuple[tuple[str, object], ...],
    observable: int,
    last_success: float | None,
) -> None:
    from exporter.snapshot import LedgerCursorRow  # noqa: PLC0415

    snap = snapshot(
        schema=SchemaInfo(
            "2026-10",
            "graph_runs",
            True,
            has_requested_by=True,
            ingestion_cursors_readable=readable,
        ),
        schedules=(schedule("ledger_ingest", graph_id="ledger:ingest", scope_id="scope-1"),),
        ledger_cursors=tuple(LedgerCursorRow(s, t) for s, t in cursors),  # type: ignore[arg-type]
    )
    found = families(snap)
    ledger = labels(account=ACCOUNT, charter="ledger_ingest")
    assert found["governance_schedule_observable"][ledger] == observable
    assert found.get("governance_schedule_last_success_timestamp_seconds", {}).get(ledger) == (
        last_success
    )
    # the ledger's collections are not charged: it is no spending schedule
    assert one(found, "governance_credit_spending_schedules", account=ACCOUNT) == 0


def test_label_values_from_the_database_are_bounded() -> None:
    row = schedule("x", temporal_schedule_id=None, message="line\nbreak" + "y" * 100)
    found = families(snapshot(schedules=(row,)))
    (charter,) = {dict(k)["charter"] for k in found["governance_charter_configured"]}
    assert charter.startswith("line_break")
    assert len(charter) == 64


# --- runs without a schedule, finished runs, health ------------------------------------------


def test_no_unscheduled_families_on_2026_02() -> None:
    schema = SchemaInfo(SCHEMA_2026_02, "schedule_runs", False)
    found = families(snapshot(schema=schema))
    assert not any(name.startswith("governance_unscheduled_") for name in found)
    assert one(found, "governance_exporter_build_info", version=__version__, schema="2026-02") == 1


@pytest.mark.parametrize(("hidden", "visible"), [(False, 1), (True, 0)])
def test_unscheduled_families(hidden: bool, visible: int) -> None:
    schema = SchemaInfo(
        "2026-03", "graph_runs", True, has_requested_by=True, unscheduled_runs_hidden=hidden
    )
    snap = snapshot(
        schema=schema,
        unscheduled_counts=(
            UnscheduledCountRow(
                "system_webhook", "success", None, None, 40, at(2026, 3, 4, 11), at(2026, 3, 4, 9)
            ),
            UnscheduledCountRow(
                "system_webhook", "error", "timeout", None, 2, at(2026, 3, 4, 11), at(2026, 3, 4, 9)
            ),
        ),
    )
    found = families(snap)
    webhook = {"account": ACCOUNT, "run_kind": "system_webhook"}
    assert one(found, "governance_unscheduled_runs_visible", account=ACCOUNT) == visible
    assert one(found, "governance_unscheduled_runs", status="success", **webhook) == 40
    assert one(found, "governance_unscheduled_runs", status="error", **webhook) == 2
    assert one(found, "governance_unscheduled_failed_runs", reason="timeout", **webhook) == 2
    assert one(found, "governance_unscheduled_failed_runs", reason="other", **webhook) == 0
    assert (
        one(found, "governance_unscheduled_last_success_timestamp_seconds", **webhook)
        == at(2026, 3, 4, 11).timestamp()
    )
    assert (
        one(found, "governance_unscheduled_last_failure_timestamp_seconds", **webhook)
        == at(2026, 3, 4, 9).timestamp()
    )


def test_finished_run_counters() -> None:
    snap = snapshot(finished_runs=(FinishedRunRow("system_webhook", "success", None, None, 1),))
    found = families(
        snap,
        finished={("system_webhook", "success"): 3, ("system_scheduled", "failure"): 1},
        failed={("system_scheduled", "timeout"): 1},
    )
    assert found["governance_runs_finished_total"] == {
        labels(account=ACCOUNT, run_kind="system_webhook", outcome="success"): 3,
        labels(account=ACCOUNT, run_kind="system_scheduled", outcome="failure"): 1,
    }
    assert found["governance_runs_failed_total"] == {
        labels(account=ACCOUNT, run_kind="system_scheduled", reason="timeout"): 1
    }


def test_health_of_a_good_collection() -> None:
    found = families(snapshot(), errors={"query_timeout": 2})
    assert one(found, "governance_exporter_up") == 1
    assert one(found, "governance_exporter_collect_duration_seconds") == 0.25
    assert one(found, "governance_exporter_last_success_timestamp_seconds") == NOW.timestamp()
    assert one(found, "governance_exporter_collection_errors_total", reason="query_timeout") == 2
    assert (
        one(found, "governance_exporter_build_info", version=__version__, schema=SCHEMA_03.version)
        == 1
    )


def test_a_failed_collection_is_health_only() -> None:
    found = families(None, expected=["govern"], errors={"host_unreachable": 1})
    assert one(found, "governance_exporter_up") == 0
    assert one(found, "governance_exporter_last_success_timestamp_seconds") == 0
    assert one(found, "governance_exporter_collection_errors_total", reason="host_unreachable") == 1
    assert one(found, "governance_exporter_build_info", version=__version__, schema="unknown") == 1
    assert not [n for n in found if n.startswith(("governance_credit", "governance_schedule"))]
    assert "governance_charter_configured" not in found


def test_registering_reads_nothing_and_a_scrape_encodes() -> None:
    class Refusing:
        def get(self) -> CollectionResult:
            raise AssertionError("read at registration")

    registry = CollectorRegistry()
    registry.register(GovernanceCollector(Refusing(), ()))  # type: ignore[arg-type]
    found = scraped(snapshot(schedules=(schedule("govern"),)), ["govern"])
    assert found["governance_exporter_up"] == {frozenset(): 1}
    assert found["governance_charter_configured"] == {labels(account=ACCOUNT, charter="govern"): 1}


def test_every_family_name_is_unique_and_prefixed() -> None:
    result = result_of(snapshot(schedules=(schedule("govern"),)))
    names = [f.name for f in collector_for(result, ["govern"]).families(result)]
    assert len(names) == len(set(names))
    assert all(n.startswith("governance_") for n in names)

"""Constructed inputs for the fast lane: snapshots, rows, views, and families read back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from prometheus_client.metrics_core import Metric

from exporter.model import CharterView, CreditView
from exporter.snapshot import (
    SCHEMA_2026_03,
    AccountRow,
    ScheduleRow,
    SchemaInfo,
    Snapshot,
    SpendRow,
)

NOW = datetime(2026, 3, 4, 12, 7, tzinfo=UTC)
DAY = 86400

SCHEMA_03 = SchemaInfo(
    SCHEMA_2026_03,
    "graph_runs",
    has_error_code=True,
    has_requested_by=True,
    ingestion_cursors_readable=True,
)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def schedule(charter: str, **overrides: Any) -> ScheduleRow:
    """A governance schedule row of ``charter`` (its id is the charter, lower case)."""
    values: dict[str, Any] = {
        "schedule_id": charter.lower(),
        "temporal_schedule_id": f"governance:{charter.lower()}",
        "message": charter.upper(),
        "cron": "0 * * * *",
        "timezone": "UTC",
        "enabled": True,
        "next_run_at": None,
        "graph_id": "sandbox:openclaw",
    }
    values.update(overrides)
    return ScheduleRow(**values)


def snapshot(**overrides: Any) -> Snapshot:
    """A healthy account: 30,000,000 credits, 3,000,000 spent in one day, no schedules."""
    values: dict[str, Any] = {
        "taken_at": NOW,
        "window_seconds": DAY,
        "account": "cogni_system",
        "schema": SCHEMA_03,
        "account_row": AccountRow("acc-1", Decimal(30_000_000)),
        "spend": SpendRow(Decimal(3_000_000), 12, NOW - timedelta(minutes=5)),
        "schedules": (),
        "schedules_truncated": False,
        "run_counts": (),
        "last_outcomes": (),
        "recent_runs": (),
    }
    values.update(overrides)
    return Snapshot(**values)


def credit(**overrides: Any) -> CreditView:
    """A green credit view: ten days of runway."""
    values: dict[str, Any] = {
        "balance_credits": 30_000_000,
        "spent_credits": 3_000_000.0,
        "charges": 12,
        "last_charge_at": NOW,
        "window_seconds": DAY,
        "burn_rate_per_second": 3_000_000 / DAY,
        "runway_seconds": 10 * DAY,
    }
    values.update(overrides)
    return CreditView(**values)


def charter_view(name: str = "govern", **overrides: Any) -> CharterView:
    """An enabled hourly charter that succeeded ten minutes ago."""
    view = CharterView(
        charter=name,
        configured=True,
        enabled=True,
        schedules=1,
        interval_seconds=3600,
        last_success_at=NOW - timedelta(minutes=10),
    )
    return replace(view, **overrides)


Samples = dict[str, dict[frozenset[tuple[str, str]], float]]


def samples_of(families: Iterable[Metric]) -> Samples:
    """Families read back as sample name -> label set -> value."""
    found: Samples = {}
    for family in families:
        for sample in family.samples:
            found.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return found


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


def empty_counts() -> MappingProxyType[str, int]:
    return MappingProxyType({})


def parse_exposition(text: str) -> Samples:
    """An exposition parsed by client_python's own parser: name -> labels -> value."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    parsed: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            parsed.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return parsed

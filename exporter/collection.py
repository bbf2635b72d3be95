"""One collection: read the source, time it, and return what it produced with the health after it.

``Collections`` runs one collection when asked; ``exporter.cache`` decides when to
ask and shares the result. The health (``exporter.health``) and the run totals
(``exporter.run_totals``) it records outlive each collection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Protocol

from exporter.dberrors import CollectionError
from exporter.health import CollectionHealth
from exporter.run_totals import RunTotals
from exporter.snapshot import Snapshot

Clock = Callable[[], datetime]
Monotonic = Callable[[], float]


def utc_now() -> datetime:
    return datetime.now(UTC)


class SnapshotReader(Protocol):
    def read(self, now: datetime) -> Snapshot: ...


@dataclass(frozen=True)
class CollectionResult:
    """The outcome of one collection, and the exporter's health after it."""

    started_at: datetime
    duration_seconds: float
    snapshot: Snapshot | None
    error: CollectionError | None
    last_success_at: datetime | None
    failing_since: datetime | None
    errors_by_reason: MappingProxyType[str, int]
    # Runs seen to finish since the exporter started, by (run kind, outcome).
    finished_totals: MappingProxyType[tuple[str, str], int] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # The failed ones, by (run kind, reason).
    failed_totals: MappingProxyType[tuple[str, str], int] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @property
    def ok(self) -> bool:
        return self.snapshot is not None


class Collections:
    """Runs collections from ``source``; the caller runs one at a time."""

    def __init__(self, source: SnapshotReader, clock: Clock, monotonic: Monotonic) -> None:
        self._source = source
        self._clock = clock
        self._monotonic = monotonic
        self._health = CollectionHealth()
        self._totals = RunTotals()
        self.count = 0

    def run(self) -> CollectionResult:
        started_at = self._clock()
        started = self._monotonic()
        snapshot: Snapshot | None = None
        error: CollectionError | None = None
        try:
            snapshot = self._source.read(started_at)
        except CollectionError as exc:
            error = exc
        duration = self._monotonic() - started
        self.count += 1
        self._health.record(started_at, error)
        if snapshot is not None:
            self._totals.add(snapshot)
        return CollectionResult(
            started_at=started_at,
            duration_seconds=duration,
            snapshot=snapshot,
            error=error,
            last_success_at=self._health.last_success_at,
            failing_since=self._health.failing_since,
            errors_by_reason=self._health.errors_by_reason(),
            finished_totals=self._totals.finished(),
            failed_totals=self._totals.failed(),
        )

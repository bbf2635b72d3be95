"""The collection cache: one collection at a time, shared by every scrape during it.

Scrapes that come in while a collection is under way wait for it and get its
result (single flight), so an HA pair or a burst of scrapes costs the database
one set of queries. With ``cache_seconds`` > 0 a successful collection is also
served to scrapes arriving within that many seconds of it; a failed one never is,
so the first scrape after the database comes back reads it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Protocol

import psycopg
from psycopg_pool import ConnectionPool

from exporter.dberrors import COLLECTION_ERROR_REASONS, CollectionError
from exporter.model import (
    FAILURE_REASONS,
    OUTCOMES,
    finished_failures,
    finished_outcomes,
)
from exporter.settings import Settings
from exporter.snapshot import Snapshot
from exporter.source import Source

logger = logging.getLogger(__name__)

# The kinds of governance work whose counters exist from the first scrape on;
# other kinds appear when first seen.
FINISHED_RUN_KINDS = ("system_scheduled", "system_webhook")

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


class SnapshotCache:
    """Runs collections on demand, one at a time, and remembers how they went."""

    def __init__(
        self,
        source: SnapshotReader,
        *,
        cache_seconds: float = 0.0,
        clock: Clock = utc_now,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        self._source = source
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._in_flight: Future[CollectionResult] | None = None
        self._latest: CollectionResult | None = None
        self._latest_done_at = 0.0
        self._last_success_at: datetime | None = None
        self._failing_since: datetime | None = None
        self._logged_cause: tuple[str, str] | None = None  # the failure last logged
        self._errors = dict.fromkeys(COLLECTION_ERROR_REASONS, 0)
        # Every series from the first scrape on, at 0: increase() misses the first
        # sample of a series born later.
        self._finished = dict.fromkeys(itertools.product(FINISHED_RUN_KINDS, OUTCOMES), 0)
        self._failed = dict.fromkeys(itertools.product(FINISHED_RUN_KINDS, FAILURE_REASONS), 0)
        self.collections = 0

    @property
    def latest(self) -> CollectionResult | None:
        """The last finished collection, without starting one."""
        return self._latest

    def get(self) -> CollectionResult:
        """A fresh collection, or the one under way, or a cached one."""
        with self._lock:
            if self._latest is not None and self._latest.ok and self._is_fresh():
                return self._latest
            if self._in_flight is not None:
                shared = self._in_flight
                leader = False
            else:
                shared = self._in_flight = Future()
                leader = True
        if not leader:
            return shared.result()
        try:
            result = self._collect()
        except BaseException as exc:
            shared.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._in_flight = None
        shared.set_result(result)
        return result

    def _is_fresh(self) -> bool:
        return (
            self._cache_seconds > 0
            and self._monotonic() - self._latest_done_at < self._cache_seconds
        )

    def _collect(self) -> CollectionResult:
        started_at = self._clock()
        started = self._monotonic()
        snapshot: Snapshot | None = None
        error: CollectionError | None = None
        try:
            snapshot = self._source.read(started_at)
        except CollectionError as exc:
            error = exc
        duration = self._monotonic() - started
        with self._lock:
            self.collections += 1
            self._record(started_at, error)
            if snapshot is not None:
                for key, runs in finished_outcomes(snapshot).items():
                    self._finished[key] = self._finished.get(key, 0) + runs
                for key, runs in finished_failures(snapshot).items():
                    self._failed[key] = self._failed.get(key, 0) + runs
            result = CollectionResult(
                started_at=started_at,
                duration_seconds=duration,
                snapshot=snapshot,
                error=error,
                last_success_at=self._last_success_at,
                failing_since=self._failing_since,
                errors_by_reason=MappingProxyType(dict(self._errors)),
                finished_totals=MappingProxyType(dict(self._finished)),
                failed_totals=MappingProxyType(dict(self._failed)),
            )
            self._latest = result
            self._latest_done_at = self._monotonic()
        return result

    def _record(self, started_at: datetime, error: CollectionError | None) -> None:
        if error is None:
            if self._failing_since is not None:
                logger.info("database readable again after failing since %s", self._failing_since)
            self._last_success_at = started_at
            self._failing_since = None
            self._logged_cause = None
            return
        self._errors[error.reason] = self._errors.get(error.reason, 0) + 1
        if self._failing_since is None:
            self._failing_since = started_at
        # Once per cause, not every scrape: a failure that lasts says the same thing
        # every few seconds, and the errors metric counts it anyway.
        cause = (error.reason, error.cause)
        if cause != self._logged_cause:
            self._logged_cause = cause
            logger.error("collection failed (%s): %s", error.reason, error)
        else:
            logger.debug("collection still failing (%s): %s", error.reason, error)


def build_snapshots(
    settings: Settings,
    pool: ConnectionPool[psycopg.Connection[Any]],
    clock: Clock = utc_now,
) -> SnapshotCache:
    """The source and its cache for ``settings``, reading through ``pool``."""
    source = Source(
        pool,
        account=settings.account,
        rls_user_id=settings.rls_user_id,
        window_seconds=settings.window_seconds,
        timeout_seconds=settings.statement_timeout_seconds,
        max_charters=settings.max_charters,
        max_ledger_nodes=settings.max_ledger_nodes,
    )
    return SnapshotCache(source, cache_seconds=settings.cache_seconds, clock=clock)

"""The collection cache: one collection at a time, shared by every scrape during it.

Scrapes that come in while a collection is under way wait for it and get its
result (single flight), so an HA pair or a burst of scrapes costs the database
one set of queries. With ``cache_seconds`` > 0 a successful collection is also
served to scrapes arriving within that many seconds of it; a failed one never is,
so the first scrape after the database comes back reads it.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

from exporter.collection import (
    Clock,
    CollectionResult,
    Collections,
    Monotonic,
    SnapshotReader,
    utc_now,
)


class SnapshotCache:
    """Runs collections on demand, one at a time, and remembers the last one."""

    def __init__(
        self,
        source: SnapshotReader,
        *,
        cache_seconds: float = 0.0,
        clock: Clock = utc_now,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        self._collections = Collections(source, clock, monotonic)
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._in_flight: Future[CollectionResult] | None = None
        self._latest: CollectionResult | None = None
        self._latest_done_at = 0.0

    @property
    def collections(self) -> int:
        """How many collections ran."""
        return self._collections.count

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
        # Only the leader gets here, so collections never overlap.
        result = self._collections.run()
        with self._lock:
            self._latest = result
            self._latest_done_at = self._monotonic()
        return result

"""The bytes of one collection's exposition, built once per format and served to every scrape.

Scrapes that share a collection (the single flight and the ``--cache-seconds``
cache of ``SnapshotCache``) share its exposition too: the metric families are
built from the collection once, and each format a scrape asks for (the text
format, OpenMetrics, either gzipped) is encoded from them once, on first demand.
client_python decides the format (``choose_encoder`` on Accept) and gzip
(``gzip_accepted`` on Accept-Encoding), and its chosen encoder writes the
bytes, as its own HTTP handler does.

Only the latest collection's bytes are kept. Collectors that have no
collection of their own (the memory files) are read when the families are built,
so they have the collection's lifetime: once per collection, not per scrape.
"""

from __future__ import annotations

import gzip
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter.cache import SnapshotCache
from exporter.collection import CollectionResult
from exporter.collector import GovernanceCollector

Families = Callable[[CollectionResult], Iterable[Metric]]

Encoder = Callable[[Collector], bytes]
"""client_python's encoder, as ``choose_encoder`` returns it."""

# Formats kept per collection; the Accept header names the format (version and
# escaping included), so a client sending many distinct ones gets the rest built
# per request instead of growing the cache.
MAX_VARIANTS = 8


@dataclass(frozen=True)
class Body:
    """One encoded exposition, as it goes on the wire."""

    data: bytes
    content_type: str
    gzipped: bool


class FixedFamilies:
    """A collector over families already built, for client_python's encoders."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def collection_families(governance: GovernanceCollector, others: Sequence[Collector]) -> Families:
    """The families of one collection: the governance ones, then the other collectors'."""

    def families(result: CollectionResult) -> list[Metric]:
        built = list(governance.families(result))
        for collector in others:
            built.extend(collector.collect())
        return built

    return families


class _Entry:
    """The exposition of one collection: its families and encoded bodies, built lazily."""

    def __init__(self, result: CollectionResult) -> None:
        self.result = result
        self.lock = threading.Lock()
        self.families: FixedFamilies | None = None
        self.bodies: dict[tuple[str, bool], bytes] = {}


class ExpositionCache:
    """Builds the latest collection's exposition once per format, for every scrape.

    ``builds`` counts what was built: ``"families"`` once per collection, and
    ``(content_type, gzipped)`` once per format and collection.
    """

    def __init__(self, snapshots: SnapshotCache, families: Families) -> None:
        self._snapshots = snapshots
        self._families = families
        self._lock = threading.Lock()
        self._current: _Entry | None = None
        self.builds: Counter[str | tuple[str, bool]] = Counter()

    def body(self, accept: str, accept_encoding: str) -> Body:
        """The exposition for a scrape with these Accept and Accept-Encoding headers."""
        encoder, content_type = choose_encoder(accept)
        gzipped = gzip_accepted(accept_encoding)
        entry = self._entry(self._snapshots.get())
        with entry.lock:  # concurrent scrapes of one collection wait for one build
            return Body(self._bytes(entry, encoder, content_type, gzipped), content_type, gzipped)

    def _entry(self, result: CollectionResult) -> _Entry:
        with self._lock:
            current = self._current
            if current is not None and current.result is result:
                return current
            entry = _Entry(result)
            # A result older than the latest (a newer collection finished while
            # this scrape waited) is served once, without evicting the newer one.
            if result is self._snapshots.latest:
                self._current = entry
            return entry

    def _bytes(
        self,
        entry: _Entry,
        encoder: Encoder,
        content_type: str,
        gzipped: bool,
    ) -> bytes:
        key = (content_type, gzipped)
        if (found := entry.bodies.get(key)) is not None:
            return found
        if gzipped:
            data = gzip.compress(self._bytes(entry, encoder, content_type, False))
        else:
            data = encoder(self._fixed(entry))
        self._count(key)
        if len(entry.bodies) < MAX_VARIANTS:
            entry.bodies[key] = data
        return data

    def _fixed(self, entry: _Entry) -> FixedFamilies:
        if entry.families is None:
            entry.families = FixedFamilies(list(self._families(entry.result)))
            self._count("families")
        return entry.families

    def _count(self, key: str | tuple[str, bool]) -> None:
        with self._lock:
            self.builds[key] += 1

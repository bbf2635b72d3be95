"""Runs seen to finish since the exporter started, by run kind and outcome or reason.

Each snapshot reports the runs that finished since the previous one
(``model.finished_outcomes``); adding them up gives counters that a re-created
schedule, whose runs the database deletes, cannot lower.
"""

from __future__ import annotations

import itertools
from types import MappingProxyType

from exporter.model import FAILURE_REASONS, OUTCOMES, finished_failures, finished_outcomes
from exporter.snapshot import Snapshot

# The kinds of governance work whose counters exist from the first scrape on;
# other kinds appear when first seen.
FINISHED_RUN_KINDS = ("system_scheduled", "system_webhook")


class RunTotals:
    """Counters added to from each snapshot; not thread-safe (one collection at a time)."""

    def __init__(self) -> None:
        # Every series from the first scrape on, at 0: increase() misses the first
        # sample of a series born later.
        self._finished = dict.fromkeys(itertools.product(FINISHED_RUN_KINDS, OUTCOMES), 0)
        self._failed = dict.fromkeys(itertools.product(FINISHED_RUN_KINDS, FAILURE_REASONS), 0)

    def add(self, snapshot: Snapshot) -> None:
        for key, runs in finished_outcomes(snapshot).items():
            self._finished[key] = self._finished.get(key, 0) + runs
        for key, runs in finished_failures(snapshot).items():
            self._failed[key] = self._failed.get(key, 0) + runs

    def finished(self) -> MappingProxyType[tuple[str, str], int]:
        """By (run kind, outcome)."""
        return MappingProxyType(dict(self._finished))

    def failed(self) -> MappingProxyType[tuple[str, str], int]:
        """By (run kind, reason)."""
        return MappingProxyType(dict(self._failed))

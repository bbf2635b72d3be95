"""The exporter's health across collections: last success, failing since, errors by reason.

A failure is logged once per cause, not at every scrape: a failure that lasts says
the same thing every few seconds, and the errors metric counts it anyway.
"""

from __future__ import annotations

import logging
from datetime import datetime
from types import MappingProxyType

from exporter.dberrors import COLLECTION_ERROR_REASONS, CollectionError

logger = logging.getLogger(__name__)


class CollectionHealth:
    """Told how each collection went, in order; not thread-safe (one collection at a time)."""

    def __init__(self) -> None:
        self.last_success_at: datetime | None = None
        self.failing_since: datetime | None = None
        self._logged_cause: tuple[str, str] | None = None  # the failure last logged
        self._errors = dict.fromkeys(COLLECTION_ERROR_REASONS, 0)

    def errors_by_reason(self) -> MappingProxyType[str, int]:
        """Failed collections since the start by reason, every reason from the start at 0."""
        return MappingProxyType(dict(self._errors))

    def record(self, started_at: datetime, error: CollectionError | None) -> None:
        if error is None:
            if self.failing_since is not None:
                logger.info("database readable again after failing since %s", self.failing_since)
            self.last_success_at = started_at
            self.failing_since = None
            self._logged_cause = None
            return
        self._errors[error.reason] = self._errors.get(error.reason, 0) + 1
        if self.failing_since is None:
            self.failing_since = started_at
        cause = (error.reason, error.cause)
        if cause != self._logged_cause:
            self._logged_cause = cause
            logger.error("collection failed (%s): %s", error.reason, error)
        else:
            logger.debug("collection still failing (%s): %s", error.reason, error)

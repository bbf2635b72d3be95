"""The ``Source`` the settings describe, behind its ``SnapshotCache``: serve and check share it."""

from __future__ import annotations

from exporter.cache import SnapshotCache
from exporter.collection import Clock, utc_now
from exporter.connections import GuardedPool
from exporter.settings import Settings
from exporter.source import Source


def build_snapshots(
    settings: Settings,
    pool: GuardedPool,
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

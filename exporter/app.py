"""Wires settings → pool → source → snapshots → collector → HTTP server.

Everything the exporter needs is built here from one ``Settings`` object; the
pool, clock and registry can be handed in so tests can replace them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from prometheus_client.registry import CollectorRegistry

from exporter import __version__
from exporter.cache import SnapshotCache
from exporter.collection import Clock, utc_now
from exporter.collector import GovernanceCollector
from exporter.connections import GuardedPool, open_pool
from exporter.declaration import NodeDeclaration
from exporter.exposition import ExpositionCache, collection_families
from exporter.ledger_collector import LedgerCollector, with_ledger
from exporter.memory_collector import MemoryCollector
from exporter.server import ExporterServer, Route, healthz_route, metrics_route
from exporter.settings import Settings
from exporter.source_factory import build_snapshots
from exporter.status_page import status_route
from exporter.webconfig import load_web_config

logger = logging.getLogger(__name__)


@dataclass
class App:
    settings: Settings
    pool: GuardedPool
    snapshots: SnapshotCache
    registry: CollectorRegistry
    server: ExporterServer
    exposition: ExpositionCache

    def serve_forever(self) -> None:
        self.server.serve_forever(poll_interval=0.5)

    def close(self) -> None:
        self.server.server_close()
        self.pool.close(timeout=2)


def build_routes(
    settings: Settings,
    snapshots: SnapshotCache,
    exposition: ExpositionCache,
    declaration: NodeDeclaration,
) -> dict[str, Route]:
    return {
        "/": status_route(settings, snapshots, declaration),
        "/metrics": metrics_route(exposition),
        "/healthz": healthz_route(snapshots),
    }


def build_app(
    settings: Settings,
    *,
    pool: GuardedPool | None = None,
    clock: Clock = utc_now,
    registry: CollectorRegistry | None = None,
) -> App:
    web = load_web_config(settings.web_config_file)  # a bad file stops here, before any I/O
    declaration = NodeDeclaration.from_settings(settings)  # so does a bad repo-spec
    pool = pool or open_pool(
        settings.conninfo(),
        max_size=settings.pool_max_size,
        timeout_seconds=settings.statement_timeout_seconds,
    )
    snapshots = build_snapshots(settings, pool, clock)
    registry = registry or CollectorRegistry()
    governance = GovernanceCollector(snapshots, declaration)
    registry.register(governance)
    others: list[MemoryCollector] = []
    if settings.memory_dir is not None:
        others.append(MemoryCollector(settings.memory_dir, declaration.memory_charters()))
        registry.register(others[-1])
    ledger = LedgerCollector(snapshots, declaration)
    registry.register(ledger)
    families = with_ledger(collection_families(governance, others), ledger)
    exposition = ExpositionCache(snapshots, families)
    server = ExporterServer(
        settings.listen_host_port,
        build_routes(settings, snapshots, exposition, declaration),
        max_concurrent=settings.web_max_requests,
        request_timeout=settings.web_request_timeout_seconds,
        wrap_socket=web.wrap_socket,
        authorize=web.authorize,
    )
    return App(settings, pool, snapshots, registry, server, exposition)


def describe_database(conninfo: str) -> str:
    """user@host:port/dbname, for logs: never the password."""
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    user = params.get("user") or "(default user)"
    dbname = params.get("dbname") or "(default database)"
    return f"{user}@{host}:{port}/{dbname}"


def log_start(app: App) -> None:
    settings = app.settings
    logger.info(
        "governance-exporter %s watching account %r (rls user %s, window %d s, charters %s) "
        "in %s; serving %s/metrics",
        __version__,
        settings.account,
        settings.rls_user_id,
        settings.window_seconds,
        ",".join(settings.expected_charters) or "(from the rows)",
        describe_database(settings.conninfo()),
        app.server.url,
    )

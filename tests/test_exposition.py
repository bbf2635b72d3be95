"""/metrics serves one exposition per collection: built once, shared by every scrape.

The real app (``build_app``) over a real PostgreSQL and a real HTTP server on
127.0.0.1; bodies are checked with client_python's own parsers and ``gzip``.
"""

from __future__ import annotations

import gzip
import http.client
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from harness import Database, samples
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)

from exporter.app import App, build_app
from exporter.demo import scenario
from exporter.demo.localpg import free_port
from exporter.settings import Settings
from exporter.snapshot import SCHEMA_2026_03

NOW = datetime(2026, 2, 15, 12, 7, tzinfo=UTC)
TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
BALANCE = "governance_credit_balance_credits"
HEARTBEAT = "run_at: 2026-02-15T12:00Z\ndecision: {decision}\nno_op_reason: wip_full\n"


@pytest.fixture
def node(make_database: Callable[[str], Database]) -> Database:
    database = make_database(SCHEMA_2026_03)
    with database.connect() as conn:
        scenario.seed_governance(conn, SCHEMA_2026_03, NOW, hours=3)
    return database


@pytest.fixture
def start_app() -> Iterator[Callable[..., App]]:
    started: list[tuple[App, threading.Thread]] = []

    def start(database_url: str, **options: Any) -> App:
        settings = Settings(
            database_url=database_url,
            listen_address=f"127.0.0.1:{free_port()}",
            **options,
        )
        app = build_app(settings, clock=lambda: NOW)
        thread = threading.Thread(target=app.serve_forever, daemon=True)
        thread.start()
        started.append((app, thread))
        return app

    yield start
    for app, thread in started:
        app.server.shutdown()
        thread.join(5)
        app.close()


def get(app: App, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = app.settings.listen_host_port
    conn = http.client.HTTPConnection(host, port, timeout=15)
    try:
        conn.request("GET", "/metrics", headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_building_the_app_runs_no_query_and_builds_nothing(
    node: Database, start_app: Callable[..., App]
) -> None:
    app = start_app(node.monitor_url, cache_seconds=60)
    assert app.snapshots.collections == 0
    assert app.exposition.builds == {}


def test_concurrent_scrapes_of_one_collection_get_one_body_built_once(
    node: Database, start_app: Callable[..., App]
) -> None:
    app = start_app(node.monitor_url, cache_seconds=60)
    barrier = threading.Barrier(20)
    bodies: list[bytes] = []
    lock = threading.Lock()

    def scrape() -> None:
        barrier.wait()
        status, headers, body = get(app)
        assert status == 200
        assert headers["Content-Type"] == TEXT
        with lock:
            bodies.append(body)

    threads = [threading.Thread(target=scrape) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(bodies) == 20
    assert len(set(bodies)) == 1
    assert samples(bodies[0].decode())[BALANCE] == {frozenset({("account", "cogni_system")}): 5e8}
    assert app.snapshots.collections == 1
    assert app.exposition.builds == {"families": 1, (TEXT, False): 1}


def test_openmetrics_and_gzip_variants_of_one_collection(
    node: Database, start_app: Callable[..., App]
) -> None:
    app = start_app(node.monitor_url, cache_seconds=60)
    plain = get(app)[2]
    status, headers, body = get(app, {"Accept": OPENMETRICS})
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    families = {f.name: f for f in openmetrics_families(body.decode())}
    assert body.endswith(b"# EOF\n")
    assert families[BALANCE].samples[0].value == 5e8
    assert families["governance_exporter_up"].samples[0].value == 1

    zipped = get(app, {"Accept-Encoding": "br;q=1.0, gzip;q=0.8"})
    assert zipped[1]["Content-Encoding"] == "gzip"
    assert zipped[1]["Content-Type"] == TEXT
    assert gzip.decompress(zipped[2]) == plain
    om_zipped = get(app, {"Accept": OPENMETRICS, "Accept-Encoding": "gzip"})
    assert om_zipped[1]["Content-Encoding"] == "gzip"
    assert gzip.decompress(om_zipped[2]) == body

    # Not gzip, though the word is in it: client_python's parsing, not a substring test.
    not_zipped = get(app, {"Accept-Encoding": "x-gzip-experimental"})
    assert "Content-Encoding" not in not_zipped[1]
    assert not_zipped[2] == plain

    for _ in range(3):  # again: served from what was built
        assert get(app, {"Accept": OPENMETRICS, "Accept-Encoding": "gzip"})[2] == om_zipped[2]
        assert get(app)[2] == plain
    om_key = (headers["Content-Type"], False)
    assert app.exposition.builds == {
        "families": 1,
        (TEXT, False): 1,
        (TEXT, True): 1,
        om_key: 1,
        (om_key[0], True): 1,
    }
    assert app.snapshots.collections == 1


def _memory_with_heartbeat(tmp_path: Path, decision: str) -> tuple[Path, Path]:
    """A memory directory whose GOVERN heartbeat says ``decision``, and that file."""
    memory = tmp_path / "memory"
    (memory / "GOVERN").mkdir(parents=True)
    beat = memory / "GOVERN" / "heartbeat.md"
    beat.write_text(HEARTBEAT.format(decision=decision))
    return memory, beat


def test_a_new_collection_gives_a_new_body(
    node: Database, start_app: Callable[..., App], tmp_path: Path
) -> None:
    memory, beat = _memory_with_heartbeat(tmp_path, "no-op")
    app = start_app(node.monitor_url, cache_seconds=0, memory_dir=memory)
    first = get(app)[2]
    with node.connect() as conn:
        conn.execute("UPDATE billing_accounts SET balance_credits = 7")
    beat.write_text(HEARTBEAT.format(decision="action"))
    second = get(app)[2]
    assert first != second
    before, after = samples(first.decode()), samples(second.decode())
    assert after[BALANCE] == {frozenset({("account", "cogni_system")}): 7}
    decision = "governance_heartbeat_decision"
    assert before[decision][frozenset({("charter", "govern"), ("decision", "no-op")})] == 1
    assert after[decision][frozenset({("charter", "govern"), ("decision", "action")})] == 1
    assert app.snapshots.collections == 2
    assert app.exposition.builds == {"families": 2, (TEXT, False): 2}


def test_memory_files_are_read_with_the_collection_not_per_scrape(
    node: Database, start_app: Callable[..., App], tmp_path: Path
) -> None:
    memory, beat = _memory_with_heartbeat(tmp_path, "no-op")
    app = start_app(node.monitor_url, cache_seconds=60, memory_dir=memory)
    first = get(app)[2]
    beat.write_text(HEARTBEAT.format(decision="action"))
    assert get(app)[2] == first  # same collection, same body: the files were not re-read
    assert app.exposition.builds["families"] == 1


def test_a_failing_database_is_a_metric_in_every_variant(
    start_app: Callable[..., App],
) -> None:
    nobody_listens = f"postgresql://monitor@127.0.0.1:{free_port()}/cogni"
    app = start_app(nobody_listens, cache_seconds=0, statement_timeout_seconds=1)
    for accept in ("", OPENMETRICS):
        status, headers, body = get(app, {"Accept": accept, "Accept-Encoding": "gzip"})
        assert status == 200
        assert headers["Content-Encoding"] == "gzip"
        text = gzip.decompress(body).decode()
        if accept:
            up = next(f for f in openmetrics_families(text) if f.name == "governance_exporter_up")
            assert up.samples[0].value == 0
        else:
            assert samples(text)["governance_exporter_up"] == {frozenset(): 0}


def test_formats_beyond_the_bound_are_built_per_scrape(
    node: Database, start_app: Callable[..., App]
) -> None:
    app = start_app(node.monitor_url, cache_seconds=60)
    accepts = [f"application/openmetrics-text; version=1.0.{n}" for n in range(10)]
    for accept in accepts:
        get(app, {"Accept": accept})
    for accept in accepts:
        assert get(app, {"Accept": accept})[0] == 200
    builds = app.exposition.builds
    assert builds["families"] == 1
    counts = sorted(count for key, count in builds.items() if key != "families")
    assert counts == [1] * 8 + [2] * 2  # the first eight kept, the last two rebuilt

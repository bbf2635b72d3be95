"""Faults against the real exporter process and a real PostgreSQL: network paths
that hang, slow and blocked queries, concurrency, and schema drift. (The database
down at start, restarted under the exporter, a lock → statement timeout and RLS
across reconnects are in test_process.py and test_exporter.py.)"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from harness import ROLE_SCRIPT, Database, ExporterProcess, run_exporter, samples, url_with

from exporter.demo import scenario
from exporter.snapshot import SCHEMA_2026_02, SCHEMA_2026_03

APP = "governance-exporter"
Scrape = dict[str, dict[frozenset[tuple[str, str]], float]]


def scrape(exporter: ExporterProcess, timeout: float = 30) -> tuple[Scrape, float]:
    """The parsed /metrics and how long it took."""
    started = time.monotonic()
    status, body = exporter.get("/metrics", timeout=timeout)
    elapsed = time.monotonic() - started
    assert status == 200, body
    return samples(body), elapsed


def up(parsed: Scrape) -> float:
    return parsed["governance_exporter_up"][frozenset()]


def errors(parsed: Scrape, reason: str) -> float:
    return parsed["governance_exporter_collection_errors_total"][frozenset({("reason", reason)})]


def charter_value(parsed: Scrape, name: str, charter: str, **labels: str) -> float:
    key = frozenset({("account", "cogni_system"), ("charter", charter), *labels.items()})
    return parsed[name][key]


def thread_count(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^Threads:\s+(\d+)", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1))


def exporter_sessions(database: Database, *, active_only: bool = False) -> int:
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND datname = %s" + (
        " AND state <> 'idle'" if active_only else ""
    )
    with database.connect() as admin:
        row = admin.execute(query, (APP, database.name)).fetchone()
    assert row is not None
    return int(row[0])


# --- network paths that hang --------------------------------------------------------


class HangingPath:
    """A TCP endpoint in front of PostgreSQL: forwards, or (``hang`` set) accepts and
    then never answers: neither a refusal nor a reset, the worst kind of network."""

    def __init__(self, target: tuple[str, int] | None, port: int = 0) -> None:
        self.target = target
        self.hang = threading.Event()
        if target is None:
            self.hang.set()
        self.accepted = 0
        self._listener = socket.create_server(("127.0.0.1", port), backlog=128)
        self.port = int(self._listener.getsockname()[1])
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(client)
            self.accepted += 1
            if self.hang.is_set() or self.target is None:
                continue
            upstream = socket.create_connection(self.target)
            self._held.append(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                while self.hang.is_set():  # swallow: the bytes are never delivered
                    time.sleep(0.05)
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._listener.close()
        for sock in self._held:
            sock.close()


@contextlib.contextmanager
def hanging_path(target: tuple[str, int] | None, port: int = 0) -> Iterator[HangingPath]:
    path = HangingPath(target, port)
    try:
        yield path
    finally:
        path.close()


# The cache is off so that every scrape below reads the database it describes.
TIMEOUT = {
    "GOVERNANCE_EXPORTER_STATEMENT_TIMEOUT_SECONDS": "2",
    "GOVERNANCE_EXPORTER_CACHE_SECONDS": "0",
}
# The configured deadline is 2 s; "in time" is checked against a generous 2 + 6 s.
DEADLINE = 8.0


def test_a_database_host_that_accepts_and_never_answers() -> None:
    """The exporter starts, and every scrape returns in time with up 0, without
    piling up threads, however many times it asks."""
    with (
        hanging_path(None) as path,
        run_exporter(
            f"postgresql://governance_exporter@127.0.0.1:{path.port}/cogni", env=TIMEOUT
        ) as exporter,
    ):
        first, elapsed = scrape(exporter)
        threads = [thread_count(exporter.process.pid)]
        durations = [elapsed]
        for _ in range(2):
            parsed, elapsed = scrape(exporter)
            durations.append(elapsed)
            threads.append(thread_count(exporter.process.pid))
        health = exporter.get("/healthz")
        log = exporter.log()
    assert up(first) == 0
    assert up(parsed) == 0
    # The first scrape may end before the pool's attempt under way does (no
    # connection in time); every attempt after that is this collection's own.
    timeouts = errors(parsed, "connect_timeout")
    assert timeouts + errors(parsed, "database_unavailable") == 3
    assert timeouts >= 2
    assert max(durations) < DEADLINE
    assert max(threads) <= threads[0] + 3  # connection attempts do not accumulate
    assert health[0] == 200
    assert '"last_error": "connect_timeout"' in health[1]
    assert "collection failed (connect_timeout)" in log
    assert f"no answer from 127.0.0.1:{path.port} within the 2 s connect timeout" in log


def _target(database: Database) -> tuple[str, int]:
    info = psycopg.conninfo.conninfo_to_dict(database.url)
    return str(info["host"]), int(str(info["port"]))


def test_a_path_that_hangs_after_connecting_still_gets_answers_in_time(
    make_database: Callable[[str], Database],
) -> None:
    database = make_database(SCHEMA_2026_03)
    with database.connect() as conn:
        scenario.seed_governance(conn, SCHEMA_2026_03, datetime.now(UTC), hours=2)
    with hanging_path(_target(database)) as path:
        url = url_with(database.monitor_url, port=str(path.port))
        env = {**TIMEOUT, "GOVERNANCE_EXPORTER_WEB_REQUEST_TIMEOUT_SECONDS": "6"}
        with run_exporter(url, env=env) as exporter:
            assert up(scrape(exporter)[0]) == 1
            path.hang.set()
            hung, elapsed = scrape(exporter, timeout=DEADLINE + 2)
            path.hang.clear()
            recovered = [up(scrape(exporter)[0]) for _ in range(2)]
    assert up(hung) == 0
    assert elapsed < DEADLINE
    assert recovered[-1] == 1


# --- slow and blocked queries ---------------------------------------------------------


def test_after_a_statement_timeout_no_exporter_query_is_left_running(
    make_database: Callable[[str], Database],
) -> None:
    database = make_database(SCHEMA_2026_03)
    with database.connect() as conn:
        scenario.seed_governance(conn, SCHEMA_2026_03, datetime.now(UTC), hours=2)
    env = {"GOVERNANCE_EXPORTER_STATEMENT_TIMEOUT_SECONDS": "1"}
    with run_exporter(database.monitor_url, env=env) as exporter:
        assert up(scrape(exporter)[0]) == 1
        with psycopg.connect(database.url) as locker:
            locker.execute("LOCK TABLE charge_receipts IN ACCESS EXCLUSIVE MODE")
            timed_out = [scrape(exporter) for _ in range(3)]
            # the lock is still held: anything of ours still waiting would show here
            active = exporter_sessions(database, active_only=True)
            held = exporter_sessions(database)
            waiting = _waiting_on_locks(database)
            locker.rollback()
        after = scrape(exporter)[0]
    assert all(up(parsed) == 0 for parsed, _ in timed_out)
    assert errors(timed_out[-1][0], "query_timeout") == 3
    assert all(elapsed < DEADLINE for _, elapsed in timed_out)
    assert active == 0
    assert waiting == 0
    assert held <= 2  # the pool's bound (pool_max_size default)
    assert up(after) == 1


def _waiting_on_locks(database: Database) -> int:
    with database.connect() as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE NOT l.granted AND a.application_name = %s",
            (APP,),
        ).fetchone()
    assert row is not None
    return int(row[0])


SLOW_POLICY = (
    "CREATE POLICY slow ON charge_receipts AS RESTRICTIVE USING ((SELECT true FROM pg_sleep(0.3)))"
)


class SessionWatcher:
    """Samples how many sessions the exporter holds, every 20 ms, on one connection."""

    def __init__(self, database: Database) -> None:
        self._conn = database.connect()
        self._name = database.name
        self._stop = threading.Event()
        self.samples: list[int] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            row = self._conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
                " AND datname = %s",
                (APP, self._name),
            ).fetchone()
            assert row is not None
            self.samples.append(int(row[0]))
            self._stop.wait(0.02)

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(5)
        self._conn.close()
        return self.samples


def test_fifty_concurrent_scrapes_of_a_slow_database_stay_within_the_pool(
    make_database: Callable[[str], Database],
) -> None:
    """Every charge receipt costs 0.3 s to read (pg_sleep in a policy): collections
    are slow, scrapes pile up, and still the exporter never holds more than
    pool_max_size connections, and nothing is left running afterwards."""
    database = make_database(SCHEMA_2026_03)
    with database.connect() as conn:
        tenant = scenario.create_tenant(conn, balance_credits=10**9)
        scenario.add_schedule(conn, tenant, "govern")
        for hours in (1, 2):
            scenario.add_charge(conn, tenant, 1000, datetime.now(UTC) - timedelta(hours=hours))
        conn.execute(SLOW_POLICY)
    env = {
        "GOVERNANCE_EXPORTER_POOL_MAX_SIZE": "2",
        "GOVERNANCE_EXPORTER_WEB_MAX_REQUESTS": "64",
        "GOVERNANCE_EXPORTER_STATEMENT_TIMEOUT_SECONDS": "3",
    }
    with run_exporter(database.monitor_url, env=env) as exporter:
        watcher = SessionWatcher(database)
        with ThreadPoolExecutor(max_workers=50) as workers:
            answers = list(workers.map(lambda _: _status(exporter.url), range(50)))
        seen = watcher.stop()
        time.sleep(0.2)
        active_after = exporter_sessions(database, active_only=True)
        final = scrape(exporter)[0]
    assert len(seen) > 10
    assert max(seen) <= 2
    assert set(answers) <= {200, 503}
    assert answers.count(200) >= 40  # all fit in the 64 request slots
    assert active_after == 0
    assert up(final) == 1


def _status(base: str) -> int:
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


# --- schema drift and odd data --------------------------------------------------------


def seed_odd_data(database: Database, now: datetime) -> None:
    """NULLs where the schema allows them, an unexpected status, timestamps in the
    future, a cron and a time zone that do not parse: all in one account."""
    version = database.schema
    with database.connect() as conn:
        tenant = scenario.create_tenant(conn, balance_credits=50_000_000)
        govern = scenario.add_schedule(
            conn, tenant, "govern", next_run_at=now + timedelta(days=9999)
        )
        scenario.add_schedule(conn, tenant, "community", cron="every hour please")
        scenario.add_schedule(conn, tenant, "engineering", timezone="Mars/Olympus_Mons")
        nameless = scenario.add_schedule(conn, tenant, "x", temporal_schedule_id=None)
        conn.execute("UPDATE schedules SET input = '{}'::jsonb WHERE id = %s", (nameless,))
        run = scenario.add_run
        run(conn, version, govern, now - timedelta(hours=1), "exploded", error_message=None)
        run(conn, version, govern, now - timedelta(hours=2), "error", error_message=None)
        run(conn, version, govern, now - timedelta(hours=3), "success", completed_at=None)
        run(
            conn,
            version,
            govern,
            now + timedelta(hours=5),
            "success",
            completed_at=now + timedelta(hours=5),
        )
        run(conn, version, nameless, now - timedelta(hours=1), "SUCCESS ")
        scenario.add_charge(conn, tenant, 5_000_000, now + timedelta(days=1), debit=False)
        scenario.add_charge(conn, tenant, 1_000_000, now - timedelta(hours=1), debit=False)
        if version == SCHEMA_2026_03:  # runs not started by a schedule (2026-03 only)
            conn.execute(
                "INSERT INTO graph_runs (schedule_id, run_id, scheduled_for, status, requested_by,"
                " run_kind, error_code) VALUES (NULL, 'manual-1', NULL, 'error', %s, 'manual',"
                " 'insufficient_credits'), (NULL, 'manual-2', %s, 'success', %s, 'manual', NULL)",
                (tenant.user_id, now - timedelta(minutes=5), tenant.user_id),
            )
        # the pre-2026-02-17 state: no temporal_schedule_id, charter only in the message
        scenario.add_schedule(
            conn, tenant, "sustainability", temporal_schedule_id=None, message=" SUSTAINABILITY "
        )


def test_odd_but_legal_data_gives_clearly_labelled_values(database: Database) -> None:
    now = datetime.now(UTC)
    seed_odd_data(database, now)
    with run_exporter(database.monitor_url) as exporter:
        parsed, _ = scrape(exporter)
        log = exporter.log()
    assert up(parsed) == 1
    value = charter_value
    # an unexpected status is bucketed, not dropped and not a crash
    assert value(parsed, "governance_schedule_runs", "govern", status="unknown") == 1
    assert value(parsed, "governance_schedule_failed_runs", "govern", reason="other") == 1
    # the run in the future is not counted, the success without completed_at is
    assert value(parsed, "governance_schedule_runs", "govern", status="success") == 1
    last_success = value(parsed, "governance_schedule_last_success_timestamp_seconds", "govern")
    assert last_success == pytest.approx((now - timedelta(hours=3)).timestamp(), abs=1)
    # a cron or zone that does not parse: flagged, no next run, the rest still there
    for broken in ("community", "engineering"):
        assert value(parsed, "governance_schedule_config_valid", broken) == 0
        assert frozenset({("account", "cogni_system"), ("charter", broken)}) not in parsed.get(
            "governance_schedule_next_run_timestamp_seconds", {}
        )
        assert value(parsed, "governance_schedule_enabled", broken) == 1
    assert value(parsed, "governance_schedule_config_valid", "govern") == 1
    # a charter named only by its message, padded and upper case, is still found
    assert value(parsed, "governance_charter_configured", "sustainability") == 1
    # no name at all: visible under its schedule id rather than lost
    configured = {dict(k)["charter"] for k in parsed["governance_charter_configured"]}
    assert any(re.fullmatch(r"[0-9a-f-]{36}", name) for name in configured)
    # charges in the future are not spent yet
    spent = parsed["governance_credit_spent_credits"][frozenset({("account", "cogni_system")})]
    assert spent == 1_000_000
    assert "Traceback" not in log


def test_drift_under_a_running_exporter_is_an_error_then_heals(database: Database) -> None:
    """A column disappears, then a table: each scrape says so (up 0, query_failed),
    the process stays up, and once the schema is back the next scrape is good."""
    with database.connect() as conn:
        scenario.seed_governance(conn, database.schema, datetime.now(UTC), hours=2)
    with run_exporter(database.monitor_url) as exporter:
        healthy = [up(scrape(exporter)[0]) for _ in range(6)]  # past psycopg's prepare threshold
        steps: list[tuple[str, float]] = []
        for break_it, heal in (
            (
                "ALTER TABLE schedules RENAME COLUMN timezone TO tz",
                "ALTER TABLE schedules RENAME COLUMN tz TO timezone",
            ),
            (
                "ALTER TABLE charge_receipts RENAME TO charge_receipts_old",
                "ALTER TABLE charge_receipts_old RENAME TO charge_receipts",
            ),
        ):
            with database.connect() as conn:
                conn.execute(break_it)
            steps.append((break_it, up(scrape(exporter)[0])))
            with database.connect() as conn:
                conn.execute(heal)
            steps.append((heal, up(scrape(exporter)[0])))
        final = scrape(exporter)[0]
        alive = exporter.process.poll() is None
        log = exporter.log()
    assert healthy == [1] * 6
    assert [value for _, value in steps] == [0, 1, 0, 1]
    assert errors(final, "query_failed") == 2
    assert alive
    assert log.count("collection failed (query_failed)") == 2
    assert log.count("database readable again") == 2


def test_the_2026_03_migration_under_a_running_exporter(
    make_database: Callable[[str], Database],
) -> None:
    """Migration 0021 as the node ran it: schedule_runs becomes graph_runs, with new
    columns; the role script is run again. The exporter follows without restart."""
    database = make_database(SCHEMA_2026_02)
    now = datetime.now(UTC)
    with database.connect() as conn:
        scenario.seed_incident(conn, SCHEMA_2026_02, now)
    with run_exporter(database.monitor_url) as exporter:
        before = scrape(exporter)[0]
        with database.connect() as conn:
            conn.execute(MIGRATION_0021)
            conn.execute(ROLE_SCRIPT.read_text().encode())
        after = scrape(exporter)[0]
    build = "governance_exporter_build_info"
    assert before[build][frozenset({("version", "0.1.0"), ("schema", SCHEMA_2026_02)})] == 1
    assert after[build][frozenset({("version", "0.1.0"), ("schema", SCHEMA_2026_03)})] == 1
    assert up(after) == 1
    for parsed in (before, after):
        assert (
            charter_value(
                parsed, "governance_schedule_failed_runs", "govern", reason="insufficient_credits"
            )
            == 6
        )


MIGRATION_0021 = """
ALTER TABLE schedule_runs RENAME TO graph_runs;
ALTER TABLE graph_runs ALTER COLUMN schedule_id DROP NOT NULL,
                       ALTER COLUMN scheduled_for DROP NOT NULL,
                       ADD COLUMN graph_id text, ADD COLUMN run_kind text,
                       ADD COLUMN trigger_source text, ADD COLUMN trigger_ref text,
                       ADD COLUMN requested_by text, ADD COLUMN error_code text;
"""


def test_a_column_type_change_is_never_a_crash_of_the_scrape(
    make_database: Callable[[str], Database],
) -> None:
    database = make_database(SCHEMA_2026_03)
    with database.connect() as conn:
        scenario.seed_governance(conn, SCHEMA_2026_03, datetime.now(UTC), hours=2)
    with run_exporter(database.monitor_url) as exporter:
        for _ in range(6):
            scrape(exporter)
        with database.connect() as conn:
            conn.execute("ALTER TABLE billing_accounts ALTER balance_credits TYPE numeric")
        statuses = [exporter.get("/metrics")[0] for _ in range(3)]
    assert statuses == [200, 200, 200]

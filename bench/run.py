# ruff: noqa: S108
"""Benchmark the exporter against the SQL floor and query-exporter, on generated data.

    /tmp/venv/bin/python bench/run.py --dbs bench_n0_202603,bench_n1_202603,bench_n5_202603

For each database (made by bench/generate.py; a name with ``_incident`` is the
incident variant) and each index setting (the real schema's indexes only, and
with sql/optional-indexes.sql), it measures, on the same data in the same run:

- the exporter (``python -m exporter``, a real process over HTTP): scrape latency
  median/p95/p99 over ``--scrapes`` sequential scrapes on a keep-alive connection;
  database work per collection (shared buffers hit + read, pg_stat_statements of
  the monitoring role); round trips per scrape (a counting TCP proxy between the
  exporter and PostgreSQL); RSS; 20 and 100 concurrent scrapes (HTTP statuses,
  collections they caused, most connections the exporter held);
- the floor: the same SQL back to back on one open connection of the same role,
  as seven statements (catalog + six facts, ``app.current_user_id`` set for the
  session) and as one combined statement;
- query-exporter 5.0 (its own venv, ``--qe``) configured with the same seven
  statements.

Raw figures go to ``bench/results.json``; ``bench/RESULTS.md`` is rendered from it.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster
import generate

from exporter import source
from exporter.settings import SYSTEM_PRINCIPAL_ID
from exporter.snapshot import SCHEMA_2026_02, SCHEMA_2026_03, SchemaInfo
from tests.harness import MONITOR_ROLE, free_port, run_exporter, url_with

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OPTIONAL_INDEXES = REPO / "sql" / "optional-indexes.sql"
WINDOW = timedelta(days=1)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "median": statistics.median(ms),
        "p95": pct(ms, 0.95),
        "p99": pct(ms, 0.99),
        "n": len(ms),
    }


# --- database helpers ------------------------------------------------------------------


def schema_of(db: str) -> SchemaInfo:
    with cluster.connect(db) as conn:
        if generate.runs_table(conn) == "graph_runs":
            return SchemaInfo(SCHEMA_2026_03, "graph_runs", True)
    return SchemaInfo(SCHEMA_2026_02, "schedule_runs", False)


def reset_statements(db: str) -> None:
    with cluster.connect(db) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def statement_stats(db: str) -> list[dict[str, Any]]:
    """pg_stat_statements rows of the monitoring role in ``db``."""
    with cluster.connect(db) as conn:
        rows = conn.execute(
            "SELECT query, calls, shared_blks_hit, shared_blks_read, total_exec_time"
            " FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid"
            " JOIN pg_database d ON d.oid = s.dbid"
            " WHERE r.rolname = %s AND d.datname = current_database()",
            (MONITOR_ROLE,),
        ).fetchall()
    return [{"query": q, "calls": c, "hit": h, "read": r, "exec_ms": t} for q, c, h, r, t in rows]


def buffers(stats: list[dict[str, Any]]) -> int:
    return sum(int(s["hit"]) + int(s["read"]) for s in stats)


def account_calls(stats: list[dict[str, Any]]) -> int:
    """Collections = executions of the account statement (once per collection)."""
    return sum(
        int(s["calls"])
        for s in stats
        if "FROM billing_accounts\nWHERE slug" in s["query"] and "sum(" not in s["query"]
    )


def optional_index_statements() -> list[tuple[str, str, str]]:
    """(index name, table, CREATE statement) from sql/optional-indexes.sql."""
    text = "\n".join(
        line
        for line in OPTIONAL_INDEXES.read_text().splitlines()
        if not line.lstrip().startswith(("--", "\\"))
    )
    found = []
    for statement in re.findall(r"CREATE INDEX[^;]*", text):
        match = re.search(
            r"CREATE INDEX (?:CONCURRENTLY )?(?:IF NOT EXISTS )?(\w+)\s+ON (\w+)", statement
        )
        if match:
            found.append((match.group(1), match.group(2), statement.strip()))
    return found


def set_optional_indexes(db: str, on: bool) -> dict[str, int]:
    sizes: dict[str, int] = {}
    with cluster.connect(db) as conn:
        for name, table, create in optional_index_statements():
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
            if not (exists and exists[0]):
                continue
            if on:
                conn.execute(create)
                size = conn.execute("SELECT pg_relation_size(%s::regclass)", (name,)).fetchone()
                sizes[name] = int(size[0]) if size else 0
            else:
                conn.execute(f'DROP INDEX IF EXISTS "{name}"')
        conn.execute("ANALYZE")
    return sizes


def data_facts(db: str) -> dict[str, Any]:
    with cluster.connect(db) as conn:
        table = generate.runs_table(conn)
        row = conn.execute(
            f"SELECT (SELECT count(*) FROM {table}), (SELECT count(*) FROM charge_receipts),"
            " pg_database_size(current_database()),"
            f" (SELECT max(scheduled_for) FROM {table})"
        ).fetchone()
    assert row is not None
    return {"runs": row[0], "charges": row[1], "bytes": row[2], "data_until": row[3].isoformat()}


# --- a TCP proxy that counts round trips ------------------------------------------------


class CountingProxy:
    """Forwards one port to PostgreSQL; counts client→server flights (round trips):
    each time the client sends after the server spoke (or first) is one."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self.round_trips = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, server)
        sel.register(server, selectors.EVENT_READ, client)
        last_from_client = False
        try:
            while True:
                for key, _ in sel.select():
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = src.recv(65536)
                    if not data:
                        return
                    from_client = src is client
                    if from_client and not last_from_client:
                        with self._lock:
                            self.round_trips += 1
                    last_from_client = from_client
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            client.close()
            server.close()

    def close(self) -> None:
        self._stop = True
        self._listener.close()


# --- HTTP scraping ----------------------------------------------------------------------


def scrape_series(port: int, count: int, path: str = "/metrics") -> list[float]:
    """``count`` sequential scrapes on one keep-alive connection; seconds each."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        times.append(time.perf_counter() - started)
        if response.status != 200 or not body:
            raise RuntimeError(f"scrape failed: {response.status} {body[:200]!r}")
    conn.close()
    return times


def concurrent_scrapes(port: int, clients: int) -> dict[str, Any]:
    barrier = threading.Barrier(clients)
    statuses: list[int] = []
    times: list[float] = []
    lock = threading.Lock()

    def one() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.connect()
        barrier.wait()
        started = time.perf_counter()
        try:
            conn.request("GET", "/metrics")
            response = conn.getresponse()
            response.read()
            status = response.status
        except OSError:
            status = 0
        elapsed = time.perf_counter() - started
        conn.close()
        with lock:
            statuses.append(status)
            times.append(elapsed)

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts: dict[str, int] = {}
    for status in statuses:
        counts[str(status)] = counts.get(str(status), 0) + 1
    return {"statuses": counts, "slowest_ms": max(times) * 1000}


class ConnectionWatcher:
    """Polls pg_stat_activity for the monitoring role's connections; keeps the max."""

    def __init__(self, db: str) -> None:
        self.max = 0
        self._stop = threading.Event()
        self._conn = cluster.connect(db)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            row = self._conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (MONITOR_ROLE,)
            ).fetchone()
            self.max = max(self.max, int(row[0]) if row else 0)
            time.sleep(0.002)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self._conn.close()
        return self.max


def rss_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


# --- the three contenders ---------------------------------------------------------------


def measure_exporter(
    db: str, scrapes: int, env: dict[str, str] | None = None, concurrency_only: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    url = cluster.monitor_url(db)
    with run_exporter(url, env=env) as exporter:
        port = int(exporter.url.rsplit(":", 1)[1])
        scrape_series(port, 30)  # warm: connection, prepared statements, caches
        if concurrency_only:
            cache = float((env or {}).get("GOVERNANCE_EXPORTER_CACHE_SECONDS", 0))
            out.update(concurrency(db, port, settle=cache + 0.3))
            return out
        reset_statements(db)
        times = scrape_series(port, scrapes)
        stats = statement_stats(db)
        collections = account_calls(stats)
        out["latency"] = summary_ms(times)
        out["collections"] = collections
        out["buffers_per_collection"] = buffers(stats) / max(collections, 1)
        out["statements"] = sorted(
            (
                {
                    "query": s["query"][:90].replace("\n", " "),
                    "buffers_per_call": (s["hit"] + s["read"]) / max(s["calls"], 1),
                    "calls": s["calls"],
                    "exec_ms_per_call": s["exec_ms"] / max(s["calls"], 1),
                }
                for s in stats
            ),
            key=lambda s: -s["buffers_per_call"],
        )
        out["rss_kib"] = rss_kib(exporter.process.pid)
        out.update(concurrency(db, port))
        out["rss_kib_after_concurrency"] = rss_kib(exporter.process.pid)
    # round trips: the same exporter through the counting proxy
    proxy = CountingProxy(cluster.PORT)
    try:
        with run_exporter(url_with(url, port=str(proxy.port)), env=env) as exporter:
            port = int(exporter.url.rsplit(":", 1)[1])
            scrape_series(port, 10)
            time.sleep(0.3)
            before = proxy.round_trips
            scrape_series(port, 50)
            out["round_trips_per_scrape"] = (proxy.round_trips - before) / 50
    finally:
        proxy.close()
    return out


def concurrency(db: str, port: int, settle: float = 0.2) -> dict[str, Any]:
    """Bursts of 20 and 100 scrapes, each ``settle`` seconds after the last scrape
    (longer than the exporter's cache, so that each burst finds it expired)."""
    out: dict[str, Any] = {}
    for clients in (20, 100):
        time.sleep(settle)
        reset_statements(db)
        watcher = ConnectionWatcher(db)
        time.sleep(0.05)
        result = concurrent_scrapes(port, clients)
        time.sleep(0.05)
        result["max_connections"] = watcher.stop()
        result["collections"] = account_calls(statement_stats(db))
        out[f"concurrent_{clients}"] = result
    return out


def _floor_statements(schema: SchemaInfo) -> list[str]:
    """Catalog + six fact statements, exactly the exporter's text."""
    return list(source.run_statements(schema)[1:])


def floor_params() -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "account": "cogni_system",
        "now": now,
        "since": now - WINDOW,
        "schedule_limit": 51,
    }


def floor_url(db: str) -> str:
    return str(
        url_with(cluster.monitor_url(db), options=f"-c app.current_user_id={SYSTEM_PRINCIPAL_ID}")
    )


def floor_batches(schema: SchemaInfo) -> dict[str, list[str]]:
    """ "seven": catalog + six facts, one statement each; "combined": one statement."""
    statements = _floor_statements(schema)
    combined = "SELECT " + ",\n".join(
        f"(SELECT json_agg(t) FROM ({s}) t) AS s{i}" for i, s in enumerate(statements)
    )
    return {"seven": statements, "combined": [combined]}


def run_batch(conn: psycopg.Connection[Any], batch: list[str]) -> None:
    params = floor_params()
    for statement in batch:
        conn.execute(statement, params).fetchall()


def interleaved_latency(
    db: str, schema: SchemaInfo, scrapes: int, qe_bin: Path | None, rounds: int = 6
) -> dict[str, dict[str, float]]:
    """Latency of all contenders, measured in alternating rounds of scrapes/rounds
    each, so that a burst of outside load hits them alike (this machine is shared)."""
    samples: dict[str, list[float]] = {"exporter": [], "seven": [], "combined": []}
    per_round = max(1, scrapes // rounds)
    batches = floor_batches(schema)
    with contextlib.ExitStack() as stack:
        exporter = stack.enter_context(run_exporter(cluster.monitor_url(db)))
        exporter_port = int(exporter.url.rsplit(":", 1)[1])
        qe_port = None
        if qe_bin is not None:
            samples["query_exporter"] = []
            qe_port, _ = stack.enter_context(run_query_exporter(qe_bin, qe_config(db, schema)))
        conn = stack.enter_context(psycopg.connect(floor_url(db), autocommit=True))
        scrape_series(exporter_port, 30)
        if qe_port is not None:
            scrape_series(qe_port, 30)
        for batch in batches.values():
            for _ in range(30):
                run_batch(conn, batch)
        for _ in range(rounds):
            samples["exporter"] += scrape_series(exporter_port, per_round)
            for name, batch in batches.items():
                for _ in range(per_round):
                    started = time.perf_counter()
                    run_batch(conn, batch)
                    samples[name].append(time.perf_counter() - started)
            if qe_port is not None:
                samples["query_exporter"] += scrape_series(qe_port, per_round)
    return {name: summary_ms(values) for name, values in samples.items()}


def measure_floor(db: str, schema: SchemaInfo, iterations: int) -> dict[str, Any]:
    url = floor_url(db)
    out: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for name, batch in floor_batches(schema).items():

            def once(batch: list[str] = batch) -> None:
                run_batch(conn, batch)

            for _ in range(30):
                once()
            reset_statements(db)
            times = []
            for _ in range(iterations):
                started = time.perf_counter()
                once()
                times.append(time.perf_counter() - started)
            stats = statement_stats(db)
            out[name] = {
                "latency": summary_ms(times),
                "buffers_per_run": buffers(stats) / iterations,
                "round_trips": len(batch),
            }
    return out


QE_METRICS = {
    "qe_catalog": "has_graph_runs",
    "qe_balance_credits": "account",
    "qe_spent_credits": "spend",
}


def _qe_sql(statement: str) -> str:
    return (
        statement.replace("%(now)s", "now()")
        .replace("%(since)s", "(now() - interval '86400 seconds')")
        .replace("%(account)s", "'cogni_system'")
        .replace("%(schedule_limit)s", "51")
    )


def qe_config(db: str, schema: SchemaInfo) -> dict[str, Any]:
    """query-exporter config: the same seven statements, each wrapped to map columns."""
    catalog, account, spend, schedules, counts, outcomes, recent = (
        _qe_sql(s) for s in _floor_statements(schema)
    )
    q: dict[str, tuple[str, dict[str, list[str]]]] = {
        "catalog": (
            f"SELECT has_graph_runs::int AS qe_has_graph_runs FROM ({catalog}) t",
            {"qe_has_graph_runs": []},
        ),
        "account": (
            f"SELECT account_id, balance_credits AS qe_balance_credits FROM ({account}) t",
            {"qe_balance_credits": ["account_id"]},
        ),
        "spend": (
            "SELECT spent_credits AS qe_spent_credits, charges AS qe_charges,"
            " coalesce(extract(epoch FROM last_charge_at), 0) AS qe_last_charge"
            f" FROM ({spend}) t",
            {"qe_spent_credits": [], "qe_charges": [], "qe_last_charge": []},
        ),
        "schedules": (
            "SELECT schedule_id, coalesce(temporal_schedule_id, '') AS tsid,"
            " coalesce(message, '') AS message, enabled::int AS qe_schedule_enabled,"
            " coalesce(extract(epoch FROM next_run_at), 0) AS qe_next_run"
            f" FROM ({schedules}) t",
            {
                "qe_schedule_enabled": ["schedule_id", "tsid", "message"],
                "qe_next_run": ["schedule_id", "tsid", "message"],
            },
        ),
        "counts": (
            "SELECT schedule_id, status, coalesce(error_code, '') AS error_code,"
            " coalesce(error_message, '') AS error_message, runs AS qe_runs"
            f" FROM ({counts}) t",
            {"qe_runs": ["schedule_id", "status", "error_code", "error_message"]},
        ),
        "outcomes": (
            "SELECT schedule_id,"
            " coalesce(extract(epoch FROM last_success_at), 0) AS qe_last_success,"
            " coalesce(extract(epoch FROM last_failure_at), 0) AS qe_last_failure"
            f" FROM ({outcomes}) t",
            {"qe_last_success": ["schedule_id"], "qe_last_failure": ["schedule_id"]},
        ),
        "recent": (
            "SELECT schedule_id, scheduled_for::text AS slot, status, 1 AS qe_recent_run"
            f" FROM ({recent}) t",
            {"qe_recent_run": ["schedule_id", "slot", "status"]},
        ),
    }
    info = psycopg.conninfo.conninfo_to_dict(cluster.monitor_url(db))
    dsn = {
        "dialect": "postgresql+psycopg",
        "user": info["user"],
        "password": info["password"],
        "host": info["host"],
        "port": int(str(info["port"])),
        "database": info["dbname"],
    }
    metrics: dict[str, Any] = {}
    queries: dict[str, Any] = {}
    for name, (statement, metric_labels) in q.items():
        for metric, labels in metric_labels.items():
            metrics[metric] = {"type": "gauge", **({"labels": labels} if labels else {})}
        queries[name] = {"databases": ["cogni"], "metrics": list(metric_labels), "sql": statement}
    return {
        "databases": {
            "cogni": {
                "dsn": dsn,
                "connect-sql": [f"SET app.current_user_id = '{SYSTEM_PRINCIPAL_ID}'"],
            }
        },
        "metrics": metrics,
        "queries": queries,
    }


@contextlib.contextmanager
def run_query_exporter(qe_bin: Path, config: dict[str, Any]) -> Iterator[tuple[int, int]]:
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="qe-"))
    config_path = workdir / "config.yaml"
    config_path.write_text(json.dumps(config, indent=1))  # JSON is YAML
    log_path = workdir / "qe.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(qe_bin), "--config", str(config_path), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"query-exporter did not start:\n{log_path.read_text()}"
                    ) from None
                time.sleep(0.2)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(10)


def measure_query_exporter(
    db: str, schema: SchemaInfo, scrapes: int, qe_bin: Path
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with run_query_exporter(qe_bin, qe_config(db, schema)) as (port, pid):
        body = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        body.request("GET", "/metrics")
        text = body.getresponse().read().decode()
        if "qe_balance_credits{" not in text or "qe_runs{" not in text:
            raise RuntimeError("query-exporter does not export the facts:\n" + text[-3000:])
        scrape_series(port, 30)
        reset_statements(db)
        times = scrape_series(port, scrapes)
        stats = statement_stats(db)
        out["latency"] = summary_ms(times)
        out["buffers_per_scrape"] = buffers(stats) / scrapes
        out["rss_kib"] = rss_kib(pid)
        for clients in (20, 100):
            time.sleep(0.2)
            reset_statements(db)
            result = concurrent_scrapes(port, clients)
            result["collections"] = account_calls(statement_stats(db))
            out[f"concurrent_{clients}"] = result
    return out


# --- orchestration ---------------------------------------------------------------------


def versions(qe_bin: Path | None) -> dict[str, str]:
    with psycopg.connect(cluster.admin_url()) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        pg = str(row[0]) if row else "?"
        sb = conn.execute("SHOW shared_buffers").fetchone()
    qe = "not run"
    if qe_bin is not None:
        result = subprocess.run(
            [str(qe_bin), "--version"], capture_output=True, text=True, check=False
        )
        qe = (result.stdout or result.stderr).strip()
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError):
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    from exporter import __version__  # noqa: PLC0415

    return {
        "machine": f"{cpu}, {os.cpu_count()} cores, {mem_kib / 1024 / 1024:.0f} GiB RAM",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
        "postgresql": f"{pg} (shared_buffers {sb[0] if sb else '?'})",
        "governance_exporter": __version__,
        "query_exporter": qe,
    }


def exporter_defaults() -> dict[str, float]:
    """The settings a default exporter runs with, as the report labels them."""
    from exporter.settings import Settings  # noqa: PLC0415

    fields = Settings.model_fields
    return {
        name: fields[name].default
        for name in ("cache_seconds", "pool_max_size", "web_max_requests")
    }


def run_case(
    db: str, state: str, indexes: str, args: argparse.Namespace, qe_bin: Path | None
) -> dict[str, Any]:
    schema = schema_of(db)
    log(f"{db}: state={state} indexes={indexes}")
    case: dict[str, Any] = {"db": db, "state": state, "indexes": indexes, "schema": schema.version}
    # Every sequential scrape a real collection, so that latency compares with the floor.
    case["exporter"] = measure_exporter(
        db, args.scrapes, env={"GOVERNANCE_EXPORTER_CACHE_SECONDS": "0"}
    )
    log(
        f"  exporter {case['exporter']['latency']['median']:.2f} ms, "
        f"{case['exporter']['buffers_per_collection']:.0f} buffers"
    )
    if args.cache_seconds is not None:
        env = {"GOVERNANCE_EXPORTER_CACHE_SECONDS": str(args.cache_seconds)}
        case["exporter_cached"] = measure_exporter(db, args.scrapes, env=env, concurrency_only=True)
    case["floor"] = measure_floor(db, schema, args.scrapes)
    log(f"  floor {case['floor']['seven']['latency']['median']:.2f} ms")
    if qe_bin is not None:
        case["query_exporter"] = measure_query_exporter(db, schema, args.scrapes, qe_bin)
        log(f"  query-exporter {case['query_exporter']['latency']['median']:.2f} ms")
    # The latencies reported: all contenders in alternating rounds (see above); the
    # separate series stay in results.json as "latency_separate".
    latency = interleaved_latency(db, schema, args.scrapes, qe_bin)
    for block, name in (
        (case["exporter"], "exporter"),
        (case["floor"]["seven"], "seven"),
        (case["floor"]["combined"], "combined"),
        (case.get("query_exporter"), "query_exporter"),
    ):
        if block is not None:
            block["latency_separate"] = block["latency"]
            block["latency"] = latency[name]
    log(
        "  interleaved: "
        + ", ".join(f"{name} {values['median']:.2f} ms" for name, values in latency.items())
    )
    return case


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--dbs",
        default="bench_n0_202603,bench_n0_202603_incident3d,"
        "bench_n1_202603,bench_n1_202603_incident3d,"
        "bench_n5_202603,bench_n5_202603_incident3d,bench_n0_202602,bench_n1_202602",
    )
    parser.add_argument("--scrapes", type=int, default=300)
    parser.add_argument("--indexes", default="off,on", help="without/with sql/optional-indexes.sql")
    parser.add_argument("--qe", default="/tmp/qe/bin/query-exporter", help="'' to skip")
    parser.add_argument(
        "--cache-seconds",
        type=float,
        default=None,
        help="also measure the exporter with this cache_seconds",
    )
    parser.add_argument("--out", default=str(BENCH / "results.json"))
    parser.add_argument("--merge", action="store_true", help="add to the cases already in --out")
    args = parser.parse_args()
    cluster.ensure_running()
    qe_bin = Path(args.qe) if args.qe else None
    out_path = Path(args.out)
    results: dict[str, Any] = {"cases": [], "data": {}}
    if args.merge and out_path.exists():
        results = json.loads(out_path.read_text())
    results["versions"] = versions(qe_bin)
    results["exporter_defaults"] = exporter_defaults()
    results["cache_seconds_variant"] = args.cache_seconds
    results["command"] = " ".join(["/tmp/venv/bin/python", "bench/run.py", *sys.argv[1:]])
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    for db in args.dbs.split(","):
        results["data"][db] = data_facts(db)
        state = "incident" if "_incident" in db else "healthy"
        for indexes in args.indexes.split(","):
            sizes = set_optional_indexes(db, indexes == "on")
            if sizes:
                results.setdefault("index_sizes", {})[db] = sizes
            case = run_case(db, state, indexes, args, qe_bin)
            results["cases"] = [
                c for c in results["cases"] if (c["db"], c["indexes"]) != (db, indexes)
            ] + [case]
            out_path.write_text(json.dumps(results, indent=1, default=str))
    log(f"wrote {out_path}")
    import report  # noqa: PLC0415

    report.write(results, BENCH / "RESULTS.md")
    log("wrote bench/RESULTS.md")


if __name__ == "__main__":
    main()

# ruff: noqa: S108
"""Benchmark the exporter against the SQL floor and query-exporter, on generated data.

    .venv/bin/python bench/run.py --dbs bench_n0_202603,bench_n1_202603,bench_n5_202603

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
  as "floor-N": exactly ``exporter.queries.run_statements()`` for the database's
  schema, N statements, one round trip each (``app.current_user_id`` set for the
  session), and as "floor-1": the same N as one combined statement;
- query-exporter 5.0 (its own venv, ``--qe``) configured with the same N
  statements.

Every exporter series states its ``cache_seconds``; the latency series run with
0 (every scrape a collection, as every query-exporter scrape is).

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
from psycopg.rows import class_row

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster
import generate

from exporter import queries, source
from exporter.settings import SYSTEM_PRINCIPAL_ID
from exporter.snapshot import CatalogRow, SchemaInfo
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
    """The schema as the exporter finds it: its own catalog statement, as its role."""
    with psycopg.connect(floor_url(db), autocommit=True) as conn:
        cur = conn.cursor(row_factory=class_row(CatalogRow))
        catalog = cur.execute(queries.READ_CATALOG).fetchone()
    assert catalog is not None
    return source.schema_info(catalog)


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


_LITERAL = re.compile(r"E?'(?:[^']|'')*'|%\(\w+\)s|\$\d+|\b\d+\b")


def _normalised(text: str) -> str:
    """Statement text with constants and parameters as ``?``, whitespace collapsed
    (pg_stat_statements shows constants as $n)."""
    return " ".join(_LITERAL.sub("?", text.replace("%%", "%")).split())


def collection_statements(schema: SchemaInfo) -> dict[str, str]:
    """Name -> text of every statement of one collection on ``schema``, in order
    (the attribution ledger's included, where the schema has it)."""
    return dict(queries.for_schema(schema).named())


def statement_names(schema: SchemaInfo) -> dict[str, str]:
    """Normalised text of each statement of a collection -> its short name."""
    return {_normalised(text): name for name, text in collection_statements(schema).items()}


def statement_name(query: str, names: dict[str, str]) -> str:
    return names.get(_normalised(query), " ".join(query.split())[:50])


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
    db: str,
    scrapes: int,
    env: dict[str, str] | None = None,
    concurrency_only: bool = False,
    names: dict[str, str] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "cache_seconds": float((env or {}).get("GOVERNANCE_EXPORTER_CACHE_SECONDS", 0))
    }
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
                    "name": statement_name(s["query"], names or {}),
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
    """Exactly the statements of a collection on ``schema``, and their text."""
    return list(collection_statements(schema).values())


# How far apart two collections are taken to be, for the finished-runs window (the
# exporter counts runs finished since its previous collection).
FINISHED_STEP = timedelta(seconds=15)


def floor_params(now: datetime | None = None) -> dict[str, Any]:
    """The parameters the exporter's Source passes (Source._params), with defaults."""
    now = now or datetime.now(UTC)
    finished_until = now - source.FINISHED_LAG
    return {
        "account": "cogni_system",
        "rls_user_id": SYSTEM_PRINCIPAL_ID,
        "statement_timeout_ms": "5000",
        "now": now,
        "since": now - WINDOW,
        "schedule_limit": 51,
        "dispatch_limit": 51,
        "ledger_stream_limit": 51,
        "lookback": now - source.UNSCHEDULED_LOOKBACK,
        "finished_after": finished_until - FINISHED_STEP,
        "finished_until": finished_until,
    }


def floor_url(db: str) -> str:
    return str(
        url_with(cluster.monitor_url(db), options=f"-c app.current_user_id={SYSTEM_PRINCIPAL_ID}")
    )


def floor_batches(schema: SchemaInfo) -> dict[str, list[str]]:
    """ "each": floor-N, the N statements one at a time; "combined": floor-1."""
    statements = _floor_statements(schema)
    combined = "SELECT " + ",\n".join(
        f"(SELECT json_agg(t) FROM ({s}) t) AS s{i}" for i, s in enumerate(statements)
    )
    return {"each": statements, "combined": [combined]}


def run_batch(conn: psycopg.Connection[Any], batch: list[str]) -> None:
    params = floor_params()
    for statement in batch:
        conn.execute(statement, params).fetchall()


def interleaved_latency(
    db: str, schema: SchemaInfo, scrapes: int, qe_bin: Path | None, rounds: int = 6
) -> dict[str, dict[str, float]]:
    """Latency of all contenders, measured in alternating rounds of scrapes/rounds
    each, so that a burst of outside load hits them alike (this machine is shared)."""
    samples: dict[str, list[float]] = {"exporter": [], "each": [], "combined": []}
    per_round = max(1, scrapes // rounds)
    batches = floor_batches(schema)
    with contextlib.ExitStack() as stack:
        exporter = stack.enter_context(
            run_exporter(cluster.monitor_url(db), env={"GOVERNANCE_EXPORTER_CACHE_SECONDS": "0"})
        )
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


def _qe_sql(statement: str) -> str:
    """A statement with its parameters written as SQL (query-exporter passes none)."""
    replacements = {
        "%(now)s": "now()",
        "%(since)s": "(now() - interval '86400 seconds')",
        "%(account)s": "'cogni_system'",
        "%(schedule_limit)s": "51",
        "%(dispatch_limit)s": "51",
        "%(ledger_stream_limit)s": "51",
        "%(rls_user_id)s": f"'{SYSTEM_PRINCIPAL_ID}'",
        "%(statement_timeout_ms)s": "'5000'",
        "%(lookback)s": f"(now() - interval '{source.UNSCHEDULED_LOOKBACK.total_seconds():.0f}"
        " seconds')",
        "%(finished_after)s": "(now() - interval "
        f"'{(source.FINISHED_LAG + FINISHED_STEP).total_seconds():.0f} seconds')",
        "%(finished_until)s": f"(now() - interval '{source.FINISHED_LAG.total_seconds():.0f}"
        " seconds')",
    }
    for param, value in replacements.items():
        statement = statement.replace(param, value)
    if "%(" in statement:
        raise ValueError(f"a parameter is left for query-exporter: {statement[:200]}")
    return statement.replace("%%", "%")


_NUMERIC = {"int2", "int4", "int8", "numeric", "float4", "float8", "oid"}
_TIME = {"timestamptz", "timestamp", "date"}


def _qe_query(
    conn: psycopg.Connection[Any], name: str, statement: str
) -> tuple[str, dict[str, list[str]]]:
    """The statement wrapped so that query-exporter can read it: every number, bool
    and time column a gauge (times as epoch seconds, NULL as 0), every other column
    a label of each gauge (NULL as ''); a statement with no such column gets a
    constant 1 gauge per row. The columns and types are the server's own."""
    cur = conn.execute(statement, floor_params())
    assert cur.description is not None
    labels, values, columns = [], [], []
    for i, column in enumerate(cur.description):
        # Columns renamed by position (the context statement has two "set_config").
        col = column.name if column.name not in columns else f"{column.name}_{i}"
        columns.append(col)
        type_name = conn.adapters.types.get(column.type_code)
        kind = type_name.name if type_name else "text"
        quoted = f'"{col}"'
        # psycopg's registry gives an array's element type for its oid: an array of
        # times (the ledger's receipt sample) becomes what a user would write by
        # hand, its count and its newest element, reading every element as ours does.
        if type_name is not None and column.type_code == type_name.array_oid:
            values.append(f"coalesce(cardinality({quoted}), 0)::float8 AS qe_{name}_{col}_count")
            if kind in _TIME:
                newest = f"(SELECT max(extract(epoch FROM e)) FROM unnest({quoted}) e)"
                values.append(f"coalesce({newest}, 0)::float8 AS qe_{name}_{col}_newest")
            continue
        if kind in _NUMERIC:
            values.append(f"coalesce({quoted}, 0)::float8 AS qe_{name}_{col}")
        elif kind == "bool":
            values.append(f"coalesce({quoted}, false)::int AS qe_{name}_{col}")
        elif kind in _TIME:
            values.append(f"coalesce(extract(epoch FROM {quoted}), 0)::float8 AS qe_{name}_{col}")
        else:
            labels.append(col)
    if not values:
        values.append(f"1 AS qe_{name}_row")
    select = [f"coalesce({c}::text, '') AS {c}" for c in labels] + values
    metrics = {v.rsplit(" AS ", 1)[1]: labels for v in values}
    aliases = ", ".join(f'"{c}"' for c in columns)
    return f"SELECT {', '.join(select)} FROM ({_qe_sql(statement)}) AS t({aliases})", metrics


def qe_config(db: str, schema: SchemaInfo) -> dict[str, Any]:
    """query-exporter config: the same N statements, each wrapped to map its columns."""
    names = statement_names(schema)
    q: dict[str, tuple[str, dict[str, list[str]]]] = {}
    with psycopg.connect(floor_url(db), autocommit=True) as conn:
        for statement in _floor_statements(schema):
            name = names[_normalised(statement)]
            q[name] = _qe_query(conn, name, statement)
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
        if "qe_run_counts_runs{" not in text:
            raise RuntimeError("query-exporter does not export the facts:\n" + text[-3000:])
        scrape_series(port, 30)
        reset_statements(db)
        times = scrape_series(port, scrapes)
        stats = statement_stats(db)
        out["latency"] = summary_ms(times)
        out["buffers_per_scrape"] = buffers(stats) / scrapes
        # Every query must have run: a failing one would make query-exporter slower.
        body.request("GET", "/metrics")
        text = body.getresponse().read().decode()
        out["query_errors"] = [
            line
            for line in text.splitlines()
            if line.startswith("queries_total") and 'status="error"' in line
        ]
        if out["query_errors"]:
            log(f"  query-exporter query errors: {out['query_errors']}")
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
    names = statement_names(schema)
    log(f"{db}: state={state} indexes={indexes}")
    case: dict[str, Any] = {
        "db": db,
        "state": state,
        "indexes": indexes,
        "schema": schema.version,
        "floor_statements": list(names.values()),
    }
    # Every sequential scrape a real collection, so that latency compares with the floor.
    case["exporter"] = measure_exporter(
        db, args.scrapes, env={"GOVERNANCE_EXPORTER_CACHE_SECONDS": "0"}, names=names
    )
    log(
        f"  exporter {case['exporter']['latency']['median']:.2f} ms, "
        f"{case['exporter']['buffers_per_collection']:.0f} buffers"
    )
    if args.cache_seconds is not None:
        env = {"GOVERNANCE_EXPORTER_CACHE_SECONDS": str(args.cache_seconds)}
        case["exporter_cached"] = measure_exporter(db, args.scrapes, env=env, concurrency_only=True)
    case["floor"] = measure_floor(db, schema, args.scrapes)
    log(f"  floor-{len(names)} {case['floor']['each']['latency']['median']:.2f} ms")
    if qe_bin is not None:
        case["query_exporter"] = measure_query_exporter(db, schema, args.scrapes, qe_bin)
        log(f"  query-exporter {case['query_exporter']['latency']['median']:.2f} ms")
    # The latencies reported: all contenders in alternating rounds (see above); the
    # separate series stay in results.json as "latency_separate".
    latency = interleaved_latency(db, schema, args.scrapes, qe_bin)
    for block, name in (
        (case["exporter"], "exporter"),
        (case["floor"]["each"], "each"),
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


def _shown_python() -> str:
    """The interpreter as the command was typed: relative inside the repository."""
    path = Path(sys.executable)
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--dbs",
        default="bench_n0_202610,bench_n0_202610_incident3d,"
        "bench_n1_202610,bench_n1_202610_incident3d,"
        "bench_n5_202610,bench_n5_202610_incident3d",
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
    results["command"] = " ".join([_shown_python(), "bench/run.py", *sys.argv[1:]])
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

"""Soak: scrape a real exporter on loopback for a long time and watch it for growth.

    /tmp/venv/bin/python bench/soak.py --duration 3600 --interval 1

Starts a private PostgreSQL (as tests/harness.py does: local binaries, or the
server in GOVERNANCE_EXPORTER_TEST_ADMIN_URL), a database with a healthy Cogni
node and other tenants, and the exporter as a real process through the
least-privilege role. Then, for ``--duration`` seconds, one request every
``--interval`` seconds (mostly /metrics; also /healthz, the status page, a 404,
a HEAD); every ``--kill-every`` seconds the exporter's database sessions are
terminated, so the reconnect path is soaked too. Every ``--sample-every`` seconds
it records the exporter's RSS, threads, open file descriptors and database
sessions. It prints a Markdown summary (for bench/SOAK.md) and can write the
samples as CSV.

tests/test_soak.py runs the same loop for a few seconds in CI.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from exporter.demo import scenario  # noqa: E402
from exporter.snapshot import SCHEMA_2026_03  # noqa: E402
from tests.harness import (  # noqa: E402
    Database,
    ExporterProcess,
    create_database,
    drop_database,
    postgres_server,
    run_exporter,
)

APP = "governance-exporter"
# (path, method): one cycle of requests; /metrics dominates as Prometheus would.
CYCLE = [("/metrics", "GET")] * 6 + [
    ("/healthz", "GET"),
    ("/", "GET"),
    ("/nope", "GET"),
    ("/metrics", "HEAD"),
]


@dataclass(frozen=True)
class Sample:
    elapsed_s: float
    requests: int
    rss_kib: int
    threads: int
    fds: int
    db_sessions: int


@dataclass
class SoakResult:
    samples: list[Sample] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    requests: int = 0
    failures: int = 0  # an unexpected status or a transport error
    not_up: int = 0  # /metrics answered with governance_exporter_up 0
    kills: int = 0


def process_stats(pid: int) -> tuple[int, int, int]:
    """RSS in KiB, threads, open file descriptors, from /proc."""
    rss = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "VmRSS":
            rss = int(value.split()[0])
        elif key == "Threads":
            threads = int(value)
    return rss, threads, len(os.listdir(f"/proc/{pid}/fd"))


def db_sessions(admin: psycopg.Connection[Any], dbname: str) -> int:
    row = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND datname = %s",
        (APP, dbname),
    ).fetchone()
    return int(row[0]) if row else -1


def terminate_sessions(admin: psycopg.Connection[Any], dbname: str) -> None:
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = %s AND datname = %s",
        (APP, dbname),
    )


def one_request(port: int, path: str, method: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _expected(path: str) -> int:
    return 404 if path == "/nope" else 200


def soak(
    exporter: ExporterProcess,
    database: Database,
    *,
    duration: float,
    interval: float,
    sample_every: float,
    kill_every: float = 0.0,
    progress: Callable[[Sample], None] | None = None,
) -> SoakResult:
    """The loop: requests, periodic session kills, periodic samples."""
    port = int(exporter.url.rsplit(":", 1)[1])
    pid = exporter.process.pid
    result = SoakResult()
    with psycopg.connect(database.url, autocommit=True) as admin:
        started = time.monotonic()
        next_sample = next_kill = started
        if kill_every > 0:
            next_kill = started + kill_every
        index = 0
        while (now := time.monotonic()) - started < duration:
            if now >= next_sample:
                sample = Sample(
                    round(now - started, 1),
                    result.requests,
                    *process_stats(pid),
                    db_sessions(admin, database.name),
                )
                result.samples.append(sample)
                if progress:
                    progress(sample)
                next_sample += sample_every
            if kill_every > 0 and now >= next_kill:
                terminate_sessions(admin, database.name)
                result.kills += 1
                next_kill += kill_every
            _request(result, port, *CYCLE[index % len(CYCLE)])
            index += 1
            if interval > 0:
                time.sleep(max(0.0, interval - (time.monotonic() - now)))
        final = time.monotonic()
        result.samples.append(
            Sample(
                round(final - started, 1),
                result.requests,
                *process_stats(pid),
                db_sessions(admin, database.name),
            )
        )
    return result


def _request(result: SoakResult, port: int, path: str, method: str) -> None:
    begun = time.perf_counter()
    try:
        status, body = one_request(port, path, method)
    except OSError:
        result.failures += 1
        return
    finally:
        result.requests += 1
    result.latencies_ms.append((time.perf_counter() - begun) * 1000)
    if status != _expected(path):
        result.failures += 1
    elif path == "/metrics" and method == "GET" and b"\ngovernance_exporter_up 1.0" not in body:
        result.not_up += 1


def slope_per_hour(samples: list[Sample], attribute: str) -> float:
    """Least-squares growth of one figure, per hour."""
    xs = [s.elapsed_s for s in samples]
    ys = [float(getattr(s, attribute)) for s in samples]
    if len(xs) < 2 or max(xs) == min(xs):
        return 0.0
    return statistics.linear_regression(xs, ys).slope * 3600


def seed(database: Database) -> None:
    now = datetime.now(UTC)
    with database.connect() as conn:
        scenario.seed_governance(conn, SCHEMA_2026_03, now, hours=30)
        for index in range(5):
            scenario.seed_other_tenant(conn, SCHEMA_2026_03, index, now)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def summary(result: SoakResult, warmup_s: float) -> str:
    steady = [s for s in result.samples if s.elapsed_s >= warmup_s] or result.samples
    first, last = steady[0], steady[-1]
    rows = ["| figure | after warm-up | at the end | max | growth per hour (fit) |",
            "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, unit in (("rss_kib", "KiB"), ("threads", ""), ("fds", ""), ("db_sessions", "")):
        values = [getattr(s, name) for s in steady]
        rows.append(
            f"| {name} | {getattr(first, name)} {unit} | {getattr(last, name)} {unit} "
            f"| {max(values)} {unit} | {slope_per_hour(steady, name):+.1f} {unit} |"
        )
    lat = result.latencies_ms
    return "\n".join(
        [
            f"- requests: {result.requests} ({result.failures} failed, "
            f"{result.not_up} /metrics with up 0), session kills: {result.kills}",
            f"- latency ms: p50 {percentile(lat, 0.5):.1f}, p95 {percentile(lat, 0.95):.1f}, "
            f"p99 {percentile(lat, 0.99):.1f}, max {max(lat, default=0):.1f}",
            f"- samples: {len(result.samples)}, warm-up excluded: first {warmup_s:g} s",
            "",
            *rows,
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3600, help="seconds (default 3600)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between requests")
    parser.add_argument("--sample-every", type=float, default=30.0, help="seconds")
    parser.add_argument("--kill-every", type=float, default=300.0, help="0: never")
    parser.add_argument("--warmup", type=float, default=120.0, help="seconds left out of fits")
    parser.add_argument("--csv", type=Path, help="write the samples here")
    args = parser.parse_args()

    with postgres_server() as admin_url:
        database = create_database(admin_url, SCHEMA_2026_03)
        try:
            seed(database)
            with run_exporter(database.monitor_url) as exporter:
                result = soak(
                    exporter,
                    database,
                    duration=args.duration,
                    interval=args.interval,
                    sample_every=args.sample_every,
                    kill_every=args.kill_every,
                    progress=lambda s: print(asdict(s), flush=True),
                )
        finally:
            drop_database(database)
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(asdict(result.samples[0])))
            writer.writeheader()
            writer.writerows(asdict(s) for s in result.samples)
    print()
    print(f"command: {' '.join(sys.argv)}")
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(summary(result, args.warmup))
    return 0 if result.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Where one scrape's time goes: a collection, its exposition, and the HTTP around them.

    .venv/bin/python bench/scrape_profile.py --db bench_n1_202610 [--calls 300] [--top 25]

In one process, on a generated benchmark database (bench/generate.py) and with
``cache_seconds = 0`` (every scrape a collection), the exporter's own objects
(``exporter.app.build_app``) are driven and timed, median of ``--calls`` each:

- ``collect``: ``SnapshotCache.get()``, one collection (the pipeline of all the
  statements, the rows into a Snapshot, the model's derived state);
- ``families``: the metric families built from that collection;
- ``encode``: the text exposition of those families (client_python's
  ``generate_latest``, as ``/metrics`` writes it);
- ``body``: ``ExpositionCache.body()``, i.e. all three as /metrics does them;
- ``floor-N``: ``run_statements()`` back to back on one open connection, and the
  same N statements in one pipeline (what ``collect`` sends, without the rows);
- over HTTP on 127.0.0.1: ``GET /metrics`` and ``GET /healthz``, on a new
  connection per request and on one kept-alive connection (as Prometheus
  scrapes).

Then cProfile of ``--calls`` ``body()`` calls, and separately of the HTTP
request threads during ``--calls`` ``GET /metrics`` (the handler thread's own
work: parsing, routing, the body and writing it; the accept loop and the thread
start are only in the wall-clock figures), each printed by own time and grouped
by package. Results also go to ``--out`` (JSON).

It is a script, not a test: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import json
import os
import pstats
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster
import run

from exporter.app import build_app
from exporter.settings import FEBRUARY_CHARTERS
from exporter.startup import load_settings

BENCH = Path(__file__).resolve().parent


def median_ms(fn: Callable[[], object], calls: int) -> float:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def http_get(port: int, path: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"GET {path}: {response.status}")


class KeptAlive:
    """GET on one reused connection, as Prometheus scrapes (reconnects if closed)."""

    def __init__(self, port: int) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(self, path: str) -> None:
        self._conn.request("GET", path)
        response = self._conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status}")


def by_package(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own time per package (exporter.<module>, psycopg, prometheus_client, ...)."""
    totals: dict[str, float] = defaultdict(float)
    for (filename, _line, _func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        path = filename.replace("\\", "/")
        if "/exporter/" in path and "site-packages" not in path:
            module = path.rsplit("/exporter/", 1)[1].removesuffix(".py")
            key = "exporter." + module.replace("/", ".")  # exporter/model/views.py too
        elif "site-packages/" in path:
            key = path.split("site-packages/", 1)[1].split("/", 1)[0]
        elif path.startswith("~") or path.startswith("<"):
            key = "builtins (C)"
        else:
            key = "stdlib " + Path(path).stem
        totals[key] += tt
    return sorted(totals.items(), key=lambda kv: -kv[1])


def report_profile(profile: cProfile.Profile, calls: int, top: int, title: str) -> dict[str, Any]:
    stats = pstats.Stats(profile)
    total = sum(v[2] for v in stats.stats.values()) / calls * 1000  # type: ignore[attr-defined]
    print(f"\n=== {title}: {total:.2f} ms profiled per call (cProfile inflates)")
    packages = by_package(stats)
    for name, seconds in packages[:15]:
        print(f"  {seconds / calls * 1000:7.3f} ms  {name}")
    print(f"--- top {top} functions by own time")
    stats.sort_stats("tottime").print_stats(top)
    print(f"--- top {top} by cumulative time")
    stats.sort_stats("cumulative").print_stats(top)
    return {
        "profiled_ms_per_call": total,
        "by_package_ms": {name: s / calls * 1000 for name, s in packages[:25]},
    }


def main() -> None:  # noqa: PLR0915
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--db", default="bench_n1_202610")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", default=str(BENCH / "scrape_profile.json"))
    args = parser.parse_args()
    cluster.ensure_running()
    os.environ.update(
        {
            "GOVERNANCE_EXPORTER_DATABASE_URL": cluster.monitor_url(args.db),
            "GOVERNANCE_EXPORTER_LISTEN_ADDRESS": "127.0.0.1:0",
            "GOVERNANCE_EXPORTER_CACHE_SECONDS": "0",
            "GOVERNANCE_EXPORTER_EXPECTED_CHARTERS": ",".join(FEBRUARY_CHARTERS),
        }
    )
    app = build_app(load_settings({}))
    threading.Thread(target=app.serve_forever, daemon=True).start()
    port = app.server.server_address[1]
    exposition = app.exposition
    families_of = exposition._families
    from prometheus_client.exposition import generate_latest  # noqa: PLC0415

    from exporter.exposition import FixedFamilies  # noqa: PLC0415

    schema = run.schema_of(args.db)
    batches = run.floor_batches(schema)
    out: dict[str, Any] = {"db": args.db, "calls": args.calls, "floor_n": len(batches["each"])}
    try:
        for _ in range(30):  # warm: pool, prepared statements, imports
            exposition.body("", "")
            http_get(port, "/metrics")
        result = app.snapshots.get()
        families = list(families_of(result))
        samples = sum(len(f.samples) for f in families)
        out["samples"] = samples
        out["exposition_bytes"] = len(generate_latest(FixedFamilies(families)))
        with psycopg.connect(run.floor_url(args.db), autocommit=True) as conn:

            def pipelined() -> None:
                params = run.floor_params()
                with conn.pipeline():
                    cursors = [conn.execute(s, params) for s in batches["each"]]
                for cur in cursors:
                    cur.fetchall()

            kept_alive = KeptAlive(port)
            rounds: dict[str, list[float]] = defaultdict(list)
            steps: dict[str, Callable[[], object]] = {
                "collect": app.snapshots.get,
                "families": lambda: list(families_of(result)),
                "encode": lambda: generate_latest(FixedFamilies(families)),
                "body": lambda: exposition.body("", ""),
                "floor_each": lambda: run.run_batch(conn, batches["each"]),
                "floor_pipelined": pipelined,
                "http_metrics": lambda: http_get(port, "/metrics"),
                "http_healthz": lambda: http_get(port, "/healthz"),
                "http_metrics_kept_alive": lambda: kept_alive.get("/metrics"),
                "http_healthz_kept_alive": lambda: kept_alive.get("/healthz"),
            }
            # Alternating rounds, as run.py does, so that outside load hits all alike.
            per_round = max(1, args.calls // 6)
            for _ in range(6):
                for name, fn in steps.items():
                    rounds[name].append(median_ms(fn, per_round))
        out["median_ms"] = {name: statistics.median(v) for name, v in rounds.items()}
        print(
            f"{args.db}: {samples} samples, {out['exposition_bytes']} bytes, floor-{out['floor_n']}"
        )
        for name, value in out["median_ms"].items():
            print(f"  {name:16s} {value:6.2f} ms")

        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.calls):
            exposition.body("", "")
        profile.disable()
        out["profile_body"] = report_profile(
            profile, args.calls, args.top, "in-process: one collection + exposition (body())"
        )

        http_profile = cProfile.Profile()
        original = app.server._serve  # one connection's thread: its requests, in turn

        def profiled(connection: Any, client_address: Any) -> None:
            http_profile.enable()  # one request at a time: one profile object is safe
            try:
                original(connection, client_address)
            finally:
                http_profile.disable()

        app.server._serve = profiled  # type: ignore[method-assign]
        for _ in range(args.calls):
            http_get(port, "/metrics")
        app.server._serve = original  # type: ignore[method-assign]
        out["profile_http_thread"] = report_profile(
            http_profile, args.calls, args.top, "HTTP request thread of GET /metrics"
        )
    finally:
        app.server.shutdown()
        app.close()
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

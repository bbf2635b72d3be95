"""Encoding one real collection: exporter.encoding against client_python's encoders.

    .venv/bin/python bench/encode_profile.py [--number 200] [--repeat 15] [--scenario healthy]

Starts a throwaway PostgreSQL from local binaries (as tests/harness.py does),
seeds one node (``healthy``: four hourly charters over 30 hours; ``incident``:
the 2026-02-15 outage) with the memory files of the four February charters,
builds the app's families of one collection (``build_app``, cache off) and
times, with ``timeit``, each encoder over those same families: client_python's
text ``generate_latest`` and OpenMetrics ``generate_latest`` (underscores, and
allow-utf-8 as Prometheus 3 asks), and this project's ``encoding`` for each.
Every pair is checked byte for byte first. Prints the best and the median of
``--repeat`` rounds, per encoding, in microseconds.

It is a script, not a test: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import tempfile
import timeit
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from harness import create_database, local_postgres  # noqa: E402
from prometheus_client import generate_latest  # noqa: E402
from prometheus_client.metrics_core import Metric  # noqa: E402
from prometheus_client.openmetrics import exposition as openmetrics  # noqa: E402

from exporter.app import build_app  # noqa: E402
from exporter.demo import scenario  # noqa: E402
from exporter.encoding import (  # noqa: E402
    ALLOW_UTF8,
    FixedFamilies,
    encode_openmetrics,
    encode_text,
)
from exporter.settings import FEBRUARY_CHARTERS, Settings  # noqa: E402
from exporter.snapshot import SCHEMA_2026_03  # noqa: E402

HEARTBEAT = "run_at: {now}\ndecision: no-op\nno_op_reason: wip_full\n"


def families_of_one_collection(url: str, memory: Path) -> list[Metric]:
    settings = Settings(
        database_url=url,
        listen_address="127.0.0.1:0",
        cache_seconds=0,
        memory_dir=memory,
        expected_charters=FEBRUARY_CHARTERS,
    )
    app = build_app(settings)
    try:
        result = app.snapshots.get()
        return list(app.exposition._families(result))
    finally:
        app.close()


def encoders(families: Sequence[Metric]) -> dict[str, Callable[[], bytes]]:
    fixed = FixedFamilies(families)
    return {
        "text client_python": lambda: generate_latest(fixed),
        "text encoding": lambda: encode_text(families),
        "openmetrics client_python": lambda: openmetrics.generate_latest(fixed),
        "openmetrics encoding": lambda: encode_openmetrics(families),
        "openmetrics utf-8 client_python": lambda: openmetrics.generate_latest(
            fixed, escaping=ALLOW_UTF8
        ),
        "openmetrics utf-8 encoding": lambda: encode_openmetrics(families, escaping=ALLOW_UTF8),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200, help="encodings per round")
    parser.add_argument("--repeat", type=int, default=15, help="rounds")
    parser.add_argument("--scenario", choices=["healthy", "incident"], default="healthy")
    parser.add_argument("--save", type=Path, help="also pickle the families to this file")
    args = parser.parse_args()
    now = datetime.now(UTC)
    with local_postgres() as server, tempfile.TemporaryDirectory() as tmp:
        if server is None:
            print("no local PostgreSQL binaries", file=sys.stderr)
            return 1
        database = create_database(server.admin_url, SCHEMA_2026_03)
        with database.connect() as conn:
            if args.scenario == "healthy":
                scenario.seed_governance(conn, SCHEMA_2026_03, now, hours=30)
            else:
                scenario.seed_incident(conn, SCHEMA_2026_03, now)
        memory = Path(tmp)
        for charter in FEBRUARY_CHARTERS:
            (memory / charter.upper()).mkdir()
            beat = HEARTBEAT.format(now=now.strftime("%Y-%m-%dT%H:%MZ"))
            (memory / charter.upper() / "heartbeat.md").write_text(beat)
        families = families_of_one_collection(database.monitor_url, memory)

    if args.save is not None:  # for profiling the encoders without a database
        args.save.write_bytes(pickle.dumps(families))
    timed = encoders(families)
    names = list(timed)
    for client, ours in zip(names[::2], names[1::2], strict=True):
        if timed[client]() != timed[ours]():
            print(f"{ours} differs from {client}", file=sys.stderr)
            return 1
    samples = sum(len(f.samples) for f in families)
    size = len(timed["text client_python"]())
    print(f"{args.scenario}: {len(families)} families, {samples} samples, {size} bytes of text")
    print(f"  {'µs per encoding':34s} {'best':>8s} {'median':>8s}")
    best: dict[str, float] = {}
    for name, fn in timed.items():
        rounds = timeit.repeat(fn, number=args.number, repeat=args.repeat)
        per_call = [r / args.number * 1e6 for r in rounds]
        best[name] = min(per_call)
        print(f"  {name:34s} {best[name]:8.1f} {statistics.median(per_call):8.1f}")
    for client, ours in zip(names[::2], names[1::2], strict=True):
        print(f"  {ours}: {best[client] / best[ours]:.1f}x faster (best of rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Encoding one real collection: exporter.encoding against client_python's encoders.

    .venv/bin/python bench/encode_profile.py [--number 200] [--repeat 15] [--scenario healthy]

Starts a throwaway PostgreSQL from local binaries (as tests/harness.py does),
seeds one node (``healthy``: four hourly charters over 30 hours; ``incident``:
the 2026-02-15 outage) with the memory files of the four February charters,
builds the app's families of one collection (``build_app``, cache off) and
times, with ``timeit`` on this thread's CPU clock, each encoder over those same
families: client_python's text ``generate_latest`` and OpenMetrics
``generate_latest`` (underscores, and allow-utf-8 as Prometheus 3 asks), and
this project's ``encoding`` for each, with its ``Layouts`` kept (as
``ExpositionCache`` keeps it across collections) and new (a first collection).
Every one is checked byte for byte first. Prints the best and the median of
``--repeat`` alternating rounds, per encoding, in microseconds.

It is a script, not a test: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import tempfile
import time
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
    Layouts,
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
    """Pairs: client_python's, then this project's with the ``Layouts`` kept (as
    ``ExpositionCache`` keeps one), then this project's from a new ``Layouts``
    (the first collection's cost)."""
    fixed = FixedFamilies(families)
    kept = Layouts()
    return {
        "text client_python": lambda: generate_latest(fixed),
        "text encoding": lambda: encode_text(families, kept),
        "text encoding, first": lambda: encode_text(families),
        "openmetrics client_python": lambda: openmetrics.generate_latest(fixed),
        "openmetrics encoding": lambda: encode_openmetrics(families, kept),
        "openmetrics encoding, first": lambda: encode_openmetrics(families),
        "openmetrics utf-8 client_python": lambda: openmetrics.generate_latest(
            fixed, escaping=ALLOW_UTF8
        ),
        "openmetrics utf-8 encoding": lambda: encode_openmetrics(
            families, kept, escaping=ALLOW_UTF8
        ),
        "openmetrics utf-8 encoding, first": lambda: encode_openmetrics(
            families, escaping=ALLOW_UTF8
        ),
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
    for client in names[::3]:
        for ours in names[names.index(client) + 1 : names.index(client) + 3]:
            if timed[client]() != timed[ours]():
                print(f"{ours} differs from {client}", file=sys.stderr)
                return 1
    samples = sum(len(f.samples) for f in families)
    size = len(timed["text client_python"]())
    print(f"{args.scenario}: {len(families)} families, {samples} samples, {size} bytes of text")
    print(f"  {'CPU µs per encoding':36s} {'best':>8s} {'median':>8s}")
    rounds: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(args.repeat):  # the encoders alternate, so that outside load hits all alike
        for name, fn in timed.items():
            # This thread's CPU time: the machine's cores may be shared.
            spent = timeit.timeit(fn, number=args.number, timer=time.thread_time)
            rounds[name].append(spent / args.number * 1e6)
    for name, per_call in rounds.items():
        print(f"  {name:36s} {min(per_call):8.1f} {statistics.median(per_call):8.1f}")
    for client in names[::3]:
        ours = names[names.index(client) + 1]
        ratio = statistics.median(rounds[ours]) / statistics.median(rounds[client])
        print(f"  {ours}: {ratio:.0%} of client_python's time (medians)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Database work of one collection, statement by statement, from each statement's own plan.

    .venv/bin/python bench/plans.py --dbs bench_n1_202610,bench_n1_202610_a10 [--indexes off]

For each database (made by bench/generate.py), every statement of one collection
on that database's schema (``run.collection_statements``: exporter.queries' and
any extra module's, e.g. the attribution ledger's) is run as the monitoring role
with ``EXPLAIN (ANALYZE, BUFFERS)`` and the parameters the exporter passes, in
one read-only transaction, as a collection runs them. The figure per statement
is the shared buffers its execution touched (hit + read, planning left out),
from the second of two runs (the first warms the cache). The columns are the
databases in the order given, then each one's ratio to the first: compare a node
with its busier (``--activity``) or bigger (``--tenants-k``) twin.

``--indexes off`` drops sql/optional-indexes.sql's indexes first (the node's own
indexes only), ``on`` builds them, ``keep`` (default) leaves the database as it is.
``--plans`` prints the plan of each statement of the last database.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster
import run

from exporter import queries


def _buffers(node: dict[str, Any]) -> int:
    return int(node.get("Shared Hit Blocks", 0)) + int(node.get("Shared Read Blocks", 0))


def statement_buffers(db: str, now: datetime | None, show_plans: bool = False) -> dict[str, int]:
    """Shared buffers of each statement of one collection on ``db`` (execution only)."""
    schema = run.schema_of(db)
    statements = run.collection_statements(schema)
    params = run.floor_params(now)
    out: dict[str, int] = {}
    with psycopg.connect(run.floor_url(db), autocommit=True) as conn:
        for attempt in range(2):
            conn.execute(queries.BEGIN_READ_ONLY)
            for name, statement in statements.items():
                explained = conn.execute(
                    ("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement).encode(), params
                ).fetchone()
                assert explained is not None
                plan = explained[0][0]
                out[name] = _buffers(plan["Plan"])
                if show_plans and attempt == 1:
                    text = conn.execute(
                        ("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement).encode(), params
                    ).fetchall()
                    print(f"--- {name}\n" + "\n".join(row[0] for row in text))
            conn.execute(queries.COMMIT)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--dbs", required=True, help="comma-separated databases")
    parser.add_argument("--indexes", choices=("keep", "off", "on"), default="keep")
    parser.add_argument("--now", help="ISO timestamp the collection reads at (default: now)")
    parser.add_argument("--plans", action="store_true", help="print the plans of the last db")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    cluster.ensure_running()
    now = datetime.fromisoformat(args.now) if args.now else None
    dbs = args.dbs.split(",")
    figures: dict[str, dict[str, int]] = {}
    for db in dbs:
        if args.indexes != "keep":
            run.set_optional_indexes(db, args.indexes == "on")
        figures[db] = statement_buffers(db, now, show_plans=args.plans and db == dbs[-1])
    names = list(dict.fromkeys(name for per_db in figures.values() for name in per_db))
    header = ["statement", *dbs, *(f"/{dbs[0]}" for _ in dbs[1:])]
    print(" | ".join(header))
    for name in [*names, "total"]:
        values = [
            sum(figures[db].values()) if name == "total" else figures[db].get(name, 0) for db in dbs
        ]
        base = values[0]
        ratios = [f"{v / base:.2f}" if base else "-" for v in values[1:]]
        print(" | ".join([name, *(str(v) for v in values), *ratios]))
    if args.json:
        Path(args.json).write_text(json.dumps({"indexes": args.indexes, **figures}, indent=1))


if __name__ == "__main__":
    main()

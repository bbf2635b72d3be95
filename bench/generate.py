# ruff: noqa: RUF002
"""Fill a Cogni database fast, with set-based SQL, for the benchmark.

    python bench/generate.py --tenants-k 5 [--schema 2026-03] [--incident-days 3] [--activity 10]
                             [--db NAME]

What it writes (all timestamps relative to ``--now``, default: now):
- the governance tenant (``cogni_system``): four hourly charters, ``--days`` (30)
  days of runs, one charge per successful run; on the graph_runs schemas also its
  PR reviews, ``--reviews-per-day`` (48) runs without a schedule (``run_kind``
  ``system_webhook``, requested by the system principal, ``schedule_id`` NULL; 1
  in 10 fails), each success charged with its ``run_id``, as
  ``exporter.demo.scenario.add_unscheduled_run`` writes one; and on 2026-10 two
  ``ingestion_cursors`` rows;
- ``--tenants-k`` × 1,000 other tenants, each with two hourly schedules, their
  runs over the same days (1 in 20 fails) and ``--charges-per-tenant`` (3,400)
  charges spread over the days. At 5 (5,000 tenants) that is ~7.2 M runs and
  17 M charges.
``--activity X`` makes the governance tenant X times as busy: its daily run volume
(charter runs and PR reviews, 144 a day by default) times X, all of the growth in
PR reviews, since the charters stay hourly (at 10: 1,344 reviews a day), each
success charged; database name suffixed ``_a<X>``. On ``--schema 2026-08-full`` (the
node's full schema, the attribution ledger's tables too) each PR review also leaves
one ``ingestion_receipts`` row.
Rows are inserted in time order across tenants, as a live system writes them,
so a tenant's rows are spread over the heap, not clustered.

Speed: the two big tables are loaded with their indexes dropped and foreign-key
triggers off (``session_replication_role = replica``), then the very same
indexes and constraints are rebuilt from their saved definitions, then
``VACUUM ANALYZE``.

``--incident-days D`` makes the incident variant (database name suffixed
``_incident<D>d``): the governance runs of the last D days were all rejected with
``insufficient_credits``, nothing was charged for them and the balance is 0 (the
2026-02-15 outage, made long). "Last success" is costliest exactly then. The
failed runs are written in time order with everyone else's, as they would be.
The PR reviews of those days were rejected the same way. Everything else is the
same data as the healthy variant.

Scheduled runs are written as today's scheduler writes them (``run_kind``
``system_scheduled``, ``trigger_source`` ``temporal_schedule``, ``requested_by``
the schedule's owner), so the (requested_by, started_at) index of 2026-10 holds
every tenant's runs, as in production.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster

from exporter.demo import scenario
from exporter.snapshot import SCHEMA_2026_08, SCHEMA_2026_10

SYSTEM_USER_ID = scenario.SYSTEM_USER_ID
SYSTEM_ACCOUNT_ID = scenario.SYSTEM_ACCOUNT_ID
HEALTHY_BALANCE = 500_000_000
CREDITS_PER_RUN = 1_000_000
REVIEW_CREDITS = 200_000


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def default_db(tenants_k: int, schema: str, incident_days: int = 0, activity: int = 1) -> str:
    suffix = f"_incident{incident_days}d" if incident_days else ""
    busier = f"_a{activity}" if activity != 1 else ""
    return f"bench_n{tenants_k}_{schema.replace('-', '')}{busier}{suffix}"


def reviews_per_day(base_reviews: int, activity: int) -> int:
    """PR reviews a day that make the governance tenant's daily run volume (its
    charters' runs and its reviews) ``activity`` times the base one: the charters
    stay hourly, so a busier node is one with more work without a schedule."""
    charter_runs = 24 * len(scenario.CHARTER_CRONS)
    return activity * (charter_runs + base_reviews) - charter_runs


def runs_table(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT to_regclass('graph_runs') IS NOT NULL").fetchone()
    return "graph_runs" if row and row[0] else "schedule_runs"


def _drop_indexes(conn: psycopg.Connection[Any], table: str) -> list[str]:
    """Drop the table's indexes and primary/unique constraints; return how to rebuild."""
    rebuild: list[str] = []
    # Foreign keys of other tables that lean on this one's keys (on 2026-08-full,
    # llm_charge_details -> charge_receipts): dropped first, added back last.
    referencing = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE confrelid = %s::regclass AND contype = 'f'",
        (table,),
    ).fetchall()
    for other, name, _ in referencing:
        conn.execute(f'ALTER TABLE {other} DROP CONSTRAINT "{name}"')
    constraints = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype IN ('p', 'u')",
        (table,),
    ).fetchall()
    constraint_names = {name for name, _ in constraints}
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", (table,)
    ).fetchall()
    for name, definition in indexes:
        if name not in constraint_names:
            rebuild.append(definition)
            conn.execute(f'DROP INDEX "{name}"')
    for name, definition in constraints:
        rebuild.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    rebuild += [
        f'ALTER TABLE {other} ADD CONSTRAINT "{name}" {definition}'
        for other, name, definition in referencing
    ]
    return rebuild


def generate(
    name: str, schema: str, tenants_k: int, now: datetime, args: argparse.Namespace
) -> None:
    started = time.monotonic()
    cluster.ensure_running()
    log(f"creating {name} ({schema}, {tenants_k} x 1,000 other tenants, now = {now.isoformat()})")
    cluster.create_database(name, schema)
    hours = args.days * 24
    with cluster.connect(name) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET work_mem = '256MB'")
        conn.execute("SET maintenance_work_mem = '2GB'")
        balance = 0 if args.incident_days else HEALTHY_BALANCE
        tenant = scenario.create_tenant(conn, balance_credits=balance)
        for charter in scenario.CHARTER_CRONS:
            scenario.add_schedule(conn, tenant, charter, next_run_at=now)
        tenants = tenants_k * 1000
        reviews = reviews_per_day(args.reviews_per_day, args.activity)
        params = {
            "tenants": tenants,
            "now": now,
            "hours": hours,
            "days": args.days,
            "per_tenant": args.charges_per_tenant,
            "sysuser": SYSTEM_USER_ID,
            "sysaccount": SYSTEM_ACCOUNT_ID,
            "credits": CREDITS_PER_RUN,
            "incident_hours": args.incident_days * 24,
            "reviews_per_day": reviews,
            "reviews": reviews * args.days,
            "review_credits": REVIEW_CREDITS,
        }
        log("tenants, grants, keys, schedules")
        conn.execute(
            "INSERT INTO users (id)"
            " SELECT 'bench-user-' || t FROM generate_series(1, %(tenants)s) t",
            params,
        )
        conn.execute(
            "INSERT INTO billing_accounts (id, owner_user_id, slug, balance_credits)"
            " SELECT 'bench-account-' || t, 'bench-user-' || t, 'bench-tenant-' || t, 10000000000"
            " FROM generate_series(1, %(tenants)s) t",
            params,
        )
        conn.execute(
            "INSERT INTO execution_grants (user_id, billing_account_id, scopes)"
            " SELECT 'bench-user-' || t, 'bench-account-' || t, ARRAY['graph:execute']"
            " FROM generate_series(1, %(tenants)s) t",
            params,
        )
        conn.execute(
            "INSERT INTO virtual_keys (billing_account_id, label, is_default)"
            " SELECT 'bench-account-' || t, 'default', true FROM generate_series(1, %(tenants)s) t",
            params,
        )
        conn.execute(
            "INSERT INTO schedules (owner_user_id, execution_grant_id, graph_id, input, cron,"
            " timezone, enabled, next_run_at, temporal_schedule_id)"
            " SELECT g.user_id, g.id, 'sandbox:agent', jsonb_build_object('message', 'TASK' || k),"
            "        ((hashtext(g.user_id) & 65535) * 7 + k * 29) %% 60 || ' * * * *', 'UTC', true,"
            "        %(now)s, 'task:' || k"
            " FROM execution_grants g CROSS JOIN generate_series(1, 2) k"
            " WHERE g.user_id <> %(sysuser)s",
            params,
        )
        table = runs_table(conn)
        log(f"dropping indexes of {table} and charge_receipts for the bulk load")
        rebuild = _drop_indexes(conn, table) + _drop_indexes(conn, "charge_receipts")
        v03 = table == "graph_runs"
        extra_cols = (
            ", graph_id, run_kind, trigger_source, trigger_ref, requested_by, error_code"
            if v03
            else ""
        )
        extra_vals = (
            ", s.graph_id, 'system_scheduled', 'temporal_schedule', s.temporal_schedule_id,"
            " s.owner_user_id, x.code"
            if v03
            else ""
        )
        # PR reviews of the governance tenant: runs without a schedule, in the
        # same time-ordered insert as everyone's scheduled runs.
        reviews = (
            "   UNION ALL"
            "   SELECT NULL::uuid, 'webhook-' || i, NULL::timestamptz, t.at,"
            "          t.at + CASE WHEN f.failed THEN interval '2 seconds'"
            "                      ELSE interval '40 seconds' END,"
            "          x.status, 1, x.code, 'langgraph:pr-review', 'system_webhook',"
            "          'webhook:github', 'Cogni-DAO/node-template#' || i, %(sysuser)s, x.code"
            "   FROM generate_series(0, %(reviews)s - 1) i"
            "   CROSS JOIN LATERAL (SELECT %(now)s::timestamptz"
            "       - (i + 0.5) * (86400.0 / %(reviews_per_day)s) * interval '1 second' AS at) t"
            "   CROSS JOIN LATERAL (SELECT"
            "       CASE WHEN t.at > %(now)s::timestamptz"
            "                 - make_interval(hours => %(incident_hours)s)"
            "            THEN true ELSE i %% 10 = 3 END AS failed) f"
            "   CROSS JOIN LATERAL (SELECT"
            "       CASE WHEN f.failed THEN 'error' ELSE 'success' END AS status,"
            "       CASE WHEN f.failed AND t.at > %(now)s::timestamptz"
            "                 - make_interval(hours => %(incident_hours)s)"
            "            THEN 'insufficient_credits'"
            "            WHEN f.failed THEN 'internal' END AS code) x"
            if v03 and reviews
            else ""
        )
        log(f"runs: {len(scenario.CHARTER_CRONS) + 2 * tenants} schedules x {hours} hours")
        conn.execute(
            f"INSERT INTO {table} (schedule_id, run_id, scheduled_for, started_at, completed_at,"
            f" status, attempt_count, error_message{extra_cols})"
            " SELECT * FROM ("
            " SELECT s.id, 'run-' || left(s.id::text, 8) || '-' || h, t.slot, t.slot,"
            "        t.slot + CASE WHEN f.failed THEN interval '2 seconds'"
            "                      ELSE interval '3 minutes' END,"
            f"        x.status, 1, x.code{extra_vals}"
            " FROM schedules s"
            " CROSS JOIN generate_series(0, %(hours)s - 1) h"
            " CROSS JOIN LATERAL (SELECT"
            "     date_trunc('hour', %(now)s::timestamptz) - make_interval(hours => h)"
            "       + make_interval(mins => split_part(s.cron, ' ', 1)::int) AS slot) t"
            " CROSS JOIN LATERAL (SELECT"
            "     CASE WHEN s.owner_user_id = %(sysuser)s"
            "          THEN h < %(incident_hours)s"
            "          ELSE (h + (hashtext(s.id::text) & 65535)) %% 20 = 0 END AS failed) f"
            " CROSS JOIN LATERAL (SELECT"
            "     CASE WHEN f.failed THEN 'error' ELSE 'success' END AS status,"
            "     CASE WHEN f.failed THEN 'insufficient_credits' END AS code) x"
            " WHERE t.slot <= %(now)s"
            f"{reviews}"
            " ) r ORDER BY 4",
            params,
        )
        log("charges")
        conn.execute(
            "INSERT INTO charge_receipts (billing_account_id, virtual_key_id, run_id, attempt,"
            " charged_credits, provenance, charge_reason, source_system, source_reference,"
            " receipt_kind, created_at)"
            " SELECT c.account, c.key, c.run_id, 1, c.credits, 'response', 'llm_usage', 'litellm',"
            "        c.run_id || ':' || c.n, 'usage', c.at"
            " FROM ("
            "   SELECT k.billing_account_id AS account, k.id AS key,"
            "          'charge-' || k.billing_account_id || '-' || i AS run_id, i AS n,"
            "          1000 + i %% 5000 AS credits,"
            "          %(now)s::timestamptz"
            "            - (i * (%(days)s * 86400.0 / %(per_tenant)s)) * interval '1 second'"
            "            - ((hashtext(k.billing_account_id) & 65535) %% 60) * interval '1 second'"
            "            AS at"
            "   FROM virtual_keys k CROSS JOIN generate_series(0, %(per_tenant)s - 1) i"
            "   WHERE k.billing_account_id <> %(sysaccount)s"
            "   UNION ALL"
            "   SELECT %(sysaccount)s, k.id, r.run_id, 0, %(credits)s, r.completed_at"
            f"  FROM {table} r"
            "   JOIN schedules s ON s.id = r.schedule_id AND s.owner_user_id = %(sysuser)s"
            "   CROSS JOIN (SELECT id FROM virtual_keys"
            "               WHERE billing_account_id = %(sysaccount)s LIMIT 1) k"
            "   WHERE r.status = 'success'"
            + (
                "   UNION ALL"
                "   SELECT %(sysaccount)s, k.id, r.run_id, 0, %(review_credits)s, r.completed_at"
                f"  FROM {table} r"
                "   CROSS JOIN (SELECT id FROM virtual_keys"
                "               WHERE billing_account_id = %(sysaccount)s LIMIT 1) k"
                "   WHERE r.requested_by = %(sysuser)s AND r.schedule_id IS NULL"
                "     AND r.status = 'success'"
                if reviews
                else ""
            )
            + " ) c"
            " ORDER BY c.at",
            params,
        )
        if schema in (SCHEMA_2026_10, SCHEMA_2026_08):
            log("ingestion cursors")
            for hours_ago, stream in ((5, "pull_requests"), (5, "issues")):
                scenario.add_ingestion_cursor(conn, now - timedelta(hours=hours_ago), stream=stream)
        if has_table(conn, "ingestion_receipts") and reviews:
            log("ingestion receipts: one per PR review")
            add_review_receipts(conn, table, params)
        for statement in rebuild:
            log(f"rebuild: {statement[:110]}")
            conn.execute(statement)
        conn.execute("SET session_replication_role = origin")
        log("vacuum analyze")
        conn.execute("VACUUM ANALYZE")
        conn.execute(
            psycopg.sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                psycopg.sql.Identifier(name),
                psycopg.sql.Literal(
                    f"bench tenants_k={tenants_k} schema={schema} now={now.isoformat()}"
                    f" incident_days={args.incident_days}"
                ),
            )
        )
        report(conn, table)
    log(f"done in {time.monotonic() - started:.0f} s")


def has_table(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


# The node whose ledger the receipts belong to (scenario.add_ingestion_cursor's).
LEDGER_NODE_ID = "538b4da2-bd59-4c3a-928a-8a40b6627205"


def add_review_receipts(conn: psycopg.Connection[Any], table: str, params: dict[str, Any]) -> None:
    """The attribution ledger's trace of the PR reviews (schema 2026-08-full): one
    ingestion receipt per review, at the review's time, so that receipts grow with
    the node's activity as its runs do."""
    conn.execute(
        "INSERT INTO ingestion_receipts (node_id, receipt_id, source, event_type,"
        " platform_user_id, platform_login, artifact_url, payload_hash, producer,"
        " producer_version, event_time, retrieved_at, ingested_at)"
        " SELECT %(node)s, 'github:review:' || r.run_id, 'github', 'pr_review',"
        "        'gh-' || (hashtext(r.run_id) & 1023), 'contributor',"
        "        'https://github.com/' || r.trigger_ref, md5(r.run_id), 'ledger:ingest', '1',"
        "        r.started_at, r.started_at + interval '5 minutes',"
        "        r.started_at + interval '5 minutes'"
        f" FROM {table} r"
        " WHERE r.requested_by = %(sysuser)s AND r.schedule_id IS NULL"
        " ORDER BY r.started_at",
        {**params, "node": LEDGER_NODE_ID},
    )


def report(conn: psycopg.Connection[Any], table: str) -> None:
    rows = conn.execute(
        f"SELECT (SELECT count(*) FROM {table}), (SELECT count(*) FROM charge_receipts),"
        " pg_size_pretty(pg_database_size(current_database()))"
    ).fetchone()
    assert rows is not None
    log(f"{rows[0]:,} runs, {rows[1]:,} charges, database {rows[2]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--tenants-k", type=int, default=0, help="other tenants, in thousands")
    parser.add_argument("--schema", default="2026-10", choices=scenario.SCHEMAS)
    parser.add_argument("--db", help="database name (default bench_n<K>_<schema>)")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--charges-per-tenant", type=int, default=3400)
    parser.add_argument(
        "--reviews-per-day",
        type=int,
        default=48,
        help="the governance tenant's PR reviews (runs without a schedule; graph_runs schemas)",
    )
    parser.add_argument(
        "--activity",
        type=int,
        default=1,
        help="the governance tenant's daily run volume, times the default (more PR reviews, "
        "their charges and, on 2026-08-full, receipts); database name suffixed _a<X>",
    )
    parser.add_argument("--now", help="ISO timestamp the data ends at (default: now)")
    parser.add_argument(
        "--incident-days",
        type=int,
        default=0,
        help="the incident variant: the governance runs of the last DAYS all failed "
        "(insufficient_credits), nothing was charged, the balance is 0",
    )
    args = parser.parse_args()
    name = args.db or default_db(args.tenants_k, args.schema, args.incident_days, args.activity)
    now = datetime.fromisoformat(args.now) if args.now else datetime.now(UTC)
    generate(name, args.schema, args.tenants_k, now, args)


if __name__ == "__main__":
    main()

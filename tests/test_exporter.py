"""The exporter against a real PostgreSQL, through the least-privilege role.

Values are hand-computed from a fixed scenario at a fixed ``NOW`` (the clock is
injected), on both schema versions.
"""

from __future__ import annotations

import math
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from harness import REPO, Database, samples
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry
from psycopg import sql

from exporter import queries, source
from exporter.cache import SnapshotCache
from exporter.collector import GovernanceCollector
from exporter.connections import Watchdog, open_pool
from exporter.declaration import NodeDeclaration
from exporter.demo import scenario
from exporter.ledger_queries import READ_LAST_REVIEW
from exporter.settings import FEBRUARY_CHARTERS
from exporter.snapshot import (
    SCHEMA_2026_02,
    SCHEMA_2026_03,
    SCHEMA_2026_08,
    SCHEMA_2026_10,
    SchemaInfo,
)
from exporter.source import DatabaseUnavailable, Source

NOW = datetime(2026, 2, 15, 12, 7, tzinfo=UTC)
H = timedelta(hours=1)
ACCOUNT = {"account": "cogni_system"}
SCHEMAS = {
    SCHEMA_2026_02: SchemaInfo(SCHEMA_2026_02, "schedule_runs", False),
    SCHEMA_2026_03: SchemaInfo(SCHEMA_2026_03, "graph_runs", True),
}


def charter(name: str, **labels: str) -> dict[str, str]:
    return {"account": "cogni_system", "charter": name, **labels}


class Exporter:
    """The real collector over a real pool, with the clock fixed at NOW."""

    def __init__(self, url: str, **source_options: Any) -> None:
        self.pool = open_pool(url, max_size=2, timeout_seconds=3)
        options: dict[str, Any] = {
            "account": "cogni_system",
            "rls_user_id": scenario.SYSTEM_USER_ID,
            "window_seconds": 86400,
            "timeout_seconds": 3,
            "max_charters": 50,
        }
        options.update(source_options)
        self.source = Source(self.pool, **options)
        self.snapshots = SnapshotCache(self.source, clock=lambda: NOW)
        self.registry = CollectorRegistry()
        self.registry.register(
            GovernanceCollector(self.snapshots, NodeDeclaration(FEBRUARY_CHARTERS))
        )

    def scrape(self) -> dict[str, dict[frozenset[tuple[str, str]], float]]:
        return samples(generate_latest(self.registry).decode())

    def text(self) -> str:
        return generate_latest(self.registry).decode()

    def close(self) -> None:
        self.pool.close()


@pytest.fixture
def exporter_for() -> Iterator[Callable[..., Exporter]]:
    made: list[Exporter] = []

    def make(url: str, **options: Any) -> Exporter:
        made.append(Exporter(url, **options))
        return made[-1]

    yield make
    for exporter in made:
        exporter.close()


def value(
    scrape: dict[str, dict[frozenset[tuple[str, str]], float]], name: str, **labels: str
) -> float:
    series = scrape.get(name, {})
    key = frozenset(labels.items())
    assert key in series, f"{name}{labels} missing; have {sorted(map(dict, series))}"
    return series[key]


def write_scenario(db: Database) -> None:
    """The hand-computed scenario; expected values are in the tests below."""
    version = db.schema
    with db.connect() as conn:
        tenant = scenario.create_tenant(conn, balance_credits=30_000_000)
        govern = scenario.add_schedule(conn, tenant, "govern", next_run_at=NOW - 9 * 24 * H)
        community = scenario.add_schedule(
            conn,
            tenant,
            "community",
            temporal_schedule_id=None,
            message="COMMUNITY",
            timezone="America/New_York",
        )
        scenario.add_schedule(conn, tenant, "engineering", enabled=False)
        # sustainability: missing on purpose.
        for credits, when in [
            (1_000_000, NOW - H),
            (2_000_000, NOW - 23 * H),
            (500_000, NOW - 25 * H),  # before the window
            (7_000_000, NOW + H),  # in the future: never counted
        ]:
            scenario.add_charge(conn, tenant, credits, when, debit=False)
        run = scenario.add_run
        run(conn, version, govern, NOW - 2 * H, "success", completed_at=NOW - 2 * H + 180 * S)
        run(
            conn,
            version,
            govern,
            NOW - H,
            "error",
            error_message="insufficient_credits",
            error_code="insufficient_credits",
            completed_at=NOW - H + 2 * S,
        )
        run(conn, version, govern, NOW - 3 * H, "skipped", error_message="Grant validation failed")
        run(conn, version, govern, NOW - 4 * H, "skipped")  # a plain skip is no failure
        run(
            conn,
            version,
            govern,
            NOW - 5 * H,
            "error",
            error_message="boom: connection reset by peer\nat line 3",
        )
        # error_code only exists from 2026-03: there this is rate_limit, before it 'other'.
        run(
            conn,
            version,
            govern,
            NOW - 6 * H,
            "error",
            error_message="429 from upstream",
            error_code="rate_limit",
        )
        run(conn, version, govern, NOW - 30 * H, "success", completed_at=NOW - 30 * H)
        run(conn, version, govern, NOW + 2 * H, "pending")  # in the future: ignored
        run(
            conn,
            version,
            community,
            NOW - H - 5 * 60 * S,
            "error",
            error_message="Graph execution failed",
        )
        run(conn, version, community, NOW - 2 * H, "weird")
        scenario.seed_other_tenant(conn, version, 1, NOW)


S = timedelta(seconds=1)


def test_every_metric_against_hand_computed_values(
    database: Database, exporter_for: Callable[..., Exporter]
) -> None:
    write_scenario(database)
    scrape = exporter_for(database.monitor_url).scrape()
    t = NOW.timestamp()

    assert value(scrape, "governance_exporter_up") == 1
    assert (
        value(scrape, "governance_exporter_build_info", version="0.1.0", schema=database.schema)
        == 1
    )
    assert value(scrape, "governance_credit_balance_credits", **ACCOUNT) == 30_000_000
    assert value(scrape, "governance_credit_spent_credits", **ACCOUNT) == 3_000_000
    assert value(scrape, "governance_credit_charges", **ACCOUNT) == 2
    assert value(scrape, "governance_credit_last_charge_timestamp_seconds", **ACCOUNT) == t - 3600
    assert value(scrape, "governance_credit_window_seconds") == 86400
    assert value(
        scrape, "governance_credit_burn_rate_credits_per_second", **ACCOUNT
    ) == pytest.approx(3_000_000 / 86400)
    assert value(scrape, "governance_credit_runway_seconds", **ACCOUNT) == pytest.approx(864_000)

    for name, configured in [
        ("govern", 1),
        ("community", 1),
        ("engineering", 1),
        ("sustainability", 0),
    ]:
        assert value(scrape, "governance_charter_configured", **charter(name)) == configured
    assert charter("sustainability") not in [dict(k) for k in scrape["governance_schedule_enabled"]]
    assert value(scrape, "governance_schedule_enabled", **charter("govern")) == 1
    assert value(scrape, "governance_schedule_enabled", **charter("engineering")) == 0

    runs = {
        s: value(scrape, "governance_schedule_runs", **charter("govern", status=s))
        for s in ("pending", "running", "success", "error", "skipped", "cancelled", "unknown")
    }
    assert runs == {
        "pending": 0,
        "running": 0,
        "success": 1,
        "error": 3,
        "skipped": 2,
        "cancelled": 0,
        "unknown": 0,
    }
    assert value(scrape, "governance_schedule_runs", **charter("community", status="unknown")) == 1

    failed = {
        r: value(scrape, "governance_schedule_failed_runs", **charter("govern", reason=r))
        for r in (
            "insufficient_credits",
            "grant_validation_failed",
            "other",
            "rate_limit",
            "timeout",
        )
    }
    code_known = database.schema == SCHEMA_2026_03
    assert failed == {
        "insufficient_credits": 1,
        "grant_validation_failed": 1,
        "other": 1 if code_known else 2,
        "rate_limit": 1 if code_known else 0,
        "timeout": 0,
    }
    assert (
        value(
            scrape,
            "governance_schedule_failed_runs",
            **charter("community", reason="graph_execution_failed"),
        )
        == 1
    )

    assert (
        value(scrape, "governance_schedule_last_success_timestamp_seconds", **charter("govern"))
        == t - 7200 + 180
    )
    assert (
        value(scrape, "governance_schedule_last_failure_timestamp_seconds", **charter("govern"))
        == t - 3600 + 2
    )
    assert (
        value(scrape, "governance_schedule_last_success_timestamp_seconds", **charter("community"))
        == 0
    )  # never succeeded
    assert (
        value(
            scrape, "governance_schedule_last_failure_timestamp_seconds", **charter("engineering")
        )
        == 0
    )

    # 12:07 UTC: govern fires at 13:00, community (New York time) at 12:15 UTC.
    assert (
        value(scrape, "governance_schedule_next_run_timestamp_seconds", **charter("govern"))
        == datetime(2026, 2, 15, 13, tzinfo=UTC).timestamp()
    )
    assert value(scrape, "governance_schedule_next_run_seconds", **charter("govern")) == 53 * 60
    assert value(scrape, "governance_schedule_next_run_seconds", **charter("community")) == 8 * 60
    assert value(scrape, "governance_schedule_interval_seconds", **charter("govern")) == 3600
    assert charter("engineering") not in [
        dict(k) for k in scrape["governance_schedule_next_run_seconds"]
    ]  # paused
    assert (
        value(scrape, "governance_schedule_cached_next_run_timestamp_seconds", **charter("govern"))
        == (NOW - 9 * 24 * H).timestamp()
    )
    assert value(scrape, "governance_schedule_config_valid", **charter("govern")) == 1


def test_other_tenants_are_never_counted(
    database: Database, exporter_for: Callable[..., Exporter]
) -> None:
    with database.connect() as conn:
        tenant = scenario.create_tenant(conn, balance_credits=10)
        scenario.add_schedule(conn, tenant, "govern")
        for index in range(3):
            scenario.seed_other_tenant(conn, database.schema, index, NOW)
    scrape = exporter_for(database.monitor_url).scrape()
    assert value(scrape, "governance_credit_spent_credits", **ACCOUNT) == 0
    assert (
        value(
            scrape,
            "governance_schedule_failed_runs",
            **charter("govern", reason="insufficient_credits"),
        )
        == 0
    )
    assert {dict(k)["charter"] for k in scrape["governance_charter_configured"]} == set(
        FEBRUARY_CHARTERS
    )


def test_incident_replay_with_run_rows(
    database: Database, exporter_for: Callable[..., Exporter]
) -> None:
    """Balance 0, the last 6 hours of runs all insufficient_credits, no charges since."""
    with database.connect() as conn:
        scenario.seed_incident(conn, database.schema, NOW, failing_hours=6)
    scrape = exporter_for(database.monitor_url).scrape()
    assert value(scrape, "governance_exporter_up") == 1
    assert value(scrape, "governance_credit_balance_credits", **ACCOUNT) == 0
    assert value(scrape, "governance_credit_runway_seconds", **ACCOUNT) == 0
    for name in FEBRUARY_CHARTERS:
        assert (
            value(
                scrape,
                "governance_schedule_failed_runs",
                **charter(name, reason="insufficient_credits"),
            )
            == 6
        )
        last_success = value(
            scrape, "governance_schedule_last_success_timestamp_seconds", **charter(name)
        )
        assert NOW.timestamp() - last_success > 6 * 3600
    last_charge = value(scrape, "governance_credit_last_charge_timestamp_seconds", **ACCOUNT)
    assert NOW.timestamp() - last_charge > 6 * 3600


def test_incident_as_it_really_was_no_schedule_rows_at_all(
    make_database: Callable[[str], Database], exporter_for: Callable[..., Exporter]
) -> None:
    """2026-02-15: no schedule rows, no run rows, no charges, balance 0."""
    database = make_database(SCHEMA_2026_02)
    with database.connect() as conn:
        scenario.create_tenant(conn, balance_credits=0)
    scrape = exporter_for(database.monitor_url).scrape()
    assert value(scrape, "governance_exporter_up") == 1
    assert value(scrape, "governance_credit_runway_seconds", **ACCOUNT) == 0
    assert value(scrape, "governance_credit_spent_credits", **ACCOUNT) == 0
    assert value(scrape, "governance_credit_charges", **ACCOUNT) == 0
    for name in FEBRUARY_CHARTERS:
        assert value(scrape, "governance_charter_configured", **charter(name)) == 0


def test_no_spend_and_a_positive_balance_is_unbounded_runway(
    database: Database, exporter_for: Callable[..., Exporter]
) -> None:
    with database.connect() as conn:
        scenario.create_tenant(conn, balance_credits=5)
    scrape = exporter_for(database.monitor_url).scrape()
    assert math.isinf(value(scrape, "governance_credit_runway_seconds", **ACCOUNT))
    assert value(scrape, "governance_credit_last_charge_timestamp_seconds", **ACCOUNT) == 0


def test_a_window_without_charges_exports_zero_charges(
    database: Database, exporter_for: Callable[..., Exporter]
) -> None:
    """The LEFT JOIN's NULL-padded row is no charge (it was once exported as 1)."""
    with database.connect() as conn:
        tenant = scenario.create_tenant(conn, balance_credits=5)
        scenario.add_charge(conn, tenant, 1_000_000, NOW - 25 * H, debit=False)  # before it
    scrape = exporter_for(database.monitor_url).scrape()
    assert value(scrape, "governance_credit_charges", **ACCOUNT) == 0
    assert value(scrape, "governance_credit_spent_credits", **ACCOUNT) == 0
    assert (
        value(scrape, "governance_credit_last_charge_timestamp_seconds", **ACCOUNT)
        == (NOW - 25 * H).timestamp()
    )


def test_negative_and_huge_balances(
    database: Database, exporter_for: Callable[..., Exporter]
) -> None:
    with database.connect() as conn:
        tenant = scenario.create_tenant(conn, balance_credits=-42)
        scenario.add_charge(conn, tenant, 2**62, NOW - H, debit=False)
        scenario.add_charge(conn, tenant, 2**62, NOW - 2 * H, debit=False)  # sum > bigint
    exporter = exporter_for(database.monitor_url)
    scrape = exporter.scrape()
    assert value(scrape, "governance_credit_balance_credits", **ACCOUNT) == -42
    assert value(scrape, "governance_credit_runway_seconds", **ACCOUNT) == 0
    assert value(scrape, "governance_credit_spent_credits", **ACCOUNT) == float(2**63)


def test_sql_and_python_agree_on_what_a_failure_is(
    database: Database, exporter_for: Callable[..., Exporter]
) -> None:
    """Run counts (Python) and last success or failure (SQL) follow one rule: statuses
    as the source system writes them, and a blank message or code is no error."""
    version = database.schema
    with database.connect() as conn:
        tenant = scenario.create_tenant(conn, balance_credits=1)
        govern = scenario.add_schedule(conn, tenant, "govern")
        run = scenario.add_run
        run(conn, version, govern, NOW - 5 * H, "error", error_message="insufficient_credits")
        run(conn, version, govern, NOW - 4 * H, "success")
        run(conn, version, govern, NOW - 3 * H, "skipped", error_message=" \t\n", error_code=" ")
        run(conn, version, govern, NOW - 2 * H, "ERROR", error_message="internal")
        run(conn, version, govern, NOW - H, " success")
    scrape = exporter_for(database.monitor_url).scrape()
    failed = {
        dict(k)["reason"]: v
        for k, v in scrape["governance_schedule_failed_runs"].items()
        if v and dict(k)["charter"] == "govern"
    }
    assert failed == {"insufficient_credits": 1}
    for status, count in [("error", 1), ("success", 1), ("skipped", 1), ("unknown", 2)]:
        assert (
            value(scrape, "governance_schedule_runs", **charter("govern", status=status)) == count
        )
    assert (
        value(scrape, "governance_schedule_last_failure_timestamp_seconds", **charter("govern"))
        == (NOW - 5 * H).timestamp()
    )
    assert (
        value(scrape, "governance_schedule_last_success_timestamp_seconds", **charter("govern"))
        == (NOW - 4 * H).timestamp()
    )


def test_a_time_zone_that_is_a_directory_fails_only_its_charter(
    database: Database, exporter_for: Callable[..., Exporter]
) -> None:
    """ZoneInfo("America") raises IsADirectoryError; one such row once failed the scrape."""
    with database.connect() as conn:
        tenant = scenario.create_tenant(conn, balance_credits=1)
        scenario.add_schedule(conn, tenant, "govern", timezone="America")
        scenario.add_schedule(conn, tenant, "community")
    scrape = exporter_for(database.monitor_url).scrape()
    assert value(scrape, "governance_exporter_up") == 1
    assert value(scrape, "governance_schedule_config_valid", **charter("govern")) == 0
    assert value(scrape, "governance_schedule_config_valid", **charter("community")) == 1
    assert charter("govern") not in [
        dict(k) for k in scrape["governance_schedule_next_run_seconds"]
    ]


def _optional_indexes(runs_table: str, columns: str = "schedule_id, scheduled_for") -> list[str]:
    """The optional indexes of ``runs_table`` on ``columns``."""
    text = (REPO / "sql" / "optional-indexes.sql").read_text()
    return re.findall(
        rf"CREATE INDEX CONCURRENTLY IF NOT EXISTS \w+\s+ON {runs_table} \({columns}\)[^;]+", text
    )


def _plan_with_only_partial_indexes(
    database: Database, runs_table: str, statement: str, params: dict[str, Any]
) -> str:
    """EXPLAIN of ``statement`` with the runs table's non-partial secondary indexes
    dropped (in a transaction that is rolled back) and sequential scans off: which
    partial index the planner can use, not which one today's statistics favour."""
    with psycopg.connect(database.url) as conn:
        others = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s"
            " AND indexdef NOT LIKE '%% WHERE %%' AND indexname NOT LIKE '%%_pkey'",
            (runs_table,),
        ).fetchall()
        for (name,) in others:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        conn.execute("SET LOCAL enable_seqscan = off")
        explained = conn.execute(("EXPLAIN " + statement).encode(), params)
        plan = "\n".join(row[0] for row in explained)
        conn.rollback()
    return plan


def test_last_outcomes_can_use_the_optional_partial_indexes(database: Database) -> None:
    """The status predicates stay exact (no lower/btrim on status) so that the planner
    can prove they imply the partial indexes' predicates. To ask only that, not which
    index today's statistics favour, the other secondary indexes of the runs table
    are dropped in a transaction that is rolled back."""
    runs_table = SCHEMAS[database.schema].runs_table
    with database.connect() as conn:
        tenant = scenario.create_tenant(conn, balance_credits=1)
        scenario.add_schedule(conn, tenant, "govern")
        statements = _optional_indexes(runs_table)
        assert len(statements) == 2
        for statement in statements:
            conn.execute(statement.encode())
    last_outcomes = queries.run_statements(SCHEMAS[database.schema])[6]
    assert "last_failure_at" in last_outcomes
    plan = _plan_with_only_partial_indexes(
        database, runs_table, last_outcomes, {"account": "cogni_system", "now": NOW}
    )
    assert f"{runs_table}_last_success_idx" in plan, plan
    assert f"{runs_table}_last_failure_idx" in plan, plan


@pytest.mark.parametrize("schema", [SCHEMA_2026_03, SCHEMA_2026_10])
def test_unscheduled_outcomes_can_use_the_optional_partial_indexes(
    make_database: Callable[[str], Database], schema: str
) -> None:
    """The last success and failure of work without a schedule (PR reviews) are one
    descent each of the unscheduled indexes, not a walk through 30 days of the
    system principal's runs. Without them the planner, misled by the correlation of
    "requested by the owner" and "no schedule", reads every such run twice."""
    database = make_database(schema)
    with database.connect() as conn:
        tenant = scenario.create_tenant(conn, balance_credits=1)
        scenario.add_unscheduled_run(conn, tenant, NOW - timedelta(hours=1), "success")
        statements = _optional_indexes("graph_runs", "requested_by, started_at")
        assert len(statements) == 2
        for statement in statements:
            conn.execute(statement.encode())
    # The same statement on both schemas (graph_runs.requested_by since 2026-03).
    (unscheduled_outcomes,) = (s for s in queries.run_statements() if "k.run_kind" in s)
    params = {
        "account": "cogni_system",
        "now": NOW,
        "since": NOW - timedelta(days=1),
        "lookback": NOW - source.UNSCHEDULED_LOOKBACK,
    }
    plan = _plan_with_only_partial_indexes(database, "graph_runs", unscheduled_outcomes, params)
    assert "graph_runs_unscheduled_success_idx" in plan, plan
    assert "graph_runs_unscheduled_failure_idx" in plan, plan


def _explained_and_rows(
    database: Database, statement: str, params: dict[str, Any]
) -> tuple[str, list[tuple[Any, ...]]]:
    """``statement``'s plan as run (EXPLAIN ANALYZE, sequential scans off) and its rows."""
    with psycopg.connect(database.url) as conn:
        conn.execute("SET LOCAL enable_seqscan = off")  # the index plans, not a small table's
        explained = conn.execute(
            ("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + statement).encode(), params
        )
        plan = "\n".join(row[0] for row in explained)
        rows = conn.execute(statement.encode(), params).fetchall()
        conn.rollback()
    return plan, rows


def _busy_node(conn: psycopg.Connection[Any]) -> None:
    """A node shaped like the benchmark's, small: the system principal's charter runs
    and PR reviews among other tenants' scheduled runs, in time order, analysed. Its
    statistics mislead the planner as production's do: every run without a
    schedule is the system principal's, which the planner takes to be independent."""
    tenant = scenario.create_tenant(conn, balance_credits=1)
    scenario.add_schedule(conn, tenant, "govern")
    conn.execute("SET session_replication_role = replica")  # other tenants' schedules: no rows
    conn.execute(
        "INSERT INTO graph_runs (schedule_id, run_id, scheduled_for, started_at, completed_at,"
        " status, run_kind, requested_by)"
        " SELECT s.id, 'other-' || u || '-' || h, t.at, t.at, t.at + interval '1 minute',"
        "        'success', 'system_scheduled', 'user-' || u"
        " FROM generate_series(1, 200) u CROSS JOIN generate_series(0, 719) h"
        " CROSS JOIN LATERAL (SELECT %(now)s::timestamptz - h * interval '1 hour' AS at) t"
        " CROSS JOIN LATERAL (SELECT md5('s' || u)::uuid AS id) s"
        " UNION ALL"
        " SELECT s.id, 'gov-' || h, t.at, t.at, t.at + interval '3 minutes', 'success',"
        "        'system_scheduled', %(owner)s"
        " FROM schedules s CROSS JOIN generate_series(0, 719) h"
        " CROSS JOIN LATERAL (SELECT %(now)s::timestamptz - h * interval '1 hour' AS at) t"
        " WHERE s.owner_user_id = %(owner)s"
        " UNION ALL"
        " SELECT NULL, 'review-' || i, NULL, t.at, t.at + interval '40 seconds',"
        "        CASE WHEN i %% 10 = 3 THEN 'error' ELSE 'success' END, 'system_webhook', %(owner)s"
        " FROM generate_series(0, 1439) i"
        " CROSS JOIN LATERAL (SELECT %(now)s::timestamptz - (i + 0.5) * interval '30 minutes'"
        "                     AS at) t"
        " ORDER BY 4",
        {"now": NOW, "owner": scenario.SYSTEM_USER_ID},
    )
    conn.execute("SET session_replication_role = origin")
    conn.execute("ANALYZE graph_runs")


def test_unscheduled_outcomes_walk_the_nodes_own_index(
    make_database: Callable[[str], Database],
) -> None:
    """Without sql/optional-indexes.sql the last success and failure of PR reviews
    walk graph_runs_requested_by_started_at_idx backwards and stop at the first
    match: a few rows, not 30 days of the system principal's runs read into a sort."""
    database = make_database(SCHEMA_2026_10)
    with database.connect() as conn:
        _busy_node(conn)
    (unscheduled_outcomes,) = (s for s in queries.run_statements() if "k.run_kind" in s)
    params = {
        "account": "cogni_system",
        "now": NOW,
        "since": NOW - timedelta(days=1),
        "lookback": NOW - source.UNSCHEDULED_LOOKBACK,
    }
    plan, rows = _explained_and_rows(database, unscheduled_outcomes, params)
    walks = re.findall(
        r"Index Scan Backward using graph_runs_requested_by_started_at_idx on graph_runs \w+"
        r" \(actual rows=(\d+) loops=1\)",
        plan,
    )
    assert len(walks) == 2, plan  # the success walk and the failure walk, both run
    # A review every 30 minutes, every tenth failed, a charter run every hour: the
    # failure walk meets the owner's runs of the last five hours at most.
    assert all(int(found) <= 20 for found in walks), plan
    # The window's reviews counted (a day: 48, every tenth failed), each row with its
    # kind's latest success and failure.
    last_success = NOW - timedelta(minutes=15) + timedelta(seconds=40)
    last_failure = NOW - timedelta(minutes=15 + 3 * 30) + timedelta(seconds=40)
    assert sorted(rows) == [
        ("system_webhook", "error", None, None, 5, last_success, last_failure),
        ("system_webhook", "success", None, None, 43, last_success, last_failure),
    ]


def test_last_review_walks_the_nodes_own_index(
    make_database: Callable[[str], Database],
) -> None:
    """The ledger's latest PR review walks graph_runs_requested_by_started_at_idx
    backwards, for the owner and for the account's slug, and stops at the first
    review: not 30 days of the system principal's runs ANDed with
    graph_runs_run_kind_idx and sorted."""
    database = make_database(SCHEMA_2026_08)
    with database.connect() as conn:
        _busy_node(conn)
    params = {"account": "cogni_system", "now": NOW, "lookback": NOW - source.UNSCHEDULED_LOOKBACK}
    plan, rows = _explained_and_rows(database, READ_LAST_REVIEW, params)
    assert "graph_runs_run_kind_idx" not in plan, plan
    walks = re.findall(
        r"Index Scan Backward using graph_runs_requested_by_started_at_idx on graph_runs \w+"
        r" \(actual rows=([\d.]+) loops=2\)",
        plan,
    )
    # The owner's charter run of this hour, then its review of 15 minutes ago; the
    # slug has none.
    assert len(walks) == 1, plan
    assert float(walks[0]) <= 1.5, plan
    assert rows == [(NOW - timedelta(minutes=15),)]


WINDOW_PARAMS = {"account": "cogni_system", "now": NOW, "since": NOW - timedelta(days=1)}
SCHEMA_2026_10_INFO = SchemaInfo(SCHEMA_2026_10, "graph_runs", True, has_requested_by=True)
SCHEMA_2026_03_INFO = SchemaInfo(SCHEMA_2026_03, "graph_runs", True, has_requested_by=True)


def test_recent_runs_walk_the_owners_runs_to_the_tenth_without_a_schedule(
    make_database: Callable[[str], Database],
) -> None:
    """The newest runs without a schedule walk graph_runs_requested_by_started_at_idx
    backwards and stop at the tenth: not every such run of the owner read and
    sorted. The rows are those of the statement without the walk (2026-03's)."""
    database = make_database(SCHEMA_2026_10)
    with database.connect() as conn:
        _busy_node(conn)
    walked = queries.runs_statement(queries.READ_RECENT_RUNS, SCHEMA_2026_10_INFO)
    plain = queries.runs_statement(queries.READ_RECENT_RUNS, SCHEMA_2026_03_INFO)
    plan, rows = _explained_and_rows(database, walked.as_string(None), WINDOW_PARAMS)
    _, expected = _explained_and_rows(database, plain.as_string(None), WINDOW_PARAMS)
    walks = re.findall(
        r"Index Scan Backward using graph_runs_requested_by_started_at_idx on graph_runs \w+"
        r" \(actual rows=(\d+) loops=\d+\)",
        plan,
    )
    # Ten reviews and the five charter runs among them; the slug has no runs.
    assert walks, plan
    assert all(int(found) <= 20 for found in walks), plan
    assert len(rows) == queries.RECENT_RUNS_LIMIT
    assert rows == expected


def test_attributed_spend_meets_the_windows_runs_in_one_join(
    make_database: Callable[[str], Database],
) -> None:
    """The window's charges meet the account's runs of the window in one hash join,
    instead of one graph_runs_run_id_idx descent per charge; only a charge whose run
    is not among them (begun before the window, another tenant's) is looked up. The
    sums are those of the per-charge statement."""
    database = make_database(SCHEMA_2026_10)
    with database.connect() as conn:
        _busy_node(conn)
        tenant = scenario.system_tenant(conn)
        conn.execute(
            "INSERT INTO charge_receipts (billing_account_id, virtual_key_id, run_id, attempt,"
            " charged_credits, provenance, charge_reason, source_system, source_reference,"
            " receipt_kind, created_at)"
            " SELECT %(account)s, %(key)s, r.run_id, 1, 1000, 'response', 'llm_usage', 'litellm',"
            "        gen_random_uuid()::text, 'usage', r.completed_at"
            " FROM graph_runs r WHERE r.requested_by = %(owner)s AND r.started_at > %(after)s",
            {
                "account": tenant.account_id,
                "key": tenant.virtual_key_id,
                "owner": tenant.user_id,
                "after": NOW - timedelta(days=1, hours=2),
            },
        )
        # A review begun before the window and charged inside it; another tenant's run.
        scenario.add_charge(conn, tenant, 7, NOW - timedelta(hours=23), run_id="review-48")
        scenario.add_charge(conn, tenant, 11, NOW - timedelta(hours=1), run_id="other-1-0")
        conn.execute("ANALYZE charge_receipts")
    joined = queries.for_schema(SCHEMA_2026_10_INFO).attributed_spend
    per_charge = queries.runs_statement(queries.READ_ATTRIBUTED_SPEND, SCHEMA_2026_10_INFO)
    assert isinstance(joined, str)
    plan, rows = _explained_and_rows(database, joined, WINDOW_PARAMS)
    _, expected = _explained_and_rows(database, per_charge.as_string(None), WINDOW_PARAMS)
    assert re.search(r"(Hash|Merge) Cond: \(c\.run_id = ", plan), plan  # one join
    descents = re.findall(
        r"Index Scan using graph_runs_run_id_idx on graph_runs \w+"
        r" \(actual rows=\d+ loops=(\d+)\)",
        plan,
    )
    # The review begun before the window, the charter run begun with it, the other
    # tenant's run: three charges of 74 looked up.
    assert descents, plan
    assert sum(int(loops) for loops in descents) <= 3, plan
    assert sorted(rows, key=repr) == sorted(expected, key=repr)
    assert {row[0] for row in rows} == {"system_webhook", "system_scheduled", None}


OPTIONAL_INDEXES_BY_SCHEMA = {
    SCHEMA_2026_02: {"schedule_runs_last_success_idx", "schedule_runs_last_failure_idx"},
    SCHEMA_2026_03: {
        "graph_runs_last_success_idx",
        "graph_runs_last_failure_idx",
        "graph_runs_unscheduled_success_idx",
        "graph_runs_unscheduled_failure_idx",
    },
}
OPTIONAL_INDEXES_BY_SCHEMA[SCHEMA_2026_10] = OPTIONAL_INDEXES_BY_SCHEMA[SCHEMA_2026_03]


@pytest.mark.parametrize("schema", sorted(OPTIONAL_INDEXES_BY_SCHEMA))
def test_optional_indexes_script_runs_with_psql_as_documented(
    make_database: Callable[[str], Database], schema: str
) -> None:
    """``psql -f sql/optional-indexes.sql``, as the file and docs/performance.md say: on each
    schema it builds the indexes that schema can hold, and a second run changes nothing."""
    from exporter.demo.localpg import find_bindir  # noqa: PLC0415

    bindir = find_bindir()
    assert bindir is not None, "PostgreSQL client binaries (psql) are needed"
    database = make_database(schema)
    command = [
        str(bindir / "psql"),
        "--no-psqlrc",
        "-v",
        "ON_ERROR_STOP=1",
        "-f",
        str(REPO / "sql" / "optional-indexes.sql"),
        database.url,
    ]
    for _ in range(2):
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    with database.connect() as conn:
        built = {
            name
            for (name,) in conn.execute(
                "SELECT indexname FROM pg_indexes"
                " WHERE indexname ~ '_(last|unscheduled)_(success|failure)_idx$'"
            )
        }
    assert built == OPTIONAL_INDEXES_BY_SCHEMA[schema]


# --- failure is a value ----------------------------------------------------------------


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_one_watchdog_thread_cuts_an_overdue_collection_and_ends_when_idle(
    database: Database,
) -> None:
    """Deadlines are watched by one thread, not one per collection: a disarmed
    alarm never fires, an overdue one severs its connection, and with nothing armed
    the thread ends after its linger time."""

    def watchers() -> int:
        return sum(t.name == "collection-deadline" for t in threading.enumerate())

    watchdog = Watchdog(linger=0.3)
    before = watchers()
    with psycopg.connect(database.url) as conn:
        alarms = [watchdog.arm(conn, 60.0) for _ in range(5)]
        assert watchers() == before + 1
        for alarm in alarms:
            watchdog.disarm(alarm)
        overdue = watchdog.arm(conn, 0.05)
        assert _wait_for(lambda: overdue.fired)
        assert not any(alarm.fired for alarm in alarms)
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    assert _wait_for(lambda: watchers() == before)


def _assert_failed(scrape: dict[str, Any], reason: str) -> None:
    assert value(scrape, "governance_exporter_up") == 0
    assert value(scrape, "governance_exporter_collection_errors_total", reason=reason) == 1
    # nothing stale presented as current
    assert not any(
        name.startswith(("governance_credit", "governance_schedule", "governance_charter"))
        for name in scrape
    )


def test_forgotten_rls_user_is_an_error_not_an_empty_system(
    database: Database, exporter_for: Callable[..., Exporter]
) -> None:
    write_scenario(database)
    exporter = exporter_for(database.monitor_url, rls_user_id="someone-else")
    _assert_failed(exporter.scrape(), "account_not_visible")
    assert "row-level security" in str(exporter.snapshots.latest.error)  # type: ignore[union-attr]


def test_wrong_slug_is_an_error(database: Database, exporter_for: Callable[..., Exporter]) -> None:
    write_scenario(database)
    _assert_failed(
        exporter_for(database.monitor_url, account="cogni-system").scrape(), "account_not_visible"
    )


def test_neither_schema_is_said_clearly(
    pg_admin_url: str,
    make_database: Callable[[str], Database],
    exporter_for: Callable[..., Exporter],
) -> None:
    database = make_database(SCHEMA_2026_02)
    with database.connect() as conn:
        scenario.create_tenant(conn, balance_credits=1)
        conn.execute("DROP TABLE schedule_runs")
    exporter = exporter_for(database.url)
    scrape = exporter.scrape()
    _assert_failed(scrape, "schema_unknown")
    assert value(scrape, "governance_exporter_build_info", version="0.1.0", schema="unknown") == 1
    assert "neither schedule_runs" in str(exporter.snapshots.latest.error)  # type: ignore[union-attr]


def test_missing_column_is_a_query_failure(
    database: Database, exporter_for: Callable[..., Exporter]
) -> None:
    with database.connect() as conn:
        scenario.create_tenant(conn, balance_credits=1)
        conn.execute("ALTER TABLE schedules DROP COLUMN cron")
    _assert_failed(exporter_for(database.url).scrape(), "query_failed")


def test_statement_timeout_fires_on_a_locked_table(
    database: Database, exporter_for: Callable[..., Exporter]
) -> None:
    with database.connect() as conn:
        scenario.create_tenant(conn, balance_credits=1)
    exporter = exporter_for(database.monitor_url, timeout_seconds=0.5)
    with psycopg.connect(database.url) as locker:
        locker.execute("LOCK TABLE billing_accounts IN ACCESS EXCLUSIVE MODE")
        started = datetime.now(UTC)
        scrape = exporter.scrape()
        elapsed = (datetime.now(UTC) - started).total_seconds()
        locker.rollback()
    _assert_failed(scrape, "query_timeout")
    assert elapsed < 5
    assert value(exporter.scrape(), "governance_exporter_up") == 1  # and it recovers


# --- row-level security must survive reconnects ----------------------------------------


def test_rls_user_holds_on_connections_the_pool_opens_later(
    database: Database, exporter_for: Callable[..., Exporter]
) -> None:
    """A peer exporter set the RLS user once per session, lost it on reconnect and
    then reported zero spend and no failures with no error at all."""
    write_scenario(database)
    exporter = exporter_for(database.monitor_url)
    before = exporter.scrape()
    assert value(before, "governance_credit_spent_credits", **ACCOUNT) == 3_000_000
    with database.connect() as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'governance-exporter' AND datname = %s",
            (database.name,),
        ).fetchone()
    assert killed is not None
    assert killed[0] >= 1
    after = exporter.scrape()
    assert value(after, "governance_exporter_up") == 1
    assert value(after, "governance_credit_spent_credits", **ACCOUNT) == 3_000_000
    assert (
        value(
            after,
            "governance_schedule_failed_runs",
            **charter("govern", reason="insufficient_credits"),
        )
        == 1
    )


# --- the collector protocol --------------------------------------------------------


class CountingSource:
    def __init__(self, inner: Source, delay: threading.Event | None = None) -> None:
        self.inner = inner
        self.calls = 0
        self.delay = delay

    def read(self, now: datetime) -> Any:
        self.calls += 1
        if self.delay is not None:
            self.delay.wait(5)
        return self.inner.read(now)


def test_registering_runs_no_query(
    database: Database, exporter_for: Callable[..., Exporter]
) -> None:
    exporter = exporter_for(database.monitor_url)
    counting = CountingSource(exporter.source)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(
        GovernanceCollector(SnapshotCache(counting), NodeDeclaration(FEBRUARY_CHARTERS))
    )
    assert counting.calls == 0
    generate_latest(registry)
    assert counting.calls == 1


def test_concurrent_scrapes_share_one_collection(
    database: Database, exporter_for: Callable[..., Exporter]
) -> None:
    with database.connect() as conn:
        scenario.create_tenant(conn, balance_credits=1)
    exporter = exporter_for(database.monitor_url)
    release = threading.Event()
    counting = CountingSource(exporter.source, delay=release)
    snapshots = SnapshotCache(counting, clock=lambda: NOW)
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(snapshots.get())) for _ in range(20)]
    for thread in threads:
        thread.start()
    while counting.calls == 0:
        threading.Event().wait(0.01)
    threading.Event().wait(0.2)  # let the others queue behind the first
    release.set()
    for thread in threads:
        thread.join(10)
    assert counting.calls == 1
    assert len(results) == 20
    assert all(r is results[0] for r in results)
    assert results[0].ok


def test_schedule_cap_bounds_label_sets(
    database: Database, exporter_for: Callable[..., Exporter]
) -> None:
    with database.connect() as conn:
        tenant = scenario.create_tenant(conn, balance_credits=1)
        for index in range(5):
            scenario.add_schedule(conn, tenant, f"extra{index}")
    exporter = exporter_for(database.monitor_url, max_charters=3)
    scrape = exporter.scrape()
    configured = {
        dict(k)["charter"] for k, v in scrape["governance_charter_configured"].items() if v == 1
    }
    assert len(configured) == 3
    assert exporter.snapshots.latest.snapshot.schedules_truncated  # type: ignore[union-attr]


def test_schema_2026_02_and_03_detected(
    make_database: Callable[[str], Database], exporter_for: Callable[..., Exporter]
) -> None:
    for version in (SCHEMA_2026_02, SCHEMA_2026_03):
        database = make_database(version)
        with database.connect() as conn:
            scenario.create_tenant(conn, balance_credits=1)
        scrape = exporter_for(database.monitor_url).scrape()
        assert value(scrape, "governance_exporter_build_info", version="0.1.0", schema=version) == 1


def test_a_missing_table_is_reported_as_itself(
    database: Database, exporter_for: Callable[..., Exporter]
) -> None:
    with database.connect() as conn:
        scenario.create_tenant(conn, balance_credits=1)
    exporter = exporter_for(database.url)
    assert value(exporter.scrape(), "governance_exporter_up") == 1  # the schema is now guessed
    with database.connect() as conn:
        conn.execute("DROP TABLE charge_receipts")
    _assert_failed(exporter.scrape(), "query_failed")
    assert 'relation "charge_receipts" does not exist' in str(exporter.snapshots.latest.error)  # type: ignore[union-attr]


class FlakySource:
    """Fails its first read, then reads for real."""

    def __init__(self, inner: Source) -> None:
        self.inner = inner
        self.calls = 0

    def read(self, now: datetime) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise DatabaseUnavailable("down for the first read")
        return self.inner.read(now)


def test_cache_serves_successes_but_never_a_failure(
    database: Database, exporter_for: Callable[..., Exporter]
) -> None:
    with database.connect() as conn:
        scenario.create_tenant(conn, balance_credits=1)
    flaky = FlakySource(exporter_for(database.monitor_url).source)
    snapshots = SnapshotCache(flaky, cache_seconds=60, clock=lambda: NOW)
    assert not snapshots.get().ok
    assert snapshots.get().ok  # the failure was not cached: read again at once
    assert snapshots.get().ok
    assert flaky.calls == 2  # the success was

"""Ledger-era nodes (schema-2026-08-full.sql loaded as is), through ``check`` and /metrics.

Each shape of issue 21 is written the way the source project writes it (SOURCE-SYSTEM.md,
"A node since 2026-08"): a spawned, webhook-only node whose ingestion_cursors stay
empty; a small quiet node; an operator dispatching three nodes' collects; the collect
stopped; the webhook plane refusing deliveries; epochs waiting for approvers;
distributions, readable only with BYPASSRLS. The exporter runs as the least-privilege
role of sql/monitoring-role.sql (no BYPASSRLS), and as a BYPASSRLS role where the
shape is about what only such a role sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from harness import MONITOR_ROLE, REPO, Database, run_exporter, samples, url_with
from psycopg import sql

from exporter import ledger_queries
from exporter.demo import ledger, scenario
from exporter.snapshot import SCHEMA_2026_02, SCHEMA_2026_03, SCHEMA_2026_08, SCHEMA_2026_10

H = timedelta(hours=1)
D = timedelta(days=1)
BYPASS_ROLE = "governance_exporter_bypass"
BYPASS_PASSWORD = "bypass-pw-Lm4wQ9"
NODES = (
    "0b1c6a52-8d0e-4f53-9f7e-0f6f1d2c3a41",
    "6e2f7d1a-3b4c-4d5e-8f90-a1b2c3d4e5f6",
    "c3d2e1f0-a9b8-4c7d-9e6f-5a4b3c2d1e0f",
)
Seed = Callable[[Any, datetime], None]


# --- nodes --------------------------------------------------------------------------------


def _reviews(conn: Any, tenant: scenario.Tenant, times: list[datetime]) -> None:
    for at in times:
        run_id = scenario.add_unscheduled_run(conn, tenant, at, "success")
        scenario.add_charge(conn, tenant, 300_000, at + 40 * timedelta(seconds=1), run_id=run_id)


def spawned_node(
    conn: Any, now: datetime, *, silent_for: timedelta = timedelta(0), step: timedelta = H
) -> scenario.Tenant:
    """A node forked from the template: the implied ledger schedule, webhook-only (no
    cursors), a receipt and a PR review every ``step`` until ``silent_for`` ago."""
    tenant = scenario.create_tenant(conn, balance_credits=5_000_000_000)
    scenario.add_ledger_schedule(conn, tenant, cron="0 0 * * *", next_run_at=now + D)
    last = now - silent_for - 5 * 60 * timedelta(seconds=1)
    times = ledger.every(step, last, 14 * D)
    ledger.add_receipts(conn, times)
    _reviews(conn, tenant, [t for t in times if t > now - 3 * D - silent_for])
    ledger.healthy_epochs(conn, now)
    return tenant


def quiet_node(conn: Any, now: datetime) -> None:
    """A small node: one event every two days, the last 40 h ago; no review today."""
    tenant = scenario.create_tenant(conn, balance_credits=5_000_000_000)
    scenario.add_ledger_schedule(conn, tenant, cron="0 0 * * *", next_run_at=now + D)
    ledger.add_receipts(conn, ledger.every(2 * D, now - 40 * H, 30 * D))
    ledger.healthy_epochs(conn, now)


def operator_node(conn: Any, now: datetime) -> None:
    """The operator: its own ledger (it polls, so its cursors are written), and a
    dispatch schedule per spawned node, which writes no runs by design."""
    tenant = spawned_node(conn, now)
    for stream in ("pull_requests", "reviews", "issues"):
        scenario.add_ingestion_cursor(conn, now - 3 * H, stream=stream)
    for node in NODES:
        ledger.add_dispatch_schedule(conn, tenant, node, next_run_at=now + D)


def collect_stopped(conn: Any, now: datetime) -> None:
    """The sibling-prune bug of August on a node: the open epoch's window ended two
    days ago and no collect moved it to review."""
    tenant = scenario.create_tenant(conn, balance_credits=5_000_000_000)
    scenario.add_ledger_schedule(conn, tenant, cron="0 0 * * *", next_run_at=now + D)
    ledger.add_receipts(conn, ledger.every(H, now - 10 * 60 * timedelta(seconds=1), 10 * D))
    end = now - 2 * D
    ledger.add_epoch(conn, "open", end - ledger.WEEK, period_end=end)
    ledger.add_epoch(conn, "finalized", end - 2 * ledger.WEEK, period_end=end - ledger.WEEK)


def webhook_silent(conn: Any, now: datetime) -> None:
    """2026-06-11: every delivery refused for 80 h on an hourly node: no receipts, no
    PR reviews."""
    spawned_node(conn, now, silent_for=80 * H)


def awaiting_approval(conn: Any, now: datetime) -> None:
    """Two ended epochs wait for their approvers, one of them for 9 days."""
    tenant = scenario.create_tenant(conn, balance_credits=5_000_000_000)
    scenario.add_ledger_schedule(conn, tenant, cron="0 0 * * *", next_run_at=now + D)
    ledger.add_receipts(conn, ledger.every(H, now - 10 * 60 * timedelta(seconds=1), 10 * D))
    ledger.add_epoch(conn, "open", now - 3 * D, period_end=now + 4 * D)
    ledger.add_epoch(conn, "review", now - 10 * D, period_end=now - 3 * D)
    ledger.add_epoch(conn, "review", now - 16 * D, period_end=now - 9 * D)


def with_distributions(conn: Any, now: datetime) -> None:
    """A node with a token contract: its finalized epochs have manifests and pending
    liabilities, but the newest finalized one (3 days ago) has none."""
    tenant = scenario.create_tenant(conn, balance_credits=5_000_000_000)
    scenario.add_ledger_schedule(conn, tenant, cron="0 0 * * *", next_run_at=now + D)
    ledger.add_receipts(conn, ledger.every(H, now - 10 * 60 * timedelta(seconds=1), 10 * D))
    ids = ledger.healthy_epochs(conn, now, weeks=4)
    finalized = ids[2:]
    conn.execute("UPDATE epochs SET closed_at = %s WHERE id = %s", (now - 3 * D, finalized[0]))
    for epoch_id in finalized[1:]:
        ledger.add_distribution(conn, epoch_id, pending=2, created_at=now - 5 * D)
    ledger.add_distribution(conn, finalized[0], manifest=False)


# --- running the exporter ---------------------------------------------------------------------


@pytest.fixture
def ledger_node(make_database: Callable[[str], Database]) -> Callable[[Seed], Database]:
    def make(seed: Seed) -> Database:
        database = make_database(SCHEMA_2026_08)
        with database.connect() as conn:
            seed(conn, datetime.now(UTC))
        return database

    return make


@pytest.fixture
def bypass_url(pg_admin_url: str) -> Callable[[Database], str]:
    """A role with BYPASSRLS and the monitoring role's grants (by membership); made once
    the monitoring role exists (sql/monitoring-role.sql runs with each database)."""

    def url(database: Database) -> str:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (BYPASS_ROLE,))
            if exists.fetchone() is None:
                admin.execute(
                    sql.SQL("CREATE ROLE {} LOGIN BYPASSRLS PASSWORD {}").format(
                        sql.Identifier(BYPASS_ROLE), sql.Literal(BYPASS_PASSWORD)
                    )
                )
                admin.execute(
                    sql.SQL("GRANT {} TO {}").format(
                        sql.Identifier(MONITOR_ROLE), sql.Identifier(BYPASS_ROLE)
                    )
                )
        return url_with(database.url, user=BYPASS_ROLE, password=BYPASS_PASSWORD)

    return url


def check(url: str, *args: str) -> tuple[int, dict[str, Any], str]:
    """``check --output json`` and ``check`` (text), with only the URL set."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GOVERNANCE_EXPORTER_")}
    env = {**clean, "GOVERNANCE_EXPORTER_DATABASE_URL": url}
    outputs = []
    for output in ("json", "text"):
        result = subprocess.run(
            [sys.executable, "-m", "exporter", "check", "--output", output, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=REPO,
            check=False,
        )
        assert result.stdout, result.stderr
        outputs.append(result)
    assert outputs[0].returncode == outputs[1].returncode
    return outputs[0].returncode, json.loads(outputs[0].stdout), outputs[1].stdout


def problems(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(p["health"], p["alert"]) for p in report["problems"]}


def message(report: dict[str, Any], alert: str) -> str:
    (found,) = [p["message"] for p in report["problems"] if p["alert"] == alert]
    return str(found)


def scrape(url: str) -> dict[str, dict[frozenset[tuple[str, str]], float]]:
    env = {"GOVERNANCE_EXPORTER_EXPECTED_CHARTERS": ""}
    with run_exporter(url, env=env) as exporter:
        return samples(exporter.metrics())


# --- healthy nodes: green -------------------------------------------------------------------


def test_a_healthy_spawned_node_is_green(ledger_node: Callable[[Seed], Database]) -> None:
    database = ledger_node(spawned_node)
    code, report, text = check(database.monitor_url)
    assert (code, report["problems"]) == (0, [])
    (charter,) = report["charters"]
    assert (charter["charter"], charter["judged_by_epochs"]) == ("ledger_ingest", True)
    (stream,) = report["ledger"]["streams"]
    assert stream["epochs_by_status"] == {"open": 1, "review": 1, "finalized": 3}
    assert stream["collect_overdue_seconds"] == 0
    assert report["ledger"]["observable"] == {
        "epochs": True,
        "receipts": True,
        "distributions": False,
    }
    assert "GOVERNANCE OK" in text
    assert "judged by epochs" in text


def test_a_small_quiet_node_is_green(ledger_node: Callable[[Seed], Database]) -> None:
    database = ledger_node(quiet_node)
    code, report, _ = check(database.monitor_url)
    assert (code, report["problems"]) == (0, [])
    (receipts,) = report["ledger"]["receipts"]
    assert receipts["sampled"] == 15


def test_a_healthy_operator_is_green_with_one_dispatch_series_per_node(
    ledger_node: Callable[[Seed], Database],
) -> None:
    database = ledger_node(operator_node)
    code, report, _ = check(database.monitor_url)
    assert (code, report["problems"]) == (0, [])
    assert [c["charter"] for c in report["charters"]] == ["ledger_ingest"]
    assert sorted(d["node"] for d in report["ledger"]["dispatch"]) == sorted(NODES)
    found = scrape(database.monitor_url)
    state = found["governance_ledger_dispatch_schedule_state"]
    enabled = {dict(k)["ledger_node_id"] for k, v in state.items() if dict(k)["state"] == "enabled"}
    assert enabled == set(NODES)
    assert all(v == 1 for k, v in state.items() if dict(k)["state"] == "enabled")
    assert all("node_id" not in dict(k) for k in state)
    assert len(found["governance_ledger_dispatch_schedule_next_run_timestamp_seconds"]) == 3
    cursors = found["governance_ledger_cursor_last_retrieved_timestamp_seconds"]
    assert list(dict(k)["scope_id"] for k in cursors) == [scenario.DEFAULT_SCOPE_ID]
    charters = {dict(k)["charter"] for k in found["governance_charter_configured"]}
    assert charters == {"ledger_ingest"}  # the dispatch schedules are no charters
    assert found["governance_ledger_observable"][frozenset({("part", "distributions")})] == 0


# --- the ledger's outages ---------------------------------------------------------------------


def test_the_collect_stopped_is_red_and_names_the_window(
    ledger_node: Callable[[Seed], Database],
) -> None:
    database = ledger_node(collect_stopped)
    code, report, text = check(database.monitor_url)
    assert (code, problems(report)) == (2, {("red", "GovernanceLedgerCollectStalled")})
    words = message(report, "GovernanceLedgerCollectStalled")
    end = (datetime.now(UTC) - 2 * D).strftime("%Y-%m-%d")
    assert f" - {end})" in words
    assert "is still open" in words
    assert "2 d" in words
    assert "GovernanceLedgerCollectStalled" in text
    (charter,) = report["charters"]  # LEDGER_INGEST's work is the collect: red too
    assert (charter["charter"], charter["health"]) == ("ledger_ingest", "red")


def test_the_webhook_plane_silent_for_80_hours_is_red_and_says_reviews_stopped(
    ledger_node: Callable[[Seed], Database],
) -> None:
    database = ledger_node(webhook_silent)
    code, report, _ = check(database.monitor_url)
    assert (code, problems(report)) == (2, {("red", "GovernanceLedgerWebhookSilent")})
    words = message(report, "GovernanceLedgerWebhookSilent")
    assert "no webhook receipt for 3 d 8 h" in words
    assert "PR reviews stopped too" in words


def test_epochs_waiting_for_approvers_are_a_warning_naming_the_oldest(
    ledger_node: Callable[[Seed], Database],
) -> None:
    database = ledger_node(awaiting_approval)
    code, report, _ = check(database.monitor_url)
    assert (code, problems(report)) == (1, {("yellow", "GovernanceLedgerEpochAwaitingApproval")})
    words = message(report, "GovernanceLedgerEpochAwaitingApproval")
    (stream,) = report["ledger"]["streams"]
    assert "2 epoch(s) in review" in words
    assert "waited 9 d" in words
    assert stream["epochs_by_status"]["review"] == 2


def test_distributions_are_seen_with_bypassrls_and_not_observable_without(
    ledger_node: Callable[[Seed], Database], bypass_url: Callable[[Database], str]
) -> None:
    database = ledger_node(with_distributions)
    code, report, _ = check(database.monitor_url)
    assert (code, report["problems"], report["ledger"]["distributions"]) == (0, [], [])
    assert report["ledger"]["observable"]["distributions"] is False
    code, report, _ = check(bypass_url(database))
    assert (code, problems(report)) == (1, {("yellow", "GovernanceLedgerDistributionMissing")})
    (dist,) = report["ledger"]["distributions"]
    assert (dist["manifests"], dist["pending_liabilities"], dist["finalized_without_manifest"]) == (
        2,
        4,
        1,
    )
    found = scrape(bypass_url(database))
    assert found["governance_ledger_observable"][frozenset({("part", "distributions")})] == 1
    (pending,) = found["governance_ledger_pending_liabilities"].values()
    (age,) = found["governance_ledger_pending_liability_oldest_age_seconds"].values()
    (missing,) = found["governance_ledger_finalized_without_manifest_oldest_age_seconds"].values()
    assert 3 * 86400 <= missing < 3 * 86400 + 600
    assert pending == 4
    assert 5 * 86400 <= age < 5 * 86400 + 600


# --- nodes before the ledger: nothing of it -------------------------------------------------


@pytest.mark.parametrize("schema", [SCHEMA_2026_02, SCHEMA_2026_03, SCHEMA_2026_10])
def test_nodes_without_the_ledger_have_no_ledger_series(
    make_database: Callable[[str], Database], schema: str
) -> None:
    database = make_database(schema)
    with database.connect() as conn:
        scenario.seed_governance(conn, schema, datetime.now(UTC))
    found = scrape(database.monitor_url)
    assert not [name for name in found if name.startswith("governance_ledger_")]
    code, report, _ = check(database.monitor_url, "--expected-charters", "govern")
    assert code == 0
    assert report["ledger"]["has_ledger"] is False


# --- bounded by the source project's own indexes ------------------------------------------------

LEDGER_TABLES = (
    "epochs",
    "ingestion_receipts",
    "claimant_liabilities",
    "epoch_distribution_manifests",
    "graph_runs",
)


def test_every_ledger_statement_can_walk_an_index_of_the_schema(
    ledger_node: Callable[[Seed], Database],
) -> None:
    """With sequential scans off, no ledger table is read whole: each statement has an
    index of schema-2026-08-full.sql to walk (the planner may still prefer a scan of a
    tiny table; this asks only that it need not)."""
    database = ledger_node(with_distributions)
    now = datetime.now(UTC)
    params = {
        "now": now,
        "account": "cogni_system",
        "lookback": now - 30 * D,
        "ledger_stream_limit": 51,
        "dispatch_limit": 51,
    }
    statements = {
        name: getattr(ledger_queries, name)
        for name in ("READ_LEDGER_EPOCHS", "READ_LEDGER_RECEIPTS", "READ_LAST_REVIEW")
    }
    statements["READ_LEDGER_DISTRIBUTIONS"] = ledger_queries.READ_LEDGER_DISTRIBUTIONS
    with psycopg.connect(database.url) as conn:
        conn.execute("SET LOCAL enable_seqscan = off")
        for name, statement in statements.items():
            explained = conn.execute(("EXPLAIN " + statement).encode(), params).fetchall()
            plan = "\n".join(row[0] for row in explained)
            for table in LEDGER_TABLES:
                assert f"Seq Scan on {table}" not in plan, f"{name}:\n{plan}"
            assert "Index" in plan, f"{name}:\n{plan}"
        conn.rollback()


# --- runs requested by the account's slug -----------------------------------------------------


def sweep_failing(conn: Any, now: datetime) -> None:
    """The role sweep writes requested_by = 'cogni_system' (the slug, not the user id),
    run_kind system_scheduled, no schedule: here one rejected for credits."""
    tenant = spawned_node(conn, now)
    slug = scenario.Tenant(
        "cogni_system", tenant.account_id, tenant.grant_id, tenant.virtual_key_id
    )
    scenario.add_unscheduled_run(
        conn,
        slug,
        now - 2 * H,
        "error",
        run_kind="system_scheduled",
        trigger_source="role_sweep",
        error_code="insufficient_credits",
    )


def test_runs_requested_by_the_account_slug_count_as_the_accounts(
    ledger_node: Callable[[Seed], Database], bypass_url: Callable[[Database], str]
) -> None:
    database = ledger_node(sweep_failing)
    code, report, _ = check(bypass_url(database))
    assert (code, problems(report)) == (1, {("yellow", "GovernanceRunsFailing")})
    (sweep,) = [w for w in report["unscheduled"] if w["run_kind"] == "system_scheduled"]
    assert sweep["failures_by_reason"] == {"insufficient_credits": 1}
    assert report["credit"]["rejected_runs"] == 1
    # Under row-level security graph_runs' policy shows a role only the runs requested
    # by app.current_user_id (the principal's id): the slug's runs stay hidden.
    code, report, _ = check(database.monitor_url)
    assert (code, report["credit"]["rejected_runs"]) == (0, 0)


@pytest.mark.parametrize(
    "change",
    [
        "REVOKE SELECT (period_end) ON epochs FROM governance_exporter",
        "ALTER TABLE epochs DROP COLUMN closed_at",  # a ledger of another migration
    ],
    ids=["grant-missing", "column-missing"],
)
def test_epochs_that_cannot_be_read_are_a_warning_not_a_failed_collection(
    ledger_node: Callable[[Seed], Database], change: str
) -> None:
    database = ledger_node(spawned_node)
    with database.connect() as conn:
        conn.execute(change)
    code, report, _ = check(database.monitor_url)
    assert (code, problems(report)) == (1, {("yellow", "GovernanceLedgerNotObservable")})
    assert report["ledger"]["observable"]["epochs"] is False
    assert report["ledger"]["streams"] == []
    (charter,) = report["charters"]  # never "never succeeded" either
    assert charter["health"] == "green"

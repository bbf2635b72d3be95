"""Today's Cogni node (2026-12), against real PostgreSQL on the schemas it runs.

Each node is written the way the source project's current code writes one (see
../shared/reference/SOURCE-SYSTEM.md, "A node as it is today"): schedules synced
from ``.cogni/repo-spec.yaml``, the implied ledger schedule whose only trace is
``ingestion_cursors``, PR reviews as runs without a schedule, rejections as
``status = 'error'`` with the code in ``error_code`` and ``error_message``. The
exporter runs with nothing configured but the database URL (and the repo-spec
where the test says so), as a new user would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from harness import REPO, Database, run_exporter
from prometheus_client.parser import text_string_to_metric_families

from exporter import source
from exporter.demo import scenario
from exporter.snapshot import SCHEMA_2026_03, SCHEMA_2026_10

H = timedelta(hours=1)
D = timedelta(days=1)
SCOPE = scenario.DEFAULT_SCOPE_ID
REVIEWS = 46  # two an hour for 23 hours
FEBRUARY = ("govern", "community", "engineering", "sustainability")

# A repo-spec as the source project writes one: comments, the ledger section,
# the identity keys the app needs before it adds the ledger schedule itself.
REPO_SPEC_HEAD = f"""\
# Cogni Git Review Repository Specification Template
schema_version: "0.1.4"
node_id: "538b4da2-bd59-4c3a-928a-8a40b6627205"
scope_id: "{SCOPE}"
scope_key: "default"

# Activity ledger ingestion configuration
activity_ledger:
  epoch_length_days: 7
  activity_sources:
    github:
      attribution_pipeline: cogni-v0.0
      source_refs: ["Cogni-DAO/node-template"]

intent:
  name: cogni-template
"""
TEMPLATE_SPEC = REPO_SPEC_HEAD  # declares no charter: only the implied ledger one
OPERATOR_SPEC = (
    REPO_SPEC_HEAD
    + """
# Governance schedule definitions (charter-scoped per governance-council.md)
governance:
  schedules:
    - charter: HEARTBEAT
      cron: "0 * * * *" # once per hour
      timezone: UTC
      entrypoint: HEARTBEAT
    - charter: LEDGER_INGEST
      cron: "0 6 * * *" # daily at 6am UTC
      timezone: UTC
      entrypoint: LEDGER_INGEST
"""
)


@dataclass
class Node:
    database: Database
    tenant: scenario.Tenant
    schedules: dict[str, str]
    now: datetime


def _top_of_hour(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0)


def _reviews(
    conn: Any, node: scenario.Tenant, now: datetime, *, hours: int = 23, error: str | None = None
) -> None:
    """Two PR reviews an hour in each of the ``hours`` full hours before this one (all
    inside the 24 h window); each success is charged through its run_id."""
    for h in range(1, hours + 1):
        for minute in (10, 40):
            started = _top_of_hour(now) - h * H + timedelta(minutes=minute)
            status = "error" if error else "success"
            run_id = scenario.add_unscheduled_run(conn, node, started, status, error_code=error)
            if error is None:
                scenario.add_charge(
                    conn, node, 300_000, started + timedelta(seconds=40), run_id=run_id
                )


def _heartbeat(
    conn: Any,
    version: str,
    tenant: scenario.Tenant,
    now: datetime,
    *,
    failing_hours: int = 0,
    error: str = "provider_unavailable",
) -> str:
    schedule = scenario.add_schedule(
        conn, tenant, "heartbeat", cron="0 * * * *", next_run_at=now + H
    )
    for h in range(30):
        slot = _top_of_hour(now) - h * H
        if h < failing_hours:
            scenario.add_run(
                conn,
                version,
                schedule,
                slot,
                "error",
                error_code=error,
                error_message=error,
                completed_at=slot + timedelta(seconds=5),
            )
            continue
        done = slot + timedelta(minutes=2)
        run_id = scenario.add_run(conn, version, schedule, slot, "success", completed_at=done)
        scenario.add_charge(conn, tenant, 1_000_000, done, debit=False, run_id=run_id)
    return schedule


def _ledger(conn: Any, tenant: scenario.Tenant, now: datetime, *, cron: str) -> str:
    """The ledger schedule and, where the schema has the table (schema-2026-03.sql
    does not), the cursors its last collection left three hours ago."""
    schedule = scenario.add_ledger_schedule(conn, tenant, cron=cron, next_run_at=now + D)
    has_cursors = conn.execute("SELECT to_regclass('ingestion_cursors') IS NOT NULL").fetchone()
    if has_cursors[0]:
        for stream in ("pull_requests", "reviews", "issues"):
            scenario.add_ingestion_cursor(conn, now - 3 * H, stream=stream)
    return schedule


def template_node(conn: Any, version: str, now: datetime, **kw: Any) -> dict[str, str]:
    """A node forked from the template: only the implied ledger schedule, PR reviews."""
    tenant = scenario.create_tenant(conn, balance_credits=kw.get("balance", 5_000_000_000))
    if kw.get("reviews", True):
        _reviews(conn, tenant, now, error=kw.get("review_error"))
    return {"ledger_ingest": _ledger(conn, tenant, now, cron="0 0 * * *")}


def operator_node(conn: Any, version: str, now: datetime, **kw: Any) -> dict[str, str]:
    """The source project's own node: hourly HEARTBEAT, the ledger at 06:00, the four
    February rows pruned, PR reviews."""
    tenant = scenario.create_tenant(conn, balance_credits=kw.get("balance", 5_000_000_000))
    schedules = {
        "heartbeat": _heartbeat(
            conn, version, tenant, now, failing_hours=kw.get("heartbeat_failing_hours", 0)
        ),
        "ledger_ingest": _ledger(conn, tenant, now, cron="0 6 * * *"),
    }
    for charter in FEBRUARY:
        old = scenario.add_schedule(conn, tenant, charter, next_run_at=now - 300 * D)
        scenario.prune_schedule(conn, old)
    _reviews(conn, tenant, now, error=kw.get("review_error"))
    return schedules


@pytest.fixture(params=[SCHEMA_2026_10, SCHEMA_2026_03])
def schema(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def seeded(
    make_database: Callable[[str], Database],
    seed: Callable[..., dict[str, str]],
    schema: str,
    **kw: Any,
) -> Database:
    database = make_database(schema)
    now = datetime.now(UTC)
    with database.connect() as conn:
        seed(conn, schema, now, **kw)
    return database


def write_spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "repo-spec.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _env(url: str, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GOVERNANCE_EXPORTER_")}
    return {**clean, "GOVERNANCE_EXPORTER_DATABASE_URL": url, **extra}


def check(url: str, *args: str, **env: str) -> tuple[int, dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "check", "--output", "json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(url, **env),
        cwd=REPO,
        check=False,
    )
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def problems(report: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(p["health"], p["subject"], p["alert"]) for p in report["problems"]}


def charter(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in report["charters"] if c["charter"] == name)


def scrape(
    url: str, *, env: dict[str, str] | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """One /metrics of a real exporter process with only the URL (and ``env``) set."""
    settings = {"GOVERNANCE_EXPORTER_EXPECTED_CHARTERS": "", **(env or {})}
    with run_exporter(url, env=settings) as exporter:
        status, body = exporter.get("/metrics")
    assert status == 200
    return samples(body)


def samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float | None:
    key = (name, tuple(sorted({"account": "cogni_system", **labels}.items())))
    return found.get(key)


# --- healthy nodes: no false page ------------------------------------------------------


@pytest.mark.parametrize("with_spec", [True, False], ids=["repo-spec", "rows-only"])
def test_a_healthy_template_node_is_green(
    make_database: Callable[[str], Database], schema: str, tmp_path: Path, with_spec: bool
) -> None:
    database = seeded(make_database, template_node, schema)
    args = ("--repo-spec", str(write_spec(tmp_path, TEMPLATE_SPEC))) if with_spec else ()
    code, report = check(database.monitor_url, *args)
    assert (code, report["status"], report["problems"]) == (0, "green", [])
    ledger = charter(report, "ledger_ingest")
    if schema == SCHEMA_2026_10:
        assert ledger["observable"] is True
        assert ledger["last_success_at"] is not None  # from ingestion_cursors, not runs
    else:  # no ingestion_cursors table: not observable, and still no problem
        assert (ledger["observable"], ledger["last_success_at"]) == (False, None)
    assert [c["charter"] for c in report["charters"]] == ["ledger_ingest"]
    assert report["unscheduled"][0]["run_kind"] == "system_webhook"
    assert report["credit"]["spent_by_run_kind"]["system_webhook"] > 0


def test_a_healthy_operator_node_is_green_and_its_old_rows_retired(
    make_database: Callable[[str], Database], schema: str, tmp_path: Path
) -> None:
    database = seeded(make_database, operator_node, schema)
    spec = write_spec(tmp_path, OPERATOR_SPEC)
    code, report = check(database.monitor_url, "--repo-spec", str(spec))
    assert (code, report["problems"]) == (0, [])
    for name in FEBRUARY:
        assert charter(report, name)["retired"] is True
    assert charter(report, "heartbeat")["declared"] is True
    assert report["credit"]["spent_by_charter"]["heartbeat"] > 0
    code, report = check(database.monitor_url)  # no repo-spec: the rows tell
    assert (code, report["problems"]) == (0, [])


def test_today_metrics_of_a_healthy_operator_node(
    make_database: Callable[[str], Database], tmp_path: Path
) -> None:
    database = seeded(make_database, operator_node, SCHEMA_2026_10)
    spec = write_spec(tmp_path, OPERATOR_SPEC)
    found = scrape(database.monitor_url, env={"GOVERNANCE_EXPORTER_REPO_SPEC": str(spec)})
    assert value(found, "governance_exporter_up") is None  # no account label on it
    assert found[("governance_exporter_up", ())] == 1
    assert value(found, "governance_schedule_retired", charter="govern") == 1
    assert value(found, "governance_schedule_retired", charter="heartbeat") == 0
    assert value(found, "governance_schedule_drift", charter="heartbeat") == 0
    assert value(found, "governance_schedule_observable", charter="ledger_ingest") == 1
    assert value(found, "governance_credit_spending_schedules") == 1  # heartbeat, not ledger
    assert value(found, "governance_credit_min_run_cost_credits") == 4_000_000
    assert value(found, "governance_unscheduled_runs_visible") == 1
    assert (
        value(found, "governance_unscheduled_runs", run_kind="system_webhook", status="success")
        == REVIEWS
    )
    assert (
        value(found, "governance_credit_spent_by_run_kind_credits", run_kind="system_webhook")
        == REVIEWS * 300_000
    )
    assert found[("governance_repo_spec_status", (("status", "ok"),))] == 1
    assert found[("governance_repo_spec_declared_schedules", ())] == 2
    assert (
        found[
            (
                "governance_exporter_build_info",
                (("schema", "2026-10"), ("version", __import__("exporter").__version__)),
            )
        ]
        == 1
    )


# --- today's outage shapes: red, and named ------------------------------------------------


def test_provider_unavailable_is_red_for_the_heartbeat_and_the_reviews(
    make_database: Callable[[str], Database], schema: str
) -> None:
    database = seeded(
        make_database,
        operator_node,
        schema,
        heartbeat_failing_hours=3,
        review_error="provider_unavailable",
    )
    code, report = check(database.monitor_url)
    assert code == 2
    assert ("red", "provider", "GovernanceProviderUnavailable") in problems(report)
    assert charter(report, "heartbeat")["failures_by_reason"] == {"provider_unavailable": 3}
    (reviews,) = report["unscheduled"]
    assert reviews["failures_by_reason"]["provider_unavailable"] > 0
    assert ("yellow", "system_webhook runs", "GovernanceRunsFailing") in problems(report)


def test_a_balance_below_one_runs_cost_is_red(
    make_database: Callable[[str], Database], schema: str
) -> None:
    database = seeded(
        make_database, template_node, schema, balance=1_000_000, review_error="insufficient_credits"
    )
    code, report = check(database.monitor_url)
    assert code == 2
    assert report["credit"]["health"] == "red"
    assert ("red", "credit", "GovernanceCreditRunwayLow") in problems(report)
    assert ("red", "credit", "GovernanceRunsRejectedForCredits") in problems(report)
    assert report["credit"]["rejected_runs"] == REVIEWS


def test_runs_rejected_for_credits_with_a_large_balance_are_red(
    make_database: Callable[[str], Database],
) -> None:
    """A runway of +Inf and a positive balance, yet every run is refused."""
    database = seeded(
        make_database, template_node, SCHEMA_2026_10, review_error="insufficient_credits"
    )
    code, report = check(database.monitor_url)
    assert code == 2
    assert report["credit"]["runway_seconds"] is None  # unbounded: nothing spent
    assert report["credit"]["health"] == "red"
    assert ("red", "credit", "GovernanceRunsRejectedForCredits") in problems(report)


def test_the_threshold_can_be_set(make_database: Callable[[str], Database]) -> None:
    """3,000,000 credits and nothing spent: an unbounded runway, under one run's cost."""
    database = seeded(
        make_database, template_node, SCHEMA_2026_10, balance=3_000_000, reviews=False
    )
    code, report = check(database.monitor_url)
    assert (code, report["credit"]["health"]) == (2, "red")
    assert ("red", "credit", "GovernanceCreditRunwayLow") in problems(report)
    code, report = check(database.monitor_url, "--min-run-cost-credits", "1000000")
    assert report["credit"]["min_run_cost_credits"] == 1_000_000
    assert (code, report["credit"]["health"], report["problems"]) == (0, "green", [])


# --- what the repo-spec declares ------------------------------------------------------------


def test_declared_but_no_row_is_missing_as_on_2026_02_15(
    make_database: Callable[[str], Database], tmp_path: Path
) -> None:
    database = make_database(SCHEMA_2026_10)
    with database.connect() as conn:
        scenario.create_tenant(conn, balance_credits=0)
    code, report = check(
        database.monitor_url, "--repo-spec", str(write_spec(tmp_path, OPERATOR_SPEC))
    )
    assert code == 2
    assert {
        ("red", "heartbeat", "GovernanceCharterMissing"),
        ("red", "ledger_ingest", "GovernanceCharterMissing"),
    } <= problems(report)


def test_declared_paused_and_drifted_schedules_are_warnings(
    make_database: Callable[[str], Database], tmp_path: Path
) -> None:
    database = seeded(make_database, operator_node, SCHEMA_2026_10)
    with database.connect() as conn:
        by_tsid = "WHERE temporal_schedule_id = %s"
        conn.execute(
            "UPDATE schedules SET cron = '30 * * * *' " + by_tsid, ("governance:heartbeat",)
        )
        conn.execute(
            "UPDATE schedules SET enabled = false " + by_tsid, ("governance:ledger_ingest",)
        )
    spec = write_spec(tmp_path, OPERATOR_SPEC)
    _, report = check(database.monitor_url, "--repo-spec", str(spec))
    found = problems(report)
    assert ("yellow", "heartbeat", "GovernanceScheduleDrift") in found
    assert ("yellow", "ledger_ingest", "GovernanceScheduleDisabled") in found
    assert "'30 * * * *' where '0 * * * *' is declared" in charter(report, "heartbeat")["drift"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("governance: [1, 2\n", "not valid YAML at line"),
        ("governance:\n  schedules: 3\n", "not a list"),
    ],
)
def test_a_bad_repo_spec_stops_the_start_with_one_line(
    tmp_path: Path, text: str, words: str
) -> None:
    spec = write_spec(tmp_path, text)
    for command in ("check", "serve"):
        result = subprocess.run(
            [sys.executable, "-m", "exporter", command, "--repo-spec", str(spec)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO,
            check=False,
            env=_env("postgresql://nobody@127.0.0.1:1/none"),
        )
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1, result.stderr
        assert words in result.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "exporter", "check", "--repo-spec", str(tmp_path / "absent.yaml")],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        check=False,
        env=_env("postgresql://nobody@127.0.0.1:1/none"),
    )
    assert missing.returncode == 2
    assert "cannot read it (No such file or directory)" in missing.stderr


def test_a_repo_spec_that_turns_bad_keeps_the_last_declaration(
    make_database: Callable[[str], Database], tmp_path: Path
) -> None:
    database = seeded(make_database, operator_node, SCHEMA_2026_10)
    spec = write_spec(tmp_path, OPERATOR_SPEC)
    env = {"GOVERNANCE_EXPORTER_EXPECTED_CHARTERS": "", "GOVERNANCE_EXPORTER_REPO_SPEC": str(spec)}
    with run_exporter(database.monitor_url, env=env) as exporter:
        assert (
            samples(exporter.get("/metrics")[1])[
                ("governance_repo_spec_status", (("status", "ok"),))
            ]
            == 1
        )
        spec.write_text("governance: [broken\n", encoding="utf-8")
        found = samples(exporter.get("/metrics")[1])
        assert found[("governance_repo_spec_status", (("status", "invalid"),))] == 1
        assert found[("governance_repo_spec_declared_schedules", ())] == 2  # kept
        assert value(found, "governance_schedule_drift", charter="heartbeat") == 0
        spec.unlink()
        found = samples(exporter.get("/metrics")[1])
        assert found[("governance_repo_spec_status", (("status", "unreadable"),))] == 1
        assert found[("governance_exporter_up", ())] == 1
        spec.write_text(OPERATOR_SPEC, encoding="utf-8")
        found = samples(exporter.get("/metrics")[1])
        assert found[("governance_repo_spec_status", (("status", "ok"),))] == 1


# --- the ledger's trace -------------------------------------------------------------------------


def test_a_ledger_without_readable_cursors_is_not_observable_never_red(
    make_database: Callable[[str], Database],
) -> None:
    database = seeded(make_database, template_node, SCHEMA_2026_10)
    with database.connect() as conn:
        conn.execute("REVOKE SELECT ON ingestion_cursors FROM governance_exporter")
    code, report = check(database.monitor_url)
    assert (code, report["problems"]) == (0, [])
    assert charter(report, "ledger_ingest")["observable"] is False
    found = scrape(database.monitor_url)
    assert value(found, "governance_schedule_observable", charter="ledger_ingest") == 0
    assert (
        value(found, "governance_schedule_last_success_timestamp_seconds", charter="ledger_ingest")
        is None
    )


def test_a_ledger_that_stopped_collecting_is_stalled(
    make_database: Callable[[str], Database],
) -> None:
    database = seeded(make_database, template_node, SCHEMA_2026_10)
    with database.connect() as conn:
        conn.execute("UPDATE ingestion_cursors SET retrieved_at = now() - interval '3 days'")
    code, report = check(database.monitor_url)
    assert code == 2
    assert ("red", "ledger_ingest", "GovernanceCharterStalled") in problems(report)


# --- other tenants, roles that bypass row-level security, nodes between migrations ------------


def _other_tenant(conn: Any, now: datetime) -> None:
    """Another tenant with a governance:* schedule, runs with and without a schedule,
    charges and ingestion cursors of another scope: none of it may reach a metric."""
    other = scenario.create_tenant(
        conn,
        user_id="user-x",
        account_id="account-x",
        slug="tenant-x",
        balance_credits=7,
        system=False,
    )
    schedule = scenario.add_schedule(conn, other, "heartbeat", next_run_at=now + H)
    for h in range(5):
        slot = _top_of_hour(now) - h * H
        run_id = scenario.add_run(
            conn,
            SCHEMA_2026_10,
            schedule,
            slot,
            "error",
            error_code="provider_unavailable",
            error_message="provider_unavailable",
            run_id=f"x-{h}",
        )
        scenario.add_charge(conn, other, 999_999, slot, debit=False, run_id=run_id)
        scenario.add_unscheduled_run(
            conn, other, slot + timedelta(minutes=5), "error", error_code="insufficient_credits"
        )
    scenario.add_ingestion_cursor(
        conn, now - 10 * D, scope_id="00000000-0000-5000-8000-00000000000f"
    )


def test_a_bypassrls_role_sees_only_the_system_account(
    make_database: Callable[[str], Database],
) -> None:
    database = seeded(make_database, operator_node, SCHEMA_2026_10)
    with database.connect() as conn:
        before = scrape(database.monitor_url)
        _other_tenant(conn, datetime.now(UTC))
        conn.execute("CREATE ROLE app_readonly_test LOGIN BYPASSRLS PASSWORD 'bypass-pw'")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO app_readonly_test")
    bypass = database.monitor_url.replace("governance_exporter", "app_readonly_test").replace(
        "monitor-pw-Zq8xT3", "bypass-pw"
    )
    for url in (database.monitor_url, bypass):
        after = scrape(url)
        moving = ("governance_exporter_", "governance_schedule_next_run_seconds")
        same = {k: v for k, v in before.items() if not k[0].startswith(moving)}
        assert {k: after.get(k) for k in same} == same
        assert not any(dict(k[1]).get("account", "cogni_system") != "cogni_system" for k in after)
    code, report = check(bypass)
    assert (code, report["problems"]) == (0, [])


def test_a_node_between_0021_and_0024_says_its_reviews_are_hidden(
    make_database: Callable[[str], Database],
) -> None:
    database = seeded(make_database, operator_node, SCHEMA_2026_03)
    with database.connect() as conn:  # the schedule-only policy 0021 inherited
        conn.execute("DROP POLICY tenant_isolation ON graph_runs")
        conn.execute(
            "CREATE POLICY tenant_isolation ON graph_runs USING (schedule_id IN (SELECT id FROM"
            " schedules WHERE owner_user_id = current_setting('app.current_user_id', true)))"
        )
    _, report = check(database.monitor_url)
    assert report["unscheduled_visible"] is False
    assert ("yellow", "unscheduled runs", "GovernanceUnscheduledRunsHidden") in problems(report)
    found = scrape(database.monitor_url)
    assert value(found, "governance_unscheduled_runs_visible") == 0


# --- counters for success ratios --------------------------------------------------------------


def test_finished_runs_count_up_and_survive_a_recreated_schedule(
    make_database: Callable[[str], Database],
) -> None:
    database = seeded(make_database, operator_node, SCHEMA_2026_10)
    env = {"GOVERNANCE_EXPORTER_EXPECTED_CHARTERS": ""}
    key = (
        "governance_runs_finished_total",
        (("account", "cogni_system"), ("outcome", "success"), ("run_kind", "system_scheduled")),
    )
    with run_exporter(database.monitor_url, env=env) as exporter, database.connect() as conn:
        assert samples(exporter.get("/metrics")[1])[key] == 0  # counts from the start
        schedule = conn.execute(
            "SELECT id::text FROM schedules WHERE temporal_schedule_id = 'governance:heartbeat'"
        ).fetchone()[0]
        done = datetime.now(UTC)
        scenario.add_run(
            conn,
            SCHEMA_2026_10,
            schedule,
            done - timedelta(minutes=1),
            "success",
            completed_at=done,
        )
        scenario.add_unscheduled_run(
            conn,
            scenario.system_tenant(conn),
            done - timedelta(minutes=2),
            "success",
            completed_at=done,
        )
        scenario.add_unscheduled_run(
            conn,
            scenario.system_tenant(conn),
            done - timedelta(minutes=3),
            "error",
            error_code="provider_unavailable",
            completed_at=done,
        )
        time.sleep(source.FINISHED_LAG.total_seconds() + 1)  # counted once settled
        found = samples(exporter.get("/metrics")[1])
        assert found[key] == 1
        webhook = (
            key[0],
            (("account", "cogni_system"), ("outcome", "success"), ("run_kind", "system_webhook")),
        )
        assert found[webhook] == 1
        labels = (("account", "cogni_system"), ("reason", "provider_unavailable"))
        failed = ("governance_runs_failed_total", (*labels, ("run_kind", "system_webhook")))
        assert found[failed] == 1
        assert (
            found[("governance_runs_failed_total", (*labels, ("run_kind", "system_scheduled")))]
            == 0
        )
        conn.execute("DELETE FROM schedules WHERE id = %s", (schedule,))  # cascades to its runs
        assert samples(exporter.get("/metrics")[1])[key] == 1

"""``governance-exporter check`` through the real command against a real database:
every exit status (0 green, 1 yellow, 2 red, 3 unreadable), its words and its JSON."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from harness import MONITOR_PASSWORD, REPO, Database, create_database, free_port, local_postgres

from exporter.demo import scenario
from exporter.settings import FEBRUARY_CHARTERS
from exporter.snapshot import SCHEMA_2026_02, SCHEMA_2026_03

H = timedelta(hours=1)
FEBRUARY_NODE = {"GOVERNANCE_EXPORTER_EXPECTED_CHARTERS": ",".join(FEBRUARY_CHARTERS)}
Seed = Callable[[Any, str, datetime], None]


def run_check(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m exporter check`` with the URL in the environment, as in production."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GOVERNANCE_EXPORTER_")}
    return subprocess.run(
        [sys.executable, "-m", "exporter", "check", "--statement-timeout-seconds", "2", *args],
        capture_output=True,
        text=True,
        timeout=60,
        # These scenarios are nodes of February 2026, whose operator names the four
        # charters it runs (today's nodes are tested in test_today.py).
        env={**clean, "GOVERNANCE_EXPORTER_DATABASE_URL": url, **FEBRUARY_NODE},
        cwd=REPO,
        check=False,
    )


def check_json(url: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = run_check(url, "--output", "json", *args)
    return result.returncode, json.loads(result.stdout)


def alerts(report: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(p["health"], p["subject"], p["alert"]) for p in report["problems"]}


# --- scenarios -------------------------------------------------------------------------


def healthy(conn: Any, version: str, now: datetime) -> None:
    scenario.seed_governance(conn, version, now)  # 500M credits, 4M/h: about 5 days


def yellow_runway(conn: Any, version: str, now: datetime) -> None:
    scenario.seed_governance(conn, version, now, balance_credits=50_000_000)  # about 12.5 h


def one_failed_run(conn: Any, version: str, now: datetime) -> None:
    """engineering's latest run timed out: it has not succeeded since."""
    _tenant, schedules = scenario.seed_governance(conn, version, now, hours=3)
    conn.execute(
        "UPDATE graph_runs SET status = 'error', error_code = 'timeout', error_message = 'timeout'"
        " WHERE schedule_id = %s AND scheduled_for = %s",
        (schedules["engineering"], scenario.hourly_slots("engineering", now, 1)[0]),
    )


def one_recovered_failure(conn: Any, version: str, now: datetime) -> None:
    """engineering timed out 5 h ago and has succeeded every hour since."""
    _tenant, schedules = scenario.seed_governance(conn, version, now, hours=3)
    scenario.add_run(
        conn,
        version,
        schedules["engineering"],
        now - 5 * H,
        "error",
        error_message="timeout",
        error_code="timeout",
    )


def paused_schedule(conn: Any, version: str, now: datetime) -> None:
    scenario.seed_governance(conn, version, now, hours=3)
    conn.execute(
        "UPDATE schedules SET enabled = false WHERE temporal_schedule_id = %s",
        ("governance:community",),
    )


def nothing_spent(conn: Any, version: str, now: datetime) -> None:
    """Runs succeed but no charge was recorded: +Inf runway, and the NoSpend signal."""
    scenario.seed_governance(conn, version, now, hours=3)
    conn.execute("DELETE FROM charge_receipts")


def replayed_incident(conn: Any, version: str, now: datetime) -> None:
    scenario.seed_incident(conn, version, now)


def incident_without_schedule_rows(conn: Any, version: str, now: datetime) -> None:
    """2026-02-15 as it was: balance 0, no schedule rows, no runs, no charges."""
    scenario.create_tenant(conn, balance_credits=0)


def stalled_charter(conn: Any, version: str, now: datetime) -> None:
    """Credit green, but GOVERN last succeeded 4 hours ago (limit: 2 h + 30 min)."""
    tenant, _ = scenario.seed_governance(
        conn, version, now, charters=("community", "engineering", "sustainability")
    )
    govern = scenario.add_schedule(conn, tenant, "govern")
    for hours_ago in (4, 5, 6):
        slot = now.replace(minute=0, second=0, microsecond=0) - hours_ago * H
        scenario.add_run(
            conn, version, govern, slot, "success", completed_at=slot + timedelta(minutes=3)
        )


def seeded(make_database: Callable[[str], Database], seed: Seed, schema: str) -> Database:
    database = make_database(schema)
    with database.connect() as conn:
        seed(conn, schema, datetime.now(UTC))
    return database


# --- exit statuses ---------------------------------------------------------------------


@pytest.mark.parametrize("schema", [SCHEMA_2026_02, SCHEMA_2026_03])
def test_a_healthy_node_is_ok_with_a_table(
    make_database: Callable[[str], Database], schema: str
) -> None:
    database = seeded(make_database, healthy, schema)
    result = run_check(database.monitor_url)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("GOVERNANCE OK - account cogni_system: 0 problems")
    assert lines[1].startswith("credit GREEN: balance 500,000,000 credits ($50.00), runway ")
    header = next(i for i, line in enumerate(lines) if line.startswith("charter"))
    rows = lines[header + 1 : header + 5]
    assert [row.split()[:3] for row in rows] == [
        [name, "GREEN", "yes"] for name in ("govern", "community", "engineering", "sustainability")
    ]
    assert "problems:" not in result.stdout
    assert result.stderr == ""  # logs stay quiet unless --log-level DEBUG


@pytest.mark.parametrize(
    ("seed", "expected"),
    [
        (yellow_runway, {("yellow", "credit", "GovernanceCreditRunwayLow")}),
        (one_failed_run, {("yellow", "engineering", "GovernanceRunsFailing")}),
        (paused_schedule, {("yellow", "community", "GovernanceScheduleDisabled")}),
        (nothing_spent, {("yellow", "credit", "GovernanceNoSpend")}),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_warnings_exit_1(
    make_database: Callable[[str], Database], seed: Seed, expected: set[tuple[str, str, str]]
) -> None:
    database = seeded(make_database, seed, SCHEMA_2026_03)
    status, report = check_json(database.monitor_url)
    assert status == 1
    assert report["status"] == "yellow"
    assert report["exit_code"] == 1
    assert alerts(report) == expected


def test_a_failure_followed_by_successes_is_recovered_and_green(
    make_database: Callable[[str], Database],
) -> None:
    """Now versus the window (issue 23): the failure stays in the window's counts,
    but the charter has succeeded since, so it no longer colours the verdict."""
    database = seeded(make_database, one_recovered_failure, SCHEMA_2026_03)
    status, report = check_json(database.monitor_url)
    assert (status, report["status"], report["problems"]) == (0, "green", [])
    (recovered,) = report["recovered"]
    assert (recovered["subject"], recovered["alert"]) == ("engineering", "GovernanceRunsFailing")
    assert re.match(
        r"1 run failed in the last 24 h, last 5 h( 1 min)? ago: timeout 1", recovered["message"]
    ), recovered["message"]
    assert "recovered: succeeded" in recovered["message"]
    text = run_check(database.monitor_url)
    assert text.returncode == 0
    assert "recovered (succeeded since; not counted):" in text.stdout
    assert re.search(
        r"engineering  1 run failed in the last 24 h, last 5 h( 1 min)? ago", text.stdout
    )


def test_a_current_failure_says_how_many_and_when(
    make_database: Callable[[str], Database],
) -> None:
    database = seeded(make_database, one_failed_run, SCHEMA_2026_03)
    status, report = check_json(database.monitor_url)
    assert status == 1
    (problem,) = report["problems"]
    assert re.fullmatch(
        r"1 run failed in the last 24 h, last (\d+ min|\d+ s) ago: timeout 1", problem["message"]
    ), problem["message"]
    assert report["recovered"] == []


def test_yellow_runway_in_words(make_database: Callable[[str], Database]) -> None:
    database = seeded(make_database, yellow_runway, SCHEMA_2026_03)
    result = run_check(database.monitor_url)
    assert result.returncode == 1
    assert result.stdout.startswith("GOVERNANCE WARNING - account cogni_system: 1 problem ")
    credit = result.stdout.splitlines()[1]
    assert credit.startswith("credit YELLOW: balance 50,000,000 credits ($5.00), runway 12.")
    assert " hours, burn " in credit
    assert "YELLOW  credit" in result.stdout
    assert "is at or below 24 h" in result.stdout


def test_nothing_spent_reports_an_unbounded_runway(
    make_database: Callable[[str], Database],
) -> None:
    database = seeded(make_database, nothing_spent, SCHEMA_2026_03)
    status, report = check_json(database.monitor_url)
    assert status == 1
    assert report["credit"]["health"] == "green"  # the thresholds alone say green
    assert report["credit"]["runway_seconds"] is None  # +Inf has no JSON number
    assert report["credit"]["spent_credits"] == 0
    text = run_check(database.monitor_url).stdout
    assert "runway ∞ — nothing spent in the window" in text


@pytest.mark.parametrize(
    ("seed", "schema", "expected"),
    [
        (
            replayed_incident,
            SCHEMA_2026_03,
            {("red", "credit", "GovernanceCreditRunwayLow")}
            | {("red", c, "GovernanceCharterStalled") for c in scenario.CHARTER_CRONS}
            | {("yellow", c, "GovernanceRunsFailing") for c in scenario.CHARTER_CRONS},
        ),
        (
            incident_without_schedule_rows,
            SCHEMA_2026_02,
            {("red", "credit", "GovernanceCreditRunwayLow")}
            | {("red", c, "GovernanceCharterMissing") for c in scenario.CHARTER_CRONS},
        ),
        (stalled_charter, SCHEMA_2026_03, {("red", "govern", "GovernanceCharterStalled")}),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_critical_exits_2(
    make_database: Callable[[str], Database],
    seed: Seed,
    schema: str,
    expected: set[tuple[str, str, str]],
) -> None:
    database = seeded(make_database, seed, schema)
    status, report = check_json(database.monitor_url)
    assert status == 2
    assert report["status"] == "red"
    assert alerts(report) == expected


def test_the_real_incident_in_words(make_database: Callable[[str], Database]) -> None:
    database = seeded(make_database, incident_without_schedule_rows, SCHEMA_2026_02)
    result = run_check(database.monitor_url)
    assert result.returncode == 2
    assert result.stdout.startswith("GOVERNANCE CRITICAL - account cogni_system: 5 problems")
    assert "credit RED: balance 0 credits ($0.00), runway 0 — no credits left" in result.stdout
    assert "govern          RED     not configured" in result.stdout
    assert "every governance run is rejected with insufficient_credits" in result.stdout


def test_a_stalled_charter_says_for_how_long(make_database: Callable[[str], Database]) -> None:
    database = seeded(make_database, stalled_charter, SCHEMA_2026_03)
    _status, report = check_json(database.monitor_url)
    (problem,) = report["problems"]
    assert problem["message"].startswith("no successful run for ")
    assert "(runs every 1 h; stalled after 2 intervals + 30 min)" in problem["message"]
    govern = next(c for c in report["charters"] if c["charter"] == "govern")
    assert govern["health"] == "red"
    others = [c["health"] for c in report["charters"] if c["charter"] != "govern"]
    assert others == ["green", "green", "green"]


# --- unreadable: exit 3 ------------------------------------------------------------------


def test_database_down_is_unknown_with_the_cause() -> None:
    url = f"postgresql://governance_exporter:{MONITOR_PASSWORD}@127.0.0.1:{free_port()}/cogni"
    result = run_check(url)
    assert result.returncode == 3
    # the cause is in the error itself now: no second connection to explain it
    (first,) = result.stdout.splitlines()
    assert first.startswith("GOVERNANCE UNKNOWN - database unreachable (host_unreachable): ")
    assert "Connection refused" in first
    assert first.endswith("; check reads once and does not retry: run it again once this is fixed")
    assert "trying again at the next collection" not in first
    assert MONITOR_PASSWORD not in result.stdout + result.stderr


def test_a_server_stopped_under_a_seeded_database_is_unknown_in_json() -> None:
    with local_postgres() as server:
        assert server is not None
        database = create_database(server.admin_url, SCHEMA_2026_03)
        with database.connect() as conn:
            healthy(conn, SCHEMA_2026_03, datetime.now(UTC))
        assert run_check(database.monitor_url).returncode == 0
        server.stop()
        status, report = check_json(database.monitor_url)
        assert status == 3
        assert report["status"] == "unknown"
        assert report["error"]["reason"] == "host_unreachable"
        assert report["error"]["summary"] == "database unreachable"
        server.start()
        assert run_check(database.monitor_url).returncode == 0


def test_wrong_password_is_unknown_and_never_printed(
    make_database: Callable[[str], Database],
) -> None:
    database = make_database(SCHEMA_2026_03)
    wrong = database.monitor_url.replace(MONITOR_PASSWORD, "not-the-password-Yq3")
    result = run_check(wrong)
    assert result.returncode == 3
    assert "password authentication failed" in result.stdout
    assert "not-the-password-Yq3" not in result.stdout + result.stderr
    # a one-shot command makes no next attempt: none of the server's back-off words
    (first,) = result.stdout.splitlines()
    assert first.endswith(
        "; check reads once and does not retry: run it again once this is fixed"
    ), first
    for server_words in ("next attempt", "back-off", "doubling", "trying again"):
        assert server_words not in result.stdout
    status, report = check_json(wrong)
    assert status == 3
    assert report["error"]["reason"] == "authentication_failed"
    assert report["error"]["message"].endswith("does not retry: run it again once this is fixed")
    assert "next attempt" not in report["error"]["message"]


def test_rows_hidden_by_row_level_security_are_unknown_not_fine(
    make_database: Callable[[str], Database],
) -> None:
    database = seeded(make_database, healthy, SCHEMA_2026_03)
    status, report = check_json(database.monitor_url, "--rls-user-id", "someone-else")
    assert status == 3
    assert report["error"]["reason"] == "account_not_visible"
    assert "row-level security" in report["error"]["summary"]


def test_a_bad_option_is_still_a_usage_error() -> None:
    result = run_check("postgresql://x@127.0.0.1:1/x", "--output", "yaml")
    assert result.returncode == 2
    assert "invalid choice: 'yaml'" in result.stderr
    assert result.stdout == ""

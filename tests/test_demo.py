"""``governance-exporter demo`` and its driver, for real.

The driver is stepped with a simulated clock against the session's PostgreSQL to
check both stories: today's node (healthy → provider unfunded → balance under one
run's cost → topped up → webhook plane stopped → resumed; its ledger's epochs
moved on by each collect, its receipts, and ``check``'s verdict on its ledger in
each phase) and the February one (green → yellow → red → runs rejected with
``insufficient_credits`` → topped up → green), and that its clock agrees with
itself: rows on their crons, nothing dated in the future, the repo-spec declaring
what the rows say. The command itself runs as a process with its own throwaway
PostgreSQL, the exporter, and Debian's Prometheus and Alertmanager: every URL it
prints must answer, its exporter must show the story, the alerts must be the
story's and no false ones, and Ctrl-C at any moment (or even ``kill -9``) must
leave no server and no temporary directory behind.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import yaml
from harness import REPO, Database, free_port, samples
from psycopg import sql
from stack import wait_for

from exporter.demo import node
from exporter.demo.command import check_command
from exporter.demo.driver import (
    DemoDriver,
    DriverOptions,
    Phase,
    RunEvent,
)
from exporter.demo.localpg import throwaway_postgres
from exporter.demo.pager import NotificationLog, WebhookReceiver, describe_notification
from exporter.demo.scenario import CHARTER_CRONS, SYSTEM_SLUG, runs_table
from exporter.demo.stack import (
    FASTEST_FACTOR,
    RepoFiles,
    find_alertmanager,
    find_prometheus,
    parse_duration,
)
from exporter.policy import Health, credit_health
from exporter.repospec import parse_repo_spec
from exporter.settings import DEFAULT_MIN_RUN_COST_CREDITS, Settings
from exporter.snapshot import SCHEMA_2026_02, SCHEMA_2026_03, SCHEMA_2026_08, SCHEMA_2026_10
from exporter.startup import UsageError

ACCOUNT = frozenset({("account", SYSTEM_SLUG)})
DEMO_TIMEOUT = 120  # generous: the fast demos below reach red in about 25 s
FEBRUARY = node.NODE_FEBRUARY
UNCHARGED = ("ledger_ingest", node.RECEIPT_NAME)  # no LLM called: they go on in the outages


class SimulatedClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def _changes(values: list[Health]) -> list[Health]:
    """The values without consecutive repeats: the colours the runway went through."""
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


@dataclass
class Drive:
    colours: list[Health]  # after seeding, then after each step
    events: list[RunEvent]
    phases: list[Phase]  # the story's phase each event was written in
    now: datetime  # the simulated clock at the end


def _drive(
    database: Database,
    options: DriverOptions,
    steps: int,
    every: timedelta | None = None,
    start: datetime | None = None,
) -> Drive:
    clock = SimulatedClock(start or datetime.now(UTC))
    driver = DemoDriver(database.url, options, clock=clock)
    drive = Drive([], [], [], clock())
    try:
        driver.seed()
        drive.colours.append(driver.credit_state(clock()).health)
        for _ in range(steps):
            clock.advance(every or options.run_gap)
            events = driver.step()
            drive.events += events
            drive.phases += [driver.phase] * len(events)
            drive.colours.append(driver.credit_state(clock()).health)
    finally:
        driver.close()
    drive.now = clock()
    return drive


def _newest_timestamps(database: Database) -> list[datetime]:
    """The newest of every timestamp column the driver writes."""
    runs = sql.Identifier(runs_table(database.schema))
    queries = [
        sql.SQL("SELECT max(started_at), max(completed_at), max(scheduled_for) FROM {}").format(
            runs
        ),
        sql.SQL(
            "SELECT max(created_at), NULL::timestamptz, NULL::timestamptz FROM charge_receipts"
        ),
    ]
    if database.schema in (SCHEMA_2026_10, SCHEMA_2026_08):
        queries.append(
            sql.SQL("SELECT max(retrieved_at), NULL::timestamptz, NULL FROM ingestion_cursors")
        )
    if database.schema == SCHEMA_2026_08:
        queries.append(
            sql.SQL(
                "SELECT max(ingested_at), max(opened_at), max(closed_at) FROM ingestion_receipts,"
                " epochs"
            )
        )
    found = []
    with database.connect() as conn:
        for query in queries:
            row = conn.execute(query).fetchone()
            assert row is not None
            found += [value for value in row if value is not None]
    return found


def test_a_demo_cron_fires_on_the_demo_cadence() -> None:
    # At 60x an hourly schedule runs once a real minute, and says so.
    assert node.demo_cron(60) == "* * * * *"
    assert node.demo_cron(60, 15) == "15 * * * * *"
    assert node.demo_cron(6) == "*/6 * * * * *"
    assert node.demo_cron(1440, 360) == "6-59/20 * * * *"  # a demo day at 60x: 20 min
    assert node.demo_cron(3600) == "0 * * * *"
    for period in (1, 1.5, 6, 7, 30, 59, 61, 144, 1440, 3600, 5000, 86400):
        for offset in (0, period / 4, period / 3):
            cron = node.demo_cron(period, offset)
            real = node.period_seconds(cron)
            assert real <= max(period, 1), (period, cron)
            assert real >= period / 2.5, (period, cron)  # the nearest a cron can do
    assert node.window_seconds(60) == 1440
    assert node.window_seconds(600) == 144


@pytest.mark.parametrize("database", [SCHEMA_2026_02, SCHEMA_2026_03], indirect=True)
def test_the_february_driver_drains_green_yellow_red_rejects_runs_then_tops_up(
    database: Database,
) -> None:
    # 16 runs drain the account, 4 more are rejected (1 min at 60x), then the top-up.
    options = DriverOptions(
        node=FEBRUARY, speed=60, drain_seconds=240, outage_seconds=60, failure_rate=0, seed=1
    )
    drive = _drive(database, options, steps=30)
    colours, events, now = drive.colours, drive.events, drive.now

    assert _changes(colours) == [Health.GREEN, Health.YELLOW, Health.RED, Health.GREEN]
    first_rejected = next(i for i, e in enumerate(events) if e.reason == "insufficient_credits")
    # Yellow after about 1/6 of the drain, red after about 2/3, empty after it all.
    assert 14 <= first_rejected <= 18
    assert 2 <= colours.index(Health.YELLOW) <= 5
    assert 9 <= colours.index(Health.RED) <= 13
    rejected = [e for e in events if e.reason == "insufficient_credits"]
    assert all(e.charged == 0 and e.balance <= 0 for e in rejected)
    assert 3 <= len(rejected) <= 5
    assert all(e.status == "success" for e in events[:first_rejected])
    assert events[-1].status == "success"  # topped up
    assert events[-1].balance > 0
    assert max(_newest_timestamps(database)) <= now

    with database.connect() as conn:
        runs = conn.execute(
            sql.SQL("SELECT status, error_message, count(*) FROM {} GROUP BY 1, 2").format(
                sql.Identifier(runs_table(database.schema))
            )
        ).fetchall()
    counted = {(status, message): n for status, message, n in runs}
    assert counted[("error", "insufficient_credits")] == len(rejected)
    # A demo day of history: 24 demo hours of 4 charters.
    assert counted[("success", None)] == 96 + len(events) - len(rejected)


# Starts at several points of the crons' cycles (the ledger's, every 20 min at :06):
# on a clock of today, never ahead of the real one.
STARTS = [timedelta(minutes=m, seconds=s) for m, s in ((0, 0), (19, 30), (41, 17.5))]


@pytest.mark.parametrize("offset", STARTS, ids=lambda t: f"at-{t}")
@pytest.mark.parametrize(
    "database", [SCHEMA_2026_08, SCHEMA_2026_10, SCHEMA_2026_03], indirect=True
)
def test_todays_node_is_healthy_then_unfunded_then_under_one_runs_cost_then_topped_up(
    database: Database, offset: timedelta
) -> None:
    options = DriverOptions(
        speed=60, healthy_seconds=120, outage_seconds=120, webhook_seconds=120, seed=1
    )
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = midnight - timedelta(hours=2) + offset
    drive = _drive(database, options, steps=130, every=timedelta(seconds=5), start=start)
    colours, events, now = drive.colours, drive.events, drive.now
    by_phase: dict[Phase, list[RunEvent]] = {}
    for event, phase in zip(events, drive.phases, strict=True):
        by_phase.setdefault(phase, []).append(event)
    assert list(by_phase) == [
        Phase.HEALTHY,
        Phase.PROVIDER_DOWN,
        Phase.LOW_BALANCE,
        Phase.RECOVERED,
        Phase.WEBHOOK_DOWN,
        Phase.WEBHOOK_BACK,
    ]
    healthy = by_phase[Phase.HEALTHY] + by_phase[Phase.RECOVERED] + by_phase[Phase.WEBHOOK_BACK]
    assert {e.status for e in healthy} == {"success"}
    delivered = {"pr_review", node.RECEIPT_NAME} if database.schema == SCHEMA_2026_08 else set()
    assert {e.charter for e in healthy} >= {"heartbeat", "pr_review"} | delivered
    assert {e.charter for e in by_phase[Phase.WEBHOOK_BACK]} >= {"pr_review"} | delivered
    # The webhook plane stopped: no receipts, no PR reviews; the heartbeat and the
    # collect go on.
    stopped = {e.charter for e in by_phase[Phase.WEBHOOK_DOWN]}
    assert "heartbeat" in stopped
    assert not stopped & {"pr_review", node.RECEIPT_NAME}
    provider = [e for e in by_phase[Phase.PROVIDER_DOWN] if e.charter not in UNCHARGED]
    assert {e.charter for e in provider} == {"heartbeat", "pr_review"}
    assert {e.reason for e in provider} == {"provider_unavailable"}
    assert all(e.charged == 0 for e in provider)
    low = [e for e in by_phase[Phase.LOW_BALANCE] if e.charter not in UNCHARGED]
    # The ledger's collections call no LLM and charge nothing: they go on throughout.
    ledger = [e for e in events if e.charter in UNCHARGED]
    assert {(e.status, e.charged) for e in ledger} <= {("success", 0)}
    assert {e.charter for e in low} == {"heartbeat", "pr_review"}
    assert {e.reason for e in low} == {"insufficient_credits"}
    assert all(0 < e.balance < DEFAULT_MIN_RUN_COST_CREDITS for e in low)
    # Credits: green, red under one run's cost (the balance positive), green again.
    assert _changes(colours) == [Health.GREEN, Health.RED, Health.GREEN]
    assert max(_newest_timestamps(database)) <= now

    with database.connect() as conn:
        rows = conn.execute(
            "SELECT temporal_schedule_id, cron, enabled, next_run_at IS NULL FROM schedules"
            " ORDER BY 1"
        ).fetchall()
        heartbeat_slots = conn.execute(
            "SELECT r.scheduled_for FROM graph_runs r JOIN schedules s ON s.id = r.schedule_id"
            " WHERE s.temporal_schedule_id = 'governance:heartbeat' ORDER BY 1"
        ).fetchall()
        charged = conn.execute(
            "SELECT count(*) FROM charge_receipts c JOIN graph_runs r ON r.run_id = c.run_id"
            " WHERE r.schedule_id IS NULL AND r.run_kind = 'system_webhook'"
        ).fetchone()
        cursors = (
            conn.execute("SELECT max(retrieved_at) FROM ingestion_cursors").fetchone()
            if database.schema in (SCHEMA_2026_10, SCHEMA_2026_08)
            else None
        )
    works = {w.name: w for w in options.works()}
    schedules = {str(tsid).removeprefix("governance:"): rest for tsid, *rest in rows}
    assert schedules == {
        "heartbeat": [works["heartbeat"].cron, True, False],
        "ledger_ingest": [works["ledger_ingest"].cron, True, False],
        # The four February charters, pruned by the boot sync: retired.
        **{charter: [cron, False, True] for charter, cron in CHARTER_CRONS.items()},
    }
    # The heartbeat ran on its cron: one demo hour (1 real minute) apart.
    gaps = {b[0] - a[0] for a, b in itertools.pairwise(heartbeat_slots)}
    assert gaps == {timedelta(minutes=1)}
    assert charged is not None
    assert charged[0] > 0
    if cursors is not None:
        assert cursors[0] is not None
        # Moved by the ledger's newest collection, which ran on its cron.
        period = works["ledger_ingest"].period
        newest = max(node.fires(works["ledger_ingest"].cron, now - period, now))
        assert newest <= cursors[0] <= now
    # The repo-spec the demo writes declares exactly these rows: no drift.
    declared = parse_repo_spec(node.repo_spec_text(options.speed), Path("repo-spec.yaml"))
    assert {d.charter: [d.cron, d.timezone] for d in declared} == {
        "heartbeat": [works["heartbeat"].cron, "UTC"],
        "ledger_ingest": [works["ledger_ingest"].cron, "UTC"],
    }


def _demo_check(database: Database, options: DriverOptions, root: Path) -> dict[str, object]:
    """``check --output json`` on the node as the demo's exporter reads it: its window
    and the ledger's options in demo time, its repo-spec."""
    spec = root / "repo-spec.yaml"
    spec.write_text(node.repo_spec_text(options.speed))
    flags = [
        f"--{k.replace('_', '-')}={v}" for k, v in node.exporter_overrides(options.speed).items()
    ]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GOVERNANCE_EXPORTER_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "check",
            "--output",
            "json",
            "--repo-spec",
            str(spec),
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, "GOVERNANCE_EXPORTER_DATABASE_URL": database.monitor_url},
        cwd=REPO,
        check=False,
    )
    assert result.stdout, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


LEDGER_STORY = DriverOptions(
    speed=60, healthy_seconds=60, outage_seconds=30, webhook_seconds=150, seed=4
)
# Where each drive below stops (seconds after the story starts), and the phase then:
# still healthy; two minutes into the webhook plane's stop (silent after 4 gaps of a
# quarter demo hour: 60 s); half a minute after it resumed.
LEDGER_STOPS = {
    Phase.HEALTHY: 50,
    Phase.WEBHOOK_DOWN: 60 + 30 + 30 + 60 + 120,
    Phase.WEBHOOK_BACK: 60 + 30 + 30 + 60 + 150 + 30,
}


@pytest.mark.parametrize("phase", list(LEDGER_STOPS), ids=lambda p: p.name.lower())
def test_todays_node_keeps_a_ledger_that_check_judges_by_the_story(
    make_database: Callable[[str], Database], tmp_path: Path, phase: Phase
) -> None:
    """Epochs moved on time by each collect and receipts each quarter demo hour: no
    ledger problem while healthy; the webhook plane's stop is
    GovernanceLedgerWebhookSilent, naming the PR reviews; gone once it resumes."""
    database = make_database(SCHEMA_2026_08)
    seconds = LEDGER_STOPS[phase]
    start = datetime.now(UTC) - timedelta(seconds=seconds)
    drive = _drive(
        database, LEDGER_STORY, steps=seconds // 5, every=timedelta(seconds=5), start=start
    )
    assert drive.phases[-1] == phase
    report = _demo_check(database, LEDGER_STORY, tmp_path)
    ledger_problems = {
        (str(p["health"]), str(p["alert"])): str(p["message"])
        for p in report["problems"]  # type: ignore[attr-defined]
        if str(p["alert"]).startswith("GovernanceLedger")
    }
    (stream,) = report["ledger"]["streams"]  # type: ignore[index]
    # An ended window waits for the next collect (06:00 of a demo day), never longer.
    (collect,) = [w for w in LEDGER_STORY.works() if w.kind == node.LEDGER]
    grace = node.exporter_overrides(LEDGER_STORY.speed)["ledger_collect_grace_seconds"]
    assert stream["collect_overdue_seconds"] < collect.period.total_seconds() + grace
    statuses = stream["epochs_by_status"]
    assert statuses["open"] == 1
    assert statuses.get("review", 0) <= 1
    assert statuses["finalized"] >= 1
    if phase == Phase.WEBHOOK_DOWN:
        assert list(ledger_problems) == [("red", "GovernanceLedgerWebhookSilent")]
        assert "PR review" in next(iter(ledger_problems.values()))
    else:
        assert ledger_problems == {}
    if phase == Phase.HEALTHY:
        assert report["problems"] == []
    assert max(_newest_timestamps(database)) <= drive.now


def test_a_second_driver_picks_up_the_node(make_database: Callable[[str], Database]) -> None:
    database = make_database(SCHEMA_2026_10)
    options = DriverOptions(speed=60, seed=2)
    _drive(database, options, steps=3, every=timedelta(seconds=30))
    # Its clock starts where the first began: it resumes after the newest slots.
    again = _drive(database, options, steps=6, every=timedelta(seconds=30))
    assert {e.charter for e in again.events} >= {"heartbeat", "pr_review"}
    assert again.colours[0] == Health.GREEN
    with database.connect() as conn:
        accounts = conn.execute("SELECT count(*) FROM billing_accounts").fetchone()
        schedules = conn.execute("SELECT count(*) FROM schedules").fetchone()
    assert accounts == (1,)
    assert schedules == (6,)  # heartbeat, ledger_ingest and the four retired


def test_notifications_are_described_one_line_per_alert() -> None:
    payload = {
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "GovernanceCreditRunwayLow",
                    "severity": "critical",
                    "account": "cogni_system",
                },
                "annotations": {"summary": "No credits left."},
            }
        ],
    }
    assert describe_notification("pager", payload) == [
        "PAGE firing GovernanceCreditRunwayLow [critical] account=cogni_system - No credits left."
    ]


def _alert(name: str, status: str, *, fingerprint: str | None = None, **labels: str) -> dict:
    """One alert as Alertmanager's webhook (payload version 4) carries it."""
    alert = {
        "status": status,
        "labels": {"alertname": name, "severity": "critical", **labels},
        "annotations": {"summary": f"{name} summary", "description": "…"},
        "startsAt": "2026-12-07T10:00:00Z",
        "endsAt": "2026-12-07T10:30:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
    }
    if fingerprint is not None:
        alert["fingerprint"] = fingerprint
    return alert


def _notification(receiver: str, *alerts: dict) -> dict:
    """A group's notification as Alertmanager posts it: every alert of the group."""
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": '{}:{alertname="x"}',
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": receiver,
        "groupLabels": {"account": "cogni_system"},
        "commonLabels": {"account": "cogni_system"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def _post(url: str, payload: dict) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_each_alert_is_logged_once_as_it_fires_and_once_as_it_resolves(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Alertmanager re-sends a group's firing alerts with each notification of the group
    (a new alert joining it, repeat_interval): a re-send says so, and is no new page."""
    down = {"account": "cogni_system", "fingerprint": "a1"}
    runway = {"account": "cogni_system", "fingerprint": "b2"}
    by_labels = {"account": "cogni_system", "charter": "heartbeat"}  # no fingerprint
    sent = [
        ("pager", [_alert("ProviderDown", "firing", **down)]),
        # A new alert joins the group: Alertmanager sends both.
        (
            "pager",
            [_alert("ProviderDown", "firing", **down), _alert("RunwayLow", "firing", **runway)],
        ),
        ("ticket", [_alert("RunsFailing", "firing", **by_labels)]),
        # repeat_interval: the same group again, unchanged.
        (
            "pager",
            [_alert("ProviderDown", "firing", **down), _alert("RunwayLow", "firing", **runway)],
        ),
        ("ticket", [_alert("RunsFailing", "firing", **by_labels)]),
        (
            "pager",
            [_alert("ProviderDown", "resolved", **down), _alert("RunwayLow", "firing", **runway)],
        ),
        (
            "pager",
            [_alert("ProviderDown", "resolved", **down), _alert("RunwayLow", "resolved", **runway)],
        ),
        ("ticket", [_alert("RunsFailing", "resolved", **by_labels)]),
        # The same alert again, later: a new firing.
        ("pager", [_alert("ProviderDown", "firing", **down)]),
    ]
    with (
        caplog.at_level(logging.DEBUG, logger="exporter.demo.pager"),
        WebhookReceiver("127.0.0.1", 0, NotificationLog()) as receiver,
    ):
        for name, alerts in sent:
            _post(receiver.url_for(name), _notification(name, *alerts))
    logged = [(r.levelname, r.getMessage().split(" - ")[0]) for r in caplog.records]
    assert logged == [
        ("WARNING", "PAGE firing ProviderDown [critical] account=cogni_system"),
        ("INFO", "PAGE still firing (re-sent) ProviderDown [critical] account=cogni_system"),
        ("WARNING", "PAGE firing RunwayLow [critical] account=cogni_system"),
        ("WARNING", "TICKET firing RunsFailing [critical] account=cogni_system charter=heartbeat"),
        ("INFO", "PAGE still firing (re-sent) ProviderDown [critical] account=cogni_system"),
        ("INFO", "PAGE still firing (re-sent) RunwayLow [critical] account=cogni_system"),
        (
            "INFO",
            "TICKET still firing (re-sent) RunsFailing [critical] account=cogni_system "
            "charter=heartbeat",
        ),
        ("WARNING", "PAGE resolved ProviderDown [critical] account=cogni_system"),
        ("INFO", "PAGE still firing (re-sent) RunwayLow [critical] account=cogni_system"),
        ("DEBUG", "PAGE still resolved (re-sent) ProviderDown [critical] account=cogni_system"),
        ("WARNING", "PAGE resolved RunwayLow [critical] account=cogni_system"),
        (
            "WARNING",
            "TICKET resolved RunsFailing [critical] account=cogni_system charter=heartbeat",
        ),
        ("WARNING", "PAGE firing ProviderDown [critical] account=cogni_system"),
    ]
    # Each alert: one page (or ticket) per firing, one line per resolution.
    new = [m for level, m in logged if level == "WARNING"]
    assert len([m for m in new if m.startswith(("PAGE firing", "TICKET firing"))]) == 4


def test_a_page_and_a_ticket_for_the_same_alert_are_two_notifications(
    caplog: pytest.LogCaptureFixture,
) -> None:
    alert = _alert("RunsFailing", "firing", fingerprint="c3", charter="heartbeat")
    pager = NotificationLog()
    with caplog.at_level(logging.INFO, logger="exporter.demo.pager"):
        pager("pager", _notification("pager", alert))
        pager("ticket", _notification("ticket", alert))
    assert [r.getMessage().split(" [")[0] for r in caplog.records] == [
        "PAGE firing RunsFailing",
        "TICKET firing RunsFailing",
    ]


def test_a_driver_error_is_logged_and_stops_the_demo(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = DemoDriver("", DriverOptions(speed=3600))  # never connects: step() is broken

    def broken() -> list[RunEvent]:
        raise ValueError("a bug in step()")

    monkeypatch.setattr(driver, "step", broken)
    stop = threading.Event()  # what the demo waits on
    thread = threading.Thread(target=driver.run, args=(stop,), daemon=True)
    with caplog.at_level(logging.ERROR, logger="exporter.demo.driver"):
        thread.start()
        thread.join(10)
    assert not thread.is_alive()
    assert stop.is_set()
    assert isinstance(driver.failure, ValueError)
    assert driver.describe_failure() == "a bug in step()"
    assert [r.exc_info is not None for r in caplog.records if "failed" in r.getMessage()] == [True]


def _demo_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "demo", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def test_demo_help_shows_only_what_the_demo_takes() -> None:
    result = _demo_cli("--help")
    assert result.returncode == 0
    for own in ("--node", "--speed", "--healthy-minutes", "--outage-minutes", "--schema"):
        assert own in result.stdout
    # It makes its own database, repo-spec and window (one demo day).
    for other in ("--database-url", "--repo-spec", "--window-seconds", "--expected-charters"):
        assert other not in result.stdout
    # Its defaults are its own: the exporter listens on a free loopback port.
    listen = re.search(r"--listen-address ADDRESS\s+(.*?)\[env", result.stdout, re.S)
    assert listen is not None, result.stdout
    assert "(default: a free port on 127.0.0.1)" in " ".join(listen.group(1).split())
    assert "10215" not in result.stdout


def test_the_check_command_reads_what_the_exporter_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every check option the exporter's settings set, from a flag or the environment,
    is on the command line, and the command line gives check those settings back."""
    from exporter.cli import build_parser, overrides_from  # noqa: PLC0415

    monkeypatch.setenv("GOVERNANCE_EXPORTER_MIN_RUN_COST_CREDITS", "2500000")
    spec = tmp_path / "a dir" / "repo-spec.yaml"
    settings = Settings(
        database_url="host=127.0.0.1 port=5 dbname=cogni user=m password=p w",
        window_seconds=144,
        repo_spec=spec,
        listen_address="127.0.0.1:1",  # serve's, not check's
        expected_charters=("govern", "community"),
    )
    command = check_command(settings, ["governance-exporter"])
    words = shlex.split(command)
    assert words[:2] == ["governance-exporter", "check"]
    assert "--listen-address" not in words
    monkeypatch.delenv("GOVERNANCE_EXPORTER_MIN_RUN_COST_CREDITS")
    args, extra = build_parser("check").parse_known_args(words[1:])
    assert extra == []
    again = Settings(**overrides_from(args))
    for name in ("database_url", "window_seconds", "repo_spec", "min_run_cost_credits"):
        assert getattr(again, name) == getattr(settings, name), name
    assert again.expected_charters == ("govern", "community")
    assert again.min_run_cost_credits == 2_500_000


def test_a_schema_that_cannot_hold_the_node_is_one_line_and_exit_2() -> None:
    result = _demo_cli("--schema", SCHEMA_2026_02, "--no-prometheus")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "governance-exporter: error: --schema 2026-02 cannot hold the current node: use "
        "2026-08-full or 2026-10 or 2026-03"
    ]


def test_the_demo_needs_a_checkout(tmp_path: Path) -> None:
    assert RepoFiles.find().root == REPO
    with pytest.raises(UsageError, match="checkout"):
        RepoFiles.find(tmp_path)


def test_a_throwaway_postgres_restarts_and_leaves_nothing_behind() -> None:
    with throwaway_postgres(settings={"max_connections": "37"}) as server:
        root = server.root
        with psycopg.connect(server.admin_url) as conn:
            assert conn.execute("SHOW max_connections").fetchone() == ("37",)
        assert server.server is not None
        first = server.server.pid
        server.stop()
        assert not server.accepts_connections()
        server.start()
        assert server.accepts_connections()
        second = server.server.pid
    assert not root.exists()
    assert _alive({first, second}) == set()


# --- the command as a process ----------------------------------------------------------


def _process_table() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, state) for every process."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        table[int(stat.parent.name)] = (int(fields[1]), fields[0])
    return table


def _descendants(pid: int) -> set[int]:
    table = _process_table()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        children = {p for p, (parent, _) in table.items() if parent in frontier} - found
        found |= children
        frontier = children
    return found


def _alive(pids: set[int]) -> set[int]:
    table = _process_table()
    return {p for p in pids if p in table and table[p][1] != "Z"}


class Demo:
    """``governance-exporter demo`` as a process whose output is collected by a thread."""

    def __init__(self, *args: str, new_session: bool = False) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "demo", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            start_new_session=new_session,  # its own process group, like a terminal's job
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = DEMO_TIMEOUT) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r}; output:\n{self.output()[-6000:]}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(10)
        return self.process.returncode


@pytest.fixture
def demo_args() -> list[str]:
    if find_prometheus() is None:
        pytest.fail("the prometheus binary is not on PATH (apt-get install prometheus)")
    if find_alertmanager() is None:
        pytest.fail(
            "the alertmanager binary is not on PATH (apt-get install prometheus-alertmanager)"
        )
    return ["--speed", "600", "--outage-minutes", "0.3", "--seed", "3"]


def _metrics(metrics_url: str) -> dict[str, dict[frozenset[tuple[str, str]], float]] | None:
    try:
        with urllib.request.urlopen(metrics_url, timeout=10) as response:
            return samples(response.read().decode())
    except OSError:
        return None


def _colour(metrics_url: str) -> Health | None:
    parsed = _metrics(metrics_url)
    if parsed is None:
        return None
    balance = parsed.get("governance_credit_balance_credits", {}).get(ACCOUNT)
    runway = parsed.get("governance_credit_runway_seconds", {}).get(ACCOUNT)
    if balance is None or runway is None:
        return None
    return credit_health(balance, runway, min_run_cost_credits=DEFAULT_MIN_RUN_COST_CREDITS)


def _watch_colours(metrics_url: str, until: Health, timeout: float) -> list[Health]:
    seen: list[Health] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and until not in seen:
        colour = _colour(metrics_url)
        if colour is not None and (not seen or seen[-1] != colour):
            seen.append(colour)
        time.sleep(0.25)
    return seen


def _drained_in_order(colours: list[Health]) -> bool:
    """Green, then yellow, then red, nothing skipped and nothing back from red.

    In real time the runway may cross the 24 h line more than once before it
    falls for good: the burn rate is measured over a sliding window, and a run's
    charge can leave it just before the next one arrives. So green and yellow may
    alternate before red (a gauge at its threshold, which the alerts' ``for``
    absorbs); red may come only after yellow, and last.
    """
    return re.fullmatch("G(YG)*YR", "".join(c.name[0] for c in colours)) is not None


def _banner_urls(demo: Demo) -> list[tuple[str, str]]:
    """(name, URL) of each http URL in the banner, in its order."""
    demo.wait_for(r"Ctrl-C stops everything")
    found = []
    for line in demo.lines:
        if match := re.match(r"\s+([A-Za-z][A-Za-z ()-]*?)\s{2,}(http://\S+)", line):
            found.append((match.group(1), match.group(2)))
    return found


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.status), response.read()


def _failures(parsed: dict[str, dict[frozenset[tuple[str, str]], float]], reason: str) -> set[str]:
    """The charters (and run kinds) with failures of ``reason`` in the window."""
    found = set()
    for name, key in (
        ("governance_schedule_failed_runs", "charter"),
        ("governance_unscheduled_failed_runs", "run_kind"),
    ):
        for labels, value in parsed.get(name, {}).items():
            label = dict(labels)
            if label.get("reason") == reason and value > 0:
                found.add(label[key])
    return found


def _alert_names(prometheus_url: str) -> set[str]:
    _, body = _get(f"{prometheus_url}/api/v1/alerts")
    return {a["labels"]["alertname"] for a in json.loads(body)["data"]["alerts"]}


# What the retired rows, the ledger, the declaration or the demo itself must never fire.
FALSE_ALERTS = {
    "GovernanceCharterMissing",
    "GovernanceScheduleDisabled",
    "GovernanceScheduleDrift",
    "GovernanceRepoSpecUnusable",
    "GovernanceUnscheduledRunsHidden",
    "GovernanceScheduleConfigInvalid",
    "GovernanceCharterStalled",
    "GovernanceExporterDown",
    "GovernanceExporterFailing",
    "GovernanceLedgerCollectStalled",
    "GovernanceLedgerEpochAwaitingApproval",
    "GovernanceLedgerDistributionMissing",
    "GovernanceLedgerNotObservable",
    "GovernanceLedgerDispatchPaused",
}
SILENT = "GovernanceLedgerWebhookSilent"


def _ledger_problems(command: list[str]) -> set[tuple[str, str]]:
    """The ledger's problems (health, alert) the banner's ``check`` command names."""
    result = subprocess.run(
        [*command, "--output", "json"], capture_output=True, text=True, timeout=60, check=False
    )
    report = json.loads(result.stdout)
    return {
        (p["health"], p["alert"])
        for p in report["problems"]
        if p["alert"].startswith("GovernanceLedger")
    }


def _rule_for_seconds(alert: str) -> float | None:
    """The committed rule's ``for:`` in seconds (0 without one), or None when no rule
    has ``alert`` (the ledger's rules land separately from the demo)."""
    for path in (REPO / "prometheus" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == alert:
                    return parse_duration(str(rule.get("for", "0s")))
    return None


def test_the_demo_shows_todays_node_its_outage_and_its_recovery(demo_args: list[str]) -> None:
    # The webhook plane stops long enough to be called silent (a demo hour: 6 s at
    # 600x) and for the alert's scaled for: to pass, with room for the pager.
    alert_for = _rule_for_seconds(SILENT)
    stop_seconds = 36 + (alert_for or 0) * FASTEST_FACTOR
    # Healthy for 9 s (a demo hour and a half), before the outage and after the top-up:
    # nothing below waits on that phase's length. What the test reads while healthy
    # holds in the provider outage too (the balance and the ledger are untouched), and
    # the top-up's checks wait for green and read alerts that outlast the phase.
    demo = Demo(
        *demo_args, "--healthy-minutes", "0.15", "--webhook-minutes", f"{stop_seconds / 60:g}"
    )
    try:
        state = Path(demo.wait_for(r"demo state in (\S+)").group(1))
        urls = _banner_urls(demo)
        names = [name for name, _ in urls]
        # The status page first; every URL printed answers a real GET.
        assert names[:2] == ["status page", "metrics"], urls
        assert {"prometheus", "alerts (API)", "alertmanager"} <= set(names), urls
        for name, url in urls:
            status, _body = _get(url)
            assert status == 200, (name, url)
        by_name = dict(urls)
        assert by_name["alerts (API)"].endswith("/api/v1/alerts")
        prometheus_url = by_name["alerts (API)"].removesuffix("/api/v1/alerts")
        metrics_url = by_name["metrics"]
        _, page = _get(by_name["status page"])
        assert b"heartbeat" in page
        repo_spec = Path(demo.wait_for(r"repo-spec\s+(\S+)").group(1))
        assert "HEARTBEAT" in repo_spec.read_text()
        servers = _descendants(demo.process.pid)
        assert len(servers) >= 3, "PostgreSQL, Prometheus and Alertmanager"

        # What the exporter says: a current node, declared, its February rows retired.
        parsed = _metrics(metrics_url)
        assert parsed is not None
        retired = {
            dict(k)["charter"] for k, v in parsed["governance_schedule_retired"].items() if v
        }
        assert retired == {"govern", "community", "engineering", "sustainability"}
        assert set(parsed["governance_schedule_drift"].values()) == {0}
        assert set(parsed["governance_credit_window_seconds"].values()) == {144}  # a demo day

        # The story: green, the ledger too; the provider unfunded; red under one
        # run's cost; green; the webhook plane silent; delivering again.
        assert _colour(metrics_url) == Health.GREEN
        check = shlex.split(demo.wait_for(r"^\s+check\s{2,}(\S.*)$").group(1))
        assert _ledger_problems(check) == set()
        demo.wait_for(r"OUTAGE: the LLM provider account is unfunded")

        def unfunded() -> set[str] | None:
            parsed = _metrics(metrics_url)
            found = _failures(parsed, "provider_unavailable") if parsed else set()
            return found if {"heartbeat", "system_webhook"} <= found else None

        assert wait_for(unfunded, timeout=DEMO_TIMEOUT, what="provider_unavailable failures")
        colours = _watch_colours(metrics_url, until=Health.RED, timeout=DEMO_TIMEOUT)
        assert colours[-1] == Health.RED, demo.output()[-3000:]
        parsed = _metrics(metrics_url)
        assert parsed is not None
        assert 0 < parsed["governance_credit_balance_credits"][ACCOUNT] < 4_000_000
        demo.wait_for(r"PAGE firing GovernanceProviderUnavailable \[critical\]")
        demo.wait_for(r"TICKET firing GovernanceRunsFailing .*charter=heartbeat.*provider_unavail")
        demo.wait_for(r"RECOVERED: the account is topped up")
        assert _watch_colours(metrics_url, until=Health.GREEN, timeout=DEMO_TIMEOUT)[-1] == (
            Health.GREEN
        )
        # No false page from the retired rows, the ledger or the declaration.
        assert _alert_names(prometheus_url) & FALSE_ALERTS == set()
        assert "GovernanceRunsFailing" in _alert_names(prometheus_url)

        # The webhook plane stops (the 2026-06-11 incident): check and the page name it,
        # with the PR reviews; it pages; all of it ends once receipts arrive again.
        demo.wait_for(r"OUTAGE: the webhook plane refuses every delivery")
        silent = wait_for(
            lambda: _ledger_problems(check) or None,
            timeout=DEMO_TIMEOUT,
            what="check naming the webhook plane's silence",
        )
        assert silent == {("red", SILENT)}
        wait_for(
            lambda: f"({SILENT})".encode() in _get(by_name["status page"])[1],
            timeout=DEMO_TIMEOUT,
            what="the status page naming the webhook plane's silence",
        )
        if alert_for is not None:
            demo.wait_for(rf"(PAGE|TICKET) firing {SILENT} ")
        demo.wait_for(r"RECOVERED: the webhook plane delivers again")
        wait_for(
            lambda: _ledger_problems(check) == set(),
            timeout=DEMO_TIMEOUT,
            what="check clearing the webhook plane's silence",
        )
        if alert_for is not None:
            demo.wait_for(rf"(PAGE|TICKET) resolved {SILENT} ")
        assert _alert_names(prometheus_url) & FALSE_ALERTS == set()
    finally:
        returncode = demo.stop()
    # Alertmanager re-sent the firing alerts of each group as others joined it: each
    # alert was paged once as it fired (and once as it resolved), the re-sends said so.
    episodes = _notification_episodes(demo.lines)
    assert episodes, demo.output()[-3000:]
    for alert, statuses in episodes.items():
        assert all(a != b for a, b in itertools.pairwise(statuses)), (alert, statuses)
    assert returncode == 130, demo.output()[-3000:]  # Ctrl-C
    assert "Traceback" not in demo.output()
    assert "stopped; removed" in demo.output()
    assert not state.exists()
    assert _alive(servers) == set()


@dataclass(frozen=True)
class Shown:
    """What the demo's exporter shows, from one scrape and one page."""

    verdict: str  # the page's overall health
    runway_seconds: float
    balance_credits: float
    window_seconds: float
    read_at: float  # when the scrape's collection read the database, Unix time


def _shown(urls: dict[str, str]) -> Shown | None:
    parsed = _metrics(urls["metrics"])
    _, page = _get(urls["status page"])
    overall = re.search(r'<[^>]*\bid="overall"[^>]*>', page.decode())
    verdict = re.search(r'data-health="(\w+)"', overall.group(0)) if overall else None
    if (
        parsed is None
        or verdict is None
        or ACCOUNT not in parsed.get("governance_credit_runway_seconds", {})
    ):
        return None
    return Shown(
        verdict.group(1),
        parsed["governance_credit_runway_seconds"][ACCOUNT],
        parsed["governance_credit_balance_credits"][ACCOUNT],
        min(parsed["governance_credit_window_seconds"].values()),
        parsed["governance_exporter_last_success_timestamp_seconds"][frozenset()],
    )


def _shown_after(urls: dict[str, str], read_at: float) -> Shown | None:
    shown = _shown(urls)
    return shown if shown is not None and shown.read_at > read_at else None


def _same(a: Shown, b: Shown) -> bool:
    return (a.verdict, a.runway_seconds, a.balance_credits) == (
        b.verdict,
        b.runway_seconds,
        b.balance_credits,
    )


def _check_agrees(command: list[str], urls: dict[str, str]) -> dict[str, object]:
    """Runs ``command --output json`` between two readings of the exporter that agree
    (nothing changed meanwhile, the later read after check's), and compares; returns
    check's report. The node keeps running, so a reading that changed is tried again."""
    for _ in range(8):
        before = wait_for(lambda: _shown(urls), timeout=30, what="the exporter's page")
        result = subprocess.run(
            [*command, "--output", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        report = json.loads(result.stdout)
        read_at = datetime.fromisoformat(report["collected_at"]).timestamp()
        after = wait_for(
            functools.partial(_shown_after, urls, read_at),
            timeout=30,
            what="a collection after check's",
        )
        if not _same(before, after):
            continue
        assert result.returncode == report["exit_code"], result.stderr
        assert report["status"] == before.verdict
        credit = report["credit"]
        assert credit["window_seconds"] == before.window_seconds
        assert credit["balance_credits"] == before.balance_credits
        assert credit["runway_seconds"] == pytest.approx(before.runway_seconds, rel=1e-9)
        assert credit["min_run_cost_credits"] == DEFAULT_MIN_RUN_COST_CREDITS
        return dict(report)
    raise AssertionError("the exporter's readings never held still around a check")


def test_the_banners_check_command_gives_the_pages_verdict_and_runway() -> None:
    """The demo runs its exporter with a window of one demo day and its repo-spec; the
    banner's `check` command reads the node the same way, healthy and in the outage."""
    demo = Demo("--no-prometheus", "--speed", "60", "--healthy-minutes", "0.2", "--seed", "3")
    try:
        urls = dict(_banner_urls(demo))
        command = shlex.split(demo.wait_for(r"^\s+check\s{2,}(\S.*)$").group(1))
        assert command[command.index("--window-seconds") + 1] == "1440"  # one demo day
        repo_spec = Path(demo.wait_for(r"repo-spec\s+(\S+)").group(1))
        assert command[command.index("--repo-spec") + 1] == str(repo_spec)
        assert "--listen-address" not in command
        # The ledger's options in demo time: its grace of 2 demo hours, its floor of
        # one demo hour, its approvers' wait of 7 demo days.
        for flag, value in (
            ("--ledger-collect-grace-seconds", "120"),
            ("--ledger-silence-min-seconds", "60"),
            ("--ledger-review-wait-seconds", "10080"),
        ):
            assert command[command.index(flag) + 1] == value

        healthy = _check_agrees(command, urls)
        assert healthy["status"] == "green"
        assert healthy["problems"] == []
        demo.wait_for(r"run of \w+: error \(provider_unavailable\)")
        failing = _check_agrees(command, urls)
        assert failing["status"] != "green"
        assert failing["credit"]["provider_unavailable_runs"] > 0
    finally:
        returncode = demo.stop()
    assert returncode == 130, demo.output()[-3000:]


NOTIFIED = re.compile(r"\b(PAGE|TICKET) (firing|resolved) (\S+ \[\w+\] .*?) - ")


def _notification_episodes(lines: list[str]) -> dict[str, list[str]]:
    """Each alert's logged firings and resolutions, in order (re-sends are not)."""
    found: dict[str, list[str]] = {}
    for line in lines:
        if match := NOTIFIED.search(line):
            kind, status, alert = match.groups()
            found.setdefault(f"{kind} {alert}", []).append(status)
    return found


def test_the_drain_order_check_allows_a_wobble_at_24_hours_and_nothing_else() -> None:
    g, y, r = Health.GREEN, Health.YELLOW, Health.RED
    for ok in ([g, y, r], [g, y, g, y, r], [g, y, g, y, g, y, r]):
        assert _drained_in_order(ok), ok
    for bad in ([g, r], [y, r], [g, y], [g, y, r, g], [g, y, r, y], [g, y, g, r], []):
        assert not _drained_in_order(bad), bad


def test_the_february_demo_goes_green_yellow_red_pages_and_stops_cleanly_on_ctrl_c(
    demo_args: list[str],
) -> None:
    demo = Demo(*demo_args, "--node", FEBRUARY, "--drain-minutes", "0.4")
    try:
        state = Path(demo.wait_for(r"demo state in (\S+)").group(1))
        urls = dict(_banner_urls(demo))
        metrics_url = urls["metrics"]
        prometheus_url = urls["alerts (API)"].removesuffix("/api/v1/alerts")
        assert "repo-spec" not in urls
        servers = _descendants(demo.process.pid)
        assert len(servers) >= 3, "PostgreSQL, Prometheus and Alertmanager"

        colours = _watch_colours(metrics_url, until=Health.RED, timeout=DEMO_TIMEOUT)
        assert _drained_in_order(colours), (colours, demo.output()[-3000:])
        _, body = _get(f"{prometheus_url}/api/v1/targets")
        targets = json.loads(body)["data"]["activeTargets"]
        assert [t["labels"]["job"] for t in targets] == ["governance"]
        demo.wait_for(r"PAGE firing GovernanceCreditRunwayLow \[critical\] account=cogni_system")
        demo.wait_for(r"runs? of \w+: error \(insufficient_credits\)")
    finally:
        returncode = demo.stop()
    assert returncode == 130, demo.output()[-3000:]
    assert "Traceback" not in demo.output()
    assert "stopped; removed" in demo.output()
    assert not state.exists()
    assert _alive(servers) == set()


def test_sigterm_stops_the_demo_with_status_0() -> None:
    demo = Demo("--no-prometheus", "--speed", "600")
    try:
        state = Path(demo.wait_for(r"demo state in (\S+)").group(1))
        urls = _banner_urls(demo)
        assert [name for name, _ in urls] == ["status page", "metrics"]
        for _name, url in urls:
            assert _get(url)[0] == 200
        demo.process.send_signal(signal.SIGTERM)
        demo.process.wait(60)
    finally:
        returncode = demo.stop()
    assert returncode == 0, demo.output()[-3000:]
    assert not state.exists()


def test_killing_the_demo_takes_its_servers_with_it(demo_args: list[str]) -> None:
    demo = Demo(*demo_args)
    state = None
    try:
        state = Path(demo.wait_for(r"demo state in (\S+)").group(1))
        demo.wait_for(r"Ctrl-C stops everything")
        servers = _descendants(demo.process.pid)
        assert len(servers) >= 3
        assert {p.parent for p in state.glob("postgres-*/data")} != set()  # one dir holds all
        demo.process.kill()  # no clean-up code runs: the kernel's parent-death signal must
        demo.process.wait()
        deadline = time.monotonic() + 60
        while _alive(servers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _alive(servers) == set()
    finally:
        demo.stop()
        if state is not None:
            shutil.rmtree(state, ignore_errors=True)


def _wait_for_child(pid: int, name: str, timeout: float = 30) -> None:
    """Until a descendant of ``pid`` runs ``name`` (or it seems to have come and gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in _descendants(pid):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{child}/comm").read_text().strip() == name:
                    return
        time.sleep(0.02)


def _processes_mentioning(text: str) -> set[int]:
    found = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                found.add(int(cmdline.parent.name))
        except OSError:
            continue
    return _alive(found)


def _interrupt(demo: Demo, times: int = 1) -> None:
    """Ctrl-C in a terminal: SIGINT to the whole foreground process group."""
    for _ in range(times):
        os.killpg(demo.process.pid, signal.SIGINT)
        time.sleep(0.1)


# When the first Ctrl-C comes: seconds after the start, once the command's own
# code is loading (a Ctrl-C during the interpreter's own start-up, its `site`
# import, comes before any code of the command runs); or once a step of start-up
# is under way.
MOMENTS = [0.0, 0.25, 0.6, "initdb", "seeded", "prometheus"]


def _wait_until_loading(pid: int, timeout: float = 30) -> None:
    """Until the process has mapped a compiled module of the command's dependencies
    (pydantic's core, loaded with the settings): the command's code is running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if "pydantic_core" in Path(f"/proc/{pid}/maps").read_text():
                return
        time.sleep(0.005)


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
@pytest.mark.parametrize("interrupts", [1, 2])
def test_ctrl_c_at_any_moment_of_start_up_exits_130_without_a_traceback(
    moment: float | str, interrupts: int
) -> None:
    """Ctrl-C in a terminal signals the whole foreground process group: initdb, run
    as soon as the demo logs its state directory, must not be killed by it (it would
    fail, and the demo with it) but leave the demo to stop at its next step; a second
    Ctrl-C interrupts start-up at once. Either way: exit 130, no traceback, nothing
    left behind."""
    args = [] if moment == "prometheus" else ["--no-prometheus"]
    if moment == "prometheus" and find_prometheus() is None:
        pytest.fail("the prometheus binary is not on PATH (apt-get install prometheus)")
    demo = Demo(*args, new_session=True)
    state = None
    try:
        if isinstance(moment, float):
            started = time.monotonic()
            _wait_until_loading(demo.process.pid)
            time.sleep(max(0.0, moment - (time.monotonic() - started)))
        elif moment == "initdb":
            demo.wait_for(r"demo state in (\S+)")
            _wait_for_child(demo.process.pid, "initdb")
        elif moment == "seeded":
            demo.wait_for(r"seeded a Cogni node")
        else:
            demo.wait_for(r"demo node: balance")
            _wait_for_child(demo.process.pid, "prometheus")
        _interrupt(demo, interrupts)
        demo.process.wait(90)
        demo.stop()
        output = demo.output()
        if interrupts == 2 and isinstance(moment, float):
            # Both while the command line loads: after the first, the command stops
            # (cli.main) with the default SIGINT handler back, so the second may end it
            # by the signal itself, which a shell also reports as 130.
            assert demo.process.returncode in (130, -signal.SIGINT), output[-3000:]
        else:
            assert demo.process.returncode == 130, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        assert "failed" not in output, output[-3000:]
        if match := re.search(r"demo state in (\S+)", output):
            state = Path(match.group(1))
            assert "stopped" in output, output[-3000:]
            assert not state.exists()
            assert _processes_mentioning(str(state)) == set()
    finally:
        if demo.process.poll() is None:
            demo.process.kill()
        demo.stop()
        if state is not None:
            shutil.rmtree(state, ignore_errors=True)


def test_the_driver_command_writes_runs_and_logs_pages(database: Database, tmp_path: Path) -> None:
    url_file = tmp_path / "database-url"
    url_file.write_text(database.url + "\n")
    port = free_port()
    shape = ["--node", FEBRUARY] if database.schema == SCHEMA_2026_02 else []
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter.demo.driver",
            "--database-url-file",
            str(url_file),
            *shape,
            "--speed",
            "3600",
            "--webhook-listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "GOVERNANCE_DEMO_DATABASE_URL": ""},
    )
    try:
        # A demo day of history at 3600x: 24 s, a run a second of each charter.
        history = 96 if shape else 24
        deadline = time.monotonic() + 60
        runs = 0
        while time.monotonic() < deadline and runs <= history + 3:
            time.sleep(0.5)
            with database.connect() as conn:
                row = conn.execute(
                    sql.SQL("SELECT count(*) FROM {} WHERE schedule_id IS NOT NULL").format(
                        sql.Identifier(runs_table(database.schema))
                    )
                ).fetchone()
            runs = row[0] if row else 0
        assert runs > history + 3, "the driver wrote no runs beyond the seeded day"
        notification = {
            "status": "firing",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "GovernanceExporterDown", "severity": "critical"},
                    "annotations": {"summary": "down"},
                }
            ],
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/pager",
            data=json.dumps(notification).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
            pytest.fail(f"the driver did not stop within 30 s of SIGTERM:\n{output}")
    assert process.returncode == 0, output
    assert "PAGE firing GovernanceExporterDown [critical]" in output
    assert "seeded a Cogni node" in output

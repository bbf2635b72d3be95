"""Every panel of the dashboard, run against a real Prometheus scraping the real exporter.

The stack: the session's PostgreSQL (tests/conftest.py), on the 2026-03 schema, with
the 2026-02-15 incident replayed (balance 0, the last six hours of runs rejected with
insufficient_credits, nothing charged since), one charter without a schedule row, one
paused and one retired (pruned by the boot sync); today's work beside it: PR reviews
(runs without a schedule) charged through their run_id until the money ran out, then
rejected too, and one review failing with provider_unavailable while the test runs; a
repo-spec declaring the charters, one with another cron (drift); the exporter as a
process; Debian's ``prometheus`` scraping it every second and loading
``prometheus/rules/governance.rules.yml`` with its group intervals shortened to 1 s
(the ``for:`` durations stay as written). The exporter also reads a gateway memory
directory (``--memory-dir``) as the incident leaves it: GOVERN's last heartbeat
closed the budget gate six and a half hours ago and nothing has updated it since,
ENGINEERING's last heartbeat was a no-op, COMMUNITY's heartbeat is malformed and
SUSTAINABILITY has none. Each panel expression, with the template variables
substituted as Grafana would, goes through Prometheus' HTTP API and must return the
series and values that the incident implies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import (
    Database,
    create_database,
    drop_database,
    free_port,
    run_exporter,
    stop_process,
    wait_for_http,
)
from test_dashboard import DASHBOARD_JSON, load_generator

import exporter
from exporter.demo import scenario
from exporter.policy import BUDGET_HEADER_MAX_AGE_SECONDS
from exporter.settings import DEFAULT_MIN_RUN_COST_CREDITS
from exporter.snapshot import SCHEMA_2026_02, SCHEMA_2026_03

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "prometheus" / "rules" / "governance.rules.yml"
PREVIEW = ROOT / "grafana" / "preview.py"
PROMETHEUS = shutil.which("prometheus")
ACCOUNT = scenario.SYSTEM_SLUG
MISSING = "sustainability"  # expected charter without a schedule row
PAUSED = "community"  # schedule disabled
RUNNING = ("govern", "engineering")
CONFIGURED = (*RUNNING, PAUSED)
RETIRED = "treasury"  # pruned: paused, next_run_at NULL, expected by nothing
DRIFTED = "engineering"  # the repo-spec declares another cron
REVIEW = "system_webhook"  # PR reviews: runs without a schedule
REVIEWS_CHARGED = 14  # one an hour, 7 to 20 hours ago, 300,000 credits each
REVIEW_CREDITS = 300_000
REVIEWS_REJECTED = 3  # in the last 3 hours, insufficient_credits
PROVIDER_FAILED = 'governance_runs_failed_total{reason="provider_unavailable"}'
REPO_SPEC = f"""\
governance:
  schedules:
    - charter: GOVERN
      cron: "{scenario.CHARTER_CRONS["govern"]}"
      timezone: UTC
    - charter: COMMUNITY
      cron: "{scenario.CHARTER_CRONS["community"]}"
      timezone: UTC
    - charter: ENGINEERING
      cron: "35 * * * *" # the row says 30: drift
      timezone: UTC
    - charter: SUSTAINABILITY
      cron: "{scenario.CHARTER_CRONS["sustainability"]}"
      timezone: UTC
"""
RANGE_SECONDS = 10
# The gateway's memory directory (the exporter's default expected charters).
ACTED = "govern"  # heartbeat: action (it closed the budget gate)
IDLE = "engineering"  # heartbeat: no-op, wip_full
MALFORMED = PAUSED  # heartbeat with a decision the gateway does not write
# MISSING has no memory folder at all.

Series = dict[str, Any]  # {"metric": {...}, "value": [t, "v"]} or {..., "values": [...]}


# --- the stack ------------------------------------------------------------------------


@dataclass(frozen=True)
class GatewayMemory:
    """What ``write_gateway_memory`` wrote: Unix times the exporter must report."""

    directory: Path
    run_at: dict[str, float]  # charter -> run_at of its parseable heartbeat
    modified: dict[str, float]  # charter -> mtime of its heartbeat file
    budget_updated_at: float


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write(path: Path, text: str, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    os.utime(path, (mtime, mtime))


def write_gateway_memory(directory: Path, now: float) -> GatewayMemory:
    """The gateway's memory/ during the incident, in the gateway's own file formats.

    GOVERN's last run (6.5 h ago, before the balance ran out) closed the budget gate;
    nothing has run since, so the header is stale. ENGINEERING's last heartbeat was a
    no-op (wip_full); COMMUNITY's has a decision the exporter rejects (malformed);
    SUSTAINABILITY never ran here (no folder: missing).
    """
    acted = float(int(now) - 6 * 3600 - 1800)
    idle = acted - 900
    run_at = {ACTED: acted, IDLE: idle}
    modified = {ACTED: acted + 3, IDLE: idle + 2, MALFORMED: acted - 1200}
    _write(
        directory / ACTED.upper() / "heartbeat.md",
        f"""# Heartbeat

run_at: {_iso(acted)}
charter: {ACTED.upper()}
focus: credits are running out; close the budget gate
decision: action
expected_outcome: metric=balance_credits, target=>0, by_date=2026-02-16
cost_guard: max_tokens=20000, max_tool_calls=30, escalation_requested=true
evidence: charge_receipts of the last 24 h
""",
        modified[ACTED],
    )
    _write(
        directory / IDLE.upper() / "heartbeat.md",
        f"""# Heartbeat

run_at: {_iso(idle)}
charter: {IDLE.upper()}
focus: review open PRs
decision: no-op
no_op_reason: wip_full
cost_guard: max_tokens=20000, max_tool_calls=30, escalation_requested=false
""",
        modified[IDLE],
    )
    _write(
        directory / MALFORMED.upper() / "heartbeat.md",
        f"""# Heartbeat

run_at: {_iso(acted - 1200)}
charter: {MALFORMED.upper()}
decision: maybe later
""",
        modified[MALFORMED],
    )
    _write(
        directory / "_budget_header.md",
        f"""---
type: budget_header
owner: GOVERN
updated_at: {_iso(acted)}
source_of_truth: billing
---

allow_runs: false
max_tokens_per_charter_run: 20_000
max_tool_calls_per_charter_run: 30
max_brain_spawns_per_hour: 4
budget_status: critical
burn_rate_trend: flat
notes: balance exhausted; no governance runs until credits are topped up
""",
        acted + 2,
    )
    return GatewayMemory(directory, run_at, modified, acted)


@dataclass
class Stack:
    prometheus_url: str
    exporter_target: str  # host:port of the incident's exporter
    schema: str
    rules_loaded: bool
    spent_credits: float  # charged in the trailing 24 h, read back from the database
    charges: int
    memory: GatewayMemory
    spent_by_kind: dict[str, float]  # the same charges by the kind of run they paid for
    spent_by_charter: dict[str, float]

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.prometheus_url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> Any:
        return self.api("query", query=expr)

    def query_range(self, expr: str, seconds: int = RANGE_SECONDS) -> Any:
        end = time.time()
        return self.api("query_range", query=expr, start=str(end - seconds), end=str(end), step="1")


@dataclass(frozen=True)
class Seeded:
    """What the seed charged in the trailing 24 h, read back from the database: how many
    charges fall before the incident's cutoff depends on the minute of the hour."""

    spent_credits: float
    charges: int
    spent_by_kind: dict[str, float]
    spent_by_charter: dict[str, float]


def seed_todays_work(conn: Any, tenant: scenario.Tenant, now: datetime) -> None:
    """Beside the incident (whose charges carry their run's id), what a node of today
    also does: PR reviews, charged until the money ran out, then rejected; a charter
    retired by the boot sync."""
    top = now.replace(minute=0, second=0, microsecond=0)
    for hours in range(7, 7 + REVIEWS_CHARGED):
        started = top - timedelta(hours=hours) + timedelta(minutes=10)
        run_id = scenario.add_unscheduled_run(conn, tenant, started, "success")
        done = started + timedelta(seconds=40)
        scenario.add_charge(conn, tenant, REVIEW_CREDITS, done, debit=False, run_id=run_id)
    for hours in range(1, REVIEWS_REJECTED + 1):
        started = now - timedelta(hours=hours)
        scenario.add_unscheduled_run(
            conn, tenant, started, "error", error_code="insufficient_credits"
        )
    retired = scenario.add_schedule(conn, tenant, RETIRED, next_run_at=now - timedelta(days=90))
    scenario.prune_schedule(conn, retired)


def fail_a_review_with_provider_unavailable(database: Database) -> None:
    """A PR review that finishes now, failing as an unfunded provider makes it fail:
    written while the exporter runs, so its counter sees it finish."""
    with database.connect() as conn:
        now = datetime.now(UTC)
        tenant = scenario.Tenant(scenario.SYSTEM_USER_ID, scenario.SYSTEM_ACCOUNT_ID, "", "")
        scenario.add_unscheduled_run(
            conn,
            tenant,
            now - timedelta(seconds=40),
            "error",
            error_code="provider_unavailable",
            completed_at=now,
        )


_SPENT_BY_KIND = """
SELECT CASE WHEN r.run_id IS NULL THEN 'unattributed' ELSE coalesce(r.run_kind, 'unknown') END,
       sum(c.charged_credits)
FROM charge_receipts c LEFT JOIN graph_runs r ON r.run_id = c.run_id
WHERE c.billing_account_id = %s AND c.created_at > now() - interval '24 hours'
GROUP BY 1
"""
_SPENT_BY_CHARTER = """
SELECT substr(s.temporal_schedule_id, length('governance:') + 1), sum(c.charged_credits)
FROM charge_receipts c JOIN graph_runs r ON r.run_id = c.run_id
JOIN schedules s ON s.id = r.schedule_id
WHERE c.billing_account_id = %s AND c.created_at > now() - interval '24 hours'
GROUP BY 1
"""


def seed_incident_with_gaps(database: Database) -> Seeded:
    """The incident, plus one expected charter without a schedule row and one paused
    (and, on a schema of 2026-03 or later, today's work: ``seed_todays_work``)."""
    with database.connect() as conn:
        now = datetime.now(UTC)
        tenant = scenario.seed_incident(conn, database.schema, now)
        if database.schema != SCHEMA_2026_02:
            seed_todays_work(conn, tenant, now)
        runs = scenario.runs_table(database.schema)
        conn.execute(
            f"DELETE FROM {runs} WHERE schedule_id IN "
            "(SELECT id FROM schedules WHERE temporal_schedule_id = %s)",
            (f"governance:{MISSING}",),
        )
        conn.execute(
            "DELETE FROM schedules WHERE temporal_schedule_id = %s", (f"governance:{MISSING}",)
        )
        conn.execute(
            "UPDATE schedules SET enabled = false WHERE temporal_schedule_id = %s",
            (f"governance:{PAUSED}",),
        )
        row = conn.execute(
            "SELECT coalesce(sum(charged_credits), 0), count(*) FROM charge_receipts"
            " WHERE billing_account_id = %s AND created_at > now() - interval '24 hours'",
            (scenario.SYSTEM_ACCOUNT_ID,),
        ).fetchone()
        by_kind = conn.execute(_SPENT_BY_KIND, (scenario.SYSTEM_ACCOUNT_ID,)).fetchall()
        by_charter = conn.execute(_SPENT_BY_CHARTER, (scenario.SYSTEM_ACCOUNT_ID,)).fetchall()
    assert row is not None
    return Seeded(
        float(row[0]),
        int(row[1]),
        {str(kind): float(credits) for kind, credits in by_kind},
        {str(charter): float(credits) for charter, credits in by_charter},
    )


# A scrape target: host:port and the labels the operator adds to it (none on one node).
Target = tuple[str, dict[str, str]]


def _write_prometheus_config(directory: Path, targets: list[Target]) -> bool:
    """prometheus.yml scraping ``targets`` every second; the repo's rules, 1 s groups."""
    static_configs = [
        {"targets": [address], **({"labels": labels} if labels else {})}
        for address, labels in targets
    ]
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "governance", "static_configs": static_configs}],
    }
    rules_loaded = RULES.exists()
    if rules_loaded:
        rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
        for group in rules["groups"]:
            group["interval"] = "1s"
        (directory / "rules.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")
        config["rule_files"] = [str(directory / "rules.yml")]
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return rules_loaded


@contextlib.contextmanager
def prometheus_server(*targets: Target) -> Iterator[tuple[str, bool]]:
    # Never a skip: .ci/run installs it, and a missing tool must fail loudly.
    assert PROMETHEUS is not None, "needs the prometheus binary (apt-get install prometheus)"
    directory = Path(tempfile.mkdtemp(prefix="govexp-prom-"))
    rules_loaded = _write_prometheus_config(directory, list(targets))
    port = free_port()
    log_path = directory / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/-/ready", process, log_path, timeout=30)
        yield url, rules_loaded
    finally:
        stop_process(process)
        shutil.rmtree(directory, ignore_errors=True)


def wait_for(stack: Stack, expr: str, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.query(expr)["result"]:
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what} ({expr})")


@contextlib.contextmanager
def incident_stack(pg_admin_url: str) -> Iterator[Stack]:
    """Database, exporter and Prometheus with data and evaluated rules; all stopped after."""
    database = create_database(pg_admin_url, SCHEMA_2026_03)
    memory_root = Path(tempfile.mkdtemp(prefix="govexp-memory-"))
    try:
        seeded = seed_incident_with_gaps(database)
        charter_charges = seeded.charges - REVIEWS_CHARGED
        assert 4 * 17 <= charter_charges <= 4 * 18, seeded  # 17-18 hourly per charter
        memory = write_gateway_memory(memory_root / "memory", time.time())
        repo_spec = memory_root / "repo-spec.yaml"
        repo_spec.write_text(REPO_SPEC, encoding="utf-8")
        env = {
            "GOVERNANCE_EXPORTER_MEMORY_DIR": str(memory.directory),
            "GOVERNANCE_EXPORTER_REPO_SPEC": str(repo_spec),
        }
        with run_exporter(database.monitor_url, env=env) as exporter_process:
            target = exporter_process.url.removeprefix("http://")
            with prometheus_server((target, {})) as (url, rules):
                live = Stack(
                    url,
                    target,
                    database.schema,
                    rules,
                    seeded.spent_credits,
                    seeded.charges,
                    memory,
                    seeded.spent_by_kind,
                    seeded.spent_by_charter,
                )
                # The counter's series must exist before the failure: increase() cannot
                # see the first sample of a series.
                wait_for(live, "governance_runs_failed_total", "the first scrape")
                fail_a_review_with_provider_unavailable(database)
                _wait_until_ready(live)
                # Counted 15 s after it finished (the exporter's lag for late rows).
                wait_for(
                    live,
                    f"increase({PROVIDER_FAILED}[90m]) > 0",
                    "the review failing with provider_unavailable",
                )
                yield live
    finally:
        drop_database(database)
        shutil.rmtree(memory_root, ignore_errors=True)


def _wait_until_ready(live: Stack) -> None:
    """Enough samples for the range panels, and the rules evaluated on them."""
    wait_for(
        live,
        f"count_over_time(governance_exporter_up[1m]) >= {RANGE_SECONDS + 2}",
        "scrapes",
    )
    if live.rules_loaded:
        wait_for(
            live,
            'ALERTS{alertname="GovernanceRunsFailing", alertstate="firing"}',
            "rule evaluation",
        )


@pytest.fixture(scope="module")
def stack(pg_admin_url: str) -> Iterator[Stack]:
    with incident_stack(pg_admin_url) as live:
        yield live


# --- the panels -------------------------------------------------------------------------

GENERATOR = load_generator()
DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_JSON.read_text(encoding="utf-8"))
VALUES = {
    "datasource": "",
    # All: the single node's target has no cluster/node label, and ".*" still matches.
    "cluster": ".*",
    "node": ".*",
    "account": ACCOUNT,
    "charter": ".*",
    "__range": f"{RANGE_SECONDS}s",
    "__rate_interval": "5s",
    "__interval": "1s",
}
# The Attribution ledger row reads series a 2026-03 node has none of: its queries are
# proven on ledger-era nodes in tests/test_dashboard_ledger_live.py.
LEDGER_PANELS = "Ledger "
TARGETS = [
    (f"{panel['title']}/{target['refId']}", panel, target)
    for panel, target in GENERATOR.targets(DASHBOARD)
    if not panel["title"].startswith(LEDGER_PANELS)
]


def _last(series: Series) -> float:
    value = series["value"] if "value" in series else series["values"][-1]
    return float(value[1])


def _by(result: list[Series], *labels: str) -> dict[Any, float]:
    """{label value (or tuple of them): last value}, asserting the label sets are unique."""
    out: dict[Any, float] = {}
    for series in result:
        key = tuple(series["metric"].get(label, "") for label in labels)
        key = key[0] if len(key) == 1 else key
        assert key not in out, f"two series for {key}: {result}"
        out[key] = _last(series)
    return out


def _labels(result: list[Series]) -> set[frozenset[str]]:
    return {frozenset(series["metric"]) for series in result}


def _near(value: float, expected: float, slack: float = 1e-9) -> bool:
    return math.isclose(value, expected, rel_tol=1e-9, abs_tol=slack)


Check = Callable[[list[Series], Stack], None]


def _one_account(expected: float | Callable[[Stack], float], slack: float = 1e-9) -> Check:
    def check(result: list[Series], stack: Stack) -> None:
        assert _labels(result) == {frozenset({"account"})}
        (value,) = _by(result, "account").values()
        want = expected(stack) if callable(expected) else expected
        assert _near(value, want, slack), (value, want)
        assert _by(result, "account").keys() == {ACCOUNT}

    return check


def _all_values(expected: float) -> Check:
    def check(result: list[Series], _: Stack) -> None:
        assert len(result) == 1
        assert {float(v) for _, v in result[0]["values"]} == {expected}

    return check


def _per_charter(expected: dict[str, float], *, at_least: set[str] | None = None) -> Check:
    def check(result: list[Series], _: Stack) -> None:
        assert _labels(result) == {frozenset({"account", "charter"})}
        values = _by(result, "charter")
        if at_least is None:
            assert values == expected
        else:
            assert at_least <= values.keys() <= expected.keys(), values
            assert all(_near(values[c], expected[c]) for c in values), values

    return check


def _last_success(result: list[Series], _: Stack) -> None:
    values = _by(result, "charter")
    assert values.keys() == set(CONFIGURED)
    # Runs failed for the last 6 h: the newest success fired between 6 and 7 h ago and
    # completed 3 minutes later (seed_governance), so it is up to 3 min younger than 6 h
    # when the test runs just after a charter's minute.
    for charter, millis in values.items():
        age = time.time() - millis / 1000
        assert 6 * 3600 - 180 - 120 <= age <= 7 * 3600 + 120, (charter, age)


def _next_run_in(result: list[Series], _: Stack) -> None:
    values = _by(result, "charter")
    assert set(RUNNING) <= values.keys() <= set(CONFIGURED), values
    assert all(-60 <= v <= 3600 for v in values.values()), values


def _runs_by_status(result: list[Series], _: Stack) -> None:
    assert _labels(result) == {frozenset({"charter", "status"})}
    values = _by(result, "charter", "status")
    assert {charter for charter, _status in values} == {*CONFIGURED, RETIRED}
    assert {v for (charter, _s), v in values.items() if charter == RETIRED} == {0}
    assert {status for _charter, status in values} >= {"success", "error", "skipped"}
    for charter in CONFIGURED:
        assert values[(charter, "error")] == 6
        # 18 successes; 17 if the oldest slot left the 24 h window during the test.
        assert values[(charter, "success")] in {17, 18}


def _failed_by_reason(result: list[Series], _: Stack) -> None:
    assert _labels(result) == {frozenset({"account", "charter", "reason"})}
    assert _by(result, "charter", "reason") == {
        (charter, "insufficient_credits"): 6 for charter in CONFIGURED
    }


def _failures_over_time(result: list[Series], _: Stack) -> None:
    assert _labels(result) == {frozenset({"reason"})}
    values = _by(result, "reason")
    assert values.pop("insufficient_credits") == 6 * len(CONFIGURED)
    assert values
    assert set(values.values()) == {0}


def _window(result: list[Series], _: Stack) -> None:
    assert _labels(result) == {frozenset()}
    assert _last(result[0]) == 86400  # the exporter's default trailing window


def _alerts_by_severity(result: list[Series], stack: Stack) -> None:
    assert len(result) == 1
    assert _last(result[0]) >= (1 if stack.rules_loaded else 0)


def _alerts_table(result: list[Series], stack: Stack) -> None:
    if not stack.rules_loaded:
        assert result == []
        return
    rows = {
        (m["alertname"], m["alertstate"], m.get("charter", ""))
        for m in (s["metric"] for s in result)
    }
    assert ("GovernanceCreditRunwayLow", "firing", "") in rows
    for charter in CONFIGURED:
        assert ("GovernanceRunsFailing", "firing", charter) in rows
    assert any(name == "GovernanceCharterMissing" and c == MISSING for name, _s, c in rows), rows
    critical = [s["metric"] for s in result if s["metric"]["alertname"].endswith("RunwayLow")]
    assert all(m["account"] == ACCOUNT for m in critical)


def _exporter_up(result: list[Series], _: Stack) -> None:
    assert len(result) == 1
    assert result[0]["metric"]["job"] == "governance"
    assert _last(result[0]) == 1


def _since_last_collection(result: list[Series], _: Stack) -> None:
    assert len(result) == 1
    assert 0 <= _last(result[0]) < 30


def _build(result: list[Series], stack: Stack) -> None:
    assert len(result) == 1
    metric = result[0]["metric"]
    assert metric["schema"] == stack.schema
    assert metric["version"] == exporter.__version__


def _duration(result: list[Series], _: Stack) -> None:
    assert len(result) == 1
    assert all(0 <= float(v) < 10 for _, v in result[0]["values"])


def _errors(result: list[Series], _: Stack) -> None:
    assert result
    assert _labels(result) == {frozenset({"reason"})}
    assert all(float(v) == 0 for series in result for _, v in series["values"])


def _shown(title: str, ref: str, value: float) -> str:
    """The text the panel's value mapping for query ``ref`` shows for ``value``."""
    (panel,) = (p for p in GENERATOR.panels(DASHBOARD) if p["title"] == title)
    (override,) = (
        o
        for o in panel["fieldConfig"]["overrides"]
        if o["matcher"] == {"id": "byFrameRefID", "options": ref}
    )
    (mappings,) = (p["value"] for p in override["properties"] if p["id"] == "mappings")
    key = str(int(value)) if value == int(value) else repr(value)
    return str(mappings[0]["options"][key]["text"])


def _gate(ref: str, value: float, text: str | None = None) -> Check:
    """One label-less series (the gateway's, no account) worth ``value``, shown as ``text``."""

    def check(result: list[Series], _: Stack) -> None:
        assert _labels(result) == {frozenset()}, result
        (series,) = result
        assert _last(series) == value
        if text is not None:
            assert _shown("Budget gate", ref, value) == text

    return check


def _budget_header_age(result: list[Series], stack: Stack) -> None:
    assert _labels(result) == {frozenset()}
    age = _last(result[0])
    assert _near(age, time.time() - stack.memory.budget_updated_at, 60), age
    assert age > BUDGET_HEADER_MAX_AGE_SECONDS  # the stale header is red


def _heartbeat_labels(label: str, expected: dict[str, str]) -> Check:
    """A state set filtered to its current state: one series per charter, worth 1."""

    def check(result: list[Series], _: Stack) -> None:
        assert _labels(result) == {frozenset({"charter", label})}
        assert {s["metric"]["charter"]: s["metric"][label] for s in result} == expected
        assert len(result) == len(expected)
        assert {_last(s) for s in result} == {1}

    return check


def _heartbeat_millis(field: str) -> Check:
    def check(result: list[Series], stack: Stack) -> None:
        assert _labels(result) == {frozenset({"charter"})}
        want: dict[str, float] = getattr(stack.memory, field)
        assert _by(result, "charter") == {c: t * 1000 for c, t in want.items()}

    return check


def _node_count(expected: int) -> Check:
    """A count of nodes: one label-less series."""

    def check(result: list[Series], _: Stack) -> None:
        assert _labels(result) == {frozenset()}, result
        assert _last(result[0]) == expected

    return check


def _one_node(expected: float | None = None, *, at_least: float | None = None) -> Check:
    """One series per node: here the single node, labelled only by its target."""

    def check(result: list[Series], stack: Stack) -> None:
        assert _labels(result) == {frozenset({"job", "instance"})}, result
        ((job, instance, value),) = (
            (s["metric"]["job"], s["metric"]["instance"], _last(s)) for s in result
        )
        assert (job, instance) == ("governance", stack.exporter_target)
        assert expected is None or value == expected, value
        assert at_least is None or value >= at_least, value

    return check


def _failing_charters(result: list[Series], stack: Stack) -> None:
    assert _labels(result) == {frozenset({"job", "instance", "charter"})}
    assert {s["metric"]["instance"] for s in result} == {stack.exporter_target}
    assert _by(result, "charter") == dict.fromkeys(CONFIGURED, 6.0)


def _provider_failing(result: list[Series], _: Stack) -> None:
    """The one review failed with provider_unavailable: increase() over 90 min, a little
    more than 1 by Prometheus' extrapolation."""
    assert _labels(result) == {frozenset({"account"})}
    (value,) = _by(result, "account").values()
    assert 1 <= value < 2, value


def _spent_by(label: str, field: str) -> Check:
    def check(result: list[Series], stack: Stack) -> None:
        assert _labels(result) == {frozenset({"account", label})}, result
        want: dict[str, float] = getattr(stack, field)
        assert _by(result, label) == {k: v for k, v in want.items() if v > 0}

    return check


def _unscheduled_runs(result: list[Series], _: Stack) -> None:
    assert _labels(result) == {frozenset({"run_kind", "status"})}
    values = {status: v for (kind, status), v in _by(result, "run_kind", "status").items()}
    assert {kind for kind, _s in _by(result, "run_kind", "status")} == {REVIEW}
    assert values["success"] == REVIEWS_CHARGED
    assert values["error"] == REVIEWS_REJECTED + 1  # and the provider failure


def _unscheduled_failures(result: list[Series], _: Stack) -> None:
    assert _labels(result) == {frozenset({"account", "run_kind", "reason"})}
    assert _by(result, "run_kind", "reason") == {
        (REVIEW, "insufficient_credits"): REVIEWS_REJECTED,
        (REVIEW, "provider_unavailable"): 1,
    }


def _unscheduled_last(newest_hours: float, oldest_hours: float) -> Check:
    def check(result: list[Series], _: Stack) -> None:
        assert _labels(result) == {frozenset({"account", "run_kind"})}
        (millis,) = _by(result, "run_kind").values()
        age = time.time() - millis / 1000
        assert newest_hours * 3600 <= age <= oldest_hours * 3600, age

    return check


# The incident: balance 0; charges of 1,000,000 credits until six hours ago, none since.
def _burn_per_hour(stack: Stack) -> float:
    return stack.spent_credits / 86400 * 3600


EXPECTED: dict[str, Check] = {
    "Fleet: nodes by credit health/A": _node_count(1),  # red
    "Fleet: nodes by credit health/B": _node_count(0),  # yellow
    "Fleet: nodes by credit health/C": _node_count(0),  # green
    "Fleet: nodes by credit health/D": _node_count(0),  # exporter down
    "Fleet: nodes, worst first/A": _one_node(2),  # red
    "Fleet: nodes, worst first/B": _one_node(0),  # runway
    "Fleet: nodes, worst first/C": _one_node(len(CONFIGURED)),  # failing charters
    "Fleet: nodes, worst first/D": _one_node(at_least=1),  # alerts firing
    "Fleet: nodes, worst first/E": _one_node(1),  # scraped
    "Fleet: failing charters/A": _failing_charters,
    "Fleet: failing charters/B": _last_success,
    "Credit health: runway/A": _one_account(0),
    "Balance/A": _one_account(0),
    "Balance/B": _one_account(0),
    "Balance/C": _one_account(DEFAULT_MIN_RUN_COST_CREDITS),  # refused below one run's cost
    "Burn rate (credits/hour)/A": _one_account(_burn_per_hour, 1e-3),
    "Burn rate (credits/hour)/B": _one_account(lambda s: _burn_per_hour(s) / 10_000_000),
    "Spent in window/A": _one_account(lambda s: s.spent_credits),
    "Spent in window/B": _one_account(lambda s: s.charges),
    "Spent in window/C": _window,
    "Governance alerts firing/A": _alerts_by_severity,
    "Governance alerts firing/B": _alerts_by_severity,
    "Runs failing with provider_unavailable now/A": _provider_failing,
    "Runs rejected for credits/A": _one_account(6 * len(CONFIGURED) + REVIEWS_REJECTED),
    "Spent in window by run kind/A": _spent_by("run_kind", "spent_by_kind"),
    "Spent in window by charter/A": _spent_by("charter", "spent_by_charter"),
    "Charters/A": _per_charter({**dict.fromkeys((*CONFIGURED, RETIRED), 1.0), MISSING: 0.0}),
    # State: 1 enabled, 0 paused, 2 retired.
    "Charters/B": _per_charter({**dict.fromkeys(RUNNING, 1.0), PAUSED: 0.0, RETIRED: 2.0}),
    "Charters/C": _per_charter(dict.fromkeys((*CONFIGURED, RETIRED), 1.0)),
    "Charters/D": _last_success,  # the retired charter's "never" is left out
    "Charters/E": _next_run_in,
    "Charters/F": _per_charter(
        dict.fromkeys((*CONFIGURED, RETIRED), 3600.0), at_least=set(RUNNING)
    ),
    "Charters/G": _per_charter({**dict.fromkeys(CONFIGURED, 6.0), RETIRED: 0.0}),
    "Charters/H": _per_charter(dict.fromkeys((*CONFIGURED, RETIRED), 1.0)),
    # Declared charters only (the retired one is not); the repo-spec's other cron.
    "Charters/I": _per_charter({**dict.fromkeys(CONFIGURED, 0.0), DRIFTED: 1.0}),
    "Runs in window by status/A": _runs_by_status,
    "Failed runs by charter and reason/A": _failed_by_reason,
    "Failed runs by charter and reason/B": _failed_by_reason,
    "Governance alerts/A": _alerts_table,
    "Runs without a schedule visible/A": _one_account(1),
    "Runs without a schedule by kind and status/A": _unscheduled_runs,
    "Runs without a schedule: failures by reason/A": _unscheduled_failures,
    "Runs without a schedule: failures by reason/B": _unscheduled_failures,
    # The newest charged review started 7 h ago (at 10 past), the provider failure now.
    "Runs without a schedule: last success/A": _unscheduled_last(6, 8),
    "Runs without a schedule: last success/B": _unscheduled_last(0, 0.1),
    "Budget gate/A": _gate("A", 0, "CLOSED"),
    "Budget gate/B": _gate("B", 2, "critical"),
    "Budget gate/C": _gate("C", 1, "flat"),
    "Budget gate/D": _budget_header_age,
    "Budget gate/E": _gate("E", 0, "ok"),
    "Budget gate/F": _gate("F", 1, "readable"),
    "Budget gate caps/A": _gate("A", 20_000),
    "Budget gate caps/B": _gate("B", 30),
    "Budget gate caps/C": _gate("C", 4),
    "Charter heartbeats/A": _heartbeat_labels(
        "status", {ACTED: "ok", IDLE: "ok", MALFORMED: "malformed", MISSING: "missing"}
    ),
    "Charter heartbeats/B": _heartbeat_millis("run_at"),
    "Charter heartbeats/C": _heartbeat_labels("decision", {ACTED: "action", IDLE: "no-op"}),
    "Charter heartbeats/D": _heartbeat_labels("reason", {IDLE: "wip_full"}),
    "Charter heartbeats/E": _heartbeat_millis("modified"),
    "Balance over time/A": _all_values(0),
    "Runway over time/A": _all_values(0),
    "Failed runs over time by reason/A": _failures_over_time,
    "Exporter up/A": _exporter_up,
    "Exporter up/B": _exporter_up,
    "Since last successful collection/A": _since_last_collection,
    "Exporter build/A": _build,
    "Collection duration/A": _duration,
    "Collection errors/A": _errors,
}


def test_every_target_has_an_expected_shape() -> None:
    assert sorted(EXPECTED) == sorted(key for key, _p, _t in TARGETS)


@pytest.mark.parametrize(("key", "panel", "target"), TARGETS, ids=[k for k, _p, _t in TARGETS])
def test_panel_query_returns_the_expected_data(
    stack: Stack, key: str, panel: dict[str, Any], target: dict[str, Any]
) -> None:
    expr = GENERATOR.substitute(target["expr"], VALUES)
    if target.get("instant"):
        data = stack.query(expr)
        assert data["resultType"] == "vector", data
    else:
        data = stack.query_range(expr)
        assert data["resultType"] == "matrix", data
    assert data["result"], f"{key}: no data for {expr}"
    EXPECTED[key](data["result"], stack)


def test_annotation_shows_firing_alerts(stack: Stack) -> None:
    (annotation,) = DASHBOARD["annotations"]["list"]
    result = stack.query(GENERATOR.substitute(annotation["expr"], VALUES))["result"]
    if stack.rules_loaded:
        assert {s["metric"]["alertname"] for s in result} >= {
            "GovernanceCreditRunwayLow",
            "GovernanceRunsFailing",
        }
    else:
        assert result == []


def variable_values(stack: Stack, name: str, values: dict[str, str] = VALUES) -> list[str]:
    """label_values(metric, label) is Grafana's call of Prometheus' label values API."""
    variables = {v["name"]: v["query"] for v in DASHBOARD["templating"]["list"]}
    query = GENERATOR.substitute(variables[name], values)
    assert query.startswith("label_values(")
    selector, label = query.removeprefix("label_values(").removesuffix(")").rsplit(", ", 1)
    assert label == name
    return sorted(stack.api(f"label/{label}/values", **{"match[]": selector}))


def test_template_variables_list_the_account_and_every_charter(stack: Stack) -> None:
    assert variable_values(stack, "account") == [ACCOUNT]
    assert variable_values(stack, "charter") == sorted([*CONFIGURED, MISSING, RETIRED])
    # One node without cluster/node labels: nothing to list, and All (".*") shows it all.
    assert variable_values(stack, "cluster") == []
    assert variable_values(stack, "node") == []


def test_rendered_preview_shows_the_incident(stack: Stack) -> None:
    """grafana/preview.py (the picture in docs/dashboard.md) renders these same live answers."""
    spec = importlib.util.spec_from_file_location("governance_preview", PREVIEW)
    assert spec is not None
    assert spec.loader is not None
    preview = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(preview)
    prometheus = preview.Prometheus(stack.prometheus_url, VALUES, RANGE_SECONDS)
    page = preview.render_page(DASHBOARD, prometheus, "test")
    assert "not a Grafana screenshot" in page
    assert "0 h: balance exhausted" in page  # runway stat, red
    assert "MISSING" in page  # the charter without a schedule row
    assert "paused" in page
    assert "insufficient_credits" in page
    assert "CLOSED" in page  # the budget gate
    assert "malformed" in page  # COMMUNITY's heartbeat
    assert "wip_full" in page
    # Today's work: a retired charter, a drifted one, the reviews and who spends.
    assert "retired" in page
    assert "DRIFT" in page
    assert "system_webhook" in page
    assert "provider_unavailable" in page
    assert '<div class="bar"><span>system_scheduled</span>' in page  # the bar gauge
    # Grafana's merge joins the heartbeat queries into one row per charter.
    (panel,) = (p for p in GENERATOR.panels(DASHBOARD) if p["title"] == "Charter heartbeats")
    results = {t["refId"]: prometheus.run(t) for t in panel["targets"]}
    columns, rows = preview._table_frame(panel, results)
    assert columns == ["Charter", "Last run", "Decision", "No-op reason", "File", "File written"]
    by_charter = {row["Charter"]: row for row in rows}
    assert len(rows) == len(by_charter) == 4
    assert by_charter[IDLE]["No-op reason"] == "wip_full"
    assert by_charter[MALFORMED]["File"] == "malformed"
    assert "Decision" not in by_charter[MISSING]
    if stack.rules_loaded:
        assert "GovernanceCreditRunwayLow" in page


# --- the fleet: two nodes in one Prometheus ------------------------------------------
#
# A second Prometheus scrapes two nodes, told apart by the cluster/node labels an
# operator adds to their targets: the incident's exporter (red, three charters failing)
# and a healthy node's (500,000,000 credits, every run a success). The fleet row must
# show both, the incident first, and the node variable must pick either one alone.

CLUSTER = "eu-1"
INCIDENT_NODE = "dao-incident"
HEALTHY_NODE = "dao-healthy"
HEALTHY_BALANCE = 500_000_000  # scenario.seed_governance's default


@pytest.fixture(scope="module")
def fleet(stack: Stack, pg_admin_url: str) -> Iterator[Stack]:
    """The incident's exporter and a healthy node's, scraped by one more Prometheus."""
    database = create_database(pg_admin_url, SCHEMA_2026_02)
    try:
        with database.connect() as conn:
            scenario.seed_governance(conn, database.schema, datetime.now(UTC))
        with run_exporter(database.monitor_url) as healthy:
            targets = (
                (stack.exporter_target, {"cluster": CLUSTER, "node": INCIDENT_NODE}),
                (healthy.url.removeprefix("http://"), {"cluster": CLUSTER, "node": HEALTHY_NODE}),
            )
            with prometheus_server(*targets) as (url, _rules):
                live = dataclasses.replace(stack, prometheus_url=url)
                _wait_until_ready(live)
                wait_for(live, "count(governance:credit_health:level) == 2", "both nodes")
                yield live
    finally:
        drop_database(database)


def _panel_targets(title: str) -> dict[str, dict[str, Any]]:
    (panel,) = (p for p in GENERATOR.panels(DASHBOARD) if p["title"] == title)
    return {t["refId"]: t for t in panel["targets"]}


def _instant(stack: Stack, title: str, ref: str, **values: str) -> list[Series]:
    expr = GENERATOR.substitute(_panel_targets(title)[ref]["expr"], {**VALUES, **values})
    result: list[Series] = stack.query(expr)["result"]
    return result


def _per_node(result: list[Series]) -> dict[str, float]:
    """{node: value}, every series labelled by its whole target."""
    assert _labels(result) == {frozenset({"job", "instance", "cluster", "node"})}, result
    assert {s["metric"]["cluster"] for s in result} == {CLUSTER}
    return _by(result, "node")


def _load_preview() -> Any:
    spec = importlib.util.spec_from_file_location("governance_preview", PREVIEW)
    assert spec is not None
    assert spec.loader is not None
    preview = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(preview)
    return preview


def test_fleet_counts_nodes_by_credit_health(fleet: Stack) -> None:
    title = "Fleet: nodes by credit health"
    counts = {ref: _last(_instant(fleet, title, ref)[0]) for ref in "ABCD"}
    assert counts == {"A": 1, "B": 0, "C": 1, "D": 0}  # red, yellow, green, down


def test_fleet_nodes_table_keeps_the_nodes_apart(fleet: Stack) -> None:
    title = "Fleet: nodes, worst first"
    health, runway, failing, alerts, up = (
        _per_node(_instant(fleet, title, ref)) for ref in "ABCDE"
    )
    assert health == {INCIDENT_NODE: 2, HEALTHY_NODE: 0}
    assert runway[INCIDENT_NODE] == 0
    assert runway[HEALTHY_NODE] > 24 * 3600  # green
    assert failing == {INCIDENT_NODE: len(CONFIGURED), HEALTHY_NODE: 0}
    assert alerts[INCIDENT_NODE] >= 1
    assert alerts[HEALTHY_NODE] == 0  # the incident's alerts stay on the incident's node
    assert up == {INCIDENT_NODE: 1, HEALTHY_NODE: 1}


def test_fleet_nodes_table_shows_the_worst_node_first(fleet: Stack) -> None:
    """As Grafana would show it: merged per node, renamed, sorted by the panel's sortBy."""
    preview = _load_preview()
    prometheus = preview.Prometheus(fleet.prometheus_url, VALUES, RANGE_SECONDS)
    (panel,) = (p for p in GENERATOR.panels(DASHBOARD) if p["title"] == "Fleet: nodes, worst first")
    results = {t["refId"]: prometheus.run(t) for t in panel["targets"]}
    columns, rows = preview._table_frame(panel, results)
    assert columns[:4] == ["Cluster", "Node", "Instance", "Job"]
    assert [row["Node"] for row in rows] == [INCIDENT_NODE, HEALTHY_NODE]
    assert [row["Credit health"] for row in rows] == [2, 0]
    assert [row["Failing charters"] for row in rows] == [len(CONFIGURED), 0]
    page = preview.render_table(panel, results)
    assert page.index("RED") < page.index("GREEN")


def test_fleet_failing_charters_are_the_incident_nodes(fleet: Stack) -> None:
    title = "Fleet: failing charters"
    failed = _instant(fleet, title, "A")
    assert {s["metric"]["node"] for s in failed} == {INCIDENT_NODE}
    assert _by(failed, "node", "charter") == {(INCIDENT_NODE, c): 6 for c in CONFIGURED}
    last_success = _instant(fleet, title, "B")
    assert {(s["metric"]["node"], s["metric"]["charter"]) for s in last_success} == {
        (INCIDENT_NODE, c) for c in CONFIGURED
    }


def test_node_variable_shows_one_node_alone(fleet: Stack) -> None:
    """The rows below the fleet row read one node when one is picked (Grafana's regex
    of a multi-value variable is (a|b); one value is itself)."""
    runway = "Credit health: runway"
    for node, balance in ((INCIDENT_NODE, 0), (HEALTHY_NODE, HEALTHY_BALANCE)):
        (series,) = _instant(fleet, "Balance", "A", node=node)
        assert _last(series) == balance
    (series,) = _instant(fleet, runway, "A", node=HEALTHY_NODE)
    assert _last(series) > 24 * 3600
    (series,) = _instant(fleet, runway, "A", node=f"({INCIDENT_NODE}|{HEALTHY_NODE})")
    assert _last(series) == 0  # min by account: the worst of the selected nodes
    assert _instant(fleet, "Balance", "A", cluster="elsewhere") == []
    assert _instant(fleet, "Exporter up", "A", node=HEALTHY_NODE)[0]["metric"]["node"] == (
        HEALTHY_NODE
    )


def test_fleet_variables_list_the_cluster_and_both_nodes(fleet: Stack) -> None:
    assert variable_values(fleet, "cluster") == [CLUSTER]
    assert variable_values(fleet, "node") == sorted([INCIDENT_NODE, HEALTHY_NODE])
    assert variable_values(fleet, "account") == [ACCOUNT]
    assert variable_values(fleet, "charter", {**VALUES, "node": HEALTHY_NODE}) == sorted(
        scenario.CHARTER_CRONS
    )

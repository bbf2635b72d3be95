"""The Attribution ledger row of both dashboards, run against a real Prometheus.

Two nodes on schema-2026-08-full.sql, each with its exporter as a process: a healthy
operator (a spawned node's ledger: receipts every hour, this week's epoch open, last
week's in review, PR reviews; and the dispatch schedules of three nodes' collects),
read by the least-privilege role, so its distributions are not observable; and a
broken node read by a BYPASSRLS role: its open epoch's window ended two days ago (the
collect stalled), its webhook plane silent for 80 hours, one finalized epoch with a
manifest and two pending liabilities. Two Prometheus servers scrape both exporters,
one labelling the targets as the bundled stack does (cluster, node), one as Cogni's
Alloy does (env, node_id); every query of the row in each variant's file, with its
variables substituted as Grafana would, must return what the two nodes imply, and
the node variable must narrow it to one node.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from harness import MONITOR_ROLE, Database, create_database, drop_database, run_exporter, url_with
from psycopg import sql
from test_dashboard import DASHBOARD_JSON, load_generator
from test_dashboard_live import Series, prometheus_server
from test_ledger import NODES, spawned_node

from exporter.demo import ledger, scenario
from exporter.snapshot import SCHEMA_2026_08

ROOT = Path(__file__).resolve().parent.parent
COGNI_JSON = ROOT / "deploy" / "grafana" / "governance-cogni.json"
GENERATOR = load_generator()
H = timedelta(hours=1)
D = timedelta(days=1)
HEALTHY = ledger.NODE_ID  # spawned_node writes its ledger under the demo's node id
BROKEN = "9f8e7d6c-5b4a-4392-8170-6a5b4c3d2e1f"
SCOPE = scenario.DEFAULT_SCOPE_ID
ACCOUNT = scenario.SYSTEM_SLUG
BYPASS_ROLE = "governance_exporter_bypass"
BYPASS_PASSWORD = "bypass-pw-Lm4wQ9"
# Seconds between the seed's now and a query's: the exporter reads each scrape afresh.
SLACK = 600.0
HOURLY_LIMIT = 72 * 3600.0  # max(4 x 1 h, --ledger-silence-min-seconds)
STALL_LIMIT = 26 * 3600.0  # a daily cron + the 2 h grace
REVIEW_LIMIT = 7 * 86400.0


# --- the two nodes -----------------------------------------------------------------------


def healthy_operator(conn: Any, now: datetime) -> None:
    """tests/test_ledger.py's healthy spawned node, dispatching three nodes' collects."""
    tenant = spawned_node(conn, now)
    for node in NODES:
        ledger.add_dispatch_schedule(conn, tenant, node, next_run_at=now + D)


def broken_node(conn: Any, now: datetime) -> None:
    """The collect stopped two days ago; no delivery for 80 h; one distribution."""
    tenant = scenario.create_tenant(conn, balance_credits=5_000_000_000)
    scenario.add_ledger_schedule(conn, tenant, cron="0 0 * * *", next_run_at=now + D)
    ledger.add_receipts(conn, ledger.every(H, now - 80 * H, 10 * D), node_id=BROKEN)
    end = now - 2 * D
    ledger.add_epoch(conn, "open", end - ledger.WEEK, period_end=end, node_id=BROKEN)
    finalized = ledger.add_epoch(
        conn, "finalized", end - 2 * ledger.WEEK, period_end=end - ledger.WEEK, node_id=BROKEN
    )
    ledger.add_distribution(conn, finalized, node_id=BROKEN, pending=2, created_at=now - 5 * D)


def bypass_url(admin_url: str, database: Database) -> str:
    """A BYPASSRLS role with the monitoring role's grants (as tests/test_ledger.py's)."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
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


# --- the stack ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One generated file and the two target labels its Prometheus adds."""

    name: str
    dashboard: dict[str, Any]
    cluster: str
    node: str


VARIANTS = (
    Variant("default", json.loads(DASHBOARD_JSON.read_text(encoding="utf-8")), "cluster", "node"),
    Variant("cogni", json.loads(COGNI_JSON.read_text(encoding="utf-8")), "env", "node_id"),
)


@dataclass(frozen=True)
class Prometheus:
    url: str

    def query(self, expr: str) -> Any:
        params = urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{params}", timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def wait_for(self, expr: str, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.query(expr)["result"]:
                return
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what} ({expr})")


@dataclass(frozen=True)
class Live:
    seeded_at: float
    stacks: dict[str, Prometheus]  # variant name -> its Prometheus


@contextlib.contextmanager
def _exporters(pg_admin_url: str, now: datetime) -> Iterator[dict[str, str]]:
    databases: list[Database] = []
    try:
        for seed in (healthy_operator, broken_node):
            database = create_database(pg_admin_url, SCHEMA_2026_08)
            databases.append(database)
            with database.connect() as conn:
                seed(conn, now)
        urls = (databases[0].monitor_url, bypass_url(pg_admin_url, databases[1]))
        env = {"GOVERNANCE_EXPORTER_EXPECTED_CHARTERS": ""}
        with run_exporter(urls[0], env=env) as good, run_exporter(urls[1], env=env) as bad:
            yield {
                "healthy": good.url.removeprefix("http://"),
                "broken": bad.url.removeprefix("http://"),
            }
    finally:
        for database in databases:
            drop_database(database)


@pytest.fixture(scope="module")
def live(pg_admin_url: str) -> Iterator[Live]:
    now = datetime.now(UTC)
    with contextlib.ExitStack() as stack, _exporters(pg_admin_url, now) as targets:
        stacks = {}
        for variant in VARIANTS:
            labelled = [
                (address, {variant.cluster: "ledger", variant.node: name})
                for name, address in targets.items()
            ]
            url, _rules = stack.enter_context(prometheus_server(*labelled))
            stacks[variant.name] = Prometheus(url)
            stacks[variant.name].wait_for(
                "count(governance_ledger_observable) == 6", "both exporters scraped"
            )
        yield Live(now.timestamp(), stacks)


# --- reading the panels ----------------------------------------------------------------


def _values(variant: Variant, node: str) -> dict[str, str]:
    return {
        "datasource": "",
        variant.cluster: ".*",
        variant.node: node,
        "account": ACCOUNT,
        "charter": ".*",
        "__range": "10s",
        "__rate_interval": "5s",
        "__interval": "1s",
    }


def _ledger_targets(variant: Variant) -> dict[str, str]:
    """'title/ref' -> expr of every query of the Attribution ledger row."""
    return {
        f"{panel['title']}/{target['refId']}": target["expr"]
        for panel, target in GENERATOR.targets(variant.dashboard)
        if panel["title"].startswith("Ledger ")
    }


def _query(live: Live, variant: Variant, key: str, node: str = ".*") -> list[Series]:
    expr = GENERATOR.substitute(_ledger_targets(variant)[key], _values(variant, node))
    data = live.stacks[variant.name].query(expr)
    assert data["resultType"] == "vector", data
    result: list[Series] = data["result"]
    return result


def _by(result: list[Series], *labels: str) -> dict[Any, float]:
    found: dict[Any, float] = {}
    for series in result:
        key = tuple(series["metric"].get(label, "") for label in labels)
        assert key not in found, f"two series for {key}: {result}"
        found[key[0] if len(key) == 1 else key] = float(series["value"][1])
    return found


def _streams(result: list[Series]) -> dict[str, float]:
    """{ledger node: value}, each series one (ledger node, scope) and nothing else."""
    for series in result:
        assert set(series["metric"]) == {"ledger_node_id", "scope_id"}, series
        assert series["metric"]["scope_id"] == SCOPE
    return _by(result, "ledger_node_id")


def _near(value: float, expected: float, slack: float) -> bool:
    return math.isclose(value, expected, abs_tol=slack)


def _week_start_ms(at: float) -> float:
    return ledger.week_start(datetime.fromtimestamp(at, UTC)).timestamp() * 1000


def _expect_streams(expected: Callable[[float], dict[str, tuple[float, float]]]) -> Check:
    """Each ledger node's value equals its expected (value, slack) at the seed's time."""

    def check(result: list[Series], seeded: float) -> None:
        found = _streams(result)
        want = expected(seeded)
        assert set(found) == set(want), found
        for node, (value, slack) in want.items():
            assert _near(found[node], value, slack), (node, found[node], value)

    return check


Check = Callable[[list[Series], float], None]
EXACT = 1e-6
MS_SLACK = SLACK * 1000


def _broken_end(seeded: float) -> float:
    return seeded - 2 * 86400


EXPECTED: dict[str, Check] = {
    # The healthy stream's window is this week; the broken one's ended two days ago.
    "Ledger collect per stream/A": _expect_streams(
        lambda t: {
            HEALTHY: (_week_start_ms(t), EXACT),
            BROKEN: ((_broken_end(t) - 7 * 86400) * 1000, 1),
        }
    ),
    "Ledger collect per stream/B": _expect_streams(
        lambda t: {
            HEALTHY: (_week_start_ms(t) + 7 * 86400_000, EXACT),
            BROKEN: (_broken_end(t) * 1000, 1),
        }
    ),
    "Ledger collect per stream/C": _expect_streams(
        lambda t: {HEALTHY: (0, EXACT), BROKEN: (2 * 86400 + SLACK / 2, SLACK / 2)}
    ),
    "Ledger collect per stream/D": _expect_streams(
        lambda t: {HEALTHY: (STALL_LIMIT, EXACT), BROKEN: (STALL_LIMIT, EXACT)}
    ),
    "Ledger collect per stream/E": _expect_streams(
        lambda t: {HEALTHY: (0, EXACT), BROKEN: (1, EXACT)}
    ),
    "Ledger epochs and approvals/A": _expect_streams(
        lambda t: {HEALTHY: (1, EXACT), BROKEN: (1, EXACT)}
    ),
    "Ledger epochs and approvals/B": _expect_streams(
        lambda t: {HEALTHY: (1, EXACT), BROKEN: (0, EXACT)}
    ),
    "Ledger epochs and approvals/C": _expect_streams(
        lambda t: {HEALTHY: (3, EXACT), BROKEN: (1, EXACT)}
    ),
    # Last week's epoch has waited since this week began; none waits on the broken node.
    "Ledger epochs and approvals/D": _expect_streams(
        lambda t: {
            HEALTHY: (t - _week_start_ms(t) / 1000 + SLACK / 2, SLACK / 2),
            BROKEN: (0, EXACT),
        }
    ),
    "Ledger epochs and approvals/E": _expect_streams(
        lambda t: {HEALTHY: (REVIEW_LIMIT, EXACT), BROKEN: (REVIEW_LIMIT, EXACT)}
    ),
    "Ledger epochs and approvals/F": _expect_streams(
        lambda t: {HEALTHY: (0, EXACT), BROKEN: (0, EXACT)}
    ),
    # A finalized epoch is closed a day after its window ended (exporter.demo.ledger).
    "Ledger epochs and approvals/G": _expect_streams(
        lambda t: {
            HEALTHY: (_week_start_ms(t) - 6 * 86400_000, EXACT),
            BROKEN: ((_broken_end(t) - 6 * 86400) * 1000, 1),
        }
    ),
}


def _receipts(expected: Callable[[float], dict[str, tuple[float, float]]]) -> Check:
    def check(result: list[Series], seeded: float) -> None:
        for series in result:
            assert set(series["metric"]) == {"ledger_node_id"}, series
        found = _by(result, "ledger_node_id")
        want = expected(seeded)
        assert set(found) == set(want), found
        for node, (value, slack) in want.items():
            assert _near(found[node], value, slack), (node, found[node], value)

    return check


EXPECTED |= {
    # The healthy node's newest receipt is 5 min old; the broken node's 80 h.
    "Ledger webhook plane per node/A": _receipts(
        lambda t: {HEALTHY: ((t - 300) * 1000, 1), BROKEN: ((t - 80 * 3600) * 1000, 1)}
    ),
    "Ledger webhook plane per node/B": _receipts(
        lambda t: {
            HEALTHY: (300 + SLACK / 2, SLACK / 2),
            BROKEN: (80 * 3600 + SLACK / 2, SLACK / 2),
        }
    ),
    "Ledger webhook plane per node/C": _receipts(
        lambda t: {HEALTHY: (HOURLY_LIMIT, EXACT), BROKEN: (HOURLY_LIMIT, EXACT)}
    ),
    "Ledger webhook plane per node/D": _receipts(
        lambda t: {HEALTHY: (3600, EXACT), BROKEN: (3600, EXACT)}
    ),
    "Ledger webhook plane per node/E": _receipts(
        lambda t: {HEALTHY: (0, EXACT), BROKEN: (1, EXACT)}
    ),
}


def _last_review(result: list[Series], seeded: float) -> None:
    # The healthy node's newest review ran with its newest receipt, 5 min before the seed.
    assert _by(result, "account") == {ACCOUNT: pytest.approx((seeded - 300) * 1000, abs=1000)}


def _not_observable(result: list[Series], _seeded: float) -> None:
    # One node cannot read its distributions: the fleet's minimum says so.
    assert [float(s["value"][1]) for s in result] == [0.0]


def _distribution(value: float, slack: float = EXACT) -> Check:
    """Only the BYPASSRLS node's stream: the other's are not observable."""
    return _expect_streams(lambda t: {BROKEN: (value, slack)})


def _dispatch(expected: Callable[[float], float], slack: float = EXACT) -> Check:
    def check(result: list[Series], seeded: float) -> None:
        for series in result:
            assert set(series["metric"]) == {"account", "ledger_node_id", "charter"}, series
        found = _by(result, "ledger_node_id", "charter", "account")
        want = expected(seeded)
        assert set(found) == {(node, "ledger_ingest", ACCOUNT) for node in NODES}, found
        assert all(_near(v, want, slack) for v in found.values()), (found, want)

    return check


def _next_six(seeded: float) -> float:
    """The next 06:00 UTC (the dispatch cron ``0 6 * * *``) after now, in ms."""
    now = time.time()
    day = datetime.fromtimestamp(now, UTC).replace(hour=6, minute=0, second=0, microsecond=0)
    at = day if day.timestamp() > now else day + D
    return at.timestamp() * 1000


EXPECTED |= {
    "Ledger last PR review/A": _last_review,
    "Ledger distributions observable/A": _not_observable,
    "Ledger distributions per stream/A": _distribution(1),
    "Ledger distributions per stream/B": _distribution(2),
    "Ledger distributions per stream/C": _distribution(5 * 86400 + SLACK / 2, SLACK / 2),
    "Ledger distributions per stream/D": _distribution(0),
    "Ledger distributions per stream/E": _distribution(0),
    "Ledger dispatch schedules per node/A": _dispatch(lambda t: 1),  # enabled
    "Ledger dispatch schedules per node/B": _dispatch(_next_six),
    "Ledger dispatch schedules per node/C": _dispatch(lambda t: 86400),
}
KEYS = sorted(_ledger_targets(VARIANTS[0]))


def test_every_ledger_query_has_an_expected_result() -> None:
    for variant in VARIANTS:
        assert sorted(_ledger_targets(variant)) == sorted(EXPECTED), variant.name


def test_the_cogni_variant_reads_no_recorded_series() -> None:
    for expr in _ledger_targets(VARIANTS[1]).values():
        assert "governance:" not in expr, expr


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
@pytest.mark.parametrize("key", KEYS)
def test_ledger_query_returns_what_the_nodes_imply(live: Live, variant: Variant, key: str) -> None:
    result = _query(live, variant, key)
    assert result, f"{variant.name} {key}: no data"
    EXPECTED[key](result, live.seeded_at)


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_the_node_variable_shows_one_node_alone(live: Live, variant: Variant) -> None:
    collect = _by(_query(live, variant, "Ledger collect per stream/E", "broken"), "ledger_node_id")
    assert collect == {BROKEN: 1.0}
    healthy = _query(live, variant, "Ledger collect per stream/E", "healthy")
    assert _by(healthy, "ledger_node_id") == {HEALTHY: 0.0}
    # The broken node runs no PR reviews at all; its distributions are observable.
    review = _query(live, variant, "Ledger last PR review/A", "broken")
    assert _by(review, "account") == {ACCOUNT: 0.0}
    observable = _query(live, variant, "Ledger distributions observable/A", "broken")
    assert [float(s["value"][1]) for s in observable] == [1.0]
    assert _query(live, variant, "Ledger dispatch schedules per node/A", "broken") == []

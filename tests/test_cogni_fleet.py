"""Cogni's way, end to end: the Alloy blocks as a real Prometheus, and the env/node_id
dashboard on what they forward.

Alloy cannot run here, so ``deploy/alloy/governance.alloy`` is read for what it does
(the scrape component's name, hence its job; its basic auth user; the labels its
``prometheus.relabel`` sets) and the same pipeline is built from Debian's
``prometheus``: one scraper per node, as each node runs its own Alloy, scraping that
node's exporter with basic auth (the exporter's web config) under the job Alloy names
it, ``prometheus.scrape.governance``, and ``remote_write``-ing with the relabelling as
``write_relabel_configs`` (they act on every series, ``up`` included, as
``prometheus.relabel`` does) to a store that stands in for Grafana Cloud's Mimir. The
store evaluates no rules: Cogni's alerts are Grafana-managed, and the Grafana form of the
rules inlines the recording rules, so nothing writes a ``governance:*`` series there and
the dashboard must do without them. One node keeps ``instance``, the other drops it (the
Alloy file's optional rule; Cogni does so for some services). Each exporter reads its
database as the read-only role of ``sql/monitoring-role.sql``, the URL from a file, as
``deploy/compose/docker-compose.governance.yml`` runs it.

Then ``deploy/grafana/governance-cogni.json``'s queries run against the store, with
the variables substituted as Grafana would: the fleet row keeps the two nodes apart,
the incident's node red and the healthy one green (its credit health computed in the
query, no recording rule), and ``env``/``node_id`` pick either.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml
from harness import (
    REPO,
    Database,
    create_database,
    drop_database,
    free_port,
    run_exporter,
    stop_process,
    wait_for_http,
)
from test_dashboard import load_generator

from exporter.demo import scenario
from exporter.settings import option_env
from exporter.snapshot import SCHEMA_2026_03

ALLOY = REPO / "deploy" / "alloy" / "governance.alloy"
DASHBOARD_JSON = REPO / "deploy" / "grafana" / "governance-cogni.json"
PROMETHEUS = shutil.which("prometheus")
JOB = "prometheus.scrape.governance"
ACCOUNT = scenario.SYSTEM_SLUG
PASSWORD = "scrape-pw-Lk4v"  # the plain password of Alloy's password_file
HEALTHY_BALANCE = 500_000_000  # scenario.seed_governance's default
GENERATOR = load_generator()
DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_JSON.read_text(encoding="utf-8"))
VALUES = {
    "datasource": "",
    "env": ".*",
    "node_id": ".*",
    "account": ACCOUNT,
    "charter": ".*",
    "__range": "10s",
    "__rate_interval": "5s",
    "__interval": "1s",
}
Series = dict[str, Any]


# --- what the Alloy file does ------------------------------------------------------------


@dataclass(frozen=True)
class AlloyBlocks:
    job: str
    target: str
    username: str
    password_file: str
    labels: dict[str, str]  # target_label -> environment variable (sys.env) or literal
    from_env: frozenset[str]  # the labels whose value is an environment variable
    forward_to: list[str]


def _active(text: str) -> str:
    """The Alloy file without its comments (none of its strings holds ``//``)."""
    lines = (re.sub(r"\s*//.*$", "", line) for line in text.splitlines())
    return "\n".join(line for line in lines if line.strip())


def _block(text: str, kind: str) -> tuple[str, str]:
    """(label, body) of the one ``kind "label" { ... }`` block (nested braces allowed)."""
    (match,) = re.finditer(rf'^{re.escape(kind)} "(\w+)" \{{', text, re.MULTILINE)
    depth, start = 1, match.end()
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return match.group(1), text[start:i]
    raise AssertionError(f"unclosed {kind} block")


def _attribute(body: str, name: str) -> str:
    (value,) = re.findall(rf"^\s*{name}\s*=\s*(.+?)\s*$", body, re.MULTILINE)
    return str(value)


def read_alloy(path: Path = ALLOY) -> AlloyBlocks:
    text = _active(path.read_text(encoding="utf-8"))
    name, scrape = _block(text, "prometheus.scrape")
    _relabel_name, relabel = _block(text, "prometheus.relabel")
    labels: dict[str, str] = {}
    from_env: set[str] = set()
    for rule in re.findall(r"rule \{(.*?)\}", relabel, re.DOTALL):
        target = json.loads(_attribute(rule, "target_label"))
        replacement = _attribute(rule, "replacement")
        env = re.fullmatch(r'sys\.env\("(\w+)"\)', replacement)
        labels[target] = env.group(1) if env else json.loads(replacement)
        if env:
            from_env.add(target)
    (target,) = re.findall(r'"__address__"\s*=\s*"([^"]+)"', scrape)
    forward = re.findall(r"forward_to\s*=\s*\[([^\]]*)\]", text)
    return AlloyBlocks(
        job=f"prometheus.scrape.{name}",
        target=target,
        username=json.loads(_attribute(scrape, "username")),
        password_file=json.loads(_attribute(scrape, "password_file")),
        labels=labels,
        from_env=frozenset(from_env),
        forward_to=[f.strip() for f in forward],
    )


def test_the_alloy_blocks_scrape_label_and_forward() -> None:
    blocks = read_alloy()
    assert blocks.job == JOB
    assert blocks.labels["env"] == "COGNI_ENV"
    assert blocks.labels["node_id"] == "COGNI_NODE_ID"
    assert {"env", "node_id"} <= blocks.from_env
    # scrape -> relabel -> the node's remote_write
    assert blocks.forward_to == [
        "prometheus.relabel.governance.receiver",
        "prometheus.remote_write.grafana_cloud.receiver",
    ]
    compose = yaml.safe_load(
        (REPO / "deploy" / "compose" / "docker-compose.governance.yml").read_text()
    )
    (service,) = compose["services"]
    assert blocks.target == f"{service}:10215"  # the compose service, on its default port
    text = ALLOY.read_text(encoding="utf-8")
    # The optional rule that drops instance, commented out, as the second node runs it.
    assert re.search(r'//\s*action = "labeldrop"\n\s*//\s*regex\s*= "instance"', text)


# --- the pipeline ----------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    env: str
    node_id: str
    drops_instance: bool


RED = Node("production", "node-red", drops_instance=False)
GREEN = Node("preview", "node-green", drops_instance=True)


def _relabelling(blocks: AlloyBlocks, node: Node) -> list[dict[str, Any]]:
    """prometheus.relabel's rules as write_relabel_configs, the node's environment
    variables (COGNI_ENV, COGNI_NODE_ID) given their values."""
    environment = {"COGNI_ENV": node.env, "COGNI_NODE_ID": node.node_id}
    rules: list[dict[str, Any]] = [
        {
            "target_label": label,
            "replacement": environment[value] if label in blocks.from_env else value,
        }
        for label, value in blocks.labels.items()
    ]
    if node.drops_instance:
        rules.append({"action": "labeldrop", "regex": "instance"})
    return rules


@contextlib.contextmanager
def prometheus(config: dict[str, Any], *flags: str) -> Iterator[str]:
    assert PROMETHEUS is not None, "needs the prometheus binary (apt-get install prometheus)"
    directory = Path(tempfile.mkdtemp(prefix="govexp-cogni-"))
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
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
                *flags,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/-/ready", process, log_path, timeout=30)
        yield url
    finally:
        stop_process(process)
        shutil.rmtree(directory, ignore_errors=True)


def _store_config() -> dict[str, Any]:
    """The store: what the nodes remote-write, and no rules, as Grafana Cloud's Mimir
    holds under Grafana-managed alerting (which inlines the recording rules)."""
    return {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}}


def _scraper_config(
    blocks: AlloyBlocks, node: Node, address: str, password_file: Path, store: str
) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": blocks.job,
                "basic_auth": {"username": blocks.username, "password_file": str(password_file)},
                "static_configs": [{"targets": [address]}],
            }
        ],
        "remote_write": [
            {
                "url": f"{store}/api/v1/write",
                "write_relabel_configs": _relabelling(blocks, node),
                "queue_config": {
                    "batch_send_deadline": "1s",
                    "min_backoff": "100ms",
                    "max_backoff": "1s",
                },
            }
        ],
    }


def _status_without_credentials(url: str, log_path: Path, timeout: float = 20) -> int:
    """The HTTP status of /healthz asked without credentials, once the exporter listens."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as refused:
            return refused.code
        except OSError:
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)


@contextlib.contextmanager
def _exporter(database: Database, directory: Path, username: str) -> Iterator[str]:
    """The exporter as the compose snippet runs it: URL from a file, basic auth."""
    url_file = directory / f"{database.name}-url"
    url_file.write_text(database.monitor_url + "\n", encoding="utf-8")
    web_config = directory / f"{database.name}-web.yml"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web_config.write_text(yaml.safe_dump({"basic_auth_users": {username: hashed}}))
    env = {
        option_env("database_url_file"): str(url_file),
        option_env("web_config_file"): str(web_config),
    }
    with run_exporter("postgresql://nobody@invalid/none", env=env, wait=False) as process:
        assert _status_without_credentials(process.url, process.log_path) == 401
        yield process.url.removeprefix("http://")


@dataclass
class Store:
    url: str
    addresses: dict[str, str]  # node_id -> the exporter's host:port

    def query(self, expr: str) -> list[Series]:
        params = urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{params}", timeout=10) as answer:
            body = json.loads(answer.read())
        assert body["status"] == "success", body
        result: list[Series] = body["data"]["result"]
        return result

    def label_values(self, label: str, selector: str) -> list[str]:
        params = urllib.parse.urlencode({"match[]": selector})
        with urllib.request.urlopen(
            f"{self.url}/api/v1/label/{label}/values?{params}", timeout=10
        ) as answer:
            return sorted(json.loads(answer.read())["data"])

    def wait_for(self, expr: str, what: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not self.query(expr):
            assert time.monotonic() < deadline, f"timed out waiting for {what} ({expr})"
            time.sleep(0.5)


@pytest.fixture(scope="module")
def store(pg_admin_url: str) -> Iterator[Store]:
    blocks = read_alloy()
    databases: list[Database] = []
    directory = Path(tempfile.mkdtemp(prefix="govexp-alloy-"))
    try:
        for _node in (RED, GREEN):
            databases.append(create_database(pg_admin_url, SCHEMA_2026_03))
        red, green = databases
        now = datetime.now(UTC)
        with red.connect() as conn:
            scenario.seed_incident(conn, red.schema, now)
        with green.connect() as conn:
            scenario.seed_governance(conn, green.schema, now)
        password_file = directory / "scrape-password"
        password_file.write_text(PASSWORD, encoding="utf-8")
        with contextlib.ExitStack() as stack:
            store_url = stack.enter_context(
                prometheus(_store_config(), "--web.enable-remote-write-receiver")
            )
            addresses = {}
            for node, database in ((RED, red), (GREEN, green)):
                address = stack.enter_context(_exporter(database, directory, blocks.username))
                config = _scraper_config(blocks, node, address, password_file, store_url)
                stack.enter_context(prometheus(config))
                addresses[node.node_id] = address
            live = Store(store_url, addresses)
            live.wait_for(f'count(up{{job="{JOB}"}} == 1) == 2', "both nodes scraped")
            health = GENERATOR.substitute(
                _targets("Fleet: nodes, worst first")["A"]["expr"], VALUES
            )
            live.wait_for(f"count({health}) == 2", "the credit health of both")
            live.wait_for(
                "count(count_over_time(governance_exporter_up[1m]) >= 12) == 2", "samples"
            )
            yield live
    finally:
        for database in databases:
            drop_database(database)
        shutil.rmtree(directory, ignore_errors=True)


# --- the series carry the node's labels ----------------------------------------------------


def test_every_series_carries_env_and_node_id_under_alloys_job(store: Store) -> None:
    up = {s["metric"]["node_id"]: s["metric"] for s in store.query(f'up{{job="{JOB}"}}')}
    assert up[RED.node_id] == {
        "__name__": "up",
        "job": JOB,
        "instance": store.addresses[RED.node_id],
        "env": RED.env,
        "node_id": RED.node_id,
        "service": "governance-exporter",
    }
    assert up[GREEN.node_id] == {  # instance dropped, up included
        "__name__": "up",
        "job": JOB,
        "env": GREEN.env,
        "node_id": GREEN.node_id,
        "service": "governance-exporter",
    }
    # Nothing of the exporter's arrives without the node's labels.
    assert store.query('count({__name__=~"governance_.+", node_id=""})') == []
    assert store.query('count({__name__=~"governance_.+", env=""})') == []
    assert store.query(f'count({{__name__=~"governance_.+", job!="{JOB}"}})') == []
    assert (
        store.query(f'{{__name__=~"governance_.+", node_id="{GREEN.node_id}", instance!=""}}') == []
    )
    by_node = store.query("count by (env, node_id) (governance_credit_balance_credits)")
    assert {(s["metric"]["env"], s["metric"]["node_id"]) for s in by_node} == {
        (RED.env, RED.node_id),
        (GREEN.env, GREEN.node_id),
    }


def test_the_store_holds_no_recorded_series(store: Store) -> None:
    """As under Grafana-managed alerting: every governance series is the exporter's own,
    so whatever the dashboard shows it computes from them."""
    assert store.query('count({__name__=~".+:.+"})') == []
    assert store.query('count({__name__=~"governance_.+"}) > 0') != []


# --- the dashboard under env and node_id -----------------------------------------------------


def _targets(title: str) -> dict[str, dict[str, Any]]:
    (panel,) = (p for p in GENERATOR.panels(DASHBOARD) if p["title"] == title)
    return {t["refId"]: t for t in panel["targets"]}


def _instant(store: Store, title: str, ref: str, **values: str) -> list[Series]:
    return store.query(GENERATOR.substitute(_targets(title)[ref]["expr"], {**VALUES, **values}))


def _per_node(result: list[Series]) -> dict[str, float]:
    """{node_id: value}; each series labelled by its whole node, instance where kept."""
    out: dict[str, float] = {}
    for series in result:
        metric = series["metric"]
        node = metric["node_id"]
        expected = {"job", "env", "node_id"} | (set() if node == GREEN.node_id else {"instance"})
        assert set(metric) == expected, metric
        assert node not in out, result
        out[node] = float(series["value"][1])
    return out


def test_every_query_of_the_cogni_dashboard_runs(store: Store) -> None:
    for panel, target in GENERATOR.targets(DASHBOARD):
        expr = GENERATOR.substitute(target["expr"], VALUES)
        store.query(expr)  # asserts the API's "success": each parses and evaluates
        assert panel["datasource"]["uid"] == "${datasource}"


def test_the_fleet_counts_one_red_and_one_green_node(store: Store) -> None:
    title = "Fleet: nodes by credit health"
    counts = {ref: float(_instant(store, title, ref)[0]["value"][1]) for ref in "ABCD"}
    assert counts == {"A": 1, "B": 0, "C": 1, "D": 0}  # red, yellow, green, down


def test_the_fleet_table_keeps_the_nodes_apart_with_and_without_instance(store: Store) -> None:
    title = "Fleet: nodes, worst first"
    health, runway, failing, _alerts, up = (_per_node(_instant(store, title, r)) for r in "ABCDE")
    assert health == {RED.node_id: 2, GREEN.node_id: 0}
    assert runway[RED.node_id] == 0
    assert runway[GREEN.node_id] > 24 * 3600
    assert failing[RED.node_id] >= 1
    assert failing[GREEN.node_id] == 0
    assert up == {RED.node_id: 1, GREEN.node_id: 1}  # only the exporter's own targets


def test_the_exporter_up_stat_names_each_node(store: Store) -> None:
    (scrape,) = (t for t in _targets("Exporter up").values() if t["refId"] == "A")
    assert scrape["legendFormat"] == "scrape {{node_id}} {{instance}}"
    result = _instant(store, "Exporter up", "A")
    assert sorted(s["metric"]["node_id"] for s in result) == [GREEN.node_id, RED.node_id]
    assert {s["value"][1] for s in result} == {"1"}


def test_env_and_node_id_variables_pick_one_node(store: Store) -> None:
    variables = {v["name"]: v["query"] for v in DASHBOARD["templating"]["list"]}

    def values(name: str, **picked: str) -> list[str]:
        query = GENERATOR.substitute(variables[name], {**VALUES, **picked})
        selector, label = query.removeprefix("label_values(").removesuffix(")").rsplit(", ", 1)
        assert label == name
        return store.label_values(label, selector)

    assert values("env") == sorted([RED.env, GREEN.env])
    assert values("node_id") == sorted([RED.node_id, GREEN.node_id])
    assert values("node_id", env=GREEN.env) == [GREEN.node_id]
    assert values("account") == [ACCOUNT]
    for node, balance in ((RED, 0), (GREEN, HEALTHY_BALANCE)):
        (series,) = _instant(store, "Balance", "A", node_id=node.node_id)
        assert float(series["value"][1]) == balance
        (series,) = _instant(store, "Balance", "A", env=node.env)
        assert float(series["value"][1]) == balance
    assert _instant(store, "Balance", "A", env="candidate-a") == []
    (series,) = _instant(store, "Credit health: runway", "A", node_id=GREEN.node_id)
    assert float(series["value"][1]) > 24 * 3600

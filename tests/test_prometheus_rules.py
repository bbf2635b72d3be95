"""The Prometheus side: scrape config, rules and Alertmanager, checked with the real tools.

promtool (Debian package ``prometheus``) and amtool (``prometheus-alertmanager``)
must be on PATH. A missing tool fails the test with that hint: it never skips.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from concurrent_runs import Background, Command

from exporter.demo.stack import find_alertmanager, run_alertmanager

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS / "prometheus.yml"
RULES = PROMETHEUS / "rules" / "governance.rules.yml"
# The fleet objective: for the global Prometheus, not loaded by prometheus.yml.
SLO_RULES = PROMETHEUS / "rules" / "governance-slo.rules.yml"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.rules.yml"))
RUNBOOK = PROMETHEUS / "RUNBOOK.md"
UNIT_TESTS = sorted((PROMETHEUS / "tests").glob("*.test.yml"))
ALERTMANAGER = PROMETHEUS / "alertmanager.yml"
ALERTMANAGER_VARIANT = PROMETHEUS / "alertmanager.pagerduty-slack.example.yml"

RUNBOOK_BASE = "https://github.com/cogni/governance-exporter/blob/main/prometheus/RUNBOOK.md#"
# Values for the ${...} placeholders that alertmanager.yml is rendered with.
ALERTMANAGER_ENV = {
    "PAGER_WEBHOOK_URL": "https://pager.example.invalid/hook",
    "TICKET_WEBHOOK_URL": "https://tickets.example.invalid/hook",
}
_PLACEHOLDER = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")

# Alert name -> the severities it must have.
EXPECTED_ALERTS = {
    "GovernanceCreditRunwayLow": {"warning", "critical"},
    "GovernanceCharterStalled": {"critical"},
    "GovernanceRunsFailing": {"warning"},
    "GovernanceCharterMissing": {"critical"},
    "GovernanceScheduleDisabled": {"warning"},
    "GovernanceScheduleConfigInvalid": {"warning"},
    "GovernanceNoSpend": {"warning"},
    "GovernanceExporterDown": {"critical"},
    "GovernanceExporterFailing": {"critical"},
    "GovernanceBudgetGateClosed": {"warning"},
    "GovernanceBudgetGateStale": {"warning"},
    "GovernanceHeartbeatStale": {"warning"},
    "GovernanceScheduledRunsErrorBudgetBurn": {"critical", "warning"},
    "GovernanceRunsRejectedForCredits": {"critical"},
    "GovernanceProviderUnavailable": {"critical"},
    "GovernanceScheduleDrift": {"warning"},
    "GovernanceUnscheduledRunsHidden": {"warning"},
    "GovernanceRepoSpecUnusable": {"warning"},
    "GovernanceLedgerCollectStalled": {"critical"},
    "GovernanceLedgerWebhookSilent": {"critical"},
    "GovernanceLedgerEpochAwaitingApproval": {"warning"},
    "GovernanceLedgerDistributionMissing": {"warning"},
    "GovernanceLedgerDispatchPaused": {"warning"},
    "GovernanceLedgerNotObservable": {"warning"},
}
RECEIVER_BY_SEVERITY = {"critical": "pager", "warning": "ticket"}
EXPECTED_UNIT_TESTS = {
    "credit_runway",
    "charters",
    "incident_2026_02_15",
    "exporter",
    "memory",
    "two_nodes",
    "slo",
    "today",
    "today_outages",
    "ledger",
}
# The labels that tell one node from another in one Alertmanager: the target's
# (job, instance) and the fleet's (Cogni's env and node_id; cluster, node), then
# the alert's own.
PER_NODE_LABELS = [
    "alertname",
    "env",
    "node_id",
    "cluster",
    "node",
    "job",
    "instance",
    "account",
]

_PACKAGES = {"promtool": "prometheus", "amtool": "prometheus-alertmanager"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not on PATH; install Debian's {_PACKAGES[name]} package "
            f"(apt-get install {_PACKAGES[name]}) to run these checks",
            pytrace=False,
        )
    return path


def _run(tool: str, *args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool(tool), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _rules(*paths: Path) -> list[dict[str, Any]]:
    return [r for path in paths for g in _load(path)["groups"] for r in g["rules"]]


def alerting_rules() -> list[dict[str, Any]]:
    """Every alert of every rule file (the node's and the fleet's)."""
    return [r for r in _rules(*RULE_FILES) if "alert" in r]


def render_alertmanager(text: str, env: dict[str, str]) -> str:
    """What ``envsubst '${PAGER_WEBHOOK_URL} ${TICKET_WEBHOOK_URL}'`` does at deploy."""
    return _PLACEHOLDER.sub(lambda m: env[m.group(1)], text)


@pytest.fixture(scope="module")
def alertmanager_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    rendered = tmp_path_factory.mktemp("alertmanager") / "alertmanager.yml"
    rendered.write_text(
        render_alertmanager(ALERTMANAGER.read_text(encoding="utf-8"), ALERTMANAGER_ENV),
        encoding="utf-8",
    )
    return {"webhook": rendered, "pagerduty-slack": ALERTMANAGER_VARIANT}


# --- Prometheus -------------------------------------------------------------------


def test_prometheus_config_is_valid_and_loads_the_rules() -> None:
    result = _run("promtool", "check", "config", PROMETHEUS_CONFIG)
    _assert_ok(result)
    config = _load(PROMETHEUS_CONFIG)
    rule_files = [(PROMETHEUS_CONFIG.parent / f).resolve() for f in config["rule_files"]]
    assert rule_files == [RULES.resolve()]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert "governance" in jobs


def test_the_rule_files_are_the_node_and_the_fleet_ones() -> None:
    assert sorted([RULES, SLO_RULES]) == RULE_FILES


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_rules_pass_promtool_lint(rule_file: Path) -> None:
    result = _run("promtool", "check", "rules", "--lint=all", "--lint-fatal", rule_file)
    _assert_ok(result)
    assert "WARNING" not in result.stdout + result.stderr


def test_every_rule_file_is_unit_tested() -> None:
    tested = {
        (path.parent / rule_file).resolve()
        for path in UNIT_TESTS
        for rule_file in _load(path)["rule_files"]
    }
    assert tested == {path.resolve() for path in RULE_FILES}


# by (...) and on (...) name the labels to keep, and so drop job, instance and
# the operator's labels: one node's series would match or hide another's.
_DROPS_TARGET_LABELS = re.compile(r"\b(by|on)\s*\(")


@pytest.mark.parametrize("rule", _rules(RULES), ids=lambda r: r.get("alert") or r["record"])
def test_node_rules_keep_the_target_labels(rule: dict[str, Any]) -> None:
    description = rule.get("annotations", {}).get("description", "")
    for text in (rule["expr"], description):
        assert not _DROPS_TARGET_LABELS.search(text), f"use without (...) / ignoring (...): {text}"
    # A description's queries select the alert's own target by every label of the
    # alert (job and instance may not exist): $target, built from $labels.
    actions = re.findall(r"\{\{(.*?)\}\}", description, re.DOTALL)
    queries = [a for a in actions if re.search(r"\bquery\b", a)]
    for query in queries:
        assert re.search(r'printf "[^"]*\{%s[^"]*" \$target \|', query), query
        assert "job=%q" not in query, query
    if queries:
        assert re.search(r"\$target := .*range \$k, \$v := \$labels", description), description
    assert "$labels.instance }}" not in description.replace("with $labels.instance }}", ""), (
        "print $labels.instance only inside {{ with }}: an operator may drop it"
    )


def test_the_unit_test_files_are_all_there() -> None:
    assert {p.name.removesuffix(".test.yml") for p in UNIT_TESTS} >= EXPECTED_UNIT_TESTS


def background_runs(workdir: Path, items: list[object]) -> dict[str, Command]:
    """``promtool test rules`` of each collected unit test file, run beside the suite
    (tests/concurrent_runs.py); each ``test_promtool_unit_tests`` asserts its file's."""
    promtool = shutil.which("promtool")
    if promtool is None:  # each test fails, with the hint, in _tool
        return {}
    collected = [
        item.callspec.params["test_file"]
        for item in items
        if isinstance(item, pytest.Function) and item.originalname == "test_promtool_unit_tests"
    ]
    return {p.name: ([promtool, "test", "rules", p.name], p.parent) for p in collected}


@pytest.mark.parametrize("test_file", UNIT_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests(test_file: Path, background: Background) -> None:
    _tool("promtool")
    _assert_ok(background.results(__name__)[test_file.name].result())


def test_every_alert_and_severity_is_seen_firing_in_a_unit_test() -> None:
    fired = set()
    for path in UNIT_TESTS:
        for case in _load(path)["tests"]:
            for check in case.get("alert_rule_test") or []:
                for alert in check.get("exp_alerts") or []:
                    fired.add((check["alertname"], alert["exp_labels"]["severity"]))
    expected = {(name, sev) for name, sevs in EXPECTED_ALERTS.items() for sev in sevs}
    assert expected - fired == set()


def test_rules_survive_a_yaml_round_trip(tmp_path: Path) -> None:
    # The end-to-end test rewrites the `for:` values by loading and dumping this file.
    rules = _load(RULES)
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
    copy = tmp_path / "governance.rules.yml"
    copy.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    _assert_ok(_run("promtool", "check", "rules", copy))


# --- alert conventions --------------------------------------------------------------


def test_the_expected_alerts_exist_with_their_severities() -> None:
    found: dict[str, set[str]] = {}
    for rule in alerting_rules():
        found.setdefault(rule["alert"], set()).add(rule["labels"]["severity"])
    assert found == EXPECTED_ALERTS


# A raw series; not a recorded one (governance:..., fleet:governance_...).
_RAW_SERIES = re.compile(r"(?<![\w:])governance_[a-z_]+")


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda r: f"{r['alert']}-{r['expr'][:30]}")
def test_alert_bridges_a_failed_scrape(rule: dict[str, Any]) -> None:
    # A failed scrape marks every exporter series stale: an alert reading one raw
    # would resolve (and restart its `for:`). Read a held governance:... recording,
    # last_over_time(...) of the raw series, or a counter over a range (increase()
    # over 90m does not notice a gap of a few scrapes).
    expr = rule["expr"]
    for match in _RAW_SERIES.finditer(expr):
        before = expr[: match.start()]
        assert re.search(r"(last_over_time|increase|rate)\(\s*$", before), (
            f"{rule['alert']} reads {match.group()} raw; use last_over_time(...[10m])"
        )


def test_alerts_of_one_name_and_severity_differ_by_condition() -> None:
    # Rules sharing a name and severity need their own `condition`, or their alerts
    # could collide; each keeps one label set while it fires.
    seen: dict[tuple[str, str], list[str | None]] = {}
    for rule in alerting_rules():
        key = (rule["alert"], rule["labels"]["severity"])
        seen.setdefault(key, []).append(rule["labels"].get("condition"))
    for key, conditions in seen.items():
        if len(conditions) > 1:
            assert None not in conditions, f"{key}: every rule needs a condition label"
            assert len(set(conditions)) == len(conditions), f"{key}: {conditions}"
    assert seen[("GovernanceHeartbeatStale", "warning")] == ["age", "file"]
    assert seen[("GovernanceRunsFailing", "warning")] == ["scheduled", "unscheduled"]
    assert seen[("GovernanceBudgetGateStale", "warning")] == ["age", "file"]


def _runbook_anchors() -> set[str]:
    # GitHub's anchor of a heading "## Name" is its text in lower case.
    headings = re.findall(r"^## (\S+)\s*$", RUNBOOK.read_text(encoding="utf-8"), re.MULTILINE)
    return {h.lower() for h in headings}


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda r: f"{r['alert']}-{r['expr'][:30]}")
def test_alert_has_severity_for_and_annotations(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in RECEIVER_BY_SEVERITY
    assert "for" in rule, "state the `for:` even when it is 0m"
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert "{{" not in annotations["summary"], "summary is one static sentence"
    assert annotations["summary"].endswith(".")
    assert "{{" in annotations["description"], "description is templated"
    anchor = rule["alert"].lower()
    assert annotations["runbook_url"] == RUNBOOK_BASE + anchor
    assert anchor in _runbook_anchors(), f"RUNBOOK.md has no section '## {rule['alert']}'"


def test_runbook_explains_every_for_duration() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## (\S+)\s*$\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL))
    for name in EXPECTED_ALERTS:
        assert "**`for:`.**" in sections[name], f"RUNBOOK.md: say why {name} has its `for:`"


# --- Alertmanager -------------------------------------------------------------------


def test_alertmanager_placeholders_are_the_documented_ones() -> None:
    text = ALERTMANAGER.read_text(encoding="utf-8")
    assert set(_PLACEHOLDER.findall(text)) == set(ALERTMANAGER_ENV)


@pytest.mark.parametrize("variant", ["webhook", "pagerduty-slack"])
def test_alertmanager_config_is_valid(variant: str, alertmanager_files: dict[str, Path]) -> None:
    _assert_ok(_run("amtool", "check-config", alertmanager_files[variant]))


def _routed_receiver(config: Path, receiver: str, labels: list[str]) -> str:
    """The receiver amtool routes an alert with ``labels`` to (it must be ``receiver``
    for amtool to exit 0: --verify.receivers)."""
    result = _run(
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={config}",
        f"--verify.receivers={receiver}",
        *labels,
    )
    _assert_ok(result)
    return result.stdout.strip()


@pytest.mark.parametrize("variant", ["webhook", "pagerduty-slack"])
@pytest.mark.parametrize(("severity", "receiver"), [*RECEIVER_BY_SEVERITY.items(), ("", "ticket")])
def test_alertmanager_routes_by_severity(
    variant: str, severity: str, receiver: str, alertmanager_files: dict[str, Path]
) -> None:
    labels = ["alertname=GovernanceCreditRunwayLow", "account=cogni_system"]
    if severity:
        labels.append(f"severity={severity}")
    assert _routed_receiver(alertmanager_files[variant], receiver, labels) == receiver


@pytest.mark.parametrize("variant", ["webhook", "pagerduty-slack"])
def test_every_alert_routes_to_its_severitys_receiver(
    variant: str, alertmanager_files: dict[str, Path]
) -> None:
    # Each alert with its rule's labels (the ledger's alerts carry ledger_node_id,
    # scope_id, part...; none of them may change the route): a page or a ticket.
    for alert, severities in sorted(EXPECTED_ALERTS.items()):
        for severity in sorted(severities):
            receiver = RECEIVER_BY_SEVERITY[severity]
            labels = [f"alertname={alert}", f"severity={severity}", "job=governance"]
            if alert.startswith("GovernanceLedger"):
                labels += [
                    "ledger_node_id=5ed2d64f-2a37-4c8d-9e2d-7e1d8f7b5a01",
                    "scope_id=default",
                ]
            routed = _routed_receiver(alertmanager_files[variant], receiver, labels)
            assert routed == receiver, (alert, severity)


def test_critical_inhibits_warning_for_the_same_alert_on_the_same_node() -> None:
    config = _load(ALERTMANAGER)
    assert config["inhibit_rules"] == [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": PER_NODE_LABELS,
        }
    ]
    assert config["route"]["group_by"] == PER_NODE_LABELS
    for route in config["route"]["routes"]:
        assert "group_by" not in route, "a child route would regroup across nodes"


def test_variant_routes_exactly_like_the_webhook_config() -> None:
    webhook, variant = _load(ALERTMANAGER), _load(ALERTMANAGER_VARIANT)
    assert variant["route"] == webhook["route"]
    assert variant["inhibit_rules"] == webhook["inhibit_rules"]
    assert {r["name"] for r in variant["receivers"]} == {r["name"] for r in webhook["receivers"]}


# --- Alertmanager, running: nodes are grouped and inhibited apart -------------------


def _runway_alert(severity: str, **labels: str) -> dict[str, Any]:
    condition = {"condition": "runway", "severity": severity, "account": "cogni_system"}
    return {"labels": {"alertname": "GovernanceCreditRunwayLow", **condition, **labels}}


def _api(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return json.loads(text) if text else None


def _states(url: str) -> dict[tuple[str, str, str], str]:
    """(cluster, instance, severity) -> active or suppressed, as Alertmanager sees it."""
    return {
        (a["labels"].get("cluster", ""), a["labels"]["instance"], a["labels"]["severity"]): a[
            "status"
        ]["state"]
        for a in _api(url + "/api/v2/alerts")
    }


def test_a_running_alertmanager_groups_and_inhibits_each_node_apart(
    alertmanager_files: dict[str, Path], tmp_path: Path
) -> None:
    # Red runway (critical + its warning) on node A; only the warning on node B,
    # which differs from A in instance alone; and the same instance name in
    # another cluster, with only the warning too. A's critical hides A's warning,
    # and nothing else; each node gets its own notification groups.
    binary = find_alertmanager()
    if binary is None:
        pytest.fail(
            "prometheus-alertmanager is not on PATH (apt-get install prometheus-alertmanager)",
            pytrace=False,
        )
    node_a = {"job": "governance", "instance": "node-a:10215", "cluster": "east"}
    node_b = {**node_a, "instance": "node-b:10215"}
    elsewhere = {**node_a, "cluster": "west"}
    alerts = [
        _runway_alert("critical", **node_a),
        _runway_alert("warning", **node_a),
        _runway_alert("warning", **node_b),
        _runway_alert("warning", **elsewhere),
    ]
    config = alertmanager_files["webhook"].read_text(encoding="utf-8")
    with run_alertmanager(binary, tmp_path / "alertmanager", config) as alertmanager:
        _api(alertmanager.url + "/api/v2/alerts", alerts)
        deadline = time.monotonic() + 30
        while _states(alertmanager.url).get(("east", "node-a:10215", "warning")) != "suppressed":
            assert time.monotonic() < deadline, _states(alertmanager.url)
            time.sleep(0.2)
        assert _states(alertmanager.url) == {
            ("east", "node-a:10215", "critical"): "active",
            ("east", "node-a:10215", "warning"): "suppressed",
            ("east", "node-b:10215", "warning"): "active",
            ("west", "node-a:10215", "warning"): "active",
        }
        groups = {
            (g["receiver"]["name"], g["labels"].get("cluster"), g["labels"]["instance"]): len(
                g["alerts"]
            )
            for g in _api(alertmanager.url + "/api/v2/alerts/groups")
        }
        assert groups == {
            ("pager", "east", "node-a:10215"): 1,
            ("ticket", "east", "node-a:10215"): 1,
            ("ticket", "east", "node-b:10215"): 1,
            ("ticket", "west", "node-a:10215"): 1,
        }

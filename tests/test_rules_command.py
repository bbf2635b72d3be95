"""`governance-exporter rules`: one source for every form of the rules, the operator's
selector, and the Grafana-managed form, checked with the real promtool.

Series are labelled as Grafana Alloy labels them for Cogni (a ``prometheus.scrape
"governance"`` component: job="prometheus.scrape.governance"; env and node_id added;
instance kept on one node and dropped on the other).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from concurrent_runs import Background, Command

from exporter.rules import grafana
from exporter.rules.source import (
    DEFAULT_SELECTOR,
    FLEET,
    NODE,
    SelectorError,
    parse_selector,
    render,
    template,
)

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "prometheus"
COMMITTED = {
    NODE: PROMETHEUS / "rules" / "governance.rules.yml",
    FLEET: PROMETHEUS / "rules" / "governance-slo.rules.yml",
}
UNIT_TESTS = sorted((PROMETHEUS / "tests").glob("*.test.yml"))
ALERTMANAGER = PROMETHEUS / "alertmanager.yml"
POLICY = PROMETHEUS / "grafana" / "notification-policy.example.yaml"

ALLOY = 'job="prometheus.scrape.governance"'
JOB = "prometheus.scrape.governance"
NODE_A = {"job": JOB, "env": "production", "node_id": "node-a", "instance": "10.0.0.5:10215"}
NODE_B = {"job": JOB, "env": "preview", "node_id": "node-b"}  # Alloy dropped instance
UID = re.compile(r"[A-Za-z0-9_-]{1,40}")


def _promtool_path() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is not on PATH (apt-get install prometheus)", pytrace=False)
    return tool


def _promtool(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [_promtool_path(), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "rules", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def _alerts(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(g["name"], r) for g in document["groups"] for r in g["rules"] if "alert" in r]


# --- one source ---------------------------------------------------------------------


@pytest.mark.parametrize("name", [NODE, FLEET])
def test_the_committed_rule_files_are_the_default_output(name: str) -> None:
    assert COMMITTED[name].read_text(encoding="utf-8") == render(name), (
        f"regenerate: governance-exporter rules{' --fleet' if name == FLEET else ''} "
        f"> {COMMITTED[name].relative_to(ROOT)} (then python3 charts/sync-rules.py)"
    )


def test_the_command_prints_the_committed_files() -> None:
    node, fleet = run_cli(), run_cli("--fleet")
    assert (node.returncode, node.stderr) == (0, "")
    assert node.stdout == COMMITTED[NODE].read_text(encoding="utf-8")
    assert fleet.stdout == COMMITTED[FLEET].read_text(encoding="utf-8")


def test_the_templates_ship_in_the_runtime_install() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["exporter"]
    shipped = {p.name for pattern in patterns for p in (ROOT / "exporter").glob(pattern)}
    assert {NODE, FLEET} <= shipped
    runtime = {re.split(r"[<>=!~ ]", r, maxsplit=1)[0] for r in project["project"]["dependencies"]}
    assert {"PyYAML", "grafana-foundation-sdk"} <= runtime


@pytest.mark.parametrize("name", [NODE, FLEET])
def test_every_exporter_series_goes_through_the_selector(name: str) -> None:
    selector = 'job="x",env=~"prod.*"'
    for _, rule in _alerts(yaml.safe_load(render(name, selector))):
        for match in re.finditer(r"(?<![\w:])(governance_[a-z0-9_]+|up)\b(\{?)", rule["expr"]):
            following = rule["expr"][match.end(1) :]
            assert following.startswith("{" + selector), f"{rule['alert']}: {match.group(1)}"
    notes = [line for line in template(name).splitlines() if line.startswith("#%")]
    assert notes, "the template says how to add a rule"
    assert not re.search(r"^#%", render(name), re.MULTILINE)
    assert "${selector}" not in render(name)


@pytest.mark.parametrize(
    ("given", "parsed"),
    [
        ('job="governance"', 'job="governance"'),
        ('{job="prometheus.scrape.governance", env="production"}', f'{ALLOY},env="production"'),
        ("env=~'prod|preview',node_id!=``", "env=~'prod|preview',node_id!=``"),
        ('job="a,b}c"', 'job="a,b}c"'),
    ],
)
def test_a_selector_is_promql_label_matchers(given: str, parsed: str) -> None:
    assert parse_selector(given) == parsed


@pytest.mark.parametrize(
    "bad",
    ["", "{}", "governance", "job=governance", 'job="a" env="b"', '__name__="up"', 'job="a",,'],
)
def test_a_bad_selector_is_one_line_and_exit_2(bad: str) -> None:
    with pytest.raises(SelectorError):
        parse_selector(bad)
    result = run_cli("--selector", bad)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("governance-exporter: error: --selector")
    assert result.stderr.count("\n") == 1


# --- the operator's labels, through promtool ------------------------------------------


def _series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _healthy(node: dict[str, str], window: int, **values: str) -> list[dict[str, str]]:
    """A node whose governance is fine for 60 minutes (override series by name)."""
    account = {**node, "account": "cogni_system"}
    charter = {**account, "charter": "govern"}
    series = {
        "up": (node, "1x60"),
        "governance_exporter_up": (node, "1x60"),
        "governance_credit_window_seconds": (node, f"{window}x60"),
        "governance_credit_balance_credits": (account, "1e9x60"),
        "governance_credit_spent_credits": (account, "1e8x60"),
        "governance_credit_runway_seconds": (account, "864000x60"),
        "governance_credit_min_run_cost_credits": (account, "4e6x60"),
        "governance_credit_rejected_runs": (account, "0x60"),
        "governance_credit_spending_schedules": (account, "1x60"),
        "governance_unscheduled_runs_visible": (account, "1x60"),
        "governance_charter_configured": (charter, "1x60"),
        "governance_schedule_enabled": (charter, "1x60"),
        "governance_schedule_config_valid": (charter, "1x60"),
        "governance_schedule_interval_seconds": (charter, "3600x60"),
        "governance_schedule_last_success_timestamp_seconds": (charter, "0+60x60"),
        "governance_schedule_retired": (charter, "0x60"),
        "governance_schedule_drift": (charter, "0x60"),
        "governance_schedule_failed_runs": ({**charter, "reason": "timeout"}, "0x60"),
        "governance_repo_spec_status": ({**node, "status": "ok"}, "1x60"),
    }
    return [
        _series(name, labels, values.get(name, default))
        for name, (labels, default) in series.items()
    ]


def _alloy_cases(node_alerts: list[str]) -> list[dict[str, Any]]:
    node_b = {**NODE_B, "account": "cogni_system"}
    rejected = {**NODE_A, "account": "cogni_system"}
    return [
        {
            "name": "two healthy nodes fire nothing; another service's target down is not ours",
            "interval": "1m",
            "input_series": [
                *_healthy(NODE_A, 86400),
                *_healthy(NODE_B, 3600),
                _series("up", {**NODE_A, "job": "prometheus.scrape.app"}, "0x60"),
            ],
            "alert_rule_test": [{"eval_time": "45m", "alertname": n} for n in node_alerts],
        },
        {
            "name": "the exporter down on one node fires for that node only",
            "interval": "1m",
            "input_series": [*_healthy(NODE_A, 86400), *_healthy(NODE_B, 3600, up="1x9 0x50")],
            "alert_rule_test": [
                {"eval_time": "14m", "alertname": "GovernanceExporterDown"},
                {
                    "eval_time": "15m",
                    "alertname": "GovernanceExporterDown",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "critical", **NODE_B},
                            "exp_annotations": _annotations(
                                "GovernanceExporterDown",
                                f"The governance exporter target of job {JOB} is down or "
                                "missing: credit runway and charter health are not being "
                                "watched.",
                            ),
                        }
                    ],
                },
            ],
        },
        {
            "name": "no exporter at all: absent() keeps the selector's labels",
            "interval": "1m",
            "input_series": [_series("up", {**NODE_A, "job": "prometheus.scrape.app"}, "1x60")],
            "alert_rule_test": [
                {
                    "eval_time": "10m",
                    "alertname": "GovernanceExporterDown",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "critical", "job": JOB},
                            "exp_annotations": _annotations(
                                "GovernanceExporterDown",
                                f"The governance exporter target of job {JOB} is down or "
                                "missing: credit runway and charter health are not being "
                                "watched.",
                            ),
                        }
                    ],
                }
            ],
        },
        {
            # Node A: every run rejected for credits (the 2026-02-15 outage). Node B,
            # without instance: its runs fail, and its description reads its own
            # 1h window, found by its env and node_id, not node A's 1d.
            "name": "an outage on one node fires for that node only, with its env and node_id",
            "interval": "1m",
            "input_series": [
                *_healthy(
                    NODE_A,
                    86400,
                    governance_credit_rejected_runs="3x60",
                    governance_credit_spent_credits="0x60",
                ),
                *_healthy(NODE_B, 3600),
                _series(
                    "governance_schedule_failed_runs",
                    {**node_b, "charter": "govern", "reason": "internal"},
                    "2x60",
                ),
            ],
            "alert_rule_test": [
                {"eval_time": "4m", "alertname": "GovernanceRunsRejectedForCredits"},
                {
                    "eval_time": "5m",
                    "alertname": "GovernanceRunsRejectedForCredits",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "critical", **rejected},
                            "exp_annotations": _annotations(
                                "GovernanceRunsRejectedForCredits",
                                "3 run(s) of account cogni_system were rejected with "
                                "insufficient_credits in the window, nothing was spent and the "
                                "rejected work has not succeeded since: the preflight check "
                                "refuses every run, whatever the balance says.",
                            ),
                        }
                    ],
                },
                {
                    "eval_time": "5m",
                    "alertname": "GovernanceRunsFailing",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "warning",
                                "condition": "scheduled",
                                **node_b,
                                "charter": "govern",
                                "reason": "internal",
                            },
                            "exp_annotations": _annotations(
                                "GovernanceRunsFailing",
                                "2 run(s) of charter govern of account cogni_system failed "
                                "with reason internal in the last 1h 0m 0s, and no success of "
                                "the charter has been seen since its last failure.",
                            ),
                        }
                    ],
                },
            ],
        },
    ]


_SUMMARIES = {
    rule["alert"]: rule["annotations"]["summary"]
    for _, rule in _alerts(yaml.safe_load(render(NODE)))
    if "condition" not in rule["labels"] or rule["labels"]["condition"] == "scheduled"
}


def _annotations(alert: str, description: str) -> dict[str, str]:
    return {
        "summary": _SUMMARIES[alert],
        "description": description,
        "runbook_url": "https://github.com/cogni/governance-exporter/blob/main/prometheus/"
        f"RUNBOOK.md#{alert.lower()}",
    }


def _unit_test(directory: Path, rule_file: str) -> Path:
    names = sorted({rule["alert"] for _, rule in _alerts(yaml.safe_load(render(NODE)))})
    test = {
        "rule_files": [rule_file],
        "evaluation_interval": "1m",
        "tests": _alloy_cases(names),
    }
    path = directory / "alloy.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False), encoding="utf-8")
    return path


def test_alloy_labelled_nodes_through_rules_for_their_selector(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(render(NODE, parse_selector(ALLOY)), encoding="utf-8")
    _promtool("check", "rules", "--lint=all", "--lint-fatal", tmp_path / "rules.yml")
    test = _unit_test(tmp_path, "rules.yml")
    _promtool("test", "rules", test.name, cwd=tmp_path)


def test_the_default_rules_ignore_alloys_series(tmp_path: Path) -> None:
    """The same outage under the default selector (job="governance") selects nothing:
    the selector is what picks the exporter (and why Alloy users must pass theirs)."""
    (tmp_path / "rules.yml").write_text(render(NODE), encoding="utf-8")
    test = _unit_test(tmp_path, "rules.yml")
    result = subprocess.run(
        [shutil.which("promtool") or "promtool", "test", "rules", test.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert "GovernanceRunsRejectedForCredits" in result.stdout + result.stderr


# --- the Grafana form -----------------------------------------------------------------


def _grafana(name: str, selector: str = DEFAULT_SELECTOR) -> dict[str, Any]:
    text = grafana.render(
        render(name, selector), datasource_uid="mimir", folder_uid="gov-folder", command="t"
    )
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def _query(rule: dict[str, Any]) -> str:
    steps = {step["refId"]: step for step in rule["data"]}
    expr: str = steps["QUERY"]["model"]["expr"]
    return expr


@pytest.mark.parametrize("name", [NODE, FLEET])
def test_the_grafana_form_is_the_prometheus_form_rule_by_rule(name: str) -> None:
    prometheus_form = yaml.safe_load(render(name, parse_selector(ALLOY)))
    document = _grafana(name, parse_selector(ALLOY))
    assert document["apiVersion"] == 1
    recorded = grafana.recordings(prometheus_form)
    expected = _alerts(prometheus_form)
    got = [(g["name"], r) for g in document["groups"] for r in g["rules"]]
    assert len(got) == len(expected)
    uids = [rule["uid"] for _, rule in got]
    assert len(set(uids)) == len(uids)
    for (group, want), (got_group, rule) in zip(expected, got, strict=True):
        assert got_group == group
        assert UID.fullmatch(rule["uid"]), rule["uid"]
        assert rule["title"] == want["alert"]
        assert rule["for"] == want["for"]
        assert rule.get("keepFiringFor") == want.get("keep_firing_for")
        assert rule["labels"] == want["labels"]
        assert rule["annotations"] == want["annotations"]
        query = _query(rule)
        assert query == grafana.inline(want["expr"], recorded).strip()
        assert not re.search(r"(?<![\w:])[a-z_]+:[a-z0-9_:]+", query), "a recording is left"
        if not re.search(r"(?<![\w:])[a-z_]+:[a-z0-9_:]+", want["expr"]):
            assert query == want["expr"].strip()
        steps = {step["refId"]: step for step in rule["data"]}
        assert rule["condition"] == "THRESHOLD"
        assert steps["QUERY"]["datasourceUid"] == "mimir"
        assert steps["QUERY"]["model"]["instant"] is True
        assert steps["RETURNED"]["model"]["expression"].startswith("is_number($QUERY)")
        assert steps["THRESHOLD"]["model"]["expression"] == "RETURNED"
    for group in document["groups"]:
        assert group["folder"] == "gov-folder"
        assert group["orgId"] == 1
        assert group["interval"] in {"1m"}


def test_grafana_no_data_and_error_states_are_chosen_per_kind() -> None:
    """No data is the healthy answer of every alert (its condition is in its PromQL),
    so OK; the exporter missing is a series of its own (absent()). An error keeps the
    last state, as Prometheus does, except for the exporter-down page: a node that
    cannot be queried is not watched (prometheus/RUNBOOK.md, Grafana-managed form)."""
    for name in (NODE, FLEET):
        for group in _grafana(name)["groups"]:
            for rule in group["rules"]:
                assert rule["noDataState"] == "OK", rule["uid"]
                if rule["title"] == "GovernanceExporterDown":
                    assert "absent(up{" in _query(rule)
                    assert rule["execErrState"] == "Alerting"
                else:
                    assert rule["execErrState"] == "KeepLast", rule["uid"]


def test_grafana_uids_are_fixed_and_independent_of_the_selector() -> None:
    first, again = _grafana(NODE), _grafana(NODE)
    assert first == again
    alloy = _grafana(NODE, parse_selector(ALLOY))
    assert [r["uid"] for g in first["groups"] for r in g["rules"]] == [
        r["uid"] for g in alloy["groups"] for r in g["rules"]
    ]
    long_name = {"alert": "Governance" + "X" * 60, "labels": {"severity": "warning"}}
    uid = grafana.rule_uid("g", long_name)
    assert len(uid) == 40
    assert uid == grafana.rule_uid("g", long_name)


def _as_prometheus(document: dict[str, Any], prometheus_form: dict[str, Any]) -> dict[str, Any]:
    """The Grafana form's queries written back as Prometheus alerts, beside the
    Prometheus form's recording rules (which the unit tests' PromQL cases read)."""
    groups = [
        {
            "name": f"{g['name']}-recorded",
            "rules": [r for r in g["rules"] if "record" in r],
            **({"interval": g["interval"]} if "interval" in g else {}),
        }
        for g in prometheus_form["groups"]
        if any("record" in r for r in g["rules"])
    ]
    for group in document["groups"]:
        rules = []
        for rule in group["rules"]:
            alert = {
                "alert": rule["title"],
                "expr": _query(rule),
                "for": rule["for"],
                "labels": rule["labels"],
                "annotations": rule["annotations"],
            }
            if "keepFiringFor" in rule:
                alert["keep_firing_for"] = rule["keepFiringFor"]
            rules.append(alert)
        groups.append({"name": group["name"], "interval": group["interval"], "rules": rules})
    return {"groups": groups}


def _recorded_first(test: dict[str, Any], converted: list[dict[str, Any]]) -> dict[str, Any]:
    """``test`` evaluating the recording groups before the alert groups at every step.

    In the Prometheus form an alert and the recordings its description ``query``s
    share one group, recordings first, so the description reads this step's values.
    Written back, they are two groups, and without ``group_eval_order`` promtool
    evaluates a step's groups in no fixed order (it sorts them by that order alone,
    all equal when none is given): an alert group evaluated first reads the values
    recorded one step earlier, and the fleet SLO alerts' descriptions came out a
    minute stale in some runs (1.427% for 1.432%, "none" for a value), while their
    firing, which reads the inlined query, never did.
    """
    order = [group["name"] for document in converted for group in document["groups"]]
    return {**test, "group_eval_order": order}


def _grafana_form_runs(workdir: Path, promtool: str) -> dict[str, Command]:
    """promtool's check of each rule file of the Grafana form (written back as
    Prometheus rules, recordings inlined), then every unit test of prometheus/tests/
    against them, then the Alloy-labelled one, by name; each command on its files."""
    commands: dict[str, Command] = {}
    files: dict[str, tuple[Path, dict[str, Any]]] = {}
    for name in (NODE, FLEET):
        path = workdir / COMMITTED[name].name
        converted = _as_prometheus(_grafana(name), yaml.safe_load(render(name)))
        path.write_text(yaml.safe_dump(converted, sort_keys=False), encoding="utf-8")
        commands[f"check {path.name}"] = [promtool, "check", "rules", str(path)], ROOT
        files[COMMITTED[name].name] = path, converted
    for unit_test in UNIT_TESTS:
        test = yaml.safe_load(unit_test.read_text(encoding="utf-8"))
        loaded = [files[Path(f).name] for f in test["rule_files"]]
        test["rule_files"] = [str(path) for path, _ in loaded]
        test = _recorded_first(test, [converted for _, converted in loaded])
        copy = workdir / unit_test.name
        copy.write_text(yaml.safe_dump(test, sort_keys=False), encoding="utf-8")
        commands[copy.name] = [promtool, "test", "rules", copy.name], workdir
    alloy = workdir / "alloy"
    alloy.mkdir()
    converted = _as_prometheus(
        _grafana(NODE, parse_selector(ALLOY)), yaml.safe_load(render(NODE, parse_selector(ALLOY)))
    )
    (alloy / "rules.yml").write_text(yaml.safe_dump(converted, sort_keys=False), encoding="utf-8")
    unit_test = _unit_test(alloy, "rules.yml")
    test = _recorded_first(yaml.safe_load(unit_test.read_text(encoding="utf-8")), [converted])
    unit_test.write_text(yaml.safe_dump(test, sort_keys=False), encoding="utf-8")
    commands["alloy"] = [promtool, "test", "rules", unit_test.name], alloy
    return commands


def background_runs(workdir: Path, items: list[object]) -> dict[str, Command]:
    """The Grafana form's promtool runs, beside the suite (tests/concurrent_runs.py),
    when the test below is collected."""
    promtool = shutil.which("promtool")
    wanted = any(
        isinstance(item, pytest.Function)
        and item.originalname == "test_every_grafana_query_passes_promtool_and_every_unit_test"
        for item in items
    )
    return _grafana_form_runs(workdir, promtool) if wanted and promtool else {}


def test_every_grafana_query_passes_promtool_and_every_unit_test(background: Background) -> None:
    """promtool checks every query of the Grafana form; then every promtool unit test
    of prometheus/tests/ runs against its alerts (recordings inlined) and must pass as
    it does against the Prometheus form, and so must the Alloy-labelled one. The runs
    are planned and started beside the suite (``_grafana_form_runs``); each result is
    asserted here."""
    _promtool_path()
    runs = background.results(__name__)
    assert len(runs) == len(UNIT_TESTS) + 3, sorted(runs)
    for run in runs.values():
        result = run.result()
        assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"


def test_the_command_prints_the_grafana_form() -> None:
    result = run_cli(
        "--format", "grafana", "--selector", ALLOY, "--datasource-uid", "mimir",
        "--folder-uid", "gov-folder",
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")
    assert yaml.safe_load(result.stdout) == _grafana(NODE, parse_selector(ALLOY))
    assert result.stdout.startswith("# GENERATED by `governance-exporter rules --selector")
    bad = run_cli("--format", "grafana", "--folder-uid", "a folder")
    assert bad.returncode == 2
    assert bad.stderr == (
        "governance-exporter: error: --folder-uid 'a folder': a Grafana uid is 1-40 letters, "
        "digits, - or _\n"
    )


# --- Grafana notification policy ----------------------------------------------------


def test_the_grafana_notification_policy_routes_like_alertmanager() -> None:
    policy = yaml.safe_load(POLICY.read_text(encoding="utf-8"))
    alertmanager = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))["route"]
    assert policy["apiVersion"] == 1
    (tree,) = policy["policies"]
    assert tree["group_by"] == alertmanager["group_by"]
    assert {"env", "node_id"} <= set(tree["group_by"])
    for key in ("receiver", "group_wait", "group_interval", "repeat_interval"):
        assert tree[key] == alertmanager[key], key
    assert len(tree["routes"]) == len(alertmanager["routes"])
    for route, expected in zip(tree["routes"], alertmanager["routes"], strict=True):
        ((name, operator, value),) = route["object_matchers"]
        assert [f'{name}{operator}"{value}"'] == expected["matchers"]
        assert "group_by" not in route, "a child policy would regroup across nodes"
        for key, value in expected.items():
            if key != "matchers":
                assert route[key] == value, key

"""Lint the provisioned Grafana dashboard, in the spirit of grafana/dashboard-linter.

Grafana itself does not run here, so everything around it is checked: the committed
JSON is exactly what ``grafana/dashboard.py`` generates; every panel has targets, a
title, a description and a unit; every query goes through the ``datasource`` variable,
parses as PromQL (promql-parser, the Rust port of Prometheus' parser), names only
metrics and labels of the exporter's contract and uses counters only through
rate()/increase(); the threshold colours agree with ``exporter.policy``; and the
provisioning files point at the uid and folder actually used.

``tests/test_dashboard_live.py`` runs every expression against a real Prometheus.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import promql_parser
import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from exporter import memory, model, policy
from exporter.rules import grafana

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"
GENERATOR = GRAFANA / "dashboard.py"
DASHBOARDS = GRAFANA / "dashboards"
DASHBOARD_JSON = DASHBOARDS / "governance.json"
DATASOURCES_YML = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS_YML = GRAFANA / "provisioning" / "dashboards" / "governance.yml"
RULES_YML = ROOT / "prometheus" / "rules" / "governance.rules.yml"

DS_VARIABLE = "${datasource}"
FLEET_SELECTOR = 'cluster=~"$cluster", node=~"$node"'

# Values the template variables take when a query is checked or run (the live test
# uses the same substitution, with the range of its own run).
TEMPLATE_VALUES = {
    "datasource": "governance-prometheus",
    "cluster": ".*",
    "node": ".*",
    "account": "cogni_system",
    "charter": ".*",
    "__range": "1h",
    "__rate_interval": "1m",
    "__interval": "15s",
}

# The exporter's metric contract: metric -> its labels (besides target labels).
# cluster and node are target labels an operator adds to tell the nodes of a fleet apart.
FLEET_LABELS = frozenset({"cluster", "node"})
NODE_LABELS = frozenset({"job", "instance"}) | FLEET_LABELS
TARGET_LABELS = NODE_LABELS
_ACCOUNT = frozenset({"account"})
_CHARTER = frozenset({"account", "charter"})
_RUN_KIND = frozenset({"account", "run_kind"})
_LEDGER_NODE = frozenset({"ledger_node_id"})
_STREAM = _LEDGER_NODE | {"scope_id"}
_DISPATCH = frozenset({"account", "ledger_node_id", "charter"})
CONTRACT: dict[str, frozenset[str]] = {
    "governance_credit_balance_credits": _ACCOUNT,
    "governance_credit_spent_credits": _ACCOUNT,
    "governance_credit_charges": _ACCOUNT,
    "governance_credit_last_charge_timestamp_seconds": _ACCOUNT,
    "governance_credit_window_seconds": frozenset(),
    "governance_credit_burn_rate_credits_per_second": _ACCOUNT,
    "governance_credit_runway_seconds": _ACCOUNT,
    "governance_credit_min_run_cost_credits": _ACCOUNT,
    "governance_schedule_enabled": _CHARTER,
    "governance_charter_configured": _CHARTER,
    "governance_schedule_runs": _CHARTER | {"status"},
    "governance_schedule_failed_runs": _CHARTER | {"reason"},
    "governance_schedule_last_success_timestamp_seconds": _CHARTER,
    "governance_schedule_last_failure_timestamp_seconds": _CHARTER,
    "governance_schedule_next_run_timestamp_seconds": _CHARTER,
    "governance_schedule_next_run_seconds": _CHARTER,
    "governance_schedule_interval_seconds": _CHARTER,
    "governance_schedule_cached_next_run_timestamp_seconds": _CHARTER,
    "governance_schedule_config_valid": _CHARTER,
    "governance_schedule_retired": _CHARTER,
    "governance_schedule_observable": _CHARTER,
    "governance_schedule_drift": _CHARTER,
    # Today's nodes: who spends, who is refused, the work without a schedule.
    "governance_credit_rejected_runs": _ACCOUNT,
    "governance_credit_spent_by_run_kind_credits": _RUN_KIND,
    "governance_credit_spent_by_charter_credits": _CHARTER,
    "governance_unscheduled_runs": _RUN_KIND | {"status"},
    "governance_unscheduled_failed_runs": _RUN_KIND | {"reason"},
    "governance_unscheduled_last_success_timestamp_seconds": _RUN_KIND,
    "governance_unscheduled_last_failure_timestamp_seconds": _RUN_KIND,
    "governance_unscheduled_runs_visible": _ACCOUNT,
    "governance_runs_failed_total": _RUN_KIND | {"reason"},
    "governance_runs_finished_total": _RUN_KIND | {"outcome"},
    "governance_repo_spec_status": frozenset({"status"}),
    "governance_exporter_up": frozenset(),
    "governance_exporter_collect_duration_seconds": frozenset(),
    "governance_exporter_last_success_timestamp_seconds": frozenset(),
    "governance_exporter_build_info": frozenset({"version", "schema"}),
    "governance_exporter_collection_errors_total": frozenset({"reason"}),
    # The gateway's memory files (optional --memory-dir): the node's gateway, no account.
    "governance_heartbeat_file_status": frozenset({"charter", "status"}),
    "governance_heartbeat_run_timestamp_seconds": frozenset({"charter"}),
    "governance_heartbeat_file_modified_timestamp_seconds": frozenset({"charter"}),
    "governance_heartbeat_decision": frozenset({"charter", "decision"}),
    "governance_heartbeat_no_op_reason": frozenset({"charter", "reason"}),
    "governance_budget_header_file_status": frozenset({"status"}),
    "governance_budget_allow_runs": frozenset(),
    "governance_budget_status": frozenset({"status"}),
    "governance_budget_burn_rate_trend": frozenset({"trend"}),
    "governance_budget_updated_timestamp_seconds": frozenset(),
    "governance_budget_file_modified_timestamp_seconds": frozenset(),
    "governance_budget_max_tokens_per_charter_run": frozenset(),
    "governance_budget_max_tool_calls_per_charter_run": frozenset(),
    "governance_budget_max_brain_spawns_per_hour": frozenset(),
    "governance_memory_ignored_entries": frozenset(),
    "governance_memory_directory_readable": frozenset(),
    "governance_memory_collect_duration_seconds": frozenset(),
    # The attribution ledger (nodes since 2026-08): its node is ledger_node_id.
    "governance_ledger_observable": frozenset({"part"}),
    "governance_ledger_epochs": _STREAM | {"status"},
    "governance_ledger_open_epoch_start_timestamp_seconds": _STREAM,
    "governance_ledger_open_epoch_end_timestamp_seconds": _STREAM,
    "governance_ledger_collect_overdue_seconds": _STREAM,
    "governance_ledger_collect_stall_limit_seconds": _STREAM,
    "governance_ledger_review_oldest_wait_seconds": _STREAM,
    "governance_ledger_review_wait_limit_seconds": frozenset(),
    "governance_ledger_last_finalized_timestamp_seconds": _STREAM,
    "governance_ledger_last_receipt_timestamp_seconds": _LEDGER_NODE,
    "governance_ledger_receipt_usual_gap_seconds": _LEDGER_NODE,
    "governance_ledger_receipt_silence_limit_seconds": _LEDGER_NODE,
    "governance_ledger_last_review_run_timestamp_seconds": _ACCOUNT,
    "governance_ledger_distribution_manifests": _STREAM,
    "governance_ledger_pending_liabilities": _STREAM,
    "governance_ledger_pending_liability_oldest_age_seconds": _STREAM,
    "governance_ledger_finalized_epochs_without_manifest": _STREAM,
    "governance_ledger_finalized_without_manifest_oldest_age_seconds": _STREAM,
    "governance_ledger_dispatch_schedule_state": _DISPATCH | {"state"},
    "governance_ledger_dispatch_schedule_next_run_timestamp_seconds": _DISPATCH,
    "governance_ledger_dispatch_schedule_interval_seconds": _DISPATCH,
    # Recording rules of prometheus/rules/governance.rules.yml.
    "governance:credit_health:level": _ACCOUNT,
    # Prometheus' own series.
    "up": frozenset(),
    "ALERTS": frozenset(
        {
            "alertname",
            "alertstate",
            "severity",
            "condition",
            "account",
            "charter",
            "reason",
            "run_kind",
        }
    ),
}
# Windowed gauges: counts over the exporter's trailing window, never rate()d.
WINDOWED = frozenset(
    {
        "governance_schedule_runs",
        "governance_schedule_failed_runs",
        "governance_unscheduled_runs",
        "governance_unscheduled_failed_runs",
        "governance_credit_rejected_runs",
    }
)
COUNTER_FUNCTIONS = frozenset({"rate", "irate", "increase"})
# The metrics a person needs to see the 2026-02-15 outage; each must be on the dashboard.
REQUIRED_METRICS = frozenset(
    {
        "governance_credit_balance_credits",
        "governance_credit_runway_seconds",
        "governance_credit_burn_rate_credits_per_second",
        "governance_credit_spent_credits",
        "governance_charter_configured",
        "governance_schedule_enabled",
        "governance_schedule_runs",
        "governance_schedule_failed_runs",
        "governance_schedule_last_success_timestamp_seconds",
        "governance_schedule_next_run_timestamp_seconds",
        "governance_exporter_up",
        "governance_exporter_collect_duration_seconds",
        "governance_exporter_last_success_timestamp_seconds",
        "ALERTS",
        # Charter heartbeats and the budget gate.
        "governance_budget_allow_runs",
        "governance_budget_status",
        "governance_budget_burn_rate_trend",
        "governance_budget_updated_timestamp_seconds",
        "governance_budget_header_file_status",
        "governance_budget_max_tokens_per_charter_run",
        "governance_budget_max_tool_calls_per_charter_run",
        "governance_budget_max_brain_spawns_per_hour",
        "governance_heartbeat_file_status",
        "governance_heartbeat_run_timestamp_seconds",
        "governance_heartbeat_decision",
        "governance_heartbeat_no_op_reason",
        # The fleet row.
        "governance:credit_health:level",
        # Today's nodes (issue 13): the work without a schedule, who spends, who is refused.
        "governance_unscheduled_runs",
        "governance_unscheduled_failed_runs",
        "governance_unscheduled_last_success_timestamp_seconds",
        "governance_unscheduled_runs_visible",
        "governance_credit_spent_by_run_kind_credits",
        "governance_credit_spent_by_charter_credits",
        "governance_credit_rejected_runs",
        "governance_credit_min_run_cost_credits",
        "governance_schedule_retired",
        "governance_schedule_observable",
        "governance_schedule_drift",
        "governance_runs_failed_total",
        # The attribution ledger (issue 21): the collect, approvals, the webhook plane,
        # distributions and the operator's dispatch schedules.
        "governance_ledger_open_epoch_end_timestamp_seconds",
        "governance_ledger_collect_overdue_seconds",
        "governance_ledger_collect_stall_limit_seconds",
        "governance_ledger_epochs",
        "governance_ledger_review_oldest_wait_seconds",
        "governance_ledger_last_receipt_timestamp_seconds",
        "governance_ledger_receipt_silence_limit_seconds",
        "governance_ledger_last_review_run_timestamp_seconds",
        "governance_ledger_observable",
        "governance_ledger_pending_liabilities",
        "governance_ledger_finalized_epochs_without_manifest",
        "governance_ledger_dispatch_schedule_state",
    }
)
# Names the dashboard reads that are not the exporter's own (docs/metrics.md's tables).
NOT_EXPORTED = frozenset({"governance:credit_health:level", "up", "ALERTS"})
METRICS_DOC = ROOT / "docs" / "metrics.md"
MEMORY_PREFIXES = ("governance_heartbeat_", "governance_budget_", "governance_memory_")


def load_generator() -> ModuleType:
    """Import grafana/dashboard.py (a script, not a package) as a module."""
    spec = importlib.util.spec_from_file_location("governance_dashboard", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def dashboard_runway_thresholds(path: Path = DASHBOARD_JSON) -> tuple[float, float]:
    """(red, yellow) runway thresholds in seconds as the committed dashboard colours them.

    For tests/test_thresholds.py: equal to RED_RUNWAY_SECONDS and YELLOW_RUNWAY_SECONDS.
    """
    red, yellow = load_generator().runway_thresholds(json.loads(path.read_text(encoding="utf-8")))
    return float(red), float(yellow)


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return load_generator()


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD_JSON.read_text(encoding="utf-8"))
    return data


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return list(load_generator().panels(dashboard))


def _queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, expr) for every PromQL expression: panel targets and annotations."""
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            yield f"{panel['title']!r} {target.get('refId')}", target["expr"]
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if "expr" in annotation:
            yield f"annotation {annotation['name']!r}", annotation["expr"]


def _parse(expr: str) -> promql_parser.Expr:
    return promql_parser.parse(load_generator().substitute(expr, TEMPLATE_VALUES))


# --- a small AST walker over promql-parser's nodes -------------------------------------


def _children(node: Any) -> list[Any]:
    if isinstance(node, promql_parser.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, promql_parser.AggregateExpr):
        return [node.expr] + ([node.param] if node.param is not None else [])
    if isinstance(node, promql_parser.Call):
        return list(node.args)
    if isinstance(node, promql_parser.MatrixSelector):
        return [node.vector_selector]
    if isinstance(
        node, promql_parser.ParenExpr | promql_parser.SubqueryExpr | promql_parser.UnaryExpr
    ):
        return [node.expr]
    return []


def _selectors(node: Any, inside: tuple[str, ...] = ()) -> Iterator[tuple[Any, tuple[str, ...]]]:
    """Every vector selector with the functions it sits in (innermost last).

    A selector directly under a range selector passed to rate() gets ``("rate", "[]")``.
    """
    if isinstance(node, promql_parser.VectorSelector):
        yield node, inside
        return
    if isinstance(node, promql_parser.Call):
        inside = (*inside, node.func.name)
    elif isinstance(node, promql_parser.MatrixSelector):
        inside = (*inside, "[]")
    else:
        inside = (*inside, type(node).__name__)
    for child in _children(node):
        yield from _selectors(child, inside)


def _matchers(selector: Any) -> dict[str, str]:
    return {m.name: m.value for m in selector.matchers.matchers}


def _fleet_matcher(selector: Any, label: str) -> str | None:
    """The value of the regex matcher on ``label`` (an alert selector may also require
    the label to be set, ``label!=""``, beside it)."""
    found = [m.value for m in selector.matchers.matchers if m.name == label and m.value != ""]
    return found[0] if len(found) == 1 else None


def _grouping_labels(node: Any) -> Iterator[str]:
    if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
        yield from node.modifier.labels
    if isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
        if node.modifier.matching is not None:
            yield from node.modifier.matching.labels
        yield from node.modifier.group_labels or []
    for child in _children(node):
        yield from _grouping_labels(child)


# --- the generated file --------------------------------------------------------------


def test_committed_json_is_what_the_generator_produces(generator: ModuleType) -> None:
    committed = DASHBOARD_JSON.read_text(encoding="utf-8")
    assert committed == generator.render(), (
        "grafana/dashboards/governance.json is stale: run `python grafana/dashboard.py`"
    )


def test_check_flag_fails_on_a_stale_file(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    stale = tmp_path / "governance.json"
    stale.write_text(DASHBOARD_JSON.read_text(encoding="utf-8").replace('"1m"', '"5m"', 1))
    bad = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--output", str(stale)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert "stale" in bad.stderr


# --- dashboard-level rules -----------------------------------------------------------


def test_uid_is_fixed_unique_and_dashboard_is_read_only(
    dashboard: dict[str, Any], generator: ModuleType
) -> None:
    assert dashboard["uid"] == generator.DASHBOARD_UID
    assert 8 <= len(dashboard["uid"]) <= 40
    assert dashboard["editable"] is False
    uids = [json.loads(p.read_text())["uid"] for p in sorted(DASHBOARDS.glob("*.json"))]
    assert len(uids) == len(set(uids)), f"duplicate dashboard uids in {DASHBOARDS}: {uids}"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_template_variables(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert list(variables) == ["datasource", "cluster", "node", "account", "charter"]
    ds = variables["datasource"]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    fleet = 'cluster=~"$cluster", node=~"$node"'
    assert variables["cluster"]["query"] == (
        "label_values(governance_exporter_build_info, cluster)"
    )
    assert variables["node"]["query"] == (
        'label_values(governance_exporter_build_info{cluster=~"$cluster"}, node)'
    )
    account = variables["account"]
    assert account["query"] == (
        f"label_values(governance_credit_balance_credits{{{fleet}}}, account)"
    )
    assert account.get("multi", False) is False
    charter = variables["charter"]
    assert charter["query"] == (
        f'label_values(governance_charter_configured{{account=~"$account", {fleet}}}, charter)'
    )
    for name in ("cluster", "node", "account", "charter"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"]["uid"] == DS_VARIABLE
    for name in ("cluster", "node", "charter"):
        # All is ".*", which also matches a series without the label: a single node
        # whose targets carry no cluster/node label shows in full.
        variable = variables[name]
        assert (variable["multi"], variable["includeAll"]) == (True, True), name
        assert variable["allValue"] == ".*", name
        assert variable["current"]["value"] == "$__all", name


def test_panels_tile_the_grid_without_overlap(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_fleet_then_credit_health_come_first_and_fit_a_laptop_screen(
    dashboard: dict[str, Any],
) -> None:
    rows = [p for p in dashboard["panels"] if p["type"] == "row"]
    assert [r["title"] for r in rows] == [
        "Fleet",
        "Credit health",
        "Which work eats the credits, and what is refused",
        "Charters",
        "Failed runs and alerts",
        "Work without a schedule",
        "Attribution ledger",
        "Gateway memory: heartbeats and budget gate",
        "Trends",
        "Exporter health",
    ]

    def row_panels(index: int) -> list[dict[str, Any]]:
        top, bottom = rows[index]["gridPos"]["y"], rows[index + 1]["gridPos"]["y"]
        return [p for p in dashboard["panels"] if top < p["gridPos"]["y"] < bottom]

    assert row_panels(0)[0]["title"] == "Fleet: nodes by credit health"
    assert row_panels(1)[0]["title"] == "Credit health: runway"
    # ~30 px per grid unit: the fleet and the node's credit health end inside a
    # 768 px-high laptop screen.
    assert max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in row_panels(1)) <= 15


# --- per panel ---------------------------------------------------------------------


def test_every_panel_has_title_description_unit_and_targets(dashboard: dict[str, Any]) -> None:
    panels = _panels(dashboard)
    assert len(panels) >= 15
    for panel in panels:
        name = panel.get("title") or f"panel {panel.get('id')}"
        assert panel.get("title", "").strip(), f"{name}: no title"
        assert panel.get("description", "").strip(), f"{name}: no description"
        assert panel["fieldConfig"]["defaults"].get("unit", "").strip(), f"{name}: no unit"
        assert panel.get("targets"), f"{name}: no targets"
        assert panel["datasource"] == {"type": "prometheus", "uid": DS_VARIABLE}, name
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), f"{name}: duplicate refIds {refs}"


def test_every_target_uses_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    for panel in _panels(dashboard):
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": DS_VARIABLE}, panel[
                "title"
            ]
    for annotation in dashboard["annotations"]["list"]:
        assert annotation["datasource"]["uid"] == DS_VARIABLE


def test_titles_are_unique(dashboard: dict[str, Any]) -> None:
    titles = [p["title"] for p in _panels(dashboard)]
    assert len(titles) == len(set(titles))


# --- PromQL ----------------------------------------------------------------------


def test_every_expression_parses_as_promql(dashboard: dict[str, Any]) -> None:
    failures = []
    for where, expr in _queries(dashboard):
        try:
            _parse(expr)
        except (ValueError, KeyError) as exc:
            failures.append(f"{where}: {expr!r}: {exc}")
    assert not failures, "\n".join(failures)


def test_a_broken_expression_is_rejected() -> None:
    with pytest.raises(ValueError, match="parenthes"):
        _parse('sum(governance_credit_balance_credits{account=~"$account"}')


def test_metrics_and_labels_are_those_of_the_contract(dashboard: dict[str, Any]) -> None:
    lint_contract(dashboard, FLEET_LABELS, TEMPLATE_VALUES)


def lint_contract(
    dashboard: dict[str, Any],
    fleet_labels: frozenset[str],
    values: dict[str, str],
    required: frozenset[str] = REQUIRED_METRICS,
) -> set[str]:
    """Every selector names a metric of the contract with its own labels, the target's
    and the fleet's ``fleet_labels`` (each matched by its variable), and no other; every
    ``required`` metric is read. Returns the names read."""
    target_labels = frozenset({"job", "instance"}) | fleet_labels
    used: set[str] = set()
    for where, expr in _queries(dashboard):
        ast = promql_parser.parse(load_generator().substitute(expr, values))
        labels_in_expr: set[str] = set(target_labels)
        for selector, _inside in _selectors(ast):
            name = selector.name or _matchers(selector).get("__name__")
            assert name in CONTRACT, f"{where}: unknown metric {name!r}"
            used.add(name)
            known = CONTRACT[name] | target_labels | {"__name__"}
            matchers = _matchers(selector)
            assert set(matchers) <= known, f"{where}: {name} has no label {set(matchers) - known}"
            labels_in_expr |= CONTRACT[name]
            # The fleet: every selector, of every panel and the annotation, by node.
            for label in sorted(fleet_labels):
                assert _fleet_matcher(selector, label) == ".*", f"{where}: {name} not by ${label}"
            # One dashboard, several exporters/accounts: filter by the variables.
            if "account" in CONTRACT[name] and name != "ALERTS":
                assert matchers.get("account") == "cogni_system", f"{where}: {name} not by $account"
            if "charter" in CONTRACT[name] and name != "ALERTS" and not where.startswith("annot"):
                assert matchers.get("charter") == ".*", f"{where}: {name} not by $charter"
        unknown = set(_grouping_labels(ast)) - labels_in_expr
        assert not unknown, f"{where}: grouping by labels no metric has: {unknown}"
    missing = required - used
    assert not missing, f"metrics the dashboard must show but does not: {sorted(missing)}"
    return used


def test_counters_only_through_rate_or_increase(dashboard: dict[str, Any]) -> None:
    for where, expr in _queries(dashboard):
        for selector, inside in _selectors(_parse(expr)):
            name = selector.name or ""
            if name.endswith("_total"):
                assert len(inside) >= 2, f"{where}: bare counter {name}"
                assert inside[-1] == "[]", f"{where}: {name} must be a range in rate/increase"
                assert inside[-2] in COUNTER_FUNCTIONS, f"{where}: {name} not in rate/increase"
            else:
                assert not set(inside) & COUNTER_FUNCTIONS, (
                    f"{where}: rate()/increase() on gauge {name}"
                    + (" (already a windowed count)" if name in WINDOWED else "")
                )


def test_the_counter_lint_catches_a_bare_counter() -> None:
    ((selector, inside),) = _selectors(_parse("sum(governance_exporter_collection_errors_total)"))
    assert selector.name.endswith("_total")
    assert inside[-1] != "[]"


def test_instant_and_range_queries(dashboard: dict[str, Any]) -> None:
    """Stats and tables show one value per series (instant); time series draw ranges."""
    for panel in _panels(dashboard):
        for target in panel["targets"]:
            instant = target.get("instant", False)
            assert instant is (panel["type"] in {"stat", "table", "bargauge"}), panel["title"]
            assert target.get("range", False) is (not instant), panel["title"]
            if panel["type"] == "table":
                assert target.get("format") == "table", panel["title"]


# --- thresholds ----------------------------------------------------------------------


def _grafana_colour(steps: list[dict[str, Any]], value: float) -> str:
    """Grafana's getActiveThreshold: the last step whose value is <= the value."""
    active = steps[0]
    for step in steps[1:]:
        if value >= step["value"]:
            active = step
        else:
            break
    return str(active["color"])


def _panel(dashboard: dict[str, Any], title: str) -> dict[str, Any]:
    (panel,) = (p for p in _panels(dashboard) if p["title"] == title)
    return panel


def test_runway_thresholds_equal_the_exporter_model(
    dashboard: dict[str, Any], generator: ModuleType
) -> None:
    assert generator.runway_thresholds(dashboard) == (
        policy.RED_RUNWAY_SECONDS,
        policy.YELLOW_RUNWAY_SECONDS,
    )
    assert dashboard_runway_thresholds() == (
        policy.RED_RUNWAY_SECONDS,
        policy.YELLOW_RUNWAY_SECONDS,
    )
    stat_steps = _panel(dashboard, "Credit health: runway")["fieldConfig"]["defaults"]["thresholds"]
    trend_steps = _panel(dashboard, "Runway over time")["fieldConfig"]["defaults"]["thresholds"]
    assert stat_steps == trend_steps


@functools.cache
def _runway_defaults() -> dict[str, Any]:
    dash = json.loads(DASHBOARD_JSON.read_text(encoding="utf-8"))
    defaults: dict[str, Any] = _panel(dash, "Credit health: runway")["fieldConfig"]["defaults"]
    return defaults


@given(
    balance=st.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
    burn=st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1e9, allow_nan=False)),
)
@example(balance=0.0, burn=1.0)
@example(balance=-5.0, burn=1.0)
@example(balance=0.0, burn=0.0)
@example(balance=1.0, burn=0.0)
@example(balance=21599.0, burn=1.0)
@example(balance=21600.0, burn=1.0)
@example(balance=86400.0, burn=1.0)
@example(balance=86400.001, burn=1.0)
@example(balance=86401.0, burn=1.0)
def test_runway_colour_matches_the_exporter_model(balance: float, burn: float) -> None:
    """For any balance and burn rate, the stat's colour is the model's credit health."""
    runway = model.runway_seconds(balance, burn)  # what the exporter publishes
    defaults = _runway_defaults()
    mapped = defaults["mappings"][0]["options"].get(_js_key(runway))
    colour = mapped["color"] if mapped else _grafana_colour(defaults["thresholds"]["steps"], runway)
    assert colour == policy.credit_health(balance, runway).value


def _js_key(value: float) -> str:
    """How JavaScript turns a number into an object key (String(value))."""
    if value == math.inf:
        return "Infinity"
    return str(int(value)) if value == int(value) else repr(value)


def test_infinite_runway_reads_as_no_spend(dashboard: dict[str, Any]) -> None:
    defaults = _panel(dashboard, "Credit health: runway")["fieldConfig"]["defaults"]
    assert defaults["unit"] == "dtdurations"  # "1 day, 2 hours", never raw seconds
    options = defaults["mappings"][0]["options"]
    assert options["Infinity"]["text"].startswith("\u221e")
    assert options["0"]["color"] == "red"


def test_balance_is_shown_in_credits_and_usd(dashboard: dict[str, Any]) -> None:
    panel = _panel(dashboard, "Balance")
    exprs = [t["expr"] for t in panel["targets"]]
    assert any(e.endswith(f"/ {model.CREDITS_PER_USD}") for e in exprs)
    usd, refused = panel["fieldConfig"]["overrides"]
    assert refused["matcher"]["options"] == "C"  # one run's cost, never coloured
    assert any("min_run_cost_credits" in e for e in exprs)
    props = {p["id"]: p["value"] for p in usd["properties"]}
    assert props["unit"] == "currencyUSD"
    # Red at a balance <= 0, in credits and in dollars.
    credits_steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert _grafana_colour(credits_steps, 0) == "red"
    assert _grafana_colour(credits_steps, 1) != "red"
    assert _grafana_colour(props["thresholds"]["steps"], 0) == "red"
    assert _grafana_colour(props["thresholds"]["steps"], 1 / model.CREDITS_PER_USD) != "red"


# --- the fleet -------------------------------------------------------------------------


FLEET_PANELS = (
    "Fleet: nodes by credit health",
    "Fleet: nodes, worst first",
    "Fleet: failing charters",
)


def test_fleet_row_panels(dashboard: dict[str, Any]) -> None:
    assert [p["title"] for p in _panels(dashboard) if p["title"].startswith("Fleet")] == list(
        FLEET_PANELS
    )


@pytest.mark.parametrize("title", FLEET_PANELS)
def test_fleet_queries_keep_every_node_apart(dashboard: dict[str, Any], title: str) -> None:
    """Every grouping and every vector matching of the fleet row keeps the target's labels
    (job, instance, cluster, node): two nodes differing only in instance are two rows.
    The only aggregation without them is count(): how many nodes, in the stat."""
    for target in _panel(dashboard, title)["targets"]:
        nodes = _nodes_of(_parse(target["expr"]))
        for kind, labels in nodes:
            if kind == "count()":
                assert title == FLEET_PANELS[0], target["expr"]
            else:
                assert labels >= NODE_LABELS, f"{title} {target['refId']}: {kind} {labels}"
        assert nodes, target["expr"]


def _nodes_of(node: Any) -> list[tuple[str, frozenset[str]]]:
    """(kind, labels) of every aggregation and every vector matching in the expression."""
    found: list[tuple[str, frozenset[str]]] = []
    if isinstance(node, promql_parser.AggregateExpr):
        if node.modifier is None:
            assert str(node.op) in {"count", "sum"}, node
            found.append((f"{node.op}()", frozenset()))
        else:
            found.append((f"{node.op} by", frozenset(node.modifier.labels)))
    if isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
        matching = node.modifier.matching
        if matching is not None:
            # on(...), never ignoring(...): the labels kept are the ones named.
            assert str(matching.type).endswith("Include"), node
            found.append(("on", frozenset(matching.labels)))
    for child in _children(node):
        found.extend(_nodes_of(child))
    return found


def test_the_fleet_lint_catches_a_grouping_that_mixes_nodes() -> None:
    kinds = _nodes_of(_parse("max by (account) (governance_credit_balance_credits)"))
    assert kinds == [("max by", frozenset({"account"}))]
    assert not kinds[0][1] >= NODE_LABELS


def test_fleet_health_is_the_recording_rule_coloured_as_the_model(
    dashboard: dict[str, Any],
) -> None:
    """Level 0/1/2 of governance:credit_health:level reads as the model's green, yellow,
    red, in the table and in the count of nodes per level."""
    rules = yaml.safe_load(RULES_YML.read_text(encoding="utf-8"))
    recorded = {r.get("record") for group in rules["groups"] for r in group["rules"]}
    assert "governance:credit_health:level" in recorded
    # The generator's levels are the exporter's own Health members, in the rule's order.
    levels = list(load_generator().HEALTH_LEVELS)
    assert set(levels) == set(type(levels[0]))
    assert [level.value for level in levels] == ["green", "yellow", "red"]
    nodes = _panel(dashboard, "Fleet: nodes, worst first")
    health = _override(nodes, "byName", "Credit health")
    assert health["custom.cellOptions"]["type"] == "color-background"
    options = health["mappings"][0]["options"]
    assert sorted(options) == ["0", "1", "2"]
    for level, colour in enumerate(levels):
        assert options[str(level)]["color"] == colour.value
        assert options[str(level)]["text"] == colour.value.upper()
    counts = _panel(dashboard, "Fleet: nodes by credit health")
    for ref, colour in zip("ABC", reversed(levels), strict=True):
        (target,) = (t for t in counts["targets"] if t["refId"] == ref)
        assert target["legendFormat"] == colour.value
        assert f"== {levels.index(colour)})" in target["expr"]


def test_fleet_tables_sort_worst_first(dashboard: dict[str, Any]) -> None:
    nodes = _panel(dashboard, "Fleet: nodes, worst first")
    assert nodes["options"]["sortBy"] == [
        {"displayName": "Credit health", "desc": True},
        {"displayName": "Failing charters", "desc": True},
    ]
    renamed = nodes["transformations"][-1]["options"]["renameByName"]
    assert {"Credit health", "Failing charters"} <= set(renamed.values())
    failing = _panel(dashboard, "Fleet: failing charters")
    assert failing["options"]["sortBy"] == [{"displayName": "Failed in window", "desc": True}]
    assert "Failed in window" in failing["transformations"][-1]["options"]["renameByName"].values()


# --- gateway memory: heartbeats and the budget gate ---------------------------------


def _override(panel: dict[str, Any], matcher: str, options: str) -> dict[str, Any]:
    """The properties of the panel's override matching ``matcher`` = ``options``."""
    (override,) = (
        o
        for o in panel["fieldConfig"]["overrides"]
        if o["matcher"] == {"id": matcher, "options": options}
    )
    return {p["id"]: p["value"] for p in override["properties"]}


def _target(panel: dict[str, Any], ref: str) -> str:
    (expr,) = (t["expr"] for t in panel["targets"] if t["refId"] == ref)
    return str(expr)


def test_memory_contract_is_what_the_memory_collector_exposes(tmp_path: Path) -> None:
    """The memory metrics of CONTRACT, labels included, are those the collector yields."""
    # Imported here: test_dashboard_live imports this module.
    from prometheus_client.registry import CollectorRegistry  # noqa: PLC0415
    from test_dashboard_live import write_gateway_memory  # noqa: PLC0415

    from exporter.memory_collector import MemoryCollector  # noqa: PLC0415
    from exporter.settings import FEBRUARY_CHARTERS  # noqa: PLC0415

    files = write_gateway_memory(tmp_path / "memory", time.time())
    registry = CollectorRegistry()
    registry.register(MemoryCollector(files.directory, FEBRUARY_CHARTERS))
    exposed = {
        family.name: frozenset(label for sample in family.samples for label in sample.labels)
        for family in registry.collect()
    }
    assert all(family.startswith(MEMORY_PREFIXES) for family in exposed)
    assert exposed == {n: labels for n, labels in CONTRACT.items() if n.startswith(MEMORY_PREFIXES)}


def _evaluate(node: Any, values: dict[tuple[str, str], float]) -> float:
    """A scalar expression of numbers, + and * over ``max``/``min`` of single-series
    selectors ``metric{label="value"}``, each worth ``values[(metric, value)]``."""
    if isinstance(node, promql_parser.NumberLiteral):
        return float(node.val)
    if isinstance(node, promql_parser.ParenExpr):
        return _evaluate(node.expr, values)
    if isinstance(node, promql_parser.AggregateExpr) and str(node.op) in {"max", "min"}:
        return _evaluate(node.expr, values)
    if isinstance(node, promql_parser.VectorSelector):
        (matcher,) = (m for m in node.matchers.matchers if m.name not in FLEET_LABELS)
        return values[(str(node.name), matcher.value)]
    if isinstance(node, promql_parser.BinaryExpr) and str(node.op) in {"+", "*"}:
        lhs, rhs = _evaluate(node.lhs, values), _evaluate(node.rhs, values)
        return lhs + rhs if str(node.op) == "+" else lhs * rhs
    raise AssertionError(f"not a state-index expression: {node}")


GATE_STATE_SETS = {
    "B": ("governance_budget_status", memory.BUDGET_STATUSES),
    "C": ("governance_budget_burn_rate_trend", memory.BURN_RATE_TRENDS),
    "E": ("governance_budget_header_file_status", memory.FILE_STATUSES),
}


@pytest.mark.parametrize("ref", sorted(GATE_STATE_SETS))
def test_budget_gate_states_read_back_as_their_names(dashboard: dict[str, Any], ref: str) -> None:
    """A state set shown as one number: for every one-hot state the stat's value maps
    back to the state's name (the exporter's own tuple, so a new state fails here)."""
    metric, states = GATE_STATE_SETS[ref]
    panel = _panel(dashboard, "Budget gate")
    ast = _parse(_target(panel, ref))
    value_map, no_data = _override(panel, "byFrameRefID", ref)["mappings"]
    assert no_data["type"] == "special"  # an absent header reads as text, not blank
    for state in states:
        values = {(metric, str(other)): float(other == state) for other in states}
        shown = value_map["options"][_js_key(_evaluate(ast, values))]
        assert shown["text"] == str(state)
    assert len(value_map["options"]) == len(states)


def test_budget_gate_colours(dashboard: dict[str, Any]) -> None:
    panel = _panel(dashboard, "Budget gate")
    runs = _override(panel, "byFrameRefID", "A")["mappings"][0]["options"]
    assert (runs["0"]["text"], runs["0"]["color"]) == ("CLOSED", "red")
    assert (runs["1"]["text"], runs["1"]["color"]) == ("OPEN", "green")
    # Closed wins.
    assert _target(panel, "A") == f"min(governance_budget_allow_runs{{{FLEET_SELECTOR}}})"
    files = _override(panel, "byFrameRefID", "E")["mappings"][0]["options"]
    colours = {option["text"]: option["color"] for option in files.values()}
    assert colours["ok"] == "green"
    assert {colours[s] for s in ("missing", "malformed", "unreadable")} == {"red"}
    status = _override(panel, "byFrameRefID", "B")["mappings"][0]["options"]
    assert {o["text"]: o["color"] for o in status.values()}["critical"] == "red"


def test_budget_header_age_turns_red_where_the_gateway_and_the_alert_call_it_stale(
    dashboard: dict[str, Any],
) -> None:
    panel = _panel(dashboard, "Budget gate")
    assert _target(panel, "D") == (
        f"time() - max(governance_budget_updated_timestamp_seconds{{{FLEET_SELECTOR}}})"
    )
    props = _override(panel, "byFrameRefID", "D")
    assert props["unit"] == "dtdurations"
    steps = props["thresholds"]["steps"]
    limit = float(policy.BUDGET_HEADER_MAX_AGE_SECONDS)
    # The gateway uses a header up to 2 h old (age <= limit); the alert fires above it.
    assert _grafana_colour(steps, 0) == "green"
    assert _grafana_colour(steps, limit) == "green"
    assert _grafana_colour(steps, math.nextafter(limit, math.inf)) == "red"
    assert _grafana_colour(steps, 10 * limit) == "red"
    rules = yaml.safe_load(RULES_YML.read_text(encoding="utf-8"))
    stale: Any
    (stale,) = (
        promql_parser.parse(rule["expr"])
        for group in rules["groups"]
        for rule in group["rules"]
        if rule.get("alert") == "GovernanceBudgetGateStale"
        and "governance_budget_updated_timestamp_seconds" in rule["expr"]
    )
    assert str(stale.op) == ">"
    assert stale.rhs.val == limit


def test_heartbeat_table_names_and_colours_every_state(dashboard: dict[str, Any]) -> None:
    panel = _panel(dashboard, "Charter heartbeats")
    for column, states in (
        ("File", memory.FILE_STATUSES),
        ("Decision", memory.DECISIONS),
        ("No-op reason", memory.NO_OP_REASONS),
    ):
        options = _override(panel, "byName", column)["mappings"][0]["options"]
        assert sorted(options) == sorted(str(s) for s in states), column
        assert all(options[key]["text"] == key for key in options), column
    files = _override(panel, "byName", "File")
    assert files["custom.cellOptions"]["type"] == "color-background"
    colours = {key: option["color"] for key, option in files["mappings"][0]["options"].items()}
    assert colours["ok"] == "green"
    assert {colours[s] for s in ("missing", "malformed", "unreadable")} == {"red"}
    assert _override(panel, "byName", "Last run")["unit"] == "dateTimeFromNow"  # "x ago"
    organize = panel["transformations"][-1]["options"]["renameByName"]
    assert organize["status"] == "File"
    assert organize["Value #B"] == "Last run"


# --- provisioning ------------------------------------------------------------------


def test_datasource_provisioning_matches_the_dashboard(dashboard: dict[str, Any]) -> None:
    config = yaml.safe_load(DATASOURCES_YML.read_text(encoding="utf-8"))
    assert config["apiVersion"] == 1
    (ds,) = config["datasources"]
    assert ds["type"] == "prometheus"
    assert ds["url"] == "http://prometheus:9090"
    assert ds["access"] == "proxy"
    assert ds["isDefault"] is True
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
    assert variable["current"]["value"] == ds["uid"] == TEMPLATE_VALUES["datasource"]


def test_dashboard_provider_points_at_the_dashboards_folder() -> None:
    config = yaml.safe_load(PROVIDERS_YML.read_text(encoding="utf-8"))
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] is False
    path = Path(provider["options"]["path"])
    assert path.is_absolute()
    # The container path is the repo's grafana/dashboards folder, mounted as is.
    assert path.name == DASHBOARDS.name
    assert sorted(p.name for p in DASHBOARDS.iterdir()) == ["governance.json"]


def test_datasource_time_interval_is_the_scrape_interval() -> None:
    """$__rate_interval is derived from timeInterval; it must not be below the real one."""
    scrape_config = ROOT / "prometheus" / "prometheus.yml"
    if not scrape_config.exists():
        pytest.skip("prometheus/prometheus.yml not written yet")
    prometheus = yaml.safe_load(scrape_config.read_text(encoding="utf-8"))
    (ds,) = yaml.safe_load(DATASOURCES_YML.read_text(encoding="utf-8"))["datasources"]
    assert ds["jsonData"]["timeInterval"] == prometheus["global"]["scrape_interval"]


# --- today's nodes: work without a schedule, who spends, who is refused ---------------


def _documented_metrics() -> dict[str, frozenset[str]]:
    """metric -> labels, from docs/metrics.md's tables (``| `name` | a, b | ... |``)."""
    found: dict[str, frozenset[str]] = {}
    for line in METRICS_DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`governance_") and cells[0].endswith("`"):
            labels = frozenset(label.strip() for label in cells[1].split(",") if label.strip())
            found[cells[0].strip("`")] = labels
    return found


def test_contract_is_the_documented_metric_table() -> None:
    """Every exporter metric the lint accepts is documented with exactly these labels:
    a label the exporter does not have cannot slip into a panel."""
    documented = _documented_metrics()
    assert len(documented) > 40, "docs/metrics.md's metric tables not found"
    for name, labels in CONTRACT.items():
        if name in NOT_EXPORTED:
            continue
        assert name in documented, f"{name} is not in docs/metrics.md's metric tables"
        assert documented[name] == labels, (name, documented[name], labels)


def test_provider_stat_is_the_alert_expression(dashboard: dict[str, Any]) -> None:
    """The stat counts what GovernanceProviderUnavailable counts, over the same 90 min,
    and is red exactly where the alert's `> 0` holds."""
    rules = yaml.safe_load(RULES_YML.read_text(encoding="utf-8"))
    (rule,) = (
        r
        for g in rules["groups"]
        for r in g["rules"]
        if r.get("alert") == "GovernanceProviderUnavailable"
    )
    panel = _panel(dashboard, "Runs failing with provider_unavailable now")
    stat_expr = _target(panel, "A")

    def increase(expr: str) -> tuple[str, dict[str, str], float]:
        calls = [
            node
            for node in _walk(_parse(expr))
            if isinstance(node, promql_parser.Call) and node.func.name == "increase"
        ]
        (call,) = calls
        (matrix,) = call.args
        selector = matrix.vector_selector
        matchers = {m.name: m.value for m in selector.matchers.matchers}
        return selector.name, matchers, matrix.range.total_seconds()

    rule_name, rule_matchers, rule_range = increase(rule["expr"])
    # The rules pick the exporter by their selector (job="governance" by default,
    # docs/rules.md), the dashboard by its variables; the rest must match.
    assert rule_matchers.pop("job") == "governance"
    name, matchers, seconds = increase(substitute(stat_expr))
    assert (name, seconds) == (rule_name, rule_range) == ("governance_runs_failed_total", 5400)
    assert matchers.pop("account") == TEMPLATE_VALUES["account"]
    assert {k: v for k, v in matchers.items() if k not in FLEET_LABELS} == rule_matchers
    assert rule_matchers == {"reason": "provider_unavailable"}
    assert str(_parse(rule["expr"]).op) == ">"
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert _grafana_colour(steps, 0) == "green"
    assert _grafana_colour(steps, math.nextafter(0.0, math.inf)) == "red"
    assert _grafana_colour(steps, 1) == "red"


def _walk(node: Any) -> Iterator[Any]:
    yield node
    for child in _children(node):
        yield from _walk(child)


def substitute(expr: str) -> str:
    return str(load_generator().substitute(expr, TEMPLATE_VALUES))


def test_rejected_runs_are_red_above_zero(dashboard: dict[str, Any]) -> None:
    panel = _panel(dashboard, "Runs rejected for credits")
    assert "governance_credit_rejected_runs" in _target(panel, "A")
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert (_grafana_colour(steps, 0), _grafana_colour(steps, 1)) == ("green", "red")


def test_a_retired_charter_reads_as_retired_not_paused(dashboard: dict[str, Any]) -> None:
    """State = enabled + 2 * retired: 0 paused (orange), 1 enabled, 2 retired (neutral);
    a retired charter's last success is left out rather than 'never' in red."""
    panel = _panel(dashboard, "Charters")
    state = _target(panel, "B")
    assert "governance_schedule_enabled" in state
    assert "+ 2 * max by (account, charter) (governance_schedule_retired" in state
    options = _override(panel, "byName", "State")["mappings"][0]["options"]
    assert {k: (o["text"], o["color"]) for k, o in options.items()} == {
        "0": ("paused", "orange"),
        "1": ("enabled", "green"),
        "2": ("retired", "text"),
    }
    assert "unless on (account, charter)" in _target(panel, "D")
    assert "governance_schedule_retired" in _target(panel, "D")
    renamed = panel["transformations"][-1]["options"]["renameByName"]
    assert {renamed["Value #H"], renamed["Value #I"]} == {"Observable", "Repo-spec"}
    assert "governance_schedule_observable" in _target(panel, "H")
    assert "governance_schedule_drift" in _target(panel, "I")
    drift = _override(panel, "byName", "Repo-spec")["mappings"][0]["options"]
    assert drift["1"]["text"] == "DRIFT"


def test_hidden_runs_without_a_schedule_are_said(dashboard: dict[str, Any]) -> None:
    panel = _panel(dashboard, "Runs without a schedule visible")
    assert "governance_unscheduled_runs_visible" in _target(panel, "A")
    value_map, no_data = panel["fieldConfig"]["defaults"]["mappings"]
    assert value_map["options"]["0"]["text"].startswith("HIDDEN")
    assert value_map["options"]["0"]["color"] == "red"
    assert no_data["type"] == "special"


@pytest.mark.parametrize(
    ("title", "label"),
    [("Spent in window by run kind", "run_kind"), ("Spent in window by charter", "charter")],
)
def test_spend_bars_name_the_work(dashboard: dict[str, Any], title: str, label: str) -> None:
    panel = _panel(dashboard, title)
    assert panel["type"] == "bargauge"
    (target,) = panel["targets"]
    assert target["legendFormat"] == f"{{{{{label}}}}}"
    assert f"max by (account, {label})" in target["expr"]
    assert panel["options"]["orientation"] == "horizontal"


# --- under the operator's labels: Cogni's env/node_id file for Git Sync -----------------

COGNI_JSON = ROOT / "deploy" / "grafana" / "governance-cogni.json"
COGNI_LABELS = frozenset({"env", "node_id"})
COGNI_VALUES = {
    **{k: v for k, v in TEMPLATE_VALUES.items() if k not in FLEET_LABELS},
    "env": ".*",
    "node_id": ".*",
}
# The label renaming that turns the default file's queries into Cogni's.
_TO_COGNI = (("cluster", "env"), ("node", "node_id"))
# Cogni's alerts are Grafana-managed, which inline the recording rules and record
# nothing: the Cogni file computes the credit health level in its own queries, and
# that is the one change besides the labels. The level is the recording rule's own
# expression, its recordings inlined as the Grafana form of the rules inlines them,
# on the dashboard's selector where the rules select the exporter.
HEALTH_LEVEL = "governance:credit_health:level"
COGNI_SELECTOR = 'account=~"$account", env=~"$env", node_id=~"$node_id"'


@pytest.fixture(scope="module")
def cogni() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(COGNI_JSON.read_text(encoding="utf-8"))
    return data


def _to_cogni(text: str) -> str:
    for old, new in _TO_COGNI:
        text = re.sub(rf"\b{old}\b", new, text)
    return text


def inline_health() -> str:
    """governance:credit_health:level's expression in the committed rules, the
    recordings it reads inlined, Cogni's selector for the default ``job="governance"``."""
    recorded = grafana.recordings(yaml.safe_load(RULES_YML.read_text(encoding="utf-8")))
    expr = grafana.inline(recorded[HEALTH_LEVEL].expr, recorded)
    assert 'job="governance"' in expr
    return expr.replace('job="governance"', COGNI_SELECTOR)


def _unspaced(expr: str) -> str:
    return re.sub(r"\s+", "", expr)


def test_committed_cogni_json_is_what_the_generator_produces(generator: ModuleType) -> None:
    assert generator.COGNI.output == COGNI_JSON
    assert COGNI_JSON.read_text(encoding="utf-8") == generator.render(generator.COGNI), (
        "deploy/grafana/governance-cogni.json is stale: run `python grafana/dashboard.py`"
    )


def test_the_cogni_file_is_the_same_dashboard_under_env_and_node_id(
    dashboard: dict[str, Any], cogni: dict[str, Any]
) -> None:
    """Same rows, panels, queries in the same order; each query is the default's with
    cluster -> env and node -> node_id, and nothing else changed but the recorded credit
    health, which Cogni's queries compute as the recording rule does (no rules record)."""
    default_targets = list(load_generator().targets(dashboard))
    cogni_targets = list(load_generator().targets(cogni))
    assert [(p["title"], t["refId"]) for p, t in cogni_targets] == [
        (p["title"], t["refId"]) for p, t in default_targets
    ]
    recorded_health = f"{HEALTH_LEVEL}{{{COGNI_SELECTOR}}}"
    inlined = 0
    for (panel, mine), (_p, theirs) in zip(default_targets, cogni_targets, strict=True):
        renamed = _to_cogni(mine["expr"])
        if recorded_health in renamed:
            inlined += 1
            expected = renamed.replace(recorded_health, inline_health())
            # Only the whitespace of the rule file's layout differs.
            assert _unspaced(theirs["expr"]) == _unspaced(expected), panel["title"]
            continue
        assert theirs["expr"] == renamed, panel["title"]
        assert theirs.get("legendFormat") == (
            _to_cogni(mine["legendFormat"]) if "legendFormat" in mine else None
        )
    assert inlined == 4  # the fleet stat's three levels and the fleet table's column
    assert [p["title"] for p in cogni["panels"]] == [p["title"] for p in dashboard["panels"]]
    (annotation,) = cogni["annotations"]["list"]
    assert annotation["expr"] == _to_cogni(dashboard["annotations"]["list"][0]["expr"])
    assert not any("cluster" in v.get("query", "") for v in cogni["templating"]["list"])
    assert not re.search(r"\bnode\b\s*[=!]", json.dumps(cogni)), "a `node` matcher is left"


def test_the_cogni_variables_are_env_and_node_id(cogni: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in cogni["templating"]["list"]}
    assert list(variables) == ["datasource", "env", "node_id", "account", "charter"]
    assert variables["env"]["query"] == "label_values(governance_exporter_build_info, env)"
    assert variables["node_id"]["query"] == (
        'label_values(governance_exporter_build_info{env=~"$env"}, node_id)'
    )
    fleet = 'env=~"$env", node_id=~"$node_id"'
    assert variables["account"]["query"] == (
        f"label_values(governance_credit_balance_credits{{{fleet}}}, account)"
    )
    for name in ("env", "node_id", "charter"):
        variable = variables[name]
        assert (variable["multi"], variable["includeAll"], variable["allValue"]) == (
            True,
            True,
            ".*",
        ), name
        assert variable["datasource"]["uid"] == DS_VARIABLE


def _datasource_refs(node: Any) -> Iterator[Any]:
    """Every value of a "datasource" key anywhere in the JSON."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from _datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_refs(item)


def test_the_cogni_file_drops_into_a_git_sync_folder_as_it_is(
    cogni: dict[str, Any], dashboard: dict[str, Any], generator: ModuleType
) -> None:
    """Git Sync loads the file unchanged: a fixed uid of its own (never the bundled
    dashboard's), no id, no import-time placeholders, the data source by variable."""
    text = COGNI_JSON.read_text(encoding="utf-8")
    assert cogni["uid"] == generator.COGNI.uid == "cogni-governance-env-node_id"
    assert len(cogni["uid"]) <= 40
    assert cogni["uid"] != dashboard["uid"]
    assert cogni.get("id") is None
    assert "__inputs" not in cogni
    assert "__requires" not in cogni
    assert "${DS_" not in text
    (variable,) = (v for v in cogni["templating"]["list"] if v["type"] == "datasource")
    assert variable["name"] == "datasource"
    assert variable["query"] == "prometheus"
    assert variable["current"]["value"] == "grafanacloud-prom"  # Grafana Cloud's own
    refs = list(_datasource_refs(cogni))
    assert len(refs) > 50
    assert all(ref == {"type": "prometheus", "uid": DS_VARIABLE} for ref in refs), {
        json.dumps(ref) for ref in refs
    }


def test_the_cogni_queries_are_those_of_the_contract(cogni: dict[str, Any]) -> None:
    """As the default file's, but without recorded series: Grafana-managed alerting
    records none (the health level's inputs are REQUIRED_METRICS already)."""
    used = lint_contract(cogni, COGNI_LABELS, COGNI_VALUES, REQUIRED_METRICS - {HEALTH_LEVEL})
    assert not {name for name in used if ":" in name}, "Cogni's data source records no rules"


# (balance, runway, one run's cost or None, runs rejected or None, spent): every edge of
# the credit health level; None is a series an older node does not export.
_HealthCase = tuple[float, float, float | None, float | None, float]
_HEALTH_CASES: dict[str, _HealthCase] = {
    "green": (1000, 86401, 1, 0, 10),
    "yellow-at-24h": (1000, 86400, 1, 0, 10),
    "yellow-at-6h": (1000, 21600, 1, 0, 10),
    "red-below-6h": (1000, 21599, 1, 0, 10),
    "zero-balance": (0, 10**6, 0, 0, 10),
    "below-one-run": (5, 10**6, 10, 0, 10),
    "one-run-exactly": (10, 10**6, 10, 0, 10),
    "refused": (1000, 10**6, 1, 3, 0),
    "rejected-but-spending": (1000, 10**6, 1, 3, 5),
    "older-node": (1000, 10**6, None, None, 10),
}


def _health_series(node: str, case: _HealthCase) -> list[dict[str, str]]:
    balance, runway, cost, rejected, spent = case
    labels = f'job="governance", instance="{node}:10215", env="production", node_id="{node}"'
    values = {
        "governance_credit_balance_credits": balance,
        "governance_credit_runway_seconds": runway,
        "governance_credit_min_run_cost_credits": cost,
        "governance_credit_rejected_runs": rejected,
        "governance_credit_spent_credits": spent,
    }
    return [
        {"series": f'{name}{{{labels}, account="cogni_system"}}', "values": f"{value:g}x15"}
        for name, value in values.items()
        if value is not None
    ]


def test_the_cogni_inline_health_is_the_recorded_level_and_the_models(
    cogni: dict[str, Any], dashboard: dict[str, Any], tmp_path: Path
) -> None:
    """Against promtool: on every edge of the level (runway bands, zero balance, below
    one run's cost, runs refused, an older node without those series) the Cogni fleet
    table's inline health equals the default's recorded governance:credit_health:level
    (the committed rules evaluated), and both are exporter.policy's colour."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not on PATH (apt-get install prometheus)", pytrace=False)
    generator = load_generator()
    levels = list(generator.HEALTH_LEVELS)
    inline = _target(_panel(cogni, "Fleet: nodes, worst first"), "A")
    recorded = _target(_panel(dashboard, "Fleet: nodes, worst first"), "A")
    assert HEALTH_LEVEL not in inline
    assert f"{HEALTH_LEVEL}{{" in recorded
    series: list[dict[str, str]] = []
    inline_samples: list[dict[str, Any]] = []
    recorded_samples: list[dict[str, Any]] = []
    for node, case in _HEALTH_CASES.items():
        balance, runway, cost, rejected, spent = case
        health = policy.credit_health(
            balance,
            runway,
            min_run_cost_credits=cost or 0,
            refused=bool(rejected) and spent <= 0,
        )
        series += _health_series(node, case)
        target = f'job="governance", instance="{node}:10215"'
        recorded_samples.append({"labels": f"{{{target}}}", "value": levels.index(health)})
        inline_samples.append(
            {
                "labels": f'{{{target}, env="production", node_id="{node}"}}',
                "value": levels.index(health),
            }
        )
    assert {s["value"] for s in recorded_samples} == {0, 1, 2}
    test = {
        "rule_files": [str(RULES_YML)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": generator.substitute(inline, COGNI_VALUES),
                        "eval_time": "10m",
                        "exp_samples": inline_samples,
                    },
                    {
                        "expr": generator.substitute(recorded, TEMPLATE_VALUES),
                        "eval_time": "10m",
                        "exp_samples": recorded_samples,
                    },
                ],
            }
        ],
    }
    (tmp_path / "health.test.yml").write_text(yaml.safe_dump(test), encoding="utf-8")
    result = subprocess.run(
        [promtool, "test", "rules", "health.test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _up_selectors(node: Any, fleet_labels: frozenset[str]) -> Iterator[tuple[Any, bool]]:
    """(``up`` selector, whether it is joined with the exporter's build_info)."""
    if isinstance(node, promql_parser.BinaryExpr) and str(node.op).lower() == "and":
        lhs = node.lhs.expr if isinstance(node.lhs, promql_parser.ParenExpr) else node.lhs
        matching = node.modifier.matching if node.modifier else None
        on = frozenset(matching.labels) if matching else frozenset()
        rhs_names = {s.name for s, _inside in _selectors(node.rhs)}
        if isinstance(lhs, promql_parser.VectorSelector) and lhs.name == "up":
            joined = rhs_names == {"governance_exporter_build_info"}
            yield lhs, joined and on >= {"job", "instance"} | fleet_labels
            yield from _up_selectors(node.rhs, fleet_labels)
            return
    if isinstance(node, promql_parser.VectorSelector):
        if node.name == "up":
            yield node, False
        return
    for child in _children(node):
        yield from _up_selectors(child, fleet_labels)


@pytest.mark.parametrize("variant", ["default", "cogni"])
def test_up_is_only_read_for_the_exporters_own_targets(
    variant: str, dashboard: dict[str, Any], cogni: dict[str, Any]
) -> None:
    """``up`` of every target of every service is never counted: each ``up`` is joined
    on the node's labels with the exporter's build_info."""
    data, labels, values = (
        (dashboard, FLEET_LABELS, TEMPLATE_VALUES)
        if variant == "default"
        else (cogni, COGNI_LABELS, COGNI_VALUES)
    )
    seen = 0
    for where, expr in _queries(data):
        ast = promql_parser.parse(load_generator().substitute(expr, values))
        for _selector, joined in _up_selectors(ast, labels):
            assert joined, f"{where}: bare up in {expr}"
            seen += 1
    assert seen >= 3


def test_the_up_lint_catches_a_bare_up() -> None:
    ((_, joined),) = _up_selectors(promql_parser.parse("count(up == 0)"), FLEET_LABELS)
    assert not joined
    other = "up and on (job, instance, cluster, node) node_exporter_build_info"
    ((_, joined),) = _up_selectors(promql_parser.parse(other), FLEET_LABELS)
    assert not joined


def _generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args], capture_output=True, text=True, check=False
    )


def test_the_generator_takes_the_operators_label_names(
    tmp_path: Path, generator: ModuleType
) -> None:
    cogni = tmp_path / "cogni.json"
    labels = ("--cluster-label", "env", "--node-label", "node_id", "--no-recording-rules")
    made = _generate(*labels, "--datasource-uid", "grafanacloud-prom", "--output", str(cogni))
    assert made.returncode == 0, made.stderr
    assert cogni.read_text(encoding="utf-8") == COGNI_JSON.read_text(encoding="utf-8")
    # Without --no-recording-rules: the same labels, the recorded level read as recorded.
    recorded = tmp_path / "recorded.json"
    made = _generate(
        *labels[:-1], "--datasource-uid", "grafanacloud-prom", "--output", str(recorded)
    )
    assert made.returncode == 0, made.stderr
    assert f"{HEALTH_LEVEL}{{" not in cogni.read_text(encoding="utf-8")
    assert f"{HEALTH_LEVEL}{{" in recorded.read_text(encoding="utf-8")
    assert json.loads(recorded.read_text(encoding="utf-8"))["uid"] == generator.COGNI.uid
    other = tmp_path / "other.json"
    made = _generate("--cluster-label", "region", "--node-label", "host", "--output", str(other))
    assert made.returncode == 0, made.stderr
    data = json.loads(other.read_text(encoding="utf-8"))
    assert data["uid"] == "cogni-governance-region-host"
    assert [v["name"] for v in data["templating"]["list"]][1:3] == ["region", "host"]
    stale = tmp_path / "stale.json"
    stale.write_text(COGNI_JSON.read_text(encoding="utf-8").replace('"1m"', '"5m"', 1))
    check = _generate("--check", *labels, "--datasource-uid", "grafanacloud-prom")
    assert check.returncode == 2  # labels without --output: which file?
    assert _generate("--check", "--no-recording-rules").returncode == 2
    check = _generate(
        "--check", *labels, "--datasource-uid", "grafanacloud-prom", "--output", str(stale)
    )
    assert check.returncode == 1
    assert "stale" in check.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--cluster-label", "env-name"), "not a Prometheus label name"),
        (("--node-label", "instance"), "a label the dashboard already reads"),
        (("--cluster-label", "node"), "the two fleet labels are the same"),
        (("--uid", "x" * 41), "at most 40"),
    ],
)
def test_a_bad_label_name_is_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    bad = _generate(*args, "--output", str(tmp_path / "x.json"))
    assert bad.returncode == 2
    assert message in bad.stderr
    assert "Traceback" not in bad.stderr
    assert not (tmp_path / "x.json").exists()

"""Every number in exporter/policy/ is the number the rules and the dashboard use.

The policy is the truth (``check`` and the status page read it); the alert rules
and the dashboard restate its thresholds in PromQL and JSON. Runway thresholds
have their own, finer test (tests/test_thresholds.py); these cover the rest, and that
every alert a problem names is an alert of the rules.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from exporter import policy, settings

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((ROOT / "prometheus" / "rules").glob("*.yml"))
DASHBOARD = json.loads((ROOT / "grafana" / "dashboards" / "governance.json").read_text())


def _rules() -> list[dict[str, Any]]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            rules.extend(group["rules"])
    return rules


def _exprs(alert: str, **labels: str) -> list[str]:
    found = [
        " ".join(str(r["expr"]).split())
        for r in _rules()
        if r.get("alert") == alert
        and all(r.get("labels", {}).get(k) == v for k, v in labels.items())
    ]
    assert found, f"no rule {alert} {labels}"
    return found


def test_the_stall_rule_is_two_intervals_plus_thirty_minutes() -> None:
    (expr,) = _exprs("GovernanceCharterStalled")
    match = re.search(r"> (\d+) \* governance:schedule_interval_seconds:last1h \+ (\d+)", expr)
    assert match is not None, expr
    assert (int(match[1]), int(match[2])) == (policy.STALL_INTERVALS, policy.STALL_GRACE_SECONDS)


def test_the_budget_header_age_is_the_gateways_two_hours() -> None:
    (expr,) = _exprs("GovernanceBudgetGateStale", condition="age")
    match = re.search(r"> (\d+)\s*$", expr)
    assert match is not None, expr
    assert int(match[1]) == policy.BUDGET_HEADER_MAX_AGE_SECONDS


def test_heartbeat_staleness_is_two_intervals_or_two_hours() -> None:
    (expr,) = _exprs("GovernanceHeartbeatStale", condition="age")
    intervals = re.search(r"(\d+) \* max\b", expr) or re.search(r"(\d+) \* last_over_time", expr)
    assert intervals is not None, expr
    assert int(intervals[1]) == policy.HEARTBEAT_STALE_INTERVALS
    default = policy.HEARTBEAT_STALE_INTERVALS * policy.HEARTBEAT_DEFAULT_INTERVAL_SECONDS
    assert re.search(rf"\b{default}\b", expr), expr


def test_one_runs_cost_is_the_preflight_estimate() -> None:
    """(0 message tokens + 10,000) / 1,000 x $0.02 x markup 2.0, in credits."""
    credits_per_usd = 10_000_000
    estimate = round((0 + 10_000) / 1_000 * 0.02 * 2.0 * credits_per_usd)
    assert settings.DEFAULT_MIN_RUN_COST_CREDITS == estimate == 4_000_000
    # The rules and the dashboard read the exporter's metric, never a copy of it.
    (balance,) = _exprs("GovernanceCreditRunwayLow", condition="balance")
    assert "min_run_cost_credits" in balance
    dashboard = json.dumps(DASHBOARD)
    assert "governance_credit_min_run_cost_credits" in dashboard
    assert str(estimate) not in dashboard


def test_the_dashboard_budget_threshold_is_the_policys() -> None:
    """The budget gate's "updated" override turns red just past the policy's age."""
    steps = [
        step["value"]
        for text in re.findall(r'"steps": (\[[^\]]*\])', json.dumps(DASHBOARD))
        for step in json.loads(text)
        if step.get("color") == "red" and step.get("value") not in (None, 0, 1, 2)
    ]
    near = [v for v in steps if abs(v - policy.BUDGET_HEADER_MAX_AGE_SECONDS) < 1]
    assert near, steps
    assert all(v > policy.BUDGET_HEADER_MAX_AGE_SECONDS for v in near)


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def test_every_alert_a_problem_names_is_a_rule() -> None:
    source = "".join(
        path.read_text(encoding="utf-8")
        for path in sorted((ROOT / "exporter" / "policy").glob("*.py"))
    )
    named = set(re.findall(r'"(Governance[A-Za-z]+)"', source))
    alerts = {r["alert"] for r in _rules() if "alert" in r}
    assert len(named) >= 15
    assert named <= alerts, named - alerts


def test_the_ledger_rules_read_the_exporters_limits_and_the_policys_grace() -> None:
    """The ledger's limits are --ledger-* options: the exporter exports each beside its
    measure and the rules compare the two; only the distribution's grace is a number."""
    (collect,) = _exprs("GovernanceLedgerCollectStalled")
    assert re.search(r"collect_overdue_seconds\{.*\}\[10m\]\) > last_over_time\(", collect)
    assert "governance_ledger_collect_stall_limit_seconds" in collect
    (webhook,) = _exprs("GovernanceLedgerWebhookSilent")
    assert "time() - last_over_time(governance_ledger_last_receipt_timestamp_seconds" in webhook
    assert "> last_over_time(governance_ledger_receipt_silence_limit_seconds" in webhook
    (review,) = _exprs("GovernanceLedgerEpochAwaitingApproval")
    assert "> ignoring(ledger_node_id, scope_id) group_left" in review
    assert "governance_ledger_review_wait_limit_seconds" in review
    (distribution,) = _exprs("GovernanceLedgerDistributionMissing")
    match = re.search(
        r"finalized_without_manifest_oldest_age_seconds\{.*?\[10m\]\) > (\d+)", distribution
    )
    assert match is not None, distribution
    assert int(match[1]) == policy.DISTRIBUTION_GRACE_SECONDS
    assert re.search(r"distribution_manifests\{.*?\[10m\]\) > 0\s*$", distribution), distribution
    (dispatch,) = _exprs("GovernanceLedgerDispatchPaused")
    assert 'state="paused"' in dispatch
    (hidden,) = _exprs("GovernanceLedgerNotObservable")
    # Distributions need BYPASSRLS (policy's _observability_problem leaves them out).
    assert 'part=~"epochs|receipts"' in hidden

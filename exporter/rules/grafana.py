"""The Grafana form of the rules: Grafana-managed alerting provisioning YAML.

Built from the Prometheus form (one source), rule by rule, with grafana-foundation-sdk's
alerting types: every alert keeps its PromQL, ``for``, labels and annotations, and
becomes three steps:

- ``QUERY``: the alert's PromQL, an instant query of the operator's data source;
- ``RETURNED``: 1 for every series the query returns (PromQL alerts fire for every
  series their expression returns, whatever its value, 0 and negative included);
- ``THRESHOLD``: ``RETURNED > 0``, the rule's condition.

Recording rules are inlined into the alerts that read them (a recording read over a
range becomes a subquery at its group's interval; the last of a held last is one
longer ``last_over_time``), so the Grafana form needs neither
Grafana-managed recording rules (a feature toggle and a write target) nor a ruler.
Needs Grafana 12 or later (Grafana Cloud): one title for several rules, and ``$value``
holding the query's value as in Prometheus.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Final

import yaml
from grafana_foundation_sdk.builders import alerting, expr, prometheus
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import alerting as alerting_models
from grafana_foundation_sdk.models import dashboard

EXPR_DATASOURCE = "__expr__"
DEFAULT_INTERVAL = "1m"  # prometheus/prometheus.yml's evaluation_interval
UID_MAX = 40  # Grafana's limit for a rule's uid
ORG_ID = 1

# No data: every alert's PromQL returns nothing while all is well (its condition is in
# the PromQL), so "no data" is the healthy answer and must be OK; the exporter missing
# is itself a series, absent(up{...}), of GovernanceExporterDown. prometheus/RUNBOOK.md
# ("Grafana-managed form") has the long form.
NO_DATA_STATE: Final = "OK"
# Error (the query failed): like Prometheus, which leaves its alerts as they were when an
# evaluation fails, keep the last state (Grafana >= 10.4) so a data source hiccup neither
# pages nor resolves a page; except where the failure itself is the news: a node that
# cannot be queried is not watched, so GovernanceExporterDown pages.
EXEC_ERR_STATE = "KeepLast"
EXEC_ERR_STATE_BY_ALERT = {"GovernanceExporterDown": "Alerting"}

_KEY_ORDER = (
    "uid",
    "title",
    "condition",
    "for",
    "keepFiringFor",
    "labels",
    "annotations",
    "noDataState",
    "execErrState",
    "isPaused",
    "data",
)
_RECORDED = re.compile(r"(?<![\w:])([A-Za-z_]\w*:[\w:]*)(?![\w:])(\{)?(\[[^\]]+\])?")


class InlineError(ValueError):
    """An alert reads a recording the Grafana form cannot inline."""


@dataclass(frozen=True)
class Recording:
    expr: str
    interval: str


def recordings(document: dict[str, Any]) -> dict[str, Recording]:
    """Every recording rule of a rule file: its name -> its expression and group interval."""
    return {
        rule["record"]: Recording(rule["expr"].strip(), group.get("interval", DEFAULT_INTERVAL))
        for group in document["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


_DURATION = re.compile(r"(\d+)(ms|[smhdwy])")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_LAST_OF = re.compile(r"last_over_time\(\s*([A-Za-z_]\w*:[\w:]*)\[(\w+)\]\s*\)")
_LAST = re.compile(r"last_over_time\((.*)\[(\w+)\]\)", re.DOTALL)


def _seconds(duration: str) -> int:
    return int(sum(int(n) * _SECONDS[unit] for n, unit in _DURATION.findall(duration)))


def _duration(seconds: int) -> str:
    parts = []
    for unit in ("d", "h", "m", "s"):
        count, seconds = divmod(seconds, int(_SECONDS[unit]))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _last_of_last(promql: str, recorded: dict[str, Recording]) -> str:
    """``last_over_time(R[W])`` of a recording R = ``last_over_time(E[H])`` is
    ``last_over_time(E[W+H])``: the same last sample, without a subquery that would
    load every step's window (a 7d subquery at 1m is 10080 windows)."""

    def replace(match: re.Match[str]) -> str:
        name, window = match.groups()
        inner = _LAST.fullmatch(recorded[name].expr) if name in recorded else None
        if inner is None:
            return match.group(0)
        series, held = inner.groups()
        return f"last_over_time({series}[{_duration(_seconds(window) + _seconds(held))}])"

    return _LAST_OF.sub(replace, promql)


def inline(promql: str, recorded: dict[str, Recording]) -> str:
    """``promql`` with every recorded series replaced by the expression that makes it."""
    promql = _last_of_last(promql, recorded)

    def replace(match: re.Match[str]) -> str:
        name, matchers, window = match.groups()
        if name not in recorded:
            raise InlineError(f"{name} is read but no rule of this file records it")
        if matchers:
            raise InlineError(f"{name}{{...}}: a recording read with matchers cannot be inlined")
        inner = inline(recorded[name].expr, recorded)
        if window:
            return f"({inner})[{window[1:-1]}:{recorded[name].interval}]"
        return f"({inner})"

    return _RECORDED.sub(replace, promql)


def rule_uid(group: str, rule: dict[str, Any]) -> str:
    """A fixed uid of at most 40 characters: the alert's name, severity and condition
    in kebab case (a hash of them when longer), so that applying twice changes nothing."""
    name = rule["alert"].removeprefix("Governance")
    words = [re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower(), rule["labels"]["severity"]]
    if "condition" in rule["labels"]:
        words.append(rule["labels"]["condition"])
    uid = "-".join(["gov", *words])
    if len(uid) <= UID_MAX:
        return uid
    digest = hashlib.sha256(f"{group}/{uid}".encode()).hexdigest()[:8]
    return f"{uid[: UID_MAX - len(digest) - 1].rstrip('-')}-{digest}"


def _steps(promql: str, datasource_uid: str) -> list[Builder[alerting_models.Query]]:
    query = (
        prometheus.Dataquery()
        .datasource(dashboard.DataSourceRef(type_val="prometheus", uid=datasource_uid))
        .expr(promql)
        .instant()
        .ref_id("QUERY")
    )
    returned = (
        expr.TypeMath()
        .expression("is_number($QUERY) || is_nan($QUERY) || is_inf($QUERY)")
        .ref_id("RETURNED")
    )
    threshold = (
        expr.TypeThreshold()
        .expression("RETURNED")
        .conditions(
            [
                expr.ExprTypeThresholdConditions().evaluator(
                    expr.ExprTypeThresholdConditionsEvaluator().type("gt").params([0])
                )
            ]
        )
        .ref_id("THRESHOLD")
    )
    return [
        alerting.Query("QUERY")
        .datasource_uid(datasource_uid)
        .relative_time_range(alerting_models.RelativeTimeRange(from_val=600, to=0))
        .model(query),
        alerting.Query("RETURNED").datasource_uid(EXPR_DATASOURCE).model(returned),
        alerting.Query("THRESHOLD").datasource_uid(EXPR_DATASOURCE).model(threshold),
    ]


def _plain(value: Any) -> Any:
    """The SDK's objects as plain dicts and lists, for PyYAML."""
    return json.loads(json.dumps(value, cls=JSONEncoder))


def grafana_rule(
    group: str, rule: dict[str, Any], recorded: dict[str, Recording], datasource_uid: str
) -> dict[str, Any]:
    """One alert of the Prometheus form as a Grafana-managed alert rule (file provisioning)."""
    built = (
        alerting.Rule(rule["alert"])
        .uid(rule_uid(group, rule))
        .condition("THRESHOLD")
        .queries(_steps(inline(rule["expr"], recorded).strip(), datasource_uid))
        .for_val(rule["for"])
        .labels(dict(rule["labels"]))
        .annotations(dict(rule["annotations"]))
        .no_data_state(NO_DATA_STATE)
        .is_paused(False)
        .build()
    )
    plain: dict[str, Any] = _plain(built)
    # The file format keeps the folder, group and organisation on the group, not the rule.
    for key in ("folderUID", "orgID", "ruleGroup"):
        plain.pop(key, None)
    # The SDK's type (Grafana 11.6's schema) lists OK, Alerting and Error only;
    # Grafana has taken KeepLast since 10.4.
    plain["execErrState"] = EXEC_ERR_STATE_BY_ALERT.get(rule["alert"], EXEC_ERR_STATE)
    if "keep_firing_for" in rule:
        plain["keepFiringFor"] = rule["keep_firing_for"]
    # In the order a person reads (and Grafana exports) a rule.
    first = [key for key in _KEY_ORDER if key in plain]
    return {key: plain[key] for key in [*first, *sorted(set(plain) - set(first))]}


def grafana_document(
    prometheus_form: str, *, datasource_uid: str, folder_uid: str
) -> dict[str, Any]:
    """The provisioning document (``apiVersion: 1``) of every alert of a Prometheus rule file."""
    document = yaml.safe_load(prometheus_form)
    recorded = recordings(document)
    groups = []
    for group in document["groups"]:
        alerts = [rule for rule in group["rules"] if "alert" in rule]
        if not alerts:
            continue
        interval = group.get("interval", DEFAULT_INTERVAL)
        built = _plain(alerting.RuleGroup(group["name"]).folder_uid(folder_uid).build())
        groups.append(
            {
                "orgId": ORG_ID,
                "name": built["title"],
                "folder": built["folderUid"],
                "interval": interval,
                "rules": [
                    grafana_rule(group["name"], rule, recorded, datasource_uid) for rule in alerts
                ],
            }
        )
    return {"apiVersion": 1, "groups": groups}


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL, descriptions) as literal blocks, as a person writes them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(prometheus_form: str, *, datasource_uid: str, folder_uid: str, command: str) -> str:
    """The Grafana form as YAML, with a header that says where it comes from."""
    document = grafana_document(
        prometheus_form, datasource_uid=datasource_uid, folder_uid=folder_uid
    )
    header = (
        f"# GENERATED by `{command}`: Grafana-managed alert rules\n"
        "# (unified alerting provisioning, Grafana 12 or later). Apply with the alerting\n"
        "# provisioning API, Terraform or file provisioning; the uids are fixed, so applying\n"
        "# again changes nothing. docs/rules.md says how; prometheus/RUNBOOK.md why each\n"
        "# rule's noDataState and execErrState.\n"
    )
    # No folding: a description stays on one line rather than wrapped inside its templates.
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096)
    return header + body

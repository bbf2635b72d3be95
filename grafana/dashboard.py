"""The governance dashboard, as code.

Run ``python grafana/dashboard.py`` to regenerate the committed files and
``python grafana/dashboard.py --check`` to fail (exit 1) when one is not what this module
generates. Built with grafana-foundation-sdk, Grafana's own generated builders (typed,
released with Grafana's schema), so the JSON has the shape Grafana expects rather than
the shape someone remembered.

The fleet's two labels are the operator's (``Fleet``): one file per labelling, each a
``Variant``. ``grafana/dashboards/governance.json`` is the bundled stack's (``cluster``,
``node``); ``deploy/grafana/governance-cogni.json`` is Cogni's (``env``, ``node_id``, as
their Alloy labels series), ready for a Git Sync folder. Other labels:
``--cluster-label``, ``--node-label`` and ``--output``.

The runway thresholds come from ``exporter.model``: the exporter, the alert rules and
this dashboard share one definition (``tests/test_thresholds.py`` keeps them equal).

Layout of this module: shared constants and small builders first; then one function
per panel, each placed by keyword (``x``, ``y``, ``w``, ``h`` in Grafana's 24-column
grid); then one function per row, composing its panels left to right from the row's
top ``y``; ``ROWS`` stacks the rows and ``build()`` numbers the panels. Every panel and
row function takes the ``fleet`` and selects through it (``fleet.sel``, ``fleet.acct``...).

The helpers at the bottom (``panels``, ``targets``, ``substitute``,
``runway_thresholds``) are what the tests use to read the generated JSON.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout, not installed
    sys.path.insert(0, str(ROOT))

from exporter.memory import (  # noqa: E402
    BUDGET_STATUSES,
    BURN_RATE_TRENDS,
    DECISIONS,
    FILE_STATUSES,
    NO_OP_REASONS,
)
from exporter.model import CREDITS_PER_USD  # noqa: E402
from exporter.policy import (  # noqa: E402
    BUDGET_HEADER_MAX_AGE_SECONDS,
    RED_RUNWAY_SECONDS,
    YELLOW_RUNWAY_SECONDS,
    Health,
)

OUTPUT = Path(__file__).resolve().parent / "dashboards" / "governance.json"

DASHBOARD_UID = "cogni-governance"
DASHBOARD_TITLE = "Cogni governance health"
DATASOURCE_UID = "governance-prometheus"  # provisioning/datasources/prometheus.yml
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")

GRID_COLUMNS = 24  # Grafana's grid is 24 columns wide

# Grafana thresholds are inclusive lower bounds (a value >= step gets the step's colour).
# The rules say green is runway > 24 h, so the green step sits one float above 24 h:
# exactly 86400 s is yellow, as in the alert rules. 6 h itself is yellow in both.
GREEN_STEP = math.nextafter(float(YELLOW_RUNWAY_SECONDS), math.inf)
# The gateway's readers use a budget header up to 2 h old (age <= 2 h); the
# GovernanceBudgetGateStale alert fires above it. Red therefore starts one float above.
BUDGET_STALE_STEP = math.nextafter(float(BUDGET_HEADER_MAX_AGE_SECONDS), math.inf)
# Trend panel only: +Inf (nothing spent) cannot be drawn, so runway is capped there.
RUNWAY_PLOT_CAP_SECONDS = 7 * 86400
# "Since last successful collection": the dashboard's numbers go stale after these.
COLLECTION_AGE_YELLOW_SECONDS = 300.0
COLLECTION_AGE_RED_SECONDS = 900.0
# GovernanceProviderUnavailable's window and condition (> 0): red one float above 0.
PROVIDER_WINDOW = "90m"
PROVIDER_FAILING_STEP = math.nextafter(0.0, math.inf)

RED, YELLOW, GREEN, ORANGE, BLUE = "red", "yellow", "green", "orange", "blue"
NEUTRAL = "text"
TRANSPARENT = "transparent"

ACCOUNT = 'account=~"$account"'
CHARTER = 'charter=~"$charter"'
# Alerts without an account/charter label (exporter down) must still show.
ALERT_MATCHERS = ('alertname=~"Governance.*"', 'account=~"$account|"')
HEALTH_LEVEL = "governance:credit_health:level"  # recording rule: 0 green, 1 yellow, 2 red
# Its levels in order, as the exporter's model names them.
HEALTH_LEVELS: tuple[Health, ...] = (Health.GREEN, Health.YELLOW, Health.RED)

Panel = stat.Panel | table.Panel | timeseries.Panel | bargauge.Panel

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Labels (and variable names) the dashboard already uses for something else.
RESERVED_LABELS = frozenset(
    {"job", "instance", "account", "charter", "datasource", "__name__", "alertname", "severity"}
    | {"alertstate", "status", "reason", "run_kind", "version", "schema", "le", "quantile"}
)


@dataclass(frozen=True)
class Fleet:
    """The two target labels an operator tells nodes apart by, and the selectors they make.

    Each is also the name of the dashboard variable that filters by it. The default
    (``cluster``, ``node``) is the bundled stack's; Cogni's operators label their series
    ``env`` and ``node_id`` (Alloy's relabelling, see deploy/alloy/). Every selector of
    every panel carries both: regex matchers whose All value ``.*`` also matches a series
    without the label, so a single node without them still shows everywhere.
    """

    cluster: str = "cluster"
    node: str = "node"

    def __post_init__(self) -> None:
        for label in (self.cluster, self.node):
            if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
                raise ValueError(f"{label!r} is not a Prometheus label name")
            if label in RESERVED_LABELS:
                raise ValueError(f"{label!r} is a label the dashboard already reads")
        if self.cluster == self.node:
            raise ValueError(f"the two fleet labels are the same ({self.cluster!r})")

    @property
    def labels(self) -> tuple[str, str]:
        return self.cluster, self.node

    @property
    def legend(self) -> str:
        """A series' name by node: its node label and instance (either may be absent)."""
        return f"{{{{{self.node}}}}} {{{{instance}}}}"

    @property
    def node_labels(self) -> str:
        """What keeps two nodes apart: the target's own labels (job, instance) and the
        fleet's. A label a series lacks (Alloy may drop instance) matches as empty."""
        return f"job, instance, {self.cluster}, {self.node}"

    def sel(self, metric: str, *matchers: str) -> str:
        """``metric{matchers..., <cluster>=~"$<cluster>", <node>=~"$<node>"}``: every
        selector."""
        fleet = (f'{label}=~"${label}"' for label in self.labels)
        return f"{metric}{{{', '.join((*matchers, *fleet))}}}"

    def alerts(self, *matchers: str) -> str:
        return self.sel("ALERTS", *ALERT_MATCHERS, *matchers)

    def acct(self, metric: str) -> str:
        return self.sel(metric, ACCOUNT)

    def charter(self, metric: str, *extra: str) -> str:
        return self.sel(metric, ACCOUNT, CHARTER, *extra)

    def kind(self, metric: str, *extra: str) -> str:
        """A metric of the work without a schedule (by account and run kind)."""
        return self.sel(metric, ACCOUNT, *extra)

    @property
    def build_info(self) -> str:
        """On every exporter whatever its database says: what marks a target as ours."""
        return self.sel("governance_exporter_build_info")

    def exporter_up(self) -> str:
        """``up`` of the exporter's targets only: those that exported build_info in the
        last day (a dead exporter stays listed as down), never every target scraped."""
        return f"{self.sel('up')} and on ({self.node_labels}) last_over_time({self.build_info}[1d])"

    @property
    def balance(self) -> str:
        return f"max by (account) ({self.acct('governance_credit_balance_credits')})"

    @property
    def min_run_cost(self) -> str:
        """The preflight check refuses runs below one run's estimated cost (today's nodes)."""
        return f"max by (account) ({self.acct('governance_credit_min_run_cost_credits')})"

    @property
    def burn_per_hour(self) -> str:
        rate = self.acct("governance_credit_burn_rate_credits_per_second")
        return f"max by (account) ({rate}) * 3600"


MAX_UID_LENGTH = 40  # Grafana's limit


@dataclass(frozen=True)
class Variant:
    """One generated file: the fleet's labels, the data source it opens on, its uid."""

    fleet: Fleet
    output: Path
    datasource_uid: str = DATASOURCE_UID
    chosen_uid: str = ""  # empty: derived from the labels

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-zA-Z0-9_-]+", self.uid) or len(self.uid) > MAX_UID_LENGTH:
            raise ValueError(
                f"dashboard uid {self.uid!r}: at most {MAX_UID_LENGTH} letters, digits, - or _"
            )

    @property
    def uid(self) -> str:
        """Fixed, so that Git Sync and links find the same dashboard every time; the
        bundled labels keep the historical uid, others get their labels in theirs."""
        if self.chosen_uid:
            return self.chosen_uid
        if self.fleet == Fleet():
            return DASHBOARD_UID
        return f"{DASHBOARD_UID}-{self.fleet.cluster}-{self.fleet.node}"


# The bundled stack (docker-compose.yml, grafana/provisioning): cluster and node.
DEFAULT = Variant(Fleet(), OUTPUT)
# Cogni's operators: Alloy labels every series env and node_id (deploy/alloy/), Git Sync
# loads the file as it is, and Grafana Cloud names its hosted Prometheus grafanacloud-prom
# (a viewer may pick another in the Data source variable).
COGNI = Variant(
    Fleet("env", "node_id"),
    ROOT / "deploy" / "grafana" / "governance-cogni.json",
    datasource_uid="grafanacloud-prom",
)
VARIANTS = (DEFAULT, COGNI)  # the committed files

MERGE = dm.DataTransformerConfig(id_val="merge", options={})


# --- small builders ---------------------------------------------------------------


def grid(*, x: int, y: int, w: int, h: int) -> dm.GridPos:
    """A panel's place on Grafana's grid: column ``x``, row ``y``, ``w`` wide, ``h`` high."""
    if x < 0 or y < 0 or w < 1 or h < 1 or x + w > GRID_COLUMNS:
        raise ValueError(f"panel off the {GRID_COLUMNS}-column grid: x={x} y={y} w={w} h={h}")
    return dm.GridPos(h=h, w=w, x=x, y=y)


def _query(
    expr: str, ref: str, legend: str = "", *, instant: bool = True, table_format: bool = False
) -> prom.Dataquery:
    q = prom.Dataquery().expr(expr).ref_id(ref).datasource(DS)
    q = q.instant() if instant else q.range()
    if legend:
        q = q.legend_format(legend)
    if table_format:
        q = q.format(PromQueryFormat.TABLE)
    return q


def _steps(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def _steps_json(*steps: tuple[float | None, str]) -> dict[str, object]:
    """Threshold steps as plain JSON, for override properties (untyped in the schema)."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def runway_steps() -> db.ThresholdsConfig:
    """Red below 6 h (and at a zero balance, where runway is 0), yellow to 24 h, green above."""
    return _steps((None, RED), (float(RED_RUNWAY_SECONDS), YELLOW), (GREEN_STEP, GREEN))


def _value_map(mapping: Mapping[str, tuple[str, str | None]]) -> dm.ValueMap:
    return dm.ValueMap(
        options={
            key: dm.ValueMappingResult(text=text, color=color, index=i)
            for i, (key, (text, color)) in enumerate(mapping.items())
        }
    )


def _map_json(mapping: Mapping[str, tuple[str, str | None]]) -> dict[str, object]:
    """A value mapping as plain JSON (override properties are untyped in the schema)."""
    data: dict[str, object] = json.loads(json.dumps(_value_map(mapping), cls=JSONEncoder))
    return data


def _no_data(text: str, color: str | None = None) -> dm.SpecialValueMap:
    return dm.SpecialValueMap(
        options=dm.DashboardSpecialValueMapOptions(
            match=dm.SpecialValueMatch.NULL_AND_NAN,
            result=dm.ValueMappingResult(text=text, color=color),
        )
    )


def _no_data_json(text: str, color: str | None = None) -> dict[str, object]:
    data: dict[str, object] = json.loads(json.dumps(_no_data(text, color), cls=JSONEncoder))
    return data


def _names(
    states: tuple[str, ...], colours: Mapping[str, str]
) -> dict[str, tuple[str, str | None]]:
    """Label value -> (itself, colour): colours a table column that shows a label."""
    return {str(state): (str(state), colours[str(state)]) for state in states}


def _prop(prop_id: str, value: object) -> dm.DynamicConfigValue:
    return dm.DynamicConfigValue(id_val=prop_id, value=value)


def _background() -> dm.DynamicConfigValue:
    return _prop("custom.cellOptions", {"type": "color-background", "mode": "basic"})


def _colour_text() -> dm.DynamicConfigValue:
    return _prop("custom.cellOptions", {"type": "color-text"})


def _reduce_last() -> cb.ReduceDataOptions:
    return cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False).fields("")


def _stat(title: str, description: str, unit: str, pos: dm.GridPos) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .unit(unit)
        .grid_pos(pos)
        .reduce_options(_reduce_last())
        .graph_mode(cm.BigValueGraphMode.NONE)
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .justify_mode(cm.BigValueJustifyMode.CENTER)
        .text_mode(cm.BigValueTextMode.AUTO)
        .orientation(cm.VizOrientation.AUTO)
    )


def _table(title: str, description: str, unit: str, pos: dm.GridPos) -> table.Panel:
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .unit(unit)
        .grid_pos(pos)
        .cell_height(cm.TableCellHeight.SM)
        .show_header(True)
    )


def _timeseries(title: str, description: str, unit: str, pos: dm.GridPos) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .unit(unit)
        .grid_pos(pos)
        .line_width(2)
        .fill_opacity(10)
        .show_points(cm.VisibilityMode.NEVER)
        .span_nulls(False)
        .legend(
            cb.VizLegendOptions()
            .show_legend(True)
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
        )
        .tooltip(
            cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)
        )
    )


def _organize(
    exclude: list[str], rename: Mapping[str, str], order: list[str] | None = None
) -> dm.DataTransformerConfig:
    options: dict[str, object] = {
        "excludeByName": dict.fromkeys(exclude, True),
        "renameByName": dict(rename),
    }
    if order:
        options["indexByName"] = {name: i for i, name in enumerate(order)}
    return dm.DataTransformerConfig(id_val="organize", options=options)


# --- 0. the fleet -----------------------------------------------------------------
#
# One row per node, never one number for many: every query groups by the target's
# labels (fleet.node_labels), so two nodes that differ only in instance stay two rows.


def _column(label: str) -> str:
    """A label as a table column's title: ``node_id`` -> ``Node id``."""
    return label.replace("_", " ").capitalize()


def _fleet_columns(fleet: Fleet) -> dict[str, str]:
    return {
        fleet.cluster: _column(fleet.cluster),
        fleet.node: _column(fleet.node),
        "instance": "Instance",
        "job": "Job",
        "Value #A": "Credit health",
        "Value #B": "Runway",
        "Value #C": "Failing charters",
        "Value #D": "Alerts firing",
        "Value #E": "Exporter",
    }


def _by_node(fleet: Fleet, expr: str, *extra: str) -> str:
    return f"max by ({', '.join((fleet.node_labels, *extra))}) ({expr})"


def _node_health(fleet: Fleet) -> str:
    """Each node's credit health level (the worst of its accounts)."""
    return _by_node(fleet, fleet.acct(HEALTH_LEVEL))


def _or_zero_per_node(fleet: Fleet, expr: str) -> str:
    """``expr``, and 0 for every scraped node it has no series for (a count's empty case)."""
    return f"{expr} or 0 * group by ({fleet.node_labels}) ({fleet.build_info})"


def _failing_charters(fleet: Fleet) -> str:
    """Per node and charter: runs failed in the exporter's window, only where > 0."""
    failed = fleet.charter("governance_schedule_failed_runs")
    return f"sum by ({fleet.node_labels}, charter) ({failed}) > 0"


def _node_alerts(fleet: Fleet, *matchers: str) -> str:
    """Alerts that name a node: by its instance or, where the scraper drops instance
    (Alloy may), by the fleet's node label."""
    by_instance = fleet.alerts(*matchers, 'instance!=""')
    by_node = fleet.alerts(*matchers, f'{fleet.node}!=""')
    return f"({by_instance} or {by_node})"


def _node_alerts_firing(fleet: Fleet) -> str:
    """Firing alerts that name a node, a warning hidden by the same alert's critical on
    the same node (as Alertmanager inhibits it) left out, as in 'Governance alerts firing'."""
    critical = _node_alerts(fleet, 'alertstate="firing"', 'severity="critical"')
    warning = _node_alerts(fleet, 'alertstate="firing"', 'severity="warning"')
    on = f"alertname, account, {fleet.node_labels}"
    return f"{critical} or ({warning} unless on ({on}) {critical})"


def _health_mapping() -> dict[str, tuple[str, str | None]]:
    return {
        str(level): (health.upper(), health.value) for level, health in enumerate(HEALTH_LEVELS)
    }


def fleet_health_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    def nodes_at(level: int) -> str:
        return f"count({_node_health(fleet)} == {level}) or vector(0)"

    return (
        _stat(
            "Fleet: nodes by credit health",
            "How many nodes are red, yellow and green, from the recording rule "
            f"{HEALTH_LEVEL} (0 green, 1 yellow, 2 red: red below "
            f"{RED_RUNWAY_SECONDS // 3600} h of runway or at a zero balance, yellow up to "
            f"{YELLOW_RUNWAY_SECONDS // 3600} h). A node is one scrape target (job, instance "
            f"and the {fleet.cluster}/{fleet.node} labels). 'down': targets whose exporter "
            "Prometheus cannot scrape.",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(_query(nodes_at(HEALTH_LEVELS.index(Health.RED)), "A", "red"))
        .with_target(_query(nodes_at(HEALTH_LEVELS.index(Health.YELLOW)), "B", "yellow"))
        .with_target(_query(nodes_at(HEALTH_LEVELS.index(Health.GREEN)), "C", "green"))
        .with_target(
            _query(
                f"count(({fleet.exporter_up()}) == 0) or vector(0)",
                "D",
                "down",
            )
        )
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .thresholds(_steps((None, GREEN), (1.0, RED)))
        .override_by_query("B", [_prop("thresholds", _steps_json((None, GREEN), (1, YELLOW)))])
        .override_by_query("C", [_prop("thresholds", _steps_json((None, NEUTRAL), (1, GREEN)))])
    )


def fleet_nodes_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    return (
        _table(
            "Fleet: nodes, worst first",
            "One row per node (scrape target), sorted by credit health (red first), then by "
            "failing charters. 'Credit health' is the recording rule "
            f"{HEALTH_LEVEL}; 'Runway' the node's lowest; 'Failing charters' how many of its "
            "charters have failed runs in the exporter's window (which ones: the table to the "
            "right); 'Alerts firing' its firing Governance* alerts (critical and warning, those "
            "labelled with its instance); 'Exporter' whether "
            "Prometheus scrapes it. Pick a node in the 'Node' variable to read the rows "
            "below for that node alone.",
            "none",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(_query(_node_health(fleet), "A", table_format=True))
        .with_target(
            _query(
                f"min by ({fleet.node_labels}) ({fleet.acct('governance_credit_runway_seconds')})",
                "B",
                table_format=True,
            )
        )
        .with_target(
            _query(
                _or_zero_per_node(
                    fleet, f"count by ({fleet.node_labels}) ({_failing_charters(fleet)})"
                ),
                "C",
                table_format=True,
            )
        )
        .with_target(
            _query(
                _or_zero_per_node(
                    fleet, f"count by ({fleet.node_labels}) ({_node_alerts_firing(fleet)})"
                ),
                "D",
                table_format=True,
            )
        )
        .with_target(
            _query(
                f"min by ({fleet.node_labels}) ({fleet.exporter_up()})",
                "E",
                table_format=True,
            )
        )
        .with_transformation(MERGE)
        .with_transformation(
            _organize(["Time"], _fleet_columns(fleet), list(_fleet_columns(fleet)))
        )
        .sort_by(
            [
                cb.TableSortByFieldState().display_name("Credit health").desc(True),
                cb.TableSortByFieldState().display_name("Failing charters").desc(True),
            ]
        )
        .override_by_name(
            "Credit health",
            [
                _prop("mappings", [_map_json(_health_mapping()), _no_data_json("no data")]),
                _background(),
            ],
        )
        .override_by_name("Runway", [_prop("unit", "dtdurations")])
        .override_by_name(
            "Failing charters",
            [_prop("thresholds", _steps_json((None, GREEN), (1, RED))), _colour_text()],
        )
        .override_by_name(
            "Alerts firing",
            [_prop("thresholds", _steps_json((None, GREEN), (1, RED))), _colour_text()],
        )
        .override_by_name(
            "Exporter",
            [
                _prop("mappings", [_map_json({"1": ("UP", GREEN), "0": ("DOWN", RED)})]),
                _background(),
            ],
        )
    )


def fleet_failing_charters_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    last_success = fleet.charter("governance_schedule_last_success_timestamp_seconds")
    return (
        _table(
            "Fleet: failing charters",
            "Every node's charters with failed runs (errors and failed grant checks) in the "
            "exporter's trailing window, most failures first, with the charter's last "
            "success on that node. A node absent here may still be unhealthy: a charter "
            "without a schedule row records no runs (see 'Alerts firing').",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(_query(_failing_charters(fleet), "A", table_format=True))
        .with_target(
            _query(
                f"max by ({fleet.node_labels}, charter) ({last_success}) * 1000 "
                f"and on ({fleet.node_labels}, charter) ({_failing_charters(fleet)})",
                "B",
                table_format=True,
            )
        )
        .with_transformation(MERGE)
        .with_transformation(
            _organize(
                ["Time", "job"],
                {
                    fleet.node: _column(fleet.node),
                    fleet.cluster: _column(fleet.cluster),
                    "instance": "Instance",
                    "charter": "Charter",
                    "Value #A": "Failed in window",
                    "Value #B": "Last success",
                },
                [fleet.node, fleet.cluster, "instance", "charter", "Value #A", "Value #B"],
            )
        )
        .sort_by([cb.TableSortByFieldState().display_name("Failed in window").desc(True)])
        .override_by_name(
            "Failed in window",
            [_prop("thresholds", _steps_json((None, NEUTRAL), (1, RED))), _colour_text()],
        )
        .override_by_name(
            "Last success",
            [
                _prop("unit", "dateTimeFromNow"),
                _prop("mappings", [_map_json({"0": ("never", RED)})]),
            ],
        )
    )


def fleet_row(*, y: int, fleet: Fleet) -> list[Panel]:
    h = 7
    return [
        fleet_health_stat(x=0, y=y, w=4, h=h, fleet=fleet),
        fleet_nodes_table(x=4, y=y, w=12, h=h, fleet=fleet),
        fleet_failing_charters_table(x=16, y=y, w=8, h=h, fleet=fleet),
    ]


# --- 1. credit health -------------------------------------------------------------


def runway_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    return (
        _stat(
            "Credit health: runway",
            "How long the governance account lasts at the current burn rate "
            "(balance / credits charged per second over the exporter's trailing window). "
            f"Red below {RED_RUNWAY_SECONDS // 3600} h or at a zero balance, yellow up to "
            f"{YELLOW_RUNWAY_SECONDS // 3600} h, green above: the same thresholds as the "
            "GovernanceCreditRunwayLow alert. \u221e means nothing was charged in the window: "
            "healthy only if runs are really succeeding (see Charters).",
            "dtdurations",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            _query(f"min by (account) ({fleet.acct('governance_credit_runway_seconds')})", "A")
        )
        .thresholds(runway_steps())
        .mappings(
            [
                _value_map(
                    {
                        "0": ("0 h: balance exhausted", RED),
                        # JavaScript looks +Inf up as the key "Infinity" in every version.
                        "Infinity": ("\u221e (no spend in window)", GREEN),
                    }
                ),
                _no_data("no data"),
            ]
        )
    )


def balance_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    return (
        _stat(
            "Balance",
            "Current balance of the governance billing account, in credits and in USD "
            f"({CREDITS_PER_USD:,} credits per USD). Red at zero or below: every run is then "
            "rejected with insufficient_credits, as on 2026-02-15. 'refused below' is one "
            "run's cost: today's preflight check rejects runs under it (the balance alert "
            "fires there too).",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(_query(fleet.balance, "A", "credits"))
        .with_target(_query(f"{fleet.balance} / {CREDITS_PER_USD}", "B", "USD"))
        .with_target(_query(fleet.min_run_cost, "C", "refused below"))
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .thresholds(_steps((None, RED), (1.0, NEUTRAL)))
        .override_by_query(
            "B",
            [
                _prop("unit", "currencyUSD"),
                _prop("decimals", 2),
                _prop("thresholds", _steps_json((None, RED), (1 / CREDITS_PER_USD, NEUTRAL))),
            ],
        )
        .override_by_query("C", [_prop("color", {"mode": "fixed", "fixedColor": "text"})])
    )


def burn_rate_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    return (
        _stat(
            "Burn rate (credits/hour)",
            "Credits charged per hour, averaged over the exporter's trailing window "
            "(governance_credit_burn_rate_credits_per_second x 3600). The USD figure is the "
            "same rate in dollars.",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(_query(fleet.burn_per_hour, "A", "credits/h"))
        .with_target(_query(f"{fleet.burn_per_hour} / {CREDITS_PER_USD}", "B", "USD/h"))
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(cm.BigValueColorMode.NONE)
        .thresholds(_steps((None, NEUTRAL)))
        .override_by_query("B", [_prop("unit", "currencyUSD"), _prop("decimals", 2)])
    )


def spent_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    return (
        _stat(
            "Spent in window",
            "Credits charged and number of charges in the exporter's trailing window "
            "(governance_credit_window_seconds, shown as 'window'). Orange at 0: nothing "
            "was spent, which with enabled schedules usually means runs are rejected "
            "before they spend (the 2026-02-15 pattern), not that all is well.",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            _query(
                f"max by (account) ({fleet.acct('governance_credit_spent_credits')})",
                "A",
                "credits",
            )
        )
        .with_target(
            _query(f"max by (account) ({fleet.acct('governance_credit_charges')})", "B", "charges")
        )
        .with_target(_query(f"max({fleet.sel('governance_credit_window_seconds')})", "C", "window"))
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(cm.BigValueColorMode.VALUE)
        .thresholds(_steps((None, NEUTRAL)))
        .mappings([_value_map({"0": ("0 (nothing spent)", ORANGE)})])
        .override_by_query("C", [_prop("unit", "dtdurations")])
    )


def alerts_firing_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    critical = fleet.alerts('alertstate="firing"', 'severity="critical"')
    warning = fleet.alerts('alertstate="firing"', 'severity="warning"')
    return (
        _stat(
            "Governance alerts firing",
            "Firing Prometheus alerts named Governance* for this account (and the account-less "
            "exporter alerts), by severity. A warning hidden by a critical of the same alert, "
            "account and node (as Alertmanager inhibits it: the yellow runway warning while "
            "red) is not counted. Details in the 'Governance alerts' table below.",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(_query(f"count({critical}) or vector(0)", "A", "critical"))
        .with_target(
            _query(
                f"count({warning} unless on (alertname, account, {fleet.node_labels}) {critical}) "
                "or vector(0)",
                "B",
                "warning",
            )
        )
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .thresholds(_steps((None, GREEN), (1.0, RED)))
        .override_by_query("B", [_prop("thresholds", _steps_json((None, GREEN), (1, YELLOW)))])
    )


def credit_row(*, y: int, fleet: Fleet) -> list[Panel]:
    h = 5
    return [
        runway_stat(x=0, y=y, w=6, h=h, fleet=fleet),
        balance_stat(x=6, y=y, w=5, h=h, fleet=fleet),
        burn_rate_stat(x=11, y=y, w=4, h=h, fleet=fleet),
        spent_stat(x=15, y=y, w=4, h=h, fleet=fleet),
        alerts_firing_stat(x=19, y=y, w=5, h=h, fleet=fleet),
    ]


# --- 2. charters ------------------------------------------------------------------

_CHARTER_COLUMNS = {
    "Value #A": "Configured",
    "Value #B": "State",
    "Value #C": "Config",
    "Value #D": "Last success",
    "Value #E": "Next run in",
    "Value #F": "Every",
    "Value #G": "Failed in window",
    "Value #H": "Observable",
    "Value #I": "Repo-spec",
}
# The State column: enabled + 2 * retired (a retired charter is always paused).
CHARTER_STATES = {
    "0": ("paused", ORANGE),
    "1": ("enabled", GREEN),
    "2": ("retired", NEUTRAL),
}


def _charter_state(fleet: Fleet) -> str:
    """0 paused, 1 enabled, 2 retired (pruned by the boot sync: paused on purpose);
    an exporter without governance_schedule_retired still shows enabled/paused."""
    by = "max by (account, charter)"
    enabled = f"{by} ({fleet.charter('governance_schedule_enabled')})"
    retired = f"{by} ({fleet.charter('governance_schedule_retired')})"
    return f"({enabled} + 2 * {retired}) or {enabled}"


def charters_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    by = "max by (account, charter)"
    retired = fleet.charter("governance_schedule_retired")
    last_success = fleet.charter("governance_schedule_last_success_timestamp_seconds")
    return (
        _table(
            "Charters",
            "One row per governance charter. Configured 'MISSING' means the charter is expected "
            "(by --repo-spec or --expected-charters) but has no schedule row (its other "
            "columns are then empty, and its runs are not recorded anywhere). 'State': "
            "enabled, paused, or retired: pruned by the node's boot sync (paused with no next "
            "run) because its entry left the repo-spec, on purpose and never a warning. "
            "'Last success' is the newest successful run; 'never' is red (left empty for a "
            "retired charter, and for one the exporter cannot observe). 'Next run in' is "
            "computed from cron and time zone (schedules.next_run_at is a stale cache). "
            "'Failed in window' counts errors and failed grant checks in the exporter's "
            "trailing window. 'Observable': NO for the ledger charter while its trace "
            "(ingestion_cursors) cannot be read. 'Repo-spec' (with --repo-spec only): DRIFT "
            "when the row's cron or time zone differs from the declaration (the boot sync "
            "did not run).",
            "none",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            _query(
                f"{by} ({fleet.charter('governance_charter_configured')})", "A", table_format=True
            )
        )
        .with_target(_query(_charter_state(fleet), "B", table_format=True))
        .with_target(
            _query(
                f"{by} ({fleet.charter('governance_schedule_config_valid')})",
                "C",
                table_format=True,
            )
        )
        .with_target(
            _query(
                f"{by} ({last_success}) * 1000 unless on (account, charter) ({retired} == 1)",
                "D",
                table_format=True,
            )
        )
        .with_target(
            _query(
                f"min by (account, charter) "
                f"({fleet.charter('governance_schedule_next_run_timestamp_seconds')}) - time()",
                "E",
                table_format=True,
            )
        )
        .with_target(
            _query(
                f"{by} ({fleet.charter('governance_schedule_interval_seconds')})",
                "F",
                table_format=True,
            )
        )
        .with_target(
            _query(
                f"sum by (account, charter) ({fleet.charter('governance_schedule_failed_runs')})",
                "G",
                table_format=True,
            )
        )
        .with_target(
            _query(
                f"{by} ({fleet.charter('governance_schedule_observable')})", "H", table_format=True
            )
        )
        .with_target(
            _query(f"{by} ({fleet.charter('governance_schedule_drift')})", "I", table_format=True)
        )
        .with_transformation(MERGE)
        .with_transformation(
            _organize(["Time", "account"], _CHARTER_COLUMNS, ["charter", *(_CHARTER_COLUMNS)])
        )
        .override_by_name("charter", [_prop("displayName", "Charter")])
        .override_by_name(
            "Configured",
            [
                _prop("mappings", [_map_json({"1": ("yes", GREEN), "0": ("MISSING", RED)})]),
                _background(),
            ],
        )
        .override_by_name("State", [_prop("mappings", [_map_json(CHARTER_STATES)]), _background()])
        .override_by_name(
            "Observable",
            [
                _prop("mappings", [_map_json({"1": ("yes", GREEN), "0": ("NO", ORANGE)})]),
                _colour_text(),
            ],
        )
        .override_by_name(
            "Repo-spec",
            [
                _prop("mappings", [_map_json({"0": ("matches", GREEN), "1": ("DRIFT", ORANGE)})]),
                _colour_text(),
            ],
        )
        .override_by_name(
            "Config",
            [
                _prop("mappings", [_map_json({"1": ("valid", GREEN), "0": ("INVALID", RED)})]),
                _background(),
            ],
        )
        .override_by_name(
            "Last success",
            [
                _prop("unit", "dateTimeFromNow"),
                _prop("mappings", [_map_json({"0": ("never", RED)})]),
            ],
        )
        .override_by_name("Next run in", [_prop("unit", "dtdurations")])
        .override_by_name("Every", [_prop("unit", "dtdurations")])
        .override_by_name(
            "Failed in window",
            [
                _prop("unit", "short"),
                _prop("thresholds", _steps_json((None, GREEN), (1, RED))),
                _colour_text(),
            ],
        )
    )


def _status_matrix(
    title: str, description: str, expr: str, *, rows: str, rows_name: str, pos: dm.GridPos
) -> table.Panel:
    """A windowed count as a matrix of ``rows`` by status; error, cancelled and
    unknown in red."""
    return (
        _table(title, description, "short", pos)
        .with_target(_query(expr, "A", table_format=True))
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="groupingToMatrix",
                options={"columnField": "status", "rowField": rows, "valueField": "Value"},
            )
        )
        .override_by_name(f"{rows}\\status", [_prop("displayName", rows_name)])
        .override_by_regexp(
            "error|cancelled|unknown",
            [_prop("thresholds", _steps_json((None, NEUTRAL), (1, RED))), _colour_text()],
        )
    )


def runs_by_status_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    return _status_matrix(
        "Runs in window by status",
        "Runs per charter and status in the exporter's trailing window "
        "(governance_schedule_runs; already a windowed count, so no rate()). A charter "
        "with only skipped or error runs is not working even if it fires on time.",
        f"sum by (charter, status) ({fleet.charter('governance_schedule_runs')})",
        rows="charter",
        rows_name="Charter",
        pos=grid(x=x, y=y, w=w, h=h),
    )


def charter_row(*, y: int, fleet: Fleet) -> list[Panel]:
    h = 7
    return [
        charters_table(x=0, y=y, w=16, h=h, fleet=fleet),
        runs_by_status_table(x=16, y=y, w=8, h=h, fleet=fleet),
    ]


# --- 3. failed runs and alerts ----------------------------------------------------


def failed_runs_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    by = "by (account, charter, reason)"
    return (
        _table(
            "Failed runs by charter and reason",
            "Failed runs (errors and failed grant checks) per charter and reason. 'In window "
            "now' is the exporter's trailing-window count; 'Peak in range' is its highest "
            "value during the selected time range. Empty does NOT prove health: runs of a "
            "charter without a schedule row are never recorded (the 2026-02-15 case), so "
            "read it with the runway and 'Last success'.",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            _query(
                f"sum {by} ({fleet.charter('governance_schedule_failed_runs')}) > 0",
                "A",
                table_format=True,
            )
        )
        .with_target(
            _query(
                f"max {by} (max_over_time({fleet.charter('governance_schedule_failed_runs')}"
                "[$__range])) > 0",
                "B",
                table_format=True,
            )
        )
        .with_transformation(MERGE)
        .with_transformation(
            _organize(
                ["Time", "account"],
                {
                    "charter": "Charter",
                    "reason": "Reason",
                    "Value #A": "In window now",
                    "Value #B": "Peak in range",
                },
                ["charter", "reason", "Value #A", "Value #B"],
            )
        )
        .override_by_name(
            "In window now",
            [_prop("thresholds", _steps_json((None, NEUTRAL), (1, RED))), _colour_text()],
        )
    )


_ALERT_LABELS = {
    "alertname": "Alert",
    "alertstate": "State",
    "severity": "Severity",
    "condition": "Condition",
    "account": "Account",
    "charter": "Charter",
    "reason": "Reason",
}
_ALERT_ORDER = ["alertname", "severity", "alertstate", "condition", "account", "charter", "reason"]


def alerts_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    return (
        _table(
            "Governance alerts",
            "Governance alerts Prometheus is evaluating right now: pending (condition true, "
            "waiting for its 'for:' duration) and firing. What to do for each is in the "
            "runbook linked from the alert.",
            "none",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            _query(
                f"max by ({', '.join(_ALERT_LABELS)}) "
                f"""({fleet.alerts('charter=~"$charter|"')})""",
                "A",
                table_format=True,
            )
        )
        .with_transformation(_organize(["Time", "Value"], _ALERT_LABELS, _ALERT_ORDER))
        .override_by_name(
            "State",
            [
                _prop(
                    "mappings",
                    [_map_json({"firing": ("firing", RED), "pending": ("pending", ORANGE)})],
                ),
                _background(),
            ],
        )
        .override_by_name(
            "Severity",
            [
                _prop(
                    "mappings",
                    [_map_json({"critical": ("critical", RED), "warning": ("warning", YELLOW)})],
                ),
                _colour_text(),
            ],
        )
    )


def failure_row(*, y: int, fleet: Fleet) -> list[Panel]:
    h = 7
    return [
        failed_runs_table(x=0, y=y, w=12, h=h, fleet=fleet),
        alerts_table(x=12, y=y, w=12, h=h, fleet=fleet),
    ]


# --- 4. work without a schedule -------------------------------------------------------
#
# Today's nodes do most of their work without a schedule: PR reviews and other webhook
# runs of the system account's owner (graph_runs.run_kind, 2026-03 on). None of it has a
# charter; the exporter counts it by run kind.

UNSCHEDULED_WHERE = (
    "runs of the system account's owner without a schedule (graph_runs.schedule_id NULL: "
    "PR reviews are system_webhook)"
)


def unscheduled_visible_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    return (
        _stat(
            "Runs without a schedule visible",
            f"Whether the exporter can read the {UNSCHEDULED_WHERE} "
            "(governance_unscheduled_runs_visible). HIDDEN: row-level security hides them "
            "from the exporter's role (graph_runs' policy predates migration 0024), so "
            "every panel of this row undercounts and their failures page nobody "
            "(GovernanceUnscheduledRunsHidden). 'not on this schema': a 2026-02 node, whose "
            "runs all have a schedule.",
            "none",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            _query(
                f"min by (account) ({fleet.kind('governance_unscheduled_runs_visible')})",
                "A",
                "{{account}}",
            )
        )
        .thresholds(_steps((None, RED), (1.0, GREEN)))
        .mappings(
            [
                _value_map({"1": ("visible", GREEN), "0": ("HIDDEN by row-level security", RED)}),
                _no_data("not on this schema"),
            ]
        )
    )


def unscheduled_runs_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    return _status_matrix(
        "Runs without a schedule by kind and status",
        f"The {UNSCHEDULED_WHERE} started inside the exporter's trailing window, per run "
        "kind and status (governance_unscheduled_runs; a windowed count, so no rate()). "
        "error, cancelled or unknown in red.",
        f"sum by (run_kind, status) ({fleet.kind('governance_unscheduled_runs')})",
        rows="run_kind",
        rows_name="Run kind",
        pos=grid(x=x, y=y, w=w, h=h),
    )


def unscheduled_failures_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    by = "by (account, run_kind, reason)"
    failed = fleet.kind("governance_unscheduled_failed_runs")
    return (
        _table(
            "Runs without a schedule: failures by reason",
            "Failed runs without a schedule per run kind and reason "
            "(governance_unscheduled_failed_runs): 'In window now' is the exporter's "
            "trailing-window count, 'Peak in range' its highest value in the selected time "
            "range. provider_unavailable: the operator's LLM provider account is unfunded or "
            "down; insufficient_credits: the node's own balance refused the run.",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(_query(f"sum {by} ({failed}) > 0", "A", table_format=True))
        .with_target(
            _query(f"max {by} (max_over_time({failed}[$__range])) > 0", "B", table_format=True)
        )
        .with_transformation(MERGE)
        .with_transformation(
            _organize(
                ["Time", "account"],
                {
                    "run_kind": "Run kind",
                    "reason": "Reason",
                    "Value #A": "In window now",
                    "Value #B": "Peak in range",
                },
                ["run_kind", "reason", "Value #A", "Value #B"],
            )
        )
        .override_by_name(
            "In window now",
            [_prop("thresholds", _steps_json((None, NEUTRAL), (1, RED))), _colour_text()],
        )
    )


def unscheduled_last_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    by = "max by (account, run_kind)"
    last_success = fleet.kind("governance_unscheduled_last_success_timestamp_seconds")
    last_failure = fleet.kind("governance_unscheduled_last_failure_timestamp_seconds")
    return (
        _table(
            "Runs without a schedule: last success",
            "Per run kind, the newest successful and the newest failed run without a "
            "schedule of the last 30 days (governance_unscheduled_last_success_timestamp_"
            "seconds and _last_failure_). 'none in 30 days' as last success is red: that "
            "kind of work has not succeeded for a month.",
            "none",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            _query(
                f"{by} ({last_success}) * 1000",
                "A",
                table_format=True,
            )
        )
        .with_target(
            _query(
                f"{by} ({last_failure}) * 1000",
                "B",
                table_format=True,
            )
        )
        .with_transformation(MERGE)
        .with_transformation(
            _organize(
                ["Time", "account"],
                {"run_kind": "Run kind", "Value #A": "Last success", "Value #B": "Last failure"},
                ["run_kind", "Value #A", "Value #B"],
            )
        )
        .override_by_name(
            "Last success",
            [
                _prop("unit", "dateTimeFromNow"),
                _prop("mappings", [_map_json({"0": ("none in 30 days", RED)})]),
            ],
        )
        .override_by_name(
            "Last failure",
            [
                _prop("unit", "dateTimeFromNow"),
                _prop("mappings", [_map_json({"0": ("none in 30 days", GREEN)})]),
            ],
        )
    )


def unscheduled_row(*, y: int, fleet: Fleet) -> list[Panel]:
    h = 7
    return [
        unscheduled_visible_stat(x=0, y=y, w=3, h=h, fleet=fleet),
        unscheduled_runs_table(x=3, y=y, w=9, h=h, fleet=fleet),
        unscheduled_failures_table(x=12, y=y, w=7, h=h, fleet=fleet),
        unscheduled_last_table(x=19, y=y, w=5, h=h, fleet=fleet),
    ]


# --- 4b. which work eats the credits, and what is refused (the row under credit health)


def provider_unavailable_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    failed = fleet.sel("governance_runs_failed_total", ACCOUNT, 'reason="provider_unavailable"')
    return (
        _stat(
            "Runs failing with provider_unavailable now",
            "Runs of the account (scheduled and PR reviews alike) that finished failing with "
            f"provider_unavailable in the last {PROVIDER_WINDOW}: increase() of "
            "governance_runs_failed_total, the expression of the critical alert "
            "GovernanceProviderUnavailable. Red above 0: the operator's LLM provider account "
            "is unfunded (HTTP 402) or the provider is down, a credits outage the node's "
            "balance never shows.",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            _query(
                f"sum by (account) (increase({failed}[{PROVIDER_WINDOW}]))",
                "A",
                f"last {PROVIDER_WINDOW}",
            )
        )
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .thresholds(_steps((None, GREEN), (PROVIDER_FAILING_STEP, RED)))
        .mappings([_value_map({"0": ("none", GREEN)}), _no_data("no data")])
        .decimals(0)
    )


def rejected_runs_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    return (
        _stat(
            "Runs rejected for credits",
            "Runs of the account (scheduled or not) rejected with insufficient_credits in the "
            "exporter's trailing window (governance_credit_rejected_runs). Red above 0: the "
            "node's preflight check refused work because the balance was below one run's "
            "cost. With nothing spent as well, every run is being refused, whatever the "
            "balance and the runway say (GovernanceRunsRejectedForCredits).",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            _query(
                f"max by (account) ({fleet.acct('governance_credit_rejected_runs')})",
                "A",
                "in window",
            )
        )
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .thresholds(_steps((None, GREEN), (1.0, RED)))
        .mappings([_value_map({"0": ("none", GREEN)}), _no_data("no data")])
        .decimals(0)
    )


def _spend_bars(title: str, description: str, pos: dm.GridPos) -> bargauge.Panel:
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .unit("short")
        .decimals(0)
        .min(0)
        .grid_pos(pos)
        .reduce_options(_reduce_last())
        .orientation(cm.VizOrientation.HORIZONTAL)
        .display_mode(cm.BarGaugeDisplayMode.BASIC)
        .value_mode(cm.BarGaugeValueMode.TEXT)
        .show_unfilled(True)
        .thresholds(_steps((None, BLUE)))
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color(BLUE))
    )


def spend_by_run_kind_bars(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> bargauge.Panel:
    return _spend_bars(
        "Spent in window by run kind",
        "Credits charged in the exporter's trailing window by the kind of run they paid for "
        f"(charge_receipts.run_id; {CREDITS_PER_USD:,} credits = 1 USD): system_scheduled "
        "(charters), system_webhook (PR reviews), user_immediate, other, unknown; "
        "'unattributed' for charges whose run_id matches no run of the account "
        "(governance_credit_spent_by_run_kind_credits).",
        grid(x=x, y=y, w=w, h=h),
    ).with_target(
        _query(
            "max by (account, run_kind) "
            f"({fleet.acct('governance_credit_spent_by_run_kind_credits')}) > 0",
            "A",
            "{{run_kind}}",
        )
    )


def spend_by_charter_bars(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> bargauge.Panel:
    return _spend_bars(
        "Spent in window by charter",
        "Credits charged in the exporter's trailing window for the runs of each charter's "
        "schedules (governance_credit_spent_by_charter_credits, through "
        "charge_receipts.run_id). Charters that spent nothing are left out; work without "
        "a schedule is in 'by run kind'.",
        grid(x=x, y=y, w=w, h=h),
    ).with_target(
        _query(
            "max by (account, charter) "
            f"({fleet.charter('governance_credit_spent_by_charter_credits')}) > 0",
            "A",
            "{{charter}}",
        )
    )


def spend_row(*, y: int, fleet: Fleet) -> list[Panel]:
    h = 6
    return [
        provider_unavailable_stat(x=0, y=y, w=5, h=h, fleet=fleet),
        rejected_runs_stat(x=5, y=y, w=5, h=h, fleet=fleet),
        spend_by_run_kind_bars(x=10, y=y, w=7, h=h, fleet=fleet),
        spend_by_charter_bars(x=17, y=y, w=7, h=h, fleet=fleet),
    ]


# --- 5. gateway memory: heartbeats and the budget gate ---------------------------------
#
# Optional (--memory-dir): the gateway's memory files describe the node's gateway, so
# these metrics have no account label; the budget metrics no charter label either. With
# several exporters in one Prometheus the stats show the most restrictive one (min/max).

FILE_STATUS_COLOURS = {
    "ok": GREEN,
    "missing": RED,
    "incomplete": ORANGE,  # usually caught mid-write; red if it stays
    "malformed": RED,
    "unreadable": RED,
}
BUDGET_STATUS_COLOURS = {"ok": GREEN, "warn": YELLOW, "critical": RED}
BURN_RATE_TREND_COLOURS = {"down": GREEN, "flat": BLUE, "up": ORANGE}
DECISION_COLOURS = {"action": GREEN, "no-op": BLUE}
NO_OP_REASON_COLOURS = {"veto": ORANGE, "wip_full": YELLOW, "blocked": ORANGE, "no_delta": NEUTRAL}


def _state_index(fleet: Fleet, metric: str, label: str, states: tuple[str, ...]) -> str:
    """A one-hot state set as the index of its current state (0 for the first).

    ``max(m{label="states[1]"}) + 2 * max(m{label="states[2]"}) + ...``: a stat shows
    one number per value, so the state becomes its position in the exporter's own tuple
    and a value mapping (``_state_map``) turns it back into the state's name.
    """
    terms = []
    for i, state in enumerate(states):
        if i:
            term = f"max({fleet.sel(metric, f'{label}={json.dumps(str(state))}')})"
            terms.append(term if i == 1 else f"{i} * {term}")
    return " + ".join(terms)


def _state_map(
    states: tuple[str, ...], colours: Mapping[str, str]
) -> dict[str, tuple[str, str | None]]:
    """Index (as ``_state_index`` computes it) -> (state name, colour)."""
    return {str(i): (str(state), colours[str(state)]) for i, state in enumerate(states)}


def _state_props(
    states: tuple[str, ...], colours: Mapping[str, str], missing: str
) -> list[dm.DynamicConfigValue]:
    mapping = _map_json(_state_map(states, colours))
    return [_prop("mappings", [mapping, _no_data_json(missing)])]


def budget_gate_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    max_age_h = BUDGET_HEADER_MAX_AGE_SECONDS // 3600
    return (
        _stat(
            "Budget gate",
            "The budget header memory/_budget_header.md that GOVERN writes and the gateway "
            "reads before every charter run (needs the exporter's --memory-dir). 'Runs': "
            "allow_runs, CLOSED in red means the gateway skips governance runs "
            "(GovernanceBudgetGateClosed); 'unknown' when the header cannot be read. "
            "'Budget' and 'Burn trend': budget_status and burn_rate_trend. 'Updated': age of "
            f"updated_at, red above {max_age_h} h, where the gateway treats the gate as "
            "unavailable (GovernanceBudgetGateStale). 'Header file': ok, missing, incomplete, "
            "malformed or unreadable. 'Memory dir': whether the exporter can list the "
            "directory at all.",
            "none",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(_query(f"min({fleet.sel('governance_budget_allow_runs')})", "A", "Runs"))
        .with_target(
            _query(
                _state_index(fleet, "governance_budget_status", "status", BUDGET_STATUSES),
                "B",
                "Budget",
            )
        )
        .with_target(
            _query(
                _state_index(fleet, "governance_budget_burn_rate_trend", "trend", BURN_RATE_TRENDS),
                "C",
                "Burn trend",
            )
        )
        .with_target(
            _query(
                f"time() - max({fleet.sel('governance_budget_updated_timestamp_seconds')})",
                "D",
                "Updated",
            )
        )
        .with_target(
            _query(
                _state_index(
                    fleet, "governance_budget_header_file_status", "status", FILE_STATUSES
                ),
                "E",
                "Header file",
            )
        )
        .with_target(
            _query(f"min({fleet.sel('governance_memory_directory_readable')})", "F", "Memory dir")
        )
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .thresholds(_steps((None, NEUTRAL)))
        .mappings([_no_data("no data")])
        .override_by_query(
            "A",
            [
                _prop(
                    "mappings",
                    [
                        _map_json({"1": ("OPEN", GREEN), "0": ("CLOSED", RED)}),
                        _no_data_json("unknown", ORANGE),
                    ],
                )
            ],
        )
        .override_by_query("B", _state_props(BUDGET_STATUSES, BUDGET_STATUS_COLOURS, "not set"))
        .override_by_query("C", _state_props(BURN_RATE_TRENDS, BURN_RATE_TREND_COLOURS, "not set"))
        .override_by_query(
            "D",
            [
                _prop("unit", "dtdurations"),
                _prop("thresholds", _steps_json((None, GREEN), (BUDGET_STALE_STEP, RED))),
            ],
        )
        .override_by_query("E", _state_props(FILE_STATUSES, FILE_STATUS_COLOURS, "no data"))
        .override_by_query(
            "F",
            [
                _prop(
                    "mappings",
                    [
                        _map_json({"1": ("readable", GREEN), "0": ("UNREADABLE", RED)}),
                        _no_data_json("not configured"),
                    ],
                )
            ],
        )
    )


def budget_caps_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    return (
        _stat(
            "Budget gate caps",
            "Per-run limits the budget header sets for the gateway: max_tokens_per_charter_run, "
            "max_tool_calls_per_charter_run and max_brain_spawns_per_hour ('not set' when the "
            "header lacks them or cannot be read).",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            _query(
                f"min({fleet.sel('governance_budget_max_tokens_per_charter_run')})",
                "A",
                "tokens/run",
            )
        )
        .with_target(
            _query(
                f"min({fleet.sel('governance_budget_max_tool_calls_per_charter_run')})",
                "B",
                "tool calls/run",
            )
        )
        .with_target(
            _query(
                f"min({fleet.sel('governance_budget_max_brain_spawns_per_hour')})",
                "C",
                "brain spawns/h",
            )
        )
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(cm.BigValueColorMode.NONE)
        .thresholds(_steps((None, NEUTRAL)))
        .mappings([_no_data("not set")])
        .decimals(0)
    )


def heartbeats_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    by = "max by (charter)"
    modified = fleet.sel("governance_heartbeat_file_modified_timestamp_seconds", CHARTER)
    return (
        _table(
            "Charter heartbeats",
            "The heartbeat each charter's gateway run leaves in memory/{CHARTER}/heartbeat.md. "
            "'Last run' is its run_at; 'Decision' action or no-op, with the no-op reason "
            "(veto, wip_full, blocked, no_delta). 'File': missing (no folder or file: the "
            "charter never ran on this gateway), incomplete (run_at or decision absent, "
            "e.g. half-written), malformed (a value of the wrong kind) or unreadable; the "
            "other columns are then empty and 'File written' says when the gateway last "
            "touched it. A heartbeat older than two of the charter's intervals raises "
            "GovernanceHeartbeatStale (see 'Governance alerts').",
            "none",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            _query(
                f"max by (charter, status) "
                f"({fleet.sel('governance_heartbeat_file_status', CHARTER)}) == 1",
                "A",
                table_format=True,
            )
        )
        .with_target(
            _query(
                f"{by} ({fleet.sel('governance_heartbeat_run_timestamp_seconds', CHARTER)}) * 1000",
                "B",
                table_format=True,
            )
        )
        .with_target(
            _query(
                f"max by (charter, decision) "
                f"({fleet.sel('governance_heartbeat_decision', CHARTER)}) == 1",
                "C",
                table_format=True,
            )
        )
        .with_target(
            _query(
                f"max by (charter, reason) "
                f"({fleet.sel('governance_heartbeat_no_op_reason', CHARTER)}) == 1",
                "D",
                table_format=True,
            )
        )
        .with_target(
            _query(
                f"{by} ({modified}) * 1000",
                "E",
                table_format=True,
            )
        )
        .with_transformation(MERGE)
        .with_transformation(
            _organize(
                ["Time", "Value #A", "Value #C", "Value #D"],
                {
                    "charter": "Charter",
                    "Value #B": "Last run",
                    "decision": "Decision",
                    "reason": "No-op reason",
                    "status": "File",
                    "Value #E": "File written",
                },
                ["charter", "Value #B", "decision", "reason", "status", "Value #E"],
            )
        )
        .override_by_name("Last run", [_prop("unit", "dateTimeFromNow")])
        .override_by_name("File written", [_prop("unit", "dateTimeFromNow")])
        .override_by_name(
            "Decision",
            [_prop("mappings", [_map_json(_names(DECISIONS, DECISION_COLOURS))]), _colour_text()],
        )
        .override_by_name(
            "No-op reason",
            [
                _prop("mappings", [_map_json(_names(NO_OP_REASONS, NO_OP_REASON_COLOURS))]),
                _colour_text(),
            ],
        )
        .override_by_name(
            "File",
            [
                _prop("mappings", [_map_json(_names(FILE_STATUSES, FILE_STATUS_COLOURS))]),
                _background(),
            ],
        )
    )


def memory_row(*, y: int, fleet: Fleet) -> list[Panel]:
    h = 7
    return [
        budget_gate_stat(x=0, y=y, w=10, h=h, fleet=fleet),
        budget_caps_stat(x=10, y=y, w=4, h=h, fleet=fleet),
        heartbeats_table(x=14, y=y, w=10, h=h, fleet=fleet),
    ]


# --- 6. trends ----------------------------------------------------------------------


def balance_timeseries(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> timeseries.Panel:
    return (
        _timeseries(
            "Balance over time",
            "Balance of the governance account in credits. The dashed line is the red "
            "threshold at 1 credit: balances are whole credits, so below it means 0 or "
            "less, where every governance run is rejected with insufficient_credits.",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(_query(fleet.balance, "A", "{{account}}", instant=False))
        .thresholds(_steps((None, RED), (1.0, TRANSPARENT)))
        .thresholds_style(cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED))
        .axis_soft_min(0)
    )


def runway_timeseries(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> timeseries.Panel:
    return (
        _timeseries(
            "Runway over time",
            f"Runway with the alert thresholds drawn: red below {RED_RUNWAY_SECONDS // 3600} h, "
            f"yellow to {YELLOW_RUNWAY_SECONDS // 3600} h, green above. Capped at "
            f"{RUNWAY_PLOT_CAP_SECONDS // 86400} days so that an unbounded runway (nothing "
            "spent, reported as +Inf) stays on the chart.",
            "s",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            _query(
                f"min by (account) (clamp_max({fleet.acct('governance_credit_runway_seconds')}, "
                f"{RUNWAY_PLOT_CAP_SECONDS}))",
                "A",
                "{{account}}",
                instant=False,
            )
        )
        .thresholds(runway_steps())
        .thresholds_style(
            cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED_AND_AREA)
        )
        .axis_soft_min(0)
        .axis_soft_max(2 * YELLOW_RUNWAY_SECONDS)
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color(BLUE))
    )


def failures_timeseries(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> timeseries.Panel:
    return (
        _timeseries(
            "Failed runs over time by reason",
            "Failed runs in the exporter's trailing window, summed over the selected "
            "charters, by reason (a windowed count: a step up is a new failure, a step "
            "down is an old one leaving the window).",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            _query(
                f"sum by (reason) ({fleet.charter('governance_schedule_failed_runs')})",
                "A",
                "{{reason}}",
                instant=False,
            )
        )
        .thresholds(_steps((None, TRANSPARENT)))
        .axis_soft_min(0)
        .decimals(0)
    )


def trend_row(*, y: int, fleet: Fleet) -> list[Panel]:
    h = 8
    return [
        balance_timeseries(x=0, y=y, w=8, h=h, fleet=fleet),
        runway_timeseries(x=8, y=y, w=8, h=h, fleet=fleet),
        failures_timeseries(x=16, y=y, w=8, h=h, fleet=fleet),
    ]


# --- 7. exporter health ---------------------------------------------------------------


def exporter_up_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    return (
        _stat(
            "Exporter up",
            "'scrape': Prometheus reaches the exporter (up, for targets that exported "
            "governance_exporter_build_info in the last day, so a dead exporter shows as "
            "DOWN rather than vanishing). 'collect': the exporter's last collection from "
            "the database succeeded (governance_exporter_up).",
            "none",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            _query(
                fleet.exporter_up(),
                "A",
                f"scrape {fleet.legend}",
            )
        )
        .with_target(
            _query(
                f"min by ({fleet.node_labels}) ({fleet.sel('governance_exporter_up')})",
                "B",
                f"collect {fleet.legend}",
            )
        )
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .thresholds(_steps((None, RED), (1.0, GREEN)))
        .mappings([_value_map({"1": ("UP", GREEN), "0": ("DOWN", RED)}), _no_data("no data")])
    )


def last_collection_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    return (
        _stat(
            "Since last successful collection",
            "Time since the exporter last read the database successfully "
            "(time() - governance_exporter_last_success_timestamp_seconds). Yellow after "
            f"{COLLECTION_AGE_YELLOW_SECONDS / 60:.0f} min, red after "
            f"{COLLECTION_AGE_RED_SECONDS / 60:.0f} min: the dashboard's numbers are then stale.",
            "s",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            _query(
                f"time() - max by ({fleet.node_labels}) "
                f"(last_over_time({fleet.sel('governance_exporter_last_success_timestamp_seconds')}[1d]))",
                "A",
                fleet.legend,
            )
        )
        .thresholds(
            _steps(
                (None, GREEN),
                (COLLECTION_AGE_YELLOW_SECONDS, YELLOW),
                (COLLECTION_AGE_RED_SECONDS, RED),
            )
        )
        .decimals(0)
    )


def build_info_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    return (
        _table(
            "Exporter build",
            "Version of each exporter and the Cogni schema it found: 2026-02 (schedule_runs) "
            "or 2026-03 (graph_runs).",
            "none",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            _query(
                f"max by ({fleet.node}, instance, version, schema) ({fleet.build_info})",
                "A",
                table_format=True,
            )
        )
        .with_transformation(
            _organize(
                ["Time", "Value"],
                {
                    fleet.node: _column(fleet.node),
                    "instance": "Instance",
                    "version": "Version",
                    "schema": "Schema",
                },
                [fleet.node, "instance", "version", "schema"],
            )
        )
    )


def collection_duration_timeseries(
    *, x: int, y: int, w: int, h: int, fleet: Fleet
) -> timeseries.Panel:
    duration = fleet.sel("governance_exporter_collect_duration_seconds")
    return (
        _timeseries(
            "Collection duration",
            "Seconds one collection (all database queries) took, per exporter.",
            "s",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            _query(
                f"max by ({fleet.node_labels}) ({duration})",
                "A",
                fleet.legend,
                instant=False,
            )
        )
        .thresholds(_steps((None, TRANSPARENT)))
        .axis_soft_min(0)
    )


def collection_errors_timeseries(
    *, x: int, y: int, w: int, h: int, fleet: Fleet
) -> timeseries.Panel:
    return (
        _timeseries(
            "Collection errors",
            "Failed collections per interval by reason "
            "(increase of governance_exporter_collection_errors_total).",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            _query(
                "sum by (reason) (increase("
                f"{fleet.sel('governance_exporter_collection_errors_total')}[$__rate_interval]))",
                "A",
                "{{reason}}",
                instant=False,
            )
        )
        .thresholds(_steps((None, TRANSPARENT)))
        .draw_style(cm.GraphDrawStyle.BARS)
        .fill_opacity(60)
        .axis_soft_min(0)
    )


def exporter_row(*, y: int, fleet: Fleet) -> list[Panel]:
    h = 5
    return [
        exporter_up_stat(x=0, y=y, w=4, h=h, fleet=fleet),
        last_collection_stat(x=4, y=y, w=4, h=h, fleet=fleet),
        build_info_table(x=8, y=y, w=6, h=h, fleet=fleet),
        collection_duration_timeseries(x=14, y=y, w=5, h=h, fleet=fleet),
        collection_errors_timeseries(x=19, y=y, w=5, h=h, fleet=fleet),
    ]


# --- the dashboard --------------------------------------------------------------------


def _all_of(variable: db.QueryVariable) -> db.QueryVariable:
    """Multi-value with All, whose value ``.*`` also matches a label a series lacks."""
    return (
        variable.multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dm.VariableOption(text="All", value="$__all"))
    )


def _query_variable(name: str, label: str, description: str, query: str) -> db.QueryVariable:
    return (
        db.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DS)
        .query(query)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )


def _variables(fleet: Fleet, datasource_uid: str) -> list[Any]:
    # Each narrows the next: cluster -> node -> account -> charter (under the operator's
    # label names). build_info is on every exporter whatever its database says, so
    # every node is listed.
    cluster, node = fleet.labels
    cluster_query = f"label_values(governance_exporter_build_info, {cluster})"
    node_query = f'label_values(governance_exporter_build_info{{{cluster}=~"${cluster}"}}, {node})'
    account_query = f"label_values({fleet.sel('governance_credit_balance_credits')}, account)"
    charter_query = f"label_values({fleet.sel('governance_charter_configured', ACCOUNT)}, charter)"
    return [
        db.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(dm.VariableOption(text="Prometheus", value=datasource_uid)),
        _all_of(
            _query_variable(
                cluster,
                _column(cluster),
                f"Label '{cluster}' the operator adds to each node's series to group nodes "
                "(a cluster, an environment); All also shows series without it (a single "
                "node).",
                cluster_query,
            )
        ),
        _all_of(
            _query_variable(
                node,
                _column(node),
                f"Label '{node}' the operator adds to each node's series (one Cogni node, "
                "one exporter); All also shows series without it.",
                node_query,
            )
        ),
        _query_variable(
            "account",
            "Account",
            "Billing account slug (label 'account' of the exporter).",
            account_query,
        ),
        _all_of(
            _query_variable(
                "charter",
                "Charter",
                "Governance charters of the selected account.",
                charter_query,
            )
        ),
    ]


class Row(Protocol):
    """A row of the dashboard: its panels, laid out from grid row ``y`` down."""

    def __call__(self, *, y: int, fleet: Fleet) -> list[Panel]: ...


ROWS: tuple[tuple[str, Row], ...] = (
    ("Fleet", fleet_row),
    ("Credit health", credit_row),
    ("Which work eats the credits, and what is refused", spend_row),
    ("Charters", charter_row),
    ("Failed runs and alerts", failure_row),
    ("Work without a schedule", unscheduled_row),
    ("Gateway memory: heartbeats and budget gate", memory_row),
    ("Trends", trend_row),
    ("Exporter health", exporter_row),
)


def _bottom(panels: list[Panel]) -> int:
    """The first grid row below ``panels``."""
    bottoms = []
    for panel in panels:
        pos = panel.build().grid_pos
        if pos is None:
            raise ValueError("every panel is placed by grid()")
        bottoms.append(pos.y + pos.h)
    return max(bottoms)


def build(variant: Variant | None = None) -> dict[str, Any]:
    """The dashboard as a JSON-ready dict (the bundled stack's unless told otherwise)."""
    variant = variant or DEFAULT
    fleet = variant.fleet
    dash = (
        db.Dashboard(DASHBOARD_TITLE)
        .uid(variant.uid)
        .description(
            "Is governance healthy? Credit runway, which work spends the credits and "
            "which is refused, charter schedules, failed runs, the work without a schedule "
            "(PR reviews), the gateway's heartbeats and budget gate, and the exporter "
            "itself, from governance-exporter metrics."
        )
        .tags(["governance", "cogni"])
        .readonly()
        .timezone("utc")
        .time("now-24h", "now")
        .refresh("1m")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .timepicker(db.TimePicker().refresh_intervals(["30s", "1m", "5m", "15m", "1h"]))
        .annotation(
            db.AnnotationQuery()
            .name("Governance alerts firing")
            .datasource(DS)
            .expr(fleet.alerts('alertstate="firing"'))
            .enable(True)
            .hide(False)
            .icon_color("red")
        )
    )
    for variable in _variables(fleet, variant.datasource_uid):
        dash = dash.with_variable(variable)
    panel_id, y = 0, 0
    for title, make in ROWS:
        panel_id += 1
        dash = dash.with_row(
            db.Row(title).id(panel_id).grid_pos(grid(x=0, y=y, w=GRID_COLUMNS, h=1))
        )
        row_panels = make(y=y + 1, fleet=fleet)
        for panel in row_panels:
            panel_id += 1
            dash = dash.with_panel(panel.id(panel_id))
        y = _bottom(row_panels)
    data: dict[str, Any] = json.loads(json.dumps(dash.build(), cls=JSONEncoder))
    return data


def render(variant: Variant | None = None) -> str:
    return json.dumps(build(variant), indent=2, ensure_ascii=False) + "\n"


# --- helpers for tests ------------------------------------------------------------------


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that is not a row, including panels nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def targets(dashboard: Mapping[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every query of every panel."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace ``$name`` / ``${name}`` / ``${name:fmt}`` by ``values[name]``, as Grafana would.

    Unknown variables raise KeyError, so a typo in a variable name is caught.
    """
    return _VARIABLE.sub(lambda m: values[m.group(1) or m.group(2)], expr)


def runway_thresholds(dashboard: Mapping[str, Any]) -> tuple[float, float]:
    """(red, yellow) runway thresholds in seconds, read back from the runway stat.

    The panel's steps are [base red, yellow from RED, green from just above YELLOW]; the
    green step is one float above YELLOW (Grafana steps are inclusive, the rules' green is
    strictly above), so it is stepped back down here.
    """
    (panel,) = (p for p in panels(dashboard) if p["title"] == "Credit health: runway")
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    colours = [s["color"] for s in steps]
    if colours != [RED, YELLOW, GREEN]:
        raise ValueError(f"unexpected runway threshold colours {colours}")
    return float(steps[1]["value"]), math.nextafter(float(steps[2]["value"]), -math.inf)


def _check(variant: Variant) -> bool:
    """Whether the file on disk is what this module generates; prints a diff if not."""
    generated, output = render(variant), variant.output
    committed = output.read_text(encoding="utf-8") if output.exists() else ""
    if committed == generated:
        print(f"{output}: up to date")
        return True
    diff = difflib.unified_diff(
        committed.splitlines(keepends=True),
        generated.splitlines(keepends=True),
        fromfile=f"{output} (committed)",
        tofile="generated",
        n=1,
    )
    sys.stdout.writelines(list(diff)[:60])
    print(f"\n{output} is stale: run `python grafana/dashboard.py`", file=sys.stderr)
    return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Without --output: every committed file (the bundled stack's cluster/node "
        f"dashboard and Cogni's env/node_id one, {COGNI.output.relative_to(ROOT)}).",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if the committed JSON differs from the generated one (writes nothing)",
    )
    parser.add_argument("--output", type=Path, help="write (or --check) this one file")
    parser.add_argument(
        "--cluster-label",
        default=DEFAULT.fleet.cluster,
        help="label that groups nodes (Cogni: env); also the variable's name "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--node-label",
        default=DEFAULT.fleet.node,
        help="label that names one node (Cogni: node_id); also the variable's name "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--datasource-uid",
        default=DATASOURCE_UID,
        help="uid of the Prometheus data source the dashboard opens on (Grafana Cloud: "
        "grafanacloud-prom; default: %(default)s)",
    )
    parser.add_argument("--uid", default="", help="dashboard uid (default: from the labels)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.output is None:
        custom = (args.cluster_label, args.node_label, args.datasource_uid, args.uid)
        if custom != (DEFAULT.fleet.cluster, DEFAULT.fleet.node, DATASOURCE_UID, ""):
            parser.error("--cluster-label, --node-label, --datasource-uid and --uid need --output")
        variants: tuple[Variant, ...] = VARIANTS
    else:
        try:
            fleet = Fleet(args.cluster_label, args.node_label)
            variants = (Variant(fleet, args.output, args.datasource_uid, args.uid),)
        except ValueError as exc:
            parser.error(str(exc))
    if args.check:
        fresh = [_check(variant) for variant in variants]
        return 0 if all(fresh) else 1
    for variant in variants:
        variant.output.parent.mkdir(parents=True, exist_ok=True)
        variant.output.write_text(render(variant), encoding="utf-8")
        print(f"wrote {variant.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

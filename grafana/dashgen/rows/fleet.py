"""The Fleet row: nodes by credit health, every node worst first, their failing charters.

One row per node, never one number for many: every query groups by the target's
labels (``fleet.node_labels``), so two nodes that differ only in instance stay two rows.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import stat, table
from grafana_foundation_sdk.models import common as cm

from dashgen.labels import ACCOUNT, Fleet
from dashgen.recorded import recording
from dashgen.widgets import (
    GREEN,
    MERGE,
    NEUTRAL,
    RED,
    YELLOW,
    Panel,
    Props,
    background,
    colour_text,
    column,
    grid,
    map_json,
    new_stat,
    new_table,
    no_data_json,
    organize,
    override_names,
    prop,
    query,
    steps,
    steps_json,
    table_queries,
    with_queries,
)
from exporter.policy import RED_RUNWAY_SECONDS, YELLOW_RUNWAY_SECONDS, Health

HEALTH_LEVEL = "governance:credit_health:level"  # recording rule: 0 green, 1 yellow, 2 red
# Its levels in order, as the exporter's model names them.
HEALTH_LEVELS: tuple[Health, ...] = (Health.GREEN, Health.YELLOW, Health.RED)


def _fleet_columns(fleet: Fleet) -> dict[str, str]:
    return {
        fleet.cluster: column(fleet.cluster),
        fleet.node: column(fleet.node),
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
    """Each node's credit health level (the worst of its accounts): the recorded series,
    or where nothing records it (Grafana-managed alerting) the rule's expression."""
    return _by_node(fleet, recording(fleet, HEALTH_LEVEL, ACCOUNT))


def _health_source(fleet: Fleet, recorded: str, inline: str) -> str:
    """Where a panel's credit health comes from, in its description's words."""
    return recorded if fleet.recorded else inline


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
        new_stat(
            "Fleet: nodes by credit health",
            "How many nodes are red, yellow and green, "
            + _health_source(
                fleet,
                f"from the recording rule {HEALTH_LEVEL}",
                f"computed in the query as the recording rule {HEALTH_LEVEL} computes it, "
                "since Grafana-managed alerting records no rules",
            )
            + " (0 green, 1 yellow, 2 red: red below "
            f"{RED_RUNWAY_SECONDS // 3600} h of runway or at a zero balance, yellow up to "
            f"{YELLOW_RUNWAY_SECONDS // 3600} h). A node is one scrape target (job, instance "
            f"and the {fleet.cluster}/{fleet.node} labels). 'down': targets whose exporter "
            "Prometheus cannot scrape.",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(query(nodes_at(HEALTH_LEVELS.index(Health.RED)), "A", "red"))
        .with_target(query(nodes_at(HEALTH_LEVELS.index(Health.YELLOW)), "B", "yellow"))
        .with_target(query(nodes_at(HEALTH_LEVELS.index(Health.GREEN)), "C", "green"))
        .with_target(
            query(
                f"count(({fleet.exporter_up()}) == 0) or vector(0)",
                "D",
                "down",
            )
        )
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .thresholds(steps((None, GREEN), (1.0, RED)))
        .override_by_query("B", [prop("thresholds", steps_json((None, GREEN), (1, YELLOW)))])
        .override_by_query("C", [prop("thresholds", steps_json((None, NEUTRAL), (1, GREEN)))])
    )


def _fleet_node_queries(fleet: Fleet) -> dict[str, str]:
    """The fleet table's columns by ref id, each one value per node."""
    per_node = f"count by ({fleet.node_labels})"
    return {
        "A": _node_health(fleet),
        "B": f"min by ({fleet.node_labels}) ({fleet.acct('governance_credit_runway_seconds')})",
        "C": _or_zero_per_node(fleet, f"{per_node} ({_failing_charters(fleet)})"),
        "D": _or_zero_per_node(fleet, f"{per_node} ({_node_alerts_firing(fleet)})"),
        "E": f"min by ({fleet.node_labels}) ({fleet.exporter_up()})",
    }


def _fleet_node_overrides() -> dict[str, Props]:
    return {
        "Credit health": [
            prop("mappings", [map_json(_health_mapping()), no_data_json("no data")]),
            background(),
        ],
        "Runway": [prop("unit", "dtdurations")],
        "Failing charters": [
            prop("thresholds", steps_json((None, GREEN), (1, RED))),
            colour_text(),
        ],
        "Alerts firing": [prop("thresholds", steps_json((None, GREEN), (1, RED))), colour_text()],
        "Exporter": [
            prop("mappings", [map_json({"1": ("UP", GREEN), "0": ("DOWN", RED)})]),
            background(),
        ],
    }


def fleet_nodes_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    panel = new_table(
        "Fleet: nodes, worst first",
        "One row per node (scrape target), sorted by credit health (red first), then by "
        "failing charters. 'Credit health' is "
        + _health_source(
            fleet,
            f"the recording rule {HEALTH_LEVEL}",
            f"computed as the recording rule {HEALTH_LEVEL} computes it",
        )
        + "; 'Runway' the node's lowest; 'Failing charters' how many of its "
        "charters have failed runs in the exporter's window (which ones: the table to the "
        "right); 'Alerts firing' its firing Governance* alerts (critical and warning, those "
        "labelled with its instance); 'Exporter' whether "
        "Prometheus scrapes it. Pick a node in the 'Node' variable to read the rows "
        "below for that node alone.",
        "none",
        grid(x=x, y=y, w=w, h=h),
    )
    return override_names(
        with_queries(panel, table_queries(_fleet_node_queries(fleet)))
        .with_transformation(MERGE)
        .with_transformation(organize(["Time"], _fleet_columns(fleet), list(_fleet_columns(fleet))))
        .sort_by(
            [
                cb.TableSortByFieldState().display_name("Credit health").desc(True),
                cb.TableSortByFieldState().display_name("Failing charters").desc(True),
            ]
        ),
        _fleet_node_overrides(),
    )


def fleet_failing_charters_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    last_success = fleet.charter("governance_schedule_last_success_timestamp_seconds")
    return (
        new_table(
            "Fleet: failing charters",
            "Every node's charters with failed runs (errors and failed grant checks) in the "
            "exporter's trailing window, most failures first, with the charter's last "
            "success on that node. A node absent here may still be unhealthy: a charter "
            "without a schedule row records no runs (see 'Alerts firing').",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(query(_failing_charters(fleet), "A", table_format=True))
        .with_target(
            query(
                f"max by ({fleet.node_labels}, charter) ({last_success}) * 1000 "
                f"and on ({fleet.node_labels}, charter) ({_failing_charters(fleet)})",
                "B",
                table_format=True,
            )
        )
        .with_transformation(MERGE)
        .with_transformation(
            organize(
                ["Time", "job"],
                {
                    fleet.node: column(fleet.node),
                    fleet.cluster: column(fleet.cluster),
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
            [prop("thresholds", steps_json((None, NEUTRAL), (1, RED))), colour_text()],
        )
        .override_by_name(
            "Last success",
            [
                prop("unit", "dateTimeFromNow"),
                prop("mappings", [map_json({"0": ("never", RED)})]),
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

"""The Failed runs and alerts row: failed runs by charter and reason, and the Governance alerts."""

from __future__ import annotations

from grafana_foundation_sdk.builders import table

from dashgen.labels import Fleet
from dashgen.widgets import (
    MERGE,
    NEUTRAL,
    ORANGE,
    RED,
    YELLOW,
    Panel,
    background,
    colour_text,
    grid,
    map_json,
    new_table,
    organize,
    prop,
    query,
    steps_json,
)


def failed_runs_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    by = "by (account, charter, reason)"
    return (
        new_table(
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
            query(
                f"sum {by} ({fleet.charter('governance_schedule_failed_runs')}) > 0",
                "A",
                table_format=True,
            )
        )
        .with_target(
            query(
                f"max {by} (max_over_time({fleet.charter('governance_schedule_failed_runs')}"
                "[$__range])) > 0",
                "B",
                table_format=True,
            )
        )
        .with_transformation(MERGE)
        .with_transformation(
            organize(
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
            [prop("thresholds", steps_json((None, NEUTRAL), (1, RED))), colour_text()],
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
        new_table(
            "Governance alerts",
            "Governance alerts Prometheus is evaluating right now: pending (condition true, "
            "waiting for its 'for:' duration) and firing. What to do for each is in the "
            "runbook linked from the alert.",
            "none",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            query(
                f"max by ({', '.join(_ALERT_LABELS)}) "
                f"""({fleet.alerts('charter=~"$charter|"')})""",
                "A",
                table_format=True,
            )
        )
        .with_transformation(organize(["Time", "Value"], _ALERT_LABELS, _ALERT_ORDER))
        .override_by_name(
            "State",
            [
                prop(
                    "mappings",
                    [map_json({"firing": ("firing", RED), "pending": ("pending", ORANGE)})],
                ),
                background(),
            ],
        )
        .override_by_name(
            "Severity",
            [
                prop(
                    "mappings",
                    [map_json({"critical": ("critical", RED), "warning": ("warning", YELLOW)})],
                ),
                colour_text(),
            ],
        )
    )


def failure_row(*, y: int, fleet: Fleet) -> list[Panel]:
    h = 7
    return [
        failed_runs_table(x=0, y=y, w=12, h=h, fleet=fleet),
        alerts_table(x=12, y=y, w=12, h=h, fleet=fleet),
    ]

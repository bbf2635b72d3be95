"""The Work without a schedule row: PR reviews and the other runs no charter schedules.

Today's nodes do most of their work without a schedule: PR reviews and other webhook
runs of the system account's owner (graph_runs.run_kind, 2026-03 on). None of it has a
charter; the exporter counts it by run kind.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import stat, table

from dashgen.labels import Fleet
from dashgen.widgets import (
    GREEN,
    MERGE,
    NEUTRAL,
    RED,
    Panel,
    colour_text,
    grid,
    map_json,
    new_stat,
    new_table,
    no_data,
    organize,
    prop,
    query,
    status_matrix,
    steps,
    steps_json,
    value_map,
)

UNSCHEDULED_WHERE = (
    "runs of the system account's owner without a schedule (graph_runs.schedule_id NULL: "
    "PR reviews are system_webhook)"
)


def unscheduled_visible_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    return (
        new_stat(
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
            query(
                f"min by (account) ({fleet.kind('governance_unscheduled_runs_visible')})",
                "A",
                "{{account}}",
            )
        )
        .thresholds(steps((None, RED), (1.0, GREEN)))
        .mappings(
            [
                value_map({"1": ("visible", GREEN), "0": ("HIDDEN by row-level security", RED)}),
                no_data("not on this schema"),
            ]
        )
    )


def unscheduled_runs_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    return status_matrix(
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
        new_table(
            "Runs without a schedule: failures by reason",
            "Failed runs without a schedule per run kind and reason "
            "(governance_unscheduled_failed_runs): 'In window now' is the exporter's "
            "trailing-window count, 'Peak in range' its highest value in the selected time "
            "range. provider_unavailable: the operator's LLM provider account is unfunded or "
            "down; insufficient_credits: the node's own balance refused the run.",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(query(f"sum {by} ({failed}) > 0", "A", table_format=True))
        .with_target(
            query(f"max {by} (max_over_time({failed}[$__range])) > 0", "B", table_format=True)
        )
        .with_transformation(MERGE)
        .with_transformation(
            organize(
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
            [prop("thresholds", steps_json((None, NEUTRAL), (1, RED))), colour_text()],
        )
    )


def unscheduled_last_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    by = "max by (account, run_kind)"
    last_success = fleet.kind("governance_unscheduled_last_success_timestamp_seconds")
    last_failure = fleet.kind("governance_unscheduled_last_failure_timestamp_seconds")
    return (
        new_table(
            "Runs without a schedule: last success",
            "Per run kind, the newest successful and the newest failed run without a "
            "schedule of the last 30 days (governance_unscheduled_last_success_timestamp_"
            "seconds and _last_failure_). 'none in 30 days' as last success is red: that "
            "kind of work has not succeeded for a month.",
            "none",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            query(
                f"{by} ({last_success}) * 1000",
                "A",
                table_format=True,
            )
        )
        .with_target(
            query(
                f"{by} ({last_failure}) * 1000",
                "B",
                table_format=True,
            )
        )
        .with_transformation(MERGE)
        .with_transformation(
            organize(
                ["Time", "account"],
                {"run_kind": "Run kind", "Value #A": "Last success", "Value #B": "Last failure"},
                ["run_kind", "Value #A", "Value #B"],
            )
        )
        .override_by_name(
            "Last success",
            [
                prop("unit", "dateTimeFromNow"),
                prop("mappings", [map_json({"0": ("none in 30 days", RED)})]),
            ],
        )
        .override_by_name(
            "Last failure",
            [
                prop("unit", "dateTimeFromNow"),
                prop("mappings", [map_json({"0": ("none in 30 days", GREEN)})]),
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

"""The Exporter health row: is the exporter up, collecting, which build, how fast, errors.

Scrape and collection up, time since the last collection, build and schema, collection
duration and collection errors.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.models import common as cm

from dashgen.labels import Fleet
from dashgen.widgets import (
    GREEN,
    RED,
    TRANSPARENT,
    YELLOW,
    Panel,
    column,
    grid,
    new_stat,
    new_table,
    new_timeseries,
    no_data,
    organize,
    query,
    steps,
    value_map,
)

# "Since last successful collection": the dashboard's numbers go stale after these.
COLLECTION_AGE_YELLOW_SECONDS = 300.0
COLLECTION_AGE_RED_SECONDS = 900.0


def exporter_up_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    return (
        new_stat(
            "Exporter up",
            "'scrape': Prometheus reaches the exporter (up, for targets that exported "
            "governance_exporter_build_info in the last day, so a dead exporter shows as "
            "DOWN rather than vanishing). 'collect': the exporter's last collection from "
            "the database succeeded (governance_exporter_up).",
            "none",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            query(
                fleet.exporter_up(),
                "A",
                f"scrape {fleet.legend}",
            )
        )
        .with_target(
            query(
                f"min by ({fleet.node_labels}) ({fleet.sel('governance_exporter_up')})",
                "B",
                f"collect {fleet.legend}",
            )
        )
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .thresholds(steps((None, RED), (1.0, GREEN)))
        .mappings([value_map({"1": ("UP", GREEN), "0": ("DOWN", RED)}), no_data("no data")])
    )


def last_collection_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    return (
        new_stat(
            "Since last successful collection",
            "Time since the exporter last read the database successfully "
            "(time() - governance_exporter_last_success_timestamp_seconds). Yellow after "
            f"{COLLECTION_AGE_YELLOW_SECONDS / 60:.0f} min, red after "
            f"{COLLECTION_AGE_RED_SECONDS / 60:.0f} min: the dashboard's numbers are then stale.",
            "s",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            query(
                f"time() - max by ({fleet.node_labels}) "
                f"(last_over_time({fleet.sel('governance_exporter_last_success_timestamp_seconds')}[1d]))",
                "A",
                fleet.legend,
            )
        )
        .thresholds(
            steps(
                (None, GREEN),
                (COLLECTION_AGE_YELLOW_SECONDS, YELLOW),
                (COLLECTION_AGE_RED_SECONDS, RED),
            )
        )
        .decimals(0)
    )


def build_info_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    return (
        new_table(
            "Exporter build",
            "Version of each exporter and the Cogni schema it found: 2026-02 (schedule_runs) "
            "or 2026-03 (graph_runs).",
            "none",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            query(
                f"max by ({fleet.node}, instance, version, schema) ({fleet.build_info})",
                "A",
                table_format=True,
            )
        )
        .with_transformation(
            organize(
                ["Time", "Value"],
                {
                    fleet.node: column(fleet.node),
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
        new_timeseries(
            "Collection duration",
            "Seconds one collection (all database queries) took, per exporter.",
            "s",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            query(
                f"max by ({fleet.node_labels}) ({duration})",
                "A",
                fleet.legend,
                instant=False,
            )
        )
        .thresholds(steps((None, TRANSPARENT)))
        .axis_soft_min(0)
    )


def collection_errors_timeseries(
    *, x: int, y: int, w: int, h: int, fleet: Fleet
) -> timeseries.Panel:
    return (
        new_timeseries(
            "Collection errors",
            "Failed collections per interval by reason "
            "(increase of governance_exporter_collection_errors_total).",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            query(
                "sum by (reason) (increase("
                f"{fleet.sel('governance_exporter_collection_errors_total')}[$__rate_interval]))",
                "A",
                "{{reason}}",
                instant=False,
            )
        )
        .thresholds(steps((None, TRANSPARENT)))
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

"""The Charters row: one line per governance charter, and its runs in the window by status.

A charter's line: configured, state, config, last success, next run, interval, failures
in the window, observable, drift from the repo-spec.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import table

from dashgen.labels import Fleet
from dashgen.widgets import (
    GREEN,
    MERGE,
    NEUTRAL,
    ORANGE,
    RED,
    Panel,
    Props,
    background,
    colour_text,
    grid,
    map_json,
    new_table,
    organize,
    override_names,
    prop,
    status_matrix,
    steps_json,
    table_queries,
    with_queries,
)

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


def _charter_queries(fleet: Fleet) -> dict[str, str]:
    """The charter table's columns by ref id (``_CHARTER_COLUMNS`` names them)."""
    by = "max by (account, charter)"

    def each(metric: str) -> str:
        return f"{by} ({fleet.charter(f'governance_{metric}')})"

    retired = fleet.charter("governance_schedule_retired")
    last_success = fleet.charter("governance_schedule_last_success_timestamp_seconds")
    next_run = fleet.charter("governance_schedule_next_run_timestamp_seconds")
    failed = fleet.charter("governance_schedule_failed_runs")
    return {
        "A": each("charter_configured"),
        "B": _charter_state(fleet),
        "C": each("schedule_config_valid"),
        "D": f"{by} ({last_success}) * 1000 unless on (account, charter) ({retired} == 1)",
        "E": f"min by (account, charter) ({next_run}) - time()",
        "F": each("schedule_interval_seconds"),
        "G": f"sum by (account, charter) ({failed})",
        "H": each("schedule_observable"),
        "I": each("schedule_drift"),
    }


def _yes_no(yes: tuple[str, str], no: tuple[str, str]) -> dict[str, object]:
    """A 0/1 column's two words and colours, 1 first."""
    return map_json({"1": yes, "0": no})


def _charter_overrides() -> dict[str, Props]:
    return {
        "charter": [prop("displayName", "Charter")],
        "Configured": [
            prop("mappings", [_yes_no(("yes", GREEN), ("MISSING", RED))]),
            background(),
        ],
        "State": [prop("mappings", [map_json(CHARTER_STATES)]), background()],
        "Observable": [
            prop("mappings", [_yes_no(("yes", GREEN), ("NO", ORANGE))]),
            colour_text(),
        ],
        "Repo-spec": [
            prop("mappings", [map_json({"0": ("matches", GREEN), "1": ("DRIFT", ORANGE)})]),
            colour_text(),
        ],
        "Config": [
            prop("mappings", [_yes_no(("valid", GREEN), ("INVALID", RED))]),
            background(),
        ],
        "Last success": [
            prop("unit", "dateTimeFromNow"),
            prop("mappings", [map_json({"0": ("never", RED)})]),
        ],
        "Next run in": [prop("unit", "dtdurations")],
        "Every": [prop("unit", "dtdurations")],
        "Failed in window": [
            prop("unit", "short"),
            prop("thresholds", steps_json((None, GREEN), (1, RED))),
            colour_text(),
        ],
    }


def charters_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    panel = new_table(
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
    return override_names(
        with_queries(panel, table_queries(_charter_queries(fleet)))
        .with_transformation(MERGE)
        .with_transformation(
            organize(["Time", "account"], _CHARTER_COLUMNS, ["charter", *(_CHARTER_COLUMNS)])
        ),
        _charter_overrides(),
    )


def runs_by_status_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    return status_matrix(
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

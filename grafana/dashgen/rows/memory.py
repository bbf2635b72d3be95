"""The Gateway memory row: the budget gate and its caps, and each charter's heartbeat.

The budget gate is the header the gateway reads before every charter run.

Optional (--memory-dir): the gateway's memory files describe the node's gateway, so
these metrics have no account label; the budget metrics no charter label either. With
several exporters in one Prometheus the stats show the most restrictive one (min/max).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders import stat, table
from grafana_foundation_sdk.models import common as cm

from dashgen.labels import CHARTER, Fleet
from dashgen.widgets import (
    BLUE,
    GREEN,
    MERGE,
    NEUTRAL,
    ORANGE,
    RED,
    YELLOW,
    Panel,
    Props,
    background,
    colour_text,
    grid,
    label_mapping,
    map_json,
    new_stat,
    new_table,
    no_data,
    no_data_json,
    organize,
    override_names,
    override_queries,
    prop,
    query,
    steps,
    steps_json,
    table_queries,
    with_queries,
)
from exporter.memory import (
    BUDGET_STATUSES,
    BURN_RATE_TRENDS,
    DECISIONS,
    FILE_STATUSES,
    NO_OP_REASONS,
)
from exporter.policy import BUDGET_HEADER_MAX_AGE_SECONDS

# The gateway's readers use a budget header up to 2 h old (age <= 2 h); the
# GovernanceBudgetGateStale alert fires above it. Red therefore starts one float above.
BUDGET_STALE_STEP = math.nextafter(float(BUDGET_HEADER_MAX_AGE_SECONDS), math.inf)


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


def _state_props(states: tuple[str, ...], colours: Mapping[str, str], missing: str) -> Props:
    mapping = map_json(_state_map(states, colours))
    return [prop("mappings", [mapping, no_data_json(missing)])]


def _budget_gate_queries(fleet: Fleet) -> list[prom.Dataquery]:
    """One value per field of the header (a state set as its index), named as shown."""

    def state(metric: str, label: str, states: tuple[str, ...]) -> str:
        return _state_index(fleet, f"governance_budget_{metric}", label, states)

    updated = fleet.sel("governance_budget_updated_timestamp_seconds")
    return [
        query(f"min({fleet.sel('governance_budget_allow_runs')})", "A", "Runs"),
        query(state("status", "status", BUDGET_STATUSES), "B", "Budget"),
        query(state("burn_rate_trend", "trend", BURN_RATE_TRENDS), "C", "Burn trend"),
        query(f"time() - max({updated})", "D", "Updated"),
        query(state("header_file_status", "status", FILE_STATUSES), "E", "Header file"),
        query(f"min({fleet.sel('governance_memory_directory_readable')})", "F", "Memory dir"),
    ]


def _budget_gate_overrides() -> dict[str, Props]:
    """Each field's own words and colours, by ref id (a state set as its state's name)."""
    runs = map_json({"1": ("OPEN", GREEN), "0": ("CLOSED", RED)})
    readable = map_json({"1": ("readable", GREEN), "0": ("UNREADABLE", RED)})
    return {
        "A": [prop("mappings", [runs, no_data_json("unknown", ORANGE)])],
        "B": _state_props(BUDGET_STATUSES, BUDGET_STATUS_COLOURS, "not set"),
        "C": _state_props(BURN_RATE_TRENDS, BURN_RATE_TREND_COLOURS, "not set"),
        "D": [
            prop("unit", "dtdurations"),
            prop("thresholds", steps_json((None, GREEN), (BUDGET_STALE_STEP, RED))),
        ],
        "E": _state_props(FILE_STATUSES, FILE_STATUS_COLOURS, "no data"),
        "F": [prop("mappings", [readable, no_data_json("not configured")])],
    }


def budget_gate_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    max_age_h = BUDGET_HEADER_MAX_AGE_SECONDS // 3600
    panel = new_stat(
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
    return override_queries(
        with_queries(panel, _budget_gate_queries(fleet))
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .thresholds(steps((None, NEUTRAL)))
        .mappings([no_data("no data")]),
        _budget_gate_overrides(),
    )


def budget_caps_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    return (
        new_stat(
            "Budget gate caps",
            "Per-run limits the budget header sets for the gateway: max_tokens_per_charter_run, "
            "max_tool_calls_per_charter_run and max_brain_spawns_per_hour ('not set' when the "
            "header lacks them or cannot be read).",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            query(
                f"min({fleet.sel('governance_budget_max_tokens_per_charter_run')})",
                "A",
                "tokens/run",
            )
        )
        .with_target(
            query(
                f"min({fleet.sel('governance_budget_max_tool_calls_per_charter_run')})",
                "B",
                "tool calls/run",
            )
        )
        .with_target(
            query(
                f"min({fleet.sel('governance_budget_max_brain_spawns_per_hour')})",
                "C",
                "brain spawns/h",
            )
        )
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(cm.BigValueColorMode.NONE)
        .thresholds(steps((None, NEUTRAL)))
        .mappings([no_data("not set")])
        .decimals(0)
    )


def _heartbeat_queries(fleet: Fleet) -> dict[str, str]:
    """The heartbeat table's columns by ref id; a state set (A, C, D) shows as its label."""

    def state(metric: str, label: str) -> str:
        one_hot = fleet.sel(f"governance_heartbeat_{metric}", CHARTER)
        return f"max by (charter, {label}) ({one_hot}) == 1"

    def time_ms(metric: str) -> str:
        return f"max by (charter) ({fleet.sel(metric, CHARTER)}) * 1000"

    return {
        "A": state("file_status", "status"),
        "B": time_ms("governance_heartbeat_run_timestamp_seconds"),
        "C": state("decision", "decision"),
        "D": state("no_op_reason", "reason"),
        "E": time_ms("governance_heartbeat_file_modified_timestamp_seconds"),
    }


def _heartbeat_overrides() -> dict[str, Props]:
    return {
        "Last run": [prop("unit", "dateTimeFromNow")],
        "File written": [prop("unit", "dateTimeFromNow")],
        "Decision": [
            prop("mappings", [map_json(label_mapping(DECISIONS, DECISION_COLOURS))]),
            colour_text(),
        ],
        "No-op reason": [
            prop("mappings", [map_json(label_mapping(NO_OP_REASONS, NO_OP_REASON_COLOURS))]),
            colour_text(),
        ],
        "File": [
            prop("mappings", [map_json(label_mapping(FILE_STATUSES, FILE_STATUS_COLOURS))]),
            background(),
        ],
    }


def heartbeats_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    panel = new_table(
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
    columns = {
        "charter": "Charter",
        "Value #B": "Last run",
        "decision": "Decision",
        "reason": "No-op reason",
        "status": "File",
        "Value #E": "File written",
    }
    return override_names(
        with_queries(panel, table_queries(_heartbeat_queries(fleet)))
        .with_transformation(MERGE)
        .with_transformation(
            organize(["Time", "Value #A", "Value #C", "Value #D"], columns, list(columns))
        ),
        _heartbeat_overrides(),
    )


def memory_row(*, y: int, fleet: Fleet) -> list[Panel]:
    h = 7
    return [
        budget_gate_stat(x=0, y=y, w=10, h=h, fleet=fleet),
        budget_caps_stat(x=10, y=y, w=4, h=h, fleet=fleet),
        heartbeats_table(x=14, y=y, w=10, h=h, fleet=fleet),
    ]

"""The Attribution ledger row: the collect by epochs, approvals, the webhook plane, distributions.

Nodes since 2026-08 govern through the attribution ledger (docs/ledger.md): one open
epoch per (ledger node, scope) whose collect must move on after its window ends,
epochs in review waiting for approvers, webhook receipts whose silence is judged
against the node's own cadence, distributions (readable only with BYPASSRLS), and the
operator's dispatch schedules per node. The ledger's node is the label
``ledger_node_id`` (the scrape's ``node_id`` is the fleet's). Each limit is the
exporter's own series (``exporter.policy`` computes it), so a panel compares a value
with its limit rather than repeating a threshold. Older nodes have no ledger series:
every panel then says "no ledger".
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import stat, table

from dashgen.labels import ACCOUNT, Fleet
from dashgen.widgets import (
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
    map_json,
    new_stat,
    new_table,
    no_data,
    no_data_json,
    organize,
    override_names,
    prop,
    query,
    steps,
    steps_json,
    table_queries,
    value_map,
    with_queries,
)

STREAM = "ledger_node_id, scope_id"
LEDGER_NODE = "ledger_node_id"
DISPATCH = "account, ledger_node_id, charter"
NO_LEDGER = "no ledger on this node (before 2026-08)"
# The Dispatch state column: enabled + 2 * paused + 3 * pruned (one of them is 1).
DISPATCH_STATES = {
    "1": ("enabled", GREEN),
    "2": ("PAUSED", ORANGE),
    "3": ("pruned", NEUTRAL),
}


def _max(fleet: Fleet, by: str, metric: str, *matchers: str) -> str:
    return f"max by ({by}) ({fleet.sel(metric, *matchers)})"


def _beyond(value: str, limit: str) -> str:
    """1 where ``value`` is beyond ``limit`` (same labels), 0 where not."""
    return f"{value} > bool {limit}"


def _time_props(never: str, colour: str) -> Props:
    """A timestamp column (ms) as "3 hours ago"; 0 (none) as ``never`` in ``colour``."""
    return [prop("unit", "dateTimeFromNow"), prop("mappings", [map_json({"0": (never, colour)})])]


# --- the collect, by epochs ----------------------------------------------------------


def _collect_queries(fleet: Fleet) -> dict[str, str]:
    overdue = _max(fleet, STREAM, "governance_ledger_collect_overdue_seconds")
    limit = _max(fleet, STREAM, "governance_ledger_collect_stall_limit_seconds")
    start = _max(fleet, STREAM, "governance_ledger_open_epoch_start_timestamp_seconds")
    end = _max(fleet, STREAM, "governance_ledger_open_epoch_end_timestamp_seconds")
    return {
        "A": f"{start} * 1000",
        "B": f"{end} * 1000",
        "C": overdue,
        "D": limit,
        "E": _beyond(overdue, limit),
    }


def ledger_collect_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    columns = {
        "ledger_node_id": "Ledger node",
        "scope_id": "Scope",
        "Value #A": "Open window from",
        "Value #B": "Open window to",
        "Value #C": "Overdue",
        "Value #D": "Stall limit",
        "Value #E": "Collect",
    }
    overrides: dict[str, Props] = {
        "Open window from": [prop("unit", "dateTimeAsIso")],
        "Open window to": [
            prop("unit", "dateTimeAsIso"),
            prop("mappings", [no_data_json("NONE OPEN", RED)]),
        ],
        "Overdue": [prop("unit", "dtdurations")],
        "Stall limit": [prop("unit", "dtdurations")],
        "Collect": [
            prop("mappings", [map_json({"0": ("on time", GREEN), "1": ("STALLED", RED)})]),
            background(),
        ],
    }
    panel = (
        new_table(
            "Ledger collect per stream",
            "Per (ledger node, scope): the open epoch's window (period_start to period_end; "
            "governance_ledger_open_epoch_*), how long since the newest window ended while "
            "the collect has not moved on (governance_ledger_collect_overdue_seconds; 0 while "
            "the open window runs) and its stall limit: one collect interval (the ledger "
            "schedule's cron, else 24 h) plus --ledger-collect-grace-seconds "
            "(governance_ledger_collect_stall_limit_seconds). Overdue beyond the limit is a "
            "STALLED collect, red, GovernanceLedgerCollectStalled (the sibling-prune bug of "
            "August looked so). 'NONE OPEN': no open epoch for the current window. "
            + NO_LEDGER.capitalize()
            + ": no rows.",
            "none",
            grid(x=x, y=y, w=w, h=h),
        )
        .no_value(NO_LEDGER)
        .with_transformation(MERGE)
        .with_transformation(organize(["Time"], columns, list(columns)))
    )
    panel = with_queries(panel, table_queries(_collect_queries(fleet)))
    return override_names(panel, overrides)


# --- epochs by status and approvals ---------------------------------------------------


def _epoch_queries(fleet: Fleet) -> dict[str, str]:
    def status(name: str) -> str:
        return _max(fleet, STREAM, "governance_ledger_epochs", f'status="{name}"')

    wait = _max(fleet, STREAM, "governance_ledger_review_oldest_wait_seconds")
    # The limit has no stream labels: put it beside each stream of the same target.
    node = fleet.node_labels
    limit = (
        f"max by ({STREAM}) ({fleet.sel('governance_ledger_review_oldest_wait_seconds')} * 0 "
        f"+ on ({node}) group_left "
        f"max by ({node}) ({fleet.sel('governance_ledger_review_wait_limit_seconds')}))"
    )
    finalized = _max(fleet, STREAM, "governance_ledger_last_finalized_timestamp_seconds")
    return {
        "A": status("open"),
        "B": status("review"),
        "C": status("finalized"),
        "D": wait,
        "E": limit,
        "F": _beyond(wait, limit),
        "G": f"{finalized} * 1000",
    }


def ledger_epochs_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    columns = {
        "ledger_node_id": "Ledger node",
        "scope_id": "Scope",
        "Value #A": "Open",
        "Value #B": "In review",
        "Value #C": "Finalized",
        "Value #D": "Oldest review wait",
        "Value #E": "Wait limit",
        "Value #F": "Approvers",
        "Value #G": "Last finalized",
    }
    overrides: dict[str, Props] = {
        "Open": [
            prop("thresholds", steps_json((None, RED), (1, GREEN), (2, ORANGE))),
            colour_text(),
        ],
        "Oldest review wait": [prop("unit", "dtdurations")],
        "Wait limit": [prop("unit", "dtdurations")],
        "Approvers": [
            prop("mappings", [map_json({"0": ("in time", GREEN), "1": ("WAITING", YELLOW)})]),
            background(),
        ],
        "Last finalized": _time_props("never", NEUTRAL),
    }
    panel = (
        new_table(
            "Ledger epochs and approvals",
            "Per (ledger node, scope): epochs by status (governance_ledger_epochs; one open "
            "epoch is the norm), how long the oldest epoch in review has waited for its "
            "approvers since its window ended (governance_ledger_review_oldest_wait_seconds) "
            "against --ledger-review-wait-seconds (governance_ledger_review_wait_limit_"
            "seconds): beyond it WAITING, a warning (GovernanceLedgerEpochAwaitingApproval, "
            "a ticket). Last finalized: the latest epoch's closed_at.",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .no_value(NO_LEDGER)
        .with_transformation(MERGE)
        .with_transformation(organize(["Time"], columns, list(columns)))
    )
    panel = with_queries(panel, table_queries(_epoch_queries(fleet)))
    return override_names(panel, overrides)


# --- the webhook plane ----------------------------------------------------------------


def _webhook_queries(fleet: Fleet) -> dict[str, str]:
    last = _max(fleet, LEDGER_NODE, "governance_ledger_last_receipt_timestamp_seconds")
    limit = _max(fleet, LEDGER_NODE, "governance_ledger_receipt_silence_limit_seconds")
    gap = _max(fleet, LEDGER_NODE, "governance_ledger_receipt_usual_gap_seconds")
    silence = f"(time() - {last})"
    return {
        "A": f"{last} * 1000",
        "B": silence,
        "C": limit,
        "D": gap,
        "E": _beyond(silence, limit),
    }


def ledger_webhook_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    columns = {
        "ledger_node_id": "Ledger node",
        "Value #A": "Last receipt",
        "Value #B": "Silent for",
        "Value #C": "Silence limit",
        "Value #D": "Usual gap",
        "Value #E": "Webhook plane",
    }
    overrides: dict[str, Props] = {
        "Last receipt": _time_props("never", RED),
        "Silent for": [prop("unit", "dtdurations")],
        "Silence limit": [
            prop("unit", "dtdurations"),
            prop("mappings", [no_data_json("no cadence yet")]),
        ],
        "Usual gap": [prop("unit", "dtdurations")],
        "Webhook plane": [
            prop(
                "mappings",
                [
                    map_json({"0": ("receiving", GREEN), "1": ("SILENT", RED)}),
                    no_data_json("not judged (< 5 receipts)"),
                ],
            ),
            background(),
        ],
    }
    panel = (
        new_table(
            "Ledger webhook plane per node",
            "Per ledger node: the newest webhook delivery (ingested_at among its 50 newest "
            "receipts; governance_ledger_last_receipt_timestamp_seconds), how long since, "
            "and the silence limit: max(--ledger-silence-factor x the node's usual longest "
            "gap, --ledger-silence-min-seconds) (governance_ledger_receipt_silence_limit_"
            "seconds; usual gap: the 90th percentile of the gaps between those receipts). "
            "Silent beyond it: red, GovernanceLedgerWebhookSilent (the 2026-06-11 incident: "
            "every delivery refused for 80 h). Below 5 receipts a node has no cadence and "
            "is not judged.",
            "none",
            grid(x=x, y=y, w=w, h=h),
        )
        .no_value(NO_LEDGER)
        .with_transformation(MERGE)
        .with_transformation(organize(["Time"], columns, list(columns)))
    )
    panel = with_queries(panel, table_queries(_webhook_queries(fleet)))
    return override_names(panel, overrides)


def ledger_review_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    last = fleet.sel("governance_ledger_last_review_run_timestamp_seconds", ACCOUNT)
    return (
        new_stat(
            "Ledger last PR review",
            "The account's latest PR review (a system_webhook run, last 30 days; "
            "governance_ledger_last_review_run_timestamp_seconds). With the webhook plane "
            "silent, PR reviews stop too: 'none in 30 days' in red.",
            "dateTimeFromNow",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(query(f"max by (account) ({last}) * 1000", "A", "{{account}}"))
        .thresholds(steps((None, NEUTRAL)))
        .mappings([value_map({"0": ("none in 30 days", RED)}), no_data(NO_LEDGER)])
    )


# --- the operator's dispatch schedules -------------------------------------------------


def _dispatch_queries(fleet: Fleet) -> dict[str, str]:
    def state(name: str) -> str:
        selector = fleet.charter("governance_ledger_dispatch_schedule_state", f'state="{name}"')
        return f"sum by ({DISPATCH}) ({selector})"

    def each(metric: str) -> str:
        selector = fleet.charter(f"governance_ledger_dispatch_schedule_{metric}")
        return f"max by ({DISPATCH}) ({selector})"

    return {
        "A": f"{state('enabled')} + 2 * {state('paused')} + 3 * {state('pruned')}",
        "B": f"{each('next_run_timestamp_seconds')} * 1000",
        "C": each("interval_seconds"),
    }


def ledger_dispatch_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    columns = {
        "ledger_node_id": "Ledger node",
        "charter": "Collect",
        "Value #A": "State",
        "Value #B": "Next dispatch",
        "Value #C": "Every",
    }
    overrides: dict[str, Props] = {
        "State": [prop("mappings", [map_json(DISPATCH_STATES)]), background()],
        "Next dispatch": [prop("unit", "dateTimeFromNow")],
        "Every": [prop("unit", "dtdurations")],
    }
    panel = (
        new_table(
            "Ledger dispatch schedules per node",
            "The operator's schedules of each node's collect (governance:<nodeId>:<charter>, "
            "graph task:…; governance_ledger_dispatch_schedule_*): not charters, they write "
            "no runs, so they never 'never succeeded'. PAUSED: that node's epochs stop "
            "advancing (GovernanceLedgerDispatchPaused, a warning); pruned: removed on "
            "purpose. Ledger node 'local' is a two-part id, 'unparsed' an id of no known "
            "shape. Empty on a node that dispatches nothing (every spawned node).",
            "none",
            grid(x=x, y=y, w=w, h=h),
        )
        .no_value("no dispatch schedules")
        .with_transformation(MERGE)
        .with_transformation(organize(["Time", "account"], columns, list(columns)))
    )
    panel = with_queries(panel, table_queries(_dispatch_queries(fleet)))
    return override_names(panel, overrides)


# --- distributions ----------------------------------------------------------------------


def ledger_distributions_observable_stat(
    *, x: int, y: int, w: int, h: int, fleet: Fleet
) -> stat.Panel:
    observable = fleet.sel("governance_ledger_observable", 'part="distributions"')

    return (
        new_stat(
            "Ledger distributions observable",
            "Whether this role reads the distributions' tables "
            '(governance_ledger_observable{part="distributions"}). They force row-level '
            "security with no policy: only a BYPASSRLS role reads them. 'not observable' is "
            "no problem (never red): the Distributions table is then empty.",
            "none",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(query(f"min ({observable})", "A"))
        .thresholds(steps((None, NEUTRAL), (1.0, GREEN)))
        .mappings(
            [
                value_map(
                    {"1": ("observable", GREEN), "0": ("not observable (needs BYPASSRLS)", None)}
                ),
                no_data(NO_LEDGER),
            ]
        )
    )


def _distribution_queries(fleet: Fleet) -> dict[str, str]:
    def each(metric: str) -> str:
        return _max(fleet, STREAM, f"governance_ledger_{metric}")

    return {
        "A": each("distribution_manifests"),
        "B": each("pending_liabilities"),
        "C": each("pending_liability_oldest_age_seconds"),
        "D": each("finalized_epochs_without_manifest"),
        "E": each("finalized_without_manifest_oldest_age_seconds"),
    }


def ledger_distributions_table(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> table.Panel:
    columns = {
        "ledger_node_id": "Ledger node",
        "scope_id": "Scope",
        "Value #A": "Manifests",
        "Value #B": "Pending liabilities",
        "Value #C": "Oldest pending",
        "Value #D": "Finalized without manifest",
        "Value #E": "Oldest without manifest",
    }
    overrides: dict[str, Props] = {
        "Oldest pending": [prop("unit", "dtdurations")],
        "Finalized without manifest": [
            prop("thresholds", steps_json((None, GREEN), (1, YELLOW))),
            colour_text(),
        ],
        "Oldest without manifest": [prop("unit", "dtdurations")],
    }
    panel = (
        new_table(
            "Ledger distributions per stream",
            "Per (ledger node, scope), with BYPASSRLS only: distribution manifests, pending "
            "claimant liabilities (settled_revision_id NULL) and the oldest's age, finalized "
            "epochs without a manifest and since when. A finalized epoch without a manifest "
            "for over a day is a warning (GovernanceLedgerDistributionMissing) only where "
            "manifests exist: a node without a token contract never has any. Empty when "
            "not observable (see the stat beside).",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .no_value("not observable (needs BYPASSRLS), or no ledger")
        .with_transformation(MERGE)
        .with_transformation(organize(["Time"], columns, list(columns)))
    )
    panel = with_queries(panel, table_queries(_distribution_queries(fleet)))
    return override_names(panel, overrides)


def ledger_row(*, y: int, fleet: Fleet) -> list[Panel]:
    top, middle = 8, 7
    return [
        ledger_collect_table(x=0, y=y, w=13, h=top, fleet=fleet),
        ledger_epochs_table(x=13, y=y, w=11, h=top, fleet=fleet),
        ledger_webhook_table(x=0, y=y + top, w=11, h=middle, fleet=fleet),
        ledger_review_stat(x=11, y=y + top, w=3, h=middle, fleet=fleet),
        ledger_dispatch_table(x=14, y=y + top, w=10, h=middle, fleet=fleet),
        ledger_distributions_observable_stat(x=0, y=y + top + middle, w=4, h=6, fleet=fleet),
        ledger_distributions_table(x=4, y=y + top + middle, w=20, h=6, fleet=fleet),
    ]

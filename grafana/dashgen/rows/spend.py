"""The row under credit health: which work eats the credits, and what is refused.

Runs failing with provider_unavailable, runs rejected for credits, and the window's
spend by run kind and by charter.
"""

from __future__ import annotations

import math

from grafana_foundation_sdk.builders import bargauge, stat
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashgen.labels import ACCOUNT, Fleet
from dashgen.widgets import (
    BLUE,
    DS,
    GREEN,
    RED,
    Panel,
    grid,
    new_stat,
    no_data,
    query,
    reduce_last,
    steps,
    value_map,
)
from exporter.model import CREDITS_PER_USD

# GovernanceProviderUnavailable's window and condition (> 0): red one float above 0.
PROVIDER_WINDOW = "90m"
PROVIDER_FAILING_STEP = math.nextafter(0.0, math.inf)


def provider_unavailable_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    failed = fleet.sel("governance_runs_failed_total", ACCOUNT, 'reason="provider_unavailable"')
    return (
        new_stat(
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
            query(
                f"sum by (account) (increase({failed}[{PROVIDER_WINDOW}]))",
                "A",
                f"last {PROVIDER_WINDOW}",
            )
        )
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .thresholds(steps((None, GREEN), (PROVIDER_FAILING_STEP, RED)))
        .mappings([value_map({"0": ("none", GREEN)}), no_data("no data")])
        .decimals(0)
    )


def rejected_runs_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    return (
        new_stat(
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
            query(
                f"max by (account) ({fleet.acct('governance_credit_rejected_runs')})",
                "A",
                "in window",
            )
        )
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .thresholds(steps((None, GREEN), (1.0, RED)))
        .mappings([value_map({"0": ("none", GREEN)}), no_data("no data")])
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
        .reduce_options(reduce_last())
        .orientation(cm.VizOrientation.HORIZONTAL)
        .display_mode(cm.BarGaugeDisplayMode.BASIC)
        .value_mode(cm.BarGaugeValueMode.TEXT)
        .show_unfilled(True)
        .thresholds(steps((None, BLUE)))
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
        query(
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
        query(
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

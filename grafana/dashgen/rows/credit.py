"""The Credit health row: runway, balance, burn rate, the window's spend, alerts firing.

All for the selected account; the alerts are the Governance* ones firing.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import stat
from grafana_foundation_sdk.models import common as cm

from dashgen.labels import Fleet
from dashgen.widgets import (
    GREEN,
    NEUTRAL,
    ORANGE,
    RED,
    YELLOW,
    Panel,
    grid,
    new_stat,
    no_data,
    prop,
    query,
    runway_steps,
    steps,
    steps_json,
    value_map,
)
from exporter.model import CREDITS_PER_USD
from exporter.policy import RED_RUNWAY_SECONDS, YELLOW_RUNWAY_SECONDS


def runway_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    return (
        new_stat(
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
            query(f"min by (account) ({fleet.acct('governance_credit_runway_seconds')})", "A")
        )
        .thresholds(runway_steps())
        .mappings(
            [
                value_map(
                    {
                        "0": ("0 h: balance exhausted", RED),
                        # JavaScript looks +Inf up as the key "Infinity" in every version.
                        "Infinity": ("\u221e (no spend in window)", GREEN),
                    }
                ),
                no_data("no data"),
            ]
        )
    )


def balance_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    return (
        new_stat(
            "Balance",
            "Current balance of the governance billing account, in credits and in USD "
            f"({CREDITS_PER_USD:,} credits per USD). Red at zero or below: every run is then "
            "rejected with insufficient_credits, as on 2026-02-15. 'refused below' is one "
            "run's cost: today's preflight check rejects runs under it (the balance alert "
            "fires there too).",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(query(fleet.balance, "A", "credits"))
        .with_target(query(f"{fleet.balance} / {CREDITS_PER_USD}", "B", "USD"))
        .with_target(query(fleet.min_run_cost, "C", "refused below"))
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .thresholds(steps((None, RED), (1.0, NEUTRAL)))
        .override_by_query(
            "B",
            [
                prop("unit", "currencyUSD"),
                prop("decimals", 2),
                prop("thresholds", steps_json((None, RED), (1 / CREDITS_PER_USD, NEUTRAL))),
            ],
        )
        .override_by_query("C", [prop("color", {"mode": "fixed", "fixedColor": "text"})])
    )


def burn_rate_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    return (
        new_stat(
            "Burn rate (credits/hour)",
            "Credits charged per hour, averaged over the exporter's trailing window "
            "(governance_credit_burn_rate_credits_per_second x 3600). The USD figure is the "
            "same rate in dollars.",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(query(fleet.burn_per_hour, "A", "credits/h"))
        .with_target(query(f"{fleet.burn_per_hour} / {CREDITS_PER_USD}", "B", "USD/h"))
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(cm.BigValueColorMode.NONE)
        .thresholds(steps((None, NEUTRAL)))
        .override_by_query("B", [prop("unit", "currencyUSD"), prop("decimals", 2)])
    )


def spent_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    return (
        new_stat(
            "Spent in window",
            "Credits charged and number of charges in the exporter's trailing window "
            "(governance_credit_window_seconds, shown as 'window'). Orange at 0: nothing "
            "was spent, which with enabled schedules usually means runs are rejected "
            "before they spend (the 2026-02-15 pattern), not that all is well.",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            query(
                f"max by (account) ({fleet.acct('governance_credit_spent_credits')})",
                "A",
                "credits",
            )
        )
        .with_target(
            query(f"max by (account) ({fleet.acct('governance_credit_charges')})", "B", "charges")
        )
        .with_target(query(f"max({fleet.sel('governance_credit_window_seconds')})", "C", "window"))
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(cm.BigValueColorMode.VALUE)
        .thresholds(steps((None, NEUTRAL)))
        .mappings([value_map({"0": ("0 (nothing spent)", ORANGE)})])
        .override_by_query("C", [prop("unit", "dtdurations")])
    )


def alerts_firing_stat(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> stat.Panel:
    critical = fleet.alerts('alertstate="firing"', 'severity="critical"')
    warning = fleet.alerts('alertstate="firing"', 'severity="warning"')
    return (
        new_stat(
            "Governance alerts firing",
            "Firing Prometheus alerts named Governance* for this account (and the account-less "
            "exporter alerts), by severity. A warning hidden by a critical of the same alert, "
            "account and node (as Alertmanager inhibits it: the yellow runway warning while "
            "red) is not counted. Details in the 'Governance alerts' table below.",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(query(f"count({critical}) or vector(0)", "A", "critical"))
        .with_target(
            query(
                f"count({warning} unless on (alertname, account, {fleet.node_labels}) {critical}) "
                "or vector(0)",
                "B",
                "warning",
            )
        )
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .thresholds(steps((None, GREEN), (1.0, RED)))
        .override_by_query("B", [prop("thresholds", steps_json((None, GREEN), (1, YELLOW)))])
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

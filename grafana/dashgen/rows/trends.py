"""The Trends row: balance, runway and failed runs over the selected time range."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashgen.labels import Fleet
from dashgen.widgets import (
    BLUE,
    RED,
    TRANSPARENT,
    Panel,
    grid,
    new_timeseries,
    query,
    runway_steps,
    steps,
)
from exporter.policy import RED_RUNWAY_SECONDS, YELLOW_RUNWAY_SECONDS

# Trend panel only: +Inf (nothing spent) cannot be drawn, so runway is capped there.
RUNWAY_PLOT_CAP_SECONDS = 7 * 86400


def balance_timeseries(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> timeseries.Panel:
    return (
        new_timeseries(
            "Balance over time",
            "Balance of the governance account in credits. The dashed line is the red "
            "threshold at 1 credit: balances are whole credits, so below it means 0 or "
            "less, where every governance run is rejected with insufficient_credits.",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(query(fleet.balance, "A", "{{account}}", instant=False))
        .thresholds(steps((None, RED), (1.0, TRANSPARENT)))
        .thresholds_style(cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED))
        .axis_soft_min(0)
    )


def runway_timeseries(*, x: int, y: int, w: int, h: int, fleet: Fleet) -> timeseries.Panel:
    return (
        new_timeseries(
            "Runway over time",
            f"Runway with the alert thresholds drawn: red below {RED_RUNWAY_SECONDS // 3600} h, "
            f"yellow to {YELLOW_RUNWAY_SECONDS // 3600} h, green above. Capped at "
            f"{RUNWAY_PLOT_CAP_SECONDS // 86400} days so that an unbounded runway (nothing "
            "spent, reported as +Inf) stays on the chart.",
            "s",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            query(
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
        new_timeseries(
            "Failed runs over time by reason",
            "Failed runs in the exporter's trailing window, summed over the selected "
            "charters, by reason (a windowed count: a step up is a new failure, a step "
            "down is an old one leaving the window).",
            "short",
            grid(x=x, y=y, w=w, h=h),
        )
        .with_target(
            query(
                f"sum by (reason) ({fleet.charter('governance_schedule_failed_runs')})",
                "A",
                "{{reason}}",
                instant=False,
            )
        )
        .thresholds(steps((None, TRANSPARENT)))
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

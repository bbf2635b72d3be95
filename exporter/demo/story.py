"""The demo node's story: its options, its phases in order, and what each phase says when it starts.

Today's node (``current``) plays healthy → provider unfunded → balance under one
run's cost → topped up → webhook plane stopped → webhook plane resumed; the
February node (``2026-02``) drains → empty → topped up. ``next_phase`` says when a
phase is over; ``exporter.demo.driver`` writes what each phase does to the rows.
"""

from __future__ import annotations

import argparse
import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from exporter.demo import node
from exporter.demo.node import NODE_CURRENT, NODES, Work
from exporter.model import burn_rate, runway_seconds
from exporter.policy import Health, credit_health
from exporter.settings import DEFAULT_MIN_RUN_COST_CREDITS

LOW_BALANCE = 1_000_000  # under one run's cost: the preflight check rejects every run
MIN_RUN_COST = DEFAULT_MIN_RUN_COST_CREDITS


@dataclass(frozen=True)
class DriverOptions:
    """Which node, how fast its story goes; see the module doc."""

    speed: float = 60.0
    node: str = NODE_CURRENT
    healthy_seconds: float = 120.0  # current: healthy before the outage, and after the top-up
    drain_seconds: float = 240.0  # 2026-02: from 36 h of runway to 0
    outage_seconds: float = 120.0  # each credit outage phase
    webhook_seconds: float = 240.0  # current: the webhook plane stopped (silent after 60 s)
    start_runway_hours: float = 36.0
    charter_cost: int = 1_000_000  # a charter's (or the heartbeat's) run, when healthy
    review_cost: int = 300_000
    failure_rate: float = 0.0  # random timeouts of healthy runs
    seed: int | None = None

    @property
    def window_seconds(self) -> int:
        """The exporter's window: one demo day."""
        return node.window_seconds(self.speed)

    @property
    def run_gap(self) -> timedelta:
        """A quarter of a demo hour: the gap between the February charters' runs."""
        return timedelta(seconds=node.DEMO_HOUR_SECONDS / 4 / self.speed)

    def works(self) -> tuple[Work, ...]:
        return node.plan(
            self.node, self.speed, charter_cost=self.charter_cost, review_cost=self.review_cost
        )


@dataclass(frozen=True)
class RunEvent:
    """One run (or ledger collection, or webhook receipt) the driver wrote."""

    at: datetime
    charter: str
    status: str
    reason: str | None
    charged: int
    balance: int


@dataclass(frozen=True)
class CreditState:
    balance: int
    spent: int
    window_seconds: int

    @property
    def runway_seconds(self) -> float:
        return runway_seconds(self.balance, burn_rate(self.spent, self.window_seconds))

    @property
    def health(self) -> Health:
        return credit_health(self.balance, self.runway_seconds, min_run_cost_credits=MIN_RUN_COST)

    def describe(self) -> str:
        runway = self.runway_seconds
        hours = "unbounded" if runway == float("inf") else f"{runway / 3600:.1f} h"
        return (
            f"balance {self.balance / 1e6:,.1f}M credits, spent {self.spent / 1e6:,.1f}M "
            f"in the window, runway {hours}: {self.health.value}"
        )


class Phase(enum.StrEnum):
    HEALTHY = "healthy"
    PROVIDER_DOWN = "provider unfunded"
    LOW_BALANCE = "balance under one run's cost"
    DRAINING = "draining"
    EMPTY = "empty"
    RECOVERED = "topped up"
    WEBHOOK_DOWN = "webhook plane stopped"
    WEBHOOK_BACK = "webhook plane resumed"


def next_phase(phase: Phase, elapsed: float, options: DriverOptions) -> Phase | None:
    """The phase that follows ``phase`` after ``elapsed`` seconds in it, or None while it
    lasts. DRAINING ends when the balance is gone (the driver sees it), not by time;
    RECOVERED is the February story's end; WEBHOOK_BACK is today's."""
    lengths = {
        Phase.HEALTHY: (options.healthy_seconds, Phase.PROVIDER_DOWN),
        Phase.PROVIDER_DOWN: (options.outage_seconds, Phase.LOW_BALANCE),
        Phase.LOW_BALANCE: (options.outage_seconds, Phase.RECOVERED),
        Phase.EMPTY: (options.outage_seconds, Phase.RECOVERED),
        Phase.WEBHOOK_DOWN: (options.webhook_seconds, Phase.WEBHOOK_BACK),
    }
    if phase == Phase.RECOVERED and options.node == NODE_CURRENT:
        lengths[Phase.RECOVERED] = (options.healthy_seconds, Phase.WEBHOOK_DOWN)
    length, following = lengths.get(phase, (float("inf"), phase))
    return following if elapsed >= length else None


def announcement(phase: Phase, options: DriverOptions, now: datetime) -> str:
    """The log line that says what the phase ``phase``, starting at ``now``, does."""
    if phase == Phase.PROVIDER_DOWN:
        return (
            "OUTAGE: the LLM provider account is unfunded: the heartbeat and the PR reviews "
            "now fail with provider_unavailable, though the balance looks fine "
            f"({options.outage_seconds:.0f} s)"
        )
    if phase == Phase.LOW_BALANCE:
        return (
            f"OUTAGE: the provider is funded again, but the account holds "
            f"{LOW_BALANCE / 1e6:.1f}M credits, under one run's cost "
            f"({MIN_RUN_COST / 1e6:.1f}M): every run is now rejected with insufficient_credits "
            f"though the balance is positive ({options.outage_seconds:.0f} s)"
        )
    if phase == Phase.RECOVERED:
        return (
            "RECOVERED: the account is topped up; the failures leave the exporter's window "
            f"(one demo day, {options.window_seconds} s) by "
            f"{(now + timedelta(seconds=options.window_seconds)):%H:%M:%S}, and every "
            "credit alert resolves"
        )
    if phase == Phase.WEBHOOK_DOWN:
        return (
            "OUTAGE: the webhook plane refuses every delivery (the 2026-06-11 incident): no "
            "ingestion receipts and no PR reviews; the ledger's collect goes on "
            f"({options.webhook_seconds:.0f} s)"
        )
    if phase == Phase.WEBHOOK_BACK:
        return (
            "RECOVERED: the webhook plane delivers again: receipts and PR reviews resume, and "
            "GovernanceLedgerWebhookSilent resolves with the next receipt"
        )
    return f"the demo node is now {phase.value}"


# --- the story's options on a command line (the demo's and the driver's) ---------------


def add_driver_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DriverOptions()
    group = parser.add_argument_group("demo activity")
    group.add_argument(
        "--node",
        choices=NODES,
        default=defaults.node,
        help="the node's shape: 'current' (the default), today's operator node (hourly "
        "HEARTBEAT, the ledger's daily collect and its epochs, webhook receipts, PR reviews, "
        "the four February charters retired) whose provider goes unfunded, then whose "
        "balance falls under one run's cost, then whose webhook plane stops; '2026-02', the "
        "node of 2026-02-15 (four hourly charters) whose balance drains to 0",
    )
    group.add_argument(
        "--speed",
        type=_positive_float,
        default=defaults.speed,
        help="demo seconds per real second: 60 (the default) runs an hourly schedule "
        "once a real minute, and the exporter's window is one demo day (24 real min)",
    )
    group.add_argument(
        "--healthy-minutes",
        type=_positive_float,
        default=defaults.healthy_seconds / 60,
        help="current node: real minutes of health before the outage, and between the "
        "top-up and the webhook plane's stop (default: %(default)s)",
    )
    group.add_argument(
        "--outage-minutes",
        type=_positive_float,
        default=defaults.outage_seconds / 60,
        help="real minutes of each outage: current node, the provider unfunded, then the "
        "balance under one run's cost; 2026-02, runs rejected at a balance of 0; then the "
        "account is topped up (default: %(default)s)",
    )
    group.add_argument(
        "--drain-minutes",
        type=_positive_float,
        default=defaults.drain_seconds / 60,
        help="2026-02 node: real minutes from 36 h of runway (green) to a balance of 0 "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--webhook-minutes",
        type=_positive_float,
        default=defaults.webhook_seconds / 60,
        help="current node: real minutes the webhook plane stops (no receipts, no PR "
        "reviews), then it resumes; its silence is called after 4 gaps between receipts, "
        "a demo hour (default: %(default)s)",
    )
    group.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable demo")


def options_from(args: argparse.Namespace) -> DriverOptions:
    return DriverOptions(
        speed=args.speed,
        node=args.node,
        healthy_seconds=args.healthy_minutes * 60,
        drain_seconds=args.drain_minutes * 60,
        outage_seconds=args.outage_minutes * 60,
        webhook_seconds=args.webhook_minutes * 60,
        seed=args.seed,
    )


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value

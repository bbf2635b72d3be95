"""Every threshold and every verdict: what is green, yellow or red, and which alert says so.

Pure: each function takes the views the model built and ``now``; nothing here reads
a clock, a socket or a file. ``check``, the status page and the tests of the alert
rules read these numbers and rules, and nothing else decides a colour. The alert
rules (``prometheus/rules/``) and the dashboard (``grafana/``) state the same
numbers in their own languages; ``tests/unit/test_parity.py`` holds them equal.

A ``Problem`` names the alert that covers it. ``check`` and the page are one
reading with no history, so they have no ``for:`` delay: they report at once
what the alert reports once it has lasted.

Now versus the window: a problem that counts failures in the window is current
only while the work that failed (the same charter, or the same kind of run
without a schedule) has not succeeded since its last failure. Once it has, the
problem is ``recovered``: listed, but it no longer colours the verdict, and its
alert (which compares the same two timestamps) has stopped.

This package is the one place of the policy; its face is this module
(``from exporter.policy import X`` for every name below). The parts:
``thresholds`` (every number), ``core`` (Health, Problem, Assessment),
``credit``, ``charters`` (charters and runs without a schedule), ``memory`` (the
gateway's files), ``ledger`` and ``assessment`` (``assess``, the whole verdict).
"""

from __future__ import annotations

from exporter.policy.assessment import assess, charter_health, node_problems
from exporter.policy.charters import (
    charter_problems,
    stall_limit_seconds,
    stalled_for,
    work_problems,
)
from exporter.policy.core import Assessment, Health, Problem, worst
from exporter.policy.credit import credit_health, credit_level, credit_problems, runs_refused
from exporter.policy.ledger import (
    LEDGER_COLLECT,
    collect_stall_limit_seconds,
    collect_stalled,
    ledger_problems,
    receipt_silence_limit_seconds,
    receipt_usual_gap_seconds,
    receipts_silent,
)
from exporter.policy.memory import (
    BUDGET_GATE,
    budget_gate_open,
    budget_header_fresh,
    budget_problems,
    heartbeat_limit_seconds,
    heartbeat_problems,
    memory_problems,
)
from exporter.policy.thresholds import (
    BUDGET_HEADER_MAX_AGE_SECONDS,
    DEFAULT_LEDGER_COLLECT_GRACE_SECONDS,
    DEFAULT_LEDGER_REVIEW_WAIT_SECONDS,
    DEFAULT_LEDGER_SILENCE_FACTOR,
    DEFAULT_LEDGER_SILENCE_MIN_SECONDS,
    DISTRIBUTION_GRACE_SECONDS,
    HEARTBEAT_DEFAULT_INTERVAL_SECONDS,
    HEARTBEAT_STALE_INTERVALS,
    RECEIPT_GAP_QUANTILE,
    RECEIPT_MIN_SAMPLE,
    RED_RUNWAY_SECONDS,
    STALL_GRACE_SECONDS,
    STALL_INTERVALS,
    YELLOW_RUNWAY_SECONDS,
    LedgerThresholds,
)

__all__ = [
    "BUDGET_GATE",
    "BUDGET_HEADER_MAX_AGE_SECONDS",
    "DEFAULT_LEDGER_COLLECT_GRACE_SECONDS",
    "DEFAULT_LEDGER_REVIEW_WAIT_SECONDS",
    "DEFAULT_LEDGER_SILENCE_FACTOR",
    "DEFAULT_LEDGER_SILENCE_MIN_SECONDS",
    "DISTRIBUTION_GRACE_SECONDS",
    "HEARTBEAT_DEFAULT_INTERVAL_SECONDS",
    "HEARTBEAT_STALE_INTERVALS",
    "LEDGER_COLLECT",
    "RECEIPT_GAP_QUANTILE",
    "RECEIPT_MIN_SAMPLE",
    "RED_RUNWAY_SECONDS",
    "STALL_GRACE_SECONDS",
    "STALL_INTERVALS",
    "YELLOW_RUNWAY_SECONDS",
    "Assessment",
    "Health",
    "LedgerThresholds",
    "Problem",
    "assess",
    "budget_gate_open",
    "budget_header_fresh",
    "budget_problems",
    "charter_health",
    "charter_problems",
    "collect_stall_limit_seconds",
    "collect_stalled",
    "credit_health",
    "credit_level",
    "credit_problems",
    "heartbeat_limit_seconds",
    "heartbeat_problems",
    "ledger_problems",
    "memory_problems",
    "node_problems",
    "receipt_silence_limit_seconds",
    "receipt_usual_gap_seconds",
    "receipts_silent",
    "runs_refused",
    "stall_limit_seconds",
    "stalled_for",
    "work_problems",
    "worst",
]

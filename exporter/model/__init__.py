"""The pure part: what the facts read from the database mean.

Nothing here reads a clock or a socket: every function takes ``now`` (or the
numbers it needs) as an argument, so each can be tested exhaustively. The one
file read is the time zone database (tzdata), through ``ZoneInfo``.

This package's face: ``from exporter.model import X`` for every name below. The
parts: ``runs`` (statuses, failure reasons, run kinds, safe label values),
``schedules`` (next run, charters, drift) and ``views`` (credit, work without a
schedule, the whole view of one snapshot).
"""

from __future__ import annotations

from exporter.model.runs import (
    BLANK_CHARACTERS,
    FAILURE_REASONS,
    LEDGER_GRAPH_ID,
    MAX_LABEL_LENGTH,
    OTHER_KIND,
    OUTCOMES,
    RUN_KINDS,
    RUN_STATUSES,
    SPEND_KINDS,
    UNATTRIBUTED,
    UNKNOWN_KIND,
    UNKNOWN_STATUS,
    charter_name,
    failure_reason,
    is_failure,
    normalise_status,
    run_kind_label,
    safe_label,
    still_failing,
)
from exporter.model.schedules import (
    CharterView,
    NextRun,
    ScheduleConfigError,
    ScheduleFacts,
    charters,
    drift,
    next_run,
    soonest_next_run,
)
from exporter.model.views import (
    CREDITS_PER_USD,
    CreditView,
    GovernanceView,
    ReasonFailures,
    RecentRun,
    WorkView,
    attributed_spend,
    burn_rate,
    credit_view,
    finished_failures,
    finished_outcomes,
    governance_view,
    reason_failures,
    runway_seconds,
    schedule_facts,
    unscheduled_work,
    whole_credits,
)

__all__ = [
    "BLANK_CHARACTERS",
    "CREDITS_PER_USD",
    "FAILURE_REASONS",
    "LEDGER_GRAPH_ID",
    "MAX_LABEL_LENGTH",
    "OTHER_KIND",
    "OUTCOMES",
    "RUN_KINDS",
    "RUN_STATUSES",
    "SPEND_KINDS",
    "UNATTRIBUTED",
    "UNKNOWN_KIND",
    "UNKNOWN_STATUS",
    "CharterView",
    "CreditView",
    "GovernanceView",
    "NextRun",
    "ReasonFailures",
    "RecentRun",
    "ScheduleConfigError",
    "ScheduleFacts",
    "WorkView",
    "attributed_spend",
    "burn_rate",
    "charter_name",
    "charters",
    "credit_view",
    "drift",
    "failure_reason",
    "finished_failures",
    "finished_outcomes",
    "governance_view",
    "is_failure",
    "next_run",
    "normalise_status",
    "reason_failures",
    "run_kind_label",
    "runway_seconds",
    "safe_label",
    "schedule_facts",
    "soonest_next_run",
    "still_failing",
    "unscheduled_work",
    "whole_credits",
]

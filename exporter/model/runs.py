"""What one run is: its status, failure reason and run kind, and label values made safe."""

from __future__ import annotations

import re
from datetime import datetime

RUN_STATUSES = ("pending", "running", "success", "error", "skipped", "cancelled")
UNKNOWN_STATUS = "unknown"
# What a blank error code or message may consist of; queries.py's btrim uses the
# same characters, so that SQL and Python agree on what a failure is.
BLANK_CHARACTERS = " \t\n\x0b\f\r"

# Bounded set of failure reasons; free text never becomes a label value.
FAILURE_REASONS = (
    "insufficient_credits",
    "provider_unavailable",
    "grant_validation_failed",
    "graph_execution_failed",
    "timeout",
    "internal",
    "rate_limit",
    "aborted",
    "not_found",
    "invalid_request",
    "other",
)
_CODE_REASONS = frozenset(FAILURE_REASONS) - {"other"}
_MESSAGE_REASONS = {
    "grant validation failed": "grant_validation_failed",
    "graph execution failed": "graph_execution_failed",
}

# graph_runs.run_kind (2026-03 on); anything else is "other", NULL "unknown".
RUN_KINDS = ("system_scheduled", "system_webhook", "user_immediate")
OTHER_KIND = "other"
UNKNOWN_KIND = "unknown"
# Charges whose run_id matches no run of the account.
UNATTRIBUTED = "unattributed"
SPEND_KINDS = (*RUN_KINDS, OTHER_KIND, UNKNOWN_KIND, UNATTRIBUTED)
OUTCOMES = ("success", "failure")

# Schedules whose work is a ledger collection: no run rows, no charges; its trace
# is ingestion_cursors.retrieved_at.
LEDGER_GRAPH_ID = "ledger:ingest"

_CHARTER_PREFIX = "governance:"
MAX_LABEL_LENGTH = 64
_LABEL_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def normalise_status(status: str | None) -> str:
    """A known run status, or ``unknown`` for anything the schemas do not define.

    Exact match, as the source system writes them: the SQL for the last success
    and failure compares ``status`` as is, so that the optional partial indexes
    (``WHERE status = 'success'``) still apply; trimming or lower-casing here
    would make Python and SQL disagree on what a run was.
    """
    value = status or ""
    return value if value in RUN_STATUSES else UNKNOWN_STATUS


def is_failure(status: str | None, error_code: str | None, error_message: str | None) -> bool:
    """A run failed when it errored, or was skipped with an error (a failed grant check).

    A code or message of ``BLANK_CHARACTERS`` only is no error, as in the SQL.
    """
    value = normalise_status(status)
    if value == "error":
        return True
    return value == "skipped" and bool(
        (error_code or "").strip(BLANK_CHARACTERS) or (error_message or "").strip(BLANK_CHARACTERS)
    )


def failure_reason(error_code: str | None, error_message: str | None) -> str:
    """Map a run's error onto the bounded set of reasons in ``FAILURE_REASONS``."""
    for candidate in (error_code, error_message):
        text = (candidate or "").strip().lower()
        if text in _CODE_REASONS:
            return text
        if text in _MESSAGE_REASONS:
            return _MESSAGE_REASONS[text]
    return "other"


def run_kind_label(run_kind: str | None) -> str:
    if run_kind is None or not run_kind.strip():
        return UNKNOWN_KIND
    return run_kind if run_kind in RUN_KINDS else OTHER_KIND


def safe_label(value: str) -> str:
    """Bound a label value from the database: no control characters, at most 64 chars."""
    return _LABEL_UNSAFE.sub("_", value)[:MAX_LABEL_LENGTH]


def charter_name(temporal_schedule_id: str | None, message: str | None, schedule_id: str) -> str:
    """The charter a schedule runs, lower case.

    ``governance:<charter>`` in temporal_schedule_id wins, then the input message,
    then the schedule id itself so that an odd row is still visible.
    """
    tsid = (temporal_schedule_id or "").strip()
    if tsid.lower().startswith(_CHARTER_PREFIX) and tsid[len(_CHARTER_PREFIX) :].strip():
        return safe_label(tsid[len(_CHARTER_PREFIX) :].strip().lower())
    if message and message.strip():
        return safe_label(message.strip().lower())
    return safe_label(schedule_id)


def still_failing(last_success_at: datetime | None, last_failure_at: datetime | None) -> bool:
    """Of a work with failures: no success is known to have come after its last
    failure (it never succeeded, or either time is unknown). The alert rules compare
    the same two timestamps (``last_failure > last_success``, 0 for never)."""
    if last_failure_at is None or last_success_at is None:
        return True
    return last_failure_at >= last_success_at

"""Every number the verdicts use: runway bands, stall and staleness limits, ledger defaults."""

from __future__ import annotations

from dataclasses import dataclass

# Credit runway, from the research note: red below 6 h, yellow up to 24 h.
RED_RUNWAY_SECONDS = 6 * 3600
YELLOW_RUNWAY_SECONDS = 24 * 3600

# A charter is stalled after two of its intervals plus 30 min for the run itself.
STALL_INTERVALS = 2
STALL_GRACE_SECONDS = 1800

# The gateway's own readers treat a budget header older than this as unavailable.
BUDGET_HEADER_MAX_AGE_SECONDS = 2 * 3600

# A heartbeat is stale after two of its charter's intervals; one hour (the
# gateway's rhythm) when the database knows no interval for the charter.
HEARTBEAT_STALE_INTERVALS = 2
HEARTBEAT_DEFAULT_INTERVAL_SECONDS = 3600

# The attribution ledger (exporter.ledger).
# An ended window still open after one collect interval (the ledger schedule's, else
# 24 h) plus this grace: the collect stopped.
DEFAULT_LEDGER_COLLECT_GRACE_SECONDS = 2 * 3600
# The webhook plane is silent when the newest receipt is older than FACTOR x the
# node's usual longest gap (the RECEIPT_GAP_QUANTILE of the gaps between its newest
# receipts) and older than MIN: an hourly node is flagged after 72 h (a weekend's
# quiet is shorter), one with an event every two days after 8 days. A node with
# fewer than RECEIPT_MIN_SAMPLE receipts has no cadence yet and is not judged.
DEFAULT_LEDGER_SILENCE_FACTOR = 4.0
DEFAULT_LEDGER_SILENCE_MIN_SECONDS = 72 * 3600
RECEIPT_GAP_QUANTILE = 0.9
RECEIPT_MIN_SAMPLE = 5
# An epoch in review longer than this after its window ended waits for its approvers
# (a ticket): a weekly epoch not signed before the next one is in review.
DEFAULT_LEDGER_REVIEW_WAIT_SECONDS = 7 * 86400
# A finalized epoch without a manifest, on a node that has distributions, after this.
DISTRIBUTION_GRACE_SECONDS = 86400


@dataclass(frozen=True)
class LedgerThresholds:
    """The ledger's tunable numbers (--ledger-* options)."""

    collect_grace_seconds: float = DEFAULT_LEDGER_COLLECT_GRACE_SECONDS
    receipt_silence_factor: float = DEFAULT_LEDGER_SILENCE_FACTOR
    receipt_silence_min_seconds: float = DEFAULT_LEDGER_SILENCE_MIN_SECONDS
    review_wait_seconds: float = DEFAULT_LEDGER_REVIEW_WAIT_SECONDS

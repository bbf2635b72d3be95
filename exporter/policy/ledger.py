"""The attribution ledger verdicts: a stalled collect, a silent webhook, reviews, distributions."""

from __future__ import annotations

from datetime import datetime

from exporter.ledger import (
    DistributionView,
    EpochStreamView,
    LedgerView,
    ReceiptView,
    gap_quantile,
)
from exporter.policy.core import Health, Problem
from exporter.policy.thresholds import (
    DISTRIBUTION_GRACE_SECONDS,
    RECEIPT_GAP_QUANTILE,
    RECEIPT_MIN_SAMPLE,
    LedgerThresholds,
)
from exporter.repospec import LEDGER_CHARTER
from exporter.words import (
    format_duration,
    format_window,
)


def collect_stall_limit_seconds(stream: EpochStreamView, limits: LedgerThresholds) -> float:
    return stream.collect_interval_seconds + limits.collect_grace_seconds


def collect_stalled(stream: EpochStreamView, limits: LedgerThresholds) -> bool:
    return stream.overdue_seconds > collect_stall_limit_seconds(stream, limits)


def receipt_usual_gap_seconds(receipts: ReceiptView) -> float | None:
    """The node's usual longest gap between deliveries; None before it has a cadence."""
    if receipts.sampled < RECEIPT_MIN_SAMPLE:
        return None
    return gap_quantile(receipts.gaps_seconds, RECEIPT_GAP_QUANTILE)


def receipt_silence_limit_seconds(receipts: ReceiptView, limits: LedgerThresholds) -> float | None:
    gap = receipt_usual_gap_seconds(receipts)
    if gap is None:
        return None
    return max(limits.receipt_silence_factor * gap, limits.receipt_silence_min_seconds)


def receipts_silent(receipts: ReceiptView, limits: LedgerThresholds) -> bool:
    limit = receipt_silence_limit_seconds(receipts, limits)
    silence = receipts.silence_seconds
    return limit is not None and silence is not None and silence > limit


def _node(stream: EpochStreamView) -> str:
    return f"node {stream.node_id}, scope {stream.scope_id}"


# The collect is the LEDGER_INGEST charter's work: its row in ``check`` turns red too.
LEDGER_COLLECT = LEDGER_CHARTER.lower()


def _collect_problem(stream: EpochStreamView, limits: LedgerThresholds) -> Problem | None:
    window = stream.overdue_window
    if window is None or not collect_stalled(stream, limits):
        return None
    source = "its schedule's cron" if stream.interval_from_cron else "no ledger schedule: default"
    rule = (
        f"stalled after one collect interval ({format_duration(stream.collect_interval_seconds)}, "
        f"{source}) + {format_duration(limits.collect_grace_seconds)}"
    )
    ago = format_duration(stream.overdue_seconds)
    what = (
        f"no open epoch: the newest, {format_window(window)}, ended {ago} ago and no collect "
        "opened the next"
        if stream.no_open_epoch
        else f"{format_window(window)} ended {ago} ago and is still open"
    )
    return Problem(
        Health.RED,
        LEDGER_COLLECT,
        "GovernanceLedgerCollectStalled",
        f"{what} ({_node(stream)}): the collect stopped; {rule}",
    )


def _review_problem(stream: EpochStreamView, limits: LedgerThresholds) -> Problem | None:
    oldest = stream.oldest_review
    if oldest is None or stream.review_wait_seconds <= limits.review_wait_seconds:
        return None
    return Problem(
        Health.YELLOW,
        "ledger review",
        "GovernanceLedgerEpochAwaitingApproval",
        f"{stream.review_epochs} epoch(s) in review ({_node(stream)}); the oldest, "
        f"{format_window(oldest)}, has waited {format_duration(stream.review_wait_seconds)} "
        f"for its approvers since its window ended (a ticket after "
        f"{format_duration(limits.review_wait_seconds)})",
    )


def _reviews_words(ledger: LedgerView, limit: float, now: datetime) -> str:
    if not ledger.reviews_observable:
        return ""
    last = ledger.last_review_at
    if last is None:
        return "; PR reviews stopped too: no system_webhook run in the last 30 d"
    age = (now - last).total_seconds()
    if age > limit:
        ago = format_duration(age)
        return f"; PR reviews stopped too: the last system_webhook run was {ago} ago"
    return f"; PR reviews still run (the last {format_duration(age)} ago)"


def _webhook_problem(
    ledger: LedgerView, receipts: ReceiptView, limits: LedgerThresholds, now: datetime
) -> Problem | None:
    limit = receipt_silence_limit_seconds(receipts, limits)
    if limit is None or receipts.silence_seconds is None or not receipts_silent(receipts, limits):
        return None
    gap = format_duration(receipt_usual_gap_seconds(receipts) or 0)
    return Problem(
        Health.RED,
        "webhook plane",
        "GovernanceLedgerWebhookSilent",
        f"no webhook receipt for {format_duration(receipts.silence_seconds)} on node "
        f"{receipts.node_id} (its usual longest gap is {gap}: silent after "
        f"max({limits.receipt_silence_factor:g} x that, "
        f"{format_duration(limits.receipt_silence_min_seconds)}) = {format_duration(limit)})"
        + _reviews_words(ledger, limit, now),
    )


def _distribution_problem(view: DistributionView) -> Problem | None:
    if view.manifests == 0 or view.finalized_without_manifest == 0:
        return None  # a node without distributions (no token contract) never has manifests
    age = view.oldest_unmanifested_age_seconds
    if age <= DISTRIBUTION_GRACE_SECONDS:
        return None
    return Problem(
        Health.YELLOW,
        "ledger distributions",
        "GovernanceLedgerDistributionMissing",
        f"{view.finalized_without_manifest} finalized epoch(s) without a distribution manifest "
        f"(node {view.node_id}, scope {view.scope_id}), the oldest finalized "
        f"{format_duration(age)} ago, on a node that has distributions",
    )


def _observability_problem(ledger: LedgerView) -> Problem | None:
    hidden = [
        name
        for name, readable in (
            ("epochs", ledger.epochs_observable),
            ("ingestion_receipts", ledger.receipts_observable),
        )
        if not readable
    ]
    if not ledger.has_ledger or not hidden:
        return None
    return Problem(
        Health.YELLOW,
        "ledger",
        "GovernanceLedgerNotObservable",
        f"the ledger's {' and '.join(hidden)} exist but this role cannot read them: run "
        "sql/monitoring-role.sql again (the collect and the webhook plane go unwatched)",
    )


def ledger_problems(ledger: LedgerView, limits: LedgerThresholds, now: datetime) -> list[Problem]:
    """The collect, the webhook plane, approvals, distributions and dispatch schedules."""
    found: list[Problem | None] = [_observability_problem(ledger)]
    for stream in ledger.streams:
        found += [_collect_problem(stream, limits), _review_problem(stream, limits)]
    found += [_webhook_problem(ledger, r, limits, now) for r in ledger.receipts]
    found += [_distribution_problem(d) for d in ledger.distributions]
    for dispatch in ledger.dispatch:
        if dispatch.state == "paused":
            found.append(
                Problem(
                    Health.YELLOW,
                    "ledger dispatch",
                    "GovernanceLedgerDispatchPaused",
                    f"the operator's {dispatch.charter} schedule for node {dispatch.node} is "
                    "paused: that node's epochs stop advancing",
                )
            )
    return [p for p in found if p is not None]

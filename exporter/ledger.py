"""The pure meaning of the attribution ledger's traces: epochs, receipts, distributions, dispatch.

Since 2026-08 the governance a node runs is the ledger (SOURCE-SYSTEM.md, "A node
since 2026-08"): a daily collect keeps one open epoch per (node_id, scope_id) for the
current window, webhooks write ingestion_receipts, approvers sign the epoch in review,
distributions follow. Like ``exporter.model`` nothing here reads a clock or a socket:
``now`` is an argument. Thresholds and verdicts are ``exporter.policy``'s.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from exporter.model import (
    LEDGER_GRAPH_ID,
    ScheduleConfigError,
    next_run,
    safe_label,
    soonest_next_run,
)
from exporter.snapshot import (
    DistributionStreamRow,
    EpochStreamRow,
    ReceiptStreamRow,
    ScheduleRow,
    Snapshot,
)

EPOCH_STATUSES = ("open", "review", "finalized")
# The collect's interval when no ledger schedule of the scope tells it: daily.
DEFAULT_COLLECT_INTERVAL_SECONDS = 86400

# Dispatch schedule states, for governance_ledger_dispatch_schedule_state.
DISPATCH_STATES = ("enabled", "paused", "pruned")
# ledger_node_id of a two-part id (governance:<charter>): the node of this database;
# of an id that fits no known shape: still shown, under this value.
LOCAL_NODE = "local"
UNPARSED_NODE = "unparsed"


# --- schedule ids ------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleId:
    """A temporal_schedule_id taken apart: ``governance:<charter>``,
    ``governance:<nodeId>:<charter>`` or ``node-task:<nodeId>:<id>``."""

    kind: str  # "governance" or "node-task"
    node_id: str | None
    name: str


def parse_schedule_id(temporal_schedule_id: str | None) -> ScheduleId | None:
    """The parts of a schedule id, or None when it fits none of the three shapes."""
    text = (temporal_schedule_id or "").strip()
    prefix, _, rest = text.partition(":")
    prefix = prefix.lower()
    if prefix not in ("governance", "node-task") or not rest:
        return None
    parts = rest.split(":", 1)
    if len(parts) == 1:
        if prefix != "governance" or not parts[0].strip():
            return None
        return ScheduleId(prefix, None, parts[0].strip().lower())
    node, name = parts[0].strip(), parts[1].strip()
    if not node or not name:
        return None
    return ScheduleId(prefix, node.lower(), name.lower())


# --- the operator's dispatch schedules ------------------------------------------------


@dataclass(frozen=True)
class DispatchView:
    """One node's collect (or job) that the operator dispatches: not a charter, no runs."""

    node: str  # the ledger_node_id label: the target node, LOCAL_NODE or UNPARSED_NODE
    charter: str
    state: str  # one of DISPATCH_STATES
    schedules: int
    next_run_at: datetime | None = None
    interval_seconds: float | None = None
    config_error: str | None = None


def _dispatch_key(row: ScheduleRow) -> tuple[str, str]:
    parsed = parse_schedule_id(row.temporal_schedule_id)
    if parsed is None:
        fallback = row.temporal_schedule_id or row.graph_id or row.schedule_id
        return UNPARSED_NODE, safe_label(fallback.strip() or row.schedule_id)
    name = parsed.name if parsed.kind == "governance" else f"node-task:{parsed.name}"
    return safe_label(parsed.node_id or LOCAL_NODE), safe_label(name)


def _state(rows: Sequence[ScheduleRow]) -> str:
    if any(r.enabled for r in rows):
        return "enabled"
    return "pruned" if all(r.next_run_at is None for r in rows) else "paused"


def dispatch_views(rows: Sequence[ScheduleRow], now: datetime) -> list[DispatchView]:
    """One view per (node, charter), rows of the same pair merged (label sets stay unique)."""
    grouped: dict[tuple[str, str], list[ScheduleRow]] = {}
    for row in rows:
        grouped.setdefault(_dispatch_key(row), []).append(row)
    views = []
    for (node, charter), group in sorted(grouped.items()):
        state = _state(group)
        soonest, errors = soonest_next_run(group, now)
        views.append(
            DispatchView(
                node=node,
                charter=charter,
                state=state,
                schedules=len(group),
                next_run_at=soonest.at if soonest else None,
                interval_seconds=soonest.interval_seconds if soonest else None,
                config_error="; ".join(errors) or None,
            )
        )
    return views


# --- epochs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    epoch_id: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class EpochStreamView:
    """The epochs of one (node_id, scope_id) and how far the collect is behind."""

    node_id: str
    scope_id: str
    epochs_by_status: dict[str, int]
    open_window: Window | None
    # The newest window that has ended while the collect has not moved on: the open
    # epoch's, once its period_end has passed; the newest epoch's when none is open.
    overdue_window: Window | None
    overdue_seconds: float
    collect_interval_seconds: float
    interval_from_cron: bool
    review_epochs: int
    oldest_review: Window | None
    # Seconds the oldest epoch in review has waited since its window ended.
    review_wait_seconds: float
    last_finalized_at: datetime | None

    @property
    def no_open_epoch(self) -> bool:
        return self.open_window is None


def _window(epoch_id: int | None, start: datetime | None, end: datetime | None) -> Window | None:
    if epoch_id is None or start is None or end is None:
        return None
    return Window(epoch_id, start, end)


def collect_interval(
    schedules: Sequence[ScheduleRow], scope_id: str, now: datetime
) -> float | None:
    """The interval of the ledger schedule of ``scope_id`` (of the only ledger schedule,
    when none names the scope), from its cron; None when no schedule tells."""
    ledger = [s for s in schedules if s.graph_id == LEDGER_GRAPH_ID]
    mine = [s for s in ledger if s.scope_id == scope_id] or (ledger if len(ledger) == 1 else [])
    for row in mine:
        try:
            return next_run(row.cron, row.timezone, now).interval_seconds
        except ScheduleConfigError:
            continue
    return None


def epoch_stream(
    row: EpochStreamRow, schedules: Sequence[ScheduleRow], now: datetime
) -> EpochStreamView:
    open_window = _window(row.open_epoch_id, row.open_period_start, row.open_period_end)
    latest = _window(row.latest_epoch_id, row.latest_period_start, row.latest_period_end)
    candidate = open_window or latest
    overdue = None
    if candidate is not None and candidate.end <= now:
        overdue = candidate
    review = _window(
        row.oldest_review_epoch_id, row.oldest_review_period_start, row.oldest_review_period_end
    )
    interval = collect_interval(schedules, row.scope_id, now)
    return EpochStreamView(
        node_id=row.node_id,
        scope_id=row.scope_id,
        epochs_by_status={
            "open": row.epochs_open,
            "review": row.epochs_review,
            "finalized": row.epochs_finalized,
        },
        open_window=open_window,
        overdue_window=overdue,
        overdue_seconds=(now - overdue.end).total_seconds() if overdue else 0.0,
        collect_interval_seconds=interval or DEFAULT_COLLECT_INTERVAL_SECONDS,
        interval_from_cron=interval is not None,
        review_epochs=row.epochs_review,
        oldest_review=review,
        review_wait_seconds=max((now - review.end).total_seconds(), 0.0) if review else 0.0,
        last_finalized_at=row.last_finalized_at,
    )


# --- receipts ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptView:
    """One node's newest webhook deliveries: the newest, and the gaps between them."""

    node_id: str
    sampled: int
    newest_at: datetime | None
    silence_seconds: float | None
    # Gaps between consecutive deliveries, in seconds, ascending.
    gaps_seconds: tuple[float, ...]


def receipt_view(row: ReceiptStreamRow, now: datetime) -> ReceiptView:
    times = sorted((t for t in row.ingested_at if t is not None), reverse=True)
    gaps = sorted((a - b).total_seconds() for a, b in itertools.pairwise(times))
    newest = times[0] if times else None
    return ReceiptView(
        node_id=row.node_id,
        sampled=len(times),
        newest_at=newest,
        silence_seconds=max((now - newest).total_seconds(), 0.0) if newest else None,
        gaps_seconds=tuple(gaps),
    )


def gap_quantile(gaps: Sequence[float], quantile: float) -> float | None:
    """The nearest-rank ``quantile`` of ascending ``gaps``; None without any."""
    if not gaps:
        return None
    # round(): 0.9 * 10 is 9.000000000000002 in floats, whose ceiling is 10.
    rank = math.ceil(round(quantile * len(gaps), 9))
    return gaps[min(max(rank, 1), len(gaps)) - 1]


# --- distributions -------------------------------------------------------------------


@dataclass(frozen=True)
class DistributionView:
    node_id: str
    scope_id: str
    manifests: int
    pending_liabilities: int
    oldest_pending_age_seconds: float
    finalized_without_manifest: int
    oldest_unmanifested_closed_at: datetime | None
    # Since the oldest of those was finalized; 0 with none.
    oldest_unmanifested_age_seconds: float = 0.0


def distribution_view(row: DistributionStreamRow, now: datetime) -> DistributionView:
    pending_age = (now - row.oldest_pending_at).total_seconds() if row.oldest_pending_at else 0.0
    closed = row.oldest_unmanifested_closed_at
    unmanifested_age = (now - closed).total_seconds() if closed else 0.0
    return DistributionView(
        node_id=row.node_id,
        scope_id=row.scope_id,
        manifests=row.manifests,
        pending_liabilities=row.pending_liabilities,
        oldest_pending_age_seconds=max(pending_age, 0.0),
        finalized_without_manifest=row.finalized_without_manifest,
        oldest_unmanifested_closed_at=closed,
        oldest_unmanifested_age_seconds=max(unmanifested_age, 0.0),
    )


# --- the whole ------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerView:
    """What the exporter says about the ledger of one snapshot."""

    has_ledger: bool
    epochs_observable: bool
    receipts_observable: bool
    distributions_observable: bool
    streams: tuple[EpochStreamView, ...]
    streams_truncated: bool
    receipts: tuple[ReceiptView, ...]
    receipts_truncated: bool
    # The account's latest PR review (system_webhook run; 30 days back), when readable.
    last_review_at: datetime | None
    reviews_observable: bool
    distributions: tuple[DistributionView, ...]
    dispatch: tuple[DispatchView, ...]
    dispatch_truncated: bool
    # ingestion_cursors' newest retrieved_at by scope, where a collect polls.
    cursors: dict[str, datetime]


def ledger_view(snapshot: Snapshot) -> LedgerView:
    now = snapshot.taken_at
    schema = snapshot.schema
    facts = snapshot.ledger
    return LedgerView(
        has_ledger=schema.has_ledger,
        epochs_observable=schema.ledger_epochs_readable,
        receipts_observable=schema.ledger_receipts_readable,
        distributions_observable=schema.ledger_distributions_readable,
        streams=tuple(epoch_stream(r, snapshot.schedules, now) for r in facts.epochs),
        streams_truncated=facts.epochs_truncated,
        receipts=tuple(receipt_view(r, now) for r in facts.receipts),
        receipts_truncated=facts.receipts_truncated,
        last_review_at=facts.last_review.last_review_at if facts.last_review else None,
        reviews_observable=facts.last_review is not None,
        distributions=tuple(distribution_view(r, now) for r in facts.distributions),
        dispatch=tuple(dispatch_views(facts.dispatch, now)),
        dispatch_truncated=facts.dispatch_truncated,
        cursors={c.scope_id: c.last_retrieved_at for c in snapshot.ledger_cursors},
    )

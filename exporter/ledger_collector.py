"""Maps the attribution ledger of one collection onto metric families, declared once in METRICS.

The label naming the ledger's node is ``ledger_node_id``, never ``node_id``: the
operators' scrape (Grafana Alloy) adds a *target* label ``node_id`` to every series,
and Prometheus renames a scraped label that collides with a target label to
``exported_node_id``, so a ``node_id`` of ours would lose its name (or, with
honor_labels, overwrite theirs). Series exist only on a node with the ledger's
tables (2026-08 on), except the operator's dispatch schedules, which exist wherever
such rows do; nodes of 2026-02/03/10 get none.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.cache import SnapshotCache
from exporter.collection import CollectionResult
from exporter.declaration import NodeDeclaration
from exporter.exposition import Families
from exporter.ledger import DISPATCH_STATES, EPOCH_STATUSES, LedgerView, ledger_view
from exporter.metricspec import MetricSpec
from exporter.metricspec import unix_time_or_zero as _ts
from exporter.policy import (
    LedgerThresholds,
    collect_stall_limit_seconds,
    receipt_silence_limit_seconds,
    receipt_usual_gap_seconds,
)

STREAM = ("ledger_node_id", "scope_id")
NODE = ("ledger_node_id",)
DISPATCH = ("account", "ledger_node_id", "charter")
OBSERVABLE_PARTS = ("epochs", "receipts", "distributions")
TRUNCATED_PARTS = ("epoch_streams", "receipt_nodes", "dispatch_schedules")


_NODE_NOTE = " ledger_node_id: the ledger's node_id (not node_id, which the scrape adds)."

METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            "governance_ledger_observable",
            "1 when this role can read the ledger's part (epochs, receipts, distributions); "
            "0: not observable (distributions need BYPASSRLS: their tables force row-level "
            "security with no policy). Only on nodes with the ledger's tables.",
            ("part",),
        ),
        MetricSpec(
            "governance_ledger_truncated",
            "1 when more epoch streams, receipt nodes or dispatch schedules exist than "
            "--max-ledger-nodes; the rest are not exported.",
            ("part",),
        ),
        MetricSpec(
            "governance_ledger_epochs",
            "Epochs of the (node, scope) stream by status: open, review, finalized." + _NODE_NOTE,
            (*STREAM, "status"),
        ),
        MetricSpec(
            "governance_ledger_open_epoch_start_timestamp_seconds",
            "Start of the open epoch's window (period_start), Unix time; absent with none.",
            STREAM,
        ),
        MetricSpec(
            "governance_ledger_open_epoch_end_timestamp_seconds",
            "End of the open epoch's window (period_end), Unix time; absent with none.",
            STREAM,
        ),
        MetricSpec(
            "governance_ledger_collect_overdue_seconds",
            "Seconds since the newest window ended while the collect has not moved on (the "
            "open epoch's period_end passed, or no open epoch after the newest); 0 while the "
            "open window runs. Stalled above governance_ledger_collect_stall_limit_seconds.",
            STREAM,
        ),
        MetricSpec(
            "governance_ledger_collect_stall_limit_seconds",
            "One collect interval (the ledger schedule's cron, else 24 h) plus "
            "--ledger-collect-grace-seconds: the collect is stalled (red) beyond it.",
            STREAM,
        ),
        MetricSpec(
            "governance_ledger_review_oldest_wait_seconds",
            "Seconds the oldest epoch in review has waited for its approvers since its "
            "window ended; 0 with none in review.",
            STREAM,
        ),
        MetricSpec(
            "governance_ledger_review_wait_limit_seconds",
            "--ledger-review-wait-seconds: an epoch in review longer is a warning.",
            (),
        ),
        MetricSpec(
            "governance_ledger_last_finalized_timestamp_seconds",
            "When the stream's latest epoch was finalized (closed_at), Unix time; 0 if never.",
            STREAM,
        ),
        MetricSpec(
            "governance_ledger_cursor_last_retrieved_timestamp_seconds",
            "Newest ingestion_cursors.retrieved_at of the scope, Unix time; only where a "
            "collect polls (webhook-only nodes write none, which is no problem).",
            ("scope_id",),
        ),
        MetricSpec(
            "governance_ledger_last_receipt_timestamp_seconds",
            "Newest ingested_at among the node's 50 newest receipts by event_time (the "
            "webhook plane's last delivery), Unix time." + _NODE_NOTE,
            NODE,
        ),
        MetricSpec(
            "governance_ledger_receipt_usual_gap_seconds",
            "The node's usual longest gap between receipts: the 90th percentile of the gaps "
            "between its 50 newest. Absent below 5 receipts (no cadence yet).",
            NODE,
        ),
        MetricSpec(
            "governance_ledger_receipt_silence_limit_seconds",
            "Webhook silence beyond which the plane is red: max(--ledger-silence-factor x "
            "the usual gap, --ledger-silence-min-seconds). Absent with no "
            "cadence yet.",
            NODE,
        ),
        MetricSpec(
            "governance_ledger_last_review_run_timestamp_seconds",
            "The account's latest PR review (system_webhook run, last 30 days), Unix time; "
            "0 if none: with the receipts silent, PR reviews stopped too.",
            ("account",),
        ),
        MetricSpec(
            "governance_ledger_distribution_manifests",
            "Distribution manifests of the stream; 0 on a node without a token contract "
            "(then no distribution alert). Only with BYPASSRLS.",
            STREAM,
        ),
        MetricSpec(
            "governance_ledger_pending_liabilities",
            "claimant_liabilities not yet settled (settled_revision_id NULL). Only with BYPASSRLS.",
            STREAM,
        ),
        MetricSpec(
            "governance_ledger_pending_liability_oldest_age_seconds",
            "Age of the oldest pending claimant liability; 0 with none. Only with BYPASSRLS.",
            STREAM,
        ),
        MetricSpec(
            "governance_ledger_finalized_epochs_without_manifest",
            "Finalized epochs with no distribution manifest. Only with BYPASSRLS.",
            STREAM,
        ),
        MetricSpec(
            "governance_ledger_finalized_without_manifest_oldest_age_seconds",
            "Since the oldest finalized epoch without a manifest was finalized (closed_at); "
            "0 with none. A warning past one day where manifests exist. Only with BYPASSRLS.",
            STREAM,
        ),
        MetricSpec(
            "governance_ledger_dispatch_schedule_state",
            "1 for the state of the operator's dispatch schedule of a node's collect "
            "(governance:<nodeId>:<charter>, graph task:…): enabled, paused or pruned. Such "
            "schedules write no runs: they are never 'never succeeded'. ledger_node_id is "
            "'local' for a two-part id, 'unparsed' for an id of no known shape.",
            (*DISPATCH, "state"),
        ),
        MetricSpec(
            "governance_ledger_dispatch_schedule_next_run_timestamp_seconds",
            "Next fire time of the dispatch schedule from its cron, Unix time; absent unless "
            "enabled.",
            DISPATCH,
        ),
        MetricSpec(
            "governance_ledger_dispatch_schedule_interval_seconds",
            "Gap between the dispatch schedule's next two fire times; absent unless enabled.",
            DISPATCH,
        ),
    )
}


def _families() -> dict[str, GaugeMetricFamily]:
    return {name: spec.gauge() for name, spec in METRICS.items()}


def _streams(out: dict[str, GaugeMetricFamily], view: LedgerView, limits: LedgerThresholds) -> None:
    for s in view.streams:
        key = [s.node_id, s.scope_id]
        for status in EPOCH_STATUSES:
            out["governance_ledger_epochs"].add_metric([*key, status], s.epochs_by_status[status])
        if s.open_window is not None:
            start, end = _ts(s.open_window.start), _ts(s.open_window.end)
            out["governance_ledger_open_epoch_start_timestamp_seconds"].add_metric(key, start)
            out["governance_ledger_open_epoch_end_timestamp_seconds"].add_metric(key, end)
        limit = collect_stall_limit_seconds(s, limits)
        out["governance_ledger_collect_overdue_seconds"].add_metric(key, s.overdue_seconds)
        out["governance_ledger_collect_stall_limit_seconds"].add_metric(key, limit)
        wait = s.review_wait_seconds
        out["governance_ledger_review_oldest_wait_seconds"].add_metric(key, wait)
        finalized = _ts(s.last_finalized_at)
        out["governance_ledger_last_finalized_timestamp_seconds"].add_metric(key, finalized)


def _receipts(
    out: dict[str, GaugeMetricFamily], view: LedgerView, limits: LedgerThresholds, account: str
) -> None:
    for r in view.receipts:
        node = [r.node_id]
        out["governance_ledger_last_receipt_timestamp_seconds"].add_metric(node, _ts(r.newest_at))
        gap = receipt_usual_gap_seconds(r)
        limit = receipt_silence_limit_seconds(r, limits)
        if gap is not None and limit is not None:
            out["governance_ledger_receipt_usual_gap_seconds"].add_metric(node, gap)
            out["governance_ledger_receipt_silence_limit_seconds"].add_metric(node, limit)
    if view.reviews_observable:
        last = _ts(view.last_review_at)
        out["governance_ledger_last_review_run_timestamp_seconds"].add_metric([account], last)
    for scope, at in sorted(view.cursors.items()):
        out["governance_ledger_cursor_last_retrieved_timestamp_seconds"].add_metric(
            [scope], _ts(at)
        )


def _distributions(out: dict[str, GaugeMetricFamily], view: LedgerView) -> None:
    for d in view.distributions:
        key = [d.node_id, d.scope_id]
        out["governance_ledger_distribution_manifests"].add_metric(key, d.manifests)
        out["governance_ledger_pending_liabilities"].add_metric(key, d.pending_liabilities)
        out["governance_ledger_pending_liability_oldest_age_seconds"].add_metric(
            key, d.oldest_pending_age_seconds
        )
        out["governance_ledger_finalized_epochs_without_manifest"].add_metric(
            key, d.finalized_without_manifest
        )
        out["governance_ledger_finalized_without_manifest_oldest_age_seconds"].add_metric(
            key, d.oldest_unmanifested_age_seconds
        )


def _dispatch(out: dict[str, GaugeMetricFamily], view: LedgerView, account: str) -> None:
    for d in view.dispatch:
        key = [account, d.node, d.charter]
        for state in DISPATCH_STATES:
            out["governance_ledger_dispatch_schedule_state"].add_metric(
                [*key, state], 1 if d.state == state else 0
            )
        if d.next_run_at is not None and d.interval_seconds is not None:
            out["governance_ledger_dispatch_schedule_next_run_timestamp_seconds"].add_metric(
                key, _ts(d.next_run_at)
            )
            out["governance_ledger_dispatch_schedule_interval_seconds"].add_metric(
                key, d.interval_seconds
            )


def ledger_families(view: LedgerView, limits: LedgerThresholds, account: str) -> list[Metric]:
    """The ledger's families of one view; none at all on a node without the ledger."""
    if not view.has_ledger and not view.dispatch:
        return []
    out = _families()
    truncated = out["governance_ledger_truncated"]
    for part, cut in zip(
        TRUNCATED_PARTS,
        (view.streams_truncated, view.receipts_truncated, view.dispatch_truncated),
        strict=True,
    ):
        truncated.add_metric([part], 1 if cut else 0)
    _dispatch(out, view, account)
    if view.has_ledger:
        observable = out["governance_ledger_observable"]
        for part, readable in zip(
            OBSERVABLE_PARTS,
            (view.epochs_observable, view.receipts_observable, view.distributions_observable),
            strict=True,
        ):
            observable.add_metric([part], 1 if readable else 0)
        out["governance_ledger_review_wait_limit_seconds"].add_metric(
            [], limits.review_wait_seconds
        )
        _streams(out, view, limits)
        _receipts(out, view, limits, account)
        _distributions(out, view)
    return [family for family in out.values() if family.samples]


class LedgerCollector(Collector):
    """The ledger's families of each collection (``describe`` is empty: registering it
    runs no query)."""

    def __init__(self, snapshots: SnapshotCache, declaration: NodeDeclaration) -> None:
        self._snapshots = snapshots
        self._declaration = declaration

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        yield from self.families(self._snapshots.get())

    def families(self, result: CollectionResult) -> list[Metric]:
        if result.snapshot is None:
            return []  # governance_exporter_up says why; no stale ledger series
        view = ledger_view(result.snapshot)
        return ledger_families(view, self._declaration.ledger, result.snapshot.account)


def with_ledger(families: Families, ledger: LedgerCollector) -> Families:
    """``families`` of a collection followed by the ledger's."""

    def both(result: CollectionResult) -> list[Metric]:
        return [*families(result), *ledger.families(result)]

    return both

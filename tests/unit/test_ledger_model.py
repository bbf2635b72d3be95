"""The attribution ledger's model (exporter.ledger) and verdicts (exporter.policy), pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from exporter import policy
from exporter.ledger import (
    DEFAULT_COLLECT_INTERVAL_SECONDS,
    LOCAL_NODE,
    UNPARSED_NODE,
    LedgerView,
    ScheduleId,
    dispatch_views,
    distribution_view,
    epoch_stream,
    gap_quantile,
    parse_schedule_id,
    receipt_view,
)
from exporter.model import MAX_LABEL_LENGTH
from exporter.policy import Health, LedgerThresholds, ledger_problems
from exporter.snapshot import (
    DistributionStreamRow,
    EpochStreamRow,
    ReceiptStreamRow,
    ScheduleRow,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
NODE = "538b4da2-bd59-4c3a-928a-8a40b6627205"
SCOPE = "cdea48f9-d223-5b5c-a1a3-9ffdd42c3f83"
LIMITS = LedgerThresholds()


def schedule(
    tsid: str | None,
    *,
    graph_id: str = "task:/api/internal/attribution/collect",
    enabled: bool = True,
    next_run_at: datetime | None = NOW + D,
    cron: str = "0 6 * * *",
    scope_id: str | None = None,
) -> ScheduleRow:
    return ScheduleRow(
        schedule_id="5f0c1d2e-0000-4000-8000-000000000001",
        temporal_schedule_id=tsid,
        message=None,
        cron=cron,
        timezone="UTC",
        enabled=enabled,
        next_run_at=next_run_at,
        graph_id=graph_id,
        scope_id=scope_id,
    )


def stream_row(
    *,
    open_end: datetime | None = NOW + 4 * D,
    latest_end: datetime | None = None,
    reviews: tuple[datetime, ...] = (),
) -> EpochStreamRow:
    latest = latest_end or open_end
    oldest = min(reviews) if reviews else None
    return EpochStreamRow(
        node_id=NODE,
        scope_id=SCOPE,
        epochs_open=1 if open_end else 0,
        epochs_review=len(reviews),
        epochs_finalized=3,
        open_epoch_id=41 if open_end else None,
        open_period_start=open_end - 7 * D if open_end else None,
        open_period_end=open_end,
        latest_epoch_id=41 if latest else None,
        latest_period_start=latest - 7 * D if latest else None,
        latest_period_end=latest,
        oldest_review_epoch_id=39 if oldest else None,
        oldest_review_period_start=oldest - 7 * D if oldest else None,
        oldest_review_period_end=oldest,
        last_finalized_at=NOW - 10 * D,
    )


def view(**kw: object) -> LedgerView:
    fields: dict[str, object] = {
        "has_ledger": True,
        "epochs_observable": True,
        "receipts_observable": True,
        "distributions_observable": False,
        "streams": (),
        "streams_truncated": False,
        "receipts": (),
        "receipts_truncated": False,
        "last_review_at": None,
        "reviews_observable": False,
        "distributions": (),
        "dispatch": (),
        "dispatch_truncated": False,
        "cursors": {},
    }
    fields.update(kw)
    return LedgerView(**fields)  # type: ignore[arg-type]


def alerts(found: list[policy.Problem]) -> list[tuple[Health, str]]:
    return [(p.health, p.alert) for p in found]


# --- schedule ids and dispatch ------------------------------------------------------------


def test_the_three_shapes_of_schedule_ids_parse() -> None:
    assert parse_schedule_id("governance:ledger_ingest") == ScheduleId(
        "governance", None, "ledger_ingest"
    )
    assert parse_schedule_id(f"governance:{NODE}:ledger_ingest") == ScheduleId(
        "governance", NODE, "ledger_ingest"
    )
    assert parse_schedule_id(f"node-task:{NODE}:reindex") == ScheduleId(
        "node-task", NODE, "reindex"
    )
    for odd in (None, "", "governance:", "node-task:x", "cron:nightly", "governance::x", "x"):
        assert parse_schedule_id(odd) is None, odd


def test_dispatch_schedules_per_node_with_their_states() -> None:
    rows = [
        schedule(f"governance:{NODE}:ledger_ingest"),
        schedule("governance:b1:ledger_ingest", enabled=False),  # paused: next_run_at kept
        schedule("governance:c1:ledger_ingest", enabled=False, next_run_at=None),  # pruned
        schedule("governance:ledger_ingest"),  # two parts: this node's own
        schedule("node-task:d1:reindex"),
        schedule("weird id"),
        schedule(None),
    ]
    found = {(v.node, v.charter): v.state for v in dispatch_views(rows, NOW)}
    assert found == {
        (NODE, "ledger_ingest"): "enabled",
        ("b1", "ledger_ingest"): "paused",
        ("c1", "ledger_ingest"): "pruned",
        (LOCAL_NODE, "ledger_ingest"): "enabled",
        ("d1", "node-task:reindex"): "enabled",
        (UNPARSED_NODE, "weird id"): "enabled",
        (UNPARSED_NODE, "task:/api/internal/attribution/collect"): "enabled",
    }
    (enabled,) = [v for v in dispatch_views(rows[:1], NOW)]
    assert enabled.interval_seconds == 86400
    assert enabled.next_run_at == NOW.replace(hour=6) + D


def test_a_paused_dispatch_schedule_is_a_ticket_and_never_never_succeeded() -> None:
    rows = [schedule("governance:b1:ledger_ingest", enabled=False), schedule("governance:c1:x")]
    found = ledger_problems(view(dispatch=tuple(dispatch_views(rows, NOW))), LIMITS, NOW)
    assert alerts(found) == [(Health.YELLOW, "GovernanceLedgerDispatchPaused")]
    assert "b1" in found[0].message
    assert "never" not in found[0].message


@given(st.text(max_size=300), st.text(max_size=80), st.booleans())
def test_any_schedule_id_is_shown_never_a_crash(tsid: str, graph: str, enabled: bool) -> None:
    (found,) = dispatch_views([schedule(tsid, graph_id=graph, enabled=enabled)], NOW)
    assert len(found.node) <= MAX_LABEL_LENGTH
    assert len(found.charter) <= MAX_LABEL_LENGTH
    assert found.charter
    assert found.node
    assert all(ord(c) >= 0x20 and c != "\x7f" for c in found.node + found.charter)


# --- the collect -----------------------------------------------------------------------------


def test_an_open_window_that_has_not_ended_is_on_time() -> None:
    stream = epoch_stream(stream_row(), [], NOW)
    assert (stream.overdue_seconds, stream.overdue_window) == (0.0, None)
    assert stream.collect_interval_seconds == DEFAULT_COLLECT_INTERVAL_SECONDS
    assert ledger_problems(view(streams=(stream,)), LIMITS, NOW) == []


def test_an_open_window_ended_two_days_ago_is_a_stalled_collect_naming_it() -> None:
    stream = epoch_stream(stream_row(open_end=NOW - 2 * D), [], NOW)
    (problem,) = ledger_problems(view(streams=(stream,)), LIMITS, NOW)
    assert (problem.health, problem.alert) == (Health.RED, "GovernanceLedgerCollectStalled")
    assert problem.subject == "ledger_ingest"
    assert "epoch 41 (window 2026-11-28 - 2026-12-05)" in problem.message
    assert "ended 2 d ago and is still open" in problem.message


def test_the_stall_waits_one_collect_interval_plus_grace() -> None:
    """Interval from the ledger schedule of the scope (weekly here), else 24 h."""
    weekly = schedule(None, graph_id="ledger:ingest", cron="0 6 * * 1", scope_id=SCOPE)
    just = NOW - 24 * H - LIMITS.collect_grace_seconds * timedelta(seconds=1)
    for end, cron_rows, stalled in (
        (just + timedelta(seconds=1), [], False),
        (just - timedelta(seconds=1), [], True),
        (NOW - 2 * D, [weekly], False),
        (NOW - 8 * D, [weekly], True),
    ):
        stream = epoch_stream(stream_row(open_end=end), cron_rows, NOW)
        assert policy.collect_stalled(stream, LIMITS) is stalled, (end, cron_rows)


def test_no_open_epoch_after_the_newest_window_ended_is_a_stalled_collect() -> None:
    stream = epoch_stream(stream_row(open_end=None, latest_end=NOW - 3 * D), [], NOW)
    (problem,) = ledger_problems(view(streams=(stream,)), LIMITS, NOW)
    assert problem.alert == "GovernanceLedgerCollectStalled"
    assert "no open epoch" in problem.message


# --- approvals -------------------------------------------------------------------------------


def test_an_epoch_in_review_for_nine_days_is_a_ticket_naming_it() -> None:
    stream = epoch_stream(stream_row(reviews=(NOW - 9 * D, NOW - 2 * D)), [], NOW)
    (problem,) = ledger_problems(view(streams=(stream,)), LIMITS, NOW)
    assert (problem.health, problem.alert) == (
        Health.YELLOW,
        "GovernanceLedgerEpochAwaitingApproval",
    )
    assert "2 epoch(s) in review" in problem.message
    assert "epoch 39" in problem.message
    assert "waited 9 d" in problem.message
    fresh = epoch_stream(stream_row(reviews=(NOW - 2 * D,)), [], NOW)
    assert ledger_problems(view(streams=(fresh,)), LIMITS, NOW) == []


# --- the webhook plane -------------------------------------------------------------------------


def receipts(step: timedelta, silent: timedelta, count: int = 50) -> ReceiptStreamRow:
    newest = NOW - silent
    return ReceiptStreamRow(NODE, [newest - i * step for i in range(count)])


def test_an_hourly_node_silent_for_80_hours_is_flagged_and_says_reviews_stopped() -> None:
    seen = receipt_view(receipts(H, 80 * H), NOW)
    assert policy.receipt_usual_gap_seconds(seen) == 3600
    assert policy.receipt_silence_limit_seconds(seen, LIMITS) == 72 * 3600
    ledger = view(receipts=(seen,), reviews_observable=True, last_review_at=NOW - 80 * H)
    (problem,) = ledger_problems(ledger, LIMITS, NOW)
    assert (problem.health, problem.alert) == (Health.RED, "GovernanceLedgerWebhookSilent")
    assert "no webhook receipt for 3 d 8 h" in problem.message
    assert "PR reviews stopped too" in problem.message
    running = view(receipts=(seen,), reviews_observable=True, last_review_at=NOW - 2 * H)
    (problem,) = ledger_problems(running, LIMITS, NOW)
    assert "PR reviews still run" in problem.message


def test_a_node_with_an_event_every_two_days_is_not_flagged_after_40_hours() -> None:
    seen = receipt_view(receipts(2 * D, 40 * H, count=15), NOW)
    assert policy.receipt_silence_limit_seconds(seen, LIMITS) == 4 * 2 * 86400
    assert ledger_problems(view(receipts=(seen,)), LIMITS, NOW) == []
    late = receipt_view(receipts(2 * D, 9 * D, count=15), NOW)
    assert alerts(ledger_problems(view(receipts=(late,)), LIMITS, NOW)) == [
        (Health.RED, "GovernanceLedgerWebhookSilent")
    ]


def test_a_node_without_a_cadence_yet_is_not_judged() -> None:
    seen = receipt_view(receipts(H, 30 * D, count=policy.RECEIPT_MIN_SAMPLE - 1), NOW)
    assert policy.receipt_silence_limit_seconds(seen, LIMITS) is None
    assert ledger_problems(view(receipts=(seen,)), LIMITS, NOW) == []


def test_bursts_do_not_hide_a_quiet_nodes_cadence() -> None:
    """Five events at once every two days: the usual longest gap is two days."""
    times = [
        NOW - 40 * H - k * 2 * D - i * timedelta(seconds=5) for k in range(8) for i in range(5)
    ]
    seen = receipt_view(ReceiptStreamRow(NODE, times), NOW)
    assert policy.receipt_usual_gap_seconds(seen) == 2 * 86400 - 20
    assert ledger_problems(view(receipts=(seen,)), LIMITS, NOW) == []


@given(st.lists(st.floats(min_value=0, max_value=1e7), min_size=1, max_size=60), st.floats(0, 1))
def test_the_gap_quantile_is_one_of_the_gaps(gaps: list[float], quantile: float) -> None:
    ordered = sorted(gaps)
    found = gap_quantile(ordered, quantile)
    assert found in ordered
    assert gap_quantile(ordered, 1.0) == ordered[-1]
    assert gap_quantile(ordered, 0.0) == ordered[0]


@given(st.integers(0, 400), st.integers(1, 72))
def test_more_silence_never_turns_a_silent_node_quiet(hours: int, step_hours: int) -> None:
    row = receipts(step_hours * H, hours * H)
    longer = receipts(step_hours * H, (hours + 1) * H)
    if policy.receipts_silent(receipt_view(row, NOW), LIMITS):
        assert policy.receipts_silent(receipt_view(longer, NOW), LIMITS)


# --- distributions and observability -------------------------------------------------------------


def distributions(manifests: int, missing_closed: datetime | None) -> DistributionStreamRow:
    return DistributionStreamRow(
        node_id=NODE,
        scope_id=SCOPE,
        manifests=manifests,
        pending_liabilities=4,
        oldest_pending_at=NOW - 5 * D,
        finalized_without_manifest=1 if missing_closed else 0,
        oldest_unmanifested_closed_at=missing_closed,
    )


def test_a_missing_manifest_is_a_ticket_only_on_a_node_that_has_distributions() -> None:
    has = distribution_view(distributions(2, NOW - 3 * D), NOW)
    assert has.oldest_pending_age_seconds == 5 * 86400
    assert alerts(ledger_problems(view(distributions=(has,)), LIMITS, NOW)) == [
        (Health.YELLOW, "GovernanceLedgerDistributionMissing")
    ]
    none = distribution_view(distributions(0, NOW - 3 * D), NOW)
    fresh = distribution_view(distributions(2, NOW - 2 * H), NOW)
    assert ledger_problems(view(distributions=(none, fresh)), LIMITS, NOW) == []


def test_unreadable_distributions_are_never_a_problem_but_unreadable_epochs_are() -> None:
    assert ledger_problems(view(distributions_observable=False), LIMITS, NOW) == []
    (problem,) = ledger_problems(view(epochs_observable=False), LIMITS, NOW)
    assert (problem.health, problem.alert) == (Health.YELLOW, "GovernanceLedgerNotObservable")
    assert ledger_problems(view(has_ledger=False, epochs_observable=False), LIMITS, NOW) == []

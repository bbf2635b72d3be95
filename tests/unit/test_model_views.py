"""governance_view and its parts, from constructed snapshots of exporter/snapshot.py."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from unit_builders import NOW, SCHEMA_03, at, schedule, snapshot

from exporter.model import (
    FAILURE_REASONS,
    RUN_STATUSES,
    SPEND_KINDS,
    ScheduleFacts,
    attributed_spend,
    drift,
    finished_failures,
    finished_outcomes,
    governance_view,
    run_kind_label,
    safe_label,
    schedule_facts,
    unscheduled_work,
    whole_credits,
)
from exporter.repospec import DeclaredSchedule, RepoSpecState
from exporter.snapshot import (
    SCHEMA_2026_02,
    AccountRow,
    AttributedSpendRow,
    FinishedRunRow,
    LastOutcomeRow,
    LedgerCursorRow,
    RecentRunRow,
    RunCountRow,
    SchemaInfo,
    SpendRow,
    UnscheduledCountRow,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, 5),
        (Decimal("30000000"), 30_000_000),
        (Decimal("12.9"), 12),
        (7.9, 7),
        (-3, -3),
        (Decimal(2**63 - 1), 2**63 - 1),
    ],
)
def test_whole_credits(value: object, expected: int) -> None:
    assert whole_credits(value) == expected


@pytest.mark.parametrize("value", [True, "5", None, b"5", [5]])
def test_whole_credits_refuses_what_is_no_number(value: object) -> None:
    with pytest.raises(TypeError, match="balance_credits is a"):
        whole_credits(value)


@pytest.mark.parametrize(
    ("kind", "label"),
    [
        ("system_scheduled", "system_scheduled"),
        ("system_webhook", "system_webhook"),
        ("user_immediate", "user_immediate"),
        ("System_Webhook", "other"),
        ("cron", "other"),
        ("", "unknown"),
        ("  ", "unknown"),
        (None, "unknown"),
    ],
)
def test_run_kind_labels(kind: str | None, label: str) -> None:
    assert run_kind_label(kind) == label


@given(st.text())
def test_safe_labels_are_bounded_and_printable(value: str) -> None:
    label = safe_label(value)
    assert len(label) <= 64
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in label)
    assert len(label) == min(len(value), 64)


# --- schedule facts --------------------------------------------------------------------------


def test_schedule_facts_tally_runs_and_reasons_per_schedule() -> None:
    snap = snapshot(
        schedules=(schedule("govern"), schedule("ops", enabled=False, next_run_at=NOW)),
        run_counts=(
            RunCountRow("govern", "success", None, None, 3),
            RunCountRow("govern", "success", None, None, 2),
            RunCountRow("govern", "error", "rate_limit", "Graph execution failed", 1),
            RunCountRow("govern", "skipped", None, None, 4),
            RunCountRow("ops", "error", None, "boom", 2),
            RunCountRow("orphan", "error", None, None, 9),
        ),
        last_outcomes=(LastOutcomeRow("govern", at(2026, 3, 4, 11), None),),
    )
    govern, ops = schedule_facts(snap)
    assert govern.charter == "govern"
    assert govern.runs_by_status == {"success": 5, "error": 1, "skipped": 4}
    assert govern.failures_by_reason == {"rate_limit": 1}
    assert govern.last_success_at == at(2026, 3, 4, 11)
    assert govern.last_failure_at is None
    assert (govern.ledger, govern.observable, govern.pruned) == (False, True, False)
    assert ops.failures_by_reason == {"other": 2}
    assert ops.cached_next_run_at == NOW
    assert not ops.pruned  # paused, but next_run_at is set


@pytest.mark.parametrize(
    ("scope", "cursors", "readable", "success", "observable"),
    [
        ("s1", {"s1": at(2026, 3, 4), "s2": at(2026, 3, 3)}, True, at(2026, 3, 4), True),
        ("s3", {"s1": at(2026, 3, 4)}, True, None, True),
        (None, {"s1": at(2026, 3, 4)}, True, at(2026, 3, 4), True),  # the only scope
        (None, {"s1": at(2026, 3, 4), "s2": at(2026, 3, 3)}, True, None, True),  # which?
        (None, {}, True, None, True),
        ("s1", {}, False, None, False),
    ],
)
def test_a_ledger_schedules_success_is_its_cursor(
    scope: str | None,
    cursors: dict[str, object],
    readable: bool,
    success: object,
    observable: bool,
) -> None:
    schema = SchemaInfo(
        "2026-10", "graph_runs", True, has_requested_by=True, ingestion_cursors_readable=readable
    )
    snap = snapshot(
        schema=schema,
        schedules=(schedule("ledger_ingest", graph_id="ledger:ingest", scope_id=scope),),
        # a run row's success does not count for a ledger schedule
        last_outcomes=(LastOutcomeRow("ledger_ingest", at(2020, 1, 1), at(2020, 1, 2)),),
        ledger_cursors=tuple(LedgerCursorRow(s, t) for s, t in cursors.items()),  # type: ignore[arg-type]
    )
    (facts,) = schedule_facts(snap)
    assert facts.ledger
    assert facts.last_success_at == success
    assert facts.last_failure_at == at(2020, 1, 2)
    assert facts.observable is observable


# --- runs without a schedule and finished runs -----------------------------------------------


def test_unscheduled_work_by_run_kind() -> None:
    snap = snapshot(
        unscheduled_counts=(
            # Two principals' rows of one kind, each with its own latest outcomes.
            UnscheduledCountRow("system_webhook", "success", None, None, 40, at(2026, 3, 4, 9)),
            UnscheduledCountRow(
                "system_webhook", "error", "timeout", None, 2, at(2026, 3, 4, 11), at(2026, 3, 4, 8)
            ),
            UnscheduledCountRow("user_immediate", "cancelled", None, "aborted", 1),
            UnscheduledCountRow(None, "weird", None, None, 1),
        ),
    )
    views = unscheduled_work(snap)
    assert [v.run_kind for v in views] == ["system_webhook", "unknown", "user_immediate"]
    webhook, unknown, user = views
    assert set(webhook.runs_by_status) == {*RUN_STATUSES, "unknown"}
    assert set(webhook.failures_by_reason) == set(FAILURE_REASONS)
    assert webhook.runs_by_status["success"] == 40
    assert webhook.failed_runs == 2
    assert webhook.failures_by_reason["timeout"] == 2
    assert webhook.last_success_at == at(2026, 3, 4, 11)
    assert webhook.last_failure_at == at(2026, 3, 4, 8)
    assert unknown.runs_by_status["unknown"] == 1
    assert (user.failed_runs, user.last_success_at) == (0, None)  # cancelled: no failure


def test_finished_runs_by_outcome_and_reason() -> None:
    snap = snapshot(
        finished_runs=(
            FinishedRunRow("system_webhook", "success", None, None, 3),
            FinishedRunRow("system_webhook", "error", None, "insufficient_credits", 2),
            FinishedRunRow("system_webhook", "error", "timeout", None, 1),
            FinishedRunRow(None, "success", None, None, 1),
            FinishedRunRow("system_scheduled", "cancelled", None, None, 5),
            FinishedRunRow("system_scheduled", "skipped", None, None, 5),
            FinishedRunRow("system_scheduled", "skipped", None, "Grant validation failed", 1),
        )
    )
    assert finished_outcomes(snap) == {
        ("system_webhook", "success"): 3,
        ("system_webhook", "failure"): 3,
        ("unknown", "success"): 1,
        ("system_scheduled", "failure"): 1,
    }
    assert finished_failures(snap) == {
        ("system_webhook", "insufficient_credits"): 2,
        ("system_webhook", "timeout"): 1,
        ("system_scheduled", "grant_validation_failed"): 1,
    }


# --- credit --------------------------------------------------------------------------------


def test_attributed_spend_names_charters_by_their_schedule() -> None:
    snap = snapshot(
        schedules=(schedule("heartbeat", schedule_id="uuid-1"),),
        attributed_spend=(
            AttributedSpendRow("system_scheduled", "uuid-1", Decimal("100.5")),
            AttributedSpendRow("system_scheduled", "uuid-1", Decimal(1)),
            AttributedSpendRow("system_scheduled", "gone\n", Decimal(2)),
            AttributedSpendRow(None, None, Decimal(7)),
        ),
    )
    by_kind, by_charter = attributed_spend(snap)
    assert set(by_kind) == set(SPEND_KINDS)
    assert by_kind["system_scheduled"] == 103.5
    assert by_kind["unattributed"] == 7
    assert by_charter == {"heartbeat": 101.5, "gone_": 2}


def test_the_credit_view_counts_refusals_of_every_run() -> None:
    snap = snapshot(
        account_row=AccountRow("a", Decimal(8_000_000)),
        spend=SpendRow(Decimal(0), 0, None),
        schedules=(schedule("govern"),),
        run_counts=(
            RunCountRow("govern", "error", None, "insufficient_credits", 3),
            RunCountRow("govern", "error", "provider_unavailable", None, 1),
        ),
        unscheduled_counts=(
            UnscheduledCountRow("system_webhook", "error", "insufficient_credits", None, 2),
        ),
    )
    view = governance_view(snap, min_run_cost_credits=4_000_000)
    credit = view.credit
    assert credit.balance_credits == 8_000_000
    assert (credit.spent_credits, credit.burn_rate_per_second) == (0.0, 0.0)
    assert math.isinf(credit.runway_seconds)
    assert credit.rejected_runs == 5
    assert credit.provider_unavailable_runs == 1
    assert credit.min_run_cost_credits == 4_000_000
    assert credit.last_charge_at is None


@given(
    balance=st.integers(min_value=-(10**15), max_value=10**15),
    spent=st.integers(min_value=0, max_value=10**15),
    window=st.integers(min_value=1, max_value=90 * 86400),
)
def test_credit_view_is_consistent(balance: int, spent: int, window: int) -> None:
    snap = snapshot(
        window_seconds=window,
        account_row=AccountRow("a", Decimal(balance)),
        spend=SpendRow(Decimal(spent), 1, None),
    )
    credit = governance_view(snap).credit
    assert credit.burn_rate_per_second == pytest.approx(spent / window)
    if balance <= 0:
        assert credit.runway_seconds == 0
    elif spent == 0:
        assert math.isinf(credit.runway_seconds)
    else:
        assert credit.runway_seconds == pytest.approx(balance / (spent / window))


# --- the whole view --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "visible"),
    [
        (SchemaInfo(SCHEMA_2026_02, "schedule_runs", False), None),
        (SCHEMA_03, True),
        (
            SchemaInfo(
                "2026-03", "graph_runs", True, has_requested_by=True, unscheduled_runs_hidden=True
            ),
            False,
        ),
    ],
)
def test_unscheduled_visibility(schema: SchemaInfo, visible: bool | None) -> None:
    view = governance_view(snapshot(schema=schema))
    assert view.unscheduled_visible is visible
    assert view.schema_version == schema.version


def test_recent_runs_say_charter_status_and_reason() -> None:
    snap = snapshot(
        schedules=(schedule("govern", schedule_id="s-1"),),
        recent_runs=(
            RecentRunRow("s-1", at(2026, 3, 4, 12), "error", None, "insufficient_credits"),
            RecentRunRow("s-1", at(2026, 3, 4, 11), "success", None, None),
            RecentRunRow("gone", at(2026, 3, 4, 10), "skipped", None, None),
            RecentRunRow("s-1", at(2026, 3, 4, 9), "Weird", None, "x"),
        ),
    )
    runs = [(r.charter, r.status, r.reason) for r in governance_view(snap).recent_runs]
    assert runs == [
        ("govern", "error", "insufficient_credits"),
        ("govern", "success", None),
        ("gone", "skipped", None),
        ("govern", "unknown", None),
    ]


def test_a_repo_spec_adds_expected_charters_and_drift() -> None:
    spec = RepoSpecState(
        (
            DeclaredSchedule("heartbeat", "0 * * * *", "UTC"),
            DeclaredSchedule("ledger_ingest", "0 0 * * *", "UTC", implied=True),
            DeclaredSchedule("ops", "*/5 * * * *", "UTC"),
        )
    )
    snap = snapshot(
        schedules=(
            schedule("heartbeat", cron="0  *  * * *"),  # the same cron, spaced otherwise
            schedule(
                "ledger_ingest",
                cron="0 6 * * *",
                timezone="Europe/Berlin",
                graph_id="ledger:ingest",
            ),
            schedule("govern", enabled=False),  # pruned by the boot sync
        ),
    )
    view = governance_view(snap, ["Extra"], spec=spec)
    by_name = {c.charter: c for c in view.charters}
    assert list(by_name) == ["extra", "heartbeat", "ledger_ingest", "ops", "govern"]
    assert (by_name["extra"].configured, by_name["extra"].declared) == (False, None)
    assert by_name["ops"].configured is False
    assert by_name["ops"].declared == spec.schedules[2]
    assert by_name["heartbeat"].drift is None
    assert by_name["ledger_ingest"].drift == (
        "cron '0 6 * * *' where '0 0 * * *' is declared; "
        "time zone 'Europe/Berlin' where 'UTC' is declared"
    )
    assert by_name["govern"].retired
    assert not by_name["heartbeat"].retired
    assert view.repo_spec is spec


def test_drift_names_each_difference_once() -> None:
    declared = DeclaredSchedule("x", "0 * * * *", "UTC")

    def facts(cron: str, zone: str) -> ScheduleFacts:
        return ScheduleFacts("x", "x", cron, zone, True, None, {}, {}, None, None)

    assert drift(declared, [facts("0 * * * *", "UTC")]) is None
    assert drift(declared, [facts(" 0 *  * * * ", "UTC")]) is None
    assert drift(declared, [facts("5 * * * *", "UTC"), facts("5 * * * *", "UTC")]) == (
        "cron '5 * * * *' where '0 * * * *' is declared"
    )
    assert drift(declared, [facts("0 * * * *", "utc")]) == (
        "time zone 'utc' where 'UTC' is declared"
    )


@pytest.mark.parametrize(
    ("rows", "expected", "retired"),
    [
        ((schedule("govern", enabled=False),), (), True),
        ((schedule("govern", enabled=False),), ("govern",), False),  # expected: missing work
        ((schedule("govern", enabled=False, next_run_at=NOW),), (), False),  # paused by hand
        ((schedule("govern"),), (), False),
        (
            (
                schedule("govern", schedule_id="a", enabled=False),
                schedule("govern", schedule_id="b"),
            ),
            (),
            False,
        ),
    ],
)
def test_retired_only_when_every_row_is_pruned_and_nothing_expects_it(
    rows: tuple[object, ...], expected: tuple[str, ...], retired: bool
) -> None:
    (view,) = governance_view(snapshot(schedules=rows), expected).charters
    assert view.retired is retired


def test_the_view_is_as_of_the_snapshot() -> None:
    later = NOW + timedelta(minutes=30)
    view = governance_view(snapshot(taken_at=later, schedules=(schedule("govern"),)))
    (charter,) = view.charters
    assert view.taken_at == later
    assert charter.next_run_at == at(2026, 3, 4, 13)
    assert charter.next_run_in_seconds == 23 * 60
    assert view.schedules_truncated is False
    assert view.account == "cogni_system"


def test_recent_runs_without_a_schedule_have_no_charter_and_keep_their_kind() -> None:
    snap = snapshot(
        schedules=(schedule("govern", schedule_id="s-1"),),
        recent_runs=(
            RecentRunRow(
                None, at(2026, 3, 4, 12), "error", "provider_unavailable", None, "system_webhook"
            ),
            RecentRunRow("s-1", at(2026, 3, 4, 11), "success", None, None, "system_scheduled"),
            RecentRunRow(None, at(2026, 3, 4, 10), "success", None, None, "user_immediate"),
            RecentRunRow(None, at(2026, 3, 4, 9), "success", None, None, None),
        ),
    )
    runs = [(r.charter, r.kind, r.reason) for r in governance_view(snap).recent_runs]
    assert runs == [
        (None, "system_webhook", "provider_unavailable"),
        ("govern", "system_scheduled", None),
        (None, "user_immediate", None),
        (None, "unknown", None),
    ]

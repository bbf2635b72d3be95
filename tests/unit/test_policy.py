"""Every threshold edge and every verdict of exporter/policy/, from constructed views."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from unit_builders import NOW, charter_view, credit

from exporter import policy
from exporter.memory import BudgetHeader, FileFacts, FileStatus, Heartbeat, MemorySnapshot
from exporter.model import GovernanceView, ReasonFailures, WorkView, reason_failures
from exporter.policy import (
    BUDGET_HEADER_MAX_AGE_SECONDS,
    RED_RUNWAY_SECONDS,
    YELLOW_RUNWAY_SECONDS,
    Health,
    assess,
    budget_gate_open,
    budget_header_fresh,
    budget_problems,
    charter_health,
    charter_problems,
    credit_health,
    credit_level,
    credit_problems,
    heartbeat_limit_seconds,
    heartbeat_problems,
    memory_problems,
    node_problems,
    runs_refused,
    stall_limit_seconds,
    stalled_for,
    work_problems,
    worst,
)
from exporter.repospec import DeclaredSchedule, RepoSpecState

G, Y, R = Health.GREEN, Health.YELLOW, Health.RED
OK = FileFacts(FileStatus.OK)


def alerts(problems: list[policy.Problem]) -> list[tuple[Health, str, str]]:
    return [(p.health, p.subject, p.alert) for p in problems]


# --- worst ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("healths", "expected"),
    [
        ([], G),
        ([G], G),
        ([Y], Y),
        ([R], R),
        ([G, Y], Y),
        ([Y, G], Y),
        ([G, R, Y], R),
        ([Y, Y, G], Y),
        ([R, G], R),
    ],
)
def test_worst_is_the_most_severe(healths: list[Health], expected: Health) -> None:
    assert worst(healths) is expected


@given(st.lists(st.sampled_from(list(Health))))
def test_worst_is_never_milder_than_any(healths: list[Health]) -> None:
    order = [G, Y, R]
    result = worst(healths)
    assert all(order.index(result) >= order.index(h) for h in healths)


# --- credit health -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("balance", "runway", "min_cost", "refused", "health"),
    [
        (1, math.inf, 0, False, G),
        (1, YELLOW_RUNWAY_SECONDS + 0.001, 0, False, G),
        (1, YELLOW_RUNWAY_SECONDS, 0, False, Y),
        (1, RED_RUNWAY_SECONDS + 1, 0, False, Y),
        (1, RED_RUNWAY_SECONDS, 0, False, Y),
        (1, RED_RUNWAY_SECONDS - 0.001, 0, False, R),
        (1, 0, 0, False, R),
        (0, math.inf, 0, False, R),
        (-1, math.inf, 0, False, R),
        # below one run's cost: the preflight check refuses runs, whatever the runway
        (3_999_999, math.inf, 4_000_000, False, R),
        (4_000_000, math.inf, 4_000_000, False, G),
        (4_000_001, math.inf, 4_000_000, False, G),
        (4_000_000, YELLOW_RUNWAY_SECONDS, 4_000_000, False, Y),
        # runs refused for credits while nothing is spent
        (10**12, math.inf, 0, True, R),
        (10**12, YELLOW_RUNWAY_SECONDS + 1, 4_000_000, True, R),
    ],
)
def test_credit_health_edges(
    balance: float, runway: float, min_cost: float, refused: bool, health: Health
) -> None:
    assert credit_health(balance, runway, min_run_cost_credits=min_cost, refused=refused) is health


@given(
    balance=st.integers(min_value=-(10**15), max_value=10**15),
    runway=st.floats(min_value=0, allow_nan=False),
    min_cost=st.integers(min_value=0, max_value=10**9),
    refused=st.booleans(),
)
def test_credit_health_is_red_exactly_when_a_red_rule_holds(
    balance: int, runway: float, min_cost: int, refused: bool
) -> None:
    health = credit_health(balance, runway, min_run_cost_credits=min_cost, refused=refused)
    red = balance <= 0 or balance < min_cost or refused or runway < RED_RUNWAY_SECONDS
    assert (health is R) == red
    if not red:
        assert health is (G if runway > YELLOW_RUNWAY_SECONDS else Y)


@pytest.mark.parametrize(
    ("rejected", "spent", "refused"),
    [
        (0, 0.0, False),
        (1, 0.0, True),
        (5, -3.0, True),  # refunds: nothing spent
        (1, 1.0, False),  # something got through
        (0, 100.0, False),
    ],
)
def test_runs_refused_needs_rejections_and_nothing_spent(
    rejected: int, spent: float, refused: bool
) -> None:
    assert runs_refused(credit(rejected_runs=rejected, spent_credits=spent)) is refused


@pytest.mark.parametrize(
    ("overrides", "health"),
    [
        ({}, G),
        ({"runway_seconds": YELLOW_RUNWAY_SECONDS}, Y),
        ({"runway_seconds": RED_RUNWAY_SECONDS - 1}, R),
        ({"balance_credits": 0, "runway_seconds": 0.0}, R),
        ({"min_run_cost_credits": 30_000_001}, R),
        ({"min_run_cost_credits": 30_000_000}, G),
        ({"rejected_runs": 3, "spent_credits": 0.0, "runway_seconds": math.inf}, R),
        ({"rejected_runs": 3}, G),  # rejections while spending: the runway decides
    ],
)
def test_credit_level_of_a_view(overrides: dict[str, object], health: Health) -> None:
    assert credit_level(credit(**overrides)) is health


# --- stall ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "limit"),
    [(3600, 9000), (60, 1920), (86400, 174600), (0, 1800), (300, 2400)],
)
def test_stall_limit_is_two_intervals_and_thirty_minutes(interval: float, limit: float) -> None:
    assert stall_limit_seconds(interval) == limit


@pytest.mark.parametrize(
    ("age", "stalled"),
    [
        (0, None),
        (3600, None),
        (9000, None),  # exactly the limit: not yet
        (9000.5, 9000.5),
        (9001, 9001.0),
        (86400, 86400.0),
    ],
)
def test_stalled_for_at_the_edge(age: float, stalled: float | None) -> None:
    charter = charter_view(last_success_at=NOW - timedelta(seconds=age))
    assert stalled_for(charter, NOW) == stalled


@pytest.mark.parametrize(
    ("overrides", "stalled"),
    [
        ({"last_success_at": None}, math.inf),  # enabled, never succeeded
        ({"last_success_at": None, "enabled": False}, None),  # paused
        ({"last_success_at": None, "interval_seconds": None}, None),  # no schedule to keep
        ({"last_success_at": None, "observable": False}, None),  # successes unseen
        ({"last_success_at": NOW - timedelta(days=3), "observable": False}, None),
        ({"last_success_at": NOW - timedelta(days=3), "enabled": False}, None),
    ],
)
def test_stalled_for_needs_an_enabled_observable_schedule(
    overrides: dict[str, object], stalled: float | None
) -> None:
    assert stalled_for(charter_view(**overrides), NOW) == stalled


# --- budget gate and heartbeats -----------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "fresh"),
    [
        (0, True),
        (-60, True),  # written in the future by a skewed clock: still fresh
        (BUDGET_HEADER_MAX_AGE_SECONDS - 1, True),
        (BUDGET_HEADER_MAX_AGE_SECONDS, True),
        (BUDGET_HEADER_MAX_AGE_SECONDS + 1, False),
        (BUDGET_HEADER_MAX_AGE_SECONDS * 10, False),
    ],
)
def test_budget_header_age_edge(age: float, fresh: bool) -> None:
    header = BudgetHeader(OK, NOW - timedelta(seconds=age), True)
    assert budget_header_fresh(header, NOW) is fresh
    assert budget_gate_open(header, NOW) is fresh


def test_a_header_without_a_time_is_not_fresh() -> None:
    assert not budget_header_fresh(BudgetHeader(OK, None, True), NOW)


@pytest.mark.parametrize("status", [s for s in FileStatus if s is not FileStatus.OK])
def test_a_gate_not_read_well_is_never_open(status: FileStatus) -> None:
    header = BudgetHeader(FileFacts(status), NOW, True)
    assert not budget_gate_open(header, NOW)
    (problem,) = budget_problems(header, NOW)
    assert (problem.health, problem.alert) == (Y, "GovernanceBudgetGateStale")
    assert status.value in problem.message


@pytest.mark.parametrize("allow", [False, None])
def test_a_gate_that_does_not_allow_runs_is_closed(allow: bool | None) -> None:
    assert not budget_gate_open(BudgetHeader(OK, NOW, allow), NOW)


def test_gate_open_rules() -> None:
    now = NOW
    ok = FileFacts(FileStatus.OK)
    assert budget_gate_open(BudgetHeader(ok, now - timedelta(hours=1), True), now)
    assert not budget_gate_open(BudgetHeader(ok, now - timedelta(hours=2, seconds=1), True), now)
    assert not budget_gate_open(BudgetHeader(ok, now, False), now)
    assert not budget_gate_open(BudgetHeader(FileFacts(FileStatus.MISSING)), now)


@pytest.mark.parametrize(
    ("allow", "age", "expected"),
    [
        (True, 0, []),
        (True, BUDGET_HEADER_MAX_AGE_SECONDS, []),
        (True, BUDGET_HEADER_MAX_AGE_SECONDS + 1, ["GovernanceBudgetGateStale"]),
        (False, 0, ["GovernanceBudgetGateClosed"]),
        (
            False,
            BUDGET_HEADER_MAX_AGE_SECONDS + 1,
            ["GovernanceBudgetGateClosed", "GovernanceBudgetGateStale"],
        ),
        (None, 0, []),  # allow_runs left empty: not said to be closed
    ],
)
def test_budget_problems(allow: bool | None, age: float, expected: list[str]) -> None:
    header = BudgetHeader(OK, NOW - timedelta(seconds=age), allow)
    problems = budget_problems(header, NOW)
    assert [p.alert for p in problems] == expected
    assert all(p.health is Y and p.subject == policy.BUDGET_GATE for p in problems)


def test_a_stale_header_says_how_old() -> None:
    (problem,) = budget_problems(BudgetHeader(OK, NOW - timedelta(hours=3), True), NOW)
    assert "3 h ago" in problem.message
    assert "2 h" in problem.message


@pytest.mark.parametrize(
    ("interval", "limit"),
    [(None, 7200), (0, 7200), (3600, 7200), (60, 120), (86400, 172800)],
)
def test_heartbeat_limit(interval: float | None, limit: float) -> None:
    assert heartbeat_limit_seconds(interval) == limit


@pytest.mark.parametrize(
    ("interval", "age", "stale"),
    [
        (None, 7200, False),
        (None, 7201, True),
        (3600, 7200, False),
        (3600, 7201, True),
        (300, 600, False),
        (300, 601, True),
        (86400, 2 * 86400, False),
        (86400, 2 * 86400 + 1, True),
    ],
)
def test_heartbeat_age_edge(interval: float | None, age: float, stale: bool) -> None:
    beat = Heartbeat("govern", OK, NOW - timedelta(seconds=age), "action")
    charter = charter_view(interval_seconds=interval)
    problems = heartbeat_problems(beat, charter, NOW)
    assert [p.alert for p in problems] == (["GovernanceHeartbeatStale"] if stale else [])
    assert all(p.subject == "govern" and p.health is Y for p in problems)


def test_a_heartbeat_of_a_charter_the_database_does_not_know_uses_one_hour() -> None:
    beat = Heartbeat("govern", OK, NOW - timedelta(seconds=7201), "action")
    assert [p.alert for p in heartbeat_problems(beat, None, NOW)] == ["GovernanceHeartbeatStale"]
    missing = charter_view(configured=False, enabled=False, interval_seconds=None)
    assert [p.alert for p in heartbeat_problems(beat, missing, NOW)] == ["GovernanceHeartbeatStale"]


@pytest.mark.parametrize("status", list(FileStatus))
def test_a_paused_charters_heartbeat_is_quiet(status: FileStatus) -> None:
    beat = Heartbeat("govern", FileFacts(status), NOW - timedelta(days=30), "action")
    assert heartbeat_problems(beat, charter_view(enabled=False), NOW) == []


@pytest.mark.parametrize("status", [s for s in FileStatus if s is not FileStatus.OK])
def test_a_bad_heartbeat_file_is_stale(status: FileStatus) -> None:
    beat = Heartbeat("govern", FileFacts(status))
    (problem,) = heartbeat_problems(beat, charter_view(), NOW)
    assert problem.alert == "GovernanceHeartbeatStale"
    assert problem.message == f"its heartbeat file is {status.value}"


def test_an_ok_heartbeat_without_a_time_raises_nothing() -> None:
    assert heartbeat_problems(Heartbeat("govern", OK), charter_view(), NOW) == []


def test_memory_problems_pair_each_heartbeat_with_its_charter() -> None:
    memory = MemorySnapshot(
        heartbeats=(
            Heartbeat("govern", OK, NOW - timedelta(hours=3), "action"),
            Heartbeat("ops", OK, NOW - timedelta(hours=3), "action"),
        ),
        budget=BudgetHeader(OK, NOW, False),
        ignored_entries=0,
    )
    # govern runs daily (stale after 2 d); ops is unknown to the database (2 h)
    problems = memory_problems(memory, [charter_view(interval_seconds=86400)], NOW)
    assert alerts(problems) == [
        (Y, "budget gate", "GovernanceBudgetGateClosed"),
        (Y, "ops", "GovernanceHeartbeatStale"),
    ]


# --- charter and work problems ---------------------------------------------------------------


def test_a_missing_charter_is_red_and_nothing_else() -> None:
    view = charter_view(configured=False, enabled=False, failures_by_reason={"timeout": 2})
    assert alerts(charter_problems(view, NOW)) == [(R, "govern", "GovernanceCharterMissing")]


def test_a_retired_charter_raises_nothing() -> None:
    view = charter_view(enabled=False, retired=True, last_success_at=None, drift="cron")
    assert charter_problems(view, NOW) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, []),
        ({"last_success_at": None}, [(R, "GovernanceCharterStalled")]),
        ({"last_success_at": NOW - timedelta(hours=3)}, [(R, "GovernanceCharterStalled")]),
        ({"drift": "cron '5 * * * *'"}, [(Y, "GovernanceScheduleDrift")]),
        ({"failures_by_reason": {"timeout": 1}}, [(Y, "GovernanceRunsFailing")]),
        ({"failures_by_reason": {"timeout": 0}}, []),
        ({"enabled": False}, [(Y, "GovernanceScheduleDisabled")]),
        ({"config_error": "invalid cron"}, [(Y, "GovernanceScheduleConfigInvalid")]),
        (
            {
                "last_success_at": None,
                "drift": "tz",
                "failures_by_reason": {"internal": 2},
                "config_error": "bad",
            },
            [
                (R, "GovernanceCharterStalled"),
                (Y, "GovernanceScheduleDrift"),
                (Y, "GovernanceRunsFailing"),
                (Y, "GovernanceScheduleConfigInvalid"),
            ],
        ),
        ({"enabled": False, "last_success_at": None}, [(Y, "GovernanceScheduleDisabled")]),
    ],
)
def test_charter_problems(overrides: dict[str, object], expected: list[tuple[Health, str]]) -> None:
    problems = charter_problems(charter_view(**overrides), NOW)
    assert [(p.health, p.alert) for p in problems] == expected


def test_stall_messages_say_for_how_long() -> None:
    (never,) = charter_problems(charter_view(last_success_at=None), NOW)
    assert never.message.startswith("has never completed a successful run (runs every 1 h;")
    (late,) = charter_problems(charter_view(last_success_at=NOW - timedelta(hours=5)), NOW)
    assert late.message.startswith("no successful run for 5 h (runs every 1 h;")
    assert "stalled after 2 intervals + 30 min" in late.message


def test_failing_runs_are_listed_most_first() -> None:
    view = charter_view(failures_by_reason={"timeout": 1, "internal": 4, "aborted": 0})
    (problem,) = charter_problems(view, NOW)
    assert problem.message == "5 runs failed in the window: internal 4, timeout 1"


@pytest.mark.parametrize(
    ("failures", "message"),
    [
        ({}, None),
        ({"timeout": 0}, None),
        ({"timeout": 2}, "2 runs without a schedule failed in the window: timeout 2"),
        (
            {"internal": 1, "aborted": 1, "timeout": 3},
            "5 runs without a schedule failed in the window: timeout 3, aborted 1, internal 1",
        ),
    ],
)
def test_work_problems(failures: dict[str, int], message: str | None) -> None:
    work = WorkView("system_webhook", {}, failures)
    problems = work_problems(work)
    if message is None:
        assert problems == []
    else:
        assert alerts(problems) == [(Y, "system_webhook runs", "GovernanceRunsFailing")]
        assert problems[0].message == message


# --- credit problems ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, []),
        ({"runway_seconds": YELLOW_RUNWAY_SECONDS + 1}, []),
        ({"runway_seconds": YELLOW_RUNWAY_SECONDS}, [(Y, "GovernanceCreditRunwayLow")]),
        ({"runway_seconds": RED_RUNWAY_SECONDS}, [(Y, "GovernanceCreditRunwayLow")]),
        ({"runway_seconds": RED_RUNWAY_SECONDS - 1}, [(R, "GovernanceCreditRunwayLow")]),
        # the balance says more than the runway: one problem for the two
        ({"balance_credits": 0, "runway_seconds": 0.0}, [(R, "GovernanceCreditRunwayLow")]),
        (
            {"balance_credits": 5, "min_run_cost_credits": 6, "runway_seconds": 1.0},
            [(R, "GovernanceCreditRunwayLow")],
        ),
        (
            {"rejected_runs": 2, "spent_credits": 0.0, "runway_seconds": math.inf},
            [(R, "GovernanceRunsRejectedForCredits")],
        ),
        ({"provider_unavailable_runs": 1}, [(R, "GovernanceProviderUnavailable")]),
    ],
)
def test_credit_problems(overrides: dict[str, object], expected: list[tuple[Health, str]]) -> None:
    problems = credit_problems(credit(**overrides), [])
    assert [(p.health, p.alert) for p in problems] == expected


def test_balance_messages() -> None:
    (zero,) = credit_problems(credit(balance_credits=0, runway_seconds=0.0), [])
    assert zero.message.startswith("balance is 0 credits: every governance run is rejected")
    (low,) = credit_problems(credit(balance_credits=1_000_000, min_run_cost_credits=4_000_000), [])
    assert "balance 1,000,000 credits is below one run's cost (4,000,000 credits)" in low.message


@pytest.mark.parametrize(
    ("charters", "nospend"),
    [
        ([], False),
        ([charter_view()], True),
        ([charter_view(enabled=False)], False),
        ([charter_view(ledger=True)], False),  # the ledger's collections charge nothing
        ([charter_view(ledger=True), charter_view("ops")], True),
    ],
)
def test_no_spend_while_charters_should_spend(charters: list[object], nospend: bool) -> None:
    problems = credit_problems(credit(spent_credits=0.0, runway_seconds=math.inf), charters)  # type: ignore[arg-type]
    assert ("GovernanceNoSpend" in [p.alert for p in problems]) is nospend
    assert all(p.health is Y for p in problems if p.alert == "GovernanceNoSpend")


# --- node problems and the verdict ---------------------------------------------------------------


def _view(**overrides: object) -> GovernanceView:
    values: dict[str, object] = {
        "account": "cogni_system",
        "schema_version": "2026-03",
        "taken_at": NOW,
        "credit": credit(),
        "charters": [charter_view()],
        "recent_runs": [],
        "schedules_truncated": False,
    }
    values.update(overrides)
    return GovernanceView(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, []),
        ({"unscheduled_visible": True}, []),
        ({"unscheduled_visible": None}, []),
        ({"unscheduled_visible": False}, ["GovernanceUnscheduledRunsHidden"]),
        ({"repo_spec": RepoSpecState(())}, []),
        (
            {"repo_spec": RepoSpecState((), "invalid", "not valid YAML at line 3")},
            ["GovernanceRepoSpecUnusable"],
        ),
        (
            {
                "unscheduled_visible": False,
                "repo_spec": RepoSpecState((), "unreadable", "gone"),
            },
            ["GovernanceUnscheduledRunsHidden", "GovernanceRepoSpecUnusable"],
        ),
    ],
)
def test_node_problems(overrides: dict[str, object], expected: list[str]) -> None:
    problems = node_problems(_view(**overrides))
    assert [p.alert for p in problems] == expected
    assert all(p.health is Y for p in problems)


def test_an_unusable_repo_spec_says_why_and_what_is_kept() -> None:
    declared = (DeclaredSchedule("heartbeat", "0 * * * *", "UTC"),)
    (problem,) = node_problems(_view(repo_spec=RepoSpecState(declared, "invalid", "no cron")))
    assert problem.message == (
        "the repo-spec is invalid (no cron); the last good declaration is kept"
    )


def test_a_healthy_view_is_green_without_problems() -> None:
    assessment = assess(_view(), NOW)
    assert (assessment.health, assessment.problems) == (G, [])


@pytest.mark.parametrize(
    ("overrides", "memory", "health"),
    [
        ({"credit": credit(runway_seconds=YELLOW_RUNWAY_SECONDS)}, None, Y),
        ({"credit": credit(balance_credits=0, runway_seconds=0.0)}, None, R),
        ({"charters": [charter_view(last_success_at=None)]}, None, R),
        ({"charters": [charter_view(enabled=False)]}, None, Y),
        ({"unscheduled": [WorkView("system_webhook", {}, {"timeout": 1})]}, None, Y),
        ({"unscheduled_visible": False}, None, Y),
        ({}, MemorySnapshot((), BudgetHeader(OK, NOW, True), 0), G),
        ({}, MemorySnapshot((), BudgetHeader(OK, NOW, False), 0), Y),
        (
            {"charters": [charter_view(last_success_at=None)]},
            MemorySnapshot((), BudgetHeader(OK, NOW, False), 0),
            R,
        ),
    ],
)
def test_assess_takes_the_worst_problem(
    overrides: dict[str, object], memory: MemorySnapshot | None, health: Health
) -> None:
    assessment = assess(_view(**overrides), NOW, memory)
    assert assessment.health is health
    assert bool(assessment.problems) is (health is not G)
    assert worst(p.health for p in assessment.problems) is health


def test_each_charters_health_is_its_own() -> None:
    stalled = charter_view("govern", last_success_at=None)
    paused = charter_view("ops", enabled=False)
    fine = charter_view("community")
    assessment = assess(_view(charters=[stalled, paused, fine]), NOW)
    assert assessment.health is R
    assert charter_health(assessment, stalled) is R
    assert charter_health(assessment, paused) is Y
    assert charter_health(assessment, fine) is G
    assert [p.alert for p in assessment.for_subject("ops")] == ["GovernanceScheduleDisabled"]
    assert assessment.for_subject("nobody") == []


# --- now versus the window: recovered failures ----------------------------------------------

HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("success_ago", "failure_ago", "recovered"),
    [
        (None, 2 * HOUR, False),  # never succeeded
        (3 * HOUR, 2 * HOUR, False),  # failed after its last success
        (2 * HOUR, 2 * HOUR, False),  # the same instant: not known to be over
        (HOUR, 2 * HOUR, True),  # succeeded after its last failure
    ],
)
def test_a_charters_failures_are_recovered_once_it_succeeds(
    success_ago: timedelta | None, failure_ago: timedelta, recovered: bool
) -> None:
    view = charter_view(
        failures_by_reason={"timeout": 3},
        last_success_at=None if success_ago is None else NOW - success_ago,
        last_failure_at=NOW - failure_ago,
        interval_seconds=86400,  # not stalled: only the failures are judged
    )
    problems = charter_problems(view, NOW, 86400)
    (problem,) = [p for p in problems if p.alert == "GovernanceRunsFailing"]
    assert problem.recovered is recovered
    assert problem.message.startswith("3 runs failed in the last 24 h, last 2 h ago: timeout 3")
    assert ("recovered: succeeded 1 h ago" in problem.message) is recovered
    if success_ago is None:
        return  # stalled too: red for that
    assessment = assess(_view(charters=[view]), NOW)
    assert assessment.health is (G if recovered else Y)
    assert [p.alert for p in assessment.recovered] == (
        ["GovernanceRunsFailing"] if recovered else []
    )
    assert charter_health(assessment, view) is (G if recovered else Y)


def test_runs_without_a_schedule_recover_per_kind() -> None:
    over = WorkView("system_webhook", {}, {"timeout": 1}, NOW - HOUR, NOW - 2 * HOUR)
    failing = WorkView(
        "user_immediate", {}, {"internal": 2}, NOW - 3 * HOUR, NOW - timedelta(minutes=5)
    )
    assessment = assess(_view(unscheduled=[over, failing]), NOW)
    assert alerts(assessment.problems) == [(Y, "user_immediate runs", "GovernanceRunsFailing")]
    assert assessment.problems[0].message == (
        "2 runs without a schedule failed in the last 24 h, last 5 min ago: internal 2"
    )
    (recovered,) = assessment.recovered
    assert recovered.subject == "system_webhook runs"
    assert recovered.message.endswith("; recovered: succeeded 1 h ago")


def _outage(provider_success_ago: timedelta | None) -> GovernanceView:
    """The autumn shape: reviews fail with provider_unavailable, the balance is fine."""
    reviews = WorkView(
        "user_immediate",
        {},
        {"provider_unavailable": 3},
        None if provider_success_ago is None else NOW - provider_success_ago,
        NOW - 2 * HOUR - timedelta(minutes=40),
    )
    return _view(
        unscheduled=[reviews],
        credit=credit(
            provider_unavailable_runs=3,
            provider_unavailable=ReasonFailures(reviews.last_failure_at, reviews.still_failing),
        ),
    )


def test_a_provider_outage_is_red_until_the_work_succeeds_again() -> None:
    during = assess(_outage(None), NOW)
    assert during.health is R
    provider = [p for p in during.problems if p.alert == "GovernanceProviderUnavailable"]
    assert provider[0].message.startswith(
        "3 runs failed with provider_unavailable in the last 24 h, last 2 h 40 min ago: "
    )
    after = assess(_outage(HOUR), NOW)
    assert after.health is G
    assert after.problems == []
    assert {p.alert for p in after.recovered} == {
        "GovernanceProviderUnavailable",
        "GovernanceRunsFailing",
    }


@pytest.mark.parametrize(("still_failing", "refused"), [(True, True), (False, False)])
def test_refusals_for_credits_stop_with_a_success(still_failing: bool, refused: bool) -> None:
    view = credit(
        rejected_runs=4,
        spent_credits=0.0,
        runway_seconds=math.inf,
        rejected=ReasonFailures(NOW - HOUR, still_failing),
    )
    assert runs_refused(view) is refused
    assert credit_level(view) is (R if refused else G)
    (problem,) = credit_problems(view, [], NOW)
    assert problem.alert == "GovernanceRunsRejectedForCredits"
    assert problem.recovered is not refused
    assert problem.message.startswith(
        "4 runs failed with insufficient_credits in the last 24 h, last 1 h ago, nothing spent"
    )


def test_reason_failures_follow_every_work_that_had_them() -> None:
    fine = charter_view(
        failures_by_reason={"provider_unavailable": 1},
        last_failure_at=NOW - 2 * HOUR,
        last_success_at=NOW - HOUR,
    )
    other = charter_view("ops", failures_by_reason={"timeout": 1}, last_failure_at=NOW)
    failing = WorkView("user_immediate", {}, {"provider_unavailable": 2}, None, NOW - 3 * HOUR)
    found = reason_failures([fine, other], [failing], "provider_unavailable")
    assert found == ReasonFailures(NOW - 2 * HOUR, True)
    assert reason_failures([fine, other], [], "provider_unavailable").still_failing is False
    assert reason_failures([], [], "provider_unavailable") == ReasonFailures(None, False)

"""The pure computations: runway, burn rate, health, reasons, charters, next run."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter import model
from exporter.model import (
    FAILURE_REASONS,
    ScheduleConfigError,
    ScheduleFacts,
    burn_rate,
    charter_name,
    charters,
    failure_reason,
    is_failure,
    next_run,
    runway_seconds,
)
from exporter.policy import RED_RUNWAY_SECONDS, YELLOW_RUNWAY_SECONDS, Health, credit_health

BIGINT_MAX = 2**63 - 1


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# --- credit ------------------------------------------------------------------------


def test_burn_rate_is_spend_over_window() -> None:
    assert burn_rate(3_000_000, 86400) == pytest.approx(34.7222222)
    assert burn_rate(0, 86400) == 0
    assert burn_rate(-5, 86400) == 0  # refunds never make a negative burn


def test_burn_rate_rejects_an_empty_window() -> None:
    with pytest.raises(ValueError, match="positive"):
        burn_rate(1, 0)


@pytest.mark.parametrize(
    ("balance", "rate", "expected"),
    [
        (30_000_000, 3_000_000 / 86400, 864_000.0),  # ten days
        (0, 100.0, 0.0),  # the incident: nothing left
        (-5_000, 100.0, 0.0),  # balances may go negative; runway never does
        (0, 0.0, 0.0),  # nothing left and nothing spent is still no runway
        (1, 0.0, math.inf),  # nothing spent: unbounded
        (BIGINT_MAX, 1e-9, BIGINT_MAX / 1e-9),
        (BIGINT_MAX, 0.0, math.inf),
    ],
)
def test_runway_edge_cases(balance: int, rate: float, expected: float) -> None:
    assert runway_seconds(balance, rate) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("balance", "runway", "health"),
    [
        (1, math.inf, Health.GREEN),
        (1, YELLOW_RUNWAY_SECONDS + 1, Health.GREEN),
        (1, YELLOW_RUNWAY_SECONDS, Health.YELLOW),  # 24 h exactly is yellow
        (1, YELLOW_RUNWAY_SECONDS - 1, Health.YELLOW),
        (1, RED_RUNWAY_SECONDS + 1, Health.YELLOW),
        (1, RED_RUNWAY_SECONDS, Health.YELLOW),  # 6 h exactly is yellow
        (1, RED_RUNWAY_SECONDS - 1, Health.RED),
        (0, math.inf, Health.RED),  # a zero balance is red whatever the runway
        (-1, math.inf, Health.RED),
    ],
)
def test_health_thresholds_and_boundaries(balance: int, runway: float, health: Health) -> None:
    assert credit_health(balance, runway) is health


def test_thresholds_are_the_research_notes() -> None:
    assert RED_RUNWAY_SECONDS == 21600
    assert YELLOW_RUNWAY_SECONDS == 86400


@given(
    balance=st.integers(min_value=1, max_value=BIGINT_MAX),
    spent=st.integers(min_value=1, max_value=BIGINT_MAX),
    window=st.integers(min_value=1, max_value=90 * 86400),
)
def test_runway_times_burn_gives_back_the_balance(balance: int, spent: int, window: int) -> None:
    rate = burn_rate(spent, window)
    runway = runway_seconds(balance, rate)
    assert runway > 0
    assert runway * rate == pytest.approx(balance, rel=1e-9)


@given(
    balance=st.integers(min_value=-(2**63), max_value=BIGINT_MAX),
    rate=st.floats(min_value=0, max_value=1e18, allow_nan=False),
)
def test_runway_is_never_negative_and_health_is_consistent(balance: int, rate: float) -> None:
    runway = runway_seconds(balance, rate)
    assert runway >= 0
    health = credit_health(balance, runway)
    if balance <= 0:
        assert health is Health.RED
    elif runway > YELLOW_RUNWAY_SECONDS:
        assert health is Health.GREEN


# --- runs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "message", "failed"),
    [
        ("error", None, "insufficient_credits", True),
        ("error", None, None, True),
        ("skipped", None, "Grant validation failed", True),  # a failed grant check
        ("skipped", "internal", None, True),
        ("skipped", None, None, False),  # a plain skip
        ("skipped", None, "   ", False),
        ("skipped", " \x0b", "\t\r\n\f", False),  # blank, as SQL's btrim sees it
        ("skipped", None, " x ", True),
        ("success", None, "insufficient_credits", False),
        ("cancelled", None, "aborted", False),
        # Statuses count as the source system writes them, as in the SQL that the
        # optional partial indexes serve: anything else is 'unknown', no failure.
        ("ERROR", None, None, False),
        (" error", None, None, False),
        (None, None, "x", False),
    ],
)
def test_what_counts_as_a_failure(
    status: str | None, code: str | None, message: str | None, failed: bool
) -> None:
    assert is_failure(status, code, message) is failed


@pytest.mark.parametrize(
    ("code", "message", "reason"),
    [
        (None, "insufficient_credits", "insufficient_credits"),
        (None, "Grant validation failed", "grant_validation_failed"),
        (None, "Graph execution failed", "graph_execution_failed"),
        (None, " TIMEOUT ", "timeout"),
        ("rate_limit", "Graph execution failed", "rate_limit"),  # the code wins
        ("not_a_code", "aborted", "aborted"),
        (None, "Error: connect ECONNREFUSED 10.0.0.3:443", "other"),
        (None, None, "other"),
        (None, 'a "quoted"\nmulti-line\\ message', "other"),
    ],
)
def test_failure_reasons_map_onto_a_bounded_set(
    code: str | None, message: str | None, reason: str
) -> None:
    assert failure_reason(code, message) == reason


@given(code=st.none() | st.text(), message=st.none() | st.text())
def test_free_text_never_becomes_a_reason(code: str | None, message: str | None) -> None:
    assert failure_reason(code, message) in FAILURE_REASONS


def test_unknown_statuses_are_bucketed() -> None:
    assert model.normalise_status("weird") == "unknown"
    assert model.normalise_status("success") == "success"
    assert model.normalise_status(" Success ") == "unknown"  # not as the source writes it
    assert model.normalise_status(None) == "unknown"


# --- charters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tsid", "message", "name"),
    [
        ("governance:govern", "GOVERN", "govern"),
        ("governance:Community", None, "community"),
        (None, "ENGINEERING", "engineering"),
        ("other:thing", "SUSTAINABILITY", "sustainability"),
        ("governance:", None, "5f0c"),
        (None, None, "5f0c"),
        (None, "line\nbreak\x00", "line_break_"),
    ],
)
def test_charter_name(tsid: str | None, message: str | None, name: str) -> None:
    assert charter_name(tsid, message, "5f0c") == name


@given(st.text(), st.text())
def test_charter_names_are_bounded_and_printable(tsid: str, message: str) -> None:
    name = charter_name(tsid, message, "id")
    assert 0 < len(name) <= model.MAX_LABEL_LENGTH
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in name)


def _facts(charter: str, **overrides: object) -> ScheduleFacts:
    values: dict[str, object] = {
        "schedule_id": charter,
        "charter": charter,
        "cron": "0 * * * *",
        "timezone": "UTC",
        "enabled": True,
        "cached_next_run_at": None,
        "runs_by_status": {"success": 1},
        "failures_by_reason": {},
        "last_success_at": None,
        "last_failure_at": None,
    }
    values.update(overrides)
    return ScheduleFacts(**values)  # type: ignore[arg-type]


def test_expected_charters_missing_and_extra_ones_found() -> None:
    now = at(2026, 2, 15, 12, 7)
    views = charters([_facts("govern"), _facts("ops")], ["govern", "COMMUNITY"], now)
    assert [(v.charter, v.configured) for v in views] == [
        ("govern", True),
        ("community", False),
        ("ops", True),
    ]
    assert views[0].next_run_at == at(2026, 2, 15, 13)
    assert views[0].next_run_in_seconds == 53 * 60


def test_two_schedules_of_one_charter_are_merged() -> None:
    now = at(2026, 2, 15, 12, 7)
    views = charters(
        [
            _facts(
                "govern",
                schedule_id="a",
                enabled=False,
                last_success_at=at(2026, 2, 15, 9),
                runs_by_status={"success": 2},
                failures_by_reason={"timeout": 1},
            ),
            _facts(
                "govern",
                schedule_id="b",
                cron="30 * * * *",
                last_success_at=at(2026, 2, 15, 11),
                runs_by_status={"success": 1},
            ),
        ],
        ["govern"],
        now,
    )
    (view,) = views
    assert view.schedules == 2
    assert view.enabled
    assert view.runs_by_status["success"] == 3
    assert view.failures_by_reason["timeout"] == 1
    assert view.failed_runs == 1
    assert view.last_success_at == at(2026, 2, 15, 11)
    assert view.next_run_at == at(2026, 2, 15, 12, 30)  # only the enabled schedule fires


def test_disabled_charter_has_no_next_run() -> None:
    (view,) = charters([_facts("govern", enabled=False)], ["govern"], at(2026, 2, 15))
    assert not view.enabled
    assert view.next_run_at is None
    assert view.config_error is None


def test_bad_cron_or_zone_is_a_labelled_error_not_a_crash() -> None:
    views = charters(
        [_facts("govern", cron="61 * * * *"), _facts("community", timezone="Mars/Olympus")],
        ["govern", "community"],
        at(2026, 2, 15),
    )
    assert "invalid cron" in (views[0].config_error or "")
    assert "unknown time zone" in (views[1].config_error or "")
    assert views[0].next_run_at is None


def test_a_time_zone_that_is_a_directory_is_a_config_error() -> None:
    """ZoneInfo("America") raises IsADirectoryError, not ZoneInfoNotFoundError."""
    (view,) = charters([_facts("govern", timezone="America")], ["govern"], at(2026, 2, 15))
    assert view.configured
    assert "unknown time zone 'America'" in (view.config_error or "")
    assert view.next_run_at is None


# --- next run ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "zone", "now", "expected_next", "interval"),
    [
        ("0 * * * *", "UTC", at(2026, 2, 15, 12, 7), at(2026, 2, 15, 13), 3600),
        ("45 * * * *", "UTC", at(2026, 2, 15, 12, 45), at(2026, 2, 15, 13, 45), 3600),
        # New York springs forward on 2026-03-08 at 07:00 UTC: hourly stays hourly.
        ("15 * * * *", "America/New_York", at(2026, 3, 8, 6, 20), at(2026, 3, 8, 7, 15), 3600),
        # Berlin: 02:30 does not exist on 2026-03-29; cron fires right after the jump,
        # and the day is 23 h long.
        ("30 2 * * *", "Europe/Berlin", at(2026, 3, 28, 12), at(2026, 3, 29, 1), 84600),
        # Berlin falls back on 2026-10-25 at 01:00 UTC: the repeated hour fires
        # twice for an hourly job (real time stays 3600 s apart) ...
        ("0 * * * *", "Europe/Berlin", at(2026, 10, 24, 23, 30), at(2026, 10, 25), 3600),
        ("0 * * * *", "Europe/Berlin", at(2026, 10, 25, 1, 30), at(2026, 10, 25, 2), 3600),
        # ... but once for a daily 02:30 job, so that day is 25 h long.
        ("30 2 * * *", "Europe/Berlin", at(2026, 10, 24, 12), at(2026, 10, 25, 0, 30), 90000),
        ("30 2 * * *", "Europe/Berlin", at(2026, 10, 25, 1), at(2026, 10, 26, 1, 30), 86400),
    ],
)
def test_next_run_across_dst(
    cron: str, zone: str, now: datetime, expected_next: datetime, interval: int
) -> None:
    planned = next_run(cron, zone, now)
    assert planned.at == expected_next
    assert planned.interval_seconds == interval


@pytest.mark.parametrize(
    ("cron", "zone", "message"),
    [
        ("not cron", "UTC", "invalid cron"),
        ("0 0 30 2 *", "UTC", "invalid cron"),
        ("0 * * * *", "Nowhere/Town", "unknown time zone"),
        ("0 * * * *", "", "unknown time zone"),
        ("0 * * * *", "../../etc/passwd", "unknown time zone"),
        ("0 * * * *", "America", "unknown time zone"),  # a directory: IsADirectoryError
    ],
)
def test_next_run_rejects_bad_schedules(cron: str, zone: str, message: str) -> None:
    with pytest.raises(ScheduleConfigError, match=message):
        next_run(cron, zone, at(2026, 2, 15))


def test_next_run_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_run("0 * * * *", "UTC", datetime(2026, 2, 15))


ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Santiago",
    "Pacific/Chatham",
]
CRONS = ["0 * * * *", "15 * * * *", "30 2 * * *", "*/5 * * * *", "0 0 * * 0", "0 3 1 * *"]


@given(
    cron=st.sampled_from(CRONS),
    zone=st.sampled_from(ZONES),
    now=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
    ),
)
def test_next_run_is_in_the_future_and_the_interval_is_positive(
    cron: str, zone: str, now: datetime
) -> None:
    planned = next_run(cron, zone, now)
    assert planned.at > now
    assert planned.at - now <= timedelta(days=32)
    assert 0 < planned.interval_seconds <= 32 * 86400
    assert planned.at.tzinfo is UTC

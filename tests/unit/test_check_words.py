"""The pure parts of ``check``: its statuses, and the words it and the page use."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from exporter import check
from exporter.check import Status
from exporter.model import CharterView
from exporter.policy import Health, stalled_for
from exporter.words import format_duration, format_usd


def test_status_values_are_the_monitoring_plugin_convention() -> None:
    assert [(s.name, int(s)) for s in Status] == [
        ("OK", 0),
        ("WARNING", 1),
        ("CRITICAL", 2),
        ("UNKNOWN", 3),
    ]
    assert check.HEALTH_STATUS == {
        Health.GREEN: Status.OK,
        Health.YELLOW: Status.WARNING,
        Health.RED: Status.CRITICAL,
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (-5, "0 s"),
        (89, "89 s"),
        (90, "2 min"),
        (59 * 60, "59 min"),
        (3600, "1 h"),
        (3600 + 29 * 60, "1 h 29 min"),
        (47 * 3600, "47 h"),
        (48 * 3600, "2 d"),
        (50 * 3600, "2 d 2 h"),
    ],
)
def test_durations_read_naturally(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("credits", "text"),
    [(0, "$0.00"), (10_000_000, "$1.00"), (12_345, "<$0.01"), (-5_000_000, "-$0.50")],
)
def test_usd_from_credits(credits: int, text: str) -> None:
    assert format_usd(credits) == text


def test_stall_limit_is_two_intervals_plus_half_an_hour() -> None:
    now = datetime(2026, 2, 15, 12, 0, tzinfo=UTC)
    limit = timedelta(seconds=2 * 3600 + 1800)

    def charter(last_success: datetime | None, *, enabled: bool = True) -> CharterView:
        return CharterView(
            "govern", True, enabled=enabled, interval_seconds=3600, last_success_at=last_success
        )

    assert stalled_for(charter(now - limit), now) is None
    assert (
        stalled_for(charter(now - limit - timedelta(seconds=1)), now) == limit.total_seconds() + 1
    )
    assert stalled_for(charter(None), now) == math.inf
    assert stalled_for(charter(None, enabled=False), now) is None  # paused: not stalled

"""exporter/words.py: the human words ``check`` and the status page share."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from unit_builders import NOW, at, charter_view, credit

from exporter.words import (
    ERROR_WORDS,
    burn_per_hour,
    error_sentence,
    error_words,
    format_credits,
    format_duration,
    format_failures,
    format_runs,
    format_runway,
    format_time,
    format_usd,
    short_time,
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.4, "0 s"),
        (1, "1 s"),
        (89.4, "89 s"),
        (91, "2 min"),
        (149, "2 min"),
        (151, "3 min"),
        (3569, "59 min"),
        (3570, "1 h"),
        (5400, "1 h 30 min"),
        (48 * 3600 - 1, "2 d"),
        (72 * 3600, "3 d"),
        (73 * 3600, "3 d 1 h"),
        (30 * 86400, "30 d"),
        (math.inf, "inf"),
    ],
)
def test_more_durations(seconds: float, text: str) -> None:
    if math.isinf(seconds):
        with pytest.raises(OverflowError):
            format_duration(seconds)
        return
    assert format_duration(seconds) == text


@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False))
def test_a_duration_is_one_short_phrase(seconds: float) -> None:
    text = format_duration(seconds)
    assert text.split()[-1] in {"s", "min", "h", "d"}
    assert not text.startswith("-")


@pytest.mark.parametrize(
    ("credits", "text"),
    [
        (0, "0 credits"),
        (1, "1 credits"),
        (4_000_000, "4,000,000 credits"),
        (-5, "-5 credits"),
        (1234.6, "1,235 credits"),
    ],
)
def test_credits(credits: float, text: str) -> None:
    assert format_credits(credits) == text


@pytest.mark.parametrize(
    ("credits", "text"),
    [
        (99_999, "<$0.01"),
        (100_000, "$0.01"),
        (-1, "-<$0.01"),
        (-100_000, "-$0.01"),
        (4_000_000, "$0.40"),
        (12_345_678_900_000, "$1,234,567.89"),
    ],
)
def test_more_usd(credits: float, text: str) -> None:
    assert format_usd(credits) == text


@pytest.mark.parametrize(
    ("overrides", "text"),
    [
        ({"balance_credits": 0}, "0 — no credits left"),
        ({"balance_credits": -3, "runway_seconds": 0.0}, "0 — no credits left"),
        ({"runway_seconds": math.inf}, "∞ — nothing spent in the window"),
        ({"runway_seconds": 6 * 3600.0}, "6.0 hours"),
        ({"runway_seconds": 47.9 * 3600}, "47.9 hours"),
        ({"runway_seconds": 48 * 3600.0}, "2.0 days"),
        ({"runway_seconds": 10 * 86400.0}, "10.0 days"),
    ],
)
def test_runway_in_words(overrides: dict[str, object], text: str) -> None:
    assert format_runway(credit(**overrides)) == text


def test_burn_per_hour() -> None:
    assert burn_per_hour(credit(burn_rate_per_second=2.5)) == 9000


def test_times() -> None:
    assert format_time(at(2026, 3, 4, 5, 6, 7)) == "2026-03-04 05:06 UTC"
    assert short_time(NOW - timedelta(hours=1), NOW) == "11:07 UTC"
    assert short_time(NOW - timedelta(days=1), NOW) == "2026-03-03 12:07 UTC"


@pytest.mark.parametrize(
    ("failures", "text"),
    [
        ({}, ""),
        ({"timeout": 0}, ""),
        ({"timeout": 1, "insufficient_credits": 6}, "insufficient_credits 6, timeout 1"),
        ({"timeout": 2, "aborted": 2}, "aborted 2, timeout 2"),  # ties by name
    ],
)
def test_failures_in_words(failures: dict[str, int], text: str) -> None:
    assert format_failures(charter_view(failures_by_reason=failures)) == text


@pytest.mark.parametrize(
    ("runs", "text"),
    [
        ({}, "none"),
        ({"success": 0, "error": 0}, "none"),
        ({"success": 18, "error": 6, "pending": 0}, "success 18, error 6"),
    ],
)
def test_runs_in_words(runs: dict[str, int], text: str) -> None:
    assert format_runs(charter_view(runs_by_status=runs)) == text


@pytest.mark.parametrize("reason", sorted(ERROR_WORDS))
def test_every_collection_error_has_words(reason: str) -> None:
    words = error_words(reason)
    assert words == ERROR_WORDS[reason]
    sentence = error_sentence(reason, NOW - timedelta(minutes=5), NOW)
    assert sentence == f"{words[0].upper()}{words[1:]} since 12:02 UTC (5 min)"


def test_an_unknown_error_and_no_start() -> None:
    assert error_words("novel") == "database cannot be read"
    assert error_sentence("novel", None, NOW) == "Database cannot be read"

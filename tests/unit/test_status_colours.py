"""The status page's colours are the policy's health at the rule thresholds."""

from __future__ import annotations

import pytest

from exporter.policy import RED_RUNWAY_SECONDS, YELLOW_RUNWAY_SECONDS, Health, credit_health
from exporter.status_page import HEALTH_COLOURS, UNKNOWN_COLOURS


def health_colour(health: Health) -> str:
    """The background the page gives a health."""
    return HEALTH_COLOURS[health][0]


@pytest.mark.parametrize(
    ("balance", "runway", "health"),
    [
        (1, RED_RUNWAY_SECONDS - 1, Health.RED),
        (1, RED_RUNWAY_SECONDS, Health.YELLOW),
        (1, YELLOW_RUNWAY_SECONDS, Health.YELLOW),
        (1, YELLOW_RUNWAY_SECONDS + 1, Health.GREEN),
        (1, float("inf"), Health.GREEN),
        (0, float("inf"), Health.RED),
        (-5, float("inf"), Health.RED),
    ],
)
def test_card_colour_at_the_rule_thresholds(balance: int, runway: float, health: Health) -> None:
    assert health_colour(credit_health(balance, runway)) == health_colour(health)


def test_the_three_colours_differ() -> None:
    colours = {health_colour(h) for h in Health} | {UNKNOWN_COLOURS[0]}
    assert len(colours) == 4

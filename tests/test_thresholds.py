"""The credit thresholds are one pair of numbers wherever they are used.

The exporter's ``RED_RUNWAY_SECONDS`` / ``YELLOW_RUNWAY_SECONDS`` are the truth.
Each consumer gets a reader returning the ``Thresholds`` it uses; to check a new
one (the dashboard, the status page), write its reader and add it to
``THRESHOLD_SOURCES``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_dashboard import dashboard_runway_thresholds

from exporter import policy, status_page

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "prometheus" / "rules" / "governance.rules.yml"


@dataclass(frozen=True)
class Thresholds:
    red_seconds: float  # red below this runway (strict <)
    yellow_seconds: float  # yellow at or below this runway (<=), green above


EXPECTED = Thresholds(policy.RED_RUNWAY_SECONDS, policy.YELLOW_RUNWAY_SECONDS)


@dataclass(frozen=True)
class Comparison:
    rule: str
    series: str
    operator: str
    value: float


# A runway or balance series (raw or a governance:...:... recording) compared to a number.
_COMPARISON = re.compile(
    r"(governance[_:]credit_(?:runway_seconds|balance_credits)(?::\w+)?)"
    r"\s*(<=|<|>=|>|==|!=)\s*(?:bool\s+)?(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
)


def _rules(path: Path = RULES) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def comparisons_in_rule(rule: dict[str, Any]) -> list[Comparison]:
    """Every comparison of a credit runway or balance series with a number."""
    name = rule.get("alert") or rule["record"]
    return [
        Comparison(name, series, operator, float(value))
        for series, operator, value in _COMPARISON.findall(rule["expr"])
    ]


def comparisons_in_rules(path: Path = RULES) -> list[Comparison]:
    return [c for rule in _rules(path) for c in comparisons_in_rule(rule)]


def thresholds_in_rules(path: Path = RULES) -> Thresholds:
    """The red and yellow runway thresholds of the rules; each must be used consistently."""
    runway = [c for c in comparisons_in_rules(path) if "runway" in c.series]
    red = {c.value for c in runway if c.operator == "<"}
    yellow = {c.value for c in runway if c.operator == "<="}
    assert {c.operator for c in runway} <= {"<", "<="}, runway
    assert len(red) == 1, f"red runway threshold is not one number: {red}"
    assert len(yellow) == 1, f"yellow runway threshold is not one number: {yellow}"
    return Thresholds(red.pop(), yellow.pop())


def thresholds_in_dashboard() -> Thresholds:
    return Thresholds(*dashboard_runway_thresholds())


def _first_runway(predicate: Callable[[int], bool], high: int = 10 * 86400) -> int:
    """The smallest whole-second runway for which ``predicate`` holds (it is monotonic)."""
    low = 0
    while low < high:
        middle = (low + high) // 2
        if predicate(middle):
            high = middle
        else:
            low = middle + 1
    return low


def thresholds_on_status_page() -> Thresholds:
    """Read back from the colours the page actually paints, not from the constants."""
    colours = status_page.HEALTH_COLOURS

    def card(runway: float) -> str:
        # The credit card's background: its health's colour (``.h-<health>``).
        return colours[policy.credit_health(1, runway)][0]

    red = colours[policy.Health.RED][0]
    green = colours[policy.Health.GREEN][0]
    first_not_red = _first_runway(lambda r: card(r) != red)
    first_green = _first_runway(lambda r: card(r) == green)
    return Thresholds(first_not_red, first_green - 1)


THRESHOLD_SOURCES: dict[str, Callable[[], Thresholds]] = {
    "status page": thresholds_on_status_page,
    "prometheus rules": thresholds_in_rules,
    "grafana dashboard": thresholds_in_dashboard,
}


@pytest.mark.parametrize("source", sorted(THRESHOLD_SOURCES))
def test_thresholds_equal_the_exporters(source: str) -> None:
    assert THRESHOLD_SOURCES[source]() == EXPECTED


def test_the_exporters_thresholds_are_the_research_notes() -> None:
    assert (policy.RED_RUNWAY_SECONDS, policy.YELLOW_RUNWAY_SECONDS) == (6 * 3600, 24 * 3600)


def test_boundaries_are_where_the_exporter_puts_them() -> None:
    # The rules use `< red` and `<= yellow`; the exporter must agree at each edge.
    red, yellow = EXPECTED.red_seconds, EXPECTED.yellow_seconds
    assert policy.credit_health(1, red - 1) is policy.Health.RED
    assert policy.credit_health(1, red) is policy.Health.YELLOW
    assert policy.credit_health(1, yellow) is policy.Health.YELLOW
    assert policy.credit_health(1, yellow + 1) is policy.Health.GREEN
    assert policy.credit_health(0, float("inf")) is policy.Health.RED


def test_each_runway_alert_uses_its_threshold() -> None:
    by_severity = {
        (rule["labels"]["severity"], rule["labels"]["condition"]): [
            (c.operator, c.value) for c in comparisons_in_rule(rule)
        ]
        for rule in _rules()
        if rule.get("alert") == "GovernanceCreditRunwayLow"
    }
    assert by_severity == {
        ("warning", "runway"): [("<=", EXPECTED.yellow_seconds)],
        ("critical", "runway"): [("<", EXPECTED.red_seconds)],
        ("critical", "balance"): [("<=", 0)],
    }

"""The verdict's vocabulary: a health, one problem naming its alert, and an assessment."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from exporter.policy.thresholds import LedgerThresholds


class Health(enum.StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


_HEALTH_ORDER = (Health.GREEN, Health.YELLOW, Health.RED)


def worst(healths: Iterable[Health]) -> Health:
    return max(healths, key=_HEALTH_ORDER.index, default=Health.GREEN)


@dataclass(frozen=True)
class Problem:
    """One reason the verdict is not green, named after the alert that covers it."""

    health: Health
    subject: str  # "credit", "budget gate", or a charter name
    alert: str
    message: str
    # The work that failed has succeeded since its last failure: shown, not counted.
    recovered: bool = False


@dataclass(frozen=True)
class Assessment:
    """The verdict: the worst health of the current problems. ``recovered`` lists
    failures in the window that have stopped; they never colour the verdict."""

    health: Health
    problems: list[Problem]
    # The --ledger-* numbers this verdict was judged with (the status page shows them).
    ledger_limits: LedgerThresholds | None = None
    recovered: list[Problem] = field(default_factory=list)

    def for_subject(self, subject: str) -> list[Problem]:
        return [p for p in self.problems if p.subject == subject]

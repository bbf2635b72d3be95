"""The credit verdicts: runway bands, an exhausted balance, runs refused for credits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from exporter.model import CharterView, CreditView, ReasonFailures
from exporter.policy.core import Health, Problem
from exporter.policy.thresholds import RED_RUNWAY_SECONDS, YELLOW_RUNWAY_SECONDS
from exporter.words import (
    format_credits,
    format_duration,
    format_failure_count,
    format_runway,
)


def credit_health(
    balance_credits: float,
    runway: float,
    *,
    min_run_cost_credits: float = 0,
    refused: bool = False,
) -> Health:
    """Green above 24 h of runway, red below 6 h, at a zero balance, below one run's
    cost (the preflight check refuses runs there), or while runs are ``refused`` for
    credits with nothing spent; else yellow."""
    if balance_credits <= 0 or balance_credits < min_run_cost_credits or refused:
        return Health.RED
    if runway < RED_RUNWAY_SECONDS:
        return Health.RED
    if runway <= YELLOW_RUNWAY_SECONDS:
        return Health.YELLOW
    return Health.GREEN


def runs_refused(credit: CreditView) -> bool:
    """Runs rejected for credits in the window while nothing was spent, and not
    followed by a success of the same work: every run is turned away, whatever
    the balance says (a runway of +Inf is no comfort)."""
    return credit.rejected_runs > 0 and credit.spent_credits <= 0 and credit.rejected.still_failing


def credit_level(credit: CreditView) -> Health:
    """The credit card's colour: the health of the balance and its runway."""
    return credit_health(
        credit.balance_credits,
        credit.runway_seconds,
        min_run_cost_credits=credit.min_run_cost_credits,
        refused=runs_refused(credit),
    )


def _balance_problem(credit: CreditView) -> Problem | None:
    if credit.balance_credits <= 0:
        return Problem(
            Health.RED,
            "credit",
            "GovernanceCreditRunwayLow",
            f"balance is {format_credits(credit.balance_credits)}: every governance run "
            "is rejected with insufficient_credits until the account is topped up",
        )
    if credit.balance_credits < credit.min_run_cost_credits:
        return Problem(
            Health.RED,
            "credit",
            "GovernanceCreditRunwayLow",
            f"balance {format_credits(credit.balance_credits)} is below one run's cost "
            f"({format_credits(credit.min_run_cost_credits)}): the preflight check rejects "
            "runs with insufficient_credits until the account is topped up",
        )
    return None


def _reason_count(
    runs: int, reason: str, failures: ReasonFailures, credit: CreditView, now: datetime | None
) -> str:
    """``3 failed with provider_unavailable in the last 24 h, last 2 h ago``."""
    return format_failure_count(
        runs, credit.window_seconds, failures.last_failure_at, now, how=f" with {reason}"
    )


def _refusal_problems(credit: CreditView, now: datetime | None) -> list[Problem]:
    problems = []
    rejected = credit.rejected
    if credit.rejected_runs > 0 and credit.spent_credits <= 0:
        count = _reason_count(credit.rejected_runs, "insufficient_credits", rejected, credit, now)
        problems.append(
            Problem(
                Health.RED,
                "credit",
                "GovernanceRunsRejectedForCredits",
                f"{count}, nothing spent: every run is refused, whatever the balance says"
                if rejected.still_failing
                else f"{count}, nothing spent; recovered: the rejected work has succeeded since",
                recovered=not rejected.still_failing,
            )
        )
    provider = credit.provider_unavailable
    if credit.provider_unavailable_runs > 0:
        count = _reason_count(
            credit.provider_unavailable_runs, "provider_unavailable", provider, credit, now
        )
        problems.append(
            Problem(
                Health.RED,
                "provider",
                "GovernanceProviderUnavailable",
                f"{count}: the operator's LLM provider account is unfunded or the provider "
                "is down, which the balance cannot show"
                if provider.still_failing
                else f"{count}; recovered: the work that failed so has succeeded since",
                recovered=not provider.still_failing,
            )
        )
    return problems


def _runway_problem(credit: CreditView) -> Problem | None:
    runway = format_runway(credit)
    if credit.runway_seconds < RED_RUNWAY_SECONDS:
        return Problem(
            Health.RED,
            "credit",
            "GovernanceCreditRunwayLow",
            f"runway {runway} is below {format_duration(RED_RUNWAY_SECONDS)}",
        )
    if credit.runway_seconds <= YELLOW_RUNWAY_SECONDS:
        return Problem(
            Health.YELLOW,
            "credit",
            "GovernanceCreditRunwayLow",
            f"runway {runway} is at or below {format_duration(YELLOW_RUNWAY_SECONDS)}",
        )
    return None


def credit_problems(
    credit: CreditView, charters: Sequence[CharterView], now: datetime | None = None
) -> list[Problem]:
    """The balance, runway, spend and refusals; ``now`` dates the last failure (without
    it the words leave out how long ago)."""
    window = format_duration(credit.window_seconds)
    # The balance says more than the runway: one problem for the two.
    first = _balance_problem(credit) or _runway_problem(credit)
    problems = [first] if first is not None else []
    spending = [c for c in charters if c.spends_credits]
    if credit.spent_credits <= 0 and spending:
        problems.append(
            Problem(
                Health.YELLOW,
                "credit",
                "GovernanceNoSpend",
                f"nothing spent in the last {window} while {len(spending)} charter(s) "
                "are enabled: runs may be rejected before they spend, or not run at all",
            )
        )
    return problems + _refusal_problems(credit, now)

"""``governance-exporter check``: one collection, a verdict, a monitoring-plugin exit status.

Exit status: 0 green, 1 yellow, 2 red, 3 when the database cannot be read (the
Nagios / monitoring-plugin convention), so cron, CI or a Nagios-style checker can
page without Prometheus.

What makes a verdict, mirroring prometheus/rules/governance.rules.yml (alert in
brackets). ``check`` is one reading with no history, so it has no ``for:`` delay:
it reports at once what the alerts report once it has lasted.

- red: credit runway below 6 h, or balance <= 0 [GovernanceCreditRunwayLow
  critical]; an expected charter with no schedule row [GovernanceCharterMissing];
  an enabled charter without a success for more than 2 of its intervals + 30 min,
  or that never succeeded [GovernanceCharterStalled] (the alert counts a charter
  that never succeeded from when Prometheus first saw it; ``check`` has no such
  history, so it gives a brand-new schedule no grace).
- yellow: runway 6-24 h [GovernanceCreditRunwayLow warning]; failed runs in the
  window [GovernanceRunsFailing]; a charter whose schedules are all disabled
  [GovernanceScheduleDisabled]; a cron or time zone that cannot be used
  [GovernanceScheduleConfigInvalid]; nothing spent in the window while a charter
  is enabled [GovernanceNoSpend].
- unknown (3): any collection error, including row-level security hiding the
  account: an empty system is never "fine".

The assessment and the wording here are shared with the status page.
"""

from __future__ import annotations

import argparse
import enum
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from exporter.collection import CollectionResult
from exporter.model import (
    CREDITS_PER_USD,
    RED_RUNWAY_SECONDS,
    YELLOW_RUNWAY_SECONDS,
    CharterView,
    CreditView,
    GovernanceView,
    Health,
    governance_view,
)
from exporter.settings import Settings
from exporter.source import DatabaseUnavailable, open_pool
from exporter.startup import configure_logging, load_settings

# Same numbers as GovernanceCharterStalled: 2 intervals plus 30 min for the run itself.
STALL_INTERVALS = 2
STALL_GRACE_SECONDS = 1800


class Status(enum.IntEnum):
    """Monitoring-plugin exit statuses."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


HEALTH_STATUS = {
    Health.GREEN: Status.OK,
    Health.YELLOW: Status.WARNING,
    Health.RED: Status.CRITICAL,
}
_HEALTH_ORDER = (Health.GREEN, Health.YELLOW, Health.RED)


def worst(healths: Iterable[Health]) -> Health:
    return max(healths, key=_HEALTH_ORDER.index, default=Health.GREEN)


# --- words and numbers, shared with the status page -------------------------------


def format_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def format_duration(seconds: float) -> str:
    """A human length of time: ``45 s``, ``12 min``, ``5 h 3 min``, ``3 d 4 h``."""
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def format_credits(credits: float) -> str:
    return f"{credits:,.0f} credits"


def format_usd(credits: float) -> str:
    usd = credits / CREDITS_PER_USD
    if 0 < abs(usd) < 0.01:
        return "<$0.01" if usd > 0 else "-<$0.01"
    sign = "-" if usd < 0 else ""
    return f"{sign}${abs(usd):,.2f}"


def format_runway(credit: CreditView) -> str:
    """Runway in hours below 2 days, else in days; ``∞`` when nothing was spent."""
    if credit.balance_credits <= 0:
        return "0 — no credits left"
    if math.isinf(credit.runway_seconds):
        return "∞ — nothing spent in the window"
    hours = credit.runway_seconds / 3600
    return f"{hours:.1f} hours" if hours < 48 else f"{hours / 24:.1f} days"


def burn_per_hour(credit: CreditView) -> float:
    return credit.burn_rate_per_second * 3600


def format_failures(charter: CharterView) -> str:
    """``insufficient_credits 6, timeout 1``, or empty."""
    failures = sorted(
        ((reason, n) for reason, n in charter.failures_by_reason.items() if n > 0),
        key=lambda item: (-item[1], item[0]),
    )
    return ", ".join(f"{reason} {n}" for reason, n in failures)


def format_runs(charter: CharterView) -> str:
    """Runs in the window by status, non-zero only: ``success 18, error 6``."""
    parts = [f"{status} {n}" for status, n in charter.runs_by_status.items() if n > 0]
    return ", ".join(parts) or "none"


# --- the verdict ---------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One reason the verdict is not green, named after the alert that matches it."""

    health: Health
    subject: str  # "credit" or a charter name
    alert: str
    message: str


@dataclass(frozen=True)
class Assessment:
    health: Health
    problems: list[Problem]

    def for_subject(self, subject: str) -> list[Problem]:
        return [p for p in self.problems if p.subject == subject]


def credit_problems(credit: CreditView, charters: Sequence[CharterView]) -> list[Problem]:
    problems = []
    runway = format_runway(credit)
    window = format_duration(credit.window_seconds)
    if credit.balance_credits <= 0:
        problems.append(
            Problem(
                Health.RED,
                "credit",
                "GovernanceCreditRunwayLow",
                f"balance is {format_credits(credit.balance_credits)}: every governance run "
                "is rejected with insufficient_credits until the account is topped up",
            )
        )
    elif credit.runway_seconds < RED_RUNWAY_SECONDS:
        problems.append(
            Problem(
                Health.RED,
                "credit",
                "GovernanceCreditRunwayLow",
                f"runway {runway} is below {format_duration(RED_RUNWAY_SECONDS)}",
            )
        )
    elif credit.runway_seconds <= YELLOW_RUNWAY_SECONDS:
        problems.append(
            Problem(
                Health.YELLOW,
                "credit",
                "GovernanceCreditRunwayLow",
                f"runway {runway} is at or below {format_duration(YELLOW_RUNWAY_SECONDS)}",
            )
        )
    enabled = [c for c in charters if c.enabled]
    if credit.spent_credits <= 0 and enabled:
        problems.append(
            Problem(
                Health.YELLOW,
                "credit",
                "GovernanceNoSpend",
                f"nothing spent in the last {window} while {len(enabled)} charter(s) "
                "are enabled: runs may be rejected before they spend, or not run at all",
            )
        )
    return problems


def stalled_for(charter: CharterView, now: datetime) -> float | None:
    """Seconds since the last success when that is over 2 intervals + 30 min;
    +Inf when an enabled charter never succeeded; ``None`` when not stalled."""
    if not charter.enabled or charter.interval_seconds is None:
        return None
    limit = STALL_INTERVALS * charter.interval_seconds + STALL_GRACE_SECONDS
    if charter.last_success_at is None:
        return math.inf
    age = (now - charter.last_success_at).total_seconds()
    return age if age > limit else None


def _stall_problem(charter: CharterView, now: datetime) -> Problem | None:
    age = stalled_for(charter, now)
    if age is None:
        return None
    interval = format_duration(charter.interval_seconds or 0)
    text = (
        "has never completed a successful run"
        if math.isinf(age)
        else f"no successful run for {format_duration(age)}"
    )
    return Problem(
        Health.RED,
        charter.charter,
        "GovernanceCharterStalled",
        f"{text} (runs every {interval}; stalled after 2 intervals + 30 min)",
    )


def charter_problems(charter: CharterView, now: datetime) -> list[Problem]:
    name = charter.charter
    if not charter.configured:
        return [
            Problem(
                Health.RED,
                name,
                "GovernanceCharterMissing",
                "no schedule row in the database: its runs are not recorded (as on 2026-02-15)",
            )
        ]
    problems = [p for p in [_stall_problem(charter, now)] if p is not None]
    if charter.failed_runs > 0:
        problems.append(
            Problem(
                Health.YELLOW,
                name,
                "GovernanceRunsFailing",
                f"{charter.failed_runs} failed run(s) in the window: {format_failures(charter)}",
            )
        )
    if not charter.enabled:
        problems.append(
            Problem(Health.YELLOW, name, "GovernanceScheduleDisabled", "schedule is disabled")
        )
    if charter.config_error:
        problems.append(
            Problem(Health.YELLOW, name, "GovernanceScheduleConfigInvalid", charter.config_error)
        )
    return problems


def assess(view: GovernanceView, now: datetime) -> Assessment:
    """The verdict on one view: the worst health among its problems."""
    problems = credit_problems(view.credit, view.charters)
    for charter in view.charters:
        problems.extend(charter_problems(charter, now))
    return Assessment(worst(p.health for p in problems), problems)


def charter_health(assessment: Assessment, charter: CharterView) -> Health:
    return worst(p.health for p in assessment.for_subject(charter.charter))


ERROR_WORDS = {
    "database_unavailable": "database unreachable",
    "query_timeout": "database queries timing out",
    "schema_unknown": "Cogni schema not found in the database",
    "account_not_visible": "billing account not visible (wrong slug, or row-level security)",
    "query_failed": "database queries failing",
}


def error_words(reason: str) -> str:
    return ERROR_WORDS.get(reason, "database cannot be read")


# --- one collection ---------------------------------------------------------------------


def collect_once(settings: Settings) -> CollectionResult:
    """One collection through the exporter's own pool, source and cache."""
    from exporter.app import build_snapshots  # noqa: PLC0415 - keeps the HTTP side unloaded

    pool = open_pool(
        settings.conninfo(), max_size=1, timeout_seconds=settings.statement_timeout_seconds
    )
    try:
        return build_snapshots(settings, pool).get()
    finally:
        pool.close(timeout=1)


def explain_unavailable(settings: Settings) -> str | None:
    """Why the database cannot be reached, in libpq's words (the pool only times out)."""
    try:
        with psycopg.connect(
            settings.conninfo(),
            connect_timeout=max(1, math.ceil(settings.statement_timeout_seconds)),
        ):
            return None
    except psycopg.Error as exc:
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__


# --- output -------------------------------------------------------------------------------


def _json_time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def credit_json(credit: CreditView) -> dict[str, Any]:
    return {
        "health": credit.health.value,
        "balance_credits": credit.balance_credits,
        "balance_usd": credit.balance_credits / CREDITS_PER_USD,
        "spent_credits": credit.spent_credits,
        "charges": credit.charges,
        "window_seconds": credit.window_seconds,
        "burn_credits_per_hour": burn_per_hour(credit),
        "runway_seconds": None if math.isinf(credit.runway_seconds) else credit.runway_seconds,
        "last_charge_at": _json_time(credit.last_charge_at),
    }


def charter_json(charter: CharterView, health: Health) -> dict[str, Any]:
    return {
        "charter": charter.charter,
        "health": health.value,
        "configured": charter.configured,
        "enabled": charter.enabled,
        "last_success_at": _json_time(charter.last_success_at),
        "next_run_at": _json_time(charter.next_run_at),
        "interval_seconds": charter.interval_seconds,
        "runs_by_status": {k: v for k, v in charter.runs_by_status.items() if v},
        "failures_by_reason": {k: v for k, v in charter.failures_by_reason.items() if v},
        "config_error": charter.config_error,
    }


def report_json(view: GovernanceView, assessment: Assessment) -> dict[str, Any]:
    return {
        "status": assessment.health.value,
        "exit_code": int(HEALTH_STATUS[assessment.health]),
        "account": view.account,
        "schema_version": view.schema_version,
        "collected_at": _json_time(view.taken_at),
        "error": None,
        "credit": credit_json(view.credit),
        "charters": [charter_json(c, charter_health(assessment, c)) for c in view.charters],
        "problems": [
            {"health": p.health.value, "subject": p.subject, "alert": p.alert, "message": p.message}
            for p in assessment.problems
        ],
    }


def error_json(result: CollectionResult, detail: str | None) -> dict[str, Any]:
    assert result.error is not None
    return {
        "status": "unknown",
        "exit_code": int(Status.UNKNOWN),
        "collected_at": _json_time(result.started_at),
        "error": {
            "reason": result.error.reason,
            "summary": error_words(result.error.reason),
            "message": str(result.error),
            "detail": detail,
        },
    }


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _last_success(charter: CharterView, now: datetime) -> str:
    if charter.last_success_at is None:
        return "never"
    ago = format_duration((now - charter.last_success_at).total_seconds())
    return f"{format_time(charter.last_success_at)} ({ago} ago)"


def _next_run(charter: CharterView, now: datetime) -> str:
    if not charter.configured:
        return "-"
    if charter.next_run_at is None:
        return "unknown" if charter.config_error else "paused"
    return f"in {format_duration((charter.next_run_at - now).total_seconds())}"


def _charter_row(charter: CharterView, health: Health, now: datetime) -> list[str]:
    if not charter.configured:
        return [charter.charter, health.value.upper(), "not configured", "-", "-", "-", "-"]
    return [
        charter.charter,
        health.value.upper(),
        "yes" if charter.enabled else "no",
        _last_success(charter, now),
        _next_run(charter, now),
        format_runs(charter),
        format_failures(charter) or "-",
    ]


def credit_line(credit: CreditView) -> str:
    burn = burn_per_hour(credit)
    return (
        f"credit {credit.health.value.upper()}: balance {format_credits(credit.balance_credits)}"
        f" ({format_usd(credit.balance_credits)}), runway {format_runway(credit)}, "
        f"burn {format_credits(burn)}/h ({format_usd(burn)}/h), "
        f"spent {format_credits(credit.spent_credits)} in {format_duration(credit.window_seconds)}"
    )


def report_text(view: GovernanceView, assessment: Assessment) -> str:
    now = view.taken_at
    status = HEALTH_STATUS[assessment.health].name
    count = len(assessment.problems)
    lines = [
        f"GOVERNANCE {status} - account {view.account}: "
        f"{count} problem{'s' if count != 1 else ''} "
        f"(read {format_time(now)}, schema {view.schema_version})",
        credit_line(view.credit),
        "",
    ]
    header = ["charter", "health", "enabled", "last success", "next run", "runs", "failures"]
    rows = [_charter_row(c, charter_health(assessment, c), now) for c in view.charters]
    lines += _table([header, *rows])
    if assessment.problems:
        lines += ["", "problems:"]
        problems = [[p.health.value.upper(), p.subject, p.message] for p in assessment.problems]
        lines += ["  " + line for line in _table(problems)]
    return "\n".join(lines)


def error_text(result: CollectionResult, detail: str | None) -> str:
    assert result.error is not None
    lines = [
        f"GOVERNANCE UNKNOWN - {error_words(result.error.reason)} "
        f"({result.error.reason}): {result.error}"
    ]
    if detail:
        lines.append(f"cause: {detail}")
    return "\n".join(lines)


# --- the command --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="a short human table (default) or one JSON object",
    )


def _print_error(result: CollectionResult, settings: Settings, output: str) -> int:
    assert result.error is not None
    detail = (
        explain_unavailable(settings) if isinstance(result.error, DatabaseUnavailable) else None
    )
    if output == "json":
        print(json.dumps(error_json(result, detail), indent=2))
    else:
        print(error_text(result, detail))
    return int(Status.UNKNOWN)


def run(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    settings = load_settings(overrides)
    # The verdict goes to stdout; the exporter's logs only when asked for with DEBUG.
    configure_logging("DEBUG" if settings.log_level == "DEBUG" else "CRITICAL")
    result = collect_once(settings)
    if result.snapshot is None:
        return _print_error(result, settings, args.output)
    view = governance_view(result.snapshot, settings.expected_charters)
    assessment = assess(view, view.taken_at)
    if args.output == "json":
        print(json.dumps(report_json(view, assessment), indent=2))
    else:
        print(report_text(view, assessment))
    return int(HEALTH_STATUS[assessment.health])

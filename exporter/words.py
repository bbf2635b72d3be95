"""Human words for numbers, times and errors, shared by ``check`` and the status page.

Pure formatting: nothing here decides a colour or a verdict (that is
``exporter.policy``).
"""

from __future__ import annotations

import math
from datetime import datetime

from exporter.ledger import Window
from exporter.model import CREDITS_PER_USD, CharterView, CreditView


def format_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def short_time(at: datetime, now: datetime) -> str:
    """``12:03 UTC`` today, else with the date."""
    return at.strftime("%H:%M UTC") if at.date() == now.date() else format_time(at)


def format_duration(seconds: float) -> str:
    """A human length of time: ``45 s``, ``12 min``, ``5 h 3 min``, ``3 d 4 h``."""
    # `+ 0.0` turns -0.0 into 0.0, which max() alone would keep ("-0 s").
    seconds = max(seconds, 0.0) + 0.0
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


def format_window(window: Window) -> str:
    """``epoch 41 (window 2026-11-23 - 2026-11-30)``: a ledger epoch and its dates."""
    return f"epoch {window.epoch_id} (window {window.start:%Y-%m-%d} - {window.end:%Y-%m-%d})"


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


def format_failure_count(
    runs: int,
    window_seconds: float | None,
    last_failure_at: datetime | None,
    now: datetime | None,
    *,
    which: str = "",
    how: str = "",
) -> str:
    """``3 runs failed in the last 24 h, last 2 h 40 min ago``; ``which`` follows the
    noun (`` without a schedule``), ``how`` the verb (`` with timeout``)."""
    span = f"the last {format_duration(window_seconds)}" if window_seconds else "the window"
    noun = "run" if runs == 1 else "runs"
    text = f"{runs} {noun}{which} failed{how} in {span}"
    if last_failure_at is not None and now is not None:
        text += f", last {format_duration((now - last_failure_at).total_seconds())} ago"
    return text


def format_recovery(last_success_at: datetime | None, now: datetime | None) -> str:
    """``recovered: succeeded 20 min ago``: a success came after the last failure."""
    if last_success_at is None or now is None:
        return "recovered: succeeded since"
    return f"recovered: succeeded {format_duration((now - last_success_at).total_seconds())} ago"


def format_runs(charter: CharterView) -> str:
    """Runs in the window by status, non-zero only: ``success 18, error 6``."""
    parts = [f"{status} {n}" for status, n in charter.runs_by_status.items() if n > 0]
    return ", ".join(parts) or "none"


ERROR_WORDS = {
    "database_unavailable": "no usable database connection",
    "host_unreachable": "database unreachable",
    "connect_timeout": "database not answering connection attempts",
    "authentication_failed": "database login refused (wrong password, unknown role "
    "or no pg_hba.conf entry)",
    "database_missing": "database does not exist",
    "permission_denied": "monitoring role lacks the grants (run sql/monitoring-role.sql)",
    "query_timeout": "database queries timing out",
    "schema_unknown": "Cogni schema not found in the database",
    "account_not_visible": "billing account not visible (wrong slug, or row-level security)",
    "query_failed": "database queries failing",
}


def error_words(reason: str) -> str:
    return ERROR_WORDS.get(reason, "database cannot be read")


def error_sentence(reason: str, failing_since: datetime | None, now: datetime) -> str:
    """E.g. "Database unreachable since 12:03 UTC (5 min)"."""
    words = error_words(reason)
    sentence = words[0].upper() + words[1:]
    if failing_since is not None:
        ago = format_duration((now - failing_since).total_seconds())
        sentence += f" since {short_time(failing_since, now)} ({ago})"
    return sentence

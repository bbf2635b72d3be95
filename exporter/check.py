"""``governance-exporter check``: one collection, a verdict, a monitoring-plugin exit status.

Exit status: 0 green, 1 yellow, 2 red, 3 when the database cannot be read (the
Nagios / monitoring-plugin convention), so cron, CI or a Nagios-style checker can
page without Prometheus. The verdict is ``exporter.policy``'s, the one the status
page shows and the alert rules encode: every problem names its alert. With
``--memory-dir`` the gateway's files count too: a closed or stale budget gate and
a stale heartbeat are warnings (exit 1), as their alerts are.
"""

from __future__ import annotations

import argparse
import enum
import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from exporter.collection import CollectionResult
from exporter.connections import open_pool
from exporter.dberrors import ConnectFailed, first_line
from exporter.declaration import NodeDeclaration
from exporter.ledger import LedgerView
from exporter.model import CREDITS_PER_USD, CharterView, CreditView, GovernanceView, WorkView
from exporter.policy import (
    Assessment,
    Health,
    Problem,
    charter_health,
    credit_level,
    receipt_usual_gap_seconds,
)
from exporter.repospec import RepoSpecError
from exporter.settings import Settings
from exporter.source import CollectionError, DatabaseUnavailable
from exporter.source_factory import build_snapshots
from exporter.startup import UsageError, configure_logging, load_settings
from exporter.verdict import evaluate, gateway_memory
from exporter.words import (
    burn_per_hour,
    error_words,
    format_credits,
    format_duration,
    format_failures,
    format_runs,
    format_runway,
    format_time,
    format_usd,
    format_window,
)


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


# --- one collection ---------------------------------------------------------------------


def collect_once(settings: Settings) -> CollectionResult:
    """One collection through the exporter's own pool, source and cache."""
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
        return first_line(exc)


# --- output -------------------------------------------------------------------------------


def _json_time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def credit_json(credit: CreditView) -> dict[str, Any]:
    return {
        "health": credit_level(credit).value,
        "balance_credits": credit.balance_credits,
        "balance_usd": credit.balance_credits / CREDITS_PER_USD,
        "spent_credits": credit.spent_credits,
        "charges": credit.charges,
        "window_seconds": credit.window_seconds,
        "burn_credits_per_hour": burn_per_hour(credit),
        "runway_seconds": None if math.isinf(credit.runway_seconds) else credit.runway_seconds,
        "last_charge_at": _json_time(credit.last_charge_at),
        "min_run_cost_credits": credit.min_run_cost_credits,
        "rejected_runs": credit.rejected_runs,
        "provider_unavailable_runs": credit.provider_unavailable_runs,
        "spent_by_run_kind": {k: v for k, v in credit.spent_by_kind.items() if v},
        "spent_by_charter": credit.spent_by_charter,
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
        "retired": charter.retired,
        "declared": charter.declared is not None,
        "drift": charter.drift,
        "observable": charter.observable,
        "judged_by_epochs": charter.epochs,
    }


def work_json(work: WorkView) -> dict[str, Any]:
    return {
        "run_kind": work.run_kind,
        "last_success_at": _json_time(work.last_success_at),
        "runs_by_status": {k: v for k, v in work.runs_by_status.items() if v},
        "failures_by_reason": {k: v for k, v in work.failures_by_reason.items() if v},
    }


def ledger_json(ledger: LedgerView) -> dict[str, Any]:
    return {
        "has_ledger": ledger.has_ledger,
        "observable": {
            "epochs": ledger.epochs_observable,
            "receipts": ledger.receipts_observable,
            "distributions": ledger.distributions_observable,
        },
        "streams": [
            {
                "node_id": s.node_id,
                "scope_id": s.scope_id,
                "epochs_by_status": s.epochs_by_status,
                "open_epoch_id": s.open_window.epoch_id if s.open_window else None,
                "collect_overdue_seconds": s.overdue_seconds,
                "review_oldest_wait_seconds": s.review_wait_seconds,
            }
            for s in ledger.streams
        ],
        "receipts": [
            {"node_id": r.node_id, "last_at": _json_time(r.newest_at), "sampled": r.sampled}
            for r in ledger.receipts
        ],
        "last_review_at": _json_time(ledger.last_review_at),
        "distributions": [
            {
                "node_id": d.node_id,
                "scope_id": d.scope_id,
                "manifests": d.manifests,
                "pending_liabilities": d.pending_liabilities,
                "finalized_without_manifest": d.finalized_without_manifest,
            }
            for d in ledger.distributions
        ],
        "dispatch": [
            {"node": d.node, "charter": d.charter, "state": d.state} for d in ledger.dispatch
        ],
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
        "unscheduled_visible": view.unscheduled_visible,
        "unscheduled": [work_json(w) for w in view.unscheduled],
        "ledger": ledger_json(view.ledger) if view.ledger is not None else None,
        "problems": [_problem_json(p) for p in assessment.problems],
        # Failures in the window whose work has succeeded since: not counted.
        "recovered": [_problem_json(p) for p in assessment.recovered],
    }


def _problem_json(problem: Problem) -> dict[str, Any]:
    return {
        "health": problem.health.value,
        "subject": problem.subject,
        "alert": problem.alert,
        "message": problem.message,
    }


# check reads once: the server's ending ("next attempt ... back-off 5 s doubling to
# 5 min") would promise a retry that never comes.
ONE_SHOT_ENDING = "check reads once and does not retry: run it again once this is fixed"


def one_shot_message(error: CollectionError) -> str:
    """The error in a one-shot command's words: no next attempt, no back-off."""
    if isinstance(error, ConnectFailed):
        return f"{error.cause}; {ONE_SHOT_ENDING}"
    return str(error)


def error_json(
    result: CollectionResult, error: CollectionError, detail: str | None
) -> dict[str, Any]:
    return {
        "status": "unknown",
        "exit_code": int(Status.UNKNOWN),
        "collected_at": _json_time(result.started_at),
        "error": {
            "reason": error.reason,
            "summary": error_words(error.reason),
            "message": one_shot_message(error),
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
    if charter.epochs:
        return "judged by epochs"
    if not charter.observable:
        return "not observable"
    if charter.last_success_at is None:
        return "never"
    ago = format_duration((now - charter.last_success_at).total_seconds())
    return f"{format_time(charter.last_success_at)} ({ago} ago)"


def _next_run(charter: CharterView, now: datetime) -> str:
    if not charter.configured:
        return "-"
    if charter.next_run_at is None:
        if charter.retired:
            return "retired"
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
    health = credit_level(credit).value.upper()
    return (
        f"credit {health}: balance {format_credits(credit.balance_credits)}"
        f" ({format_usd(credit.balance_credits)}), runway {format_runway(credit)}, "
        f"burn {format_credits(burn)}/h ({format_usd(burn)}/h), "
        f"spent {format_credits(credit.spent_credits)} in {format_duration(credit.window_seconds)}"
    )


def _ago(at: datetime | None, now: datetime) -> str:
    return "never" if at is None else f"{format_duration((now - at).total_seconds())} ago"


def ledger_lines(ledger: LedgerView, now: datetime) -> list[str]:
    """The attribution ledger in a few lines (none on a node without it)."""
    lines = []
    for s in ledger.streams:
        counts = ", ".join(f"{n} {status}" for status, n in s.epochs_by_status.items())
        window = format_window(s.open_window) if s.open_window else "no open epoch"
        lines.append(f"ledger {s.node_id[:8]}/{s.scope_id[:8]}: {window}; epochs {counts}")
    for r in ledger.receipts:
        gap = receipt_usual_gap_seconds(r)
        usual = f", usual longest gap {format_duration(gap)}" if gap is not None else ""
        lines.append(f"webhook receipts {r.node_id[:8]}: last {_ago(r.newest_at, now)}{usual}")
    if ledger.dispatch:
        states = ", ".join(f"{d.node[:8]}:{d.charter} {d.state}" for d in ledger.dispatch)
        lines.append(f"dispatch schedules: {states}")
    if ledger.has_ledger and not ledger.distributions_observable:
        lines.append("distributions: not observable (their tables need BYPASSRLS)")
    return lines


def report_text(view: GovernanceView, assessment: Assessment) -> str:
    now = view.taken_at
    status = HEALTH_STATUS[assessment.health].name
    count = len(assessment.problems)
    lines = [
        f"GOVERNANCE {status} - account {view.account}: "
        f"{count} problem{'s' if count != 1 else ''} "
        f"(read {format_time(now)}, schema {view.schema_version})",
        credit_line(view.credit),
        *(ledger_lines(view.ledger, now) if view.ledger is not None else []),
        "",
    ]
    header = ["charter", "health", "enabled", "last success", "next run", "runs", "failures"]
    rows = [_charter_row(c, charter_health(assessment, c), now) for c in view.charters]
    lines += _table([header, *rows])
    if assessment.problems:
        lines += ["", "problems:"]
        problems = [
            [p.health.value.upper(), p.subject, p.message, f"[{p.alert}]"]
            for p in assessment.problems
        ]
        lines += ["  " + line for line in _table(problems)]
    if assessment.recovered:
        lines += ["", "recovered (succeeded since; not counted):"]
        recovered = [[p.subject, p.message, f"[{p.alert}]"] for p in assessment.recovered]
        lines += ["  " + line for line in _table(recovered)]
    return "\n".join(lines)


def error_text(error: CollectionError, detail: str | None) -> str:
    lines = [
        f"GOVERNANCE UNKNOWN - {error_words(error.reason)} ({error.reason}): "
        f"{one_shot_message(error)}"
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


def _print_error(
    result: CollectionResult, error: CollectionError, settings: Settings, output: str
) -> int:
    detail = explain_unavailable(settings) if isinstance(error, DatabaseUnavailable) else None
    if output == "json":
        print(json.dumps(error_json(result, error, detail), indent=2))
    else:
        print(error_text(error, detail))
    return int(Status.UNKNOWN)


def run(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    settings = load_settings(overrides)
    # The verdict goes to stdout; the exporter's logs only when asked for with DEBUG.
    configure_logging("DEBUG" if settings.log_level == "DEBUG" else "CRITICAL")
    try:
        declaration = NodeDeclaration.from_settings(settings)
    except RepoSpecError as exc:
        raise UsageError(f"--repo-spec {exc}") from None
    result = collect_once(settings)
    verdict = evaluate(result, declaration, gateway_memory(settings, declaration))
    if verdict is None:
        error = result.error or CollectionError("the collection read nothing")
        return _print_error(result, error, settings, args.output)
    if args.output == "json":
        print(json.dumps(report_json(verdict.view, verdict.assessment), indent=2))
    else:
        print(report_text(verdict.view, verdict.assessment))
    return int(HEALTH_STATUS[verdict.assessment.health])

"""Every threshold and every verdict: what is green, yellow or red, and which alert says so.

Pure: each function takes the views the model built and ``now``; nothing here reads
a clock, a socket or a file. ``check``, the status page and the tests of the alert
rules read these numbers and rules, and nothing else decides a colour. The alert
rules (``prometheus/rules/``) and the dashboard (``grafana/``) state the same
numbers in their own languages; ``tests/unit/test_parity.py`` holds them equal.

A ``Problem`` names the alert that covers it. ``check`` and the page are one
reading with no history, so they have no ``for:`` delay: they report at once
what the alert reports once it has lasted.

Now versus the window: a problem that counts failures in the window is current
only while the work that failed (the same charter, or the same kind of run
without a schedule) has not succeeded since its last failure. Once it has, the
problem is ``recovered``: listed, but it no longer colours the verdict, and its
alert (which compares the same two timestamps) has stopped.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from exporter.ledger import (
    DistributionView,
    EpochStreamView,
    LedgerView,
    ReceiptView,
    gap_quantile,
)
from exporter.memory import BudgetHeader, FileStatus, Heartbeat, MemorySnapshot
from exporter.model import CharterView, CreditView, GovernanceView, ReasonFailures, WorkView
from exporter.repospec import LEDGER_CHARTER
from exporter.words import (
    format_credits,
    format_duration,
    format_failure_count,
    format_failures,
    format_recovery,
    format_runway,
    format_window,
)

# --- thresholds ------------------------------------------------------------------------

# Credit runway, from the research note: red below 6 h, yellow up to 24 h.
RED_RUNWAY_SECONDS = 6 * 3600
YELLOW_RUNWAY_SECONDS = 24 * 3600

# A charter is stalled after two of its intervals plus 30 min for the run itself.
STALL_INTERVALS = 2
STALL_GRACE_SECONDS = 1800

# The gateway's own readers treat a budget header older than this as unavailable.
BUDGET_HEADER_MAX_AGE_SECONDS = 2 * 3600

# A heartbeat is stale after two of its charter's intervals; one hour (the
# gateway's rhythm) when the database knows no interval for the charter.
HEARTBEAT_STALE_INTERVALS = 2
HEARTBEAT_DEFAULT_INTERVAL_SECONDS = 3600


class Health(enum.StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


_HEALTH_ORDER = (Health.GREEN, Health.YELLOW, Health.RED)


def worst(healths: Iterable[Health]) -> Health:
    return max(healths, key=_HEALTH_ORDER.index, default=Health.GREEN)


# --- credit ------------------------------------------------------------------------------


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


# --- charters ----------------------------------------------------------------------------


def stall_limit_seconds(interval_seconds: float) -> float:
    return STALL_INTERVALS * interval_seconds + STALL_GRACE_SECONDS


def stalled_for(charter: CharterView, now: datetime) -> float | None:
    """Seconds since the last success when that is over 2 intervals + 30 min;
    +Inf when an enabled charter never succeeded; ``None`` when not stalled."""
    if not charter.enabled or charter.interval_seconds is None or not charter.observable:
        return None  # paused, no schedule to keep, or successes we cannot see
    if charter.last_success_at is None:
        return math.inf
    age = (now - charter.last_success_at).total_seconds()
    return age if age > stall_limit_seconds(charter.interval_seconds) else None


# --- the gateway's memory files ------------------------------------------------------------


def budget_header_fresh(header: BudgetHeader, now: datetime) -> bool:
    if header.updated_at is None:
        return False
    return (now - header.updated_at).total_seconds() <= BUDGET_HEADER_MAX_AGE_SECONDS


def budget_gate_open(header: BudgetHeader, now: datetime) -> bool:
    """As the gateway's readers decide: a fresh, well-formed header that allows runs."""
    if header.file.status is not FileStatus.OK:
        return False
    return budget_header_fresh(header, now) and header.allow_runs is True


def heartbeat_limit_seconds(interval_seconds: float | None) -> float:
    return HEARTBEAT_STALE_INTERVALS * (interval_seconds or HEARTBEAT_DEFAULT_INTERVAL_SECONDS)


# --- the verdict ------------------------------------------------------------------------------


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
        f"{text} (runs every {interval}; stalled after {STALL_INTERVALS} intervals + "
        f"{format_duration(STALL_GRACE_SECONDS)})",
    )


def _failing_problem(
    subject: str,
    reasons: str,
    work: CharterView | WorkView,
    *,
    now: datetime | None,
    window_seconds: float | None,
    which: str = "",
) -> Problem:
    """GovernanceRunsFailing for one charter or run kind: current until it succeeds."""
    count = format_failure_count(
        work.failed_runs, window_seconds, work.last_failure_at, now, which=which
    )
    if work.still_failing:
        return Problem(Health.YELLOW, subject, "GovernanceRunsFailing", f"{count}: {reasons}")
    recovery = format_recovery(work.last_success_at, now)
    return Problem(
        Health.YELLOW,
        subject,
        "GovernanceRunsFailing",
        f"{count}: {reasons}; {recovery}",
        recovered=True,
    )


def charter_problems(
    charter: CharterView, now: datetime, window_seconds: float | None = None
) -> list[Problem]:
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
    if charter.retired:
        return []
    problems = [p for p in [_stall_problem(charter, now)] if p is not None]
    if charter.drift:
        problems.append(
            Problem(
                Health.YELLOW,
                name,
                "GovernanceScheduleDrift",
                f"its schedule differs from the repo-spec ({charter.drift}): the boot sync "
                "did not run",
            )
        )
    if charter.failed_runs > 0:
        problems.append(
            _failing_problem(
                name, format_failures(charter), charter, now=now, window_seconds=window_seconds
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


BUDGET_GATE = "budget gate"


def budget_problems(header: BudgetHeader, now: datetime) -> list[Problem]:
    """GovernanceBudgetGateClosed and GovernanceBudgetGateStale, as the alerts see them."""
    if header.file.status is not FileStatus.OK:
        return [
            Problem(
                Health.YELLOW,
                BUDGET_GATE,
                "GovernanceBudgetGateStale",
                f"the budget header is {header.file.status.value}: the gateway treats the "
                "budget gate as unavailable",
            )
        ]
    problems = []
    if header.allow_runs is False:
        problems.append(
            Problem(
                Health.YELLOW,
                BUDGET_GATE,
                "GovernanceBudgetGateClosed",
                "the budget header says allow_runs: false: the gateway skips governance runs",
            )
        )
    if header.updated_at is not None and not budget_header_fresh(header, now):
        age = format_duration((now - header.updated_at).total_seconds())
        problems.append(
            Problem(
                Health.YELLOW,
                BUDGET_GATE,
                "GovernanceBudgetGateStale",
                f"the budget header was last updated {age} ago (the gateway treats one older "
                f"than {format_duration(BUDGET_HEADER_MAX_AGE_SECONDS)} as unavailable)",
            )
        )
    return problems


def heartbeat_problems(
    beat: Heartbeat, charter: CharterView | None, now: datetime
) -> list[Problem]:
    """GovernanceHeartbeatStale: quiet while the charter's schedule is paused."""
    if charter is not None and charter.configured and not charter.enabled:
        return []
    if beat.file.status is not FileStatus.OK:
        return [
            Problem(
                Health.YELLOW,
                beat.charter,
                "GovernanceHeartbeatStale",
                f"its heartbeat file is {beat.file.status.value}",
            )
        ]
    if beat.run_at is None:
        return []
    interval = charter.interval_seconds if charter is not None else None
    limit = heartbeat_limit_seconds(interval)
    age = (now - beat.run_at).total_seconds()
    if age <= limit:
        return []
    return [
        Problem(
            Health.YELLOW,
            beat.charter,
            "GovernanceHeartbeatStale",
            f"its heartbeat is {format_duration(age)} old (stale after "
            f"{HEARTBEAT_STALE_INTERVALS} of its intervals: {format_duration(limit)})",
        )
    ]


def memory_problems(
    memory: MemorySnapshot, charters: Sequence[CharterView], now: datetime
) -> list[Problem]:
    by_name = {c.charter: c for c in charters}
    problems = budget_problems(memory.budget, now)
    for beat in memory.heartbeats:
        problems.extend(heartbeat_problems(beat, by_name.get(beat.charter), now))
    return problems


def work_problems(
    work: WorkView, now: datetime | None = None, window_seconds: float | None = None
) -> list[Problem]:
    """Runs without a schedule (PR reviews): GovernanceRunsFailing covers them too."""
    if work.failed_runs <= 0:
        return []
    reasons = ", ".join(
        f"{reason} {n}"
        for reason, n in sorted(work.failures_by_reason.items(), key=lambda i: (-i[1], i[0]))
        if n > 0
    )
    return [
        _failing_problem(
            f"{work.run_kind} runs",
            reasons,
            work,
            now=now,
            window_seconds=window_seconds,
            which=" without a schedule",
        )
    ]


def node_problems(view: GovernanceView) -> list[Problem]:
    """What the exporter cannot see: hidden runs, a repo-spec gone bad."""
    problems = []
    if view.unscheduled_visible is False:
        problems.append(
            Problem(
                Health.YELLOW,
                "unscheduled runs",
                "GovernanceUnscheduledRunsHidden",
                "row-level security hides runs without a schedule (graph_runs' policy "
                "predates migration 0024): PR reviews and their failures cannot be counted",
            )
        )
    spec = view.repo_spec
    if spec is not None and spec.problem is not None:
        problems.append(
            Problem(
                Health.YELLOW,
                "repo-spec",
                "GovernanceRepoSpecUnusable",
                f"the repo-spec is {spec.status} ({spec.problem}); the last good "
                "declaration is kept",
            )
        )
    return problems


# --- the attribution ledger (exporter.ledger) ----------------------------------------------

# An ended window still open after one collect interval (the ledger schedule's, else
# 24 h) plus this grace: the collect stopped.
DEFAULT_LEDGER_COLLECT_GRACE_SECONDS = 2 * 3600
# The webhook plane is silent when the newest receipt is older than FACTOR x the
# node's usual longest gap (the RECEIPT_GAP_QUANTILE of the gaps between its newest
# receipts) and older than MIN: an hourly node is flagged after 72 h (a weekend's
# quiet is shorter), one with an event every two days after 8 days. A node with
# fewer than RECEIPT_MIN_SAMPLE receipts has no cadence yet and is not judged.
DEFAULT_LEDGER_SILENCE_FACTOR = 4.0
DEFAULT_LEDGER_SILENCE_MIN_SECONDS = 72 * 3600
RECEIPT_GAP_QUANTILE = 0.9
RECEIPT_MIN_SAMPLE = 5
# An epoch in review longer than this after its window ended waits for its approvers
# (a ticket): a weekly epoch not signed before the next one is in review.
DEFAULT_LEDGER_REVIEW_WAIT_SECONDS = 7 * 86400
# A finalized epoch without a manifest, on a node that has distributions, after this.
DISTRIBUTION_GRACE_SECONDS = 86400


@dataclass(frozen=True)
class LedgerThresholds:
    """The ledger's tunable numbers (--ledger-* options)."""

    collect_grace_seconds: float = DEFAULT_LEDGER_COLLECT_GRACE_SECONDS
    receipt_silence_factor: float = DEFAULT_LEDGER_SILENCE_FACTOR
    receipt_silence_min_seconds: float = DEFAULT_LEDGER_SILENCE_MIN_SECONDS
    review_wait_seconds: float = DEFAULT_LEDGER_REVIEW_WAIT_SECONDS


def collect_stall_limit_seconds(stream: EpochStreamView, limits: LedgerThresholds) -> float:
    return stream.collect_interval_seconds + limits.collect_grace_seconds


def collect_stalled(stream: EpochStreamView, limits: LedgerThresholds) -> bool:
    return stream.overdue_seconds > collect_stall_limit_seconds(stream, limits)


def receipt_usual_gap_seconds(receipts: ReceiptView) -> float | None:
    """The node's usual longest gap between deliveries; None before it has a cadence."""
    if receipts.sampled < RECEIPT_MIN_SAMPLE:
        return None
    return gap_quantile(receipts.gaps_seconds, RECEIPT_GAP_QUANTILE)


def receipt_silence_limit_seconds(receipts: ReceiptView, limits: LedgerThresholds) -> float | None:
    gap = receipt_usual_gap_seconds(receipts)
    if gap is None:
        return None
    return max(limits.receipt_silence_factor * gap, limits.receipt_silence_min_seconds)


def receipts_silent(receipts: ReceiptView, limits: LedgerThresholds) -> bool:
    limit = receipt_silence_limit_seconds(receipts, limits)
    silence = receipts.silence_seconds
    return limit is not None and silence is not None and silence > limit


def _node(stream: EpochStreamView) -> str:
    return f"node {stream.node_id}, scope {stream.scope_id}"


# The collect is the LEDGER_INGEST charter's work: its row in ``check`` turns red too.
LEDGER_COLLECT = LEDGER_CHARTER.lower()


def _collect_problem(stream: EpochStreamView, limits: LedgerThresholds) -> Problem | None:
    window = stream.overdue_window
    if window is None or not collect_stalled(stream, limits):
        return None
    source = "its schedule's cron" if stream.interval_from_cron else "no ledger schedule: default"
    rule = (
        f"stalled after one collect interval ({format_duration(stream.collect_interval_seconds)}, "
        f"{source}) + {format_duration(limits.collect_grace_seconds)}"
    )
    ago = format_duration(stream.overdue_seconds)
    what = (
        f"no open epoch: the newest, {format_window(window)}, ended {ago} ago and no collect "
        "opened the next"
        if stream.no_open_epoch
        else f"{format_window(window)} ended {ago} ago and is still open"
    )
    return Problem(
        Health.RED,
        LEDGER_COLLECT,
        "GovernanceLedgerCollectStalled",
        f"{what} ({_node(stream)}): the collect stopped; {rule}",
    )


def _review_problem(stream: EpochStreamView, limits: LedgerThresholds) -> Problem | None:
    oldest = stream.oldest_review
    if oldest is None or stream.review_wait_seconds <= limits.review_wait_seconds:
        return None
    return Problem(
        Health.YELLOW,
        "ledger review",
        "GovernanceLedgerEpochAwaitingApproval",
        f"{stream.review_epochs} epoch(s) in review ({_node(stream)}); the oldest, "
        f"{format_window(oldest)}, has waited {format_duration(stream.review_wait_seconds)} "
        f"for its approvers since its window ended (a ticket after "
        f"{format_duration(limits.review_wait_seconds)})",
    )


def _reviews_words(ledger: LedgerView, limit: float, now: datetime) -> str:
    if not ledger.reviews_observable:
        return ""
    last = ledger.last_review_at
    if last is None:
        return "; PR reviews stopped too: no system_webhook run in the last 30 d"
    age = (now - last).total_seconds()
    if age > limit:
        ago = format_duration(age)
        return f"; PR reviews stopped too: the last system_webhook run was {ago} ago"
    return f"; PR reviews still run (the last {format_duration(age)} ago)"


def _webhook_problem(
    ledger: LedgerView, receipts: ReceiptView, limits: LedgerThresholds, now: datetime
) -> Problem | None:
    limit = receipt_silence_limit_seconds(receipts, limits)
    if limit is None or receipts.silence_seconds is None or not receipts_silent(receipts, limits):
        return None
    gap = format_duration(receipt_usual_gap_seconds(receipts) or 0)
    return Problem(
        Health.RED,
        "webhook plane",
        "GovernanceLedgerWebhookSilent",
        f"no webhook receipt for {format_duration(receipts.silence_seconds)} on node "
        f"{receipts.node_id} (its usual longest gap is {gap}: silent after "
        f"max({limits.receipt_silence_factor:g} x that, "
        f"{format_duration(limits.receipt_silence_min_seconds)}) = {format_duration(limit)})"
        + _reviews_words(ledger, limit, now),
    )


def _distribution_problem(view: DistributionView) -> Problem | None:
    if view.manifests == 0 or view.finalized_without_manifest == 0:
        return None  # a node without distributions (no token contract) never has manifests
    age = view.oldest_unmanifested_age_seconds
    if age <= DISTRIBUTION_GRACE_SECONDS:
        return None
    return Problem(
        Health.YELLOW,
        "ledger distributions",
        "GovernanceLedgerDistributionMissing",
        f"{view.finalized_without_manifest} finalized epoch(s) without a distribution manifest "
        f"(node {view.node_id}, scope {view.scope_id}), the oldest finalized "
        f"{format_duration(age)} ago, on a node that has distributions",
    )


def _observability_problem(ledger: LedgerView) -> Problem | None:
    hidden = [
        name
        for name, readable in (
            ("epochs", ledger.epochs_observable),
            ("ingestion_receipts", ledger.receipts_observable),
        )
        if not readable
    ]
    if not ledger.has_ledger or not hidden:
        return None
    return Problem(
        Health.YELLOW,
        "ledger",
        "GovernanceLedgerNotObservable",
        f"the ledger's {' and '.join(hidden)} exist but this role cannot read them: run "
        "sql/monitoring-role.sql again (the collect and the webhook plane go unwatched)",
    )


def ledger_problems(ledger: LedgerView, limits: LedgerThresholds, now: datetime) -> list[Problem]:
    """The collect, the webhook plane, approvals, distributions and dispatch schedules."""
    found: list[Problem | None] = [_observability_problem(ledger)]
    for stream in ledger.streams:
        found += [_collect_problem(stream, limits), _review_problem(stream, limits)]
    found += [_webhook_problem(ledger, r, limits, now) for r in ledger.receipts]
    found += [_distribution_problem(d) for d in ledger.distributions]
    for dispatch in ledger.dispatch:
        if dispatch.state == "paused":
            found.append(
                Problem(
                    Health.YELLOW,
                    "ledger dispatch",
                    "GovernanceLedgerDispatchPaused",
                    f"the operator's {dispatch.charter} schedule for node {dispatch.node} is "
                    "paused: that node's epochs stop advancing",
                )
            )
    return [p for p in found if p is not None]


def assess(
    view: GovernanceView,
    now: datetime,
    memory: MemorySnapshot | None = None,
    *,
    ledger: LedgerThresholds | None = None,
) -> Assessment:
    """The verdict on one view (and the gateway's files, when read): the worst health
    among its problems. ``ledger``: the --ledger-* numbers (defaults when None).
    Recovered problems are kept apart and never colour it."""
    window = view.credit.window_seconds
    problems = credit_problems(view.credit, view.charters, now)
    for charter in view.charters:
        problems.extend(charter_problems(charter, now, window))
    for work in view.unscheduled:
        problems.extend(work_problems(work, now, window))
    problems.extend(node_problems(view))
    if memory is not None:
        problems.extend(memory_problems(memory, view.charters, now))
    limits = ledger or LedgerThresholds()
    if view.ledger is not None:
        problems.extend(ledger_problems(view.ledger, limits, now))
    current = [p for p in problems if not p.recovered]
    recovered = [p for p in problems if p.recovered]
    return Assessment(worst(p.health for p in current), current, limits, recovered)


def charter_health(assessment: Assessment, charter: CharterView) -> Health:
    return worst(p.health for p in assessment.for_subject(charter.charter))

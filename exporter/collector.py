"""Maps one collection onto Prometheus metric families, built fresh from each collection."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.cache import CollectionResult, SnapshotCache
from exporter.model import CharterView, GovernanceView
from exporter.repospec import STATUSES as REPO_SPEC_STATUSES
from exporter.repospec import RepoSpecState
from exporter.snapshot import SCHEMA_UNKNOWN
from exporter.watch import Watch

ACCOUNT = ["account"]
CHARTER = ["account", "charter"]


def _timestamp(value: datetime | None) -> float:
    return value.timestamp() if value is not None else 0.0


def _gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def credit_families(view: GovernanceView) -> list[Metric]:
    credit = view.credit
    account = [view.account]
    families: list[tuple[GaugeMetricFamily, float]] = [
        (
            _gauge(
                "governance_credit_balance_credits",
                "Balance of the billing account (billing_accounts.balance_credits). "
                "10,000,000 credits = 1 USD.",
                ACCOUNT,
            ),
            credit.balance_credits,
        ),
        (
            _gauge(
                "governance_credit_spent_credits",
                "Credits charged to the account inside the trailing window "
                "(sum of charge_receipts.charged_credits).",
                ACCOUNT,
            ),
            credit.spent_credits,
        ),
        (
            _gauge(
                "governance_credit_charges",
                "Number of charge receipts inside the trailing window.",
                ACCOUNT,
            ),
            credit.charges,
        ),
        (
            _gauge(
                "governance_credit_last_charge_timestamp_seconds",
                "When the account was last charged (Unix time); 0 if never.",
                ACCOUNT,
            ),
            _timestamp(credit.last_charge_at),
        ),
        (
            _gauge(
                "governance_credit_burn_rate_credits_per_second",
                "Credits spent per second, averaged over the trailing window.",
                ACCOUNT,
            ),
            credit.burn_rate_per_second,
        ),
        (
            _gauge(
                "governance_credit_runway_seconds",
                "Seconds until the balance runs out at the window's burn rate: 0 when "
                "the balance is <= 0, +Inf when nothing was spent. Red < 6 h, yellow "
                "6-24 h, green > 24 h.",
                ACCOUNT,
            ),
            credit.runway_seconds,
        ),
    ]
    metrics: list[Metric] = []
    for family, value in families:
        family.add_metric(account, value)
        metrics.append(family)
    window = _gauge(
        "governance_credit_window_seconds",
        "Length of the trailing window used for spend and run counts.",
    )
    window.add_metric([], credit.window_seconds)
    metrics.append(window)
    return [*metrics, *_credit_today_families(view)]


def _credit_today_families(view: GovernanceView) -> list[Metric]:
    """What runs are refused for today: one run's cost, rejections, who spends."""
    credit = view.credit
    account = [view.account]
    singles = [
        (
            "governance_credit_min_run_cost_credits",
            "Balance below which the node's preflight check rejects a run (the smallest "
            "estimated cost of one run, --min-run-cost-credits; 0: not checked). Red below it.",
            credit.min_run_cost_credits,
        ),
        (
            "governance_credit_rejected_runs",
            "Runs of the account (scheduled or not) rejected inside the trailing window "
            "with insufficient_credits. Red while nothing is spent: every run is refused.",
            credit.rejected_runs,
        ),
        (
            "governance_credit_spending_schedules",
            "Enabled governance schedules whose runs are charged to the account (the "
            "ledger's collections are not): with none, spending nothing is no signal.",
            sum(1 for c in view.charters if c.spends_credits),
        ),
    ]
    metrics: list[Metric] = []
    for name, doc, value in singles:
        family = _gauge(name, doc, ACCOUNT)
        family.add_metric(account, value)
        metrics.append(family)
    by_kind = _gauge(
        "governance_credit_spent_by_run_kind_credits",
        "Credits charged inside the trailing window by the kind of run they paid for "
        "(charge_receipts.run_id): system_scheduled, system_webhook (PR reviews), "
        "user_immediate, other, unknown; unattributed when no run of the account matches.",
        [*ACCOUNT, "run_kind"],
    )
    for kind, credits in credit.spent_by_kind.items():
        by_kind.add_metric([view.account, kind], credits)
    by_charter = _gauge(
        "governance_credit_spent_by_charter_credits",
        "Credits charged inside the trailing window for runs of each charter's schedules.",
        CHARTER,
    )
    for charter in view.charters:
        if charter.configured:
            spent = credit.spent_by_charter.get(charter.charter, 0.0)
            by_charter.add_metric([view.account, charter.charter], spent)
    return [*metrics, by_kind, by_charter]


def _charter_gauges() -> dict[str, GaugeMetricFamily]:
    specs = {
        "configured": (
            "governance_charter_configured",
            "1 when the charter has a schedule row in the database, 0 when an expected "
            "charter has none (as during the 2026-02-15 outage). A charter at 0 has no "
            "other per-charter series (governance_schedule_* are absent for it).",
        ),
        "enabled": (
            "governance_schedule_enabled",
            "1 when the charter's schedule is enabled, 0 when it is paused.",
        ),
        "config_valid": (
            "governance_schedule_config_valid",
            "1 when the schedule's cron expression and time zone parse, else 0 "
            "(next-run metrics are then absent).",
        ),
        "last_success": (
            "governance_schedule_last_success_timestamp_seconds",
            "When the charter's latest successful run completed (else was scheduled), "
            "Unix time; 0 if it never succeeded.",
        ),
        "last_failure": (
            "governance_schedule_last_failure_timestamp_seconds",
            "When the charter's latest failed run completed (else was scheduled), "
            "Unix time; 0 if it never failed.",
        ),
        "next_run": (
            "governance_schedule_next_run_timestamp_seconds",
            "Next fire time computed from the schedule's cron and time zone (not the "
            "stale next_run_at cache), Unix time. Absent when disabled.",
        ),
        "next_run_in": (
            "governance_schedule_next_run_seconds",
            "Seconds from the collection until the next fire time.",
        ),
        "interval": (
            "governance_schedule_interval_seconds",
            "Gap between the cron expression's next two fire times.",
        ),
        "cached_next_run": (
            "governance_schedule_cached_next_run_timestamp_seconds",
            "schedules.next_run_at as stored (a cache written at deploy, often stale), "
            "Unix time. Absent when NULL.",
        ),
        "retired": (
            "governance_schedule_retired",
            "1 when the charter's rows are pruned (paused, next_run_at NULL: the boot sync's "
            "mark of an entry removed from the repo-spec) and nothing expects it; never a "
            "warning.",
        ),
        "observable": (
            "governance_schedule_observable",
            "1 when the exporter can see the charter's successes; 0 for a ledger charter "
            "while ingestion_cursors is missing or not readable, and on a node with the "
            "ledger's tables, where its collect is judged by epochs (governance_ledger_*); "
            "its last success is then absent, so it is never reported stalled.",
        ),
        "drift": (
            "governance_schedule_drift",
            "1 when a charter declared in the repo-spec has rows whose cron or time zone "
            "differ from the declaration (the boot sync did not run); declared charters only.",
        ),
    }
    return {key: _gauge(name, doc, CHARTER) for key, (name, doc) in specs.items()}


def _add_charter(
    gauges: dict[str, GaugeMetricFamily],
    runs: GaugeMetricFamily,
    failed: GaugeMetricFamily,
    account: str,
    charter: CharterView,
) -> None:
    labels = [account, charter.charter]
    gauges["configured"].add_metric(labels, 1 if charter.configured else 0)
    if not charter.configured:
        return
    gauges["enabled"].add_metric(labels, 1 if charter.enabled else 0)
    gauges["config_valid"].add_metric(labels, 0 if charter.config_error else 1)
    gauges["retired"].add_metric(labels, 1 if charter.retired else 0)
    gauges["observable"].add_metric(labels, 1 if charter.observable else 0)
    if charter.declared is not None:
        gauges["drift"].add_metric(labels, 1 if charter.drift else 0)
    if charter.observable:
        gauges["last_success"].add_metric(labels, _timestamp(charter.last_success_at))
    gauges["last_failure"].add_metric(labels, _timestamp(charter.last_failure_at))
    if charter.next_run_at is not None and charter.next_run_in_seconds is not None:
        gauges["next_run"].add_metric(labels, _timestamp(charter.next_run_at))
        gauges["next_run_in"].add_metric(labels, charter.next_run_in_seconds)
    if charter.interval_seconds is not None:
        gauges["interval"].add_metric(labels, charter.interval_seconds)
    if charter.cached_next_run_at is not None:
        gauges["cached_next_run"].add_metric(labels, _timestamp(charter.cached_next_run_at))
    for status, count in charter.runs_by_status.items():
        runs.add_metric([*labels, status], count)
    for reason, count in charter.failures_by_reason.items():
        failed.add_metric([*labels, reason], count)


def charter_families(view: GovernanceView) -> list[Metric]:
    gauges = _charter_gauges()
    runs = _gauge(
        "governance_schedule_runs",
        "Runs scheduled inside the trailing window, by status (every known status, "
        "0 included; 'unknown' for values the schema does not define).",
        [*CHARTER, "status"],
    )
    failed = _gauge(
        "governance_schedule_failed_runs",
        "Failed runs scheduled inside the trailing window (status error, or skipped "
        "with an error such as a failed grant check), by bounded reason.",
        [*CHARTER, "reason"],
    )
    for charter in view.charters:
        _add_charter(gauges, runs, failed, view.account, charter)
    return [*gauges.values(), runs, failed]


def unscheduled_families(view: GovernanceView) -> list[Metric]:
    """Runs of the account's principal without a schedule (PR reviews, webhooks)."""
    if view.unscheduled_visible is None:
        return []  # the 2026-02 schema has no such runs
    kind = [*ACCOUNT, "run_kind"]
    visible = _gauge(
        "governance_unscheduled_runs_visible",
        "1 when runs without a schedule can be read; 0 when row-level security hides "
        "them (graph_runs' policy predates migration 0024): the other "
        "governance_unscheduled_* series then undercount.",
        ACCOUNT,
    )
    visible.add_metric([view.account], 1 if view.unscheduled_visible else 0)
    runs = _gauge(
        "governance_unscheduled_runs",
        "Runs of the account's principal without a schedule (PR reviews and other webhook "
        "work) started inside the trailing window, by run kind and status.",
        [*kind, "status"],
    )
    failed = _gauge(
        "governance_unscheduled_failed_runs",
        "Failed runs without a schedule started inside the trailing window, by run kind "
        "and bounded reason.",
        [*kind, "reason"],
    )
    last_success = _gauge(
        "governance_unscheduled_last_success_timestamp_seconds",
        "Latest successful run without a schedule of the kind (last 30 days), Unix time; "
        "0 if none.",
        kind,
    )
    last_failure = _gauge(
        "governance_unscheduled_last_failure_timestamp_seconds",
        "Latest failed run without a schedule of the kind (last 30 days), Unix time; 0 if none.",
        kind,
    )
    for work in view.unscheduled:
        labels = [view.account, work.run_kind]
        for status, count in work.runs_by_status.items():
            runs.add_metric([*labels, status], count)
        for reason, count in work.failures_by_reason.items():
            failed.add_metric([*labels, reason], count)
        last_success.add_metric(labels, _timestamp(work.last_success_at))
        last_failure.add_metric(labels, _timestamp(work.last_failure_at))
    return [visible, runs, failed, last_success, last_failure]


def finished_families(account: str, result: CollectionResult) -> list[Metric]:
    finished = CounterMetricFamily(
        "governance_runs_finished",
        "Runs of the account seen to finish (completed_at) since the exporter started, by "
        "run kind and outcome (success or failure); scheduled runs count as "
        "system_scheduled. A re-created schedule row, whose runs the database deletes, "
        "does not lower it. For success ratios: rate() over it.",
        labels=[*ACCOUNT, "run_kind", "outcome"],
    )
    for (kind, outcome), count in sorted(result.finished_totals.items()):
        finished.add_metric([account, kind, outcome], count)
    failed = CounterMetricFamily(
        "governance_runs_failed",
        "The failed ones among governance_runs_finished_total, by run kind and bounded "
        "reason: increase() over it tells whether runs are failing now, not only within "
        "the trailing window.",
        labels=[*ACCOUNT, "run_kind", "reason"],
    )
    for (kind, reason), count in sorted(result.failed_totals.items()):
        failed.add_metric([account, kind, reason], count)
    return [finished, failed]


def repo_spec_families(state: RepoSpecState | None) -> list[Metric]:
    if state is None:
        return []
    status = _gauge(
        "governance_repo_spec_status",
        "1 for how the latest read of --repo-spec went: ok, unreadable or invalid (the "
        "last good declaration is then kept).",
        ["status"],
    )
    for name in REPO_SPEC_STATUSES:
        status.add_metric([name], 1 if state.status == name else 0)
    declared = _gauge(
        "governance_repo_spec_declared_schedules",
        "Governance schedules the repo-spec declares (with the ledger schedule the app "
        "adds for activity_ledger).",
    )
    declared.add_metric([], len(state.schedules))
    return [status, declared]


def health_families(result: CollectionResult | None, schema: str) -> list[Metric]:
    up = _gauge(
        "governance_exporter_up",
        "1 when the last collection read the database fully, else 0 (governance "
        "metrics are then absent rather than stale).",
    )
    up.add_metric([], 1 if result is not None and result.ok else 0)
    duration = _gauge(
        "governance_exporter_collect_duration_seconds",
        "How long the last collection took, in seconds.",
    )
    duration.add_metric([], result.duration_seconds if result else 0.0)
    last_success = _gauge(
        "governance_exporter_last_success_timestamp_seconds",
        "When a collection last read the database fully, Unix time; 0 if never. "
        "Scrapes within --cache-seconds (default 1 s) of a collection are served from it.",
    )
    last_success.add_metric([], _timestamp(result.last_success_at if result else None))
    errors = CounterMetricFamily(
        "governance_exporter_collection_errors",
        "Collections that failed since the exporter started, by reason.",
        labels=["reason"],
    )
    for reason, count in (result.errors_by_reason if result else {}).items():
        errors.add_metric([reason], count)
    build = InfoMetricFamily(
        "governance_exporter_build",
        "Exporter version and the Cogni schema version found (2026-02, 2026-03, 2026-10 "
        "or unknown).",
    )
    build.add_metric([], {"version": __version__, "schema": schema})
    return [up, duration, last_success, errors, build]


class GovernanceCollector(Collector):
    """A client_python custom collector: builds new families on every scrape.

    ``describe`` returns nothing, so registering it runs no query.
    """

    def __init__(self, snapshots: SnapshotCache, expected: Sequence[str] | Watch = ()) -> None:
        self._snapshots = snapshots
        self._watch = expected if isinstance(expected, Watch) else Watch(tuple(expected))

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        yield from self.families(self._snapshots.get())

    def families(self, result: CollectionResult) -> Iterator[Metric]:
        """The families of one collection (``exporter.exposition`` builds them once)."""
        spec = self._watch.spec_state()
        yield from repo_spec_families(spec)
        if result.snapshot is None:
            yield from health_families(result, SCHEMA_UNKNOWN)
            return
        view = self._watch.view(result.snapshot, spec)
        yield from credit_families(view)
        yield from charter_families(view)
        yield from unscheduled_families(view)
        yield from finished_families(view.account, result)
        yield from health_families(result, view.schema_version)

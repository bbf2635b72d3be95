"""Maps one collection onto Prometheus metric families, built fresh from each collection."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.cache import SnapshotCache
from exporter.collection import CollectionResult
from exporter.declaration import NodeDeclaration
from exporter.metricspec import MetricSpec, unix_time_or_zero
from exporter.model import CharterView, GovernanceView
from exporter.repospec import STATUSES as REPO_SPEC_STATUSES
from exporter.repospec import RepoSpecState
from exporter.snapshot import SCHEMA_UNKNOWN

ACCOUNT = ("account",)
CHARTER = ("account", "charter")
RUN_KIND = ("account", "run_kind")

# --- the table: every metric of this collector, in the order a scrape shows them ---------

REPO_SPEC_STATUS = MetricSpec(
    "governance_repo_spec_status",
    "1 for how the latest read of --repo-spec went: ok, unreadable or invalid (the "
    "last good declaration is then kept).",
    ("status",),
)
REPO_SPEC_DECLARED = MetricSpec(
    "governance_repo_spec_declared_schedules",
    "Governance schedules the repo-spec declares (with the ledger schedule the app "
    "adds for activity_ledger).",
)
CREDIT_BALANCE = MetricSpec(
    "governance_credit_balance_credits",
    "Balance of the billing account (billing_accounts.balance_credits). "
    "10,000,000 credits = 1 USD.",
    ACCOUNT,
)
CREDIT_SPENT = MetricSpec(
    "governance_credit_spent_credits",
    "Credits charged to the account inside the trailing window "
    "(sum of charge_receipts.charged_credits).",
    ACCOUNT,
)
CREDIT_CHARGES = MetricSpec(
    "governance_credit_charges",
    "Number of charge receipts inside the trailing window.",
    ACCOUNT,
)
CREDIT_LAST_CHARGE = MetricSpec(
    "governance_credit_last_charge_timestamp_seconds",
    "When the account was last charged (Unix time); 0 if never.",
    ACCOUNT,
)
CREDIT_BURN_RATE = MetricSpec(
    "governance_credit_burn_rate_credits_per_second",
    "Credits spent per second, averaged over the trailing window.",
    ACCOUNT,
)
CREDIT_RUNWAY = MetricSpec(
    "governance_credit_runway_seconds",
    "Seconds until the balance runs out at the window's burn rate: 0 when "
    "the balance is <= 0, +Inf when nothing was spent. Red < 6 h, yellow "
    "6-24 h, green > 24 h.",
    ACCOUNT,
)
CREDIT_WINDOW = MetricSpec(
    "governance_credit_window_seconds",
    "Length of the trailing window used for spend and run counts.",
)
CREDIT_MIN_RUN_COST = MetricSpec(
    "governance_credit_min_run_cost_credits",
    "Balance below which the node's preflight check rejects a run (the smallest "
    "estimated cost of one run, --min-run-cost-credits; 0: not checked). Red below it.",
    ACCOUNT,
)
CREDIT_REJECTED_RUNS = MetricSpec(
    "governance_credit_rejected_runs",
    "Runs of the account (scheduled or not) rejected inside the trailing window "
    "with insufficient_credits. Red while nothing is spent: every run is refused.",
    ACCOUNT,
)
CREDIT_SPENDING_SCHEDULES = MetricSpec(
    "governance_credit_spending_schedules",
    "Enabled governance schedules whose runs are charged to the account (the "
    "ledger's collections are not): with none, spending nothing is no signal.",
    ACCOUNT,
)
CREDIT_SPENT_BY_KIND = MetricSpec(
    "governance_credit_spent_by_run_kind_credits",
    "Credits charged inside the trailing window by the kind of run they paid for "
    "(charge_receipts.run_id): system_scheduled, system_webhook (PR reviews), "
    "user_immediate, other, unknown; unattributed when no run of the account matches.",
    RUN_KIND,
)
CREDIT_SPENT_BY_CHARTER = MetricSpec(
    "governance_credit_spent_by_charter_credits",
    "Credits charged inside the trailing window for runs of each charter's schedules.",
    CHARTER,
)
CHARTER_CONFIGURED = MetricSpec(
    "governance_charter_configured",
    "1 when the charter has a schedule row in the database, 0 when an expected "
    "charter has none (as during the 2026-02-15 outage). A charter at 0 has no "
    "other per-charter series (governance_schedule_* are absent for it).",
    CHARTER,
)
SCHEDULE_ENABLED = MetricSpec(
    "governance_schedule_enabled",
    "1 when the charter's schedule is enabled, 0 when it is paused.",
    CHARTER,
)
SCHEDULE_CONFIG_VALID = MetricSpec(
    "governance_schedule_config_valid",
    "1 when the schedule's cron expression and time zone parse, else 0 "
    "(next-run metrics are then absent).",
    CHARTER,
)
SCHEDULE_LAST_SUCCESS = MetricSpec(
    "governance_schedule_last_success_timestamp_seconds",
    "When the charter's latest successful run completed (else was scheduled), "
    "Unix time; 0 if it never succeeded.",
    CHARTER,
)
SCHEDULE_LAST_FAILURE = MetricSpec(
    "governance_schedule_last_failure_timestamp_seconds",
    "When the charter's latest failed run completed (else was scheduled), "
    "Unix time; 0 if it never failed.",
    CHARTER,
)
SCHEDULE_NEXT_RUN = MetricSpec(
    "governance_schedule_next_run_timestamp_seconds",
    "Next fire time computed from the schedule's cron and time zone (not the "
    "stale next_run_at cache), Unix time. Absent when disabled.",
    CHARTER,
)
SCHEDULE_NEXT_RUN_IN = MetricSpec(
    "governance_schedule_next_run_seconds",
    "Seconds from the collection until the next fire time.",
    CHARTER,
)
SCHEDULE_INTERVAL = MetricSpec(
    "governance_schedule_interval_seconds",
    "Gap between the cron expression's next two fire times.",
    CHARTER,
)
SCHEDULE_CACHED_NEXT_RUN = MetricSpec(
    "governance_schedule_cached_next_run_timestamp_seconds",
    "schedules.next_run_at as stored (a cache written at deploy, often stale), "
    "Unix time. Absent when NULL.",
    CHARTER,
)
SCHEDULE_RETIRED = MetricSpec(
    "governance_schedule_retired",
    "1 when the charter's rows are pruned (paused, next_run_at NULL: the boot sync's "
    "mark of an entry removed from the repo-spec) and nothing expects it; never a "
    "warning.",
    CHARTER,
)
SCHEDULE_OBSERVABLE = MetricSpec(
    "governance_schedule_observable",
    "1 when the exporter can see the charter's successes; 0 for a ledger charter "
    "while ingestion_cursors is missing or not readable, and on a node with the "
    "ledger's tables, where its collect is judged by epochs (governance_ledger_*); "
    "its last success is then absent, so it is never reported stalled.",
    CHARTER,
)
SCHEDULE_DRIFT = MetricSpec(
    "governance_schedule_drift",
    "1 when a charter declared in the repo-spec has rows whose cron or time zone "
    "differ from the declaration (the boot sync did not run); declared charters only.",
    CHARTER,
)
SCHEDULE_RUNS = MetricSpec(
    "governance_schedule_runs",
    "Runs scheduled inside the trailing window, by status (every known status, "
    "0 included; 'unknown' for values the schema does not define).",
    (*CHARTER, "status"),
)
SCHEDULE_FAILED_RUNS = MetricSpec(
    "governance_schedule_failed_runs",
    "Failed runs scheduled inside the trailing window (status error, or skipped "
    "with an error such as a failed grant check), by bounded reason.",
    (*CHARTER, "reason"),
)
UNSCHEDULED_VISIBLE = MetricSpec(
    "governance_unscheduled_runs_visible",
    "1 when runs without a schedule can be read; 0 when row-level security hides "
    "them (graph_runs' policy predates migration 0024): the other "
    "governance_unscheduled_* series then undercount.",
    ACCOUNT,
)
UNSCHEDULED_RUNS = MetricSpec(
    "governance_unscheduled_runs",
    "Runs of the account's principal without a schedule (PR reviews and other webhook "
    "work) started inside the trailing window, by run kind and status.",
    (*RUN_KIND, "status"),
)
UNSCHEDULED_FAILED_RUNS = MetricSpec(
    "governance_unscheduled_failed_runs",
    "Failed runs without a schedule started inside the trailing window, by run kind "
    "and bounded reason.",
    (*RUN_KIND, "reason"),
)
UNSCHEDULED_LAST_SUCCESS = MetricSpec(
    "governance_unscheduled_last_success_timestamp_seconds",
    "Latest successful run without a schedule of the kind (last 30 days), Unix time; 0 if none.",
    RUN_KIND,
)
UNSCHEDULED_LAST_FAILURE = MetricSpec(
    "governance_unscheduled_last_failure_timestamp_seconds",
    "Latest failed run without a schedule of the kind (last 30 days), Unix time; 0 if none.",
    RUN_KIND,
)
RUNS_FINISHED = MetricSpec(
    "governance_runs_finished_total",
    "Runs of the account seen to finish (completed_at) since the exporter started, by "
    "run kind and outcome (success or failure); scheduled runs count as "
    "system_scheduled. A re-created schedule row, whose runs the database deletes, "
    "does not lower it. For success ratios: rate() over it.",
    (*RUN_KIND, "outcome"),
    "counter",
)
RUNS_FAILED = MetricSpec(
    "governance_runs_failed_total",
    "The failed ones among governance_runs_finished_total, by run kind and bounded "
    "reason: increase() over it tells whether runs are failing now, not only within "
    "the trailing window.",
    (*RUN_KIND, "reason"),
    "counter",
)
EXPORTER_UP = MetricSpec(
    "governance_exporter_up",
    "1 when the last collection read the database fully, else 0 (governance "
    "metrics are then absent rather than stale).",
)
EXPORTER_COLLECT_DURATION = MetricSpec(
    "governance_exporter_collect_duration_seconds",
    "How long the last collection took, in seconds.",
)
EXPORTER_LAST_SUCCESS = MetricSpec(
    "governance_exporter_last_success_timestamp_seconds",
    "When a collection last read the database fully, Unix time; 0 if never. "
    "Scrapes within --cache-seconds (default 1 s) of a collection are served from it.",
)
EXPORTER_COLLECTION_ERRORS = MetricSpec(
    "governance_exporter_collection_errors_total",
    "Collections that failed since the exporter started, by reason.",
    ("reason",),
    "counter",
)
EXPORTER_BUILD = MetricSpec(
    "governance_exporter_build_info",
    "Exporter version and the Cogni schema version found (2026-02, 2026-03, 2026-10 or unknown).",
    ("version", "schema"),
    "info",
)

# The per-charter families, in the order a scrape shows them.
_CHARTER_METRICS = (
    CHARTER_CONFIGURED,
    SCHEDULE_ENABLED,
    SCHEDULE_CONFIG_VALID,
    SCHEDULE_LAST_SUCCESS,
    SCHEDULE_LAST_FAILURE,
    SCHEDULE_NEXT_RUN,
    SCHEDULE_NEXT_RUN_IN,
    SCHEDULE_INTERVAL,
    SCHEDULE_CACHED_NEXT_RUN,
    SCHEDULE_RETIRED,
    SCHEDULE_OBSERVABLE,
    SCHEDULE_DRIFT,
    SCHEDULE_RUNS,
    SCHEDULE_FAILED_RUNS,
)

METRICS: tuple[MetricSpec, ...] = (
    REPO_SPEC_STATUS,
    REPO_SPEC_DECLARED,
    CREDIT_BALANCE,
    CREDIT_SPENT,
    CREDIT_CHARGES,
    CREDIT_LAST_CHARGE,
    CREDIT_BURN_RATE,
    CREDIT_RUNWAY,
    CREDIT_WINDOW,
    CREDIT_MIN_RUN_COST,
    CREDIT_REJECTED_RUNS,
    CREDIT_SPENDING_SCHEDULES,
    CREDIT_SPENT_BY_KIND,
    CREDIT_SPENT_BY_CHARTER,
    *_CHARTER_METRICS,
    UNSCHEDULED_VISIBLE,
    UNSCHEDULED_RUNS,
    UNSCHEDULED_FAILED_RUNS,
    UNSCHEDULED_LAST_SUCCESS,
    UNSCHEDULED_LAST_FAILURE,
    RUNS_FINISHED,
    RUNS_FAILED,
    EXPORTER_UP,
    EXPORTER_COLLECT_DURATION,
    EXPORTER_LAST_SUCCESS,
    EXPORTER_COLLECTION_ERRORS,
    EXPORTER_BUILD,
)

# --- the families of one collection --------------------------------------------------------


def credit_families(view: GovernanceView) -> list[Metric]:
    credit = view.credit
    account = [view.account]
    values = (
        (CREDIT_BALANCE, credit.balance_credits),
        (CREDIT_SPENT, credit.spent_credits),
        (CREDIT_CHARGES, credit.charges),
        (CREDIT_LAST_CHARGE, unix_time_or_zero(credit.last_charge_at)),
        (CREDIT_BURN_RATE, credit.burn_rate_per_second),
        (CREDIT_RUNWAY, credit.runway_seconds),
    )
    metrics: list[Metric] = []
    for spec, value in values:
        family = spec.gauge()
        family.add_metric(account, value)
        metrics.append(family)
    window = CREDIT_WINDOW.gauge()
    window.add_metric([], credit.window_seconds)
    metrics.append(window)
    return [*metrics, *_credit_today_families(view)]


def _credit_today_families(view: GovernanceView) -> list[Metric]:
    """What runs are refused for today: one run's cost, rejections, who spends."""
    credit = view.credit
    account = [view.account]
    values = (
        (CREDIT_MIN_RUN_COST, credit.min_run_cost_credits),
        (CREDIT_REJECTED_RUNS, credit.rejected_runs),
        (CREDIT_SPENDING_SCHEDULES, sum(1 for c in view.charters if c.spends_credits)),
    )
    metrics: list[Metric] = []
    for spec, value in values:
        family = spec.gauge()
        family.add_metric(account, value)
        metrics.append(family)
    by_kind = CREDIT_SPENT_BY_KIND.gauge()
    for kind, credits in credit.spent_by_kind.items():
        by_kind.add_metric([view.account, kind], credits)
    by_charter = CREDIT_SPENT_BY_CHARTER.gauge()
    for charter in view.charters:
        if charter.configured:
            spent = credit.spent_by_charter.get(charter.charter, 0.0)
            by_charter.add_metric([view.account, charter.charter], spent)
    return [*metrics, by_kind, by_charter]


def _charter_samples(charter: CharterView) -> Iterator[tuple[MetricSpec, list[str], float]]:
    """The samples of one charter: (metric, labels after account and charter, value)."""
    yield CHARTER_CONFIGURED, [], 1 if charter.configured else 0
    if not charter.configured:
        return
    yield SCHEDULE_ENABLED, [], 1 if charter.enabled else 0
    yield SCHEDULE_CONFIG_VALID, [], 0 if charter.config_error else 1
    yield SCHEDULE_RETIRED, [], 1 if charter.retired else 0
    yield SCHEDULE_OBSERVABLE, [], 1 if charter.observable else 0
    if charter.declared is not None:
        yield SCHEDULE_DRIFT, [], 1 if charter.drift else 0
    if charter.observable:
        yield SCHEDULE_LAST_SUCCESS, [], unix_time_or_zero(charter.last_success_at)
    yield SCHEDULE_LAST_FAILURE, [], unix_time_or_zero(charter.last_failure_at)
    if charter.next_run_at is not None and charter.next_run_in_seconds is not None:
        yield SCHEDULE_NEXT_RUN, [], unix_time_or_zero(charter.next_run_at)
        yield SCHEDULE_NEXT_RUN_IN, [], charter.next_run_in_seconds
    if charter.interval_seconds is not None:
        yield SCHEDULE_INTERVAL, [], charter.interval_seconds
    if charter.cached_next_run_at is not None:
        yield SCHEDULE_CACHED_NEXT_RUN, [], unix_time_or_zero(charter.cached_next_run_at)
    for status, count in charter.runs_by_status.items():
        yield SCHEDULE_RUNS, [status], count
    for reason, count in charter.failures_by_reason.items():
        yield SCHEDULE_FAILED_RUNS, [reason], count


def charter_families(view: GovernanceView) -> list[Metric]:
    families = {spec: spec.gauge() for spec in _CHARTER_METRICS}
    for charter in view.charters:
        labels = [view.account, charter.charter]
        for spec, more, value in _charter_samples(charter):
            families[spec].add_metric([*labels, *more], value)
    return list(families.values())


def unscheduled_families(view: GovernanceView) -> list[Metric]:
    """Runs of the account's principal without a schedule (PR reviews, webhooks)."""
    if view.unscheduled_visible is None:
        return []  # the 2026-02 schema has no such runs
    visible = UNSCHEDULED_VISIBLE.gauge()
    visible.add_metric([view.account], 1 if view.unscheduled_visible else 0)
    runs = UNSCHEDULED_RUNS.gauge()
    failed = UNSCHEDULED_FAILED_RUNS.gauge()
    last_success = UNSCHEDULED_LAST_SUCCESS.gauge()
    last_failure = UNSCHEDULED_LAST_FAILURE.gauge()
    for work in view.unscheduled:
        labels = [view.account, work.run_kind]
        for status, count in work.runs_by_status.items():
            runs.add_metric([*labels, status], count)
        for reason, count in work.failures_by_reason.items():
            failed.add_metric([*labels, reason], count)
        last_success.add_metric(labels, unix_time_or_zero(work.last_success_at))
        last_failure.add_metric(labels, unix_time_or_zero(work.last_failure_at))
    return [visible, runs, failed, last_success, last_failure]


def finished_families(account: str, result: CollectionResult) -> list[Metric]:
    finished = RUNS_FINISHED.counter()
    for (kind, outcome), count in sorted(result.finished_totals.items()):
        finished.add_metric([account, kind, outcome], count)
    failed = RUNS_FAILED.counter()
    for (kind, reason), count in sorted(result.failed_totals.items()):
        failed.add_metric([account, kind, reason], count)
    return [finished, failed]


def repo_spec_families(state: RepoSpecState | None) -> list[Metric]:
    if state is None:
        return []
    status = REPO_SPEC_STATUS.gauge()
    for name in REPO_SPEC_STATUSES:
        status.add_metric([name], 1 if state.status == name else 0)
    declared = REPO_SPEC_DECLARED.gauge()
    declared.add_metric([], len(state.schedules))
    return [status, declared]


def health_families(result: CollectionResult | None, schema: str) -> list[Metric]:
    up = EXPORTER_UP.gauge()
    up.add_metric([], 1 if result is not None and result.ok else 0)
    duration = EXPORTER_COLLECT_DURATION.gauge()
    duration.add_metric([], result.duration_seconds if result else 0.0)
    last_success = EXPORTER_LAST_SUCCESS.gauge()
    last_success.add_metric([], unix_time_or_zero(result.last_success_at if result else None))
    errors = EXPORTER_COLLECTION_ERRORS.counter()
    for reason, count in (result.errors_by_reason if result else {}).items():
        errors.add_metric([reason], count)
    build = EXPORTER_BUILD.info()
    build.add_metric([], dict(zip(EXPORTER_BUILD.labels, (__version__, schema), strict=True)))
    return [up, duration, last_success, errors, build]


class GovernanceCollector(Collector):
    """A client_python custom collector: builds new families on every scrape.

    ``describe`` returns nothing, so registering it runs no query.
    """

    def __init__(self, snapshots: SnapshotCache, declaration: NodeDeclaration) -> None:
        self._snapshots = snapshots
        self._declaration = declaration

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        yield from self.families(self._snapshots.get())

    def families(self, result: CollectionResult) -> Iterator[Metric]:
        """The families of one collection (``exporter.exposition`` builds them once)."""
        spec = self._declaration.repo_spec_state()
        yield from repo_spec_families(spec)
        if result.snapshot is None:
            yield from health_families(result, SCHEMA_UNKNOWN)
            return
        view = self._declaration.view(result.snapshot, spec)
        yield from credit_families(view)
        yield from charter_families(view)
        yield from unscheduled_families(view)
        yield from finished_families(view.account, result)
        yield from health_families(result, view.schema_version)

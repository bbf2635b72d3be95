"""The whole verdict on one view: every problem, the worst health, each charter's colour."""

from __future__ import annotations

from datetime import datetime

from exporter.memory import MemorySnapshot
from exporter.model import CharterView, GovernanceView
from exporter.policy.charters import charter_problems, work_problems
from exporter.policy.core import Assessment, Health, Problem, worst
from exporter.policy.credit import credit_problems
from exporter.policy.ledger import ledger_problems
from exporter.policy.memory import memory_problems
from exporter.policy.thresholds import LedgerThresholds


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

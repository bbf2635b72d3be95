"""What the node declares it must have: named charters, the repo-spec's schedules, one run's
cost; and the ledger's thresholds from the options.

Built once from the settings (a repo-spec that cannot be read stops the start with
``RepoSpecError``) and asked for a view of each snapshot; the repo-spec is re-read
when it changes, and a bad file later keeps the last good declaration.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from exporter.ledger import ledger_view
from exporter.model import GovernanceView, governance_view
from exporter.policy import LedgerThresholds
from exporter.repospec import RepoSpecFile, RepoSpecState
from exporter.settings import FEBRUARY_CHARTERS, Settings
from exporter.snapshot import Snapshot


@dataclass(frozen=True)
class NodeDeclaration:
    """The charters that must have a schedule, from the options and the repo-spec file."""

    expected_charters: tuple[str, ...] = ()
    min_run_cost_credits: int = 0
    repo_spec: RepoSpecFile | None = None
    ledger: LedgerThresholds = field(default_factory=LedgerThresholds)

    @classmethod
    def from_settings(cls, settings: Settings) -> NodeDeclaration:
        spec = RepoSpecFile(settings.repo_spec) if settings.repo_spec is not None else None
        ledger = LedgerThresholds(
            collect_grace_seconds=settings.ledger_collect_grace_seconds,
            receipt_silence_factor=settings.ledger_silence_factor,
            receipt_silence_min_seconds=settings.ledger_silence_min_seconds,
            review_wait_seconds=settings.ledger_review_wait_seconds,
        )
        return cls(settings.expected_charters, settings.min_run_cost_credits, spec, ledger)

    def repo_spec_state(self) -> RepoSpecState | None:
        return self.repo_spec.state() if self.repo_spec is not None else None

    def view(self, snapshot: Snapshot, spec: RepoSpecState | None = None) -> GovernanceView:
        """The view of ``snapshot``, with its ledger; ``spec``: the repo-spec state just
        read, if any."""
        view = governance_view(
            snapshot,
            self.expected_charters,
            spec=spec if spec is not None else self.repo_spec_state(),
            min_run_cost_credits=self.min_run_cost_credits,
        )
        return replace(view, ledger=ledger_view(snapshot))

    def memory_charters(self) -> tuple[str, ...]:
        """The charters whose gateway heartbeats are read: the named and declared ones."""
        state = self.repo_spec_state()
        declared = [s.charter for s in state.schedules if not s.implied] if state else []
        # The files exist only on nodes of February to June 2026, whose gateway ran
        # the four February charters: those, when nothing names any.
        return tuple(dict.fromkeys([*self.expected_charters, *declared])) or FEBRUARY_CHARTERS

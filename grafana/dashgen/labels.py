"""The operator's fleet labels (``Fleet``) and the selectors every query is built from.

Every selector of every panel goes through a ``Fleet`` (``fleet.sel``, ``fleet.acct``,
``fleet.charter``...), never a label name written out, so that each generated file
filters by its operator's own two labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ACCOUNT = 'account=~"$account"'
CHARTER = 'charter=~"$charter"'
# Alerts without an account/charter label (exporter down) must still show.
ALERT_MATCHERS = ('alertname=~"Governance.*"', 'account=~"$account|"')

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Labels (and variable names) the dashboard already uses for something else.
RESERVED_LABELS = frozenset(
    {"job", "instance", "account", "charter", "datasource", "__name__", "alertname", "severity"}
    | {"alertstate", "status", "reason", "run_kind", "version", "schema", "le", "quantile"}
)


@dataclass(frozen=True)
class Fleet:
    """The two target labels an operator tells nodes apart by, and the selectors they make.

    Each is also the name of the dashboard variable that filters by it. The default
    (``cluster``, ``node``) is the bundled stack's; Cogni's operators label their series
    ``env`` and ``node_id`` (Alloy's relabelling, see deploy/alloy/). Every selector of
    every panel carries both: regex matchers whose All value ``.*`` also matches a series
    without the label, so a single node without them still shows everywhere.

    ``recorded``: whether the data source holds the repository's recording rules'
    ``governance:*`` series. The bundled stack's Prometheus records them; Grafana-managed
    alerting (Cogni's) inlines them into each alert and records nothing, so there a
    panel computes in its own query what it would read recorded.
    """

    cluster: str = "cluster"
    node: str = "node"
    recorded: bool = True

    def __post_init__(self) -> None:
        for label in (self.cluster, self.node):
            if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
                raise ValueError(f"{label!r} is not a Prometheus label name")
            if label in RESERVED_LABELS:
                raise ValueError(f"{label!r} is a label the dashboard already reads")
        if self.cluster == self.node:
            raise ValueError(f"the two fleet labels are the same ({self.cluster!r})")

    @property
    def labels(self) -> tuple[str, str]:
        return self.cluster, self.node

    @property
    def legend(self) -> str:
        """A series' name by node: its node label and instance (either may be absent)."""
        return f"{{{{{self.node}}}}} {{{{instance}}}}"

    @property
    def node_labels(self) -> str:
        """What keeps two nodes apart: the target's own labels (job, instance) and the
        fleet's. A label a series lacks (Alloy may drop instance) matches as empty."""
        return f"job, instance, {self.cluster}, {self.node}"

    def sel(self, metric: str, *matchers: str) -> str:
        """``metric{matchers..., <cluster>=~"$<cluster>", <node>=~"$<node>"}``: every
        selector."""
        return f"{metric}{{{', '.join((*matchers, self.matchers))}}}"

    def alerts(self, *matchers: str) -> str:
        return self.sel("ALERTS", *ALERT_MATCHERS, *matchers)

    def acct(self, metric: str) -> str:
        return self.sel(metric, ACCOUNT)

    def charter(self, metric: str, *extra: str) -> str:
        return self.sel(metric, ACCOUNT, CHARTER, *extra)

    def kind(self, metric: str, *extra: str) -> str:
        """A metric of the work without a schedule (by account and run kind)."""
        return self.sel(metric, ACCOUNT, *extra)

    @property
    def build_info(self) -> str:
        """On every exporter whatever its database says: what marks a target as ours."""
        return self.sel("governance_exporter_build_info")

    def exporter_up(self) -> str:
        """``up`` of the exporter's targets only: those that exported build_info in the
        last day (a dead exporter stays listed as down), never every target scraped."""
        return f"{self.sel('up')} and on ({self.node_labels}) last_over_time({self.build_info}[1d])"

    @property
    def matchers(self) -> str:
        """The fleet's two matchers, as every selector ends (``sel``'s)."""
        return ", ".join(f'{label}=~"${label}"' for label in self.labels)

    @property
    def balance(self) -> str:
        return f"max by (account) ({self.acct('governance_credit_balance_credits')})"

    @property
    def min_run_cost(self) -> str:
        """The preflight check refuses runs below one run's estimated cost (today's nodes)."""
        return f"max by (account) ({self.acct('governance_credit_min_run_cost_credits')})"

    @property
    def burn_per_hour(self) -> str:
        rate = self.acct("governance_credit_burn_rate_credits_per_second")
        return f"max by (account) ({rate}) * 3600"

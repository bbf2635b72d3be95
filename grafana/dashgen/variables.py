"""The dashboard's template variables: data source, the fleet's two labels, account, charter.

Each label variable narrows the next: cluster -> node -> account -> charter.
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from dashgen.labels import ACCOUNT, Fleet
from dashgen.widgets import DS, column


def _all_of(variable: db.QueryVariable) -> db.QueryVariable:
    """Multi-value with All, whose value ``.*`` also matches a label a series lacks."""
    return (
        variable.multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dm.VariableOption(text="All", value="$__all"))
    )


def _query_variable(name: str, label: str, description: str, query: str) -> db.QueryVariable:
    return (
        db.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DS)
        .query(query)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )


def variables(fleet: Fleet, datasource_uid: str) -> list[Any]:
    # Each narrows the next: cluster -> node -> account -> charter (under the operator's
    # label names). build_info is on every exporter whatever its database says, so
    # every node is listed.
    cluster, node = fleet.labels
    cluster_query = f"label_values(governance_exporter_build_info, {cluster})"
    node_query = f'label_values(governance_exporter_build_info{{{cluster}=~"${cluster}"}}, {node})'
    account_query = f"label_values({fleet.sel('governance_credit_balance_credits')}, account)"
    charter_query = f"label_values({fleet.sel('governance_charter_configured', ACCOUNT)}, charter)"
    return [
        db.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(dm.VariableOption(text="Prometheus", value=datasource_uid)),
        _all_of(
            _query_variable(
                cluster,
                column(cluster),
                f"Label '{cluster}' the operator adds to each node's series to group nodes "
                "(a cluster, an environment); All also shows series without it (a single "
                "node).",
                cluster_query,
            )
        ),
        _all_of(
            _query_variable(
                node,
                column(node),
                f"Label '{node}' the operator adds to each node's series (one Cogni node, "
                "one exporter); All also shows series without it.",
                node_query,
            )
        ),
        _query_variable(
            "account",
            "Account",
            "Billing account slug (label 'account' of the exporter).",
            account_query,
        ),
        _all_of(
            _query_variable(
                "charter",
                "Charter",
                "Governance charters of the selected account.",
                charter_query,
            )
        ),
    ]

"""The generated files: each a ``Variant`` (a fleet labelling, a data source, a uid).

``grafana/dashboards/governance.json`` is the bundled stack's (``cluster``, ``node``);
``deploy/grafana/governance-cogni.json`` is Cogni's (``env``, ``node_id``, as their
Alloy labels series; no recording rules, as their Grafana-managed alerts record
none), ready for a Git Sync folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dashgen.labels import Fleet

GRAFANA = Path(__file__).resolve().parent.parent  # the repository's grafana/
ROOT = GRAFANA.parent
OUTPUT = GRAFANA / "dashboards" / "governance.json"

DASHBOARD_UID = "cogni-governance"
DASHBOARD_TITLE = "Cogni governance health"
DATASOURCE_UID = "governance-prometheus"  # provisioning/datasources/prometheus.yml
MAX_UID_LENGTH = 40  # Grafana's limit


@dataclass(frozen=True)
class Variant:
    """One generated file: the fleet's labels, the data source it opens on, its uid."""

    fleet: Fleet
    output: Path
    datasource_uid: str = DATASOURCE_UID
    chosen_uid: str = ""  # empty: derived from the labels

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-zA-Z0-9_-]+", self.uid) or len(self.uid) > MAX_UID_LENGTH:
            raise ValueError(
                f"dashboard uid {self.uid!r}: at most {MAX_UID_LENGTH} letters, digits, - or _"
            )

    @property
    def uid(self) -> str:
        """Fixed, so that Git Sync and links find the same dashboard every time; the
        bundled labels keep the historical uid, others get their labels in theirs."""
        if self.chosen_uid:
            return self.chosen_uid
        if self.fleet.labels == Fleet().labels:
            return DASHBOARD_UID
        return f"{DASHBOARD_UID}-{self.fleet.cluster}-{self.fleet.node}"


# The bundled stack (docker-compose.yml, grafana/provisioning): cluster and node.
DEFAULT = Variant(Fleet(), OUTPUT)
# Cogni's operators: Alloy labels every series env and node_id (deploy/alloy/), Git Sync
# loads the file as it is, and Grafana Cloud names its hosted Prometheus grafanacloud-prom
# (a viewer may pick another in the Data source variable). Their alerts are
# Grafana-managed, which inline the recording rules: nothing records governance:*.
COGNI = Variant(
    Fleet("env", "node_id", recorded=False),
    ROOT / "deploy" / "grafana" / "governance-cogni.json",
    datasource_uid="grafanacloud-prom",
)
VARIANTS = (DEFAULT, COGNI)  # the committed files

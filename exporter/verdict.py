"""One collection to one verdict: the view the node's declaration gives, as policy judges it.

The status page and ``check`` both call ``evaluate``, so they cannot disagree; the
alert rules encode the same thresholds (``exporter.policy``).
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.collection import CollectionResult
from exporter.declaration import NodeDeclaration
from exporter.memory import MemorySnapshot, read_memory
from exporter.model import GovernanceView
from exporter.policy import Assessment, assess
from exporter.settings import Settings


@dataclass(frozen=True)
class Verdict:
    view: GovernanceView
    assessment: Assessment


def evaluate(
    result: CollectionResult, declaration: NodeDeclaration, memory: MemorySnapshot | None
) -> Verdict | None:
    """Policy's verdict on ``result``; ``None`` when the collection read nothing."""
    if result.snapshot is None:
        return None
    view = declaration.view(result.snapshot)
    return Verdict(view, assess(view, view.taken_at, memory, ledger=declaration.ledger))


def gateway_memory(settings: Settings, declaration: NodeDeclaration) -> MemorySnapshot | None:
    """The gateway's memory files the verdict weighs, when ``--memory-dir`` is set."""
    if settings.memory_dir is None:
        return None
    return read_memory(settings.memory_dir, declaration.memory_charters())

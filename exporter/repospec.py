"""The node's declared governance schedules, read from its ``.cogni/repo-spec.yaml``.

What the node's app does with that file at every boot (the source project's
schedule sync): one ``schedules`` row per ``governance.schedules`` entry, with
``temporal_schedule_id = 'governance:' + lower(charter)``; an entry removed from
the file is pruned (its row stays, disabled, ``next_run_at`` NULL). When the file
has an ``activity_ledger:`` section and top-level ``scope_id`` and ``scope_key``
and declares no ``LEDGER_INGEST`` entry, the app adds one itself: ``LEDGER_INGEST``,
``0 0 * * *``, UTC. ``declared_schedules`` applies the same rules, so the
exporter expects exactly the rows the sync writes.

``RepoSpecFile`` re-reads the file when it changes; a file that turns unreadable
or invalid later keeps the last good declaration and reports why.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LEDGER_CHARTER = "LEDGER_INGEST"
LEDGER_CRON = "0 0 * * *"
LEDGER_TIMEZONE = "UTC"
MAX_FILE_BYTES = 1024 * 1024

# Bounded reasons, for governance_repo_spec_status.
STATUS_OK = "ok"
STATUS_UNREADABLE = "unreadable"
STATUS_INVALID = "invalid"
STATUSES = (STATUS_OK, STATUS_UNREADABLE, STATUS_INVALID)


class RepoSpecError(ValueError):
    """The repo-spec cannot be used; ``status`` is ``unreadable`` or ``invalid``."""

    def __init__(self, path: Path, status: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.status = status
        self.problem = problem


@dataclass(frozen=True)
class DeclaredSchedule:
    charter: str  # lower case, as the exporter's charter label
    cron: str
    timezone: str
    implied: bool = False  # added by the app for activity_ledger, not written in the file


def _invalid(path: Path, problem: str) -> RepoSpecError:
    return RepoSpecError(path, STATUS_INVALID, problem)


def _entry(path: Path, index: int, entry: Any) -> DeclaredSchedule:
    where = f"governance.schedules[{index}]"
    if not isinstance(entry, Mapping):
        raise _invalid(path, f"{where} is not a mapping")
    charter, cron = entry.get("charter"), entry.get("cron")
    if not isinstance(charter, str) or not charter.strip():
        raise _invalid(path, f"{where} has no charter")
    if not isinstance(cron, str) or not cron.strip():
        raise _invalid(path, f"{where} ({charter}) has no cron")
    timezone = entry.get("timezone", "UTC")
    if not isinstance(timezone, str) or not timezone.strip():
        raise _invalid(path, f"{where} ({charter}) has a timezone that is not a name")
    return DeclaredSchedule(charter.strip().lower(), cron.strip(), timezone.strip())


def declared_schedules(document: Any, path: Path) -> tuple[DeclaredSchedule, ...]:
    """The schedules the boot sync writes for this parsed repo-spec."""
    if not isinstance(document, Mapping):
        raise _invalid(path, "the file is not a YAML mapping")
    governance = document.get("governance") or {}
    if not isinstance(governance, Mapping):
        raise _invalid(path, "governance is not a mapping")
    entries = governance.get("schedules") or []
    if not isinstance(entries, list):
        raise _invalid(path, "governance.schedules is not a list")
    schedules = [_entry(path, i, entry) for i, entry in enumerate(entries)]
    names = [s.charter for s in schedules]
    if len(set(names)) != len(names):
        raise _invalid(path, "governance.schedules names a charter twice")
    ledger = LEDGER_CHARTER.lower()
    if (
        isinstance(document.get("activity_ledger"), Mapping)
        and document.get("scope_id")
        and document.get("scope_key")
        and ledger not in names
    ):
        schedules.append(DeclaredSchedule(ledger, LEDGER_CRON, LEDGER_TIMEZONE, implied=True))
    return tuple(schedules)


def parse_repo_spec(text: str, path: Path) -> tuple[DeclaredSchedule, ...]:
    import yaml  # noqa: PLC0415 - only nodes with a repo-spec pay for PyYAML

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise _invalid(path, f"not valid YAML{where}") from None
    return declared_schedules(document, path)


def _read(path: Path) -> tuple[str, tuple[int, int, int]]:
    try:
        with path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RepoSpecError(path, STATUS_UNREADABLE, f"cannot read it ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise RepoSpecError(path, STATUS_UNREADABLE, "larger than 1 MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid(path, "not UTF-8 text") from None
    return text, (info.st_ino, info.st_size, info.st_mtime_ns)


@dataclass(frozen=True)
class RepoSpecState:
    """The declaration in force, and how the latest read of the file went."""

    schedules: tuple[DeclaredSchedule, ...]
    status: str = STATUS_OK
    problem: str | None = None

    def by_charter(self) -> dict[str, DeclaredSchedule]:
        return {s.charter: s for s in self.schedules}


class RepoSpecFile:
    """A repo-spec read at start (a bad file raises) and again whenever it changes.

    A ConfigMap update replaces the file (a new inode), an editor rewrites it: the
    identity (inode, size, mtime) is compared on each ``state()``, so an unchanged
    file costs one ``stat``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        text, identity = _read(path)
        self._state = RepoSpecState(parse_repo_spec(text, path))
        self._identity: tuple[int, int, int] | None = identity

    def state(self) -> RepoSpecState:
        try:
            info = os.stat(self.path)
            identity = (info.st_ino, info.st_size, info.st_mtime_ns)
            if identity == self._identity and self._state.status == STATUS_OK:
                return self._state
            text, identity = _read(self.path)
            schedules = parse_repo_spec(text, self.path)
        except OSError as exc:
            return self._failed(RepoSpecError(self.path, STATUS_UNREADABLE, str(exc.strerror)))
        except RepoSpecError as exc:
            return self._failed(exc)
        if self._state.status != STATUS_OK or schedules != self._state.schedules:
            logger.info("repo-spec %s: %d governance schedules declared", self.path, len(schedules))
        self._state, self._identity = RepoSpecState(schedules), identity
        return self._state

    def _failed(self, error: RepoSpecError) -> RepoSpecState:
        if self._state.status == STATUS_OK:
            logger.error("repo-spec unusable, keeping the last good declaration: %s", error)
        self._state = RepoSpecState(self._state.schedules, error.status, error.problem)
        self._identity = None
        return self._state

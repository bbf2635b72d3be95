"""The governance gateway's memory files: charter heartbeats and the budget gate.

The gateway rewrites these Markdown files on every run, so they may be missing,
half-written or malformed at any moment. Reading them never raises: every file
yields a parse status next to whatever could be read.

Layout, under the configured directory (the gateway's ``memory/``):
``{CHARTER}/heartbeat.md`` (``key: value`` lines) and ``_budget_header.md``
(YAML-style front matter between ``---`` lines, then ``key: value`` lines).

The lines are read the way the gateway's own templates write them, which is
looser than YAML (see ``key_values``):

- A value may carry an inline comment: ``budget_status: ok # ok | warn``. A ``#``
  starts one only after whitespace and outside quotes, and a value that starts
  with ``#`` is only a comment (YAML's rule): ``notes: "" # optional`` is the
  empty string, ``focus: "PR #12"`` and ``focus: PR#12`` keep their ``#``.
- A key with no value (``cost_guard:``) opens a block, and the gateway writes the
  block's sub-keys NOT indented. A sub-key is stored as ``parent.key`` and never
  as a top-level key, so it cannot clobber one. A line belongs to the open block
  when it is indented deeper than the block's key, or when it is unindented and
  its key is one the gateway's contract names for that block (``NESTED_KEYS``).
  Any other key, or a ``---`` line, closes the block: an unindented key outside
  the contract is top-level, as YAML reads it.
- Keys are case-insensitive, Markdown list marks and bold around a key are
  ignored, and the first occurrence of a key wins.
"""

from __future__ import annotations

import enum
import errno
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

MAX_FILE_BYTES = 64 * 1024
HEARTBEAT_FILE = "heartbeat.md"
BUDGET_HEADER_FILE = "_budget_header.md"

DECISIONS = ("action", "no-op")
NO_OP_REASONS = ("veto", "wip_full", "blocked", "no_delta")
BUDGET_STATUSES = ("ok", "warn", "critical")
BURN_RATE_TRENDS = ("down", "flat", "up")

# The gateway's heartbeat contract: its two nested keys and their sub-keys. Its
# templates write the sub-keys unindented, so only their names tell them apart.
NESTED_KEYS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "expected_outcome": frozenset({"metric", "target", "by_date"}),
        "cost_guard": frozenset({"max_tokens", "max_tool_calls", "escalation_requested"}),
    }
)

# indentation, an optional list mark, a key (bold allowed; dotted, as the gateway's
# skills write ``cost_guard.escalation_requested``), a colon, the raw value
_KEY_VALUE = re.compile(r"^(\s*)(?:[-*]\s+)?\**([A-Za-z_][A-Za-z0-9_.]*)\**\s*:\s*(.*?)\s*$")
_QUOTES = "\"'`"


class FileStatus(enum.StrEnum):
    OK = "ok"
    MISSING = "missing"
    INCOMPLETE = "incomplete"  # required keys missing: half-written, or empty
    MALFORMED = "malformed"  # a value of the wrong kind
    UNREADABLE = "unreadable"  # not a regular file, a symlink, too big, permissions


FILE_STATUSES = tuple(FileStatus)


@dataclass(frozen=True)
class FileFacts:
    status: FileStatus
    modified_at: datetime | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Heartbeat:
    charter: str
    file: FileFacts
    run_at: datetime | None = None
    decision: str | None = None
    no_op_reason: str | None = None


@dataclass(frozen=True)
class BudgetHeader:
    file: FileFacts
    updated_at: datetime | None = None
    allow_runs: bool | None = None
    budget_status: str | None = None
    burn_rate_trend: str | None = None
    max_tokens_per_charter_run: int | None = None
    max_tool_calls_per_charter_run: int | None = None
    max_brain_spawns_per_hour: int | None = None


@dataclass(frozen=True)
class MemorySnapshot:
    heartbeats: tuple[Heartbeat, ...]
    budget: BudgetHeader
    ignored_entries: int
    directory_readable: bool = True


class _Malformed(ValueError):
    pass


class _Incomplete(ValueError):
    pass


# --- parsing (pure) ---------------------------------------------------------------


def key_values(text: str, nested: Mapping[str, frozenset[str]] = NESTED_KEYS) -> dict[str, str]:
    """``key: value`` lines, front matter included, sub-keys as ``parent.key``; the
    first occurrence of a key wins. The rules are in the module's docstring."""
    values: dict[str, str] = {}
    block: tuple[str, int] | None = None  # the open block's key and indentation
    for line in text.splitlines():
        if line.strip() == "---":  # front matter's edges close any block
            block = None
            continue
        match = _KEY_VALUE.match(line)
        if not match:
            continue
        indent, key, value = len(match.group(1)), match.group(2).lower(), _scalar(match.group(3))
        if block is not None and (indent > block[1] or key in nested.get(block[0], ())):
            values.setdefault(f"{block[0]}.{key}", value or "")
            continue
        block = (key, indent) if value is None else None
        values.setdefault(key, value or "")
    return values


def _scalar(raw: str) -> str | None:
    """A value without its inline comment; None when the line holds none (``key:``
    or ``key: # note``), which opens a block. A quoted empty string is ``""``."""
    if raw == "" or raw.startswith("#"):
        return None
    if raw[0] in "\"'":
        quoted = _quoted(raw)
        if quoted is not None:
            return quoted
        # unclosed (half-written), or text after the closing quote: read it as plain
    return _uncommented(raw).strip().strip(_QUOTES)


def _quoted(raw: str) -> str | None:
    """The content of a quoted value followed by nothing or a comment, else None."""
    quote, out, i = raw[0], [], 1
    while i < len(raw):
        char = raw[i]
        if quote == '"' and char == "\\" and raw[i + 1 : i + 2] in ('"', "\\"):
            out.append(raw[i + 1])
            i += 2
            continue
        if char == quote:
            if quote == "'" and raw[i + 1 : i + 2] == "'":  # YAML's doubled single quote
                out.append("'")
                i += 2
                continue
            rest = raw[i + 1 :].lstrip()
            return "".join(out).strip() if rest == "" or rest.startswith("#") else None
        out.append(char)
        i += 1
    return None


def _uncommented(raw: str) -> str:
    """A plain value up to its inline comment: a ``#`` after whitespace, outside
    double quotes and backticks. Quotes that never close are not quotes (a
    half-written file, or an inch mark), so the first such ``#`` then counts."""
    for quotes in ('"`', ""):
        inside: str | None = None
        for i, char in enumerate(raw):
            if inside is not None:
                if char == inside:
                    inside = None
            elif char in quotes:
                inside = char
            elif char == "#" and raw[i - 1].isspace():
                return raw[:i]
        if inside is None:
            break
    return raw


def parse_timestamp(text: str) -> datetime:
    """``2026-02-15T12:00Z``, with or without seconds, ``Z`` or an offset."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _Malformed(f"not a timestamp: {text[:40]!r}") from exc
    if parsed.tzinfo is None:
        raise _Malformed(f"timestamp without a time zone: {text[:40]!r}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # year 1 or 9999 shifted past the calendar's ends
        raise _Malformed(f"timestamp out of range: {text[:40]!r}") from exc


def _choice(values: Mapping[str, str], key: str, allowed: Sequence[str]) -> str | None:
    raw = values.get(key)
    if raw is None or raw == "":
        return None
    value = raw.lower()
    if value not in allowed:
        raise _Malformed(f"{key} is {raw[:40]!r}, expected one of {', '.join(allowed)}")
    return value


def _boolean(values: Mapping[str, str], key: str) -> bool | None:
    raw = values.get(key, "").lower()
    if raw == "":
        return None
    if raw in {"true", "yes", "1"}:
        return True
    if raw in {"false", "no", "0"}:
        return False
    raise _Malformed(f"{key} is {raw[:40]!r}, expected true or false")


_MAX_COUNT_DIGITS = 15  # exact as a float sample value


def _count(values: Mapping[str, str], key: str) -> int | None:
    raw = values.get(key, "").replace("_", "").replace(",", "")
    if raw == "":
        return None
    # isdigit() alone admits digits such as '²' that int() refuses.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= _MAX_COUNT_DIGITS):
        raise _Malformed(f"{key} is {values[key][:40]!r}, expected a whole number")
    return int(raw)


def parse_heartbeat(charter: str, text: str, file: FileFacts) -> Heartbeat:
    values = key_values(text)
    try:
        if "run_at" not in values or "decision" not in values:
            raise _Incomplete("run_at or decision missing")
        decision = _choice(values, "decision", DECISIONS)
        reason = _choice(values, "no_op_reason", NO_OP_REASONS) if decision == "no-op" else None
        return Heartbeat(charter, file, parse_timestamp(values["run_at"]), decision, reason)
    except _Incomplete as exc:
        return Heartbeat(charter, FileFacts(FileStatus.INCOMPLETE, file.modified_at, str(exc)))
    except _Malformed as exc:
        return Heartbeat(charter, FileFacts(FileStatus.MALFORMED, file.modified_at, str(exc)))


def parse_budget_header(text: str, file: FileFacts) -> BudgetHeader:
    values = key_values(text)
    try:
        if "updated_at" not in values or "allow_runs" not in values:
            raise _Incomplete("updated_at or allow_runs missing")
        return BudgetHeader(
            file=file,
            updated_at=parse_timestamp(values["updated_at"]),
            allow_runs=_boolean(values, "allow_runs"),
            budget_status=_choice(values, "budget_status", BUDGET_STATUSES),
            burn_rate_trend=_choice(values, "burn_rate_trend", BURN_RATE_TRENDS),
            max_tokens_per_charter_run=_count(values, "max_tokens_per_charter_run"),
            max_tool_calls_per_charter_run=_count(values, "max_tool_calls_per_charter_run"),
            max_brain_spawns_per_hour=_count(values, "max_brain_spawns_per_hour"),
        )
    except _Incomplete as exc:
        return BudgetHeader(FileFacts(FileStatus.INCOMPLETE, file.modified_at, str(exc)))
    except _Malformed as exc:
        return BudgetHeader(FileFacts(FileStatus.MALFORMED, file.modified_at, str(exc)))


# --- reading files ------------------------------------------------------------------


def read_text(path: Path | str, dir_fd: int | None = None) -> tuple[str | None, FileFacts]:
    """A small regular file's text, never following a symlink; never raises.

    With ``dir_fd``, ``path`` is a name inside that already opened directory.
    """
    try:
        fd = os.open(
            path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except FileNotFoundError:
        return None, FileFacts(FileStatus.MISSING)
    except OSError as exc:
        return None, FileFacts(FileStatus.UNREADABLE, problem=_open_problem(exc))
    try:
        info = os.fstat(fd)
        modified_at = _modified_at(info)
        if not stat.S_ISREG(info.st_mode):
            return None, FileFacts(FileStatus.UNREADABLE, modified_at, "not a regular file")
        data = _read_at_most(fd, MAX_FILE_BYTES + 1)
    except OSError as exc:
        return None, FileFacts(FileStatus.UNREADABLE, problem=exc.strerror)
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        return None, FileFacts(FileStatus.UNREADABLE, modified_at, "larger than 64 KiB")
    return data.decode("utf-8", errors="replace"), FileFacts(FileStatus.OK, modified_at)


def _open_problem(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symlink (not followed)"
    if exc.errno == errno.ENOTDIR:
        return "not a directory"
    return exc.strerror or str(exc.errno)


def _modified_at(info: os.stat_result) -> datetime | None:
    try:
        return datetime.fromtimestamp(info.st_mtime, UTC)
    except (OverflowError, OSError, ValueError):  # an mtime past year 9999
        return None


def _read_heartbeat_file(folder: Path) -> tuple[str | None, FileFacts]:
    """The heartbeat inside ``folder``, which is opened without following a symlink.

    Opening the folder first closes the window in which it could be swapped for a
    symlink between listing the directory and reading the file.
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        dir_fd = os.open(folder, flags)
    except FileNotFoundError:
        return None, FileFacts(FileStatus.MISSING)
    except OSError as exc:
        return None, FileFacts(FileStatus.UNREADABLE, problem=_open_problem(exc))
    try:
        return read_text(HEARTBEAT_FILE, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit and (chunk := os.read(fd, limit - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _charter_dirs(directory: Path) -> tuple[dict[str, Path], int] | None:
    """Real (not symlinked) sub-directories by lower-case name, and how many others;
    None when the directory cannot be listed."""
    found: dict[str, Path] = {}
    others = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return None
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(("_", ".")):
            found[entry.name.lower()] = Path(entry.path)
        elif entry.name != BUDGET_HEADER_FILE:
            others += 1
    return found, others


def read_memory(directory: Path, charters: Sequence[str]) -> MemorySnapshot:
    """Heartbeats of the expected charters and the budget header; never raises."""
    listing = _charter_dirs(directory)
    dirs, ignored = listing if listing is not None else ({}, 0)
    absent = FileFacts(FileStatus.MISSING)
    if listing is None and os.path.lexists(directory):
        absent = FileFacts(FileStatus.UNREADABLE, problem="the memory directory cannot be listed")
    heartbeats = []
    for charter in charters:
        folder = dirs.pop(charter.lower(), None)
        if folder is None:
            heartbeats.append(Heartbeat(charter, absent))
            continue
        text, facts = _read_heartbeat_file(folder)
        heartbeats.append(
            parse_heartbeat(charter, text, facts) if text is not None else Heartbeat(charter, facts)
        )
    text, facts = read_text(directory / BUDGET_HEADER_FILE)
    budget = parse_budget_header(text, facts) if text is not None else BudgetHeader(facts)
    return MemorySnapshot(tuple(heartbeats), budget, ignored + len(dirs), listing is not None)

"""Configuration: one object, built once in ``main()`` and passed down.

Every option is an environment variable ``GOVERNANCE_EXPORTER_<NAME>`` and a
command-line flag ``--<name>``; a flag wins over the environment. Each field names
the sub-commands whose flag it is (``Commands``, in its ``Annotated`` type): ``check``
has no server options, the demo makes its own database, window and repo-spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "GOVERNANCE_EXPORTER_"
DEFAULT_PORT = 10215
SYSTEM_PRINCIPAL_ID = "00000000-0000-4000-a000-000000000001"
# The four hourly charters of February 2026 (retired on 2026-02-19): what a node of
# that shape should pass as --expected-charters, or declare in its repo-spec.
FEBRUARY_CHARTERS = ("govern", "community", "engineering", "sustainability")
# The preflight check's smallest estimate of one run's cost: (0 message tokens +
# 10,000) / 1,000 x $0.02 x markup 2.0 = $0.40, at 10,000,000 credits per USD.
DEFAULT_MIN_RUN_COST_CREDITS = 4_000_000
MISSING_DATABASE_URL = (
    "--database-url / GOVERNANCE_EXPORTER_DATABASE_URL is required (or --database-url-file)"
)


# The sub-commands (exporter.cli runs them).
SERVE, CHECK, DEMO = "serve", "check", "demo"


@dataclass(frozen=True)
class Commands:
    """The sub-commands that take an option as a flag: a field's ``Annotated`` metadata.
    (Its environment variable is read by every command: one environment serves all.)"""

    names: tuple[str, ...]


# Everything the exporter reads and judges: the long-running server and the one-shot check.
SERVE_AND_CHECK = Commands((SERVE, CHECK))
# The HTTP server's, which the demo runs too (it makes its own database, window, repo-spec).
SERVER = Commands((SERVE, DEMO))
# The HTTP server's limits and the pool's size: the demo keeps serve's defaults.
SERVE_ONLY = Commands((SERVE,))
EVERY_COMMAND = Commands((SERVE, CHECK, DEMO))


def split_host_port(address: str) -> tuple[str, int]:
    """``host:port``, ``:port`` or ``[v6]:port`` → (host, port)."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"expected host:port, got {address!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    return host.strip("[]"), port


class Settings(BaseSettings):
    """What the exporter watches, and how."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", frozen=True, hide_input_in_errors=True
    )

    database_url: Annotated[SecretStr | None, SERVE_AND_CHECK] = Field(
        default=None,
        description="libpq URL or key=value string of the Cogni database. Required "
        "(or --database-url-file).",
    )
    database_url_file: Annotated[Path | None, SERVE_AND_CHECK] = Field(
        default=None,
        description="File holding the database URL (a container secret); read at start.",
    )
    listen_address: Annotated[str, SERVER] = Field(
        default=f":{DEFAULT_PORT}",
        description="host:port to serve /metrics, /healthz and the status page on.",
    )
    account: Annotated[str, SERVE_AND_CHECK] = Field(
        default="cogni_system", min_length=1, description="Slug of the billing account to watch."
    )
    rls_user_id: Annotated[str, SERVE_AND_CHECK] = Field(
        default=SYSTEM_PRINCIPAL_ID,
        min_length=1,
        description="User id set as app.current_user_id in every transaction so that "
        "row-level security lets the exporter read the account's rows.",
    )
    window_seconds: Annotated[int, SERVE_AND_CHECK] = Field(
        default=86400,
        gt=0,
        le=90 * 86400,
        description="Trailing window for spend and run counts, in seconds.",
    )
    repo_spec: Annotated[Path | None, SERVE_AND_CHECK] = Field(
        default=None,
        description="The node's .cogni/repo-spec.yaml: its governance.schedules (and the "
        "ledger schedule the app adds for activity_ledger) must have rows, paused or with "
        "the declared cron and time zone. Re-read when it changes. Unset: the charters are "
        "the account's governance schedule rows.",
    )
    expected_charters: Annotated[tuple[str, ...], NoDecode, SERVE_AND_CHECK] = Field(
        default=(),
        description="Comma-separated charters that must have a schedule row, besides "
        "those of --repo-spec (a February 2026 node: govern,community,engineering,"
        "sustainability).",
    )
    min_run_cost_credits: Annotated[int, SERVE_AND_CHECK] = Field(
        default=DEFAULT_MIN_RUN_COST_CREDITS,
        ge=0,
        description="Balance below which the node's preflight check rejects a run (its "
        "estimated cost; 4,000,000 credits = $0.40 at least): red below it. 0 turns it off.",
    )
    statement_timeout_seconds: Annotated[float, SERVE_AND_CHECK] = Field(
        default=3.0,
        gt=0,
        le=60,
        description="Bounds each step of a collection: the server-side statement "
        "timeout, the wait for a pooled connection, and libpq's connect timeout (rounded "
        "up to whole seconds, at least 2). A collection takes at most the connection wait "
        "plus this + 1 s for its queries, and tries once more after a broken connection. "
        "Keep it well under Prometheus' scrape timeout (10 s).",
    )
    cache_seconds: Annotated[float, SERVER] = Field(
        default=1.0,
        ge=0,
        le=300,
        description="Serve a finished collection to scrapes arriving within this many "
        "seconds of it (scrapes arriving while one runs always share it). 1 s makes a "
        "burst of concurrent scrapes cost one set of queries; 0 turns the cache off.",
    )
    pool_max_size: Annotated[int, SERVE_ONLY] = Field(
        default=2, ge=1, le=20, description="Most database connections the exporter opens."
    )
    max_charters: Annotated[int, SERVE_AND_CHECK] = Field(
        default=50,
        ge=1,
        le=10_000,
        description="Cap on charters exported (label cardinality); extra schedules are "
        "dropped with a log line.",
    )
    max_ledger_nodes: Annotated[int, SERVE_AND_CHECK] = Field(
        default=50,
        ge=1,
        le=10_000,
        description="Cap on the attribution ledger's label sets: epoch streams (node, "
        "scope), nodes with receipts, and the operator's dispatch schedules are each cut "
        "to this many; governance_ledger_truncated says when rows were left out.",
    )
    ledger_collect_grace_seconds: Annotated[int, SERVE_AND_CHECK] = Field(
        default=7200,
        ge=0,
        le=30 * 86400,
        description="An epoch whose window ended is still open after one collect interval "
        "(from the ledger schedule's cron, else 24 h) plus this: the collect stopped (red).",
    )
    ledger_silence_factor: Annotated[float, SERVE_AND_CHECK] = Field(
        default=4.0,
        ge=1,
        le=100,
        description="The webhook plane is silent (red) when a node's newest receipt is "
        "older than this many times its usual longest gap (the 90th percentile of the gaps "
        "between its 50 newest receipts) and older than --ledger-silence-min-seconds.",
    )
    ledger_silence_min_seconds: Annotated[int, SERVE_AND_CHECK] = Field(
        default=72 * 3600,
        ge=1,  # the demo runs 60x faster and gives this in demo time (one demo hour: 60 s)
        le=90 * 86400,
        description="No node's webhook plane is called silent before this long without a "
        "receipt (72 h: longer than a weekend's quiet on a busy repository).",
    )
    ledger_review_wait_seconds: Annotated[int, SERVE_AND_CHECK] = Field(
        default=7 * 86400,
        gt=0,
        le=365 * 86400,
        description="An epoch still in review this long after its window ended waits for "
        "its approvers: a warning (ticket).",
    )
    web_config_file: Annotated[Path | None, SERVE_ONLY] = Field(
        default=None,
        description="Prometheus exporter-toolkit web config (TLS, basic auth).",
    )
    web_max_requests: Annotated[int, SERVE_ONLY] = Field(
        default=128,
        ge=1,
        le=1000,
        description="Most HTTP connections served at once (each kept alive between "
        "requests); a connection idle between requests is closed to make room for a new "
        "one, and when every connection has a request in progress a newcomer is answered "
        "503 (over TLS: closed) instead of getting a thread.",
    )
    web_request_timeout_seconds: Annotated[float, SERVE_ONLY] = Field(
        default=20.0,
        gt=0,
        le=300,
        description="Deadline for one HTTP request, from its first byte (the first "
        "request's: from accept) to the end of the answer; a slower client is cut off. "
        "Keep it above statement-timeout-seconds.",
    )
    memory_dir: Annotated[Path | None, SERVE_AND_CHECK] = Field(
        default=None,
        description="Gateway workspace memory/ directory to read heartbeats and the "
        "budget header from; unset turns that collector off.",
    )
    grafana_url: Annotated[str | None, SERVER] = Field(
        default=None, description="Link to the Grafana dashboard shown on the status page."
    )
    log_level: Annotated[str, EVERY_COMMAND] = Field(
        default="INFO", description="DEBUG, INFO, WARNING or ERROR."
    )

    @field_validator("expected_charters", mode="before")
    @classmethod
    def _split_charters(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            names = tuple(dict.fromkeys(str(v).strip().lower() for v in value if str(v).strip()))
            return names
        return value

    @field_validator("listen_address")
    @classmethod
    def _check_listen_address(cls, value: str) -> str:
        split_host_port(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return level

    @model_validator(mode="after")
    def _require_database(self) -> Settings:
        # A blank URL is as good as none: libpq would quietly fall back to its
        # defaults (local socket, the OS user's name) and connect somewhere else.
        url = self.database_url.get_secret_value() if self.database_url else ""
        if not url.strip() and self.database_url_file is None:
            raise ValueError(MISSING_DATABASE_URL)
        return self

    @model_validator(mode="after")
    def _check_request_timeout(self) -> Settings:
        if self.web_request_timeout_seconds <= self.statement_timeout_seconds:
            raise ValueError(
                "--web-request-timeout-seconds must be above --statement-timeout-seconds "
                "(a scrape waits for the collection)"
            )
        return self

    def conninfo(self) -> str:
        """The database URL, read from the file when one is given."""
        if self.database_url_file is not None:
            return self.database_url_file.read_text(encoding="utf-8").strip()
        if self.database_url is None:  # _require_database rules this out
            raise ValueError(MISSING_DATABASE_URL)
        return self.database_url.get_secret_value()

    @property
    def listen_host_port(self) -> tuple[str, int]:
        return split_host_port(self.listen_address)


def option_flag(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def option_env(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def commands_of(field_name: str) -> tuple[str, ...]:
    """The sub-commands that take the field ``field_name`` as a flag."""
    found = [m for m in Settings.model_fields[field_name].metadata if isinstance(m, Commands)]
    if len(found) != 1:
        raise TypeError(f"Settings.{field_name} must name its commands once (Commands)")
    return found[0].names


def options_of(command: str) -> tuple[str, ...]:
    """The fields ``command`` takes as flags, in the order Settings declares them."""
    return tuple(name for name in Settings.model_fields if command in commands_of(name))

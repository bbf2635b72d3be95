"""Start-up shared by the sub-commands: settings, logging, signals, usage errors."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

import psycopg
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from exporter.settings import MISSING_DATABASE_URL, Settings, option_env, option_flag

logger = logging.getLogger(__name__)


class UsageError(Exception):
    """Bad configuration: shown as one line, exit status 2."""


def _describe_error(error: ErrorDetails) -> str:
    loc = [str(part) for part in error.get("loc", ()) if isinstance(part, str)]
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if not loc:
        return message
    name = loc[0]
    return f"{option_flag(name)} / {option_env(name)}: {message}"


def load_settings(overrides: dict[str, Any]) -> Settings:
    """Settings from the environment and flags, or ``UsageError`` in one line."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise UsageError(_describe_error(exc.errors()[0])) from None
    try:
        conninfo = settings.conninfo()
        psycopg.conninfo.conninfo_to_dict(conninfo)
    except OSError as exc:
        raise UsageError(f"--database-url-file: cannot read it ({exc.strerror})") from None
    except psycopg.ProgrammingError:
        raise UsageError(
            "--database-url / GOVERNANCE_EXPORTER_DATABASE_URL: not a valid libpq URL "
            "or key=value string"
        ) from None
    if not conninfo.strip():
        raise UsageError(f"{MISSING_DATABASE_URL}; --database-url-file is empty")
    return settings


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if level != "DEBUG":
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


def stop_on_signals(stop: threading.Event) -> None:
    """Turn SIGTERM and SIGINT into a clean stop."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        logger.info("received signal %d, stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)

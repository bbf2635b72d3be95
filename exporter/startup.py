"""Start-up shared by the sub-commands: settings, logging, signals, usage errors, malloc."""

from __future__ import annotations

import ctypes
import logging
import os
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


EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
# glibc's mallopt() parameter for the most malloc arenas (M_ARENA_MAX in malloc.h).
_M_ARENA_MAX = -8
MALLOC_ARENAS = 1


class UsageError(Exception):
    """Bad configuration: shown as one line, exit status 2."""


class Stop(threading.Event):
    """Set by SIGTERM or SIGINT (see ``stop_on_signals``); remembers the first one."""

    signum: int | None = None

    @property
    def exit_status(self) -> int:
        """0 after SIGTERM (an orderly stop), 130 after Ctrl-C, as a shell reports it."""
        return EXIT_INTERRUPTED if self.signum == signal.SIGINT else 0


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
    """Turn SIGTERM and SIGINT into a clean stop; a ``Stop`` also learns which."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        logger.info("received signal %d, stopping", signum)
        if isinstance(stop, Stop) and stop.signum is None:
            stop.signum = signum
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas; call it before any thread starts.

    glibc gives each new thread that allocates an arena of its own (up to 8 per
    core), each keeping its own free pages. The exporter's threads (HTTP requests,
    the pool's workers and scheduler) allocate almost only while holding the GIL,
    so more arenas buy no parallelism, only memory
    (``bench/rss.py``: 0.5 MiB of VmRSS after 1,000 scrapes with one arena, 0.3 MiB
    with two). An operator's own ``MALLOC_ARENA_MAX`` wins. True when the cap was set.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    except OSError:
        return False
    if mallopt is None:  # glibc has it; musl and macOS have none
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))  # glibc: 1 on success

"""``governance-exporter serve``: the long-running exporter (the default command)."""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

from exporter.app import build_app, log_start
from exporter.repospec import RepoSpecError
from exporter.startup import (
    Stop,
    UsageError,
    configure_logging,
    limit_malloc_arenas,
    load_settings,
    stop_on_signals,
)

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``serve`` takes only the exporter options."""


def run(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    """Serve until SIGTERM (exit 0) or Ctrl-C (exit 130), at whatever moment it comes.

    The signals are taken over first: a Ctrl-C during start-up then lets the
    start-up finish (it does not wait on the database) and stops before serving.
    """
    limit_malloc_arenas()  # before the pool's and the server's threads
    stop = Stop()
    stop_on_signals(stop)
    settings = load_settings(overrides)
    configure_logging(settings.log_level)
    try:
        app = build_app(settings)
    except RepoSpecError as exc:
        raise UsageError(f"--repo-spec {exc}") from None
    except OSError as exc:
        raise UsageError(
            f"--listen-address {settings.listen_address}: cannot listen ({exc.strerror})"
        ) from None
    try:
        if stop.is_set():
            logger.info("interrupted during start-up; stopped")
            return stop.exit_status
        log_start(app)
        serving = threading.Thread(target=app.serve_forever, name="http", daemon=True)
        serving.start()
        stop.wait()
        app.server.shutdown()
    finally:
        app.close()
    logger.info("stopped")
    return stop.exit_status

"""``governance-exporter serve``: the long-running exporter (the default command)."""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

from exporter.app import build_app, log_start
from exporter.repospec import RepoSpecError
from exporter.startup import UsageError, configure_logging, load_settings, stop_on_signals

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``serve`` takes only the exporter options."""


def run(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
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
    log_start(app)
    stop = threading.Event()
    stop_on_signals(stop)
    serving = threading.Thread(target=app.serve_forever, name="http", daemon=True)
    serving.start()
    stop.wait()
    app.server.shutdown()
    app.close()
    logger.info("stopped")
    return 0

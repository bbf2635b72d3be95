"""The demo's pager: each alert Alertmanager notifies logged once as it fires and as it resolves.

Alertmanager sends a group's alerts again whenever the group's notification goes out
(a new alert joins it: ``group_interval``; nothing changed for ``repeat_interval``),
so one alert arrives many times. ``NotificationLog`` remembers, per receiver, the
status it last logged for each alert (by its fingerprint, else its labels): a new
firing or a resolution is a ``WARNING`` line (``PAGE firing …``, ``PAGE resolved …``),
a re-sent firing says so (``PAGE still firing (re-sent) …``, ``INFO``), a re-sent
resolution is logged at ``DEBUG``. ``WebhookReceiver``, an Alertmanager webhook target
(``POST /pager``, ``POST /ticket``), hands it the notifications.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)
# The receiver's HTTP access log: apart, so that the pager's DEBUG lines stay its own.
http_logger = logging.getLogger("exporter.demo.webhook")

Notification = dict[str, Any]
KINDS = {"pager": "PAGE", "ticket": "TICKET"}


def _kind(receiver: str) -> str:
    return KINDS.get(receiver, receiver.upper() or "WEBHOOK")


def describe_alert(alert: dict[str, Any]) -> str:
    """``GovernanceCreditRunwayLow [critical] account=… - summary``."""
    labels = dict(alert.get("labels", {}))
    name = labels.pop("alertname", "?")
    severity = labels.pop("severity", "?")
    where = " ".join(f"{k}={v}" for k, v in sorted(labels.items()))
    summary = alert.get("annotations", {}).get("summary", "")
    return f"{name} [{severity}] {where} - {summary}"


def describe_notification(receiver: str, payload: Notification) -> list[str]:
    """One line per alert: ``PAGE firing GovernanceCreditRunwayLow [critical] account=…``."""
    kind = _kind(receiver)
    return [
        f"{kind} {alert.get('status', '?')} {describe_alert(alert)}"
        for alert in payload.get("alerts", [])
    ]


def alert_identity(alert: dict[str, Any]) -> str:
    """Alertmanager's fingerprint of the alert (a hash of its labels), else its labels."""
    fingerprint = alert.get("fingerprint")
    if fingerprint:
        return str(fingerprint)
    return ",".join(f"{k}={v}" for k, v in sorted(dict(alert.get("labels", {})).items()))


class NotificationLog:
    """A webhook callback that logs each alert's firing and resolution once (see the
    module doc). Alertmanager may post concurrently: the memory is under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logged: dict[tuple[str, str], str] = {}  # (receiver, alert) -> status

    def __call__(self, receiver: str, payload: Notification) -> None:
        kind = _kind(receiver)
        for alert in payload.get("alerts", []):
            status = str(alert.get("status", "?"))
            key = (receiver, alert_identity(alert))
            with self._lock:
                before = self._logged.get(key)
                self._logged[key] = status
            if before != status:
                logger.warning("%s %s %s", kind, status, describe_alert(alert))
            elif status == "firing":
                logger.info("%s still firing (re-sent) %s", kind, describe_alert(alert))
            else:
                logger.debug("%s still %s (re-sent) %s", kind, status, describe_alert(alert))


# --- Alertmanager's webhook -----------------------------------------------------------

NotificationHandler = Callable[[str, Notification], None]


def _handler_class(on_notification: NotificationHandler) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                payload = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._answer(HTTPStatus.BAD_REQUEST, b"not JSON\n")
                return
            on_notification(self.path.strip("/"), payload)
            self._answer(HTTPStatus.OK, b"ok\n")

        def do_GET(self) -> None:
            self._answer(HTTPStatus.OK, b"ok\n")

        def _answer(self, status: HTTPStatus, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            http_logger.debug("webhook: %s", format % args)

    return Handler


class WebhookReceiver:
    """An Alertmanager webhook target: ``POST /<receiver>`` calls ``on_notification``."""

    def __init__(self, host: str, port: int, on_notification: NotificationHandler) -> None:
        self._server = ThreadingHTTPServer((host, port), _handler_class(on_notification))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"

    def url_for(self, receiver: str) -> str:
        return f"{self.url}/{receiver}"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

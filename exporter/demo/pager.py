"""The demo's pager: each alert Alertmanager notifies logged once as it fires and as it resolves.

Alertmanager sends a group's alerts again whenever the group's notification goes out
(a new alert joins it: ``group_interval``; nothing changed for ``repeat_interval``),
so one alert arrives many times. ``NotificationLog`` remembers, per receiver, the
status it last logged for each alert (by its fingerprint, else its labels): a new
firing or a resolution is a ``WARNING`` line (``PAGE firing …``, ``PAGE resolved …``),
a re-sent firing says so (``PAGE still firing (re-sent) …``, ``INFO``), a re-sent
resolution is logged at ``DEBUG``. ``exporter.demo.driver.WebhookReceiver`` hands it
the notifications.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

logger = logging.getLogger(__name__)

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

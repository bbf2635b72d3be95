"""The ``rules`` command: print the alert and recording rules, for Prometheus or Grafana."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from exporter.rules.source import (
    DEFAULT_SELECTOR,
    FLEET,
    NODE,
    SelectorError,
    invocation,
    parse_selector,
    render,
)
from exporter.startup import UsageError

FORMATS = ("prometheus", "grafana")
DEFAULT_DATASOURCE_UID = "grafanacloud-prom"  # Grafana Cloud's hosted Prometheus (Mimir)
DEFAULT_FOLDER_UID = "governance"
_UID = re.compile(r"[A-Za-z0-9_-]{1,40}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--selector",
        default=DEFAULT_SELECTOR,
        metavar="MATCHERS",
        help="PromQL label matchers that pick the exporter's series (default: %(default)s; "
        'Grafana Alloy: job="prometheus.scrape.<component label>")',
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="prometheus",
        help="a Prometheus rule file, or Grafana-managed alerting provisioning YAML "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--fleet",
        action="store_true",
        help="the fleet-wide objective (governance-slo.rules.yml) instead of the node's rules",
    )
    parser.add_argument(
        "--datasource-uid",
        default=DEFAULT_DATASOURCE_UID,
        metavar="UID",
        help="grafana form: the Prometheus data source the alerts query (default: %(default)s)",
    )
    parser.add_argument(
        "--folder-uid",
        default=DEFAULT_FOLDER_UID,
        metavar="UID",
        help="grafana form: the folder of the rule groups (default: %(default)s)",
    )


def _uid(option: str, value: str) -> str:
    if not _UID.fullmatch(value):
        raise UsageError(f"{option} {value!r}: a Grafana uid is 1-40 letters, digits, - or _")
    return value


def _grafana(prometheus_form: str, args: argparse.Namespace, command: str) -> str:
    # Imported here: the Prometheus form needs neither the SDK nor its import time.
    from exporter.rules import grafana  # noqa: PLC0415

    return grafana.render(
        prometheus_form,
        datasource_uid=_uid("--datasource-uid", args.datasource_uid),
        folder_uid=_uid("--folder-uid", args.folder_uid),
        command=f"{command} --format grafana",
    )


def run(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    del overrides  # the rules need no exporter option
    try:
        selector = parse_selector(args.selector)
    except SelectorError as exc:
        raise UsageError(str(exc)) from exc
    name = FLEET if args.fleet else NODE
    text = render(name, selector)
    if args.format == "grafana":
        text = _grafana(text, args, invocation(name, selector))
    sys.stdout.write(text)
    return 0

"""The governance dashboard, as code: writes the generated files, or checks them.

Run ``python grafana/dashboard.py`` to regenerate the committed files and
``python grafana/dashboard.py --check`` to fail (exit 1) when one is not what the
generator makes. The generator itself is the package ``grafana/dashgen/`` (its
docstring lists its modules and says how to add a row); this script is its command
line and the one module the tests, the preview and the docs import.

The fleet's two labels are the operator's (``Fleet``): one file per labelling, each a
``Variant``. ``grafana/dashboards/governance.json`` is the bundled stack's (``cluster``,
``node``); ``deploy/grafana/governance-cogni.json`` is Cogni's (``env``, ``node_id``, as
their Alloy labels series, with no recording rules), ready for a Git Sync folder. Other
labels: ``--cluster-label``, ``--node-label`` and ``--output``; a data source without the
recording rules' series (Grafana-managed alerting): ``--no-recording-rules``.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script from a checkout, not installed: the generator's package (grafana/)
# and the exporter (the checkout) must both import.
for _path in (ROOT, HERE):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from dashgen.labels import Fleet  # noqa: E402
from dashgen.layout import ROWS, build, render  # noqa: E402
from dashgen.reading import panels, runway_thresholds, substitute, targets  # noqa: E402
from dashgen.rows.fleet import HEALTH_LEVELS  # noqa: E402
from dashgen.variants import (  # noqa: E402
    COGNI,
    DASHBOARD_UID,
    DATASOURCE_UID,
    DEFAULT,
    OUTPUT,
    VARIANTS,
    Variant,
)

# What the tests and grafana/preview.py read from this module.
__all__ = [
    "COGNI",
    "DASHBOARD_UID",
    "DEFAULT",
    "HEALTH_LEVELS",
    "OUTPUT",
    "ROWS",
    "VARIANTS",
    "Fleet",
    "Variant",
    "build",
    "main",
    "panels",
    "render",
    "runway_thresholds",
    "substitute",
    "targets",
]


def _check(variant: Variant) -> bool:
    """Whether the file on disk is what this module generates; prints a diff if not."""
    generated, output = render(variant), variant.output
    committed = output.read_text(encoding="utf-8") if output.exists() else ""
    if committed == generated:
        print(f"{output}: up to date")
        return True
    diff = difflib.unified_diff(
        committed.splitlines(keepends=True),
        generated.splitlines(keepends=True),
        fromfile=f"{output} (committed)",
        tofile="generated",
        n=1,
    )
    sys.stdout.writelines(list(diff)[:60])
    print(f"\n{output} is stale: run `python grafana/dashboard.py`", file=sys.stderr)
    return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Without --output: every committed file (the bundled stack's cluster/node "
        f"dashboard and Cogni's env/node_id one, {COGNI.output.relative_to(ROOT)}).",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if the committed JSON differs from the generated one (writes nothing)",
    )
    parser.add_argument("--output", type=Path, help="write (or --check) this one file")
    parser.add_argument(
        "--cluster-label",
        default=DEFAULT.fleet.cluster,
        help="label that groups nodes (Cogni: env); also the variable's name "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--node-label",
        default=DEFAULT.fleet.node,
        help="label that names one node (Cogni: node_id); also the variable's name "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--datasource-uid",
        default=DATASOURCE_UID,
        help="uid of the Prometheus data source the dashboard opens on (Grafana Cloud: "
        "grafanacloud-prom; default: %(default)s)",
    )
    parser.add_argument("--uid", default="", help="dashboard uid (default: from the labels)")
    parser.add_argument(
        "--no-recording-rules",
        dest="recorded",
        action="store_false",
        help="the data source holds no governance:* series (Grafana-managed alerting, "
        "which inlines the recording rules; Cogni): compute them in the queries",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.output is None:
        custom = (args.cluster_label, args.node_label, args.datasource_uid, args.uid, args.recorded)
        if custom != (DEFAULT.fleet.cluster, DEFAULT.fleet.node, DATASOURCE_UID, "", True):
            parser.error(
                "--cluster-label, --node-label, --datasource-uid, --uid and "
                "--no-recording-rules need --output"
            )
        variants: tuple[Variant, ...] = VARIANTS
    else:
        try:
            fleet = Fleet(args.cluster_label, args.node_label, recorded=args.recorded)
            variants = (Variant(fleet, args.output, args.datasource_uid, args.uid),)
        except ValueError as exc:
            parser.error(str(exc))
    if args.check:
        fresh = [_check(variant) for variant in variants]
        return 0 if all(fresh) else 1
    for variant in variants:
        variant.output.parent.mkdir(parents=True, exist_ok=True)
        variant.output.write_text(render(variant), encoding="utf-8")
        print(f"wrote {variant.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

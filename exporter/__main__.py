import sys

try:  # a Ctrl-C while the command line itself loads: exit 130 too, no traceback
    from exporter.cli import main
except KeyboardInterrupt:
    exec("")  # noqa: S102 - clears CPython's unhandled-interrupt mark, see exporter.cli
    sys.exit(130)

sys.exit(main())

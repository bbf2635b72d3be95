"""The fast lane: pure tests of the model, the policy, the families and the parsers.

Nothing here starts PostgreSQL or a subprocess, so this directory runs on its own,
without ``tests/conftest.py``: ``python -m pytest tests/unit --confcutdir=tests/unit -q``.
Only pytest, hypothesis and the runtime dependencies are imported. The snapshots,
views and families the tests need are built by ``unit_builders``.
"""

from hypothesis import settings

# No per-example deadline: these examples take microseconds, and a deadline only
# measures how busy the machine is (2 shared cores in CI), which made a test flaky.
settings.register_profile("unit", deadline=None)
settings.load_profile("unit")

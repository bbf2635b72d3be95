"""The fast lane: pure tests of the model, the policy, the families and the parsers.

Nothing here starts PostgreSQL or a subprocess, so this directory runs on its own,
without ``tests/conftest.py``: ``python -m pytest tests/unit --confcutdir=tests/unit -q``.
Only pytest, hypothesis and the runtime dependencies are imported. The snapshots,
views and families the tests need are built by ``unit_builders``.
"""

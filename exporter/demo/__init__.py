"""The demo: a throwaway Cogni node, its activity, and the stack that watches it.

Nothing here is imported by ``serve`` or ``check``: ``command`` is the ``demo``
sub-command, ``stack`` runs Prometheus and Alertmanager with the repository's
files, ``node`` says what the demo node does and when (its crons, its
repo-spec), ``driver`` writes the node's activity, ``localpg`` runs a throwaway
PostgreSQL and ``scenario`` writes Cogni data for the demo, the tests and the
benchmarks.
"""

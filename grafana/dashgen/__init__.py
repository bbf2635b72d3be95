"""The governance dashboard's generator, one module per job (``grafana/dashboard.py`` runs it).

Built with grafana-foundation-sdk, Grafana's own generated builders (typed, released
with Grafana's schema), so the JSON has the shape Grafana expects rather than the shape
someone remembered. The runway thresholds come from ``exporter.policy``:
the exporter, the alert rules and this dashboard share one definition
(``tests/test_thresholds.py`` keeps them equal).

Modules:

- ``labels``: ``Fleet``, the operator's two node labels, and the selectors made of them.
- ``recorded``: a recording rule's series, read recorded or, where nothing records the
  rules (``Fleet.recorded`` false: Grafana-managed alerting), computed in the query.
- ``widgets``: colours, threshold steps and the small builders every panel is made of
  (``new_stat``, ``new_table``, ``query``, ``steps``, ``prop``, ``organize``...).
- ``rows/``: one module per row of the dashboard, top to bottom ``fleet``, ``credit``,
  ``spend``, ``charters``, ``failures``, ``unscheduled``, ``ledger``, ``memory``,
  ``trends``, ``exporter_health``. In each, one function per panel, placed by keyword (``x``,
  ``y``, ``w``, ``h`` in Grafana's 24-column grid), and one ``<name>_row(*, y, fleet)``
  composing its panels left to right from the row's top ``y``.
- ``variables``: the template variables (data source, the fleet's labels, account,
  charter).
- ``layout``: ``ROWS``, the rows in order and their titles; ``build()`` stacks them and
  numbers the panels; ``render()`` is the file's text.
- ``variants``: the generated files (``DEFAULT``, ``COGNI``), each a ``Variant``.
- ``reading``: reading the generated JSON back (``panels``, ``targets``,
  ``substitute``, ``runway_thresholds``), for the tests and the preview.

Adding a row: write ``rows/<name>.py`` after the pattern of the others (a docstring
whose first line names the row; panel functions taking ``x, y, w, h, fleet``, every
selector through ``fleet``; a ``<name>_row(*, y, fleet) -> list[Panel]``), add
``(title, <name>_row)`` to ``ROWS`` in ``layout.py`` where it belongs on the page, then
run ``python grafana/dashboard.py`` to regenerate both committed files. Every metric a
panel reads must be in ``tests/test_dashboard.py``'s ``CONTRACT`` (and
``docs/metrics.md``); ``grafana/README.md`` lists the rows.

Imported through ``grafana/dashboard.py``, which puts ``grafana/`` and the checkout on
``sys.path`` (so that ``exporter`` imports without an install).
"""

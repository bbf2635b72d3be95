"""The alert and recording rules: one packaged source, printed for Prometheus or Grafana."""

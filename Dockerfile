# syntax=docker/dockerfile:1
# governance-exporter: a slim image that runs as an unprivileged user.
#
#   docker build -t governance-exporter .
#   docker run -e GOVERNANCE_EXPORTER_DATABASE_URL_FILE=/run/secrets/db_url ... governance-exporter
#
# The same image runs the compose demo's activity writer
# (`python -m exporter.demo.driver`, see docker-compose.yml).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
# `pip install .`, no extra: the runtime dependencies only (test and lint tools
# are in the `[dev]` extra and never enter the image).
RUN python -m venv /opt/governance-exporter \
 && /opt/governance-exporter/bin/pip install . \
 && /opt/governance-exporter/bin/python -OO -m compileall -q -j 0 /opt/governance-exporter \
 && /opt/governance-exporter/bin/governance-exporter --version

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="governance-exporter" \
      org.opencontainers.image.description="Prometheus exporter for the governance health of a Cogni node" \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --system --gid 10215 exporter \
 && useradd --system --uid 10215 --gid exporter --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin exporter
COPY --from=build /opt/governance-exporter /opt/governance-exporter
ENV PATH=/opt/governance-exporter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONOPTIMIZE=2 \
    GOVERNANCE_EXPORTER_LISTEN_ADDRESS=:10215
# PYTHONOPTIMIZE=2 (-OO): no docstrings in memory, 1.7 MiB less resident for
# `serve` (bench/rss.py). Nothing here reads a docstring: --help, /metrics, the
# status page and `check` are the same; the only asserts it drops are libraries'.
# The python image ships its standard library without bytecode, and the exporter
# can neither write it (another user, PYTHONDONTWRITEBYTECODE) nor keep it: every
# start compiled the ~250 modules it imports from source, which leaves 3.5 MiB
# more resident for the life of `serve` and slows the start. Compiled once here
# instead, at the level PYTHONOPTIMIZE asks for (the venv: in the build stage).
RUN python -OO -m compileall -q -j 0 -x '/(test|tests|idle_test)/' \
      "$(python -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')"
USER 10215:10215
EXPOSE 10215
# Liveness of the HTTP server (database health is a metric, not a reason to restart).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('GOVERNANCE_EXPORTER_LISTEN_ADDRESS', ':10215').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]
ENTRYPOINT ["governance-exporter"]
CMD ["serve"]

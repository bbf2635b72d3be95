"""Measure ``governance-exporter serve``'s memory after many scrapes, and what it imported.

    .venv/bin/python bench/rss.py --scrapes 1000

Starts a throwaway PostgreSQL as the tests do (``tests/harness.py``), loads a
healthy governance node, starts the real ``governance-exporter serve`` process on
127.0.0.1 and scrapes ``/metrics`` ``--scrapes`` times, then prints:

- ``VmRSS`` / ``VmHWM`` of the process from ``/proc/<pid>/status``;
- every module the process imported by then (a second run of the same command
  under ``python -X importtime``, fewer scrapes: a lazy import shows at first use),
  grouped by top-level package with its own import time;
- the resident memory each of those packages adds: a fresh interpreter imports
  them one by one in the process's order and reads ``VmRSS`` after each (shared
  dependencies count for the first package that pulls them in);
- with ``--smaps N``, the N mappings of ``/proc/<pid>/smaps`` holding the most
  resident memory (each shared library, ``[heap]``, the anonymous mappings):
  which library's pages, or which allocator's, the ``RssFile`` and ``RssAnon``
  are. ``--no-imports`` skips the import runs when only the figures are wanted.

The exporter's bytecode is written first (see ``compile_exporter``), so the
process loads it as an installed exporter does. ``--env NAME=VALUE`` runs it with
e.g. ``PSYCOPG_IMPL=c`` or ``PYTHONOPTIMIZE=2``.

It is a script, not a test: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from harness import (  # noqa: E402
    create_database,
    drop_database,
    postgres_server,
    stop_process,
    wait_for_http,
)

from exporter.demo import scenario  # noqa: E402
from exporter.demo.localpg import free_port  # noqa: E402
from exporter.snapshot import SCHEMA_2026_03  # noqa: E402

IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)$")


@dataclass
class Serve:
    process: subprocess.Popen[bytes]
    port: int
    log: Path


def serve_command(importtime: bool) -> list[str]:
    """The installed console script, run by this interpreter (so ``-X`` applies)."""
    script = Path(sys.executable).with_name("governance-exporter")
    head = [sys.executable, *(["-X", "importtime"] if importtime else [])]
    if script.exists():
        return [*head, str(script), "serve"]
    return [*head, "-m", "exporter", "serve"]


@contextlib.contextmanager
def run_serve(
    command: list[str],
    monitor_url: str,
    cache_seconds: str,
    extra_env: dict[str, str],
    start_seconds: float = 20,
) -> Iterator[Serve]:
    port = free_port()
    log_dir = Path(tempfile.mkdtemp(prefix="govexp-rss-"))
    log = log_dir / "serve.log"
    env = {
        **os.environ,
        "GOVERNANCE_EXPORTER_DATABASE_URL": monitor_url,
        "GOVERNANCE_EXPORTER_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "GOVERNANCE_EXPORTER_CACHE_SECONDS": cache_seconds,
        **extra_env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process, log, start_seconds)
        yield Serve(process, port, log)
    finally:
        stop_process(process)
        shutil.rmtree(log_dir, ignore_errors=True)


def scrape(port: int, times: int, headers: dict[str, str]) -> int:
    """``times`` scrapes, one connection each (the server closes after one request)."""
    size = 0
    for _ in range(times):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        conn.request("GET", "/metrics", headers=headers)
        response = conn.getresponse()
        body = response.read()
        conn.close()
        if response.status != 200:
            raise RuntimeError(f"/metrics answered {response.status}")
        size = len(body)
    return size


def status_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
            fields[key] = int(value.split()[0])
    return fields


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used (``/proc/<pid>/stat``'s utime and stime)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def smaps_rows(pid: int) -> dict[str, dict[str, int]]:
    """mapping (file path, or [heap] / [stack] / [anon]) → Rss, Anonymous KiB summed over
    its segments: which shared library or allocation arena holds the resident pages."""
    rows: dict[str, dict[str, int]] = {}
    name = "[anon]"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if re.fullmatch(r"[0-9a-f]+-[0-9a-f]+", head[0]):
            name = head[5].strip() if len(head) > 5 else "[anon]"
            name = "[stack]" if name.startswith("[stack") else name
            rows.setdefault(name, {"Rss": 0, "Anonymous": 0, "segments": 0})
            rows[name]["segments"] += 1
        elif head[0] in ("Rss:", "Anonymous:"):
            rows[name][head[0].rstrip(":")] += int(head[1])
    return rows


def print_smaps(rows: dict[str, dict[str, int]], top: int) -> None:
    print(f"\nsmaps after the scrapes, the {top} largest mappings by Rss (KiB):")
    print(f"{'mapping':<64} {'Rss':>7} {'Anon':>7} {'segs':>5}")
    ordered = sorted(rows.items(), key=lambda row: -row[1]["Rss"])
    for name, row in ordered[:top]:
        shown = name if len(name) <= 64 else "..." + name[-61:]
        print(f"{shown:<64} {row['Rss']:>7} {row['Anonymous']:>7} {row['segments']:>5}")
    rest = ordered[top:]
    others = f"(the other {len(rest)} mappings)"
    print(f"{others:<64} {sum(r['Rss'] for _, r in rest):>7}")


def imported_modules(log_text: str) -> list[tuple[str, int]]:
    """(module, own import µs) in import order, from ``-X importtime`` output."""
    found = []
    for line in log_text.splitlines():
        match = IMPORT_LINE.match(line)
        if match:
            found.append((match.group(4), int(match.group(1))))
    return found


def by_package(modules: list[tuple[str, int]]) -> dict[str, tuple[int, int]]:
    """package (exporter's modules one by one) → (modules, own import µs)."""
    packages: dict[str, tuple[int, int]] = {}
    for name, micros in modules:
        top = name if name.startswith("exporter.") else name.split(".")[0]
        count, total = packages.get(top, (0, 0))
        packages[top] = (count + 1, total + micros)
    return packages


RSS_BY_IMPORT = """
import importlib, json, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
out = {"(interpreter)": rss()}
for name in json.loads(sys.argv[1]):
    top = name if name.startswith("exporter.") else name.split(".")[0]
    before = rss()
    try:
        importlib.import_module(name)
    except Exception:
        continue
    out[top] = out.get(top, 0) + rss() - before
print(json.dumps(out))
"""


def rss_by_package(modules: list[str], extra_env: dict[str, str]) -> dict[str, int]:
    """top-level package → KiB its modules added, imported one by one in ``modules``' order
    (with the exporter's ``--env``: e.g. ``PSYCOPG_IMPL`` decides what psycopg loads)."""
    result = subprocess.run(
        [sys.executable, "-c", RSS_BY_IMPORT, json.dumps(modules)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={**os.environ, **extra_env},
    )
    return {name: int(kib) for name, kib in json.loads(result.stdout).items()}


def grouped(names: dict[str, int]) -> dict[str, int]:
    """The standard library's modules summed into one row, the others as they are."""
    rows: dict[str, int] = {}
    for name, value in names.items():
        key = "(standard library)" if name in sys.stdlib_module_names else name
        rows[key] = rows.get(key, 0) + value
    return dict(sorted(rows.items(), key=lambda row: -row[1]))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=1000)
    parser.add_argument("--cache-seconds", default="0", help="the exporter's (default 0)")
    parser.add_argument("--accept", default="", help="Accept header of the scrapes (default: none)")
    parser.add_argument("--gzip", action="store_true", help="send Accept-Encoding: gzip")
    parser.add_argument(
        "--import-scrapes", type=int, default=20, help="scrapes of the -X importtime run"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment of the exporter, e.g. MALLOC_ARENA_MAX=2 (repeatable)",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="a third run under tracemalloc: Python allocations live after the scrapes, by package",
    )
    parser.add_argument(
        "--trace-scrapes",
        type=int,
        default=100,
        help="scrapes of the tracemalloc run (slow: about 0.5 s each on 2 cores)",
    )
    parser.add_argument(
        "--smaps", type=int, default=0, metavar="N", help="print the N largest mappings (smaps)"
    )
    parser.add_argument(
        "--no-imports", action="store_true", help="skip the -X importtime run and its table"
    )
    return parser.parse_args()


def compile_exporter() -> None:
    """Write the exporter's bytecode, as ``pip install .`` does for an installed copy.

    With ``PYTHONDONTWRITEBYTECODE`` set and no ``__pycache__`` in the work tree,
    every run would compile the exporter's modules from source, which leaves about
    1 MiB more resident than loading their bytecode: not what an installed exporter
    does. All three optimization levels, for an ``--env PYTHONOPTIMIZE=...`` run.
    """
    compileall.compile_dir(REPO / "exporter", quiet=1, optimize=[0, 1, 2])


def main() -> int:
    args = parse_args()
    compile_exporter()
    extra_env = dict(item.split("=", 1) for item in args.env)
    headers = {"Accept": args.accept} if args.accept else {}
    if args.gzip:
        headers["Accept-Encoding"] = "gzip"

    with postgres_server() as admin_url:
        database = create_database(admin_url, SCHEMA_2026_03)
        try:
            with database.connect() as conn:
                scenario.seed_governance(conn, SCHEMA_2026_03, datetime.now(UTC))
            common = (database.monitor_url, args.cache_seconds, extra_env)
            with run_serve(serve_command(False), *common) as serve:
                at_start = status_kib(serve.process.pid)
                cpu_before = cpu_seconds(serve.process.pid)
                size = scrape(serve.port, args.scrapes, headers)
                cpu = cpu_seconds(serve.process.pid) - cpu_before
                after = status_kib(serve.process.pid)
                mappings = smaps_rows(serve.process.pid)
            modules: list[tuple[str, int]] = []
            if not args.no_imports:
                with run_serve(serve_command(True), *common) as serve:
                    scrape(serve.port, args.import_scrapes, headers)
                    modules = imported_modules(serve.log.read_text(errors="replace"))
            traced = traced_serve(common, args.trace_scrapes, headers) if args.tracemalloc else None
        finally:
            drop_database(database)

    print("command:", " ".join([*args.env, *serve_command(False)]))
    print(f"cache_seconds={args.cache_seconds}")
    print(f"scrape headers: {headers or '(none)'}; body {size} bytes")
    print(f"after start-up: {fmt_status(at_start)}")
    print(f"after {args.scrapes} scrapes: {fmt_status(after)}")
    per_scrape = cpu / args.scrapes * 1000
    print(f"CPU of the process over the scrapes: {cpu:.2f} s ({per_scrape:.2f} ms a scrape)")
    if args.smaps:
        print_smaps(mappings, args.smaps)
    if not args.no_imports:
        print_imports(modules, args.import_scrapes, after["VmRSS"], extra_env)
    if traced is not None:
        print_traced(traced)
    if modules:
        print("\nmodules:", " ".join(name for name, _ in modules))
    return 0


def print_imports(
    modules: list[tuple[str, int]], scrapes: int, vmrss: int, extra_env: dict[str, str]
) -> None:
    packages = by_package(modules)
    print(f"\n{len(modules)} modules imported after {scrapes} scrapes:")
    print(f"{'package':<28} {'modules':>7} {'import ms':>9} {'RSS KiB':>8}")
    counts = grouped({top: count for top, (count, _) in packages.items()})
    millis = grouped({top: micros for top, (_, micros) in packages.items()})
    kib = grouped(rss_by_package([name for name, _ in modules], extra_env))
    for top, value in kib.items():
        print(f"{top:<28} {counts.get(top, 0):>7} {millis.get(top, 0) / 1000:>9.1f} {value:>8}")
    rest = vmrss - sum(kib.values())
    print(f"{'(rest: the running process)':<28} {'':>7} {'':>9} {rest:>8}")


TRACED_SERVE = """
import json, os, signal, sys, threading, time, tracemalloc
tracemalloc.start(40)
trigger, out, repo = sys.argv[1], sys.argv[2], sys.argv[3]
def package_of(filename, cache={}):
    if filename not in cache:
        parts = filename.split("/")
        if "site-packages" in parts:
            key = parts[parts.index("site-packages") + 1].removesuffix(".py")
        elif filename.startswith(repo + "/exporter/"):
            key = "exporter." + parts[-1].removesuffix(".py")
        elif filename.startswith("<"):
            key = None
        else:
            key = "(standard library)"
        cache[filename] = key
    return cache[filename]
def dump():
    while not os.path.exists(trigger):
        time.sleep(0.05)
    snapshot = tracemalloc.take_snapshot()
    packages = {}
    for trace in snapshot.traces:
        for key in {package_of(frame.filename) for frame in trace.traceback} - {None}:
            packages[key] = packages.get(key, 0) + trace.size
    with open(out, "w") as f:
        json.dump({"packages": packages, "traced": tracemalloc.get_traced_memory()[0]}, f)
    os.kill(os.getpid(), signal.SIGTERM)
threading.Thread(target=dump, daemon=True).start()
from exporter.cli import main
sys.exit(main(["serve"]))
"""


def traced_serve(
    common: tuple[str, str, dict[str, str]], scrapes: int, headers: dict[str, str]
) -> dict[str, object]:
    """serve under tracemalloc (from before its first import), dumped after the scrapes."""
    work = Path(tempfile.mkdtemp(prefix="govexp-trace-"))
    trigger, out = work / "dump", work / "out.json"
    command = [sys.executable, "-c", TRACED_SERVE, str(trigger), str(out), str(REPO)]
    try:
        with run_serve(command, *common, start_seconds=300) as serve:
            scrape(serve.port, scrapes, headers)
            trigger.touch()
            serve.process.wait(600)
        loaded: dict[str, object] = json.loads(out.read_text())
        return loaded
    finally:
        shutil.rmtree(work, ignore_errors=True)


def print_traced(traced: dict[str, object]) -> None:
    """Cumulative: a block counts for every package with a frame on its allocation's stack
    (so an import counts for its importers too, as ``-X importtime``'s cumulative column)."""
    packages = traced["packages"]
    assert isinstance(packages, dict)
    total = traced["traced"]
    assert isinstance(total, int)
    print(f"\ntracemalloc after the scrapes: {total / 2**20:.1f} MiB of Python allocations live,")
    print("by package with a frame on the allocation's stack (cumulative, KiB):")
    for key, size in sorted(packages.items(), key=lambda row: -row[1])[:30]:
        print(f"{key:<40} {size // 1024:>8}")


def fmt_status(fields: dict[str, int]) -> str:
    return ", ".join(
        f"{key} {value}" if key == "Threads" else f"{key} {value / 1024:.1f} MiB"
        for key, value in fields.items()
    )


if __name__ == "__main__":
    raise SystemExit(main())

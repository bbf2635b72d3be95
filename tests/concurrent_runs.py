"""Commands run beside the tests and awaited by them (promtool's rule unit tests).

``promtool test rules`` is CPU-bound and runs on one core, and the two forms of the
rules take minutes of it, while most of the suite waits on servers (alerts' scaled
``for:``, back-offs, a demo's story) with the cores idle. So a test module may
declare its commands (a module function ``background_runs(workdir, items)``
returning them by name): once the session's tests are collected, conftest starts
them, one per core, at the lowest CPU priority (``nice -n 19``: they take only what
the other tests leave), and the module's tests await and assert their results.
Each run is its own process on its own files; only the time it runs changes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

Command = tuple[list[str], Path]  # argv, working directory
Result = subprocess.CompletedProcess[str]
Planner = Callable[[Path, list[object]], Mapping[str, Command]]
TIMEOUT_SECONDS = 300  # per run, from its start


class _Processes:
    """The runs' processes, so that the session's end can stop those still running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[str]] = set()
        self.stopping = False

    def run(self, argv: list[str], cwd: Path) -> Result:
        with self._lock:
            if self.stopping:
                raise RuntimeError("the session ended before this run started")
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            self._running.add(process)
        try:
            stdout, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            stderr += f"\n(killed after {TIMEOUT_SECONDS} s)"
        finally:
            with self._lock:
                self._running.discard(process)
        return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)

    def stop(self) -> None:
        with self._lock:
            self.stopping = True
            for process in self._running:
                process.kill()


class Background:
    """The session's background runs, by module and name."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
        self._processes = _Processes()
        self._workdir = Path(tempfile.mkdtemp(prefix="background-runs-"))
        self._runs: dict[str, dict[str, Future[Result]]] = {}
        self._failures: dict[str, BaseException] = {}

    def start(self, module: str, planner: Planner, items: list[object]) -> None:
        """Plans ``module``'s commands in a directory of its own and queues them."""
        workdir = self._workdir / module
        workdir.mkdir()
        try:
            commands = planner(workdir, items)
        except Exception as error:  # reported by the module's tests, not the session
            self._failures[module] = error
            return
        nice = shutil.which("nice")
        self._runs[module] = {
            name: self._pool.submit(
                self._processes.run, [nice, "-n", "19", *argv] if nice else argv, cwd
            )
            for name, (argv, cwd) in commands.items()
        }

    def results(self, module: str) -> dict[str, Future[Result]]:
        """``module``'s runs by name (raises what planning them raised)."""
        if module in self._failures:
            raise self._failures[module]
        return self._runs[module]

    def close(self) -> None:
        self._processes.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self._workdir, ignore_errors=True)

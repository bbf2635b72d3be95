"""Commands started together and awaited one by one (promtool's rule unit tests).

``promtool test rules`` is CPU-bound and runs on one core: one file after another,
a two-core machine idles half the time. Started all at once, the files of a module
finish in about the time of their sum divided by the cores (or of the longest one),
and each test still asserts its own file's result. Nothing is shared between the
runs but the machine: each is its own process, on its own files.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

Command = tuple[list[str], Path]  # argv, working directory


def _run(argv: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


@contextmanager
def started(
    commands: Mapping[str, Command], timeout: float = 300
) -> Iterator[dict[str, Future[subprocess.CompletedProcess[str]]]]:
    """Each command running at once, by name; leaving waits for every one of them."""
    with ThreadPoolExecutor(max_workers=max(1, len(commands))) as pool:
        yield {
            name: pool.submit(_run, argv, cwd, timeout) for name, (argv, cwd) in commands.items()
        }


def run_all(
    commands: Iterable[tuple[str, Command]], timeout: float = 300
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Each command run at once; their results by name, once all have finished."""
    with started(dict(commands), timeout) as futures:
        return {name: future.result() for name, future in futures.items()}

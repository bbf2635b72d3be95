"""A throwaway PostgreSQL from local binaries, and the child-process handling it needs.

``throwaway_postgres()`` runs ``initdb`` into a temporary directory, starts
``postgres`` on a free loopback port and yields a ``LocalPostgres`` with a
superuser URL; on exit it stops the server and removes the directory. When we
run as root the server runs as the ``postgres`` user, since initdb refuses root.

Every server is a direct child (no ``pg_ctl`` daemon) started by ``spawn()``:
in its own session, so a Ctrl-C in the terminal reaches only us and we stop
the children in order; and, on Linux, with a parent-death signal, so that even
a ``kill -9`` of ``governance-exporter demo`` leaves no server behind. ``initdb``
runs the same way.
``governance-exporter demo`` uses this module, and so can the tests.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

logger = logging.getLogger(__name__)

POSTGRES_USER = "postgres"
_PR_SET_PDEATHSIG = 1


class PostgresNotFound(RuntimeError):
    """No PostgreSQL server binaries (initdb, postgres) on this machine."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (another process may still take it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# --- child processes ------------------------------------------------------------------


def _parent_death_signal(signum: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to send ``signum`` to the child when we die."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl

    def set_signal() -> None:
        # Runs after the change of user, which would otherwise clear the setting.
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)

    return set_signal


@dataclass
class ChildProcess:
    """A server we started, with its output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: int = signal.SIGTERM

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15, signum: int | None = None) -> None:
        """Ask it to stop (``signum``, else its stop signal), wait, then kill it;
        safe to call twice."""
        if self.running():
            self.process.send_signal(signum or self.stop_signal)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %.0f s; killing it", self.name, timeout)
                self.process.kill()
                self.process.wait()
        logger.debug("%s stopped (exit %s)", self.name, self.process.returncode)


def spawn(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    user: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stop_signal: int = signal.SIGTERM,
) -> ChildProcess:
    """Start ``argv`` in its own session, as ``user`` if given, output to ``log_path``."""
    user_args: dict[str, Any] = {}
    if user is not None:
        user_args = {"user": user, "group": _primary_group(user), "extra_groups": []}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_parent_death_signal(stop_signal),  # noqa: PLW1509 - one prctl call
            **user_args,
        )
    logger.debug("started %s (pid %d): %s", name, process.pid, " ".join(argv))
    return ChildProcess(name, process, log_path, stop_signal)


def _primary_group(user: str) -> int:
    import pwd  # noqa: PLC0415 - POSIX only, needed only when switching users

    return pwd.getpwnam(user).pw_gid


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float = 60,
    child: ChildProcess | None = None,
    interval: float = 0.1,
) -> None:
    """Poll ``ready`` until it is true; fail early with the log if ``child`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and not child.running():
            raise RuntimeError(
                f"{child.name} exited with status {child.process.returncode} while waiting "
                f"for {what}:\n{child.log_tail()}"
            )
        if ready():
            return
        time.sleep(interval)
    tail = f":\n{child.log_tail()}" if child is not None else ""
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}{tail}")


def http_ok(url: str, timeout: float = 2) -> bool:
    """True when ``url`` (http or https) answers 2xx."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - checked
            return 200 <= int(response.status) < 300
    except OSError:
        return False


# --- PostgreSQL -----------------------------------------------------------------------


def find_bindir() -> Path | None:
    """The directory of ``initdb`` and ``postgres``: pg_config's, Debian's newest, or PATH."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major_version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _kill_session(process: subprocess.Popen[str]) -> None:
    """SIGKILL to ``process`` and everything in its session (its process group), then
    reap it: once this returns, nothing of it writes any more."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def _major_version(initdb: str) -> int:
    version = Path(initdb).parent.parent.name
    return int(version) if version.isdigit() else 0


_SHUTDOWN_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}


@dataclass
class LocalPostgres:
    """A cluster in ``root``; ``init()`` once, then ``start()`` and ``stop()`` at will."""

    bindir: Path
    root: Path
    port: int
    os_user: str | None
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    settings: Mapping[str, str] = field(default_factory=dict)  # more `-c name=value`
    server: ChildProcess | None = None

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def url(self, dbname: str = "postgres", user: str = "postgres", password: str = "") -> str:
        return psycopg.conninfo.make_conninfo(
            host="127.0.0.1",
            port=str(self.port),
            dbname=dbname,
            user=user,
            password=password or self.password,
        )

    @property
    def admin_url(self) -> str:
        return self.url()

    def init(self) -> None:
        if self.os_user is not None:
            shutil.chown(self.root, self.os_user, self.os_user)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.os_user is not None:
            shutil.chown(pwfile, self.os_user, self.os_user)
        self._run_tool(
            "initdb",
            f"--pgdata={self.datadir}",
            "--username=postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        pwfile.unlink()

    def _run_tool(self, tool: str, *args: str) -> None:
        """Run ``tool`` to completion, like the servers in its own session: a Ctrl-C in
        the terminal must reach only us (the demo then stops cleanly once it is done),
        not kill it half-way. An exception here (a second Ctrl-C) kills it and every
        process it started: initdb runs the bootstrap ``postgres`` as its child, which
        would go on writing into the state directory while the demo removes it."""
        user_args: dict[str, Any] = {}
        if self.os_user is not None:
            user_args = {"user": self.os_user, "group": _primary_group(self.os_user)}
            user_args["extra_groups"] = []
        process = subprocess.Popen(
            [str(self.bindir / tool), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.root,
            start_new_session=True,
            preexec_fn=_parent_death_signal(signal.SIGTERM),  # noqa: PLW1509 - one prctl call
            **user_args,
        )
        try:
            _, stderr = process.communicate(timeout=180)
        except BaseException:
            _kill_session(process)
            raise
        if process.returncode != 0:
            raise RuntimeError(f"{tool} failed ({process.returncode}): {stderr.strip()}")

    def start(self, timeout: float = 60) -> None:
        """Start the server as our child and wait until it takes connections."""
        if self.server is not None and self.server.running():
            return
        argv = [
            str(self.bindir / "postgres"),
            "-D",
            str(self.datadir),
            "-p",
            str(self.port),
            "-k",
            str(self.root),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "synchronous_commit=off",
        ]
        for name, value in self.settings.items():
            argv += ["-c", f"{name}={value}"]
        # SIGINT is PostgreSQL's "fast shutdown": roll back sessions, then exit.
        self.server = spawn(
            "postgres", argv, self.log_path, user=self.os_user, stop_signal=signal.SIGINT
        )
        wait_until(self.accepts_connections, what="PostgreSQL", timeout=timeout, child=self.server)
        logger.debug("PostgreSQL %s is up on 127.0.0.1:%d", self.bindir, self.port)

    def accepts_connections(self) -> bool:
        try:
            with psycopg.connect(self.admin_url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self, mode: str = "fast") -> None:
        """PostgreSQL's shutdown modes: ``fast`` rolls sessions back; ``immediate``
        exits at once, as a crash would (clients' connections simply break)."""
        if self.server is not None:
            self.server.stop(timeout=30, signum=_SHUTDOWN_SIGNALS[mode])


@contextlib.contextmanager
def throwaway_postgres(
    *,
    bindir: Path | None = None,
    prefix: str = "govexp-pg-",
    parent: Path | None = None,
    settings: Mapping[str, str] | None = None,
) -> Iterator[LocalPostgres]:
    """A started ``LocalPostgres`` in a temporary directory (under ``parent`` if
    given: the ``postgres`` user must be able to traverse it), removed afterwards;
    ``settings`` are extra server settings (``{"max_connections": "200"}``).

    Raises ``PostgresNotFound`` when there are no server binaries.
    """
    bindir = bindir or find_bindir()
    if bindir is None:
        raise PostgresNotFound(
            "no PostgreSQL server binaries found (initdb, postgres): install the server "
            "package, e.g. apt-get install postgresql, or put its bin directory on PATH"
        )
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os_user = POSTGRES_USER if os.geteuid() == 0 else None
    server = LocalPostgres(bindir, root, free_port(), os_user, settings=dict(settings or {}))
    try:
        server.init()
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)

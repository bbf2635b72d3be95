"""A flood of guesses never locks the scraper out, not even its first login on a
freshly started exporter (#24); and the flood stays bounded in CPU, threads and memory.

The real server, a web config with exporter-toolkit's own test users, and 140
guessing clients on loopback for 25 s (longer if the exporter is slow to
start, 90 s at most), during which the exporter is started
three times on the same port (a deploy, an OOM kill, a node drain during an
attack). Each fresh process gets the scraper's first login while the flood
keeps the lane of unknown user names full. Three fresh processes rather than
three logins to one: a login once proven is remembered, so only a fresh
process has a first login to lock out, and a restart under fire is the case
the issue is about.

The guessing clients run in a child process at a lower priority: a real
attacker's clients do not take their CPU from the exporter's machine, and on a
2-core CI runner 140 Python clients at full priority would. That this does not
weaken the flood is checked: the unknown names' lane is seen full (429) just
before each first login.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import pytest
import yaml
from harness import Database, ExporterProcess, run_exporter, samples, stop_process

from exporter.basicauth import UNKNOWN_WORKERS, BasicAuth, _Check, _Lane, client_network
from exporter.demo import scenario
from exporter.demo.localpg import free_port
from exporter.webconfig import Verdict

# exporter-toolkit's web/testdata/web_config_users.good.yml: each password is the
# user name followed by "123"; bob's hash has cost 18 (about 16 s per check).
TOOLKIT_USERS = {
    "alice": "$2y$12$1DpfPeqF9HzHJt.EWswy1exHluGfbhnn3yXhR7Xes6m3WJqFg0Wby",
    "bob": "$2y$18$4VeFDzXIoPHKnKTU3O3GH.N.vZu06CVqczYZ8WvfzrddFU6tGqjR.",
    "carol": "$2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu",
    "dave": "$2y$10$2UXri9cIDdgeKjBo4Rlpx.U3ZLDV8X1IxKmsfOvhcM5oXQt/mLmXq",
}
# The scraper: alice, whose cost-12 hash is the costliest a first login can
# afford to be checked against within the bounded wait.
SCRAPER, SCRAPER_PASSWORD, SCRAPER_ADDRESS = "alice", "alice123", "127.0.0.1"

FLOOD_SECONDS = 25.0  # at least; longer while the rounds last (a slow start-up)
FLOOD_MAX_SECONDS = 90.0  # the clients stop by themselves then, whatever happens
ROUNDS = 3
AFTER_LOGIN_SECONDS = 1.0  # /proc sampled on; the last process lives until the flood ends
FLOOD_NICENESS = 10
FULL_STRENGTH_SECONDS = 2.0  # after the process listens, before the scraper asks
ANSWER_WITHIN_SECONDS = 5.0
WEB_MAX_REQUESTS = 128  # the default request slots, fewer than the 140 clients


@dataclass(frozen=True)
class Guessers:
    """``clients`` threads guessing passwords for ``user`` (``None``: a new
    unknown name each time), spread over ``addresses`` on loopback."""

    kind: str
    clients: int
    addresses: tuple[str, ...]
    user: str | None


# 140 clients: most guess unknown names from 13 addresses (enough networks to
# keep the unknown lane's 2 workers and 4 queue places full), a few guess the
# costly user's password, a few the scraper's own, from other addresses.
GUESSERS = (
    Guessers("unknown", 130, tuple(f"127.0.1.{n}" for n in range(1, 14)), None),
    Guessers("bob", 5, ("127.0.0.3",), "bob"),
    Guessers("alice", 5, ("127.0.0.2",), SCRAPER),
)


@dataclass(frozen=True)
class Guess:
    kind: str
    status: int  # 0: no HTTP answer (refused while the exporter restarts, reset, timeout)
    at: float


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def get(
    port: int, headers: dict[str, str], *, source: str, timeout: float, path: str = "/metrics"
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=(source, 0)
    )
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Flood:
    """The guessing clients: each sends guesses back to back, one connection
    each, and stops by itself at the deadline (or after ``per_client`` guesses)."""

    def __init__(self, port: int, *, deadline: float, per_client: int = 5000) -> None:
        self.port = port
        self.per_client = per_client
        self.deadline = deadline
        self.stop = threading.Event()
        self.guesses: list[Guess] = []
        self._threads = [
            threading.Thread(
                target=self._guess,
                args=(group, group.addresses[number % len(group.addresses)], number),
                daemon=True,
            )
            for group in GUESSERS
            for number in range(group.clients)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> int:
        """Wait for the clients to stop; how many did not."""
        for thread in self._threads:
            thread.join(max(0.0, self.deadline - time.monotonic()) + 10)
        return sum(thread.is_alive() for thread in self._threads)

    def _guess(self, group: Guessers, source: str, number: int) -> None:
        for attempt in range(self.per_client):
            if self.stop.is_set() or time.monotonic() > self.deadline:
                return
            user = group.user or f"guess-{number}-{attempt}"
            status = 0
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _ = get(self.port, basic(user, f"pw-{attempt}"), source=source, timeout=5)
            self.guesses.append(Guess(group.kind, status, time.monotonic()))
            if status == 0:
                time.sleep(0.05)  # the exporter is restarting: try again shortly


def flood_main(port: int, deadline: float, out: Path) -> int:
    """The child process: guess until ``deadline`` (time.monotonic, which is
    the system's) or until stdin closes, then write every guess to ``out``;
    1 if a client did not stop."""
    os.nice(FLOOD_NICENESS)
    flood = Flood(port, deadline=deadline)

    def stop_at_eof() -> None:
        sys.stdin.read()
        flood.stop.set()

    threading.Thread(target=stop_at_eof, daemon=True).start()
    flood.start()
    stuck = flood.join()
    out.write_text(json.dumps([[g.kind, g.status, g.at] for g in flood.guesses]))
    return 1 if stuck else 0


@contextlib.contextmanager
def flood_process(port: int, out: Path) -> Iterator[float]:
    """Start the guessing child; yields when it started (time.monotonic), and
    stops it (closing its stdin) when the block ends."""
    started = time.monotonic()
    args = [sys.executable, __file__, str(port), repr(started + FLOOD_MAX_SECONDS), str(out)]
    child = subprocess.Popen(args, cwd=Path(__file__).parent, stdin=subprocess.PIPE)
    try:
        yield started
        assert child.stdin is not None
        child.stdin.close()
        child.wait(max(0.0, started + FLOOD_MAX_SECONDS - time.monotonic()) + 30)
    finally:
        stop_process(child)
    assert child.returncode == 0, "a guessing client did not stop by itself"


def read_guesses(out: Path) -> list[Guess]:
    return [Guess(kind, status, at) for kind, status, at in json.loads(out.read_text())]


@dataclass
class Usage:
    """The exporter's own figures from /proc, sampled while the flood lasts."""

    pid: int
    samples: int = 0
    peak_threads: int = 0
    peak_rss_bytes: int = 0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    niced: list[float] = field(default_factory=list)  # CPU seconds of each lowered thread
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        status = Path(f"/proc/{self.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        self.peak_threads = max(self.peak_threads, int(fields["Threads"]))
        self.peak_rss_bytes = max(self.peak_rss_bytes, int(fields["VmRSS"].split()[0]) * 1024)
        self.samples += 1

    @contextlib.contextmanager
    def sampling(self, every: float = 0.25) -> Iterator[None]:
        started, cpu_before = time.monotonic(), process_cpu_seconds(self.pid)

        def loop() -> None:
            while not self._stop.wait(every):
                with contextlib.suppress(OSError, KeyError, ValueError):
                    self.sample()

        sampler = threading.Thread(target=loop, daemon=True)
        sampler.start()
        try:
            yield
        finally:
            self.cpu_seconds = process_cpu_seconds(self.pid) - cpu_before
            self.niced = [cpu for nice, cpu in thread_priorities(self.pid) if nice > 0]
            self.wall_seconds = time.monotonic() - started
            self._stop.set()
            sampler.join(5)

    @property
    def cpu_cores(self) -> float:
        return self.cpu_seconds / self.wall_seconds


def cpu_seconds_of(stat: list[str]) -> float:
    """utime + stime from /proc/.../stat, split after the command's closing parenthesis."""
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """Of the whole process (every thread, living or gone)."""
    return cpu_seconds_of(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split())


def thread_priorities(pid: int) -> list[tuple[int, float]]:
    """(nice value, CPU seconds) of each of the process's threads."""
    threads = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
            threads.append((int(stat[16]), cpu_seconds_of(stat)))
    return threads


@dataclass(frozen=True)
class Login:
    """The scraper's first request to a fresh process."""

    status: int  # 0: no answer within ANSWER_WITHIN_SECONDS
    asked: float
    seconds: float
    up: float | None


@dataclass(frozen=True)
class Round:
    login: Login
    usage: Usage
    lane_full_before: bool  # unknown names were answered 429 just before the scraper asked


@pytest.fixture
def cogni(make_database: Callable[[str], Database]) -> Database:
    database = make_database("2026-03")
    with database.connect() as conn:
        scenario.create_tenant(conn, balance_credits=1)
    return database


def test_the_first_login_of_a_fresh_process_gets_through_a_flood_of_guesses(
    cogni: Database, tmp_path: Path
) -> None:
    config = tmp_path / "web-config.yml"
    config.write_text(yaml.safe_dump({"basic_auth_users": TOOLKIT_USERS}))
    port = free_port()
    env = {"GOVERNANCE_EXPORTER_LISTEN_ADDRESS": f"127.0.0.1:{port}"}
    out = tmp_path / "guesses.json"
    rounds: list[tuple[Login, Usage]] = []
    with flood_process(port, out) as started:
        for number in range(ROUNDS):
            last = number == ROUNDS - 1
            round_ends = started + FLOOD_SECONDS if last else time.monotonic()
            with run_exporter(
                cogni.monitor_url, "--web-config-file", str(config), env=env, wait=False
            ) as exporter:
                rounds.append(login_under_fire(exporter, port, round_ends))
    guesses = read_guesses(out)
    results = [Round(login, usage, lane_was_full(guesses, login)) for login, usage in rounds]
    bcrypt_threads = BasicAuth(TOOLKIT_USERS).max_threads  # 2 per user, 2 for unknown names
    statuses = {guess.status for guess in guesses}
    answered = [guess for guess in guesses if guess.status]
    report = "\n".join(describe(number, each) for number, each in enumerate(results, 1))
    print(report, f"\n{len(answered)} guesses answered:", tally(guesses))  # docs/security.md

    # The scraper's first login, on each fresh process, while the flood went on.
    assert [each.login.status for each in results] == [200] * ROUNDS, report
    assert [each.login.up for each in results] == [1.0] * ROUNDS, report
    assert all(each.lane_full_before for each in results), report  # it did flood
    assert len(answered) >= 1000, len(answered)
    assert max(guess.at for guess in guesses) >= started + FLOOD_SECONDS - 1
    assert statuses <= {0, 401, 429, 503}, statuses
    # Bounded: threads within the request slots and the bcrypt lanes, bcrypt work
    # within its threads, memory within a flat allowance.
    for each in results:
        usage = each.usage
        assert usage.samples >= 5, report
        assert usage.peak_threads <= WEB_MAX_REQUESTS + bcrypt_threads + 12, report
        assert usage.cpu_cores <= min(os.cpu_count() or 1, bcrypt_threads + 1) + 0.1, report
        assert usage.peak_rss_bytes <= 128 * 2**20, report
        # The unknown names' lane: its 2 threads, and only they, at a lower priority.
        assert len(usage.niced) == UNKNOWN_WORKERS, report


def login_under_fire(
    exporter: ExporterProcess, port: int, round_ends: float
) -> tuple[Login, Usage]:
    """Wait for the fresh process to listen and the flood to reach it, send the
    scraper's first request, and keep sampling /proc a while, or until ``round_ends``."""
    wait_listening(exporter, port)
    usage = Usage(exporter.process.pid)
    with usage.sampling():
        time.sleep(FULL_STRENGTH_SECONDS)
        asked = time.monotonic()
        status, body = 0, b""
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, body = get(
                port,
                basic(SCRAPER, SCRAPER_PASSWORD),
                source=SCRAPER_ADDRESS,
                timeout=ANSWER_WITHIN_SECONDS,
            )
        seconds = time.monotonic() - asked
        time.sleep(max(AFTER_LOGIN_SECONDS, round_ends - time.monotonic()))
    up = None
    if status == 200:
        up = samples(body.decode()).get("governance_exporter_up", {}).get(frozenset())
    return Login(status, asked, seconds, up), usage


def lane_was_full(guesses: list[Guess], login: Login) -> bool:
    """Unknown names were turned away (429) in the second before the first login."""
    return any(
        g.kind == "unknown" and g.status == 429 and login.asked - 1.0 <= g.at <= login.asked
        for g in guesses
    )


def wait_listening(exporter: ExporterProcess, port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert exporter.process.poll() is None, exporter.log()
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise AssertionError(f"exporter not listening:\n{exporter.log()}")


def describe(number: int, each: Round) -> str:
    usage, login = each.usage, each.login
    return (
        f"round {number}: {login.status} in {login.seconds:.2f} s,"
        f" lane full {each.lane_full_before};"
        f" peak threads {usage.peak_threads},"
        f" RSS {usage.peak_rss_bytes / 2**20:.0f} MiB, CPU {usage.cpu_cores:.2f} cores"
        f" over {usage.wall_seconds:.1f} s ({usage.samples} samples),"
        f" unknown lane {', '.join(f'{cpu:.1f}' for cpu in usage.niced)} CPU s"
    )


def tally(guesses: list[Guess]) -> dict[str, dict[int, int]]:
    counts: dict[str, dict[int, int]] = {}
    for guess in guesses:
        by_status = counts.setdefault(guess.kind, {})
        by_status[guess.status] = by_status.get(guess.status, 0) + 1
    return counts


# --- the lanes, without bcrypt's cost: checks held until a gate opens -------------------


class Gate:
    """A stand-in for ``bcrypt.checkpw`` that holds every check until opened and
    records the order they started in; ``b"right"`` is the one right password."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.started: list[bytes] = []
        self._lock = threading.Lock()

    def __call__(self, password: bytes, _hashed: bytes) -> bool:
        with self._lock:
            self.started.append(password)
        self.open.wait(30)
        return password == b"right"

    def wait_started(self, count: int) -> list[bytes]:
        until(lambda: len(self.started) >= count)
        return list(self.started)


def until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + 10
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def in_thread(call: Callable[[], Verdict], into: list[Verdict]) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.append(call()), daemon=True)
    thread.start()
    return thread


def test_unknown_names_and_other_networks_never_take_a_configured_names_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = Gate()
    monkeypatch.setattr(bcrypt, "checkpw", gate)
    users = {"alice": TOOLKIT_USERS["alice"], "bob": TOOLKIT_USERS["bob"]}
    auth = BasicAuth(users, wait_seconds=30)  # the gate, not the wait, ends the checks
    held: list[Verdict] = []
    # The unknown lane's 2 workers and 4 places, taken by six networks.
    threads = [
        in_thread(lambda n=n: auth.verify(f"x{n}", "p", f"10.0.0.{n}"), held) for n in range(6)
    ]
    assert len(gate.wait_started(2)) == 2
    assert until(lambda: auth._unknown.queued == 4)
    unknown_full = auth.verify("x9", "p", "10.0.0.9")
    # bob's password guessed from 10.0.1.1: one worker of bob's lane is its share.
    threads.append(in_thread(lambda: auth.verify("bob", "guess", "10.0.1.1"), held))
    assert b"guess" in gate.wait_started(3)
    same_network = auth.verify("bob", "guess-2", "10.0.1.1")
    same_ipv6_64 = [in_thread(lambda: auth.verify("bob", "v6", "2001:db8::1"), held)]
    assert b"v6" in gate.wait_started(4)  # bob's second worker: another network's share
    ipv6_neighbour = auth.verify("bob", "v6-2", "2001:db8::ffff")
    # Meanwhile the scraper's first login is checked at once, in alice's lane.
    scraper: list[Verdict] = []
    threads.append(in_thread(lambda: auth.verify("alice", "right", "10.0.2.1"), scraper))
    started = gate.wait_started(5)
    gate.open.set()
    for thread in threads + same_ipv6_64:
        thread.join(10)
    assert unknown_full is Verdict.BUSY
    assert same_network is Verdict.BUSY
    assert ipv6_neighbour is Verdict.BUSY  # one share per /64
    assert b"right" in started  # not queued behind the unknown names
    assert scraper == [Verdict.GRANTED]
    assert auth.proven("alice", "right")
    assert sorted(v.value for v in held) == ["denied"] * 8


def test_a_lane_serves_networks_in_turn_each_within_its_share() -> None:
    gate = Gate()
    lane = _Lane("test", gate, lambda _key: None, workers=1, queued=3, per_network=2)

    def check(password: str, network: str) -> _Check:
        return _Check(password.encode(), password.encode(), b"", True, network)

    first = check("a1", "A")
    assert lane.submit(first)
    assert gate.wait_started(1) == [b"a1"]
    queued = [check("a2", "A"), check("b1", "B"), check("c1", "C")]
    taken = [lane.submit(each) for each in queued]
    over_share = lane.submit(check("a3", "A"))  # A holds 2: a1 running, a2 queued
    full = lane.submit(check("d1", "D"))  # 3 queued
    gate.open.set()
    for each in [first, *queued]:
        assert each.done.wait(10)
    assert taken == [True, True, True]
    assert not over_share
    assert not full
    assert gate.started == [b"a1", b"b1", b"c1", b"a2"]  # B and C before A's second


def test_a_client_network_is_an_ipv4_address_or_an_ipv6_64() -> None:
    assert client_network("192.0.2.7") == "192.0.2.7"
    assert client_network("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_network("2001:db8:1:2:3:4:5:6") == client_network("2001:db8:1:2::9")
    assert client_network("2001:db8:1:2::9") != client_network("2001:db8:1:3::9")
    assert client_network("fe80::1%eth0") == "fe80::/64"
    assert client_network("") == ""


if __name__ == "__main__":
    sys.exit(flood_main(int(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])))

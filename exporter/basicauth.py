"""Basic auth against bcrypt hashes, built so that guessing cannot lock the scraper out.

bcrypt is slow on purpose, so the checks run on a few worker threads, in
*lanes* that guesses cannot cross:

- Each configured user name has its own lane (``USER_WORKERS`` workers, a
  short queue), started at its first check. A flood of guessed names never delays a
  configured user's first login, and guessing one configured user's password
  (however costly its hash) never delays another's.
- Every unknown name shares one lane (``UNKNOWN_WORKERS`` workers, a short
  queue), checked against a dummy hash of the highest configured cost capped
  at ``DUMMY_COST_CAP``: an unknown name costs what a known one does. Its
  threads run at a lower priority (Linux), so on a busy CPU guessed names get
  what the configured names' checks and the scrapes leave.
- In every lane a client network (an IPv4 address, an IPv6 /64) has at most
  ``PER_NETWORK_CHECKS`` check queued or running, and the queue is served
  round-robin across networks: guessing the scraper's own user name from one
  other network leaves it a worker, from two delays it by one check at most.
- A check that finds its lane full (or its network's share taken) is answered
  BUSY (429) at once; a request waits at most ``CHECK_WAIT_SECONDS`` for its
  check, which still finishes, and a success is remembered.
- Proven (user, password) pairs are remembered by SHA-256, so a scrape every
  few seconds pays for bcrypt once.

What this does not hide: under a flood that fills the unknown lane, an unknown
name is answered 429 where a configured one is checked (401), so whoever can
fill that lane (or the CPU) learns which names are configured, never a password.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import secrets
import sys
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from exporter.webconfig import Verdict

logger = logging.getLogger(__name__)

# An unknown user is checked against a dummy hash of the highest configured
# cost, but at most this one (about 0.25 s): a cost-18 hash must not make every
# guessed user name cost seconds of CPU.
DUMMY_COST_CAP = 12
# The lane of unknown names: bcrypt work at once, and guesses queued behind it.
UNKNOWN_WORKERS = 2
UNKNOWN_QUEUE = 4
# The unknown lane's threads run this much nicer (Linux), so that on a busy CPU
# guessed names mostly get what configured names' checks and the scrapes leave.
UNKNOWN_NICENESS = 10
# The lane of each configured name: two workers, so that the guesses of one
# client network (which holds one at most) leave the other to the scraper.
USER_WORKERS = 2
USER_QUEUE = 4
# Checks one client network may have queued or running in one lane.
PER_NETWORK_CHECKS = 1
# How long a request waits for its check before it is answered 429 (the check
# still finishes and a success is remembered, so the next scrape is served).
# Long enough for a cost-12 check on a CPU that guesses and other work keep
# busy (measured up to 2.8 s on a loaded 2-core machine), well within the 10 s
# of Prometheus' default scrape_timeout; the lanes bound how many wait.
CHECK_WAIT_SECONDS = 4.0
_SUCCESS_CACHE_SIZE = 64
_BCRYPT_MAX_PASSWORD = 72  # bytes; the bcrypt library refuses longer ones
_IPV6_NETWORK_BITS = 64  # one host (or one attacker) commonly holds a whole /64

CheckPassword = Callable[[bytes, bytes], bool]


@dataclass(eq=False)
class _Check:
    """One bcrypt check handed to a lane."""

    key: bytes
    password: bytes
    hashed: bytes
    known: bool
    network: str
    done: threading.Event = field(default_factory=threading.Event)
    matches: bool = False


class _Lane:
    """bcrypt checks of one kind: their own workers and a bounded queue, served
    round-robin across client networks, at most ``per_network`` each."""

    def __init__(
        self,
        name: str,
        checkpw: CheckPassword,
        remember: Callable[[bytes], None],
        *,
        workers: int,
        queued: int,
        per_network: int,
        niceness: int = 0,
    ) -> None:
        self._name = name
        self._niceness = niceness
        self._checkpw = checkpw
        self._remember = remember
        self._workers = max(1, workers)
        self._capacity = max(1, queued)
        self._per_network = max(1, per_network)
        self._lock = threading.Condition()
        # Waiting checks by network, in the order the networks came.
        self._waiting: OrderedDict[str, deque[_Check]] = OrderedDict()
        self._queued = 0
        self._held: dict[str, int] = {}  # checks queued or running, by network
        # Networks served while they still hold checks, the least recently first.
        self._served: OrderedDict[str, None] = OrderedDict()
        self._started = False

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def queued(self) -> int:
        """Checks waiting for a worker."""
        with self._lock:
            return self._queued

    def submit(self, check: _Check) -> bool:
        """Whether the check was taken: False when the lane has no room for its network.

        A retry of the same credentials is not joined to the check under way:
        each waiting request holds one of the lane's places, so that however
        many wait, they are no more than the lane holds.
        """
        with self._lock:
            held = self._held.get(check.network, 0)
            if self._queued >= self._capacity or held >= self._per_network:
                return False
            self._held[check.network] = held + 1
            self._waiting.setdefault(check.network, deque()).append(check)
            self._queued += 1
            self._lock.notify()
            start, self._started = not self._started, True
        if start:
            for number in range(self._workers):
                # Daemon threads: a costly check in progress must not hold up the exit.
                threading.Thread(
                    target=self._work, name=f"{self._name}-{number}", daemon=True
                ).start()
        return True

    def _next(self) -> _Check:
        with self._lock:
            while not self._waiting:
                self._lock.wait()
            network = self._next_network()
            checks = self._waiting[network]
            check = checks.popleft()
            if not checks:
                del self._waiting[network]
            self._served[network] = None
            self._served.move_to_end(network)
            self._queued -= 1
            return check

    def _next_network(self) -> str:
        """The first waiting network not served yet, else the least recently served."""
        fresh = [network for network in self._waiting if network not in self._served]
        if fresh:
            return fresh[0]
        return next(network for network in self._served if network in self._waiting)

    def _work(self) -> None:
        if self._niceness:
            _lower_priority(self._niceness)
        while True:
            check = self._next()
            try:
                check.matches = self._checkpw(check.password, check.hashed)
            except ValueError:  # a malformed hash
                check.matches = False
            if check.matches and check.known:
                self._remember(check.key)
            with self._lock:
                held = self._held.pop(check.network) - 1
                if held:
                    self._held[check.network] = held
                else:
                    self._served.pop(check.network, None)
            check.done.set()


class BasicAuth:
    """Checks ``Authorization: Basic`` against bcrypt hashes, in lanes (see the module doc)."""

    def __init__(
        self,
        users: Mapping[str, str],
        *,
        unknown_workers: int = UNKNOWN_WORKERS,
        unknown_queue: int = UNKNOWN_QUEUE,
        user_workers: int = USER_WORKERS,
        user_queue: int = USER_QUEUE,
        per_network: int = PER_NETWORK_CHECKS,
        wait_seconds: float = CHECK_WAIT_SECONDS,
    ) -> None:
        import bcrypt  # noqa: PLC0415 - only needed (and loaded) when basic auth is configured

        self._users = {user: hashed.encode() for user, hashed in users.items()}
        costs = {user: bcrypt_cost(hashed) for user, hashed in users.items()}
        for user, cost in costs.items():
            if cost > DUMMY_COST_CAP:
                logger.warning(
                    "basic_auth_users: the hash of %r has cost %d, so each check of a password "
                    "for it takes seconds of CPU; cost %d or less is advised",
                    user,
                    cost,
                    DUMMY_COST_CAP,
                )
        self.dummy_cost = min(max(costs.values()), DUMMY_COST_CAP)
        self._dummy = _dummy_hash(bcrypt.hashpw, bcrypt.gensalt, self.dummy_cost)
        self._proven: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()
        self._wait = wait_seconds
        checkpw: CheckPassword = bcrypt.checkpw
        # Thread names carry an index, not the user name.
        self._lanes = {
            user: _Lane(
                f"bcrypt-user{index}",
                checkpw,
                self._remember,
                workers=user_workers,
                queued=user_queue,
                per_network=per_network,
            )
            for index, user in enumerate(self._users)
        }
        self._unknown = _Lane(
            "bcrypt-unknown",
            checkpw,
            self._remember,
            workers=unknown_workers,
            queued=unknown_queue,
            per_network=per_network,
            niceness=UNKNOWN_NICENESS,
        )

    @property
    def max_threads(self) -> int:
        """The most bcrypt threads this can ever run: one per user, and the unknown lane's."""
        return sum(lane.workers for lane in self._lanes.values()) + self._unknown.workers

    def proven(self, user: str, password: str) -> bool:
        """Whether this pair was granted before: no bcrypt work."""
        key = _pair_key(user, password)
        with self._lock:
            return key in self._proven

    def verify(self, user: str, password: str, client: str = "") -> Verdict:
        """GRANTED, DENIED, or BUSY when the lane had no room or its check came too late.

        ``client`` is the client's IP address, which decides its share of the lane.
        """
        if self.proven(user, password):
            return Verdict.GRANTED
        encoded = password.encode()
        if len(encoded) > _BCRYPT_MAX_PASSWORD:  # refused by bcrypt before any work
            return Verdict.DENIED
        hashed = self._users.get(user)
        lane = self._lanes.get(user, self._unknown)
        check = _Check(
            _pair_key(user, password),
            encoded,
            hashed or self._dummy,
            hashed is not None,
            client_network(client),
        )
        if not lane.submit(check) or not check.done.wait(self._wait):
            return Verdict.BUSY
        return Verdict.GRANTED if check.matches and check.known else Verdict.DENIED

    def _remember(self, key: bytes) -> None:
        with self._lock:
            self._proven[key] = None
            while len(self._proven) > _SUCCESS_CACHE_SIZE:
                self._proven.popitem(last=False)


def _lower_priority(niceness: int) -> None:
    """Raise the calling thread's nice value by ``niceness``, on Linux, where a
    thread id names one thread (elsewhere it could name another process)."""
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    try:
        now = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, now + niceness))
    except OSError as exc:  # a sandbox that forbids it: the lanes still hold
        logger.debug("cannot lower the priority of %s: %s", threading.current_thread().name, exc)


def client_network(address: str) -> str:
    """Whose share a check takes: the IPv4 address, or the IPv6 /64 (an IPv4
    address mapped into IPv6 counts as itself); anything else as given."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, _IPV6_NETWORK_BITS), strict=False))
    return str(ip)


def _pair_key(user: str, password: str) -> bytes:
    # The length prefix keeps ("a", "b:c") and ("a:b", "c") apart.
    return hashlib.sha256(f"{len(user)}:{user}:{password}".encode()).digest()


def _dummy_hash(
    hashpw: Callable[[bytes, bytes], bytes], gensalt: Callable[..., bytes], cost: int
) -> bytes:
    """A well-formed hash of a random secret at ``cost``, computed at the cheapest cost.

    Checking a password against a bcrypt hash costs what its cost field says,
    whatever produced the digest, so the cost-4 hash with its cost field raised
    is as slow to check as a real one, and made in a millisecond.
    """
    cheap = hashpw(secrets.token_bytes(16), gensalt(rounds=4))
    return cheap[:4] + f"{cost:02d}".encode() + cheap[6:]


def bcrypt_cost(hashed: str) -> int:
    """The cost field of a ``$2?$NN$`` hash, clamped to bcrypt's 4..31."""
    try:
        return min(max(int(hashed[4:6]), 4), 31)
    except ValueError:
        return 10

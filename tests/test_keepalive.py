"""Keep-alive in the exporter's HTTP server, within its bounds: many requests on
one connection, idle ones evicted for newcomers, the per-request deadline, TLS and
basic auth on every request. The real server on 127.0.0.1, real sockets."""

from __future__ import annotations

import base64
import contextlib
import http.client
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml
from harness import trickle

from exporter.server import ExporterServer, Request, Response, Route
from exporter.webconfig import load_web_config

BODY = bytes(range(256)) * 108  # 27 KB, the size of a /metrics answer


def routes(gate: threading.Event) -> dict[str, Route]:
    def body(_request: Request) -> Response:
        return Response(200, BODY)

    def health(_request: Request) -> Response:
        return Response(200, b"ok\n")

    def slow(_request: Request) -> Response:  # a collection in progress until the gate opens
        gate.wait(30)
        return Response(200, b"slow\n")

    return {"/metrics": body, "/healthz": health, "/slow": slow}


@contextlib.contextmanager
def serving(**options: Any) -> Iterator[tuple[ExporterServer, threading.Event]]:
    gate = threading.Event()
    options.setdefault("max_concurrent", 4)
    options.setdefault("keepalive_timeout", 30.0)
    server = ExporterServer(("127.0.0.1", 0), routes(gate), **options)
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    try:
        yield server, gate
    finally:
        gate.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def port(server: ExporterServer) -> int:
    return int(server.server_address[1])


def get(
    conn: http.client.HTTPConnection, path: str, headers: dict[str, str] | None = None
) -> tuple[http.client.HTTPResponse, bytes, int]:
    """One exchange, and the client's local port it went over (http.client opens
    a new connection silently when the server has closed the last one)."""
    conn.request("GET", path, headers=headers or {})
    local = int(conn.sock.getsockname()[1])
    response = conn.getresponse()
    return response, response.read(), local


def connect(server: ExporterServer, timeout: float = 10) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port(server)), timeout=timeout)


def exchange(sock: socket.socket, raw: bytes) -> tuple[http.client.HTTPResponse, bytes]:
    sock.sendall(raw)
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response, response.read()


def closed_by_server(sock: socket.socket, within: float = 10) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_many_requests_share_one_connection() -> None:
    with serving() as (server, _gate):
        conn = http.client.HTTPConnection("127.0.0.1", port(server), timeout=10)
        answers = [get(conn, "/metrics" if i % 2 else "/healthz") for i in range(20)]
        conn.close()
    assert all(response.status == 200 for response, _body, _port in answers)
    assert [body for _response, body, _port in answers] == [
        BODY if i % 2 else b"ok\n" for i in range(20)
    ]
    assert len({local for _response, _body, local in answers}) == 1  # one connection
    first = answers[0][0]
    assert first.getheader("connection") == "keep-alive"
    assert first.getheader("keep-alive") == "timeout=30"


def test_pipelined_requests_are_answered_in_order() -> None:
    with serving() as (server, _gate), connect(server) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    first, _, rest = data.partition(b"\r\n\r\nok\n")
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
    assert rest.endswith(b"\r\n\r\n" + BODY)


def test_connection_close_is_honoured() -> None:
    with serving() as (server, _gate), connect(server) as sock:
        response, body = exchange(
            sock, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert closed_by_server(sock)
    assert response.status == 200
    assert body == BODY
    assert response.getheader("connection") == "close"


def test_http_1_0_closes_unless_it_asks_for_keep_alive() -> None:
    with serving() as (server, _gate):
        with connect(server) as sock:
            plain, plain_body = exchange(sock, b"GET /healthz HTTP/1.0\r\n\r\n")
            plain_closed = closed_by_server(sock)
        with connect(server) as sock:
            ask = b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
            kept = [exchange(sock, ask) for _ in range(3)]
    assert (plain.status, plain_body, plain.getheader("connection")) == (200, b"ok\n", "close")
    assert plain_closed
    for response, body in kept:
        assert (response.status, body, response.getheader("connection")) == (
            200,
            b"ok\n",
            "keep-alive",
        )


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 405),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nGET ", 200),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 200),
        (b"GET /metrics HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 150 + b"\r\n", 431),
        (b"GET /metrics HTTP/1.1 junk\r\n\r\n", 400),
    ],
)
def test_answers_that_leave_the_stream_unsure_close_it(raw: bytes, status: int) -> None:
    """A body the server does not read, or a request it could not parse: the
    next request's first byte is unknown, so the answer says close and closes."""
    with serving() as (server, _gate), connect(server) as sock:
        response, _body = exchange(sock, raw)
        closed = closed_by_server(sock)
    assert response.status == status
    assert response.getheader("connection") == "close"
    assert closed


def test_answers_to_whole_requests_keep_the_connection() -> None:
    with serving() as (server, _gate):
        conn = http.client.HTTPConnection("127.0.0.1", port(server), timeout=10)
        missing = get(conn, "/nope")
        after = get(conn, "/healthz")
        conn.close()
    assert missing[0].status == 404
    assert missing[0].getheader("connection") == "keep-alive"
    assert after[0].status == 200
    assert missing[2] == after[2]


def test_an_idle_connection_is_evicted_for_a_new_client() -> None:
    """Both slots held by kept-alive connections idle between requests: a third
    client is served, the one idle the longest is closed, the other kept."""
    with serving(max_concurrent=2) as (server, _gate):
        oldest = http.client.HTTPConnection("127.0.0.1", port(server), timeout=10)
        newer = http.client.HTTPConnection("127.0.0.1", port(server), timeout=10)
        _, _, oldest_port = get(oldest, "/healthz")
        time.sleep(0.05)
        _, _, newer_port = get(newer, "/healthz")
        time.sleep(0.2)  # both are back waiting for their next request
        newcomer, body, _ = get(http.client.HTTPConnection("127.0.0.1", port(server)), "/metrics")
        evicted = closed_by_server(oldest.sock)
        again, _, again_port = get(newer, "/healthz")
        for conn in (oldest, newer):
            conn.close()
    assert (newcomer.status, body) == (200, BODY)
    assert evicted
    assert again.status == 200
    assert again_port == newer_port != oldest_port


def test_all_slots_busy_with_requests_still_gets_503() -> None:
    """Two requests in progress (one in its collection, one still sending its
    headers on its second request) hold both slots: a newcomer gets 503."""
    with serving(max_concurrent=2) as (server, gate):
        collecting = connect(server)
        collecting.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        reading = connect(server)
        exchange(reading, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        reading.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # the second, unfinished
        time.sleep(0.3)
        with connect(server) as sock:
            busy, _ = exchange(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        gate.set()
        slow = http.client.HTTPResponse(collecting)
        slow.begin()
        slow_body = slow.read()
        finished, _ = exchange(reading, b"\r\n")
        for sock in (collecting, reading):
            sock.close()
    assert busy.status == 503
    assert busy.getheader("retry-after") == "1"
    assert (slow.status, slow_body) == (200, b"slow\n")
    assert finished.status == 200


def test_a_slowloris_on_a_second_request_is_cut_at_the_deadline() -> None:
    """One slot. The kept-alive connection idles longer than the request
    deadline (no request, no deadline), then trickles its second request one
    header byte every 0.3 s, which the read timeout never catches: the deadline
    counted from that request's first byte cuts it, and the server serves again."""
    with serving(max_concurrent=1, request_timeout=2.0) as (server, _gate):
        sock = connect(server, timeout=30)
        first, _ = exchange(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(2.5)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        time.sleep(0.3)
        with connect(server) as other:
            blocked, _ = exchange(other, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        cut = threading.Event()
        trickler = threading.Thread(target=trickle, args=(sock, cut), daemon=True)
        trickler.start()
        trickler.join(20)
        sock.close()
        served = get(http.client.HTTPConnection("127.0.0.1", port(server), timeout=10), "/healthz")
    assert first.status == 200
    assert blocked.status == 503  # the second request holds the slot: it is not idle
    assert cut.is_set()
    assert served[0].status == 200


def test_an_idle_connection_is_closed_after_the_keepalive_timeout() -> None:
    with serving(keepalive_timeout=1.0) as (server, _gate), connect(server) as sock:
        response, _ = exchange(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        closed = closed_by_server(sock, within=10)
    assert response.getheader("keep-alive") == "timeout=1"
    assert closed


# --- TLS and basic auth on every request of one connection ---------------------------

USER, PASSWORD = "prometheus", "s3cret-scrape-pw"


@pytest.fixture(scope="module")
def web_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keepalive-tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", "server.key", "-out", "server.crt", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        cwd=directory, check=True, capture_output=True,
    )  # fmt: skip
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    config = {
        "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"},
        "basic_auth_users": {USER: hashed},
    }
    path = directory / "web-config.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_keep_alive_over_tls_checks_auth_on_every_request(web_config: Path) -> None:
    web = load_web_config(web_config)
    context = ssl.create_default_context(cafile=str(web_config.parent / "server.crt"))
    with serving(wrap_socket=web.wrap_socket, authorize=web.authorize) as (server, _gate):
        conn = http.client.HTTPSConnection("127.0.0.1", port(server), context=context, timeout=10)
        answers = [
            get(conn, "/metrics", basic(USER, PASSWORD)),
            get(conn, "/metrics"),
            get(conn, "/metrics", basic(USER, PASSWORD + "x")),
            get(conn, "/healthz", basic(USER, PASSWORD)),
            get(conn, "/metrics", basic(USER, PASSWORD)),
        ]
        conn.close()
    statuses = [response.status for response, _body, _port in answers]
    assert statuses == [200, 401, 401, 200, 200]
    assert answers[1][1] == b"unauthorized\n"
    assert answers[4][1] == BODY
    assert len({local for _response, _body, local in answers}) == 1  # one TLS connection


def test_an_idle_tls_connection_is_evicted_for_a_new_client(web_config: Path) -> None:
    """The thread of an idle TLS connection wakes up when it is cut, and the
    newcomer gets its slot."""
    web = load_web_config(web_config)
    context = ssl.create_default_context(cafile=str(web_config.parent / "server.crt"))
    options = {"wrap_socket": web.wrap_socket, "authorize": web.authorize, "max_concurrent": 1}
    with serving(**options) as (server, _gate):
        idle = http.client.HTTPSConnection("127.0.0.1", port(server), context=context, timeout=10)
        first = get(idle, "/healthz", basic(USER, PASSWORD))
        time.sleep(0.2)
        newcomer = http.client.HTTPSConnection("127.0.0.1", port(server), context=context)
        second = get(newcomer, "/metrics", basic(USER, PASSWORD))
        evicted = closed_by_server(idle.sock)
        for conn in (idle, newcomer):
            conn.close()
    assert first[0].status == 200
    assert (second[0].status, second[1]) == (200, BODY)
    assert evicted

"""seda review under hostile requests: raw requests over loopback sockets, each answered (4xx)
or closed within 5 s, with other clients still served.

Covers a DNS-rebinding page (foreign Host, GET included), cross-site posts (foreign Origin), the
token off loopback, malformed requests (Content-Length, bodies, JSON), slow and trickling
clients, 200 parallel connections and a decision log with another header.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from seda import review
from seda.labels import ReviewedLogError
from seda.review import MAX_BODY, ReviewServer, is_loopback, make_server
from test_review import write_queue

pytestmark = pytest.mark.timeout(120)

LIMIT = 5.0  # seconds within which every hostile request is answered or closed


@pytest.fixture(autouse=True)
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No hostile request makes the server fail (an error logged, a traceback printed)."""
    caplog.set_level(logging.DEBUG, logger="seda.review")
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]


def start(tmp_path: Path, **kwargs: object) -> ReviewServer:
    root = tmp_path / "repo"
    queue = write_queue(root)
    srv = make_server(queue, root / "data/labels/reviewed.csv", "127.0.0.1", 0, root=root, **kwargs)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    return srv


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ReviewServer]:
    srv = start(tmp_path)
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[ReviewServer]:
    """A server as on a non-loopback --host (bound to loopback here: the tests stay local)."""
    srv = start(tmp_path, require_token=True)
    yield srv
    srv.shutdown()
    srv.server_close()


def host(srv: ReviewServer) -> bytes:
    return f"127.0.0.1:{srv.server_address[1]}".encode()


def raw(srv: ReviewServer, data: bytes, shut_write: bool = False) -> tuple[int | None, bytes]:
    """Send ``data`` as is; the reply's status (None when closed without one) and bytes. Fails
    unless the server answers or closes within LIMIT seconds."""
    start_time = time.monotonic()
    with socket.create_connection(srv.server_address[:2], timeout=LIMIT) as sock:
        sock.sendall(data)
        if shut_write:
            sock.shutdown(socket.SHUT_WR)
        reply = _read_all(sock, start_time)
    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.") else None
    return status, reply


def _read_all(sock: socket.socket, start_time: float) -> bytes:
    chunks = []
    while True:
        left = start_time + LIMIT - time.monotonic()
        assert left > 0, "no reply or close within 5 s"
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert time.monotonic() - start_time < LIMIT
    return b"".join(chunks)


def body_of(reply: bytes) -> bytes:
    return reply.split(b"\r\n\r\n", 1)[1]


def post(
    srv: ReviewServer, body: bytes, extra: bytes = b"", length: bytes | None = None
) -> tuple[int | None, bytes]:
    """A decision POST with the right Host and token, ``body`` sent as given."""
    n = str(len(body)).encode() if length is None else length
    head = (
        b"POST /api/decision HTTP/1.1\r\nHost: " + host(srv) + b"\r\n"
        b"X-Seda-Token: " + srv.token.encode() + b"\r\n"
        b"Content-Type: application/json\r\n" + extra
    )
    if length != b"":
        head += b"Content-Length: " + n + b"\r\n"
    return raw(srv, head + b"\r\n" + body)


def get(srv: ReviewServer, path: str, headers: bytes = b"") -> tuple[int | None, bytes]:
    return raw(srv, f"GET {path} HTTP/1.1\r\n".encode() + headers + b"\r\n")


GOOD = json.dumps({"clip_id": "c_000", "decision": "label", "label": "sad"}).encode()


# ---------------------------------------------------------------------------------------------
# Host and Origin


@pytest.mark.parametrize(
    "path", ["/", "/index.html", "/api/queue", "/audio/c_000", "/static/review.js"]
)
@pytest.mark.parametrize(
    "name", ["evil.example", "attacker.test:80", "127.0.0.1:1", "localhost.evil.example"]
)
def test_foreign_host_gets_403_on_get(server: ReviewServer, path: str, name: str) -> None:
    port = server.server_address[1]
    value = name if ":" in name else f"{name}:{port}"
    status, reply = get(server, path, f"Host: {value}\r\n".encode())
    assert status == 403, reply
    assert server.token.encode() not in reply and b"RIFF" not in reply
    assert b"clips" not in body_of(reply)


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]"])
def test_loopback_names_with_the_server_port_are_served(server: ReviewServer, name: str) -> None:
    status, reply = get(server, "/", f"Host: {name}:{server.server_address[1]}\r\n".encode())
    assert status == 200 and server.token.encode() in reply


@pytest.mark.parametrize(
    "headers",
    [b"", b"Host: \r\n", b"Host: a b\r\n", b"Host: x:99999\r\n"],
    ids=["missing", "empty", "space", "bad-port"],
)
def test_missing_or_malformed_host_is_400(server: ReviewServer, headers: bytes) -> None:
    assert get(server, "/", headers)[0] == 400


def test_two_host_headers_are_400(server: ReviewServer) -> None:
    two = b"Host: " + host(server) + b"\r\nHost: evil.example\r\n"
    assert get(server, "/", two)[0] == 400


def test_allow_host_adds_names(tmp_path: Path) -> None:
    srv = start(tmp_path, allow_hosts=["review.lan", "localhost:9000"])
    try:
        port = srv.server_address[1]
        assert get(srv, "/api/queue", f"Host: review.lan:{port}\r\n".encode())[0] == 200
        assert get(srv, "/api/queue", b"Host: localhost:9000\r\n")[0] == 200  # ssh -L 9000:...
        assert get(srv, "/api/queue", b"Host: review.lan:9000\r\n")[0] == 403
        assert get(srv, "/api/queue", f"Host: other.lan:{port}\r\n".encode())[0] == 403
    finally:
        srv.shutdown()
        srv.server_close()
    with pytest.raises(review.ConfigError, match="allow-host"):
        start(tmp_path / "b", allow_hosts=["http://x/"])


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        (b"Origin: http://evil.example\r\n", 403),
        (b"Origin: http://127.0.0.1:1\r\n", 403),
        (b"Origin: null\r\n", 403),
        (b"Origin: file://\r\n", 403),
        (b"Sec-Fetch-Site: cross-site\r\n", 403),
        (b"", 200),  # no Origin: not a browser (see seda.review's docstring)
    ],
)
def test_decision_origin(server: ReviewServer, origin: bytes, expected: int) -> None:
    status, reply = post(server, GOOD, origin)
    assert status == expected, reply
    assert server.reviewed.exists() == (expected == 200)


def test_decision_from_the_page_origin_is_saved(server: ReviewServer) -> None:
    origin = b"Origin: http://" + host(server) + b"\r\nSec-Fetch-Site: same-origin\r\n"
    assert post(server, GOOD, origin)[0] == 200


def test_decision_with_foreign_host_is_403_even_with_the_token(server: ReviewServer) -> None:
    data = (
        b"POST /api/decision HTTP/1.1\r\nHost: evil.example\r\nX-Seda-Token: "
        + server.token.encode()
        + b"\r\nContent-Length: "
        + str(len(GOOD)).encode()
        + b"\r\n\r\n"
        + GOOD
    )
    assert raw(server, data)[0] == 403
    assert not server.reviewed.exists()


def test_cross_site_reads_of_queue_and_audio_are_refused(server: ReviewServer) -> None:
    cross = b"Host: " + host(server) + b"\r\nSec-Fetch-Site: cross-site\r\n"
    assert get(server, "/api/queue", cross)[0] == 403
    assert get(server, "/audio/c_000", cross)[0] == 403


# ---------------------------------------------------------------------------------------------
# The token off loopback


def test_token_mode_page_carries_no_token_and_data_needs_it(token_server: ReviewServer) -> None:
    srv = token_server
    h = b"Host: " + host(srv) + b"\r\n"
    status, reply = get(srv, "/", h)
    assert status == 200 and srv.token.encode() not in reply and b'id="login"' in reply
    assert get(srv, "/static/review.js", h)[0] == 200
    for path in ("/api/queue", "/audio/c_000"):
        assert get(srv, path, h)[0] == 403
        assert get(srv, path, h + b"X-Seda-Token: wrong-token-123\r\n")[0] == 403
        assert get(srv, path, h + b"X-Seda-Token: \xe9\xff\r\n")[0] == 403
        assert get(srv, path, h + b"X-Seda-Token: " + srv.token.encode() + b"\r\n")[0] == 200
    no_token = (
        b"POST /api/decision HTTP/1.1\r\n"
        + h
        + b"Content-Length: "
        + str(len(GOOD)).encode()
        + b"\r\n\r\n"
        + GOOD
    )
    assert raw(srv, no_token)[0] == 403
    assert post(srv, GOOD)[0] == 200


def test_only_loopback_hosts_serve_without_a_typed_token() -> None:
    for host_name in ("127.0.0.1", "localhost", "::1", "127.0.0.2", "[::1]"):
        assert is_loopback(host_name)
    for host_name in ("0.0.0.0", "::", "", "192.168.1.5", "example.com"):
        assert not is_loopback(host_name)


def test_off_loopback_start_up_warns_and_prints_the_token(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As ``seda review --host 0.0.0.0`` would (listening stays on 127.0.0.1 here)."""
    root = tmp_path / "repo"
    queue = write_queue(root)
    monkeypatch.setattr(review, "is_loopback", lambda host: False)
    served: list[ReviewServer] = []

    def no_serving(self: ReviewServer, poll_interval: float = 0.5) -> None:
        served.append(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(ReviewServer, "serve_forever", no_serving)
    monkeypatch.delenv(review.TOKEN_ENV, raising=False)
    args = ["--queue", str(queue), "--reviewed", str(root / "r.csv"), "--port", "0"]
    with caplog.at_level(logging.WARNING, logger="seda.review"):
        assert review.main(args) == 0
    (srv,) = served
    assert srv.require_token
    out = capsys.readouterr().out
    assert f"token (type it into the page; shown only here): {srv.token}" in out
    assert "need it" in caplog.text and "token" in caplog.text and "not encrypted" in caplog.text
    assert srv.token not in caplog.text
    served.clear()
    assert review.main([*args, "--token", "my-own-token-123"]) == 0
    assert served[0].token == "my-own-token-123"
    assert "my-own-token-123" not in capsys.readouterr().out
    monkeypatch.setattr(review, "is_loopback", lambda host: True)
    served.clear()
    assert review.main([*args, "--token", "my-own-token-123"]) == 0
    assert served[0].require_token  # on loopback too: a token given is a token asked for
    assert review.main([*args]) == 0
    assert not served[1].require_token
    capsys.readouterr()
    assert review.main([*args, "--token", "short"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "token" in err[0]


# ---------------------------------------------------------------------------------------------
# Malformed requests


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (b"abc", 400),
        (b"-5", 400),
        (b"1e3", 400),
        (b"0x10", 400),
        (b"", 411),  # no Content-Length header
        (b"0", 400),
        (str(MAX_BODY + 1).encode(), 413),
        (b"99999999999999999999999999", 413),
    ],
)
def test_bad_content_length(server: ReviewServer, length: bytes, expected: int) -> None:
    status, reply = post(server, GOOD if expected != 413 else b"", length=length)
    assert status == expected, reply
    assert not server.reviewed.exists()


def test_two_content_lengths_and_chunked_bodies_are_refused(server: ReviewServer) -> None:
    n = str(len(GOOD)).encode()
    assert post(server, GOOD, b"Content-Length: " + n + b"\r\n")[0] == 400
    chunked = b"Transfer-Encoding: chunked\r\n"
    body = hex(len(GOOD))[2:].encode() + b"\r\n" + GOOD + b"\r\n0\r\n\r\n"
    assert post(server, body, chunked, length=b"")[0] == 411
    assert not server.reviewed.exists()


def test_huge_body_is_413(server: ReviewServer) -> None:
    status, reply = post(server, b"[" * 100_000)
    assert status == 413, reply


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 3000,
        b'{"a":' * 800,
        b"[]",
        b'"c_000"',
        b"null",
        b"17",
        b"not json",
        b"\xff\xfe{}",
        b'{"clip_id": 1, "decision": "label", "label": "sad"}',
        b'{"clip_id": "c_000", "decision": ["label"], "label": "sad"}',
        b'{"clip_id": "c_000", "decision": "label", "label": {"x": 1}}',
        b'{"clip_id": "c_000", "decision": "label", "label": NaN}',
        b'{"clip_id": "c_000", "decision": "label", "label": "sad", "path": "/etc/passwd"}',
        b'{"clip_id": "c_000"}',
        b'{"clip_id": "../../x", "decision": "skip"}',
    ],
    ids=lambda body: body[:24].decode("latin-1"),
)
def test_malformed_decision_bodies_are_400(server: ReviewServer, body: bytes) -> None:
    assert len(body) <= MAX_BODY
    status, reply = post(server, body)
    assert status == 400, reply
    assert json.loads(body_of(reply))["error"]
    assert not server.reviewed.exists()


def test_body_shorter_than_its_length_is_400(server: ReviewServer) -> None:
    head = (
        b"POST /api/decision HTTP/1.1\r\nHost: "
        + host(server)
        + b"\r\nX-Seda-Token: "
        + server.token.encode()
        + b"\r\nContent-Length: 100\r\n\r\n"
    )
    assert raw(server, head + GOOD[:10], shut_write=True)[0] == 400


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\r\n", 400),
        (b"HELLO\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 400),  # HTTP/0.9
        (b"GET / HTTP/x.y\r\n\r\n", 400),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", 431),
    ],
    ids=["blank", "garbage", "http09", "bad-version", "long-line", "long-header", "many-headers"],
)
def test_malformed_requests_get_4xx(server: ReviewServer, data: bytes, expected: int) -> None:
    status, reply = raw(server, data)
    assert status == expected, reply[:200]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"])
def test_other_methods_are_405(server: ReviewServer, method: str) -> None:
    status, _ = raw(server, f"{method} / HTTP/1.1\r\nHost: ".encode() + host(server) + b"\r\n\r\n")
    assert status == 405
    assert raw(server, f"{method} / HTTP/1.1\r\nHost: evil.example\r\n\r\n".encode())[0] == 403


def test_decision_log_with_another_header_is_refused_at_start_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "repo"
    queue = write_queue(root)
    reviewed = root / "data/labels/reviewed.csv"
    reviewed.parent.mkdir(parents=True)
    reviewed.write_text("clip,verdict\nc_000,sad\n")
    with pytest.raises(ReviewedLogError, match="has columns"):
        make_server(queue, reviewed, "127.0.0.1", 0, root=root)
    assert review.main(["--queue", str(queue), "--reviewed", str(reviewed), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "reviewed.csv has columns ['clip', 'verdict']" in err[0]
    assert "move it aside" in err[0]
    reviewed.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ReviewedLogError):
        make_server(queue, reviewed, "127.0.0.1", 0, root=root)


def test_unreadable_queue_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    queue = tmp_path / "q.csv"
    queue.write_bytes(b"rank,clip\n\xff\xfe\n")
    assert review.main(["--queue", str(queue), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "q.csv" in err[0]


# ---------------------------------------------------------------------------------------------
# Slow clients and load


def test_half_request_is_answered_or_closed_and_others_are_served(server: ReviewServer) -> None:
    stalled = []
    for data in (
        b"",  # connects and says nothing
        b"GET /api/queue HTTP/1.1\r\nHost: " + host(server) + b"\r\n",  # no blank line
        b"GET /api/q",
        b"POST /api/decision HTTP/1.1\r\nHost: "
        + host(server)
        + b"\r\nX-Seda-Token: "
        + server.token.encode()
        + b'\r\nContent-Length: 60\r\n\r\n{"clip_id"',
    ):
        sock = socket.create_connection(server.server_address[:2], timeout=LIMIT)
        sock.sendall(data)
        stalled.append(sock)
    began = time.monotonic()
    try:
        # Other requests are served meanwhile, at once.
        t = time.monotonic()
        assert get(server, "/api/queue", b"Host: " + host(server) + b"\r\n")[0] == 200
        assert time.monotonic() - t < 1.0
        for sock in stalled:
            reply = _read_all(sock, began)
            assert reply == b"" or reply.startswith(b"HTTP/1.0 408"), reply
    finally:
        for sock in stalled:
            sock.close()
    assert not server.reviewed.exists()


def test_trickling_client_cannot_stretch_the_deadline(server: ReviewServer) -> None:
    data = b"GET /api/queue HTTP/1.1\r\nHost: " + host(server) + b"\r\nX-Pad: " + b"a" * 200
    began = time.monotonic()
    with socket.create_connection(server.server_address[:2], timeout=LIMIT) as sock:
        for byte in data:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            if select.select([sock], [], [], 0.1)[0]:
                break
        reply = _read_all(sock, began)
    assert reply == b"" or reply.startswith(b"HTTP/1.0 408"), reply


def test_200_parallel_connections_are_all_answered(server: ReviewServer) -> None:
    request = b"GET /api/queue HTTP/1.1\r\nHost: " + host(server) + b"\r\n\r\n"
    began = time.monotonic()
    socks = [socket.create_connection(server.server_address[:2], timeout=LIMIT) for _ in range(200)]
    try:
        for sock in socks:
            sock.sendall(request)
        replies = [_read_all(sock, began) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    statuses = [r.split(b" ", 2)[1] if r else b"none" for r in replies]
    assert statuses == [b"200"] * 200
    assert all(len(json.loads(body_of(r))["clips"]) == 3 for r in replies)

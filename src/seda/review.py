"""``seda review``: listen to pseudo-labelled clips and accept, correct, skip or discard them.

A small local web page (stdlib ``http.server``, bound to 127.0.0.1 by default) lists the clips
of ``data/pseudo/review_queue.csv`` (written by ``seda label``, most uncertain first) with an
audio player, the proposed label and its probability, and one button per emotion plus *skip*
and *discard* (keys 1-9, s, d; space plays). Every decision is appended to
``data/labels/reviewed.csv`` (never rewritten; one locked, fsynced write per row) by
:func:`seda.labels.append_reviewed`; the split stage applies the log on the next ``dvc repro``
(:func:`seda.labels.apply_reviewed_labels`).

Only its user can reach it:

* Every request must name the server by an allowed ``Host`` (127.0.0.1, localhost or [::1] with
  the server's port, the address it listens on, and the names given with ``--allow-host``), so
  a web page that rebinds its own DNS name to 127.0.0.1 gets 403, for GET requests too.
* A decision (POST) needs the per-run token in an ``X-Seda-Token`` header and, when the request
  says where it comes from, an allowed ``Origin``. Browsers send ``Origin`` with every POST, so
  one without it comes from a program (curl, a script) that no web page can drive; it still
  needs the token, and a custom header makes a browser ask first (CORS preflight), which this
  server never grants. ``Origin: null`` (sandboxed frames, file pages) and requests a browser
  marks ``Sec-Fetch-Site: cross-site`` are refused.
* On a loopback address the page carries the token (the Host check keeps it from other sites).
  On any other address (``--host 0.0.0.0``), or with ``--token``, the token is never in the
  page: ``seda review`` prints it (or takes ``--token``), the page asks for it, and the queue,
  the audio and the decisions all need it.
* The server answers only its page, its two scripts, the queue and the audio of clips listed in
  the queue (looked up by clip id, never by a path from the request): anything else gets 403 or
  404. A client has :data:`REQUEST_TIMEOUT` seconds to send its whole request (a client
  trickling bytes cannot stretch it), requests are served by a bounded pool of threads from a
  backlog of 128, and every malformed request gets a 4xx reply.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import ipaddress
import json
import logging
import os
import re
import secrets
import socket
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from seda.errors import ConfigError, InputMissingError, UserError
from seda.labels import (
    DECISIONS,
    REVIEWED_COLUMNS,
    ReviewedLogError,
    append_reviewed,
    latest_decisions,
)
from seda.logs import setup_logging
from seda.palette import label_colours
from seda.pseudolabel import OUT_DIR, QUEUE_NAME, REVIEWED_CSV
from seda.records import ID_PATTERN

log = logging.getLogger(__name__)

QUEUE_CSV = OUT_DIR / QUEUE_NAME
STATIC = {
    "review.js": "text/javascript; charset=utf-8",
    "review.css": "text/css; charset=utf-8",
}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARDS = ("", "0.0.0.0", "::")
TOKEN_HEADER = "X-Seda-Token"
TOKEN_ENV = "SEDA_REVIEW_TOKEN"
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~+/=-]{12,256}")
MAX_BODY = 4096
REQUEST_TIMEOUT = 4.0  # seconds to send a whole request: line, headers and body
WRITE_TIMEOUT = 30.0  # seconds to take a whole reply (an audio clip)
WORKERS = 64  # threads serving connections; more wait in the queue
BACKLOG = 128  # connections the kernel holds before the server accepts them
DECISION_FIELDS = ("clip_id", "decision", "label")
_CHUNK = 1 << 16
_AUTHORITY = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9][a-z0-9._-]*)(?::(\d{1,5}))?")
_ORIGIN = re.compile(r"(https?)://([^/?#@]+)")


# ---------------------------------------------------------------------------------------------
# The queue


class ReviewQueue:
    """The clips ``seda review`` may show and serve (nothing else), with their labels."""

    def __init__(self, queue_csv: str | Path, root: str | Path | None = None) -> None:
        queue_csv = Path(queue_csv)
        if not queue_csv.is_file():
            raise InputMissingError(
                f"{queue_csv} not found: make a review queue first (`seda label --model baseline`)"
            )
        self.root = Path(root or Path.cwd()).resolve()
        try:
            with open(queue_csv, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                header = reader.fieldnames or []
                self.rows = [r for r in reader if ID_PATTERN.fullmatch(r.get("clip_id") or "")]
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise UserError(f"cannot read the review queue {queue_csv}: {err}") from err
        if "clip_id" not in header or "path" not in header:
            raise UserError(
                f"{queue_csv} is not a review queue (no clip_id or path column): make one with "
                "`seda label --model baseline`"
            )
        self.labels = [c.removeprefix("prob_") for c in header if c.startswith("prob_")]
        self.by_id = {r["clip_id"]: r for r in self.rows}

    def audio_path(self, clip_id: str) -> Path | None:
        """The clip's file when the clip is queued and its file lies under the root, else None."""
        row = self.by_id.get(clip_id)
        if row is None or not row.get("path"):
            return None
        path = Path(row["path"])
        path = (path if path.is_absolute() else self.root / path).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            return None
        return path

    def payload(self, reviewed: Path) -> dict[str, Any]:
        latest = latest_decisions(reviewed, DECISIONS)
        clips = []
        for r in self.rows:
            d = latest.get(r["clip_id"])
            status = "pending" if d is None else d["decision"]
            clips.append(
                {
                    "clip_id": r["clip_id"],
                    "rank": r.get("rank", ""),
                    "proposed": r.get("predicted", ""),
                    "probability": _float(r.get("probability")),
                    "margin": _float(r.get("margin")),
                    "probs": {k: _float(r.get(f"prob_{k}")) for k in self.labels},
                    "item_id": r.get("item_id", ""),
                    "speaker": r.get("speaker", ""),
                    "source_url": r.get("source_url", ""),
                    "start": _float(r.get("start")),
                    "end": _float(r.get("end")),
                    "status": status,
                    "decided_label": (d or {}).get("label", ""),
                }
            )
        return {
            "labels": self.labels,
            "colours": label_colours(self.labels) if self.labels else {},
            "model": self.rows[0].get("model", "") if self.rows else "",
            "clips": clips,
        }


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def check_reviewed_log(path: Path) -> None:
    """Refuse, before serving, a decision log seda could not append to: another header, not a
    file, unreadable, or in a folder that cannot be written (:class:`ReviewedLogError`)."""
    if path.exists():
        if not path.is_file():
            raise ReviewedLogError(f"the decision log {path} is not a file")
        if path.stat().st_size == 0:
            return
        try:
            with open(path, encoding="utf-8-sig", newline="") as fh:
                header = next(csv.reader([fh.readline()]), [])
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise ReviewedLogError(f"cannot read the decision log {path}: {err}") from err
        if tuple(header) != REVIEWED_COLUMNS:
            shown = header[:12] + (["..."] if len(header) > 12 else [])
            raise ReviewedLogError(
                f"{path} has columns {shown}, expected {list(REVIEWED_COLUMNS)}: move it aside "
                "and start a new one"
            )
        if not os.access(path, os.W_OK):
            raise ReviewedLogError(f"cannot write decisions to {path}: permission denied")
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ReviewedLogError(f"cannot create the decision log {path}: {parent} is not writable")


# ---------------------------------------------------------------------------------------------
# Host names


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the server to this machine."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def parse_authority(value: str, default_port: int) -> tuple[str, int] | None:
    """``(name, port)`` of a Host header or an ``--allow-host`` entry (lower case, IPv6 in
    brackets); None when it is not one."""
    match = _AUTHORITY.fullmatch(value.strip().lower())
    if match is None:
        return None
    port = int(match[2]) if match[2] else default_port
    return (match[1], port) if 0 < port < 65536 else None


def _authority_name(host: str) -> str:
    host = host.lower()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


# ---------------------------------------------------------------------------------------------
# The server


class ReviewServer(HTTPServer):
    """The review page's server: a bounded pool of threads, Host/Origin/token checks (see the
    module docstring)."""

    request_queue_size = BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        queue: ReviewQueue,
        reviewed: Path,
        token: str,
        *,
        require_token: bool = False,
        allow_hosts: Sequence[str] = (),
        request_timeout: float = REQUEST_TIMEOUT,
        workers: int = WORKERS,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, ReviewHandler)
        self.queue, self.reviewed, self.token = queue, reviewed, token
        self.require_token = require_token
        self.request_timeout = request_timeout
        port = int(self.server_address[1])
        allowed = {(name, port) for name in LOOPBACK_NAMES}
        if address[0] not in WILDCARDS:
            allowed.add((_authority_name(address[0]), port))
        for entry in allow_hosts:
            parsed = parse_authority(entry, port)
            if parsed is None:
                self.server_close()
                raise ConfigError(
                    f"--allow-host {entry!r} is not a host name or address (NAME or NAME:PORT)"
                )
            allowed.add(parsed)
        self.allowed = frozenset(allowed)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seda-review")

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{_authority_name(str(host))}:{port}/"

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            self._pool.submit(self._serve, request, client_address)
        except RuntimeError:  # shutting down
            self.shutdown_request(request)

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        err = sys.exc_info()[1]
        if isinstance(err, OSError):  # the client went away
            log.debug("review: connection from %s: %s", client_address[0], err)
        else:
            log.exception("review: error serving %s", client_address[0])

    def server_close(self) -> None:
        super().server_close()
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class _DeadlineReader(io.RawIOBase):
    """Socket reads that together must end by one deadline: each read waits only for the time
    left, so a client sending a byte now and then cannot hold the connection."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self.sock = sock
        self.deadline = time.monotonic() + seconds
        self.received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request took too long to arrive")
        self.sock.settimeout(left)
        n = self.sock.recv_into(buffer)
        self.received += n
        return n


class ReviewHandler(BaseHTTPRequestHandler):
    server: ReviewServer
    server_version = "seda-review"
    protocol_version = "HTTP/1.0"  # one request per connection
    default_request_version = "HTTP/1.0"  # replies to malformed requests keep their status line

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("review: " + format, *args)

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the stdlib's reader: replaced by one with a deadline
        self._reader = _DeadlineReader(self.connection, self.server.request_timeout)
        self.rfile = io.BufferedReader(self._reader)
        self._replied = False
        self._unread = True  # until the whole request is read: then closing needs no draining

    def finish(self) -> None:
        super().finish()
        if self._unread:
            _drain(self.connection)

    def send_response(self, code: int, message: str | None = None) -> None:
        self._replied = True
        self.connection.settimeout(WRITE_TIMEOUT)  # reading is over
        super().send_response(code, message)

    # -- one request ---------------------------------------------------------------------------

    def handle_one_request(self) -> None:
        self.close_connection = True
        self.command, self.requestline, self.request_version = None, "", "HTTP/1.0"
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self._error(HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long")
                return
            if not self.raw_requestline:
                self._unread = False
                return  # connected and closed without a request
            if not self.parse_request():
                if not self._replied:
                    self._error(HTTPStatus.BAD_REQUEST, "empty request line")
                return
            if len(self.requestline.split()) == 2:
                self._error(HTTPStatus.BAD_REQUEST, "HTTP/0.9 requests are not served")
                return
            lengths = self.headers.get_all("Content-Length") or []
            self._unread = bool(self.headers.get_all("Transfer-Encoding")) or any(
                v.strip() not in ("", "0") for v in lengths
            )
            if not self._host_ok():
                return
            handler = {"GET": self._get, "HEAD": self._head, "POST": self._post}.get(
                str(self.command)
            )
            if handler is None:
                self._error(HTTPStatus.METHOD_NOT_ALLOWED, "use GET, HEAD or POST")
                return
            handler()
        except TimeoutError:
            self._unread = False  # the client stalled: nothing to drain
            if not self._replied and self._reader.received:
                with contextlib.suppress(OSError):
                    self._error(HTTPStatus.REQUEST_TIMEOUT, "the request took too long")
        except OSError:
            raise  # the client went away: the server logs it quietly
        except Exception as err:
            if isinstance(err, UserError):
                log.error("review: %s", err)
                message = str(err)
            else:
                log.exception("review: error answering %r", self.requestline)
                message = "internal error: see the terminal running seda review"
            if not self._replied:
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, message)

    # -- checks --------------------------------------------------------------------------------

    def _host_ok(self) -> bool:
        """True when the Host header names this server by an allowed name (else answered)."""
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1:
            self._error(HTTPStatus.BAD_REQUEST, "the request needs exactly one Host header")
            return False
        host = parse_authority(hosts[0], 80)
        if host is None:
            self._error(HTTPStatus.BAD_REQUEST, "malformed Host header")
            return False
        if host not in self.server.allowed:
            port = self.server.server_address[1]
            self._error(
                HTTPStatus.FORBIDDEN,
                f"this server does not answer to host {host[0]}:{host[1]}: open "
                f"http://127.0.0.1:{port}/ or start seda review with --allow-host {host[0]}"
                + ("" if host[1] == port else f":{host[1]}"),
            )
            return False
        return True

    def _origin_ok(self) -> bool:
        """For a POST: no Origin (not a browser), or an allowed one (else answered 403)."""
        origins = self.headers.get_all("Origin") or []
        site = (self.headers.get("Sec-Fetch-Site") or "").lower()
        if site in ("cross-site", "same-site"):
            self._error(HTTPStatus.FORBIDDEN, "requests from other sites are refused")
            return False
        if not origins:
            return True
        match = _ORIGIN.fullmatch(origins[0].strip().lower()) if len(origins) == 1 else None
        parsed = None
        if match is not None:
            parsed = parse_authority(match[2], 443 if match[1] == "https" else 80)
        if parsed is None or parsed not in self.server.allowed:
            self._error(HTTPStatus.FORBIDDEN, "requests from other origins are refused")
            return False
        return True

    def _token_ok(self) -> bool:
        """True when the request carries the token (else answered 403)."""
        given = self.headers.get(TOKEN_HEADER, "")
        if secrets.compare_digest(given.encode("latin-1"), self.server.token.encode()):
            return True
        self._error(HTTPStatus.FORBIDDEN, "missing or wrong token")
        return False

    def _route(self) -> str | None:
        """The decoded request path, or None after answering 403 for a suspicious one."""
        # Not urlsplit: it would read "//host/x" as a network location and drop it.
        path = unquote(self.path.split("?", 1)[0].split("#", 1)[0])
        if "\\" in path or "\x00" in path or path.startswith("//") or ".." in path.split("/"):
            self._error(HTTPStatus.FORBIDDEN, "forbidden path")
            return None
        return path

    # -- GET -----------------------------------------------------------------------------------

    def _head(self) -> None:
        self._get(head=True)

    def _get(self, head: bool = False) -> None:
        path = self._route()
        if path is None:
            return
        if path in ("/", "/index.html"):
            # Off loopback the page never carries the token: it asks the user for it.
            token = "" if self.server.require_token else self.server.token
            page = _static("index.html").replace("{{TOKEN}}", token)
            self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8", head)
            return
        if path.startswith("/static/") and path.removeprefix("/static/") in STATIC:
            name = path.removeprefix("/static/")
            self._send(HTTPStatus.OK, _static(name).encode(), STATIC[name], head)
            return
        if path != "/api/queue" and not path.startswith("/audio/"):
            self._error(HTTPStatus.NOT_FOUND, "not found")
            return
        if (self.headers.get("Sec-Fetch-Site") or "").lower() in ("cross-site", "same-site"):
            self._error(HTTPStatus.FORBIDDEN, "requests from other sites are refused")
            return
        if self.server.require_token and not self._token_ok():
            return
        if path == "/api/queue":
            body = json.dumps(self.server.queue.payload(self.server.reviewed)).encode()
            self._send(HTTPStatus.OK, body, "application/json", head)
            return
        clip_id = path.removeprefix("/audio/")
        file = self.server.queue.audio_path(clip_id) if ID_PATTERN.fullmatch(clip_id) else None
        if file is None:
            self._error(HTTPStatus.NOT_FOUND, "not a queued clip")
        else:
            self._send_file(file, head)

    # -- POST ----------------------------------------------------------------------------------

    def _post(self) -> None:
        path = self._route()
        if path is None:
            return
        if path != "/api/decision":
            self._error(HTTPStatus.NOT_FOUND, "not found")
            return
        if not self._origin_ok() or not self._token_ok():
            return
        body = self._body()
        if body is None:
            return
        try:
            row = self._decision_row(_decision(body))
        except ValueError as err:
            self._error(HTTPStatus.BAD_REQUEST, str(err))
            return
        try:
            written = append_reviewed(self.server.reviewed, row)
        except OSError as err:
            log.error("review: cannot save a decision to %s: %s", self.server.reviewed, err)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"cannot save the decision: {err}")
            return
        log.info("review: %s -> %s %s", row["clip_id"], row["decision"], row["label"])
        self._send(
            HTTPStatus.OK, json.dumps({"ok": True, "row": written}).encode(), "application/json"
        )

    def _body(self) -> bytes | None:
        """The request body (at most MAX_BODY bytes), or None after answering 4xx."""
        if self.headers.get_all("Transfer-Encoding"):
            self._error(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length")
            return None
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            self._error(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length")
            return None
        value = lengths[0].strip()
        if len(lengths) != 1 or not value.isascii() or not value.isdigit():
            self._error(HTTPStatus.BAD_REQUEST, "malformed Content-Length")
            return None
        length = int(value) if len(value) < 20 else MAX_BODY + 1
        if length > MAX_BODY:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
            return None
        if length == 0:
            self._error(HTTPStatus.BAD_REQUEST, "empty body")
            return None
        body = self.rfile.read(length)
        self._unread = False
        if len(body) != length:
            self._error(HTTPStatus.BAD_REQUEST, "body shorter than its Content-Length")
            return None
        return body

    def _decision_row(self, body: dict[str, str]) -> dict[str, Any]:
        queue = self.server.queue
        clip_id, decision, label = body["clip_id"], body["decision"], body["label"]
        row = queue.by_id.get(clip_id)
        if row is None:
            raise ValueError(f"clip {clip_id[:80]!r} is not in the queue")
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
        if decision == "label" and label not in queue.labels:
            raise ValueError(f"label must be one of {', '.join(queue.labels)}")
        return {
            "clip_id": clip_id,
            "item_id": row.get("item_id", ""),
            "path": row.get("path", ""),
            "sha256": row.get("sha256", ""),
            "previous_label": row.get("label", ""),
            "proposed_label": row.get("predicted", ""),
            "probability": row.get("probability", ""),
            "model": row.get("model", ""),
            "decision": decision,
            "label": label if decision == "label" else "",
        }

    # -- responses -----------------------------------------------------------------------------

    def _send(self, status: HTTPStatus, body: bytes, ctype: str, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; media-src 'self' blob:")
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", "GET, HEAD, POST")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(
            status,
            json.dumps({"error": message}).encode(),
            "application/json",
            head=self.command == "HEAD",
        )

    def _send_file(self, file: Path, head: bool) -> None:
        """The file, or the byte range asked for (players seek with Range requests)."""
        size = file.stat().st_size
        start, end = 0, size - 1
        match = re.fullmatch(r"bytes=(\d{1,18})?-(\d{1,18})?", self.headers.get("Range") or "")
        status = HTTPStatus.OK
        if match and (match[1] or match[2]):
            if match[1]:
                start = int(match[1])
                end = min(int(match[2]), size - 1) if match[2] else size - 1
            else:
                start = max(0, size - int(match[2]))
            if start > end:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = HTTPStatus.PARTIAL_CONTENT
        self.send_response(status)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if head:
            return
        with open(file, "rb") as fh:
            fh.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = fh.read(min(_CHUNK, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)


def _decision(body: bytes) -> dict[str, str]:
    """The decision a POST body holds: a JSON object of strings (ValueError says what is off)."""
    try:
        data = json.loads(body.decode("utf-8"))
    except RecursionError:
        raise ValueError("the body is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"the body is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    unknown = sorted(set(data) - set(DECISION_FIELDS))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)[:200]}")
    out = {}
    for key in DECISION_FIELDS:
        value = data.get(key)
        if value is None and key == "label":
            value = ""
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string")
        out[key] = value
    return out


def _drain(sock: socket.socket, seconds: float = 1.0, limit: int = 1 << 20) -> None:
    """Close gently after answering a request whose body was not read: stop sending, then read
    and drop what the client still sends (a while), so that closing does not reset the
    connection before the client has read the reply."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        deadline, drained = time.monotonic() + seconds, 0
        while drained < limit:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            data = sock.recv(_CHUNK)
            if not data:
                break
            drained += len(data)


def _static(name: str) -> str:
    return resources.files("seda").joinpath("review_static", name).read_text(encoding="utf-8")


def make_server(
    queue_csv: str | Path = QUEUE_CSV,
    reviewed_csv: str | Path = REVIEWED_CSV,
    host: str = "127.0.0.1",
    port: int = 8765,
    root: str | Path | None = None,
    *,
    allow_hosts: Sequence[str] = (),
    token: str | None = None,
    require_token: bool | None = None,
    request_timeout: float = REQUEST_TIMEOUT,
) -> ReviewServer:
    """A server for the queue (not yet serving: call ``serve_forever``); port 0 picks a free one.

    ``require_token`` (default: when ``host`` is not a loopback address) keeps the token out of
    the page: the user types it, and the queue and audio need it too. ``token`` defaults to a
    new random one.
    """
    if token is not None and not TOKEN_PATTERN.fullmatch(token):
        raise ConfigError("the token must be 12 to 256 letters, digits or ._~+/=- (no spaces)")
    queue = ReviewQueue(queue_csv, root)
    reviewed = Path(reviewed_csv)
    check_reviewed_log(reviewed)
    return ReviewServer(
        (host, port),
        queue,
        reviewed,
        token or secrets.token_urlsafe(18),
        require_token=not is_loopback(host) if require_token is None else require_token,
        allow_hosts=allow_hosts,
        request_timeout=request_timeout,
    )


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = argparse.ArgumentParser(prog="seda review", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; any other one needs the token)",
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--queue", type=Path, default=QUEUE_CSV)
    parser.add_argument("--reviewed", type=Path, default=REVIEWED_CSV)
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME[:PORT]",
        help="another name the browser may use for this server (repeatable), e.g. the machine's "
        "address with --host 0.0.0.0, or localhost:9000 behind `ssh -L 9000:localhost:8765`",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV) or None,
        help=f"a token the page asks for (default: ${TOKEN_ENV}; off loopback without one, a new "
        "random one, printed here; on loopback without one, the page needs none)",
    )
    args = parser.parse_args(argv)
    loopback = is_loopback(args.host)
    try:
        server = make_server(
            args.queue,
            args.reviewed,
            args.host,
            args.port,
            allow_hosts=args.allow_host,
            token=args.token,
            require_token=not loopback or args.token is not None,
        )
    except UserError as err:
        print(f"seda review: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(
            f"seda review: error: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr
        )
        return 2
    if not loopback:
        log.warning(
            "review: listening on %s:%s (plain HTTP, not encrypted): the page asks for a token, "
            "and the queue, the audio and decisions need it; open it by a name given with "
            "--allow-host",
            args.host,
            server.server_address[1],
        )
    pending = len(server.queue.rows)
    print(f"seda review: {pending} queued clip(s) at {server.url}  (Ctrl+C to stop)", flush=True)
    if server.require_token:
        if args.token:
            print("seda review: the page asks for the token you gave (--token)", flush=True)
        else:
            print(
                f"seda review: token (type it into the page; shown only here): {server.token}",
                flush=True,
            )
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

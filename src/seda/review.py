"""``seda review``: listen to pseudo-labelled clips and accept, correct, skip or discard them.

A small local web page (stdlib ``http.server``, bound to 127.0.0.1 by default) lists the clips
of ``data/pseudo/review_queue.csv`` (written by the ``label`` stage, most uncertain first) with an
audio player, the proposed label and its probability, and one button per emotion plus *skip*
and *discard* (keys 1-9, s, d; space plays). Every decision is appended to
``data/labels/reviewed.csv`` (never rewritten; one locked, fsynced write per row), with a time
stamp and the previous and proposed labels. :func:`apply_reviewed_labels` turns that log into
labels for the next ``dvc repro`` (the latest label/discard decision of a clip wins; skips only
record that someone listened).

The server answers only its page, its two scripts, the queue and the audio of clips listed in
the queue (looked up by clip id, never by a path from the request): anything else gets 403 or
404. Decisions need the page's per-run token and a loopback Host header, so another web site
open in the same browser cannot post decisions.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import logging
import os
import re
import secrets
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from seda.config import ConfigError
from seda.io import read_csv
from seda.logs import setup_logging

log = logging.getLogger(__name__)

REVIEWED_CSV = Path("data/labels/reviewed.csv")
QUEUE_CSV = Path("data/pseudo/review_queue.csv")
REVIEWED_COLUMNS = (
    "timestamp",
    "clip_id",
    "item_id",
    "path",
    "sha256",
    "previous_label",
    "proposed_label",
    "probability",
    "model",
    "decision",
    "label",
)
DECISIONS = ("label", "skip", "discard")
ID_OK = re.compile(r"[a-z0-9_-]+")
STATIC = {
    "review.js": "text/javascript; charset=utf-8",
    "review.css": "text/css; charset=utf-8",
}
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
MAX_BODY = 4096
_CHUNK = 1 << 16


# ---------------------------------------------------------------------------------------------
# The decision log


def append_reviewed(path: str | Path, row: Mapping[str, Any]) -> dict[str, str]:
    """Append one decision row (header first when the file is new) under an exclusive lock.

    The row is written with one ``write`` and fsynced; a torn last line left by a crash is
    closed with a newline first, so it never glues onto the new row. Returns the row written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    values = {k: "" if row.get(k) is None else str(row.get(k)) for k in REVIEWED_COLUMNS}
    values["timestamp"] = values["timestamp"] or datetime.now(UTC).isoformat(timespec="seconds")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    with open(path, "a+b") as fh, _locked(fh):
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            writer.writerow(REVIEWED_COLUMNS)
        else:
            fh.seek(0)
            header = next(csv.reader([fh.readline().decode("utf-8-sig")]), [])
            if tuple(header) != REVIEWED_COLUMNS:
                raise ConfigError(
                    f"{path} has columns {header}, expected {list(REVIEWED_COLUMNS)}: "
                    "move it aside and start a new one"
                )
            fh.seek(size - 1)
            if fh.read(1) != b"\n":
                buf.write("\n")
        writer.writerow([values[k] for k in REVIEWED_COLUMNS])
        fh.seek(0, os.SEEK_END)
        fh.write(buf.getvalue().encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())
    return values


@contextlib.contextmanager
def _locked(fh: Any) -> Any:
    """An exclusive advisory lock on the open file itself (no lock file left behind)."""
    import fcntl

    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def read_reviewed(path: str | Path = REVIEWED_CSV) -> list[dict[str, str]]:
    """All decision rows (empty when the file does not exist); torn rows are skipped."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return []
    rows = []
    for r in read_csv(path):
        if r.get("clip_id") and r.get("decision") in DECISIONS and None not in r:
            rows.append({k: v or "" for k, v in r.items()})
    return rows


def latest_decisions(
    path: str | Path = REVIEWED_CSV, kinds: Iterable[str] = ("label", "discard")
) -> dict[str, dict[str, str]]:
    """The last decision of each clip among ``kinds`` (file order is time order)."""
    wanted = set(kinds)
    out: dict[str, dict[str, str]] = {}
    for r in read_reviewed(path):
        if r["decision"] in wanted and (r["decision"] != "label" or ID_OK.fullmatch(r["label"])):
            out[r["clip_id"]] = r
    return out


def apply_reviewed_labels(
    rows: list[dict[str, Any]], path: str | Path = REVIEWED_CSV
) -> list[dict[str, Any]]:
    """Rows (clips with ``clip_id``, ``label``, optionally ``sha256``) with reviewed labels set
    and discarded clips removed. A decision about a clip whose audio has changed since (another
    sha256) is ignored with a warning: it was about other sound."""
    decisions = latest_decisions(path)
    if not decisions:
        return list(rows)
    out: list[dict[str, Any]] = []
    relabelled = discarded = stale = 0
    for r in rows:
        d = decisions.get(str(r.get("clip_id", "")))
        if d is None:
            out.append(r)
            continue
        if d["sha256"] and r.get("sha256") and d["sha256"] != r["sha256"]:
            stale += 1
            out.append(r)
            continue
        if d["decision"] == "discard":
            discarded += 1
            continue
        relabelled += 1
        out.append({**r, "label": d["label"]})
    log.info("reviewed labels (%s): %d clip(s) labelled, %d discarded", path, relabelled, discarded)
    if stale:
        log.warning(
            "reviewed labels: %d decision(s) ignored: those clips' audio changed since review",
            stale,
        )
    return out


# ---------------------------------------------------------------------------------------------
# The queue


class ReviewQueue:
    """The clips ``seda review`` may show and serve (nothing else), with their labels."""

    def __init__(self, queue_csv: str | Path, root: str | Path | None = None) -> None:
        queue_csv = Path(queue_csv)
        if not queue_csv.is_file():
            raise ConfigError(
                f"{queue_csv} not found: run the label stage first "
                "(`dvc exp run -S label.enabled=true`)"
            )
        self.root = Path(root or Path.cwd()).resolve()
        with open(queue_csv, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            self.rows = [r for r in reader if ID_OK.fullmatch(r.get("clip_id") or "")]
            header = reader.fieldnames or []
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
        from seda.predict import label_colours

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


# ---------------------------------------------------------------------------------------------
# The server


class ReviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], queue: ReviewQueue, reviewed: Path, token: str
    ) -> None:
        super().__init__(address, ReviewHandler)
        self.queue, self.reviewed, self.token = queue, reviewed, token

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


class ReviewHandler(BaseHTTPRequestHandler):
    server: ReviewServer
    server_version = "seda-review"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("review: " + format, *args)

    # -- routing -------------------------------------------------------------------------------

    def _route(self) -> str | None:
        """The decoded request path, or None after answering 403 for a suspicious one."""
        # Not urlsplit: it would read "//host/x" as a network location and drop it.
        path = unquote(self.path.split("?", 1)[0].split("#", 1)[0])
        if "\\" in path or "\x00" in path or path.startswith("//") or ".." in path.split("/"):
            self._error(HTTPStatus.FORBIDDEN, "forbidden path")
            return None
        return path

    def do_GET(self) -> None:
        self._get(head=False)

    def do_HEAD(self) -> None:
        self._get(head=True)

    def _get(self, head: bool) -> None:
        path = self._route()
        if path is None:
            return
        if path in ("/", "/index.html"):
            page = _static("index.html").replace("{{TOKEN}}", self.server.token)
            self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8", head)
        elif path.startswith("/static/") and path.removeprefix("/static/") in STATIC:
            name = path.removeprefix("/static/")
            self._send(HTTPStatus.OK, _static(name).encode(), STATIC[name], head)
        elif path == "/api/queue":
            body = json.dumps(self.server.queue.payload(self.server.reviewed)).encode()
            self._send(HTTPStatus.OK, body, "application/json", head)
        elif path.startswith("/audio/"):
            clip_id = path.removeprefix("/audio/")
            file = self.server.queue.audio_path(clip_id) if ID_OK.fullmatch(clip_id) else None
            if file is None:
                self._error(HTTPStatus.NOT_FOUND, "not a queued clip")
            else:
                self._send_file(file, head)
        else:
            self._error(HTTPStatus.NOT_FOUND, "not found")

    def do_POST(self) -> None:
        path = self._route()
        if path is None:
            return
        if path != "/api/decision":
            self._error(HTTPStatus.NOT_FOUND, "not found")
            return
        if not self._host_ok() or not secrets.compare_digest(
            self.headers.get("X-Seda-Token", ""), self.server.token
        ):
            self._error(HTTPStatus.FORBIDDEN, "bad token or host")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            self._error(HTTPStatus.BAD_REQUEST, "body missing or too large")
            return
        try:
            body = json.loads(self.rfile.read(length))
            row = self._decision_row(body)
        except (ValueError, TypeError, AttributeError) as err:
            self._error(HTTPStatus.BAD_REQUEST, str(err))
            return
        written = append_reviewed(self.server.reviewed, row)
        log.info("review: %s -> %s %s", row["clip_id"], row["decision"], row["label"])
        self._send(
            HTTPStatus.OK, json.dumps({"ok": True, "row": written}).encode(), "application/json"
        )

    def _decision_row(self, body: dict[str, Any]) -> dict[str, Any]:
        queue = self.server.queue
        clip_id, decision = str(body.get("clip_id", "")), str(body.get("decision", ""))
        label = str(body.get("label") or "")
        row = queue.by_id.get(clip_id)
        if row is None:
            raise ValueError(f"clip {clip_id!r} is not in the queue")
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

    def _host_ok(self) -> bool:
        bound = self.server.server_address[0]
        if bound not in LOOPBACK:
            return True  # the user chose to listen elsewhere; the token still guards decisions
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        return host in LOOPBACK

    # -- responses -----------------------------------------------------------------------------

    def _send(self, status: HTTPStatus, body: bytes, ctype: str, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; media-src 'self'")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, json.dumps({"error": message}).encode(), "application/json")

    def _send_file(self, file: Path, head: bool) -> None:
        """The file, or the byte range asked for (players seek with Range requests)."""
        size = file.stat().st_size
        start, end = 0, size - 1
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range") or "")
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


def _static(name: str) -> str:
    return resources.files("seda").joinpath("review_static", name).read_text(encoding="utf-8")


def make_server(
    queue_csv: str | Path = QUEUE_CSV,
    reviewed_csv: str | Path = REVIEWED_CSV,
    host: str = "127.0.0.1",
    port: int = 8765,
    root: str | Path | None = None,
) -> ReviewServer:
    """A server for the queue (not yet serving: call ``serve_forever``); port 0 picks a free one."""
    queue = ReviewQueue(queue_csv, root)
    return ReviewServer((host, port), queue, Path(reviewed_csv), secrets.token_urlsafe(24))


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = argparse.ArgumentParser(prog="seda review", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--queue", type=Path, default=QUEUE_CSV)
    parser.add_argument("--reviewed", type=Path, default=REVIEWED_CSV)
    args = parser.parse_args(argv)
    try:
        server = make_server(args.queue, args.reviewed, args.host, args.port)
    except ConfigError as err:
        print(f"review: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"review: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 2
    if args.host not in LOOPBACK:
        log.warning(
            "review: listening on %s: anyone who can reach it can listen to the clips", args.host
        )
    pending = len(server.queue.rows)
    print(f"seda review: {pending} queued clip(s) at {server.url}  (Ctrl+C to stop)", flush=True)
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

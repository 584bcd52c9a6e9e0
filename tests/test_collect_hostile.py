"""Issue #11: the collector against hostile servers and corpora with odd entries.

A throw-away HTTP server on 127.0.0.1 reproduces each stalled, dropped, lying, refusing and
throttling download (through yt-dlp's generic extractor on direct media URLs); a temporary corpus
holds a symbolic link loop, a dangling link, a FIFO, a socket, a device and an unreadable file.
Nothing here reaches the internet, and every test is bounded in time.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import soundfile as sf
from omegaconf import OmegaConf

import seda.collect.index
from seda.collect import (
    FolderSettings,
    YoutubeSettings,
    YtdlpSettings,
    collect_dataset,
    failure_kind,
    index_corpus,
    is_transient,
)
from seda.collect.deadline import Deadline, DeadlineExceeded, retry_after_seconds
from seda.io import sha256_file
from seda.stages import collect as collect_stage

RAW = Path("data/raw")
CACHE = Path("data/cache/collect")
# pytest-timeout's thread method: the collector's own deadline alarm uses SIGALRM.
bounded = pytest.mark.timeout(150, method="thread")


def _read(path: str | Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _tone(seconds: float = 1.0, sr: int = 16000) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr, format="WAV")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Hostile downloads


class HostileServer:
    """Misbehaves by path; every wait ends when the test does (``stop``), so no thread outlives
    it by more than a moment. Logs (time, method, path, status) of every request."""

    WAV = _tone(1.0)
    # path -> how it misbehaves
    CASES: ClassVar[dict[str, str]] = {
        "/stall-headers.wav": "accepts the connection, never answers",
        "/stall-body.wav": "a third of the body, then silence with the connection open",
        "/drop-body.wav": "a third of the body, then hangs up",
        "/huge.wav": "Content-Length: 2000000000, a few bytes, then hangs up",
        "/gone404.wav": "404 Not Found",
        "/gone410.wav": "410 Gone",
        "/page.html": "an HTML page without media (yt-dlp: Unsupported URL)",
        "/busy429.wav": "429 with Retry-After: 1 the first time, then the file",
        "/error500.wav": "500 the first time, then the file",
        "/trickle.wav": "4 KiB, then one byte a second, forever",
    }
    PERMANENT: ClassVar[set[str]] = {"/gone404.wav", "/gone410.wav", "/page.html"}
    TRANSIENT: ClassVar[set[str]] = {
        "/stall-headers.wav",
        "/stall-body.wav",
        "/drop-body.wav",
        "/huge.wav",
        "/trickle.wav",
    }
    RECOVER: ClassVar[set[str]] = {"/busy429.wav", "/error500.wav"}

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.log: list[tuple[float, str, str, int]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                try:
                    server.serve(self)
                except OSError:  # the client gave up: expected here
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda *a: None
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def gets(self, path: str) -> int:
        return sum(1 for _, m, p, _ in self.log if m == "GET" and p == path)

    def _note(self, h: BaseHTTPRequestHandler, status: int) -> None:
        self.log.append((time.monotonic(), h.command, h.path, status))

    def _headers(self, h: BaseHTTPRequestHandler, status: int, length: int, **extra: str) -> None:
        self._note(h, status)
        h.send_response(status)
        h.send_header("Content-Type", "audio/wav" if status == 200 else "text/plain")
        h.send_header("Content-Length", str(length))
        for key, value in extra.items():
            h.send_header(key.replace("_", "-"), value)
        h.end_headers()

    def _error(self, h: BaseHTTPRequestHandler, status: int, **extra: str) -> None:
        body = b"no"
        self._headers(h, status, len(body), **extra)
        h.wfile.write(body)

    def serve(self, h: BaseHTTPRequestHandler) -> None:
        path, data = h.path, self.WAV
        earlier = self.gets(path)
        if path == "/stall-headers.wav":
            self._note(h, 0)
            self.stop.wait(60)
            h.close_connection = True
        elif path in ("/stall-body.wav", "/drop-body.wav"):
            self._headers(h, 200, len(data))
            h.wfile.write(data[: len(data) // 3])
            h.wfile.flush()
            if path == "/stall-body.wav":
                self.stop.wait(60)
            h.close_connection = True
        elif path == "/huge.wav":
            self._headers(h, 200, 2_000_000_000)
            h.wfile.write(data[:4096])
            h.close_connection = True
        elif path == "/gone404.wav":
            self._error(h, 404)
        elif path == "/gone410.wav":
            self._error(h, 410)
        elif path == "/page.html":
            body = b"<html><head><title>nothing</title></head><body>no media</body></html>"
            self._note(h, 200)
            h.send_response(200)
            h.send_header("Content-Type", "text/html")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        elif path == "/busy429.wav" and earlier == 0:
            self._error(h, 429, Retry_After="1")
        elif path == "/error500.wav" and earlier == 0:
            self._error(h, 500)
        elif path == "/trickle.wav":
            self._headers(h, 200, 100_000)
            h.wfile.write(data[:4096])
            h.wfile.flush()
            for i in range(600):
                if self.stop.wait(1.0):
                    break
                h.wfile.write(data[4096 + i : 4097 + i])
                h.wfile.flush()
            h.close_connection = True
        elif path in self.RECOVER:
            self._headers(h, 200, len(data))
            h.wfile.write(data)
        else:
            self._error(h, 404)


@pytest.fixture
def hostile_server(monkeypatch):
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = HostileServer()
    server.thread.start()
    yield server
    server.stop.set()
    server.httpd.shutdown()
    server.httpd.server_close()


def _hostile_settings(tmp_path: Path, server: HostileServer) -> YoutubeSettings:
    sources = tmp_path / "sources.csv"
    lines = [f"{server.url}{path},calm,s1\n" for path in server.CASES]
    sources.write_text("url,label,speaker\n" + "".join(lines), encoding="utf-8")
    return YoutubeSettings(
        kind="youtube",
        name="web",
        root=str(tmp_path),
        sources=str(sources),
        # socket_timeout above the trickle's 1 s between bytes: only the deadline stops it.
        ytdlp=YtdlpSettings(
            retries=2, socket_timeout=2.0, backoff_seconds=0.05, timeout_seconds=5.0
        ),
    )


def _partial_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".part" in p.name or p.suffix == ".ytdl"]


@bounded
def test_hostile_downloads_are_bounded_classified_and_remembered(
    tmp_path, monkeypatch, hostile_server
):
    monkeypatch.chdir(tmp_path)
    server = hostile_server
    settings = _hostile_settings(tmp_path, server)

    started = time.monotonic()
    first = collect_dataset(settings, RAW, CACHE)
    elapsed = time.monotonic() - started
    # Ten urls; the slowest cost one 5 s deadline each, not minutes.
    assert elapsed < 60, elapsed

    got = {Path(r["source_url"]).name for r in _read(RAW / "manifest.csv")}
    assert got == {"busy429.wav", "error500.wav"}
    failed = {"/" + Path(f["url"]).name: f for f in _read(RAW / "failures.csv")}
    assert set(failed) == server.PERMANENT | server.TRANSIENT
    kinds = {path: f["kind"] for path, f in failed.items()}
    assert kinds == {p: "permanent" for p in server.PERMANENT} | {
        p: "transient" for p in server.TRANSIENT
    }
    assert "404" in failed["/gone404.wav"]["reason"]
    assert "410" in failed["/gone410.wav"]["reason"]
    assert "Unsupported URL" in failed["/page.html"]["reason"]
    assert "deadline" in failed["/trickle.wav"]["reason"]
    assert first["failures"] == len(failed) == 8
    # The permanent ones are not retried within the run, the trickle is not retried past its
    # deadline; the others are, with a back-off.
    for path in server.PERMANENT:
        assert server.gets(path) == 1, path
    assert server.gets("/trickle.wav") <= 2  # the extractor's request and the download's
    assert server.gets("/drop-body.wav") >= 4  # 3 tries (extractor + download each)
    assert server.gets("/error500.wav") >= 2
    # 429: the second try waited for Retry-After (1 s), not the 0.05 s back-off.
    times = [t for t, m, p, _ in server.log if p == "/busy429.wav" and m == "GET"]
    assert len(times) >= 2 and times[1] - times[0] >= 0.9
    assert _partial_files(tmp_path) == []

    # A second run: no request for the permanent failures, the transient ones tried again,
    # the successes from the cache.
    seen = len(server.log)
    second = collect_dataset(settings, RAW, CACHE)
    again = {p for _, _, p, _ in server.log[seen:]}
    assert again == server.TRANSIENT
    assert second["skipped_failed"] == 3 and second["from_cache"] == 2
    refailed = {"/" + Path(f["url"]).name: f for f in _read(RAW / "failures.csv")}
    assert {p: f["kind"] for p, f in refailed.items()} == kinds
    for path in server.PERMANENT:
        assert refailed[path] == failed[path]  # the same row, byte for byte
    assert _partial_files(tmp_path) == []

    # --retry-failed (the stage's flag) asks again (a table of only the permanent failures).
    table = Path(settings.sources)
    keep = [line for line in table.read_text("utf-8").splitlines(keepends=True)[1:]]
    keep = [line for line in keep if any(p in line for p in server.PERMANENT)]
    table.write_text("url,label,speaker\n" + "".join(keep), encoding="utf-8")
    params = {"dataset": asdict(settings), "workers": 1}
    Path("params.yaml").write_text(OmegaConf.to_yaml(params), encoding="utf-8")
    argv = ["--out", str(RAW), "--cache", str(CACHE)]
    seen = len(server.log)
    # Nothing is collected from such a table: the stage stops (exit 2) with the first reason.
    assert collect_stage.main(argv) == 2
    assert len(server.log) == seen  # still remembered
    assert collect_stage.main([*argv, "--retry-failed"]) == 2
    assert {p for _, _, p, _ in server.log[seen:]} == server.PERMANENT
    assert _partial_files(tmp_path) == []


@bounded
def test_a_permanent_failure_of_a_local_file_is_retried_once_the_file_changes(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    bad = tmp_path / "src/x.wav"
    bad.write_bytes(b"this is not audio at all" * 10)
    (tmp_path / "src/good.wav").write_bytes(_tone(0.5))
    (tmp_path / "src/sources.csv").write_text(
        "url,label\nx.wav,calm\ngood.wav,calm\n", encoding="utf-8"
    )
    settings = YoutubeSettings(
        kind="youtube",
        name="local",
        root="src",
        sources="src/sources.csv",
        allow_file_urls=True,
        ytdlp=YtdlpSettings(retries=1, socket_timeout=5, backoff_seconds=0.01),
    )
    first = collect_dataset(settings, RAW, CACHE)
    (row,) = _read(RAW / "failures.csv")
    assert row["kind"] == "permanent" and first["items"] == 1
    assert collect_dataset(settings, RAW, CACHE)["skipped_failed"] == 1
    bad.write_bytes(_tone(0.6))
    os.utime(bad, ns=(10**18, 10**18))
    fixed = collect_dataset(settings, RAW, CACHE)
    assert fixed["items"] == 2 and fixed["failures"] == 0 and fixed["skipped_failed"] == 0


@bounded
def test_collect_off_the_main_thread_has_no_alarm_but_works(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "src/x.wav").write_bytes(_tone(0.5))
    (tmp_path / "src/sources.csv").write_text("url,label\nx.wav,calm\n", encoding="utf-8")
    settings = YoutubeSettings(
        kind="youtube",
        name="local",
        root="src",
        sources="src/sources.csv",
        allow_file_urls=True,
        ytdlp=YtdlpSettings(timeout_seconds=30),
    )
    handler = signal.getsignal(signal.SIGALRM)
    result: dict = {}
    worker = threading.Thread(
        target=lambda: result.update(collect_dataset(settings, RAW, CACHE)), daemon=True
    )
    worker.start()
    worker.join(60)
    assert result["items"] == 1 and result["failures"] == 0
    assert signal.getsignal(signal.SIGALRM) is handler


def test_failure_kinds():
    permanent = [
        "ERROR: [generic] x: Unable to download webpage: HTTP Error 404: Not Found",
        "ERROR: [generic] x: Unable to download webpage: HTTP Error 410: Gone",
        "ERROR: [youtube] abc: Private video. Sign in if you've been granted access",
        "ERROR: [youtube] abc: Video unavailable. This video has been removed by the uploader",
        "ERROR: [youtube] abc: The uploader has not made this video available in your country",
        "ERROR: [vimeo] 1: This video is not available from your location due to geo restriction",
        "ERROR: Unsupported URL: https://example.org/page",
        "ERROR: Postprocessing: audio conversion failed: Invalid data found",
    ]
    transient = [
        "ERROR: [generic] x: Unable to download webpage: The read operation timed out",
        "ERROR: [generic] x: HTTP Error 429: Too Many Requests",
        "ERROR: [generic] x: HTTP Error 503: Service Unavailable",
        "ERROR: content too short (expected 2000000000 bytes and served 4096)",
        "ERROR: [generic] geography: Connection reset by peer",
    ]
    for reason in permanent:
        assert failure_kind(reason) == "permanent" and not is_transient(reason), reason
    for reason in transient:
        assert failure_kind(reason) == "transient" and is_transient(reason), reason
    # Transient for a later run, not worth another try now: a deadline, a 403.
    for reason in (
        "[generic] t: no result within the 4 s deadline (dataset.ytdlp.timeout_seconds)",
        "ERROR: [youtube] abc: HTTP Error 403: Forbidden",
    ):
        assert failure_kind(reason) == "transient" and not is_transient(reason)


def test_retry_after_header():
    assert retry_after_seconds("1") == 1.0
    assert retry_after_seconds(" 120 ") == 120.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert (
        50
        < retry_after_seconds(
            time.strftime(  # type: ignore[operator]
                "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60)
            )
        )
        <= 61
    )


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no SIGALRM on this platform")
def test_deadline_interrupts_a_blocked_read_and_restores_an_outer_timer():
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    signal.setitimer(signal.ITIMER_REAL, 30.0)
    a, b = socket.socketpair()
    try:
        deadline = Deadline()
        deadline.set(time.monotonic() + 0.3, 0.3, "[test] x")
        started = time.monotonic()
        message = r"\[test\] x: no result within the 0.3 s"
        with pytest.raises(DeadlineExceeded, match=message), deadline.enforced():
            a.recv(10)  # nothing ever comes
        assert time.monotonic() - started < 3 and deadline.hit
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 25 < left <= 30  # the outer timer is back
        assert not fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        a.close()
        b.close()


# --------------------------------------------------------------------------------------------
# Corpora with odd entries


def _odd_corpus(root: Path) -> dict[str, str]:
    """A valid WAV among odd entries; returns {relative path: expected reason fragment}."""
    for folder in ("Angry", "Sad", "Calm"):
        (root / folder).mkdir(parents=True)
    (root / "Angry/s1_ok.wav").write_bytes(_tone(0.5))
    os.symlink("s1_loop_b.wav", root / "Angry/s1_loop_a.wav")
    os.symlink("s1_loop_a.wav", root / "Angry/s1_loop_b.wav")
    os.symlink("nowhere.wav", root / "Sad/s1_dangling.wav")
    os.mkfifo(root / "Sad/s1_fifo.wav")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(root / "Calm/s1_sock.wav"))
    sock.close()
    os.symlink("..", root / "Calm/up")
    os.symlink(os.devnull, root / "Calm/s1_null.wav")
    return {
        "Angry/s1_loop_a.wav": "symbolic link loop",
        "Angry/s1_loop_b.wav": "symbolic link loop",
        "Sad/s1_dangling.wav": "dangling symbolic link",
        "Sad/s1_fifo.wav": "named pipe",
        "Calm/s1_sock.wav": "socket",
        "Calm/up": "symbolic link loop",
        "Calm/s1_null.wav": "character device",
    }


def _folder_params(root: str) -> dict:
    folder = FolderSettings(
        kind="folder",
        name="odd",
        root=root,
        pattern=r"(?P<label>[^/]+)/(?P<speaker>[^/_]+)_[^/]+$",
        label_map={"Angry": "angry", "Sad": "sad", "Calm": "calm"},
    )
    return {"dataset": asdict(folder), "workers": 1}


def _run_stage(stage: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"seda.stages.{stage}", *args],
        capture_output=True,
        text=True,
        timeout=120,  # a FIFO opened by mistake would block forever
        check=False,
    )


@bounded
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs and sockets")
def test_odd_corpus_entries_are_listed_and_never_block(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expected = _odd_corpus(tmp_path / "corpus")
    Path("params.yaml").write_text(OmegaConf.to_yaml(_folder_params("corpus")), "utf-8")

    index = _run_stage("index", "--out", "data/index/corpus.csv")
    assert index.returncode == 0, index.stderr
    rows = {r["path"]: r for r in _read("data/index/corpus.csv")}
    assert rows["corpus/Angry/s1_ok.wav"]["kind"] == "ok"
    assert int(rows["corpus/Angry/s1_ok.wav"]["size"]) > 0
    for rel, reason in expected.items():
        assert rows[f"corpus/{rel}"]["kind"] == "odd", rel
        assert reason in rows[f"corpus/{rel}"]["reason"], (rel, rows[f"corpus/{rel}"])
    assert len(rows) == len(expected) + 1

    collect = _run_stage("collect", "--out", "data/raw", "--cache", "data/cache/collect")
    assert collect.returncode == 0, collect.stderr
    (item,) = _read("data/raw/manifest.csv")
    assert (item["path"], item["label"], item["speaker"]) == (
        "corpus/Angry/s1_ok.wav",
        "angry",
        "s1",
    )
    failures = {f["path"]: f for f in _read("data/raw/failures.csv")}
    assert set(failures) == {f"corpus/{rel}" for rel in expected}
    for rel, reason in expected.items():
        assert reason in failures[f"corpus/{rel}"]["reason"]
        assert failures[f"corpus/{rel}"]["kind"] == "permanent"
    # The same inputs give the same failures.csv.
    before = Path("data/raw/failures.csv").read_bytes()
    assert _run_stage("collect", "--out", "data/raw").returncode == 0
    assert Path("data/raw/failures.csv").read_bytes() == before


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_unreadable_files_are_failures_not_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "corpus"
    (root / "Sad").mkdir(parents=True)
    (root / "Sad/s1_ok.wav").write_bytes(_tone(0.3))
    locked = root / "Sad/s1_locked.wav"
    locked.write_bytes(_tone(0.3))
    locked.chmod(0)
    if os.access(locked, os.R_OK):
        # root reads anything: pretend the permission check says no, as it would for a user.
        real_access = os.access
        monkeypatch.setattr(
            seda.collect.index.os,
            "access",
            lambda p, mode, **kw: False if Path(p).name == locked.name else real_access(p, mode),
        )
    settings = FolderSettings(**_folder_params("corpus")["dataset"])
    summary = collect_dataset(settings, RAW, CACHE, workers=1)
    assert summary["items"] == 1
    (failure,) = _read(RAW / "failures.csv")
    assert failure["path"] == "corpus/Sad/s1_locked.wav"
    assert "permission denied" in failure["reason"] and failure["kind"] == "permanent"
    locked.chmod(0o644)


def test_index_notices_added_changed_and_removed_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "corpus"
    (root / "Sad").mkdir(parents=True)
    (root / "Sad/s1_a.wav").write_bytes(_tone(0.3))
    settings = FolderSettings(**_folder_params("corpus")["dataset"])
    cache = tmp_path / "cache"
    first = index_corpus(settings, cache)
    assert [(r.path, r.kind) for r in first] == [("corpus/Sad/s1_a.wav", "ok")]
    assert first[0].sha256 == sha256_file(root / "Sad/s1_a.wav")
    hashed: list[str] = []
    real_hash = seda.collect.index.sha256_file
    monkeypatch.setattr(
        seda.collect.index, "sha256_file", lambda p: hashed.append(Path(p).name) or real_hash(p)
    )
    os.utime(root / "Sad/s1_a.wav", ns=(10**18, 10**18))
    assert index_corpus(settings, cache) == first  # touched, not changed: the same rows
    assert hashed == ["s1_a.wav"]  # hashed again (new mtime), then cached
    (root / "Sad/s1_b.wav").write_bytes(_tone(0.3))
    hashed.clear()
    added = index_corpus(settings, cache)
    assert [r.path for r in added] == ["corpus/Sad/s1_a.wav", "corpus/Sad/s1_b.wav"]
    assert hashed == ["s1_b.wav"]
    (root / "Sad/s1_a.wav").write_bytes(_tone(0.4))
    changed = index_corpus(settings, cache)
    assert changed[0] != added[0] and changed[1] == added[1]
    (root / "Sad/s1_b.wav").unlink()
    assert [r.path for r in index_corpus(settings, cache)] == ["corpus/Sad/s1_a.wav"]


def test_index_rehashes_new_content_behind_the_same_size_and_mtime(tmp_path, monkeypatch):
    """A generator with pinned mtimes (the demo), `cp -p` or `rsync -t` can put new content of
    the same size behind the same mtime; the index must not keep the old hash for it."""
    monkeypatch.chdir(tmp_path)
    wav = tmp_path / "corpus/Sad/s1_a.wav"
    wav.parent.mkdir(parents=True)
    settings = FolderSettings(**_folder_params("corpus")["dataset"])
    cache = tmp_path / "cache"
    tone = _tone(0.3)
    for content in (tone, tone[:-1000] + bytes(1000)):  # the same size, the last samples silent
        tmp = wav.with_suffix(".tmp")  # written as the demo writes: atomically, mtime pinned
        tmp.write_bytes(content)
        os.utime(tmp, ns=(10**18, 10**18))
        os.replace(tmp, wav)
        (row,) = index_corpus(settings, cache)
        assert row.sha256 == sha256_file(wav)


def test_index_of_a_download_dataset_lists_the_sources_table_and_local_media(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/demo/media").mkdir(parents=True)
    (tmp_path / "data/demo/media/a.wav").write_bytes(_tone(0.2))
    (tmp_path / "data/demo/sources.csv").write_text("url,label\nmedia/a.wav,calm\n", "utf-8")
    demo = YoutubeSettings(
        name="demo", root="data/demo", sources="data/demo/sources.csv", allow_file_urls=True
    )
    assert [r.path for r in index_corpus(demo)] == [
        "data/demo/media/a.wav",
        "data/demo/sources.csv",
    ]
    web = YoutubeSettings(name="web", root="data/demo", sources="data/demo/sources.csv")
    assert [(r.path, r.kind) for r in index_corpus(web)] == [("data/demo/sources.csv", "ok")]

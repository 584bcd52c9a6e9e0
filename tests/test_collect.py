"""The collect stage: yt-dlp downloads (file:// demo, a local HTTP server) and folder corpora.

Nothing here reaches the internet: URLs are file:// paths or a throw-away server on 127.0.0.1.
"""

from __future__ import annotations

import csv
import io
import os
import re
import threading
import time
from collections import Counter
from dataclasses import asdict, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from omegaconf import OmegaConf

import seda.collect as col
import seda.collect.folder
import seda.collect.ytdlp
from seda.audio import FfmpegMissingError
from seda.collect import (
    CollectError,
    FolderSettings,
    YoutubeSettings,
    YtdlpSettings,
    collect_dataset,
    collect_folder,
)
from seda.demo_corpus import generate
from seda.errors import ConfigError, InputMissingError
from seda.io import normalise_reason, sha256_file
from seda.records import ITEM_COLUMNS
from seda.stages import collect as stage

TUREVDB = Path(__file__).resolve().parents[1] / "../shared/data/turevdb/Sound Source"
ID_RE = re.compile(r"[a-z0-9_-]+")
RAW = Path("data/raw")
CACHE = Path("data/cache/collect")


def collect(settings, **kwargs) -> dict:
    """Collect into data/raw below the current directory, as the stage does."""
    return collect_dataset(settings, RAW, CACHE, **kwargs)


def _read(path: str | Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _tone(seconds: float = 1.0, sr: int = 16000, fmt: str = "WAV") -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr, format=fmt)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# demo through yt-dlp (file:// URLs)


def test_demo_collects_every_item_through_ytdlp(collected_demo, small_demo_settings):
    summary = collected_demo
    assert summary["items"] == 8 and summary["failures"] == 0 and summary["downloaded"] == 8
    rows = _read("data/raw/manifest.csv")
    assert tuple(rows[0]) == ITEM_COLUMNS
    assert Counter(r["label"] for r in rows) == dict.fromkeys(("angry", "calm", "happy", "sad"), 2)
    assert {r["speaker"] for r in rows} == {"demo_s1", "demo_s2"}
    sources = _read("data/demo/sources.csv")
    assert sorted(r["title"] for r in rows) == sorted(s["title"] for s in sources)
    for row in rows:
        assert ID_RE.fullmatch(row["id"]) and row["id"].startswith("generic-demo_s")
        assert row["path"] == f"data/raw/audio/{row['id']}.wav"
        assert row["source_url"].startswith("file:data/demo/media/demo_s")  # portable
        assert row["origin"] == "youtube"
        assert sha256_file(row["path"]) == row["sha256"]
        info = sf.info(row["path"])
        assert info.format == "WAV"  # FLAC and OGG sources were converted
        assert float(row["duration"]) == pytest.approx(info.duration, abs=1e-3)
    section = [r for r in rows if r["section_start"]]
    assert len(section) == 1
    start, end = float(section[0]["section_start"]), float(section[0]["section_end"])
    assert float(section[0]["duration"]) == pytest.approx(end - start, abs=0.01)
    assert section[0]["id"].endswith(f"-t{round(start * 1000)}-{round(end * 1000)}")
    full = [r for r in rows if not r["section_start"]]
    assert all(float(r["duration"]) == small_demo_settings.item_seconds for r in full)
    assert _read("data/raw/failures.csv") == []


def test_demo_rerun_uses_the_cache_and_notices_a_regenerated_demo(
    collected_demo, small_demo_settings, demo_dataset_settings
):
    before = {r["id"]: r["sha256"] for r in _read("data/raw/manifest.csv")}
    again = collect(demo_dataset_settings)
    assert again["downloaded"] == 0 and again["from_cache"] == 8
    assert {r["id"]: r["sha256"] for r in _read("data/raw/manifest.csv")} == before
    generate(replace(small_demo_settings, seed=99), "data/demo")
    changed = collect(demo_dataset_settings)
    assert changed["downloaded"] == 8
    after = {r["id"]: r["sha256"] for r in _read("data/raw/manifest.csv")}
    assert after.keys() == before.keys()
    assert all(after[k] != before[k] for k in before)


def test_bad_source_rows_become_failures(tmp_path, monkeypatch, demo_dataset_settings):
    monkeypatch.chdir(tmp_path)
    media = tmp_path / "data/demo/media"
    media.mkdir(parents=True)
    (media / "ok.wav").write_bytes(_tone())
    (media / "garbage.wav").write_bytes(b"this is not audio at all" * 10)
    (tmp_path / "data/demo/sources.csv").write_text(
        "url,label,speaker,start,end,title\n"
        "media/ok.wav,Angry,s1,,,fine\n"
        "media/ok.wav,angry,s1,,,same item twice\n"
        "media/ok.wav,sad,s1,0.2,0.5,a section of it\n"
        "media/nope.wav,sad,s1,,,\n"
        "media/ok.wav,très fâché,s1,,,\n"
        "media/ok.wav,sad,s1,abc,,\n"
        "media/ok.wav,sad,s1,3,2,\n"
        ",sad,s1,,,\n"
        "media/garbage.wav,calm,s2,,,\n",
        encoding="utf-8",
    )
    summary = collect(demo_dataset_settings)
    rows = _read("data/raw/manifest.csv")
    assert [(r["label"], r["section_start"], r["section_end"]) for r in rows] == [
        ("angry", "", ""),
        ("sad", "0.2", "0.5"),
    ]
    reasons = [f["reason"] for f in _read("data/raw/failures.csv")]
    assert summary["failures"] == len(reasons) == 7
    for expected in (
        "file not found",
        "not a canonical label",
        "'abc' is not seconds",
        "not after start",
        "empty url",
        "same item as sources row 1",
    ):
        assert any(expected in r for r in reasons), (expected, reasons)
    assert any("garbage" in f["url"] for f in _read("data/raw/failures.csv"))


def test_local_paths_need_allow_file_urls(tmp_path, monkeypatch, demo_dataset_settings):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/demo/media").mkdir(parents=True)
    (tmp_path / "data/demo/media/ok.wav").write_bytes(_tone())
    (tmp_path / "data/demo/sources.csv").write_text(
        f"url,label\nmedia/ok.wav,calm\n{(tmp_path / 'data/demo/media/ok.wav').as_uri()},calm\n",
        encoding="utf-8",
    )
    # Nothing collected stops the stage with the first reason (later stages would only say that
    # there is nothing to cut); every reason is still written.
    with pytest.raises(CollectError, match=r"no item collected from .*all 2 skipped.*allow_file"):
        collect(replace(demo_dataset_settings, allow_file_urls=False))
    failures = _read("data/raw/failures.csv")
    assert len(failures) == 2 and all("allow_file_urls" in f["reason"] for f in failures)


def test_yaml_sources_table(tmp_path, monkeypatch, demo_dataset_settings):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/demo/media").mkdir(parents=True)
    (tmp_path / "data/demo/media/tone.flac").write_bytes(_tone(0.6, fmt="FLAC"))
    (tmp_path / "data/demo/sources.yaml").write_text(
        "- {url: media/tone.flac, label: Calm, speaker: s9, start: '0:00.1', title: Ton / ü}\n",
        encoding="utf-8",
    )
    summary = collect(replace(demo_dataset_settings, sources="data/demo/sources.yaml"))
    (row,) = _read("data/raw/manifest.csv")
    assert summary["items"] == 1 and row["id"] == "generic-tone-t100-end"
    assert (row["label"], row["speaker"], row["title"]) == ("calm", "s9", "Ton / ü")
    assert float(row["duration"]) == pytest.approx(0.5, abs=1e-3)
    (tmp_path / "data/demo/sources.yaml").write_text("url: x\n", encoding="utf-8")
    with pytest.raises(CollectError, match="list of mappings"):
        collect(replace(demo_dataset_settings, sources="data/demo/sources.yaml"))


def test_main_exit_2_when_sources_or_root_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        "dataset:\n  kind: youtube\n  name: x\n  root: data/sources\n"
        "  sources: data/sources/none.csv\n",
        encoding="utf-8",
    )
    (tmp_path / "data/sources").mkdir(parents=True)
    assert stage.main(["--out", "data/raw"]) == 2
    err = capsys.readouterr().err
    assert "sources table not found" in err and "Traceback" not in err
    (tmp_path / "params.yaml").write_text(
        "dataset:\n  kind: folder\n  name: x\n  root: nowhere\n  pattern: '(?P<label>[^/]+)/'\n",
        encoding="utf-8",
    )
    assert stage.main(["--out", "data/raw"]) == 2
    assert "dataset root not found: nowhere" in capsys.readouterr().err
    (tmp_path / "data/sources/yt.csv").write_text("url,label\nytsearch1:x,calm\n", encoding="utf-8")
    (tmp_path / "params.yaml").write_text(
        "dataset:\n  kind: youtube\n  name: x\n  root: data/sources\n"
        "  sources: data/sources/yt.csv\n",
        encoding="utf-8",
    )

    def no_ffmpeg() -> str:
        raise FfmpegMissingError("ffmpeg not found: install it")

    monkeypatch.setattr(seda.collect.ytdlp, "find_ffmpeg", no_ffmpeg)
    assert stage.main(["--out", "data/raw"]) == 2
    assert "ffmpeg not found" in capsys.readouterr().err


def test_ids_are_sanitised_and_unique():
    assert col.item_id("Youtube", "dQw4w9WgXcQ") != col.item_id("Youtube", "dqw4w9wgxcq")
    assert col.item_id("Youtube", "abc_-12") == "yt-abc_-12"
    assert col.item_id("Generic", "x") == "generic-x"
    for raw in ("../../etc/passwd", "a b/c\nd", "ğüşıöç", "كلام"):
        assert ID_RE.fullmatch(col.slug_id(raw))


def test_failure_reasons_are_normalised(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ffmpeg = (
        "not decodable audio ([mp3 @ 0x563a68028900] Failed to read frame size: "
        "[in#0 @ 0x55faa5c4fd40] Error opening input: {}/x.mp3: Invalid argument)"
    )
    a = normalise_reason(ffmpeg.format(tmp_path / "corpus"))
    b = normalise_reason(
        ffmpeg.replace("0x563a68028900", "0x7f0011").format(tmp_path / "corpus"), tmp_path
    )
    assert (
        a
        == b
        == (
            "not decodable audio ([mp3] Failed to read frame size: "
            "[in#0] Error opening input: corpus/x.mp3: Invalid argument)"
        )
    )
    assert normalise_reason(f"at 2024-05-01 12:34:56.789: {(tmp_path / 'a b.wav').as_uri()}\n") == (
        "at <time>: file:a%20b.wav"
    )
    assert normalise_reason("<Foo object at 0x7f3a2b1c>  gone") == "<Foo object> gone"
    assert normalise_reason("HTTP Error 404: Not Found") == "HTTP Error 404: Not Found"


def _demo_with_failures(small_demo_settings) -> None:
    """A tiny demo plus sources rows that fail (bad media, missing file, duplicate) and a folder
    corpus with a bad MP3 (ffmpeg reports it with a memory address)."""
    generate(replace(small_demo_settings, speakers=1, item_seconds=6.0), "data/demo")
    (Path("data/demo/media/garbage.wav")).write_bytes(b"this is not audio at all" * 10)
    with open("data/demo/sources.csv", "a", encoding="utf-8", newline="") as fh:
        fh.write("media/garbage.wav,calm,s9,,,\nmedia/nope.wav,sad,s9,,,\n")
        fh.write(f"{Path('data/demo/media/demo_s1_angry_1.wav').resolve().as_uri()},angry,,,,\n")
    _corpus(Path("corpus"))
    (Path("corpus/Sad/s1_bad.mp3")).write_bytes(b"ID3" + b"\0" * 300)


def test_same_inputs_in_another_clone_give_the_same_bytes(
    tmp_path, monkeypatch, small_demo_settings, demo_dataset_settings
):
    """Issue #8: collecting the demo in two working copies writes identical manifests (every path
    and URL relative) and failures (normalised reasons)."""
    outputs = {}
    for clone in ("a", "b"):
        (tmp_path / clone).mkdir()
        monkeypatch.chdir(tmp_path / clone)
        _demo_with_failures(small_demo_settings)
        params = {"dataset": asdict(demo_dataset_settings), "workers": 1}
        Path("params.yaml").write_text(OmegaConf.to_yaml(params), encoding="utf-8")
        assert stage.main(["--out", "data/raw", "--cache", "cache"]) == 0
        folder = collect_dataset(_folder(Path("corpus")), Path("data/folder"), CACHE, workers=1)
        assert folder["failures"] == 6
        outputs[clone] = {
            p.as_posix(): p.read_bytes()
            for out in ("data/raw", "data/folder")
            for p in sorted(Path(out).glob("*.csv"))
        }
    assert outputs["a"] == outputs["b"]
    text = b"".join(outputs["a"].values()).decode()
    assert str(tmp_path) not in text and "file://" not in text and "@ 0x" not in text
    rows = _read(tmp_path / "b/data/raw/manifest.csv")
    assert len(rows) == 4 and {r["source_url"] for r in rows} == {
        f"file:data/demo/media/{Path(r['source_url']).name}" for r in rows
    }
    failures = {f["url"]: f["reason"] for f in _read(tmp_path / "b/data/raw/failures.csv")}
    assert "file:data/demo/media/garbage.wav" in failures
    assert failures["media/nope.wav"].endswith("file not found: data/demo/media/nope.wav")
    assert "same item as sources row 1" in failures["file:data/demo/media/demo_s1_angry_1.wav"]
    bad_mp3 = [f for f in _read(tmp_path / "b/data/folder/failures.csv") if "mp3" in f["path"]]
    assert bad_mp3 and bad_mp3[0]["path"] == "corpus/Sad/s1_bad.mp3"


# --------------------------------------------------------------------------------------------
# A local HTTP server: direct media links through yt-dlp's generic extractor


class MediaServer:
    """Serves fixed files on 127.0.0.1 with scripted misbehaviour; logs every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.files = {
            "/a.wav": ("audio/wav", _tone(1.0)),
            "/b.ogg": ("audio/ogg", _tone(1.5, fmt="OGG")),
            "/slow.wav": ("audio/wav", _tone(0.5)),
            "/stall.wav": ("audio/wav", _tone(0.5)),
            "/flaky.wav": ("audio/wav", _tone(0.8)),
            "/broken.wav": ("audio/wav", _tone(0.8)),
            "/c.wav": ("audio/wav", _tone(0.7)),
            "/d.ogg": ("audio/ogg", _tone(0.9, fmt="OGG")),
        }
        self.delays = {"/slow.wav": 0.5, "/stall.wav": 6.0}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                server.requests.append((self.command, self.path))
                hits = sum(1 for m, p in server.requests if p == self.path and m == "GET")
                if self.path == "/feed.xml":
                    self._send("application/rss+xml", server.feed().encode(), body)
                    return
                if self.path not in server.files:
                    self.send_error(404, "Not Found")
                    return
                time.sleep(server.delays.get(self.path, 0.0))
                drop = self.path == "/broken.wav" or (self.path == "/flaky.wav" and hits <= 2)
                self._send(*server.files[self.path], body, drop)

            def _send(self, ctype: str, data: bytes, body: bool, drop: bool = False) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not body:
                    return
                self.wfile.write(data[: len(data) // 3] if drop else data)
                if drop:  # hang up in the middle of the body
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.handle_error = lambda *a: None  # the stalled client hangs up: expected
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def feed(self) -> str:
        """A podcast feed: a playlist of three episodes for yt-dlp's generic extractor."""
        items = "".join(
            f"<item><title>{name}</title>"
            f'<enclosure url="{self.url}/{name}" type="audio/wav"/></item>'
            for name in ("c.wav", "gone.wav", "d.ogg")
        )
        channel = f"<channel><title>Pod</title>{items}</channel>"
        return f'<?xml version="1.0"?><rss version="2.0">{channel}</rss>'

    def gets(self, path: str) -> int:
        return sum(1 for m, p in self.requests if m == "GET" and p == path)


@pytest.fixture
def media_server(monkeypatch):
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = MediaServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def test_http_downloads_failures_and_rerun(tmp_path, monkeypatch, media_server):
    monkeypatch.chdir(tmp_path)
    base = media_server.url
    sources = tmp_path / "sources.csv"
    sources.write_text(
        "url,label,speaker\n"
        f"{base}/a.wav,happy,s1\n"
        f"{base}/b.ogg,sad,s2\n"
        f"{base}/missing.wav,calm,s1\n"
        f"{base}/flaky.wav,angry,s2\n"
        f"{base}/broken.wav,angry,s1\n"
        f"{base}/slow.wav,calm,s2\n"
        f"{base}/stall.wav,sad,s1\n",
        encoding="utf-8",
    )
    timeout = 1.5
    settings = YoutubeSettings(
        kind="youtube",
        name="web",
        root=str(tmp_path),
        sources=str(sources),
        ytdlp=YtdlpSettings(retries=1, socket_timeout=timeout, backoff_seconds=0.05),
    )
    started = time.perf_counter()
    summary = collect(settings)
    elapsed = time.perf_counter() - started
    rows = {r["source_id"]: r for r in _read("data/raw/manifest.csv")}
    assert set(rows) == {"a", "b", "flaky", "slow"}
    assert rows["b"]["label"] == "sad" and sf.info(rows["b"]["path"]).format == "WAV"
    assert float(rows["b"]["duration"]) == pytest.approx(1.5, abs=0.05)
    assert all(sha256_file(r["path"]) == r["sha256"] for r in rows.values())
    assert media_server.gets("/flaky.wav") >= 3  # dropped twice, then retried to success
    failed = {Path(f["url"]).name: f for f in _read("data/raw/failures.csv")}
    failures = {name: f["reason"] for name, f in failed.items()}
    assert set(failures) == {"missing.wav", "broken.wav", "stall.wav"}
    assert "404" in failures["missing.wav"]
    assert {name: f["kind"] for name, f in failed.items()} == {
        "missing.wav": "permanent",
        "broken.wav": "transient",
        "stall.wav": "transient",
    }
    assert failures["broken.wav"] and failures["stall.wav"]
    assert "timed out" in failures["stall.wav"].lower()
    assert summary["failures"] == 3
    # two tries of the stalled url, each bounded by the socket timeout, plus the rest
    assert elapsed < 2 * 2 * timeout + 15
    seen = len(media_server.requests)
    again = collect(replace(settings, sources=str(sources)))
    served = {p for _, p in media_server.requests[seen:]}
    # only the transient failures again: the 404 is remembered and not requested
    assert served == {"/broken.wav", "/stall.wav"}
    assert {Path(f["url"]).name: f["reason"] for f in _read("data/raw/failures.csv")} == failures
    assert again["from_cache"] == 4 and again["downloaded"] == 0
    assert {r["source_id"] for r in _read("data/raw/manifest.csv")} == set(rows)


def test_playlist_entries_get_the_row_label(tmp_path, monkeypatch, media_server):
    monkeypatch.chdir(tmp_path)
    sources = tmp_path / "sources.csv"
    sources.write_text(f"url,label\n{media_server.url}/feed.xml,happy\n", encoding="utf-8")
    settings = YoutubeSettings(
        kind="youtube",
        name="web",
        root=str(tmp_path),
        sources=str(sources),
        ytdlp=YtdlpSettings(retries=0, socket_timeout=5, backoff_seconds=0.05),
    )
    first = collect(settings)
    rows = _read("data/raw/manifest.csv")
    assert sorted((r["source_id"], r["label"]) for r in rows) == [("c", "happy"), ("d", "happy")]
    assert first["downloaded"] == 2
    failures = _read("data/raw/failures.csv")
    assert len(failures) == 1 and "404" in failures[0]["reason"]
    assert failures[0]["url"].endswith("/feed.xml")
    downloads = media_server.gets("/c.wav") + media_server.gets("/d.ogg")
    again = collect(settings)
    assert again["downloaded"] == 0 and again["from_cache"] == 2
    assert [r["id"] for r in _read("data/raw/manifest.csv")] == [r["id"] for r in rows]
    # a playlist is listed again (it may have grown), each known entry only resolved, not fetched
    assert media_server.gets("/c.wav") + media_server.gets("/d.ogg") <= downloads + 2


def test_transient_errors_are_classified():
    assert col.is_transient(
        "ERROR: [generic] x: Unable to download webpage: The read operation timed out"
    )
    assert col.is_transient("HTTP Error 503: Service Unavailable")
    assert col.is_transient("ERROR: content too short (expected 100 bytes and served 20)")
    assert not col.is_transient(
        "ERROR: [youtube] abc: Video unavailable. This video has been removed"
    )
    assert not col.is_transient(
        "ERROR: [youtube] abc: Private video. Sign in if you've been granted access"
    )
    assert not col.is_transient("ERROR: [generic] x: HTTP Error 404: Not Found")


# --------------------------------------------------------------------------------------------
# folder datasets


def _corpus(root: Path) -> None:
    for rel, seconds in (
        ("Angry/s1_a.wav", 0.5),
        ("Angry/s2_b.wav", 0.6),
        ("Calm/s1_c.flac", 0.7),
        ("Sad/s2_d.wav", 0.4),
        ("Neutral/s1_e.wav", 0.3),
        ("Happy/s3_f.wav", 0.5),
    ):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_tone(seconds, fmt="FLAC" if rel.endswith(".flac") else "WAV"))
    (root / "Sad/s1_empty.wav").write_bytes(b"")
    (root / "Sad/s1_text.wav").write_bytes(b"<html>not audio</html>" * 20)
    good = _tone(1.0)
    (root / "Calm/s2_truncated.wav").write_bytes(good[:30])
    (root / "README.txt").write_text("not audio", encoding="utf-8")
    (root / "loose.wav").write_bytes(_tone(0.2))


def _folder(root: Path, **kw) -> FolderSettings:
    base = dict(
        kind="folder",
        name="toy",
        root=str(root),
        pattern=r"(?P<label>[^/]+)/(?P<speaker>[^/_]+)_[^/]+$",
        label_map={"Angry": "angry", "Calm": "calm", "Sad": "sad", "Happy": "joy", "Neutral": None},
    )
    return FolderSettings(**{**base, **kw})


def test_a_corpus_whose_paths_never_match_stops_collect_with_the_reason(
    tmp_path, monkeypatch, capsys
):
    """Files laid out other than dataset.pattern expects (here no speaker in the name): collect
    stops with one sentence naming the pattern, instead of passing an empty manifest on to
    stages that would only say there is nothing to cut."""
    monkeypatch.chdir(tmp_path)
    for label in ("angry", "calm"):
        (tmp_path / "corpus" / label).mkdir(parents=True)
        (tmp_path / "corpus" / label / "001.wav").write_bytes(_tone(0.3))
    settings = asdict(_folder(tmp_path / "corpus"))
    Path("params.yaml").write_text(OmegaConf.to_yaml({"dataset": settings, "workers": 1}))
    capsys.readouterr()
    assert stage.main(["--out", "data/raw", "--cache", "data/cache"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seda collect: error: no item collected from ")
    assert "all 2 skipped" in err[0] and "does not match dataset.pattern" in err[0]
    assert len(_read("data/raw/failures.csv")) == 2


def test_folder_regex_label_map_and_bad_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "corpus"
    _corpus(root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    got = collect_folder(_folder(root), cache_dir=tmp_path / "cache", workers=1)
    rows = {r.title: r for r in got.rows}
    assert set(rows) == {
        "Angry/s1_a.wav",
        "Angry/s2_b.wav",
        "Calm/s1_c.flac",
        "Sad/s2_d.wav",
        "Happy/s3_f.wav",
    }
    assert rows["Happy/s3_f.wav"].label == "joy"  # renamed
    assert rows["Angry/s2_b.wav"].speaker == "s2"
    assert rows["Calm/s1_c.flac"].path == "corpus/Calm/s1_c.flac"  # referenced in place
    assert rows["Calm/s1_c.flac"].duration == pytest.approx(0.7, abs=1e-3)
    for r in rows.values():
        assert ID_RE.fullmatch(r.id) and r.id.startswith("toy-") and r.origin == "folder"
        assert r.sha256 == sha256_file(tmp_path / r.path)
    reasons = {Path(f["path"]).name: f["reason"] for f in got.failures.rows}
    assert "dropped by label_map" in reasons["s1_e.wav"]
    assert "empty" in reasons["s1_empty.wav"]
    assert reasons["s1_text.wav"] and reasons["s2_truncated.wav"]
    assert "does not match" in reasons["loose.wav"]
    assert len(reasons) == 5
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before  # untouched


def test_folder_hash_cache_follows_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "corpus"
    _corpus(root)
    cache = tmp_path / "cache"
    first = {r.id: r.sha256 for r in collect_folder(_folder(root), cache, workers=1).rows}
    calls: list[str] = []
    real_probe = seda.collect.folder.probe_file

    def spy(path: str) -> dict:
        calls.append(path)
        return real_probe(path)

    monkeypatch.setattr(seda.collect.folder, "probe_file", spy)
    second = {r.id: r.sha256 for r in collect_folder(_folder(root), cache, workers=1).rows}
    assert second == first
    assert sorted(Path(c).name for c in calls) == [
        "s1_empty.wav",
        "s1_text.wav",
        "s2_truncated.wav",
    ]
    target = root / "Angry/s1_a.wav"
    target.write_bytes(_tone(0.9))
    os.utime(target, ns=(1, 1))
    calls.clear()
    collect_folder(_folder(root), cache, workers=1)
    assert "s1_a.wav" in {Path(c).name for c in calls}


def test_folder_labels_csv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "corpus"
    _corpus(root)
    (root / "labels.csv").write_text(
        "path,label,speaker\n"
        "Angry/s1_a.wav,ANGRY,alice\n"
        "Calm/s1_c.flac,Calm,\n"
        "Neutral/s1_e.wav,Neutral,bob\n"
        "gone/x.wav,sad,bob\n",
        encoding="utf-8",
    )
    got = collect_folder(
        _folder(root, pattern=r"(?P<speaker>s\d)_", labels_csv="labels.csv"),
        tmp_path / "cache",
        workers=1,
    )
    rows = {r.title: (r.label, r.speaker) for r in got.rows}
    assert rows == {"Angry/s1_a.wav": ("angry", "alice"), "Calm/s1_c.flac": ("calm", "s1")}
    reasons = [f["reason"] for f in got.failures.rows]
    assert any("dropped by label_map" in r for r in reasons)
    assert any("listed in labels_csv but not found" in r for r in reasons)
    assert sum("not listed in labels_csv" in r for r in reasons) == 7


def test_folder_config_errors(tmp_path):
    with pytest.raises(InputMissingError, match="root not found"):
        collect_folder(_folder(tmp_path / "absent"), tmp_path / "c")
    (tmp_path / "x").mkdir()
    with pytest.raises(ConfigError, match="label"):
        collect_folder(_folder(tmp_path / "x", pattern=r"(?P<speaker>\w+)"), tmp_path / "c")
    with pytest.raises(ConfigError, match="regular expression"):
        collect_folder(_folder(tmp_path / "x", pattern=r"(?P<label>"), tmp_path / "c")
    with pytest.raises(InputMissingError, match="labels_csv not found"):
        collect_folder(_folder(tmp_path / "x", labels_csv="none.csv"), tmp_path / "c")


@pytest.mark.shared
@pytest.mark.skipif(not TUREVDB.is_dir(), reason="../shared/data/turevdb is absent")
def test_turevdb_import(tmp_path, monkeypatch):
    from seda.schema import compose

    repo = Path(__file__).resolve().parents[1]
    params = compose(["dataset=turevdb"], conf_dir=repo / "conf")
    settings = col.build_dataset_settings(params["dataset"])
    settings = replace(settings, root=os.path.normpath(TUREVDB))
    got = collect_folder(settings, cache_dir=tmp_path / "cache", workers=2)
    assert len(got.rows) == 1735 and len(got.failures) == 0
    assert Counter(r.label for r in got.rows) == {
        "angry": 487,
        "calm": 408,
        "happy": 357,
        "sad": 483,
    }
    assert {r.speaker for r in got.rows} == {"1157", "1234", "1358", "1984", "6783", "7895"}
    assert len({r.id for r in got.rows}) == 1735
    assert all(ID_RE.fullmatch(r.id) for r in got.rows)
    assert all(0.2 < r.duration < 10 for r in got.rows)  # isolated words
    assert all(r.path.startswith("../shared/data/turevdb/Sound Source/") for r in got.rows)

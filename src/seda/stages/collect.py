"""Stage `collect`: gather labelled audio into ``data/raw/manifest.csv`` (+ ``failures.csv``).

Two dataset kinds (``params.yaml`` section ``dataset``, from ``conf/dataset/*.yaml``):

``youtube``
    A sources table (CSV or YAML list) with ``url,label[,speaker,start,end,title]``. A url is a
    video, playlist or channel of any site yt-dlp supports, or a search such as ``ytsearch5:...``;
    playlists and searches expand to one item per video with the row's label. With
    ``allow_file_urls`` (the demo) a url may also be a local path relative to ``root``; it becomes
    a ``file://`` URL and goes through exactly the same yt-dlp path. Downloads use yt-dlp's Python
    API (best audio, converted to WAV by ffmpeg) with its retries, a retry loop with exponential
    back-off for transient errors, polite sleeps and a download archive. Everything downloaded is
    kept in ``data/cache/collect/ytdlp`` (DVC deletes ``data/raw`` before rerunning the stage) and
    hard-linked into ``data/raw/audio/<id>.wav``, so a rerun downloads only what is new, and a
    single-video row already in the cache makes no network request at all. A video that cannot
    be had (removed, private, age-gated, geo-blocked, any download error) becomes a
    ``failures.csv`` row with yt-dlp's reason; the run goes on.

``folder``
    Any labelled corpus on disk under ``root``: label and speaker from the named groups ``label``
    and ``speaker`` of ``pattern`` (matched against the POSIX path relative to ``root``) or from
    ``labels_csv`` (``path,label[,speaker]``, paths relative to ``root``). Files are referenced in
    place with their sha256, never copied or modified; bad files become failure rows.

Manifest ids are ``[a-z0-9_-]`` only and never derived from titles: ``yt-<video id>`` (YouTube),
``<extractor>-<id>`` (other sites; ``generic-<file stem>`` for direct links and the demo),
``<dataset name>-<relative path>`` (folder). Where making a video id fit that alphabet loses
information (upper case in YouTube ids), a short hash of the original is appended so that ids
stay unique; a folder id that collides with an earlier one gets the same kind of suffix. A row
with ``start``/``end`` gives ``<id>-t<start ms>-<end ms|end>``. ``duration`` is that of the WAV
actually written (after any section cut), not the site's figure.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import time
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from seda.audio import (
    AudioError,
    FfmpegMissingError,
    audio_info,
    find_ffmpeg,
    load_audio,
    write_wav,
)
from seda.cache import link_or_copy
from seda.config import ConfigError, build, load_params
from seda.entry import stage_main
from seda.io import (
    ITEM_COLUMNS,
    RejectLog,
    read_csv,
    rel_to_cwd,
    sha256_file,
    write_csv_atomic,
    write_json_atomic,
    write_text_atomic,
)
from seda.parallel import map_files

log = logging.getLogger(__name__)

STAGE = "collect"
RAW_DIR = Path("data/raw")
CACHE_DIR = Path("data/cache/collect")
MANIFEST_COLUMNS = ITEM_COLUMNS
FAILURE_EXTRA_COLUMNS = ("url",)
ID_OK = re.compile(r"[a-z0-9_-]+")
URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# yt-dlp error text of failures worth another try (network trouble, throttling, server errors).
TRANSIENT = re.compile(
    r"timed? ?out|HTTP Error (?:408|429|5\d\d)|Connection (?:reset|refused|aborted)"
    r"|Remote end closed|IncompleteRead|content too short|Did not get any data"
    r"|Temporary failure|Network is unreachable|EOF occurred|bytes read",
    re.IGNORECASE,
)
# ... unless the text also says the video itself is gone or restricted.
PERMANENT = re.compile(
    r"HTTP Error 4(?:0[0-7]|1\d)\b|video (?:is )?unavailable|private video|video is private"
    r"|been removed|terminated|copyright|members-only"
    r"|sign in|confirm your age|age[- ]restricted|not available in your country|geo",
    re.IGNORECASE,
)
ERROR_ID = re.compile(r"^(?:ERROR: )?\[(?P<ie>[^\]]+)\] (?P<id>[^\s:]+): ")
MAX_BACKOFF_SECONDS = 120.0


class CollectError(Exception):
    """A problem with the dataset as a whole (missing root or sources table); exit code 2."""


# --------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class YtdlpSettings:
    format: str = "bestaudio/best"
    # yt-dlp's own retries (HTTP, fragments, extractor) and this stage's retries of a whole row.
    retries: int = 3
    # Random sleep before each download, in [sleep_seconds, max_sleep_seconds].
    sleep_seconds: float = 0.0
    max_sleep_seconds: float = 0.0
    # Netscape cookies file (age-gated videos), or None.
    cookies: str | None = None
    socket_timeout: float = 20.0
    # First wait of the exponential back-off between retries of a transient failure.
    backoff_seconds: float = 2.0


@dataclass(frozen=True)
class YoutubeSettings:
    kind: str = "youtube"
    name: str = "youtube"
    # Folder that local paths in the sources table are relative to (with allow_file_urls).
    root: str = "data/sources"
    sources: str = "data/sources/youtube.csv"
    allow_file_urls: bool = False
    ytdlp: YtdlpSettings = field(default_factory=YtdlpSettings)


@dataclass(frozen=True)
class FolderSettings:
    kind: str = "folder"
    name: str = "folder"
    root: str = ""
    pattern: str | None = None
    labels_csv: str | None = None
    label_map: dict[str, str | None] = field(default_factory=dict)
    extensions: list[str] = field(
        default_factory=lambda: [".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus", ".aiff"]
    )


@dataclass
class Collected:
    """What a collector returns: manifest rows and failure rows."""

    rows: list[dict[str, Any]]
    failures: RejectLog
    stats: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Ids and labels


def slug_id(text: str, max_len: int = 80) -> str:
    """``text`` in the id alphabet ``[a-z0-9_-]``; a hash suffix keeps lossy conversions unique."""
    if ID_OK.fullmatch(text) and len(text) <= max_len:
        return text
    return f"{plain_slug(text, max_len - 7)}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:6]}"


def plain_slug(text: str, max_len: int = 80) -> str:
    """``text`` folded to ``[a-z0-9_-]`` (accents dropped, other runs become '-'); may collide."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9_-]+", "-", ascii_text.lower()).strip("-")[:max_len] or "x"


def item_id(extractor_key: str, video_id: str) -> str:
    """Manifest id of a downloaded video: ``yt-<id>`` for YouTube, ``<extractor>-<id>`` else."""
    prefix = "yt" if extractor_key.lower() == "youtube" else slug_id(extractor_key.lower())
    return f"{prefix}-{slug_id(video_id)}"


def canonical_label(raw: str) -> str:
    """Lower-case, trimmed, spaces as underscores; raises ValueError if not ``[a-z0-9_-]``."""
    label = "_".join(str(raw).strip().lower().split())
    if not ID_OK.fullmatch(label):
        raise ValueError(
            f"label {raw!r} is not a canonical label ([a-z0-9_-]); rename it with label_map"
        )
    return label


# --------------------------------------------------------------------------------------------
# Sources table


@dataclass(frozen=True)
class SourceRow:
    line: int
    url: str
    label: str
    speaker: str = ""
    start: float | None = None
    end: float | None = None
    title: str = ""


def read_sources(
    path: Path, root: Path, allow_file_urls: bool, failures: RejectLog
) -> list[SourceRow]:
    """Parse and check the sources table; a bad row becomes a failure row, not an abort."""
    if not path.is_file():
        raise CollectError(f"sources table not found: {path}")
    if path.suffix.lower() in (".yaml", ".yml"):
        from omegaconf import OmegaConf

        data = OmegaConf.to_container(OmegaConf.load(path))
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise CollectError(f"{path}: a YAML sources table must be a list of mappings")
        raw_rows = [{k: "" if v is None else str(v) for k, v in r.items()} for r in data]
    else:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            raw_rows = list(reader)
            header = [c.strip() for c in reader.fieldnames or []]
        missing = {"url", "label"} - set(header)
        if missing:
            raise CollectError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    rows = []
    for line, raw in enumerate(raw_rows, start=1):
        row = _parse_source_row(
            line, {k.strip(): (v or "").strip() for k, v in raw.items() if k}, root, allow_file_urls
        )
        if isinstance(row, str):
            failures.add(f"row-{line}", path, row, url=raw.get("url", ""))
        else:
            rows.append(row)
    return rows


def _parse_source_row(
    line: int, raw: dict[str, str], root: Path, allow_file_urls: bool
) -> SourceRow | str:
    from yt_dlp.utils import parse_duration

    url = raw.get("url", "")
    if not url:
        return f"sources row {line}: empty url"
    try:
        label = canonical_label(raw.get("label", ""))
    except ValueError as err:
        return f"sources row {line}: {err}"
    bounds = []
    for key in ("start", "end"):
        text = raw.get(key, "")
        value = parse_duration(text) if text else None
        if text and value is None:
            return f"sources row {line}: {key} {text!r} is not seconds or HH:MM:SS"
        bounds.append(value)
    start, end = bounds
    if start is not None and end is not None and end <= start:
        return f"sources row {line}: end {end:g} s is not after start {start:g} s"
    if not URL_SCHEME.match(url) or url.lower().startswith("file:"):
        if not allow_file_urls:
            return f"sources row {line}: local files and file:// URLs need allow_file_urls: true"
        local = (
            Path(url2pathname(urlparse(url).path))
            if url.lower().startswith("file:")
            else (root / url)
        )
        if not local.is_file():
            return f"sources row {line}: file not found: {local}"
        url = local.resolve().as_uri()
    return SourceRow(line, url, label, raw.get("speaker", ""), start, end, raw.get("title", ""))


# --------------------------------------------------------------------------------------------
# yt-dlp downloads


class _YtdlpLog:
    """yt-dlp logger: screen chatter to debug, warnings to warning, errors collected as reasons."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def info(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def warning(self, msg: str) -> None:
        log.warning("yt-dlp: %s", msg)

    def error(self, msg: str) -> None:
        self.errors.append(" ".join(msg.split()))
        log.debug("yt-dlp: %s", msg)


def is_transient(reason: str) -> bool:
    """Worth retrying: network trouble, throttling or a server error, not a gone video."""
    return bool(TRANSIENT.search(reason)) and not PERMANENT.search(reason)


def _archive_key(info: Any) -> str | None:
    from yt_dlp.utils import make_archive_id

    ie = info.get("ie_key") or info.get("extractor_key")
    vid = info.get("id")
    return make_archive_id(ie, vid) if ie and vid else None


def _file_url_path(url: str) -> Path | None:
    parsed = urlparse(url or "")
    return Path(url2pathname(parsed.path)) if parsed.scheme == "file" else None


class YtdlpCollector:
    """Downloads the rows of a sources table through one ``yt_dlp.YoutubeDL`` and its caches.

    Cache layout (``cache_dir``): ``archive.txt`` (yt-dlp's download archive),
    ``media/<Extractor>/<id>.wav``, ``items/<id>.json`` (metadata + sha256 of each download),
    ``urls/<hash>.json`` (which items a single-video url gave), ``sections/<id>.wav`` (trimmed).
    """

    def __init__(
        self,
        settings: YoutubeSettings,
        out_dir: Path,
        cache_dir: Path,
        sleep: Any = time.sleep,
    ) -> None:
        self.settings = settings
        self.out_dir = out_dir
        self.cache = cache_dir
        self.sleep = sleep
        self._source_hashes: dict[tuple[str, int, int], str] = {}
        self.archive = cache_dir / "archive.txt"
        self.stats = {"downloaded": 0, "from_cache": 0, "rows": 0}
        self._downloaded: list[dict[str, Any]] = []
        self._hits: list[str] = []
        self._log = _YtdlpLog()
        self._ydl: Any = None

    # -- cache bookkeeping --------------------------------------------------------------------

    def _meta_path(self, archive_key: str) -> Path:
        return self.cache / "items" / f"{slug_id(archive_key.replace(' ', '-'))}.json"

    def load_meta(self, archive_key: str) -> dict[str, Any] | None:
        """Cached metadata of a download, or None when it or its WAV is missing or stale."""
        path = self._meta_path(archive_key)
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        if not (self.cache / meta["wav"]).is_file():
            return None
        source = _file_url_path(meta.get("webpage_url", ""))
        if source is not None and self.source_hash(source) != meta.get("source_sha256"):
            return None
        return meta

    def source_hash(self, path: Path) -> str | None:
        """sha256 of a file:// source (memoised per run by size and mtime), None if absent."""
        try:
            st = path.stat()
        except OSError:
            return None
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in self._source_hashes:
            self._source_hashes[key] = sha256_file(path)
        return self._source_hashes[key]

    def prune_archive(self) -> int:
        """Drop archive lines whose cached WAV/metadata is gone or whose local source changed.

        yt-dlp skips whatever its archive lists, so the archive must never claim more than the
        cache holds (a deleted WAV, or a regenerated demo file behind the same file:// URL).
        """
        if not self.archive.exists():
            return 0
        lines = [x.strip() for x in self.archive.read_text(encoding="utf-8").splitlines()]
        keep = [x for x in lines if x and self.load_meta(x) is not None]
        dropped = len([x for x in lines if x]) - len(keep)
        if dropped:
            write_text_atomic(self.archive, "".join(f"{x}\n" for x in keep))
            log.info("collect: %d cached download(s) are gone or stale; fetching again", dropped)
        return dropped

    def _url_record_path(self, url: str) -> Path:
        return self.cache / "urls" / f"{hashlib.sha256(url.encode()).hexdigest()[:24]}.json"

    # -- yt-dlp -------------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        s = self.settings.ytdlp
        backoff = s.backoff_seconds

        def sleep_fn(n: int) -> float:
            return min(backoff * 2**n, MAX_BACKOFF_SECONDS)

        outtmpl = str(self.cache / "media" / "%(extractor_key)s" / "%(id)s.%(ext)s")
        opts: dict[str, Any] = {
            "format": s.format,
            "outtmpl": {"default": outtmpl},
            # Only items missing from the archive get this far: a file already there is stale.
            "overwrites": True,
            "restrictfilenames": True,
            "windowsfilenames": True,
            "download_archive": str(self.archive),
            "cachedir": str(self.cache / "ytdlp-cache"),
            "postprocessors": [{"key": "FFmpegExtractAudio", "preferredcodec": "wav"}],
            "ffmpeg_location": find_ffmpeg(),
            "retries": s.retries,
            "fragment_retries": s.retries,
            "extractor_retries": s.retries,
            "file_access_retries": s.retries,
            "retry_sleep_functions": dict.fromkeys(("http", "fragment", "extractor"), sleep_fn),
            "socket_timeout": s.socket_timeout,
            # Go on after a failed item (reported through the logger); 'only_download' (not True)
            # also keeps an item whose conversion failed out of the archive.
            "ignoreerrors": "only_download",
            "quiet": True,
            "noprogress": True,
            "color": {"stdout": "no_color", "stderr": "no_color"},
            "logger": self._log,
            "enable_file_urls": bool(self.settings.allow_file_urls),
        }
        if s.sleep_seconds > 0:
            opts["sleep_interval"] = s.sleep_seconds
            opts["max_sleep_interval"] = max(s.sleep_seconds, s.max_sleep_seconds)
        if s.cookies:
            if not Path(s.cookies).is_file():
                raise CollectError(f"cookies file not found: {s.cookies}")
            opts["cookiefile"] = s.cookies
        return opts

    def open(self) -> None:
        import yt_dlp
        from yt_dlp.postprocessor import PostProcessor

        collector = self

        class Recorder(PostProcessor):  # type: ignore[misc]
            """Runs once per finished download (after the move), while its info dict is at hand."""

            def run(self, info: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
                collector._record_download(info)
                return [], info

        class ArchiveAwareYDL(yt_dlp.YoutubeDL):  # type: ignore[misc]
            """Notes which items the archive let yt-dlp skip, so they still reach the manifest."""

            def in_download_archive(self, info_dict: dict[str, Any]) -> bool:
                found = bool(super().in_download_archive(info_dict))
                key = _archive_key(info_dict) if found else None
                if key:
                    collector._hits.append(key)
                return found

        self.prune_archive()
        self._ydl = ArchiveAwareYDL(self._options())
        self._ydl.add_post_processor(Recorder(), when="after_move")

    def close(self) -> None:
        if self._ydl is not None:
            self._ydl.close()
            self._ydl = None

    def _record_download(self, info: dict[str, Any]) -> None:
        key = _archive_key(info)
        wav = Path(info.get("filepath") or "")
        if not key or not wav.is_file():
            where = f"[{info.get('extractor', '?')}] {info.get('id', '?')}"
            self._log.error(f"{where}: no WAV after download")
            return
        source = _file_url_path(info.get("webpage_url", ""))
        meta = {
            "archive_key": key,
            "id": item_id(info.get("extractor_key") or key.split(" ")[0], str(info["id"])),
            "video_id": str(info["id"]),
            "extractor_key": info.get("extractor_key"),
            "wav": wav.resolve().relative_to(self.cache.resolve()).as_posix(),
            "sha256": sha256_file(wav),
            "title": info.get("title"),
            "channel": info.get("channel") or info.get("uploader"),
            "channel_id": info.get("channel_id") or info.get("uploader_id"),
            "duration": info.get("duration"),
            "upload_date": info.get("upload_date"),
            "license": info.get("license"),
            "webpage_url": info.get("webpage_url") or info.get("original_url"),
            "source_sha256": self.source_hash(source) if source else None,
        }
        write_json_atomic(self._meta_path(key), meta)
        self._downloaded.append(meta)
        self.stats["downloaded"] += 1

    def fetch(self, row: SourceRow) -> tuple[list[str], list[str]]:
        """Archive keys of the items a row gave (downloaded now or before), and error reasons."""
        record_path = self._url_record_path(row.url)
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            record = None
        if record and record.get("single") and all(self.load_meta(k) for k in record["keys"]):
            self.stats["from_cache"] += len(record["keys"])
            return list(record["keys"]), []
        keys: list[str] = []
        errors: list[str] = []
        single = True
        retries = max(0, self.settings.ytdlp.retries)
        for attempt in range(retries + 1):
            self._downloaded.clear()
            self._hits.clear()
            self._log.errors.clear()
            info = self._extract(row.url)
            single = info is None or info.get("_type", "video") == "video"
            self.stats["from_cache"] += len(set(self._hits) - set(keys))
            keys.extend(
                k
                for k in [m["archive_key"] for m in self._downloaded] + self._hits
                if k not in keys
            )
            errors = list(dict.fromkeys(self._log.errors))
            if not errors or attempt == retries or not any(map(is_transient, errors)):
                break
            wait = min(self.settings.ytdlp.backoff_seconds * 2**attempt, MAX_BACKOFF_SECONDS)
            log.info(
                "collect: %s: transient error, retry %d/%d in %.1f s: %s",
                row.url,
                attempt + 1,
                retries,
                wait,
                errors[0],
            )
            self.sleep(wait)
        if keys and not errors and single:
            write_json_atomic(record_path, {"url": row.url, "single": True, "keys": keys})
        if not keys and not errors:
            errors.append("yt-dlp found no media at this url")
        return keys, errors

    def _extract(self, url: str) -> dict[str, Any] | None:
        from yt_dlp.utils import DownloadError

        # Only the generic extractor takes file:// URLs; naming it skips matching ~2000 others.
        ie_key = "Generic" if url.startswith("file:") else None
        try:
            return self._ydl.extract_info(url, download=True, ie_key=ie_key)
        except DownloadError as err:
            self._log.error(str(err))
        except Exception as err:
            log.exception("yt-dlp failed on %s", url)
            self._log.error(f"unexpected {type(err).__name__}: {err}")
        return None

    # -- manifest rows ------------------------------------------------------------------------

    def finish(self, row: SourceRow, key: str) -> dict[str, Any]:
        """Manifest row for one item of ``row``: section cut if asked, linked into ``out_dir``."""
        meta = self.load_meta(key)
        if meta is None:
            raise AudioError("downloaded file missing from the cache")
        wav, sha, manifest_id = self.cache / meta["wav"], meta["sha256"], meta["id"]
        if row.start is not None or row.end is not None:
            manifest_id = section_id(manifest_id, row.start, row.end)
            wav, sha = self._section(wav, sha, manifest_id, row.start or 0.0, row.end)
        info = audio_info(wav)
        dst = self.out_dir / "audio" / f"{manifest_id}.wav"
        link_or_copy(wav, dst)
        return {
            "id": manifest_id,
            "path": rel_to_cwd(dst),
            "label": row.label,
            "speaker": row.speaker or meta.get("channel_id") or "unknown",
            "source_id": meta["video_id"],
            "source_url": meta.get("webpage_url") or row.url,
            "title": row.title or meta.get("title") or "",
            "channel": meta.get("channel"),
            "duration": round(info.duration, 3),
            "upload_date": meta.get("upload_date"),
            "license": meta.get("license"),
            "section_start": row.start,
            "section_end": row.end,
            "sha256": sha,
            "origin": "youtube",
        }

    def _section(
        self, wav: Path, sha: str, manifest_id: str, start: float, end: float | None
    ) -> tuple[Path, str]:
        """Cut [start, end) out of a download once; cached by the download's sha256."""
        out = self.cache / "sections" / f"{manifest_id}.wav"
        stamp = out.with_suffix(".json")
        try:
            done = json.loads(stamp.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            done = None
        if done and done.get("source_sha256") == sha and out.is_file():
            return out, done["sha256"]
        y, sr = load_audio(wav, start=start, end=end)
        if y.size == 0:
            total = audio_info(wav).duration
            raise AudioError(f"section {start:g}-{end or total:g} s is empty ({total:.1f} s item)")
        write_wav(out, y, sr)
        digest = sha256_file(out)
        write_json_atomic(stamp, {"source_sha256": sha, "sha256": digest})
        return out, digest


def section_id(base: str, start: float | None, end: float | None) -> str:
    def ms(x: float | None) -> str:
        return "end" if x is None else str(round(x * 1000))

    return f"{base}-t{ms(start or 0.0)}-{ms(end)}"


def _failure_id(reason: str, fallback: str) -> str:
    m = ERROR_ID.match(reason)
    if not m:
        return fallback
    ie = m["ie"].split(":")[0]
    return item_id("youtube" if ie == "youtube" else ie, m["id"])


def collect_youtube(
    settings: YoutubeSettings,
    out_dir: Path = RAW_DIR,
    cache_dir: Path = CACHE_DIR,
    sleep: Any = time.sleep,
) -> Collected:
    """Download every row of the sources table; items that fail become failure rows."""
    failures = RejectLog(STAGE)
    root = Path(settings.root)
    if settings.allow_file_urls and not root.is_dir():
        raise CollectError(f"dataset root not found: {root}")
    sources = read_sources(Path(settings.sources), root, settings.allow_file_urls, failures)
    find_ffmpeg()
    collector = YtdlpCollector(settings, out_dir, cache_dir / "ytdlp", sleep=sleep)
    rows: list[dict[str, Any]] = []
    first_row: dict[str, int] = {}
    collector.open()
    try:
        for src in sources:
            keys, errors = collector.fetch(src)
            for reason in errors:
                failures.add(
                    _failure_id(reason, f"row-{src.line}"), "", _strip_error(reason), url=src.url
                )
            # A row's title names its video; the entries of a playlist keep their own titles.
            item_src = src if len(keys) == 1 else replace(src, title="")
            for key in keys:
                try:
                    row = collector.finish(item_src, key)
                except AudioError as err:
                    failures.add(key.replace(" ", "-"), "", str(err), url=src.url)
                    continue
                if row["id"] in first_row:
                    failures.add(
                        row["id"],
                        row["path"],
                        f"same item as sources row {first_row[row['id']]}; kept that one",
                        url=src.url,
                    )
                    continue
                first_row[row["id"]] = src.line
                rows.append(row)
    finally:
        collector.close()
    _remove_stale_audio(out_dir / "audio", {r["id"] for r in rows})
    stats = {**collector.stats, "rows": len(sources)}
    return Collected(rows, failures, stats)


def _strip_error(reason: str) -> str:
    return reason.removeprefix("ERROR: ")


def _remove_stale_audio(folder: Path, keep: set[str]) -> None:
    """A manual rerun must not leave WAVs of items that are no longer in the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    for wav in folder.glob("*.wav"):
        if wav.stem not in keep:
            wav.unlink()


# --------------------------------------------------------------------------------------------
# Folder datasets


def probe_file(path: str) -> dict[str, Any]:
    """Header check and sha256 of one file (worker function: top level, picklable)."""
    info = audio_info(path)
    return {"sha256": sha256_file(path), "duration": round(info.duration, 3)}


def _labels_from_csv(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        raise CollectError(f"labels_csv not found: {path}")
    rows = read_csv(path)
    if rows and not {"path", "label"} <= set(rows[0]):
        raise CollectError(f"{path}: needs columns path,label[,speaker]")
    return {PurePosixPath(r["path"].strip().replace("\\", "/")).as_posix(): r for r in rows}


def _map_label(raw: str, label_map: dict[str, str | None]) -> str | None:
    """Apply label_map (exact key first, then case-insensitive); None means drop."""
    if raw in label_map:
        return label_map[raw]
    lowered = {str(k).lower(): v for k, v in label_map.items()}
    return lowered.get(raw.lower(), raw)


def collect_folder(
    settings: FolderSettings,
    cache_dir: Path = CACHE_DIR,
    workers: int | None = None,
) -> Collected:
    """Reference every labelled audio file under ``settings.root`` (in place, with sha256)."""
    root = Path(settings.root)
    if not settings.root or not root.is_dir():
        raise CollectError(f"dataset root not found: {settings.root or '(empty)'}")
    by_csv = _labels_from_csv(root / settings.labels_csv) if settings.labels_csv else None
    regex = _compile_pattern(settings.pattern, need_label=by_csv is None)
    extensions = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in settings.extensions}
    failures = RejectLog(STAGE)
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    audio = [p for p in files if p.suffix.lower() in extensions]
    candidates: list[tuple[Path, str, str, str]] = []
    for path in audio:
        rel = path.relative_to(root).as_posix()
        found = _label_of(rel, regex, by_csv, settings.label_map)
        if isinstance(found, str):
            failures.add("", rel_to_cwd(path), found)
            continue
        label, speaker = found
        candidates.append((path, rel, label, speaker))
    if by_csv is not None:
        listed = {p.relative_to(root).as_posix() for p in audio}
        for rel in sorted(set(by_csv) - listed):
            failures.add("", rel, f"listed in labels_csv but not found under {root}")
    probes = _probe_cached(
        [c[0] for c in candidates], cache_dir / f"folder-{_path_key(root)}.json", workers
    )
    rows = []
    used: set[str] = set()
    for path, rel, label, speaker in candidates:
        probe = probes.get(str(path))
        if isinstance(probe, str) or probe is None:
            failures.add("", rel_to_cwd(path), probe or "not probed")
            continue
        rid = _unique(plain_slug(f"{settings.name}-{_stem_path(rel)}", 120), rel, used)
        rows.append(
            {
                "id": rid,
                "path": rel_to_cwd(path),
                "label": label,
                "speaker": speaker,
                "source_id": rid,
                "source_url": "",
                "title": rel,
                "duration": probe["duration"],
                "sha256": probe["sha256"],
                "origin": "folder",
            }
        )
    stats = {"files": len(files), "audio_files": len(audio), "other_files": len(files) - len(audio)}
    return Collected(rows, failures, stats)


def _compile_pattern(pattern: str | None, need_label: bool) -> re.Pattern[str] | None:
    if not pattern:
        if need_label:
            raise ConfigError("dataset needs a pattern with a (?P<label>...) group or labels_csv")
        return None
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise ConfigError(f"dataset.pattern is not a valid regular expression: {err}") from err
    if need_label and "label" not in regex.groupindex:
        raise ConfigError("dataset.pattern needs a named group (?P<label>...) or use labels_csv")
    return regex


def _label_of(
    rel: str,
    regex: re.Pattern[str] | None,
    by_csv: dict[str, dict[str, str]] | None,
    label_map: dict[str, str | None],
) -> tuple[str, str] | str:
    """(label, speaker) of a file, or the reason it is skipped."""
    groups: dict[str, str] = {}
    if regex is not None:
        m = regex.search(rel)
        if m:
            groups = {k: v for k, v in m.groupdict().items() if v is not None}
        elif by_csv is None:
            return f"path does not match dataset.pattern {regex.pattern!r}"
    if by_csv is not None:
        entry = by_csv.get(rel)
        if entry is None:
            return "not listed in labels_csv"
        groups["label"] = entry["label"].strip()
        if (entry.get("speaker") or "").strip():
            groups["speaker"] = entry["speaker"].strip()
    raw = groups.get("label", "")
    mapped = _map_label(raw, label_map)
    if mapped is None:
        return f"label {raw!r} dropped by label_map"
    try:
        label = canonical_label(mapped)
    except ValueError as err:
        return str(err)
    return label, groups.get("speaker") or "unknown"


def _stem_path(rel: str) -> str:
    return str(PurePosixPath(rel).with_suffix("")).replace("/", "-")


def _unique(rid: str, original: str, used: set[str]) -> str:
    """Folder ids are readable slugs; the rare collision (case, accents) gets a hash suffix."""
    if rid in used:
        rid = f"{rid}-{hashlib.sha256(original.encode('utf-8')).hexdigest()[:6]}"
    used.add(rid)
    return rid


def _path_key(path: Path) -> str:
    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]


def _probe_cached(
    paths: list[Path], cache_file: Path, workers: int | None
) -> dict[str, dict[str, Any] | str]:
    """sha256 + duration per file, reusing entries whose (path, size, mtime) did not change."""
    try:
        cached = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        cached = {}
    results: dict[str, dict[str, Any] | str] = {}
    fresh: dict[str, Any] = {}
    todo = []
    for path in paths:
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns]
        entry = cached.get(str(path))
        if entry and entry.get("stamp") == stamp:
            results[str(path)] = entry["probe"]
            fresh[str(path)] = entry
        else:
            todo.append(str(path))
    for outcome in map_files(
        probe_file,
        todo,
        workers=workers,
        desc="collect: hashing",
        known_errors=(AudioError, FfmpegMissingError, OSError),
    ):
        if outcome.error is not None:
            results[outcome.item] = outcome.error
            continue
        st = Path(outcome.item).stat()
        results[outcome.item] = outcome.result
        fresh[outcome.item] = {"stamp": [st.st_size, st.st_mtime_ns], "probe": outcome.result}
    if todo or len(fresh) != len(cached):
        write_json_atomic(cache_file, fresh)
    return results


# --------------------------------------------------------------------------------------------
# Stage wiring


def write_outputs(collected: Collected, out_dir: Path = RAW_DIR) -> None:
    write_csv_atomic(out_dir / "manifest.csv", collected.rows, MANIFEST_COLUMNS)
    collected.failures.write(out_dir / "failures.csv", FAILURE_EXTRA_COLUMNS)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)


def build_dataset_settings(section: dict[str, Any] | None) -> YoutubeSettings | FolderSettings:
    section = dict(section or {})
    kind = section.get("kind")
    if kind == "youtube":
        return build(YoutubeSettings, section, "dataset")
    if kind == "folder":
        return build(FolderSettings, section, "dataset")
    raise ConfigError(f"dataset.kind must be youtube or folder (got {kind!r})")


def collect(
    settings: YoutubeSettings | FolderSettings,
    out_dir: Path = RAW_DIR,
    cache_dir: Path = CACHE_DIR,
    workers: int | None = None,
) -> dict[str, Any]:
    """Collect a dataset into ``out_dir`` (manifest, failures, audio); return a summary."""
    started = time.perf_counter()
    if isinstance(settings, YoutubeSettings):
        collected = collect_youtube(settings, out_dir, cache_dir)
    else:
        collected = collect_folder(settings, cache_dir, workers)
    write_outputs(collected, out_dir)
    labels: dict[str, int] = {}
    for row in collected.rows:
        labels[row["label"]] = labels.get(row["label"], 0) + 1
    return {
        "dataset": settings.name,
        "kind": settings.kind,
        "items": len(collected.rows),
        "failures": len(collected.failures),
        "labels": dict(sorted(labels.items())),
        "speakers": len({r["speaker"] for r in collected.rows}),
        "seconds": round(sum(float(r["duration"]) for r in collected.rows), 1),
        "elapsed_seconds": round(time.perf_counter() - started, 2),
        **collected.stats,
    }


def run(params: dict[str, Any]) -> dict[str, Any]:
    settings = build_dataset_settings(params.get("dataset"))
    return collect(settings, workers=params.get("workers"))


def main(argv: list[str] | None = None) -> int:
    def work() -> None:
        log.info("collect: %s", json.dumps(run(load_params()), ensure_ascii=False))

    return stage_main(STAGE, work, (CollectError,))


if __name__ == "__main__":
    raise SystemExit(main())

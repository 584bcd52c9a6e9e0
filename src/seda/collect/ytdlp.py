"""Downloads through yt-dlp's Python API: best audio as WAV, cached, bounded in time, never fatal.

A url of a sources table is a video, playlist or channel of any site yt-dlp supports, or a search
such as ``ytsearch5:...``; playlists and searches expand to one item per video with the row's
label. Local files (``allow_file_urls``, the demo) go through exactly the same path as
``file://`` URLs. Everything downloaded is kept in the cache folder and hard-linked into
``<out>/audio/<id>.wav``, so a rerun downloads only what is new, and a single-video row already in
the cache makes no network request at all. ``duration`` is that of the WAV actually written
(after any section cut), not the site's figure.

Time is bounded (:class:`YtdlpSettings` ``timeout_seconds``): each url gets one deadline (each
playlist entry its own), enforced by ``socket_timeout`` on every read and by an alarm that stops
yt-dlp wherever it is when the deadline passes, so a server that stalls, trickles a byte a second
or promises 2 GB and sends a few costs at most the deadline. There is one retry policy, this
module's: yt-dlp's own retries are off and a row whose error is transient (timeouts, dropped
connections, HTTP 408/429/5xx) is tried again after an exponential back-off, or after the
server's ``Retry-After``, while its deadline leaves time. Partial files (``.part``) are removed
after a failure. A video that cannot be had becomes a failure row with yt-dlp's reason and its
kind (:mod:`seda.collect.failures`); a single-video url whose failure is permanent (404, 410,
private, removed, geo-blocked, unsupported url, not audio) is remembered in the cache and not
tried again, without any request, until ``retry_failed`` (``--retry-failed``) asks.

A full disk, a quota, or a read-only or forbidden cache or output folder is no failure of an item
(:mod:`seda.collect.environment`): whether yt-dlp, ffmpeg or this module meets it, it stops the
stage as an :class:`OSError` naming the path, with no failure row, retry or memory of it; and a
WAV that ffmpeg could not finish is never taken for a download.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from seda.audio import AudioError, audio_info, find_ffmpeg, load_audio
from seda.cache import link_or_copy
from seda.collect.deadline import Deadline, DeadlineExceeded, retry_after_seconds
from seda.collect.environment import (
    EnvironmentStop,
    check_wav_finished,
    environment_error,
    read_json,
)
from seda.collect.failures import PERMANENT, TRANSIENT, Collected, FailureLog
from seda.collect.sources import (
    SourceRow,
    file_url_path,
    item_id,
    portable_url,
    read_sources,
    section_id,
    slug_id,
)
from seda.errors import ConfigError, InputMissingError
from seda.io import (
    atomic_path,
    normalise_reason,
    rel_to_cwd,
    sha256_file,
    stat_stamp,
    write_json_atomic,
    write_text_atomic,
)
from seda.parallel import is_environment_error
from seda.records import UNKNOWN_SPEAKER, ItemRow

log = logging.getLogger(__name__)

# yt-dlp error text of failures worth another try now (network trouble, throttling, server errors).
TRANSIENT_TEXT = re.compile(
    r"timed? ?out|HTTP Error (?:408|429|5\d\d)|Connection (?:reset|refused|aborted)"
    r"|Remote end closed|IncompleteRead|content too short|Did not get any data"
    r"|Temporary failure|Network is unreachable|EOF occurred|bytes read",
    re.IGNORECASE,
)
# Failures of the item itself: not tried again on a later run unless asked (retry_failed). Any
# other failure (a deadline, an HTTP 403, an unknown error) is transient: a later run tries again.
PERMANENT_TEXT = re.compile(
    r"HTTP Error (?:400|401|404|410|451)\b|Unsupported URL|video (?:is )?unavailable"
    r"|private video|video is private|been removed|account (?:has been )?terminated|copyright"
    r"|members-only|join this channel|confirm your age|age[- ]restricted"
    r"|available (?:in your country|from your location)|geo[- ]?(?:restrict|block)"
    r"|Postprocessing:|not decodable|section [^ ]+ s is empty",
    re.IGNORECASE,
)
# A url past its deadline (Deadline.message): transient, but not tried again in the same run.
DEADLINE_TEXT = re.compile(r"no result within the \S+ s deadline")
ERROR_ID = re.compile(r"^(?:ERROR: )?\[(?P<ie>[^\]]+)\] (?P<id>[^\s:]+): ")
MAX_BACKOFF_SECONDS = 120.0
# Deadline per second of media when yt-dlp knows an item's duration: a 256 kbit/s audio stream
# over a 1 Mbit/s link (see YtdlpSettings.timeout_seconds).
DEADLINE_PER_MEDIA_SECOND = 0.25
# Partial downloads yt-dlp leaves behind when stopped (removed after a failed row).
PARTIAL_FILES = ("*.part", "*.part-Frag*", "*.ytdl")


@dataclass
class YtdlpSettings:
    format: str = "bestaudio/best"
    # Retries of a url after a transient error (timeout, dropped connection, HTTP 408/429/5xx),
    # with exponential back-off (or the server's Retry-After), within the url's deadline. This is
    # the one retry policy: yt-dlp's own retries are off, so the two never multiply.
    retries: int = 3
    # Random sleep before each download, in [sleep_seconds, max_sleep_seconds].
    sleep_seconds: float = 0.0
    max_sleep_seconds: float = 0.0
    # Netscape cookies file (age-gated videos), or None.
    cookies: str | None = None
    # Longest wait for any one network read (a server that sends nothing).
    socket_timeout: float = 20.0
    # First wait of the exponential back-off between retries of a transient failure.
    backoff_seconds: float = 2.0
    # Wall-clock deadline of one url, its retries and back-off included (a server that trickles
    # bytes never trips socket_timeout). When yt-dlp knows an item's duration the deadline is
    # max(timeout_seconds, duration / 4): a 256 kbit/s audio stream fetched at 1 Mbit/s (an
    # hour of audio gets 15 minutes). Each entry of a playlist gets its own deadline. A url past
    # its deadline is a transient failure: not tried again in this run, tried on the next.
    timeout_seconds: float = 180.0
    # Try again the urls whose failure was permanent (404, 410, private, removed, geo-blocked,
    # unsupported); otherwise they are remembered in the cache and skipped without a request.
    retry_failed: bool = False


@dataclass
class YoutubeSettings:
    kind: str = "youtube"
    name: str = "youtube"
    # Folder that local paths in the sources table are relative to (with allow_file_urls).
    root: str = "data/sources"
    sources: str = "data/sources/youtube.csv"
    allow_file_urls: bool = False
    ytdlp: YtdlpSettings = field(default_factory=YtdlpSettings)
    # Clean reference voices by name, for a synthetic corpus only (the demo: {demo: <folder>}):
    # dvc.yaml's separation_quality@<name> stage scores separation against them. Real
    # recordings have none, and without any that stage does not exist.
    references: dict[str, str] = field(default_factory=dict)


def validate_ytdlp(s: YtdlpSettings) -> None:
    """Range checks of ``dataset.ytdlp`` (a zero deadline would fail every url)."""
    for name in ("timeout_seconds", "socket_timeout"):
        if not getattr(s, name) > 0:
            raise ConfigError(f"dataset.ytdlp.{name} must be > 0 (got {getattr(s, name)!r})")
    if s.retries < 0 or s.backoff_seconds < 0:
        raise ConfigError("dataset.ytdlp.retries and backoff_seconds must be >= 0")


class _YtdlpLog:
    """yt-dlp logger: screen chatter to debug, warnings to warning, errors collected as reasons;
    an error of the machine (``environment``) stops yt-dlp there (:class:`EnvironmentStop`)."""

    def __init__(self, environment: Callable[[str], OSError | None] = lambda _: None) -> None:
        self.errors: list[str] = []
        self.environment = environment

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def info(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def warning(self, msg: str) -> None:
        log.warning("yt-dlp: %s", msg)

    def error(self, msg: str) -> None:
        self.errors.append(" ".join(msg.split()))
        log.debug("yt-dlp: %s", msg)
        err = self.environment(msg)
        if err is not None:
            raise EnvironmentStop(err)


def is_transient(reason: str) -> bool:
    """Worth retrying now: network trouble, throttling or a server error, not a gone video."""
    if DEADLINE_TEXT.search(reason) or PERMANENT_TEXT.search(reason):
        return False
    return bool(TRANSIENT_TEXT.search(reason))


def failure_kind(reason: str) -> str:
    """``permanent`` when the item itself is gone, restricted or not audio, else ``transient``."""
    return PERMANENT if PERMANENT_TEXT.search(reason) else TRANSIENT


@dataclass(frozen=True)
class DownloadFailure:
    """Why a url (or one item of it) gave nothing: ``id`` for failures.csv, reason and kind."""

    id: str
    reason: str
    kind: str


@dataclass(frozen=True)
class Fetched:
    """What one sources row gave: archive keys of its items and its failures."""

    keys: list[str]
    failures: list[DownloadFailure]


def _archive_key(info: Any) -> str | None:
    from yt_dlp.utils import make_archive_id

    ie = info.get("ie_key") or info.get("extractor_key")
    vid = info.get("id")
    return make_archive_id(ie, vid) if ie and vid else None


class YtdlpCollector:
    """Downloads the rows of a sources table through one ``yt_dlp.YoutubeDL`` and its caches.

    Cache layout (``cache_dir``): ``archive.txt`` (yt-dlp's download archive),
    ``media/<Extractor>/<id>.wav``, ``items/<id>.json`` (metadata + sha256 of each download),
    ``urls/<hash>.json`` (which items a single-video url gave), ``failed/<hash>.json`` (the
    permanent failure of a single-video url), ``sections/<id>.wav`` (trimmed).
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
        self.stats = {"downloaded": 0, "from_cache": 0, "rows": 0, "skipped_failed": 0}
        self._downloaded: list[dict[str, Any]] = []
        self._hits: list[str] = []
        self._log = _YtdlpLog(self.environment_error)
        self._ydl: Any = None
        self.deadline = Deadline()
        self._row_started = 0.0
        self._retry_after: float | None = None

    # -- cache bookkeeping --------------------------------------------------------------------

    def environment_error(self, message: str) -> OSError | None:
        """The machine's error a yt-dlp message reports (a path under the cache or the output
        folder is named; the cache when the message names none), else None. A message of an
        extractor (``[site] id: ...``) is the remote's answer about an item, whatever it says."""
        if ERROR_ID.match(message):
            return None
        return environment_error(message, (self.cache, self.out_dir), self.cache)

    def _meta_path(self, archive_key: str) -> Path:
        return self.cache / "items" / f"{slug_id(archive_key.replace(' ', '-'))}.json"

    def load_meta(self, archive_key: str) -> dict[str, Any] | None:
        """Cached metadata of a download, or None when it or its WAV is missing or stale."""
        meta = read_json(self._meta_path(archive_key))
        if meta is None or not (self.cache / meta["wav"]).is_file():
            return None
        source = file_url_path(meta.get("webpage_url", ""))
        if source is not None and self.source_hash(source) != meta.get("source_sha256"):
            return None
        return meta

    def source_hash(self, path: Path) -> str | None:
        """sha256 of a file:// source (memoised per run by its stamp), None if absent."""
        try:
            st = path.stat()
        except OSError:
            return None
        key = (str(path), *stat_stamp(st))
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

    def _url_key(self, url: str) -> str:
        return hashlib.sha256(url.encode()).hexdigest()[:24]

    def _url_record_path(self, url: str) -> Path:
        return self.cache / "urls" / f"{self._url_key(url)}.json"

    def _failure_record_path(self, url: str) -> Path:
        return self.cache / "failed" / f"{self._url_key(url)}.json"

    def _source_stamp(self, url: str) -> list[int] | None:
        """The stamp of a file:// source (:func:`seda.io.stat_stamp`), so that a changed local
        file is tried again."""
        local = file_url_path(url)
        if local is None:
            return None
        try:
            st = local.stat()
        except OSError:
            return [-1, -1]
        return list(stat_stamp(st))

    def remembered_failures(self, url: str) -> list[DownloadFailure] | None:
        """The permanent failures of ``url`` from an earlier run, or None (try it)."""
        if self.settings.ytdlp.retry_failed:
            return None
        record = read_json(self._failure_record_path(url))
        if not record or record.get("source") != self._source_stamp(url):
            return None
        failures = [DownloadFailure(**f) for f in record.get("failures", [])]
        if not failures or any(f.kind != PERMANENT for f in failures):
            return None
        return failures

    def _remember(self, url: str, failures: list[DownloadFailure]) -> None:
        path = self._failure_record_path(url)
        if failures and all(f.kind == PERMANENT for f in failures):
            record = {
                "url": url,
                "source": self._source_stamp(url),
                "failures": [f.__dict__ for f in failures],
            }
            write_json_atomic(path, record)
        else:
            path.unlink(missing_ok=True)

    def remove_partial_files(self) -> int:
        """Delete partial downloads (``.part`` and fragment files) left in the cache."""
        media = self.cache / "media"
        removed = 0
        for pattern in PARTIAL_FILES:
            for path in sorted(media.rglob(pattern)) if media.is_dir() else []:
                if path.is_file() or path.is_symlink():
                    path.unlink(missing_ok=True)
                    removed += 1
        if removed:
            log.debug("collect: removed %d partial download(s)", removed)
        return removed

    # -- yt-dlp -------------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        s = self.settings.ytdlp
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
            # The WAV conversion is added in _make_ydl (ffmpeg's write errors checked).
            "ffmpeg_location": find_ffmpeg(),
            # One retry policy, fetch()'s: yt-dlp's own network retries would multiply with it,
            # cannot honour Retry-After and know nothing of the url's deadline.
            "retries": 0,
            "fragment_retries": 0,
            "extractor_retries": 0,
            "socket_timeout": s.socket_timeout,
            "progress_hooks": [self._on_progress],
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
                raise InputMissingError(f"cookies file not found: {s.cookies}")
            opts["cookiefile"] = s.cookies
        return opts

    def _on_progress(self, status: dict[str, Any]) -> None:
        self.deadline.check()

    def _on_http_error(self, err: Any) -> None:
        """Note the server's Retry-After (HTTP 429/503) for the back-off of the next try."""
        headers = getattr(getattr(err, "response", None), "headers", None) or {}
        wait = retry_after_seconds(headers.get("Retry-After"))
        if wait is not None:
            self._retry_after = max(wait, self._retry_after or 0.0)

    def _begin_item(self, info: dict[str, Any]) -> None:
        """An item is about to download: its deadline, longer for a long item yt-dlp knows."""
        s = self.settings.ytdlp
        duration = info.get("duration")
        window = float(s.timeout_seconds)
        if isinstance(duration, int | float) and duration > 0:
            window = max(window, float(duration) * DEADLINE_PER_MEDIA_SECOND)
        label = f"[{info.get('extractor') or info.get('extractor_key') or '?'}] {info.get('id')}"
        if _in_playlist(info):
            self.deadline.set(time.monotonic() + window, window, label)
        else:
            self.deadline.set(max(self.deadline.at, self._row_started + window), window, label)

    def _end_item(self, info: dict[str, Any]) -> None:
        if _in_playlist(info):  # the next entry's listing and download get their own time
            window = float(self.settings.ytdlp.timeout_seconds)
            self.deadline.set(time.monotonic() + window, window)

    def _make_ydl(self) -> Any:
        import yt_dlp
        from yt_dlp.networking.exceptions import HTTPError
        from yt_dlp.postprocessor import FFmpegExtractAudioPP, PostProcessor

        collector = self

        class ExtractWav(FFmpegExtractAudioPP):  # type: ignore[misc]
            """yt-dlp's conversion to WAV, with ffmpeg's whole stderr read for a failed write:
            ffmpeg 5 exits 0 when the disk fills while it finishes a file, and yt-dlp quotes
            only the last line of a failure ("Conversion failed!")."""

            _stderr = ""

            def write_debug(self, text: str, *args: Any, **kwargs: Any) -> Any:
                self._stderr = str(text)  # the last is ffmpeg's stderr when it failed
                return super().write_debug(text, *args, **kwargs)

            def real_run_ffmpeg(self, inputs: Any, outputs: Any, **kwargs: Any) -> Any:
                out = next((str(p) for p, _ in outputs if p), str(collector.cache))
                try:
                    stderr = super().real_run_ffmpeg(inputs, outputs, **kwargs)
                except Exception:
                    collector.stop_on_environment(self._stderr, Path(out))
                    raise
                collector.stop_on_environment(stderr, Path(out))
                return stderr

        class Recorder(PostProcessor):  # type: ignore[misc]
            """Runs once per finished download (after the move), while its info dict is at hand."""

            def run(self, info: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
                try:
                    collector._record_download(info)
                except OSError as err:
                    if is_environment_error(err):
                        raise EnvironmentStop(err) from err
                    raise
                return [], info

        class CollectorYDL(yt_dlp.YoutubeDL):  # type: ignore[misc]
            """Notes archive hits (so they still reach the manifest), HTTP errors (Retry-After)
            and gives each item its deadline; a playlist entry past its deadline is a failure
            of that entry, and the playlist goes on."""

            def in_download_archive(self, info_dict: dict[str, Any]) -> bool:
                found = bool(super().in_download_archive(info_dict))
                key = _archive_key(info_dict) if found else None
                if key:
                    collector._hits.append(key)
                return found

            def urlopen(self, req: Any) -> Any:
                collector.deadline.check()
                try:
                    return super().urlopen(req)
                except HTTPError as err:
                    collector._on_http_error(err)
                    raise

            def process_info(self, info_dict: dict[str, Any]) -> Any:
                collector._begin_item(info_dict)
                try:
                    return super().process_info(info_dict)
                except DeadlineExceeded as err:
                    if not _in_playlist(info_dict):
                        raise
                    collector._log.error(str(err))
                    return None
                finally:
                    collector._end_item(info_dict)

        ydl = CollectorYDL(self._options())
        ydl.add_post_processor(ExtractWav(ydl, preferredcodec="wav"), when="post_process")
        ydl.add_post_processor(Recorder(), when="after_move")
        return ydl

    def stop_on_environment(self, ffmpeg_stderr: str, output: Path) -> None:
        """Stop the stage when ffmpeg's stderr reports a failed write (of ``output``)."""
        err = environment_error(ffmpeg_stderr or "", (self.cache, self.out_dir), output)
        if err is not None:
            output.unlink(missing_ok=True)  # what ffmpeg left of it: give the space back
            raise EnvironmentStop(err)

    def open(self) -> None:
        self.prune_archive()
        self.remove_partial_files()  # of a run that was killed
        self._ydl = self._make_ydl()

    def close(self) -> None:
        if self._ydl is not None:
            self._ydl.close()
            self._ydl = None
        self.remove_partial_files()

    def _record_download(self, info: dict[str, Any]) -> None:
        key = _archive_key(info)
        wav = Path(info.get("filepath") or "")
        if not key or not wav.is_file():
            where = f"[{info.get('extractor', '?')}] {info.get('id', '?')}"
            self._log.error(f"{where}: no WAV after download")
            return
        check_wav_finished(wav)
        source = file_url_path(info.get("webpage_url", ""))
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
        fetched = self.fetch_row(row)
        return fetched.keys, [f.reason for f in fetched.failures]

    def fetch_row(self, row: SourceRow) -> Fetched:
        """The items a row gave (downloaded now or before) and its failures, each with a kind.

        A single-video url in the cache, or one that failed permanently before, makes no request.
        """
        url = row.download_url
        record = read_json(self._url_record_path(url))
        if record and record.get("single") and all(self.load_meta(k) for k in record["keys"]):
            self.stats["from_cache"] += len(record["keys"])
            return Fetched(list(record["keys"]), [])
        remembered = self.remembered_failures(url)
        if remembered is not None:
            self.stats["skipped_failed"] += 1
            return Fetched([], remembered)
        keys, errors, single = self._attempts(row)
        if errors:
            self.remove_partial_files()
        failures = [
            DownloadFailure(
                _failure_id(e, f"row-{row.line}"),
                normalise_reason(e.removeprefix("ERROR: ")),
                failure_kind(e),
            )
            for e in errors
        ]
        if not keys and not failures:
            failures.append(
                DownloadFailure(f"row-{row.line}", "yt-dlp found no media at this url", TRANSIENT)
            )
        if keys and not errors and single:
            record = {"url": url, "single": True, "keys": keys}
            write_json_atomic(self._url_record_path(url), record)
        self._remember(url, failures if single and not keys else [])
        return Fetched(keys, failures)

    def _attempts(self, row: SourceRow) -> tuple[list[str], list[str], bool]:
        """Try a url until it works, its error is not transient, retries or time run out."""
        url = row.download_url
        s = self.settings.ytdlp
        self._row_started = time.monotonic()
        self.deadline.set(self._row_started + s.timeout_seconds, float(s.timeout_seconds))
        self.deadline.hit = False
        keys: list[str] = []
        errors: list[str] = []
        single = True
        retries = max(0, s.retries)
        for attempt in range(retries + 1):
            self._downloaded.clear()
            self._hits.clear()
            self._log.errors.clear()
            self._retry_after = None
            info = self._extract(url)
            single = info is None or info.get("_type", "video") == "video"
            self.stats["from_cache"] += len(set(self._hits) - set(keys))
            keys.extend(
                k
                for k in [m["archive_key"] for m in self._downloaded] + self._hits
                if k not in keys
            )
            errors = list(dict.fromkeys(self._log.errors))
            wait = self._retry_wait(errors, attempt) if attempt < retries else None
            if wait is None:
                break
            log.info(
                "collect: %s: transient error, retry %d/%d in %.1f s: %s",
                row.url,
                attempt + 1,
                retries,
                wait,
                errors[0],
            )
            self.sleep(wait)
        self.deadline.clear()
        return keys, errors, single

    def _retry_wait(self, errors: list[str], attempt: int) -> float | None:
        """Seconds to wait before the next try, or None: no error, none transient, no time."""
        if not errors or self.deadline.hit or not any(map(is_transient, errors)):
            return None
        wait = min(self.settings.ytdlp.backoff_seconds * 2**attempt, MAX_BACKOFF_SECONDS)
        if self._retry_after is not None:
            if self._retry_after > MAX_BACKOFF_SECONDS:
                return None
            wait = max(wait, self._retry_after)
        if wait >= self.deadline.left():
            return None
        return wait

    def _extract(self, url: str) -> dict[str, Any] | None:
        """yt-dlp's result for ``url`` (None after a failure, whose reasons are in the log); an
        error of the machine met anywhere on the way is raised as :class:`OSError`."""
        try:
            return self._extract_info(url)
        except EnvironmentStop as stop:
            raise stop.error from None

    def _extract_info(self, url: str) -> dict[str, Any] | None:
        from yt_dlp.utils import DownloadError

        # Only the generic extractor takes file:// URLs; naming it skips matching ~2000 others.
        ie_key = "Generic" if url.startswith("file:") else None
        try:
            with self.deadline.enforced():
                return self._ydl.extract_info(url, download=True, ie_key=ie_key)
        except DeadlineExceeded as err:
            self.deadline.hit = True
            self._log.error(str(err))
            # Stopped anywhere inside yt-dlp: start the next url with a fresh instance.
            self._ydl.close()
            self._ydl = self._make_ydl()
        except DownloadError as err:
            self._log.error(str(err))
        except Exception as err:
            if is_environment_error(err):
                raise
            log.exception("yt-dlp failed on %s", url)
            self._log.error(f"unexpected {type(err).__name__}: {err}")
        return None

    # -- manifest rows ------------------------------------------------------------------------

    def finish(self, row: SourceRow, key: str) -> ItemRow:
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
        _place(wav, dst)
        return ItemRow(
            id=manifest_id,
            path=rel_to_cwd(dst),
            label=row.label,
            speaker=row.speaker or meta.get("channel_id") or UNKNOWN_SPEAKER,
            source_id=meta["video_id"],
            source_url=portable_url(meta.get("webpage_url") or row.download_url),
            title=row.title or meta.get("title") or "",
            channel=meta.get("channel") or "",
            duration=round(info.duration, 3),
            upload_date=meta.get("upload_date") or "",
            license=meta.get("license") or "",
            section_start=row.start,
            section_end=row.end,
            sha256=sha,
            origin="youtube",
        )

    def _section(
        self, wav: Path, sha: str, manifest_id: str, start: float, end: float | None
    ) -> tuple[Path, str]:
        """Cut [start, end) out of a download once; cached by the download's sha256."""
        out = self.cache / "sections" / f"{manifest_id}.wav"
        stamp = out.with_suffix(".json")
        done = read_json(stamp)
        if done and done.get("source_sha256") == sha and out.is_file():
            return out, done["sha256"]
        y, sr = load_audio(wav, start=start, end=end)
        if y.size == 0:
            total = audio_info(wav).duration
            raise AudioError(f"section {start:g}-{end or total:g} s is empty ({total:.1f} s item)")
        digest = _write_wav(out, y, sr)
        write_json_atomic(stamp, {"source_sha256": sha, "sha256": digest})
        return out, digest


def _write_wav(path: Path, y: np.ndarray, sr: int) -> str:
    """PCM16 WAV written atomically with plain file I/O, so that a full disk raises OSError with
    its errno and path (libsndfile says only "System error."); returns its sha256."""
    buf = io.BytesIO()
    sf.write(buf, np.asarray(y, dtype=np.float32), sr, subtype="PCM_16", format="WAV")
    data = buf.getvalue()
    with atomic_path(path, suffix=".tmp.wav") as tmp:
        tmp.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _place(src: Path, dst: Path) -> None:
    """Hard-link (or copy) a cached WAV into the output; a failed write names ``dst``."""
    try:
        link_or_copy(src, dst)
    except OSError as err:
        dst.with_name(f".{dst.name}.tmp").unlink(missing_ok=True)
        if not is_environment_error(err):
            raise
        raise OSError(err.errno, err.strerror, str(dst)) from err


def _in_playlist(info: dict[str, Any]) -> bool:
    return info.get("playlist_index") is not None


def _failure_id(reason: str, fallback: str) -> str:
    m = ERROR_ID.match(reason)
    if not m:
        return fallback
    ie = m["ie"].split(":")[0]
    return item_id("youtube" if ie == "youtube" else ie, m["id"])


def collect_youtube(
    settings: YoutubeSettings, out_dir: Path, cache_dir: Path, sleep: Any = time.sleep
) -> Collected:
    """Download every row of the sources table into ``out_dir/audio`` (through the cache in
    ``cache_dir/ytdlp``); items that fail become failure rows."""
    failures = FailureLog()
    root = Path(settings.root)
    if settings.allow_file_urls and not root.is_dir():
        raise InputMissingError(f"dataset root not found: {root}")
    sources = read_sources(Path(settings.sources), root, settings.allow_file_urls, failures)
    find_ffmpeg()
    collector = YtdlpCollector(settings, out_dir, cache_dir / "ytdlp", sleep=sleep)
    rows: list[ItemRow] = []
    first_row: dict[str, int] = {}
    collector.open()
    try:
        for src in sources:
            fetched = collector.fetch_row(src)
            keys = fetched.keys
            for failure in fetched.failures:
                failures.add(failure.id, "", failure.reason, kind=failure.kind, url=src.url)
            # A row's title names its video; the entries of a playlist keep their own titles.
            item_src = src if len(keys) == 1 else replace(src, title="")
            for key in keys:
                try:
                    row = collector.finish(item_src, key)
                except AudioError as err:
                    reason = str(err)
                    kind = failure_kind(reason)
                    failures.add(key.replace(" ", "-"), "", reason, kind=kind, url=src.url)
                    continue
                if row.id in first_row:
                    failures.add(
                        row.id,
                        row.path,
                        f"same item as sources row {first_row[row.id]}; kept that one",
                        kind=PERMANENT,
                        url=src.url,
                    )
                    continue
                first_row[row.id] = src.line
                rows.append(row)
    finally:
        collector.close()
    _remove_stale_audio(out_dir / "audio", {r.id for r in rows})
    if collector.stats["skipped_failed"]:
        log.info(
            "collect: %d url(s) failed permanently before and were not tried again "
            "(--retry-failed or dataset.ytdlp.retry_failed: true tries them)",
            collector.stats["skipped_failed"],
        )
    stats = {**collector.stats, "rows": len(sources)}
    return Collected(rows, failures, stats)


def _remove_stale_audio(folder: Path, keep: set[str]) -> None:
    """A manual rerun must not leave WAVs of items that are no longer in the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    for wav in folder.glob("*.wav"):
        if wav.stem not in keep:
            wav.unlink()

"""The sources table of a download dataset, manifest ids, canonical labels and portable URLs.

A sources table (CSV or YAML list) has ``url,label[,speaker,start,end,title]``. With
``allow_file_urls`` a url may also be a local path (relative to the dataset root) or a ``file:``
URL; it is downloaded through yt-dlp like any web video, but stored (manifest ``source_url``,
``failures.csv``) in a portable form, ``file:<path relative to the working directory>``, so the
same corpus collected in another clone gives the same bytes.

Manifest ids are ``[a-z0-9_-]`` only and never derived from titles: ``yt-<video id>`` (YouTube),
``<extractor>-<id>`` (other sites; ``generic-<file stem>`` for direct links and the demo),
``<dataset name>-<relative path>`` (folder). Where making a video id fit that alphabet loses
information (upper case in YouTube ids), a short hash of the original is appended so that ids
stay unique. A row with ``start``/``end`` gives ``<id>-t<start ms>-<end ms|end>``.
"""

from __future__ import annotations

import csv
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from seda.collect.failures import PERMANENT, FailureLog
from seda.errors import InputMissingError, UserError
from seda.io import rel_to_cwd
from seda.records import ID_PATTERN

# A string that starts with a URL scheme (``https:``, ``ytsearch5:``, ``file:``).
URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class CollectError(UserError):
    """A dataset input that cannot be used as a whole (a malformed sources or labels table)."""


# --------------------------------------------------------------------------------------------
# Ids and labels


def slug_id(text: str, max_len: int = 80) -> str:
    """``text`` in the id alphabet ``[a-z0-9_-]``; a hash suffix keeps lossy conversions unique."""
    if ID_PATTERN.fullmatch(text) and len(text) <= max_len:
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


def section_id(base: str, start: float | None, end: float | None) -> str:
    """Id of the section [start, end) of item ``base``: ``<base>-t<start ms>-<end ms|end>``."""

    def ms(x: float | None) -> str:
        return "end" if x is None else str(round(x * 1000))

    return f"{base}-t{ms(start or 0.0)}-{ms(end)}"


def canonical_label(raw: str) -> str:
    """Lower-case, trimmed, spaces as underscores; raises ValueError if not ``[a-z0-9_-]``."""
    label = "_".join(str(raw).strip().lower().split())
    if not ID_PATTERN.fullmatch(label):
        raise ValueError(
            f"label {raw!r} is not a canonical label ([a-z0-9_-]); rename it with label_map"
        )
    return label


# --------------------------------------------------------------------------------------------
# Local files as URLs


def file_url_path(url: str) -> Path | None:
    """The local path of a ``file:`` URL (absolute or relative), None for any other URL."""
    parsed = urlparse(url or "")
    return Path(url2pathname(parsed.path)) if parsed.scheme == "file" else None


def portable_url(url: str) -> str:
    """``url`` as stored in manifests: a ``file:`` URL becomes ``file:<relative POSIX path>``
    (relative to the working directory, i.e. the repository root), anything else is unchanged."""
    local = file_url_path(url)
    return url if local is None else f"file:{rel_to_cwd(local)}"


# --------------------------------------------------------------------------------------------
# Sources table


@dataclass(frozen=True)
class SourceRow:
    """One row of a sources table.

    ``url`` is what manifests and failure rows store (local files in the portable ``file:``
    form); ``fetch_url``, when set, is the absolute URL handed to yt-dlp instead.
    """

    line: int
    url: str
    label: str
    speaker: str = ""
    start: float | None = None
    end: float | None = None
    title: str = ""
    fetch_url: str = ""

    @property
    def download_url(self) -> str:
        return self.fetch_url or self.url


def read_sources(
    path: Path, root: Path, allow_file_urls: bool, failures: FailureLog
) -> list[SourceRow]:
    """Parse and check the sources table; a bad row becomes a failure row, not an abort."""
    if not path.is_file():
        raise InputMissingError(f"sources table not found: {path}")
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
        row = parse_source_row(
            line, {k.strip(): (v or "").strip() for k, v in raw.items() if k}, root, allow_file_urls
        )
        if isinstance(row, str):
            failures.add(
                f"row-{line}", rel_to_cwd(path), row, kind=PERMANENT, url=raw.get("url") or ""
            )
        else:
            rows.append(row)
    return rows


def parse_source_row(
    line: int, raw: dict[str, str], root: Path, allow_file_urls: bool
) -> SourceRow | str:
    """One checked sources row, or the reason it cannot be used."""
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
    fetch_url = ""
    if not URL_SCHEME.match(url) or url.lower().startswith("file:"):
        if not allow_file_urls:
            return f"sources row {line}: local files and file:// URLs need allow_file_urls: true"
        local = file_url_path(url) if url.lower().startswith("file:") else root / url
        if local is None or not local.is_file():
            return f"sources row {line}: file not found: {local}"
        fetch_url = local.resolve().as_uri()
        url = f"file:{rel_to_cwd(local)}"
    return SourceRow(
        line, url, label, raw.get("speaker", ""), start, end, raw.get("title", ""), fetch_url
    )

"""Gather labelled audio into a manifest of :class:`seda.records.ItemRow` plus failure rows.

Two dataset kinds (settings from the ``dataset`` section):

``youtube`` (:mod:`seda.collect.ytdlp`)
    A sources table (:mod:`seda.collect.sources`) of URLs, downloaded through yt-dlp into a
    cache and hard-linked into ``<out>/audio/<id>.wav``; local files (the demo) as ``file:``
    URLs through the same path.
``folder`` (:mod:`seda.collect.folder`)
    Any labelled corpus on disk, referenced in place with its sha256.

:func:`collect_dataset` runs either and writes ``manifest.csv`` and ``failures.csv`` (each failure
with its kind, transient or permanent). Every path written is relative and POSIX, and failure
reasons are normalised (:mod:`seda.collect.failures`), so the same inputs give the same bytes in
any clone. :func:`index_corpus` (:mod:`seda.collect.index`) lists what a dataset reads without
opening anything, odd entries (loops, dangling links, pipes, sockets, devices) flagged.

A full disk, a quota, or a read-only or forbidden cache or output folder is never an item's
failure: it stops the stage as an ``OSError`` naming the path (:mod:`seda.collect.environment`).
"""

from seda.collect.dataset import (
    build_dataset_settings,
    collect_dataset,
    index_corpus,
    write_outputs,
)
from seda.collect.failures import (
    FAILURE_EXTRA_COLUMNS,
    PERMANENT,
    TRANSIENT,
    Collected,
    FailureLog,
)
from seda.collect.folder import FolderSettings, collect_folder, probe_file
from seda.collect.index import IndexRow, scan_tree
from seda.collect.sources import (
    URL_SCHEME,
    CollectError,
    SourceRow,
    canonical_label,
    item_id,
    plain_slug,
    portable_url,
    read_sources,
    section_id,
    slug_id,
)
from seda.collect.ytdlp import (
    DownloadFailure,
    YoutubeSettings,
    YtdlpCollector,
    YtdlpSettings,
    collect_youtube,
    failure_kind,
    is_transient,
)

__all__ = [
    "FAILURE_EXTRA_COLUMNS",
    "PERMANENT",
    "TRANSIENT",
    "URL_SCHEME",
    "CollectError",
    "Collected",
    "DownloadFailure",
    "FailureLog",
    "FolderSettings",
    "IndexRow",
    "SourceRow",
    "YoutubeSettings",
    "YtdlpCollector",
    "YtdlpSettings",
    "build_dataset_settings",
    "canonical_label",
    "collect_dataset",
    "collect_folder",
    "collect_youtube",
    "failure_kind",
    "index_corpus",
    "is_transient",
    "item_id",
    "plain_slug",
    "portable_url",
    "probe_file",
    "read_sources",
    "scan_tree",
    "section_id",
    "slug_id",
    "write_outputs",
]

"""Separation scored against clean reference voices (a synthetic corpus knows them).

The demo writes each item's clean voice as ``<references>/<media stem>.wav``; real recordings
have no reference, so this scoring exists only where a dataset names a references folder.
"""

from __future__ import annotations

import logging
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from seda.audio import AudioError, load_audio
from seda.separation.quality import si_sdr

log = logging.getLogger(__name__)

# Signals are compared at this rate (the speech band; the clips are 16 kHz too).
SCORE_SAMPLE_RATE = 16000


def find_reference(row: Mapping[str, Any], references: Path | None) -> Path | None:
    """The clean reference voice of a raw manifest row in ``references``, or None.

    Demo items come from ``file:`` URLs (or paths) of ``<demo>/media/<stem>.<ext>``; their
    voice is ``<references>/<stem>.wav``. Web videos and folder datasets have no reference, and
    without a references folder nothing has one.
    """
    if references is None:
        return None
    url = (row.get("source_url") or "").strip()
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        media = Path(urllib.request.url2pathname(parsed.path))
    elif url and not parsed.scheme:
        media = Path(url)
    else:
        return None
    if not media.stem:
        return None
    candidate = Path(references) / f"{media.stem}.wav"
    return candidate if candidate.is_file() else None


def score_against_references(
    raw_rows: Sequence[Mapping[str, Any]],
    separated_rows: Sequence[Mapping[str, Any]],
    references: Path,
) -> list[dict[str, Any]]:
    """SI-SDR (dB) of each item's mixture and separated voice against its reference, by id.

    A raw item that is a section of its source (``section_start``) is matched by cutting the
    reference at the same offset. Items without a reference or with unreadable audio are left
    out (logged).
    """
    voices = {r["id"]: r["path"] for r in separated_rows}
    scores = []
    for row in sorted(raw_rows, key=lambda r: r["id"]):
        reference_path = find_reference(row, references)
        if reference_path is None or row["id"] not in voices:
            continue
        offset = float(row.get("section_start") or 0.0)
        end = row.get("section_end")
        try:
            mixture, _ = load_audio(row["path"], SCORE_SAMPLE_RATE)
            voice, _ = load_audio(voices[row["id"]], SCORE_SAMPLE_RATE)
            reference, _ = load_audio(
                reference_path,
                SCORE_SAMPLE_RATE,
                start=offset,
                end=None if end in (None, "") else float(end),
            )
        except AudioError as err:
            log.warning("separation scores: %s left out: %s", row["id"], err)
            continue
        mixture_db, voice_db = si_sdr(reference, mixture), si_sdr(reference, voice)
        scores.append(
            {
                "id": row["id"],
                "si_sdr_mixture": round(mixture_db, 3),
                "si_sdr_separated": round(voice_db, 3),
                "si_sdr_gain": round(voice_db - mixture_db, 3),
            }
        )
    return scores

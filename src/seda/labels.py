"""Labels a person gave in ``seda review``, and pseudo-labels a model proposes for them to review.

The decision log (``reviewed.csv``) is append-only: every decision is one row, with a time stamp
and the previous and proposed labels; :func:`append_reviewed` writes one row under an exclusive
lock and fsyncs it. :func:`apply_reviewed_labels` turns the log into labels for the next run: the
latest ``label``/``discard`` decision of a clip wins; ``skip`` only records that someone listened.

Pseudo-labels never become training labels by themselves: :func:`prediction_rows` and
:func:`review_queue` build the rows a person reviews (most uncertain first), and only their
decisions change labels.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from seda.errors import UserError
from seda.io import read_csv
from seda.records import CLIP_COLUMNS, ID_PATTERN, UNLABELLED

log = logging.getLogger(__name__)

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
# Columns of the pseudo-label predictions and of the review queue, before one prob_<label> per
# label of the model.
PREDICTION_COLUMNS = ("rank", *CLIP_COLUMNS, "model", "predicted", "probability", "margin")


class ReviewedLogError(UserError):
    """The decision log has other columns than seda writes."""


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
                raise ReviewedLogError(
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
def _locked(fh: Any) -> Iterator[None]:
    """An exclusive advisory lock on the open file itself (no lock file left behind)."""
    import fcntl

    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def read_reviewed(path: str | Path) -> list[dict[str, str]]:
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
    path: str | Path, kinds: Iterable[str] = ("label", "discard")
) -> dict[str, dict[str, str]]:
    """The last decision of each clip among ``kinds`` (file order is time order)."""
    wanted = set(kinds)
    out: dict[str, dict[str, str]] = {}
    for r in read_reviewed(path):
        label_ok = r["decision"] != "label" or ID_PATTERN.fullmatch(r["label"])
        if r["decision"] in wanted and label_ok:
            out[r["clip_id"]] = r
    return out


def apply_reviewed_labels(
    rows: Sequence[Mapping[str, Any]], path: str | Path
) -> list[dict[str, Any]]:
    """Rows (clips with ``clip_id``, ``label``, optionally ``sha256``) with reviewed labels set
    and discarded clips removed. A decision about a clip whose audio has changed since (another
    sha256) is ignored with a warning: it was about other sound. Input rows are not modified."""
    decisions = latest_decisions(path)
    if not decisions:
        return [dict(r) for r in rows]
    out: list[dict[str, Any]] = []
    relabelled = discarded = stale = 0
    for r in rows:
        d = decisions.get(str(r.get("clip_id", "")))
        if d is None:
            out.append(dict(r))
            continue
        if d["sha256"] and r.get("sha256") and d["sha256"] != r["sha256"]:
            stale += 1
            out.append(dict(r))
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
# Pseudo-labels


def unlabelled_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Clips without an emotion label (``unknown`` or empty)."""
    return [dict(r) for r in rows if (r.get("label") or UNLABELLED) == UNLABELLED]


def margins(proba: np.ndarray) -> np.ndarray:
    """Top probability minus the runner-up's: small means the model hesitates."""
    if proba.shape[1] < 2:
        return np.ones(len(proba))
    top2 = np.sort(proba, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def prediction_columns(labels: Sequence[str]) -> list[str]:
    """Columns of the predictions and review queue files of a model with these labels."""
    return [*PREDICTION_COLUMNS, *(f"prob_{lab}" for lab in labels)]


def prediction_rows(
    rows: Sequence[Mapping[str, Any]], proba: np.ndarray, labels: Sequence[str], model_name: str
) -> list[dict[str, Any]]:
    """One output row per clip (same order), with predicted label, probability and margin."""
    out = []
    margin = margins(proba)
    for r, p, m in zip(rows, proba, margin, strict=True):
        k = int(np.argmax(p))
        out.append(
            {
                **r,
                "model": model_name,
                "predicted": labels[k],
                "probability": round(float(p[k]), 6),
                "margin": round(float(m), 6),
                **{f"prob_{lab}": round(float(v), 6) for lab, v in zip(labels, p, strict=True)},
            }
        )
    return out


def review_queue(predictions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Most uncertain first (smallest margin, then lowest probability, then clip id); ranked."""
    ordered = sorted(
        predictions, key=lambda r: (float(r["margin"]), float(r["probability"]), r["clip_id"])
    )
    return [{**r, "rank": i} for i, r in enumerate(ordered, start=1)]

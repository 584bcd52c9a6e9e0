"""seda.labels' decision log (append-only, locked) and seda review, a server serving queued clips
only."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seda import review
from seda.io import read_csv, write_csv_atomic
from seda.labels import (
    REVIEWED_COLUMNS,
    append_reviewed,
    apply_reviewed_labels,
    prediction_columns,
    read_reviewed,
)
from seda.review import ReviewServer, make_server

LABELS = ("angry", "calm", "happy", "sad")


def write_queue(root: Path, n: int = 3, outside: Path | None = None) -> Path:
    """A review queue of ``n`` tone clips under root (+ one row pointing outside it)."""
    rows = []
    for k in range(n):
        path = root / f"data/clean/unknown/c_{k:03d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(8000) / 16000
        sf.write(path, (0.2 * np.sin(2 * np.pi * (200 + 50 * k) * t)).astype(np.float32), 16000)
        probs = np.roll([0.4, 0.3, 0.2, 0.1], k)
        rows.append(
            {
                "rank": k + 1,
                "clip_id": f"c_{k:03d}",
                "path": f"data/clean/unknown/c_{k:03d}.wav",
                "label": "unknown",
                "item_id": "yt-abc",
                "sha256": f"sha{k}",
                "start": 1.0 * k,
                "end": 1.0 * k + 0.5,
                "model": "baseline",
                "predicted": LABELS[int(np.argmax(probs))],
                "probability": float(probs.max()),
                "margin": 0.1,
                **{f"prob_{lab}": float(p) for lab, p in zip(LABELS, probs, strict=True)},
            }
        )
    if outside is not None:
        rows.append({**rows[0], "clip_id": "escape", "path": str(outside)})
    queue = root / "data/pseudo/review_queue.csv"
    write_csv_atomic(queue, rows, prediction_columns(LABELS))
    return queue


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ReviewServer]:
    secret = tmp_path.parent / f"{tmp_path.name}-secret.wav"
    sf.write(secret, np.zeros(1600, np.float32), 16000)
    root = tmp_path / "repo"
    queue = write_queue(root, outside=secret)
    srv = make_server(queue, root / "data/labels/reviewed.csv", "127.0.0.1", 0, root=root)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def request(
    srv: ReviewServer,
    method: str,
    path: str,
    body: dict | None = None,
    headers: dict | None = None,
) -> tuple[int, bytes, http.client.HTTPResponse]:
    """Send ``path`` exactly as given (no client-side normalisation of ../)."""
    conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=10)
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers=headers or {})
    res = conn.getresponse()
    payload = res.read()
    conn.close()
    return res.status, payload, res


def test_append_is_header_once_and_survives_concurrent_writers(tmp_path: Path) -> None:
    path = tmp_path / "labels/reviewed.csv"

    def write(k: int) -> None:
        append_reviewed(path, {"clip_id": f"c{k}", "decision": "label", "label": "sad, very"})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(120)))
    text = path.read_text()
    assert text.count("timestamp,clip_id") == 1
    rows = read_csv(path)
    assert tuple(rows[0]) == REVIEWED_COLUMNS
    assert sorted(r["clip_id"] for r in rows) == sorted(f"c{k}" for k in range(120))
    assert all(r["label"] == "sad, very" and r["timestamp"] for r in rows)


def test_torn_last_line_does_not_swallow_the_next_row(tmp_path: Path) -> None:
    path = tmp_path / "reviewed.csv"
    append_reviewed(path, {"clip_id": "a", "decision": "label", "label": "calm"})
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("2024-01-01T00:00:00+00:00,b,yt")  # a crash mid-row
    append_reviewed(path, {"clip_id": "c", "decision": "discard"})
    assert [r["clip_id"] for r in read_reviewed(path)] == ["a", "c"]


def test_apply_reviewed_labels(tmp_path: Path) -> None:
    path = tmp_path / "reviewed.csv"
    assert apply_reviewed_labels([{"clip_id": "x", "label": "unknown"}], path)[0]["label"] == (
        "unknown"
    )
    for row in [
        {"clip_id": "a", "decision": "label", "label": "sad"},
        {"clip_id": "a", "decision": "label", "label": "calm"},  # the later one wins
        {"clip_id": "a", "decision": "skip"},  # a skip changes nothing
        {"clip_id": "b", "decision": "discard"},
        {"clip_id": "c", "decision": "label", "label": "angry", "sha256": "old"},
    ]:
        append_reviewed(path, row)
    rows = [
        {"clip_id": "a", "label": "unknown", "sha256": "s1"},
        {"clip_id": "b", "label": "unknown"},
        {"clip_id": "c", "label": "unknown", "sha256": "new"},  # audio changed: not applied
        {"clip_id": "d", "label": "happy"},
    ]
    out = apply_reviewed_labels(rows, path)
    assert [(r["clip_id"], r["label"]) for r in out] == [
        ("a", "calm"),
        ("c", "unknown"),
        ("d", "happy"),
    ]
    assert rows[0]["label"] == "unknown"  # input rows are not modified


def test_server_serves_page_queue_and_queued_audio(server: ReviewServer) -> None:
    status, page, _ = request(server, "GET", "/")
    assert status == 200 and server.token.encode() in page
    status, body, _ = request(server, "GET", "/api/queue")
    queue = json.loads(body)
    assert queue["labels"] == list(LABELS) and len(queue["clips"]) == 4
    assert all(c["status"] == "pending" for c in queue["clips"])
    wav = server.queue.root / "data/clean/unknown/c_001.wav"
    status, audio, res = request(server, "GET", "/audio/c_001")
    assert status == 200 and audio == wav.read_bytes()
    assert res.getheader("Content-Type") == "audio/wav"
    status, part, res = request(server, "GET", "/audio/c_001", headers={"Range": "bytes=4-11"})
    assert status == 206 and part == wav.read_bytes()[4:12]
    assert res.getheader("Content-Range") == f"bytes 4-11/{wav.stat().st_size}"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/audio/../../../etc/passwd", 403),
        ("/static/../review.py", 403),
        ("/audio/%2e%2e/%2e%2e/etc/passwd", 403),
        ("/audio/..%2f..%2fetc%2fpasswd", 403),
        ("//etc/passwd", 404),  # http.server itself collapses the leading slashes
        ("/audio/%5c..%5cwin.ini", 403),
        ("/etc/passwd", 404),
        ("/audio//etc/passwd", 404),
        ("/audio/not_queued", 404),
        ("/audio/escape", 404),  # listed, but its path lies outside the repository
        ("/static/index.py", 404),
        ("/data/clean/unknown/c_000.wav", 404),
    ],
)
def test_server_refuses_everything_else(server: ReviewServer, path: str, expected: int) -> None:
    status, body, _ = request(server, "GET", path)
    assert status == expected, body
    assert b"root:" not in body and b"RIFF" not in body


def test_decisions_need_token_and_valid_values(server: ReviewServer) -> None:
    reviewed = server.reviewed
    good = {"clip_id": "c_000", "decision": "label", "label": "sad"}
    token = {"X-Seda-Token": server.token, "Content-Type": "application/json"}
    assert request(server, "POST", "/api/decision", good)[0] == 403
    bad_host = {**token, "Host": "evil.example:80"}
    assert request(server, "POST", "/api/decision", good, bad_host)[0] == 403
    for body in (
        {**good, "label": "bored"},
        {**good, "clip_id": "escape2"},
        {**good, "decision": "delete"},
    ):
        assert request(server, "POST", "/api/decision", body, token)[0] == 400
    assert not reviewed.exists()
    status, body, _ = request(server, "POST", "/api/decision", good, token)
    assert status == 200 and json.loads(body)["ok"]
    skip = {"clip_id": "c_001", "decision": "skip"}
    assert request(server, "POST", "/api/decision", skip, token)[0] == 200
    rows = read_csv(reviewed)
    assert [(r["clip_id"], r["decision"], r["label"]) for r in rows] == [
        ("c_000", "label", "sad"),
        ("c_001", "skip", ""),
    ]
    assert rows[0]["previous_label"] == "unknown" and rows[0]["proposed_label"] == "angry"
    assert rows[0]["sha256"] == "sha0" and rows[0]["model"] == "baseline"
    clips = json.loads(request(server, "GET", "/api/queue")[1])["clips"]
    assert [c["status"] for c in clips[:3]] == ["label", "skip", "pending"]


def test_missing_queue_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert review.main(["--queue", str(tmp_path / "none.csv"), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.csv not found" in err[0] and "seda label" in err[0]


def test_queue_payload_uses_the_palette(server: ReviewServer) -> None:
    from seda.palette import label_colours

    queue = json.loads(request(server, "GET", "/api/queue")[1])
    assert queue["colours"] == label_colours(LABELS)

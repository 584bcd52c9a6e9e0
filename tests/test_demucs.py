"""Demucs backend: chunked streaming is seamless, a randomly initialised Demucs of the real classes
runs through the backend and the separate stage, and missing weights fail in one sentence."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seda.config import ConfigError
from seda.records import ItemRow
from seda.separation import backends, demucs_backend
from seda.separation.common import stream_separate
from seda.separation.demucs_backend import (
    DemucsBackend,
    DemucsSettings,
    demucs_voice,
    load_demucs_model,
)
from seda.separation.manifest import separate_manifest

pytest.importorskip("demucs", reason="demucs is not installed (pip install demucs)")

SR = 16000


def tiny_htdemucs():
    """A randomly initialised HTDemucs (the class of the default `htdemucs`), a few k weights."""
    import torch
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HTDemucs(
            sources=["drums", "bass", "other", "vocals"],
            channels=8,
            depth=2,
            nfft=512,
            t_layers=1,
            t_heads=2,
            segment=4,
            samplerate=SR,
        )
    return model.eval()


def test_stream_separate_chunks_without_seams(tmp_path: Path) -> None:
    """With a linear 'separator' the chunked, cross-faded output must equal the one-shot output."""
    y = np.random.default_rng(0).uniform(-0.5, 0.5, int(7.3 * SR)).astype(np.float32)
    sf.write(tmp_path / "in.wav", y, SR, subtype="FLOAT")
    seconds = stream_separate(
        tmp_path / "in.wav", tmp_path / "out.wav", lambda x: 0.5 * x, SR, chunk_seconds=2.0
    )
    out, sr = sf.read(tmp_path / "out.wav", dtype="float32")
    assert sr == SR and seconds == pytest.approx(7.3, abs=1 / SR)
    np.testing.assert_allclose(out, 0.5 * y, atol=1e-4)  # PCM16 rounding only


def test_stream_separate_rejects_empty_and_leaves_nothing(tmp_path: Path) -> None:
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), SR)
    with pytest.raises(Exception, match="no audio frames"):
        stream_separate(tmp_path / "empty.wav", tmp_path / "out.wav", lambda x: x, SR, 2.0)
    assert list(tmp_path.iterdir()) == [tmp_path / "empty.wav"]


def test_demucs_voice_keeps_length_and_clamps_segment() -> None:
    model = tiny_htdemucs()
    y = np.random.default_rng(1).standard_normal(int(5.5 * SR)).astype(np.float32) * 0.1
    voice = demucs_voice(y, model, segment=60.0)  # HTDemucs accepts at most its 4 s
    assert voice.shape == y.shape and voice.dtype == np.float32 and np.isfinite(voice).all()
    assert np.abs(voice).max() > 0
    assert not demucs_voice(np.zeros(SR, np.float32), model).any()


def test_backend_separates_and_reports_bad_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    sf.write(tmp_path / "a.wav", rng.standard_normal(int(6.2 * 22050)) * 0.1, 22050)
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    settings = DemucsSettings(sample_rate=22050, chunk_seconds=2.5, device="cpu")
    backend = DemucsBackend(settings, model=tiny_htdemucs())
    jobs = [
        (tmp_path / "a.wav", tmp_path / "out" / "a.wav"),
        (tmp_path / "bad.wav", tmp_path / "out" / "bad.wav"),
    ]
    errors = backend.separate_batch(jobs)
    assert errors[0] is None
    assert errors[1] is not None and "not decodable" in errors[1]
    info = sf.info(tmp_path / "out" / "a.wav")
    assert info.samplerate == 22050 and info.channels == 1
    assert info.duration == pytest.approx(6.2, abs=2e-3)
    assert not (tmp_path / "out" / "bad.wav").exists()


def test_separate_stage_with_demucs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(backends.BACKENDS, "demucs", DemucsBackend)
    monkeypatch.setattr(
        demucs_backend, "load_demucs_model", lambda name, repo=None: tiny_htdemucs()
    )
    sf.write(tmp_path / "x.wav", np.random.default_rng(3).standard_normal(3 * SR) * 0.1, SR)
    rows = [ItemRow(id="x", path="x.wav", label="calm", speaker="", source_id="")]
    settings = DemucsSettings(sample_rate=SR, device="cpu")
    out_rows, rejects, counts = separate_manifest(
        rows, settings, Path("separated"), cache_root=tmp_path / "cache"
    )
    assert len(rejects) == 0 and counts["separated"] == 1
    assert out_rows[0].path == "separated/x.wav"
    assert sf.info("separated/x.wav").frames == 3 * SR


def test_missing_weights_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a folder"):
        load_demucs_model("htdemucs", str(tmp_path / "nope"))
    with pytest.raises(ConfigError) as err:
        load_demucs_model("htdemucs", str(tmp_path))  # empty local repo: no network involved
    assert "internet" in str(err.value) and "separate.repo" in str(err.value)


def test_model_without_vocals_and_bad_settings_are_rejected() -> None:
    from demucs.demucs import Demucs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        drums_only = Demucs(sources=["drums", "bass"], channels=8, depth=2, samplerate=SR)
    with pytest.raises(ConfigError, match="no 'vocals' stem"):
        DemucsBackend(DemucsSettings(device="cpu"), model=drums_only)
    with pytest.raises(ConfigError, match="chunk_seconds"):
        DemucsBackend(DemucsSettings(chunk_seconds=1.0), model=tiny_htdemucs())

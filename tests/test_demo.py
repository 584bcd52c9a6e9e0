"""The synthetic demo corpus: reproducible bytes, every label x speaker, speech-like content."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import seda.demo_corpus as demo
from seda.demo_corpus import DemoSettings, generate, plan_items, synthesize_parts
from seda.errors import ConfigError
from seda.stages import demo as stage


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def _sources(folder: Path) -> list[dict[str, str]]:
    with open(folder / "sources.csv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_same_params_give_identical_bytes(tmp_path, small_demo_settings):
    generate(small_demo_settings, tmp_path / "a")
    generate(small_demo_settings, tmp_path / "b")
    files_a, files_b = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    assert files_a.keys() == files_b.keys()
    assert {Path(k).suffix for k in files_a} == {".wav", ".flac", ".ogg", ".csv"}
    assert files_a == files_b
    generate(replace(small_demo_settings, seed=8), tmp_path / "c")
    files_c = _tree_bytes(tmp_path / "c")
    assert files_c["sources.csv"] == files_a["sources.csv"]
    assert all(files_c[k] != files_a[k] for k in files_a if k.startswith("media/"))


def test_every_label_and_speaker_with_the_right_duration(tmp_path, small_demo_settings):
    settings = replace(small_demo_settings, speakers=3)
    summary = generate(settings, tmp_path)
    rows = _sources(tmp_path)
    assert summary["items"] == len(rows) == 3 * 4
    assert Counter((r["speaker"], r["label"]) for r in rows) == {
        (f"demo_s{s}", label): 1 for s in (1, 2, 3) for label in demo.LABELS
    }
    for row in rows:
        info = sf.info(str(tmp_path / row["url"]))
        assert info.samplerate == settings.sample_rate
        assert info.frames == settings.item_seconds * settings.sample_rate
    sections = [r for r in rows if r["start"] or r["end"]]
    assert len(sections) == 1
    assert 0 <= float(sections[0]["start"]) < float(sections[0]["end"]) <= settings.item_seconds


def test_reference_voice_is_the_speech_part_as_mixed(tmp_path, small_demo_settings):
    settings = small_demo_settings
    summary = generate(settings, tmp_path)
    items = plan_items(settings)
    references = sorted((tmp_path / demo.REFERENCE_DIR).iterdir())
    assert summary["reference"] == (tmp_path / demo.REFERENCE_DIR).as_posix()
    assert [p.name for p in references] == sorted(f"{it.item_id}.wav" for it in items)
    assert all(demo.REFERENCE_DIR not in r["url"] for r in _sources(tmp_path))
    lsb = 1 / 32768
    for item in items:
        voice, sr = sf.read(str(tmp_path / demo.REFERENCE_DIR / f"{item.item_id}.wav"))
        assert sr == settings.sample_rate and len(voice) == settings.item_seconds * sr
        assert sf.info(str(tmp_path / demo.REFERENCE_DIR / f"{item.item_id}.wav")).subtype == (
            "PCM_16"
        )
        parts = synthesize_parts(settings, item)
        _, gain = demo.mix_parts(parts)
        assert np.max(np.abs(voice - gain * parts["speech"])) <= lsb
        if item.suffix == ".wav":  # lossless media: mixture - music - noise = the voice
            mix, _ = sf.read(str(tmp_path / "media" / f"{item.item_id}.wav"))
            rest = mix - gain * (parts["music"] + parts["noise"])
            assert np.max(np.abs(rest - voice)) <= 2 * lsb
            assert np.max(np.abs(voice)) > 100 * lsb


def test_titles_that_a_collector_must_survive(tmp_path, small_demo_settings):
    generate(small_demo_settings, tmp_path)
    titles = [r["title"] for r in _sources(tmp_path)]
    assert any("\n" in t for t in titles)
    assert any("/" in t for t in titles) and any(".." in t for t in titles)
    assert any("ş" in t.lower() or "ğ" in t.lower() for t in titles)
    assert any("\u0600" <= ch <= "\u06ff" for t in titles for ch in t)  # Arabic


def test_emotions_differ_in_level_pitch_and_speech_has_long_pauses(small_demo_settings):
    settings = replace(small_demo_settings, speakers=1)
    items = {it.label: it for it in plan_items(settings)}
    parts = {label: synthesize_parts(settings, items[label]) for label in demo.LABELS}
    sr = settings.sample_rate

    def active_rms_db(y: np.ndarray) -> float:
        frames = y[: len(y) // 512 * 512].reshape(-1, 512)
        rms = np.sqrt((frames**2).mean(axis=1))
        return float(20 * np.log10(np.percentile(rms, 90)))

    def longest_silence(y: np.ndarray) -> float:
        edges = np.diff(np.concatenate([[0], (np.abs(y) < 1e-9).astype(int), [0]]))
        runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
        return float(runs.max(initial=0)) / sr

    levels = {label: active_rms_db(p["speech"]) for label, p in parts.items()}
    assert levels["angry"] > levels["happy"] > levels["sad"]
    assert levels["calm"] > levels["sad"]
    for p in parts.values():
        assert longest_silence(p["speech"]) >= 1.0  # 12 s items: long pauses of 1.25..2.5 s
        speech_share = np.mean(np.abs(p["speech"]) > 1e-9)
        assert 0.3 < speech_share < 0.95
        music_db = 20 * np.log10(np.sqrt(np.mean(p["music"] ** 2)) / demo.SPEECH_REF_RMS)
        assert music_db == pytest.approx(settings.music_bed_db, abs=0.01)


def test_speaker_voices_differ(small_demo_settings):
    voices = [demo.make_speaker(small_demo_settings, s) for s in (1, 2)]
    assert voices[0].f0 < 140 < 170 < voices[1].f0
    assert voices[0].formant_scale < voices[1].formant_scale


def test_ogg_serial_fix_gives_a_valid_stream(tmp_path):
    y = (0.2 * np.sin(np.arange(16000) * 0.07)).astype(np.float32)
    path = tmp_path / "x.ogg"
    demo.write_media(path, y, 16000, serial=42)
    data = path.read_bytes()
    assert int.from_bytes(data[14:18], "little") == 42
    decoded, sr = sf.read(str(path))
    assert sr == 16000 and abs(len(decoded) - len(y)) < 1024
    with pytest.raises(ValueError, match="not an Ogg page"):
        demo.set_ogg_serial(b"RIFF" + data[4:], 1)


def test_bad_params_are_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="item_seconds"):
        generate(DemoSettings(item_seconds=1.0), tmp_path)


def test_main_exits_2_with_one_line_on_bad_params(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("demo:\n  speakers: 0\n", encoding="utf-8")
    assert stage.main(["--out", "data/demo"]) == 2
    err = capsys.readouterr().err
    assert "demo.speakers" in err and "Traceback" not in err


def test_unlabelled_items_are_appended_and_their_truth_kept_apart(tmp_path, small_demo_settings):
    plain = replace(small_demo_settings, item_seconds=8.0)
    extra = replace(plain, unlabelled_items_per_speaker=2)
    generate(plain, tmp_path / "plain")
    summary = generate(extra, tmp_path / "extra")
    files_plain, files_extra = _tree_bytes(tmp_path / "plain"), _tree_bytes(tmp_path / "extra")
    # Every labelled item keeps its bytes; the sources table only grows at the end.
    media = [k for k in files_plain if k.startswith(("media/", demo.REFERENCE_DIR))]
    assert len(media) == 2 * 8 and all(files_extra[k] == files_plain[k] for k in media)
    assert files_extra["sources.csv"].startswith(files_plain["sources.csv"])
    rows = _sources(tmp_path / "extra")
    unknown = [r for r in rows if r["label"] == demo.UNLABELLED]
    assert summary["unlabelled"] == len(unknown) == 2 * 2
    assert rows[-len(unknown) :] == unknown
    assert Counter(r["speaker"] for r in unknown) == {"demo_s1": 2, "demo_s2": 2}
    assert not any(lab in r["url"] + r["title"] for r in unknown for lab in demo.LABELS)
    with open(tmp_path / "extra" / "truth.csv", encoding="utf-8", newline="") as fh:
        truth = list(csv.DictReader(fh))
    assert [f"media/{t['item_id']}" for t in truth] == [r["url"].rsplit(".", 1)[0] for r in unknown]
    assert [t["speaker"] for t in truth] == [r["speaker"] for r in unknown]
    assert {t["label"] for t in truth} == set(demo.LABELS)
    # Each is synthesised with its true emotion: same prosody as a labelled item of that emotion.
    by_id = {it.item_id: it for it in plan_items(extra)}
    for t in truth:
        item = by_id[t["item_id"]]
        assert not item.labelled and item.label == t["label"]
        assert (tmp_path / "extra" / demo.REFERENCE_DIR / f"{item.item_id}.wav").is_file()
    assert (tmp_path / "plain" / "truth.csv").read_text(encoding="utf-8").strip() == ",".join(
        demo.TRUTH_COLUMNS
    )


def test_unlabelled_items_differ_from_each_other(small_demo_settings):
    settings = replace(small_demo_settings, speakers=1, unlabelled_items_per_speaker=2)
    extra = [it for it in plan_items(settings) if not it.labelled]
    speech = [synthesize_parts(settings, it)["speech"] for it in extra]
    assert len({it.index for it in plan_items(settings)}) == len(plan_items(settings))
    assert not np.allclose(speech[0], speech[1])


def test_negative_unlabelled_count_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unlabelled_items_per_speaker"):
        generate(DemoSettings(unlabelled_items_per_speaker=-1), tmp_path)


def test_main_writes_the_corpus_into_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        "demo:\n  speakers: 1\n  items_per_speaker_and_label: 1\n  item_seconds: 4.0\n"
        "  sample_rate: 8000\n",
        encoding="utf-8",
    )
    assert stage.main(["--out", "some/where"]) == 0
    # One item per label plus the default one unlabelled item per speaker.
    assert len(_sources(tmp_path / "some/where")) == len(demo.LABELS) + 1
    assert not (tmp_path / "data").exists()

"""Shared fixtures. Each block says which stage's tests it was written for; add, do not edit."""

from __future__ import annotations

from pathlib import Path

import pytest

# --- demo / collect ------------------------------------------------------------------------


@pytest.fixture
def small_demo_settings():
    """A small demo corpus: 2 speakers x 4 labels x 1 item of 12 s at 16 kHz (8 items, 1 FLAC,
    1 OGG). Written below the current directory, so chdir to tmp_path first."""
    from seda.demo_corpus import DemoSettings

    return DemoSettings(
        speakers=2,
        items_per_speaker_and_label=1,
        unlabelled_items_per_speaker=0,
        item_seconds=12.0,
        sample_rate=16000,
        seed=7,
    )


@pytest.fixture
def demo_dataset_settings():
    """Dataset settings equal to conf/dataset/demo.yaml, fast retries."""
    from seda.collect import YoutubeSettings, YtdlpSettings

    return YoutubeSettings(
        kind="youtube",
        name="demo",
        root="data/demo",
        sources="data/demo/sources.csv",
        allow_file_urls=True,
        ytdlp=YtdlpSettings(retries=1, socket_timeout=10, backoff_seconds=0.01),
    )


@pytest.fixture
def collected_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_demo_settings, demo_dataset_settings
) -> dict:
    """The small demo generated and collected in tmp_path (cwd): data/raw/manifest.csv exists.

    Returns the collect summary.
    """
    from seda.collect import collect_dataset
    from seda.demo_corpus import generate

    monkeypatch.chdir(tmp_path)
    generate(small_demo_settings, "data/demo")
    return collect_dataset(
        demo_dataset_settings, Path("data/raw"), Path("data/cache/collect"), workers=1
    )

"""Shared fixtures. Each block says which stage's tests it was written for; add, do not edit."""

from __future__ import annotations

from pathlib import Path

import pytest

# --- demo / collect ------------------------------------------------------------------------


@pytest.fixture
def small_demo_settings():
    """A small demo corpus: 2 speakers x 4 labels x 1 item of 12 s at 16 kHz (8 items, 1 FLAC,
    1 OGG). Written below the current directory, so chdir to tmp_path first."""
    from seda.stages.demo import DemoSettings

    return DemoSettings(
        out_dir="data/demo",
        speakers=2,
        items_per_speaker_and_label=1,
        item_seconds=12.0,
        sample_rate=16000,
        seed=7,
    )


@pytest.fixture
def demo_dataset_settings():
    """Dataset settings equal to conf/dataset/demo.yaml, fast retries."""
    from seda.stages.collect import YoutubeSettings, YtdlpSettings

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
    from seda.stages.collect import collect
    from seda.stages.demo import generate

    monkeypatch.chdir(tmp_path)
    generate(small_demo_settings)
    return collect(demo_dataset_settings, workers=1)

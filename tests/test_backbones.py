"""Backbone loading: real from_pretrained on tiny saved checkpoints, random init, clear errors,
pinned revisions and the hash of the weights actually loaded."""

from __future__ import annotations

import re
import shutil
import socket
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from seda.backbones import (
    ARCHS,
    BackboneSettings,
    BackboneUnavailableError,
    FeaturizeBatch,
    Preprocessing,
    backbone_reference,
    frame_lengths,
    load_backbone,
    min_samples,
    pool_hidden_states,
    weights_sha256,
)
from seda.checkpoints import snapshot_dir, write_manifest
from seda.config import ConfigError, build
from seda.io import sha256_file
from tiny import TINY_BACKBONE

CONF = Path("conf/backbone")
TINY = TINY_BACKBONE
HUB_ID = "facebook/hubert-base-ls960"
REV = "0123456789abcdef0123456789abcdef01234567"  # a well-formed commit id for offline tests


def tiny_kwargs(arch: str) -> dict:
    if arch == "data2vec-audio":
        return {**TINY, "num_conv_pos_embeddings": 2, "conv_pos_kernel_size": 5}
    return dict(TINY)


def save_tiny_checkpoint(arch: str, out: Path, seed: int = 3) -> torch.nn.Module:
    """A tiny model of ``arch`` with random weights saved as a Hugging Face checkpoint dir."""
    from transformers import Wav2Vec2FeatureExtractor

    from seda.backbones import _classes

    config_cls, model_cls = _classes(arch)
    torch.manual_seed(seed)
    model = model_cls(config_cls(**tiny_kwargs(arch)))
    model.save_pretrained(out)
    Wav2Vec2FeatureExtractor(
        sampling_rate=16000, do_normalize=False, return_attention_mask=False
    ).save_pretrained(out)
    return model


@pytest.mark.parametrize("arch", ARCHS)
def test_pretrained_loads_a_saved_checkpoint_of_each_arch(arch: str, tmp_path: Path) -> None:
    saved = save_tiny_checkpoint(arch, tmp_path / arch)
    settings = BackboneSettings(arch=arch, checkpoint=str(tmp_path / arch), weights="pretrained")
    model, prep = load_backbone(settings)
    for name, tensor in saved.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    # The checkpoint's own preprocessing is used, not the defaults.
    assert prep == Preprocessing(16000, do_normalize=False, return_attention_mask=False)
    x, lengths, mask = prep.batch([np.random.default_rng(0).standard_normal(8000)])
    assert mask is None and lengths.tolist() == [8000]
    with torch.inference_mode():
        out = model(x, output_hidden_states=True)
    assert len(out.hidden_states) == 3
    ref = backbone_reference(settings, model)
    assert set(ref["sha256"]) == {"config.json", "model.safetensors"}
    weights = sha256_file(tmp_path / arch / "model.safetensors")
    assert ref["sha256"]["model.safetensors"] == weights
    assert ref["weights_file"] == "model.safetensors" and ref["weights_sha256"] == weights
    assert ref["revision"] is None  # a local directory: its files' hashes identify it


def test_pretrained_arch_mismatch_is_an_error(tmp_path: Path) -> None:
    save_tiny_checkpoint("hubert", tmp_path / "h")
    settings = BackboneSettings(arch="wavlm", checkpoint=str(tmp_path / "h"), weights="pretrained")
    with pytest.raises(ConfigError, match="is a 'hubert' model"):
        load_backbone(settings)


def test_missing_local_dir_says_how_to_fix(tmp_path: Path) -> None:
    missing = tmp_path / "wavlm-base-plus"
    settings = BackboneSettings(arch="wavlm", checkpoint=str(missing), weights="pretrained")
    with pytest.raises(BackboneUnavailableError) as err:
        load_backbone(settings)
    msg = str(err.value)
    assert str(missing) in msg
    assert "backbones.<name>.checkpoint=" in msg
    assert "backbone_weights=random" in msg


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No network at all and an empty hub cache under tmp_path (returned)."""
    import huggingface_hub.constants

    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    return cache


def test_hub_id_offline_fails_clearly_without_network(offline: Path) -> None:
    settings = BackboneSettings("hubert", HUB_ID, "pretrained", revision=REV)
    with pytest.raises(BackboneUnavailableError) as err:
        load_backbone(settings)
    msg = str(err.value)
    assert "'facebook/hubert-base-ls960'" in msg
    assert "seda models fetch" in msg and "backbones.<name>.local_dir=" in msg
    assert "backbone_weights=random" in msg
    assert "tried to reach the network" not in msg


def test_pinned_hub_id_loads_from_the_cache_offline(offline: Path) -> None:
    snapshot = offline / "models--facebook--hubert-base-ls960" / "snapshots" / REV
    saved = save_tiny_checkpoint("hubert", snapshot)
    settings = BackboneSettings("hubert", HUB_ID, "pretrained", revision=REV)
    model, _ = load_backbone(settings)
    name = "encoder.layers.0.attention.k_proj.weight"
    assert torch.equal(model.state_dict()[name], saved.state_dict()[name])
    digest = sha256_file(snapshot / "model.safetensors")
    assert weights_sha256(model) == digest
    ref = backbone_reference(settings, model)
    assert ref["revision"] == REV and ref["weights_sha256"] == digest and "sha256" not in ref


def fetched_tiny(root: Path, revision: str = REV) -> Path:
    """A tiny hubert laid out as `seda models fetch --dest root` lays out HUB_ID at revision."""
    folder = snapshot_dir(root, HUB_ID, revision)
    save_tiny_checkpoint("hubert", folder)
    write_manifest(folder, HUB_ID, revision)
    return folder


def test_fetched_folder_loads_offline_and_records_the_weights_hash(
    tmp_path: Path, offline: Path
) -> None:
    folder = fetched_tiny(tmp_path / "models" / "hub")
    settings = BackboneSettings(
        "hubert", HUB_ID, "pretrained", revision=REV, local_dir=str(tmp_path / "models" / "hub")
    )
    model, prep = load_backbone(settings)
    assert Path(model.name_or_path) == folder
    assert prep == Preprocessing(16000, do_normalize=False, return_attention_mask=False)
    digest = sha256_file(folder / "model.safetensors")
    assert weights_sha256(model) == weights_sha256(folder) == digest
    ref = backbone_reference(settings, model)
    assert ref == {
        "arch": "hubert",
        "checkpoint": HUB_ID,
        "weights": "pretrained",
        "revision": REV,
        "weights_file": "model.safetensors",
        "weights_sha256": digest,
    }


def test_fetched_folder_must_hold_the_pinned_revision_and_bytes(
    tmp_path: Path, offline: Path
) -> None:
    root = tmp_path / "hub"
    folder = fetched_tiny(root)
    other = "f" * 40

    def load(revision: str) -> None:
        settings = BackboneSettings("hubert", HUB_ID, "pretrained", revision, local_dir=str(root))
        load_backbone(settings)

    with pytest.raises(BackboneUnavailableError, match="seda models fetch --dest"):
        load(other)  # never fetched
    shutil.copytree(folder, snapshot_dir(root, HUB_ID, other))
    with pytest.raises(BackboneUnavailableError, match=f"at revision {REV}, not"):
        load(other)  # a copy of another revision's folder
    with open(folder / "model.safetensors", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BackboneUnavailableError, match="sha256 mismatch"):
        load(REV)


def test_pretrained_hub_weights_need_a_commit_revision(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        BackboneSettings("hubert", HUB_ID, "pretrained", revision="main")
    msg = str(err.value)
    assert "revision" in msg and "'main'" in msg and HUB_ID in msg
    assert "\n" not in msg and ". " not in msg  # one sentence
    for unpinned in (None, "dba3bb0", REV.upper(), REV + "0"):
        with pytest.raises(ConfigError, match="revision"):
            BackboneSettings("hubert", HUB_ID, "pretrained", revision=unpinned)
    # Random weights need no revision, and a local directory is identified by its files.
    BackboneSettings("hubert", HUB_ID, "random")
    BackboneSettings("hubert", HUB_ID, "random", revision="main")
    BackboneSettings("hubert", str(tmp_path), "pretrained")


def test_random_weights_are_seeded_and_never_touch_the_checkpoint() -> None:
    kw = tiny_kwargs("wavlm")
    a, prep = load_backbone(
        BackboneSettings("wavlm", "/nonexistent/checkpoint", "random", random_init=kw)
    )
    b, _ = load_backbone(
        BackboneSettings("wavlm", "/nonexistent/checkpoint", "random", random_init=kw)
    )
    c, _ = load_backbone(
        BackboneSettings("wavlm", "/nonexistent/checkpoint", "random", random_init=kw, init_seed=1)
    )
    name = "encoder.layers.0.attention.k_proj.weight"
    assert torch.equal(a.state_dict()[name], b.state_dict()[name])
    assert not torch.equal(a.state_dict()[name], c.state_dict()[name])
    assert a.config.hidden_size == 32 and a.config.num_hidden_layers == 2
    assert prep.do_normalize and prep.return_attention_mask


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="arch"):
        BackboneSettings("bert", "x")
    with pytest.raises(ConfigError, match="weights"):
        BackboneSettings("hubert", "x", weights="imagenet")
    with pytest.raises(ConfigError, match="random_init"):
        load_backbone(
            BackboneSettings(
                "hubert", "x", random_init={"hidden_size": 30, "num_attention_heads": 4}
            )
        )


@pytest.mark.parametrize("name", ["hubert", "wav2vec2", "wavlm", "data2vec"])
def test_conf_backbones_build_and_run(name: str) -> None:
    cfg = OmegaConf.create(
        {
            "backbone_weights": "random",
            "featurize_batch": asdict(FeaturizeBatch()),
            "b": OmegaConf.load(CONF / f"{name}.yaml"),
        }
    )
    data = OmegaConf.to_container(cfg, resolve=True)["b"]
    settings = build(BackboneSettings, data, f"backbones.{name}")
    assert settings.weights == "random" and settings.sample_rate == 16000
    assert "/" in settings.checkpoint  # a hub id, for weights: pretrained
    assert settings.local_dir is None  # the hub cache unless pointed at a fetched folder
    model, prep = load_backbone(settings)
    x, lengths, mask = prep.batch([np.zeros(16000, np.float32), np.ones(8000, np.float32)])
    with torch.inference_mode():
        out = model(x, attention_mask=mask, output_hidden_states=True)
    assert len(out.hidden_states) == settings.random_init["num_hidden_layers"] + 1
    assert frame_lengths(model, lengths).tolist() == [49, 24]
    assert min_samples(model) == 400


def test_normalisation_uses_valid_samples_only() -> None:
    prep = Preprocessing(16000, do_normalize=True, return_attention_mask=True)
    rng = np.random.default_rng(0)
    long, short = 3 + 2 * rng.standard_normal(1000), 5 + rng.standard_normal(300)
    x, lengths, mask = prep.batch([long, short])
    assert lengths.tolist() == [1000, 300]
    assert mask is not None and mask.sum(1).tolist() == [1000, 300]
    assert torch.all(x[1, 300:] == 0)
    for row, n in ((0, 1000), (1, 300)):
        assert abs(float(x[row, :n].mean())) < 1e-4
        assert abs(float(x[row, :n].std(unbiased=False)) - 1) < 1e-3


def test_pooling_ignores_padding_frames() -> None:
    h = torch.randn(2, 6, 4)
    h[1, 3:] = 1e6  # padding frames of clip 1 must not leak into its mean
    pooled = pool_hidden_states([h, 2 * h], torch.tensor([6, 3]), "mean")
    assert pooled.shape == (2, 2, 4)
    assert torch.allclose(pooled[1, 0], h[1, :3].mean(0))
    assert torch.allclose(pooled[1, 1], 2 * h[1, :3].mean(0))
    both = pool_hidden_states([h], torch.tensor([6, 3]), "mean+std")
    assert both.shape == (2, 1, 8)
    assert torch.allclose(both[1, 0, 4:], h[1, :3].std(0, unbiased=False), atol=1e-5)


@pytest.mark.parametrize("name", ["hubert", "wav2vec2", "wavlm", "data2vec"])
def test_conf_backbones_are_pinned_for_pretrained_weights(name: str) -> None:
    """weights: pretrained builds exactly when the config names a commit (a null revision is a
    checkpoint whose commit is still to be looked up, refused rather than left floating)."""
    cfg = OmegaConf.create(
        {
            "backbone_weights": "pretrained",
            "featurize_batch": asdict(FeaturizeBatch()),
            "b": OmegaConf.load(CONF / f"{name}.yaml"),
        }
    )
    data = OmegaConf.to_container(cfg, resolve=True)["b"]
    if data["revision"] is None:
        with pytest.raises(ConfigError, match="revision None"):
            build(BackboneSettings, data, f"backbones.{name}")
        return
    assert re.fullmatch(r"[0-9a-f]{40}", data["revision"])
    settings = build(BackboneSettings, data, f"backbones.{name}")
    assert settings.weights == "pretrained" and settings.revision == data["revision"]

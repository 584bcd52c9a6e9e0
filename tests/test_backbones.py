"""Backbone loading: real from_pretrained on tiny saved checkpoints, random init, clear errors."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from seda.backbones import (
    ARCHS,
    BackboneSettings,
    BackboneUnavailableError,
    Preprocessing,
    backbone_reference,
    frame_lengths,
    load_backbone,
    min_samples,
    pool_hidden_states,
)
from seda.config import ConfigError, build
from tiny import TINY_BACKBONE

CONF = Path("conf/backbone")
TINY = TINY_BACKBONE


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
    assert len(ref["sha256"]["model.safetensors"]) == 64


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


def test_hub_id_offline_fails_clearly_without_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    settings = BackboneSettings(
        arch="hubert", checkpoint="facebook/hubert-base-ls960", weights="pretrained"
    )
    with pytest.raises(BackboneUnavailableError) as err:
        load_backbone(settings)
    msg = str(err.value)
    assert "'facebook/hubert-base-ls960'" in msg
    assert "backbone_weights=random" in msg
    assert "tried to reach the network" not in msg


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
        {"backbone_weights": "random", "b": OmegaConf.load(CONF / f"{name}.yaml")}
    )
    data = OmegaConf.to_container(cfg, resolve=True)["b"]
    settings = build(BackboneSettings, data, f"backbones.{name}")
    assert settings.weights == "random" and settings.sample_rate == 16000
    assert "/" in settings.checkpoint  # a hub id, for weights: pretrained
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

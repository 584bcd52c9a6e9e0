"""Model folders checked before use: a model.json off its schema, weights whose shapes do not fit
the declared architecture, and non-finite weights are each refused with one sentence
(ModelFormatError), and ``seda predict`` stops with one line and a non-zero exit instead of a
traceback or an empty result."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from seda.models.loading import ModelFormatError, load_model
from seda.predict import main as predict_main
from test_predict import SR, speech_file, train_models

Change = Callable[[Path], None]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A baseline and a probe (tiny random HuBERT) trained by the real code."""
    return train_models(tmp_path_factory.mktemp("trained"), ("baseline", "hubert"))


def card(change: Callable[[dict[str, Any]], Any]) -> Change:
    def apply(folder: Path) -> None:
        meta = json.loads((folder / "model.json").read_text())
        change(meta)
        (folder / "model.json").write_text(json.dumps(meta))

    return apply


def head(change: Callable[[dict[str, Any]], Any]) -> Change:
    def apply(folder: Path) -> None:
        from safetensors.torch import load_file, save_file

        state = load_file(str(folder / "head.safetensors"))
        change(state)
        save_file(state, str(folder / "head.safetensors"))

    return apply


def baseline_arrays(change: Callable[[dict[str, np.ndarray]], Any]) -> Change:
    def apply(folder: Path) -> None:
        from safetensors import safe_open
        from safetensors.numpy import save_file

        path = str(folder / "baseline.safetensors")
        with safe_open(path, framework="numpy") as fh:
            meta = fh.metadata()
            arrays = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        change(arrays)
        save_file(arrays, path, metadata=meta)

    return apply


def all_nan(state: dict[str, Any]) -> None:
    for key, value in state.items():
        state[key] = value * float("nan")


def one_inf(state: dict[str, Any]) -> None:
    state["mlp.4.bias"][1] = float("inf")


def replace(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.__setitem__(key, value)


def nested(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(d: dict[str, Any]) -> None:
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value

    return change


def write(name: str, text: str | bytes) -> Change:
    def apply(folder: Path) -> None:
        data = text.encode() if isinstance(text, str) else text
        (folder / name).write_bytes(data)

    return apply


def torch_zeros(*shape: int) -> Any:
    import torch

    return torch.zeros(*shape)


PROBE_CASES: list[tuple[str, Change, str]] = [
    # model.json against its schema
    (
        "labels-not-strings",
        card(replace("labels", [1, 2, 3])),
        r"labels\[0\] must be a string, got 1",
    ),
    ("labels-not-a-list", card(replace("labels", "angry,calm,sad")), r"labels must be a list"),
    ("labels-not-canonical", card(replace("labels", ["Angry", "calm", "sad"])), r"canonical"),
    ("labels-repeated", card(replace("labels", ["calm", "calm", "sad"])), r"distinct"),
    (
        "sample-rate-string",
        card(nested("preprocessing", "sample_rate", value="16000")),
        r"preprocessing\.sample_rate must be an integer, got '16000'",
    ),
    (
        "sample-rate-float",
        card(nested("preprocessing", "sample_rate", value=16000.0)),
        r"sample_rate must be an integer",
    ),
    (
        "sample-rate-zero",
        card(nested("preprocessing", "sample_rate", value=0)),
        r"sample_rate must be a rate in Hz",
    ),
    ("dim-string", card(replace("dim", "32")), r"dim must be an integer"),
    ("layers-negative", card(replace("n_layers", -1)), r"n_layers must be a positive integer"),
    ("layer-weights-nan", card(replace("layer_weights", [float("nan")] * 3)), r"finite"),
    ("layer-weights-count", card(replace("layer_weights", [0.5, 0.5])), r"2 values for 3 layers"),
    ("hidden-negative", card(nested("head", "hidden", value=-4)), r"hidden must be >= 0"),
    ("unknown-key", card(replace("weights_url", "http://x")), r"unknown key\(s\) weights_url"),
    ("not-an-object", write("model.json", "[1, 2]"), r"must hold a JSON object"),
    ("not-json", write("model.json", '{"format": "seda-model", '), r"not valid JSON"),
    # weights against the declared architecture
    (
        "head-rows",
        head(replace("mlp.4.weight", torch_zeros(4, 16))),
        r"mlp\.4\.weight has shape \(4, 16\) but model\.json declares \(3, 16\)",
    ),
    (
        "head-width",
        head(replace("mlp.1.weight", torch_zeros(16, 20))),
        r"mlp\.1\.weight has shape \(16, 20\) but model\.json declares \(16, 32\)",
    ),
    ("head-missing", head(lambda s: s.pop("mlp.4.bias")), r"lacks mlp\.4\.bias"),
    ("head-extra", head(replace("extra", torch_zeros(2))), r"has unknown extra"),
    ("card-more-labels", card(replace("labels", ["angry", "calm", "sad", "x"])), r"4 labels"),
    ("card-wider", card(replace("dim", 64)), r"declares \(16, 64\)"),
    (
        "backbone-deeper",
        card(nested("backbone", "random_init", "num_hidden_layers", value=3)),
        r"declares 3 layers of width 32 but backbone .* has 4 of width 32",
    ),
    (
        "head-integers",
        head(lambda s: s.__setitem__("layer_logits", s["layer_logits"].long())),
        r"layer_logits holds torch\.int64 values, not floats",
    ),
    ("head-garbage", write("head.safetensors", b"\x10\x00\x00\x00garbage"), r"head\.safetensors"),
    # non-finite weights
    ("head-all-nan", head(all_nan), r"holds NaN or infinite values"),
    ("head-one-inf", head(one_inf), r"mlp\.4\.bias holds NaN or infinite values"),
]

BASELINE_CASES: list[tuple[str, Change, str]] = [
    ("labels-not-strings", card(replace("labels", [0, 1, 2])), r"labels\[0\] must be a string"),
    (
        "arrays-nan",
        baseline_arrays(lambda a: a.__setitem__("svm.dual_coef", a["svm.dual_coef"] * np.nan)),
        r"svm\.dual_coef holds NaN or infinite values",
    ),
    (
        "arrays-inf",
        baseline_arrays(lambda a: a["scale.scale"].__setitem__(0, np.inf)),
        r"scale\.scale holds NaN or infinite values",
    ),
    (
        "support-vectors-short",
        baseline_arrays(
            lambda a: a.__setitem__("svm.support_vectors", a["svm.support_vectors"][1:])
        ),
        r"svm\.support_vectors has shape .* which does not fit 3 labels",
    ),
    (
        "scaler-short",
        baseline_arrays(lambda a: a.__setitem__("scale.scale", a["scale.scale"][:-3].copy())),
        r"scale\.scale has shape",
    ),
    ("garbage", write("baseline.safetensors", b"not safetensors"), r"baseline\.safetensors"),
]


def corrupt(models_dir: Path, tmp_path: Path, model: str, change: Change) -> Path:
    folder = tmp_path / "models" / model
    shutil.copytree(models_dir / model, folder)
    change(folder)
    return folder


def assert_refused(folder: Path, match: str) -> str:
    with pytest.raises(ModelFormatError, match=match) as info:
        load_model(folder)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(folder)), message
    return message


def test_the_intact_models_load(models_dir: Path) -> None:
    assert load_model(models_dir / "hubert").labels == ["angry", "calm", "sad"]
    assert load_model(models_dir / "baseline").sample_rate == SR


@pytest.mark.parametrize(("name", "change", "match"), PROBE_CASES, ids=[c[0] for c in PROBE_CASES])
def test_probe_folder_is_refused(
    models_dir: Path, tmp_path: Path, name: str, change: Change, match: str
) -> None:
    assert_refused(corrupt(models_dir, tmp_path, "hubert", change), match)


@pytest.mark.parametrize(
    ("name", "change", "match"), BASELINE_CASES, ids=[c[0] for c in BASELINE_CASES]
)
def test_baseline_folder_is_refused(
    models_dir: Path, tmp_path: Path, name: str, change: Change, match: str
) -> None:
    assert_refused(corrupt(models_dir, tmp_path, "baseline", change), match)


@pytest.mark.parametrize(
    ("model", "change", "match"),
    [
        ("hubert", head(all_nan), "NaN"),
        ("hubert", head(replace("mlp.4.weight", torch_zeros(4, 16))), "shape"),
        ("hubert", card(nested("preprocessing", "sample_rate", value="16000")), "sample_rate"),
        ("baseline", card(replace("labels", [0, 1, 2])), "labels"),
    ],
    ids=["nan-head", "head-shape", "sample-rate-string", "labels-not-strings"],
)
def test_predict_stops_with_one_line(
    models_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    model: str,
    change: Change,
    match: str,
) -> None:
    corrupt(models_dir, tmp_path, model, change)
    monkeypatch.chdir(tmp_path)
    speech_file(tmp_path / "talk.wav", ("calm",))
    code = predict_main(
        ["talk.wav", "--model", model, "--models-dir", "models", "--out", "r.csv", "--workers", "1"]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0] and "Traceback" not in err[0], err
    assert not Path("r.csv").exists()


def test_seda_predict_with_a_nan_head_exits_non_zero_with_one_error_line(
    models_dir: Path, tmp_path: Path
) -> None:
    """The whole command, as a user runs it: before, a NaN head predicted "0 segments", exit 0."""
    corrupt(models_dir, tmp_path, "hubert", head(all_nan))
    sf.write(tmp_path / "talk.wav", np.zeros(SR, np.float32), SR)
    env = {**os.environ, "SEDA_LOG": "WARNING"}
    cmd = [sys.executable, "-m", "seda.cli", "predict", "talk.wav", "--model", "hubert"]
    done = subprocess.run(
        [*cmd, "--models-dir", "models"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "head.safetensors" in lines[0] and "NaN" in lines[0]

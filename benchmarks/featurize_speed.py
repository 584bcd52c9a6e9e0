"""Featurize throughput: the whole pipeline against the raw forward pass of the same model.

The pipeline (``seda.features.ssl.featurize_backbone``) decodes WAV files, sorts and pads
batches, runs the model and pools every layer; "raw" runs only ``model(input_values)`` on the very
same padded batches, already in memory. Goal: pipeline >= 90% of raw (audio seconds per second).
The model has the real base-size architecture with random weights (no download needed).

    python benchmarks/featurize_speed.py --arch hubert --clips 48
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from seda.backbones import BackboneSettings, _classes, cpu_threads, pick_device
from seda.features.ssl import featurize_backbone, length_batches

SR = 16000


def make_clips(root: Path, n: int, seed: int = 0) -> list[Path]:
    """Clips of 1 to 8 s (the clean stage's range) as 16 kHz PCM16 WAV."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        y = 0.1 * rng.standard_normal(int(SR * rng.uniform(1.0, 8.0))).astype(np.float32)
        path = root / f"clip{i:04d}.wav"
        sf.write(path, y, SR, subtype="PCM_16")
        paths.append(path)
    return paths


def raw_forward(
    model: torch.nn.Module,
    waves: list[np.ndarray],
    settings: BackboneSettings,
    device: torch.device,
) -> float:
    """Seconds for the bare forward passes over the pipeline's batches (inputs pre-built)."""
    lengths = [len(w) for w in waves]
    batches = length_batches(lengths, int(settings.batch_seconds * SR), settings.max_batch_size)
    inputs = []
    for b in batches:
        x = torch.zeros(len(b), max(lengths[i] for i in b))
        for j, i in enumerate(b):
            x[j, : lengths[i]] = torch.from_numpy(waves[i])
        inputs.append(x.to(device))
    start = time.perf_counter()
    with torch.inference_mode():
        for x in inputs:
            model(x, output_hidden_states=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--arch", default="hubert", choices=["hubert", "wav2vec2", "wavlm", "data2vec-audio"]
    )
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    device = pick_device()
    torch.set_num_threads(cpu_threads())
    config_cls, model_cls = _classes(args.arch)
    torch.manual_seed(0)
    model = model_cls(config_cls()).eval().to(device)  # base size, random weights
    settings = BackboneSettings(args.arch, "random-base", "random")
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_clips(Path(tmp), args.clips)
        waves = [sf.read(p, dtype="float32")[0] for p in paths]
        audio = sum(len(w) for w in waves) / SR
        from seda.backbones import Preprocessing

        prep = Preprocessing(SR, True, False)  # base checkpoints: wav2vec2-style, no mask
        featurize_backbone(paths[:2], settings, device=device, model=model, prep=prep)  # warm-up
        pipe, raw, share = [], [], []
        in_forward = forward_timer(model)
        for _ in range(args.repeats):  # interleaved, best of: the cores may be shared
            in_forward[0] = 0.0
            start = time.perf_counter()
            featurize_backbone(paths, settings, device=device, model=model, prep=prep)
            pipe.append(time.perf_counter() - start)
            share.append(in_forward[0] / pipe[-1])
            raw.append(raw_forward(model, waves, settings, device))
    p, r = audio / min(pipe), audio / min(raw)
    print(
        f"{args.arch} base (random weights), {args.clips} clips, {audio:.0f} s audio, "
        f"device {device}, {torch.get_num_threads()} threads"
    )
    print(f"pipeline {p:.1f} audio-s/s   raw forward {r:.1f} audio-s/s   ratio {p / r:.1%}")
    # Robust to other load on shared cores: measured within the same pipeline run.
    print(f"model forward = {max(share):.1%} of the pipeline's wall time")


def forward_timer(model: torch.nn.Module) -> list[float]:
    """Accumulate the seconds spent inside ``model.forward`` (hooks; CUDA synchronised)."""
    total = [0.0]
    started = [0.0]

    def sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def pre(*_: object) -> None:
        sync()
        started[0] = time.perf_counter()

    def post(*_: object) -> None:
        sync()
        total[0] += time.perf_counter() - started[0]

    model.register_forward_pre_hook(pre)
    model.register_forward_hook(post)
    return total


if __name__ == "__main__":
    main()

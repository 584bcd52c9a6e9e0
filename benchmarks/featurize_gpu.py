"""GPU featurisation: each base backbone's throughput with bf16 autocast and length-bucketed
batches, and how far its features are from the CPU path's, in one run.

The four architectures are built at base size (transformers' default configs: 12 layers, 768
wide, the same shapes and FLOPs as hubert-base, wav2vec2-base, wavlm-base(-plus) and
data2vec-audio-base) with seeded random weights, since a benchmark machine may have no hub
access. Throughput is the pipeline as the featurize stage runs it
(``seda.features.ssl.featurize_backbone``: decode in a thread, sort by length, pad, bf16 forward,
pool every layer, copy back), in audio seconds per wall second ("x real time"), best of
``--repeats`` after a warm-up, at the default batch size (``featurize_batch=cpu``) and at
``featurize_batch=gpu``'s.

Sameness: ``--check-clips`` clips are embedded by the CPU path (float32) and by the GPU path
(bf16 autocast, and with autocast off), on the same batches. Per clip and layer the relative L2
difference ||gpu - cpu|| / ||cpu|| and the cosine are reported. bf16 keeps 8 significant bits
(rounding error 2^-9 per operation), compounded over 12 layers; the goal written before any run
was: every clip and layer within 5% relative L2 and cosine >= 0.99 of the CPU features.

Without a CUDA device nothing is measured: it says so and exits 0.

    python benchmarks/featurize_gpu.py [--clips 2000] [--check-clips 32] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import soundfile as sf
import torch
import yaml
from featurize_speed import forward_timer  # this folder: the same hooks as the CPU benchmark

from seda.backbones import ARCHS, BackboneSettings, autocast, load_backbone
from seda.features import ssl
from seda.features.ssl import featurize_backbone, length_batches

SR = 16000
GOAL_X_REAL_TIME = 1000.0
GOAL_REL_L2 = 0.05
GOAL_COSINE = 0.99
DEVICE = "cuda"
GPU_OPTION = Path(__file__).resolve().parents[1] / "conf" / "featurize_batch" / "gpu.yaml"


def make_clips(root: Path, n: int, seed: int = 0) -> list[Path]:
    """Clips of 1 to 8 s (the clean stage's range) of amplitude-modulated noise, 16 kHz PCM16."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        t = np.arange(int(SR * rng.uniform(1.0, 8.0))) / SR
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 6) * t)  # syllable-rate
        y = (0.1 * envelope * rng.standard_normal(t.size)).astype(np.float32)
        path = root / f"clip{i:05d}.wav"
        sf.write(path, y, SR, subtype="PCM_16")
        paths.append(path)
    return paths


def compare(gpu: np.ndarray, cpu: np.ndarray) -> dict[str, float]:
    """Relative L2 difference and cosine per clip and layer, summarised."""
    g, c = gpu.astype(np.float64), cpu.astype(np.float64)
    diff = np.linalg.norm(g - c, axis=-1)
    norm = np.linalg.norm(c, axis=-1)
    rel = diff / np.maximum(norm, 1e-12)
    cos = (g * c).sum(-1) / np.maximum(np.linalg.norm(g, axis=-1) * norm, 1e-12)
    return {
        "rel_l2_median": float(np.median(rel)),
        "rel_l2_max": float(rel.max()),
        "cosine_min": float(cos.min()),
    }


def throughput(
    paths: list[Path],
    audio: float,
    settings: BackboneSettings,
    model: torch.nn.Module,
    prep,
    repeats: int,
) -> tuple[float, float]:
    """Best x-real-time of the pipeline over ``paths`` (``audio`` seconds) on CUDA, and peak GPU
    memory (GiB)."""
    device = torch.device(DEVICE)
    featurize_backbone(paths[:32], settings, device=device, model=model, prep=prep)  # warm-up
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        featurize_backbone(paths, settings, device=device, model=model, prep=prep)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return audio / best, torch.cuda.max_memory_allocated() / 2**30


def forward_share(
    paths: list[Path], settings: BackboneSettings, model: torch.nn.Module, prep
) -> float:
    """Share of the pipeline's wall time spent inside the model's forward (synchronised hooks):
    near 1, the GPU bounds the rate; far below, the host side (decode, padding, pooling) does.
    The hooks stay on the model: call this last."""
    inside = forward_timer(model)
    start = time.perf_counter()
    featurize_backbone(paths, settings, device=torch.device(DEVICE), model=model, prep=prep)
    return inside[0] / (time.perf_counter() - start)


def decode_rate(paths: list[Path], lengths: list[int], settings: BackboneSettings) -> float:
    """x real time of decoding alone in one thread (the prefetch thread's ceiling)."""
    batches = length_batches(lengths, int(settings.batch_seconds * SR), settings.max_batch_size)
    start = time.perf_counter()
    for b in batches:
        ssl._load_batch([ssl.BatchClip(i, str(paths[i])) for i in b], SR)
    return sum(lengths) / SR / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", nargs="+", default=list(ARCHS), choices=ARCHS)
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--check-clips", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    gpu_option = yaml.safe_load(GPU_OPTION.read_text())
    parser.add_argument(
        "--gpu-batch",
        nargs=2,
        type=float,
        default=(gpu_option["batch_seconds"], gpu_option["max_batch_size"]),
        metavar=("SECONDS", "CLIPS"),
        help="the GPU-sized batch measured beside the default one (default: conf/featurize_batch/"
        "gpu.yaml's)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("featurize_gpu: no CUDA accelerator on this machine: GPU featurisation not measured")
        return 0
    import transformers

    name = torch.cuda.get_device_name()
    print(
        f"{name}, torch {torch.__version__}, transformers {transformers.__version__}, "
        f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no (fp16)'}"
    )
    results: dict[str, object] = {"device": name, "torch": torch.__version__, "archs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_clips(Path(tmp), args.clips)
        check = paths[: args.check_clips]
        lengths = [sf.info(p).frames for p in paths]
        audio = sum(lengths) / SR
        print(f"{len(paths)} clips, {audio:.0f} s of audio (1-8 s each)")
        decode = decode_rate(paths, lengths, BackboneSettings("hubert", "random-base", "random"))
        print(f"decoding alone, one thread: {decode:.0f}x real time")
        results["decode_x_real_time"] = decode
        for arch in args.arch:
            settings = BackboneSettings(arch, f"random-base-{arch}", "random")
            big = BackboneSettings(
                arch,
                f"random-base-{arch}",
                "random",
                batch_seconds=args.gpu_batch[0],
                max_batch_size=int(args.gpu_batch[1]),
            )
            model, prep = load_backbone(settings)  # base size: the config's defaults
            params = sum(p.numel() for p in model.parameters()) / 1e6
            cpu = featurize_backbone(
                check, settings, device=torch.device("cpu"), model=model, prep=prep
            ).features
            cuda = torch.device(DEVICE)
            bf16 = featurize_backbone(check, settings, device=cuda, model=model, prep=prep)
            with mock.patch.object(ssl, "autocast", lambda d: autocast(d, False)):
                fp32 = featurize_backbone(check, settings, device=cuda, model=model, prep=prep)
            same_bf16 = compare(bf16.features, cpu)
            same_fp32 = compare(fp32.features, cpu)
            x_conf, mem_conf = throughput(paths, audio, settings, model, prep, args.repeats)
            x_big, mem_big = throughput(paths, audio, big, model, prep, args.repeats)
            share = forward_share(paths, settings, model, prep)
            ok = (
                max(x_conf, x_big) >= GOAL_X_REAL_TIME
                and same_bf16["rel_l2_max"] <= GOAL_REL_L2
                and same_bf16["cosine_min"] >= GOAL_COSINE
            )
            print(
                f"{arch:15s} {params:5.1f} M params | "
                f"{x_conf:7.0f}x real time at {settings.batch_seconds:.0f} s/"
                f"{settings.max_batch_size} clips ({mem_conf:.1f} GiB), "
                f"{x_big:7.0f}x at {big.batch_seconds:.0f} s/{big.max_batch_size} "
                f"({mem_big:.1f} GiB), forward {share:.0%} of the time | "
                f"bf16 vs CPU: rel L2 median "
                f"{same_bf16['rel_l2_median']:.4f} max {same_bf16['rel_l2_max']:.4f}, cosine min "
                f"{same_bf16['cosine_min']:.5f} | fp32 GPU vs CPU: rel L2 max "
                f"{same_fp32['rel_l2_max']:.4f} | {'PASS' if ok else 'FAIL'}"
            )
            results["archs"][arch] = {  # type: ignore[index]
                "params_millions": params,
                "x_real_time_configured": x_conf,
                "x_real_time_gpu_batch": x_big,
                "peak_gib_configured": mem_conf,
                "peak_gib_gpu_batch": mem_big,
                "forward_share_configured": share,
                "bf16_vs_cpu": same_bf16,
                "fp32_gpu_vs_cpu": same_fp32,
                "pass": ok,
            }
            del model
            torch.cuda.empty_cache()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

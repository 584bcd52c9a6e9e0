"""``seda predict`` on a one-hour file with the baseline model: real-time factor and memory.

Builds, in a temporary folder, a 60-minute and a 10-minute WAV of TurEV-DB words (44.1 kHz
16-bit, as recorded, in a fixed shuffled order) separated by pauses of 0.1 to 1.0 s of faint
noise (some shorter than the merge gap, so that words also join into longer segments). Runs the
real command line (``python -m seda.cli predict FILE --model baseline --out r.json``) on each in
a fresh process, sampling its process tree (the command, its forkserver, workers and their
helpers) every 50 ms (benchmarks/treemem.py), and prints audio seconds per wall second (the
real-time factor, start-up and model loading included) and the peak summed RSS and PSS.
On a busy machine the wall time says little: the CPU seconds of the command's own process
(which cuts a single file: decoding, noise reduction and VAD run in order, the critical path)
and of the whole tree give what an idle machine with as many cores would reach,
``min(audio / own, cores * audio / all)``, printed beside it.

Reference, measured in the same run: the 10-minute file. Goals (issue 12): the hour >= 30x real
time; memory flat, the hour's peak RSS within 25% of the 10-minute file's. The model is the
pipeline's (``models/baseline``, from ``dvc repro train_baseline``) or ``--models-dir``'s.

    python benchmarks/predict_long.py [--minutes 60] [--short-minutes 10] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from treemem import MIB, TreePeak, run_measured

from seda.parallel import cpu_cores

ROOT = Path(__file__).resolve().parents[1]
TUREVDB = ROOT.parent / "shared" / "data" / "turevdb" / "Sound Source"
GOAL_X_REALTIME = 30.0
GOAL_FLAT = 1.25


def build_file(path: Path, minutes: float, seed: int = 0) -> float:
    """TurEV-DB words and pauses up to ``minutes``, written as they are read; its seconds."""
    files = sorted(TUREVDB.glob("*/*.wav"))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(files))
    sr = sf.info(files[0]).samplerate
    total = int(minutes * 60 * sr)
    written = 0
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as out:
        k = 0
        while written < total:
            y, file_sr = sf.read(files[order[k % len(files)]], dtype="float32")
            assert file_sr == sr and y.ndim == 1
            pause = (0.001 * rng.standard_normal(int(rng.uniform(0.1, 1.0) * sr))).astype("float32")
            part = np.concatenate([y, pause])[: total - written]
            out.write(part)
            written += part.size
            k += 1
    return written / sr


def predict(wav: Path, args: argparse.Namespace, out: Path) -> tuple[float, TreePeak, dict]:
    cmd = [sys.executable, "-m", "seda.cli", "predict", str(wav), "--model", args.model]
    cmd += ["--models-dir", str(args.models_dir), "--out", str(out), "--workers", str(args.workers)]
    start = time.perf_counter()
    _, peak = run_measured(cmd, env={**os.environ, "TQDM_DISABLE": "1"}, cwd=ROOT)
    wall = time.perf_counter() - start
    (source,) = json.loads(out.read_text())["sources"]
    return wall, peak, source["summary"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--short-minutes", type=float, default=10.0)
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--model", default="baseline")
    parser.add_argument("--workers", type=int, default=0, help="0: one per core")
    args = parser.parse_args(argv)
    if not TUREVDB.is_dir():
        print(f"TurEV-DB not found at {TUREVDB}", file=sys.stderr)
        return 2
    if not (args.models_dir / args.model / "model.json").is_file():
        print(f"no model {args.models_dir / args.model}: run `dvc repro train_baseline`")
        return 2
    rows = {}
    with tempfile.TemporaryDirectory(prefix="seda-bench-predict-") as tmp:
        for name, minutes in (("short", args.short_minutes), ("long", args.minutes)):
            wav = Path(tmp) / f"{name}.wav"
            seconds = build_file(wav, minutes)
            wall, peak, summary = predict(wav, args, Path(tmp) / f"{name}.json")
            rows[name] = (seconds, wall, peak)
            idle = min(seconds / peak.cpu_root, cpu_cores() * seconds / peak.cpu_all)
            print(f"{seconds / 60:5.1f} min: {wall:6.1f} s, {seconds / wall:5.1f}x real time, "
                  f"{summary['segments']} segments, {summary['speech_seconds']:.0f} s of speech; "
                  f"{peak}; CPU {peak.cpu_root:.0f} s in the main process, {peak.cpu_all:.0f} s "
                  f"in all: {idle:.1f}x on an idle machine")  # fmt: skip
            wav.unlink()
    (s_sec, s_wall, s_peak), (l_sec, l_wall, l_peak) = rows["short"], rows["long"]
    x_long, x_short = l_sec / l_wall, s_sec / s_wall
    print(f"\nseda predict, model {args.model}, {cpu_cores()} cores, workers {args.workers}")
    verdict = "PASS" if x_long >= GOAL_X_REALTIME else "FAIL"
    print(
        f"{l_sec / 60:.0f}-minute file: {x_long:.1f}x real time (goal >= {GOAL_X_REALTIME:.0f}x; "
        f"{s_sec / 60:.0f}-minute file {x_short:.1f}x): {verdict}"
    )
    idle = min(l_sec / l_peak.cpu_root, cpu_cores() * l_sec / l_peak.cpu_all)
    verdict = "PASS" if idle >= GOAL_X_REALTIME else "FAIL"
    print(f"  from its CPU time, on an idle machine: {idle:.1f}x: {verdict}")
    growth = l_peak.rss / s_peak.rss
    verdict = "PASS" if growth <= GOAL_FLAT else "FAIL"
    print(
        f"peak RSS {l_peak.rss / MIB:.0f} MiB vs {s_peak.rss / MIB:.0f} MiB: x{growth:.2f} "
        f"(flat: goal <= x{GOAL_FLAT}; PSS {l_peak.pss / MIB:.0f} vs {s_peak.pss / MIB:.0f} "
        f"MiB): {verdict}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

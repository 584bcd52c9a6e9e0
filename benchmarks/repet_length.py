"""REPET on a 1-minute and a 60-minute file: is its cost linear in length, and its memory bounded?

Two synthetic files (44.1 kHz PCM16, mono, written to a temporary folder and deleted after) are
built from the demo corpus's speech-over-music items (``seda.demo_corpus``, one-minute items of
different speakers and emotions; the hour is 60 different items end to end). Each file is
separated by ``seda.separation.repet.separate_file`` with the default settings (those of
``conf/separate/repet.yaml``: 22.05 kHz, 60 s chunks) in a fresh child process that reports its
wall time, CPU time and peak resident memory (``ru_maxrss``: the interpreter and its imports
included). The 1-minute file is run five times and its median taken.

Printed: seconds (wall and CPU) per audio second for both files, their ratio (60 min / 1 min),
the hour's peak RSS, and, unless ``--no-reference``, the 1-minute file through the librosa
implementation REPET had before issue #12 (``benchmarks/separation.py``'s reference) for the
speed ratio of the two on the same file. PASS or FAIL against issue #12's goals: the two rates
within 1.2x of each other (judged on CPU seconds, which other jobs on a shared machine disturb
less than wall seconds; both are printed) and a peak below 1 GiB for the hour. Exits 0 always.

    python benchmarks/repet_length.py [--minutes 60] [--no-reference]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SR = 44100
GOAL_RATE_RATIO = 1.2
GOAL_PEAK_BYTES = 1 << 30
# The 1-minute file is separated this many times and the median taken (a shared machine is noisy).
SHORT_RUNS = 5


def write_long_file(path: Path, minutes: int) -> float:
    """``minutes`` different one-minute demo items end to end; returns the duration in seconds."""
    import soundfile as sf

    from seda.demo_corpus import DemoSettings, plan_items, synthesize_item_and_reference

    settings = DemoSettings(
        item_seconds=60.0, sample_rate=SR, items_per_speaker_and_label=1 + minutes // 24
    )
    items = plan_items(settings)[:minutes]
    frames = 0
    with sf.SoundFile(str(path), "w", SR, 1, subtype="PCM_16", format="WAV") as fh:
        for item in items:
            mix, _ = synthesize_item_and_reference(settings, item)
            fh.write(mix)
            frames += mix.size
    return frames / SR


def child(in_path: str, reference: bool) -> None:
    """Separate one file in this process and print its cost as JSON (the parent's measurement)."""
    import soundfile as sf

    from seda.separation.repet import SeparateSettings, separate_file

    settings = SeparateSettings()
    out = Path(in_path).with_suffix(".voice.wav")
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    if reference:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from separation import _librosa_job  # the pre-#12 implementation

        _librosa_job((Path(in_path), out), settings)
    else:
        separate_file(in_path, out, settings)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage.ru_utime + usage.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    audio = sf.info(in_path).duration
    print(json.dumps({"wall": wall, "cpu": cpu, "audio": audio, "maxrss": usage.ru_maxrss * 1024}))


def measure(path: Path, reference: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--child", str(path)] + (["--reference"] if reference else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed on {path.name}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=int, default=60, help="length of the long file")
    parser.add_argument("--no-reference", action="store_true", help="skip the librosa reference")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.reference)
        return 0
    try:
        report(args.minutes, not args.no_reference)
    except Exception as err:  # a benchmark reports; it does not fail the caller
        print(f"FAIL: benchmark did not complete: {type(err).__name__}: {err}")
    return 0


def report(minutes: int, with_reference: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="repet_length_") as tmp:
        short, long = Path(tmp) / "one_minute.wav", Path(tmp) / f"{minutes}_minutes.wav"
        write_long_file(short, 1)
        print(f"writing the {minutes}-minute file ...", flush=True)
        write_long_file(long, minutes)
        runs = [measure(short) for _ in range(SHORT_RUNS)]
        one = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        hour = measure(long)
        ref = measure(short, reference=True) if with_reference else None
    print(f"\nREPET, default settings, one process (sample rate {SR} Hz in, 22050 Hz stems)\n")
    print(
        "| file | audio (s) | wall s / audio s | CPU s / audio s | x real time | peak RSS (MiB) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    rows = [(f"1 min (median of {SHORT_RUNS})", one), (f"{minutes} min", hour)]
    if ref:
        rows.append(("1 min, librosa reference", ref))
    for name, r in rows:
        print(
            f"| {name} | {r['audio']:.0f} | {r['wall'] / r['audio']:.4f} | "
            f"{r['cpu'] / r['audio']:.4f} | {r['audio'] / r['wall']:.1f} | "
            f"{r['maxrss'] / 2**20:.0f} |"
        )
    cpu_ratio = (hour["cpu"] / hour["audio"]) / (one["cpu"] / one["audio"])
    wall_ratio = (hour["wall"] / hour["audio"]) / (one["wall"] / one["audio"])
    print(
        f"\n{minutes} min / 1 min, seconds per audio second: "
        f"CPU {cpu_ratio:.3f}, wall {wall_ratio:.3f}"
    )
    if ref:
        print(
            f"1 min, librosa reference / ours: CPU {ref['cpu'] / one['cpu']:.2f}x, "
            f"wall {ref['wall'] / one['wall']:.2f}x"
        )
    linear = 1 / GOAL_RATE_RATIO <= cpu_ratio <= GOAL_RATE_RATIO
    bounded = hour["maxrss"] < GOAL_PEAK_BYTES
    print(
        f"{'PASS' if linear else 'FAIL'}: CPU seconds per audio second, {minutes} min vs 1 min: "
        f"{cpu_ratio:.3f}x (goal within {GOAL_RATE_RATIO:g}x)"
    )
    print(
        f"{'PASS' if bounded else 'FAIL'}: peak RSS for {minutes} min "
        f"{hour['maxrss'] / 2**20:.0f} MiB (goal < {GOAL_PEAK_BYTES / 2**30:g} GiB)"
    )


if __name__ == "__main__":
    raise SystemExit(main())

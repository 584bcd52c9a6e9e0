"""Baseline featurisation against openSMILE's eGeMAPS alone, on TurEV-DB: throughput and memory.

stage      ``seda.features.classic.write_classic_features`` with the default
           ``BaselineSettings`` (MFCC + log-mel + eGeMAPS of every file decoded at 16 kHz),
           writing its feature store, as the featurize_baseline stage does.
reference  the floor the stage cannot beat: the same files decoded the same way
           (``seda.audio.load_audio`` at 16 kHz) and only
           ``opensmile.Smile(eGeMAPSv02, Functionals).process_signal`` on each, through the same
           ``seda.parallel.map_files`` with the same number of worker processes.

Each run is a fresh child process (``--run stage|reference``) timed inside (pool start-up and
worker imports included, interpreter start-up not); its process tree (the child, its forkserver
and resource tracker, the workers) is sampled every 50 ms for the peak summed RSS and PSS
(benchmarks/treemem.py). The two alternate ``--repeats`` times; the best throughput and the
highest peak of each count. The CPU seconds of the whole tree per file, which other load on the
machine changes less than the wall time, are printed beside. Goals (issue 12): stage files/s
>= 0.8 x reference, stage tree peak RSS <= 400 MiB. TurEV-DB is read in place
(../shared/data/turevdb).

    python benchmarks/baseline_features.py [--limit N] [--workers N] [--repeats R]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TUREVDB = ROOT.parent / "shared" / "data" / "turevdb" / "Sound Source"
GOAL_RATIO = 0.8
GOAL_PEAK_MIB = 400
SR = 16000


def turevdb_files(limit: int) -> list[Path]:
    files = sorted(TUREVDB.glob("*/*.wav"))
    return files[:limit] if limit else files


@functools.cache
def _smile() -> Any:
    import opensmile

    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
    )


def egemaps_only(path: str) -> int:
    """Reference worker: decode as the stage does, then openSMILE's eGeMAPS functionals alone."""
    from seda.audio import load_audio

    y, sr = load_audio(path, SR)
    return _smile().process_signal(y, sr).size


def run_child(which: str, limit: int, workers: int) -> dict[str, float]:
    """One measured run in this (fresh) process."""
    from seda.audio import AudioError
    from seda.baseline import BaselineSettings
    from seda.features.classic import write_classic_features
    from seda.parallel import map_files
    from seda.records import SplitRow

    files = turevdb_files(limit)
    with tempfile.TemporaryDirectory(prefix="seda-bench-features-") as tmp:
        start = time.perf_counter()
        if which == "stage":
            rows = [
                SplitRow(f.stem, str(f), f.parent.name.lower(), f.name.split("_")[0], f.stem,
                         "g0", "train", 0)
                for f in files
            ]  # fmt: skip
            summary = write_classic_features(rows, BaselineSettings(), Path(tmp), workers)
            done = summary["clips"]
        else:
            outcomes = map_files(
                egemaps_only, [str(f) for f in files], workers=workers, known_errors=(AudioError,)
            )
            done = sum(o.error is None for o in outcomes)
        seconds = time.perf_counter() - start
    return {"files": len(files), "done": done, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="only the first N files (0: all)")
    parser.add_argument("--workers", type=int, default=0, help="0: one per core")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--run", choices=["stage", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:  # child
        print(json.dumps(run_child(args.run, args.limit, args.workers)))
        return 0
    if not TUREVDB.is_dir():
        print(f"TurEV-DB not found at {TUREVDB}", file=sys.stderr)
        return 2
    from treemem import MIB, TreePeak, run_measured

    from seda.logs import setup_logging
    from seda.parallel import cpu_cores

    setup_logging("WARNING")
    workers = args.workers or cpu_cores()
    best: dict[str, float] = {}
    cpu_ms: dict[str, float] = {}  # CPU time of the whole tree per file: robust to other load
    peaks: dict[str, TreePeak] = {}
    for _ in range(args.repeats):
        for which in ("reference", "stage"):
            cmd = [sys.executable, __file__, "--run", which, "--limit", str(args.limit)]
            env = {**os.environ, "TQDM_DISABLE": "1"}
            out, peak = run_measured([*cmd, "--workers", str(workers)], env=env)
            got = json.loads(out.strip().splitlines()[-1])
            rate = got["files"] / got["seconds"]
            print(f"{which:9s} {got['files']} files ({got['done']} featurised) in "
                  f"{got['seconds']:.1f} s: {rate:.1f} files/s; {peak}")  # fmt: skip
            best[which] = max(best.get(which, 0.0), rate)
            cpu_ms[which] = min(cpu_ms.get(which, math.inf), 1000 * peak.cpu_all / got["files"])
            old = peaks.get(which, TreePeak())
            peaks[which] = TreePeak(
                max(old.rss, peak.rss), max(old.pss, peak.pss), max(old.processes, peak.processes)
            )
    ratio = best["stage"] / best["reference"]
    stage_mib = peaks["stage"].rss / MIB
    print(f"\n{len(turevdb_files(args.limit))} TurEV-DB files, {workers} worker processes each, "
          f"{cpu_cores()} cores, best of {args.repeats}")  # fmt: skip
    ref = best["reference"]
    print(f"reference (decode + eGeMAPS only)  {ref:.1f} files/s  {peaks['reference']}")
    print(f"stage (MFCC + log-mel + eGeMAPS)   {best['stage']:.1f} files/s  {peaks['stage']}")
    verdict = "PASS" if ratio >= GOAL_RATIO else "FAIL"
    print(f"throughput ratio stage / reference = {ratio:.2f} (goal >= {GOAL_RATIO}): {verdict}")
    print(
        f"  CPU per file (all processes): reference {cpu_ms['reference']:.0f} ms, stage "
        f"{cpu_ms['stage']:.0f} ms: ratio {cpu_ms['reference'] / cpu_ms['stage']:.2f}"
    )
    verdict = "PASS" if stage_mib <= GOAL_PEAK_MIB else "FAIL"
    print(f"stage process tree peak RSS = {stage_mib:.0f} MiB (goal <= {GOAL_PEAK_MIB}): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

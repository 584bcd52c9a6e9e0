"""Throughput of the clean stage on TurEV-DB: audio seconds processed per wall-clock second.

Builds a separated-style manifest of all 1,735 TurEV-DB files in a temporary folder, runs
``seda.stages.clean.run`` with the default composed settings (Silero VAD, noise reduction,
LUFS normalisation), a fresh cache and one worker per core, and prints the real-time factor.
A second run on the same cache shows the incremental path (nothing decoded).

    python benchmarks/clean_speed.py [--workers N] [--limit N] [override ...]

Overrides are Hydra-style, e.g. ``clean.clips.min_seconds=0.3`` or ``vad=energy``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from seda.io import sha256_file
from seda.logs import setup_logging
from seda.records import ItemRow, write_records
from seda.schema import compose
from seda.stages.clean import run

ROOT = Path(__file__).resolve().parents[1]
TUREVDB = ROOT.parent / "shared" / "data" / "turevdb" / "Sound Source"
GOAL_X_REALTIME_2_CORES = 50.0


def build_manifest(files: list[Path], path: Path) -> None:
    """A manifest in the separate stage's columns (backend none: paths point at the raw files)."""
    rows = [
        ItemRow(
            id=f"tv{i:05d}",
            path=str(f),
            label=f.parent.name.lower(),
            speaker=f.name.split("_", 1)[0],
            source_id=f"tv{i:05d}",
            sha256=sha256_file(f),
            origin="folder",
        )
        for i, f in enumerate(files)
    ]
    write_records(path, rows, ItemRow)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=0, help="0 = one per core")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N files")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/")
    args = parser.parse_args(argv)
    if not TUREVDB.exists():
        print(f"TurEV-DB not found at {TUREVDB}", file=sys.stderr)
        return 2
    setup_logging("WARNING")
    files = sorted(TUREVDB.glob("*/*.wav"))
    if args.limit:
        files = files[: args.limit]
    params = compose(args.overrides, conf_dir=ROOT / "conf")
    params["workers"] = args.workers
    with tempfile.TemporaryDirectory(prefix="seda-clean-bench-") as tmp:
        tmp_path = Path(tmp)
        manifest = tmp_path / "separated.csv"
        build_manifest(files, manifest)
        kwargs = {
            "manifest": manifest,
            "out_dir": tmp_path / "clean",
            "cache_root": tmp_path / "cache",
        }
        t0, c0 = time.perf_counter(), time.process_time()
        first = run(params, **kwargs)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        second = run(params, **kwargs)
        wall_cached = time.perf_counter() - t0
    x_rt = first["input_seconds"] / wall
    report = {
        "files": len(files),
        "cores": os.cpu_count(),
        "workers": args.workers or os.cpu_count(),
        "overrides": args.overrides,
        "audio_seconds": first["input_seconds"],
        "wall_seconds": round(wall, 2),
        "x_realtime": round(x_rt, 1),
        # CPU time of this process: all of the work only with --workers 1 (no worker processes).
        "main_process_cpu_seconds": round(cpu, 2),
        "clips": first["clips"],
        "rejected_clips": first["rejected_clips"],
        "rejected_items": first["rejected_items"],
        "cached_rerun_seconds": round(wall_cached, 2),
        "cached_rerun_decoded": second["decoded"],
    }
    print(json.dumps(report, indent=2))
    print(f"clean: {x_rt:.1f}x real time (goal >= {GOAL_X_REALTIME_2_CORES:.0f}x on 2 cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
